"""Timeliness and reporting discipline of the reps (pure functions over frames)."""
from __future__ import annotations

import datetime as dt

import pandas as pd

from .config import QualityParams

CONTACT_SOURCES = ("sales", "callcenter", "service")


def _d(v) -> dt.date | None:
    return None if v is None or pd.isna(v) else pd.Timestamp(v).date()


def timeliness(visits: pd.DataFrame, limit_days: int) -> pd.DataFrame:
    """Per rep: sheet rows, mean/max days from visit to sheet, rows later than ``limit_days``.

    ``visits`` has ``rep_id, visit_date, report_date``; rows missing either date, or with the visit after
    the sheet (an impossible date, reported by the validity checks), are not counted.
    """
    v = visits.dropna(subset=["visit_date", "report_date"]).copy()
    v = v[pd.to_datetime(v["visit_date"]) <= pd.to_datetime(v["report_date"])]
    cols = ["rep_id", "n_rows", "mean_lag_days", "max_lag_days", "n_late", "late_share"]
    if v.empty:
        return pd.DataFrame(columns=cols)
    v["lag"] = (pd.to_datetime(v["report_date"]) - pd.to_datetime(v["visit_date"])).dt.days
    g = v.groupby("rep_id")["lag"]
    out = pd.DataFrame({
        "n_rows": g.size(), "mean_lag_days": g.mean(), "max_lag_days": g.max(),
        "n_late": g.apply(lambda s: int((s > limit_days).sum())),
    }).reset_index()
    out["late_share"] = out["n_late"] / out["n_rows"]
    return out[cols].sort_values("rep_id").reset_index(drop=True)


def working_days(start: dt.date, end: dt.date, params: QualityParams) -> list[dt.date]:
    """Working days in ``[start, end]`` (both inclusive) under the simplified calendar."""
    days, d = [], start
    hol = set(params.holidays)
    while d <= end:
        if d.isoweekday() in params.working_weekdays and d not in hol:
            days.append(d)
        d += dt.timedelta(days=1)
    return days


def daily_sending(visits: pd.DataFrame, reps: pd.DataFrame, as_of: dt.date, params: QualityParams,
                  days: int = 7) -> pd.DataFrame:
    """日清日结: per rep employed in the window ``(as_of - days, as_of]``, working days without a sheet row.

    A day counts as sent when the rep has at least one sheet row with that ``report_date``. Days before
    ``hired_at`` or from ``left_at`` on are not expected. ``not_daily`` = missing > allowed.
    """
    start = as_of - dt.timedelta(days=days - 1)
    wd = working_days(start, as_of, params)
    sent = set()
    for r in visits.dropna(subset=["report_date"]).to_dict("records"):
        sent.add((r["rep_id"], _d(r["report_date"])))
    rows = []
    for r in reps.sort_values("rep_id").to_dict("records"):
        hired, left = _d(r.get("hired_at")), _d(r.get("left_at"))
        expected = [d for d in wd if (hired is None or d >= hired) and (left is None or d < left)]
        if not expected:
            continue
        missing = [d for d in expected if (r["rep_id"], d) not in sent]
        rows.append({"rep_id": r["rep_id"], "rep_name": r.get("rep_name"), "region": r.get("region"),
                     "working_days": len(expected), "days_sent": len(expected) - len(missing),
                     "days_missing": len(missing),
                     "not_daily": len(missing) > params.daily_missing_days_allowed})
    # typed even when empty (no reps in the window): an empty object column would not work as a mask
    return pd.DataFrame(rows, columns=["rep_id", "rep_name", "region", "working_days", "days_sent",
                                       "days_missing", "not_daily"]).astype(
        {"working_days": "int64", "days_sent": "int64", "days_missing": "int64", "not_daily": bool})


def rep_only_customers(records: pd.DataFrame) -> pd.DataFrame:
    """Customers whose only records are one rep's sales sheets ("when the rep leaves, the customers leave").

    Returns ``customer_id, rep_id, n_records``; junk records (no customer) are ignored.
    """
    rec = records[records["customer_id"].notna()]
    g = rec.groupby("customer_id").agg(
        n_sources=("source", "nunique"), first_source=("source", "first"),
        n_reps=("rep_id", "nunique"), rep_id=("rep_id", "first"),  # nunique leaves NA out
        n_records=("record_id", "size"))
    only = g[(g["n_sources"] == 1) & (g["first_source"] == "sales") & (g["n_reps"] == 1)]
    rep = rec[rec["customer_id"].isin(only.index)].dropna(subset=["rep_id"]).groupby("customer_id")["rep_id"].first()
    out = only[["n_records"]].join(rep.rename("rep_id")).reset_index()
    return out[["customer_id", "rep_id", "n_records"]].sort_values(["rep_id", "customer_id"]).reset_index(drop=True)


def not_contacted(records: pd.DataFrame, master: pd.DataFrame, as_of: dt.date, n_days: int) -> pd.DataFrame:
    """Master customers whose newest contact (sales visit, call, ticket) is more than ``n_days`` before
    ``as_of`` or who were never contacted. Returns ``customer_id, name, region, owner_rep_id, last_contact,
    days_since`` (``days_since`` NULL = never)."""
    rec = records[records["customer_id"].notna() & records["source"].isin(CONTACT_SOURCES)]
    rec = rec[pd.to_datetime(rec["record_date"]).dt.date <= as_of]
    last = pd.to_datetime(rec.groupby("customer_id")["record_date"].max()).dt.date.rename("last_contact")
    m = master[[c for c in ("customer_id", "name", "region", "owner_rep_id") if c in master.columns]]
    out = m.merge(last, left_on="customer_id", right_index=True, how="left")
    out["days_since"] = out["last_contact"].map(
        lambda d: None if d is None or pd.isna(d) else (as_of - d).days).astype("Int64")
    keep = out["days_since"].isna() | (out["days_since"] > n_days)
    return out[keep].sort_values("customer_id").reset_index(drop=True)
