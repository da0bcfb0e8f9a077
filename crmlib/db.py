"""DuckDB connection, transactions and a writer lock.

DuckDB allows one writing process per database file. Writers take :func:`writer` which holds an
exclusive ``flock`` on ``<db>.lock``; a second writer waits ``wait_s`` seconds, then gets a clear
:class:`LockedError`. All changes inside ``writer`` are one transaction: an exception (or a killed
process) leaves the database as it was.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from . import paths
from .errors import LockedError, UserError, one_line


def connect(db: str | Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    db = Path(db) if db else paths.db_path()
    if read_only and not db.exists():
        raise UserError("database not found", file=str(db), hint="run `crm load` first")
    if db.is_dir():
        raise UserError("is a folder, not a database file", file=str(db),
                        hint="pass the .duckdb file, e.g. data/curated/crm.duckdb")
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        text = str(exc)
        if "not a valid DuckDB database" in text:
            raise UserError("not a DuckDB database", file=str(db),
                            hint="pass the database `crm load` wrote (data/curated/crm.duckdb by default); "
                                 "a new path makes a new database") from None
        if "Could not set lock" in text or "Conflicting lock" in text:
            raise LockedError(f"database is in use by another process: {exc}", file=str(db),
                              hint="wait for the running load/resolve to finish") from None
        raise UserError(f"cannot open the database: {one_line(exc)}", file=str(db),
                        hint="check the path and that you may read and write it") from None
    except duckdb.Error as exc:  # e.g. a damaged file ("Corrupt database file")
        raise UserError(f"cannot open the database: {one_line(exc)}", file=str(db),
                        hint="restore it from a backup, or rebuild it with `crm load` and `crm resolve` into a "
                             "new file") from None


def database_file(con: duckdb.DuckDBPyConnection) -> str:
    """The file behind a connection (for messages); ':memory:' for an in-memory database."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return (row[0] if row and row[0] else ":memory:")


@contextmanager
def writer(db: str | Path | None = None, wait_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Exclusive, transactional write access to the database."""
    db = Path(db) if db else paths.db_path()
    db.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db.with_name(db.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"another crm process is writing to the database (waited {wait_s:.0f} s)",
                        file=str(db), hint="try again when it has finished") from None
                time.sleep(0.2)
        con = connect(db)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    # fetchall, not fetchone: under duckdb 2 an unfinished result blocks a later con.register()
    return con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchall()[0][0] > 0


def columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """Column names of ``table`` (empty when it does not exist)."""
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
