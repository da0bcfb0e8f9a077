"""Benchmark `crm demo-data`: median wall and CPU time of N fresh runs into a temp folder.

Usage: .venv/bin/python benchmarks/demo_generate.py [--scale 1] [--runs 3] [--seed 42]
Each run is a separate process (`crm demo-data --out <tmp>/raw --truth <tmp>/truth ...`), so imports count.
CPU time includes the worker processes that write the xlsx files.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(scale: float, seed: int) -> tuple[float, float, int, dict]:
    tmp = Path(tempfile.mkdtemp(prefix="demo_bench_"))
    try:
        cmd = [str(ROOT / ".venv" / "bin" / "crm"), "demo-data", "--out", str(tmp / "raw"), "--truth",
               str(tmp / "truth"), "--scale", str(scale), "--seed", str(seed)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        files = [p for p in (tmp / "raw").rglob("*") if p.is_file()]
        sizes = {}
        for p in files:
            k = p.relative_to(tmp / "raw").parts[0]
            sizes[k] = sizes.get(k, 0) + 1
        return wall, cpu, after.ru_maxrss, sizes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    walls, cpus = [], []
    for i in range(a.runs):
        wall, cpu, rss, files = one_run(a.scale, a.seed)
        walls.append(wall)
        cpus.append(cpu)
        print(f"run {i + 1}: wall {wall:.1f}s cpu {cpu:.1f}s peak rss {rss / 1024:.0f} MB files {files}", flush=True)
    load = os.getloadavg()[0]
    print(f"scale {a.scale}: median wall {statistics.median(walls):.1f}s, median cpu {statistics.median(cpus):.1f}s "
          f"({os.cpu_count()} cpus, load average {load:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
