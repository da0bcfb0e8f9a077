import datetime as dt

import duckdb
import pytest
from test_load_fixtures import (
    account,
    accounts_csv,
    calls_csv,
    orders_csv,
    sales_xlsx,
    snapshot,
    standard_sheet,
    write,
)

from crmlib.load import load_all
from crmlib.sources.config import SourcesConfig, load_config


@pytest.fixture
def raw(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    return d


@pytest.fixture
def dbp(tmp_path):
    return tmp_path / "curated" / "crm.duckdb"


def q(dbp, sql, params=None):
    con = duckdb.connect(str(dbp), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_csv_load_latest_version_and_rejects_then_second_run_loads_nothing(raw, dbp):
    accounts_csv(raw, "accounts.csv", [
        account("A001", "北京工行", "2026-01-05"),
        account("A002", "测试", "2026/13/45", capital="-5", listed="是"),
        account("", "无键客户", "2026-01-05"),
    ])
    accounts_csv(raw, "accounts_2026-W48.csv", [account("A001", "中国工商银行北京分行", "2026-11-20")])
    s = load_all(raw, dbp, progress=False)
    assert s.exit_code == 0
    by = {r["source"]: r for r in s.per_source()}
    assert by["crm_accounts"]["read"] == 2 and by["crm_accounts"]["rows"] == 4
    assert by["crm_accounts"]["rows_rejected"] == 1          # the row without account_id
    assert q(dbp, "SELECT account_id, account_name, registered_capital, listed, updated_at, _source_file, _row "
                  "FROM stg_crm_accounts ORDER BY account_id") == [
        ("A001", "中国工商银行北京分行", 100.0, "Y", dt.date(2026, 11, 20), "crm/accounts_2026-W48.csv", 2),
        ("A002", "测试", None, "Y", None, "crm/accounts.csv", 3),   # junk name kept, bad fields NULL
    ]
    assert q(dbp, "SELECT _source_file, _row, column_name, value, reason FROM load_rejects "
                  "ORDER BY _row, column_name") == [
        ("crm/accounts.csv", 3, "registered_capital", "-5", "negative amount"),
        ("crm/accounts.csv", 3, "updated_at", "2026/13/45", "impossible date"),
        ("crm/accounts.csv", 4, "account_id", None, "missing key; row not loaded"),
    ]
    assert q(dbp, "SELECT count(*) FROM raw_crm_accounts") == [(4,)]   # raw keeps every row as landed
    before = snapshot(dbp)

    again = load_all(raw, dbp, progress=False)
    assert again.nothing_loaded and again.exit_code == 0
    assert "Nothing new to load: all 2 files" in str(again)
    assert snapshot(dbp) == before


def test_versions_across_runs_match_one_run(raw, dbp, tmp_path):
    accounts_csv(raw, "accounts.csv", [account("A001", "v1", "2026-11-20"), account("A002", "base", "2026-11-01")])
    load_all(raw, dbp, progress=False)
    # an older updated_at in a later file loses; an equal one wins (later file)
    accounts_csv(raw, "accounts_2026-W48.csv", [account("A001", "older", "2026-01-01"),
                                                 account("A002", "tie", "2026-11-01")])
    accounts_csv(raw, "accounts_2026-W49.csv", [account("A003", "new", "2026-12-01"),
                                                 account("A003", "new2", "2026-12-01")])
    s = load_all(raw, dbp, progress=False)
    assert [f.status for f in s.files] == ["skipped", "loaded", "loaded"]
    expected = [("A001", "v1"), ("A002", "tie"), ("A003", "new2")]
    assert q(dbp, "SELECT account_id, account_name FROM stg_crm_accounts ORDER BY 1") == expected
    one_run = tmp_path / "one.duckdb"
    load_all(raw, one_run, progress=False)
    assert q(one_run, "SELECT account_id, account_name FROM stg_crm_accounts ORDER BY 1") == expected


def test_changed_file_replaces_its_rows(raw, dbp):
    accounts_csv(raw, "accounts.csv", [account("A001", "v1", "2026-11-01")])
    delta = accounts_csv(raw, "accounts_2026-W48.csv", [account("A001", "v2", "2026-11-20"),
                                                         account("A009", "gone", "2026-11-20", capital="x")])
    load_all(raw, dbp, progress=False)
    assert q(dbp, "SELECT count(*) FROM load_rejects") == [(1,)]
    # the delta is sent again, corrected: A001 no longer changed, A009 dropped
    accounts_csv(raw, delta.name, [account("A002", "v1", "2026-11-20")])
    s = load_all(raw, dbp, progress=False)
    assert [f.status for f in s.files] == ["skipped", "replaced"]
    assert q(dbp, "SELECT account_id, account_name FROM stg_crm_accounts ORDER BY 1") == [("A001", "v1"),
                                                                                          ("A002", "v1")]
    assert q(dbp, "SELECT count(*) FROM raw_crm_accounts") == [(2,)]
    assert q(dbp, "SELECT count(*) FROM load_rejects") == [(0,)]


def test_a_file_sent_again_under_another_name_is_skipped(raw, dbp):
    """Files get sent twice: a call log re-sent as next week's, a copy in the same delivery. Content already
    loaded (same hash) is skipped whatever the file's name, with a note naming both files, so its rows are
    not counted twice. A file whose own content changed no longer holds its old content: a copy of that old
    content under a new name loads."""
    rows = ["CC0001,2026-11-23 09:15:00,报修,北京工行,张三,13800138000,服务器,硬盘告警,坐席07",
            "CC0002,2026-11-24 10:00:00,投诉,浙江建行,李四,0571-8888,笔记本,维修太慢,坐席08"]
    first = calls_csv(raw, "calls_2026-W47.csv", rows)
    load_all(raw, dbp, progress=False)
    (raw / "callcenter" / "calls_2026-W48.csv").write_bytes(first.read_bytes())   # re-sent as next week's
    (raw / "callcenter" / "calls_2026-W49.csv").write_bytes(first.read_bytes())
    s = load_all(raw, dbp, progress=False)
    assert [(f.file, f.status) for f in s.files] == [("callcenter/calls_2026-W47.csv", "skipped"),
                                                     ("callcenter/calls_2026-W48.csv", "skipped"),
                                                     ("callcenter/calls_2026-W49.csv", "skipped")]
    assert s.exit_code == 0 and s.problems == [
        f"file callcenter/calls_2026-W4{w}.csv: same content as callcenter/calls_2026-W47.csv, already loaded; "
        "skipped (delete it, or send the file it was meant to be)" for w in (8, 9)]
    assert q(dbp, "SELECT count(*) FROM raw_calls") == [(2,)]
    assert q(dbp, "SELECT _source_file, count(*) FROM stg_calls GROUP BY 1") == [("callcenter/calls_2026-W47.csv", 2)]
    # W47 corrected (one call fewer); its old content, still in W48, is no longer in the database: W48 loads
    calls_csv(raw, "calls_2026-W47.csv", rows[:1])
    s = load_all(raw, dbp, progress=False)
    assert [f.status for f in s.files] == ["replaced", "loaded", "skipped"]
    assert q(dbp, "SELECT count(*) FROM raw_calls") == [(3,)]
    assert q(dbp, "SELECT call_id, _source_file FROM stg_calls ORDER BY 1") == [
        ("CC0001", "callcenter/calls_2026-W48.csv"), ("CC0002", "callcenter/calls_2026-W48.csv")]


def test_gbk_callcenter_file_keeps_chinese_text(raw, dbp):
    calls_csv(raw, "calls_2026-W48.csv", [
        "CC0001,2026-11-23 09:15:00,报修,北京市工商银行股份有限公司,张三,13800138000,ThinkServer服务器,硬盘告警，需上门,坐席07",
        "CC0002,2026/11/23 10:00,投诉,浙江省建行,李四,0571-8888,笔记本,维修太慢,坐席08",
    ], encoding="gbk")
    calls_csv(raw, "calls_2026-W49.csv", ["CC0003,2026-11-30 08:00:00,咨询,䶮科技有限公司,王五,,打印机,,坐席09"],
              encoding="gb18030")   # 䶮 is outside GBK
    s = load_all(raw, dbp, progress=False)
    assert s.exit_code == 0
    assert q(dbp, "SELECT call_id, called_at, call_type, company, summary, agent FROM stg_calls ORDER BY 1") == [
        ("CC0001", dt.datetime(2026, 11, 23, 9, 15), "报修", "北京市工商银行股份有限公司", "硬盘告警，需上门", "坐席07"),
        ("CC0002", dt.datetime(2026, 11, 23, 10, 0), "投诉", "浙江省建行", "维修太慢", "坐席08"),
        ("CC0003", dt.datetime(2026, 11, 30, 8, 0), "咨询", "䶮科技有限公司", None, "坐席09"),
    ]


def test_utf8_bom_header_and_unknown_columns(raw, dbp):
    write(raw / "erp" / "customers.csv",
          "erp_customer_id,customer_name,uscc,province,city,address,phone,extra\nE1,杭州某公司,,浙江,杭州,,,x\n",
          "utf-8-sig")
    s = load_all(raw, dbp, progress=False)
    assert q(dbp, "SELECT erp_customer_id, customer_name FROM stg_erp_customers") == [("E1", "杭州某公司")]
    assert any("columns not loaded (unknown): extra" in p for p in s.problems)


def test_orders_types_keys_and_malformed_lines(raw, dbp):
    orders_csv(raw, "orders.csv", [
        "SO1,1,2026-11-02,E1,甲公司,X1,2,1000.5,800,0,R01",
        "SO1,2,2026-11-02,E1,甲公司,X2,1,\"1,200\",900,,R01",
        "SO1,2.5,2026-11-02,E1,甲公司,X2,1,5,4,,R01",         # line_no not whole: row rejected
        "SO2,1,2026-11-03,E2,乙公司,X1,2,100,80,0,R02,extra",  # too many fields: line rejected
        "SO3,1,2026-11-04,E3,丙公司,X1,-1,100,80,0,R02",      # negative qty: field rejected
    ])
    orders_csv(raw, "orders_2026-W48.csv", ["SO1,1,2026-11-02,E1,甲公司,X1,3,1500,800,0,R01"])
    s = load_all(raw, dbp, progress=False)
    assert q(dbp, "SELECT order_id, line_no, qty, amount, cost, returned_amount, _row FROM stg_orders ORDER BY 1, 2") == [
        ("SO1", 1, 3, 1500.0, 800.0, 0.0, 2),       # the week-48 file's version
        ("SO1", 2, 1, 1200.0, 900.0, None, 3),
        ("SO3", 1, None, 100.0, 80.0, 0.0, 6),      # line 6: the rejected line 5 is counted
    ]
    rej = q(dbp, "SELECT _row, column_name, reason FROM load_rejects ORDER BY _row")
    assert [(r[0], r[1]) for r in rej] == [(4, "line_no"), (5, None), (6, "qty")]
    assert rej[0][2] == "not a whole number; row not loaded (key)"
    assert rej[1][2].startswith("line not loaded: too many fields")
    assert rej[2][2] == "negative number"
    by = {r["source"]: r for r in s.per_source()}
    assert by["orders"]["rows"] == 5 and by["orders"]["rows_rejected"] == 2


def test_sales_sheets_header_merges_dates(raw, dbp):
    sales_xlsx(raw, "2026-W48_R017.xlsx",
               {"本周": standard_sheet(), "说明": [["填写说明：请按模板填写"]],
                "草稿": [["北京工商银行", "王五"], ["浙江建行", "钱七"], ["上海某公司", "孙八"]]},
               merges={"本周": ["A1:H1", "C3:C4"]})
    s = load_all(raw, dbp, progress=False)
    assert s.exit_code == 0
    rows = q(dbp, "SELECT record_key, rep_id, week, report_date, visit_date, customer_name, phone, est_amount, "
                  "stage, _sheet, _row FROM stg_sales_visits ORDER BY _row")
    assert rows == [
        ("2026-W48_R017.xlsx|本周|3", "R017", "2026-W48", dt.date(2026, 11, 23), dt.date(2026, 11, 24),
         "北京工商银行", "13800138000", 50.0, "商务谈判", "本周", 3),
        ("2026-W48_R017.xlsx|本周|4", "R017", "2026-W48", dt.date(2026, 11, 23), dt.date(2026, 11, 24),
         "北京工商银行", "010-88886666", 12.5, "获得标书", "本周", 4),   # merged customer cell filled down
        ("2026-W48_R017.xlsx|本周|5", "R017", "2026-W48", dt.date(2026, 11, 23), None,
         "浙江建行", None, None, None, "本周", 5),
    ]
    assert q(dbp, "SELECT _sheet, _row, column_name, value, reason FROM load_rejects ORDER BY _row, column_name") == [
        ("本周", 5, "est_amount", "-3", "negative amount"),
        ("本周", 5, "visit_date", "2026/13/45", "impossible date"),
    ]
    assert "file sales_sheets/2026-W48_R017.xlsx, sheet 本周, row 5, column visit_date: impossible date " \
           "(value '2026/13/45')" in s.problems
    assert any("sheet '草稿' skipped: no recognisable header row" in p for p in s.problems)
    assert not any("说明" in p for p in s.problems)   # a short instructions sheet is expected


def test_sales_month_day_at_year_boundary_and_readonly_path(raw, dbp):
    sales_xlsx(raw, "2027-W01_R001.xlsx", {"Sheet1": [
        ["拜访日期", "客户名称", "联系人", "备注"],
        ["12/30", "某公司", "甲", "年底"],
        ["1/6", "某公司", "甲", "新年"],
    ]})  # no merged cells: read-only mode
    load_all(raw, dbp, progress=False)
    assert q(dbp, "SELECT visit_date FROM stg_sales_visits ORDER BY _row") == [(dt.date(2026, 12, 30),),
                                                                             (dt.date(2027, 1, 6),)]


def test_new_template_wording_is_a_config_change(raw, dbp):
    sales_xlsx(raw, "2026-W48_R002.xlsx", {"S": [["走访时间点", "客户全称", "对接人"], ["2026-11-24", "甲公司", "张"]]})
    s = load_all(raw, dbp, progress=False)
    assert [f.status for f in s.files] == ["refused"] and s.exit_code == 1
    data = load_config().model_dump()
    data["sales_sheets"]["aliases"].update({"走访时间点": "visit_date", "客户全称": "customer_name",
                                            "对接人": "contact_name"})
    s = load_all(raw, dbp, progress=False, config=SourcesConfig.model_validate(data))
    assert [f.status for f in s.files] == ["loaded"]
    assert q(dbp, "SELECT visit_date, customer_name, contact_name FROM stg_sales_visits") == [
        (dt.date(2026, 11, 24), "甲公司", "张")]


def test_a_header_without_the_customer_column_refuses_the_file(raw, dbp):
    # every other column is known, so the header row is found; without the customer column the rows would
    # all load as nameless junk records: the file is refused, naming the sheet, the row and the wording
    sales_xlsx(raw, "2026-W48_R003.xlsx", {"周一": [["客户信息登记表"],
                                                  ["填报日期", "拜访日期", "客户全称", "联系人", "联系电话"],
                                                  ["2026-11-23", "2026-11-23", "甲公司", "张", "13800138000"]]},
               merges={"周一": ["A1:E1"]})
    s = load_all(raw, dbp, progress=False)
    assert [f.status for f in s.files] == ["refused"] and s.exit_code == 1
    msg = s.files[0].message
    assert "sheet '周一', row 2: the header has no customer-name column (not recognised: 客户全称)" in msg
    assert "'客户全称: customer_name'" in msg


def test_amount_shortcut_gives_the_cleaned_value():
    from crmlib.sources import stg
    con = duckdb.connect()
    slow = "TRY_CAST(replace(replace(replace(replace(trim(x), ',', ''), '¥', ''), '￥', ''), ' ', '') AS DOUBLE)"
    for v in ["1200", "1,200", " 12 ", "¥120", "￥ 1 200", "1 200", "-5", "+7", "1e3", "1_000", "12,", "inf",
              ".5", "5.", "\t5", "abc", "", None]:
        assert con.execute(f"SELECT {stg._num('x')} IS NOT DISTINCT FROM {slow} FROM (SELECT ?::VARCHAR AS x)",
                           [v]).fetchone()[0], v


def test_consecutive_malformed_lines_keep_line_numbers(raw, dbp):
    orders_csv(raw, "orders.csv", [
        "SO1,1,2026-11-02,E1,甲公司,X1,2,1000,800,0,R01",   # line 2
        "SO2,1,2",                                          # 3: too few fields
        "SO3,1,2026-11-02,E1,甲公司,X1,2,1000,800,0,R01,x",  # 4: too many
        "SO4,1,2026-11-02,E1,甲公司,X1,2,1000,800,0,R01",   # 5
        "SO5,1",                                            # 6
        "SO6,1,2026-11-02,E1,甲公司,X1,2,1000,800,0,R01",   # 7
        "SO7",                                              # 8
        "SO8",                                              # 9
        "SO9",                                              # 10
        "SO10,1,2026-11-02,E1,甲公司,X1,2,1000,800,0,R01",  # 11
        "SO1,1,2026-11-03,E1,甲公司,X1,5,1000,800,0,R01",   # 12: a second version of SO1/1 in the same file
    ])
    load_all(raw, dbp, progress=False)
    assert q(dbp, "SELECT order_id, _row FROM raw_orders ORDER BY _row") == [
        ("SO1", 2), ("SO4", 5), ("SO6", 7), ("SO10", 11), ("SO1", 12)]
    assert [r[0] for r in q(dbp, "SELECT _row FROM load_rejects WHERE step = 'read' ORDER BY 1")] == [3, 4, 6, 8, 9, 10]
    assert q(dbp, "SELECT order_id, qty, _row FROM stg_orders ORDER BY _row") == [
        ("SO4", 2, 5), ("SO6", 2, 7), ("SO10", 2, 11), ("SO1", 5, 12)]   # the later row of SO1/1 wins


def test_line_numbers_of_a_file_read_in_parallel(raw, dbp):
    """A file several of DuckDB's read buffers long (read by both threads at once): every row's _row is
    its line number, also after malformed lines far apart, and a second file of the run numbers from 2."""
    n = 1_200_000  # ≈ 55 MB: more than one 32 MB CSV buffer
    (raw / "erp").mkdir()
    path = raw / "erp" / "orders.csv"
    con = duckdb.connect()
    # order_id carries its own line number (header = line 1); lines 300,001 and 1,000,001 are malformed
    con.execute(f"""COPY (SELECT CASE WHEN i IN (300000, 1000000) THEN 'SO' || (i + 1) || ',1'
                                     ELSE 'SO' || (i + 1) || ',1,2026-11-02,E1,某公司,X1,2,1000,800,0,R01' END AS line
                         FROM range(1, {n}) t(i))
                   TO '{path}' (HEADER false, QUOTE '', DELIMITER '\t')""")
    con.close()
    text = path.read_bytes()
    path.write_bytes(b"order_id,line_no,order_date,erp_customer_id,customer_name,product,qty,amount,cost,"
                     b"returned_amount,rep_id\n" + text)
    orders_csv(raw, "orders_2026-W48.csv", ["SO9,1,2026-11-02,E1,甲公司,X1,2,1000,800,0,R01"])
    load_all(raw, dbp, progress=False)
    assert q(dbp, """SELECT count(*), count(*) FILTER (WHERE _row <> CAST(substr(order_id, 3) AS BIGINT))
                     FROM raw_orders WHERE _source_file = 'erp/orders.csv'""") == [(n - 3, 0)]
    assert q(dbp, "SELECT _row FROM load_rejects WHERE step = 'read' ORDER BY 1") == [(300_001,), (1_000_001,)]
    assert q(dbp, "SELECT _row FROM raw_orders WHERE _source_file = 'erp/orders_2026-W48.csv'") == [(2,)]
