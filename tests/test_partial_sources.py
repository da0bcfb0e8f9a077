"""A center that has delivered only some sources (here CRM accounts and one week of calls: no reps, no
sales sheets, no opportunities, no orders): every analysis either works on what is there or stops with one
line saying what is missing, never with a pandas error from an empty table."""
from __future__ import annotations

import datetime as dt

import pytest
from test_load_fixtures import account, accounts_csv, calls_csv

from crmlib import funnel, quality
from crmlib.db import connect
from crmlib.errors import UserError
from crmlib.load import load_all
from crmlib.master import resolve_db
from crmlib.quality import discipline

AS_OF = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("partial")
    raw, dbp = root / "raw", root / "crm.duckdb"
    accounts_csv(raw, "accounts.csv", [account("A001", "北京工行", "2026-11-01"),
                                        account("A002", "浙江建行", "2026-11-02"),
                                        account("A003", "测试", "2026-11-03")])
    calls_csv(raw, "calls_2026-W47.csv", ["C1,2026-11-18 10:00:00,咨询,中国工商银行北京市分行,王先生,"
                                          "13812345678,宽带,报修,坐席1"])
    assert load_all(raw, dbp, progress=False).exit_code == 0
    resolve_db(dbp, progress=False)
    return dbp


def test_quality_audit_runs_without_reps_sheets_or_rejects(db):
    con = connect(db, read_only=True)
    audit = quality.run_audit(con, AS_OF, quality.load_params())
    assert con.execute("SELECT record_id, customer_id FROM customer_xref ORDER BY 1").fetchall() == [
        ("callcenter:C1", "C000001"), ("crm:A001", "C000001"), ("crm:A002", "C000002"), ("crm:A003", None)]
    con.close()
    # the fixture's accounts carry the phone 010-1 (too short) and no contact; A003 测试 is junk too; the call
    # (a valid mobile) is clean: CRM 3 of 3 records wrong, all sources 3 of 4; both customers have a wrong record
    assert quality.audit.headline(audit, "crm") == {
        "n_records": 3, "n_records_erroneous": 3, "record_error_rate": 1.0,
        "n_customers": 2, "n_customers_erroneous": 2, "customer_error_rate": 1.0}
    assert quality.audit.headline(audit, None)["n_records_erroneous"] == 3
    kinds = audit.issues.groupby("record_id")["kind"].agg(set)
    assert {"wrong_phone", "missing_contact"} <= kinds["crm:A001"] and "junk_name" in kinds["crm:A003"]
    assert "callcenter:C1" not in kinds


def test_daily_sending_without_reps_is_an_empty_typed_table():
    import pandas as pd
    empty = pd.DataFrame(columns=["rep_id", "rep_name", "region", "hired_at", "left_at"])
    visits = pd.DataFrame(columns=["rep_id", "report_date"])
    daily = discipline.daily_sending(visits, empty, AS_OF, quality.load_params())
    assert daily.empty and daily["not_daily"].dtype == bool
    # the notebook's filter: a mask, not a column selection
    assert list(daily[daily["not_daily"]].columns) == list(daily.columns)


def test_funnel_without_opportunities_says_so_in_one_line(db):
    con = connect(db, read_only=True)
    with pytest.raises(UserError) as err:
        funnel.read_funnel(con, AS_OF)
    assert "no opportunities created on or before 2026-11-20" in str(err.value)
    assert "crm/opportunities*.csv" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(funnel.NoOpportunities):
        funnel.funnel_weekly_metrics(con, AS_OF)
    # the weekly figures: no funnel_* keys, and why (the weekly report prints a line in its funnel section)
    from crmlib.errors import MissingData
    from crmlib.metrics import weeks_metrics
    unavailable: dict = {}
    figures = weeks_metrics(con, {"this_week": AS_OF}, unavailable=unavailable)
    assert not [k for k in figures["this_week"] if k.startswith("funnel_")]
    assert figures["this_week"]["master_customers"] == 2
    assert list(unavailable["this_week"]) == ["funnel"]
    assert unavailable["this_week"]["funnel"]["what"]["en"] == "opportunities (the CRM export crm/opportunities*.csv)"
    assert issubclass(funnel.NoOpportunities, MissingData)
    con.close()

