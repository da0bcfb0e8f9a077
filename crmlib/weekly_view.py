"""The managers' weekly report, section by section; the notebook `00_weekly_report` only calls these.

Every function returns a list of displayable objects (HTML snippets, plotly figures) so the notebook
cell is one loop. Tables pass through :func:`crmlib.reportview.table_html`, which masks personal data.
"""
from __future__ import annotations

import datetime as dt
import functools
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.display import HTML

from . import db as dbmod
from . import reportview as rv
from .errors import MissingData
from .i18n import tr

LABELS = {
    **rv.LABELS,
    "kpis": {"zh": "本周要点", "en": "Headlines"},
}

# (metric key, labels) shown as KPI cards at the top of the report, in this order
KPIS: list[tuple[str, dict[str, str]]] = [
    ("master_customers", {"zh": "客户总数", "en": "Customers"}),
    ("master_new_customers_week", {"zh": "本周新增客户", "en": "New customers this week"}),
    ("segments_lost_week", {"zh": "本周流失客户", "en": "Lost this week"}),
    ("quality_customer_error_rate", {"zh": "客户差错率（CRM）", "en": "Customers with errors (CRM)"}),
    ("quality_record_error_rate", {"zh": "记录差错率（CRM）", "en": "Wrong records (CRM)"}),
    ("funnel_open_count", {"zh": "在途商机数", "en": "Open opportunities"}),
    ("funnel_open_amount", {"zh": "在途商机金额（万元）", "en": "Open pipeline (10k CNY)"}),
    ("funnel_weighted_pipeline", {"zh": "加权商机金额（万元）", "en": "Weighted pipeline (10k CNY)"}),
    ("funnel_win_rate_90d", {"zh": "近90天赢单率", "en": "Win rate, last 90 days"}),
    ("pyramid_vip", {"zh": "VIP客户", "en": "VIP"}),
    ("pyramid_important", {"zh": "重要客户", "en": "Important"}),
    ("pyramid_ordinary", {"zh": "普通客户", "en": "Ordinary"}),
    ("pyramid_small", {"zh": "小客户", "en": "Small"}),
    ("pyramid_top20_revenue_share", {"zh": "前20%客户收入占比", "en": "Top-20% revenue share"}),
]


@dataclass
class Context:
    con: Any
    db_path: str
    as_of: dt.date
    metrics: dict
    lang: str
    truth_dir: Path | None
    frames: dict = field(default_factory=dict)   # this week's tables from the metrics step (crm weekly)


def open_context(as_of: str | None, db_path: str, metrics_path: str | None, truth_dir: str | None,
                 lang: str) -> Context:
    """Read-only connection plus this week's metrics (computed here when run interactively)."""
    from .asof import resolve
    from .metrics import load_frames, metrics_from
    from .paths import reports_dir

    con = dbmod.connect(db_path, read_only=True)
    try:
        day = resolve(con, as_of)
        if metrics_path and Path(metrics_path).exists():
            metrics = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
        else:
            metrics = metrics_from(con, day, reports_dir(), truth_dir)
    except BaseException:
        con.close()
        raise
    truth = Path(truth_dir) if truth_dir and Path(truth_dir).exists() else None
    return Context(con, db_path, day, metrics, lang, truth, load_frames(metrics_path, day))


def _source_note(entry: dict, lang: str) -> str:
    """Where an earlier week's figures came from (a ``compare`` entry of metrics.json): its own report, or
    recomputed from today's database. metrics.json files written before ``kind`` existed say it in
    ``source`` only."""
    source = entry["source"]
    kind = entry.get("kind") or ("recomputed" if source.startswith("recomputed as of ") else "report")
    if lang != "zh":
        return source
    if kind == "recomputed":
        return f"该周无报告，按当前数据重算（截至 {entry.get('as_of') or source.rsplit(' ', 1)[-1]}）"
    return f"该周报告 {source}"


def header(ctx: Context) -> list:
    from .report import iso_week

    lang = ctx.lang
    title = f"<h1>{tr(LABELS, 'title', lang)} · {iso_week(ctx.as_of)}</h1>"
    sub = f"<p>{tr(LABELS, 'as_of', lang)} {ctx.as_of.isoformat()}</p>"
    compare = ctx.metrics.get("compare", {})
    note = " · ".join(f"{tr(LABELS, k, lang)}: {_source_note(v, lang)}" for k, v in compare.items())
    cards = rv.kpi_cards(ctx.metrics, KPIS, lang)
    return [HTML(title + sub + f"<h2>{tr(LABELS, 'kpis', lang)}</h2>" + cards
                 + f'<p style="font-size:11px;color:#888">{tr(LABELS, "compare_note", lang)} — {note}</p>')]


# --------------------------------------------------------------------------------------------------
# sections: each returns [heading HTML, figures..., tables...] for the managers

SECTION_LABELS = {
    "quality": {"zh": "一、数据质量", "en": "1. Data quality"},
    "master": {"zh": "二、客户主数据", "en": "2. Customer master"},
    "segments": {"zh": "三、客户细分", "en": "3. Segments"},
    "funnel": {"zh": "四、销售漏斗", "en": "4. Sales funnel"},
    "pyramid": {"zh": "五、客户价值金字塔", "en": "5. Customer value pyramid"},
    "slipping": {"zh": "流失预警：长期未联系或未下单的高价值客户", "en": "Slipping away: valuable customers "
                 "without contact or order"},
    "sources": {"zh": "各来源记录归并情况", "en": "Records resolved per source"},
    "movers": {"zh": "本周层级变动客户", "en": "Customers who changed tier this week"},
    "stuck": {"zh": "停滞商机（按停留天数）", "en": "Stuck deals (by days in stage)"},
}


def _h2(key: str, lang: str) -> HTML:
    return HTML(f"<h2>{tr(SECTION_LABELS, key, lang)}</h2>")


def _unless_missing(key: str):
    """A section that says which data are missing instead of stopping the report, when its analysis found
    none of them this week (metrics.json ``unavailable``, or :class:`MissingData` raised while drawing):
    a center that sends no ERP orders still gets its quality and master sections. The technical message
    (with paths) stays in metrics.json and the run's log, out of the managers' page."""
    def wrap(draw):
        @functools.wraps(draw)
        def section(ctx: Context) -> list:
            what = (ctx.metrics.get("unavailable") or {}).get(key, {}).get("what")
            if what is None:
                try:
                    return draw(ctx)
                except MissingData as exc:
                    what = exc.what
            text = what.get(ctx.lang) or what.get("zh")
            note = (f"本周无法生成本节：数据库中没有{text}。" if ctx.lang == "zh"
                    else f"Not available this week: the database holds no {text}.")
            return [_h2(key, ctx.lang), HTML(f'<p class="crm-missing">{html.escape(note)}</p>')]
        return section
    return wrap


def _table(key: str, df, lang: str, rows: int = 10) -> HTML:
    return HTML(f"<h4>{tr(SECTION_LABELS, key, lang)}</h4>" + rv.table_html(df, rows))


def quality_section(ctx: Context) -> list:
    """This week's audit only; the week-over-week trend is in the KPI cards (the analysts' notebook shows
    the weekly trend, which managers do not need twice)."""
    from .charts import quality as qc
    from .quality import audit as qa
    from .quality.config import load_params

    lang = ctx.lang
    params = load_params()
    audit = qa.run_audit(ctx.con, ctx.as_of, params)
    return [
        _h2("quality", lang),
        qc.error_rate_by(qa.breakdown(audit, "source"), "source", lang),
        qc.error_rate_by(qa.breakdown(audit, "region", params.primary_source), "region", lang),
        qc.completeness_heatmap(audit.completeness, lang),
        qc.kinds_chart(qa.kinds_table(audit), lang),
    ]


def master_section(ctx: Context) -> list:
    from . import master
    from .charts import master as cm

    lang = ctx.lang
    items = [_h2("master", lang), cm.cluster_sizes(master.cluster_size_counts(ctx.con), lang)]
    if ctx.truth_dir is not None and (ctx.truth_dir / "records.csv").exists():
        items.append(cm.accuracy(master.evaluate(ctx.con, ctx.truth_dir), lang))
    tree = master.largest_group(ctx.con)
    if len(tree):
        items.append(cm.group_tree(tree, lang))
    by_source = ctx.con.execute(
        "SELECT source, count(*) AS records, count(customer_id) AS resolved, "
        "round(avg(match_probability), 4) AS mean_probability FROM customer_xref GROUP BY source ORDER BY source"
    ).df()
    items.append(_table("sources", by_source, lang))
    return items


@_unless_missing("segments")
def segments_section(ctx: Context) -> list:
    import pandas as pd

    from . import segments as sg
    from .charts import segments as ch

    lang = ctx.lang
    p = sg.load_params()
    given = ctx.frames.get("segments") or {}    # the metrics step's cache in `crm weekly`, else computed here
    h = sg.history_in(ctx.con, p.stages, given)
    cached = given.setdefault("stages", {})
    before = sg.stages_at(h, ctx.as_of - dt.timedelta(days=p.transition_days), p.stages, cached)
    stages = sg.with_attributes(sg.stages_at(h, ctx.as_of, p.stages, cached), h.customers)
    rfm = sg.with_attributes(sg.rfm_table(h.orders, ctx.as_of, p.rfm), h.customers)
    slip = sg.slipping_away(stages, h.customers, h.reps, p.slipping)
    cols = [c for c in ("customer_id", "name", "region", "owner_rep_id", "rep_name", "revenue",
                        "days_since_contact", "days_since_order") if c in slip.columns]
    return [
        _h2("segments", lang),
        ch.stage_counts_fig(sg.stage_counts(stages), lang),
        ch.transition_fig(sg.transition_matrix(before, stages), lang),
        ch.rfm_segments_fig(sg.rfm_summary(rfm, p.rfm, lang), lang),
        ch.slipping_by_rep_fig(slip, lang),
        _table("slipping", pd.DataFrame(slip[cols]), lang),
    ]


@_unless_missing("funnel")
def funnel_section(ctx: Context) -> list:
    from . import funnel as fn
    from .charts import funnel as cf

    lang = ctx.lang
    params = fn.load_params()
    given = ctx.frames.get("funnel")            # computed by the metrics step of `crm weekly`
    if given and given["lifecycle"] is not None:
        progress, state, lifecycle_rows = given["progress"], given["state"], given["lifecycle"]
    else:
        fd = fn.read_funnel(ctx.con, ctx.as_of, params)
        progress, state = fd.progress(), fd.state
        lifecycle_rows = fn.read_lifecycle(ctx.con, ctx.as_of, params)
    conv = fn.cohort_conversion(progress, params, unit="opportunity", complete_only=True)
    lifecycle = fn.lifecycle_funnel(lifecycle_rows, by="region")
    stuck, overdue = fn.stuck_deals(state, params), fn.overdue_deals(state, params, ctx.as_of)
    cols = [c for c in ("opp_id", "region", "rep_id", "current_stage", "days_in_stage", "amount")
            if c in stuck.columns]
    return [
        _h2("funnel", lang),
        cf.stage_funnel(conv, lang),
        cf.lifecycle_funnel(lifecycle, lang),
        cf.conversion_trend(fn.conversion_trend(progress, params), lang),
        cf.aging_bars(fn.aging_table(stuck, params), fn.aging_table(overdue, params), lang),
        cf.forecast_bars(fn.forecast_by_close_month(state, params, ctx.as_of), lang),
        _table("stuck", stuck[cols], lang),
    ]


@_unless_missing("pyramid")
def pyramid_section(ctx: Context) -> list:
    from . import pyramid as pm
    from .charts import pyramid as cp

    lang = ctx.lang
    params = pm.load_params()
    given = ctx.frames.get("pyramid") or {}     # the metrics step's cache in `crm weekly`, else computed here

    def scored_at(day):   # nothing to rank raises here, as the report always did (the metrics say empty)
        ind, scored = pm.scored_at(ctx.con, day, params, given)
        return ind, scored if len(scored) else pm.score(ind, params)

    ind, scored = scored_at(ctx.as_of)
    table = pm.tier_table(scored, ind)
    prev = scored_at(ctx.as_of - dt.timedelta(days=params.migration_days))[1]
    matrix, movers = pm.migration(prev["tier"], scored["tier"])
    names = pm.customer_names(ctx.con)
    return [
        _h2("pyramid", lang),
        cp.pyramid_figure(table, lang, ctx.as_of.isoformat()),
        cp.lorenz_figure(ind, lang, params.top_share),
        cp.tier_share_figure(table, lang),
        cp.migration_figure(matrix, lang),
        _table("movers", movers.join(names, on="customer_id"), lang),
    ]


SECTIONS = [quality_section, master_section, segments_section, funnel_section, pyramid_section]
