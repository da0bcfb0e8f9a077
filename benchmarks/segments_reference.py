"""Clusters vs the demo's value groups, with the reference (KMeans on the hidden latent value, same k).

    .venv/bin/python benchmarks/segments_reference.py <project dir with crm.duckdb and truth/>
"""
import sys
from pathlib import Path

from crmlib import segments as sg
from crmlib.asof import resolve
from crmlib.db import connect

root = Path(sys.argv[1])
con = connect(root / "crm.duckdb", read_only=True)
p = sg.load_params()
h = sg.read_history(con, p.stages, receipts=True)
as_of = resolve(con, None)
feats = sg.cluster_features(sg.customer_facts(h, as_of, p.stages), as_of, p.clusters, h.receipts)
res = sg.fit_clusters(feats, p.clusters)
truth = sg.read_truth_map(con, root / "truth")
print(as_of, res.k, sg.truth_ari(res.labels, truth), sg.latent_reference_ari(res.labels, truth, res.k, p.clusters),
      sg.latent_reference_ari(res.labels, truth, 4, p.clusters))
