"""``match_records``: records → name groups → scored pairs → clusters, in memory (no database)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .clusters import (
    TRADE_NAME_CITY,
    _add_rule_pairs,
    _rule_strength,
    _vector_violations,
    cluster_groups,
    trade_name_city_pairs,
)
from .engine import _engine_connection, build_groups, score_groups
from .features import group_key, prepare_records
from .params import MasterParams


@dataclass
class MatchResult:
    records: pd.DataFrame      # record_id, group_id, cluster (int, NaN for junk), match_probability + features
    groups: pd.DataFrame       # one row per name group (Splink input)
    pairs: pd.DataFrame        # scored group pairs (>= review_low) with gammas, probability, hard-rule flag
    model: dict                # Splink model (settings with trained m/u)
    stats: dict = field(default_factory=dict)
    names: pd.DataFrame | None = None  # name features per distinct raw name (the parse cache's rows)
def match_records(records: pd.DataFrame, params: MasterParams, decisions: pd.DataFrame | None = None,
                  progress: bool = True, known_names: pd.DataFrame | None = None,
                  model: dict | None = None) -> MatchResult:
    """The engine shared by ``crm resolve`` and ``crm dedup``: records in, clusters out.

    ``records`` needs ``record_id`` and ``name_raw``; ``uscc, phone, contact_name, city, address`` are used
    when present. ``match_probability`` of a record is the strongest accepted edge joining its name group to
    the rest of its cluster (1.0 when the group is the whole cluster: the name key alone decides it).
    """
    import time

    clock = [time.perf_counter()]

    def lap() -> float:
        now = time.perf_counter()
        dt_, clock[0] = now - clock[0], now
        return round(dt_, 1)

    recs, feats = prepare_records(records, params, known_names)
    t_names = lap()
    live = ~recs["is_junk"]
    recs["gkey"] = None
    recs.loc[live, "gkey"] = group_key(recs[live], params)
    groups = build_groups(recs, params, key=recs["gkey"])
    recs["group_id"] = recs["gkey"].map(pd.Series(groups["group_id"].to_numpy(), index=groups["gkey"].to_numpy()))
    stats: dict[str, Any] = {"records": len(recs), "junk": int((~live).sum()), "groups": len(groups),
                             "seconds_names": t_names, "seconds_groups": lap()}
    if len(groups) == 0:
        recs["cluster"] = None
        recs["match_probability"] = np.nan
        return MatchResult(recs, groups, pd.DataFrame(), {}, stats, feats)
    con = _engine_connection(params)
    try:
        stats["model"] = "reused" if model is not None else "trained"
        pairs, model = score_groups(groups, params, con=con, progress=progress, stats=stats, model=model)
        stats["seconds_splink"] = lap()
        stats["pairs_scored"] = len(pairs)   # by Splink (rule pairs it did not return are appended below)
        pairs["rule"] = None
        if params.same_trade_name_same_city:
            pairs = _add_rule_pairs(pairs, trade_name_city_pairs(groups), TRADE_NAME_CITY)
        pairs["violation"] = _vector_violations(pairs, groups) if len(pairs) else pd.Series(dtype=object)
        # reviewers' decisions, mapped from record ids to name groups
        rid2g = dict(zip(recs["record_id"], recs["group_id"], strict=False))
        cannot, forced = set(), []
        pairs["decision"] = None
        if decisions is not None and len(decisions):
            for r in decisions.itertuples(index=False):
                a, b = rid2g.get(r.record_id_l), rid2g.get(r.record_id_r)
                if a is None or b is None or pd.isna(a) or pd.isna(b) or a == b:
                    continue
                a, b = sorted((int(a), int(b)))
                if r.decision == "match":
                    forced.append((a, b))
                else:
                    cannot.add((a, b))
            key = list(zip(pairs["group_id_l"], pairs["group_id_r"], strict=False))
            dec = {p: "match" for p in forced} | {p: "no_match" for p in cannot}
            pairs["decision"] = [dec.get(k) for k in key]
        allowed = pairs[pairs["violation"].isna() & (pairs["decision"].fillna("") != "no_match")]
        # pairs joined only because of a rule (Splink scored them below the threshold, or not at all)
        stats["pairs_by_rule"] = int((allowed["rule"].notna() & ~(allowed["match_probability"] >= params.threshold)).sum())
        allowed = _rule_strength(allowed, params.threshold)
        lab = cluster_groups(groups, allowed[allowed["match_probability"] >= params.threshold], cannot, forced,
                             params, con=con)
    finally:
        con.close()
    amb = set(lab.attrs.get("ambiguous_groups", []))
    pairs["ambiguous"] = (pairs["group_id_l"].isin(amb) | pairs["group_id_r"].isin(amb)) if len(pairs) else False
    stats["ambiguous_groups"] = len(amb)
    # cluster numbers in order of each cluster's first record, so outputs are stable
    groups["cluster_label"] = lab.to_numpy()
    # numpy, not groupby().min(): pandas reduces object strings group by group in Python (32 s at scale 100)
    codes, _ = pd.factorize(groups["cluster_label"].to_numpy(dtype=object))
    perm = np.argsort(groups["first_record"].to_numpy(dtype=object), kind="stable")
    _, first_pos = np.unique(codes[perm], return_index=True)  # per label: rank of its smallest first_record
    groups["cluster"] = np.argsort(np.argsort(first_pos, kind="stable"), kind="stable")[codes].astype(np.int64)
    # per-group confidence: best accepted edge inside its cluster (or a forced decision = 1.0)
    gcl = dict(zip(groups["group_id"], groups["cluster"], strict=False))
    best: dict[int, float] = {}
    for a, b, p in zip(allowed["group_id_l"], allowed["group_id_r"], allowed["match_probability"], strict=False):
        if gcl[a] == gcl[b]:
            best[a] = max(best.get(a, 0.0), p)
            best[b] = max(best.get(b, 0.0), p)
    for a, b in forced:
        best[a] = best[b] = 1.0
    size = groups.groupby("cluster")["group_id"].transform("size")
    groups["match_probability"] = [1.0 if s == 1 else best.get(g, params.threshold)
                                   for g, s in zip(groups["group_id"], size, strict=False)]
    recs = recs.merge(groups[["group_id", "cluster", "match_probability"]], on="group_id", how="left")
    stats.update({"seconds_cluster": lap(), "clusters": int(groups["cluster"].nunique()),
                  "pairs_blocked_by_rule": int(pairs["violation"].notna().sum()) if len(pairs) else 0})
    return MatchResult(recs, groups, pairs, model, stats, feats)
