"""Read-only helpers for the master notebook (01_master): samples, rule merges, the review widget."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from .. import db as dbmod
from ..errors import UserError
from .decisions import append_decision
from .params import COMPARISONS, load_master_params

# notebook helpers (read-only)
# ------------------------------------------------------------------------------------------------------

def cluster_size_counts(con: duckdb.DuckDBPyConnection) -> pd.Series:
    """Records per customer (one value per customer)."""
    return con.execute("SELECT n_records FROM customer_master ORDER BY customer_id").df()["n_records"]


def merge_samples(con: duckdb.DuckDBPyConnection, n: int = 5, threshold: float | None = None) -> pd.DataFrame:
    """A stable sample of accepted merges of differently written names, weakest evidence first."""
    threshold = threshold if threshold is not None else load_master_params().threshold
    return con.execute("""
        SELECT * FROM customer_match_pairs
        WHERE match_probability >= ? AND violation IS NULL AND coalesce(decision, '') <> 'no_match'
          AND name_l <> name_r
        ORDER BY hash(record_id_l || record_id_r), record_id_l, record_id_r LIMIT ?""", [threshold, n]).df() \
        .sort_values(["match_probability", "record_id_l", "record_id_r"]).reset_index(drop=True)


def rule_merges(con: duckdb.DuckDBPyConnection, threshold: float, n: int = 8) -> tuple[int, pd.DataFrame]:
    """Pairs a rule joined that Splink alone would not have (scored below ``threshold``, or not returned:
    probability blank): how many, and a stable sample (name_l, name_r, match_probability, rule). (0, empty)
    for a database resolved before rules were recorded."""
    if "rule" not in dbmod.columns(con, "customer_match_pairs"):
        return 0, pd.DataFrame(columns=["name_l", "name_r", "match_probability", "rule"])
    where = """rule IS NOT NULL AND violation IS NULL AND coalesce(decision, '') <> 'no_match'
               AND coalesce(match_probability, 0) < ?"""
    total = con.execute(f"SELECT count(*) FROM customer_match_pairs WHERE {where}", [threshold]).fetchall()[0][0]
    sample = con.execute(f"""SELECT name_l, name_r, round(match_probability, 4) AS match_probability, rule
        FROM customer_match_pairs WHERE {where}
        ORDER BY hash(record_id_l || record_id_r), record_id_l, record_id_r LIMIT ?""", [threshold, n]).df()
    return int(total), sample


def evidence_labels(con: duckdb.DuckDBPyConnection, pair: pd.Series) -> tuple[float, dict[str, str]]:
    """(prior match weight, comparison → label of the level whose weight the pair got)."""
    w = con.execute("SELECT comparison, gamma, label, weight FROM customer_match_model "
                    "ORDER BY comparison, gamma").df()
    prior = float(w.loc[w["comparison"] == "prior", "weight"].iloc[0])
    labels = {}
    for c in COMPARISONS:
        lv = w[w["comparison"] == c]
        val = float(pair.get(f"mw_{c}", 0.0) or 0.0)
        if len(lv):
            best = lv.iloc[(lv["weight"] - val).abs().argsort().iloc[0]]
            labels[c] = f"{best['label']} ({val:+.1f})"
    return prior, labels


def largest_group(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The group with the most customers under one head: customer_id, parent_id, name, level, revenues."""
    from .. import hierarchy

    r = hierarchy.rollup_revenue(con)
    if r.empty:
        return r
    size = r.groupby("group_id").size().sort_values(ascending=False, kind="stable")
    top = size[size == size.iloc[0]].index.min()
    t = r[r["group_id"] == top].copy()
    parents = con.execute("SELECT child_id, parent_id FROM customer_hierarchy").df()
    t["parent_id"] = t["customer_id"].map(dict(zip(parents["child_id"], parents["parent_id"], strict=True)))
    t.loc[t["customer_id"] == top, "parent_id"] = None
    return t.sort_values("customer_id").reset_index(drop=True)


def review_widget(queue: pd.DataFrame, reviewer: str = "analyst", path: str | Path | None = None, limit: int = 20):
    """ipywidgets list of queued pairs with 'same customer' / 'different' buttons; each click appends a
    decision to ``params/review_decisions.csv`` (applied by the next ``crm resolve``).

    A decision that cannot be written (a decisions file saved in another encoding, a file in use) is
    reported in the pair's status label: an exception in a button callback would only reach the kernel's
    log, and the reviewer would think the decision was saved."""
    import ipywidgets as w

    rows = []
    for r in queue.head(limit).itertuples(index=False):
        status = w.Label("")
        yes = w.Button(description="同一客户 match", button_style="success", layout=w.Layout(width="150px"))
        no = w.Button(description="不同客户 no match", button_style="danger", layout=w.Layout(width="150px"))

        def click(decision, a=r.record_id_l, b=r.record_id_r, s=status):
            def handler(_):
                try:
                    append_decision(a, b, decision, reviewer, path=path)
                except (UserError, OSError) as exc:
                    s.value = f"✗ {decision} not saved: {exc}"
                    return
                s.value = f"✓ {decision}"
            return handler

        yes.on_click(click("match"))
        no.on_click(click("no_match"))
        prob = "–" if pd.isna(r.match_probability) else f"{r.match_probability:.3f}"
        text = w.HTML(f"<b>{r.name_l}</b> ↔ <b>{r.name_r}</b> &nbsp; p={prob} "
                      f"<small>({r.record_id_l} / {r.record_id_r})</small>")
        rows.append(w.HBox([text, yes, no, status]))
    return w.VBox(rows or [w.Label("review queue is empty")])
