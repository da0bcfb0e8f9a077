"""Data-quality audit: the center's scorecard per source, region and rep, and the stewards' fix list.

Public surface: :func:`run_audit` (an :class:`Audit` as of a date), :func:`headline`, :func:`breakdown`,
:func:`trend`, :func:`discipline_tables`, :func:`build_fixlist` / :func:`write_fixlist`,
:func:`quality_weekly_metrics` (for ``metrics.json``) and the ``crm quality`` command.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .audit import (
    Audit,
    breakdown,
    discipline_tables,
    headline,
    kinds_table,
    quality_weekly_metrics,
    read_inputs,
    rejects_in_week,
    run_audit,
    run_checks,
    trend,
    trend_summary,
)
from .config import QualityParams, load_params
from .fixlist import build_fixlist, write_fixlist

__all__ = ["Audit", "QualityParams", "breakdown", "build_fixlist", "discipline_tables", "headline", "kinds_table",
           "load_params", "quality_weekly_metrics", "read_inputs", "rejects_in_week",
           "run_audit", "run_checks", "trend", "trend_summary", "write_fixlist"]


def _cmd(args: argparse.Namespace) -> int:
    from .. import db as dbmod
    from .. import paths

    params = load_params(args.params)
    if args.out and Path(args.out).suffix.lower() != ".xlsx":
        raise UserError("the fix list is an Excel workbook: --out must end in .xlsx", file=args.out)
    con = dbmod.connect(args.db, read_only=True)
    try:
        from ..asof import resolve
        as_of = resolve(con, args.as_of, "--as-of", command="quality")
        audit = run_audit(con, as_of, params)
        fix = build_fixlist(audit, params)
        out = Path(args.out) if args.out else paths.reports_dir() / f"fixlist_{as_of.isoformat()}.xlsx"
        write_fixlist(fix, out, lang=args.lang)
    finally:
        con.close()
    prim, allh = headline(audit, params.primary_source), headline(audit, None)
    zh = args.lang == "zh"
    print(("数据质量审计 截至 " if zh else "quality audit as of ") + as_of.isoformat())
    for label, h in ((params.primary_source.upper(), prim), ("全部来源" if zh else "all sources", allh)):
        cr, rr = h["customer_error_rate"], h["record_error_rate"]
        print(f"  {label}: " + (
            f"客户错误率 {cr:.1%} ({h['n_customers_erroneous']}/{h['n_customers']})，"
            f"记录错误率 {rr:.1%} ({h['n_records_erroneous']}/{h['n_records']})" if zh else
            f"customer error rate {cr:.1%} ({h['n_customers_erroneous']}/{h['n_customers']}), "
            f"record error rate {rr:.1%} ({h['n_records_erroneous']}/{h['n_records']})")
            if cr is not None and rr is not None else f"  {label}: -")
    print(("待修正清单: " if zh else "fix list: ") + f"{out} ({fix['rank'].max() if len(fix) else 0} "
          + ("条记录, " if zh else "records, ") + f"{len(fix)} " + ("项)" if zh else "rows)"))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("quality", help="data-quality audit and the stewards' fix list (.xlsx)",
                              description="Audit customer records (completeness, validity, consistency, "
                                          "duplicates, junk, load rejects) and write a ranked fix list.")
    p.add_argument("--db", help="DuckDB file (default data/curated/crm.duckdb)")
    p.add_argument("--out", help="fix list .xlsx (default reports/fixlist_<as-of>.xlsx)")
    p.add_argument("--as-of", help="audit date YYYY-MM-DD (default: newest record date)")
    p.add_argument("--params", help="parameter file (default params/quality.yaml)")
    p.add_argument("--lang", choices=["zh", "en"], default="zh")
    p.set_defaults(func=_cmd)
