"""The audit over a hand-built DuckDB (contract-shaped tables), the fix list .xlsx and the CLI."""
from __future__ import annotations

import csv
import datetime as dt
import shutil
import subprocess

import duckdb
import pytest

from crmlib import quality
from crmlib.quality import checks

# phone and credit-code checks use the name and credit-code modules (written in parallel)
pytest.importorskip("crmlib.names")
pytest.importorskip("crmlib.uscc")

VALID = "91440300708461136T"       # real-format code with a correct check character
BAD_CHECK = "91440300708461136A"   # same code, wrong check character
VALID2 = "91350100M000100Y43"
AS_OF = dt.date(2024, 3, 10)

RECORDS = [
    # record_id, source, source_key, name_raw, uscc, phone, contact, province, city, industry, rep, date, file, row
    ("crm:A1", "crm", "A1", "中国工商银行北京分行", VALID2, "010-66106114", "张三", "北京", "北京市", "金融", "R1",
     "2023-01-05", "crm/accounts.csv", 2),
    ("crm:A2", "crm", "A2", "华为技术有限公司", BAD_CHECK, "13812345678", "李四", "广东省", "深圳市", "制造业", "R2",
     "2023-02-01", "crm/accounts.csv", 3),
    ("crm:A3", "crm", "A3", "测试", None, None, None, None, None, None, "R2", "2023-03-01", "crm/accounts.csv", 4),
    ("crm:A4", "crm", "A4", "华为技术有限公司", VALID, "0755-28780808", "王五", "广东省", "广州市", "制造业", "R2",
     "2024-03-08", "crm/accounts_2024-W10.csv", 2),
    ("erp:E1", "erp", "E1", "华为技术有限公司", VALID, "0755-28780808", None, "广东省", "深圳市", None, None,
     "2024-01-01", "erp/customers.csv", 2),
    ("sales:2024-W10_R2.xlsx|Sheet1|3", "sales", "2024-W10_R2.xlsx|Sheet1|3", "华为技术有限公司", None, "12345",
     "李四", "广东", "深圳", "制造业", "R2", "2024-03-05", "sales_sheets/2024-W10_R2.xlsx", 3),
    ("sales:2024-W10_R1.xlsx|Sheet1|2", "sales", "2024-W10_R1.xlsx|Sheet1|2", "中国工商银行北京分行", None,
     "13900001111", "张三", "北京", "北京", "金融", "R1", "2024-03-04", "sales_sheets/2024-W10_R1.xlsx", 2),
]
XREF = {"crm:A1": "C000001", "crm:A2": "C000002", "crm:A4": "C000002", "erp:E1": "C000002",
        "sales:2024-W10_R2.xlsx|Sheet1|3": "C000002", "sales:2024-W10_R1.xlsx|Sheet1|2": "C000001"}


def build_db(path):
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE customer_records (record_id VARCHAR, source VARCHAR, source_key VARCHAR,
        name_raw VARCHAR, uscc VARCHAR, phone VARCHAR, contact_name VARCHAR, email VARCHAR, province VARCHAR,
        city VARCHAR, address VARCHAR, industry VARCHAR, rep_id VARCHAR, record_date DATE,
        _source_file VARCHAR, _row BIGINT)""")
    for r in RECORDS:
        con.execute("INSERT INTO customer_records VALUES (?,?,?,?,?,?,?,NULL,?,?,NULL,?,?,?,?,?)", list(r))
    con.execute("CREATE TABLE customer_xref (record_id VARCHAR, customer_id VARCHAR, match_probability DOUBLE)")
    for r in RECORDS:
        con.execute("INSERT INTO customer_xref VALUES (?, ?, 1.0)", [r[0], XREF.get(r[0])])
    con.execute("""CREATE TABLE customer_master AS SELECT * FROM (VALUES
        ('C000001', '中国工商银行北京分行', '91350100M000100Y43', '金融', '华北', '北京', '北京市', 'R1', 2),
        ('C000002', '华为技术有限公司', '91440300708461136T', '制造业', '华南', '广东省', '深圳市', 'R2', 4))
        t(customer_id, name, uscc, industry, region, province, city, owner_rep_id, n_records)""")
    con.execute("""CREATE TABLE stg_reps AS SELECT * FROM (VALUES
        ('R1', '赵一', '华北', DATE '2020-01-01', NULL::DATE), ('R2', '钱二', '华南', DATE '2020-01-01', NULL::DATE))
        t(rep_id, rep_name, region, hired_at, left_at)""")
    con.execute("""CREATE TABLE stg_sales_visits AS SELECT * FROM (VALUES
        ('2024-W10_R2.xlsx|Sheet1|3', 'R2', DATE '2024-03-05', DATE '2024-03-05', -5.0),
        ('2024-W10_R1.xlsx|Sheet1|2', 'R1', DATE '2024-03-04', DATE '2024-03-08', 10.0))
        t(record_key, rep_id, visit_date, report_date, est_amount)""")
    con.execute("""CREATE TABLE load_rejects AS SELECT * FROM (VALUES
        ('sales_sheets/2024-W10_R1.xlsx', 'Sheet1', 9, 'customer_name', '', '客户名称为空，整行拒收'))
        t(_source_file, _sheet, _row, "column", "value", reason)""")
    con.close()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "crm.duckdb"
    build_db(path)
    return path


def test_credit_code_with_wrong_check_character_is_flagged_naming_the_column(db):
    from crmlib.uscc import uscc_is_valid
    assert uscc_is_valid(VALID) and uscc_is_valid(VALID2) and not uscc_is_valid(BAD_CHECK)
    assert checks.uscc_problem(BAD_CHECK) == "uscc_bad_check"
    assert checks.uscc_problem("9144030070846113") == "uscc_bad_format"
    con = duckdb.connect(str(db), read_only=True)
    a = quality.run_audit(con, AS_OF, quality.load_params())
    con.close()
    hit = a.issues[(a.issues["record_id"] == "crm:A2") & (a.issues["kind"] == "uscc_bad_check")]
    assert len(hit) == 1
    assert hit["field"].iloc[0] == "uscc" and "列 uscc" in hit["reason"].iloc[0]
    assert hit["value"].iloc[0] == BAD_CHECK


def test_audit_headline_and_breakdowns(db):
    con = duckdb.connect(str(db), read_only=True)
    p = quality.load_params()
    a = quality.run_audit(con, AS_OF, p)
    kinds = {(r, k) for r, k in zip(a.issues["record_id"], a.issues["kind"], strict=True)}
    assert ("crm:A2", "uscc_bad_check") in kinds
    assert ("crm:A3", "junk_name") in kinds
    assert ("crm:A4", "duplicate_record") in kinds          # A2 is older and as complete: A2 kept
    assert ("crm:A4", "wrong_city") in kinds                # 广州 against 深圳 ×3
    assert ("sales:2024-W10_R2.xlsx|Sheet1|3", "wrong_phone") in kinds
    assert ("sales:2024-W10_R2.xlsx|Sheet1|3", "negative_amount") in kinds
    assert not a.records.set_index("record_id").loc[["crm:A1", "erp:E1", "sales:2024-W10_R1.xlsx|Sheet1|2"],
                                                    "erroneous"].any()
    # CRM: A2, A3, A4 wrong of 4 records; customers C1 (clean) and C2 (wrong) -> 1 of 2
    h = quality.headline(a, "crm")
    assert (h["n_records"], h["n_records_erroneous"], h["n_customers"], h["n_customers_erroneous"]) == (4, 3, 2, 1)
    assert h["record_error_rate"] == 0.75 and h["customer_error_rate"] == 0.5
    h = quality.headline(a, None)
    assert (h["n_records"], h["n_records_erroneous"]) == (7, 4)
    by_region = quality.breakdown(a, "region", "crm").set_index("region")
    # the junk record A3 has no customer: it falls back to its rep's region (华南)
    assert by_region.loc["华南", "n_records"] == 3 and by_region.loc["华南", "n_records_erroneous"] == 3
    assert by_region.loc["华北", "record_error_rate"] == 0.0
    # as of a week earlier, A4 (created 2024-03-08) and the sales rows did not exist yet
    b = quality.run_audit(con, AS_OF - dt.timedelta(days=7), p)
    assert quality.headline(b, "crm")["n_records"] == 3
    m = quality.quality_weekly_metrics(con, AS_OF, p)
    con.close()
    assert m["quality_customer_error_rate"] == 0.5 and m["quality_record_error_rate"] == 0.75
    assert m["quality_rejects_this_week"] == 1
    # week of 2024-03-04: R1 sent on 03-08 only, R2 on 03-05 only -> both miss working days
    assert m["quality_reps_not_sending_daily"] == 2


def test_records_at_an_earlier_date_recount_duplicates_and_rejects():
    """records_at on a hand-built audit: a duplicate counts only when the record kept instead existed too;
    a reject only from the week its file came in; a record's own problem at any date it existed."""
    import pandas as pd

    from crmlib.quality.audit import Audit, records_at

    d = dt.date
    rec = pd.DataFrame([
        # X is a duplicate today only because Y (more complete, kept) came on 03-08
        ("crm:X", "crm", "C1", d(2024, 1, 1), 1.0), ("crm:Y", "crm", "C1", d(2024, 3, 8), 0.0),
        # P kept, Q and R duplicates; R came on 03-09
        ("crm:P", "crm", "C2", d(2024, 1, 1), 2.0), ("crm:Q", "crm", "C2", d(2024, 2, 1), 3.0),
        ("crm:R", "crm", "C2", None, 4.0),
        ("crm:Z", "crm", "C3", d(2023, 5, 1), 5.0),
    ], columns=["record_id", "source", "customer_id", "exists_from", "dup_order"])
    rec.loc[4, "exists_from"] = d(2024, 3, 9)
    issues = pd.DataFrame([
        ("crm:X", "duplicate_record", None), ("crm:Q", "duplicate_record", None),
        ("crm:R", "duplicate_record", None), ("crm:Z", "wrong_phone", None),
        ("crm:P", "load_reject", d(2024, 3, 4)),     # file of ISO week 2024-W10 (ends 03-10)
    ], columns=["record_id", "kind", "since"])
    rec["erroneous"] = rec["record_id"].isin(issues["record_id"])
    a = Audit(d(2024, 3, 10), rec, issues, None, None, None, None, None)
    err = lambda day: sorted(records_at(a, day).query("erroneous")["record_id"])  # noqa: E731
    assert err(d(2024, 3, 3)) == ["crm:Q", "crm:Z"]              # X, P, Q, Z existed; X kept then
    assert err(d(2024, 3, 4)) == ["crm:P", "crm:Q", "crm:Z"]     # P's reject counts from its week
    assert err(d(2024, 3, 8)) == ["crm:P", "crm:Q", "crm:X", "crm:Z"]  # Y kept from 03-08
    assert err(d(2024, 3, 10)) == ["crm:P", "crm:Q", "crm:R", "crm:X", "crm:Z"]
    h = quality.headline(a, "crm", at=d(2024, 3, 3))
    assert (h["n_records"], h["n_records_erroneous"], h["n_customers"], h["n_customers_erroneous"]) == (4, 2, 3, 2)


def test_fixlist_xlsx_reads_back_with_chinese(db, tmp_path):
    from openpyxl import load_workbook

    con = duckdb.connect(str(db), read_only=True)
    p = quality.load_params()
    a = quality.run_audit(con, AS_OF, p)
    con.close()
    fix = quality.build_fixlist(a, p)
    out = quality.write_fixlist(fix, tmp_path / "修正清单.xlsx")
    ws = load_workbook(out).active
    header = [c.value for c in ws[1]]
    assert header[:3] == ["优先级", "来源", "文件"] and "建议主客户名称" in header
    assert ws["A1"].font.bold and ws.freeze_panes == "B2"
    assert ws.column_dimensions["H"].width == 52
    rows = [dict(zip(header, [c.value for c in r], strict=True)) for r in ws.iter_rows(min_row=2)]
    # the junk CRM record ranks first (highest weight), the whole-row reject is listed by file and row
    assert rows[0]["记录键"] == "A3" and rows[0]["问题类型"] == "junk_name"
    bad = next(r for r in rows if r["问题类型"] == "uscc_bad_check")
    assert bad["当前值"] == BAD_CHECK and bad["建议值"] == VALID
    assert bad["建议主客户编号"] == "C000002" and bad["建议主客户名称"] == "华为技术有限公司"
    assert bad["字段"] == "统一社会信用代码 (uscc)" and bad["文件"] == "crm/accounts.csv" and bad["行"] == 3
    rej = next(r for r in rows if r["问题类型"] == "load_reject")
    assert rej["文件"] == "sales_sheets/2024-W10_R1.xlsx" and rej["行"] == 9 and "整行拒收" in rej["原因"]
    assert len({r["优先级"] for r in rows}) == len({(r["文件"], r["行"]) for r in rows})


@pytest.mark.skipif(not (shutil.which("soffice") or shutil.which("libreoffice")), reason="LibreOffice not installed")
def test_fixlist_opens_in_libreoffice(db, tmp_path):
    con = duckdb.connect(str(db), read_only=True)
    p = quality.load_params()
    fix = quality.build_fixlist(quality.run_audit(con, AS_OF, p), p)
    con.close()
    xlsx = quality.write_fixlist(fix, tmp_path / "fixlist.xlsx")
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    # UTF-8 CSV filter options: separator 44 (,), quote 34 ("), charset 76 (UTF-8)
    subprocess.run([exe, "--headless", f"-env:UserInstallation=file://{tmp_path}/lo-profile", "--convert-to",
                    "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(tmp_path), str(xlsx)],
                   check=True, capture_output=True, timeout=180)
    with open(tmp_path / "fixlist.csv", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["优先级", "来源", "文件"]
    assert any("华为技术有限公司" in cell for r in rows for cell in r)
    assert any("统一社会信用代码校验位错误" in cell for r in rows for cell in r)


def test_cli_writes_the_fixlist(db, tmp_path, capsys):
    from crmlib.cli import main
    out = tmp_path / "fix.xlsx"
    assert main(["quality", "--db", str(db), "--out", str(out), "--as-of", "2024-03-10"]) == 0
    text = capsys.readouterr().out
    assert "客户错误率 50.0% (1/2)" in text and "记录错误率 75.0% (3/4)" in text
    assert out.exists()
    assert main(["quality", "--db", str(db), "--as-of", "2024-13-01"]) == 2
    assert "not a date" in capsys.readouterr().err


def test_a_database_without_load_rejects_is_audited(db, tmp_path, capsys):
    # a clean load leaves load_rejects empty: the audit must not stumble on it (it once selected no columns)
    from crmlib.cli import main
    from crmlib.quality.audit import read_rejects
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM load_rejects")
    assert list(read_rejects(con, AS_OF).columns) == ["_source_file", "_sheet", "_row", "column", "value",
                                                      "reason", "kind", "file_week_end", "record_id"]
    con.close()
    assert main(["quality", "--db", str(db), "--out", str(tmp_path / "fix.xlsx"), "--as-of", "2024-03-10"]) == 0
    # the CRM figures do not involve the sales sheet's rejected row: the same as with it
    assert "客户错误率 50.0% (1/2)" in capsys.readouterr().out


def test_phone_validity():
    assert checks.phone_problem("13812345678") is None
    assert checks.phone_problem("+86 138 1234 5678") is None
    assert checks.phone_problem("010-66106114") is None
    assert checks.phone_problem("0571-8888 6666") is None
    assert checks.phone_problem("400-810-8888") is None
    assert checks.phone_problem(None) is None
    assert checks.phone_problem("66106114") == "wrong_phone"      # landline without area code
    assert checks.phone_problem("1381234567") == "wrong_phone"    # 10 digits
    assert checks.phone_problem("12812345678") == "wrong_phone"   # 12x is no mobile prefix


def test_name_typo_against_the_majority_canonical_name():
    import pandas as pd
    r = pd.DataFrame({
        "record_id": ["crm:A1", "erp:E1", "sales:s1", "crm:A2"], "source": ["crm", "erp", "sales", "crm"],
        "source_key": ["A1", "E1", "s1", "A2"], "customer_id": ["C1"] * 4,
        # the short form and the swapped legal form are the same name under the naming rule; 化为 is a typo
        "name_raw": ["华为技术有限公司", "华为技术股份有限公司", "华为技术", "化为技术有限公司"]})
    # the master took its name from the typo'd CRM record: the majority still wins
    master = pd.DataFrame({"customer_id": ["C1"], "name": ["化为技术有限公司"]})
    out = checks.check_names(r, master, ["crm", "erp"])
    assert out[["record_id", "kind", "value"]].values.tolist() == [["crm:A2", "name_typo", "化为技术有限公司"]]


def test_suffix_typos_and_unmatched_typo_records():
    import pandas as pd
    assert checks.suffix_typo("南宁宇盛电脑有限工司") and checks.suffix_typo("瑞远机械制造有很公司")
    assert checks.suffix_typo("越智能源科技股份友限公司") and checks.suffix_typo("河北太学")
    # real endings one character away from a legal form are not typos
    for ok in ("长春银源系统集成有限公司", "某某科技公司", "国家税务总局", "兰州大学", "宇盛电脑股份公司"):
        assert not checks.suffix_typo(ok), ok
    # a typo kept this call from matching: its name is one character off a customer with several records
    r = pd.DataFrame({
        "record_id": ["crm:A1", "erp:E1", "callcenter:K1"], "source": ["crm", "erp", "callcenter"],
        "source_key": ["A1", "E1", "K1"], "customer_id": ["C1", "C1", "C9"],
        "name_raw": ["苏州启川计算机系统有限公司", "苏州启川计算机系统有限公司", "苏州启川计算机糸统有限公司"]})
    master = pd.DataFrame({"customer_id": ["C1", "C9"], "name": ["苏州启川计算机系统有限公司", "苏州启川计算机糸统有限公司"]})
    out = checks.check_names(r, master, ["crm", "erp", "callcenter"])
    assert out[["record_id", "suggested", "suggested_customer_id"]].values.tolist() == [
        ["callcenter:K1", "苏州启川计算机系统有限公司", "C1"]]
