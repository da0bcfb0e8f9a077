"""Headline figures for a week: one flat dict per week, plus week-over-week and 4-week deltas.

``metrics.json`` (one per ``reports/<ISO week>/``) holds ``metrics`` (this week) and ``deltas``. A delta
is computed against the earlier week's own ``metrics.json`` when that report exists, so the report
agrees with what managers saw last week; otherwise the earlier week is recomputed from the database as
of that date (``compare_source`` says which). ``seconds`` records how long each analysis took per week
computed (where the time of the ``metrics`` step in ``timings.json`` went).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb


def _providers(shared: dict) -> dict[str, Callable[[duckdb.DuckDBPyConnection, dt.date, str | None], dict]]:
    """Each analysis contributes a flat dict; imported here so the list is in one place. ``shared`` lives
    as long as one run's calls (newest week first): the quality audit of the newest week judges the
    earlier weeks too (see :func:`crmlib.quality.audit.records_at`)."""
    from . import funnel, master, pyramid, quality, segments

    return {
        "master": lambda con, d, truth: master.master_weekly_metrics(con, d, truth_dir=truth),
        "quality": lambda con, d, truth: quality.quality_weekly_metrics(con, d, judged_with=shared),
        "segments": lambda con, d, truth: segments.segments_weekly_metrics(con, d),
        "funnel": lambda con, d, truth: funnel.funnel_weekly_metrics(con, d),
        "pyramid": lambda con, d, truth: pyramid.pyramid_weekly_metrics(con, d),
    }


def week_metrics(con: duckdb.DuckDBPyConnection, as_of: dt.date, truth_dir: str | None = None,
                 shared: dict | None = None, seconds: dict | None = None) -> dict:
    """The flat figures of one week. ``shared``: a dict kept across the calls of one run, newest week
    first, through which the providers reuse work (the quality audit). ``seconds``: filled with the wall
    time of each analysis."""
    out: dict[str, Any] = {}
    for name, provider in _providers({} if shared is None else shared).items():
        t0 = time.perf_counter()
        figures = provider(con, as_of, truth_dir)
        if seconds is not None:
            seconds[name] = round(time.perf_counter() - t0, 2)
        for key, value in figures.items():
            if key in out:
                raise ValueError(f"metric {key!r} reported twice")
            out[key] = _plain(value)
    return dict(sorted(out.items()))


def _plain(value: Any) -> Any:
    """JSON-safe scalar: numpy numbers → Python, NaN → None, floats rounded for stable diffs."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def deltas(now: dict, before: dict) -> dict:
    out = {}
    for key, value in now.items():
        prev = before.get(key)
        if isinstance(value, (int, float)) and isinstance(prev, (int, float)) and not isinstance(value, bool):
            out[key] = _plain(value - prev)
    return out


def collect_metrics(db: str | Path, as_of: dt.date, reports_dir: Path, truth_dir: str | None) -> dict:
    from .report import iso_week

    truth = truth_dir if truth_dir and Path(truth_dir).exists() else None
    con = duckdb.connect(str(db), read_only=True)
    try:
        shared: dict = {}
        seconds: dict[str, dict] = {"this_week": {}}
        now = week_metrics(con, as_of, truth, shared, seconds["this_week"])
        result: dict[str, Any] = {"week": iso_week(as_of), "as_of": as_of.isoformat(), "metrics": now,
                                  "deltas": {}, "compare": {}, "seconds": seconds}
        for label, days in (("wow", 7), ("4w", 28)):
            then = as_of - dt.timedelta(days=days)
            stored = reports_dir / iso_week(then) / "metrics.json"
            if stored.exists():
                before = json.loads(stored.read_text(encoding="utf-8"))["metrics"]
                source = f"reports/{iso_week(then)}/metrics.json"
            else:
                seconds[label] = {}
                before = week_metrics(con, then, truth, shared, seconds[label])
                source = f"recomputed as of {then.isoformat()}"
            result["deltas"][label] = deltas(now, before)
            result["compare"][label] = {"week": iso_week(then), "source": source, "metrics": before}
        return result
    finally:
        con.close()
