"""The managers' report draws segments, funnel and pyramid from the tables the weekly run's metrics step computed
(crmlib.metrics.save_frames → weekly_view); an analyst's run without them computes them itself. Both must
show the same."""
from __future__ import annotations

import json

import plotly.graph_objects as go

from crmlib import metrics, weekly_view
from crmlib.asof import resolve
from crmlib.db import connect


def _shown(items) -> list[str]:
    return [it.to_json() if isinstance(it, go.Figure) else it.data for it in items]


def test_sections_from_handed_over_tables_equal_computed_ones(demo_resolved, tmp_path):
    db = demo_resolved / "crm.duckdb"
    con = connect(db, read_only=True)
    try:
        as_of = resolve(con, None)
    finally:
        con.close()
    frames = tmp_path / metrics.FRAMES_FILE
    m = metrics.collect_metrics(db, as_of, tmp_path / "reports", None, frames)
    metrics_path = tmp_path / "metrics.json"
    metrics_path.write_text(json.dumps(m, default=str), encoding="utf-8")
    handed = metrics.load_frames(metrics_path, as_of)
    assert set(handed) == {"as_of", "segments", "funnel", "pyramid"}
    assert metrics.load_frames(metrics_path, as_of.replace(day=1) if as_of.day != 1 else as_of.replace(day=2)) == {}

    with_frames = weekly_view.open_context(None, str(db), str(metrics_path), None, "en")
    frames.unlink()
    without = weekly_view.open_context(None, str(db), str(metrics_path), None, "en")
    try:
        assert with_frames.frames and not without.frames
        for section in (weekly_view.segments_section, weekly_view.funnel_section, weekly_view.pyramid_section):
            got, want = _shown(section(with_frames)), _shown(section(without))
            assert len(got) == len(want) >= 5
            assert got == want, section.__name__
    finally:
        with_frames.con.close()
        without.con.close()
