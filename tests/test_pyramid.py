import math

import numpy as np
import pandas as pd
import pytest

from crmlib import pyramid as pm
from crmlib.errors import UserError

AS_OF = "2024-01-31"


@pytest.fixture(scope="module")
def params():
    return pm.load_params()


def _p(params, **indicators):
    """A copy of the shipped params with only the given indicator weights (others 0)."""
    p = params.model_copy(deep=True)
    for name, spec in p.indicators.items():
        spec.weight = indicators.get(name, 0.0)
    return p


@pytest.fixture
def orders():
    return pd.DataFrame([
        # customer, order, date, amount, cost, returned
        ("A", "O1", "2024-01-01", 100.0, 60.0, 0.0),
        ("A", "O1", "2024-01-01", 50.0, 30.0, 20.0),
        ("A", "O2", "2024-01-11", 300.0, 200.0, 0.0),
        ("A", "O3", "2024-02-01", 1000.0, 100.0, 0.0),   # after as_of: ignored
        ("B", "O4", "2024-01-21", 80.0, 100.0, 0.0),     # sold below cost
        ("C", "O5", "2024-03-01", 10.0, 5.0, 0.0),       # first order after as_of: not scored yet
    ], columns=["customer_id", "order_id", "order_date", "amount", "cost", "returned_amount"])


def test_transaction_indicators_hand_checked(orders):
    t = pm.transaction_indicators(orders, AS_OF)
    assert list(t.index) == ["A", "B"]
    a, b = t.loc["A"], t.loc["B"]
    # A: gross 450, returned 20 -> revenue 430; cost 290 -> profit 140
    assert (a.n_orders, a.revenue, a.profit) == (2, 430.0, 140.0)
    assert a.gross_margin == pytest.approx(140 / 430)
    assert (a.avg_order, a.max_order) == (225.0, 300.0)          # 450 / 2; O2 = 300 > O1 = 150
    assert (a.return_amount, a.return_count) == (20.0, 1)
    assert a.return_rate == pytest.approx(20 / 450)
    assert (a.tenure_days, a.purchase_interval) == (30, 10.0)    # Jan 1 -> Jan 31; Jan 1 -> Jan 11
    assert (b.profit, b.gross_margin) == (-20.0, -0.25)
    assert b.tenure_days == 10 and math.isnan(b.purchase_interval)  # one order date: no interval


def test_finance_indicators_hand_checked():
    r = pd.DataFrame([
        ("A", "2024-01-01", "2024-01-15", "2024-01-10", 150.0),  # paid in 9 days
        ("A", "2024-01-11", "2024-01-25", None, 280.0),          # overdue at as_of
        ("A", "2024-01-20", "2024-02-20", "2024-02-05", 50.0),   # paid after as_of, not yet due
        ("B", "2024-01-21", "2024-01-31", None, 80.0),           # due on as_of: not overdue yet
        ("B", "2024-02-02", "2024-03-01", None, 99.0),           # invoiced after as_of: ignored
    ], columns=["customer_id", "invoice_date", "due_date", "paid_date", "amount"])
    f = pm.finance_indicators(r, AS_OF)
    a, b = f.loc["A"], f.loc["B"]
    assert (a.receipts_total, a.max_receipt, a.avg_receipt, a.collection_days) == (150.0, 150.0, 150.0, 9.0)
    assert a.overdue_amount == 280.0
    assert a.overdue_ratio == pytest.approx(280 / 430)            # due before as_of: 150 + 280
    assert (b.receipts_total, b.overdue_amount) == (0.0, 0.0)
    assert math.isnan(b.collection_days) and math.isnan(b.overdue_ratio)


def test_compute_indicators_all_families(orders, params):
    acts = pd.DataFrame({"customer_id": ["A", "A", "A"],
                         "activity_date": ["2024-01-05", "2024-02-05", "2024-01-07"]})
    calls = pd.DataFrame({"customer_id": ["A", "A", "A", "B"],
                          "called_at": pd.to_datetime(["2024-01-02 10:00", "2024-01-31 23:59",
                                                       "2024-02-01 09:00", "2024-01-03 08:00"]),
                          "call_type": ["表扬", "投诉", "投诉", "建议"]})
    prof = pd.DataFrame({"customer_id": ["A", "B", "C"], "size": ["大型", "特大", "小型"],
                         "registered_capital": [5000.0, None, 10.0], "listed": ["Y", "N", None],
                         "region": ["华东", "华北", "华南"], "industry": ["金融", "政府", "制造"]})
    rec = pd.DataFrame(columns=["customer_id", "invoice_date", "due_date", "paid_date", "amount"])
    ind = pm.compute_indicators(orders, AS_OF, params, receipts=rec, activities=acts, calls=calls, profile=prof)
    assert list(ind.index) == ["A", "B"]
    assert ind.loc["A", ["activities", "praise", "complaints", "suggestions"]].tolist() == [2, 1, 1, 0]
    assert ind.loc["B", ["activities", "praise", "complaints", "suggestions"]].tolist() == [0, 0, 0, 1]
    assert ind.loc["A", ["size", "registered_capital", "listed"]].tolist() == [3.0, 5000.0, 1.0]
    assert math.isnan(ind.loc["B", "size"]) and ind.loc["B", "listed"] == 0.0   # unknown size level
    assert ind.loc["A", "receipts_total"] == 0.0                                  # no receipts = 0 paid
    assert ind["region"].isna().all()                                             # no levels configured


def test_percentile_normalisation_ties_direction_missing():
    s = pm.normalise(pd.Series([10, 20, 20, 40, np.nan]))
    assert s.tolist()[:4] == [0.0, 0.5, 0.5, 1.0] and math.isnan(s.iloc[4])
    assert pm.normalise(pd.Series([10, 20, 20, 40]), direction=-1).tolist() == [1.0, 0.5, 0.5, 0.0]
    assert pm.normalise(pd.Series([7.0])).tolist() == [0.5]
    # one giant account does not squash the others (percentile) ...
    assert pm.normalise(pd.Series([1, 2, 3, 1000])).tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # ... but does under plain min-max
    assert pm.normalise(pd.Series([1, 2, 3, 1000]), method="minmax", winsor=(0, 1)).iloc[2] < 0.003


def test_winsorised_minmax():
    x = pd.Series(np.arange(101, dtype=float))       # quantiles 5% = 5, 95% = 95
    s = pm.normalise(x, method="minmax", winsor=(0.05, 0.95))
    assert s[0] == 0 and s[5] == 0 and s[50] == 0.5 and s[23] == pytest.approx(0.2) and s[100] == 1
    # heavy ties: 95% quantile equals the minimum -> fall back to the raw range
    ties = pd.Series([0.0] * 97 + [1, 2, 4])
    assert pm.normalise(ties, method="minmax", winsor=(0.05, 0.95)).iloc[-1] == 1.0
    assert pm.normalise(pd.Series([3.0, 3.0]), method="minmax").tolist() == [0.5, 0.5]


def test_score_hand_checked(params):
    ind = pd.DataFrame({"revenue": [10.0, 20.0, 30.0], "n_orders": [1, 1, 2]},
                       index=pd.Index(["a", "b", "c"], name="customer_id"))
    p = _p(params, revenue=3, n_orders=1)
    # revenue s = 0, .5, 1; orders s = .25, .25, 1 (tied pair shares rank 1.5); score = 75 rev + 25 orders
    sc = pm.score(ind, p)
    assert sc["score"].tolist() == [6.25, 43.75, 100.0]
    assert sc["tier"].tolist() == ["small", "ordinary", "vip"]


def test_missing_scores_neutral_and_constant_indicator_dropped(params):
    ind = pd.DataFrame({"revenue": [10.0, 20.0, 30.0], "purchase_interval": [np.nan, 5.0, 10.0],
                        "return_amount": [0.0, 0.0, 0.0]}, index=pd.Index(["a", "b", "c"], name="customer_id"))
    p = _p(params, revenue=1, purchase_interval=1, return_amount=5)
    w = pm.weights(ind, p)
    assert w.to_dict() == {"revenue": 0.5, "purchase_interval": 0.5}   # return_amount never varies
    # interval is a cost: 5 days -> 1, 10 days -> 0, missing -> 0.5
    assert pm.score(ind, p)["score"].tolist() == [25.0, 75.0, 50.0]


@pytest.mark.parametrize("value, tier", [
    (0, "small"), (40, "small"), (40.0001, "ordinary"),
    (60, "ordinary"), (60.0001, "important"),
    (80, "important"), (80.0001, "vip"), (100, "vip"),
    (80.00000001, "important"),        # below the 6-decimal resolution: float noise, not a real score
    (59.999999999, "ordinary"),
])
def test_tier_boundaries(value, tier):
    assert pm.tier_of(value) == tier


def test_tier_boundaries_through_score(params):
    # one indicator, six customers: percentiles 0, .2, .4, .6, .8, 1 -> scores 0, 20, 40, 60, 80, 100
    # (0.6 * 100 is 60.00000000000001 in floating point: the rounding keeps it at the boundary)
    ind = pd.DataFrame({"revenue": [1.0, 2, 3, 4, 5, 6]}, index=pd.Index(list("abcdef"), name="customer_id"))
    sc = pm.score(ind, _p(params, revenue=1))
    assert sc["score"].tolist() == [0, 20, 40, 60, 80, 100]
    assert sc["tier"].tolist() == ["small", "small", "small", "ordinary", "important", "vip"]


def test_custom_cutoffs_validated(params):
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="vip > important > ordinary"):
        pm.Cutoffs(vip=50, important=60, ordinary=40)


def test_family_weights_and_ahp(params):
    ind = pd.DataFrame({"revenue": [1.0, 2, 3], "n_orders": [1, 2, 3], "complaints": [0, 1, 2]},
                       index=pd.Index(list("abc"), name="customer_id"))
    p = _p(params, revenue=3, n_orders=1, complaints=2)
    w = pm.weights(ind, p, family_weights={"transaction": 0.8, "contact": 0.2})
    assert w.to_dict() == pytest.approx({"revenue": 0.6, "n_orders": 0.2, "complaints": 0.2})
    p.weighting = "ahp"
    fw = pm.family_weights_ahp(p)
    assert sum(fw.values()) == pytest.approx(1.0) and fw["transaction"] > fw["finance"] > fw["profile"]
    w = pm.weights(ind, p)       # only transaction and contact present: renormalised over them
    share = fw["transaction"] / (fw["transaction"] + fw["contact"])
    assert w["revenue"] == pytest.approx(0.75 * share)


def test_entropy_weighting(params):
    ind = pd.DataFrame({"revenue": [1.0, 2, 3], "n_orders": [1, 1, 2]},
                       index=pd.Index(list("abc"), name="customer_id"))
    w = pm.weights(ind, _p(params, revenue=1, n_orders=1), method="entropy")
    assert w.to_dict() == pytest.approx({"revenue": 0.296082, "n_orders": 0.703918}, abs=1e-6)


def test_concentration_numbers():
    assert pm.gini([1, 1, 1, 1]) == 0
    assert pm.gini([0, 0, 0, 1]) == pytest.approx(0.75)
    assert pm.gini([1, 2, 3, 4]) == pytest.approx(0.25)   # mean |xi - xj| / (2 mean) = 1.25 / 5
    assert pm.top_share([5, 1, 1, 1, 1, 1, 0, 0, 0, 0]) == pytest.approx(0.6)   # k = 2 of 10
    assert pm.top_share([5, 1, 1, 1, 1, 1, 0]) == pytest.approx(0.6)            # k = ceil(1.4) = 2
    lz = pm.lorenz([4, 1, 3, 2])
    assert lz["customer_share"].tolist() == [0, .25, .5, .75, 1]
    assert lz["value_share"].tolist() == pytest.approx([0, .1, .3, .6, 1])


def test_tier_table_and_loss_making(orders, params):
    ind = pm.transaction_indicators(orders, AS_OF)
    sc = pm.score(ind, _p(params, revenue=1))
    assert sc["tier"].tolist() == ["vip", "small"] and sc["loss_making"].tolist() == [False, True]
    tt = pm.tier_table(sc, ind).set_index("tier")
    assert tt.loc["vip", "revenue_share"] == pytest.approx(430 / 510)
    assert tt.loc["small", "profit_share"] == pytest.approx(-20 / 120)
    assert tt.loc["small", "loss_making"] == 1 and tt["customers"].sum() == 2
    conc = pm.concentration(ind)
    assert conc["top_customers"] == 1 and conc["loss_making"] == 1
    assert conc["top20_revenue_share"] == pytest.approx(430 / 510)


def test_migration_matrix_and_movers():
    prev = pd.Series({"a": "vip", "b": "small", "c": "ordinary", "d": "important"})
    cur = pd.Series({"a": "important", "b": "ordinary", "c": "ordinary", "e": "small"})
    matrix, movers = pm.migration(prev, cur)
    assert matrix.loc["vip", "important"] == 1 and matrix.loc["small", "ordinary"] == 1
    assert matrix.loc["ordinary", "ordinary"] == 1 and matrix.loc["important", "gone"] == 1
    assert matrix.loc["new", "small"] == 1 and matrix.values.sum() == 5
    assert movers[["customer_id", "move"]].values.tolist() == [["a", "down"], ["b", "up"], ["d", "gone"],
                                                               ["e", "new"]]


def test_params_reject_unknown_indicator(tmp_path):
    f = tmp_path / "vm.yaml"
    f.write_text("indicators:\n  shoe_size: {family: profile, weight: 1}\n", encoding="utf-8")
    with pytest.raises(UserError, match="shoe_size"):
        pm.load_params(f)


def test_shipped_params_ahp_is_consistent(params):
    from crmlib.weights import ahp_weights
    r = ahp_weights(params.ahp.matrix)
    assert r.cr < 0.10


def test_weights_table_columns_each_sum_to_one(orders, params):
    ind = pm.transaction_indicators(orders, "2024-03-31")
    wt = pm.weights_table(ind, params)
    assert list(wt.columns) == ["family", "direction", "manual", "ahp", "entropy"]
    assert wt[["manual", "ahp", "entropy"]].sum().tolist() == pytest.approx([1, 1, 1])
    assert wt.loc["return_rate", "direction"] == -1
    assert "purchase_interval" not in wt.index     # only one customer has two order dates: no information
