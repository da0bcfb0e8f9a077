"""The weekly run end to end on a small demo: two consecutive weeks, a failing run, the browser check.

One module-scoped project in a temp dir (CRM_HOME) runs `crm weekly` for 2026-W47, advances the demo data
by a week and runs 2026-W48; the tests below inspect what those runs left behind.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from projects import browser_or_skip, crm_home_at, new_project

REPO = Path(__file__).resolve().parent.parent
WEEK1, WEEK2 = "2026-W47", "2026-W48"
AS_OF1, AS_OF2 = dt.date(2026, 11, 22), dt.date(2026, 11, 29)
SCALE = 0.15


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from crmlib import demo, report

    root = new_project(tmp_path_factory.mktemp("weekly"), notebooks=True)
    with crm_home_at(root):
        demo.generate(root / "data" / "raw", root / "data" / "demo_truth", seed=7, scale=SCALE, as_of=AS_OF1)
        first = report.weekly(as_of=AS_OF1)
        demo.generate(root / "data" / "raw", root / "data" / "demo_truth", seed=7, scale=SCALE, as_of=AS_OF2)
        second = report.weekly(as_of=AS_OF2)
        yield root, first, second


def _html(week_dir: Path) -> Path:
    (html,) = week_dir.glob("weekly_report_*.html")
    return html


def _metrics(week_dir: Path) -> dict:
    return json.loads((week_dir / "metrics.json").read_text(encoding="utf-8"))


def test_week_folders_hold_report_notebooks_and_metrics(project):
    root, first, second = project
    assert first == root / "reports" / WEEK1 and second == root / "reports" / WEEK2
    for week_dir in (first, second):
        assert _html(week_dir).name == f"weekly_report_{week_dir.name}.html"
        for name in ("01_master", "02_quality", "03_segments", "04_funnel", "05_pyramid", "00_weekly_report"):
            assert (week_dir / f"{name}.ipynb").exists(), name
        metrics = _metrics(week_dir)
        assert metrics["week"] == week_dir.name
        assert metrics["metrics"]["master_customers"] > 0
        assert set(json.loads((week_dir / "timings.json").read_text())) >= {"load", "resolve", "metrics", "export"}
    assert not list((root / "reports").glob(".build-*")), "build folders must not be left behind"
    from crmlib.metrics import FRAMES_FILE
    assert not list((root / "reports").rglob(FRAMES_FILE)), "the tables handed to the report are not published"


def test_html_is_self_contained_without_code_or_personal_data(project):
    _, first, _ = project
    html = _html(first)
    body = html.read_text(encoding="utf-8")
    assert html.stat().st_size < 10 * 1024 * 1024
    assert body.count("window.Plotly = Plotly") == 1, "plotly.js embedded exactly once"
    assert not re.search(r"<script[^>]+src=[\"']https?://", body), "nothing fetched online"
    assert 'class="jp-InputArea' not in body and "Traceback" not in body
    assert "客户信息中心周报" in body
    # managers see masked phones only: no full mobile number appears. Plotly names each chart's <div> with a
    # random UUID whose last 12 hex digits can read as a mobile number (1 run in a few hundred), so drop those.
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "", body)
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text)


def test_week_over_week_deltas_agree_with_both_metrics_files(project):
    _, first, second = project
    m1, m2 = _metrics(first), _metrics(second)
    assert m2["compare"]["wow"]["source"] == f"reports/{WEEK1}/metrics.json"
    wow = m2["deltas"]["wow"]
    numeric = {k: v for k, v in m2["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numeric and set(wow) == {k for k in numeric if isinstance(m1["metrics"].get(k), (int, float))}
    for key, delta in wow.items():
        assert delta == pytest.approx(m2["metrics"][key] - m1["metrics"][key], abs=1e-6), key
    # a week of new data moved at least the record count
    assert m2["metrics"]["master_records"] > m1["metrics"]["master_records"]


def test_latest_points_to_newest_and_rerun_replaces_cleanly(project, tmp_path, monkeypatch):
    from crmlib import report

    # on a copy of the project: re-running W47 replaces it, and the other tests read the original W47
    root = tmp_path / "copy"
    shutil.copytree(project[0], root, symlinks=True)
    monkeypatch.setenv("CRM_HOME", str(root))
    first, second = root / "reports" / WEEK1, root / "reports" / WEEK2
    latest = root / "reports" / "latest"
    assert latest.is_symlink() and latest.resolve() == second.resolve()
    second_html = _sha(_html(second))
    # re-run the older week (managers' page only, to keep the test short): it replaces W47 as a whole
    cfg = yaml.safe_load((root / "params" / "weekly.yaml").read_text(encoding="utf-8"))
    cfg["notebooks"] = []
    quick = tmp_path / "weekly_quick.yaml"
    quick.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    again = report.weekly(as_of=AS_OF1, params_path=quick)
    assert again == first
    assert not (first / "01_master.ipynb").exists(), "old contents must not survive a re-run"
    assert _metrics(first)["week"] == WEEK1 and _html(first).exists()
    assert latest.resolve() == second.resolve(), "re-running an older week must not move latest"
    assert _sha(_html(second)) == second_html, "other weeks stay as they were"
    weeks = sorted(p.name for p in (root / "reports").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert weeks == [WEEK1, WEEK2, "latest"]


def test_failing_run_leaves_report_and_database_unchanged(project):
    from crmlib import cli, demo

    root, _, second = project
    db = root / "data" / "curated" / "crm.duckdb"
    db_hash, html_hash = _sha(db), _sha(_html(second))
    # a new week of data arrives, and an analysis notebook breaks midway through the run
    demo.generate(root / "data" / "raw", root / "data" / "demo_truth", seed=7, scale=SCALE,
                  as_of=AS_OF2 + dt.timedelta(days=7))
    broken = root / "notebooks" / "01_master.ipynb"
    saved = broken.read_bytes()
    nb = json.loads(saved)
    at = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb["cells"].insert(at + 1, {"cell_type": "code", "id": "broken-cell", "metadata": {}, "execution_count": None, "outputs": [],
                                "source": ["raise RuntimeError('disk full while writing a chart')"]})
    broken.write_text(json.dumps(nb), encoding="utf-8")
    try:
        rc = cli.main(["weekly", "--as-of", (AS_OF2 + dt.timedelta(days=7)).isoformat()])
    finally:
        broken.write_bytes(saved)
    assert rc != 0
    assert _sha(db) == db_hash, "database changed by a failed run"
    assert _sha(_html(second)) == html_hash
    assert not (root / "reports" / "2026-W49").exists()
    assert not list((root / "reports").glob(".build-*"))
    assert not list((root / "data" / "curated").glob("*.building.duckdb"))
    log = (root / "reports" / "weekly.log").read_text(encoding="utf-8")
    assert "disk full while writing a chart" in log


def test_english_report(project, tmp_path):
    """`lang: en` gives the English report from the same notebook."""
    from crmlib import report

    root, second_dir = project[0], project[2]
    out = tmp_path / "en.ipynb"
    params = {"as_of": AS_OF2.isoformat(), "lang": "en", "db_path": "data/curated/crm.duckdb",
              "truth_dir": "data/demo_truth", "interactive": False,
              "metrics_path": str(second_dir / "metrics.json")}
    report.run_notebook(root / "notebooks" / "00_weekly_report.ipynb", out, params, "crm", 600)
    html = tmp_path / "en.html"
    report.export_html(out, html, "weekly", "en")
    body = html.read_text(encoding="utf-8")
    assert "Customer information center weekly report" in body and "客户信息中心周报" not in body
    assert 'lang="en"' in body


def test_every_chart_draws_offline_in_chromium(project):
    browser_or_skip()
    from crmlib.browser import check_report

    _, first, _ = project
    shots = REPO / "reports" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"weekly_report_{WEEK1}.png"
    result = check_report(_html(first), screenshot=shot)
    assert result.charts >= 8
    assert result.charts_drawn == result.charts
    assert result.console_errors == []
    assert result.blocked_requests == []
    assert "客户" in result.text_sample
    assert shot.stat().st_size > 50_000


def test_pdf_prints(project, tmp_path):
    browser_or_skip()
    from crmlib.browser import print_pdf

    pdf = print_pdf(_html(project[1]), tmp_path / "report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000


def test_latest_points_to_the_newest_week_not_other_folders(tmp_path):
    """reports/ also holds screenshots/ (the browser test) and whatever people put there."""
    from crmlib.report import _point_latest

    for name in ("2026-W47", "2026-W48", "screenshots", "zz-notes", ".failed-2026-W49"):
        (tmp_path / name).mkdir()
    _point_latest(tmp_path, tmp_path / "2026-W47")
    assert os.readlink(tmp_path / "latest") == "2026-W48"
    _point_latest(tmp_path, tmp_path / "2026-W48")  # re-pointing over the old link
    assert os.readlink(tmp_path / "latest") == "2026-W48"
