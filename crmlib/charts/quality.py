"""Figures of the data-quality audit (zh/en)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..i18n import check_lang, tr
from . import PALETTE, finish

LABELS = {
    "record_error_rate": {"zh": "记录错误率", "en": "record error rate"},
    "customer_error_rate": {"zh": "客户错误率", "en": "customer error rate"},
    "region": {"zh": "大区", "en": "region"},
    "rep_id": {"zh": "销售代表", "en": "rep"},
    "source": {"zh": "来源", "en": "source"},
    "by_title": {"zh": "错误率（按{by}）", "en": "Error rate by {by}"},
    "completeness": {"zh": "关键字段完整率（按来源）", "en": "Key-field completeness by source"},
    "field": {"zh": "字段", "en": "field"},
    "trend": {"zh": "错误率趋势（{scope}）", "en": "Error-rate trend ({scope})"},
    "as_of": {"zh": "审计日期", "en": "as of"},
    "all": {"zh": "全部来源", "en": "all sources"},
    "kinds": {"zh": "问题类型分布", "en": "Problems by kind"},
    "n_records": {"zh": "记录数", "en": "records"},
    "crm": {"zh": "CRM", "en": "CRM"}, "sales": {"zh": "销售日报", "en": "sales sheets"},
    "callcenter": {"zh": "呼叫中心", "en": "call center"}, "service": {"zh": "维修", "en": "service"},
    "erp": {"zh": "ERP", "en": "ERP"},
    "crm_contacts": {"zh": "CRM联系人", "en": "CRM contacts"}, "erp_orders": {"zh": "ERP订单", "en": "ERP orders"},
}
FIELD_LABELS = {
    "name_raw": {"zh": "客户名称", "en": "name"}, "uscc": {"zh": "信用代码", "en": "credit code"},
    "phone": {"zh": "电话", "en": "phone"}, "contact_name": {"zh": "联系人", "en": "contact"},
    "email": {"zh": "邮箱", "en": "e-mail"}, "province": {"zh": "省份", "en": "province"},
    "city": {"zh": "城市", "en": "city"}, "address": {"zh": "地址", "en": "address"},
    "industry": {"zh": "行业", "en": "industry"}, "rep_id": {"zh": "销售代表", "en": "rep"},
    "record_date": {"zh": "日期", "en": "date"},
}


def error_rate_by(table: pd.DataFrame, by: str, lang: str = "zh", top: int | None = None) -> go.Figure:
    """Grouped bars of record and customer error rate per ``by`` (a :func:`breakdown` table)."""
    check_lang(lang)
    t = table.sort_values("record_error_rate", ascending=False)
    if top:
        t = t.head(top)
    x = [tr(LABELS, v, lang) if by == "source" else v for v in t[by].astype(str)]
    fig = go.Figure()
    for i, m in enumerate(("record_error_rate", "customer_error_rate")):
        fig.add_bar(x=x, y=t[m], name=tr(LABELS, m, lang), marker_color=PALETTE[i + 4],
                    customdata=t[["n_records"]].values,
                    hovertemplate="%{x}: %{y:.1%}<extra>" + tr(LABELS, m, lang) + "</extra>")
    fig.update_layout(barmode="group", yaxis_tickformat=".0%", xaxis_title=tr(LABELS, by, lang))
    return finish(fig, tr(LABELS, "by_title", lang).format(by=tr(LABELS, by, lang)))


def completeness_heatmap(comp: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Source × key field heat map of the share filled (blank where a field is not key for a source)."""
    check_lang(lang)
    piv = comp.pivot(index="source", columns="field", values="share")
    fields = [f for f in FIELD_LABELS if f in piv.columns]
    piv = piv[fields]
    fig = go.Figure(go.Heatmap(
        z=piv.values, x=[tr(FIELD_LABELS, f, lang) for f in fields],
        y=[tr(LABELS, s, lang) for s in piv.index], zmin=0, zmax=1, colorscale="RdYlGn",
        text=[[("" if pd.isna(v) else f"{v:.0%}") for v in row] for row in piv.values],
        texttemplate="%{text}", hovertemplate="%{y} · %{x}: %{z:.1%}<extra></extra>",
        colorbar=dict(tickformat=".0%")))
    fig.update_layout(xaxis_title=tr(LABELS, "field", lang), yaxis_title=tr(LABELS, "source", lang))
    return finish(fig, tr(LABELS, "completeness", lang), height=360)


def trend_chart(trend: pd.DataFrame, scope: str = "crm", lang: str = "zh") -> go.Figure:
    """Customer and record error rate at each audit date of a :func:`trend` table for one scope."""
    check_lang(lang)
    t = trend[trend["scope"] == scope].sort_values("as_of")
    fig = go.Figure()
    for i, m in enumerate(("customer_error_rate", "record_error_rate")):
        fig.add_scatter(x=t["as_of"].astype(str), y=t[m], mode="lines+markers", name=tr(LABELS, m, lang),
                        line=dict(color=PALETTE[i + 4]), hovertemplate="%{x}: %{y:.1%}<extra></extra>")
    fig.update_layout(yaxis_tickformat=".0%", xaxis_title=tr(LABELS, "as_of", lang), xaxis_type="category")
    return finish(fig, tr(LABELS, "trend", lang).format(scope=tr(LABELS, scope, lang)))


def kinds_chart(kinds: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Stacked bars: records with each kind of problem, per source (a :func:`kinds_table`)."""
    check_lang(lang)
    from ..quality.checks import REASONS, REASONS_EN
    names = REASONS if lang == "zh" else REASONS_EN
    order = kinds.groupby("kind")["n_records"].sum().sort_values().index.tolist()
    fig = go.Figure()
    for i, (src, sub) in enumerate(kinds.groupby("source")):
        sub = sub.set_index("kind").reindex(order)
        fig.add_bar(y=[names.get(k, k)[:18] for k in order], x=sub["n_records"], orientation="h",
                    name=tr(LABELS, src, lang), marker_color=PALETTE[i % len(PALETTE)])
    fig.update_layout(barmode="stack", xaxis_title=tr(LABELS, "n_records", lang))
    return finish(fig, tr(LABELS, "kinds", lang), height=max(360, 28 * len(order) + 120))
