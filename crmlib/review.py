"""`crm review`: the match review queue as a workbook for data stewards, and their decisions back.

At scale the queue holds hundreds to thousands of pairs; the notebook widget suits a few dozen.
``crm review export`` writes ``match_review_queue`` (strongest pairs first, then the bare-name pairs Splink
did not score; ``reason`` says why each pair is there, see ``crmlib.master.REVIEW_REASONS``; ``first_queued`` the
date the pair first entered the queue, so this week's new pairs stand out) to .xlsx with
an empty ``decision`` column (a drop-down: match / no_match); ``crm review apply FILE --reviewer NAME`` appends
every filled-in decision to ``params/review_decisions.csv``, the file ``crm resolve`` reads (decisions
survive rebuilds, see crmlib.master). Blank decisions are skipped; anything else is an error naming the
row, and then nothing is appended (so is a pair of one record with itself, or one pair decided both ways).
Record ids are not checked against the database: `crm resolve` ignores decisions about records it does
not have.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from . import paths
from .db import columns, connect, table_exists
from .errors import UserError

COLUMNS = ["record_id_l", "record_id_r", "name_l", "name_r", "match_probability", "n_records_l", "n_records_r",
           "same_cluster", "decision", "note", "reason", "first_queued"]
# what a steward may type: the decision file's words, and the plain Chinese ones
DECISION_WORDS = {"match": "match", "no_match": "no_match", "是": "match", "同一客户": "match",
                  "否": "no_match", "不是": "no_match", "不同客户": "no_match"}


def read_queue(db: str | Path | None = None, limit: int | None = None) -> pd.DataFrame:
    """The review queue of the database, strongest pairs first (ties: record ids)."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    con = connect(db or paths.db_path(), read_only=True)
    try:
        if not table_exists(con, "match_review_queue"):
            raise UserError("the database has no review queue yet", file=str(db or paths.db_path()),
                            hint="run `crm resolve` first")
        have = columns(con, "match_review_queue")
        reason = "reason" if "reason" in have else "'score' AS reason"
        first = "first_queued" if "first_queued" in have else "CAST(NULL AS DATE) AS first_queued"
        # pairs Splink scored first (strongest first); then the bare-name candidates, which it did not
        q = con.execute(f"""SELECT record_id_l, record_id_r, name_l, name_r, match_probability, n_records_l,
                                   n_records_r, same_cluster, {reason}, {first}
                            FROM match_review_queue
                            ORDER BY match_probability DESC NULLS LAST, record_id_l, record_id_r""").df()
    finally:
        con.close()
    return q.head(limit) if limit else q


def write_workbook(queue: pd.DataFrame, out: str | Path) -> Path:
    """The queue as .xlsx: one sheet, frozen header, a decision drop-down (match / no_match)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "review"
    ws.append(COLUMNS)
    for c in ws[1]:
        c.font = Font(bold=True)
    for r in queue.itertuples(index=False):
        prob = None if pd.isna(r.match_probability) else round(float(r.match_probability), 4)
        ws.append([r.record_id_l, r.record_id_r, r.name_l, r.name_r, prob, int(r.n_records_l), int(r.n_records_r),
                   bool(r.same_cluster), None, None, getattr(r, "reason", "score"),
                   None if pd.isna(getattr(r, "first_queued", None)) else pd.Timestamp(r.first_queued).date()])
    if len(queue):  # (an empty validation list makes Excel call the file damaged)
        dv = DataValidation(type="list", formula1='"match,no_match"', allow_blank=True)
        ws.add_data_validation(dv)
        dv.add(f"I2:I{len(queue) + 1}")
    ws.freeze_panes = "A2"
    for col, width in zip("ABCDEFGHIJKL", (22, 22, 36, 36, 12, 8, 8, 10, 12, 30, 12, 12), strict=True):
        ws.column_dimensions[col].width = width
    tmp = out.with_name(out.name + ".tmp")
    try:
        wb.save(tmp)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write the workbook ({exc.strerror or exc})", file=str(out),
                        hint="give a file path in a writable folder, e.g. --out review_queue.xlsx") from None
    return out


def read_decisions_workbook(path: str | Path) -> pd.DataFrame:
    """Filled-in decisions of an exported workbook: record_id_l, record_id_r, decision (match / no_match)."""
    path = Path(path)
    if not path.exists():
        raise UserError("file not found", file=str(path))
    try:
        df = pd.read_excel(path, dtype=str, engine="calamine", na_filter=False)
    except Exception as exc:  # not a workbook, damaged, ...
        raise UserError(f"cannot read the workbook ({str(exc).splitlines()[0][:120]})", file=str(path),
                        hint="give the .xlsx written by `crm review export`") from None
    missing = [c for c in ("record_id_l", "record_id_r", "decision") if c not in df.columns]
    if missing:
        raise UserError(f"missing column(s) {', '.join(missing)}", file=str(path), row=1,
                        hint="give the .xlsx written by `crm review export`")
    out, seen = [], {}
    for i, r in df.iterrows():
        word = str(r["decision"]).strip()
        if not word:
            continue
        decision = DECISION_WORDS.get(word.lower() if word.isascii() else word)
        if decision is None:
            raise UserError(f"decision {word!r} is not one of match / no_match (or 是 / 否)", file=str(path),
                            row=int(i) + 2, column="decision")
        if not str(r["record_id_l"]).strip() or not str(r["record_id_r"]).strip():
            raise UserError("a decision without both record ids", file=str(path), row=int(i) + 2,
                            column="record_id_l" if not str(r["record_id_l"]).strip() else "record_id_r")
        a, b = str(r["record_id_l"]).strip(), str(r["record_id_r"]).strip()
        if a == b:
            raise UserError("a pair of one record with itself", file=str(path), row=int(i) + 2, column="record_id_r")
        key = tuple(sorted((a, b)))
        if key in seen and seen[key][1] != decision:
            raise UserError(f"row {seen[key][0]} decides the same pair the other way", file=str(path),
                            row=int(i) + 2, column="decision", hint="keep one decision per pair")
        seen.setdefault(key, (int(i) + 2, decision))
        out.append((a, b, decision))
    return pd.DataFrame(out, columns=["record_id_l", "record_id_r", "decision"])


def apply_decisions(decisions: pd.DataFrame, reviewer: str, path: str | Path | None = None) -> int:
    """Append the decisions to the decisions file (all at one time stamp); returns how many."""
    from .master import append_decisions

    now = dt.datetime.now().isoformat(timespec="seconds")
    append_decisions(decisions[["record_id_l", "record_id_r", "decision"]].itertuples(index=False, name=None),
                     reviewer, path=path, decided_at=now)
    return len(decisions)


def _cmd_export(args) -> int:
    if args.out and Path(args.out).suffix.lower() != ".xlsx":
        raise UserError("the review workbook is an Excel file: --out must end in .xlsx", file=args.out)
    q = read_queue(args.db, args.limit)
    out = write_workbook(q, args.out)
    if q.empty:
        print(f"the review queue is empty: nothing to decide ({out} has the header only)")
        return 0
    print(f"{len(q)} pairs to review in {out}; fill in `decision` (match / no_match), then "
          f"`crm review apply {out} --reviewer <name>` and `crm resolve`")
    return 0


def _cmd_apply(args) -> int:
    if not args.reviewer.strip():
        raise UserError("--reviewer must name who decided")
    d = read_decisions_workbook(args.file)
    n = apply_decisions(d, args.reviewer.strip(), args.decisions)
    target = args.decisions or paths.review_decisions_path()
    print(f"{n} decisions appended to {target} ({(d['decision'] == 'match').sum()} match, "
          f"{(d['decision'] == 'no_match').sum()} no_match); `crm resolve` applies them")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("review", help="the match review queue as a workbook, and decisions back")
    sub = p.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    e = sub.add_parser("export", help="write the review queue to .xlsx with a decision column")
    e.add_argument("--db", default=None, help="database (default data/curated/crm.duckdb)")
    e.add_argument("--out", default="review_queue.xlsx", help="workbook to write (default %(default)s)")
    e.add_argument("--limit", type=int, default=None, help="only the N strongest pairs")
    e.set_defaults(func=_cmd_export)
    a = sub.add_parser("apply", help="append the decisions filled in an exported workbook")
    a.add_argument("file", help="the workbook from `crm review export`, decisions filled in")
    a.add_argument("--reviewer", required=True, help="who decided (kept with each decision)")
    a.add_argument("--decisions", default=None, help="decisions file (default params/review_decisions.csv)")
    a.set_defaults(func=_cmd_apply)
