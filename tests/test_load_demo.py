"""Acceptance 1 on the demo generator's own output: load, load again (nothing), add a week (only it)."""
import datetime as dt

import duckdb
import pytest

from crmlib.load import load_all

demo = pytest.importorskip("crmlib.demo")
SCALE = 0.05


@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    demo.generate(root / "raw", root / "truth", seed=7, scale=SCALE)
    return root


def test_demo_folder_loads_then_second_run_loads_nothing(demo_raw):
    raw, dbp = demo_raw / "raw", demo_raw / "crm.duckdb"
    first = load_all(raw, dbp, progress=False)
    assert first.exit_code == 0, first.problems[:5]
    assert not first.refused
    by = {r["source"]: r for r in first.per_source()}
    for source in ("crm_accounts", "calls", "tickets", "orders", "receipts", "sales_sheets"):
        assert by[source]["rows"] > 0, source
    con = duckdb.connect(str(dbp), read_only=True)
    # raw keeps every landed row; GBK call-center text arrives intact
    assert con.execute("SELECT count(*) FROM raw_calls").fetchone()[0] == by["calls"]["rows"]
    assert con.execute("SELECT count(*) FROM stg_calls WHERE call_type IN ('咨询','报修','投诉','表扬','建议')"
                       ).fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM stg_sales_visits WHERE visit_date IS NOT NULL").fetchone()[0] > 0
    con.close()

    second = load_all(raw, dbp, progress=False)
    assert second.nothing_loaded and second.exit_code == 0
    assert str(second).startswith("Nothing new to load")


def test_demo_next_week_loads_only_the_new_files(demo_raw):
    raw, dbp = demo_raw / "raw", demo_raw / "crm.duckdb"
    load_all(raw, dbp, progress=False)
    before = {f.file for f in load_all(raw, dbp, progress=False).files}
    demo.generate(raw, demo_raw / "truth", seed=7, scale=SCALE, as_of=demo.DEFAULT_AS_OF + dt.timedelta(days=7))
    s = load_all(raw, dbp, progress=False)
    assert s.exit_code == 0
    read = {f.file for f in s.read}
    assert read and not (read & before)
