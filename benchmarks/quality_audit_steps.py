"""Where the quality audit's time goes, check by check, on a built database (cache off).

    CRM_NO_AUDIT_CACHE=1 .venv/bin/python benchmarks/quality_audit_steps.py data/curated/crm.duckdb

Reads the audit's inputs as of the default date, then times each check of ``run_checks`` on its own (wall and
CPU seconds), the whole ``run_checks`` and one ``records_at`` a week earlier. Name parsing is cached per
process (``crmlib.names``): ``check_junk`` parses every distinct name, so ``check_names`` timed after it
does not. Results: benchmarks/weekly_scale100.md (sixth session) and docs/STATUS.md.
"""
from __future__ import annotations

import datetime as dt
import sys
import time

import duckdb

from crmlib.asof import resolve
from crmlib.quality import audit as A
from crmlib.quality import checks, load_params


def timed(label, f, *args, **kwargs):
    t0, c0 = time.perf_counter(), time.process_time()
    out = f(*args, **kwargs)
    print(f"{label:24s} {time.perf_counter() - t0:7.1f} s wall {time.process_time() - c0:7.1f} CPU-s", flush=True)
    return out


def main() -> int:
    con = duckdb.connect(sys.argv[1], read_only=True)
    params = load_params()
    as_of = resolve(con, None)
    inp = timed("read_inputs", A.read_inputs, con, as_of, params)
    rec, master = inp.records, inp.master
    print(f"records {len(rec):,}, as of {as_of}")
    cust = rec[rec["source"] != "crm_contacts"]
    dup_sources, seven = list(params.duplicate_sources), frozenset(params.seven_digit_area_codes)
    order = timed("duplicate_order", checks.duplicate_order, cust, dup_sources, params.key_fields)
    timed("check_junk", checks.check_junk, cust)
    timed("check_validity", checks.check_validity, cust, seven)
    timed("check_required", checks.check_required, cust, params.required_fields)
    timed("check_city_province", checks.check_city_province, cust)
    timed("check_consistency", checks.check_consistency, cust, master, params.consistency_fields,
          params.industry_keywords)
    timed("check_duplicates", checks.check_duplicates, cust, dup_sources, params.key_fields, order=order)
    timed("check_names", checks.check_names, cust, master, sorted(set(cust["source"])))
    if inp.contacts is not None and len(inp.contacts):
        timed("check_contacts", checks.check_contacts, inp.contacts, seven)
    audit = timed("run_checks (all)", A.run_checks, inp, params)
    timed("records_at -7 days", A.records_at, audit, as_of - dt.timedelta(days=7))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
