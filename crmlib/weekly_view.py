"""The managers' weekly report, section by section; the notebook `00_weekly_report` only calls these.

Every function returns a list of displayable objects (HTML snippets, plotly figures) so the notebook
cell is one loop. Tables pass through :func:`crmlib.reportview.table_html`, which masks personal data.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.display import HTML

from . import db as dbmod
from . import reportview as rv
from .i18n import tr

LABELS = {
    **rv.LABELS,
    "kpis": {"zh": "本周要点", "en": "Headlines"},
}

# (metric key, labels) shown as KPI cards at the top of the report, in this order
KPIS: list[tuple[str, dict[str, str]]] = []


@dataclass
class Context:
    con: Any
    as_of: dt.date
    metrics: dict
    lang: str
    truth_dir: Path | None


def open_context(as_of: str | None, db_path: str, metrics_path: str | None, truth_dir: str | None,
                 lang: str) -> Context:
    """Read-only connection plus this week's metrics (computed here when run interactively)."""
    from .metrics import collect_metrics, newest_data_date
    from .paths import reports_dir

    day = dt.date.fromisoformat(as_of) if as_of else newest_data_date(db_path)
    if metrics_path and Path(metrics_path).exists():
        metrics = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
    else:
        metrics = collect_metrics(db_path, day, reports_dir(), truth_dir)
    truth = Path(truth_dir) if truth_dir and Path(truth_dir).exists() else None
    return Context(dbmod.connect(db_path, read_only=True), day, metrics, lang, truth)


def header(ctx: Context) -> list:
    from .report import iso_week

    lang = ctx.lang
    title = f"<h1>{tr(LABELS, 'title', lang)} · {iso_week(ctx.as_of)}</h1>"
    sub = f"<p>{tr(LABELS, 'as_of', lang)} {ctx.as_of.isoformat()}</p>"
    compare = ctx.metrics.get("compare", {})
    note = " · ".join(f"{tr(LABELS, k, lang)}: {v['source']}" for k, v in compare.items())
    cards = rv.kpi_cards(ctx.metrics, KPIS, lang)
    return [HTML(title + sub + f"<h2>{tr(LABELS, 'kpis', lang)}</h2>" + cards
                 + f'<p style="font-size:11px;color:#888">{tr(LABELS, "compare_note", lang)} — {note}</p>')]
