"""``raw_<dataset>`` → ``stg_<dataset>`` in SQL: typing, field rejects, and "latest version wins".

Typing rules per column type are in ``params/sources.yaml``. A field that cannot be typed is NULL in stg
and gets a ``load_rejects`` row; a row whose key cannot be typed is not loaded (its reject says so).
Versions of one key: the highest ``version_by`` value wins (NULL lowest), ties → the later file (files
without a week suffix are the oldest, then by ISO week in the name), then the later row. Merging new rows
into an existing stg table applies the same comparison, so loading files one run at a time gives the same
table as loading them all at once.
"""
from __future__ import annotations

import duckdb

from ..dates import sql_date, sql_date_reason, sql_timestamp
from .config import CsvSource

SQL_TYPES = {"id": "VARCHAR", "text": "VARCHAR", "date": "DATE", "timestamp": "TIMESTAMP",
             "amount": "DOUBLE", "amount_wan": "DOUBLE", "int": "INTEGER", "rating": "INTEGER",
             "flag": "VARCHAR"}
LINEAGE_TYPES = {"_source_file": "VARCHAR", "_sheet": "VARCHAR", "_row": "BIGINT", "_file_hash": "VARCHAR",
                 "_loaded_at": "TIMESTAMP"}
_YES = "('Y','YES','T','TRUE','1','是')"
_NO = "('N','NO','F','FALSE','0','否')"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def file_order_sql(col: str = "_source_file") -> str:
    """Sort-key fields (for a ``row(...)``) of a file among versions: no week suffix first, then ISO week,
    then name."""
    return f"coalesce(regexp_extract({col}, '_(\\d{{4}}-W\\d{{2}})\\.[^./]+$', 1), ''), {col}"


def _num(raw: str) -> str:
    # a value DuckDB casts as it is has no ',', '¥', '￥' or inner space: the same number either way,
    # and the plain cast is ~5x cheaper than the replace chain
    return (f"coalesce(TRY_CAST({raw} AS DOUBLE), TRY_CAST(replace(replace(replace(replace(trim({raw}), ',', ''), "
            f"'¥', ''), '￥', ''), ' ', '') AS DOUBLE))")


def typed(col: str, kind: str) -> tuple[str, str | None]:
    """(SQL value expression, SQL reason expression used when a non-blank value types to NULL)."""
    raw = q(col)
    if kind in ("id", "text"):
        return f"NULLIF(trim({raw}), '')", None
    if kind == "date":
        return sql_date(raw), sql_date_reason(raw)
    if kind == "timestamp":
        return sql_timestamp(raw), sql_date_reason(raw)
    if kind == "amount":
        n = _num(raw)
        return (f"(CASE WHEN {n} >= 0 THEN {n} END)",
                f"(CASE WHEN {n} < 0 THEN 'negative amount' ELSE 'not a number' END)")
    if kind == "amount_wan":
        body = f"regexp_replace(trim({raw}), '(万元|万|元)$', '')"
        n = _num(body)
        scale = f"(CASE WHEN regexp_matches(trim({raw}), '[^万]元$') THEN 10000.0 ELSE 1.0 END)"
        return (f"(CASE WHEN {n} >= 0 THEN {n} / {scale} END)",
                f"(CASE WHEN {n} < 0 THEN 'negative amount' ELSE 'not a number' END)")
    if kind in ("int", "rating"):
        n = _num(raw)
        lo, hi = (1, 5) if kind == "rating" else (0, 2_000_000_000)
        return (f"(CASE WHEN {n} = floor({n}) AND {n} BETWEEN {lo} AND {hi} THEN CAST({n} AS INTEGER) END)",
                f"(CASE WHEN {n} IS NULL THEN 'not a number' WHEN {n} <> floor({n}) THEN 'not a whole number'"
                f" WHEN {n} < 0 THEN 'negative number' ELSE 'outside {lo}-{hi}' END)")
    if kind == "flag":
        u = f"upper(trim({raw}))"
        return (f"(CASE WHEN {u} IN {_YES} THEN 'Y' WHEN {u} IN {_NO} THEN 'N' END)", "'not Y/N'")
    raise ValueError(kind)


def stg_columns(src: CsvSource) -> list[tuple[str, str]]:
    return [(c, SQL_TYPES[k]) for c, k in src.columns.items()] + list(LINEAGE_TYPES.items())


def _in_files(files: list[str] | None, alias: str = "") -> tuple[str, list]:
    """SQL condition "row of one of ``files``" (None = every row) and its parameters."""
    if files is None:
        return "true", []
    return f"{alias}_source_file IN (SELECT unnest(?::VARCHAR[]))", [files]


def _version(src: CsvSource, alias: str) -> str:
    """Row-comparable version of a row: (version_by with NULL lowest, file order, row)."""
    parts = []
    if src.version_by:
        low = "TIMESTAMP '0001-01-01'" if SQL_TYPES[src.columns[src.version_by]] == "TIMESTAMP" else "DATE '0001-01-01'"
        parts.append(f"coalesce({alias}.{q(src.version_by)}, {low})")
    parts += [file_order_sql(f"{alias}._source_file"), f"{alias}._row"]
    return "row(" + ", ".join(parts) + ")"


def type_into_stg(con: duckdb.DuckDBPyConnection, src: CsvSource, source: str, files: list[str] | None) -> None:
    """Type the raw rows of ``files`` into the stg table; ``None`` = rebuild the stg table and the source's
    typing rejects from all raw rows (after a changed file replaced rows: earlier versions of its keys may
    win again).

    One typing pass: every row goes into stg with one INSERT … SELECT (no temporary copy). Then, from stg,
    the fields that typed to NULL although their raw text was not blank are written to ``load_rejects``
    (only those rows are looked up in raw), rows whose key is missing or did not type are removed again
    (their reject says "row not loaded"), and for keys that now occur more than once the latest version
    stays (highest ``version_by``, then later file, then later row).
    """
    stg, raw = src.stg_table, src.raw_table
    if files is None:
        con.execute(f"DELETE FROM {stg}")
        con.execute("DELETE FROM load_rejects WHERE source = ? AND step = 'type'", [source])
    in_raw, params = _in_files(files)
    cols = ", ".join(q(c) for c, _t in stg_columns(src))
    typing = {c: typed(c, k) for c, k in src.columns.items()}  # (SQL expression, reject reason or None)
    typed_cols = ", ".join(f"{expr} AS {q(c)}" for c, (expr, _why) in typing.items())
    con.execute(f"INSERT INTO {stg} ({cols}) SELECT {typed_cols}, {', '.join(LINEAGE_TYPES)} FROM {raw} "
                f"WHERE {in_raw}", params)

    # field rejects: a NULL in stg whose raw text was not blank (or a missing key)
    checked = [c for c, (_expr, why) in typing.items() if why is not None or c in src.key]
    if checked:
        in_stg, _ = _in_files(files, "s.")
        in_r, _ = _in_files(files, "r.")
        structs = []
        for col in checked:
            reason = typing[col][1]
            t, r = f"s.{q(col)}", f"r.{q(col)}"
            blank = f"NULLIF(trim({r}), '') IS NULL"
            if reason is not None:
                why = reason.replace(q(col), r) + (" || '; row not loaded (key)'" if col in src.key else "")
                structs.append(f"CASE WHEN {t} IS NULL AND NOT ({blank}) "
                               f"THEN {{'column_name': '{col}', 'value': {r}, 'reason': {why}}} END")
            if col in src.key:
                structs.append(f"CASE WHEN {t} IS NULL AND {blank} THEN {{'column_name': '{col}', "
                               f"'value': NULL::VARCHAR, 'reason': 'missing key; row not loaded'}} END")
        any_null = " OR ".join(f"s.{q(c)} IS NULL" for c in checked)
        con.execute(
            f"""INSERT INTO load_rejects (source, _source_file, _sheet, _row, column_name, value, reason, step,
                                          _file_hash, _loaded_at)
            SELECT ?, _source_file, _sheet, _row, e.column_name, e.value, e.reason, 'type', _file_hash, _loaded_at
            FROM (SELECT s._source_file, s._sheet, s._row, s._file_hash, s._loaded_at,
                         unnest(list_filter([{', '.join(structs)}], lambda e: e IS NOT NULL)) AS e
                  FROM (SELECT * FROM {stg} s WHERE {in_stg} AND ({any_null})) s
                  JOIN (SELECT * FROM {raw} r WHERE {in_r}) r USING (_source_file, _row))""",
            [source, *params, *params])
        key_null = " OR ".join(f"{q(k)} IS NULL" for k in src.key)
        con.execute(f"DELETE FROM {stg} WHERE {in_raw} AND ({key_null})", params)

    # versions: keys that now occur more than once keep their latest row
    keys = ", ".join(q(k) for k in src.key)
    on = " AND ".join(f"s.{q(k)} = c.{q(k)}" for k in src.key)
    touched = "" if files is None else f"SEMI JOIN (SELECT {keys} FROM {stg} WHERE {in_raw}) c ON {on}"
    part = ", ".join("s." + q(k) for k in src.key)
    con.execute(f"""DELETE FROM {stg} WHERE rowid IN (
        SELECT rid FROM (
            SELECT s.rowid AS rid, row_number() OVER (PARTITION BY {part} ORDER BY {_version(src, 's')} DESC) AS rn
            FROM {stg} s SEMI JOIN (SELECT {part} FROM {stg} s {touched} GROUP BY ALL HAVING count(*) > 1) c
                ON {on})
        WHERE rn > 1)""", params)
