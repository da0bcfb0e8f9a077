"""The plan's historical rates recovered from a loaded and resolved demo database, next to the generator's
realized rates (manifest.json), per region; potential→opportunity with its counts.

    .venv/bin/crm demo-data --out W/raw --truth W/truth --seed S [--scale X]
    .venv/bin/crm load --raw W/raw --db W/crm.duckdb && .venv/bin/crm resolve --db W/crm.duckdb
    .venv/bin/python benchmarks/funnel_rates.py W/crm.duckdb W/truth

Results: benchmarks/funnel_rates.md.
"""
import json
import sys
import time

import pandas as pd

from crmlib import funnel as fn
from crmlib.db import connect


def main(db: str, truth: str) -> None:
    man = json.loads(open(f"{truth}/manifest.json", encoding="utf-8").read())
    con = connect(db, read_only=True)
    try:
        t = time.perf_counter()
        rates = fn.historical_rates(con, man["as_of_dates"][-1], fn.load_params())
        print(f"historical_rates: {time.perf_counter() - t:.1f} s")
    finally:
        con.close()
    cmp = fn.compare_with_truth(rates, man)
    real = pd.DataFrame(man["conversion_rates"]["realized_by_region"]).T
    p2o = (cmp[cmp["step"] == "potential_to_opportunity"].merge(rates[["region", "new_potentials", "converted"]])
           .assign(true_new_potentials=lambda d: d["region"].map(real["new_potentials"])))
    print(p2o.drop(columns="step").to_string(index=False))
    n = real["new_potentials"].astype(float)
    true_conv = (real["potential_to_opportunity"].astype(float).fillna(0) * n).round().sum()
    print(f"pooled potential→opportunity: {int(rates['converted'].sum())} / {int(rates['new_potentials'].sum())} = "
          f"{rates['converted'].sum() / rates['new_potentials'].sum():.4f}; generator {int(true_conv)} / "
          f"{int(n.sum())} = {true_conv / n.sum():.4f}")
    print("max |recovered - realized| per step:")
    print(cmp.groupby("step")["abs_diff"].max().to_string())


if __name__ == "__main__":
    main(*sys.argv[1:3])
