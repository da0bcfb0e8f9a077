"""Acceptance 2: broken inputs are named, refused or rejected, and never cost earlier rows."""
import os
import random

import duckdb
import pytest
from test_load_fixtures import ORDER_COLS, account, accounts_csv, orders_csv, snapshot, write

from crmlib import cli
from crmlib.load import load_all
from crmlib.sources.config import SourcesConfig, load_config


@pytest.fixture
def loaded(tmp_path):
    """A raw folder already loaded once, and the database snapshot after that load."""
    raw, dbp = tmp_path / "raw", tmp_path / "db" / "crm.duckdb"
    accounts_csv(raw, "accounts.csv", [account("A001", "北京工行", "2026-11-01"),
                                        account("A002", "浙江建行", "2026-11-02")])
    orders_csv(raw, "orders.csv", ["SO1,1,2026-11-02,E1,甲公司,X1,2,1000,800,0,R01"])
    assert load_all(raw, dbp, progress=False).exit_code == 0
    return raw, dbp, snapshot(dbp)


def run_cli(raw, dbp, capsys, *extra):
    code = cli.main(["load", "--raw", str(raw), "--db", str(dbp), "--no-progress", *extra])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out, out.err


def unchanged_except(before, after, tables):
    return {t: v for t, v in before.items() if t not in tables} == \
           {t: v for t, v in after.items() if t not in tables and t in before}


@pytest.mark.parametrize("name, content, message", [
    ("sales_sheets/2026-W48_R001.xlsx", os.urandom(2048), "not an Excel .xlsx workbook"),
    ("sales_sheets/2026-W48_R002.xlsx", b"", "file is empty"),
    ("sales_sheets/周报_张三.xlsx", b"PK", "file name is not <YYYY>-W<ww>_<rep_id>.xlsx"),
    ("erp/orders_2026-W48.csv", b"", "file is empty"),
    ("erp/orders_2026-W49.csv", random.Random(4).randbytes(4000), "not a text file in UTF-8 or GBK/GB18030"),
    ("erp/orders_2026-W50.csv", bytes(b % 255 + 1 for b in random.Random(5).randbytes(4000)),  # no NUL bytes
     "not a text file in UTF-8 or GBK/GB18030"),
    ("erp/receipts.csv", "收据号,金额\nR1,5\n".encode(), "header has no column for the key receipt_id"),
    ("erp/receipts_2026-W48.csv", b"receipt_id;amount\nR1;5\n",
     "columns are separated by ';', not by commas"),
    ("erp/receipts_2026-W49.csv", "receipt_id\tamount\nR1\t5\n".encode("utf-16"),
     "a UTF-16 text file (Excel's \"Unicode text\" export), not UTF-8 or GBK CSV"),
    ("sales_sheets/2026-W48_R003.xls", b"\xd0\xcf\x11\xe0", "an Excel .xls workbook; crm load reads .xlsx only"),
])
def test_unreadable_file_is_refused_named_and_retried(loaded, capsys, name, content, message):
    raw, dbp, before = loaded
    (raw / name).parent.mkdir(parents=True, exist_ok=True)
    (raw / name).write_bytes(content)
    accounts_csv(raw, "accounts_2026-W48.csv", [account("A003", "新客户", "2026-11-25")])  # a good file too
    code, out, err = run_cli(raw, dbp, capsys)
    assert code == 1
    assert f"file {name}: {message}" in err or f"file {name}, row 1: {message}" in err
    assert "refused" in err and "tried again next run" in err
    after = snapshot(dbp)  # the database opens; nothing earlier lost; the good file loaded
    assert after["stg_orders"] == before["stg_orders"] and after["raw_orders"] == before["raw_orders"]
    con = duckdb.connect(str(dbp), read_only=True)
    assert con.execute("SELECT account_id FROM stg_crm_accounts ORDER BY 1").fetchall() == [
        ("A001",), ("A002",), ("A003",)]
    assert con.execute("SELECT status FROM load_files WHERE _source_file = ?", [name]).fetchall() == [("refused",)]
    con.close()
    # next run: the refused file is tried again (and refused again), the rest is skipped
    code, out, err = run_cli(raw, dbp, capsys)
    assert code == 1 and f"file {name}" in err and message in err


def test_header_only_csv_loads_nothing_and_says_so(loaded, capsys):
    raw, dbp, before = loaded
    write(raw / "erp" / "orders_2026-W48.csv", ORDER_COLS + "\n")
    code, out, err = run_cli(raw, dbp, capsys)
    assert code == 0
    assert "file erp/orders_2026-W48.csv: no data rows (header only)" in err
    assert snapshot(dbp)["stg_orders"] == before["stg_orders"]


def test_impossible_dates_are_named_by_file_row_column(loaded, capsys):
    raw, dbp, before = loaded
    orders_csv(raw, "orders_2026-W48.csv", ["SO2,1,2026/13/45,E1,甲公司,X1,2,1000,800,0,R01",
                                            "SO3,1,下周,E1,甲公司,X1,2,1000,800,0,R01"])
    code, out, err = run_cli(raw, dbp, capsys)
    assert code == 0   # readable file: rows loaded, bad fields rejected
    assert "file erp/orders_2026-W48.csv, row 2, column order_date: impossible date (value '2026/13/45')" in err
    assert "file erp/orders_2026-W48.csv, row 3, column order_date: unparsable date (value '下周')" in err
    con = duckdb.connect(str(dbp), read_only=True)
    assert con.execute("SELECT order_id, order_date FROM stg_orders ORDER BY 1").fetchall()[1:] == [
        ("SO2", None), ("SO3", None)]
    con.close()


def test_duckdb_failure_mid_file_rolls_back_and_redoes_without_it(loaded, capsys):
    """A file that passes the checks but breaks DuckDB halfway: the run is redone without it."""
    raw, dbp, before = loaded
    # only the first bytes are checked for the encoding; junk follows that makes DuckDB's parser fail
    junk = bytes(b % 255 + 1 for b in random.Random(7).randbytes(20000))
    good = "".join(f"SO{i},1,2026-11-02,E1,甲,X1,2,1,1,0,R01\n" for i in range(2, 3000))  # > 64 KB
    (raw / "erp" / "orders_2026-W48.csv").write_bytes((ORDER_COLS + "\n" + good).encode() + junk)
    accounts_csv(raw, "accounts_2026-W48.csv", [account("A003", "新客户", "2026-11-25")])
    data = load_config().model_dump()
    data.update(encoding_full_check_mb=0.0001, encoding_sample_mb=0.0001)
    s = load_all(raw, dbp, progress=False, config=SourcesConfig.model_validate(data))
    st = {f.file: f.status for f in s.files}
    assert st["crm/accounts_2026-W48.csv"] == "loaded"
    if st["erp/orders_2026-W48.csv"] == "refused":   # DuckDB raised: the redo path
        assert s.exit_code == 1
        assert any(p.startswith("file erp/orders_2026-W48.csv: cannot be read") for p in s.problems)
        assert snapshot(dbp)["raw_orders"] == before["raw_orders"]
    else:                                             # DuckDB rejected the lines instead
        con = duckdb.connect(str(dbp), read_only=True)
        assert con.execute("SELECT count(*) FROM load_rejects WHERE _source_file = 'erp/orders_2026-W48.csv' "
                           "AND step = 'read'").fetchone()[0] > 0
        con.close()


def test_unknown_files_are_ignored_with_a_note(loaded, capsys):
    raw, dbp, before = loaded
    write(raw / "erp" / "invoices.csv", "a,b\n1,2\n")
    write(raw / "erp" / "README.md", "notes")
    code, out, err = run_cli(raw, dbp, capsys)
    assert code == 0
    assert "file erp/invoices.csv: not a file name crm load knows; ignored" in err
    assert "README" not in err
    # a file or folder outside the source folders is named too, with where it should go
    write(raw / "accounts_2026-W49.csv", "a,b\n1,2\n")
    write(raw / "scans" / "x.pdf", "%PDF")
    code, out, err = run_cli(raw, dbp, capsys)
    assert code == 0
    assert "file accounts_2026-W49.csv: not in a source folder; ignored (move it into one of callcenter/, crm/," in err
    assert "folder scans/: not in a source folder; ignored" in err
    assert "\n-  " not in out and "crm_accounts" in out   # the summary table has no row for ignored files
