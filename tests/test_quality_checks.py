"""Pure quality checks on hand-built frames (hand-checked answers)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crmlib.quality import checks, discipline
from crmlib.quality.config import QualityParams, load_params

COLS = ["record_id", "source", "source_key", "name_raw", "uscc", "phone", "contact_name", "email",
        "province", "city", "address", "industry", "rep_id", "record_date", "_source_file", "_row",
        "customer_id"]


def recs(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in COLS:
        if c not in df.columns:
            df[c] = None
    if "record_id" not in pd.DataFrame(rows).columns:
        df["record_id"] = df["source"] + ":" + df["source_key"]
    return df[COLS]


def test_params_file_validates_and_rejects_unknown_keys(tmp_path):
    p = load_params()
    assert p.primary_source == "crm" and "uscc" in p.key_fields["crm"]
    bad = tmp_path / "q.yaml"
    bad.write_text("primary_source: crm\nkey_fields:\n  crm: [nam]\n", encoding="utf-8")
    from crmlib.errors import UserError
    with pytest.raises(UserError, match="nam"):
        load_params(str(bad))
    bad.write_text("not_contacted_dayz: 3\n", encoding="utf-8")
    with pytest.raises(UserError, match="not_contacted_dayz"):
        load_params(str(bad))


def test_email_and_dates():
    assert checks.email_problem("zhang.san@icbc.com.cn") is None
    assert checks.email_problem(None) is None
    assert checks.email_problem("zhang.san@icbc") == "bad_email"
    assert checks.email_problem("张三@公司.com") == "bad_email"
    d = dt.date(2024, 3, 1)
    assert checks.date_problem("2024-03-01", d, dt.date(2000, 1, 1)) is False
    assert checks.date_problem("2024-03-02", d, dt.date(2000, 1, 1)) is True
    assert checks.date_problem("1999-12-31", d, dt.date(2000, 1, 1)) is True


def test_reason_names_the_column():
    assert checks.reason("uscc_bad_check", "uscc") == "统一社会信用代码校验位错误（GB 32100-2015）［列 uscc］"
    assert "column uscc" in checks.reason("uscc_bad_check", "uscc", "en")


def test_completeness_per_source():
    r = recs([
        {"source": "crm", "source_key": "A1", "name_raw": "甲", "phone": "13800000000"},
        {"source": "crm", "source_key": "A2", "name_raw": "乙", "phone": "  "},
        {"source": "sales", "source_key": "f|s|2", "name_raw": "丙"},
    ])
    c = checks.completeness(r, {"crm": ["name_raw", "phone"], "sales": ["phone"]})
    assert c.to_dict("records") == [
        {"source": "crm", "field": "name_raw", "n_records": 2, "n_filled": 2, "share": 1.0},
        {"source": "crm", "field": "phone", "n_records": 2, "n_filled": 1, "share": 0.5},
        {"source": "sales", "field": "phone", "n_records": 1, "n_filled": 0, "share": 0.0},
    ]
    req = checks.check_required(r, {"crm": ["name_raw", "phone"]})
    assert req[["record_id", "kind", "field"]].values.tolist() == [["crm:A2", "missing_contact", "phone"]]


def test_consistency_flags_the_odd_one_out_against_the_majority():
    r = recs([
        {"source": "crm", "source_key": "A1", "customer_id": "C1", "city": "杭州市", "industry": "金融"},
        {"source": "sales", "source_key": "s1", "customer_id": "C1", "city": "杭州", "industry": "金融"},
        {"source": "erp", "source_key": "E1", "customer_id": "C1", "city": "宁波市", "industry": "金融"},
        # two records that disagree with no majority: the master's value decides
        {"source": "crm", "source_key": "A2", "customer_id": "C2", "city": "成都市"},
        {"source": "erp", "source_key": "E2", "customer_id": "C2", "city": "绵阳市"},
    ])
    master = pd.DataFrame({"customer_id": ["C1", "C2"], "city": ["杭州市", "绵阳市"], "industry": ["金融", None]})
    out = checks.check_consistency(r, master, ["city", "industry"])
    assert out[["record_id", "kind", "value", "suggested"]].values.tolist() == [
        ["erp:E1", "wrong_city", "宁波市", "杭州市"],
        ["crm:A2", "wrong_city", "成都市", "绵阳市"],
    ]


def test_duplicates_keep_the_most_complete_then_earliest():
    r = recs([
        {"source": "crm", "source_key": "A1", "customer_id": "C1", "name_raw": "工行", "record_date": "2023-01-05"},
        {"source": "crm", "source_key": "A2", "customer_id": "C1", "name_raw": "工商银行", "phone": "010-12345678",
         "record_date": "2023-02-01"},
        {"source": "crm", "source_key": "A3", "customer_id": "C1", "name_raw": "工商银行", "phone": "010-12345678",
         "record_date": "2023-01-01"},
        {"source": "sales", "source_key": "s1", "customer_id": "C1"},
        {"source": "sales", "source_key": "s2", "customer_id": "C1"},
    ])
    out = checks.check_duplicates(r, ["crm", "erp"], {"crm": ["name_raw", "phone"]})
    assert out[["record_id", "suggested"]].values.tolist() == [["crm:A2", "合并到 crm:A3"],
                                                                ["crm:A1", "合并到 crm:A3"]]


def test_timeliness_per_rep():
    v = pd.DataFrame({"rep_id": ["R1", "R1", "R1", "R2"],
                      "visit_date": pd.to_datetime(["2024-03-01", "2024-03-01", "2024-03-04", None]),
                      "report_date": pd.to_datetime(["2024-03-01", "2024-03-05", "2024-03-05", "2024-03-05"])})
    t = discipline.timeliness(v, limit_days=1)
    assert t.to_dict("records") == [{"rep_id": "R1", "n_rows": 3, "mean_lag_days": 5 / 3, "max_lag_days": 4,
                                     "n_late": 1, "late_share": 1 / 3}]


def test_daily_sending_counts_working_days_without_a_sheet():
    p = QualityParams(holidays=[dt.date(2024, 3, 6)])
    # week Mon 2024-03-04 .. Sun 2024-03-10; Wednesday is a holiday -> 4 working days
    v = pd.DataFrame({"rep_id": ["R1"] * 4 + ["R2"],
                      "report_date": pd.to_datetime(["2024-03-04", "2024-03-05", "2024-03-07", "2024-03-08",
                                                     "2024-03-04"])})
    reps = pd.DataFrame({"rep_id": ["R1", "R2", "R3"], "rep_name": ["甲", "乙", "丙"], "region": ["华北"] * 3,
                         "hired_at": [None, None, pd.Timestamp("2024-03-08")], "left_at": [None, None, None]})
    d = discipline.daily_sending(v, reps, dt.date(2024, 3, 10), p)
    assert d[["rep_id", "working_days", "days_sent", "days_missing", "not_daily"]].values.tolist() == [
        ["R1", 4, 4, 0, False], ["R2", 4, 1, 3, True], ["R3", 1, 0, 1, True]]


def test_rep_only_customers_and_not_contacted():
    r = recs([
        {"source": "sales", "source_key": "s1", "customer_id": "C1", "rep_id": "R1", "record_date": "2024-01-01"},
        {"source": "sales", "source_key": "s2", "customer_id": "C1", "rep_id": "R1", "record_date": "2024-02-20"},
        {"source": "sales", "source_key": "s3", "customer_id": "C2", "rep_id": "R1", "record_date": "2024-02-01"},
        {"source": "crm", "source_key": "A2", "customer_id": "C2", "rep_id": "R1", "record_date": "2023-01-01"},
        {"source": "sales", "source_key": "s4", "customer_id": "C3", "rep_id": "R1"},
        {"source": "sales", "source_key": "s5", "customer_id": "C3", "rep_id": "R2"},
    ])
    assert discipline.rep_only_customers(r).values.tolist() == [["C1", "R1", 2]]
    master = pd.DataFrame({"customer_id": ["C1", "C2", "C3", "C4"], "name": list("甲乙丙丁")})
    nc = discipline.not_contacted(r, master, dt.date(2024, 3, 1), n_days=20)
    # C1 last contact 2024-02-20 (10 days), C2 2024-02-01 (29 days), C3 no dated contact, C4 none at all
    assert nc["customer_id"].tolist() == ["C2", "C3", "C4"]
    assert nc["days_since"].iloc[0] == 29 and nc["days_since"].iloc[1:].isna().all()


def test_timeliness_ignores_visits_after_the_sheet():
    v = pd.DataFrame({"rep_id": ["R1", "R1"], "visit_date": pd.to_datetime(["2024-03-01", "2025-03-01"]),
                      "report_date": pd.to_datetime(["2024-03-03", "2024-03-01"])})
    t = discipline.timeliness(v, limit_days=1)
    assert t[["n_rows", "mean_lag_days", "n_late"]].values.tolist() == [[1, 2.0, 1]]


def test_one_substitution_pairs_in_duckdb():
    """The name-neighbour search: same length, one character apart, not inside the lone name's place name,
    with the pair counts ('around') of both spellings at that position; only pairs that can count."""
    from collections import Counter

    from crmlib.quality.checks import _one_substitution_pairs

    lone = {"杭州华信电子": [(True, "杭州华信电子")]}
    multi = {
        "杭州华兴电子": False,   # 信 -> 兴 at 3: 华兴 in 12 customers' names, 华信 in 3: common
        "湖州华信电子": True,    # 杭 -> 湖 at 0: 湖州 50 >= 杭州 30, but inside the place name 杭州
        "杭州华信电器": False,   # 子 -> 器 at 5: 电器 5 >= 电子 1 but a lone customer, 5 < 10: cannot count
        "杭州华信电机": True,    # 子 -> 机 at 5: a customer with several records, 电机 4 >= 电子 1: near
        "杭州华信电子": True,    # the same form is no neighbour
        "杭州华信电子科": True,  # another length
    }
    freq = Counter({"华兴": 12, "兴电": 2, "华信": 3, "信电": 1, "电器": 5, "电机": 4, "电子": 1, "杭州": 30, "湖州": 50, "华": 40})
    got = _one_substitution_pairs(lone, multi, freq)
    assert got == [("杭州华信电子", 3, "杭州华兴电子", 12, 3), ("杭州华信电子", 5, "杭州华信电机", 4, 1)]
