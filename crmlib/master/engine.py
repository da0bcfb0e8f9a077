"""The matching engine: name groups (records with one normalised key) and Splink scoring their blocked pairs,
with m/u trained without labels."""
from __future__ import annotations

import logging

import duckdb
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .features import _bigrams, group_key
from .params import COMPARISONS, MasterParams

log = logging.getLogger("crm.master")


# ------------------------------------------------------------------------------------------------------
# the matching engine
# ------------------------------------------------------------------------------------------------------

# a name group's `unit` (for the branch hard rule) is a firm ``level|branch|district`` as written, or one of:
LOCAL_UNIT = "~local"   # a unit in the named region, level unknown: any unit but the head office
BARE_PREFIX = "~bare:"  # + the unit the name reads as: that unit, or the head office written with its home city
HEAD_UNIT = "head||"


def build_groups(recs: pd.DataFrame, params: MasterParams, key: pd.Series | None = None) -> pd.DataFrame:
    """Aggregate non-junk records into name groups with the evidence Splink compares.

    ``key`` (per record) overrides :func:`group_key` (match_records passes the keys it already computed; the
    benchmark's plain-Splink baseline groups raw
    strings)."""
    live = recs[~recs["is_junk"]].copy()
    if live.empty:
        return pd.DataFrame(columns=["group_id", "gkey"])
    live["gkey"] = group_key(live, params) if key is None else key[~recs["is_junk"]]
    k = params.max_values_per_group
    more_phones = "phones_more_n" in live and live["phones_more_n"].notna().any()
    con = duckdb.connect()
    try:
        con.register("live", live[["gkey", "record_id", "canonical", "core", "brand", "hier", "ambiguous", "bare", "local", "cleaned", "n_province",
                                   "n_city_c", "n_district", "branch_level", "branch_name", "uscc_n", "phone_n",
                                   "contact_n", "city_n", "address_n", "match_key"]
                                  + (["phones_more_n"] if more_phones else [])])
        g = con.execute("""
            SELECT gkey, min(record_id) AS first_record, count(*) AS n_records,
                   mode(canonical ORDER BY canonical) AS canonical, min(core) AS core, min(brand) AS brand,
                   bool_or(hier) AS hier, min(match_key) AS match_key, bool_or(ambiguous) AS ambiguous,
                   bool_and(bare) AS bare, bool_and(local) AS local, mode(cleaned ORDER BY cleaned) AS written,
                   min(n_province) AS n_province, min(n_city_c) AS n_city, min(n_district) AS n_district,
                   min(branch_level) AS branch_level, min(branch_name) AS branch_name,
                   mode(address_n ORDER BY address_n) AS address
            FROM live GROUP BY gkey ORDER BY gkey
        """).df()
        # the k most frequent distinct values of each evidence field per group (ties: smallest value)
        # side phones (a CRM account's contacts) count as phone evidence of the group, once each
        more = ("\n                UNION ALL SELECT gkey, 'phone', unnest(phones_more_n) FROM live "
                "WHERE phones_more_n IS NOT NULL") if more_phones else ""
        vals = con.sql(f"""
            WITH v AS (
                SELECT gkey, 'uscc' AS f, uscc_n AS v FROM live WHERE uscc_n IS NOT NULL
                UNION ALL SELECT gkey, 'phone', phone_n FROM live WHERE phone_n IS NOT NULL{more}
                UNION ALL SELECT gkey, 'contact', contact_n FROM live WHERE contact_n IS NOT NULL
                UNION ALL SELECT gkey, 'city', city_n FROM live WHERE city_n IS NOT NULL
            ), c AS (SELECT gkey, f, v, count(*) AS n FROM v GROUP BY gkey, f, v)
            SELECT gkey, f, list_sort(list(v)) AS vals FROM (
                SELECT *, row_number() OVER (PARTITION BY gkey, f ORDER BY n DESC, v) AS rn FROM c
            ) WHERE rn <= {int(k)} GROUP BY gkey, f ORDER BY gkey, f
        """).to_arrow_table()
    finally:
        con.close()
    # plain objects (None for NULL): the list comprehensions below iterate them, and pandas' Arrow strings
    # are slow to iterate one by one at scale 100
    for c in g.columns:
        if g[c].dtype != bool and not pd.api.types.is_numeric_dtype(g[c]):
            g[c] = g[c].astype(object).where(g[c].notna(), None)
    maps: dict[str, dict] = {c: {} for c in ["uscc", "phone", "contact", "city"]}
    for gk, f, v in zip(vals.column("gkey").to_pylist(), vals.column("f").to_pylist(),
                        vals.column("vals").to_pylist(), strict=True):
        maps[f][gk] = v
    gkeys = g["gkey"].to_numpy(dtype=object)
    for c, m in maps.items():
        g[c] = pd.Series([m.get(x) for x in gkeys], index=g.index, dtype=object)
    # the name's own city counts as city evidence too
    g["city"] = [sorted(set((c or []) + ([nc] if isinstance(nc, str) else []))) or None
                 for c, nc in zip(g["city"], g["n_city"], strict=False)]
    g.insert(0, "group_id", np.arange(len(g), dtype=np.int64))
    g["core_bigrams"] = [_bigrams(c) for c in g["core"]]
    g["address_bigrams"] = [_bigrams(a) for a in g["address"]]
    g["core_p2"] = [c[:2] if isinstance(c, str) and len(c) >= 2 else None for c in g["core"]]
    # the core without its first / without its second character: one mistyped character in the trade name
    # (伟捷智能科技 / 韦捷智能科技, 凯龙电脑 / 凯笼电脑) still meets its partner in a small block
    g["core_c1"] = [c[1:] if isinstance(c, str) and len(c) >= 3 else None for c in g["core"]]
    g["core_c02"] = [c[0] + c[2:] if isinstance(c, str) and len(c) >= 3 else None for c in g["core"]]
    # the core without a 2-4 character head: a misspelt region written in front (宝定中曦运输 / 中曦运输) left in
    # the core still meets the plain core
    for k in _TAIL_CUTS:
        g[f"core_t{k}"] = [c[k:] if isinstance(c, str) and len(c) - k >= 2 else None for c in g["core"]]
    g["city_b"] = [nc if isinstance(nc, str) else (c[0] if c else None) for nc, c in zip(g["n_city"], g["city"], strict=False)]
    g["phone_1"] = [p[0] if p else None for p in g["phone"]]
    g["uscc_1"] = [u[0] if u else None for u in g["uscc"]]
    # 江西省烟草专卖局 vs 南昌市烟草专卖局, 浙江华远 vs 杭州华远: a province-level and a city-level name are two
    # organisations (bare branch-type names excepted: their region may be the head office's home city)
    g["region_level"] = [None if (bare or isinstance(b, str)) else
                         ("city" if isinstance(c, str) else "province" if isinstance(p, str) else None)
                         for c, p, bare, b in zip(g["n_city"], g["n_province"], g["bare"], g["brand"], strict=True)]
    # organisation unit for the branch hard rule (dictionary brands, or any name with a branch word):
    # level + branch + district as written; a head office and its branches are different units
    firm = [
        f"{bl if isinstance(bl, str) else 'main'}|{bn if isinstance(bn, str) else ''}|{di if isinstance(di, str) else ''}"
        if (isinstance(b, str) or isinstance(bl, str)) else None
        for b, bl, bn, di in zip(g["brand"], g["branch_level"], g["branch_name"], g["n_district"], strict=True)]
    g["unit"] = [BARE_PREFIX + (f or "") if bare else LOCAL_UNIT if local else f
                 for f, bare, local in zip(firm, g["bare"], g["local"], strict=True)]
    return g


_TAIL_CUTS = (2, 3, 4)  # region lengths (宜昌, 石家庄, 乌鲁木齐) cut from the head of a core for blocking


def _jaccard_sql(col: str) -> str:
    inter = f"len(list_intersect({col}_l, {col}_r))"
    return f"({inter} / greatest(len({col}_l) + len({col}_r) - {inter}, 1))"


# Prior m / u per comparison level (m: chance the level is seen on a true match; u: on two different
# customers). Used where the data cannot train a value (small lists, no EM); on larger inputs u is counted
# over all pairs for the rare levels (_exact_u), estimated by random sampling for the others, and m by EM.
# Order = the levels below, null level excluded. A third element True fixes u: person names and addresses
# collide between different organisations far more often than random pairs suggest (common names; one
# office building, many tenants), so their evidence is capped.
_PRIOR_MU = {
    "name": [(0.5, 1e-5), (0.25, 3e-5), (0.05, 1e-4), (0.1, 1e-4), (0.06, 5e-4), (0.03, 2e-3), (0.04, 2e-4),
             (0.02, 1e-2), (0.04, 0.99)],
    "uscc": [(0.9, 1e-6), (0.1, 1.0)],
    "phone": [(0.6, 1e-5), (0.4, 1.0)],
    "contact": [(0.4, 0.02, True), (0.6, 0.98)],
    "city": [(0.95, 0.05), (0.05, 0.95)],
    "address": [(0.5, 0.005, True), (0.3, 0.01, True), (0.2, 1.0)],
}


_CORE_SIM = "core_sim(core_l, core_r)"
_EXACT_NAME_LEVELS = 6  # the first levels of _name_levels, whose pairs _exact_u can list


def _name_levels(params: MasterParams) -> list[tuple[str, str]]:
    """The name comparison's levels, strongest first: (SQL over ``<column>_l`` / ``<column>_r`` with ``{sim}``
    for the cores' similarity, label). Names are compared by per-character similarity (core_sim, rapidfuzz,
    registered by _engine_connection) of the core and by whether the trade name (字号, the first two characters
    of the core) agrees: 远锐电子科技集团 and 鑫辰电子科技集团 are similar strings but two companies. The first
    ``_EXACT_NAME_LEVELS`` need the names equal, one character apart or the same trade name."""
    t1, t2, t3 = params.name_similarity_levels
    same_tn = "core_p2_l = core_p2_r"
    # one mistyped character anywhere (有很公司, 营亚部) can break parsing: compare as written
    one_typo = ("length(written_l) = length(written_r) AND "
                "core_sim(written_l, written_r) >= 1 - 1.0 / length(written_l) - 1e-9")
    return [("canonical_l = canonical_r", "canonical name equal"),
            ("core_l = core_r", "name core equal"),
            (one_typo, "written names differ by one character"),
            (f"{{sim}} >= {t1} AND {same_tn}", f"similarity >= {t1}, same trade name"),
            (f"{{sim}} >= {t2} AND {same_tn}", f"similarity >= {t2}, same trade name"),
            (f"{{sim}} >= {t3} AND {same_tn}", f"similarity >= {t3}, same trade name"),
            (f"{{sim}} >= {t1}", f"similarity >= {t1}, other trade name"),
            (f"{{sim}} >= {t3}", f"similarity >= {t3}, other trade name")]


def _exact_u(con: duckdb.DuckDBPyConnection, params: MasterParams) -> dict[str, dict[int, float]]:
    """u of the rare levels, counted over every pair of name groups in ``splink_groups`` instead of estimated
    from random pairs: {comparison: {comparison vector value: u}}.

    The name levels that need the names equal, one character apart or the same trade name, a shared credit code
    and a shared phone are met by none to a handful of Splink's 500k random pairs (at scale 100: 2-7 pairs, or
    none, and then the prior stays), so their weights moved by 1-10 bits from one sample to the next, some
    stronger evidence weighed less than weaker, and the review queue jumped with each training (659-2,854 score
    pairs for two seeds of one database). The pairs that can reach these levels are few enough to list (the same
    two-character trade name; written names one deletion apart; a shared code or phone), so counting them gives
    the value random sampling estimates, without its noise. Both count pairs of one customer too, as u by
    random sampling does."""
    levels = _name_levels(params)
    n_levels = len(levels)
    case = " ".join(f"WHEN {cond.format(sim='_sim')} THEN {n_levels - k}"
                    for k, (cond, _) in enumerate(levels[:_EXACT_NAME_LEVELS]))
    side = ", ".join(f"{s}.{c} AS {c}_{s}" for s in ("l", "r") for c in ("canonical", "core", "written", "core_p2"))
    counts = dict(con.execute(f"""
        WITH g AS (SELECT group_id, canonical, core, written, core_p2 FROM splink_groups WHERE core IS NOT NULL),
        -- names of one length one deletion apart (a deletion of each shares a key): one character changed or moved
        del AS (SELECT group_id, length(written) AS n, written[:i - 1] || written[i + 1:] AS k
                FROM g, range(1, length(written) + 1) AS t(i)),
        near AS (SELECT DISTINCT a.group_id AS gl, b.group_id AS gr
                 FROM del a JOIN del b ON a.k = b.k AND a.n = b.n AND a.group_id < b.group_id),
        pairs AS (SELECT {side} FROM g l JOIN g r ON l.core_p2 = r.core_p2 AND l.group_id < r.group_id
                  UNION ALL
                  SELECT {side} FROM near JOIN g l ON l.group_id = near.gl JOIN g r ON r.group_id = near.gr
                  WHERE l.core_p2 IS DISTINCT FROM r.core_p2)
        SELECT lvl, count(*) FROM (
            SELECT CASE {case} ELSE 0 END AS lvl FROM (SELECT *, {_CORE_SIM} AS _sim FROM pairs))
        WHERE lvl > 0 GROUP BY lvl""").fetchall())
    n = con.execute("SELECT count(*) FROM splink_groups WHERE core IS NOT NULL").fetchall()[0][0]
    # a level no pair reaches gets half a pair's worth, not 0 (a zero u makes its weight infinite)
    out = {"name": {n_levels - k: max(counts.get(n_levels - k, 0), 0.5) / max(n * (n - 1) / 2, 1)
                    for k in range(_EXACT_NAME_LEVELS)}}
    for col in ("uscc", "phone"):
        shared, n = con.execute(f"""
            WITH v AS (SELECT group_id, unnest({col}) AS v FROM splink_groups WHERE {col} IS NOT NULL)
            SELECT (SELECT count(*) FROM (SELECT DISTINCT a.group_id, b.group_id FROM v a JOIN v b
                                          ON a.v = b.v AND a.group_id < b.group_id)),
                   (SELECT count(*) FROM splink_groups WHERE {col} IS NOT NULL)""").fetchall()[0]
        out[col] = {1: max(shared, 0.5) / max(n * (n - 1) / 2, 1)}
    return out


def _set_exact_u(linker, exact: dict[str, dict[int, float]]) -> None:
    """Put the counted u (_exact_u) in place of the sampled ones."""
    for comparison in linker._settings_obj.comparisons:
        for level in comparison._comparison_levels_excluding_null:
            u = exact.get(comparison.output_column_name, {}).get(level.comparison_vector_value)
            if u is None:
                continue
            level._trained_u_probabilities = [
                {"probability": u, "description": "counted over all pairs", "m_or_u": "u"}]
            level.u_probability = u


def _floor_m(linker, floor: float) -> None:
    """Every level's m at least ``floor``, each comparison's m summing to 1 again. EM drives the m of a level
    few true matches show to about 0, which makes its weight about -200 bits: a veto no other evidence can
    outweigh (similar, not equal, addresses on the default demo; 5 of 522 true pairs with two addresses)."""
    for comparison in linker._settings_obj.comparisons:
        levels = comparison._comparison_levels_excluding_null
        ms = [lv.m_probability for lv in levels]
        if floor <= 0 or any(m is None for m in ms) or min(ms) >= floor:
            continue
        raised = [max(m, floor) for m in ms]
        total = sum(raised)
        for lv, m in zip(levels, raised, strict=True):
            lv.m_probability = m / total


def splink_settings(params: MasterParams):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on
    from splink.blocking_rule_library import CustomRule

    def levels(name, lvls):
        out = [lvls[0]]
        for lv, prior in zip(lvls[1:], _PRIOR_MU[name], strict=True):
            m, u, *fix = prior
            out.append(lv.configure(m_probability=m, u_probability=u, fix_u_probability=bool(fix and fix[0])))
        return out

    name_levels = [cll.NullLevel("core"),
                   *[cll.CustomLevel(cond.format(sim=_CORE_SIM), label) for cond, label in _name_levels(params)],
                   cll.ElseLevel()]

    def array_cmp(col: str, label: str):
        return cl.CustomComparison(output_column_name=col, comparison_levels=levels(col, [
            cll.NullLevel(col),
            cll.CustomLevel(f"len(list_intersect({col}_l, {col}_r)) >= 1", f"{label} shared"),
            cll.ElseLevel()]))

    addr = _jaccard_sql("address_bigrams")
    comparisons = [
        cl.CustomComparison(output_column_name="name", comparison_levels=levels("name", name_levels)),
        array_cmp("uscc", "credit code"),
        array_cmp("phone", "phone"),
        array_cmp("contact", "contact"),
        array_cmp("city", "city"),
        cl.CustomComparison(output_column_name="address", comparison_levels=levels("address", [
            cll.NullLevel("address"),
            cll.CustomLevel("address_l = address_r", "address equal"),
            cll.CustomLevel(f"{addr} >= 0.6", "address bigram Jaccard >= 0.6"),
            cll.ElseLevel()])),
    ]
    blocking = [
        block_on("match_key"),
        block_on("uscc_x", arrays_to_explode=["uscc_x"]),
        block_on("phone_x", arrays_to_explode=["phone_x"]),
        CustomRule("l.brand = r.brand AND l.city_b = r.city_b"),
        CustomRule("l.core = r.core AND l.brand IS NULL"),
        block_on("core_p2", "city_b"),
        # A block on the last two characters + city alone (科技|成都) grows with the square of the customers
        # per city: 73M pairs at scale 100 for ~0.1% true matches. The typos it was there for are caught by
        # the core minus its first or second character; a core written at the end of a longer one (三峡大学 /
        # 宜昌三峡大学, a misspelt region in front) by the longer core minus its head (equality joins only).
        block_on("core_c1", "city_b"),
        block_on("core_c02", "city_b"),
        *[CustomRule(f"{a}.core_t{k} = {b}.core AND l.city_b = r.city_b")
          for k in _TAIL_CUTS for a, b in (("l", "r"), ("r", "l"))],
    ]
    return SettingsCreator(
        link_type="dedupe_only", unique_id_column_name="group_id", comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking, retain_matching_columns=False,
        retain_intermediate_calculation_columns=True, probability_two_random_records_match=1e-4,
        additional_columns_to_retain=[],
    )


def _register_core_sim(con: duckdb.DuckDBPyConnection) -> None:
    """``core_sim(a, b)``: per-character Indel similarity in [0, 1] (DuckDB's own distances count UTF-8
    bytes). Vectorised with rapidfuzz's cpdist: one C++ call per batch, not one Python call per pair, which
    is what keeps Splink's predict fast on millions of pairs (names.register_duckdb_functions loops in
    Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from duckdb.sqltypes import DOUBLE, VARCHAR
    from rapidfuzz import fuzz, process

    def core_sim(a, b):
        mask = pc.or_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
        sims = process.cpdist(pc.fill_null(a, "").to_pylist(), pc.fill_null(b, "").to_pylist(),
                              scorer=fuzz.ratio, workers=1)
        return pa.array(np.asarray(sims, dtype=np.float64) / 100.0, mask=mask)

    con.create_function("core_sim", core_sim, [VARCHAR, VARCHAR], DOUBLE, type="arrow")


def _engine_connection(params: MasterParams) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    _register_core_sim(con)
    con.execute(f"SET threads = {int(params.threads)}")
    con.execute(f"SET memory_limit = '{params.memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _register_groups(con: duckdb.DuckDBPyConnection, groups: pd.DataFrame) -> None:
    """The name groups as Splink reads them: table ``splink_groups`` of the engine connection."""
    cols = ["group_id", "canonical", "core", "written", "core_bigrams", "brand", "match_key", "uscc", "phone", "contact",
            "city", "address", "address_bigrams", "core_p2", "core_c1", "core_c02",
            *[f"core_t{k}" for k in _TAIL_CUTS], "city_b", "phone_1", "uscc_1"]
    inp = groups[cols].copy()
    inp["uscc_x"] = inp["uscc"]
    inp["phone_x"] = inp["phone"]
    con.register("_groups_df", inp)
    con.execute("CREATE OR REPLACE TABLE splink_groups AS SELECT * FROM _groups_df ORDER BY group_id")
    con.unregister("_groups_df")


def score_groups(groups: pd.DataFrame, params: MasterParams, con: duckdb.DuckDBPyConnection | None = None,
                 progress: bool = True, stats: dict | None = None,
                 model: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Train the Splink model without labels and score blocked pairs of name groups.

    Returns (pairs with group_id_l/r, gamma_* , match_weight, match_probability for pairs at or above
    ``review_low``, the trained model as a dict). ``stats`` (optional) receives seconds per step."""
    import time

    from splink import DuckDBAPI, Linker, block_on

    stats = {} if stats is None else stats
    clock = [time.perf_counter()]

    def lap(key: str) -> None:
        now = time.perf_counter()
        stats[key] = round(now - clock[0], 1)
        clock[0] = now

    own = con is None
    con = con or _engine_connection(params)
    _register_groups(con, groups)
    logging.getLogger("splink").setLevel(logging.ERROR)
    db_api = DuckDBAPI(con)
    sdf = db_api.register("splink_groups")
    # a model trained by an earlier resolve (``model``) is used as it is: no training
    linker = Linker(sdf, model if model is not None else splink_settings(params), log_level=None)
    n = len(groups)
    steps = tqdm(total=4, desc="splink", disable=not progress)
    if model is not None:
        steps.update(2)
    elif n >= 2:
        from splink.blocking_rule_library import CustomRule

        # prior chance two name groups are one customer, from near-certain rules (a shared credit code; a
        # shared phone with similar names; near-identical names in one city) whose recall is guessed
        settings = linker._settings_obj
        try:
            linker.training.estimate_probability_two_random_records_match(
                [block_on("uscc_x", arrays_to_explode=["uscc_x"]),
                 CustomRule("l.phone_1 = r.phone_1 AND core_sim(l.core, r.core) >= 0.55"),
                 CustomRule("l.core_p2 = r.core_p2 AND l.city_b = r.city_b AND core_sim(l.core, r.core) >= 0.85")],
                recall=params.prior_rules_recall)
        except Exception as exc:  # e.g. rules more matches than the recall allows on a tiny list
            log.info("prior not estimated: %s", exc)
        lam = settings._probability_two_random_records_match
        if not 0 < lam < 0.5:
            # no near-certain pair at all: assume each group has about one partner
            settings._probability_two_random_records_match = min(0.5, 1.0 / n)
        lap("seconds_splink_prior")
        if n >= params.em_min_groups:
            # on a short list random pairs are too often true matches to estimate u: keep the priors
            linker.training.estimate_u_using_random_sampling(
                max_pairs=min(params.u_max_pairs, n * (n - 1) / 2), seed=params.seed)
            _set_exact_u(linker, _exact_u(con, params))
        lap("seconds_splink_u")
        steps.update()
        if n >= params.em_min_groups:
            for rule in (block_on("core_p2"), block_on("city_b", "phone_1")):
                try:
                    linker.training.estimate_parameters_using_expectation_maximisation(
                        rule, max_pairs=params.em_max_pairs)
                except Exception as exc:  # too few pairs for this rule: keep the priors / other session
                    log.info("EM session skipped (%s): %s", rule, exc)
            _floor_m(linker, params.min_m_probability)
        lap("seconds_splink_em")
        steps.update()
    # predict_chunks > 1: Splink blocks and scores one slice of the left-hand groups at a time (the same
    # pairs, fewer held in memory at once)
    chunks = {} if params.predict_chunks <= 1 else {"num_chunks_left": params.predict_chunks, "num_chunks_right": 1}
    pred = linker.inference.predict(threshold_match_probability=min(params.review_low, params.threshold),
                                    warning_mode="never", **chunks)
    steps.update()
    mw_cols = [f"mw_{c}" for c in COMPARISONS]
    pairs = con.execute(f"""
        SELECT group_id_l, group_id_r, {', '.join(mw_cols)}, match_weight, match_probability
        FROM {pred.physical_name} ORDER BY group_id_l, group_id_r""").df()
    model = model if model is not None else linker.misc.save_model_to_json()
    lap("seconds_splink_predict")
    steps.update()
    steps.close()
    if own:
        con.close()
    return pairs, model
