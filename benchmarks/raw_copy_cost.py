"""What a full text copy of a CSV costs DuckDB, by storage layout (benchmarks/load_scale100.md).

    .venv/bin/python benchmarks/raw_copy_cost.py [FILE]     # default: the scale-100 orders file

Twice each, into a fresh database file with 2 threads (then CHECKPOINT): every field as VARCHAR with
DuckDB's default compression, with ``force_compression`` uncompressed / dictionary / fsst / dict_fsst, and
each line as one VARCHAR (``delim='\\x01'``, no quoting). Prints wall, CPU seconds and file size.
"""
from __future__ import annotations

import os
import sys
import time

import duckdb

DB = "/tmp/raw_copy_cost.duckdb"


def run(label: str, sql: str, compression: str | None = None) -> None:
    for i in range(2):
        if os.path.exists(DB):
            os.remove(DB)
        con = duckdb.connect(DB)
        con.execute("SET threads = 2")
        if compression:
            con.execute(f"SET force_compression = '{compression}'")
        t, c = time.perf_counter(), time.process_time()
        con.execute(sql)
        con.execute("CHECKPOINT")
        w, cpu = time.perf_counter() - t, time.process_time() - c
        con.close()
        print(f"{label} {i}: {w:.2f} s wall, {cpu:.1f} CPU-s, {os.path.getsize(DB) / 1e6:,.0f} MB", flush=True)
    os.remove(DB)


def main() -> int:
    f = sys.argv[1] if len(sys.argv) > 1 else "/tmp/s100/raw/erp/orders.csv"
    fields = f"CREATE TABLE t AS SELECT * FROM read_csv('{f}', all_varchar=true)"
    run("fields, default compression", fields)
    for comp in ("uncompressed", "dictionary", "fsst", "dict_fsst"):
        run(f"fields, {comp}", fields, comp)
    run("one column per line", f"CREATE TABLE t AS SELECT * FROM read_csv('{f}', columns={{'line': 'VARCHAR'}}, "
        "delim='\\x01', quote='', escape='', header=true, auto_detect=false)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
