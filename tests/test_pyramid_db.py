"""The thin DuckDB readers: joins through customer_xref, as_of filtering, weekly metrics."""
import duckdb
import pandas as pd
import pytest

from crmlib import pyramid as pm
from crmlib.asof import resolve as resolve_as_of

SCHEMA = """
CREATE TABLE stg_orders (order_id VARCHAR, line_no INTEGER, order_date DATE, erp_customer_id VARCHAR,
    customer_name VARCHAR, product VARCHAR, qty DOUBLE, amount DOUBLE, cost DOUBLE, returned_amount DOUBLE,
    rep_id VARCHAR);
CREATE TABLE stg_receipts (receipt_id VARCHAR, order_id VARCHAR, erp_customer_id VARCHAR, invoice_date DATE,
    due_date DATE, paid_date DATE, amount DOUBLE);
CREATE TABLE stg_calls (call_id VARCHAR, called_at TIMESTAMP, call_type VARCHAR, company VARCHAR);
CREATE TABLE stg_sales_visits (record_key VARCHAR, rep_id VARCHAR, visit_date DATE, customer_name VARCHAR);
CREATE TABLE stg_crm_opportunities (opp_id VARCHAR, account_id VARCHAR, created_at DATE, amount DOUBLE);
CREATE TABLE customer_xref (record_id VARCHAR, customer_id VARCHAR, match_probability DOUBLE);
CREATE TABLE customer_master (customer_id VARCHAR, name VARCHAR, size VARCHAR, registered_capital DOUBLE,
    listed VARCHAR, region VARCHAR, industry VARCHAR);
"""


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "crm.duckdb"))
    c.execute(SCHEMA)
    # C000001 has two ERP ids (a duplicate the resolver merged); C000003 orders only after the first week
    c.execute("""INSERT INTO stg_orders VALUES
        ('O1', 1, '2024-01-02', 'E1', 'x', 'p', 1, 1000, 600, 0, 'R1'),
        ('O1', 2, '2024-01-02', 'E1', 'x', 'p', 1, 500, 300, 100, 'R1'),
        ('O2', 1, '2024-01-20', 'E1b', 'x', 'p', 1, 2000, 1500, 0, 'R1'),
        ('O3', 1, '2024-01-05', 'E2', 'y', 'p', 1, 300, 400, 0, 'R2'),
        ('O4', 1, '2024-01-10', 'E4', 'w', 'p', 1, 50, 20, 0, 'R2'),
        ('O5', 1, '2024-01-30', 'E3', 'z', 'p', 1, 800, 500, 0, 'R2'),
        ('O6', 1, '2024-01-30', 'EJ', '测试', 'p', 1, 999, 1, 0, 'R2')""")   # junk: no customer
    c.execute("""INSERT INTO stg_receipts VALUES
        ('R1', 'O1', 'E1', '2024-01-02', '2024-01-12', '2024-01-07', 1400),
        ('R2', 'O3', 'E2', '2024-01-05', '2024-01-15', NULL, 300)""")
    c.execute("""INSERT INTO stg_calls VALUES
        ('K1', '2024-01-03 09:00', '投诉', 'y'), ('K2', '2024-01-04 10:00', '表扬', 'x'),
        ('K3', '2024-02-04 10:00', '表扬', 'x')""")
    c.execute("""INSERT INTO stg_sales_visits VALUES ('f.xlsx|S1|3', 'R1', '2024-01-03', 'x'),
        ('f.xlsx|S1|4', 'R1', '2024-01-25', 'x')""")
    c.execute("INSERT INTO stg_crm_opportunities VALUES ('P1', 'A1', '2024-01-08', 10)")
    c.execute("""INSERT INTO customer_xref VALUES
        ('erp:E1', 'C000001', 1), ('erp:E1b', 'C000001', 0.97), ('erp:E2', 'C000002', 1),
        ('erp:E3', 'C000003', 1), ('erp:E4', 'C000004', 1), ('erp:EJ', NULL, NULL),
        ('callcenter:K1', 'C000002', 0.9), ('callcenter:K2', 'C000001', 0.9), ('callcenter:K3', 'C000001', 0.9),
        ('sales:f.xlsx|S1|3', 'C000001', 0.95), ('sales:f.xlsx|S1|4', 'C000001', 0.95),
        ('crm:A1', 'C000001', 1)""")
    c.execute("""INSERT INTO customer_master VALUES
        ('C000001', '甲银行', '大型', 50000, 'Y', '华东', '金融'),
        ('C000002', '乙公司', '小型', 100, 'N', '华北', '制造'),
        ('C000003', '丙集团', '中型', NULL, 'N', '华南', '政府'),
        ('C000004', '丁厂', '微型', 10, 'N', '西南', '制造'),
        ('C000009', '没下单', '大型', 1, 'N', '西北', '制造')""")
    yield c
    c.close()


def test_indicators_from_db(con):
    p = pm.load_params()
    ind = pm.indicators_from_db(con, "2024-01-25", p)
    assert list(ind.index) == ["C000001", "C000002", "C000004"]     # C000003 orders on Jan 30; C000009 never
    c1 = ind.loc["C000001"]
    assert (c1.n_orders, c1.revenue, c1.profit) == (2, 3400.0, 1000.0)  # 3500 - 100 returned; cost 2400
    assert (c1.max_order, c1.purchase_interval, c1.tenure_days) == (2000.0, 18.0, 23)
    assert (c1.receipts_total, c1.collection_days) == (1400.0, 5.0)
    assert (c1.activities, c1.praise, c1.complaints) == (3, 1, 0)      # 2 visits + 1 opportunity
    assert (c1["size"], c1.listed, c1.registered_capital) == (3.0, 1.0, 50000.0)
    c2 = ind.loc["C000002"]
    assert (c2.profit, c2.overdue_amount, c2.overdue_ratio, c2.complaints) == (-100.0, 300.0, 1.0, 1)
    # default as_of: the newest system-stamped date (the call on Feb 4), not the last order (Jan 30)
    assert resolve_as_of(con, None) == pd.Timestamp("2024-02-04").date()


def test_transactions_aggregated_in_duckdb_equal_the_pandas_ones(con):
    # a return line that belongs to no order, and a line without cost, on top of the fixture
    con.execute("""INSERT INTO stg_orders VALUES (NULL, 1, '2024-01-06', 'E2', 'y', 'p', 1, 0, NULL, 40, 'R2'),
                   ('O7', 1, '2024-01-21', 'E4', 'w', 'p', 1, 70, NULL, 0, 'R2')""")
    for day in ("2024-01-02", "2024-01-06", "2024-01-25", "2024-02-04"):
        lines = pm.read_inputs(con, day)["orders"]
        want = pm.transaction_indicators(lines, day)
        got = pm.transaction_indicators_sql(con, day)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    c2 = got.loc["C000002"]
    assert (c2.return_count, c2.return_amount, c2.revenue) == (1, 40.0, 260.0)


def test_weekly_metrics(con):
    m = pm.pyramid_weekly_metrics(con, "2024-01-30", pm.load_params())
    assert all(k.startswith("pyramid_") for k in m)
    assert m["pyramid_customers"] == 4
    assert sum(m[f"pyramid_{t}"] for t in pm.TIERS) == 4
    # revenue 3400, 800, 300, 50 -> top ceil(0.8) = 1 customer: 3400 / 4550
    assert m["pyramid_top20_revenue_share"] == pytest.approx(3400 / 4550)
    assert m["pyramid_loss_making"] == 1
    assert m["pyramid_new"] == 1                  # C000003 first ordered this week
    # a week with no orders yet: nothing scored, nothing breaks
    empty = pm.pyramid_weekly_metrics(con, "2023-12-01", pm.load_params())
    assert empty["pyramid_customers"] == 0 and empty["pyramid_upgrades"] == 0


def test_truth_mapping_majority_and_spearman(con, tmp_path):
    # C000001's records: 2 ERP ids + calls + visits of true T1, one visit mis-attributed to T2 -> T1 wins
    pd.DataFrame({"source": ["erp", "erp", "erp", "sales", "sales", "callcenter", "erp"],
                  "source_key": ["E1", "E1b", "E2", "f.xlsx|S1|3", "f.xlsx|S1|4", "K1", "E4"],
                  "true_customer_id": ["T1", "T1", "T2", "T1", "T2", "T2", "T4"]}
                 ).to_csv(tmp_path / "records.csv", index=False)
    pd.DataFrame({"true_customer_id": ["T1", "T2", "T4"], "value_group": [4, 1, 2],
                  "latent_value": [3.0, 1.0, 2.0]}).to_csv(tmp_path / "customers.csv", index=False)
    truth = pm.truth_mapping(con, tmp_path)
    assert truth["true_customer_id"].to_dict() == {"C000001": "T1", "C000002": "T2", "C000004": "T4"}
    scored = pd.DataFrame({"score": [10.0, 20.0, 30.0]}, index=["C000001", "C000002", "C000004"])
    # ranks of score 1, 2, 3 vs latent 3, 1, 2: d = -2, 1, 1 -> rho = 1 - 6 * 6 / (3 * 8) = -0.5
    r = pm.latent_value_correlation(scored, truth)
    assert r["n"] == 3 and r["spearman_latent"] == pytest.approx(-0.5)
