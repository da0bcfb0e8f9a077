"""Stewards' decisions (``params/review_decisions.csv``): read and append, all or nothing."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pandas as pd

from .. import paths
from ..encoding import read_user_csv
from ..errors import UserError
from .params import DECISION_COLUMNS


def read_decisions(path: str | Path | None = None) -> pd.DataFrame:
    """Reviewers' decisions; the latest decision per pair (by decided_at, then file order) wins."""
    path = Path(path) if path else paths.review_decisions_path()
    if not path.exists():
        return pd.DataFrame(columns=DECISION_COLUMNS)
    if path.is_dir():
        raise UserError("is a folder, not a decisions file", file=str(path),
                        hint="pass a .csv file (params/review_decisions.csv by default)")
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    df = read_user_csv(path, "review decisions file")   # UTF-8 or GBK (a file saved from Excel)
    missing = [c for c in DECISION_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"missing column(s) {', '.join(missing)}", file=str(path),
                        hint="header must be " + ",".join(DECISION_COLUMNS))
    bad = df[~df["decision"].isin(["match", "no_match"])]
    if len(bad):
        raise UserError(f"decision must be match or no_match, got {bad['decision'].iloc[0]!r}", file=str(path),
                        row=int(bad.index[0]) + 2, column="decision")
    df["_order"] = range(len(df))
    lo = df[["record_id_l", "record_id_r"]].min(axis=1)
    hi = df[["record_id_l", "record_id_r"]].max(axis=1)
    df["record_id_l"], df["record_id_r"] = lo, hi
    df = df.sort_values(["decided_at", "_order"]).groupby(["record_id_l", "record_id_r"]).tail(1)
    return df.sort_values(["record_id_l", "record_id_r"])[DECISION_COLUMNS].reset_index(drop=True)


def append_decision(record_id_l: str, record_id_r: str, decision: str, reviewer: str,
                    path: str | Path | None = None, decided_at: str | None = None) -> None:
    """Append one reviewer decision to the decisions file (created with its header when absent)."""
    append_decisions([(record_id_l, record_id_r, decision)], reviewer, path, decided_at)


def append_decisions(rows, reviewer: str, path: str | Path | None = None, decided_at: str | None = None) -> None:
    """Append ``(record_id_l, record_id_r, decision)`` rows in one write (a file edited by hand and left
    without a final newline gets one first, so the first new row is not glued to the last old one)."""
    rows = list(rows)
    bad = [d for _l, _r, d in rows if d not in ("match", "no_match")]
    if bad:
        raise UserError(f"decision must be match or no_match, got {bad[0]!r}")
    path = Path(path) if path else paths.review_decisions_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        read_decisions(path)   # refuses a file that is not a decisions file
        from ..encoding import detect
        if detect(path).encoding != "utf-8":
            raise UserError("the decisions file is not UTF-8: new decisions would be written in another "
                            "encoding", file=str(path), hint="save it as UTF-8 (CSV UTF-8 in Excel), then apply again")
        with path.open("rb") as f:
            f.seek(-1, 2)
            needs_newline = f.read(1) not in (b"\n", b"\r")
    at = decided_at or dt.datetime.now().isoformat(timespec="seconds")
    with path.open("a", encoding="utf-8", newline="") as f:
        if not new and needs_newline:
            f.write("\n")
        w = csv.writer(f)
        if new:
            w.writerow(DECISION_COLUMNS)
        w.writerows([[a, b, d, reviewer, at] for a, b, d in rows])
