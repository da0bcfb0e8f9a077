"""Funnel rules on a hand-built stage history; every number below is counted by hand.

Stage ranks: 0 获得销售机会, 1 新建, 2 分配, 3 客户关系建立, 4 商务谈判, 5 获得标书, 6 赢单; 输单 = lost.
Window 3 months. Opportunities (customer, region, amount 万元):
  A (C1 华北 100) full path, won 03-11                       → rank 6, 70 days to win
  B (C1 华北  50) skips 新建, 客户关系建立, 获得标书; won 02-20  → rank 6, 50 days
  C (C2 华北  10) lost at 新建                                 → rank 1
  D (C3 华南  30) created 02-01, lost at 商务谈判               → rank 4
  E (C4 华南  80) lost at 分配 01-20, reopened 02-01, 客户关系建立 02-15; 商务谈判 04-15 and won 05-01
                  fall after its window end (04-01)            → rank 3, open at window end, not won
  F (C4 华南  20) created 03-01, still in 新建                  → rank 1, open
  G (C2 华北  40) lost at 获得标书                              → rank 5
  H (C5 华南   5) lost at the first stage                      → rank 0
  I (C5 华南  15) no stage rows at all                          → rank 0, open in the first stage
  K (C6 华北  60) lost at 客户关系建立 01-10, reopened 01-20, won 02-10 → rank 6, 40 days
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from crmlib import funnel as f

P = f.FunnelParams(window_months=3, stage_probability={"获得销售机会": 0.05, "新建": 0.1, "分配": 0.15,
                                                      "客户关系建立": 0.3, "商务谈判": 0.5, "获得标书": 0.7})
S = P.stages
LOST = "输单"

HIST = {
    "A": [(0, "01-01"), (1, "01-03"), (2, "01-10"), (3, "01-20"), (4, "02-10"), (5, "03-01"), (6, "03-11")],
    "B": [(0, "01-01"), (2, "01-05"), (4, "02-01"), (6, "02-20")],
    "C": [(0, "01-01"), (1, "01-02"), (LOST, "01-15")],
    "D": [(0, "02-01"), (1, "02-03"), (2, "02-05"), (3, "02-10"), (4, "03-01"), (LOST, "03-15")],
    "E": [(0, "01-01"), (1, "01-05"), (2, "01-10"), (LOST, "01-20"), (2, "02-01"), (3, "02-15"),
          (4, "04-15"), (6, "05-01")],
    "F": [(0, "03-01"), (1, "03-05")],
    "G": [(0, "01-01"), (1, "01-02"), (2, "01-04"), (3, "01-08"), (4, "01-15"), (5, "02-01"), (LOST, "02-10")],
    "H": [(0, "01-01"), (LOST, "01-02")],
    "K": [(0, "01-01"), (3, "01-05"), (LOST, "01-10"), (3, "01-20"), (6, "02-10")],
}
OPPS = [  # opp_id, customer, region, rep, amount, created, expected_close, lost_reason, competitor
    ("A", "C1", "华北", "R1", 100.0, "01-01", "2024-01-01", None, None),
    ("B", "C1", "华北", "R2", 50.0, "01-01", "2024-03-31", None, None),
    ("C", "C2", "华北", "R1", 10.0, "01-01", "2024-06-30", "价格", "联想"),
    ("D", "C3", "华南", "R2", 30.0, "02-01", "2024-06-30", "价格", "惠普"),
    ("E", "C4", "华南", "R2", 80.0, "01-01", "2024-03-10", None, None),
    ("F", "C4", "华南", "R1", 20.0, "03-01", "2024-04-10", None, None),
    ("G", "C2", "华北", "R1", 40.0, "01-01", "2024-06-30", "竞争对手", "联想"),
    ("H", "C5", "华南", "R2", 5.0, "01-01", None, "", None),
    ("I", "C5", "华南", "R1", 15.0, "01-01", "2023-12-01", None, None),
    ("K", "C6", "华北", "R2", 60.0, "01-01", "2024-03-31", None, None),
]


def _history() -> pd.DataFrame:
    rows = [(o, S[s] if isinstance(s, int) else s, pd.Timestamp(f"2024-{d} 09:00"))
            for o, entries in HIST.items() for s, d in entries]
    return pd.DataFrame(rows, columns=["opp_id", "stage", "entered_at"])


def _opps() -> pd.DataFrame:
    df = pd.DataFrame(OPPS, columns=["opp_id", "customer_id", "region", "rep_id", "amount", "created_at",
                                     "expected_close", "lost_reason", "competitor"])
    df["created_at"] = pd.to_datetime("2024-" + df["created_at"])
    df["expected_close"] = pd.to_datetime(df["expected_close"])
    df["industry"] = np.where(df["opp_id"].isin(["A", "D", "G"]), "金融", "制造")
    return df


@pytest.fixture
def opps():
    return _opps()


@pytest.fixture
def hist():
    return _history()


def _reached(conv, dims=()):
    return conv.set_index([*dims, "stage"])["reached"]


def test_progress_rules(opps, hist):
    pr = f.opportunity_progress(opps, hist, P, "2024-12-31").set_index("opp_id")
    assert pr["max_rank"].to_dict() == {"A": 6, "B": 6, "C": 1, "D": 4, "E": 3, "F": 1, "G": 5, "H": 0,
                                        "I": 0, "K": 6}
    assert pr["won"].sum() == 3 and not pr.at["E", "won"]  # E's win came after its window
    assert pr["status_at_window_end"].to_dict() == {
        "A": "won", "B": "won", "C": "lost", "D": "lost", "E": "open", "F": "open", "G": "lost",
        "H": "lost", "I": "open", "K": "won"}
    assert pr.loc[["A", "B", "K"], "days_to_win"].tolist() == [70, 50, 40]
    assert pr["days_to_win"].drop(["A", "B", "K"]).isna().all()  # open/lost deals have no time to win


def test_cohort_conversion_per_opportunity(opps, hist):
    pr = f.opportunity_progress(opps, hist, P, "2024-12-31")
    conv = f.cohort_conversion(pr, P)
    assert conv["reached"].tolist() == [10, 8, 6, 6, 5, 4, 3]
    assert conv["cohort"].unique().tolist() == [10]
    assert conv["step_rate"].round(4).tolist() == [1.0, 0.8, 0.75, 1.0, round(5 / 6, 4), 0.8, 0.75]
    assert conv["overall_rate"].tolist() == [1.0, 0.8, 0.6, 0.6, 0.5, 0.4, 0.3]
    assert (conv["unit"] == "opportunity").all()


def test_cohort_conversion_per_customer(opps, hist):
    # customers' furthest stage: C1 6, C2 5, C3 4, C4 3, C5 0, C6 6
    pr = f.opportunity_progress(opps, hist, P, "2024-12-31")
    conv = f.cohort_conversion(pr, P, unit="customer")
    assert conv["reached"].tolist() == [6, 5, 5, 5, 4, 3, 2]
    assert conv.iloc[-1]["overall_rate"] == pytest.approx(2 / 6)


def test_cohort_conversion_by_one_and_two_dimensions(opps, hist):
    pr = f.opportunity_progress(opps, hist, P, "2024-12-31")
    conv = f.cohort_conversion(pr, P, by="region")
    r = _reached(conv, ["region"])
    assert [r[("华北", s)] for s in S] == [5, 5, 4, 4, 4, 4, 3]
    assert [r[("华南", s)] for s in S] == [5, 3, 2, 2, 1, 0, 0]
    two = f.cohort_conversion(pr, P, by=["region", "rep_id"])
    r2 = _reached(two, ["region", "rep_id"])
    # 华北/R1 = A, C, G (ranks 6, 1, 5); 华南/R2 = D, E, H (4, 3, 0)
    assert [r2[("华北", "R1", s)] for s in S] == [3, 3, 2, 2, 2, 2, 1]
    assert [r2[("华南", "R2", s)] for s in S] == [3, 2, 2, 2, 1, 0, 0]
    assert len(two) == 4 * len(S)


def test_cohort_bounds_and_window_boundary(opps, hist):
    pr = f.opportunity_progress(opps, hist, P, "2024-12-31")
    feb = f.cohort_conversion(pr, P, created_from="2024-02-01", created_to="2024-02-29")
    assert feb["cohort"].iloc[0] == 1 and feb["reached"].tolist() == [1, 1, 1, 1, 1, 0, 0]
    # an entry exactly at the window end is outside (window = [created, created + 3 months))
    h = pd.DataFrame({"opp_id": ["X", "X"], "stage": [S[0], S[6]],
                      "entered_at": pd.to_datetime(["2024-01-01", "2024-04-01"])})
    o = pd.DataFrame({"opp_id": ["X"], "created_at": pd.to_datetime(["2024-01-01"])})
    assert not f.opportunity_progress(o, h, P, "2024-12-31")["won"].iloc[0]
    h.loc[1, "entered_at"] = pd.Timestamp("2024-03-31 23:59")
    assert f.opportunity_progress(o, h, P, "2024-12-31")["won"].iloc[0]


def test_as_of_ignores_later_entries(opps, hist):
    pr = f.opportunity_progress(opps, hist, P, "2024-02-15").set_index("opp_id")
    assert "F" not in pr.index  # created after as_of
    assert pr["max_rank"].to_dict() == {"A": 4, "B": 4, "C": 1, "D": 3, "E": 3, "G": 5, "H": 0, "I": 0,
                                        "K": 6}
    assert not pr.loc[["A", "B", "C", "D", "E", "G", "H", "I", "K"], "window_complete"].any()
    st = f.current_state(opps, hist, P, "2024-01-25").set_index("opp_id")
    assert st.at["E", "status"] == "lost" and st.at["K", "current_stage"] == S[3]
    assert st.at["K", "days_in_stage"] == 5 and st.at["I", "current_stage"] == S[0]


def test_conversion_trend(opps, hist):
    tr = f.conversion_trend(f.opportunity_progress(opps, hist, P, "2024-04-10"), P)
    assert tr["cohort_month"].tolist() == ["2024-01", "2024-02", "2024-03"]
    assert tr["cohort"].tolist() == [8, 1, 1] and tr["reached"].tolist() == [3, 0, 0]
    assert tr["window_complete"].tolist() == [True, False, False]


def test_time_to_convert(opps, hist):
    pr = f.opportunity_progress(opps, hist, P, "2024-12-31")
    t = f.time_to_convert(pr).iloc[0]
    assert t["n"] == 3 and t["median"] == 50 and t["p25"] == 45 and t["max"] == 70
    by = f.time_to_convert(pr, by="region")
    assert by["region"].tolist() == ["华北"]  # 华南 has no win within its windows


def test_time_in_stage(opps, hist):
    d = f.stage_durations(opps, hist, P, "2024-12-31").set_index(["opp_id", "stage"])
    assert d.loc[("A", S[3]), "days"] == 21
    assert d.loc[("E", S[2]), "days"] == 24 and d.loc[("E", S[2]), "visits"] == 2  # 10 + 14, reopened
    assert d.loc[("K", S[3]), "days"] == 26 and d.loc[("K", S[3]), "visits"] == 2  # 5 + 21
    assert d.loc[("E", S[3]), "days"] == 60  # 02-15 → 04-15
    assert ("B", S[1]) not in d.index  # skipped stage: no time in it
    assert d.loc[("F", S[1]), "censored"] and not d.loc[("F", S[0]), "censored"]
    assert "I" not in d.index.get_level_values(0)
    tis = f.time_in_stage(d.reset_index(), P).set_index("stage")
    # 分配: A 10, B 27, D 5, E 24, G 4 → median 10; 新建: A 7, C 13, D 2, E 5, G 2 (F censored) → 5
    assert tis.at[S[2], "n"] == 5 and tis.at[S[2], "median"] == 10
    assert tis.at[S[1], "n"] == 5 and tis.at[S[1], "median"] == 5
    # 获得销售机会: A 2, B 4, C 1, D 2, E 4, F 4, G 1, H 1, K 4 → median 2
    assert tis.at[S[0], "n"] == 9 and tis.at[S[0], "median"] == 2
    assert list(tis.index) == S[:-1]


def test_snapshot(opps, hist):
    st = f.current_state(opps, hist, P, "2024-12-31")
    snap = f.stage_snapshot(st, P).set_index("stage")
    assert snap["count"].to_dict() == {S[0]: 1, S[1]: 1, S[2]: 0, S[3]: 0, S[4]: 0, S[5]: 0, S[6]: 4, LOST: 4}
    assert snap.at[S[6], "amount"] == 290 and snap.at[LOST, "amount"] == 85
    assert snap.at[S[0], "amount"] == 15 and snap.at[S[1], "amount"] == 20
    by = f.stage_snapshot(st, P, by="region")
    assert len(by) == 2 * 8 and by.groupby("region")["count"].sum().to_dict() == {"华北": 5, "华南": 5}


def test_stuck_overdue_and_aging(opps, hist):
    p = P.model_copy(update={"stuck_days": 10})
    st = f.current_state(opps, hist, p, "2024-04-10")
    stuck = f.stuck_deals(st, p).set_index("opp_id")
    # E in 客户关系建立 since 02-15: 55 days → 45 over; F 新建 since 03-05: 36 → 26; I since 01-01: 100 → 90
    assert stuck["days_over"].to_dict() == {"I": 90, "E": 45, "F": 26}
    assert stuck["bucket"].astype(str).to_dict() == {"I": "61–90", "E": "31–60", "F": "0–30"}
    over = f.overdue_deals(st, p, "2024-04-10").set_index("opp_id")
    # E expected 03-10 → 31 days; I 2023-12-01 → 131; F expected on as_of itself is not overdue
    assert over["days_overdue"].to_dict() == {"I": 131, "E": 31}
    ag = f.aging_table(over.reset_index(), p)
    assert ag["bucket"].astype(str).tolist() == ["0–30", "31–60", "61–90", ">90"]
    assert ag["count"].tolist() == [0, 1, 0, 1] and ag["amount"].tolist() == [0, 80, 0, 15]


def test_win_loss_reasons_pipeline_forecast(opps, hist):
    st = f.current_state(opps, hist, P, "2024-12-31")
    wl = f.win_loss(st, "2024-01-01", "2024-12-31").iloc[0]
    assert (wl["won"], wl["lost"], wl["win_rate"]) == (4, 4, 0.5)
    # from 02-01: won A, B, K, E; lost D, G (C and H closed in January; E's and K's interim losses don't count)
    wl2 = f.win_loss(st, "2024-02-01", "2024-12-31").iloc[0]
    assert (wl2["won"], wl2["lost"]) == (4, 2) and wl2["won_amount"] == 290
    by = f.win_loss(st, "2024-01-01", "2024-12-31", by="region").set_index("region")
    assert by.loc["华北", ["won", "lost"]].tolist() == [3, 2] and by.loc["华南", ["won", "lost"]].tolist() == [1, 2]
    lr = f.lost_reasons(st, "2024-01-01", "2024-12-31")
    assert dict(zip(lr["lost_reason"], lr["count"], strict=False)) == {"价格": 2, "(未填写)": 1, "竞争对手": 1}
    comp = f.lost_reasons(st, "2024-01-01", "2024-12-31", column="competitor")
    assert dict(zip(comp["competitor"], comp["count"], strict=False)) == {"联想": 2, "(未填写)": 1, "惠普": 1}

    st4 = f.current_state(opps, hist, P, "2024-04-10")
    wp = f.weighted_pipeline(st4, P)
    # open: I 获得销售机会 15 × 0.05, F 新建 20 × 0.1, E 客户关系建立 80 × 0.3
    assert wp["stage"].tolist() == [S[0], S[1], S[3]]
    assert wp["weighted"].tolist() == pytest.approx([0.75, 2.0, 24.0])
    fc = f.forecast_by_close_month(st4, P, "2024-04-10").set_index("close_month")
    assert fc["amount"].to_dict() == {"2023-12": 15, "2024-03": 80, "2024-04": 20}
    assert fc["overdue"].to_dict() == {"2023-12": True, "2024-03": True, "2024-04": False}


def test_lifecycle_funnel():
    cust = pd.DataFrame({"customer_id": [f"C{i}" for i in range(1, 9)],
                         "region": ["华北"] * 5 + ["华南"] * 3})
    # C4 has an opportunity but no recorded contact: still a potential customer (cumulative stages)
    st = f.lifecycle_stage(cust, potentials=["C1", "C2", "C3", "C6"], with_opportunity=["C1", "C2", "C4"],
                           with_order=["C1", "C9"])
    fun = f.lifecycle_funnel(st, by="region")
    r = fun.set_index(["region", "stage"])["customers"]
    assert [r[("华北", s)] for s in f.LIFECYCLE_STAGES] == [5, 4, 3, 1]
    assert [r[("华南", s)] for s in f.LIFECYCLE_STAGES] == [3, 1, 0, 0]
    rates = f.lifecycle_rates(fun).set_index("region")
    assert rates.loc["华北", ["target_to_potential", "potential_to_opportunity", "opportunity_to_order"]] \
        .tolist() == pytest.approx([0.8, 0.75, 1 / 3])
    assert np.isnan(rates.loc["华南", "opportunity_to_order"])


def _db(tmp_path, opps, hist):
    con = duckdb.connect(str(tmp_path / "crm.duckdb"))
    o = opps.rename(columns={"rep_id": "owner_rep_id"}).assign(account_id=lambda d: "A" + d["customer_id"])
    o["created_at"] = o["created_at"].dt.date
    o["expected_close"] = o["expected_close"].dt.date
    con.register("o", o)
    con.execute("CREATE TABLE stg_crm_opportunities AS SELECT opp_id, account_id, owner_rep_id, "
                "'' AS product_line, amount, created_at, expected_close, lost_reason, competitor FROM o")
    con.execute("CREATE TABLE stg_crm_accounts AS SELECT account_id, min(region) AS region, "
                "min(industry) AS industry FROM o GROUP BY account_id")
    con.execute("CREATE TABLE stg_reps AS SELECT * FROM (VALUES ('R1', '甲', '华北'), ('R2', '乙', '华南')) "
                "t(rep_id, rep_name, region)")
    con.register("h", hist)
    con.execute("CREATE TABLE stg_crm_opportunity_stages AS SELECT * FROM h")
    return con


def test_weekly_metrics_from_db_respect_as_of(tmp_path, opps, hist):
    con = _db(tmp_path, opps, hist)
    m = f.funnel_weekly_metrics(con, "2024-04-10", P)
    # open on 04-10: E 80, F 20, I 15; weighted 26.75 (see above); stuck (60 days): I (100 days)
    assert m["funnel_open_count"] == 3 and m["funnel_open_amount"] == 115
    assert m["funnel_weighted_pipeline"] == 26.75
    assert m["funnel_stuck_deals"] == 1 and m["funnel_overdue_deals"] == 2
    # closed 2024-01-12..04-10: won B, K, A; lost C, G, D → 0.5 (H closed 01-02 is outside 90 days)
    assert m["funnel_win_rate_90d"] == 0.5 and m["funnel_closed_90d"] == 6
    assert m["funnel_lead_to_order"] is None  # no master in this database
    # mature cohorts (window ended by 04-10): the eight January deals, 3 won
    assert m["funnel_opp_win_conversion"] == 0.375
    # a week earlier (the weekly report's comparison): closed 2024-01-05..04-03 are the same six deals
    last_week = f.funnel_weekly_metrics(con, "2024-04-03", P)
    assert last_week["funnel_open_count"] == 3 and last_week["funnel_closed_90d"] == 6
    earlier = f.funnel_weekly_metrics(con, "2024-02-15", P)
    # open on 02-15: A, B, D, E (reopened 02-01), I — F not yet created; won so far: K only
    assert earlier["funnel_open_count"] == 5 and earlier["funnel_win_rate_90d"] == 0.25
    fd = f.read_funnel(con, None, P)
    assert str(fd.as_of) == "2024-05-01"  # newest stage entry
    assert fd.opps["customer_id"].tolist()[0] == "crm:AC1"  # master not built: CRM account fallback
    con.close()


def _lifecycle_db(tmp_path):
    """Master of 4 华北 customers, no CRM account export (so a contact marks a potential). C1: visit 2023-03,
    opportunity 2023-04, orders 2023-05 (20 万元) and 2024-03 (two lines of one order, 30 万元); C2: call
    2024-02; C3: opportunity 2024-03 (no contact); C4: nothing. C5 is first seen after as_of (not a target yet)."""
    con = duckdb.connect(str(tmp_path / "lc.duckdb"))
    con.execute("""CREATE TABLE customer_master AS SELECT * FROM (VALUES
        ('C1', '华北', '金融', 'x', 'R1', DATE '2023-01-01'), ('C2', '华北', '金融', 'x', 'R1', DATE '2023-01-01'),
        ('C3', '华北', '制造', 'x', 'R1', DATE '2023-01-01'), ('C4', '华北', '制造', 'x', 'R1', DATE '2023-01-01'),
        ('C5', '华北', '制造', 'x', 'R1', DATE '2024-12-01'))
        t(customer_id, region, industry, scope, owner_rep_id, first_seen)""")
    con.execute("""CREATE TABLE customer_records AS SELECT * FROM (VALUES
        ('sales:1', 'sales', DATE '2023-03-01'), ('callcenter:9', 'callcenter', DATE '2024-02-01'),
        ('service:7', 'service', DATE '2024-02-01')) t(record_id, source, record_date)""")
    con.execute("""CREATE TABLE customer_xref AS SELECT * FROM (VALUES ('sales:1', 'C1'),
        ('callcenter:9', 'C2'), ('service:7', 'C4'), ('crm:A1', 'C1'), ('crm:A3', 'C3'), ('erp:E1', 'C1'))
        t(record_id, customer_id)""")
    con.execute("""CREATE TABLE stg_crm_opportunities AS SELECT * FROM (VALUES
        ('O1', 'A1', DATE '2023-04-01'), ('O3', 'A3', DATE '2024-03-01')) t(opp_id, account_id, created_at)""")
    con.execute("""CREATE TABLE stg_orders AS SELECT * FROM (VALUES
        ('S1', 1, DATE '2023-05-01', 'E1', 200000.0), ('S2', 1, DATE '2024-03-01', 'E1', 100000.0),
        ('S2', 2, DATE '2024-03-01', 'E1', 200000.0))
        t(order_id, line_no, order_date, erp_customer_id, amount)""")
    return con


def test_lifecycle_from_db_with_period_and_plan(tmp_path):
    con = _lifecycle_db(tmp_path)
    all_time = f.lifecycle_funnel(f.read_lifecycle(con, "2024-06-30", P), by="region")
    # targets C1-C4; potential C1, C2 (+ C3 via its opportunity; a service ticket is no contact); opp C1, C3
    assert all_time["customers"].tolist() == [4, 3, 2, 1]
    year = f.lifecycle_funnel(f.read_lifecycle(con, "2024-06-30", P, since="2023-07-01"), by="region")
    assert year["customers"].tolist() == [4, 3, 2, 1]  # C2 call, C3 opp, C1 order in the year
    early = f.lifecycle_funnel(f.read_lifecycle(con, "2023-04-15", P), by="region")
    assert early["customers"].tolist() == [4, 1, 1, 0]
    rev = f.read_region_revenue(con, "2024-06-30")
    assert rev[["revenue", "orders", "avg_order_value"]].iloc[0].tolist() == [30.0, 1, 30.0]
    rates = f.lifecycle_rates(all_time)  # 0.75, 0.6667, 0.5
    pva = f.plan_for_regions(rates, rev, P).iloc[0]
    # target 30 × 1.2 = 36 → ⌈36 / 30⌉ = 2 orders → ⌈2 / 0.5⌉ = 4 → ⌈4 / 0.6667⌉ = 6 → ⌈6 / 0.75⌉ = 8
    assert pva[["orders", "opportunities", "potentials", "leads"]].tolist() == [2, 4, 6, 8]
    assert pva[["orders_actual", "leads_actual", "orders_gap"]].tolist() == [1, 4, -1]
    manifest = {"conversion_rates": {
        "by_region": {"华北": {"target_to_potential": 0.7, "potential_to_opportunity": 0.5,
                              "opportunity_to_order": 0.4}},
        "realized_by_region": {"华北": {"potential_to_opportunity": 0.6, "opportunity_to_order": 0.5,
                                       "new_potentials": 10}}}}
    cmp = f.compare_with_truth(rates, manifest).set_index("step")
    # realized where the generator reports it, nominal otherwise (it realizes no target→potential)
    assert cmp["abs_diff"].round(4).to_dict() == {"opportunity_to_order": 0.0,
                                                  "potential_to_opportunity": 0.0667,
                                                  "target_to_potential": 0.05}
    con.close()


def test_flow_rates_new_potentials_and_win_rate(opps, hist):
    # decided by 2024-12-31: 华北 won A, B, K, lost C, G → 0.6; 华南 won E, lost D, H → 1/3
    win = f.opportunity_win_rate(f.current_state(opps, hist, P, "2024-12-31")).set_index("region")
    assert win["opportunity_to_order"].round(4).to_dict() == {"华北": 0.6, "华南": 0.3333}
    assert win["decided"].to_dict() == {"华北": 5, "华南": 3}
    d = pd.to_datetime
    firsts = pd.DataFrame({
        "customer_id": ["N0", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8", "N9"],
        "region": ["华北"] * 6 + ["华南"] * 2 + ["华北", "华南"],
        # a potential = a CRM account; N8 was only called (待识别) and has none
        "first_account": d(["2020-05-01", "2024-07-01", "2024-08-01", "2024-09-01", "2023-12-01", "2024-07-15",
                            "2024-10-01", "2024-12-15", None, "2024-11-01"]),
        "first_contact": d(["2024-01-01", None, None, None, None, None, None, None, "2024-08-01", None]),
        # orders and contacts both begin on 2024-01-01 (N0): the history new potentials are counted from
        "first_order": d(["2024-01-01", None, None, "2024-06-01", None, None, None, None, None, None]),
        "first_opp": d([None, "2024-09-01", None, None, "2024-08-01", "2024-07-01", "2024-12-01", None, None,
                        "2024-11-01"]),
    })
    npc = f.new_potential_conversion(firsts, "2025-03-31", 0, 120).set_index("region")
    # 华北: N1 (converted), N2 (not); N0's and N4's accounts are older than the order history, N3 ordered
    # before its account, N5 had an opportunity before it, N8 has no account → 1 / 2.  华南: N6 converted,
    # N9 converted on its account's day; N7's account is < 120 days before as_of (2024-12-01 is the cut) → 2 / 2
    assert npc["new_potentials"].to_dict() == {"华北": 2, "华南": 2}
    assert npc["converted"].to_dict() == {"华北": 1, "华南": 2}
    assert npc["potential_to_opportunity"].to_dict() == {"华北": 0.5, "华南": 1.0}
    # a burn-in of 200 days after the order history starts (2024-07-19) leaves N1 out
    late = f.new_potential_conversion(firsts, "2025-03-31", 200, 120).set_index("region")
    assert late["new_potentials"].to_dict() == {"华北": 1, "华南": 2} and late.at["华北", "converted"] == 0
    # without any order the contacts alone set the start (2024-01-01): N3 (its order gone) counts too;
    # pooled over regions: N1, N2, N3, N6, N9, of which N1, N6, N9 converted
    no_orders = f.new_potential_conversion(firsts.assign(first_order=pd.NaT), "2025-03-31", 0, 120, by=None)
    assert no_orders[["new_potentials", "converted"]].iloc[0].tolist() == [5, 3]
    # contacts beginning later (N8's 2024-08-01) move the start to the later of the two: N2, N6, N9
    late_contacts = firsts.assign(first_contact=firsts["first_contact"].where(firsts["customer_id"] != "N0"))
    pooled = f.new_potential_conversion(late_contacts, "2025-03-31", 0, 120, by=None)
    assert pooled[["new_potentials", "converted"]].iloc[0].tolist() == [3, 2]


def test_won_revenue(opps, hist):
    # won by 2024-12-31 within 12 months: 华北 A 100, B 50, K 60; 华南 E 80
    wr = f.won_revenue(f.current_state(opps, hist, P, "2024-12-31"), "2024-12-31").set_index("region")
    assert wr["revenue"].to_dict() == {"华北": 210, "华南": 80} and wr["orders"].to_dict() == {"华北": 3, "华南": 1}
    assert wr.at["华北", "avg_order_value"] == 70


def test_historical_plan_rates_fall_back_to_pooled_rates_for_a_region_without_history():
    from fractions import Fraction

    from crmlib.errors import UserError

    wide = pd.DataFrame({
        "region": ["北京公司", "沈阳公司"],
        "target": [1000, 1000], "target_to_potential": [0.02, 0.02],
        "new_potentials": [40, 10], "potential_to_opportunity": [0.125, 0.0],
        "decided": [30, 10], "opportunity_to_order": [0.5, 0.5],
    })
    notes: list[str] = []
    rates = f.historical_plan_rates(wide, ["北京公司", "沈阳公司"], notes=notes)
    assert rates["北京公司"].potential_to_opportunity == Fraction(1, 8)
    # pooled: (0.125 * 40 + 0 * 10) / 50 = 0.1
    assert rates["沈阳公司"].potential_to_opportunity == Fraction(1, 10)
    assert notes == ["沈阳公司: no potential to opportunity history of its own; using all regions' rate 0.1000"]
    wide["potential_to_opportunity"] = 0.0
    with pytest.raises(UserError, match=r"no region has historical potential to opportunity conversions yet "
                                        r"\(50 new potentials .*, none converted\)"):
        f.historical_plan_rates(wide, ["北京公司"])
