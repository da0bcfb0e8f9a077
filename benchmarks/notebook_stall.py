"""A notebook cell that sits out the whole cell timeout (nbclient issue #312): how often, with and without
``crmlib.kernels.SlicedKernelManager``. Results: benchmarks/notebook_stall.md.

    .venv/bin/python benchmarks/notebook_stall.py DB TRUTH_DIR N [--sliced]

Runs ``notebooks/03_segments.ipynb`` with ``interactive=True`` N times, two at a time from threads (as the
weekly run executes notebooks), with a 60 s cell timeout, and prints each run's wall time: a stalled run
takes about 60 s more than the others. DB: a resolved demo database (e.g. `crm demo-data --seed 7 --scale
0.1`, `crm load`, `crm resolve`), TRUTH_DIR: its truth folder.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import papermill as pm

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    db, truth, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sliced = "--sliced" in sys.argv
    kw = {}
    if sliced:
        from crmlib.kernels import SlicedKernelManager
        kw["kernel_manager_class"] = SlicedKernelManager
    os.chdir(REPO)
    params = {"as_of": None, "lang": "zh", "db_path": str(Path(db).resolve()),
              "truth_dir": str(Path(truth).resolve()), "interactive": True}
    out = Path("/tmp/notebook_stall")
    out.mkdir(exist_ok=True)
    times: list = []

    def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(REPO / "notebooks/03_segments.ipynb"), str(out / f"out{i}.ipynb"),
                                parameters=params, kernel_name="crm", progress_bar=False, execution_timeout=60,
                                extra_arguments=["--IPKernelApp.log_level=ERROR"], **kw)
            times.append(round(time.perf_counter() - t0, 1))
        except Exception as exc:
            times.append(f"{type(exc).__name__} after {time.perf_counter() - t0:.1f} s")

    for k in range(0, n, 2):
        threads = [threading.Thread(target=one, args=(k + j,)) for j in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("sliced" if sliced else "plain", times[-2:], flush=True)
    print("all", times)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
