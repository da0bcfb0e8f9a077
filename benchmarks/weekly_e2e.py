"""Benchmark `crm weekly` end to end on the default demo: a first run and the next week's run.

Usage:
    .venv/bin/python benchmarks/weekly_e2e.py [--runs 2] [--work DIR] [--source TREE] [--json OUT]

Once per invocation the default demo is generated twice into ``<work>/template``: as of 2026-11-22
(``crm demo-data``) and advanced a week (``crm demo-data --as-of 2026-11-29``). Each repetition then
builds a fresh project (``params/`` and ``notebooks/`` copied from the repository, empty database and
reports) and runs, each as its own process so imports and kernel starts count:

1. ``first``: ``crm weekly --as-of 2026-11-22`` on the empty database (loads everything; no earlier
   report, so the metrics recompute as_of-7 and as_of-28 from the database);
2. ``next``: the raw folder replaced by the demo advanced a week, then ``crm weekly --as-of 2026-11-29``
   (incremental load; last week's report exists, the 4-week comparison is recomputed).

Recorded per run: wall time, CPU time of the process tree (kernels included), the per-step seconds of
``reports/<week>/timings.json`` and the 1-minute load average before and after. The summary gives medians.
``--source TREE`` runs another checkout of crmlib (put first on PYTHONPATH, kernels inherit it), for
before/after comparisons on the same machine state.
"""
from __future__ import annotations

import argparse
import json
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
CRM = ROOT / ".venv" / "bin" / "crm"
WEEKS = [("first", "2026-11-22", "raw_w47"), ("next", "2026-11-29", "raw_w48")]


def run(cmd: list[str], home: Path, env_extra: dict[str, str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` with CRM_HOME=home; returns (wall, CPU of the whole process tree)."""
    env = dict(os.environ, CRM_HOME=str(home), **env_extra)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        subprocess.run(cmd, check=True, cwd=home, env=env, stdout=fh, stderr=fh)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_template(work: Path, env_extra: dict[str, str]) -> Path:
    tpl = work / "template"
    if (tpl / "raw_w48").exists():
        return tpl
    tpl.mkdir(parents=True, exist_ok=True)
    log = work / "template.log"
    for _, as_of, name in WEEKS:
        run([str(CRM), "demo-data", "--out", str(tpl / name), "--truth", str(tpl / f"truth_{name}"),
             "--as-of", as_of], tpl, env_extra, log)
    return tpl


def fresh_project(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    (home / "data" / "curated").mkdir(parents=True)
    (home / "reports").mkdir()
    shutil.copytree(ROOT / "params", home / "params")
    shutil.copytree(ROOT / "notebooks", home / "notebooks")


def use_raw(home: Path, tpl: Path, name: str) -> None:
    for sub, src in (("raw", name), ("demo_truth", f"truth_{name}")):
        shutil.rmtree(home / "data" / sub, ignore_errors=True)
        shutil.copytree(tpl / src, home / "data" / sub)


def iso_week(day: str) -> str:
    import datetime as dt
    y, w, _ = dt.date.fromisoformat(day).isocalendar()
    return f"{y}-W{w:02d}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2, help="repetitions of (first, next)")
    ap.add_argument("--work", help="work folder (default: a new temp folder); the demo template is reused")
    ap.add_argument("--source", help="crmlib source tree to run instead of the installed one")
    ap.add_argument("--json", help="write every run's record here")
    a = ap.parse_args()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="weekly_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    env_extra = {"PYTHONPATH": str(Path(a.source).resolve())} if a.source else {}
    tpl = make_template(work, env_extra)
    home = work / "project"
    records = []
    for rep in range(a.runs):
        fresh_project(home)
        for kind, as_of, raw in WEEKS:
            use_raw(home, tpl, raw)
            load0 = os.getloadavg()[0]
            wall, cpu = run([str(CRM), "weekly", "--as-of", as_of], home, env_extra, work / "weekly.log")
            steps = json.loads((home / "reports" / iso_week(as_of) / "timings.json").read_text())
            rec = {"rep": rep + 1, "kind": kind, "as_of": as_of, "wall": round(wall, 1), "cpu": round(cpu, 1),
                   "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2), "steps": steps}
            records.append(rec)
            print(json.dumps(rec, ensure_ascii=False), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"\n{os.cpu_count()} cpus; source: {a.source or 'installed'}; medians over {a.runs} run(s)")
    for kind, _, _ in WEEKS:
        rs = [r for r in records if r["kind"] == kind]
        names = list(rs[0]["steps"])
        print(f"{kind}: wall {statistics.median(r['wall'] for r in rs):.1f} s, cpu "
              f"{statistics.median(r['cpu'] for r in rs):.1f} s, load "
              f"{statistics.median(r['load_before'] for r in rs):.1f}")
        for n in names:
            print(f"  {n:34s} {statistics.median(r['steps'].get(n, float('nan')) for r in rs):7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
