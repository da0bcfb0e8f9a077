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


def test_trend_audits_oldest_first_and_hands_back_what_it_ran(tmp_path, monkeypatch):
    """The weekly metrics step audits as_of first; the quality notebook's trend starts from the oldest
    week, so the two processes do not queue on the same date's lock."""
    import datetime as dt

    path = tmp_path / "crm.duckdb"
    build_db(path)
    order = []
    real = audit_mod.run_audit
    monkeypatch.setattr(audit_mod, "run_audit", lambda con, d, p: order.append(d) or real(con, d, p))
    params = quality.load_params()
    con = duckdb.connect(str(path), read_only=True)
    try:
        given = {AS_OF - dt.timedelta(days=7): real(con, AS_OF - dt.timedelta(days=7), params)}
        tr = audit_mod.trend(con, AS_OF, params, weeks=3, progress=False, audits=given)
    finally:
        con.close()
    assert order == [AS_OF - dt.timedelta(days=14), AS_OF]  # oldest first; the given week not re-run
    assert sorted(given) == [AS_OF - dt.timedelta(days=d) for d in (7, 0)]  # only as_of's is kept
    assert tr["weeks_back"].tolist() == [0, 0, 1, 1, 2, 2]  # rows stay newest first
