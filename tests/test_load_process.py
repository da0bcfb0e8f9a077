"""Real processes: a load killed midway changes nothing; a second load waits, then gives up clearly."""
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from test_load_fixtures import account, accounts_csv, snapshot

from crmlib.load import PAUSE_ENV, load_all


def start_load(raw, dbp, pause: float | None, *extra):
    env = dict(os.environ)
    if pause is not None:
        env[PAUSE_ENV] = str(pause)
    return subprocess.Popen(
        [sys.executable, "-m", "crmlib.cli", "load", "--raw", str(raw), "--db", str(dbp), "--no-progress", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def wait_for_pause(proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "pausing" in line:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"load never reached its pause point: {proc.stderr.read()}")


def big_orders(path, n):
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'SO' || lpad(i::VARCHAR, 8, '0') AS order_id, 1 AS line_no,
                         strftime(DATE '2024-01-01' + (i % 900)::INTEGER, '%Y-%m-%d') AS order_date,
                         'E' || (i % 5000) AS erp_customer_id, '某某科技有限公司' || (i % 5000) AS customer_name,
                         'X1' AS product, 1 + i % 3 AS qty, (i % 997) * 10.5 AS amount, (i % 997) * 8 AS cost,
                         0 AS returned_amount, 'R' || (i % 50) AS rep_id
                  FROM range({n}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")
    con.close()


@pytest.fixture
def loaded_once(tmp_path):
    raw, dbp = tmp_path / "raw", tmp_path / "db" / "crm.duckdb"
    accounts_csv(raw, "accounts.csv", [account("A001", "北京工行", "2026-11-01")])
    load_all(raw, dbp, progress=False)
    return raw, dbp


def test_sigkill_midway_leaves_database_unchanged(loaded_once):
    raw, dbp = loaded_once
    before = snapshot(dbp)
    big_orders(raw / "erp" / "orders.csv", 150_000)
    big_orders(raw / "erp" / "orders_2026-W48.csv", 1_000)
    accounts_csv(raw, "accounts_2026-W48.csv", [account("A002", "浙江建行", "2026-11-20")])
    proc = start_load(raw, dbp, pause=60)
    wait_for_pause(proc)          # 150,000 order rows are written inside the open transaction
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(dbp) == before
    left = list((dbp.parent / ".load-tmp").glob(f"crm-load-{proc.pid}-*"))
    assert len(left) == 1     # the killed load could not clean up its scratch folder ...
    # and the next load does the whole job
    s = load_all(raw, dbp, progress=False)
    assert s.exit_code == 0
    assert not left[0].exists() and not list((dbp.parent / ".load-tmp").iterdir())  # ... the next one does
    con = duckdb.connect(str(dbp), read_only=True)
    assert con.execute("SELECT count(*) FROM stg_orders").fetchone() == (150_000,)
    assert con.execute("SELECT count(*) FROM stg_crm_accounts").fetchone() == (2,)
    con.close()


def test_second_load_waits_then_exits_with_a_clear_message(loaded_once):
    raw, dbp = loaded_once
    accounts_csv(raw, "accounts_2026-W48.csv", [account("A002", "浙江建行", "2026-11-20")])
    first = start_load(raw, dbp, pause=30)
    try:
        wait_for_pause(first)
        t0 = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "crmlib.cli", "load", "--raw", str(raw), "--db", str(dbp), "--no-progress",
             "--wait", "1"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 3
        assert "another crm process is writing to the database (waited 1 s)" in second.stderr
        assert "Traceback" not in second.stderr
        assert time.monotonic() - t0 >= 1.0
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
