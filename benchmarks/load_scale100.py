"""Benchmark `crm load` against DuckDB's own read_csv on the same files, in the same run.

    .venv/bin/python benchmarks/load_scale100.py --scale 100                # demo data (crm demo-data)
    .venv/bin/python benchmarks/load_scale100.py --synthetic --scale 100    # contract-shaped synthetic files
    .venv/bin/python benchmarks/load_scale100.py --raw data/raw             # an existing raw folder

Per source: rows, seconds and rows/s of `crm load` (hash + read into raw_* + type into stg_*, inside one
transaction, committed), and of the baseline ``CREATE TABLE t AS SELECT * FROM read_csv(<files>)`` into a
fresh database file (type auto-detection; GBK files are given to the baseline as UTF-8 copies made outside
its timing, since DuckDB cannot read GBK). Ratio = loader rows/s ÷ baseline rows/s.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from crmlib import encoding
from crmlib.load import discover, load_all
from crmlib.sources.config import load_config

# rows per source at scale 1 for the synthetic files (scale 100 ≈ 1M customer records, 10M order lines)
SYNTH = {"accounts": 2_000, "contacts": 3_000, "customers": 2_000, "calls": 2_500, "tickets": 1_500,
         "orders": 100_000, "receipts": 30_000}


def synthesize(raw: Path, scale: float) -> None:
    """Contract-shaped CSVs written by DuckDB (fast at any scale); calls re-encoded to GBK."""
    n = {k: int(v * scale) for k, v in SYNTH.items()}
    for d in ("crm", "erp", "callcenter", "service"):
        (raw / d).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")

    def copy(sql, path):
        con.execute(f"COPY ({sql}) TO '{path}' (HEADER, DELIMITER ',')")

    copy(f"""SELECT 'A' || lpad(i::VARCHAR, 8, '0') account_id, '某某省某某市科技有限公司' || i account_name,
             '' uscc, '制造业' industry, '中小企业' scope, '华东' region, '浙江' province, '杭州' city,
             '文一路' || i || '号' address, '0571-' || (80000000 + i) phone, 'R' || (i % 500) owner_rep_id,
             '中' size, (i % 1000)::VARCHAR registered_capital, 'N' listed, '' parent_account_id,
             '2024-01-0' || (1 + i % 9) created_at, '2026-11-' || lpad((1 + i % 28)::VARCHAR, 2, '0') updated_at
             FROM range({n['accounts']}) t(i)""", raw / "crm" / "accounts.csv")
    copy(f"""SELECT 'P' || i contact_id, 'A' || lpad((i % {n['accounts']})::VARCHAR, 8, '0') account_id,
             '张' || i contact_name, '经理' title, '138' || lpad(i::VARCHAR, 8, '0') mobile, '' phone,
             'u' || i || '@example.cn' email, '2026-10-01' updated_at FROM range({n['contacts']}) t(i)""",
         raw / "crm" / "contacts.csv")
    copy(f"""SELECT 'E' || lpad(i::VARCHAR, 7, '0') erp_customer_id, '某某市某某贸易有限公司' || i customer_name,
             '' uscc, '江苏' province, '南京' city, '中山路' || i address, '025-' || (80000000 + i) phone
             FROM range({n['customers']}) t(i)""", raw / "erp" / "customers.csv")
    copy(f"""SELECT 'SO' || lpad((i // 3)::VARCHAR, 9, '0') order_id, i % 3 + 1 line_no,
             strftime(DATE '2024-01-01' + (i % 1000)::INTEGER, '%Y-%m-%d') order_date,
             'E' || lpad((i % {n['customers']})::VARCHAR, 7, '0') erp_customer_id,
             '某某市某某贸易有限公司' || (i % {n['customers']}) customer_name, 'ThinkPad X' || (i % 7) product,
             i % 5 + 1 qty, round((i % 997) * 13.7, 2) amount, round((i % 997) * 10.1, 2) cost,
             CASE WHEN i % 50 = 0 THEN 100.0 ELSE 0 END returned_amount, 'R' || (i % 500) rep_id
             FROM range({n['orders']}) t(i)""", raw / "erp" / "orders.csv")
    copy(f"""SELECT 'RC' || i receipt_id, 'SO' || lpad(i::VARCHAR, 9, '0') order_id,
             'E' || lpad((i % {n['customers']})::VARCHAR, 7, '0') erp_customer_id,
             strftime(DATE '2024-01-01' + (i % 1000)::INTEGER, '%Y-%m-%d') invoice_date,
             strftime(DATE '2024-02-01' + (i % 1000)::INTEGER, '%Y-%m-%d') due_date,
             CASE WHEN i % 4 = 0 THEN '' ELSE strftime(DATE '2024-02-10' + (i % 1000)::INTEGER, '%Y-%m-%d') END paid_date,
             round((i % 997) * 40.1, 2) amount FROM range({n['receipts']}) t(i)""", raw / "erp" / "receipts.csv")
    copy(f"""SELECT 'T' || i ticket_id, '某某市某某贸易有限公司' || (i % 5000) customer_name,
             '139' || lpad(i::VARCHAR, 8, '0') contact_phone, '南京' city, 'ThinkServer' product,
             'SN' || i serial_no, '2026-03-01' opened_at, '2026-03-04' closed_at, '已关闭' status,
             (1 + i % 5)::VARCHAR satisfaction, '南京站' station FROM range({n['tickets']}) t(i)""",
         raw / "service" / "tickets.csv")
    utf8 = raw / "callcenter" / "_calls_utf8.csv"
    copy(f"""SELECT 'CC' || lpad(i::VARCHAR, 9, '0') "工单号",
             strftime(TIMESTAMP '2026-01-01 08:00:00' + to_seconds(i * 37 % 31000000), '%Y-%m-%d %H:%M:%S') "来电时间",
             '报修' "来电类型", '某某市某某贸易有限公司' || (i % 5000) "客户单位", '王' || (i % 100) "来电人",
             '137' || lpad(i::VARCHAR, 8, '0') "来电号码", '打印机' "产品", '卡纸，需上门维修' "摘要", '坐席' || (i % 40) "坐席"
             FROM range({n['calls']}) t(i)""", utf8)
    with open(utf8, encoding="utf-8") as fin, open(raw / "callcenter" / "calls_2026-W47.csv", "wb") as fout:
        while block := fin.read(1 << 22):
            fout.write(block.encode("gbk"))
    utf8.unlink()


def baseline(raw: Path, work: Path) -> dict[str, tuple[int, float]]:
    """Per CSV source: rows and seconds of DuckDB's read_csv into a table of a fresh database file."""
    cfg = load_config()
    tasks, _ = discover(raw, cfg)
    by_source: dict[str, list[Path]] = {}
    for t in tasks:
        if t.source != "sales_sheets":
            by_source.setdefault(t.source, []).append(t.path)
    out = {}
    for source, files in sorted(by_source.items()):
        plain = []
        for f in files:  # DuckDB reads only UTF-8: give it a UTF-8 copy of GBK files (not timed)
            det = encoding.detect(f)
            if det.encoding != "utf-8":
                dst = work / f"base_{f.name}"
                encoding.transcode_to_utf8(f, dst, det.encoding)
                f = dst
            plain.append(str(f))
        dbf = work / f"baseline_{source}.duckdb"
        con = duckdb.connect(str(dbf))
        con.execute("SET enable_progress_bar = false")
        t0 = time.perf_counter()
        n = con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv({plain!r}, union_by_name = true)").fetchone()[0]
        con.execute("CHECKPOINT")
        out[source] = (int(n), time.perf_counter() - t0)
        con.close()
        dbf.unlink()
    return out


def _cpu() -> float:
    """CPU seconds of this process so far (all DuckDB threads included): the machine is shared."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=100)
    ap.add_argument("--raw", help="use this raw folder instead of generating one")
    ap.add_argument("--synthetic", action="store_true", help="synthetic files instead of crm demo-data")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp dir, removed after)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="crm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.raw:
            raw = Path(args.raw)
        else:
            raw = work / "raw"
            t0 = time.perf_counter()
            if args.synthetic:
                synthesize(raw, args.scale)
            else:
                from crmlib import demo
                demo.generate(raw, work / "truth", scale=args.scale)
            print(f"generated {raw} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        dbp = work / "bench.duckdb"
        for old in (dbp, dbp.with_name(dbp.name + ".wal")):  # a database left by an earlier run would skip all
            old.unlink(missing_ok=True)
        c0 = _cpu()
        s = load_all(raw, dbp, progress=False)
        c1 = _cpu()
        base = baseline(raw, work)
        c2 = _cpu()
        print(f"crm load total: {s.seconds:.1f} s wall (incl. hashing and commit), {c1 - c0:.1f} CPU-s; "
              f"exit code {s.exit_code}")
        print(f"read_csv baselines: {sum(b[1] for b in base.values()):.1f} s wall, {c2 - c1:.1f} CPU-s "
              f"(incl. the untimed UTF-8 copies of GBK files)\n")
        print("| source | files | rows | crm load s | crm load rows/s | read_csv s | read_csv rows/s | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        tot = [0, 0.0, 0, 0.0]
        for r in s.per_source():
            rows, secs = r["rows"], r["seconds"]
            b = base.get(r["source"])
            rate = rows / secs if secs else 0
            if b:
                brate = b[0] / b[1]
                tot = [tot[0] + rows, tot[1] + secs, tot[2] + b[0], tot[3] + b[1]]
                print(f"| {r['source']} | {r['read']} | {rows:,} | {secs:.2f} | {rate:,.0f} | {b[1]:.2f} | "
                      f"{brate:,.0f} | {rate / brate:.2f} |")
            else:
                print(f"| {r['source']} | {r['read']} | {rows:,} | {secs:.2f} | {rate:,.0f} | – | – | – |")
        if tot[1]:
            print(f"| all CSV | | {tot[0]:,} | {tot[1]:.2f} | {tot[0] / tot[1]:,.0f} | {tot[3]:.2f} | "
                  f"{tot[2] / tot[3]:,.0f} | {(tot[0] / tot[1]) / (tot[2] / tot[3]):.2f} |")
        again = load_all(raw, dbp, progress=False)
        print(f"\nsecond run: {again.seconds:.1f} s, nothing loaded: {again.nothing_loaded}")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
