"""Headline figures for a week: one flat dict per week, plus week-over-week and 4-week deltas.

``metrics.json`` (one per ``reports/<ISO week>/``) holds ``metrics`` (this week) and ``deltas``. A delta
is computed against the earlier week's own ``metrics.json`` when that report exists, so the report
agrees with what managers saw last week; otherwise the earlier week is recomputed from the database as
of that date (``compare.<label>.kind`` says which). ``seconds`` records how long each analysis took per week
computed (where the time of the ``metrics`` step in ``timings.json`` went); ``unavailable`` the analyses
that found none of their data this week (no opportunities loaded, say), and why.
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
        "funnel": lambda con, d, truth, cache: funnel.funnel_weekly_metrics(con, d, cache=cache),
        "pyramid": lambda con, d, truth, cache: pyramid.pyramid_weekly_metrics(con, d, cache=cache),
        "quality": lambda con, d, truth, cache: quality.quality_weekly_metrics(con, d, judged_with=cache),
    }


def weeks_metrics(con: duckdb.DuckDBPyConnection, dates: dict[str, dt.date], truth_dir: str | None = None,
                  seconds: dict | None = None,
                  on_done: Callable[[str, dict], None] | None = None,
                  unavailable: dict | None = None) -> dict[str, dict]:
    """The flat figures of several weeks (label -> date, newest first), one analysis at a time over all
    the weeks. ``seconds``: filled with the wall time per week label and analysis. ``on_done``: called with
    each analysis's name and its cache once its weeks are done (see :func:`save_frames`). An analysis that
    finds none of its data at a date (:class:`crmlib.errors.MissingData`: no opportunities yet) has no
    figures for it; ``unavailable`` receives label → analysis → {message, what}."""
    from .errors import MissingData

    out: dict[str, dict[str, Any]] = {label: {} for label in dates}
    for name, provider in _providers().items():
        cache: dict = {}
        for label, day in dates.items():
            t0 = time.perf_counter()
            try:
                figures = provider(con, day, truth_dir, cache)
            except MissingData as exc:
                figures = {}
                if unavailable is not None:
                    unavailable.setdefault(label, {})[name] = {"message": str(exc), "what": exc.what}
            if seconds is not None:
                seconds.setdefault(label, {})[name] = round(time.perf_counter() - t0, 2)
            for key, value in figures.items():
                if key in out[label]:
                    raise ValueError(f"metric {key!r} reported twice")
                out[label][key] = _plain(value)
        if on_done is not None:
            on_done(name, cache)
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


# Analyses whose tables of this week the managers' report draws too (segments, funnel, pyramid): the weekly run hands them over
# (save_frames → load_frames) instead of computing them a second time in the report's kernel.
FRAME_ANALYSES = ("segments", "funnel", "pyramid")
FRAMES_FILE = ".frames.pkl"   # beside metrics.json in the week being built; removed before it is published


def save_frames(path: Path, as_of: dt.date, keep: dict, days_before: dict[str, int]) -> None:
    """This week's tables from the metrics caches (``keep``): segments' history and stage tables at as_of and
    ``days_before["segments"]`` earlier, the funnel's state, progress and lifecycle at as_of,
    the pyramid's indicators and scores at as_of and ``days_before["pyramid"]`` earlier. Written
    atomically; a failure only costs the report the time to compute them itself."""
    import os
    import pickle

    out: dict[str, Any] = {"as_of": as_of}
    seg, pyr = keep.get("segments") or {}, keep.get("pyramid") or {}
    dates = {"segments": [as_of, as_of - dt.timedelta(days=days_before["segments"])],
             "pyramid": [as_of, as_of - dt.timedelta(days=days_before["pyramid"])]}
    stages = seg.get("stages") or {}
    if "history" in seg and all(d in stages for d in dates["segments"]):
        out["segments"] = {"history": seg["history"], "stages": {d: stages[d] for d in dates["segments"]}}
    if all(d in pyr for d in dates["pyramid"]):
        out["pyramid"] = {d: pyr[d] for d in dates["pyramid"]}
    fun = keep.get("funnel") or {}
    if as_of in fun:
        out["funnel"] = fun[as_of]
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump(out, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except Exception:
        tmp.unlink(missing_ok=True)


def load_frames(metrics_path: str | Path | None, as_of: dt.date) -> dict:
    """What :func:`save_frames` left beside ``metrics_path`` for this ``as_of`` ({} when nothing usable)."""
    import pickle

    if not metrics_path:
        return {}
    f = Path(metrics_path).with_name(FRAMES_FILE)
    try:
        with open(f, "rb") as fh:
            frames = pickle.load(fh)
        return frames if isinstance(frames, dict) and frames.get("as_of") == as_of else {}
    except Exception:  # absent (an analyst's run), or unreadable: the report computes its tables
        return {}


def collect_metrics(db: str | Path, as_of: dt.date, reports_dir: Path, truth_dir: str | None,
                    frames: Path | None = None) -> dict:
    """:func:`metrics_from` over a read-only connection to ``db``; with ``frames``, this week's tables are
    saved there for the managers' report (:func:`save_frames`)."""
    keep: dict = {}

    def hand_over(name: str, cache: dict) -> None:
        # written as soon as both analyses are done, and let go before the quality audit (the largest) runs
        if frames is None or name not in FRAME_ANALYSES:
            return
        keep[name] = cache
        if set(keep) == set(FRAME_ANALYSES):
            from . import pyramid, segments
            save_frames(frames, as_of, keep, {"segments": segments.load_params().transition_days,
                                              "pyramid": pyramid.load_params().migration_days})
            keep.clear()

    con = duckdb.connect(str(db), read_only=True)
    try:
        return metrics_from(con, as_of, reports_dir, truth_dir, on_done=hand_over)
    finally:
        con.close()


def metrics_from(con: duckdb.DuckDBPyConnection, as_of: dt.date, reports_dir: Path, truth_dir: str | None,
                 on_done: Callable[[str, dict], None] | None = None) -> dict:
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
    unavailable: dict[str, dict] = {}
    figures = weeks_metrics(con, dates, truth, seconds, on_done, unavailable)
    now = figures["this_week"]
    for label in compare:
        compare[label].setdefault("metrics", figures.get(label))
    return {"week": iso_week(as_of), "as_of": as_of.isoformat(), "metrics": now,
            "deltas": {label: deltas(now, c["metrics"]) for label, c in compare.items()},
            "compare": compare, "seconds": seconds, "unavailable": unavailable.get("this_week", {})}
