"""Rules the model cannot override (dictionary brands, regions, branch levels), the same-trade-name-same-city
rule, and the clustering of scored pairs that respects them."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import duckdb
import numpy as np
import pandas as pd

from .engine import BARE_PREFIX, HEAD_UNIT, LOCAL_UNIT, _engine_connection
from .params import MasterParams

TRADE_NAME_CITY = "trade_name_city"


def _single_place(g: pd.DataFrame) -> pd.Series:
    """A name group's one city: the city in its name, else the only city its records give; None when the
    records give none or several."""
    one = [c[0] if isinstance(c, list | np.ndarray) and len(c) == 1 else None for c in g["city"]]
    return g["n_city"].astype(object).where(g["n_city"].notna(), pd.Series(one, index=g.index, dtype=object))


def trade_name_city_pairs(groups: pd.DataFrame) -> pd.DataFrame:
    """Pairs of name groups with the same name core (trade name + industry: 伟峰管理咨询) in the same city,
    neither a dictionary brand nor an ambiguous short form. Columns group_id_l < group_id_r. A core and city
    whose records carry two credit codes that no group shares (two registered companies, or a mistyped
    code: the records cannot say which) is left to the scores altogether.

    One registration authority does not register the same trade name twice in one industry (企业名称登记管理
    规定, 2020, art. 17), so 伟峰管理咨询 in a ticket from 太原 is 太原伟峰管理咨询有限责任公司 whatever the legal
    form or the phone: Splink's score for such a pair, often below the threshold because the phones differ
    and the prior chance of a match among 400k name groups is tiny, does not decide it. Brands (banks,
    insurers: 中信银行(昆明) may be the city or the provincial branch) and hard-rule conflicts
    (:func:`_vector_violations`, applied by the caller) are left to the scores.
    """
    cols = ["group_id_l", "group_id_r"]
    if groups.empty:
        return pd.DataFrame(columns=cols, dtype=np.int64)
    g = groups[groups["brand"].isna() & ~groups["ambiguous"].fillna(False).astype(bool) & groups["core"].notna()]
    g = pd.DataFrame({"group_id": g["group_id"].to_numpy(), "core": g["core"].to_numpy(),
                      "place": _single_place(g).to_numpy(), "uscc": g["uscc"].to_numpy()}).dropna(subset=["place"])
    m = g.merge(g, on=["core", "place"], suffixes=("_l", "_r"))
    m = m[m["group_id_l"] < m["group_id_r"]]
    conflict = np.array([isinstance(a, list | np.ndarray) and isinstance(b, list | np.ndarray)
                         and len(a) > 0 and len(b) > 0 and not set(a) & set(b)
                         for a, b in zip(m["uscc_l"], m["uscc_r"], strict=True)], dtype=bool)
    two_codes = m.loc[conflict, ["core", "place"]].drop_duplicates().assign(_two=True)
    m = m.merge(two_codes, on=["core", "place"], how="left")
    m = m[m["_two"].isna()]
    return m[cols].sort_values(cols).reset_index(drop=True).astype(np.int64)


def _add_rule_pairs(pairs: pd.DataFrame, rule_pairs: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Mark scored pairs a rule accepts (``rule`` column) and append the ones Splink did not return (scored
    below review_low): no probability or weights for those."""
    if rule_pairs.empty:
        return pairs
    key = ["group_id_l", "group_id_r"]
    hit = pairs[key].merge(rule_pairs.assign(_r=True), on=key, how="left")["_r"].fillna(False).to_numpy(bool)
    pairs.loc[hit, "rule"] = rule
    extra = rule_pairs.merge(pairs[key], on=key, how="left", indicator=True)
    extra = extra.loc[extra["_merge"] == "left_only", key].assign(rule=rule)
    if extra.empty:
        return pairs
    return pd.concat([pairs, extra], ignore_index=True).sort_values(key, kind="stable").reset_index(drop=True)


def _rule_strength(pairs: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A copy of ``pairs`` in which a pair a rule accepts is at least just strong enough to be accepted
    (probability ``threshold`` and its match weight; Splink's own score when higher)."""
    out = pairs.copy()
    r = out["rule"].notna()
    if r.any():
        floor = math.log2(threshold / (1 - threshold)) if threshold < 1 else 64.0
        out.loc[r, "match_probability"] = out.loc[r, "match_probability"].fillna(0).clip(lower=threshold)
        out.loc[r, "match_weight"] = out.loc[r, "match_weight"].fillna(floor).clip(lower=floor)
    return out


# Fields whose values must agree (when both are written) for two name groups to be one customer
_HARD_KEYS = ["brand", "n_province", "n_city", "unit"]
_HARD_REASONS = {"brand": "different brand", "n_province": "different province in name",
                 "n_city": "different city in name", "unit": "different branch / head office",
                 "region_level": "province vs city in name", "ambiguous": "ambiguous short form"}


def units_conflict(units: set) -> bool:
    """True when a set of unit values cannot belong to one customer.

    Firm units must all be equal; ``LOCAL_UNIT`` fits any unit but the head office; ``~bare:<unit>`` fits
    that unit or the head office."""
    firm = {u for u in units if not u.startswith("~")}
    if len(firm) > 1:
        return True
    bares = {u[len(BARE_PREFIX):] for u in units if u.startswith(BARE_PREFIX)}
    if len(bares) > 1:
        return True
    local = LOCAL_UNIT in units
    if local and HEAD_UNIT in firm:
        return True
    if bares:
        b = next(iter(bares))
        if firm and firm != {b} and firm != {HEAD_UNIT}:
            return True
        if local and firm == {HEAD_UNIT}:
            return True
    return False


def hard_rule_violation(a: dict, b: dict) -> str | None:
    """Why two name groups can never be one customer, or None. Blank fields never conflict.

    ``brand`` (dictionary brands only), region written in the name, and ``unit`` (branch level, branch name,
    district; set for dictionary brands and names with a branch word) must agree; the same name core at a
    province and at a city level (江西省烟草专卖局 / 南昌市烟草专卖局) are two organisations. A short form that
    means several brands (``ambiguous``) joins a group of a named brand only on a shared phone or credit code
    (``shared_id``), never another short form; otherwise a reviewer decides."""
    for k in ["brand", "n_province", "n_city"]:
        x, y = a.get(k), b.get(k)
        if isinstance(x, str) and isinstance(y, str) and x != y:
            return _HARD_REASONS[k]
    ua, ub = a.get("unit"), b.get("unit")
    if isinstance(ua, str) and isinstance(ub, str) and units_conflict({ua, ub}):
        return _HARD_REASONS["unit"]
    ra, rb = a.get("region_level"), b.get("region_level")
    if isinstance(ra, str) and isinstance(rb, str) and ra != rb and a.get("core") == b.get("core"):
        return _HARD_REASONS["region_level"]
    if (a.get("ambiguous") or b.get("ambiguous")) and (
            not a.get("shared_id") or (a.get("ambiguous") and b.get("ambiguous"))):
        return _HARD_REASONS["ambiguous"]
    return None


def _vector_violations(pairs: pd.DataFrame, groups: pd.DataFrame) -> pd.Series:
    """:func:`hard_rule_violation` for many pairs at once; the reason or None per pair."""
    g = groups.set_index("group_id")[_HARD_KEYS + ["region_level", "ambiguous", "core"]]
    L = g.loc[pairs["group_id_l"].to_numpy()].reset_index(drop=True)
    R = g.loc[pairs["group_id_r"].to_numpy()].reset_index(drop=True)
    out = np.full(len(pairs), None, dtype=object)

    def differ(k):
        return (L[k].notna() & R[k].notna() & (L[k] != R[k])).to_numpy()

    shared_id = ((pairs["mw_phone"].to_numpy() > 0) | (pairs["mw_uscc"].to_numpy() > 0))
    la, ra = L["ambiguous"].fillna(False).astype(bool).to_numpy(), R["ambiguous"].fillna(False).astype(bool).to_numpy()
    unit = np.array([isinstance(a, str) and isinstance(b, str) and units_conflict({a, b})
                     for a, b in zip(L["unit"], R["unit"], strict=True)], dtype=bool)
    rules = [("brand", differ("brand")), ("n_province", differ("n_province")), ("n_city", differ("n_city")),
             ("unit", unit), ("region_level", differ("region_level") & (L["core"] == R["core"]).to_numpy()),
             ("ambiguous", ((la | ra) & ~shared_id) | (la & ra))]
    for k, mask in reversed(rules):  # the first rule wins
        out[mask] = _HARD_REASONS[k]
    return pd.Series(out, index=pairs.index, dtype=object)


def _core_level_conflict(pairs: set) -> bool:
    """One name core written at a province and at a city level (江西省烟草专卖局 / 南昌市烟草专卖局)."""
    seen: dict = {}
    for core, level in pairs:
        if seen.setdefault(core, level) != level:
            return True
    return False


class _UnionFind:
    """Union-find whose components remember their hard-rule values and reviewers' no-match partners."""

    def __init__(self, groups: pd.DataFrame, cannot: set[tuple[int, int]]):
        self.parent: dict[int, int] = {}
        self.vals: dict[int, dict[str, set]] = {}
        self.cannot: dict[int, set[int]] = {}
        self.rows = groups.set_index("group_id")[_HARD_KEYS + ["core", "region_level"]].to_dict("index")
        for a, b in cannot:
            self.cannot.setdefault(a, set()).add(b)
            self.cannot.setdefault(b, set()).add(a)

    def find(self, x: int) -> int:
        if x not in self.parent:
            self.parent[x] = x
            r = self.rows[x]
            self.vals[x] = {"members": {x}, **{k: ({r[k]} if isinstance(r[k], str) else set()) for k in _HARD_KEYS},
                            "core_level": ({(r["core"], r["region_level"])}
                                           if isinstance(r["region_level"], str) else set())}
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def compatible(self, a: int, b: int) -> bool:
        va, vb = self.vals[a], self.vals[b]
        for k in ("brand", "n_province", "n_city"):
            if va[k] and vb[k] and va[k] != vb[k]:
                return False
        if units_conflict(va["unit"] | vb["unit"]):
            return False
        if _core_level_conflict(va["core_level"] | vb["core_level"]):
            return False
        small, big = (va, vb) if len(va["members"]) <= len(vb["members"]) else (vb, va)
        return not any(self.cannot.get(m, set()) & big["members"] for m in small["members"])

    def union(self, a: int, b: int, force: bool = False) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not force and not self.compatible(ra, rb):
            return False
        if len(self.vals[ra]["members"]) < len(self.vals[rb]["members"]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        for k, v in self.vals[rb].items():
            self.vals[ra][k] |= v
        del self.vals[rb]
        return True


def cluster_groups(groups: pd.DataFrame, edges: pd.DataFrame, cannot: set[tuple[int, int]],
                   forced: list[tuple[int, int]], params: MasterParams,
                   con: duckdb.DuckDBPyConnection | None = None) -> pd.Series:
    """Cluster label per group_id (index = group_id).

    Splink's connected components over the accepted edges plus reviewers' forced matches; then every
    component that chains incompatible groups (through groups whose fields are blank) or holds a reviewer's
    no-match pair is rebuilt greedily: forced matches first, then edges strongest first (ties: smallest
    ids), skipping any edge that would join incompatible parts.
    """
    from splink import DuckDBAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    ids = groups["group_id"].to_numpy()
    # match weights, when given, serve the ambiguity check (_detach_ambiguous); forced matches: infinitely strong
    e = edges[["group_id_l", "group_id_r", "match_probability"]
              + (["match_weight"] if "match_weight" in edges else [])]
    if forced:
        f = pd.DataFrame(forced, columns=["group_id_l", "group_id_r"]).assign(match_probability=1.0)
        if "match_weight" in e:
            f["match_weight"] = np.inf
        e = pd.concat([f, e], ignore_index=True)
    e = e[e["match_probability"] >= params.threshold].reset_index(drop=True)
    own = con is None
    con = con or _engine_connection(params)
    try:
        cc = cluster_pairwise_predictions_at_threshold(
            pd.DataFrame({"group_id": ids}), e, db_api=DuckDBAPI(con), node_id_column_name="group_id",
            edge_id_column_name_left="group_id_l", edge_id_column_name_right="group_id_r",
            threshold_match_probability=params.threshold,
        ).as_pandas_dataframe()
    finally:
        if own:
            con.close()
    lab = pd.Series(cc["cluster_id"].astype(str).to_numpy(), index=cc["group_id"].astype(np.int64).to_numpy())
    lab = lab.reindex(ids)
    g = groups.set_index("group_id")
    frame = pd.DataFrame({"cluster": lab.to_numpy()}, index=ids)
    for k in _HARD_KEYS:
        frame[k] = g.loc[ids, k].to_numpy()
    bad = set()
    for k in ("brand", "n_province", "n_city"):
        nun = frame.dropna(subset=[k]).groupby("cluster")[k].nunique()
        bad |= set(nun[nun > 1].index)
    units = frame.dropna(subset=["unit"]).groupby("cluster")["unit"].agg(set)
    bad |= {c for c, u in units.items() if units_conflict(u)}
    frame["core_level"] = [(c, r) if isinstance(r, str) else None
                           for c, r in zip(g.loc[ids, "core"], g.loc[ids, "region_level"], strict=True)]
    cl = frame.dropna(subset=["core_level"]).groupby("cluster")["core_level"].agg(set)
    bad |= {c for c, v in cl.items() if _core_level_conflict(v)}
    for a, b in cannot:
        if lab.get(a) is not None and lab.get(a) == lab.get(b):
            bad.add(lab[a])
    if not bad:
        return lab
    members = set(frame.index[frame["cluster"].isin(bad)].tolist())
    uf = _UnionFind(groups[groups["group_id"].isin(members)], cannot)
    for a, b in sorted(forced):
        if a in members and b in members:
            uf.union(a, b, force=True)
    sub = e[e["group_id_l"].isin(members) & e["group_id_r"].isin(members)]
    sub = sub.sort_values(["match_probability", "group_id_l", "group_id_r"], ascending=[False, True, True])
    for a, b in zip(sub["group_id_l"].to_numpy(), sub["group_id_r"].to_numpy(), strict=False):
        uf.union(int(a), int(b))
    rebuilt = sorted(members)
    lab = lab.astype(object)
    lab.loc[rebuilt] = [f"r{uf.find(int(gid))}" for gid in rebuilt]
    detached = _detach_ambiguous(groups, sub, uf, members, {x for f in forced for x in f}, params)
    for gid in detached:
        lab.loc[gid] = f"a{gid}"
    lab.attrs["ambiguous_groups"] = sorted(detached)
    return lab


def _detach_ambiguous(groups: pd.DataFrame, edges: pd.DataFrame, uf: _UnionFind, members: set[int],
                      pinned: set[int], params: MasterParams) -> set[int]:
    """Name groups with no place at all (no region in the name, no city, no credit code on any record:
    和和商贸集团 written bare in a call log) that the greedy rebuild joined to one customer although an edge
    almost as strong (match weight within ``ambiguity_margin`` bits) led to another customer it could not
    join (another city): the evidence cannot tell which one it is, so the group stays a customer of its own
    and its pairs go to the review queue. Only a group whose customer stays connected without it is
    detached; groups in a reviewer's match decision stay where the reviewer put them. Without match
    weights (``edges`` lacks them) nothing is detached."""
    if "match_weight" not in edges:
        return set()
    placeless = groups.loc[groups[["brand", "n_province", "n_city", "city", "uscc"]].isna().all(axis=1),
                           "group_id"]
    cand = sorted(int(x) for x in set(placeless) & members if x not in pinned)
    if not cand:
        return set()
    root = {int(x): uf.find(int(x)) for x in members}
    el, er, ep = (edges["group_id_l"].to_numpy(), edges["group_id_r"].to_numpy(),
                  edges["match_weight"].to_numpy())
    by_group: dict[int, list[tuple[float, int]]] = {}
    for a, b, p in zip(el, er, ep, strict=True):
        by_group.setdefault(int(a), []).append((float(p), int(b)))
        by_group.setdefault(int(b), []).append((float(p), int(a)))
    inside: dict[int, list[tuple[int, int]]] = {}  # edges within each customer
    nodes: dict[int, list[int]] = {}
    for a, b in zip(el, er, strict=True):
        if root[int(a)] == root[int(b)]:
            inside.setdefault(root[int(a)], []).append((int(a), int(b)))
    for y in members:
        nodes.setdefault(root[int(y)], []).append(int(y))
    out = set()
    for x in cand:
        own = [p for p, y in by_group.get(x, []) if root[y] == root[x] and y not in out]
        other = [p for p, y in by_group.get(x, []) if root[y] != root[x] and y not in out]
        if not own or not other or max(other) < max(own) - params.ambiguity_margin:
            continue
        # the rest of its customer must stay connected without it (and without the groups detached before)
        gone = out | {x}
        rest = [y for y in nodes[root[x]] if y not in gone]
        if rest and not _connected(rest, inside.get(root[x], []), exclude=gone):
            continue
        out.add(x)
    return out


def link_roots(edges: Iterable[tuple]) -> Callable:
    """``find``: a node's component root over ``edges`` (plain union-find, path halving; a node no edge
    touches is its own root). No hard rules: :class:`_UnionFind` is the clustering's."""
    parent: dict = {}

    def find(n):
        while parent.get(n, n) != n:
            parent[n] = parent.get(parent[n], parent[n])
            n = parent[n]
        return n

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    return find


def _connected(nodes: list[int], edges: list[tuple[int, int]], exclude: set[int]) -> bool:
    """Whether ``nodes`` form one component over ``edges`` touching none of ``exclude``."""
    find = link_roots((a, b) for a, b in edges if a not in exclude and b not in exclude)
    return len({find(n) for n in nodes}) == 1
