"""Where a notebook's time goes: run its code cells in a fresh Python process, timing each cell.

Usage:
    .venv/bin/python benchmarks/notebook_cells.py NOTEBOOK [NOTEBOOK ...] --home PROJECT [-p key=value ...]

Each notebook runs in its own process (as papermill's kernel would), with the parameters cell replaced by
the given ``-p`` values on top of the notebook's defaults. Printed per cell: wall and CPU seconds and the
first line of the cell; the first code cell after the parameters is usually the imports, so its CPU is
the start-up cost every weekly run pays once per notebook. No kernel, no papermill: the numbers leave out
the ~1-2 s of kernel start, and ``display()`` prints text instead of rendering.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, sys, time, ast
nb = json.load(open(sys.argv[1], encoding="utf-8"))
params = json.loads(sys.argv[2])
glb = {"__name__": "__main__"}
os.environ.setdefault("MPLBACKEND", "agg")
import io, contextlib
t_all = time.perf_counter(); c_all = time.process_time()
for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
    src = "".join(cell["source"])
    tags = cell.get("metadata", {}).get("tags", [])
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(src, f"cell{i}", "exec"), glb)
        if "parameters" in tags:
            glb.update(params)
    first = next((ln for ln in src.splitlines() if ln.strip() and not ln.startswith("#")), "")[:70]
    print(f"{time.perf_counter() - t0:7.2f} {time.process_time() - c0:7.2f}  [{i}] {first}", file=sys.stderr)
print(f"{time.perf_counter() - t_all:7.2f} {time.process_time() - c_all:7.2f}  total", file=sys.stderr)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--home", type=Path, required=True, help="project directory (CRM_HOME, cwd)")
    ap.add_argument("-p", action="append", default=[], metavar="KEY=VALUE",
                    help="parameter (value parsed as JSON when it can be, else a string)")
    args = ap.parse_args()
    params = {}
    for kv in args.p:
        key, _, value = kv.partition("=")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    env = dict(os.environ, CRM_HOME=str(args.home.resolve()))
    for nb in args.notebooks:
        print(f"== {nb.name}   wall     CPU (s)", file=sys.stderr)
        subprocess.run([sys.executable, "-c", CHILD, str(nb.resolve()), json.dumps(params)],
                       cwd=args.home, env=env, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
