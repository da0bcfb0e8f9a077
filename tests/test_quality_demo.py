"""Acceptance on demo data: generate -> crm load -> crm resolve -> quality audit, measured against the truth.

Measured (seed 7, scale 0.1): CRM record error rate 0.160 vs true 0.152, CRM customer error rate 0.212 vs
0.207; all sources 0.080 vs 0.081 (records) and 0.451 vs 0.466 (customers); recall 0.87-0.93 (name_typo)
and 0.92-1.00 for every other kind; record-flag precision 0.98. Scale 1, seed 42: CRM 0.154 vs 0.150
(records), 0.203 vs 0.199 (customers).
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from crmlib import quality
from crmlib.db import connect
from crmlib.quality import truth as qt

RATE_TOL = 0.02      # the acceptance: within 2 points of the truth (CRM, the seed's definition)
RATE_TOL_ALL = 0.03  # all sources: master customers are not true customers one to one (splits, typos)
# the all-sources *customer* rate is the one that suffers most from that: measured 0.040 off (seed 7,
# scale 0.1) and 0.026 (seed 42, scale 1) with the current master; a regression guard, not the acceptance
CUSTOMER_TOL_ALL = 0.06
MIN_RECALL = 0.9  # every kind, name typos included (0.927 here, 51 of 55; 0.93 at scale 1, seed 42)


@pytest.fixture(scope="module")
def demo_db(demo_resolved):
    """The session's shared demo (seed 7, scale 0.1; see conftest.py)."""
    return demo_resolved


@pytest.fixture(scope="module")
def audit(demo_db):
    as_of = dt.date.fromisoformat(json.loads((demo_db / "truth" / "manifest.json").read_text())["as_of_dates"][-1])
    con = connect(demo_db / "crm.duckdb", read_only=True)
    try:
        return quality.run_audit(con, as_of, quality.load_params())
    finally:
        con.close()


def test_error_rates_within_two_points_of_the_truth(demo_db, audit):
    rates = qt.compare_rates(audit, demo_db / "truth", ["crm", None]).set_index("scope")
    crm = rates.loc["crm"]
    assert abs(crm["record_error_rate_measured"] - crm["record_error_rate_true"]) <= RATE_TOL, crm
    assert abs(crm["customer_error_rate_measured"] - crm["customer_error_rate_true"]) <= RATE_TOL, crm
    # the seed's figures are what the demo injects into the CRM: about 15% of records, 20% of customers
    assert 0.10 < crm["record_error_rate_true"] < 0.20 and 0.14 < crm["customer_error_rate_true"] < 0.26
    a = rates.loc["all"]
    assert abs(a["record_error_rate_measured"] - a["record_error_rate_true"]) <= RATE_TOL_ALL, a
    assert abs(a["customer_error_rate_measured"] - a["customer_error_rate_true"]) <= CUSTOMER_TOL_ALL, a


def test_every_injected_kind_is_detected(demo_db, audit):
    r = qt.recall_by_kind(audit, demo_db / "truth").set_index("kind")
    kinds = r.drop(index="*")
    assert {"junk_name", "name_typo", "wrong_phone", "uscc_bad_check", "uscc_missing", "wrong_city",
            "wrong_industry", "duplicate_record", "missing_contact", "future_or_impossible_date",
            "negative_amount"} <= set(kinds.index)
    low = kinds[kinds["recall_observable"] < MIN_RECALL]
    assert low.empty, low
    # errors whose written value never reached the database are out of any audit's reach (the generator no
    # longer counts errors in a column the rep's template lacks); where every injected error is visible,
    # plain recall must hold too
    full = kinds[kinds["n_observable"] == kinds["n_injected"]]
    assert (full["recall"] >= MIN_RECALL).all(), full
    assert r.loc["*", "precision"] >= 0.9 and r.loc["*", "recall"] >= MIN_RECALL
    # name-typo flags are injected typos (all 51 here; 0.99 at scale 1, seed 42)
    _, err = qt.read_truth(demo_db / "truth")
    typo = set(err.loc[err["kind"] == "name_typo", "record_id"])
    flagged = set(audit.issues.loc[audit.issues["kind"] == "name_typo", "record_id"])
    assert len(flagged & typo) >= 0.95 * len(flagged), sorted(flagged - typo)


def test_weekly_metrics_trend_and_fixlist_on_demo(demo_db, audit, tmp_path):
    from openpyxl import load_workbook

    params = quality.load_params()
    con = connect(demo_db / "crm.duckdb", read_only=True)
    try:
        m = quality.quality_weekly_metrics(con, audit.as_of, params)
        before = quality.quality_weekly_metrics(con, audit.as_of - dt.timedelta(days=7), params)
        tr = quality.trend(con, audit.as_of, params)
    finally:
        con.close()
    assert set(m) == set(before) and all(k.startswith("quality_") for k in m)
    assert 0 < m["quality_record_error_rate"] < 0.3 and 0 < m["quality_completeness_avg"] <= 1
    assert m["quality_reps_not_sending_daily"] > 0          # 'none'-habit reps skip whole weeks
    assert len(tr[tr["scope"] == "crm"]) == params.trend_weeks
    # records that existed a week earlier are a subset: the CRM never shrinks
    crm = tr[tr["scope"] == "crm"].sort_values("weeks_back")
    assert crm["n_records"].is_monotonic_decreasing
    fix = quality.build_fixlist(audit, params)
    out = quality.write_fixlist(fix, tmp_path / "fix.xlsx")
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    assert len(rows) == len(fix) + 1 and rows[1][0] == 1
    assert fix["rank"].max() >= audit.records["erroneous"].sum() * 0.9
    # the restriction to an earlier date, applied at the audit's own date, gives the audit's own verdicts
    from crmlib.quality.audit import _records_at
    same = _records_at(audit, audit.as_of)
    assert len(same) == len(audit.records)
    assert (same["erroneous"].to_numpy() == audit.records["erroneous"].to_numpy()).all()
    disc = quality.discipline_tables(audit, params)
    assert len(disc["rep_only"]) > 0 and (disc["timeliness"]["mean_lag_days"] >= 0).all()
