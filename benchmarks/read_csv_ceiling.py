"""DuckDB alone on one CSV file: the ceiling for `crm load` on this machine.

    .venv/bin/python benchmarks/read_csv_ceiling.py [FILE]   # default: the scale-100 orders file

Twice each, into a fresh database file with 2 threads (then CHECKPOINT): CREATE TABLE AS read_csv with type
auto-detection (one typed copy), the same with all_varchar (one text copy), and a count (parsing only).
Results go to benchmarks/load_scale100.md.
"""
from __future__ import annotations

import os
import sys
import time

import duckdb

SQL = {
    "typed": "CREATE TABLE t AS SELECT * FROM read_csv('{f}')",
    "varchar": "CREATE TABLE t AS SELECT * FROM read_csv('{f}', all_varchar=true)",
    "count": "SELECT count(*) FROM read_csv('{f}', all_varchar=true)",
}


def main() -> int:
    f = sys.argv[1] if len(sys.argv) > 1 else "/tmp/s100/raw/erp/orders.csv"
    n = duckdb.sql(f"SELECT count(*) FROM read_csv('{f}', all_varchar=true)").fetchall()[0][0]
    db = "/tmp/read_csv_ceiling.duckdb"
    for mode, sql in SQL.items():
        for i in range(2):
            if os.path.exists(db):
                os.remove(db)
            con = duckdb.connect(db)
            con.execute("SET threads = 2")
            t, c = time.perf_counter(), time.process_time()
            con.execute(sql.format(f=f)).fetchall()
            con.execute("CHECKPOINT")
            w, cpu = time.perf_counter() - t, time.process_time() - c
            print(f"{mode} {i}: {w:.2f} s wall, {cpu:.1f} CPU-s, {n / w:,.0f} rows/s", flush=True)
            con.close()
    os.remove(db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
