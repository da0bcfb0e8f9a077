"""Segment figures build in zh and en from the pure functions' outputs."""
import pandas as pd
import plotly.graph_objects as go
import pytest

from crmlib import segments as sg
from crmlib.charts import segments as ch


@pytest.fixture(scope="module")
def frames():
    T = pd.Timestamp("2024-07-01")
    h = sg.History(
        customers=pd.DataFrame({"customer_id": ["A", "B", "C"], "scope": ["中小企业", "渠道", None],
                                "region": ["华东", "华南", "华东"], "industry": ["IT", "IT", "金融"],
                                "owner_rep_id": ["R1", "R2", None]}),
        orders=pd.DataFrame({"customer_id": ["A", "A", "B"], "order_id": ["1", "2", "3"],
                             "order_date": [T - pd.Timedelta(days=d) for d in (300, 200, 3)],
                             "amount": [10.0, 20.0, 5.0]}),
        reps=pd.DataFrame({"rep_id": ["R1", "R2"], "rep_name": ["张三", "李四"],
                           "left_at": [pd.NaT, pd.Timestamp("2024-01-01")]}),
    )
    p = sg.load_params()
    now = sg.with_attributes(sg.lifecycle_stages(h, T, p.stages), h.customers)
    before = sg.lifecycle_stages(h, T - pd.Timedelta(days=7), p.stages)
    rfm = sg.rfm_table(h.orders, T, p.rfm)
    slip = sg.slipping_away(now, h.customers, h.reps,
                            p.slipping.model_copy(update={"top_share": 1.0, "no_contact_days": 7}))
    return p, now, before, rfm, slip


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_figures(frames, lang):
    p, now, before, rfm, slip = frames
    figs = [
        ch.stage_counts_fig(sg.stage_counts(now), lang),
        ch.transition_fig(sg.transition_matrix(before, now), lang),
        ch.scope_stage_fig(now, lang),
        ch.crosstab_fig(sg.crosstab(now, "region", "industry"), "region", "industry", lang),
        ch.rfm_grid_fig(rfm, p.rfm.bins, lang),
        ch.rfm_segments_fig(sg.rfm_summary(rfm, p.rfm, lang), lang),
        ch.silhouette_fig(pd.DataFrame({"k": [3, 4], "silhouette": [0.5, 0.4]}), 3, lang),
        ch.slipping_by_rep_fig(slip, lang),
    ]
    assert all(isinstance(f, go.Figure) and f.layout.title.text for f in figs)
    stage_bar = figs[0].data[0]
    labels = ["待识别", "潜在", "机会", "订单", "用户", "流失"] if lang == "zh" else \
        ["To identify", "Potential", "Opportunity", "Ordering", "User", "Churned"]
    assert list(stage_bar.x) == labels and list(stage_bar.y) == [1, 0, 0, 1, 1, 0]
    assert ("R" in figs[4].layout.title.text) and figs[4].data[0].z.sum() == 2
    # B's rep left: marked in the rep bar
    assert any(("(已离职)" if lang == "zh" else "(left)") in y for y in figs[7].data[0].y)
