"""Foundation pieces: parameter validation, the CLI's error handling, the writer lock, masking."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from crmlib import db, params, reportview
from crmlib.errors import LockedError, UserError


class Demo(params.Params):
    lang: str = "zh"
    days: int = 30


def test_params_reject_unknown_keys_naming_the_file(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("lang: en\ndayz: 10\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        params.load(Demo, f)
    assert "x.yaml" in str(err.value) and "dayz" in str(err.value)


def test_params_overrides_win_and_types_are_checked(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("lang: en\ndays: 10\n", encoding="utf-8")
    assert params.load(Demo, f, days=45).days == 45
    f.write_text("days: ten\n", encoding="utf-8")
    with pytest.raises(UserError, match="days"):
        params.load(Demo, f)


def test_bad_yaml_names_the_line(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("lang: en\n  days: [1,\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        params.load(Demo, f)
    assert "x.yaml" in str(err.value) and "row" in str(err.value)


def test_cli_lists_subcommands_and_errors_without_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "crmlib.cli", "--help"], capture_output=True, text=True)
    for name in ("demo-data", "load", "resolve", "dedup", "quality", "plan", "pyramid", "weekly"):
        assert name in out.stdout, name
    bad = subprocess.run([sys.executable, "-m", "crmlib.cli", "weekly", "--params", str(tmp_path / "nope.yaml")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "nope.yaml" in bad.stderr


def test_second_writer_waits_then_gets_a_clear_message(tmp_path):
    path = tmp_path / "crm.duckdb"
    holder = textwrap.dedent(f"""
        import time
        from crmlib import db
        with db.writer({str(path)!r}) as con:
            con.execute("CREATE TABLE t AS SELECT 1 AS x")
            print("locked", flush=True)
            time.sleep(5)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match="another crm process"):
            with db.writer(path, wait_s=0.5):
                pass
    finally:
        proc.wait(timeout=20)
    with db.writer(path) as con:  # free again once the first writer is done
        assert con.execute("SELECT x FROM t").fetchone()[0] == 1


def test_writer_rolls_back_on_error(tmp_path):
    path = tmp_path / "crm.duckdb"
    with db.writer(path) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    with pytest.raises(RuntimeError):
        with db.writer(path) as con:
            con.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("boom")
    con = db.connect(path, read_only=True)
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_masking_hides_phones_and_names():
    assert reportview.mask_phone("13812345678") == "138****5678"
    assert reportview.mask_phone("电话 010-62345678") == "电话 010-****5678"
    assert reportview.mask_name("张伟") == "张*"
    assert reportview.mask_name("欧阳娜娜") == "欧***"
    import pandas as pd

    df = reportview.mask_frame(pd.DataFrame({"contact_name": ["李雷"], "phone": ["13900001111"], "n": [1]}))
    assert df.to_dict("records") == [{"contact_name": "李*", "phone": "139****1111", "n": 1}]
