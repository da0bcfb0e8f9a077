"""Everything the quality notebook shows, computed in one call (the notebook only displays)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import db as dbmod
from ..asof import resolve
from .audit import Audit, breakdown, discipline_tables, headline, kinds_table, run_audit, trend, trend_summary
from .config import QualityParams, load_params
from .fixlist import build_fixlist

HEADLINE_LABELS = {
    "scope": {"zh": "范围", "en": "scope"},
    "customer_error_rate": {"zh": "客户错误率", "en": "customer error rate"},
    "record_error_rate": {"zh": "记录错误率", "en": "record error rate"},
    "n_customers": {"zh": "客户数", "en": "customers"},
    "n_customers_erroneous": {"zh": "有错客户数", "en": "customers with errors"},
    "n_records": {"zh": "记录数", "en": "records"},
    "n_records_erroneous": {"zh": "错误记录数", "en": "erroneous records"},
}


@dataclass
class QualityReport:
    as_of: dt.date
    params: QualityParams
    audit: Audit
    headline: pd.DataFrame
    trend: pd.DataFrame
    trend_summary: dict
    by_source: pd.DataFrame
    by_region: pd.DataFrame
    by_rep: pd.DataFrame
    kinds: pd.DataFrame
    discipline: dict
    fixlist: pd.DataFrame


def per_rep(audit: Audit, disc: dict, source: str | None = None) -> pd.DataFrame:
    """One row per rep: error rates of their records, timeliness, 日清日结 and rep-only customers."""
    b = breakdown(audit, "rep_id", source)
    b = b[b["rep_id"] != "(空)"]
    reps = audit.reps[["rep_id", "rep_name", "region"]] if len(audit.reps) else \
        pd.DataFrame(columns=["rep_id", "rep_name", "region"])
    out = reps.merge(b, on="rep_id", how="outer")
    t = disc["timeliness"][["rep_id", "mean_lag_days", "late_share"]]
    d = disc["daily"][["rep_id", "days_missing", "not_daily"]]
    only = disc["rep_only"].groupby("rep_id").size().rename("rep_only_customers").reset_index()
    out = out.merge(t, on="rep_id", how="left").merge(d, on="rep_id", how="left").merge(only, on="rep_id", how="left")
    out["rep_only_customers"] = out["rep_only_customers"].fillna(0).astype(int)
    return out.sort_values(["record_error_rate", "rep_id"], ascending=[False, True], na_position="last") \
        .reset_index(drop=True)


def build_report(db_path: str | Path, as_of: str | dt.date | None = None,
                 params: QualityParams | None = None) -> QualityReport:
    params = params or load_params()
    con = dbmod.connect(db_path, read_only=True)
    try:
        d = resolve(con, as_of)
        audit = run_audit(con, d, params)
        tr = trend(con, d, params, audits={d: audit})  # the earlier weeks restrict this audit
    finally:
        con.close()
    disc = discipline_tables(audit, params)
    head = pd.DataFrame([{"scope": s or "all", **headline(audit, s)} for s in (params.primary_source, None)])
    return QualityReport(
        as_of=d, params=params, audit=audit, headline=head, trend=tr,
        trend_summary={s: trend_summary(tr, s) for s in (params.primary_source, "all")},
        by_source=breakdown(audit, "source"), by_region=breakdown(audit, "region", params.primary_source),
        by_rep=per_rep(audit, disc, None), kinds=kinds_table(audit), discipline=disc,
        fixlist=build_fixlist(audit, params))


def headline_table(rep: QualityReport, lang: str = "zh") -> pd.DataFrame:
    """The headline with this week / last week / N-week average, labelled in ``lang``."""
    from ..i18n import tr as t
    rows = []
    for scope, s in rep.trend_summary.items():
        for m in ("customer_error_rate", "record_error_rate"):
            v = s[m]
            rows.append({t(HEADLINE_LABELS, "scope", lang): scope, "metric": t(HEADLINE_LABELS, m, lang),
                         ("本周" if lang == "zh" else "this week"): v["this_week"],
                         ("上周" if lang == "zh" else "last week"): v["last_week"],
                         (f"{rep.params.trend_weeks}周平均" if lang == "zh" else f"{rep.params.trend_weeks}-week avg"):
                             v["avg"]})
    return pd.DataFrame(rows)


def discipline_summary(rep: QualityReport) -> dict:
    """Counts behind the discipline section: reps not sending daily, lag, rep-only and uncontacted customers."""
    d = rep.discipline
    t = d["timeliness"]
    n = t["n_rows"].sum() if len(t) else 0
    return {
        "reps_expected": len(d["daily"]),
        "reps_not_daily": int(d["daily"]["not_daily"].sum()) if len(d["daily"]) else 0,
        "mean_lag_days": float((t["mean_lag_days"] * t["n_rows"]).sum() / n) if n else float("nan"),
        "late_share": float(t["n_late"].sum() / n) if n else float("nan"),
        "rep_only_customers": len(d["rep_only"]),
        "not_contacted": len(d["not_contacted"]),
    }
