"""What the resolver still misses, against the demo truth (docs/STATUS.md, open work 2).

Usage:
    .venv/bin/python benchmarks/resolve_misses.py <resolved crm.duckdb> <truth dir>

Prints (1) the missed record pairs (pairs of one true customer in two resolved customers) by source of the
record off its customer's biggest cluster and by what places it: a credit code, a region in the name, a city
field, nothing; (2) what joining a place-less name group (no region, city or credit code: a caller's bare
trade name) to the customer of its trade name would give when the records know that trade name in one city
only: pairs, share truly one customer, and pairwise precision / recall before and after, computed on name
groups (each group counted as its records' majority true customer).
"""
from __future__ import annotations

import sys

import duckdb
import numpy as np
import pandas as pd

from crmlib import master as M


def missed(con, rec: pd.DataFrame) -> None:
    r = con.execute("""SELECT x.record_id, x.customer_id, r.source, r.city, r.uscc, p.n_province, p.n_city
        FROM customer_xref x JOIN customer_records r USING (record_id)
        LEFT JOIN customer_name_parse p ON p.name_raw = r.name_raw WHERE x.customer_id IS NOT NULL""").df()
    d = r.merge(rec[["record_id", "true_customer_id"]], on="record_id")
    d = d[d["true_customer_id"] != ""]
    sz = d.groupby(["true_customer_id", "customer_id"]).size().rename("n").reset_index()
    tot = sz.groupby("true_customer_id")["n"].sum()
    d = d.merge(sz, on=["true_customer_id", "customer_id"])
    d["share"] = (d["true_customer_id"].map(tot) - d["n"]) / 2      # each record's share of the missed pairs
    d["placed_by"] = np.select(
        [d["uscc"].notna(), d["n_city"].notna() | d["n_province"].notna(), d["city"].notna()],
        ["credit code", "region in name", "city field"], "nothing")
    print(f"missed record pairs: {d['share'].sum():,.0f} of {M._pairs_count(tot):,} true pairs")
    off = d[d["share"] > 0]
    for col in ("source", "placed_by"):
        print(off.groupby(col)["share"].sum().sort_values(ascending=False).round(0).to_string(), "\n")


def one_city_bare_names(con, rec: pd.DataFrame) -> None:
    p = M.load_master_params()
    recs, _ = M.prepare_records(con.execute("SELECT * FROM customer_records").df(), p)
    live = ~recs["is_junk"]
    recs["gkey"] = None
    recs.loc[live, "gkey"] = M.group_key(recs[live], p)
    g = M.build_groups(recs, p, key=recs["gkey"])
    xr = con.execute("SELECT record_id, customer_id FROM customer_xref").df()
    r = recs[live].merge(rec[["record_id", "true_customer_id"]], on="record_id").merge(xr, on="record_id")
    by = r.groupby("gkey")
    g["t"] = g["gkey"].map(by["true_customer_id"].agg(lambda s: s.mode().iloc[0]))
    g["cl"] = g["gkey"].map(by["customer_id"].first())
    g["n"] = g["gkey"].map(by.size())
    has = [isinstance(c, list | np.ndarray) and len(c) > 0 for c in g["city"]]
    code = [isinstance(c, list | np.ndarray) and len(c) > 0 for c in g["uscc"]]
    ok = g["brand"].isna() & ~g["ambiguous"].fillna(False).astype(bool) & g["core"].notna()
    placeless = g[ok & ~np.array(has) & g["n_province"].isna() & ~np.array(code)]
    placed = g[ok & np.array(has)]
    cities = placed[["core", "city"]].explode("city").dropna().drop_duplicates().groupby("core").size()
    one = cities.index[cities == 1]
    pr = placeless[placeless["core"].isin(one)][["core", "cl", "t"]].merge(
        placed[placed["core"].isin(one)][["core", "cl", "t"]], on="core", suffixes=("_l", "_r"))
    pr = pr[pr["cl_l"] != pr["cl_r"]]
    d = g[g["t"].notna() & g["cl"].notna() & (g["t"] != "")]

    def score(lab):
        x = d.assign(p=lab)
        both = M._pairs_count(x.groupby(["p", "t"])["n"].sum())
        return both / M._pairs_count(x.groupby("p")["n"].sum()), both / M._pairs_count(x.groupby("t")["n"].sum())

    parent: dict = {}

    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in zip(pr["cl_l"], pr["cl_r"], strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    true = (pr["t_l"] == pr["t_r"]).mean() if len(pr) else float("nan")
    print(f"place-less name groups {len(placeless):,}; pairs to a one-city trade name's customer {len(pr):,}, "
          f"{true:.1%} truly one customer")
    for when, lab in (("before", d["cl"].to_numpy()), ("after", [find(c) for c in d["cl"].to_numpy()])):
        pr_, rc_ = score(lab)
        print(f"precision / recall on name groups {when}: {pr_:.6f} / {rc_:.6f}")


def main() -> None:
    db, truth = sys.argv[1], sys.argv[2]
    rec = pd.read_csv(f"{truth}/records.csv", dtype=str, keep_default_na=False)
    rec["record_id"] = rec["source"] + ":" + rec["source_key"]
    con = duckdb.connect(db, read_only=True)
    missed(con, rec)
    one_city_bare_names(con, rec)
    con.close()


if __name__ == "__main__":
    main()
