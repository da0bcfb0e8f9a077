"""Reader for system exports in CSV (crm/, callcenter/, service/, erp/): file → ``raw_<dataset>`` rows.

The CSV is parsed by DuckDB's ``read_csv`` (all VARCHAR, no sniffing: comma, double quotes) straight into
the raw table, so the big files never pass through Python rows. Headers are mapped to canonical columns
through ``params/sources.yaml``; a GBK/GB18030 file is first transcoded to a temporary UTF-8 copy.
Lines DuckDB cannot parse (wrong number of fields, undecodable bytes) are returned as rejects.
``_row`` is the line number with the header as line 1 (exact unless a quoted field spans lines).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from .. import encoding
from ..errors import UserError
from .config import CsvSource

LINEAGE = ["_source_file", "_sheet", "_row", "_file_hash", "_loaded_at"]


@dataclass
class CsvPlan:
    path: Path                       # the file DuckDB reads (a UTF-8 copy for GBK input)
    encoding: str
    n_fields: int
    mapping: dict[int, str]          # field position → canonical column
    notes: list[str] = field(default_factory=list)


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def inspect(path: Path, rel: str, src: CsvSource, tmp_dir: Path, full_check_bytes: int,
            sample_bytes: int) -> CsvPlan:
    """Check a CSV before loading: not empty, UTF-8/GBK text, a header naming the key columns."""
    if path.stat().st_size == 0:
        raise UserError("file is empty (0 bytes)", file=rel,
                        hint="if it is still being copied, run `crm load` again when it is complete")
    try:
        det = encoding.detect(path, full_check_bytes, sample_bytes)
    except UserError as exc:
        raise UserError(str(exc).split(": ", 1)[-1], file=rel) from None
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    text = head.decode(encoding.python_codec(det), errors="ignore")
    first = next(csv.reader(io.StringIO(text)), None)
    if not first or not any(h.strip() for h in first):
        raise UserError("no header line", file=rel, row=1, hint="the first line must name the columns")
    mapping: dict[int, str] = {}
    unknown, notes = [], []
    for i, h in enumerate(first):
        canon = src.canonical(h)
        if canon is None:
            if h.strip():
                unknown.append(h.strip())
        elif canon in mapping.values():
            notes.append(f"column {h.strip()!r} repeats {canon}, the first one is kept")
        else:
            mapping[i] = canon
    missing_key = [k for k in src.key if k not in mapping.values()]
    seps = [s for s in (";", "\t", "|") if len(first) == 1 and s in first[0]]
    if missing_key and seps:
        shown = "a tab" if seps[0] == "\t" else repr(seps[0])
        raise UserError(f"columns are separated by {shown}, not by commas", file=rel, row=1,
                        hint="export the file again as CSV with ',' between columns")
    if missing_key:
        raise UserError(f"header has no column for the key {', '.join(missing_key)} "
                        f"(header: {', '.join(h.strip() for h in first)[:200]})", file=rel, row=1,
                        hint="add the wording to params/sources.yaml (aliases) if it is a new export format")
    missing = [c for c in src.columns if c not in mapping.values()]
    if unknown:
        notes.append(f"columns not loaded (unknown): {', '.join(unknown)}")
    if missing:
        notes.append(f"columns missing (left empty): {', '.join(missing)}")
    read_path = path
    if det.encoding != "utf-8":
        read_path = tmp_dir / (Path(rel).name + ".utf8.csv")
        encoding.transcode_to_utf8(path, read_path, det.encoding)
        notes.append(f"encoding {det.encoding}")
    return CsvPlan(read_path, det.encoding, len(first), mapping, notes)


def insert_raw(con: duckdb.DuckDBPyConnection, plan: CsvPlan, src: CsvSource, rel: str, file_hash: str,
               loaded_at) -> tuple[int, list[tuple]]:
    """Append the file's rows to the raw table; returns (rows inserted, rejects for unparsable lines).

    Rejects are ``(row, column, value, reason)``. Raises ``duckdb.Error`` if DuckDB cannot read the file.
    """
    cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(plan.n_fields))
    by_canon = {c: i for i, c in plan.mapping.items()}
    select = ", ".join(f"c{by_canon[c]}" if c in by_canon else "NULL" for c in src.columns)
    target = ", ".join(f'"{c}"' for c in list(src.columns) + LINEAGE)
    con.execute("DROP TABLE IF EXISTS _csv_rejects; DROP TABLE IF EXISTS _csv_scans")
    # Line numbers without WITH ORDINALITY (which makes the whole insert single-threaded): an insert that
    # preserves insertion order gives the file's rows consecutive row ids in file order, even when DuckDB
    # reads the file in parallel; _row is then the row id's offset from the file's first row, set by one
    # UPDATE (tests compare it with the line numbers of files of every shape).
    # (not reset in a `finally`: after a failed insert the transaction is aborted, the reset would fail and
    # hide the real error; the load's next run sets the writer's setting again)
    con.execute("SET SESSION preserve_insertion_order = true")
    n = con.execute(
        f"""INSERT INTO {src.raw_table} ({target})
        SELECT {select}, ?, NULL, NULL, ?, ?
        FROM read_csv({_sql_str(str(plan.path))}, auto_detect=false, header=true, delim=',', quote='"',
                      escape='"', columns={{{cols}}}, null_padding=false, store_rejects=true,
                      rejects_table='_csv_rejects', rejects_scan='_csv_scans')""",
        [rel, file_hash, loaded_at],
    ).fetchone()[0]
    con.execute("SET SESSION preserve_insertion_order = false")
    if n:
        con.execute(f"""UPDATE {src.raw_table} SET _row = rowid - b.first + 2
            FROM (SELECT min(rowid) AS first FROM {src.raw_table} WHERE _source_file = ? AND _row IS NULL) b
            WHERE _source_file = ? AND _row IS NULL""", [rel, rel])
    bad = con.execute(
        "SELECT line, column_name, csv_line, error_type, error_message FROM _csv_rejects ORDER BY line"
    ).fetchall()
    con.execute("DROP TABLE IF EXISTS _csv_rejects; DROP TABLE IF EXISTS _csv_scans")
    rejects, lines = [], []
    for line, column, csv_line, etype, msg in bad:
        if lines and lines[-1] == line:  # one reject per line is enough
            continue
        lines.append(line)
        canon = plan.mapping.get(int(column[1:])) if column and column.startswith("c") and column[1:].isdigit() else None
        reason = {"MISSING COLUMNS": "too few fields", "TOO MANY COLUMNS": "too many fields",
                  "INVALID ENCODING": "undecodable bytes"}.get(etype, str(etype).lower())
        rejects.append((int(line), canon, csv_line, f"line not loaded: {reason} ({msg.splitlines()[0]})"))
    if lines:
        _shift_rows(con, src.raw_table, rel, lines)
    return int(n), rejects


def _shift_rows(con: duckdb.DuckDBPyConnection, table: str, rel: str, lines: list[int]) -> None:
    """Accepted rows after rejected lines got line numbers counting only accepted rows: fix them at once.

    Shifting the rows at or after each rejected line L_1 < L_2 < … in turn moves a row first numbered r
    by the number of i with L_i - (i - 1) <= r (those thresholds never decrease), so one ASOF join on the
    largest threshold <= r does it.
    """
    last = {int(line) - i: i + 1 for i, line in enumerate(sorted(lines))}  # consecutive bad lines: keep the last
    shifts = sorted(last.items())
    con.execute("DROP TABLE IF EXISTS _row_shift")
    con.execute("CREATE TEMP TABLE _row_shift (v BIGINT, k BIGINT)")
    con.execute("INSERT INTO _row_shift SELECT unnest(?::BIGINT[]), unnest(?::BIGINT[])",
                [[v for v, _k in shifts], [k for _v, k in shifts]])
    con.execute(
        f"""UPDATE {table} SET _row = {table}._row + u.k
        FROM (SELECT r.rowid AS rid, s.k FROM {table} r ASOF JOIN _row_shift s ON r._row >= s.v
              WHERE r._source_file = ? AND r._row >= ?) u
        WHERE {table}.rowid = u.rid""", [rel, shifts[0][0]])
    con.execute("DROP TABLE _row_shift")
