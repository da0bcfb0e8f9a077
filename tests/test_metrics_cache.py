"""The weekly metrics step computes three weeks (this week, a week ago, four weeks ago), each against the
week before it. Segments read the history once and compute each date's stages once; the pyramid scores each
date once (crmlib/metrics.py). The figures must not change for it."""
from __future__ import annotations

import datetime as dt

import pytest

from crmlib import pyramid, segments
from crmlib.asof import resolve
from crmlib.db import connect
from crmlib.metrics import weeks_metrics


@pytest.fixture
def con(demo_resolved):
    c = connect(demo_resolved / "crm.duckdb", read_only=True)
    yield c
    c.close()


def _weeks(con):
    d = resolve(con, None)
    return d, [d, d - dt.timedelta(days=7), d - dt.timedelta(days=28)]


def test_segments_cache_same_figures_five_stage_dates(con):
    d, weeks = _weeks(con)
    cache: dict = {}
    cached = [segments.segments_weekly_metrics(con, w, cache=cache) for w in weeks]
    assert cached == [segments.segments_weekly_metrics(con, w) for w in weeks]
    # this week's "before" is the week-over-week "now": five dates, not six
    assert sorted(cache["stages"]) == [d - dt.timedelta(days=n) for n in (35, 28, 14, 7, 0)]
    assert cached[0]["segments_customers"] > 100


def test_pyramid_cache_same_figures_five_scored_dates(con):
    d, weeks = _weeks(con)
    cache: dict = {}
    cached = [pyramid.pyramid_weekly_metrics(con, w, cache=cache) for w in weeks]
    plain = [pyramid.pyramid_weekly_metrics(con, w) for w in weeks]
    assert cached == plain or str(cached) == str(plain)      # NaN != NaN: compare their text then
    assert sorted(cache) == [d - dt.timedelta(days=n) for n in (35, 28, 14, 7, 0)]
    assert cached[0]["pyramid_customers"] > 50
    # last week's "now" is this week's "a week ago": the tiers it moved from are the same table
    assert cached[1]["pyramid_customers"] == len(cache[d - dt.timedelta(days=7)][1])


def test_weeks_metrics_unchanged_by_the_caches(con):
    d, weeks = _weeks(con)
    labelled = dict(zip(["this_week", "wow", "4w"], weeks, strict=True))
    figures = weeks_metrics(con, labelled)
    for label, day in labelled.items():
        seg = segments.segments_weekly_metrics(con, day)
        assert {k: figures[label][k] for k in seg} == seg
        assert figures[label]["pyramid_customers"] == pyramid.pyramid_weekly_metrics(con, day)["pyramid_customers"]
