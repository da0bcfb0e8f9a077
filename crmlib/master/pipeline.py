"""``resolve``: the whole pipeline on a database, and the review queue it leaves for stewards."""
from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .. import db as dbmod
from .. import paths
from ..errors import UserError
from .clusters import link_roots
from .decisions import read_decisions
from .features import _bare_multi_city, _place
from .match import MatchResult, match_records
from .params import COMPARISONS, MasterParams, load_master_params
from .records import build_customer_records, contact_phones
from .store import (
    _CRM_FIELDS,
    _write_df,
    assign_ids,
    golden_sql,
    model_key,
    model_weights,
    name_cache_key,
    read_model,
    read_name_cache,
    write_model,
    write_name_cache,
)


@dataclass
class ResolveSummary:
    records: int
    junk: int
    customers: int
    groups: int
    pairs_scored: int
    review_queue: int
    kept_ids: int
    new_ids: int
    seconds: float
    stats: dict = field(default_factory=dict)
def resolve(con: duckdb.DuckDBPyConnection, params: MasterParams | None = None,
            decisions_path: str | Path | None = None, progress: bool = True,
            retrain: bool = False) -> ResolveSummary:
    """Build the customer master inside ``con`` (the caller owns the transaction)."""
    import time

    from .. import hierarchy

    t0 = time.perf_counter()
    clock = [t0]
    phase: dict[str, float] = {}

    def lap(key: str) -> None:
        now = time.perf_counter()
        phase[key] = round(now - clock[0], 1)
        clock[0] = now

    params = params or load_master_params()
    build_customer_records(con)
    # provenance columns (_source_file, _row) stay in the table: matching never reads them
    records = con.execute("SELECT * EXCLUDE (_source_file, _row) FROM customer_records ORDER BY record_id").df()
    # side evidence, not a record field; prepare_records uses it when params.contact_phones
    records = records.merge(contact_phones(con), on="record_id", how="left")
    if records.empty:
        raise UserError("the loaded sources hold no customer records: nothing to resolve",
                        file=dbmod.database_file(con),
                        hint="load the customer sources first: `crm load --raw data/raw` with the crm/, erp/, "
                             "sales_sheets/, callcenter/ or service/ folders (data/raw/README.md)")
    decisions = read_decisions(decisions_path)
    cache_key = name_cache_key(params)
    known = read_name_cache(con, cache_key)
    lap("seconds_records")
    mkey = model_key(params, cache_key)
    stored, model_note = read_model(con, params, retrain, records=len(records), key=mkey)
    res = match_records(records, params, decisions, progress=progress, known_names=known, model=stored)
    clock[0] = time.perf_counter()
    write_name_cache(con, res.names, cache_key)
    if res.stats.get("model") == "trained" and res.model:
        write_model(con, res.model, params, len(records), key=mkey)
    res.stats["model_note"] = model_note if res.stats.get("model") else "no name groups: no model"
    recs = res.records
    lap("seconds_name_cache_write")

    # stable ids
    live = recs[recs["cluster"].notna()][["record_id", "cluster"]]
    old = (con.execute("SELECT record_id, customer_id FROM customer_id_map").df()
           if dbmod.table_exists(con, "customer_id_map") else None)
    idmap = assign_ids(live, old)
    recs["customer_id"] = recs["cluster"].map(idmap)
    old_ids = set(old["customer_id"]) if old is not None else set()
    kept = len(set(idmap.values()) & old_ids)
    today = dt.date.today()
    new_map = recs.loc[recs["customer_id"].notna(), ["record_id", "customer_id"]].assign(assigned_at=today)
    if old is not None and len(old):
        # earlier assignments of records no longer resolved stay, so their ids are never reused
        con.register("_nm", new_map)
        try:
            con.execute("""CREATE OR REPLACE TEMP TABLE _id_map AS
                SELECT record_id, customer_id, CAST(assigned_at AS DATE) AS assigned_at FROM customer_id_map
                WHERE record_id NOT IN (SELECT record_id FROM _nm)
                UNION ALL SELECT record_id, customer_id, CAST(assigned_at AS DATE) FROM _nm""")
            con.execute("CREATE OR REPLACE TABLE customer_id_map AS SELECT * FROM _id_map ORDER BY record_id")
            con.execute("DROP TABLE _id_map")
        finally:
            con.unregister("_nm")
    else:
        _write_df(con, "customer_id_map", new_map, "record_id")
    lap("seconds_ids")

    # xref
    xref = recs[["record_id", "source", "source_key", "customer_id", "match_probability"]].copy()
    xref.loc[xref["customer_id"].isna(), "match_probability"] = np.nan
    _write_df(con, "customer_xref", xref, "record_id")

    # golden records
    cols = ["record_id", "source", "customer_id", "record_date", "canonical", "brand", "n_city", "n_province",
            "branch_level", "branch_name", "hier", "bare", "industry", "province", "city", "address", "rep_id"]
    x = recs[cols].copy()
    x["uscc"] = recs["uscc_n"]
    x["phone"] = recs["phone_n"]
    x["completeness"] = recs[["uscc", "phone", "contact_name", "email", "province", "city", "address",
                              "industry"]].notna().sum(axis=1)
    con.register("_x", x)
    acc_cols = dbmod.columns(con, "stg_crm_accounts")
    extra = ", ".join(f"CAST(a.{c} AS VARCHAR) AS {c}" if c in acc_cols else f"CAST(NULL AS VARCHAR) AS {c}"
                      for c in _CRM_FIELDS)
    join = ("LEFT JOIN stg_crm_accounts a ON x.source = 'crm' AND a.account_id = split_part(x.record_id, ':', 2)"
            if acc_cols else "")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _xrec AS SELECT x.*, {extra} FROM _x x {join}")
    con.unregister("_x")
    golden = con.execute(golden_sql(params.source_trust) + " ORDER BY customer_id").df()
    lap("seconds_golden")

    # hierarchy
    crm_parent = pd.DataFrame(columns=["customer_id", "parent_customer_id"])
    if "parent_account_id" in acc_cols:
        crm_parent = con.execute("""
            SELECT DISTINCT xc.customer_id, xp.customer_id AS parent_customer_id
            FROM stg_crm_accounts a
            JOIN customer_xref xc ON xc.record_id = 'crm:' || a.account_id
            JOIN customer_xref xp ON xp.record_id = 'crm:' || a.parent_account_id
            WHERE xc.customer_id IS NOT NULL AND xp.customer_id IS NOT NULL
              AND xc.customer_id <> xp.customer_id
            ORDER BY 1, 2""").df()
    hier = hierarchy.build_hierarchy(golden, crm_parent)
    _write_df(con, "customer_hierarchy", hier, "child_id")
    level = hierarchy.master_levels(golden, hier)
    golden = golden.merge(level, on="customer_id", how="left")
    golden["owner_rep_id"] = golden["owner_rep_id"].fillna(golden["rep_id"])
    master_cols = ["customer_id", "name", "uscc", "industry", "scope", "region", "province", "city", "size",
                   "registered_capital", "listed", "level", "parent_customer_id", "owner_rep_id", "n_records",
                   "sources", "first_seen", "last_seen", "brand", "address", "phone"]
    golden["registered_capital"] = pd.to_numeric(golden["registered_capital"], errors="coerce")
    _write_df(con, "customer_master", golden[master_cols], "customer_id")
    lap("seconds_hierarchy")

    # review queue and evidence for the notebook
    queue, n_new = _carry_first_queued(con, review_queue(res, params, decisions), dt.date.today())
    _write_df(con, "match_review_queue", queue, "record_id_l, record_id_r")
    pairs = res.pairs.copy()
    g = res.groups.set_index("group_id")
    pairs["record_id_l"] = g.loc[pairs["group_id_l"], "first_record"].to_numpy()
    pairs["record_id_r"] = g.loc[pairs["group_id_r"], "first_record"].to_numpy()
    pairs["name_l"] = g.loc[pairs["group_id_l"], "canonical"].to_numpy()
    pairs["name_r"] = g.loc[pairs["group_id_r"], "canonical"].to_numpy()
    keep = ["record_id_l", "record_id_r", "name_l", "name_r"] + [f"mw_{c}" for c in COMPARISONS] + [
        "match_weight", "match_probability", "violation", "decision", "rule"]
    _write_df(con, "customer_match_pairs", pairs[keep], "record_id_l, record_id_r")
    _write_df(con, "customer_match_model", model_weights(res.model), "comparison, gamma")
    con.execute("DROP TABLE IF EXISTS _xrec")
    lap("seconds_review_pairs")
    n_cust = int(golden["customer_id"].nunique())
    return ResolveSummary(
        records=len(recs), junk=res.stats["junk"], customers=n_cust, groups=res.stats["groups"],
        pairs_scored=res.stats.get("pairs_scored", 0), review_queue=len(queue), kept_ids=kept,
        new_ids=n_cust - kept, seconds=round(time.perf_counter() - t0, 1),
        stats={**res.stats, **phase, "review_new": n_new})


def _carry_first_queued(con: duckdb.DuckDBPyConnection, queue: pd.DataFrame,
                        today: dt.date) -> tuple[pd.DataFrame, int]:
    """``first_queued``: the date a pair first entered the review queue, kept from the queue this resolve
    replaces (a pair waiting since an earlier run keeps its date; stewards see what is new this week).
    Also returns how many pairs were not in the previous queue. A queue from before this column counts as
    queued today."""
    old = pd.DataFrame(columns=["record_id_l", "record_id_r", "first_queued"])
    cols = dbmod.columns(con, "match_review_queue")
    if {"record_id_l", "record_id_r"} <= cols:
        first = "first_queued" if "first_queued" in cols else "CAST(? AS DATE)"
        args = [] if "first_queued" in cols else [today]
        old = con.execute(f"SELECT record_id_l, record_id_r, {first} AS first_queued FROM match_review_queue",
                          args).df()
    out = queue.merge(old, on=["record_id_l", "record_id_r"], how="left")
    new = out["first_queued"].isna()
    out["first_queued"] = pd.to_datetime(out["first_queued"]).dt.date.where(~new, today)
    return out, int(new.sum())


REVIEW_REASONS = {"score": "match probability between review_low and review_high, and no chain of confident "
                            "pairs joins the two already",
                  "ambiguous": "a name without place that matches customers in two places about equally",
                  "bare_name": "a trade name written bare, known in several cities, no phone tying it to one"}


def settled_pairs(pairs: pd.DataFrame, review_high: float, among: np.ndarray | None = None) -> np.ndarray:
    """For each scored pair of name groups (or those ``among`` marks; False elsewhere): are its two groups
    linked through confident pairs alone — scored at or above ``review_high``, joined by the trade-name rule or
    matched by a steward, none against a hard rule or a steward's no-match? A pair in the review band whose
    groups are linked so (and are one customer) is no open question: a chain of confident pairs joins them
    whatever a steward says of this one pair."""
    p = pairs
    ok = p["violation"].isna().to_numpy() if "violation" in p else np.ones(len(p), bool)
    decision = p["decision"].astype(object).to_numpy() if "decision" in p else np.full(len(p), None)
    rule = p["rule"].notna().to_numpy() if "rule" in p else np.zeros(len(p), bool)
    strong = ok & (decision != "no_match") & (
        (p["match_probability"].fillna(0).to_numpy() >= review_high) | rule | (decision == "match"))
    left, right = p["group_id_l"].to_numpy(), p["group_id_r"].to_numpy()
    root = link_roots(zip(left[strong], right[strong], strict=True))
    out = np.zeros(len(p), bool)
    idx = np.arange(len(p)) if among is None else np.flatnonzero(among)
    out[idx] = [root(a) == root(b) for a, b in zip(left[idx], right[idx], strict=True)]
    return out


def review_queue(res: MatchResult, params: MasterParams, decisions: pd.DataFrame | None) -> pd.DataFrame:
    """Pairs of name groups scored in [review_low, review_high) whose groups are not already one customer
    through confident pairs (:func:`settled_pairs`), or touching a group left on its own as ambiguous (see
    ``_detach_ambiguous``), not ruled out by a hard rule and not decided yet; one representative record (the
    group's smallest record_id) per side. Then the pairs of :func:`bare_name_candidates`. ``reason``: a key of
    :data:`REVIEW_REASONS`."""
    cols = ["record_id_l", "record_id_r", "name_l", "name_r", "match_probability", "match_weight",
            "same_cluster", "n_records_l", "n_records_r", "reason"]
    bare = bare_name_candidates(res, params, decisions)
    p = res.pairs
    if p is None or p.empty:
        return bare[cols].reset_index(drop=True) if len(bare) else pd.DataFrame(columns=cols)
    band = (p["match_probability"] >= params.review_low) & (p["match_probability"] < params.review_high)
    g = res.groups.set_index("group_id")
    # a band pair of one customer whose groups confident pairs already link: nothing for a steward to decide
    one = g["cluster"].reindex(p["group_id_l"]).to_numpy() == g["cluster"].reindex(p["group_id_r"]).to_numpy()
    band &= ~settled_pairs(p, params.review_high, among=(band.to_numpy() & one))
    amb = p["ambiguous"].fillna(False).astype(bool) if "ambiguous" in p else False
    by_rule = p["rule"].notna() if "rule" in p else False
    keep = (p["violation"].isna() & p["decision"].isna() & ~by_rule & (band | amb)).to_numpy()
    q = p[keep].copy()
    a = g.loc[q["group_id_l"]]
    b = g.loc[q["group_id_r"]]
    q["record_id_l"], q["record_id_r"] = a["first_record"].to_numpy(), b["first_record"].to_numpy()
    q["name_l"], q["name_r"] = a["canonical"].to_numpy(), b["canonical"].to_numpy()
    q["n_records_l"], q["n_records_r"] = a["n_records"].to_numpy(), b["n_records"].to_numpy()
    q["same_cluster"] = one[keep]
    q["reason"] = np.where(band.loc[q.index], "score", "ambiguous")
    q = _smaller_record_left(q)[cols]
    if len(bare):
        seen = set(zip(q["record_id_l"], q["record_id_r"], strict=True))
        bare = bare[[(a, b) not in seen for a, b in zip(bare["record_id_l"], bare["record_id_r"], strict=True)]]
        q = pd.concat([q, bare[cols]], ignore_index=True)
    return q.sort_values(["record_id_l", "record_id_r"]).reset_index(drop=True)


def _rule_note(stats: dict) -> str:
    """``; 1,234 pairs joined by the same-trade-name-same-city rule`` (pairs Splink scored below the threshold)."""
    n = stats.get("pairs_by_rule", 0)
    return f"; {n:,} pairs joined by the same-trade-name-same-city rule" if n else ""


def _bare_note(stats: dict) -> str:
    """`` (bare-name records: 12 of 40 listed, …)`` for the resolve summary, when some are left out."""
    total, listed = stats.get("bare_name_records", 0), stats.get("bare_name_listed", 0)
    return f" (bare-name records: {listed} of {total} listed, review_bare_max_records)" if total > listed else ""


def _smaller_record_left(q: pd.DataFrame) -> pd.DataFrame:
    """Each pair with the smaller record id on the left (its name and record count move with it). Column by
    column from copies: swapping two columns of one pandas block through ``.loc`` and ``to_numpy()`` reads
    a view of the block it is writing (both columns end up equal)."""
    swap = (q["record_id_l"] > q["record_id_r"]).to_numpy()
    out = q.copy()
    for x, y in (("record_id_l", "record_id_r"), ("name_l", "name_r"), ("n_records_l", "n_records_r")):
        a, b = q[x].to_numpy(copy=True), q[y].to_numpy(copy=True)
        out[x], out[y] = np.where(swap, b, a), np.where(swap, a, b)
    return out


def bare_name_candidates(res: MatchResult, params: MasterParams, decisions: pd.DataFrame | None,
                         ) -> pd.DataFrame:
    """Pairs for stewards: a trade name written bare (no region, city or credit code: 合联电器 given by a
    caller) that the records show in two or more cities is grouped per phone (:func:`group_key`); when no
    phone ties it to one of those companies it stays a customer of its own, and its pairs with them score
    below ``review_low``, where nobody would see them. Each such record (its group alone in its customer)
    is paired with every customer holding the same trade name with a place, at most
    ``review_bare_candidates`` (most records first), leaving out pairs a steward has decided. At most
    ``review_bare_max_records`` such records are listed, those with the fewest candidates first (the
    quickest to decide; at scale 100 there are about 36,000 of them, which no steward team works through by
    hand); ``res.stats`` gets ``bare_name_records`` (all) and ``bare_name_listed``. Columns as
    :func:`review_queue`; ``match_probability`` is Splink's where the pair was scored, else empty."""
    cols = ["record_id_l", "record_id_r", "name_l", "name_r", "match_probability", "match_weight",
            "same_cluster", "n_records_l", "n_records_r", "reason"]
    r = res.records
    need = {"core", "brand", "n_city", "n_province", "city_n", "uscc_n", "n_city_c", "group_id", "cluster"}
    if r is None or r.empty or params.review_bare_candidates == 0 or need - set(r.columns):
        return pd.DataFrame(columns=cols)
    live = r[r["cluster"].notna() & r["core"].notna()]
    bare = live[_bare_multi_city(live)]
    bare = bare[bare["cluster"].map(live.groupby("cluster")["group_id"].nunique()).to_numpy() == 1]
    if bare.empty:
        return pd.DataFrame(columns=cols)
    # the customers of each such trade name with a place: representative record and group; most records first
    placed = live[_place(live).notna() & live["core"].isin(set(bare["core"]))]
    cand = placed.groupby(["core", "cluster"]).agg(record=("record_id", "min"), group_id=("group_id", "min"))
    cand = cand.reset_index().assign(n=lambda c: c["cluster"].map(live.groupby("cluster").size()))
    n_cand = cand.groupby("core").size()
    cand = cand.sort_values(["core", "n", "record"], ascending=[True, False, True])
    cand = cand.groupby("core").head(params.review_bare_candidates)
    one = bare.groupby("group_id").agg(record=("record_id", "min"), core=("core", "first"),
                                       cluster=("cluster", "first")).reset_index()
    one = one.assign(n_cand=one["core"].map(n_cand)).sort_values(["n_cand", "record"], kind="stable")
    res.stats["bare_name_records"] = len(one)
    one = one.head(params.review_bare_max_records)
    res.stats["bare_name_listed"] = len(one)
    q = one.merge(cand, on="core", suffixes=("_l", "_r"))
    q = q[q["cluster_l"] != q["cluster_r"]]
    # Splink's probability and weight where it scored the pair (either orientation), else empty
    sp = (res.pairs if res.pairs is not None else pd.DataFrame(columns=["group_id_l", "group_id_r"]))[
        ["group_id_l", "group_id_r", "match_probability", "match_weight"]]
    both = pd.concat([sp, sp.rename(columns={"group_id_l": "group_id_r", "group_id_r": "group_id_l"})])
    q = q.merge(both.drop_duplicates(["group_id_l", "group_id_r"]), on=["group_id_l", "group_id_r"], how="left")
    g = res.groups.set_index("group_id")
    out = pd.DataFrame({
        "record_id_l": q["record_l"].to_numpy(), "record_id_r": q["record_r"].to_numpy(),
        "name_l": g.loc[q["group_id_l"], "canonical"].to_numpy(), "name_r": g.loc[q["group_id_r"], "canonical"].to_numpy(),
        "match_probability": q["match_probability"].to_numpy(dtype=float),
        "match_weight": q["match_weight"].to_numpy(dtype=float), "same_cluster": False,
        "n_records_l": g.loc[q["group_id_l"], "n_records"].to_numpy(),
        "n_records_r": g.loc[q["group_id_r"], "n_records"].to_numpy(),
        "reason": "bare_name"})
    out = _smaller_record_left(out)
    if decisions is not None and len(decisions):
        decided = set(zip(decisions["record_id_l"], decisions["record_id_r"], strict=True))
        out = out[[(a, b) not in decided for a, b in zip(out["record_id_l"], out["record_id_r"], strict=True)]]
    return out.drop_duplicates(["record_id_l", "record_id_r"]).reset_index(drop=True)


def resolve_db(db: str | Path | None = None, params: MasterParams | None = None,
               progress: bool | None = None, retrain: bool = False) -> ResolveSummary:
    """``crm resolve``: build the master inside the database in one transaction."""
    progress = sys.stderr.isatty() if progress is None else progress
    path = Path(db) if db else paths.db_path()
    if not path.exists():
        raise UserError("database not found", file=str(path), hint="run `crm load` first, or check --db")
    with dbmod.writer(db) as con:
        return resolve(con, params, progress=progress, retrain=retrain)
