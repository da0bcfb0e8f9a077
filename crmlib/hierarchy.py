"""Customer hierarchy: head office → province branch → city branch → sub-branch, and revenue roll-up.

Links come from two places: the CRM's own ``parent_account_id`` (when both accounts resolve to customers),
else brand + region containment for branch-type organisations (banks, telecoms, ...): a sub-branch's parent is
the city branch of the same brand in its city, else the province branch of its province, else the head
office; a city branch's parent is the province branch of its province if present, else the head office; a
province branch's parent is the head office. When several candidates fit, the smallest customer_id wins.
"""
from __future__ import annotations

import duckdb
import pandas as pd

from .db import table_exists

LEVELS = ("head", "province", "city", "subbranch")
HIER_COLUMNS = ["child_id", "parent_id", "child_level", "parent_level", "rule"]

# branch_level words produced by crmlib.names (and plain Chinese ones) → our four levels
_LEVEL_WORDS = {
    "head": "head", "hq": "head", "headquarters": "head", "group": "head", "总行": "head", "总部": "head",
    "总公司": "head", "集团": "head",
    "province": "province", "provincial": "province", "省分行": "province", "省分公司": "province",
    "分行": "city", "city": "city", "市分行": "city", "分公司": "city", "市分公司": "city",
    "sub": "subbranch", "subbranch": "subbranch", "sub_branch": "subbranch", "district": "subbranch",
    "outlet": "subbranch", "支行": "subbranch", "营业部": "subbranch", "营业厅": "subbranch",
    "分理处": "subbranch", "储蓄所": "subbranch",
}


def unit_level(branch_level: str | None, province: str | None, city: str | None) -> str:
    """Level of one organisation unit of a branch-type brand."""
    if isinstance(branch_level, str) and branch_level:
        lv = _LEVEL_WORDS.get(branch_level.strip().lower())
        if lv:
            return lv
    if isinstance(city, str) and city:
        return "city"
    if isinstance(province, str) and province:
        return "province"
    return "head"


def _s(v) -> str | None:
    return v if isinstance(v, str) and v else None


def build_hierarchy(golden: pd.DataFrame, crm_parent: pd.DataFrame | None = None) -> pd.DataFrame:
    """Parent/child links between customers (one row per child).

    ``golden``: customer_id, brand, hier, branch_level, name_province, name_city, province, city.
    ``crm_parent``: customer_id, parent_customer_id from the CRM (wins over the brand rule).
    """
    g = golden.copy()
    for c in ("brand", "branch_level", "name_province", "name_city", "province", "city"):
        if c not in g:
            g[c] = None
    g["hier"] = g.get("hier", False)
    g["hier"] = g["hier"].fillna(False).astype(bool) & g["brand"].notna()
    g["lvl"] = [unit_level(b, p, c) if h else None for h, b, p, c in
                zip(g["hier"], g["branch_level"], g["name_province"], g["name_city"], strict=False)]
    # region of the unit: as written in the name, else the golden record's own region
    g["u_city"] = [_s(nc) or _s(c) for nc, c in zip(g["name_city"], g["city"], strict=False)]
    g["u_prov"] = [_s(np_) or _s(p) for np_, p in zip(g["name_province"], g["province"], strict=False)]
    level_of = dict(zip(g["customer_id"], g["lvl"], strict=False))
    rows: dict[str, dict] = {}
    if crm_parent is not None and len(crm_parent):
        for r in crm_parent.sort_values(["customer_id", "parent_customer_id"]).itertuples(index=False):
            if r.customer_id not in rows and r.customer_id != r.parent_customer_id:
                rows[r.customer_id] = {"child_id": r.customer_id, "parent_id": r.parent_customer_id,
                                       "rule": "crm_parent"}
    h = g[g["hier"]].sort_values("customer_id")
    heads, provs, cities = {}, {}, {}
    for r in h.itertuples(index=False):
        if r.lvl == "head":
            heads.setdefault(r.brand, r.customer_id)
        elif r.lvl == "province" and r.u_prov:
            provs.setdefault((r.brand, r.u_prov), r.customer_id)
        elif r.lvl == "city" and r.u_city:
            cities.setdefault((r.brand, r.u_city), r.customer_id)
    for r in h.itertuples(index=False):
        if r.customer_id in rows or r.lvl == "head":
            continue
        cands = []
        if r.lvl == "subbranch":
            cands = [cities.get((r.brand, r.u_city)), provs.get((r.brand, r.u_prov)), heads.get(r.brand)]
        elif r.lvl == "city":
            cands = [provs.get((r.brand, r.u_prov)), heads.get(r.brand)]
        elif r.lvl == "province":
            cands = [heads.get(r.brand)]
        parent = next((c for c in cands if c and c != r.customer_id), None)
        if parent:
            rows[r.customer_id] = {"child_id": r.customer_id, "parent_id": parent, "rule": "brand_region"}
    out = pd.DataFrame(list(rows.values()), columns=["child_id", "parent_id", "rule"])
    out = _break_cycles(out)
    out["child_level"] = out["child_id"].map(level_of).fillna("none")
    out["parent_level"] = out["parent_id"].map(level_of).fillna("none")
    return out[HIER_COLUMNS].sort_values("child_id").reset_index(drop=True)


def _break_cycles(links: pd.DataFrame) -> pd.DataFrame:
    """Drop the link of the largest child id on any cycle (CRM parents can be inconsistent)."""
    parent = dict(zip(links["child_id"], links["parent_id"], strict=False))
    drop = set()
    for start in sorted(parent):
        path, cur = [], start
        while cur in parent and cur not in path and cur not in drop:
            path.append(cur)
            cur = parent[cur]
        if cur in path:
            cycle = path[path.index(cur):]
            drop.add(max(cycle))
    return links[~links["child_id"].isin(drop)].reset_index(drop=True)


def master_levels(golden: pd.DataFrame, hier: pd.DataFrame) -> pd.DataFrame:
    """customer_id, level (head/province/city/none; sub-branches count as city), parent_customer_id."""
    parent = dict(zip(hier["child_id"], hier["parent_id"], strict=False))
    has_child = set(hier["parent_id"])
    g = golden.copy()
    g["hier"] = g.get("hier", False)

    def col(c):  # plain objects: iterating pandas' Arrow strings row by row is slow at scale 100
        return g[c].to_numpy(dtype=object)

    ids = col("customer_id")
    levels = []
    for cid, h, brand, bl, np_, nc in zip(ids, col("hier"), col("brand"), col("branch_level"),
                                         col("name_province"), col("name_city"), strict=True):
        if bool(h) and isinstance(brand, str):
            lv = unit_level(bl, np_, nc)
            levels.append("city" if lv == "subbranch" else lv)
        else:
            levels.append("head" if cid in has_child else "none")
    return pd.DataFrame({"customer_id": ids, "level": levels,
                         "parent_customer_id": [parent.get(c) for c in ids]},
                        columns=["customer_id", "level", "parent_customer_id"])


def group_of(hier: pd.DataFrame, ids) -> dict[str, str]:
    """Top ancestor (the group) of each customer id; a customer without parent is its own group."""
    parent = dict(zip(hier["child_id"], hier["parent_id"], strict=False))
    out = {}
    for cid in ids:
        cur, seen = cid, set()
        while cur in parent and cur not in seen:
            seen.add(cur)
            cur = parent[cur]
        out[cid] = cur
    return out


def rollup(hier: pd.DataFrame, revenue: pd.DataFrame) -> pd.DataFrame:
    """Own revenue, revenue of the customer and everything below it, and the group it belongs to.

    ``revenue``: customer_id, revenue (one row per customer; customers without revenue may be absent).
    """
    ids = sorted(set(revenue["customer_id"]) | set(hier["child_id"]) | set(hier["parent_id"]))
    own = revenue.groupby("customer_id")["revenue"].sum().reindex(ids).fillna(0.0)
    parent = dict(zip(hier["child_id"], hier["parent_id"], strict=False))
    subtree = own.copy()
    for cid in ids:
        v, cur, seen = own[cid], cid, {cid}
        while cur in parent and parent[cur] not in seen:
            cur = parent[cur]
            seen.add(cur)
            subtree[cur] += v
    groups = group_of(hier, ids)
    return pd.DataFrame({"customer_id": ids, "group_id": [groups[c] for c in ids],
                         "own_revenue": own.to_numpy(), "subtree_revenue": subtree.to_numpy()})


def rollup_revenue(con: duckdb.DuckDBPyConnection, net_of_returns: bool = True) -> pd.DataFrame:
    """Revenue (元) per customer from ``stg_orders`` via ``customer_xref`` (source erp), rolled up the
    hierarchy: customer_id, name, level, group_id, group_name, own_revenue, subtree_revenue."""
    cols = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'stg_orders'").fetchall()}
    amount = "amount - coalesce(returned_amount, 0)" if net_of_returns and "returned_amount" in cols else "amount"
    revenue = con.execute(f"""
        SELECT x.customer_id, sum({amount}) AS revenue
        FROM stg_orders o JOIN customer_xref x ON x.source = 'erp' AND x.source_key = o.erp_customer_id
        WHERE x.customer_id IS NOT NULL GROUP BY x.customer_id ORDER BY x.customer_id""").df()
    hier = (con.execute("SELECT child_id, parent_id FROM customer_hierarchy ORDER BY child_id").df()
            if table_exists(con, "customer_hierarchy") else pd.DataFrame(columns=["child_id", "parent_id"]))
    out = rollup(hier, revenue)
    names = con.execute("SELECT customer_id, name, level FROM customer_master").df()
    out = out.merge(names, on="customer_id", how="left")
    out = out.merge(names.rename(columns={"customer_id": "group_id", "name": "group_name", "level": "_gl"}),
                    on="group_id", how="left").drop(columns="_gl")
    return out[["customer_id", "name", "level", "group_id", "group_name", "own_revenue", "subtree_revenue"]] \
        .sort_values("customer_id").reset_index(drop=True)
