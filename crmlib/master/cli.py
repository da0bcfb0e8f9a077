"""``crm resolve`` and ``crm dedup`` (the same engine on any CSV)."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from ..encoding import read_user_csv
from ..errors import UserError
from .match import match_records
from .params import MasterParams, load_master_params
from .pipeline import _bare_note, _rule_note, resolve_db

# crm dedup: the same engine on any CSV
# ------------------------------------------------------------------------------------------------------

_DEDUP_OPTIONAL = {"city": "city", "phone": "phone", "contact": "contact_name", "address": "address",
                   "uscc": "uscc"}


def dedup_frame(df: pd.DataFrame, id_col: str = "id", name_col: str = "name",
                params: MasterParams | None = None, progress: bool = False,
                source: str = "input") -> pd.DataFrame:
    """``crm dedup`` core: a user's table in, ``id, cluster_id, canonical_name, match_probability`` out.

    ``cluster_id`` is the id of the cluster's first row (file order); junk names get a blank cluster."""
    params = params or load_master_params()
    if id_col == "id" and "id" not in df.columns:
        # no id column and none named: the CSV line number (header = line 1) identifies a row
        df = df.assign(id=[str(i + 2) for i in range(len(df))])
    for col in (id_col, name_col):
        if col not in df.columns:
            raise UserError(f"column {col!r} not found (columns: {', '.join(map(str, df.columns))})",
                            file=source, column=col, hint="name it with --id-col / --name-col")
    ids = df[id_col].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise UserError(f"id {dup.iloc[0]!r} appears more than once", file=source, column=id_col,
                        row=int(dup.index[0]) + 2, hint="ids must be unique")
    recs = pd.DataFrame({"record_id": [f"{i:09d}" for i in range(len(df))],
                         "name_raw": df[name_col].replace("", None)})
    for src, dst in _DEDUP_OPTIONAL.items():
        recs[dst] = df[src].replace("", None) if src in df.columns else None
    res = match_records(recs, params, None, progress=progress)
    r = res.records.sort_values("record_id").reset_index(drop=True)
    r["id"] = ids.to_numpy()
    first_id = r.dropna(subset=["cluster"]).groupby("cluster")["id"].first()
    # canonical name of the cluster: the most frequent canonical name among its rows (ties: first in file)
    canon = (r.dropna(subset=["cluster"]).groupby(["cluster", "canonical"], sort=False).size()
             .rename("n").reset_index().sort_values(["cluster", "n"], ascending=[True, False], kind="stable")
             .groupby("cluster").head(1).set_index("cluster")["canonical"])
    out = pd.DataFrame({
        "id": r["id"],
        "cluster_id": r["cluster"].map(first_id),
        "canonical_name": r["cluster"].map(canon),
        "match_probability": r["match_probability"].round(4),
    })
    return out


def _cmd_dedup(args) -> int:
    if Path(args.out).resolve() == Path(args.input).resolve():
        raise UserError("--out is the input file: it would be overwritten", file=str(args.input),
                        hint="write the result to another file")
    df = read_user_csv(args.input)  # crmlib.encoding
    params = load_master_params(args.params) if args.params else load_master_params()
    out = dedup_frame(df, args.id_col, args.name_col, params, progress=sys.stderr.isatty(),
                      source=str(args.input))
    out_path = Path(args.out)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(out_path, index=False, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write output: {exc.strerror}", file=str(out_path)) from None
    n_cl = out["cluster_id"].nunique()
    print(f"{len(out)} rows → {n_cl} organisations ({int(out['cluster_id'].isna().sum())} junk names); "
          f"written to {out_path}")
    return 0


def _cmd_resolve(args) -> int:
    params = load_master_params(args.params) if args.params else load_master_params()
    s = resolve_db(args.db, params, retrain=args.retrain)
    print(f"{s.records} records ({s.junk} junk) → {s.customers} customers; model {s.stats.get('model_note')}; "
          f"{s.kept_ids} kept their id, "
          f"{s.new_ids} new; {s.review_queue} pairs to review ({s.stats.get('review_new', 0)} new)"
          f"{_bare_note(s.stats)}{_rule_note(s.stats)}; "
          f"{s.seconds:.1f} s")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("resolve", help="build the customer master (records, xref, master, hierarchy)")
    p.add_argument("--db", default=None, help="database (default data/curated/crm.duckdb)")
    p.add_argument("--params", default=None, help="parameter file (default params/master.yaml)")
    p.add_argument("--retrain", action="store_true",
                   help="train the matching model again instead of reusing the stored one (model_max_age_days)")
    p.set_defaults(func=_cmd_resolve)
    d = subparsers.add_parser("dedup", help="find duplicate organisations in any CSV")
    d.add_argument("input", help="CSV with an id and a name column (optional: city, phone, contact, address, uscc)")
    d.add_argument("--out", required=True, help="output CSV: id, cluster_id, canonical_name, match_probability")
    d.add_argument("--id-col", default="id")
    d.add_argument("--name-col", default="name")
    d.add_argument("--params", default=None, help="parameter file (default params/master.yaml)")
    d.set_defaults(func=_cmd_dedup)
