"""Acceptance on demo data: generate -> crm load -> crm resolve -> segments.

Clusters vs the generator's latent value groups (truth mapped through the resolved master: each master
customer takes the true customer most of its records belong to). Only customers with orders are
clustered; the no-order group carries no behavioural value signal.
"""
import pandas as pd
import pytest

from crmlib import segments as sg
from crmlib.db import connect

SCALE = 0.1
SEED = 42
# measured ari_clustered: 0.234 (scale 0.1, seed 42), 0.246 (scale 0.2, seed 42), 0.168 (scale 0.1, seed 7);
# for scale: an oracle that cuts revenue of buyers into quartiles reaches only 0.275 (scale 0.2, seed 42)
MIN_ARI_CLUSTERED = 0.15
MIN_ARI_ALL = 0.08       # measured 0.153 / 0.124 / 0.091 with the no-order group counted as one more cluster


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    demo = pytest.importorskip("crmlib.demo")
    load = pytest.importorskip("crmlib.load")
    master = pytest.importorskip("crmlib.master")
    root = tmp_path_factory.mktemp("segments_demo")
    demo.generate(root / "raw", root / "truth", seed=SEED, scale=SCALE)
    load.load_all(root / "raw", root / "crm.duckdb", progress=False)
    master.resolve_db(root / "crm.duckdb", progress=False)
    con = connect(root / "crm.duckdb", read_only=True)
    yield root, con
    con.close()


def test_clusters_line_up_with_value_groups(demo_db):
    root, con = demo_db
    p = sg.load_params()
    h = sg.read_history(con, p.stages)
    as_of = sg.resolve_as_of(h, None)
    feats = sg.cluster_features(sg.customer_facts(h, as_of, p.stages), as_of, p.clusters)
    res = sg.fit_clusters(feats, p.clusters)
    truth = sg.read_truth_map(con, root / "truth")
    r = sg.truth_ari(res.labels, truth)
    assert r["customers"] >= 0.9 * len(res.labels)
    assert r["ari_clustered"] >= MIN_ARI_CLUSTERED, r
    assert r["ari"] >= MIN_ARI_ALL, r
    # clusters are numbered by revenue; the hidden value falls with them
    m = res.labels.merge(truth, on="customer_id")
    mean_group = m[m["cluster"] >= 0].groupby("cluster")["value_group"].apply(
        lambda s: pd.to_numeric(s).mean())
    assert mean_group.is_monotonic_decreasing, mean_group
    assert res.stability["ari"].min() >= 0.7   # measured 1.0 (seed 42), 0.71 (seed 7, k=5)


def test_weekly_metrics_on_demo(demo_db):
    _, con = demo_db
    now = sg.segments_weekly_metrics(con, None)
    stages = [f"segments_stage_{k}" for k in sg.STAGE_KEYS.values()]
    assert sum(now[k] for k in stages) == now["segments_customers"] > 100
    assert now["segments_stage_user"] > 0 and now["segments_stage_churned"] > 0
    week_before = (pd.Timestamp(now["segments_as_of"]) - pd.Timedelta(days=7)).date()
    then = sg.segments_weekly_metrics(con, week_before)
    assert then["segments_customers"] <= now["segments_customers"]
    assert now["segments_customers"] - then["segments_customers"] == now["segments_new_customers_week"]
