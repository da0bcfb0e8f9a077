"""Funnel figures build in both languages from the hand-built history, and say their counting unit."""
from __future__ import annotations

import pandas as pd
import pytest
from test_funnel import P, _history, _opps

from crmlib import funnel as f
from crmlib.charts import funnel as cf

AS_OF = "2024-04-10"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_figures(lang):
    o, h = _opps(), _history()
    pr, st = f.opportunity_progress(o, h, P, AS_OF), f.current_state(o, h, P, AS_OF)
    fig = cf.stage_funnel(f.cohort_conversion(pr, P, by="region"), lang, by="region")
    assert len(fig.data) == 2 and list(fig.data[0].x) == [5, 5, 4, 4, 4, 4, 3]  # 华北: A, B, K won; G 获得标书; C 新建
    assert ("按商机计" if lang == "zh" else "per opportunity") in fig.layout.title.text
    assert ("Won" if lang == "en" else "赢单") in fig.data[0].y
    cust = cf.stage_funnel(f.cohort_conversion(pr, P, unit="customer"), lang)
    assert ("主数据客户" if lang == "zh" else "master customer") in cust.layout.title.text
    trend = cf.conversion_trend(f.conversion_trend(pr, P), lang)
    assert list(trend.data[0].marker.symbol) == ["circle", "circle-open", "circle-open"]
    box = cf.time_in_stage_box(f.stage_durations(o, h, P, AS_OF), P, lang)
    assert len(box.data) == len(P.open_stages)
    aging = cf.aging_bars(f.aging_table(f.stuck_deals(st, P), P),
                          f.aging_table(f.overdue_deals(st, P, AS_OF), P), lang)
    assert list(aging.data[1].y) == [0, 1, 0, 1]
    cf.lost_reasons_bar(f.lost_reasons(st, None, AS_OF), "lost_reason", lang)
    cf.forecast_bars(f.forecast_by_close_month(st, P, AS_OF), lang)
    lc = f.lifecycle_stage(pd.DataFrame({"customer_id": ["C1", "C2"], "region": ["华北", "华南"]}),
                           ["C1"], ["C1"], [])
    assert len(cf.lifecycle_funnel(f.lifecycle_funnel(lc), lang).data) == 2
