"""Measured against the demo truth (``data/demo_truth/``): true error rates and recall per injected kind.

Only the notebook and the tests read the truth; the audit itself never does.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .audit import Audit

# an injected kind counts as detected when the record carries one of these measured kinds
KIND_MATCHES = {
    "junk_name": {"junk_name"},
    "name_typo": {"name_typo"},
    "wrong_phone": {"wrong_phone", "phone_mismatch"},
    "uscc_bad_check": {"uscc_bad_check", "uscc_bad_format"},
    "uscc_missing": {"uscc_missing"},
    "wrong_city": {"wrong_city", "wrong_province", "wrong_region"},
    "wrong_industry": {"wrong_industry"},
    "duplicate_record": {"duplicate_record"},
    "missing_contact": {"missing_contact", "missing_field"},
    "future_or_impossible_date": {"future_or_impossible_date", "load_reject"},
    "negative_amount": {"negative_amount", "load_reject"},
}


def _bool(s: pd.Series) -> pd.Series:
    """Truth flags as written: 1/0, 1.0/0.0, true/false."""
    t = s.astype(str).str.strip().str.lower()
    return t.isin(["true", "t", "yes", "y"]) | (pd.to_numeric(t, errors="coerce").fillna(0) != 0)


def read_truth(truth_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``records.csv`` (+ ``record_id``, ``wrong`` = has_error or is_junk) and ``errors.csv``."""
    d = Path(truth_dir)
    rec = pd.read_csv(d / "records.csv", dtype=str, keep_default_na=False)
    rec["record_id"] = rec["source"] + ":" + rec["source_key"]
    rec["wrong"] = _bool(rec["has_error"]) | _bool(rec["is_junk"])
    err = pd.read_csv(d / "errors.csv", dtype=str, keep_default_na=False)
    err["record_id"] = err["source"] + ":" + err["source_key"]
    return rec, err


def true_rates(truth_records: pd.DataFrame, source: str | None, record_ids: set[str] | None = None) -> dict:
    """The truth's record and customer error rates over one source (``None`` = all), restricted to
    ``record_ids`` (the records the audit saw) when given. Same definitions as :func:`audit.headline`."""
    if record_ids is not None:
        truth_records = truth_records[truth_records["record_id"].isin(record_ids)]
    t = truth_records if source is None else truth_records[truth_records["source"] == source]
    ct = truth_records if source is None else \
        truth_records[truth_records["source"].isin([source, f"{source}_contacts"])]
    c = ct[ct["true_customer_id"] != ""].groupby("true_customer_id")["wrong"].any()
    return {"n_records": len(t), "record_error_rate": float(t["wrong"].mean()) if len(t) else None,
            "n_customers": int(len(c)), "customer_error_rate": float(c.mean()) if len(c) else None}


def compare_rates(audit: Audit, truth_dir: str | Path, sources: list[str | None]) -> pd.DataFrame:
    """Measured vs true customer and record error rates per scope (source or ``all``)."""
    from .audit import headline
    rec, _ = read_truth(truth_dir)
    seen = set(audit.records["record_id"])
    rows = []
    for s in sources:
        m, t = headline(audit, s), true_rates(rec, s, seen)
        rows.append({"scope": s or "all", "n_records": m["n_records"],
                     "record_error_rate_measured": m["record_error_rate"],
                     "record_error_rate_true": t["record_error_rate"],
                     "customer_error_rate_measured": m["customer_error_rate"],
                     "customer_error_rate_true": t["customer_error_rate"]})
    return pd.DataFrame(rows)


# truth field → customer_records column holding what was written there
FIELD_COLUMN = {"uscc": "uscc", "phone": "phone", "contact_phone": "phone", "city": "city", "industry": "industry",
                "customer_name": "name_raw", "company": "name_raw", "account_name": "name_raw"}


def observable(audit: Audit, err: pd.DataFrame) -> pd.Series:
    """False for injected errors whose written value never reached the database (e.g. a value written
    under a sheet column the template does not have): no audit can see those."""
    rec = audit.records.set_index("record_id")
    out = []
    for rid, f, wv in zip(err["record_id"], err["field"], err["written_value"], strict=True):
        col = FIELD_COLUMN.get(f)
        if col is None or rid not in rec.index or not str(wv).strip():
            out.append(True)
            continue
        v = rec.at[rid, col]
        out.append(not (v is None or (isinstance(v, float) and pd.isna(v)) or not str(v).strip()))
    return pd.Series(out, index=err.index)


def recall_by_kind(audit: Audit, truth_dir: str | Path) -> pd.DataFrame:
    """Per injected kind: injected errors on records the audit saw (or order lines it could place),
    detected with a matching kind, detected with any issue; recall = detected / injected;
    ``recall_observable`` leaves out errors whose written value is not in the database. Last row
    (``kind='*'``): erroneous records found, and the precision of the record flag."""
    rec, err = read_truth(truth_dir)
    seen = set(audit.records["record_id"]) | set(audit.issues["record_id"])
    err = err[err["record_id"].isin(seen)].drop_duplicates(["record_id", "kind"]).copy()
    found = audit.issues.groupby("record_id")["kind"].agg(set)
    err["matched"] = [bool(KIND_MATCHES.get(k, {k}) & found.get(r, set()))
                      for r, k in zip(err["record_id"], err["kind"], strict=True)]
    err["flagged"] = err["record_id"].isin(found.index)
    err["observable"] = observable(audit, err)
    g = err.groupby("kind")
    out = pd.DataFrame({"n_injected": g.size(), "n_detected": g["matched"].sum(),
                        "n_record_flagged": g["flagged"].sum(), "n_observable": g["observable"].sum(),
                        "n_detected_observable": err[err["observable"]].groupby("kind")["matched"].sum()})
    out = out.fillna(0).astype(int).reset_index()
    out["recall"] = out["n_detected"] / out["n_injected"]
    out["recall_observable"] = out["n_detected_observable"] / out["n_observable"].where(out["n_observable"] > 0)
    truth_wrong = set(rec.loc[rec["wrong"], "record_id"]) & set(audit.records["record_id"])
    flagged = set(audit.records.loc[audit.records["erroneous"], "record_id"])
    hit = len(truth_wrong & flagged)
    out = pd.concat([out, pd.DataFrame([{
        "kind": "*", "n_injected": len(truth_wrong), "n_detected": hit, "n_record_flagged": len(flagged),
        "recall": hit / len(truth_wrong) if truth_wrong else None}])], ignore_index=True)
    out["precision"] = None
    out.loc[out["kind"] == "*", "precision"] = hit / len(flagged) if flagged else None
    return out


def false_positives(audit: Audit, truth_dir: str | Path) -> pd.DataFrame:
    """Issues on records the truth says are right, counted per measured kind and source (to tune checks)."""
    rec, _ = read_truth(truth_dir)
    right = set(rec.loc[~rec["wrong"], "record_id"])
    fp = audit.issues[audit.issues["record_id"].isin(right)]
    return fp.groupby(["kind", "source"]).size().rename("n").reset_index().sort_values("n", ascending=False)
