"""Figures of the customer value pyramid (zh/en): pyramid, Lorenz curve, tier table, migration, scores.

The notebook's re-weighting sliders (:func:`reweight_widget`) redraw the same figures, so the report path
(no widgets) and the interactive path show identical pictures for identical weights.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import pyramid as pm
from ..i18n import check_lang, tr
from . import PALETTE, finish

TIER_COLORS = {"vip": PALETTE[0], "important": PALETTE[1], "ordinary": PALETTE[2], "small": PALETTE[3]}
LABELS = {
    **pm.LABELS,
    "pyramid_title": {"zh": "客户价值金字塔（{as_of}）", "en": "Customer value pyramid ({as_of})"},
    "lorenz_title": {"zh": "洛伦兹曲线：前{top:.0%}客户贡献{share:.1%}销售额，基尼系数 {gini:.3f}",
                     "en": "Lorenz curve: top {top:.0%} of customers hold {share:.1%} of revenue, Gini {gini:.3f}"},
    "equality": {"zh": "完全平均", "en": "perfect equality"},
    "customer_share": {"zh": "客户累计占比（由小到大）", "en": "cumulative share of customers (smallest first)"},
    "value_share": {"zh": "累计占比", "en": "cumulative share"},
    "tier_table_title": {"zh": "各层级客户数与贡献", "en": "Customers and contribution per tier"},
    "share_title": {"zh": "各层级占比：客户数 vs 销售额 vs 利润", "en": "Share per tier: customers vs revenue vs profit"},
    "share_title_rev": {"zh": "各层级占比：客户数 vs 销售额", "en": "Share per tier: customers vs revenue"},
    "customer_share_col": {"zh": "客户占比", "en": "Customer share"},
    "migration_title": {"zh": "层级迁移（上周 → 本周）", "en": "Tier migration (last week → this week)"},
    "prev_tier": {"zh": "上周层级", "en": "Last week"},
    "this_tier": {"zh": "本周层级", "en": "This week"},
    "hist_title": {"zh": "价值得分分布与分层线", "en": "Score distribution and tier cut-offs"},
    "pyramid_text": {"zh": "{label}<br>{n:,} 户（{cs:.1%}）<br>销售额占 {rs:.1%}",
                     "en": "{label}<br>{n:,} customers ({cs:.1%})<br>{rs:.1%} of revenue"},
}


def tier_label(tier: str, lang: str = "zh") -> str:
    return tr(LABELS, tier, lang)


def pyramid_figure(table: pd.DataFrame, lang: str = "zh", as_of: str = "") -> go.Figure:
    """A four-layer pyramid (VIP on top) from :func:`crmlib.pyramid.tier_table`; layer shapes are fixed,
    the text gives each tier's customers and revenue share (widths would mislead when VIP is not smallest)."""
    check_lang(lang)
    t = table.set_index("tier")
    fig = go.Figure()
    layers = len(pm.TIERS)
    for i, tier in enumerate(pm.TIERS):        # i = 0 is the top layer
        y_top, y_bot = layers - i, layers - i - 1
        w_top, w_bot = i / layers, (i + 1) / layers
        row = t.loc[tier] if tier in t.index else None
        n = int(row["customers"]) if row is not None else 0
        cs = float(row["customer_share"]) if row is not None else 0.0
        rs = float(row.get("revenue_share", np.nan)) if row is not None else np.nan
        text = tr(LABELS, "pyramid_text", lang).format(label=tier_label(tier, lang), n=n, cs=cs,
                                                       rs=0.0 if np.isnan(rs) else rs)
        fig.add_trace(go.Scatter(
            x=[-w_bot, w_bot, w_top, -w_top, -w_bot], y=[y_bot, y_bot, y_top, y_top, y_bot],
            fill="toself", mode="lines", line=dict(color="white", width=2), fillcolor=TIER_COLORS[tier],
            name=tier_label(tier, lang), hoverinfo="text", text=text.replace("<br>", " · ")))
        fig.add_annotation(x=0, y=y_bot + 0.45, text=text, showarrow=False,
                           font=dict(color="white" if tier in ("vip", "important") else "#222", size=12))
    fig.update_layout(showlegend=False, xaxis=dict(visible=False, range=[-1.05, 1.05]),
                      yaxis=dict(visible=False, range=[-0.05, layers + 0.05]))
    return finish(fig, tr(LABELS, "pyramid_title", lang).format(as_of=as_of), height=460)


def _thin(lz: pd.DataFrame, max_points: int = 800) -> pd.DataFrame:
    """Keep the curve's shape with at most ``max_points`` points (small HTML on 20k+ customers)."""
    if len(lz) <= max_points:
        return lz
    idx = np.unique(np.linspace(0, len(lz) - 1, max_points).round().astype(int))
    return lz.iloc[idx]


def lorenz_figure(ind: pd.DataFrame, lang: str = "zh", top_share: float = 0.2) -> go.Figure:
    """Lorenz curves of revenue (and profit, when known) with the line of equality; title states the
    measured top-share and Gini."""
    check_lang(lang)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=tr(LABELS, "equality", lang),
                             line=dict(color="#999", dash="dash")))
    for i, col in enumerate(c for c in ("revenue", "profit") if c in ind and ind[c].notna().any()):
        lz = _thin(pm.lorenz(ind[col]))
        fig.add_trace(go.Scatter(x=lz["customer_share"], y=lz["value_share"], mode="lines",
                                 name=tr(LABELS, col, lang), line=dict(color=PALETTE[i * 4 + 1], width=3),
                                 hovertemplate="%{x:.1%} → %{y:.1%}<extra></extra>"))
    share = pm.top_share(ind["revenue"], top_share)
    fig.add_trace(go.Scatter(x=[1 - top_share], y=[1 - share], mode="markers", showlegend=False,
                             marker=dict(size=10, color=PALETTE[5]),
                             hovertemplate="%{x:.0%} → %{y:.1%}<extra></extra>"))
    fig.update_layout(xaxis=dict(title=tr(LABELS, "customer_share", lang), tickformat=".0%", range=[0, 1]),
                      yaxis=dict(title=tr(LABELS, "value_share", lang), tickformat=".0%"))
    title = tr(LABELS, "lorenz_title", lang).format(top=top_share, share=share,
                                                     gini=pm.gini(ind["revenue"].clip(lower=0)))
    return finish(fig, title, height=460)


def tier_table_figure(table: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """The tier table as a plotly table: customers, shares, revenue, profit, loss-making."""
    check_lang(lang)
    cols = [c for c in ("customers", "customer_share", "revenue", "revenue_share", "profit", "profit_share",
                        "loss_making") if c in table]
    fmt = {"customer_share": "{:.1%}", "revenue_share": "{:.1%}", "profit_share": "{:.1%}",
           "revenue": "{:,.0f}", "profit": "{:,.0f}", "customers": "{:,}", "loss_making": "{:,}"}
    cells = [[tier_label(t, lang) for t in table["tier"]]]
    cells += [[("" if pd.isna(v) else fmt[c].format(v)) for v in table[c]] for c in cols]
    header = [tr(LABELS, "tier", lang)] + [tr(LABELS, "customer_share_col" if c == "customer_share" else c, lang)
                                           for c in cols]
    fig = go.Figure(go.Table(header=dict(values=header, fill_color=PALETTE[0], font=dict(color="white")),
                             cells=dict(values=cells, align=["left"] + ["right"] * len(cols))))
    return finish(fig, tr(LABELS, "tier_table_title", lang), height=260)


def tier_share_figure(table: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Grouped bars per tier: share of customers next to share of revenue and profit."""
    check_lang(lang)
    x = [tier_label(t, lang) for t in table["tier"]]
    fig = go.Figure()
    for i, c in enumerate(c for c in ("customer_share", "revenue_share", "profit_share") if c in table):
        name = tr(LABELS, "customer_share_col" if c == "customer_share" else c, lang)
        fig.add_bar(x=x, y=table[c], name=name, marker_color=PALETTE[[7, 1, 4][i]],
                    hovertemplate="%{x}: %{y:.1%}<extra>" + name + "</extra>")
    fig.update_layout(barmode="group", yaxis_tickformat=".0%")
    return finish(fig, tr(LABELS, "share_title" if "profit_share" in table else "share_title_rev", lang))


def migration_figure(matrix: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Heat map of :func:`crmlib.pyramid.migration`'s matrix (rows last week, columns this week)."""
    check_lang(lang)
    rows = [tier_label(t, lang) for t in matrix.index]
    cols = [tier_label(t, lang) for t in matrix.columns]
    fig = go.Figure(go.Heatmap(z=matrix.values, x=cols, y=rows, colorscale="Blues", showscale=False,
                               text=matrix.values, texttemplate="%{text:,}",
                               hovertemplate="%{y} → %{x}: %{z:,}<extra></extra>"))
    fig.update_layout(xaxis=dict(title=tr(LABELS, "this_tier", lang), side="top"),
                      yaxis=dict(title=tr(LABELS, "prev_tier", lang), autorange="reversed"))
    return finish(fig, tr(LABELS, "migration_title", lang), height=380)


def score_histogram(scored: pd.DataFrame, lang: str = "zh", cutoffs: pm.Cutoffs | None = None) -> go.Figure:
    """Distribution of scores coloured by tier, with the cut-off lines."""
    check_lang(lang)
    c = cutoffs or pm.Cutoffs()
    fig = go.Figure()
    for tier in reversed(pm.TIERS):
        part = scored.loc[scored["tier"] == tier, "score"]
        fig.add_histogram(x=part, name=tier_label(tier, lang), marker_color=TIER_COLORS[tier],
                          xbins=dict(start=0, end=100, size=2))
    for v in (c.ordinary, c.important, c.vip):
        fig.add_vline(x=v, line=dict(color="#444", dash="dot"))
    fig.update_layout(barmode="stack", xaxis=dict(title=tr(LABELS, "score", lang), range=[0, 100]),
                      yaxis_title=tr(LABELS, "customers", lang))
    return finish(fig, tr(LABELS, "hist_title", lang))


def reweight_widget(ind: pd.DataFrame, params: pm.ValueModel, lang: str = "zh", as_of=None):
    """ipywidgets sliders (one per indicator family) that re-score and redraw the pyramid and tier table.

    The sliders start from the weighting of the params (``weighting``: each family's share of the
    effective weights, unrounded), so before anything is moved the widget shows the report's pyramid
    (exactly for manual and AHP weighting; entropy weights are split inside a family by the manual weights
    once a slider moves). ``as_of`` (a date or text) goes into the pyramid's title, as in the report.
    """
    import ipywidgets as widgets
    from IPython.display import display

    w0 = pm.weights(ind, params)                 # the report's weights (params.weighting)
    start = w0.groupby(pd.Series({c: params.indicators[c].family for c in w0.index})).sum()
    sliders = {f: widgets.FloatSlider(value=float(start[f]), min=0, max=1, step=0.01,
                                      description=tr(LABELS, f, lang), continuous_update=False)
               for f in pm.FAMILIES if f in start.index}
    out = widgets.Output()

    def redraw(_=None):
        fw = {f: s.value for f, s in sliders.items()}
        with out:
            out.clear_output(wait=True)
            if sum(fw.values()) <= 0:
                print(tr({"x": {"zh": "请至少给一个维度设置权重", "en": "give at least one family a weight"}},
                         "x", lang))
                return
            scored = pm.score(ind, params, family_weights=fw)
            table = pm.tier_table(scored, ind)
            pyramid_figure(table, lang, "" if as_of is None else str(as_of)).show()
            tier_table_figure(table, lang).show()

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    display(widgets.VBox([*sliders.values(), out]))
