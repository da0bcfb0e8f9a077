"""Benchmark: `crm resolve` end to end on demo data at a given scale, against plain Splink on raw names.

    .venv/bin/python benchmarks/resolve_scale100.py --scale 100 --work /tmp/bench100

Steps (each in its own process, so its peak RSS is its own; wall time and peak RSS from
``resource.getrusage(RUSAGE_SELF)`` inside the child):
1. ``crm demo-data`` at ``--scale`` (skipped when the work folder already has it; not part of the budget);
2. ``crm load`` into a fresh database (not part of the budget);
3. ``crm resolve`` (the budget: <= 180 s and <= 8 GB on 2 cores) and its accuracy against the demo truth;
4. plain Splink on raw names: the same grouping of identical raw strings, the same blocking rules, the same
   comparisons and training, but no name normalisation (no naming-rule dictionary, no region / branch / legal
   form parsing), no hard rules, clustering at the same threshold; its accuracy against the same truth.
Writes a JSON line per step to stdout and the table to ``--md`` (default benchmarks/resolve_scale100.md is
only rewritten with ``--write-md``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent

CHILD_PRELUDE = """
import json, os, resource, sys, time
load_before = os.getloadavg()
t0 = time.perf_counter()
"""
CHILD_EPILOGUE = """
out["seconds"] = round(time.perf_counter() - t0, 1)
out["loadavg_before"], out["loadavg_after"] = load_before, os.getloadavg()
out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)
print("RESULT " + json.dumps(out, default=str))
"""

RESOLVE = """
from crmlib import master
import duckdb
s = master.resolve_db(DB, progress=False)
out = {"step": "resolve", "records": s.records, "junk": s.junk, "groups": s.groups, "customers": s.customers,
       "pairs_scored": s.pairs_scored, "review_queue": s.review_queue, "phases": s.stats}
t1 = time.perf_counter()
con = duckdb.connect(DB, read_only=True)
out["accuracy"] = master.evaluate(con, TRUTH)
con.close()
out["evaluate_seconds"] = round(time.perf_counter() - t1, 1)
"""

BASELINE = """
import duckdb, numpy as np, pandas as pd
from crmlib import master
params = master.load_master_params()
# PLAIN_MEMORY_LIMIT / PLAIN_THREADS / PLAIN_TEMP_DIR: let the baseline spill where ours fits in 6 GB
params.memory_limit = os.environ.get("PLAIN_MEMORY_LIMIT", params.memory_limit)
params.threads = int(os.environ.get("PLAIN_THREADS", params.threads))
# PLAIN_PREDICT_CHUNKS: Splink scores the same blocked pairs in that many slices (at scale 100 the raw-name
# blocking yields ~690M pairs, more than fit at once in 13 GB)
params.predict_chunks = int(os.environ.get("PLAIN_PREDICT_CHUNKS", 1))
con = duckdb.connect(DB, read_only=True)
recs = con.execute("SELECT * FROM customer_records ORDER BY record_id").df()
con.close()
# plain: the raw string is the name (only surrounding spaces trimmed); blank = junk; no parsing, no hard rules
raw = recs["name_raw"].astype(object).where(recs["name_raw"].notna(), None)
raw = raw.map(lambda s: s.strip() if isinstance(s, str) else s).replace("", None)
for c in ["phone", "uscc", "contact_name", "city", "address"]:
    recs[c] = recs[c].astype(object).where(recs[c].notna(), None)
recs["is_junk"] = raw.isna()
recs["canonical"] = raw
recs["core"] = raw
recs["match_key"] = raw
for c in ["brand", "n_province", "n_city", "n_city_c", "n_district", "branch_level", "branch_name"]:
    recs[c] = None
for c in ["hier", "ambiguous", "bare", "local"]:
    recs[c] = False
recs["cleaned"] = raw
recs["uscc_n"] = recs["uscc"]
recs["phone_n"] = recs["phone"]
recs["contact_n"] = recs["contact_name"]
recs["city_n"] = recs["city"]
recs["address_n"] = recs["address"]
groups = master.build_groups(recs, params, key=raw)
ecn = master.engine._engine_connection(params)
if os.environ.get("PLAIN_TEMP_DIR"):
    ecn.execute(f"SET temp_directory = '{os.environ['PLAIN_TEMP_DIR']}'")
pairs, model = master.score_groups(groups, params, con=ecn, progress=False)
acc = pairs[pairs["match_probability"] >= params.threshold]
from splink import DuckDBAPI
from splink.clustering import cluster_pairwise_predictions_at_threshold
cc = cluster_pairwise_predictions_at_threshold(
    pd.DataFrame({"group_id": groups["group_id"]}), acc[["group_id_l", "group_id_r", "match_probability"]],
    db_api=DuckDBAPI(ecn), node_id_column_name="group_id", edge_id_column_name_left="group_id_l",
    edge_id_column_name_right="group_id_r", threshold_match_probability=params.threshold).as_pandas_dataframe()
ecn.close()
lab = dict(zip(cc["group_id"], cc["cluster_id"]))
live = ~recs["is_junk"]
recs["gkey"] = None
recs.loc[live, "gkey"] = raw[live]
recs = recs.merge(groups[["gkey", "group_id"]], on="gkey", how="left")
recs["customer_id"] = recs["group_id"].map(lab)
truth = pd.read_csv(TRUTH + "/records.csv", dtype=str, keep_default_na=False)
truth["record_id"] = truth["source"] + ":" + truth["source_key"]
truth["true_customer_id"] = truth["true_customer_id"].replace("", None)
cust = pd.read_csv(TRUTH + "/customers.csv", dtype=str, keep_default_na=False)
df = recs[["record_id", "customer_id"]].merge(truth[["record_id", "true_customer_id"]], on="record_id")
acc_s = master.pairwise_scores(df.set_index("record_id")["customer_id"], df.set_index("record_id")["true_customer_id"])
parents = {r.true_customer_id: r.parent_id for r in cust.itertuples() if r.parent_id}
acc_s["heads_merged_with_branches"] = master.heads_merged_with_branches(
    df.set_index("record_id")["customer_id"], df.set_index("record_id")["true_customer_id"], parents)
out = {"step": "plain_splink", "records": len(recs), "groups": len(groups), "pairs_scored": len(pairs),
       "customers": int(recs["customer_id"].nunique()), "accuracy": acc_s}
"""


def run_child(code: str, env_vars: dict) -> dict:
    header = "".join(f"{k} = {v!r}\n" for k, v in env_vars.items())
    src = CHILD_PRELUDE + header + textwrap.dedent(code) + CHILD_EPILOGUE
    p = subprocess.run([PY, "-c", src], cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"child failed ({p.returncode})")
    # DuckDB's progress bar (long queries) writes to stdout without a final newline: find the marker anywhere
    line = [ln for ln in p.stdout.splitlines() if "RESULT {" in ln][-1]
    return json.loads(line[line.index("RESULT {") + len("RESULT "):])


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    return round(time.perf_counter() - t0, 1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=100)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", default=None, help="work folder (default /tmp/crm_bench_scale<scale>)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--plain-chunks", type=int, default=1,
                    help="slices plain Splink scores its blocked pairs in (16 at scale 100: ~690M pairs)")
    ap.add_argument("--write-md", action="store_true", help="rewrite benchmarks/resolve_scale100.md")
    args = ap.parse_args()
    work = Path(args.work or f"/tmp/crm_bench_scale{args.scale:g}")
    raw, truth, db = work / "raw", work / "truth", work / "crm.duckdb"
    work.mkdir(parents=True, exist_ok=True)
    env = {"DB": str(db), "TRUTH": str(truth)}
    os.environ["PLAIN_PREDICT_CHUNKS"] = str(args.plain_chunks)
    crm = [str(Path(PY).parent / "crm")]
    results = {"scale": args.scale, "seed": args.seed, "cpus": os.cpu_count(), "plain_chunks": args.plain_chunks}
    if not (truth / "records.csv").exists():
        results["generate_seconds"] = timed(crm + ["demo-data", "--out", str(raw), "--truth", str(truth),
                                                  "--seed", str(args.seed), "--scale", str(args.scale)])
    if not db.exists():
        results["load_seconds"] = timed(crm + ["load", "--raw", str(raw), "--db", str(db), "--no-progress"])
    results["resolve"] = run_child(RESOLVE, env)
    print(json.dumps(results["resolve"], default=str))
    if not args.skip_baseline:
        results["plain_splink"] = run_child(BASELINE, env)
        print(json.dumps(results["plain_splink"], default=str))
    (work / "bench_results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k not in ("resolve", "plain_splink")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
