"""Pieces of the managers' HTML: KPI cards, section headings, tables with personal data masked.

Managers see no phone numbers or contact names: :func:`mask_frame` masks them before a table is shown.
Analysts' notebooks and the database keep the full data.
"""
from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

from .i18n import tr

LABELS = {
    "title": {"zh": "客户信息中心周报", "en": "Customer information center weekly report"},
    "as_of": {"zh": "数据截至", "en": "Data as of"},
    "wow": {"zh": "环比上周", "en": "vs last week"},
    "4w": {"zh": "较4周前", "en": "vs 4 weeks ago"},
    "compare_note": {"zh": "对比基准", "en": "Compared with"},
    "no_change": {"zh": "持平", "en": "no change"},
}

_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})[-\s]?\d{3,4}(\d{4})(?!\d)")


def mask_phone(value: Any) -> Any:
    """13812345678 → 138****5678; 010-12345678 → 010-****5678. Non-strings pass through."""
    if not isinstance(value, str):
        return value
    value = _MOBILE.sub(r"\1****\2", value)
    return _LANDLINE.sub(r"\1-****\2", value)


def mask_name(value: Any) -> Any:
    """张伟 → 张*, 欧阳娜娜 → 欧***: the surname initial stays so a manager can still tell rows apart."""
    if not isinstance(value, str) or not value.strip():
        return value
    v = value.strip()
    return v[0] + "*" * (len(v) - 1)


PHONE_COLUMNS = {"phone", "mobile", "contact_phone", "来电号码", "联系电话", "电话", "手机"}
NAME_COLUMNS = {"contact_name", "contact", "caller", "来电人", "联系人"}


def mask_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with phone and contact-name columns masked (by column name)."""
    out = df.copy()
    for col in out.columns:
        if col in PHONE_COLUMNS:
            out[col] = out[col].map(mask_phone)
        elif col in NAME_COLUMNS:
            out[col] = out[col].map(mask_name)
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) < 1 and value != 0:
            return f"{value:.1%}"
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _fmt_delta(delta: Any, is_rate: bool, lang: str) -> str:
    if delta is None:
        return "–"
    if delta == 0:
        return tr(LABELS, "no_change", lang)
    sign = "+" if delta > 0 else "−"
    mag = abs(delta)
    if is_rate:
        return f"{sign}{mag * 100:.1f} pt"
    return f"{sign}{mag:,.0f}" if float(mag).is_integer() else f"{sign}{mag:,.1f}"


def kpi_cards(metrics: dict, kpis: list[tuple[str, dict[str, str]]], lang: str = "zh") -> str:
    """HTML cards: value, week-over-week and 4-week deltas, for each ``(metric key, label)``."""
    now = metrics["metrics"]
    cards = []
    for key, label in kpis:
        value = now.get(key)
        is_rate = isinstance(value, float) and 0 <= abs(value) <= 1
        wow = metrics.get("deltas", {}).get("wow", {}).get(key)
        four = metrics.get("deltas", {}).get("4w", {}).get(key)
        cards.append(
            f'<div class="kpi" data-metric="{html.escape(key)}"><div class="kpi-label">'
            f'{html.escape(label.get(lang) or label["zh"])}</div>'
            f'<div class="kpi-value">{_fmt(value)}</div>'
            f'<div class="kpi-delta">{tr(LABELS, "wow", lang)} {_fmt_delta(wow, is_rate, lang)} · '
            f'{tr(LABELS, "4w", lang)} {_fmt_delta(four, is_rate, lang)}</div></div>'
        )
    style = (
        "<style>.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 16px}"
        ".kpi{border:1px solid #d6dde6;border-radius:6px;padding:8px 12px;min-width:150px;"
        "break-inside:avoid}.kpi-label{color:#555;font-size:12px}.kpi-value{font-size:22px;"
        "font-weight:600;color:#1f4e79}.kpi-delta{font-size:11px;color:#777}"
        "@media print{.kpi{border-color:#999}}</style>"
    )
    return style + '<div class="kpis">' + "".join(cards) + "</div>"


def table_html(df: pd.DataFrame, max_rows: int = 20) -> str:
    """A masked, index-free HTML table for the managers' report."""
    shown = mask_frame(df.head(max_rows))
    return shown.to_html(index=False, border=0, classes="crm-table", na_rep="–", float_format="{:,.2f}".format)
