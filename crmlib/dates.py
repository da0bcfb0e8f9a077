"""Dates as people type them, parsed one way in Python and in DuckDB SQL.

Accepted: ``2026-11-23``, ``2026/11/23``, ``2026.11.23``, ``2026年11月23日``, ``20261123``, each optionally
followed by a time ``HH:MM[:SS]``; Excel serial numbers (days since 1899-12-30, as numbers or digit
strings in 20000..80000, i.e. 1954..2119); ``datetime``/``date`` objects (xlsx cells); and month/day only
(``11/23``, ``11-23``, ``11月23日``) when a reference date is given: the year is the one that puts the date
nearest to the reference (so ``12/30`` on a sheet of 2027-W01 is 2026-12-30).

Well-formed but impossible dates (``2026/13/45``, ``2026-02-30``) raise :class:`DateError` with reason
"impossible date"; anything else unreadable raises it with reason "unparsable date". Blank is ``None``.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

EXCEL_EPOCH = date(1899, 12, 30)  # Excel's day 0 (it counts a 1900-02-29 that never existed)
SERIAL_MIN, SERIAL_MAX = 20000, 80000

_FULL = re.compile(
    r"(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:[\sT]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?)?"
)
_COMPACT = re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})")
_MONTH_DAY = re.compile(r"(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?")
_SERIAL = re.compile(r"\d{5}(?:\.\d+)?")


class DateError(ValueError):
    """A value that should be a date and is not; ``reason`` is short and stable (used in load_rejects)."""

    def __init__(self, reason: str, value: object):
        self.reason, self.value = reason, value
        super().__init__(f"{reason}: {value!r}")


def _nearest_year(month: int, day: int, ref: date, value: object) -> date:
    best = None
    for year in (ref.year - 1, ref.year, ref.year + 1):
        try:
            cand = date(year, month, day)
        except ValueError:
            continue
        if best is None or abs((cand - ref).days) < abs((best - ref).days):
            best = cand
    if best is None:
        raise DateError("impossible date", value)
    return best


def parse_datetime(value: object, ref: date | None = None) -> datetime | None:
    """Parse a typed date/time (see module doc); ``ref`` resolves month/day without a year."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, bool):
        raise DateError("unparsable date", value)
    if isinstance(value, (int, float)):
        if SERIAL_MIN <= value <= SERIAL_MAX:
            return datetime.combine(EXCEL_EPOCH, datetime.min.time()) + timedelta(days=float(value))
        raise DateError("unparsable date", value)
    text = str(value).strip()
    if not text:
        return None
    m = _FULL.fullmatch(text)
    if m:
        try:
            return datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(m["H"] or 0), int(m["M"] or 0),
                            int(m["S"] or 0))
        except ValueError:
            raise DateError("impossible date", value) from None
    m = _COMPACT.fullmatch(text)
    if m:
        try:
            return datetime(int(m["y"]), int(m["m"]), int(m["d"]))
        except ValueError:
            raise DateError("impossible date", value) from None
    if _SERIAL.fullmatch(text) and SERIAL_MIN <= float(text) <= SERIAL_MAX:
        return datetime.combine(EXCEL_EPOCH, datetime.min.time()) + timedelta(days=float(text))
    m = _MONTH_DAY.fullmatch(text)
    if m:
        if ref is None:
            raise DateError("date without year", value)
        d = _nearest_year(int(m["m"]), int(m["d"]), ref, value)
        return datetime(d.year, d.month, d.day)
    raise DateError("unparsable date", value)


def parse_date(value: object, ref: date | None = None) -> date | None:
    """Like :func:`parse_datetime` but returns the date part."""
    dt = parse_datetime(value, ref)
    return dt.date() if dt is not None else None


# --- the same rules in DuckDB SQL, for the big CSV files (no per-row Python) -----------------------
_SQL_FORMATS = [
    "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日",
    "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M",
    "%Y-%m-%d %H:%M:%S.%f", "%Y%m%d",
]
_SQL_FULL_RE = r"\d{8}|\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?([\sT]+\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"


def sql_timestamp(expr: str) -> str:
    """SQL expression: the VARCHAR ``expr`` as TIMESTAMP (NULL when blank or not a date).

    ``try_strptime`` with the list of formats costs ~2 µs a value; the common form is tried alone first
    (~0.15 µs): ``-`` or ``/`` separated, date only up to 10 characters, else date and time. Same result:
    a value such a form parses is no Excel serial, and no format before it in the list parses it.
    """
    fmts = ", ".join(f"'{f}'" for f in _SQL_FORMATS)
    t = f"trim({expr})"
    return (
        f"coalesce(CASE WHEN contains({t}, '/') THEN (CASE WHEN length({t}) <= 10 THEN try_strptime({t}, '%Y/%m/%d') "
        f"ELSE try_strptime({t}, '%Y/%m/%d %H:%M:%S') END) "
        f"WHEN length({t}) <= 10 THEN try_strptime({t}, '%Y-%m-%d') "
        f"ELSE try_strptime({t}, '%Y-%m-%d %H:%M:%S') END, "
        f"CASE WHEN regexp_full_match({t}, '\\d{{5}}(\\.\\d+)?') "
        f"AND TRY_CAST({t} AS DOUBLE) BETWEEN {SERIAL_MIN} AND {SERIAL_MAX} "
        f"THEN TIMESTAMP '1899-12-30' + to_days(floor(TRY_CAST({t} AS DOUBLE))::INTEGER) "
        f"ELSE try_strptime({t}, [{fmts}]) END)"
    )


def sql_date(expr: str) -> str:
    """SQL expression: the VARCHAR ``expr`` as DATE (NULL when blank or not a date)."""
    return f"CAST({sql_timestamp(expr)} AS DATE)"


def sql_date_reason(expr: str) -> str:
    """SQL expression: why ``expr`` (known not to parse) is not a date, matching :class:`DateError`."""
    return (f"(CASE WHEN regexp_full_match(trim({expr}), '{_SQL_FULL_RE}') "
            f"THEN 'impossible date' ELSE 'unparsable date' END)")
