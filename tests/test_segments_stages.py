"""Lifecycle stage rules on hand-built histories: every transition the rules allow in one week."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmlib import segments as sg

T = pd.Timestamp("2024-07-01")
RULES = sg.StageRules(contact_days=90, new_order_days=90, churn_days=365)


def d(days: int) -> pd.Timestamp:
    return T + pd.Timedelta(days=days)


def history(cid: str, first_seen=-30, orders=(), visits=(), tickets=(), opps=()) -> sg.History:
    """One customer; ``orders``/``visits``/``tickets`` are day offsets from T, ``opps`` (created, closed|None)."""
    return sg.History(
        customers=pd.DataFrame({"customer_id": [cid], "first_seen": [d(first_seen)]}),
        orders=pd.DataFrame({"customer_id": cid, "order_id": [f"o{i}" for i in range(len(orders))],
                             "order_date": [d(x) for x in orders], "amount": 100.0}),
        contacts=pd.DataFrame({"customer_id": cid, "date": [d(x) for x in visits], "channel": "visit"}),
        service=pd.DataFrame({"customer_id": cid, "date": [d(x) for x in tickets]}),
        opportunities=pd.DataFrame({"customer_id": cid, "opp_id": [f"p{i}" for i in range(len(opps))],
                                    "created_at": [d(c) for c, _ in opps],
                                    "closed_at": [d(x) if x is not None else pd.NaT for _, x in opps]}),
    )


# (from, to, history kwargs) with the week T-7 -> T; the comment says why each moves
CASES = [
    ("待识别", "潜在", dict(visits=[-3])),                              # first visit
    ("待识别", "机会", dict(opps=[(-2, None)])),                        # opportunity opened
    ("待识别", "订单", dict(orders=[-1])),                              # bought straight away
    ("待识别", "用户", dict(orders=[-5, -2])),                          # two orders in the week
    ("潜在", "待识别", dict(visits=[-95])),                             # visit 88 -> 95 days old (N=90)
    ("潜在", "机会", dict(visits=[-20], opps=[(-3, None)])),
    ("潜在", "订单", dict(visits=[-20], orders=[-3])),
    ("潜在", "用户", dict(visits=[-20], orders=[-3], tickets=[-1])),    # order then a repair ticket
    ("机会", "潜在", dict(opps=[(-40, -2)])),                           # lost; the close is a recent touch
    ("机会", "订单", dict(opps=[(-40, -2)], orders=[-2])),              # won
    ("机会", "用户", dict(orders=[-500, -2], opps=[(-40, -2)])),      # win-back deal won: a repeat order
    ("机会", "流失", dict(orders=[-500], opps=[(-40, -3)])),             # win-back deal lost
    ("订单", "用户", dict(orders=[-60], tickets=[-2])),                 # first service after the order
    ("用户", "流失", dict(orders=[-400, -368])),                        # last order 361 -> 368 days (K=365)
    ("用户", "机会", dict(orders=[-400, -368], opps=[(-100, None)])),   # ages out but a deal is open
    ("流失", "机会", dict(orders=[-500], opps=[(-3, None)])),           # win-back opportunity
    ("流失", "用户", dict(orders=[-500, -2])),                          # re-orders
]


def stage_at(h: sg.History, when: pd.Timestamp) -> str | None:
    return sg.lifecycle_stages(h, when, RULES).loc[0, "stage"]


@pytest.mark.parametrize("frm,to,kw", CASES, ids=[f"{a}->{b}" for a, b, _ in CASES])
def test_transition(frm, to, kw):
    h = history("C000001", **kw)
    assert stage_at(h, d(-7)) == frm
    assert stage_at(h, T) == to


def test_cases_cover_every_allowed_transition():
    assert {(a, b) for a, b, _ in CASES} == sg.ALLOWED_TRANSITIONS


def test_order_customer_becomes_user_by_age():
    # one order 88 days before T-7 is still new; at T it is 95 days old (> M=90) -> settled user
    h = history("C1", orders=[-95])
    assert (stage_at(h, d(-7)), stage_at(h, T)) == ("订单", "用户")


def test_service_before_first_order_does_not_make_a_user():
    h = history("C1", tickets=[-10], orders=[-3])
    assert stage_at(h, T) == "订单"


def test_events_after_as_of_are_ignored():
    h = history("C1", visits=[-200], orders=[5], opps=[(3, None)])
    assert stage_at(h, T) == "待识别"      # touched 200 days ago only
    assert stage_at(h, d(10)) == "订单"


def test_timestamped_event_on_as_of_counts():
    h = history("C1", first_seen=-300)
    h.contacts = pd.DataFrame({"customer_id": ["C1"], "date": [T + pd.Timedelta(hours=15)], "channel": "call"})
    h.__post_init__()
    assert stage_at(h, T) == "潜在"
    assert stage_at(h, d(-1)) == "待识别"


def test_deal_closed_after_as_of_is_open_at_as_of():
    h = history("C1", opps=[(-30, 4)])
    assert stage_at(h, T) == "机会"
    assert stage_at(h, d(5)) == "潜在"


def test_churn_boundary_is_inclusive_of_k_days():
    h = history("C1", orders=[-400, -365])
    assert stage_at(h, T) == "用户"        # exactly K days: not yet churned
    assert stage_at(h, d(1)) == "流失"


def test_unknown_before_first_seen_and_new_customers_counted():
    h = sg.History(customers=pd.DataFrame({"customer_id": ["A", "B", "C"],
                                           "first_seen": [d(-100), d(-3), pd.NaT]}),
                   contacts=pd.DataFrame({"customer_id": ["B", "C"], "date": [d(-3), d(-2)],
                                          "channel": "visit"}))
    before, after = sg.lifecycle_stages(h, d(-7), RULES), sg.lifecycle_stages(h, T, RULES)
    assert before["stage"].tolist() == ["待识别", None, None]
    assert after["stage"].tolist() == ["待识别", "潜在", "潜在"]
    tm = sg.transition_matrix(before, after)
    assert tm.loc[sg.NOT_YET, "潜在"] == 2 and tm.loc["待识别", "待识别"] == 1
    assert tm.to_numpy().sum() == 3
    assert sg.stage_counts(after).tolist() == [1, 2, 0, 0, 0, 0]


def _random_history(rng, n=300) -> sg.History:
    ids = [f"C{i:06d}" for i in range(n)]

    def ev(k, span=900):
        cid = rng.choice(ids, k)
        return cid, T - pd.to_timedelta(rng.integers(-30, span, k), unit="D")

    oc, od = ev(500)
    vc, vd = ev(500)
    sc, sd = ev(200)
    pc, pd_ = ev(200)
    closed = pd_ + pd.to_timedelta(rng.integers(1, 200, len(pd_)), unit="D")
    closed = pd.Series(closed).where(rng.random(len(pd_)) < 0.7)
    return sg.History(
        customers=pd.DataFrame({"customer_id": ids, "first_seen": T - pd.Timedelta(days=1000)}),
        orders=pd.DataFrame({"customer_id": oc, "order_id": [f"o{i}" for i in range(len(oc))],
                             "order_date": od, "amount": 1.0}),
        contacts=pd.DataFrame({"customer_id": vc, "date": vd, "channel": "visit"}),
        service=pd.DataFrame({"customer_id": sc, "date": sd}),
        opportunities=pd.DataFrame({"customer_id": pc, "opp_id": [f"p{i}" for i in range(len(pc))],
                                    "created_at": pd_, "closed_at": closed}),
    )


def test_random_histories_only_make_allowed_transitions():
    rng = np.random.default_rng(7)
    h = _random_history(rng)
    seen = set()
    for shift in range(0, 700, 14):
        a = sg.lifecycle_stages(h, T - pd.Timedelta(days=shift + 7), RULES)
        b = sg.lifecycle_stages(h, T - pd.Timedelta(days=shift), RULES)
        moved = sg.transitions(a, b)
        pairs = set(zip(moved["stage_from"], moved["stage_to"], strict=True))
        seen |= pairs
        assert pairs <= sg.ALLOWED_TRANSITIONS
    assert len(seen) >= 10  # the fuzz actually exercises many moves
