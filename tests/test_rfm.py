"""RFM: equal-count quintiles with documented tie-breaking, on hand-built data and on CDNOW."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from crmlib import segments as sg
from crmlib.errors import UserError


@pytest.fixture(scope="module")
def rfm_params() -> sg.RfmParams:
    return sg.load_params().rfm


def test_equal_count_scores_ties_split_by_ascending_id():
    # values 5,5,5,5,1 for ids e,d,c,b,a; n=5, bins=5 -> one customer per score
    ids = pd.Series(["e", "d", "c", "b", "a"])
    vals = pd.Series([5, 5, 5, 5, 1])
    assert sg.equal_count_scores(vals, ids, 5).tolist() == [5, 4, 3, 2, 1]
    # lower is better (recency): a (1 day) best
    assert sg.equal_count_scores(vals, ids, 5, higher_is_better=False).tolist() == [4, 3, 2, 1, 5]


def test_equal_count_scores_uneven_sizes_and_input_order():
    ids = pd.Series([f"C{i:02d}" for i in range(7)])
    vals = pd.Series([7, 6, 5, 4, 3, 2, 1])
    # position * 5 // 7 + 1 for positions 0..6 -> 1,1,2,3,3,4,5 (worst = value 1 = C06)
    assert sg.equal_count_scores(vals, ids, 5).tolist() == [5, 4, 3, 3, 2, 1, 1]
    shuffled = sg.equal_count_scores(vals[::-1].reset_index(drop=True), ids[::-1].reset_index(drop=True), 5)
    assert shuffled.tolist() == [1, 1, 2, 3, 3, 4, 5]


def test_numeric_ids_tie_break_numerically():
    ids = pd.Series([10, 9, 2])
    assert sg.equal_count_scores(pd.Series([1, 1, 1]), ids, 3).tolist() == [3, 2, 1]


def test_rfm_table_small(rfm_params):
    orders = pd.DataFrame({
        "customer_id": ["A", "A", "A", "B", "C", "C", "D"],
        "order_id": ["1", "1", "2", "3", "4", "5", "9"],
        "order_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-03-01", "2024-02-01",
                                      "2024-03-30", "2024-03-31", "2024-04-05"]),
        "amount": [10.0, 5.0, 20.0, 100.0, 1.0, 2.0, 999.0],
    })
    t = sg.rfm_table(orders, "2024-04-01", rfm_params).set_index("customer_id")
    assert "D" not in t.index  # ordered after as_of
    assert t["recency_days"].to_dict() == {"A": 31, "B": 60, "C": 1}
    assert t["frequency"].to_dict() == {"A": 2, "B": 1, "C": 2}   # A's order 1 has two lines
    assert t["monetary"].to_dict() == {"A": 35.0, "B": 100.0, "C": 3.0}
    # n=3: positions 0,1,2 -> scores 1,2,4
    assert t["r_score"].to_dict() == {"B": 1, "A": 2, "C": 4}
    assert t["f_score"].to_dict() == {"B": 1, "A": 2, "C": 4}     # A, C tie on 2: A has the lower id
    assert t["m_score"].to_dict() == {"C": 1, "A": 2, "B": 4}
    assert t["fm_score"].to_dict() == {"A": 2, "B": 3, "C": 3}    # (f + m + 1) // 2
    assert t["segment"].to_dict() == {"A": "about_to_sleep", "B": "hibernating", "C": "potential"}


def test_segment_table_must_cover_the_grid(tmp_path):
    bad = sg.load_params().rfm.model_dump()
    bad["segments"] = bad["segments"][:-1]  # drop hibernating: (1, 1..3) uncovered
    with pytest.raises(ValueError, match="without a segment"):
        sg.RfmParams.model_validate(bad)
    (tmp_path / "params").mkdir()
    text = (Path(__file__).parents[1] / "params" / "segments.yaml").read_text(encoding="utf-8")
    (tmp_path / "params" / "segments.yaml").write_text(text.replace("bins: 5", "bins: 6"), encoding="utf-8")
    from crmlib import params
    with pytest.raises(UserError, match="without a segment"):
        params.load(sg.SegmentsParams, tmp_path / "params" / "segments.yaml")


def _cdnow_path() -> Path | None:
    spec = importlib.util.find_spec("lifetimes")  # not lifetimes.datasets: it needs pkg_resources
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent / "datasets" / "CDNOW_master.txt"
    return p if p.exists() else None


@pytest.mark.skipif(_cdnow_path() is None, reason="lifetimes (CDNOW_master.txt) not installed")
def test_rfm_cdnow_pinned(rfm_params):
    """as_of = 1998-07-01, the day after the last purchase (1998-06-30), so every order counts.

    Pinned numbers were hand-checked with an independent stdlib-only computation (integer cents,
    sorted() on (value, int(customer id))): identical per-score ranges, 555/111 counts and R x FM grid.
    """
    df = pd.read_csv(_cdnow_path(), sep=r"\s+", dtype={"customer_id": str, "date": str})
    orders = pd.DataFrame({"customer_id": df["customer_id"],
                           "order_date": pd.to_datetime(df["date"], format="%Y%m%d"),
                           "amount": df["dollar_value"]})  # no order id: one order per customer-day
    t = sg.rfm_table(orders, "1998-07-01", rfm_params)
    assert len(t) == 23570
    for col in ("r_score", "f_score", "m_score"):
        assert t[col].value_counts().sort_index().tolist() == [4714] * 5
    rng = {c: t.groupby(s)[c].agg(["min", "max"]).to_numpy().tolist()
           for s, c in (("r_score", "recency_days"), ("f_score", "frequency"), ("m_score", "monetary"))}
    assert rng["recency_days"] == [[513, 546], [486, 513], [433, 486], [142, 433], [1, 142]]
    assert rng["frequency"] == [[1, 1], [1, 1], [1, 2], [2, 4], [4, 171]]
    assert rng["monetary"] == [[0.0, 15.36], [15.36, 31.35], [31.35, 59.92], [59.93, 133.95],
                               [133.95, 13990.93]]
    assert (t["rfm_code"] == "555").sum() == 2509 and (t["rfm_code"] == "111").sum() == 1733
    grid = t.groupby(["r_score", "fm_score"]).size().unstack(fill_value=0).to_numpy().tolist()
    assert grid == [[1733, 2245, 612, 118, 6],
                    [79, 2886, 1433, 280, 36],
                    [15, 1575, 1920, 1022, 182],
                    [0, 4, 760, 2108, 1842],
                    [0, 2, 260, 1029, 3423]]
    assert t["segment"].value_counts().to_dict() == {
        "champions": 8402, "hibernating": 4590, "about_to_sleep": 4398, "need_attention": 3510,
        "loyal": 1204, "potential": 1026, "at_risk": 440}
