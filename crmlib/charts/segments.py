"""Figures for the segments notebook and report: every builder takes ``lang`` and returns a Figure."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..i18n import tr
from ..segments import LABELS, NOT_YET, STAGES
from . import PALETTE, finish

T = {
    "stage_counts": {"zh": "生命周期阶段客户数", "en": "Customers by lifecycle stage"},
    "transitions": {"zh": "阶段迁移 (上周 → 本周)", "en": "Stage transitions (a week ago → now)"},
    "scope_stage": {"zh": "客户范围 × 生命周期阶段", "en": "Scope × lifecycle stage"},
    "rfm_grid": {"zh": "RFM 分布: R 分 × FM 分 (R 按距 as_of 的天数)",
                 "en": "RFM: R score × FM score (R = days since last order, to as_of)"},
    "rfm_segments": {"zh": "RFM 客户分群: 客户与收入占比", "en": "RFM segments: share of customers and revenue"},
    "silhouette": {"zh": "按 k 的轮廓系数 (选中 k={k})", "en": "Silhouette by k (chosen k={k})"},
    "clusters": {"zh": "聚类画像: 客户与收入占比", "en": "Cluster profile: share of customers and revenue"},
    "slipping": {"zh": "流失预警的高价值客户 (按销售代表)", "en": "Valuable customers slipping away, by rep"},
    "crosstab": {"zh": "{rows} × {cols}", "en": "{rows} × {cols}"},
    "customers": {"zh": "客户数", "en": "Customers"},
    "customer_share": {"zh": "客户占比", "en": "Share of customers"},
    "revenue_share": {"zh": "收入占比", "en": "Share of revenue"},
    "k": {"zh": "聚类数 k", "en": "Number of clusters k"},
    "rep": {"zh": "销售代表", "en": "Sales rep"},
    "rep_left": {"zh": " (已离职)", "en": " (left)"},
}


def _t(key: str, lang: str, **kw) -> str:
    text = tr(T, key, lang) if key in T else tr(LABELS, key, lang)
    return text.format(**kw) if kw else text


def stage_counts_fig(counts: pd.Series, lang: str = "zh") -> go.Figure:
    """Bar per lifecycle stage (counts from :func:`crmlib.segments.stage_counts`)."""
    counts = counts.reindex(STAGES, fill_value=0)
    fig = go.Figure(go.Bar(x=[tr(LABELS, s, lang) for s in counts.index], y=counts.to_numpy(),
                           text=counts.to_numpy(), textposition="outside", marker_color=PALETTE[1]))
    fig.update_yaxes(title=_t("customers", lang))
    return finish(fig, _t("stage_counts", lang))


def _heatmap(tab: pd.DataFrame, x_title: str, y_title: str, title: str, lang: str,
             colorscale: str = "Blues", height: int = 460) -> go.Figure:
    x = [tr(LABELS, str(c), lang) for c in tab.columns]
    y = [tr(LABELS, str(i), lang) for i in tab.index]
    z = tab.to_numpy()
    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, colorscale=colorscale, text=z, texttemplate="%{text}",
                               hovertemplate="%{y} → %{x}: %{z}<extra></extra>", showscale=False))
    fig.update_xaxes(title=x_title, side="top", type="category")
    fig.update_yaxes(title=y_title, autorange="reversed", type="category")
    fig = finish(fig, title, height)
    fig.update_layout(margin=dict(t=100))  # room for the title above the top x axis
    return fig


def transition_fig(tm: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Week-over-week matrix from :func:`crmlib.segments.transition_matrix` (rows: before)."""
    tm = tm.reindex(index=STAGES + [NOT_YET], columns=STAGES, fill_value=0)
    return _heatmap(tm, _t("to", lang), _t("from", lang), _t("transitions", lang), lang)


def crosstab_fig(tab: pd.DataFrame, rows: str, cols: str, lang: str = "zh",
                 title: str | None = None) -> go.Figure:
    """Heatmap of a :func:`crmlib.segments.crosstab` table (margins dropped)."""
    tab = tab.drop(index="合计", columns="合计", errors="ignore")
    title = title or _t("crosstab", lang, rows=tr(LABELS, rows, lang), cols=tr(LABELS, cols, lang))
    return _heatmap(tab, tr(LABELS, cols, lang), tr(LABELS, rows, lang), title, lang,
                    height=max(360, 40 * len(tab) + 140))


def scope_stage_fig(stages: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Stacked bars: customers per scope, split by lifecycle stage."""
    df = stages[stages["stage"].notna()].assign(scope=lambda d: d["scope"].fillna("(空)"))
    tab = pd.crosstab(df["scope"], df["stage"]).reindex(columns=STAGES, fill_value=0)
    fig = go.Figure([go.Bar(name=tr(LABELS, s, lang), x=tab.index.tolist(), y=tab[s].to_numpy())
                     for s in STAGES])
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title=_t("customers", lang))
    return finish(fig, _t("scope_stage", lang))


def rfm_grid_fig(table: pd.DataFrame, bins: int = 5, lang: str = "zh") -> go.Figure:
    """Customers per (R score, FM score) cell; R = 5 is the most recent buyers."""
    tab = (table.groupby(["r_score", "fm_score"]).size().unstack(fill_value=0)
           .reindex(index=range(bins, 0, -1), columns=range(1, bins + 1), fill_value=0))
    # rows 5..1 with the reversed category axis: R = 5 (most recent) on top
    return _heatmap(tab, tr(LABELS, "fm_score", lang), tr(LABELS, "r_score", lang), _t("rfm_grid", lang),
                    lang)


def _share_bars(names: list[str], cust: pd.Series, rev: pd.Series, title: str, lang: str) -> go.Figure:
    fig = go.Figure([
        go.Bar(name=_t("customer_share", lang), x=names, y=cust.to_numpy(), marker_color=PALETTE[1],
               texttemplate="%{y:.0%}", textposition="outside"),
        go.Bar(name=_t("revenue_share", lang), x=names, y=rev.to_numpy(), marker_color=PALETTE[4],
               texttemplate="%{y:.0%}", textposition="outside"),
    ])
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%")
    return finish(fig, title)


def rfm_segments_fig(summary: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """From :func:`crmlib.segments.rfm_summary`: customer share vs revenue share per segment."""
    return _share_bars(summary["name"].tolist(), summary["customer_share"], summary["revenue_share"],
                       _t("rfm_segments", lang), lang)


def silhouette_fig(sil: pd.DataFrame, k: int, lang: str = "zh") -> go.Figure:
    fig = go.Figure(go.Scatter(x=sil["k"], y=sil["silhouette"], mode="lines+markers",
                               marker_color=PALETTE[0]))
    fig.add_vline(x=k, line_dash="dot", line_color=PALETTE[5])
    fig.update_xaxes(title=_t("k", lang), dtick=1)
    fig.update_yaxes(title=tr(LABELS, "silhouette", lang))
    return finish(fig, _t("silhouette", lang, k=k), 360)


def cluster_profile_fig(profile: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """From :class:`crmlib.segments.ClusterResult` ``profile``: customer vs revenue share per cluster."""
    return _share_bars(profile["name"].tolist(), profile["customer_share"], profile["revenue_share"],
                       _t("clusters", lang), lang)


def slipping_by_rep_fig(slip: pd.DataFrame, lang: str = "zh", top: int = 20) -> go.Figure:
    """Slipping-away customers per owner rep (top ``top`` reps); reps who left are marked."""
    df = slip.assign(rep=slip.get("rep_name", slip["owner_rep_id"]).fillna(slip["owner_rep_id"])
                     .fillna("(无)"))
    if "rep_left_at" in df:
        df["rep"] = df["rep"] + df["rep_left_at"].notna().map({True: _t("rep_left", lang), False: ""})
    n = df.groupby("rep").size().sort_values(ascending=False, kind="stable").head(top)
    fig = go.Figure(go.Bar(x=n.to_numpy(), y=n.index.tolist(), orientation="h", marker_color=PALETTE[5],
                           text=n.to_numpy(), textposition="outside"))
    fig.update_yaxes(autorange="reversed", title=_t("rep", lang))
    fig.update_xaxes(title=_t("customers", lang), tickformat="d", rangemode="tozero")
    return finish(fig, _t("slipping", lang), max(320, 24 * len(n) + 140))
