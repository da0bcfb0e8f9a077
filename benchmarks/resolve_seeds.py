"""Does the review queue stay put when the matching model is trained again? Resolve copies of one database with
several Splink seeds (each trains: the seed is part of the model's key), score each against the demo truth and
compare the review queues pair by pair.

    .venv/bin/python benchmarks/resolve_seeds.py <crm.duckdb> <truth dir> <work dir> [seed ...]   # default 42 43 44
    PYTHONPATH=<other checkout> .venv/bin/python benchmarks/resolve_seeds.py ...                   # the code before

The seed only moves Splink's random sample of pairs (u of the levels not counted exactly); EM samples by hash,
the prior comes from fixed rules. Results: benchmarks/resolve_scale100.md.
"""
import itertools
import shutil
import sys
import time
from pathlib import Path

import duckdb

from crmlib import master

db, truth, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
seeds = [int(s) for s in sys.argv[4:]] or [42, 43, 44]
work.mkdir(parents=True, exist_ok=True)
queues = {}
for seed in seeds:
    copy = work / f"seed{seed}.duckdb"
    shutil.copy(db, copy)
    params = master.load_master_params().model_copy(update={"seed": seed})
    t = time.perf_counter()
    s = master.resolve_db(copy, params, progress=False, retrain=True)
    seconds = time.perf_counter() - t
    con = duckdb.connect(str(copy), read_only=True)
    ev = master.evaluate(con, truth)
    reasons = dict(con.execute("SELECT reason, count(*) FROM match_review_queue GROUP BY 1 ORDER BY 1").fetchall())
    queues[seed] = set(con.execute("SELECT record_id_l, record_id_r FROM match_review_queue").fetchall())
    weights = con.execute("""SELECT comparison || gamma, round(weight, 2) FROM customer_match_model
                             WHERE comparison IN ('name', 'uscc', 'phone') AND gamma > 0 ORDER BY 1""").fetchall()
    con.close()
    print(f"seed {seed}: precision {ev['precision']:.6f} recall {ev['recall']:.6f} "
          f"heads merged {ev['heads_merged_with_branches']} queue {s.review_queue} {reasons} {seconds:.0f} s",
          flush=True)
    print("   weights", " ".join(f"{k}={w}" for k, w in weights), flush=True)
for a, b in itertools.combinations(seeds, 2):
    print(f"queues of seeds {a} and {b}: {len(queues[a] & queues[b])} pairs in both, "
          f"{len(queues[a] ^ queues[b])} in one only")
