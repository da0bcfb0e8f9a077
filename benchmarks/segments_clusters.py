"""Cluster feature sets vs the demo's latent value groups (issue 7, acceptance 3).

Usage:
    .venv/bin/python benchmarks/segments_clusters.py DIR [DIR ...] [--build SEED SCALE]

DIR holds a demo built as the tests do: ``raw/``, ``truth/`` and a loaded + resolved ``crm.duckdb``
(``--build 42 1`` makes one in DIR first). For each feature set: k chosen by silhouette in the params
range, ARI with value_group over the clustered buyers and over all customers (无订单 as one more
group), silhouette, the lowest stability ARI, and CPU seconds of features + fit. as_of is
``crmlib.asof.resolve`` (as in notebooks/03_segments). Every set runs through
``crmlib.segments.fit_clusters``; only the feature list (and a few params) change.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crmlib import db
from crmlib import segments as sg
from crmlib.asof import resolve

SETS = [
    ("A lifetime: revenue n_orders n_tickets n_contacts (before)",
     ["revenue", "n_orders", "n_tickets", "n_contacts"], {}),
    ("B lifetime: revenue n_orders", ["revenue", "n_orders"], {}),
    ("C per year: revenue orders", ["revenue_per_year", "orders_per_year"], {}),
    ("D per year: revenue orders + n_tickets n_contacts", ["revenue_per_year", "orders_per_year",
                                                            "n_tickets", "n_contacts"], {}),
    ("E per year: revenue orders + days_late (before)", ["revenue_per_year", "orders_per_year", "days_late"], {}),
    ("E, k fixed at 4", ["revenue_per_year", "orders_per_year", "days_late"], {"k_min": 4, "k_max": 4}),
    ("E, payment_cap_days 365", ["revenue_per_year", "orders_per_year", "days_late"],
     {"payment_cap_days": 365}),
    ("F lifetime: revenue n_orders + days_late", ["revenue", "n_orders", "days_late"], {}),
    ("G per year: revenue + days_late", ["revenue_per_year", "days_late"], {}),
    ("H + recency_days", ["revenue_per_year", "orders_per_year", "days_late", "recency_days"], {}),
    ("J days_late only", ["days_late"], {}),
    ("K E, spend pair weighted 0.5 each (now)",
     ["revenue_per_year", "orders_per_year", "days_late"],
     {"weights": {"revenue_per_year": 0.5, "orders_per_year": 0.5}}),
]


def build(root: Path, seed: int, scale: float):
    from crmlib import demo, load, master
    demo.generate(root / "raw", root / "truth", seed=seed, scale=scale)
    load.load_all(root / "raw", root / "crm.duckdb", progress=False)
    master.resolve_db(root / "crm.duckdb", progress=False)


def oracle(truth: pd.DataFrame, labels: pd.DataFrame, root: Path) -> float:
    """KMeans (k=4) on the log of the true latent value of the clustered buyers: the best a
    one-dimensional value clustering could do (the groups are quantile cuts of that value)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    tc = pd.read_csv(root / "truth" / "customers.csv", dtype=str, keep_default_na=False)
    m = labels[labels["cluster"] >= 0].merge(truth.drop(columns=["latent_value"], errors="ignore"),
                                             on="customer_id").merge(
        tc[["true_customer_id", "latent_value"]], on="true_customer_id")
    x = np.log(pd.to_numeric(m["latent_value"]).to_numpy())[:, None]
    lab = KMeans(n_clusters=4, n_init=10, random_state=42).fit_predict(x)
    return float(adjusted_rand_score(m["value_group"], lab))


def measure(root: Path) -> pd.DataFrame:
    con = db.connect(root / "crm.duckdb", read_only=True)
    p = sg.load_params()
    h = sg.read_history(con, p.stages, receipts=True)
    as_of = resolve(con, None)
    truth = sg.read_truth_map(con, root / "truth")
    facts = sg.customer_facts(h, as_of, p.stages)
    rows = []
    for name, feats, over in SETS:
        cp = p.clusters.model_copy(update={"features": feats, "weights": {}, **over})
        t = time.process_time()
        res = sg.fit_clusters(sg.cluster_features(facts, as_of, cp, h.receipts), cp)
        cpu = time.process_time() - t
        r = sg.truth_ari(res.labels, truth)
        sil = res.silhouette.set_index("k")["silhouette"]
        rows.append({"set": name, "k": res.k, "reference": sg.latent_reference_ari(res.labels, truth, res.k, cp), "ari_clustered": r["ari_clustered"], "ari_all": r["ari"],
                     "silhouette": sil[res.k], "silhouettes": " ".join(f"{v:.2f}" for v in sil),
                     "stability_min": res.stability["ari"].min(), "cpu_s": cpu})
    print(f"{root}: as_of {as_of}, {r['customers_clustered']} clustered of {r['customers']}; "
          f"oracle KMeans(4) on the true latent value: ARI {oracle(truth, res.labels, root):.3f}")
    con.close()
    return pd.DataFrame(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--build", nargs=2, metavar=("SEED", "SCALE"))
    a = ap.parse_args()
    for d in a.dirs:
        if a.build and not (d / "crm.duckdb").exists():
            build(d, int(a.build[0]), float(a.build[1]))
        print(measure(d).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
