import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmlib.cli import main


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
])
def test_user_errors_name_file_row_column(tmp_path, capsys, content, args, expect):
    f = tmp_path / "tx.csv"
    f.write_text(content, encoding="utf-8")
    argv = {"--customer": "cust", "--date": "day", "--amount": "amt"}
    argv.update(dict(zip(args[::2], args[1::2], strict=True)))
    code, _, err = _run(capsys, f, *[x for kv in argv.items() for x in kv])
    assert code == 2
    assert "Traceback" not in err and str(f) in err and expect in err


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
