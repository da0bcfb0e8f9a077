"""Funnel figures (zh/en): stage funnel per group, lifecycle funnel, conversion trend by cohort month,
time-in-stage box plots, aging bars, lost reasons, forecast, plan vs actual.

Each builder takes frames produced by :mod:`crmlib.funnel` and says in its title whether counts are per
opportunity or per master customer.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .. import funnel as fn
from ..i18n import check_lang
from . import PALETTE, finish


def _l(key: str, lang: str) -> str:
    return fn.label(key, lang)


def _title(main: str, note: str, lang: str) -> str:
    return f"{main}（{note}）" if lang == "zh" else f"{main} ({note})"


def _group_name(row, dims) -> str:
    return " / ".join(str(row[d]) for d in dims) if dims else ""


def stage_funnel(conv: pd.DataFrame, lang: str = "zh", by: str | list[str] | None = None,
                 title: str | None = None) -> go.Figure:
    """One funnel trace per group from :func:`crmlib.funnel.cohort_conversion` (reached counts, with the
    overall rate as text)."""
    check_lang(lang)
    dims = fn._dims(by)
    fig = go.Figure()
    groups = conv.groupby(dims, sort=True) if dims else [((), conv)]
    for i, (_, g) in enumerate(groups):
        g = g.sort_values("stage_rank")
        name = _group_name(g.iloc[0], dims) or _l("opportunities", lang)
        fig.add_trace(go.Funnel(
            name=name, y=[fn.stage_label(s, lang) for s in g["stage"]], x=g["reached"],
            text=[f"{r:.0%}" if pd.notna(r) else "" for r in g["overall_rate"]],
            textinfo="value+text", marker=dict(color=PALETTE[i % len(PALETTE)])))
    unit = conv["unit"].iloc[0] if len(conv) else "opportunity"
    default = _title(_l("funnel_title", lang), _l("unit_" + unit, lang), lang)
    fig.update_layout(funnelmode="group" if dims else "stack")
    return finish(fig, title or default, height=460)


def lifecycle_funnel(funnel: pd.DataFrame, lang: str = "zh", by: str | None = "region") -> go.Figure:
    """目标客户 → 潜在客户 → 机会客户 → 订单, one trace per group (per master customer); text = step rate."""
    check_lang(lang)
    dims = fn._dims(by)
    fig = go.Figure()
    groups = funnel.groupby(dims, sort=True) if dims else [((), funnel)]
    for i, (_, g) in enumerate(groups):
        g = g.sort_values("stage_rank")
        fig.add_trace(go.Funnel(
            name=_group_name(g.iloc[0], dims) or _l("customers", lang),
            y=[_l(s, lang) for s in g["stage"]], x=g["customers"],
            text=[f"{r:.1%}" if pd.notna(r) else "" for r in g["rate"]], textinfo="value+text",
            marker=dict(color=PALETTE[i % len(PALETTE)])))
    fig.update_layout(funnelmode="group" if dims else "stack")
    return finish(fig, _title(_l("lifecycle_title", lang), _l("unit_customer", lang), lang), height=460)


def conversion_trend(trend: pd.DataFrame, lang: str = "zh", by: str | None = None) -> go.Figure:
    """Overall conversion to won per cohort month (lines per group); hollow markers = window not over."""
    check_lang(lang)
    dims = fn._dims(by)
    fig = go.Figure()
    groups = trend.groupby(dims, sort=True) if dims else [((), trend)]
    for i, (_, g) in enumerate(groups):
        g = g.sort_values("cohort_month")
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=g["cohort_month"], y=g["overall_rate"], mode="lines+markers",
            name=_group_name(g.iloc[0], dims) or _l("win_conversion", lang),
            line=dict(color=color),
            marker=dict(symbol=["circle" if c else "circle-open" for c in g["window_complete"]], size=9,
                        color=color),
            customdata=g[["cohort", "reached"]].to_numpy(),
            hovertemplate="%{x}: %{y:.1%} (%{customdata[1]}/%{customdata[0]})<extra></extra>"))
    fig.update_yaxes(tickformat=".0%", title=_l("win_conversion", lang), rangemode="tozero")
    fig.update_xaxes(title=_l("cohort_month", lang), type="category")
    note = "○ = " + _l("immature", lang)
    return finish(fig, _title(_l("trend_title", lang), note, lang))


def time_in_stage_box(durations: pd.DataFrame, p: fn.FunnelParams, lang: str = "zh") -> go.Figure:
    """Box plot of completed days per open stage (censored stays left out, as in time_in_stage)."""
    check_lang(lang)
    done = durations[~durations["censored"]]
    fig = go.Figure()
    for i, stage in enumerate(p.open_stages):
        d = done.loc[done["stage"] == stage, "days"]
        fig.add_trace(go.Box(y=d, name=fn.stage_label(stage, lang), boxpoints="outliers",
                             marker=dict(color=PALETTE[i % len(PALETTE)]), showlegend=False))
    fig.update_yaxes(title=_l("days_in_stage", lang), rangemode="tozero")
    return finish(fig, _title(_l("box_title", lang), _l("unit_opportunity", lang), lang))


def aging_bars(stuck: pd.DataFrame, overdue: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Grouped bars per aging bucket: stuck deals (days beyond the stage threshold) and deals past their
    expected close date; inputs from :func:`crmlib.funnel.aging_table`."""
    check_lang(lang)
    fig = go.Figure()
    for i, (key, df) in enumerate((("stuck", stuck), ("overdue", overdue))):
        fig.add_trace(go.Bar(x=df["bucket"].astype(str), y=df["count"], name=_l(key, lang),
                             marker=dict(color=PALETTE[4 + i]), customdata=df[["amount"]].to_numpy(),
                             hovertemplate="%{x}: %{y} (%{customdata[0]:,.0f})<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title=_l("bucket", lang) + (" (天)" if lang == "zh" else " (days)"))
    fig.update_yaxes(title=_l("opportunities", lang))
    return finish(fig, _l("aging_title", lang))


def lost_reasons_bar(reasons: pd.DataFrame, column: str = "lost_reason", lang: str = "zh",
                     top: int = 10) -> go.Figure:
    """Horizontal bars of lost deals by reason or competitor (largest on top)."""
    check_lang(lang)
    r = reasons.nlargest(top, "count").iloc[::-1]
    fig = go.Figure(go.Bar(x=r["count"], y=r[column], orientation="h", marker=dict(color=PALETTE[5]),
                           text=[f"{s:.0%}" for s in r["share"]], textposition="outside"))
    fig.update_xaxes(title=_l("opportunities", lang))
    return finish(fig, f"{_l('lost', lang)}: {_l(column, lang)}")


def forecast_bars(forecast: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Open amount and probability-weighted amount by expected close month (overdue months in red)."""
    check_lang(lang)
    f = forecast.groupby(["close_month", "overdue"], as_index=False)[["amount", "weighted"]].sum()
    fig = go.Figure()
    fig.add_trace(go.Bar(x=f["close_month"], y=f["amount"], name=_l("amount", lang),
                         marker=dict(color=[PALETTE[5] if o else PALETTE[1] for o in f["overdue"]])))
    fig.add_trace(go.Bar(x=f["close_month"], y=f["weighted"], name=_l("weighted", lang),
                         marker=dict(color=PALETTE[0])))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title=_l("close_month", lang), type="category")
    return finish(fig, _l("close_month", lang))


def plan_vs_actual(pva: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Per region, planned vs actual counts at each stage of the plan (log scale: leads dwarf orders); actual
    as :func:`crmlib.funnel.plan_actuals` counts it."""
    check_lang(lang)
    stages = [("leads", "target"), ("potentials", "potential"), ("opportunities", "opportunity"),
              ("orders", "order")]
    fig = go.Figure()
    for i, (col, key) in enumerate(stages):
        color = PALETTE[i]
        fig.add_trace(go.Bar(x=pva["region"], y=pva[col], name=f"{_l(key, lang)} · {_l('plan', lang)}",
                             marker=dict(color=color, opacity=0.45), offsetgroup=i * 2))
        fig.add_trace(go.Bar(x=pva["region"], y=pva[f"{col}_actual"],
                             name=f"{_l(key, lang)} · {_l('actual', lang)}", marker=dict(color=color),
                             offsetgroup=i * 2 + 1))
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", title=_l("plan_count", lang))
    title = "客户资源计划 vs 实际" if lang == "zh" else "Customer-resource plan vs actual"
    return finish(fig, title, height=480)


def filter_widget(progress: pd.DataFrame, p: fn.FunnelParams, lang: str = "zh",
                  dims: tuple[str, ...] = ("region", "industry", "rep_id")):
    """Dropdown filters (region / industry / rep) redrawing the stage funnel and the conversion trend for
    the selected slice: the same builders as the static report, on a filtered progress frame. As in the
    report, the funnel counts only cohorts whose window has ended (``complete_only``), so with no filter it
    is the report's funnel; the trend shows every month (hollow markers: window not over). Notebooks
    call it only when ``interactive`` is True."""
    import ipywidgets as w
    from IPython.display import clear_output, display

    every = "（全部）" if lang == "zh" else "(all)"
    drops = {d: w.Dropdown(options=[every, *sorted(progress[d].dropna().astype(str).unique())],
                           description=_l(d, lang)) for d in dims if d in progress.columns}
    unit = w.ToggleButtons(options=[(_l("unit_opportunity", lang), "opportunity"),
                                    (_l("unit_customer", lang), "customer")])
    out = w.Output()

    def redraw(*_):
        df = progress
        for d, dd in drops.items():
            if dd.value != every:
                df = df[df[d].astype(str) == dd.value]
        with out:
            clear_output(wait=True)
            if df.empty:
                print("no opportunities in this selection" if lang == "en" else "所选范围内没有商机")
                return
            if df["window_complete"].any():
                stage_funnel(fn.cohort_conversion(df, p, unit=unit.value, complete_only=True), lang).show()
            else:
                print("no opportunity in this selection has completed its window yet" if lang == "en"
                      else "所选范围内的商机窗口期均未结束")
            conversion_trend(fn.conversion_trend(df, p, unit=unit.value), lang).show()

    for c in (*drops.values(), unit):
        c.observe(redraw, names="value")
    display(w.VBox([w.HBox(list(drops.values())), unit, out]))
    redraw()
