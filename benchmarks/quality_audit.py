"""Benchmark the quality audit on a demo: time per audit and recall / precision of a kind against the truth.

Usage: .venv/bin/python benchmarks/quality_audit.py [--scale 1] [--seed 42] [--root DIR] [--kind name_typo]
Builds the demo (generate, load, resolve) into a temp folder unless --root names one built before (raw/,
truth/, crm.duckdb). Then runs the audit for the newest demo date and the 4 weeks before (the weekly run
used to; since the trend restricts one audit, `crmlib.quality.audit.records_at`, it audits only the
newest date), with the on-disk audit cache off: wall and CPU seconds of the first audit (which fills the
per-process caches) and of the other four. Recall per injected kind as `crmlib.quality.truth` measures it;
precision of a kind = share of the records it flags that carry that injected kind.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(root: Path, seed: int, scale: float) -> None:
    from crmlib import demo, load, master
    demo.generate(root / "raw", root / "truth", seed=seed, scale=scale)
    load.load_all(root / "raw", root / "crm.duckdb", progress=False)
    master.resolve_db(root / "crm.duckdb", progress=False)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--root", default=None)
    ap.add_argument("--kind", default="name_typo")
    args = ap.parse_args()
    os.environ["CRM_NO_AUDIT_CACHE"] = "1"
    from crmlib import quality
    from crmlib.db import connect
    from crmlib.quality import truth as qt

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="quality_bench_"))
    if not (root / "crm.duckdb").exists():
        build(root, args.seed, args.scale)
    as_of = dt.date.fromisoformat(json.loads((root / "truth" / "manifest.json").read_text())["as_of_dates"][-1])
    params = quality.load_params()
    con = connect(root / "crm.duckdb", read_only=True)
    walls, cpus = [], []
    for w in range(5):
        t, c = time.perf_counter(), time.process_time()
        audit = quality.run_audit(con, as_of - dt.timedelta(days=7 * w), params)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        if w == 0:
            first = audit
    con.close()
    print(f"audit {root}: first wall {walls[0]:.2f} s, CPU {cpus[0]:.2f} s; "
          f"next 4 wall {sum(walls[1:]):.2f} s, CPU {sum(cpus[1:]):.2f} s (load {os.getloadavg()[0]:.1f})")
    r = qt.recall_by_kind(first, root / "truth")
    print(r[["kind", "n_injected", "n_detected", "recall", "recall_observable", "precision"]].to_string(index=False))
    _, err = qt.read_truth(root / "truth")
    injected = set(err.loc[err["kind"] == args.kind, "record_id"])
    flagged = set(first.issues.loc[first.issues["kind"] == args.kind, "record_id"])
    hit = len(flagged & injected)
    print(f"{args.kind}: {len(flagged)} records flagged, {hit} injected: precision "
          f"{hit / len(flagged) if flagged else float('nan'):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
