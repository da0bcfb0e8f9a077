"""Marketing target lists: matching list entries to master customers and the target→potential flow rate
(crmlib.target_lists), on a hand-built database; the demo's recovered rate against its generator."""
from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from crmlib import funnel as f
from crmlib import target_lists as tl
from crmlib.db import connect
from crmlib.uscc import uscc_check_char


def code(body17: str) -> str:
    return body17 + uscc_check_char(body17)


U1, U3, U4, U5 = (code("91110108MA00ABCD1"), code("91440101MA00ABCD3"), code("91440300MA00ABCD4"),
                  code("91440101MA00ABCD5"))
BAD_U1 = U1[:17] + ("0" if U1[17] != "0" else "1")  # check character wrong

AS_OF = "2025-06-30"  # window 365 days: the cohort is listed on or before 2024-06-30


def _db(tmp_path):
    """C1 北京甲乙 (code U1, account 2024-03-01, opportunity 2024-04-01); C2 上海丙丁 (abbreviated on its record,
    no code; account 2024-06-01, visit 2024-06-10); C3 广州戊己 (code U3, account 2023-01-01: known before
    any list); C4 深圳庚辛 (code U4, account 2025-06-01, more than a year after its listing); C5 and C6 two
    customers written with one name (杭州同名商贸)."""
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("""CREATE TABLE customer_master AS SELECT * FROM (VALUES
        ('C1', '北京甲乙科技有限公司', '华北'), ('C2', '上海丙丁贸易有限公司', '华东'), ('C3', '广州戊己物流有限公司', '华南'),
        ('C4', '深圳庚辛电子有限公司', '华南'), ('C5', '杭州同名商贸有限公司', '华东'), ('C6', '杭州同名商贸有限公司', '华东'))
        t(customer_id, name, region)""")
    con.execute("""ALTER TABLE customer_master ADD COLUMN industry VARCHAR;
        ALTER TABLE customer_master ADD COLUMN scope VARCHAR; ALTER TABLE customer_master ADD COLUMN owner_rep_id VARCHAR;
        ALTER TABLE customer_master ADD COLUMN first_seen DATE""")
    con.execute("""CREATE TABLE customer_records AS SELECT * FROM (VALUES
        ('crm:A1', 'crm', '北京甲乙科技有限公司', ?, DATE '2024-03-01'),
        ('crm:A2', 'crm', '丙丁贸易', NULL, DATE '2024-06-01'),
        ('sales:S2', 'sales', '上海丙丁', NULL, DATE '2024-06-10'),
        ('crm:A3', 'crm', '广州戊己物流有限公司', ?, DATE '2023-01-01'),
        ('crm:A4', 'crm', '深圳庚辛电子有限公司', ?, DATE '2025-06-01'),
        ('crm:A5', 'crm', '杭州同名商贸有限公司', NULL, DATE '2023-01-01'),
        ('crm:A6', 'crm', '杭州同名商贸有限公司', NULL, DATE '2023-01-01'))
        t(record_id, source, name_raw, uscc, record_date)""", [U1, U3, U4])
    con.execute("""CREATE TABLE customer_xref AS SELECT * FROM (VALUES ('crm:A1', 'C1'), ('crm:A2', 'C2'),
        ('sales:S2', 'C2'), ('crm:A3', 'C3'), ('crm:A4', 'C4'), ('crm:A5', 'C5'), ('crm:A6', 'C6'))
        t(record_id, customer_id)""")
    con.execute("""CREATE TABLE stg_crm_accounts AS SELECT * FROM (VALUES ('A1', DATE '2024-03-01'),
        ('A2', DATE '2024-06-01'), ('A3', DATE '2023-01-01'), ('A4', DATE '2025-06-01'), ('A5', DATE '2023-01-01'),
        ('A6', DATE '2023-01-01')) t(account_id, created_at)""")
    con.execute("""CREATE TABLE stg_crm_opportunities AS SELECT * FROM (VALUES ('O1', 'A1', DATE '2024-04-01'))
        t(opp_id, account_id, created_at)""")
    con.execute("""CREATE TABLE stg_targets AS SELECT * FROM (VALUES
        ('T1', '北京甲乙科技有限公司', ?, '华北', DATE '2024-01-01'),
        ('T2', ' 上海丙丁贸易有限公司 ', NULL, '华东', DATE '2024-02-01'),
        ('T3', '广州戊己物流有限公司', ?, '华南', DATE '2024-01-15'),
        ('T4', '深圳庚辛电子有限公司', ?, '华南', DATE '2024-01-01'),
        ('T5', '广州戊己物流有限公司', ?, '华南', DATE '2024-01-10'),
        ('T6', '杭州同名商贸有限公司', NULL, '华东', DATE '2024-01-20'),
        ('T7', '北京新名字有限公司', ?, '华北', DATE '2024-01-05'),
        ('T8', '成都新公司', NULL, '西南', DATE '2024-12-01'),
        ('T9', '北京甲乙科技', ?, NULL, DATE '2024-02-15'),
        ('T10', '西安以后公司', NULL, '西北', DATE '2025-07-01'))
        t(target_id, company_name, uscc, region, listed_at)""",
                [U1.lower()[:8] + " " + U1[8:], U3, U4, U5, BAD_U1, "９" + U1[1:]])
    con.execute("ALTER TABLE stg_targets ADD COLUMN city VARCHAR; ALTER TABLE stg_targets ADD COLUMN industry VARCHAR")
    con.execute("ALTER TABLE stg_targets ADD COLUMN list_name VARCHAR")
    con.execute("ALTER TABLE stg_targets ADD COLUMN _loaded_at TIMESTAMP DEFAULT TIMESTAMP '2025-01-06 09:00:00'")
    con.execute("UPDATE stg_targets SET list_name = CASE WHEN uscc IS NULL THEN '展会名单' ELSE '行业名录' END")
    return con


def test_matching_rules(tmp_path):
    con = _db(tmp_path)
    m = tl.read_matched_targets(con, AS_OF).set_index("target_id")
    assert "T10" not in m.index  # listed after as_of
    got = {t: (r.customer_id if pd.notna(r.customer_id) else None, r.match if pd.notna(r.match) else None)
           for t, r in m.iterrows()}
    assert got == {
        "T1": ("C1", "uscc"),   # code written in lower case with a space
        "T2": ("C2", "name"),   # no code; the master name, surrounding spaces trimmed
        "T3": ("C3", "uscc"),
        "T4": ("C4", "uscc"),
        "T5": (None, None),     # C3's name, but both carry valid codes and they differ
        "T6": (None, None),     # one name, two customers
        "T7": (None, None),     # mistyped code (check character wrong) and a new name
        "T8": (None, None),
        "T9": ("C1", "uscc"),   # full-width first digit folded
    }


def test_target_conversion_cohort_and_window(tmp_path):
    con = _db(tmp_path)
    since = tl.read_potential_since(con, AS_OF).set_index("customer_id")["potential_since"].astype(str)
    assert since.to_dict() == {"C1": "2024-03-01", "C2": "2024-06-01", "C3": "2023-01-01", "C4": "2025-06-01",
                               "C5": "2023-01-01", "C6": "2023-01-01"}
    r = tl.read_target_conversion(con, AS_OF, 365).set_index("region")
    # cohort: listed by 2024-06-30 and not known before listing (T3 out); T8 window incomplete
    # 华北 T1 (conv), T7, T9 (C1's region; conv) -> 2/3; 华东 T2 (conv), T6 -> 1/2; 华南 T4 (a year late), T5 -> 0/2
    assert r[["targets", "converted"]].to_dict("index") == {
        "华东": {"targets": 2, "converted": 1}, "华北": {"targets": 3, "converted": 2},
        "华南": {"targets": 2, "converted": 0}}
    assert r.loc["华北", "target_to_potential"] == pytest.approx(2 / 3)
    # a longer window takes C4's conversion in, and a cohort that ends earlier
    r2 = tl.read_target_conversion(con, "2025-12-31", 540).set_index("region")
    assert r2.loc["华南", "converted"] == 1 and r2.loc["华南", "targets"] == 2
    total = tl.read_target_conversion(con, AS_OF, 365, by=None).iloc[0]
    assert (total["targets"], total["converted"]) == (7, 3)


def test_lifecycle_counts_listed_targets_that_are_not_customers(tmp_path):
    con = _db(tmp_path)
    lc = f.lifecycle_funnel(f.read_lifecycle(con, AS_OF, f.FunnelParams()), by=None)
    # 6 customers + T5, T6, T7, T8 (not customers; T10 listed later); potential: C1..C6, each with a CRM
    # account opened by as_of; opportunity: C1; no order table
    assert lc["customers"].tolist() == [10, 6, 1, 0]


def test_demo_recovered_target_rate_matches_generator(demo_resolved):
    """The session's demo (seed 7, scale 0.1): every region's recovered rate equals the generator's realized
    one within TOL (measured: equal in every region; a list entry missed or wrongly matched would move a
    region by 1/targets ≈ 0.002-0.016)."""
    tol = 0.005
    manifest = json.loads((demo_resolved / "truth" / "manifest.json").read_text(encoding="utf-8"))
    window = manifest["conversion_rates"]["target_window_days"]
    con = connect(demo_resolved / "crm.duckdb", read_only=True)
    try:
        got = tl.read_target_conversion(con, manifest["as_of_dates"][-1], window).set_index("region")
        rates = f.historical_rates(con, manifest["as_of_dates"][-1], f.FunnelParams(target_window_days=window))
    finally:
        con.close()
    real = pd.DataFrame(manifest["conversion_rates"]["realized_by_region"]).T
    assert sorted(got.index) == sorted(real.index)
    assert (got["targets"] == real["listed_targets"].astype(int).reindex(got.index)).all()
    diff = (got["target_to_potential"] - real["target_to_potential"].astype(float).reindex(got.index)).abs()
    assert diff.max() <= tol, diff
    assert got["converted"].sum() >= 30  # enough conversions for the comparison to mean something
    assert rates.set_index("region")["target_to_potential"].equals(got["target_to_potential"])


def test_a_visit_alone_is_no_conversion(tmp_path):
    """C10 was listed (T15, 2024-01-01) and visited (2024-03-01) but no rep opened an account for it: still
    待识别, neither converted nor a potential; C11, listed the same day, got its account on 2024-04-01."""
    con = _db(tmp_path)
    con.execute("""INSERT INTO customer_master (customer_id, name, region) VALUES
        ('C10', '成都十号有限公司', '西南'), ('C11', '成都十一号有限公司', '西南')""")
    con.execute("""INSERT INTO customer_records VALUES ('sales:S10', 'sales', '成都十号有限公司', NULL, DATE '2024-03-01'),
        ('crm:A11', 'crm', '成都十一号有限公司', NULL, DATE '2024-04-01')""")
    con.execute("INSERT INTO customer_xref VALUES ('sales:S10', 'C10'), ('crm:A11', 'C11')")
    con.execute("INSERT INTO stg_crm_accounts VALUES ('A11', DATE '2024-04-01')")
    con.execute("""INSERT INTO stg_targets (target_id, company_name, region, listed_at) VALUES
        ('T15', '成都十号有限公司', '西南', DATE '2024-01-01'), ('T16', '成都十一号有限公司', '西南', DATE '2024-01-01')""")
    since = tl.read_potential_since(con, AS_OF).set_index("customer_id")["potential_since"].astype(str)
    assert "C10" not in since.index and since["C11"] == "2024-04-01"
    r = tl.read_target_conversion(con, AS_OF, 365).set_index("region")
    assert r.loc["西南", ["targets", "converted"]].tolist() == [2, 1]   # T15, T16; T8 is too young
    st = f.read_lifecycle(con, AS_OF, f.FunnelParams()).set_index("customer_id")["lifecycle_stage"]
    assert (st["C10"], st["C11"]) == ("target", "potential")


def test_shared_code_leaves_the_name_to_decide(tmp_path):
    """A list code on two customers is no code match; the entry's exact name then decides, and the name is
    not vetoed when the list's code is one of that customer's own (C7 and C8 share U7)."""
    con = _db(tmp_path)
    u7 = code("91330100MA00ABCD7")
    con.execute("""INSERT INTO customer_master (customer_id, name, region) VALUES
        ('C7', '杭州七号有限公司', '华东'), ('C8', '杭州八号有限公司', '华东')""")
    con.execute("""INSERT INTO customer_records VALUES ('crm:A7', 'crm', '杭州七号有限公司', ?, DATE '2024-05-01'),
        ('crm:A8', 'crm', '杭州八号有限公司', ?, DATE '2024-05-01')""", [u7, u7])
    con.execute("INSERT INTO customer_xref VALUES ('crm:A7', 'C7'), ('crm:A8', 'C8')")
    con.execute("""INSERT INTO stg_targets (target_id, company_name, uscc, region, listed_at) VALUES
        ('T11', '杭州七号有限公司', ?, '华东', DATE '2024-01-01')""", [u7])
    m = tl.read_matched_targets(con, AS_OF).set_index("target_id")
    assert (m.at["T11", "customer_id"], m.at["T11", "match"]) == ("C7", "name")


def test_a_customer_first_seen_later_is_still_a_target_then(tmp_path):
    """T12 names C9, which the center first saw after as_of: at as_of it is a listed target, not a customer."""
    con = _db(tmp_path)
    con.execute("""INSERT INTO customer_master (customer_id, name, region, first_seen) VALUES
        ('C9', '苏州九号有限公司', '华东', DATE '2025-09-01')""")
    con.execute("INSERT INTO customer_records VALUES ('crm:A9', 'crm', '苏州九号有限公司', NULL, DATE '2025-09-01')")
    con.execute("INSERT INTO customer_xref VALUES ('crm:A9', 'C9')")
    con.execute("""INSERT INTO stg_targets (target_id, company_name, region, listed_at) VALUES
        ('T12', '苏州九号有限公司', '华东', DATE '2024-01-01')""")
    lc = f.lifecycle_funnel(f.read_lifecycle(con, AS_OF, f.FunnelParams()), by=None)
    assert lc["customers"].tolist() == [11, 6, 1, 0]   # 10 as before + T12


def test_plan_rate_falls_back_while_lists_are_younger_than_the_window(tmp_path):
    con = _db(tmp_path)
    p = f.FunnelParams()
    young = f.target_rates(con, "2024-12-30", p)     # nothing listed by 2023-12-31: no cohort yet
    # the lifecycle's stock ratio over the master's 6 customers instead (the young list entries it cannot
    # measure yet are left out); potential: the accounts opened by 2024-12-30 (C1, C2, C3, C5, C6; C4's is 2025)
    assert young[["target", "potential"]].sum().tolist() == [6, 5]
    assert set(young["region"]) == {"华北", "华东", "华南"} and young.attrs["target_source"] == "lifecycle"
    lists = f.target_rates(con, AS_OF, p).set_index("region")
    assert lists.loc["华北", ["target", "potential"]].tolist() == [3, 2]   # the list's cohort
    assert lists.attrs["target_source"] == "lists"


def test_match_summary_per_list(tmp_path):
    con = _db(tmp_path)
    got = tl.match_summary(con, AS_OF).set_index("list_name")
    # 行业名录 (with codes): T1, T3, T4, T9 by code; T5 (vetoed name), T7 (bad code) not customers
    # 展会名单 (no code): T2 by name; T6 (one name, two customers), T8 not customers; T10 listed later
    assert got.to_dict("index") == {
        "行业名录": {"entries": 6, "by_code": 4, "by_name": 0, "not_customers": 2},
        "展会名单": {"entries": 3, "by_code": 0, "by_name": 1, "not_customers": 2}}


def test_an_entry_without_a_listing_date_counts_from_its_first_delivery(tmp_path):
    con = _db(tmp_path)
    con.execute("""INSERT INTO stg_targets (target_id, company_name, region, listed_at, _loaded_at) VALUES
        ('T13', '重庆无日期有限公司', '西南', NULL, TIMESTAMP '2024-03-01 08:00:00'),
        ('T14', '无区域有限公司', '', NULL, TIMESTAMP '2024-03-01 08:00:00')""")
    m = tl.read_matched_targets(con, AS_OF).set_index("target_id")
    assert str(m.at["T13", "listed_at"])[:10] == "2024-03-01"     # no raw table here: the load day
    assert "T13" not in tl.read_matched_targets(con, "2024-02-28")["target_id"].tolist()
    r = tl.read_target_conversion(con, AS_OF, 365).set_index("region")
    assert r.loc["西南", ["targets", "converted"]].tolist() == [1, 0]   # T8 (2024-12-01) is too young
    assert r.loc["(未知)", "targets"] == 1                             # T14: no region, no customer
    assert ("(未知)", None, 1) in set(tl.read_unmatched_counts(con, AS_OF).itertuples(index=False, name=None))
    # with the raw table: the earliest delivery that held it, by the ISO week in the file name (stable when
    # later weekly files repeat the entry and its newest copy is the one in stg)
    con.execute("""CREATE TABLE raw_targets AS SELECT * FROM (VALUES
        ('T13 ', 'marketing/targets_2024-W02.csv', TIMESTAMP '2024-03-05 08:00:00'),
        ('T13', 'marketing/targets_2024-W05.csv', TIMESTAMP '2024-03-01 08:00:00'),
        ('T14', 'marketing/targets.csv', TIMESTAMP '2024-02-20 08:00:00'))
        t(target_id, _source_file, _loaded_at)""")
    m = tl.read_matched_targets(con, AS_OF).set_index("target_id")
    assert str(m.at["T13", "listed_at"])[:10] == "2024-01-08"   # Monday of 2024-W02
    assert str(m.at["T14", "listed_at"])[:10] == "2024-02-20"   # no week in the name: its load day


def test_listed_counts_in_a_period(tmp_path):
    con = _db(tmp_path)
    # 2024-07-01..2025-06-30: T8 only (T10 is listed 2025-07-01, the others in January-February 2024)
    assert tl.read_listed_counts(con, "2024-07-01", AS_OF).to_dict("records") == [{"region": "西南", "listed": 1}]
    # from 2023-07-01: T1..T9; T9 has no region and takes its customer's (C1, 华北)
    got = tl.read_listed_counts(con, "2023-07-01", AS_OF).set_index("region")["listed"].to_dict()
    assert got == {"华东": 2, "华北": 3, "华南": 3, "西南": 1}


def test_without_a_crm_account_export_a_contact_marks_the_potential(tmp_path):
    con = _db(tmp_path)
    con.execute("DROP TABLE stg_crm_accounts")
    since = tl.read_potential_since(con, AS_OF).set_index("customer_id")["potential_since"].astype(str)
    # C1 through its opportunity, C2 through its visit; the others have neither
    assert since.to_dict() == {"C1": "2024-04-01", "C2": "2024-06-10"}
    st = f.read_lifecycle(con, AS_OF, f.FunnelParams()).set_index("customer_id")["lifecycle_stage"]
    assert st[["C1", "C2", "C3"]].tolist() == ["opportunity", "potential", "target"]
