import importlib.util
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from crmlib.cli import main

REPO = Path(__file__).resolve().parent.parent
TX = "cust,day,amt\na,2024-01-01,100\nb,2024-01-02,10\nc,2024-01-03,30\na,2024-01-10,50\n"


def _run(capsys, *argv):
    code = main(["pyramid", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_small_list_end_to_end(tmp_path, capsys):
    f = tmp_path / "tx.csv"
    f.write_text("cust,day,amt\n"
                 "a,2024-01-01,100\nb,2024-01-02,10\nc,2024-01-03,30\nd,2024-01-04,20\ne,2024-01-05,40\n"
                 "a,2024-01-10,50\nc,2024-01-11,-5\n", encoding="utf-8")
    out, summ = tmp_path / "tiers.csv", tmp_path / "s.json"
    code, stdout, _ = _run(capsys, f, "--customer", "cust", "--date", "day", "--amount", "amt",
                           "--out", out, "--summary", summ)
    assert code == 0 and "5 customers" in stdout
    tiers = pd.read_csv(out, dtype={"customer": str})
    assert list(tiers.columns) == ["customer", "score", "tier"]
    assert tiers["customer"].iloc[0] == "a" and tiers["tier"].iloc[0] == "vip"
    assert set(tiers["tier"]) <= {"vip", "important", "ordinary", "small"}
    s = json.loads(summ.read_text(encoding="utf-8"))
    # revenue a 150, e 40, d 20, c 30 - 5 = 25, b 10 -> top ceil(0.2 * 5) = 1 customer holds 150 / 245
    assert s["top20_revenue_share"] == pytest.approx(150 / 245, abs=1e-6)
    assert s["customers"] == 5 and sum(s["tier_counts"].values()) == 5
    # Gini of 10, 20, 25, 40, 150: 2 * (10 + 40 + 75 + 160 + 750) / (5 * 245) - 6 / 5
    assert s["gini"] == pytest.approx(2 * 1035 / (5 * 245) - 1.2, abs=1e-6)


@pytest.mark.parametrize("content, args, expect", [
    ("cust,day,amt\na,2024-01-01,1\n", ("--customer", "client"), "column client"),
    ("cust,day,amt\na,2024-01-01,1\nb,2024-01-02,abc\n", (), "row 3, column amt"),
    ("cust,day,amt\na,2024-01-01,1\nb,2024-13-45,2\n", (), "row 3, column day"),
    ("cust,day,amt\na,2024-01-01,1\n,2024-01-02,2\n", (), "row 3, column cust"),
    ("cust day amt\na 2024-01-01 1\n", (), "whitespace-separated"),
    # infinite amounts would make every share and the Gini nan
    ("cust,day,amt\na,2024-01-01,1\nb,2024-01-02,inf\n", (), "row 3, column amt: amount 'inf' is not a finite"),
    ("cust,day,amt\na,2024-01-01,1\nb,2024-01-02,1e400\n", (), "row 3, column amt: amount '1e400' is not a fin"),
])
def test_user_errors_name_file_row_column(tmp_path, capsys, content, args, expect):
    f = tmp_path / "tx.csv"
    f.write_text(content, encoding="utf-8")
    argv = {"--customer": "cust", "--date": "day", "--amount": "amt"}
    argv.update(dict(zip(args[::2], args[1::2], strict=True)))
    code, _, err = _run(capsys, f, *[x for kv in argv.items() for x in kv])
    assert code == 2
    assert "Traceback" not in err and str(f) in err and expect in err


@pytest.mark.parametrize("as_of", ["2025-02-30", "garbage"])
def test_bad_as_of_is_a_user_error(tmp_path, capsys, as_of):
    f = tmp_path / "tx.csv"
    f.write_text(TX, encoding="utf-8")
    code, _, err = _run(capsys, f, "--customer", "cust", "--date", "day", "--amount", "amt", "--as-of", as_of)
    assert code == 2
    assert f"--as-of {as_of!r} is not a date" in err and "YYYY-MM-DD" in err and "Traceback" not in err


def test_as_of_before_every_transaction_names_the_file_and_its_dates(tmp_path, capsys):
    f = tmp_path / "tx.csv"
    f.write_text(TX, encoding="utf-8")
    code, _, err = _run(capsys, f, "--customer", "cust", "--date", "day", "--amount", "amt", "--as-of", "2020-01-01")
    assert code == 2
    assert f"file {f}, column day: no transactions on or before --as-of 2020-01-01" in err
    assert "the file's dates run from 2024-01-01 to 2024-01-10" in err and "leave --as-of out" in err


def test_gbk_chinese_headers(tmp_path, capsys):
    f = tmp_path / "tx.csv"
    f.write_bytes("客户,日期,金额\n甲,20240101,100\n乙,20240102,50\n甲,20240105,30\n".encode("gbk"))
    out = tmp_path / "tiers.csv"
    code, stdout, err = _run(capsys, f, "--customer", "客户", "--date", "日期", "--amount", "金额", "--out", out)
    assert code == 0, err
    assert pd.read_csv(out)["customer"].tolist() == ["甲", "乙"]


def test_empty_file_is_a_user_error(tmp_path, capsys):
    f = tmp_path / "tx.csv"
    f.write_text("", encoding="utf-8")
    code, _, err = _run(capsys, f, "--customer", "c", "--date", "d", "--amount", "a")
    assert code == 2 and "not a readable CSV" in err


def _cdnow() -> Path | None:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent / "datasets" / "CDNOW_master.txt"
    return p if p.exists() else None


@pytest.mark.skipif(_cdnow() is None, reason="lifetimes CDNOW data file not installed")
def test_cdnow_true_concentration(tmp_path, capsys):
    raw = pd.read_csv(_cdnow(), sep=r"\s+", dtype={"customer_id": str, "date": str})
    assert len(raw) == 69659
    csv = tmp_path / "cdnow.csv"
    raw.to_csv(csv, index=False)
    out, summ = tmp_path / "tiers.csv", tmp_path / "summary.json"
    code, _, err = _run(capsys, csv, "--customer", "customer_id", "--date", "date", "--amount", "dollar_value",
                        "--out", out, "--summary", summ)
    assert code == 0, err
    s = json.loads(summ.read_text(encoding="utf-8"))
    tiers = pd.read_csv(out, dtype={"customer": str})
    assert s["customers"] == len(tiers) == tiers["customer"].nunique() == 23570   # every customer scored
    assert tiers["score"].between(0, 100).all()
    # independently: revenue per customer, top 4,714 (= 0.2 * 23,570) by revenue over the total
    rev = raw.groupby("customer_id")["dollar_value"].sum().sort_values(ascending=False)
    assert rev.iloc[:4714].sum() / rev.sum() == pytest.approx(0.677774, abs=1e-6)
    assert round(s["top20_revenue_share"], 3) == 0.678                   # the 2/8 rule says 0.80: it is not
    assert s["top_customers"] == 4714
    # Gini independently as 1 - 2 * (area under the Lorenz curve, trapezoids): 0.634571
    x = np.sort(rev.to_numpy())
    cum = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    assert 1 - 2 * ((cum[1:] + cum[:-1]) / 2 / len(x)).sum() == pytest.approx(0.634571, abs=1e-6)
    assert round(s["gini"], 3) == 0.635 and s["gini"] == pytest.approx(0.634571, abs=1e-6)
    assert sum(s["tier_counts"].values()) == 23570
    # the VIP tier holds far more than its head-count share of revenue
    assert s["revenue_share_by_tier"]["vip"] > 2 * s["tier_counts"]["vip"] / 23570


def _db(path: Path) -> None:
    """Three master customers with one order each: revenue 100 (C1), 300 (C2), 200 (C3); nothing else."""
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE stg_orders (order_id VARCHAR, line_no INTEGER, order_date DATE,
        erp_customer_id VARCHAR, amount DOUBLE, cost DOUBLE, returned_amount DOUBLE)""")
    con.execute("""INSERT INTO stg_orders VALUES ('O1', 1, '2024-01-02', 'E1', 100, 50, 0),
        ('O2', 1, '2024-01-03', 'E2', 300, 100, 0), ('O3', 1, '2024-01-04', 'E3', 200, 150, 0)""")
    con.execute("CREATE TABLE customer_xref (record_id VARCHAR, customer_id VARCHAR)")
    con.execute("INSERT INTO customer_xref VALUES ('erp:E1', 'C1'), ('erp:E2', 'C2'), ('erp:E3', 'C3')")
    con.execute("""CREATE TABLE customer_master (customer_id VARCHAR, name VARCHAR, size VARCHAR,
        registered_capital DOUBLE, listed VARCHAR, region VARCHAR, industry VARCHAR)""")
    con.execute("""INSERT INTO customer_master VALUES ('C1', '甲', NULL, NULL, NULL, '华北', NULL),
        ('C2', '乙', NULL, NULL, NULL, '华北', NULL), ('C3', '丙', NULL, NULL, NULL, '华北', NULL)""")
    con.close()


def _params(path: Path, weights: dict[str, float], **top) -> Path:
    """The shipped value model with only the given indicator weights (others 0) and top-level overrides."""
    data = yaml.safe_load((REPO / "params" / "value_model.yaml").read_text(encoding="utf-8"))
    for name, spec in data["indicators"].items():
        spec["weight"] = weights.get(name, 0)
    data.update(top)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_db_mode_writes_the_tiers_file(tmp_path, capsys):
    db, out = tmp_path / "crm.duckdb", tmp_path / "tiers.csv"
    _db(db)
    params = _params(tmp_path / "revenue_only.yaml", {"revenue": 1})
    code, stdout, err = _run(capsys, "--db", db, "--as-of", "2024-01-10", "--params", params, "--out", out)
    assert code == 0, err
    assert json.loads(stdout)["pyramid_customers"] == 3
    # revenue 300, 200, 100 -> percentile 1, 0.5, 0 -> scores 100 (vip), 50 (ordinary), 0 (small)
    assert out.read_text(encoding="utf-8").splitlines() == [
        "customer,score,tier", "C2,100.000000,vip", "C3,50.000000,ordinary", "C1,0.000000,small"]


def test_db_mode_warns_when_as_of_is_long_after_the_orders(tmp_path, capsys):
    db = tmp_path / "crm.duckdb"
    _db(db)                                  # the newest order: 2024-01-04
    params = _params(tmp_path / "revenue_only.yaml", {"revenue": 1})
    code, stdout, err = _run(capsys, "--db", db, "--as-of", "2024-01-10", "--params", params)
    assert code == 0 and err == ""           # 6 days: no warning
    code, stdout, err = _run(capsys, "--db", db, "--as-of", "2024-03-01", "--params", params)
    assert code == 0 and json.loads(stdout)["pyramid_customers"] == 3
    assert err.startswith("crm pyramid: warning: --as-of 2024-03-01 is 57 days after the newest "
                          "system-stamped record (2024-01-04)")


def test_db_mode_configuration_errors_surface(tmp_path, capsys):
    as_of = "2024-01-10"   # 3 customers; none ordered yet
    db = tmp_path / "crm.duckdb"
    _db(db)
    # transaction over finance: 3 one way, 5 the other way round (a[1][2] * a[2][1] = 15)
    ahp = {"criteria": ["transaction", "finance"], "matrix": [[1, 3], [5, 1]]}
    bad = _params(tmp_path / "bad_ahp.yaml", {"revenue": 1, "receipts_total": 1}, weighting="ahp", ahp=ahp)
    code, stdout, err = _run(capsys, "--db", db, "--as-of", as_of, "--params", bad)
    assert code == 2 and stdout == ""
    assert f"file {bad}, column ahp.matrix: AHP matrix is not reciprocal" in err
    zero = _params(tmp_path / "zero.yaml", {})
    code, stdout, err = _run(capsys, "--db", db, "--as-of", as_of, "--params", zero)
    assert code == 2 and stdout == ""
    assert f"file {zero}, column indicators: no indicator scored here has a weight above 0" in err
    # the shipped model on the same database: a week with fewer than two customers is empty, not an error
    code, stdout, err = _run(capsys, "--db", db, "--as-of", as_of)
    assert code == 0, err
    assert json.loads(stdout)["pyramid_customers"] == 3
    # a date before every record is refused, as with a transaction file
    code, stdout, err = _run(capsys, "--db", db, "--as-of", "2023-12-01")
    assert code == 2 and stdout == ""
    assert err == (f"crm pyramid: error: file {db}: --as-of 2023-12-01 is before the oldest record in the "
                   "database (2024-01-02): there is nothing to report for that date (give a date from "
                   "2024-01-02 to 2024-01-04, or leave it out for the newest week)\n")
