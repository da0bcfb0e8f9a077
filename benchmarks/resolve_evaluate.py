"""Resolve one database again and score it against the demo truth (one process, for before/after runs).

    .venv/bin/python benchmarks/resolve_evaluate.py <crm.duckdb> <truth dir>
    PYTHONPATH=<other checkout> .venv/bin/python benchmarks/resolve_evaluate.py ...   # the code before

A database resolved before keeps its matching model (params/master.yaml model_max_age_days): code changes
retrain it (the model's key includes the code), parameter changes that do not touch training reuse it; the
printed "model" says which.
"""
import sys
import time

import duckdb

from crmlib import master

db, truth = sys.argv[1], sys.argv[2]
t = time.perf_counter()
s = master.resolve_db(db, progress=False)
print('resolve', round(time.perf_counter()-t,1), 's', s.stats.get('ambiguous_groups'), 'ambiguous; review queue', s.review_queue,
      '; model', s.stats.get('model_note'), '; pairs joined by rule', s.stats.get('pairs_by_rule'))
con = duckdb.connect(db, read_only=True)
print(master.evaluate(con, truth))
