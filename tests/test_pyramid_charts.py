import pandas as pd
import plotly.graph_objects as go
import pytest

from crmlib import pyramid as pm
from crmlib.charts import pyramid as cp


@pytest.fixture
def data():
    ind = pd.DataFrame({"revenue": [10.0, 20, 30, 40, 400], "profit": [-5.0, 2, 3, 4, 100]},
                       index=pd.Index(list("abcde"), name="customer_id"))
    p = pm.load_params()
    for name, spec in p.indicators.items():
        spec.weight = 1.0 if name == "revenue" else 0.0
    scored = pm.score(ind, p)     # scores 0, 25, 50, 75, 100
    return ind, scored, pm.tier_table(scored, ind)


@pytest.mark.parametrize("lang, vip, small", [("zh", "VIP客户", "小客户"), ("en", "VIP", "Small")])
def test_figures_in_both_languages(data, lang, vip, small):
    ind, scored, table = data
    pyr = cp.pyramid_figure(table, lang, "2024-01-31")
    assert isinstance(pyr, go.Figure) and len(pyr.data) == 4
    texts = [a.text for a in pyr.layout.annotations]
    assert texts[0].startswith(vip) and texts[3].startswith(small)     # VIP on top, small at the base
    assert "1 " in texts[0] and "2024-01-31" in pyr.layout.title.text
    tab = cp.tier_table_figure(table, lang)
    assert list(tab.data[0].cells.values[0]) == [cp.tier_label(t, lang) for t in pm.TIERS]
    lz = cp.lorenz_figure(ind, lang)
    # revenue 10..400 of 500: top ceil(0.2 * 5) = 1 customer holds 80%
    assert "80.0%" in lz.layout.title.text
    matrix, _ = pm.migration(scored["tier"], scored["tier"])
    assert cp.migration_figure(matrix, lang).data[0].z.sum() == 5
    assert len(cp.score_histogram(scored, lang).data) == 4
    assert len(cp.tier_share_figure(table, lang).data) == 3


def test_bad_language_is_a_user_error(data):
    from crmlib.errors import UserError
    with pytest.raises(UserError):
        cp.pyramid_figure(data[2], "fr")
