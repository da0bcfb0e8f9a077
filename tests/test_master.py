"""Customer master on a hand-built stg_* database: records, matching, hard rules, ids, decisions, hierarchy."""
from __future__ import annotations

import datetime
import json

import duckdb
import pandas as pd
import pytest

from crmlib import master

ACCOUNTS = [
    # account_id, account_name, city, phone, uscc, parent_account_id, scope, updated_at
    ("A1", "中国工商银行北京市分行", "北京", "010-66101234", None, "A3", "大客户及行业客户", "2024-03-01"),
    ("A2", "中国工商银行杭州分行", "杭州", None, None, None, "大客户及行业客户", "2024-02-01"),
    ("A3", "中国工商银行", "北京", None, None, None, "大客户及行业客户", "2024-01-01"),
    ("A4", "北京银行", "北京", "010-66223344", None, None, "大客户及行业客户", "2024-01-01"),
    ("A5", "中国银行北京市分行", "北京", None, None, None, "大客户及行业客户", "2024-01-01"),
    ("A6", "杭州华远软件有限公司", "杭州", "0571-88231234", "91330100MA27Y1234X", None, "中小企业", "2024-04-01"),
    ("A7", "测试", None, None, None, None, None, "2024-01-01"),
]
ERP = [("E1", "工行北京分行", "北京", "010-66101234"), ("E2", "华远软件（杭州）有限公司", "杭州", None),
       ("E3", "北京银行股份有限公司", "北京", None)]
SALES = [("f.xlsx|S|2", "北京工行", "北京", None, "2024-05-06"),
         ("f.xlsx|S|3", "杭州华元软件有限公司", "杭州", "0571 8823 1234", "2024-05-07"),
         ("f.xlsx|S|4", "中行北京分行", "北京", None, "2024-05-08"),
         ("f.xlsx|S|5", "未知客户", "杭州", None, "2024-05-08")]
CALLS = [("K1", "工商银行杭州分行", "13900001111", "2024-05-09 10:00:00"),
         ("K2", "华远软件", "0571-88231234", "2024-05-10 11:00:00")]
TICKETS = [("T1", "浙江工行", "0571-87000000", "杭州", "2024-05-11")]
TRUTH = {"crm:A1": "BJ", "erp:E1": "BJ", "sales:f.xlsx|S|2": "BJ", "crm:A2": "HZ", "callcenter:K1": "HZ",
         "crm:A3": "HEAD", "crm:A4": "BOB", "erp:E3": "BOB", "crm:A5": "BOC", "sales:f.xlsx|S|4": "BOC",
         "crm:A6": "HY", "erp:E2": "HY", "sales:f.xlsx|S|3": "HY", "callcenter:K2": "HY", "service:T1": "ZJ"}


def make_db(path) -> None:
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE stg_crm_accounts (account_id VARCHAR, account_name VARCHAR, city VARCHAR,
        phone VARCHAR, uscc VARCHAR, parent_account_id VARCHAR, scope VARCHAR, updated_at DATE, created_at DATE,
        province VARCHAR, address VARCHAR, industry VARCHAR, owner_rep_id VARCHAR, region VARCHAR, size VARCHAR,
        registered_capital DOUBLE, listed VARCHAR, _source_file VARCHAR, _row BIGINT)""")
    for i, a in enumerate(ACCOUNTS):
        con.execute("INSERT INTO stg_crm_accounts VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL,NULL,'R01','华北',NULL,"
                    "NULL,NULL,'crm/accounts.csv',?)", [*a, a[-1], i + 2])
    con.execute("""CREATE TABLE stg_crm_contacts AS SELECT * FROM (VALUES
        ('P1', 'A2', '李明', '13800002222', NULL, NULL, DATE '2024-01-01')) t(contact_id, account_id,
        contact_name, mobile, phone, email, updated_at)""")
    con.execute("""CREATE TABLE stg_erp_customers (erp_customer_id VARCHAR, customer_name VARCHAR, city VARCHAR,
        phone VARCHAR, uscc VARCHAR, province VARCHAR, address VARCHAR, _source_file VARCHAR, _row BIGINT)""")
    for i, e in enumerate(ERP):
        con.execute("INSERT INTO stg_erp_customers VALUES (?,?,?,?,NULL,NULL,NULL,'erp/customers.csv',?)",
                    [*e, i + 2])
    con.execute("""CREATE TABLE stg_orders AS SELECT * FROM (VALUES
        ('O1', 1, DATE '2024-05-01', 'E1', 100.0, 0.0), ('O2', 1, DATE '2024-05-02', 'E1', 200.0, 20.0),
        ('O3', 1, DATE '2024-05-03', 'E2', 50.0, 0.0)) t(order_id, line_no, order_date, erp_customer_id, amount,
        returned_amount)""")
    con.execute("""CREATE TABLE stg_sales_visits (record_key VARCHAR, customer_name VARCHAR, city VARCHAR,
        phone VARCHAR, report_date DATE, visit_date DATE, rep_id VARCHAR, contact_name VARCHAR, uscc VARCHAR,
        _source_file VARCHAR, _sheet VARCHAR, _row BIGINT)""")
    for s in SALES:
        con.execute("INSERT INTO stg_sales_visits VALUES (?,?,?,?,?,?, 'R02', NULL, NULL, 'sales_sheets/f.xlsx',"
                    " 'S', ?)", [*s, s[-1], int(s[0].split("|")[-1])])
    con.execute("""CREATE TABLE stg_calls (call_id VARCHAR, company VARCHAR, phone VARCHAR, called_at TIMESTAMP,
        caller VARCHAR, _source_file VARCHAR, _row BIGINT)""")
    for i, c in enumerate(CALLS):
        con.execute("INSERT INTO stg_calls VALUES (?,?,?,?, NULL, 'callcenter/calls.csv', ?)", [*c, i + 2])
    con.execute("""CREATE TABLE stg_tickets (ticket_id VARCHAR, customer_name VARCHAR, contact_phone VARCHAR,
        city VARCHAR, opened_at DATE, _source_file VARCHAR, _row BIGINT)""")
    for i, t in enumerate(TICKETS):
        con.execute("INSERT INTO stg_tickets VALUES (?,?,?,?,?, 'service/tickets.csv', ?)", [*t, i + 2])
    con.close()


@pytest.fixture
def db(crm_home):
    path = crm_home / "data" / "curated" / "crm.duckdb"
    make_db(path)
    return path


def xref(path) -> dict[str, str | None]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(con.execute("SELECT record_id, customer_id FROM customer_xref ORDER BY record_id").fetchall())
    finally:
        con.close()


def test_customer_records_union_and_side_evidence(db):
    con = duckdb.connect(str(db))
    n = master.build_customer_records(con)
    assert n == 7 + 3 + 4 + 2 + 1
    rows = con.execute("SELECT record_id, source, source_key, name_raw, phone, contact_name, record_date, _row "
                       "FROM customer_records ORDER BY record_id").df()
    con.close()
    a2 = rows.set_index("record_id").loc["crm:A2"]
    # the account has no phone: the CRM contact's mobile and name stand in as side evidence
    assert (a2["phone"], a2["contact_name"]) == ("13800002222", "李明")
    e1 = rows.set_index("record_id").loc["erp:E1"]
    assert str(e1["record_date"])[:10] == "2024-05-02"  # latest order
    assert rows.set_index("record_id").loc["sales:f.xlsx|S|3", "_row"] == 3
    assert sorted(rows["source"].unique()) == ["callcenter", "crm", "erp", "sales", "service"]


def test_resolve_matches_truth_and_keeps_hard_rules(db):
    s = master.resolve_db(db, progress=False)
    x = xref(db)
    assert x["crm:A7"] is None and x["sales:f.xlsx|S|5"] is None  # junk gets no customer
    assert s.junk == 2 and s.customers == 7
    pred = pd.Series({k: v for k, v in x.items() if k in TRUTH})
    scores = master.pairwise_scores(pred, pd.Series(TRUTH))
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0
    # ids issued in order of each customer's smallest record_id: callcenter:K1 (ICBC Hangzhou) first
    assert x["callcenter:K1"] == "C000001" and x["crm:A2"] == "C000001"
    con = duckdb.connect(str(db), read_only=True)
    m = con.execute("SELECT customer_id, name, level, parent_customer_id, n_records, sources, phone "
                    "FROM customer_master ORDER BY customer_id").df().set_index("customer_id")
    hier = con.execute("SELECT child_id, parent_id FROM customer_hierarchy ORDER BY child_id").fetchall()
    probs = con.execute("SELECT count(*) FROM customer_xref WHERE customer_id IS NOT NULL "
                        "AND match_probability IS NULL").fetchone()[0]
    con.close()
    assert probs == 0
    head, bj, hz, zj = x["crm:A3"], x["crm:A1"], x["crm:A2"], x["service:T1"]
    assert m.loc[head, "name"] == "中国工商银行" and m.loc[head, "level"] == "head"
    assert m.loc[bj, "name"] == "中国工商银行北京市分行" and m.loc[bj, "level"] == "province"
    assert m.loc[hz, "level"] == "city"
    # golden record: the CRM account (most trusted) gives the phone; sources listed once each
    assert m.loc[bj, "phone"] == "01066101234" and m.loc[bj, "sources"] == "crm,erp,sales"
    assert m.loc[x["crm:A6"], "n_records"] == 4
    # Hangzhou city branch → Zhejiang province branch → head office; Beijing (municipality) → head office
    assert (hz, zj) in hier and (zj, head) in hier and (bj, head) in hier
    assert m.loc[hz, "parent_customer_id"] == zj
    assert x["crm:A4"] != x["crm:A5"]  # 北京银行 ≠ 中国银行北京市分行


def test_ids_stable_when_records_arrive(db):
    master.resolve_db(db, progress=False)
    before = xref(db)
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO stg_sales_visits VALUES ('g.xlsx|S|2', '杭州华远软件', '杭州', NULL, DATE '2024-06-03',"
                " DATE '2024-06-03', 'R02', NULL, NULL, 'sales_sheets/g.xlsx', 'S', 2)")
    con.execute("INSERT INTO stg_sales_visits VALUES ('g.xlsx|S|3', '浙江大学', '杭州', NULL, DATE '2024-06-03',"
                " DATE '2024-06-03', 'R02', NULL, NULL, 'sales_sheets/g.xlsx', 'S', 3)")
    con.close()
    s = master.resolve_db(db, progress=False)
    after = xref(db)
    assert all(after[k] == v for k, v in before.items())
    assert after["sales:g.xlsx|S|2"] == before["crm:A6"]
    assert after["sales:g.xlsx|S|3"] == "C000008"  # next free number
    assert s.kept_ids == 7 and s.new_ids == 1


def test_assign_ids_majority_split_and_never_reuse():
    old = pd.DataFrame({"record_id": ["a", "b", "c", "d", "e"],
                        "customer_id": ["C000001", "C000001", "C000001", "C000002", "C000005"]})
    # cluster x holds a, b (two votes for C1); y holds c (one vote for C1) and d (C2); z is new
    cl = pd.DataFrame({"record_id": ["a", "b", "c", "d", "f"], "cluster": ["x", "x", "y", "y", "z"]})
    ids = master.assign_ids(cl, old)
    assert ids == {"x": "C000001", "y": "C000002", "z": "C000006"}
    # a tie between two old ids: the smaller id wins
    cl2 = pd.DataFrame({"record_id": ["c", "d"], "cluster": ["w", "w"]})
    assert master.assign_ids(cl2, old) == {"w": "C000001"}
    assert master.assign_ids(cl2, None) == {"w": "C000001"}


def test_review_decision_survives_rebuild_and_changes_result(db, crm_home):
    master.resolve_db(db, progress=False)
    x = xref(db)
    assert x["sales:f.xlsx|S|3"] == x["crm:A6"]
    assert x["crm:A4"] != x["service:T1"]
    master.append_decision("sales:f.xlsx|S|3", "crm:A6", "no_match", "王审核", decided_at="2024-06-01T10:00:00")
    master.append_decision("crm:A4", "erp:E3", "no_match", "王审核", decided_at="2024-06-01T10:01:00")
    master.append_decision("erp:E3", "crm:A4", "match", "李复核", decided_at="2024-06-02T09:00:00")  # later wins
    assert (crm_home / "params" / "review_decisions.csv").exists()
    # rebuild from scratch: a new database file, same decisions file
    db.unlink()
    make_db(db)
    master.resolve_db(db, progress=False)
    y = xref(db)
    assert y["sales:f.xlsx|S|3"] != y["crm:A6"]          # reviewer split the typo record off
    assert y["crm:A6"] == y["erp:E2"] == y["callcenter:K2"]
    assert y["crm:A4"] == y["erp:E3"]                     # the later 'match' decision holds
    dec = master.read_decisions()
    assert len(dec) == 2 and set(dec["decision"]) == {"match", "no_match"}


def test_pairwise_scores_and_heads_merged_hand_checked():
    pred = pd.Series({"r1": "A", "r2": "A", "r3": "A", "r4": "B", "r5": None})
    truth = pd.Series({"r1": "x", "r2": "x", "r3": "y", "r4": "y", "r5": "y"})
    s = master.pairwise_scores(pred, truth)
    # predicted pairs: (1,2),(1,3),(2,3) = 3; true pairs among r1..r4: (1,2),(3,4) = 2; correct: (1,2)
    assert (s["pairs_predicted"], s["pairs_true"], s["pairs_correct"]) == (3, 2, 1)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 2)
    parents = {"y": "x"}  # y is a branch of x
    assert master.heads_merged_with_branches(pred, truth, parents) == 1
    assert master.heads_merged_with_branches(pred, truth, {}) == 0


def test_hard_rule_violation_cases():
    v = master.hard_rule_violation
    assert v({"brand": "中国银行"}, {"brand": "北京银行"}) == "different brand"
    assert v({"brand": "中国工商银行", "unit": "head||"}, {"brand": "中国工商银行", "unit": "city||"}) \
        == "different branch / head office"
    assert v({"core": "华远软件", "n_city": "杭州"}, {"core": "华远软件", "n_city": "上海"}) == "different city in name"
    assert v({"core": "华远软件", "n_city": "杭州"}, {"core": "华远软件"}) is None
    assert v({"core": "平安", "ambiguous": True}, {"core": "平安银行", "brand": "平安银行"}) == "ambiguous short form"


def test_weekly_metrics(db):
    import datetime as dt

    master.resolve_db(db, progress=False)
    con = duckdb.connect(str(db), read_only=True)
    m = master.master_weekly_metrics(con, dt.date(2024, 5, 12))
    con.close()
    assert m["master_customers"] == 7 and m["master_records"] == 17
    assert m["master_match_rate"] == pytest.approx(15 / 17)
    # first seen 2024-05-06..12: only the Zhejiang branch (ticket 2024-05-11); the others were seen earlier
    assert m["master_new_customers_week"] == 1


def test_charts_and_notebook_helpers(db):
    from crmlib.charts import master as cm

    master.resolve_db(db, progress=False)
    con = duckdb.connect(str(db), read_only=True)
    sizes = master.cluster_size_counts(con)
    b = cm.size_bins(sizes).set_index("bin")["customers"]
    assert (b["1"], b["2"], b["3"], b["4–5"]) == (2, 3, 1, 1)   # HEAD, ZJ | HZ, BOB, BOC | BJ | HY (4)
    sample = master.merge_samples(con, n=10, threshold=0.9)
    prior, labels = master.evidence_labels(con, sample.iloc[0])
    fig = cm.evidence(sample.iloc[0], prior, "en", labels)
    assert len(fig.data[0].x) == 8 and fig.data[0].measure[-1] == "total"
    tree = master.largest_group(con)
    assert tree.loc[tree["parent_id"].isna(), "name"].tolist() == ["中国工商银行"]
    con.close()
    for lang in ("zh", "en"):
        cm.cluster_sizes(sizes, lang)
        cm.accuracy({"precision": 0.99, "recall": 0.97}, lang)
        cm.group_tree(tree, lang)


def test_name_parse_cache_reused_and_keyed_on_the_parser(db):
    """A rerun parses only names it has not seen under the same parser; the result does not change."""
    master.resolve_db(db, progress=False)
    before = xref(db)
    con = duckdb.connect(str(db))
    n, keys = con.execute(f"SELECT count(*), count(DISTINCT parser) FROM {master.NAME_CACHE_TABLE}").fetchall()[0]
    assert n == 17 and keys == 1  # every distinct non-blank raw name (未知客户 and 测试 too: junk is a result)
    # a stale row under another parser key is ignored, and a cached row is what the rerun uses
    con.execute(f"UPDATE {master.NAME_CACHE_TABLE} SET parser = 'old' WHERE name_raw = '北京工行'")
    params = master.load_master_params()
    known = master.read_name_cache(con, master.name_cache_key(params))
    assert len(known) == 16 and "北京工行" not in set(known["name_raw"])
    con.close()
    master.resolve_db(db, progress=False)
    assert xref(db) == before
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute(f"SELECT count(*), count(DISTINCT parser) FROM {master.NAME_CACHE_TABLE}").fetchall()[0] \
        == (17, 1)
    con.close()


def _place_less(bare_phone, margin=None):
    """和和商贸 in 南京 (3 records, one phone) and in 克拉玛依 (2 records, another phone), and one record of the
    bare trade name with no city or credit code: with no phone it could be either; with 南京's phone it is
    南京's."""
    recs = pd.DataFrame([
        {"record_id": "a1", "name_raw": "南京和和商贸有限公司", "city": "南京", "phone": "025-83000001"},
        {"record_id": "a2", "name_raw": "南京和和商贸有限公司", "city": "南京", "phone": "025-83000001"},
        {"record_id": "a3", "name_raw": "和和商贸（南京）有限公司", "city": "南京", "phone": "025-83000001"},
        {"record_id": "b1", "name_raw": "克拉玛依和和商贸有限公司", "city": "克拉玛依", "phone": "0990-6200002"},
        {"record_id": "b2", "name_raw": "克拉玛依和和商贸有限公司", "city": "克拉玛依", "phone": "0990-6200002"},
        {"record_id": "x", "name_raw": "和和商贸有限公司", "city": None, "phone": bare_phone},
    ])
    p = master.load_master_params()
    if margin is not None:
        p.ambiguity_margin = margin
    res = master.match_records(recs, p, progress=False)
    cl = res.records.set_index("record_id")["cluster"]
    return cl, master.review_queue(res, p, None), res


def test_place_less_name_matching_two_cities_stays_alone_and_goes_to_review():
    cl, queue, res = _place_less(None)
    assert cl["a1"] == cl["a2"] == cl["a3"] != cl["b1"] == cl["b2"]
    assert cl["x"] not in (cl["a1"], cl["b1"])
    assert res.stats["ambiguous_groups"] == 1
    assert sorted(map(tuple, queue[["record_id_l", "record_id_r"]].to_numpy())) == [("a1", "x"), ("b1", "x")]
    cl, queue, res = _place_less(None, margin=-1)           # check off: the first of two equal edges wins
    assert cl["x"] in (cl["a1"], cl["b1"]) and queue.empty


def test_place_less_name_with_evidence_joins_its_city():
    cl, queue, res = _place_less("025 8300 0001")
    assert cl["x"] == cl["a1"] != cl["b1"]
    assert res.stats["ambiguous_groups"] == 0 and queue.empty


def _helian():
    """合联电器 in 成都 and in 重庆 (two records each, one phone each), three calls giving only 合联电器 (成都's
    phone, 重庆's phone, no phone), and 中南大学 in 长沙 with two bare calls."""
    return pd.DataFrame([
        {"record_id": "cd1", "name_raw": "成都合联电器有限公司", "city": "成都", "phone": "028-85000001"},
        {"record_id": "cd2", "name_raw": "成都合联电器有限公司", "city": "成都", "phone": "028-85000001"},
        {"record_id": "cq1", "name_raw": "重庆合联电器有限公司", "city": "重庆", "phone": "023-63000002"},
        {"record_id": "cq2", "name_raw": "重庆合联电器有限公司", "city": "重庆", "phone": "023-63000002"},
        {"record_id": "k1", "name_raw": "合联电器", "city": None, "phone": "028 8500 0001"},
        {"record_id": "k2", "name_raw": "合联电器", "city": None, "phone": "023-6300-0002"},
        {"record_id": "k3", "name_raw": "合联电器", "city": None, "phone": None},
        {"record_id": "u1", "name_raw": "中南大学", "city": "长沙", "phone": "0731-88830000"},
        {"record_id": "u2", "name_raw": "中南大学", "city": None, "phone": "13900001111"},
        {"record_id": "u3", "name_raw": "中南大学", "city": None, "phone": "13700002222"},
    ])


def test_bare_trade_name_of_two_cities_is_matched_call_by_call():
    """Callers who give only 合联电器 (no city, no credit code) while 合联电器 exists in 成都 and 重庆: each call
    goes where its phone points, and a call with no phone joins neither; a bare name only one city knows
    (中南大学) stays one group whatever the phones."""
    recs = _helian()
    res = master.match_records(recs, master.load_master_params(), progress=False)
    cl = res.records.set_index("record_id")["cluster"]
    g = res.records.set_index("record_id")["group_id"]
    assert cl["k1"] == cl["cd1"] == cl["cd2"] != cl["cq1"] == cl["cq2"] == cl["k2"]
    assert cl["k3"] not in (cl["cd1"], cl["cq1"])
    assert len({g["k1"], g["k2"], g["k3"]}) == 3
    assert g["u2"] == g["u3"] and cl["u1"] == cl["u2"] == cl["u3"]


def test_bare_trade_name_left_alone_goes_to_review_with_each_city():
    """A call giving only 合联电器 that joins neither city's customer is paired, for stewards, with both
    (reason bare_name), also when Splink scored the pairs below review_low (then without a probability); a
    pair the queue holds for another reason is listed once; a steward's decision takes its pair off;
    review_bare_candidates 0 lists none."""
    p = master.load_master_params()
    res = master.match_records(_helian(), p, progress=False)
    bare = master.bare_name_candidates(res, p, None)
    assert sorted(map(tuple, bare[["record_id_l", "record_id_r"]].to_numpy())) == [("cd1", "k3"), ("cq1", "k3")]
    assert set(bare["reason"]) == {"bare_name"} and not bare["same_cluster"].any()
    assert list(bare["n_records_l"]) == [2, 2] and list(bare["n_records_r"]) == [1, 1]   # name groups' records
    queue = master.review_queue(res, p, None)      # here the ambiguity check queued the same two pairs
    assert queue.duplicated(["record_id_l", "record_id_r"]).sum() == 0
    assert set(map(tuple, queue[["record_id_l", "record_id_r"]].to_numpy())) >= {("cd1", "k3"), ("cq1", "k3")}

    # a stricter model: only the calls with a city's phone (probability 1) join it, k3's pairs (0.999) are
    # below review_low and not even scored: only the bare-name list shows them, without a probability
    strict = p.model_copy(update={"threshold": 0.99999, "review_low": 0.99999, "review_high": 0.99999})
    res = master.match_records(_helian(), strict, progress=False)
    cl = res.records.set_index("record_id")["cluster"]
    assert cl["k1"] == cl["cd1"] != cl["k2"] == cl["cq1"] and cl["k3"] not in (cl["cd1"], cl["cq1"])
    queue = master.review_queue(res, strict, None)
    assert sorted(map(tuple, queue[["record_id_l", "record_id_r"]].to_numpy())) == [("cd1", "k3"), ("cq1", "k3")]
    assert set(queue["reason"]) == {"bare_name"} and queue["match_probability"].isna().all()
    decided = pd.DataFrame([{"record_id_l": "cd1", "record_id_r": "k3", "decision": "no_match"}])
    assert list(master.review_queue(res, strict, decided)["record_id_l"]) == ["cq1"]
    assert master.review_queue(res, strict.model_copy(update={"review_bare_candidates": 0}), None).empty
    assert master.review_queue(res, strict.model_copy(update={"review_bare_max_records": 0}), None).empty
    assert res.stats["bare_name_records"] == 1 and res.stats["bare_name_listed"] == 0
    assert master.pipeline._bare_note(res.stats) == " (bare-name records: 0 of 1 listed, review_bare_max_records)"


def _weifeng():
    """伟峰管理咨询 in 太原 as the CRM writes it (credit code, landline) and as tickets and calls write it (bare
    trade name, the 太原 city field, a mobile); the same trade name in 大同; 中信银行 in 太原 twice (a brand)."""
    return pd.DataFrame([
        {"record_id": "a1", "name_raw": "太原伟峰管理咨询有限责任公司", "city": "太原", "phone": "0351-44492424",
         "uscc": "91140100218490487Y"},
        {"record_id": "a2", "name_raw": "太原伟峰管理咨询有限责任公司", "city": "太原", "phone": "0351-44492424",
         "uscc": None},
        {"record_id": "t1", "name_raw": "伟峰管理咨询", "city": "太原市", "phone": "179 1276 6837", "uscc": None},
        {"record_id": "t2", "name_raw": "伟峰管理咨询有限公司", "city": "太原", "phone": "13141008169", "uscc": None},
        {"record_id": "d1", "name_raw": "伟峰管理咨询", "city": "大同", "phone": "13800000001", "uscc": None},
        {"record_id": "b1", "name_raw": "中信银行股份有限公司山西省分行", "city": "太原", "phone": "0351-11110000",
         "uscc": None},
        {"record_id": "b2", "name_raw": "中信银行(太原)", "city": "太原", "phone": "13900000002", "uscc": None},
    ])


def _strict(**update):
    """Parameters under which Splink alone accepts almost nothing on these short lists (thresholds near 1)."""
    return master.load_master_params().model_copy(update={
        "threshold": 0.999999, "review_low": 0.99999, "review_high": 0.9999995, **update})


def _group_ids(records: pd.DataFrame):
    p = master.load_master_params()
    recs, _ = master.prepare_records(records, p)
    groups = master.build_groups(recs, p)
    gmap = dict(zip(groups["gkey"], groups["group_id"], strict=True))
    return groups, {r: gmap[k] for r, k in zip(recs["record_id"], master.group_key(recs, p), strict=True)}


def test_trade_name_city_pairs_same_core_same_city_no_brand():
    groups, gid = _group_ids(_weifeng())
    assert gid["t1"] == gid["t2"] != gid["a1"] == gid["a2"]    # bare name + 太原 city field: one group
    pairs = master.trade_name_city_pairs(groups)
    assert sorted(map(tuple, pairs.to_numpy().tolist())) == [tuple(sorted((gid["a1"], gid["t1"])))]
    # the ticket's group carrying another credit code than the CRM's: two registered companies or a mistyped
    # code, the records cannot say which, so the rule stands aside for 伟峰管理咨询 in 太原
    two = _weifeng()
    two.loc[two["record_id"] == "t2", "uscc"] = "91140100MA0CKJQC2L"
    groups, gid = _group_ids(two)
    assert gid["t1"] == gid["t2"] != gid["a1"]
    assert master.trade_name_city_pairs(groups).empty


def test_same_trade_name_same_city_joins_whatever_the_score():
    """Splink (thresholds near 1 here) leaves the ticket's 伟峰管理咨询 apart from 太原伟峰管理咨询有限责任公司; the
    rule (one trade name per industry per registration authority) joins them, not 大同's, not the brand; the
    pair is marked in the pairs and does not go to review."""
    recs = _weifeng()
    off = master.match_records(recs, _strict(same_trade_name_same_city=False), progress=False)
    cl = off.records.set_index("record_id")["cluster"]
    assert cl["t1"] == cl["t2"] != cl["a1"] == cl["a2"]
    on_p = _strict()
    on = master.match_records(recs, on_p, progress=False)
    cl = on.records.set_index("record_id")["cluster"]
    assert cl["t1"] == cl["t2"] == cl["a1"] == cl["a2"]
    assert cl["d1"] != cl["a1"] and cl["b1"] != cl["a1"] and cl["b2"] != cl["a1"]
    assert on.stats["pairs_by_rule"] == 1
    rule = on.pairs[on.pairs["rule"].notna()]
    assert len(rule) == 1 and (rule["rule"] == master.TRADE_NAME_CITY).all()
    q = master.review_queue(on, on_p, None)
    ids = set(q["record_id_l"]) | set(q["record_id_r"])
    assert not ({"a1", "t1"} <= ids and any({a, b} == {"a1", "t1"} for a, b in
                                            zip(q["record_id_l"], q["record_id_r"], strict=True)))
    # a steward's no-match decision outranks the rule
    dec = pd.DataFrame([{"record_id_l": "a1", "record_id_r": "t1", "decision": "no_match"}])
    cl = master.match_records(recs, on_p, decisions=dec, progress=False).records.set_index("record_id")["cluster"]
    assert cl["t1"] != cl["a1"]


def test_rule_merges_counts_what_the_model_alone_left_apart(tmp_path):
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    con.execute("""CREATE TABLE customer_match_pairs (record_id_l VARCHAR, record_id_r VARCHAR, name_l VARCHAR,
        name_r VARCHAR, match_probability DOUBLE, violation VARCHAR, decision VARCHAR)""")
    assert master.rule_merges(con, 0.9)[0] == 0          # resolved before rules were recorded
    con.execute("ALTER TABLE customer_match_pairs ADD COLUMN rule VARCHAR")
    con.execute("""INSERT INTO customer_match_pairs VALUES
        ('a', 'b', '伟峰管理咨询', '太原伟峰管理咨询有限责任公司', NULL, NULL, NULL, 'trade_name_city'),
        ('c', 'd', '润众电脑', '拉萨润众电脑有限责任公司', 0.85, NULL, NULL, 'trade_name_city'),
        ('e', 'f', '盛博商贸', '东莞盛博商贸有限公司', 0.97, NULL, NULL, 'trade_name_city'),
        ('g', 'h', '辰信贸易', '保定辰信贸易有限公司', 0.50, NULL, 'no_match', 'trade_name_city'),
        ('i', 'j', '航卓数据科技', '昆明航卓数据科技有限公司', 0.85, NULL, NULL, NULL)""")
    n, sample = master.rule_merges(con, 0.9)
    assert n == 2 and sorted(sample["name_l"]) == ["伟峰管理咨询", "润众电脑"]
    assert master.rule_merges(con, 0.9, n=1)[1].shape[0] == 1
    con.close()


def test_contact_phones_lists_every_phone_of_an_accounts_contacts(tmp_path):
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    assert master.contact_phones(con).empty                       # no CRM contacts loaded
    con.execute("""CREATE TABLE stg_crm_contacts AS SELECT * FROM (VALUES
        ('C1', 'A1', '131-4100-8169', '0351-44492424'), ('C2', 'A1', '13900000002', NULL),
        ('C3', 'A1', '131-4100-8169', ''), ('C4', 'A2', NULL, NULL), ('C5', NULL, '13700000003', NULL))
        t(contact_id, account_id, mobile, phone)""")
    got = master.contact_phones(con)
    assert got["record_id"].tolist() == ["crm:A1"]
    assert list(got["phones_more"].iloc[0]) == ["0351-44492424", "131-4100-8169", "13900000002"]
    con.close()


def _callers():
    """伟峰管理咨询 in 太原 and in 大同 (CRM accounts, landlines; 太原's contact has the mobile 131-4100-8169) and
    three calls giving the bare trade name: two from that mobile, one from a mobile nobody knows."""
    return pd.DataFrame([
        {"record_id": "crm:A1", "name_raw": "太原伟峰管理咨询有限责任公司", "city": "太原", "phone": "0351-44492424",
         "phones_more": ["131-4100-8169", "0351-44492424"]},
        {"record_id": "crm:A2", "name_raw": "大同伟峰管理咨询有限公司", "city": "大同", "phone": "0352-5550123",
         "phones_more": ["13800000001"]},
        {"record_id": "cc:1", "name_raw": "伟峰管理咨询", "city": None, "phone": "+86 13141008169", "phones_more": None},
        {"record_id": "cc:2", "name_raw": "伟峰管理咨询公司", "city": None, "phone": "13141008169", "phones_more": None},
        {"record_id": "cc:3", "name_raw": "伟峰管理咨询", "city": None, "phone": "13999990000", "phones_more": None},
    ])


def test_a_caller_meets_the_account_on_its_contacts_mobile():
    """The bare trade name is known in two cities, so only the phone can say which company called: without the
    contacts' phones the calls stay customers of their own; with them, the two calls from 太原's contact's mobile
    join 太原's account (not 大同's), and the call from an unknown mobile stays alone."""
    recs = _callers()
    p = master.load_master_params()
    groups, _ = _group_ids(recs)
    phones = dict(zip(groups["gkey"], groups["phone"], strict=True))
    assert [ph for k, ph in phones.items() if "太原" in k] == [["035144492424", "13141008169"]]
    off = master.match_records(recs.drop(columns="phones_more"), p, progress=False)
    cl = off.records.set_index("record_id")["cluster"]
    assert cl["cc:1"] == cl["cc:2"] and len({cl["cc:1"], cl["cc:3"], cl["crm:A1"], cl["crm:A2"]}) == 4
    on = master.match_records(recs, p, progress=False)
    cl = on.records.set_index("record_id")["cluster"]
    assert cl["cc:1"] == cl["cc:2"] == cl["crm:A1"]
    assert len({cl["crm:A1"], cl["crm:A2"], cl["cc:3"]}) == 3
    # the parameter turns the side evidence off
    cl = master.match_records(recs, p.model_copy(update={"contact_phones": False}),
                              progress=False).records.set_index("record_id")["cluster"]
    assert cl["cc:1"] != cl["crm:A1"]


def test_trained_model_is_stored_and_used_again(db):
    """The first resolve trains and stores the model; the next one uses it as it is (a stored model made to
    believe almost nothing matches changes the result, so it is what scores the pairs), until it is older than
    model_max_age_days, the training parameters change, or --retrain."""
    first = master.resolve_db(db, progress=False)
    assert first.stats["model"] == "trained" and first.stats["model_note"] == "trained (first run)"
    before = xref(db)
    again = master.resolve_db(db, progress=False)
    assert again.stats["model"] == "reused" and again.stats["model_note"].startswith("reused (trained ")
    assert xref(db) == before
    con = duckdb.connect(str(db))
    (key, trained_at, model), = con.execute(
        f"SELECT key, trained_at, model FROM {master.MODEL_TABLE}").fetchall()
    p = master.load_master_params()
    assert key == master.model_key(p)
    day = datetime.timedelta(days=1)
    assert master.read_model(con, p, now=trained_at + 28 * day)[0] is not None
    stale, note = master.read_model(con, p, now=trained_at + 29 * day)
    assert stale is None and "29 days old" in note
    assert master.read_model(con, p.model_copy(update={"seed": 7}))[0] is None
    assert master.read_model(con, p, retrain=True) == (None, "trained (--retrain)")
    assert master.read_model(con, p.model_copy(update={"model_max_age_days": 0}))[0] is None
    n = con.execute("SELECT count(*) FROM customer_records").fetchall()[0][0]
    assert master.read_model(con, p, records=int(n * 1.2))[0] is not None
    grown, note = master.read_model(con, p, records=int(n * 1.2) + 1)
    assert grown is None and f"saw {n:,} records" in note
    m = json.loads(model)
    m["probability_two_random_records_match"] = 1e-30
    con.execute(f"UPDATE {master.MODEL_TABLE} SET model = ?", [json.dumps(m)])
    con.close()
    master.resolve_db(db, progress=False)
    assert len(set(xref(db).values())) > len(set(before.values()))   # fewer merges: the stored model scored
    retrained = master.resolve_db(db, progress=False, retrain=True)
    assert retrained.stats["model"] == "trained" and xref(db) == before


def test_exact_u_counts_every_pair_the_rare_levels_reach(demo_resolved):
    """u of the rare levels is counted, not sampled: _exact_u lists only the pairs that can reach them (one
    trade name, written names one deletion apart, a shared code or phone). Splink scoring every pair of the
    demo's name groups with its own level SQL finds the same number of pairs at each of those levels."""
    from splink import DuckDBAPI, Linker

    from crmlib.master import engine

    con = duckdb.connect(str(demo_resolved / "crm.duckdb"), read_only=True)
    records = con.execute("SELECT * FROM customer_records").df()
    con.close()
    p = master.load_master_params()
    recs, _ = master.prepare_records(records, p)
    recs = recs[~recs["is_junk"]]
    groups = master.build_groups(recs, p)
    eng = engine._engine_connection(p)
    engine._register_groups(eng, groups)
    exact = engine._exact_u(eng, p)

    # every pair, each comparison's level by Splink's own CASE statement
    linker = Linker(DuckDBAPI(eng).register("splink_groups"), engine.splink_settings(p), log_level=None)
    cases = ", ".join(c._case_statement for c in linker._settings_obj.comparisons)
    cols = [r[0] for r in eng.execute("DESCRIBE splink_groups").fetchall()]
    sides = ", ".join(f"{s}.{c} AS {c}_{s}" for s in ("l", "r") for c in cols)
    every = eng.execute(f"""SELECT {cases} FROM (SELECT {sides} FROM splink_groups l JOIN splink_groups r
                                                 ON l.group_id < r.group_id)""").df()
    n = len(groups)
    assert n > 500 and len(every) == n * (n - 1) // 2
    for col, levels in exact.items():
        gamma = every[f"gamma_{col}"]
        for level, u in levels.items():
            found = max((gamma == level).sum(), 0.5)   # a level no pair reaches: half a pair, not u = 0
            assert u == pytest.approx(found / (gamma != -1).sum(), rel=1e-9, abs=1e-15), (col, level)
    # the levels are reached at all on this demo (else the comparison proves little)
    assert min(int((every["gamma_name"] == lv).sum()) for lv in (8, 7, 6, 3)) > 0
    assert (every["gamma_phone"] == 1).sum() > 0 and (every["gamma_uscc"] == 1).sum() > 0
    eng.close()


def test_floor_m_keeps_a_level_few_matches_show_from_vetoing_a_match():
    """EM can leave a level an m of about 0 (similar addresses on the default demo: weight -213 bits). With the
    floor each m is at least 0.001 before the comparison's m are made to sum to 1 again: 1e-60, 0.05, 0.95 become
    0.001 / 1.001, 0.05 / 1.001, 0.95 / 1.001; a comparison already above the floor is left as it is."""
    from splink import DuckDBAPI, Linker

    from crmlib.master import engine

    p = master.load_master_params()
    eng = engine._engine_connection(p)
    groups = master.build_groups(master.prepare_records(pd.DataFrame(
        {"record_id": ["a", "b"], "name_raw": ["杭州华远软件有限公司", "北京银行"]}), p)[0], p)
    engine._register_groups(eng, groups)
    linker = Linker(DuckDBAPI(eng).register("splink_groups"), engine.splink_settings(p), log_level=None)
    comparisons = {c.output_column_name: c._comparison_levels_excluding_null for c in linker._settings_obj.comparisons}
    address, city = comparisons["address"], comparisons["city"]
    for lv, m in zip(sorted(address, key=lambda lv: lv.comparison_vector_value), [0.95, 1e-60, 0.05], strict=True):
        lv.m_probability = m
    before_city = [lv.m_probability for lv in city]
    engine._floor_m(linker, 0.001)
    got = {lv.comparison_vector_value: lv.m_probability for lv in address}
    assert got == pytest.approx({0: 0.95 / 1.001, 1: 0.001 / 1.001, 2: 0.05 / 1.001})
    assert [lv.m_probability for lv in city] == before_city
    eng.close()


def test_settled_pairs_follow_confident_links_only():
    """Groups 1-2 (0.97) and 2-3 (0.96) are confident, so the band pair 1-3 (0.85) is settled; 4 hangs on 3 by a
    band pair only (3-4 not settled); 4-5 is joined by the trade-name rule, so 3-5 (0.9) is not settled either
    (3 and 4 are not confidently linked); 6-7 (0.99) breaks a hard rule and 7-8 (0.99) carries a steward's
    no-match, so 6-8 (0.85) is not settled; a steward's match 9-10 settles 9-11 through 10-11 (0.95 = review_high)."""
    pairs = pd.DataFrame(
        [(1, 2, 0.97, None, None, None), (2, 3, 0.96, None, None, None), (1, 3, 0.85, None, None, None),
         (3, 4, 0.85, None, None, None), (4, 5, None, None, None, "trade_name_city"), (3, 5, 0.90, None, None, None),
         (6, 7, 0.99, "branch_level", None, None), (7, 8, 0.99, None, "no_match", None),
         (6, 8, 0.85, None, None, None), (9, 10, 0.5, None, "match", None), (10, 11, 0.95, None, None, None),
         (9, 11, 0.85, None, None, None)],
        columns=["group_id_l", "group_id_r", "match_probability", "violation", "decision", "rule"])
    got = master.pipeline.settled_pairs(pairs, 0.95)
    assert dict(zip(zip(pairs["group_id_l"], pairs["group_id_r"], strict=True), got.tolist(), strict=True)) == {
        (1, 2): True, (2, 3): True, (1, 3): True, (3, 4): False, (4, 5): True, (3, 5): False,
        (6, 7): False, (7, 8): False, (6, 8): False, (9, 10): True, (10, 11): True, (9, 11): True}
    only = master.pipeline.settled_pairs(pairs, 0.95, among=pairs["match_probability"].eq(0.85).to_numpy())
    assert only.tolist() == [False, False, True, False, False, False, False, False, False, False, False, True]


def test_review_queue_leaves_out_band_pairs_confident_pairs_already_join():
    """1-3 (0.85) is settled by 1-2 and 2-3 and the three are one customer: not queued. 3-4 is queued (4 hangs on
    a band pair only). 5-7 is queued although 5-6-7 are confident pairs: the clustering kept 7 apart (a hard
    rule on the component), so the pair is still an open question."""
    from crmlib.master.match import MatchResult

    groups = pd.DataFrame({"group_id": range(1, 8), "first_record": [f"r{i}" for i in range(1, 8)],
                           "canonical": [f"名称{i}" for i in range(1, 8)], "n_records": 1,
                           "cluster": [0, 0, 0, 0, 1, 1, 2]})
    pairs = pd.DataFrame([(1, 2, 0.97), (2, 3, 0.96), (1, 3, 0.85), (3, 4, 0.85), (5, 6, 0.97), (6, 7, 0.97),
                          (5, 7, 0.85)], columns=["group_id_l", "group_id_r", "match_probability"])
    pairs = pairs.assign(match_weight=1.0, violation=None, decision=None, rule=None, ambiguous=False)
    res = MatchResult(records=pd.DataFrame(), groups=groups, pairs=pairs, model={})
    q = master.review_queue(res, master.load_master_params(), None)
    assert list(zip(q["record_id_l"], q["record_id_r"], strict=True)) == [("r3", "r4"), ("r5", "r7")]
    assert q["reason"].eq("score").all() and q["same_cluster"].tolist() == [True, False]
