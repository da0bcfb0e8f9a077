"""What a careless user gets from `crm`: a one-line message naming the file and saying what to do, a
non-zero exit code, no traceback, and nothing overwritten. (Cases found by trying every sub-command with
wrong paths, wrong files and wrong parameter values.)"""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from test_load_fixtures import account, accounts_csv

from crmlib import cli, master
from crmlib.errors import UserError

FIX = Path(__file__).resolve().parent / "fixtures"


def run(capsys, *argv) -> tuple[int, str]:
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def test_unusable_output_path_is_a_message_not_a_traceback(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc, err = run(capsys, "demo-data", "--out", blocker / "raw", "--truth", tmp_path / "t", "--scale", "0.01")
    assert rc == 2
    assert f"{blocker}/raw" in err and "Not a directory" in err and "check the path" in err


def test_a_bug_says_so_and_keeps_the_traceback(tmp_path, capsys, monkeypatch):
    def broken(args):
        raise KeyError("customer_id")

    monkeypatch.setattr(master.cli, "_cmd_resolve", broken)
    monkeypatch.delenv("CRM_DEBUG", raising=False)
    rc, err = run(capsys, "resolve", "--db", tmp_path / "x.duckdb")
    assert rc == 70
    assert "unexpected error (KeyError: 'customer_id')" in err and "This is a bug in crm" in err
    log = Path(err.split("please report it with ")[1].split(" ")[0])
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "KeyError: 'customer_id'" in text and "crm resolve" in text
    log.unlink()


@pytest.mark.parametrize("content, message", [
    ("threads: 0\n", "threads"),
    ("memory_limit: lots\n", "memory_limit"),
    ("name_similarity_levels: [0.9, 0.8]\n", "name_similarity_levels"),
    ("name_similarity_levels: [0.5, 0.7, 0.9]\n", "highest first"),
    ("source_trust: []\n", "source_trust"),
    ("source_trust: [crm, foo]\n", "not foo"),
    ("max_values_per_group: 0\n", "max_values_per_group"),
    ("prior_rules_recall: 0\n", "prior_rules_recall"),
    ("threshold: 1.5\n", "threshold must be between 0 and 1"),
])
def test_master_params_checked_and_the_file_named(tmp_path, capsys, content, message):
    bad = tmp_path / "mine.yaml"
    bad.write_text(content, encoding="utf-8")
    data = tmp_path / "in.csv"
    shutil.copy(FIX / "external_orgs.csv", data)
    rc, err = run(capsys, "dedup", data, "--out", tmp_path / "out.csv", "--params", bad)
    assert rc == 2 and message in err and f"file {bad}" in err
    assert not (tmp_path / "out.csv").exists()


def test_params_file_not_utf8_impossible_date_folder_or_not_yaml(tmp_path, capsys):
    from crmlib.quality.config import load_params as quality_params

    gbk = tmp_path / "gbk.yaml"
    gbk.write_bytes("# 客户主数据\nthreads: 2\n".encode("gbk"))
    with pytest.raises(UserError, match="not UTF-8 text"):
        master.load_master_params(gbk)
    day = tmp_path / "q.yaml"
    day.write_text("holidays: [2026-02-30]\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"q\.yaml: a value cannot be read: .*day is out of range"):
        quality_params(day)
    with pytest.raises(UserError, match="is a folder"):
        master.load_master_params(tmp_path)
    csv = tmp_path / "notes.csv"
    csv.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(UserError) as e:   # read as given: not looked up as params/notes.csv.yaml
        master.load_master_params(csv)
    assert f"file {csv}:" in str(e.value)


def test_weekly_params_take_an_unquoted_date():
    import datetime as dt

    from crmlib.report import NotebookParameters

    assert NotebookParameters.model_validate({"as_of": dt.date(2026, 11, 22)}).as_of == "2026-11-22"


def test_database_that_is_not_duckdb_or_missing(tmp_path, capsys):
    fake = tmp_path / "fake.duckdb"
    fake.write_text("hello", encoding="utf-8")
    rc, err = run(capsys, "resolve", "--db", fake)
    assert rc == 2 and f"file {fake}: not a DuckDB database" in err and "in use" not in err
    rc, err = run(capsys, "resolve", "--db", tmp_path)
    assert rc == 2 and "is a folder, not a database file" in err
    typo = tmp_path / "typo.duckdb"
    rc, err = run(capsys, "resolve", "--db", typo)
    assert rc == 2 and f"file {typo}: database not found" in err
    assert not typo.exists()   # a mistyped --db does not leave an empty database behind


def test_load_with_no_source_files_and_resolve_with_no_records(tmp_path, capsys):
    raw = tmp_path / "raw"
    (raw / "crm").mkdir(parents=True)
    db = tmp_path / "crm.duckdb"
    rc, err = run(capsys, "load", "--raw", raw, "--db", db, "--no-progress")
    assert rc == 2 and f"file {raw}: no source files found" in err
    (raw / "crm" / "notes.txt").write_text("x", encoding="utf-8")
    rc, err = run(capsys, "load", "--raw", raw, "--db", db, "--no-progress")
    assert rc == 2 and "1 other file(s) ignored, e.g. crm/notes.txt" in err
    # a database with source tables but no customer names in them
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE stg_crm_accounts (account_id VARCHAR, account_name VARCHAR)")
    con.close()
    rc, err = run(capsys, "resolve", "--db", db)
    assert rc == 2 and f"file {db}: the loaded sources hold no customer records" in err


def test_demo_data_refuses_impossible_scale_and_seed(tmp_path, capsys):
    for opt, val, message in (("--scale", "nan", "--scale must be a positive number"),
                              ("--scale", "inf", "--scale must be a positive number"),
                              ("--seed", "-1", "--seed must be a whole number")):
        rc, err = run(capsys, "demo-data", "--out", tmp_path / "r", "--truth", tmp_path / "t", opt, val)
        assert rc == 2 and message in err
    assert not (tmp_path / "r").exists()


def test_dedup_will_not_overwrite_its_input(tmp_path, capsys):
    data = tmp_path / "in.csv"
    shutil.copy(FIX / "external_orgs.csv", data)
    before = data.read_bytes()
    rc, err = run(capsys, "dedup", data, "--out", data)
    assert rc == 2 and "--out is the input file" in err
    assert data.read_bytes() == before


def test_decisions_only_appended_to_a_decisions_file(tmp_path):
    other = tmp_path / "customers.csv"
    other.write_text("id,name,city\n1,北京工行,北京\n", encoding="utf-8")
    with pytest.raises(UserError, match="missing column"):
        master.append_decisions([("crm:A1", "erp:E1", "match")], "li", other)
    assert other.read_text(encoding="utf-8") == "id,name,city\n1,北京工行,北京\n"
    # a decisions file saved from Excel in GBK is read, but not appended to in another encoding
    gbk = tmp_path / "decisions.csv"
    gbk.write_bytes(("record_id_l,record_id_r,decision,reviewer,decided_at\n"
                     "crm:A1,erp:E1,match,李明,2026-11-20T10:00:00\n").encode("gbk"))
    assert master.read_decisions(gbk)["reviewer"].tolist() == ["李明"]
    with pytest.raises(UserError, match="not UTF-8"):
        master.append_decisions([("crm:A2", "erp:E2", "no_match")], "li", gbk)
    assert len(master.read_decisions(gbk)) == 1


def test_a_load_note_stays_one_line(tmp_path):
    from test_load_fixtures import ACCOUNT_COLS

    from crmlib.load import load_all

    raw = tmp_path / "raw"
    path = accounts_csv(raw, "accounts.csv", [account("A001", "中国工商银行北京分行", "2026-11-20")])
    text = path.read_text(encoding="utf-8-sig")
    header, rest = text.split("\n", 1)
    assert header == ACCOUNT_COLS
    path.write_text(header + ",account_id\n" + rest.replace("\n", ",X\n", 1), encoding="utf-8-sig")
    s = load_all(raw, tmp_path / "crm.duckdb", progress=False)
    notes = [p for p in s.problems if "repeats" in p]
    assert notes == ["file crm/accounts.csv: column 'account_id' repeats account_id, the first one is kept"]


def test_quality_weights_and_workbook_names_checked(tmp_path, capsys):
    from crmlib.quality.config import QualityParams

    for bad, message in (({"kind_weights": {"bogus_kind": 3}}, "unknown issue kind"),
                         ({"kind_weights": {"junk_name": -1}}, "weights are >= 0"),
                         ({"source_weights": {"foo": 1}}, "unknown source")):
        with pytest.raises(ValueError, match=message):
            QualityParams.model_validate(bad)
    db = tmp_path / "crm.duckdb"
    duckdb.connect(str(db)).close()
    for argv in (["quality", "--db", db, "--out", tmp_path / "fix.csv"],
                 ["review", "export", "--db", db, "--out", tmp_path / "queue.csv"]):
        rc, err = run(capsys, *argv)
        assert rc == 2 and "must end in .xlsx" in err
    rc, err = run(capsys, "review", "export", "--db", db, "--out", tmp_path / "queue.xlsx")
    assert rc == 2 and f"file {db}: the database has no review queue yet" in err
    rc, err = run(capsys, "quality", "--db", db, "--out", tmp_path / "fix.xlsx")
    assert rc == 2 and f"file {db}" in err


def test_lock_in_a_path_is_not_a_lock_and_out_of_memory_is_not_a_bug(tmp_path, capsys):
    fake = tmp_path / "blocks" / "crm.duckdb"
    fake.parent.mkdir()
    fake.write_text("hello", encoding="utf-8")
    rc, err = run(capsys, "resolve", "--db", fake)
    assert rc == 2 and "not a DuckDB database" in err
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("memory_limit: 1KB\n", encoding="utf-8")
    data = tmp_path / "in.csv"
    shutil.copy(FIX / "external_orgs.csv", data)
    rc, err = run(capsys, "dedup", data, "--out", tmp_path / "out.csv", "--params", tiny)
    assert rc == 2 and "DuckDB ran out of memory" in err and "memory_limit" in err
    assert "bug" not in err and len(err.strip().splitlines()) == 1
