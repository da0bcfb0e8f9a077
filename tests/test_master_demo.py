"""Acceptance 1 on generated demo data: pairwise precision >= 0.98, recall >= 0.95, no head office merged
with its own branch, and the same figures in the weekly metrics.

Demo data at scale 0.2 (about 5,000 customer records) keeps the test near one minute; the default scale 1 is
measured in the notebook and in benchmarks/resolve_scale100.md.
"""
from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from crmlib import demo, load, master


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    demo.generate(root / "raw", root / "truth", seed=42, scale=0.2)
    db = root / "crm.duckdb"
    load.load_all(root / "raw", db, progress=False)
    return db, root / "truth"


def test_demo_accuracy_and_metrics(demo_db, crm_home):
    db, truth = demo_db
    summary = master.resolve_db(db, progress=False)
    assert summary.customers > 0 and summary.junk > 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        ev = master.evaluate(con, truth)
        metrics = master.master_weekly_metrics(con, dt.date(2026, 11, 22), truth_dir=truth)
    finally:
        con.close()
    assert ev["precision"] >= 0.98, ev
    assert ev["recall"] >= 0.95, ev
    assert ev["heads_merged_with_branches"] == 0, ev
    assert ev["junk_recall"] >= 0.95
    assert metrics["master_precision"] == pytest.approx(ev["precision"])
    assert metrics["master_recall"] == pytest.approx(ev["recall"])
    assert metrics["master_heads_merged_with_branches"] == 0


def test_rerun_keeps_every_id(demo_db, crm_home):
    db, _ = demo_db
    master.resolve_db(db, progress=False)
    con = duckdb.connect(str(db), read_only=True)
    before = dict(con.execute("SELECT record_id, customer_id FROM customer_xref").fetchall())
    con.close()
    s = master.resolve_db(db, progress=False)
    con = duckdb.connect(str(db), read_only=True)
    after = dict(con.execute("SELECT record_id, customer_id FROM customer_xref").fetchall())
    con.close()
    assert before == after and s.new_ids == 0
