"""The on-disk audit cache: two processes (here: threads with their own connections) wanting the same
audit compute it once; the second waits for the first and reads its result."""
from __future__ import annotations

import threading
import time

import duckdb
from test_quality_audit import AS_OF, build_db

from crmlib import quality
from crmlib.quality import audit as audit_mod


def test_same_audit_wanted_twice_at_once_is_computed_once(tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_NO_AUDIT_CACHE", raising=False)
    path = tmp_path / "crm.duckdb"
    build_db(path)
    calls = []
    real = audit_mod.run_checks

    def slow_checks(*args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.5)  # long enough that the other thread asks while this one computes
        return real(*args, **kwargs)

    monkeypatch.setattr(audit_mod, "run_checks", slow_checks)
    params = quality.load_params()
    results = {}

    def audit(label):
        con = duckdb.connect(str(path), read_only=True)
        try:
            results[label] = quality.run_audit(con, AS_OF, params)
        finally:
            con.close()

    threads = [threading.Thread(target=audit, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results["a"].issues) == len(results["b"].issues) > 0
    assert list((tmp_path / ".cache" / "quality-audit").glob("*.pkl"))


def test_trend_runs_one_audit_and_judges_earlier_weeks_with_it(tmp_path, monkeypatch):
    """The trend and the weekly figures of earlier weeks restrict the newest audit to the records of
    then (records_at) instead of auditing every week again: one audit however many weeks are shown."""
    import datetime as dt

    monkeypatch.setenv("CRM_NO_AUDIT_CACHE", "1")
    path = tmp_path / "crm.duckdb"
    build_db(path)
    calls = []
    real = audit_mod.run_checks
    monkeypatch.setattr(audit_mod, "run_checks", lambda inp, p: calls.append(inp.as_of) or real(inp, p))
    params = quality.load_params()
    con = duckdb.connect(str(path), read_only=True)
    try:
        audits = {}
        tr = audit_mod.trend(con, AS_OF, params, weeks=3, audits=audits)
        shared = {}
        now = quality.quality_weekly_metrics(con, AS_OF, params, judged_with=shared)
        before = quality.quality_weekly_metrics(con, AS_OF - dt.timedelta(days=7), params, judged_with=shared)
    finally:
        con.close()
    assert calls == [AS_OF, AS_OF]  # the trend's audit, then the metrics' (the cache is off here)
    assert list(audits) == [AS_OF]
    assert tr["weeks_back"].tolist() == [0, 0, 1, 1, 2, 2]
    crm = tr[tr["scope"] == "crm"].set_index("weeks_back")
    # as of a week earlier A4 (created 2024-03-08) did not exist: A1 clean, A2 bad code, A3 junk
    assert crm.loc[0, "n_records"] == 4 and crm.loc[1, "n_records"] == 3
    assert crm.loc[1, "n_records_erroneous"] == 2 and crm.loc[1, "customer_error_rate"] == 0.5
    assert now["quality_record_error_rate"] == 0.75 and before["quality_record_error_rate"] == 2 / 3
    assert before["quality_rejects_this_week"] == 0 and now["quality_rejects_this_week"] == 1
