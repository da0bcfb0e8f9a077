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
    return s.astype(str).str.strip().str.lower().isin(["1", "true", "t", "yes", "y"])


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
    t = truth_records if source is None else truth_records[truth_records["source"] == source]
    if record_ids is not None:
        t = t[t["record_id"].isin(record_ids)]
    c = t[t["true_customer_id"] != ""].groupby("true_customer_id")["wrong"].any()
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


def recall_by_kind(audit: Audit, truth_dir: str | Path) -> pd.DataFrame:
    """Per injected kind (and source): injected records the audit saw, detected with a matching kind, detected
    with any issue; recall = matched / injected. Also precision of the record flag overall (``kind='*'``)."""
    rec, err = read_truth(truth_dir)
    seen = set(audit.records["record_id"])
    err = err[err["record_id"].isin(seen)].drop_duplicates(["record_id", "kind"])
    found = audit.issues.groupby("record_id")["kind"].agg(set)
    err["matched"] = [bool(KIND_MATCHES.get(k, {k}) & found.get(r, set()))
                      for r, k in zip(err["record_id"], err["kind"], strict=True)]
    err["flagged"] = err["record_id"].isin(found.index)
    g = err.groupby("kind")
    out = pd.DataFrame({"n_injected": g.size(), "n_detected": g["matched"].sum(),
                        "n_record_flagged": g["flagged"].sum()}).reset_index()
    out["recall"] = out["n_detected"] / out["n_injected"]
    truth_wrong = set(rec.loc[rec["wrong"], "record_id"]) & seen
    flagged = set(found.index)
    out = pd.concat([out, pd.DataFrame([{
        "kind": "*", "n_injected": len(truth_wrong), "n_detected": len(truth_wrong & flagged),
        "n_record_flagged": len(flagged), "recall": len(truth_wrong & flagged) / len(truth_wrong)
        if truth_wrong else None}])], ignore_index=True)
    out["precision"] = None
    out.loc[out["kind"] == "*", "precision"] = len(truth_wrong & flagged) / len(flagged) if flagged else None
    return out


def false_positives(audit: Audit, truth_dir: str | Path) -> pd.DataFrame:
    """Issues on records the truth says are right, counted per measured kind and source (to tune checks)."""
    rec, _ = read_truth(truth_dir)
    right = set(rec.loc[~rec["wrong"], "record_id"])
    fp = audit.issues[audit.issues["record_id"].isin(right)]
    return fp.groupby(["kind", "source"]).size().rename("n").reset_index().sort_values("n", ascending=False)
