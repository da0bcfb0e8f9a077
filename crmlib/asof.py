"""The report date ("as of") every analysis uses when none is given, defined once.

Default: the newest *system-stamped* date in the database — order dates (ERP), call and ticket times,
opportunity stage entries — not after today. Reps' hand-typed sheet dates do not count (a typo puts a
visit years in the future, and a Sunday visit is reported on Monday), nor do dates beyond today.
The weekly run, each notebook and each ``crm`` sub-command resolve ``as_of`` with :func:`resolve`, so an
analyst who leaves ``as_of = None`` sees the same week in every notebook.
"""
from __future__ import annotations

import datetime as dt

import duckdb

from .db import table_exists
from .errors import UserError, warn

# (table, date column) pairs whose newest value not after today is the default as_of
SYSTEM_DATES = [
    ("stg_orders", "order_date"),
    ("stg_calls", "called_at"),
    ("stg_tickets", "opened_at"),
    ("stg_crm_opportunity_stages", "entered_at"),
]


def _system_date(con: duckdb.DuckDBPyConnection, agg: str, until: str | None = None,
                 params: tuple = ()) -> dt.date | None:
    """``agg`` (min or max) of the system-stamped dates (:data:`SYSTEM_DATES`), only those on or before the SQL
    expression ``until`` when given (``params`` fill its ``?``); None when no such table holds a row."""
    parts = [f"SELECT {agg}(CAST({col} AS DATE)) AS d FROM {table}"
             + (f" WHERE CAST({col} AS DATE) <= {until}" if until else "")
             for table, col in SYSTEM_DATES if table_exists(con, table)]
    if not parts:
        return None
    return con.execute(f"SELECT {agg}(d) FROM ({' UNION ALL '.join(parts)})", list(params) * len(parts)).fetchone()[0]


def newest_data_date(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The newest system-stamped date not after today, or None when no such table holds a row."""
    return _system_date(con, "max", "current_date")


def newest_record_until(con: duckdb.DuckDBPyConnection, day: dt.date) -> dt.date | None:
    """The newest system-stamped date on or before ``day`` (None when there is none)."""
    return _system_date(con, "max", "?", (day,))


def oldest_data_date(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The oldest system-stamped date (:data:`SYSTEM_DATES`), or None when no such table holds a row."""
    return _system_date(con, "min")


# an explicit as_of up to this many days after the newest record is an ordinary "the week just ended" run
AFTER_DATA_GRACE_DAYS = 7


def after_data_warning(con: duckdb.DuckDBPyConnection, day: dt.date, what: str = "as_of") -> str | None:
    """A warning (one line) when the newest system-stamped record on or before ``day`` is more than
    :data:`AFTER_DATA_GRACE_DAYS` older than it, else None.

    Not an error: a run may be dated after a quiet spell on purpose. But every figure then counts the days
    in between as days without activity — customers drift to 流失, recency grows, rates take in hand-typed
    future visits — so the user should know.
    """
    newest = newest_record_until(con, day)
    if newest is None or (day - newest).days <= AFTER_DATA_GRACE_DAYS:
        return None
    return (f"{what} {day} is {(day - newest).days} days after the newest system-stamped record ({newest}); "
            "the days in between count as days without orders, calls, tickets or stage changes "
            "(leave it out to report as of the newest record)")


def check_not_before_data(con: duckdb.DuckDBPyConnection, day: dt.date | None, what: str = "as_of",
                          other_way: str = "leave it out for the newest week", shown_as: str | None = None) -> None:
    """A clear error, naming the database (``shown_as``, else the connection's file), when ``day`` lies before
    the oldest system-stamped record: no analysis has anything to show then, and each would fail in its own
    way (no opportunities, no customers yet). ``other_way``: what else the user can do, for the hint."""
    from .db import database_file

    oldest = oldest_data_date(con) if day is not None else None
    if oldest is not None and day < oldest:
        newest = newest_data_date(con) or oldest
        raise UserError(f"{what} {day} is before the oldest record in the database ({oldest}): there is "
                        "nothing to report for that date", file=shown_as or database_file(con),
                        hint=f"give a date from {oldest} to {newest}, or {other_way}")


def parse(as_of: str | dt.date | dt.datetime | None, what: str = "as_of") -> dt.date | None:
    """``as_of`` as a date (None stays None); a clear error for anything else."""
    if as_of is None or (isinstance(as_of, str) and not as_of.strip()):
        return None
    if isinstance(as_of, dt.datetime):  # also pandas.Timestamp
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    try:
        return dt.date.fromisoformat(str(as_of).strip())
    except ValueError:
        raise UserError(f"{what} {as_of!r} is not a date", hint="write it as YYYY-MM-DD") from None


def resolve(con: duckdb.DuckDBPyConnection, as_of: str | dt.date | None, what: str = "as_of",
            command: str | None = None, other_way: str = "leave it out for the newest week") -> dt.date:
    """The given date, or (None) the database's default as of :func:`newest_data_date`. ``command``: the
    `crm` sub-command resolving a date its user gave, which then refuses a date before the records
    (:func:`check_not_before_data`, whose hint ends with ``other_way``) and warns (:func:`after_data_warning`,
    one line on stderr) when the date lies long after them."""
    day = parse(as_of, what)
    if day is not None:
        if command:
            check_not_before_data(con, day, what, other_way)
            if note := after_data_warning(con, day, what):
                warn(command, note)
        return day
    day = newest_data_date(con)
    if day is None:
        from .db import database_file
        raise UserError("no dated records in the database (orders, calls, tickets, opportunity stages)",
                        file=database_file(con),
                        hint="run `crm load` first, or give the date explicitly (YYYY-MM-DD)")
    return day
