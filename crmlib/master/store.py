"""What a resolve keeps in the database besides the master: stable customer ids, golden-record SQL, the
Splink model and the name-parse cache."""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import pandas as pd

from .. import db as dbmod
from .. import names as nm
from . import engine, features
from .features import _BOOL_FEATURES, _FEATURE_COLUMNS
from .params import MasterParams

# stable customer ids
# ------------------------------------------------------------------------------------------------------

def assign_ids(clusters: pd.DataFrame, old_map: pd.DataFrame | None) -> dict:
    """Customer id per cluster label, stable across runs.

    ``clusters``: record_id, cluster (junk rows excluded). ``old_map``: record_id, customer_id from earlier
    runs. A cluster takes the id most of its already-known records had (ties: smallest id); when two clusters
    claim one id (a customer split), the cluster holding more of its records keeps it (ties: the cluster with
    the smallest record_id), the other tries its next candidate. Clusters left over get new numbers after the
    largest id ever issued, in order of their smallest record_id. Ids are never reused.
    """
    # counted and sorted in DuckDB: a million records with a million earlier ids at scale 100
    con = duckdb.connect()
    try:
        con.register("_c", clusters[["record_id", "cluster"]])
        first = con.execute("SELECT cluster, min(record_id) AS first FROM _c GROUP BY cluster ORDER BY first").df()
        order = first["cluster"].to_numpy(dtype=object)
        if old_map is None or old_map.empty:
            return {c: f"C{i + 1:06d}" for i, c in enumerate(order)}
        con.register("_o", old_map[["record_id", "customer_id"]])
        # candidates per cluster in preference order; claims settled strongest first
        votes = con.execute("""
            SELECT c.cluster, o.customer_id, count(*) AS n, min(f.first) AS first
            FROM _c c JOIN _o o USING (record_id)
                 JOIN (SELECT cluster, min(record_id) AS first FROM _c GROUP BY cluster) f USING (cluster)
            GROUP BY c.cluster, o.customer_id ORDER BY n DESC, o.customer_id, first""").df()
        top = con.execute("SELECT max(CAST(substr(customer_id, 2) AS BIGINT)) FROM _o "
                          "WHERE customer_id IS NOT NULL").fetchall()[0][0]
    finally:
        con.close()
    out: dict = {}
    taken: set[str] = set()
    for cl, cid in zip(votes["cluster"].to_numpy(dtype=object), votes["customer_id"].to_numpy(dtype=object),
                       strict=True):
        if cl in out or cid in taken:
            continue
        out[cl] = cid
        taken.add(cid)
    nxt = int(top) + 1 if top is not None else 1
    for c in order:
        if c not in out:
            out[c] = f"C{nxt:06d}"
            nxt += 1
    return out


# ------------------------------------------------------------------------------------------------------
# golden records, review queue, evidence
# ------------------------------------------------------------------------------------------------------

_GOLDEN_FIELDS = ["uscc", "industry", "province", "city", "address", "phone"]
_CRM_FIELDS = ["scope", "region", "size", "registered_capital", "listed", "owner_rep_id"]


def golden_sql(trust: list[str]) -> str:
    """Golden record per customer from ``_xrec`` (records with customer_id, canonical, completeness).

    Survivorship per field: most trusted source, then most recent record_date (blank last), then most
    complete record, then smallest record_id."""
    rank = "CASE source " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(trust)) + f" ELSE {len(trust)} END"
    order = f"{rank}, record_date DESC NULLS LAST, completeness DESC, record_id"

    def pick(expr: str, alias: str, unit: bool = False) -> str:
        # identity fields come from names that state their unit: a bare name (北京中国移动) is ambiguous
        o = f"bare, {order}" if unit else order
        return f"first({expr} ORDER BY {o}) FILTER (WHERE {expr} IS NOT NULL) AS {alias}"

    fields = ",\n".join(pick(f, f) for f in _GOLDEN_FIELDS + _CRM_FIELDS + ["rep_id"])
    src_list = "list_sort(list(DISTINCT source))"
    return f"""
        SELECT customer_id, {pick('canonical', 'name', True)}, {fields},
               count(*) AS n_records, array_to_string({src_list}, ',') AS sources,
               min(record_date) AS first_seen, max(record_date) AS last_seen,
               {pick('brand', 'brand', True)}, {pick('n_city', 'name_city', True)},
               {pick('n_province', 'name_province', True)}, {pick('branch_level', 'branch_level', True)},
               {pick('branch_name', 'branch_name', True)},
               bool_or(coalesce(hier, false)) AS hier
        FROM _xrec WHERE customer_id IS NOT NULL GROUP BY customer_id
    """


def model_weights(model: dict) -> pd.DataFrame:
    """Match weight per comparison level of a trained Splink model (gamma numbering as in predictions)."""
    rows = []
    for comp in model.get("comparisons", []):
        name = comp.get("output_column_name")
        levels = comp.get("comparison_levels", [])
        non_null = [lv for lv in levels if not lv.get("is_null_level")]
        for lv in levels:
            if lv.get("is_null_level"):
                rows.append({"comparison": name, "gamma": -1, "label": lv.get("label_for_charts"),
                             "m": None, "u": None, "weight": 0.0})
                continue
            gamma = len(non_null) - 1 - non_null.index(lv)
            m, u = lv.get("m_probability"), lv.get("u_probability")
            w = math.log2(m / u) if m and u else 0.0
            rows.append({"comparison": name, "gamma": gamma, "label": lv.get("label_for_charts"),
                         "m": m, "u": u, "weight": w})
    prior = model.get("probability_two_random_records_match", 1e-4)
    rows.append({"comparison": "prior", "gamma": 0, "label": "prior", "m": None, "u": None,
                 "weight": math.log2(prior / (1 - prior))})
    return pd.DataFrame(rows)


def _write_df(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, order: str) -> None:
    con.register("_w", df)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _w ORDER BY {order}")
    finally:
        con.unregister("_w")


NAME_CACHE_TABLE = "customer_name_parse"


def name_cache_key(params: MasterParams) -> str:
    """Fingerprint of everything a name's features depend on: the code of the parser (crmlib/names.py) and
    of the feature extraction (crmlib/master/features.py, with its word lists), the region table, the
    naming-rule dictionary and the hierarchy sectors. A cached parse is reused only under the same key."""
    import hashlib

    h = hashlib.sha256()
    for path in (Path(nm.__file__), Path(features.__file__), nm._DATA / "regions.csv",
                 nm.aliases_path()):
        h.update(path.read_bytes() if path.exists() else b"-")
    h.update(repr(sorted(params.hierarchy_sectors)).encode())
    return h.hexdigest()[:16]


def read_name_cache(con: duckdb.DuckDBPyConnection, key: str) -> pd.DataFrame | None:
    """Name features kept by the last resolve of this database under the same parser (else None)."""
    if set(_FEATURE_COLUMNS) - dbmod.columns(con, NAME_CACHE_TABLE):  # missing, or an older layout
        return None
    cols = ", ".join(_FEATURE_COLUMNS)
    df = con.execute(f"SELECT {cols} FROM {NAME_CACHE_TABLE} WHERE parser = ? ORDER BY name_raw", [key]).df()
    if df.empty:
        return None
    for c in _BOOL_FEATURES:
        df[c] = df[c].fillna(False).astype(bool)
    for c in df.columns:
        if df[c].dtype != bool:  # NULL -> None, as a fresh parse gives
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def write_name_cache(con: duckdb.DuckDBPyConnection, feats: pd.DataFrame | None, key: str) -> None:
    """Keep this run's name features (one row per distinct raw name) so the next run parses only new names."""
    if feats is None:
        return
    f = feats[feats["name_raw"].notna()][_FEATURE_COLUMNS].assign(parser=key)
    _write_df(con, NAME_CACHE_TABLE, f, "name_raw")


MODEL_TABLE = "customer_match_model_json"
_TRAINING_PARAMS = ("seed", "u_max_pairs", "em_max_pairs", "em_min_groups", "min_m_probability",
                    "prior_rules_recall", "name_similarity_levels", "max_values_per_group", "contact_phones")


def model_key(params: MasterParams, parser_key: str | None = None) -> str:
    """Fingerprint of what a trained model depends on besides the data: the parser and the feature extraction
    (:func:`name_cache_key`, or ``parser_key`` when the caller has it already), the engine (name groups,
    comparisons, priors, training: crmlib/master/engine.py) and the training parameters."""
    import hashlib

    train = {k: getattr(params, k) for k in _TRAINING_PARAMS}
    parser_key = parser_key or name_cache_key(params)
    h = hashlib.sha256((parser_key + json.dumps(train, sort_keys=True)).encode())
    h.update(Path(engine.__file__).read_bytes())
    return h.hexdigest()[:16]


def read_model(con: duckdb.DuckDBPyConnection, params: MasterParams, retrain: bool = False,
               now: dt.datetime | None = None, records: int | None = None,
               key: str | None = None) -> tuple[dict | None, str]:
    """The Splink model an earlier resolve trained, when it may be used again, and a note saying why or why not.

    Training again on every run moves the weights a little with every change of the data (u from a random
    sample of pairs, m by EM), and the pairs near the threshold and in the review band follow them: at scale
    100 the queue held 462 to 2,372 pairs for three seeds of one database (benchmarks/resolve_scale100.md).
    So a model is kept for ``model_max_age_days`` (0: train every run), unless ``retrain``, the parser,
    engine or training parameters changed (:func:`model_key`), or the number of customer ``records`` moved by
    more than ``model_max_growth`` (a share) since it was trained (a first resolve of a partial load must not
    decide the weights for the full one). ``key``: :func:`model_key` of ``params``, when the caller has it."""
    if retrain:
        return None, "trained (--retrain)"
    if params.model_max_age_days == 0:
        return None, "trained (model_max_age_days: 0)"
    if not {"key", "trained_at", "model", "records"} <= dbmod.columns(con, MODEL_TABLE):  # none, or an older layout
        return None, "trained (first run)"
    rows = con.execute(f"SELECT key, trained_at, model, records FROM {MODEL_TABLE} "
                       "ORDER BY trained_at DESC LIMIT 1").fetchall()
    if not rows:
        return None, "trained (first run)"
    stored_key, trained_at, model, then = rows[0]
    if stored_key != (key or model_key(params)):
        return None, "trained (parser, engine or training parameters changed)"
    age = ((now or dt.datetime.now()) - trained_at).days
    if age > params.model_max_age_days:
        return None, f"trained (the last model was {age} days old, model_max_age_days {params.model_max_age_days})"
    if records is not None and then and abs(records - then) > params.model_max_growth * then:
        return None, (f"trained (the last model saw {then:,} records, now {records:,}: more than "
                      f"model_max_growth {params.model_max_growth:.0%} apart)")
    return json.loads(model), f"reused (trained {trained_at:%Y-%m-%d %H:%M})"


def write_model(con: duckdb.DuckDBPyConnection, model: dict, params: MasterParams, records: int,
                now: dt.datetime | None = None, key: str | None = None) -> None:
    """Keep the model this run trained on ``records`` customer records (one row) for the next runs
    (:func:`read_model`)."""
    con.execute(f"CREATE OR REPLACE TABLE {MODEL_TABLE} (key VARCHAR, trained_at TIMESTAMP, records BIGINT, "
                "model VARCHAR)")
    con.execute(f"INSERT INTO {MODEL_TABLE} VALUES (?, ?, ?, ?)",
                [key or model_key(params), now or dt.datetime.now(), int(records),
                 json.dumps(model, ensure_ascii=False)])
