"""Plotly figure builders, one visual style. Analyses add ``crmlib/charts/<analysis>.py``.

Every builder takes a ``lang`` argument and returns a ``plotly.graph_objects.Figure``; notebooks show them
with ``fig.show()`` (the report path sets the offline ``notebook`` renderer, see ``setup_notebook``).
"""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

PALETTE = ["#1f4e79", "#2e86c1", "#48c9b0", "#f4d03f", "#e67e22", "#c0392b", "#7d3c98", "#7f8c8d"]
FONT = "Noto Sans CJK SC, Source Han Sans SC, Microsoft YaHei, PingFang SC, sans-serif"

pio.templates["crm"] = go.layout.Template(
    layout=dict(
        font=dict(family=FONT, size=13),
        colorway=PALETTE,
        margin=dict(l=60, r=20, t=50, b=50),
        plot_bgcolor="white",
        xaxis=dict(gridcolor="#eee", zeroline=False),
        yaxis=dict(gridcolor="#eee", zeroline=False),
        legend=dict(orientation="h", y=-0.2),
    )
)
pio.templates.default = "plotly_white+crm"


def setup_notebook() -> None:
    """Embed plotly.js once in the notebook output so exported HTML draws offline."""
    pio.renderers.default = "notebook"


def finish(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01), height=height)
    return fig
