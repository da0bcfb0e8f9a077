"""A center that delivers only some sources (no ERP, no CRM opportunities) still gets its weekly report: the
quality and master sections as always, and in the segments' clustering, funnel and pyramid places a line
saying which data are missing, instead of no report at all."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from projects import browser_or_skip, crm_home_at, new_project

AS_OF = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    from crmlib import demo, report

    root = new_project(tmp_path_factory.mktemp("partial"), notebooks=True)
    raw = root / "data" / "raw"
    demo.generate(raw, root / "data" / "demo_truth", seed=7, scale=0.1, as_of=AS_OF)
    shutil.rmtree(raw / "erp")
    for f in (raw / "crm").glob("opportunit*"):
        f.unlink()
    with crm_home_at(root):
        yield root, report.weekly(as_of=AS_OF)


def _error_name(notebook: Path) -> str | None:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return next((o["ename"] for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"), None)


def test_the_report_is_built_and_says_which_data_are_missing(partial):
    root, week = partial
    assert week == root / "reports" / "2026-W47"
    metrics = json.loads((week / "metrics.json").read_text(encoding="utf-8"))
    # the funnel found no opportunities: no funnel figures, and why
    assert set(metrics["unavailable"]) == {"funnel"}
    assert metrics["unavailable"]["funnel"]["message"].startswith(
        f"file {root / 'data' / 'curated' / 'crm.duckdb'}: no opportunities created on or before 2026-11-22")
    assert not [k for k in metrics["metrics"] if k.startswith("funnel_")]
    assert metrics["metrics"]["master_customers"] > 0 and metrics["metrics"]["quality_record_error_rate"] > 0
    # the analysts' notebooks that found nothing stop where they did, kept for a look; the others ran through
    assert _error_name(week / "04_funnel.ipynb") == "NoOpportunities"
    assert _error_name(week / "03_segments.ipynb") == "NoOrders"          # clustering needs orders
    assert _error_name(week / "05_pyramid.ipynb") == "NothingToScore"
    assert _error_name(week / "01_master.ipynb") is None and _error_name(week / "02_quality.ipynb") is None
    html = (week / "weekly_report_2026-W47.html").read_text(encoding="utf-8")
    assert "一、数据质量" in html and "二、客户主数据" in html and "三、客户细分" in html
    assert html.count('class="crm-missing"') == 2
    assert "本周无法生成本节：数据库中没有商机数据（CRM 商机导出 crm/opportunities*.csv）。" in html
    assert "本周无法生成本节：数据库中没有可评分的客户" in html
    assert "Traceback" not in html and "crm.building.duckdb" not in html
    from crmlib.report import _sections_without_data
    assert _sections_without_data(week) == ("funnel: no opportunities (the CRM export crm/opportunities*.csv); "
                                            "notebooks stopped: 03_segments.ipynb, 04_funnel.ipynb, 05_pyramid.ipynb")
    stopped = metrics["notebooks_stopped"]
    assert stopped["05_pyramid.ipynb"].startswith("file notebooks/05_pyramid.ipynb: notebook stopped in cell ")
    assert stopped["05_pyramid.ipynb"].endswith(": NothingToScore: no indicator varies across the customers: "
                                                "nothing to score on")


def test_the_sections_there_are_draw_in_chromium(partial):
    browser_or_skip()
    from crmlib.browser import check_report

    _, week = partial
    result = check_report(week / "weekly_report_2026-W47.html")
    assert result.charts >= 8 and result.charts_drawn == result.charts, result
    assert result.console_errors == [] and result.blocked_requests == []
