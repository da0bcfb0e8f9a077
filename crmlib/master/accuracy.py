"""Matching accuracy against a known truth (the demo's), and the master's weekly figures."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .. import db as dbmod

# evaluation and weekly metrics
# ------------------------------------------------------------------------------------------------------

def _pairs_count(sizes: pd.Series) -> int:
    s = sizes.to_numpy(dtype=np.int64)
    return int((s * (s - 1) // 2).sum())


def pairwise_scores(pred: pd.Series, truth: pd.Series) -> dict:
    """Pairwise precision/recall of a clustering: pairs of records put together vs truly together.

    Both series are indexed by record; records with a blank label on either side are left out (junk)."""
    df = pd.DataFrame({"p": pred, "t": truth}).dropna()
    both = _pairs_count(df.groupby(["p", "t"]).size())
    predicted = _pairs_count(df.groupby("p").size())
    true = _pairs_count(df.groupby("t").size())
    precision = both / predicted if predicted else 1.0
    recall = both / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs_predicted": predicted,
            "pairs_true": true, "pairs_correct": both, "records_evaluated": len(df)}


def heads_merged_with_branches(pred: pd.Series, truth: pd.Series, parents: dict[str, str]) -> int:
    """Predicted customers holding records of a true customer and of one of its descendants."""
    df = pd.DataFrame({"p": pred, "t": truth}).dropna().drop_duplicates()
    n = 0
    for _, members in df.groupby("p")["t"]:
        ts = set(members)
        if len(ts) < 2:
            continue
        bad = False
        for t in ts:
            seen, cur = set(), parents.get(t)
            while cur and cur not in seen:
                if cur in ts:
                    bad = True
                    break
                seen.add(cur)
                cur = parents.get(cur)
            if bad:
                break
        n += bad
    return n


def evaluate(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> dict:
    """Pairwise precision / recall of ``customer_xref`` against demo truth, plus head offices merged with
    their own branches (must be 0). Junk records (blank truth) and unresolved records are left out."""
    truth_dir = Path(truth_dir)
    rec = pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False)
    cust = pd.read_csv(truth_dir / "customers.csv", dtype=str, keep_default_na=False)
    rec["record_id"] = rec["source"] + ":" + rec["source_key"]
    rec["true_customer_id"] = rec["true_customer_id"].replace("", None)
    xref = con.execute("SELECT record_id, customer_id FROM customer_xref").df()
    df = xref.merge(rec[["record_id", "true_customer_id"]], on="record_id", how="inner")
    scores = pairwise_scores(df.set_index("record_id")["customer_id"],
                             df.set_index("record_id")["true_customer_id"])
    parents = {r.true_customer_id: r.parent_id for r in cust.itertuples() if r.parent_id}
    scores["heads_merged_with_branches"] = heads_merged_with_branches(
        df.set_index("record_id")["customer_id"], df.set_index("record_id")["true_customer_id"], parents)
    junk_true = set(rec.loc[rec["true_customer_id"].isna(), "record_id"])
    got_junk = set(xref.loc[xref["customer_id"].isna(), "record_id"])
    scores["junk_recall"] = len(junk_true & got_junk) / len(junk_true) if junk_true else 1.0
    scores["real_records_left_unresolved"] = int(
        df["true_customer_id"].notna().sum() - df.dropna().shape[0])
    return scores


def master_weekly_metrics(con: duckdb.DuckDBPyConnection, as_of: dt.date,
                          truth_dir: str | Path | None = None) -> dict:
    """Headline figures of the customer master for ``metrics.json`` (prefix ``master_``).

    New customers this week: first seen in the 7 days ending on ``as_of`` (inclusive)."""
    if not dbmod.table_exists(con, "customer_master"):
        return {}
    as_of = pd.Timestamp(as_of).date()
    start = as_of - dt.timedelta(days=6)
    customers = con.execute("SELECT count(*) FROM customer_master WHERE first_seen IS NULL OR first_seen <= ?",
                            [as_of]).fetchall()[0][0]
    new = con.execute("SELECT count(*) FROM customer_master WHERE first_seen BETWEEN ? AND ?",
                      [start, as_of]).fetchall()[0][0]
    n_rec, n_matched = con.execute("""
        SELECT count(*), count(x.customer_id) FROM customer_xref x
        JOIN customer_records r USING (record_id) WHERE r.record_date IS NULL OR r.record_date <= ?""",
                                   [as_of]).fetchall()[0]
    queue = (con.execute("SELECT count(*) FROM match_review_queue").fetchall()[0][0]
             if dbmod.table_exists(con, "match_review_queue") else 0)
    out = {"master_customers": int(customers), "master_new_customers_week": int(new),
           "master_records": int(n_rec), "master_match_rate": (n_matched / n_rec) if n_rec else None,
           "master_review_queue": int(queue)}
    if truth_dir and Path(truth_dir, "records.csv").exists():
        ev = evaluate(con, truth_dir)
        out.update({"master_precision": ev["precision"], "master_recall": ev["recall"],
                    "master_heads_merged_with_branches": ev["heads_merged_with_branches"]})
    return out
