"""Figures of the customer-master notebook: cluster sizes, match evidence, accuracy, a group's hierarchy."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from ..i18n import tr
from . import PALETTE, finish

LABELS = {
    "sizes_title": {"zh": "每个客户的记录数", "en": "Records per customer"},
    "records": {"zh": "记录数", "en": "records"},
    "customers": {"zh": "客户数", "en": "customers"},
    "evidence_title": {"zh": "匹配证据（匹配权重，log2 贝叶斯因子）", "en": "Match evidence (match weight, log2 Bayes factor)"},
    "prior": {"zh": "先验", "en": "prior"},
    "total": {"zh": "合计", "en": "total"},
    "name": {"zh": "名称", "en": "name"},
    "uscc": {"zh": "信用代码", "en": "credit code"},
    "phone": {"zh": "电话", "en": "phone"},
    "contact": {"zh": "联系人", "en": "contact"},
    "city": {"zh": "城市", "en": "city"},
    "address": {"zh": "地址", "en": "address"},
    "weight": {"zh": "匹配权重", "en": "match weight"},
    "accuracy_title": {"zh": "与演示真值对比的成对准确率", "en": "Pairwise accuracy against demo truth"},
    "precision": {"zh": "精确率", "en": "precision"},
    "recall": {"zh": "召回率", "en": "recall"},
    "target": {"zh": "目标", "en": "target"},
    "hierarchy_title": {"zh": "集团层级与收入（元）", "en": "Group hierarchy and revenue (yuan)"},
    "probability": {"zh": "匹配概率", "en": "match probability"},
}
COMPARISONS = ["name", "uscc", "phone", "contact", "city", "address"]
_BINS = [(1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 5, "4–5"), (6, 10, "6–10"), (11, 20, "11–20"),
         (21, 50, "21–50"), (51, math.inf, "51+")]


def size_bins(n_records: pd.Series) -> pd.DataFrame:
    """Customers per bin of records-per-customer (bins 1, 2, 3, 4–5, 6–10, 11–20, 21–50, 51+)."""
    rows = [{"bin": label, "customers": int(((n_records >= lo) & (n_records <= hi)).sum())}
            for lo, hi, label in _BINS]
    return pd.DataFrame(rows)


def cluster_sizes(n_records: pd.Series, lang: str = "zh") -> go.Figure:
    b = size_bins(n_records)
    fig = go.Figure(go.Bar(x=b["bin"], y=b["customers"], marker_color=PALETTE[1],
                           text=b["customers"], textposition="outside"))
    fig.update_layout(xaxis_title=tr(LABELS, "records", lang), yaxis_title=tr(LABELS, "customers", lang))
    return finish(fig, tr(LABELS, "sizes_title", lang))


def evidence(pair: pd.Series | dict, prior_weight: float, lang: str = "zh",
             level_labels: dict[str, str] | None = None) -> go.Figure:
    """Waterfall of one pair's match weight: prior, then each comparison's weight, then the total.

    The plotly equivalent of Splink's waterfall chart (which is altair). ``pair`` holds ``mw_<comparison>``,
    ``match_weight``, ``match_probability``, ``name_l``, ``name_r``; ``level_labels`` maps comparison → the
    level that applied (shown on hover)."""
    level_labels = level_labels or {}
    xs = [tr(LABELS, "prior", lang)] + [tr(LABELS, c, lang) for c in COMPARISONS] + [tr(LABELS, "total", lang)]
    ws = [prior_weight] + [float(pair.get(f"mw_{c}", 0.0) or 0.0) for c in COMPARISONS]
    total = float(pair.get("match_weight", sum(ws)))
    hover = [""] + [level_labels.get(c, "") for c in COMPARISONS] + [
        f"{tr(LABELS, 'probability', lang)} {float(pair.get('match_probability', 0)):.4f}"]
    fig = go.Figure(go.Waterfall(
        x=xs, y=ws + [total], measure=["relative"] * len(ws) + ["total"],
        text=[f"{w:+.1f}" for w in ws] + [f"{total:.1f}"], textposition="outside", hovertext=hover,
        increasing={"marker": {"color": PALETTE[2]}}, decreasing={"marker": {"color": PALETTE[5]}},
        totals={"marker": {"color": PALETTE[0]}}))
    title = f"{tr(LABELS, 'evidence_title', lang)}<br><sup>{pair.get('name_l', '')} ↔ {pair.get('name_r', '')}" \
            f" · p = {float(pair.get('match_probability', 0)):.4f}</sup>"
    fig.update_layout(yaxis_title=tr(LABELS, "weight", lang), showlegend=False)
    return finish(fig, title, height=380)


def accuracy(scores: dict, lang: str = "zh", targets: dict | None = None) -> go.Figure:
    """Precision and recall as bars with their acceptance targets as markers."""
    targets = targets or {"precision": 0.98, "recall": 0.95}
    keys = ["precision", "recall"]
    fig = go.Figure()
    fig.add_bar(x=[tr(LABELS, k, lang) for k in keys], y=[scores[k] for k in keys], marker_color=PALETTE[1],
                text=[f"{scores[k]:.4f}" for k in keys], textposition="outside", name="")
    fig.add_scatter(x=[tr(LABELS, k, lang) for k in keys], y=[targets[k] for k in keys], mode="markers",
                    marker=dict(symbol="line-ew-open", size=40, color=PALETTE[5], line=dict(width=3)),
                    name=tr(LABELS, "target", lang))
    fig.update_yaxes(range=[min(0.8, min(scores[k] for k in keys) - 0.05), 1.02])
    return finish(fig, tr(LABELS, "accuracy_title", lang), height=360)


def group_tree(tree: pd.DataFrame, lang: str = "zh") -> go.Figure:
    """Treemap of one group: ``customer_id, parent_id, name, subtree_revenue`` (root's parent blank)."""
    t = tree.copy()
    t["parent_id"] = t["parent_id"].fillna("")
    fig = go.Figure(go.Treemap(ids=t["customer_id"], parents=t["parent_id"], labels=t["name"],
                               values=t["subtree_revenue"].clip(lower=0), branchvalues="total",
                               hovertemplate="%{label}<br>%{value:,.0f}<extra></extra>"))
    return finish(fig, tr(LABELS, "hierarchy_title", lang), height=520)
