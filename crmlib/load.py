"""`crm load`: every raw file into DuckDB — typed, traced to file and row, incremental, all-or-nothing.

Flow per run (one transaction, under the writer lock of :func:`crmlib.db.writer`):
discover files → hash → skip content already loaded (same hash, under any name) → read each new or changed file into
``raw_*`` (a changed file first loses its earlier rows) → type the new raw rows into ``stg_*`` (latest
version per key wins) → record ``load_rejects`` and ``load_files``.

Unreadable files (empty, binary, damaged workbook, no header) are refused: reported, recorded in
``load_files`` with status ``refused`` (so the next run tries them again), and the run exits non-zero —
while the good files of the same run are loaded. If DuckDB fails on a file halfway through, the transaction
is rolled back and the run is redone without that file, so a bad file never leaves half its rows behind.
Grain and key of every table: ``docs/contracts.md``; types and rules: ``docs/tables.md``.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from tqdm import tqdm

from . import db, paths
from .errors import UserError
from .sources import csv_export, sales_sheets, stg
from .sources.config import SourcesConfig, load_config

PAUSE_ENV = "CRM_LOAD_TEST_PAUSE"  # tests: seconds to sleep once the raw rows are written
SALES = "sales_sheets"
MAX_FILES_SHOWN = 10   # files whose reject samples are printed
MAX_NOTES_SHOWN = 10


@dataclass
class FileResult:
    source: str
    file: str                 # path relative to the raw folder
    status: str               # loaded / replaced / skipped / refused / ignored
    rows: int = 0             # rows landed in raw_*
    rows_rejected: int = 0    # rows not loaded into stg_* (bad key, unparsable line)
    field_rejects: int = 0    # load_rejects rows for this file
    message: str = ""
    seconds: float = 0.0      # hashing + reading into raw_* (typing into stg_* is per source)


@dataclass
class LoadSummary:
    """What one `crm load` did; ``str()`` is the report printed by the CLI."""

    db_path: str
    files: list[FileResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # reject samples, refusals, notes
    seconds: float = 0.0
    stg_seconds: dict[str, float] = field(default_factory=dict)  # per source: raw → stg

    @property
    def read(self) -> list[FileResult]:
        return [f for f in self.files if f.status in ("loaded", "replaced")]

    @property
    def refused(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "refused"]

    @property
    def nothing_loaded(self) -> bool:
        return not self.read

    @property
    def exit_code(self) -> int:
        return 1 if self.refused else 0

    def per_source(self) -> list[dict]:
        out: dict[str, dict] = {}
        for f in self.files:
            r = out.setdefault(f.source, dict(source=f.source, read=0, skipped=0, refused=0, ignored=0,
                                              rows=0, rows_rejected=0, field_rejects=0,
                                              seconds=self.stg_seconds.get(f.source, 0.0)))
            r["seconds"] += f.seconds
            key = "read" if f.status in ("loaded", "replaced") else f.status
            r[key] += 1
            r["rows"] += f.rows
            r["rows_rejected"] += f.rows_rejected
            r["field_rejects"] += f.field_rejects
        return [out[k] for k in sorted(out)]

    def table(self) -> str:
        head = ["source", "files read", "skipped", "refused", "rows loaded", "rows rejected", "field problems"]
        body = [[r["source"], r["read"], r["skipped"], r["refused"], r["rows"] - r["rows_rejected"],
                 r["rows_rejected"], r["field_rejects"]] for r in self.per_source()
                if r["read"] + r["skipped"] + r["refused"]]   # ignored files are listed as problems
        if body:
            body.append(["total"] + [sum(row[i] for row in body) for i in range(1, len(head))])
        cells = [head] + [[f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in body]
        widths = [max(len(str(r[i])) for r in cells) for i in range(len(head))]
        lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                           enumerate(zip(row, widths, strict=True))) for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self) -> str:
        parts = []
        if self.nothing_loaded and not self.refused:
            n = sum(1 for f in self.files if f.status == "skipped")
            parts.append(f"Nothing new to load: all {n} files were loaded before with the same content.")
        parts.append(self.table())
        parts.append(f"database {self.db_path} ({self.seconds:.1f} s)")
        return "\n".join(parts)


@dataclass
class _Task:
    source: str
    path: Path
    rel: str


class _FileFailed(Exception):
    def __init__(self, rel: str, message: str):
        super().__init__(message)
        self.rel, self.message = rel, message


# --- discovery ------------------------------------------------------------------------------------
def discover(raw_dir: Path, cfg: SourcesConfig) -> tuple[list[_Task], list[FileResult]]:
    """Files to consider, in load order (per source: base file first, then by week), and ignored ones."""
    tasks, ignored = [], []
    by_folder: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, src in cfg.csv.items():
        by_folder[src.folder].append((name, src.files))
    folders = sorted(set(by_folder) | {cfg.sales_sheets.folder})
    for folder in folders:
        d = raw_dir / folder
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if not p.is_file() or p.name.startswith((".", "~$")) or p.name.lower().startswith("readme"):
                continue
            rel = p.relative_to(raw_dir).as_posix()
            if folder == cfg.sales_sheets.folder and p.suffix.lower() in (".xlsx", ".xls", ".xlsm"):
                tasks.append(_Task(SALES, p, rel))
                continue
            hit = [n for n, pat in by_folder.get(folder, []) if re.fullmatch(pat, p.name)]
            if hit:
                tasks.append(_Task(hit[0], p, rel))
            else:
                ignored.append(FileResult(folder, rel, "ignored",
                                          message=f"file {rel}: not a file name crm load knows; ignored "
                                                  f"(see params/sources.yaml)"))
    # files outside the source folders (a file dropped in data/raw/ itself, a folder of another name) are
    # listed too, so a misplaced delivery is not silently left out
    known = ", ".join(f"{f}/" for f in folders)
    for p in sorted(raw_dir.iterdir()) if raw_dir.is_dir() else []:
        if p.name.startswith((".", "~$")) or p.name.lower().startswith("readme") or p.name in folders:
            continue
        rel = p.relative_to(raw_dir).as_posix() + ("/" if p.is_dir() else "")
        ignored.append(FileResult("-", rel, "ignored",
                                  message=f"{'folder' if p.is_dir() else 'file'} {rel}: not in a source folder; "
                                          f"ignored (move it into one of {known})"))

    def key(t: _Task):
        m = re.search(r"_(\d{4}-W\d{2})\.[^.]+$", t.path.name)
        return (t.source, m.group(1) if m else "", t.path.name)

    return sorted(tasks, key=key), ignored


def file_hash(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --- schema ---------------------------------------------------------------------------------------
def _sales_types(cfg: SourcesConfig) -> list[tuple[str, str]]:
    return [(c, stg.SQL_TYPES[k]) for c, k in cfg.sales_sheets.columns.items()]


def _ensure_table(con, name: str, cols: list[tuple[str, str]]) -> None:
    body = ", ".join(f"{stg.q(c)} {t}" for c, t in cols)
    con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({body})")
    for c, t in cols:  # a column added to params/sources.yaml later
        con.execute(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {stg.q(c)} {t}")


_FILES_COLS = [
    ("source", "VARCHAR"), ("_source_file", "VARCHAR"), ("_file_hash", "VARCHAR"), ("bytes", "BIGINT"),
    ("status", "VARCHAR"), ("rows", "BIGINT"), ("rows_rejected", "BIGINT"), ("field_rejects", "BIGINT"),
    ("message", "VARCHAR"), ("_loaded_at", "TIMESTAMP")]
_REJECTS_COLS = [
    ("source", "VARCHAR"), ("_source_file", "VARCHAR"), ("_sheet", "VARCHAR"), ("_row", "BIGINT"),
    ("column_name", "VARCHAR"), ("value", "VARCHAR"), ("reason", "VARCHAR"), ("step", "VARCHAR"),
    ("_file_hash", "VARCHAR"), ("_loaded_at", "TIMESTAMP")]


def ensure_schema(con: duckdb.DuckDBPyConnection, cfg: SourcesConfig) -> None:
    lineage = list(stg.LINEAGE_TYPES.items())
    _ensure_table(con, "load_files", _FILES_COLS)
    _ensure_table(con, "load_rejects", _REJECTS_COLS)
    for src in cfg.csv.values():
        _ensure_table(con, src.raw_table, [(c, "VARCHAR") for c in src.columns] + lineage)
        _ensure_table(con, src.stg_table, stg.stg_columns(src))
    sc = cfg.sales_sheets
    _ensure_table(con, sc.raw_table, [(c, "VARCHAR") for c in sc.columns]
                  + [(c, "VARCHAR") for c in sales_sheets.RAW_EXTRA] + lineage)
    _ensure_table(con, sc.stg_table, [(c, "VARCHAR") for c in sales_sheets.STG_EXTRA] + _sales_types(cfg)
                  + lineage)


# --- one run --------------------------------------------------------------------------------------
def _pause_once(state: dict) -> None:
    secs = os.environ.get(PAUSE_ENV)
    if secs and not state.get("paused"):
        state["paused"] = True
        print(f"crm load: pausing {secs} s ({PAUSE_ENV})", file=sys.stderr, flush=True)
        time.sleep(float(secs))


def _delete_file_rows(con, rel: str, tables: list[str]) -> int:
    n = 0
    for t in tables:
        n += con.execute(f"DELETE FROM {t} WHERE _source_file = ?", [rel]).fetchone()[0]
    con.execute("DELETE FROM load_rejects WHERE _source_file = ?", [rel])
    return n


def _insert_rows(con, table: str, rows: list[dict], cols: list[tuple[str, str]]) -> None:
    if not rows:
        return
    arrow_types = {"VARCHAR": pa.string(), "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"),
                   "DOUBLE": pa.float64(), "INTEGER": pa.int32(), "BIGINT": pa.int64()}
    schema = pa.schema([(c, arrow_types[t]) for c, t in cols])
    tbl = pa.Table.from_pylist(rows, schema=schema)
    con.register("_rows_in", tbl)
    names = ", ".join(stg.q(c) for c, _t in cols)
    con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _rows_in")
    con.unregister("_rows_in")


def _run(con, cfg: SourcesConfig, raw_dir: Path, tasks: list[_Task], hashes: dict[str, str],
         refused: dict[str, str], progress: bool, tmp_dir: Path,
         hash_seconds: dict[str, float]) -> tuple[list[FileResult], dict[str, float]]:
    con.execute("SET enable_progress_bar = false")
    # rows carry their file and line (_row): no table needs DuckDB to keep insertion order, and without
    # it big inserts write row groups in parallel
    con.execute("SET SESSION preserve_insertion_order = false")
    ensure_schema(con, cfg)
    prior = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT _source_file, _file_hash, status FROM load_files").fetchall()}
    loaded_at = datetime.now().replace(microsecond=0)
    results: dict[str, FileResult] = {}
    notes: dict[str, list[str]] = defaultdict(list)   # per file: skipped sheets, unknown columns, ...
    todo = []
    # content already in the database, by hash → the file that brought it (a file whose content changes in
    # this run no longer holds its old content; a file gone from the folder still does: its rows stay)
    held = {h: f for f, (h, st) in prior.items() if st == "loaded" and hashes.get(f, h) == h}
    for t in tasks:
        h = hashes[t.rel]
        if t.rel in refused:
            results[t.rel] = FileResult(t.source, t.rel, "refused", message=refused[t.rel])
        elif prior.get(t.rel) == (h, "loaded"):
            results[t.rel] = FileResult(t.source, t.rel, "skipped")
        elif held.get(h, t.rel) != t.rel:
            # the same file sent again under another name (a re-sent call log, a rep's sheet named for the
            # wrong week): its rows would be counted twice
            results[t.rel] = FileResult(t.source, t.rel, "skipped", message=(
                f"file {t.rel}: same content as {held[h]}, already loaded; skipped (delete it, or send the "
                f"file it was meant to be)"))
        else:
            todo.append(t)
            held[h] = t.rel

    new_files: dict[str, list[str]] = defaultdict(list)
    rebuild: set[str] = set()
    sc = cfg.sales_sheets
    sales_raw, sales_typed, sales_rej = [], [], []
    pause: dict = {}
    bar = tqdm(total=sum(t.path.stat().st_size for t in todo), unit="B", unit_scale=True, desc="crm load",
               disable=not progress or not todo, file=sys.stderr, leave=False)
    for t in todo:
        t0 = time.perf_counter()
        bar.set_postfix_str(t.rel[-40:])
        h = hashes[t.rel]
        status = "replaced" if t.rel in prior and prior[t.rel][1] == "loaded" else "loaded"
        try:
            if t.source == SALES:
                try:
                    res = sales_sheets.read(t.path, t.rel, sc)
                except UserError as exc:
                    results[t.rel] = FileResult(t.source, t.rel, "refused", message=str(exc))
                    continue
                if t.rel in prior:
                    _delete_file_rows(con, t.rel, [sc.raw_table, sc.stg_table])
                base = dict(_source_file=t.rel, _file_hash=h, _loaded_at=loaded_at)
                sales_raw += [{**r, **base} for r in res.raw]
                sales_typed += [{**ty, **base, "_sheet": r["_sheet"], "_row": r["_row"]}
                                for r, ty in zip(res.raw, res.typed, strict=True)]
                sales_rej += [dict(source=SALES, _source_file=t.rel, _sheet=s, _row=row, column_name=c,
                                   value=v, reason=why, step="type", _file_hash=h, _loaded_at=loaded_at)
                              for s, row, c, v, why in res.rejects]
                notes[t.rel] += res.notes
                if not res.raw:
                    notes[t.rel].append("no data rows")
                results[t.rel] = FileResult(t.source, t.rel, status, rows=len(res.raw),
                                            field_rejects=len(res.rejects))
            else:
                src = cfg.csv[t.source]
                try:
                    plan = csv_export.inspect(t.path, t.rel, src, tmp_dir,
                                              int(cfg.encoding_full_check_mb * 2**20),
                                              int(cfg.encoding_sample_mb * 2**20))
                except UserError as exc:
                    results[t.rel] = FileResult(t.source, t.rel, "refused", message=str(exc))
                    continue
                if t.rel in prior and _delete_file_rows(con, t.rel, [src.raw_table, src.stg_table]):
                    rebuild.add(t.source)  # earlier versions of its keys may win again
                n, line_rejects = csv_export.insert_raw(con, plan, src, t.rel, h, loaded_at)
                _insert_rows(con, "load_rejects", [  # one statement, not one per line
                    dict(source=t.source, _source_file=t.rel, _sheet=None, _row=line, column_name=col, value=val,
                         reason=why, step="read", _file_hash=h, _loaded_at=loaded_at)
                    for line, col, val, why in line_rejects], _REJECTS_COLS)
                notes[t.rel] += plan.notes
                if n == 0 and not line_rejects:
                    notes[t.rel].append("no data rows (header only)")
                new_files[t.source].append(t.rel)
                results[t.rel] = FileResult(t.source, t.rel, status, rows=n, rows_rejected=len(line_rejects))
        except Exception as exc:  # DuckDB failed mid-file: the transaction is lost, redo without it
            raise _FileFailed(t.rel, f"file {t.rel}: cannot be read: {str(exc).splitlines()[0]}") from exc
        finally:
            bar.update(t.path.stat().st_size)
            if t.rel in results:
                results[t.rel].seconds = time.perf_counter() - t0 + hash_seconds.get(t.rel, 0.0)
    bar.close()
    if todo:
        _pause_once(pause)  # raw rows written, stg not yet: the middle of the transaction

    # sales sheets: typed in Python already
    t_sales = time.perf_counter()
    lineage = list(stg.LINEAGE_TYPES.items())
    _insert_rows(con, sc.raw_table, sales_raw, [(c, "VARCHAR") for c in sc.columns]
                 + [(c, "VARCHAR") for c in sales_sheets.RAW_EXTRA] + lineage)
    _insert_rows(con, sc.stg_table, sales_typed, [(c, "VARCHAR") for c in sales_sheets.STG_EXTRA]
                 + _sales_types(cfg) + lineage)
    _insert_rows(con, "load_rejects", sales_rej, _REJECTS_COLS)

    # CSV sources: raw → stg in SQL
    stg_seconds = {SALES: time.perf_counter() - t_sales}
    for name, files in new_files.items():
        t0 = time.perf_counter()
        src = cfg.csv[name]
        stg.type_into_stg(con, src, name, None if name in rebuild else files)
        stg_seconds[name] = time.perf_counter() - t0

    read_now = [r for r in results.values() if r.status in ("loaded", "replaced")]
    if read_now:
        counts = {r[0]: r[1:] for r in con.execute(
            """SELECT _source_file, count(*),
                      count(DISTINCT CASE WHEN step = 'type' AND reason LIKE '%row not loaded%' THEN _row END)
               FROM load_rejects WHERE _source_file IN (SELECT unnest(?::VARCHAR[])) GROUP BY ALL""",
            [[r.file for r in read_now]]).fetchall()}
        for r in read_now:
            r.message = "; ".join(notes[r.file])
            n_rej, n_bad_key = counts.get(r.file, (0, 0))
            r.field_rejects = n_rej
            r.rows_rejected += n_bad_key
    done = [(t, results[t.rel]) for t in tasks if results[t.rel].status != "skipped"]
    if done:  # two statements for all files (thousands of workbooks), not two per file
        con.execute("DELETE FROM load_files WHERE _source_file IN (SELECT unnest(?::VARCHAR[]))",
                    [[t.rel for t, _r in done]])
        _insert_rows(con, "load_files", [
            dict(source=t.source, _source_file=t.rel, _file_hash=hashes[t.rel], bytes=t.path.stat().st_size,
                 status="refused" if r.status == "refused" else "loaded", rows=r.rows,
                 rows_rejected=r.rows_rejected, field_rejects=r.field_rejects, message=r.message or None,
                 _loaded_at=loaded_at) for t, r in done], _FILES_COLS)
    return [results[t.rel] for t in tasks], stg_seconds


def _reject_samples(db_path: Path, files: list[str], per_file: int = 5) -> list[str]:
    if not files:
        return []
    con = db.connect(db_path, read_only=True)
    try:
        rows = con.execute(
            """SELECT _source_file, _sheet, _row, column_name, value, reason, n FROM (
                 SELECT *, row_number() OVER (PARTITION BY _source_file ORDER BY _row, column_name) AS k,
                        count(*) OVER (PARTITION BY _source_file) AS n
                 FROM load_rejects WHERE _source_file IN (SELECT unnest(?::VARCHAR[])))
               WHERE k <= ? ORDER BY _source_file, _row, column_name""", [files, per_file]).fetchall()
    finally:
        con.close()
    out, shown = [], defaultdict(int)
    for f, sheet, row, col, val, why, n in rows:
        where = ", ".join(p for p in (f"file {f}", f"sheet {sheet}" if sheet else "", f"row {row}",
                                      f"column {col}" if col else "") if p)
        v = "" if val is None else f" (value {val[:60]!r})"
        out.append(f"{where}: {why}{v}")
        shown[f] += 1
        if shown[f] == min(per_file, n) and n > per_file:
            out.append(f"file {f}: ... and {n - per_file} more problems (table load_rejects)")
    return out


def _scratch_dir(db_path: Path):
    """A scratch folder for converted copies of input files, beside the database (``.load-tmp/``): a load
    killed midway (SIGKILL, out of memory) cannot clean up, and at ``--scale 100`` its copies are
    gigabytes. Called while holding the database's writer lock, so no running load of this database owns
    any of its scratch folders: those a dead load left are removed (folders are tagged with the database
    name's hash, as another database in the same folder has its own lock). Falls back to the system temp
    folder when the database folder is read-only."""
    tag = hashlib.sha1(db_path.name.encode()).hexdigest()[:8]
    base = db_path.parent / ".load-tmp"
    try:
        base.mkdir(parents=True, exist_ok=True)
        for old in base.glob(f"crm-load-*-{tag}-*"):
            shutil.rmtree(old, ignore_errors=True)
        return tempfile.TemporaryDirectory(prefix=f"crm-load-{os.getpid()}-{tag}-", dir=base)
    except OSError:
        return tempfile.TemporaryDirectory(prefix="crm-load-")


def load_all(raw_dir: str | Path | None = None, db_path: str | Path | None = None, progress: bool = True,
             wait_s: float = 10.0, config: SourcesConfig | None = None) -> LoadSummary:
    """Load every new or changed raw file; see the module doc. Returns what happened."""
    started = time.perf_counter()
    raw_dir = Path(raw_dir) if raw_dir else paths.raw_dir()
    db_path = Path(db_path) if db_path else paths.db_path()
    if not raw_dir.is_dir():
        raise UserError("raw data folder not found", file=str(raw_dir),
                        hint="pass --raw, or generate demo data with `crm demo-data`")
    cfg = config or load_config()
    tasks, ignored = discover(raw_dir, cfg)
    if not tasks:
        others = f"; {len(ignored)} other file(s) ignored, e.g. {ignored[0].file}" if ignored else ""
        raise UserError(f"no source files found{others}", file=str(raw_dir),
                        hint="point --raw at the folder that holds crm/, erp/, sales_sheets/, callcenter/, "
                             "service/ and marketing/, with the file names data/raw/README.md lists")
    hashes, hash_seconds = {}, {}
    for t in tqdm(tasks, desc="hashing", unit="file", leave=False, disable=not progress, file=sys.stderr):
        t0 = time.perf_counter()
        hashes[t.rel] = file_hash(t.path)
        hash_seconds[t.rel] = time.perf_counter() - t0
    refused: dict[str, str] = {}
    for _attempt in range(len(tasks) + 1):
        try:
            with db.writer(db_path, wait_s=wait_s) as con, _scratch_dir(db_path) as tmp:
                results, stg_seconds = _run(con, cfg, raw_dir, tasks, hashes, refused, progress, Path(tmp),
                                            hash_seconds)
            break
        except _FileFailed as exc:
            refused[exc.rel] = exc.message
    summary = LoadSummary(str(db_path), results + ignored, stg_seconds=stg_seconds)
    summary.problems += [f.message for f in summary.refused]
    with_rejects = [f.file for f in summary.read if f.field_rejects]
    summary.problems += _reject_samples(db_path, with_rejects[:MAX_FILES_SHOWN])
    if len(with_rejects) > MAX_FILES_SHOWN:
        summary.problems.append(f"... and problems in {len(with_rejects) - MAX_FILES_SHOWN} more files "
                                f"(table load_rejects)")
    notes = [f"file {f.file}: {n}" for f in summary.read for n in f.message.split("; ") if n
             and not n.startswith("encoding")]
    summary.problems += notes[:MAX_NOTES_SHOWN]
    if len(notes) > MAX_NOTES_SHOWN:
        summary.problems.append(f"... and {len(notes) - MAX_NOTES_SHOWN} more notes (table load_files, "
                                f"column message)")
    summary.problems += [f.message for f in ignored]
    summary.problems += [f.message for f in summary.files if f.status == "skipped" and f.message]
    summary.seconds = time.perf_counter() - started
    return summary


# --- CLI ------------------------------------------------------------------------------------------
def _cmd(args) -> int:
    try:
        summary = load_all(args.raw, args.db, progress=not args.no_progress, wait_s=args.wait)
    except duckdb.Error as exc:
        raise UserError(f"database error, nothing was changed: {str(exc).splitlines()[0]}",
                        file=str(args.db or paths.db_path())) from None
    for p in summary.problems:
        print(f"crm load: {p}", file=sys.stderr)
    print(summary)
    if summary.refused:
        print(f"crm load: {len(summary.refused)} file(s) refused; they will be tried again next run",
              file=sys.stderr)
    return summary.exit_code


def register(subparsers) -> None:
    p = subparsers.add_parser("load", help="load new/changed raw files into the database",
                              description=__doc__.split("\n")[0])
    p.add_argument("--raw", default=None, help="raw data folder (default data/raw)")
    p.add_argument("--db", default=None, help="database file (default data/curated/crm.duckdb)")
    p.add_argument("--wait", type=float, default=10.0,
                   help="seconds to wait for another running load before giving up (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)
