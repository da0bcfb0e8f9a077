"""Reader for the reps' weekly workbooks (客户信息登记表), ``sales_sheets/<YYYY>-W<ww>_<rep_id>.xlsx``.

Each sheet is searched for its header row among the first rows (a title row, often merged, may sit above
it); header cells are mapped to canonical columns through ``params/sources.yaml``. Sheets without a
recognisable header are skipped and noted. Merged cells in the data area give their value to every cell
they cover (a customer name merged over three visit rows belongs to all three).
Workbooks are read with python-calamine (Rust; ~100x faster than openpyxl on the reps' small workbooks,
which matters when a center receives thousands a week). Rows are small in number, so typing happens here in
Python with :mod:`crmlib.dates` (month/day without a year takes the year nearest the file's ISO week).
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from .. import dates
from ..errors import UserError
from .config import SalesSheets

RAW_EXTRA = ["rep_id", "week"]
STG_EXTRA = ["record_key", "rep_id", "week"]


@dataclass
class SheetResult:
    raw: list[dict] = field(default_factory=list)      # canonical column → cell text, plus lineage
    typed: list[dict] = field(default_factory=list)
    rejects: list[tuple] = field(default_factory=list)  # (sheet, row, column, value, reason)
    notes: list[str] = field(default_factory=list)


def parse_name(name: str, cfg: SalesSheets, rel: str | None = None) -> tuple[str, str, date]:
    """(rep_id, 'YYYY-Www', reference date = Thursday of that ISO week) from the file name."""
    m = re.fullmatch(cfg.files, name)
    stem, dot, ext = name.rpartition(".")
    if not m and dot and ext.lower() in ("xls", "xlsm") and re.fullmatch(cfg.files, f"{stem}.xlsx"):
        raise UserError(f"an Excel .{ext.lower()} workbook; crm load reads .xlsx only", file=rel or name,
                        hint=f"open it in Excel and save it as {stem}.xlsx (Excel Workbook), then remove the "
                             f".{ext} file")
    if not m:
        raise UserError("file name is not <YYYY>-W<ww>_<rep_id>.xlsx", file=rel or name,
                        hint="rename the file, e.g. 2026-W48_R017.xlsx")
    year, week = int(m["year"]), int(m["week"])
    try:
        ref = date.fromisocalendar(year, week, 4)
    except ValueError:
        raise UserError(f"week {week} does not exist in {year}", file=rel or name) from None
    return m["rep_id"], f"{year}-W{week:02d}", ref


def cell_text(v: object) -> str | None:
    """A cell value as landed text: dates ISO, whole numbers without '.0'."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == time(0) else v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    s = str(v)
    return s if s.strip() else None


def parse_amount(v: str | None) -> float | None:
    """Amount in 元 as typed: '1,200', '¥1200'."""
    if v is None or not v.strip():
        return None
    try:
        x = float(re.sub(r"[,，¥￥元\s]", "", v))
    except ValueError:
        raise ValueError("not a number") from None
    if x < 0:
        raise ValueError("negative amount")
    return x


def parse_amount_wan(v: str | None) -> float | None:
    """Amount in 万元 as typed: '50', '50万', '约50万元', '¥500,000元' (→ 50)."""
    if v is None or not v.strip():
        return None
    s = re.sub(r"^(约|大约|大概|~|≈)", "", re.sub(r"[,，¥￥\s]", "", v))
    scale = 1.0
    if s.endswith("万元"):
        s = s[:-2]
    elif s.endswith("万"):
        s = s[:-1]
    elif s.endswith("元"):
        s, scale = s[:-1], 10000.0
    try:
        x = float(s)
    except ValueError:
        raise ValueError("not a number") from None
    if x < 0:
        raise ValueError("negative amount")
    return x / scale


def _grid(sheet) -> list[list]:
    """The sheet's cells from A1 as rows of values ('' when empty); a merged range's value fills every
    cell it covers."""
    rows = [list(r) for r in sheet.to_python(skip_empty_area=False)]
    for (r0, c0), (r1, c1) in sheet.merged_cell_ranges or []:
        top = rows[r0][c0] if r0 < len(rows) and c0 < len(rows[r0]) else None
        for r in range(r0, r1 + 1):
            while len(rows) <= r:
                rows.append([])
            row = rows[r]
            if len(row) <= c1:
                row.extend([None] * (c1 + 1 - len(row)))
            for c in range(c0, c1 + 1):
                row[c] = top
    return rows


def _header(rows: list[list], cfg: SalesSheets) -> tuple[int, dict[int, str]] | None:
    for i, row in enumerate(rows[: cfg.header_scan_rows]):
        mapping: dict[int, str] = {}
        for j, v in enumerate(row):
            canon = cfg.canonical(v) if isinstance(v, str) else None
            if canon and canon not in mapping.values():  # a merged header cell counts once
                mapping[j] = canon
        if len(mapping) >= cfg.min_header_matches:
            return i, mapping
    return None


def read(path: Path, rel: str, cfg: SalesSheets) -> SheetResult:
    """All data rows of a workbook as raw text rows, typed rows and rejects; UserError if unreadable."""
    rep_id, week, ref = parse_name(path.name, cfg, rel)
    if path.stat().st_size == 0:
        raise UserError("file is empty (0 bytes)", file=rel,
                        hint="if it is still being copied, run `crm load` again when it is complete")
    if not zipfile.is_zipfile(path):
        raise UserError("not an Excel .xlsx workbook (damaged, or another format renamed to .xlsx)",
                        file=rel, hint="open it in Excel and save it again as .xlsx")
    import python_calamine  # noqa: PLC0415  (only needed for sheets)

    out = SheetResult()
    n_headers = 0
    try:
        wb = python_calamine.CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises several kinds for damaged files
        raise UserError(f"cannot open workbook: {type(exc).__name__}: {exc}", file=rel,
                        hint="open it in Excel and save it again as .xlsx") from None
    try:
        sheets = []
        for name in wb.sheet_names:
            try:
                sheet = wb.get_sheet_by_name(name)
            except Exception as exc:  # a damaged sheet inside a readable workbook
                raise UserError(f"cannot read sheet {name!r}: {type(exc).__name__}: {exc}", file=rel,
                                hint="open it in Excel and save it again as .xlsx") from None
            sheets.append((name, _grid(sheet)))
    finally:
        wb.close()
    for title, rows in sheets:
        found = _header(rows, cfg)
        if found is None:
            # a short instructions sheet (填写说明) is expected; a longer one may hold data
            if sum(1 for r in rows if any(cell_text(v) for v in r)) >= 3:
                out.notes.append(f"sheet {title!r} skipped: no recognisable header row")
            continue
        hrow, mapping = found
        if "customer_name" not in mapping.values():
            # a template whose customer column is worded in a way params/sources.yaml does not know: its rows
            # would all load as nameless junk records
            unknown = [cell_text(v) for j, v in enumerate(rows[hrow]) if j not in mapping and cell_text(v)]
            column, wording = (unknown[0], unknown[0]) if unknown else ("a column", "<header>")
            raise UserError(f"sheet {title!r}, row {hrow + 1}: the header has no customer-name column "
                            f"(not recognised: {', '.join(unknown) or 'none'})", file=rel,
                            hint=f"if {column} holds the customer, add the line '{wording}: customer_name' "
                                 f"under sales_sheets: aliases: in params/sources.yaml, then run crm load again")
        n_headers += 1
        for i in range(hrow + 1, len(rows)):
            row = rows[i]
            vals = {c: cell_text(row[j]) if j < len(row) else None for j, c in mapping.items()}
            if not any(vals.values()):
                continue
            if (vals.get("customer_name") or "").strip() in cfg.total_labels:
                continue
            if _header([row], cfg) is not None:  # the header repeated (two tables on one sheet)
                continue
            excel_row = i + 1
            raw = {c: vals.get(c) for c in cfg.columns}
            raw.update(rep_id=rep_id, week=week, _sheet=title, _row=excel_row)
            out.raw.append(raw)
            out.typed.append(_type_row(raw, path.name, title, excel_row, ref, cfg, out.rejects))
    if n_headers == 0:
        raise UserError("no sheet has a recognisable header row (客户名称, 拜访日期, ...)", file=rel,
                        hint="use the 客户信息登记表 template, or add the header wording to params/sources.yaml")
    return out


def _type_row(raw: dict, name: str, sheet: str, row: int, ref: date, cfg: SalesSheets,
              rejects: list) -> dict:
    typed = {"record_key": f"{name}|{sheet}|{row}", "rep_id": raw["rep_id"], "week": raw["week"]}
    # the report date, when given, anchors month/day-only visit dates better than the file's week
    order = sorted(cfg.columns, key=lambda c: c != "report_date")
    for col in order:
        kind, v = cfg.columns[col], raw.get(col)
        try:
            if kind in ("date", "timestamp"):
                anchor = ref if col == "report_date" else (typed.get("report_date") or ref)
                val = dates.parse_date(v, anchor) if kind == "date" else dates.parse_datetime(v, anchor)
            elif kind == "amount_wan":
                val = parse_amount_wan(v)
            elif kind == "amount":
                val = parse_amount(v)
            else:
                val = v.strip() if v and v.strip() else None
        except ValueError as exc:
            rejects.append((sheet, row, col, v, getattr(exc, "reason", None) or str(exc)))
            val = None
        typed[col] = val
    return typed
