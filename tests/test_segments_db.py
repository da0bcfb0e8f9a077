"""Segments through DuckDB: read_history via the xref, weekly metrics, slipping-away, clusters."""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from crmlib import segments as sg

AS_OF = "2024-07-01"


def build_db(path) -> duckdb.DuckDBPyConnection:
    """Five master customers; C1..C4 have erp/crm/... records through the xref, C5 is bare."""
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE customer_master AS SELECT * FROM (VALUES
        ('C000001', '甲银行', '大客户及行业客户', '华北', '金融', 'R01', DATE '2023-01-01'),
        ('C000002', '乙公司', '中小企业', '华东', '制造', 'R01', DATE '2023-01-01'),
        ('C000003', '丙医院', '大客户及行业客户', '华东', '医疗', 'R02', DATE '2023-01-01'),
        ('C000004', '丁渠道', '渠道', '华南', 'IT', 'R02', DATE '2024-06-28'),
        ('C000005', '戊学校', '大客户及行业客户', '华南', '教育', NULL, NULL))
        t(customer_id, name, scope, region, industry, owner_rep_id, first_seen)""")
    con.execute("""CREATE TABLE customer_records AS SELECT * FROM (VALUES
        ('erp:E1', 'erp', 'E1'), ('erp:E2', 'erp', 'E2'), ('erp:E3', 'erp', 'E3'), ('erp:E9', 'erp', 'E9'),
        ('crm:A1', 'crm', 'A1'), ('crm:A4', 'crm', 'A4'),
        ('sales:f.xlsx|S1|2', 'sales', 'f.xlsx|S1|2'), ('callcenter:K1', 'callcenter', 'K1'),
        ('callcenter:K2', 'callcenter', 'K2'), ('service:T1', 'service', 'T1'))
        t(record_id, source, source_key)""")
    con.execute("""CREATE TABLE customer_xref AS SELECT * FROM (VALUES
        ('erp:E1', 'C000001'), ('erp:E2', 'C000002'), ('erp:E3', 'C000003'), ('erp:E9', NULL),
        ('crm:A1', 'C000001'), ('crm:A4', 'C000004'), ('sales:f.xlsx|S1|2', 'C000002'),
        ('callcenter:K1', 'C000003'), ('callcenter:K2', 'C000001'), ('service:T1', 'C000002'))
        t(record_id, customer_id)""")
    # C1: big orders, last 2024-03-01 (122 days), contacted by call 2024-06-20; repeat -> 用户, slipping (no order)
    # C2: one order 2024-06-27 then repair ticket 2024-06-29 -> 用户 (was 订单 on 06-24? no: ordered 06-27)
    # C3: orders 2023-05-01 and 2023-06-20 (377 days) -> 流失; at 06-24 (370 days) also 流失
    # E9: junk erp customer, no master id -> ignored
    con.execute("""CREATE TABLE stg_orders AS SELECT * FROM (VALUES
        ('O1', 1, DATE '2023-09-01', 'E1', 500000.0, 0.0),
        ('O1', 2, DATE '2023-09-01', 'E1', 100000.0, 20000.0),
        ('O2', 1, DATE '2024-03-01', 'E1', 300000.0, NULL),
        ('O3', 1, DATE '2024-06-27', 'E2', 1000.0, 0.0),
        ('O4', 1, DATE '2023-05-01', 'E3', 8000.0, 0.0),
        ('O5', 1, DATE '2023-06-20', 'E3', 2000.0, 0.0),
        ('O6', 1, DATE '2024-07-05', 'E3', 9999.0, 0.0),
        ('O9', 1, DATE '2024-06-01', 'E9', 5.0, 0.0))
        t(order_id, line_no, order_date, erp_customer_id, amount, returned_amount)""")
    con.execute("""CREATE TABLE stg_sales_visits AS SELECT 'f.xlsx|S1|2' AS record_key,
        DATE '2024-06-10' AS report_date, DATE '2024-06-09' AS visit_date""")
    con.execute("""CREATE TABLE stg_calls AS SELECT * FROM (VALUES
        ('K1', TIMESTAMP '2024-02-01 10:00:00', '咨询'), ('K2', TIMESTAMP '2024-06-20 09:30:00', '咨询'))
        t(call_id, called_at, call_type)""")
    con.execute("""CREATE TABLE stg_tickets AS SELECT 'T1' AS ticket_id, DATE '2024-06-29' AS opened_at""")
    # C4 (new in master on 06-28): open opportunity created 06-28 -> 机会, new this week
    con.execute("""CREATE TABLE stg_crm_opportunities AS SELECT * FROM (VALUES
        ('P1', 'A1', DATE '2023-08-01', 'won', DATE '2023-09-01', TIMESTAMP '2023-09-01 00:00:00'),
        ('P4', 'A4', DATE '2024-06-28', 'open', NULL, TIMESTAMP '2024-06-28 00:00:00'))
        t(opp_id, account_id, created_at, status, closed_at, updated_at)""")
    con.execute("""CREATE TABLE stg_reps AS SELECT * FROM (VALUES
        ('R01', '张三', NULL), ('R02', '李四', DATE '2024-05-01')) t(rep_id, rep_name, left_at)""")
    return con


@pytest.fixture
def con(tmp_path):
    c = build_db(tmp_path / "crm.duckdb")
    yield c
    c.close()


def test_read_history_through_xref(con):
    h = sg.read_history(con)
    assert h.orders.groupby("customer_id")["amount"].sum().to_dict() == {
        "C000001": 880000.0, "C000002": 1000.0, "C000003": 19999.0}   # lines summed, returns netted
    assert h.orders["order_id"].nunique() == 6                          # O9 (no master id) dropped
    assert sorted(h.contacts["channel"]) == ["call", "call", "visit"]
    assert h.service["customer_id"].tolist() == ["C000002"]            # 咨询 calls are not service
    assert h.newest_date().isoformat() == "2024-07-05"


def test_stages_and_weekly_metrics(con):
    p = sg.load_params()
    h = sg.read_history(con, p.stages)
    st = sg.lifecycle_stages(h, AS_OF, p.stages).set_index("customer_id")["stage"].to_dict()
    assert st == {"C000001": "用户", "C000002": "用户", "C000003": "流失", "C000004": "机会",
                  "C000005": "待识别"}
    m = sg.segments_weekly_metrics(con, AS_OF, p)
    assert m == {
        "segments_as_of": "2024-07-01", "segments_customers": 5,
        "segments_stage_to_identify": 1, "segments_stage_potential": 0, "segments_stage_opportunity": 1,
        "segments_stage_ordering": 0, "segments_stage_user": 2, "segments_stage_churned": 1,
        # C4 first seen 06-28; C2 was 潜在 on 06-24 (visit 06-09); C3 already 流失 on 06-24
        "segments_new_customers_week": 1, "segments_lost_week": 0, "segments_won_back_week": 0,
        # revenue > 0: C1, C3, C2 -> top ceil(0.2*3)=1 = C1: 122 days without an order (>180? no),
        # last touch 06-20 (11 days) -> not slipping with defaults
        "segments_slipping_away": 0,
    }
    before = sg.lifecycle_stages(h, "2024-06-24", p.stages)
    assert before.set_index("customer_id")["stage"].to_dict() == {
        "C000001": "用户", "C000002": "潜在", "C000003": "流失", "C000004": None, "C000005": "待识别"}
    # order on 07-05 (after as_of) ignored; as of 07-05 it wins C3 back
    assert sg.lifecycle_stages(h, "2024-07-05", p.stages).set_index("customer_id").loc["C000003", "stage"] == "用户"


def test_slipping_away_with_rep(con):
    p = sg.load_params()
    h = sg.read_history(con, p.stages)
    st = sg.lifecycle_stages(h, AS_OF, p.stages)
    sp = p.slipping.model_copy(update={"top_share": 1.0, "no_order_days": 100, "no_contact_days": 30})
    slip = sg.slipping_away(st, h.customers, h.reps, sp)
    # C1: 122 days no order (> 100); C2 recent both; C3 流失 excluded
    assert slip["customer_id"].tolist() == ["C000001"]
    row = slip.iloc[0]
    assert (row["rep_name"], bool(row["no_order"]), bool(row["no_contact"])) == ("张三", True, False)
    sp2 = sp.model_copy(update={"exclude_stages": []})
    slip2 = sg.slipping_away(st, h.customers, h.reps, sp2)
    assert slip2["customer_id"].tolist() == ["C000001", "C000003"]     # revenue desc
    assert slip2.iloc[1]["rep_name"] == "李四" and pd.notna(slip2.iloc[1]["rep_left_at"])


def test_crosstab_and_filters(con):
    h = sg.read_history(con)
    tab = sg.crosstab(h.customers, "region", "scope")
    assert tab.loc["华东", "中小企业"] == 1 and tab.loc["华南", "合计"] == 2 and tab.loc["合计", "合计"] == 5
    rev = sg.crosstab(sg.customer_facts(h, AS_OF, sg.StageRules()).merge(h.customers), "region",
                      "industry", values="revenue")
    assert rev.loc["华北", "金融"] == 880000.0
    assert sg.filter_customers(h.customers, region="华东", rep="R02")["customer_id"].tolist() == ["C000003"]
    assert len(sg.filter_customers(h.customers, region="(全部)")) == 5


def test_missing_master_is_a_user_error(tmp_path):
    from crmlib.errors import UserError
    c = duckdb.connect(str(tmp_path / "x.duckdb"))
    with pytest.raises(UserError, match="crm resolve"):
        sg.read_history(c)


def test_clusters_recover_planted_groups():
    """Three planted behaviour groups (different order scale); KMeans on log1p features finds them."""
    from sklearn.metrics import adjusted_rand_score
    rng = np.random.default_rng(0)
    n = 150
    group = np.repeat([0, 1, 2], n)
    scale = np.array([1e6, 1e4, 1e2])[group]
    feats = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(3 * n)],
        "revenue": scale * rng.lognormal(0, 0.3, 3 * n),
        "n_orders": np.array([20, 5, 1])[group] + rng.integers(0, 2, 3 * n),
        "avg_order": 0.0, "n_contacts": rng.integers(0, 5, 3 * n), "n_opportunities": 0,
        "n_tickets": 0, "recency_days": 30.0, "tenure_days": 400.0,
    })
    feats["avg_order"] = feats["revenue"] / feats["n_orders"]
    cp = sg.load_params().clusters.model_copy(update={"features": ["revenue", "n_orders", "avg_order"]})
    res = sg.fit_clusters(feats, cp)
    assert res.k == 3
    assert adjusted_rand_score(group, res.labels["cluster"]) == 1.0
    assert res.profile["name"].tolist() == ["高价值", "中价值", "低价值"]
    assert res.profile["customers"].tolist() == [150, 150, 150]
    assert res.profile["revenue_share"].iloc[0] > 0.98
    assert (res.labels.groupby("cluster")["customer_id"].min().tolist()
            == ["C000000", "C000150", "C000300"])            # cluster 0 = highest revenue
    assert res.stability["ari"].min() == 1.0
    assert list(res.silhouette["k"]) == list(range(cp.k_min, cp.k_max + 1))


def add_receipts(con):
    """Invoices (as of 2024-07-01): C1 -6, +10 and one paid after as_of (30 days late at as_of);
    C3 one never paid (396 days at as_of, capped at 90) and +30; C2's only invoice is not due yet;
    E9 has no master id."""
    con.execute("""CREATE TABLE stg_receipts AS SELECT * FROM (VALUES
        ('R1', 'E1', DATE '2023-10-01', DATE '2023-09-25'),
        ('R2', 'E1', DATE '2024-04-01', DATE '2024-04-11'),
        ('R3', 'E3', DATE '2023-06-01', NULL),
        ('R4', 'E3', DATE '2023-07-20', DATE '2023-08-19'),
        ('R5', 'E2', DATE '2024-07-27', NULL),
        ('R6', 'E9', DATE '2024-01-01', NULL),
        ('R7', 'E1', DATE '2024-06-01', DATE '2024-07-10'))
        t(receipt_id, erp_customer_id, due_date, paid_date)""")


def test_payment_facts_through_xref(con):
    add_receipts(con)
    assert sg.read_history(con).receipts is None                      # only read on request
    h = sg.read_history(con, receipts=True)
    assert h.receipts["customer_id"].tolist() == ["C000001"] * 3 + ["C000002"] + ["C000003"] * 2
    pay = sg.payment_facts(h.receipts, AS_OF, 90).set_index("customer_id")
    assert pay.index.tolist() == ["C000001", "C000003"]               # C2: nothing due yet
    assert pay.loc["C000001", "days_late"] == pytest.approx((-6 + 10 + 30) / 3)
    assert pay.loc["C000003", "days_late"] == pytest.approx((90 + 30) / 2)
    assert pay["invoices_due"].tolist() == [3, 2]
    # a week later R7 is paid (39 days late); R3 stays at the cap
    later = sg.payment_facts(h.receipts, "2024-07-15", 90).set_index("customer_id")["days_late"]
    assert later.to_dict() == pytest.approx({"C000001": (-6 + 10 + 39) / 3, "C000003": 60.0})
    assert sg.payment_facts(h.receipts, AS_OF, 365).set_index("customer_id").loc[
        "C000003", "days_late"] == pytest.approx((365 + 30) / 2)


def test_cluster_features_per_year_and_days_late(con):
    add_receipts(con)
    p = sg.load_params()
    h = sg.read_history(con, p.stages, receipts=True)
    facts = sg.customer_facts(h, AS_OF, p.stages)
    f = sg.cluster_features(facts, AS_OF, p.clusters, h.receipts).set_index("customer_id")
    # C1 known since its opportunity of 2023-08-01: 335 days, annualised over at least 365
    assert f.loc["C000001", "tenure_days"] == 335
    assert (f.loc["C000001", "revenue_per_year"], f.loc["C000001", "orders_per_year"]) == (880000.0, 2.0)
    # C3 known since its order of 2023-05-01: 427 days; 10,000 in 2 orders (O6 is after as_of)
    assert f.loc["C000003", "tenure_days"] == 427
    assert f.loc["C000003", "revenue_per_year"] == pytest.approx(10000 * 365 / 427)
    assert f.loc["C000003", "orders_per_year"] == pytest.approx(2 * 365 / 427)
    assert f.loc["C000001", "days_late"] == pytest.approx(34 / 3) and f.loc["C000003", "days_late"] == 60
    assert np.isnan(f.loc["C000002", "days_late"]) and f.loc["C000005", "revenue_per_year"] == 0
    cp = p.clusters.model_copy(update={"rate_min_days": 30})
    f30 = sg.cluster_features(facts, AS_OF, cp, h.receipts).set_index("customer_id")
    assert f30.loc["C000001", "revenue_per_year"] == pytest.approx(880000 * 365 / 335)
    from crmlib.errors import UserError
    with pytest.raises(UserError, match="receipts"):
        sg.cluster_features(facts, AS_OF, p.clusters)                 # days_late is a default feature


def test_clusters_on_payment_behaviour():
    """Three planted groups (big buyers paying 5 days early, mid 15 days late, small 45 days late):
    days_late is standardised as it is (log1p of a negative would be NaN) and customers with no
    invoice due yet take the median."""
    from sklearn.metrics import adjusted_rand_score
    rng = np.random.default_rng(1)
    n = 60
    group = np.repeat([0, 1, 2], n)
    feats = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(3 * n)],
        "revenue_per_year": np.exp(np.array([14.0, 12.0, 10.0])[group] + rng.normal(0, 0.2, 3 * n)),
        "orders_per_year": np.array([12.0, 4.0, 1.0])[group] * rng.uniform(0.9, 1.1, 3 * n),
        "days_late": np.array([-5.0, 15.0, 45.0])[group] + rng.normal(0, 2, 3 * n),
    })
    feats["revenue"] = feats["revenue_per_year"] * 2
    feats["n_orders"] = np.ceil(feats["orders_per_year"] * 2)
    no_invoice = [n, n + 1, n + 2]             # three of the middle group have nothing due yet
    feats.loc[no_invoice, "days_late"] = np.nan
    cp = sg.load_params().clusters
    assert cp.features == ["revenue_per_year", "orders_per_year", "days_late"]
    res = sg.fit_clusters(feats, cp)
    assert res.k == 3
    assert adjusted_rand_score(group, res.labels["cluster"]) == 1.0  # the median (about 15) is the middle
    assert res.profile["name"].tolist() == ["高价值", "中价值", "低价值"]
    assert res.profile["customers"].tolist() == [60, 60, 60]
    # NaN left out of the profile mean: the middle group's mean is over its 57 invoiced customers
    assert res.profile["days_late"].round(0).tolist() == [-5.0, 15.0, 45.0]
    assert res.stability["ari"].min() == 1.0
