"""`crm plan` (客户资源计划) through the real CLI: the seed's table, rounding, and user errors."""
from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crmlib import cli
from crmlib.funnel import PlanRates, resource_plan

FIXTURE = Path(__file__).parent / "fixtures" / "plan_targets.csv"
SEED_TABLE = [
    # region, revenue target, orders, opportunities, potentials, target customers (leads)
    ["北京公司", "250", "25", "50", "500", "25000"],
    ["上海公司", "100", "10", "20", "200", "10000"],
    ["深圳公司", "100", "10", "20", "200", "10000"],
    ["沈阳公司", "20", "2", "4", "40", "2000"],
]


def _read(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def test_plan_reproduces_seed_table(tmp_path, capsys):
    out = tmp_path / "plan.csv"
    rc = cli.main(["plan", str(FIXTURE), "--avg-order-value", "10", "--rates", "0.02,0.1,0.5",
                   "--out", str(out)])
    assert rc == 0
    rows = _read(out)
    assert rows[0] == ["region", "revenue_target", "orders", "opportunities", "potentials", "leads"]
    assert rows[1:] == SEED_TABLE
    printed = capsys.readouterr().out
    assert "25000" in printed and "rates (given)" in printed


def test_rounding_up_at_each_stage_is_exact():
    # 0.1 and 0.02 are not binary fractions: a float pipeline gives ceil(25.000000000000004) = 26
    r = PlanRates(Fraction("0.02"), Fraction("0.1"), Fraction("0.5"))
    plan = resource_plan([("X", Fraction("250"), "250")], Fraction("10"), r)
    assert plan.iloc[0][["orders", "opportunities", "potentials", "leads"]].tolist() == [25, 50, 500, 25000]
    # 21 / 10 = 2.1 → 3 orders; 3 / 0.5 = 6; 6 / 0.3 = 20 exactly; 20 / 0.07 = 285.71 → 286
    r2 = PlanRates(Fraction("0.07"), Fraction("0.3"), Fraction("0.5"))
    plan2 = resource_plan([("Y", Fraction(21), "21")], Fraction(10), r2)
    assert plan2.iloc[0][["orders", "opportunities", "potentials", "leads"]].tolist() == [3, 6, 20, 286]
    # zero target: nothing needed
    plan3 = resource_plan([("Z", Fraction(0), "0")], Fraction(10), r2)
    assert plan3.iloc[0][["orders", "leads"]].tolist() == [0, 0]


def _run_err(capsys, argv):
    rc = cli.main(argv)
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize("content, expected", [
    ("region,target\n北京公司,250\n", ["column revenue_target", "missing column"]),
    ("revenue_target\n250\n", ["column region", "missing column"]),
    ("region,revenue_target\n北京公司,250\n上海公司,abc\n", ["row 3", "column revenue_target", "not a number"]),
    ("region,revenue_target\n北京公司,-5\n", ["row 2", "column revenue_target", "negative", "same unit as --avg"]),
    ("region,revenue_target\n北京公司,\n", ["row 2", "column revenue_target", "blank", "a plain number >= 0"]),
    ("region,revenue_target\n北京公司,1000万\n", ["row 2", "'1000万' is not a number", "without units such as 万"]),
    ("region,revenue_target\n,5\n", ["row 2", "column region", "blank"]),
    ("region,revenue_target\n北京公司,5\n北京公司,6\n", ["row 3", "appears twice"]),
    ("", ["empty"]),
    ("region,revenue_target\n", ["no data rows"]),
])
def test_bad_targets_csv(tmp_path, capsys, content, expected):
    f = tmp_path / "targets.csv"
    f.write_text(content, encoding="utf-8")
    rc, err = _run_err(capsys, ["plan", str(f), "--avg-order-value", "10", "--rates", "0.02,0.1,0.5"])
    assert rc == 2
    assert "Traceback" not in err and str(f) in err
    for e in expected:
        assert e in err


@pytest.mark.parametrize("rates, expected", [
    ("0.02,0.1", "three comma-separated"),
    ("0.02,0,0.5", "must be in (0, 1]"),
    ("0.02,0.1,1.5", "must be in (0, 1]"),
    ("0.02,x,0.5", "not a number"),
    ("-0.1,0.1,0.5", "must be in (0, 1]"),
])
def test_bad_rates(capsys, rates, expected):
    rc, err = _run_err(capsys, ["plan", str(FIXTURE), "--avg-order-value", "10", f"--rates={rates}"])
    assert rc == 2 and expected in err


def test_bad_avg_order_value_and_missing_file(tmp_path, capsys):
    rc, err = _run_err(capsys, ["plan", str(FIXTURE), "--avg-order-value", "0", "--rates", "0.02,0.1,0.5"])
    assert rc == 2 and "greater than 0" in err
    rc, err = _run_err(capsys, ["plan", str(tmp_path / "nope.csv"), "--avg-order-value", "10"])
    assert rc == 2 and "not found" in err


def test_gbk_targets_file(tmp_path):
    f = tmp_path / "targets_gbk.csv"
    f.write_bytes("region,revenue_target\r\n北京公司,250\r\n".encode("gbk"))
    out = tmp_path / "plan.csv"
    assert cli.main(["plan", str(f), "--avg-order-value", "10", "--rates", "0.02,0.1,0.5",
                     "--out", str(out)]) == 0
    assert _read(out)[1] == SEED_TABLE[0]


def _lifecycle_db(path: Path) -> None:
    """Smallest database the historical rates need (region 华北, 10 master customers C1..C10).

    CRM accounts: C1..C6 opened 2023-06-01, C7 and C8 opened 2024-08-01. Contacts: C1..C5 visited 2024-01-05,
    C7 and C8 2024-08-01. Opportunities: C1 won, C2 lost, C6 lost, C7 open (created 2024-09-01). Order: C1
    (2024-03-01: with the contacts' 2024-01-05 the history has begun by then). → target→potential = 8/10
    (C1..C8: C6 counts through its opportunity) = 0.8; potential→opportunity = new potentials (accounts opened
    after 2024-03-01) C7 (converted), C8 (not) = 0.5; opportunity→order = decided deals 1 won / 3 = 0.3333.
    """
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customer_master (customer_id VARCHAR, region VARCHAR, industry VARCHAR, "
                "scope VARCHAR, owner_rep_id VARCHAR, first_seen DATE)")
    con.executemany("INSERT INTO customer_master VALUES (?, '华北', '金融', '大客户及行业客户', 'R1', "
                    "DATE '2023-06-01')", [[f"C{i}"] for i in range(1, 11)])
    con.execute("CREATE TABLE customer_records (record_id VARCHAR, source VARCHAR, record_date DATE)")
    con.execute("CREATE TABLE customer_xref (record_id VARCHAR, customer_id VARCHAR)")
    visits = [(i, "2024-01-05") for i in range(1, 6)] + [(7, "2024-08-01"), (8, "2024-08-01")]
    for i, d in visits:
        con.execute("INSERT INTO customer_records VALUES (?, 'sales', ?)", [f"sales:v{i}", d])
        con.execute("INSERT INTO customer_xref VALUES (?, ?)", [f"sales:v{i}", f"C{i}"])
    con.execute("CREATE TABLE stg_crm_opportunities (opp_id VARCHAR, account_id VARCHAR, owner_rep_id VARCHAR, "
                "product_line VARCHAR, amount DOUBLE, created_at DATE, expected_close DATE, lost_reason VARCHAR, "
                "competitor VARCHAR)")
    con.execute("CREATE TABLE stg_crm_opportunity_stages (opp_id VARCHAR, stage VARCHAR, entered_at TIMESTAMP)")
    for n, (c, created, final) in enumerate([("C1", "2024-02-01", "赢单"), ("C2", "2024-02-01", "输单"),
                                              ("C6", "2024-02-01", "输单"), ("C7", "2024-09-01", None)]):
        con.execute("INSERT INTO stg_crm_opportunities VALUES (?, ?, 'R1', 'x', 10, ?, NULL, NULL, NULL)",
                    [f"O{n}", f"A{c}", created])
        con.execute("INSERT INTO stg_crm_opportunity_stages VALUES (?, '获得销售机会', ?)", [f"O{n}", created])
        if final:
            con.execute("INSERT INTO stg_crm_opportunity_stages VALUES (?, ?, TIMESTAMP '2024-12-31 10:00')",
                        [f"O{n}", final])
    con.execute("CREATE TABLE stg_crm_accounts (account_id VARCHAR, region VARCHAR, industry VARCHAR, "
                "created_at DATE)")
    for i in range(1, 9):
        con.execute("INSERT INTO stg_crm_accounts VALUES (?, '华北', '金融', ?)",
                    [f"AC{i}", "2024-08-01" if i in (7, 8) else "2023-06-01"])
        con.execute("INSERT INTO customer_xref VALUES (?, ?)", [f"crm:AC{i}", f"C{i}"])
    con.execute("CREATE TABLE stg_reps (rep_id VARCHAR, rep_name VARCHAR, region VARCHAR)")
    con.execute("CREATE TABLE stg_orders (order_id VARCHAR, erp_customer_id VARCHAR, order_date DATE)")
    con.execute("INSERT INTO stg_orders VALUES ('S1', 'E1', DATE '2024-03-01')")
    con.execute("INSERT INTO customer_xref VALUES ('erp:E1', 'C1')")
    con.close()


def test_plan_with_historical_rates(tmp_path, capsys):
    db = tmp_path / "crm.duckdb"
    _lifecycle_db(db)
    targets = tmp_path / "t.csv"
    targets.write_text("region,revenue_target\n华北,100\n", encoding="utf-8")
    out = tmp_path / "plan.csv"
    rc = cli.main(["plan", str(targets), "--avg-order-value", "10", "--db", str(db), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "historical" in printed and "as of 2024-12-31" in printed and "0.8000, 0.5000, 0.3333" in printed
    # 10 orders; 10 / 0.3333 = 30.003 → 31 opportunities; 31 / 0.5 = 62; 62 / 0.8 = 77.5 → 78
    assert _read(out)[1] == ["华北", "100", "10", "31", "62", "78"]
    # a region the database does not know is a user error naming the column
    targets.write_text("region,revenue_target\n北京公司,100\n", encoding="utf-8")
    rc, err = _run_err(capsys, ["plan", str(targets), "--avg-order-value", "10", "--db", str(db)])
    assert rc == 2 and "北京公司" in err and "column region" in err


def test_as_of_long_after_the_data_warns_and_goes_on(tmp_path, capsys):
    db = tmp_path / "crm.duckdb"
    _lifecycle_db(db)          # newest system-stamped record: a stage entry on 2024-12-31
    targets = tmp_path / "t.csv"
    targets.write_text("region,revenue_target\n华北,100\n", encoding="utf-8")
    args = ["plan", str(targets), "--avg-order-value", "10", "--db", str(db), "--as-of"]
    rc = cli.main([*args, "2025-03-01"])
    err = capsys.readouterr().err
    assert rc == 0
    assert err.startswith("crm plan: warning: --as-of 2025-03-01 is 60 days after the newest system-stamped "
                          "record (2024-12-31)")
    assert cli.main([*args, "2025-01-07"]) == 0 and capsys.readouterr().err == ""


def test_bad_as_of_is_refused_with_given_rates_too(capsys):
    rc, err = _run_err(capsys, ["plan", str(FIXTURE), "--avg-order-value", "10", "--rates", "0.02,0.1,0.5",
                                "--as-of", "garbage"])
    assert rc == 2 and "--as-of 'garbage' is not a date" in err


def test_historical_rates_on_a_database_not_resolved_yet(tmp_path, capsys):
    # what `crm load` leaves before `crm resolve`: staging tables, no customer master
    db = tmp_path / "loaded.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE stg_orders (order_id VARCHAR, erp_customer_id VARCHAR, order_date DATE)")
    con.execute("INSERT INTO stg_orders VALUES ('S1', 'E1', DATE '2024-03-01')")
    con.execute("CREATE TABLE stg_crm_opportunity_stages (opp_id VARCHAR, stage VARCHAR, entered_at TIMESTAMP)")
    for t in ("stg_crm_opportunities", "stg_crm_accounts", "stg_reps"):
        con.execute(f"CREATE TABLE {t} (x VARCHAR)")
    con.close()
    rc, err = _run_err(capsys, ["plan", str(FIXTURE), "--avg-order-value", "10", "--db", str(db)])
    assert rc == 2 and "Traceback" not in err
    assert f"file {db}: the database has no customer_master, customer_xref, customer_records tables" in err
    assert "run `crm load` and `crm resolve` first" in err


def test_no_history_names_the_database_not_the_targets(tmp_path, capsys):
    db = tmp_path / "crm.duckdb"
    _lifecycle_db(db)
    targets = tmp_path / "t.csv"
    targets.write_text("region,revenue_target\n华北,100\n", encoding="utf-8")
    # 2024-03-01: the history begins that day (the first order) and no account is opened after it by then
    # (C7's and C8's are 2024-08-01); the opportunities (created 2024-02-01) are all still open, too
    rc, err = _run_err(capsys, ["plan", str(targets), "--avg-order-value", "10", "--db", str(db),
                                "--as-of", "2024-03-01"])
    assert rc == 2
    assert (f"file {db}: no region has historical potential to opportunity conversions yet (no new potentials "
            "(CRM accounts opened since the order and contact history began))") in err
    assert str(targets) not in err and "column region" not in err
    # before the data: the oldest system-stamped date is the first stage entry, 2024-02-01
    rc, err = _run_err(capsys, ["plan", str(targets), "--avg-order-value", "10", "--db", str(db),
                                "--as-of", "2024-01-15"])
    assert rc == 2
    assert (f"file {db}: --as-of 2024-01-15 is before the oldest record in the database (2024-02-01): there is "
            "nothing to report for that date (give a date from 2024-02-01 to ") in err and "or pass --rates)" in err


def test_plan_actuals_count_the_last_year_in_the_plans_units(tmp_path):
    """The last 12 months to 2024-12-31 (from 2024-01-01) in _lifecycle_db: new potentials C7 and C8 (accounts
    opened 2024-08-01; C1..C6's are from 2023); opportunities created O0, O1, O2 (2024-02-01) and O3
    (2024-09-01); deals won: O0 (2024-12-31); no target lists."""
    from crmlib import funnel as fn

    db = tmp_path / "crm.duckdb"
    _lifecycle_db(db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        p = fn.FunnelParams()
        state = fn.read_funnel(con, "2024-12-31", p).state
        got = fn.plan_actuals(con, state, "2024-12-31", p).set_index("region")
        # six months: from 2024-07-01 only O3 was created and C7, C8 opened their accounts
        half = fn.plan_actuals(con, state, "2024-12-31", p, months=6).set_index("region")
        before = fn.plan_actuals(con, fn.read_funnel(con, "2024-06-30", p).state, "2024-06-30", p)
    finally:
        con.close()
    assert got.loc["华北", ["potential", "opportunity", "order"]].tolist() == [2, 4, 1]
    assert pd.isna(got.loc["华北", "target"])
    assert half.loc["华北", ["potential", "opportunity", "order"]].tolist() == [2, 1, 1]
    # as of 2024-06-30: no account opened yet in the year, O0..O2 created, nothing decided
    assert before.set_index("region").loc["华北", ["potential", "opportunity", "order"]].tolist() == [0, 3, 0]
