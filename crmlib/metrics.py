"""Headline figures for a week: one flat dict per week, plus week-over-week and 4-week deltas.

``metrics.json`` (one per ``reports/<ISO week>/``) holds ``metrics`` (this week) and ``deltas``. A delta
is computed against the earlier week's own ``metrics.json`` when that report exists, so the report
agrees with what managers saw last week; otherwise the earlier week is recomputed from the database as
of that date (``compare.<label>.kind`` says which). ``seconds`` records how long each analysis took per week
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


def _providers() -> dict[str, Callable[[duckdb.DuckDBPyConnection, dt.date, str | None, dict], dict]]:
    """Each analysis contributes a flat dict; imported here so the list is in one place. The last argument
    is the analysis's own cache for one run's calls (newest week first), dropped when its weeks are done:
    segments read the history once and pyramid score each date once (this week's "a week ago" is the
    week-over-week date), and the quality audit of the newest week judges the earlier weeks too (see
    :func:`crmlib.quality.audit.records_at`). Quality comes last: its audit is the longest piece, and in a
    weekly run the quality notebook computes it at the same time (the audit cache hands it over), so the
    other analyses go first instead of waiting."""
    from . import funnel, master, pyramid, quality, segments

    return {
        "master": lambda con, d, truth, cache: master.master_weekly_metrics(con, d, truth_dir=truth),
        "segments": lambda con, d, truth, cache: segments.segments_weekly_metrics(con, d, cache=cache),
        "funnel": lambda con, d, truth, cache: funnel.funnel_weekly_metrics(con, d),
        "pyramid": lambda con, d, truth, cache: pyramid.pyramid_weekly_metrics(con, d, cache=cache),
        "quality": lambda con, d, truth, cache: quality.quality_weekly_metrics(con, d, judged_with=cache),
    }


def weeks_metrics(con: duckdb.DuckDBPyConnection, dates: dict[str, dt.date], truth_dir: str | None = None,
                  seconds: dict | None = None) -> dict[str, dict]:
    """The flat figures of several weeks (label -> date, newest first), one analysis at a time over all
    the weeks. ``seconds``: filled with the wall time per week label and analysis."""
    out: dict[str, dict[str, Any]] = {label: {} for label in dates}
    for name, provider in _providers().items():
        cache: dict = {}
        for label, day in dates.items():
            t0 = time.perf_counter()
            figures = provider(con, day, truth_dir, cache)
            if seconds is not None:
                seconds.setdefault(label, {})[name] = round(time.perf_counter() - t0, 2)
            for key, value in figures.items():
                if key in out[label]:
                    raise ValueError(f"metric {key!r} reported twice")
                out[label][key] = _plain(value)
        del cache
    return {label: dict(sorted(f.items())) for label, f in out.items()}


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
    """:func:`metrics_from` over a read-only connection to ``db``."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return metrics_from(con, as_of, reports_dir, truth_dir)
    finally:
        con.close()


def metrics_from(con: duckdb.DuckDBPyConnection, as_of: dt.date, reports_dir: Path, truth_dir: str | None) -> dict:
    """The content of ``metrics.json``. Each ``compare`` entry says where its figures came from:
    ``kind`` "report" (that week's ``metrics.json``) or "recomputed" (as of ``as_of`` from this database),
    and ``source`` in words."""
    from .report import iso_week

    truth = truth_dir if truth_dir and Path(truth_dir).exists() else None
    dates = {"this_week": as_of}
    compare: dict[str, dict] = {}
    for label, days in (("wow", 7), ("4w", 28)):
        then = as_of - dt.timedelta(days=days)
        stored = reports_dir / iso_week(then) / "metrics.json"
        entry = {"week": iso_week(then), "as_of": then.isoformat()}
        if stored.exists():
            compare[label] = {**entry, "kind": "report", "source": f"reports/{iso_week(then)}/metrics.json",
                              "metrics": json.loads(stored.read_text(encoding="utf-8"))["metrics"]}
        else:
            dates[label] = then
            compare[label] = {**entry, "kind": "recomputed", "source": f"recomputed as of {then.isoformat()}"}
    seconds: dict[str, dict] = {}
    figures = weeks_metrics(con, dates, truth, seconds)
    now = figures["this_week"]
    for label in compare:
        compare[label].setdefault("metrics", figures.get(label))
    return {"week": iso_week(as_of), "as_of": as_of.isoformat(), "metrics": now,
            "deltas": {label: deltas(now, c["metrics"]) for label, c in compare.items()},
            "compare": compare, "seconds": seconds}
