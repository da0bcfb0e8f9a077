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
    return (f"TRY_CAST(replace(replace(replace(replace(trim({raw}), ',', ''), '¥', ''), '￥', ''), ' ', '')"
            f" AS DOUBLE)")


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


def build_typed(con: duckdb.DuckDBPyConnection, src: CsvSource, files: list[str] | None) -> None:
    """Temp table ``_typed``: typed rows of ``files`` (None = all raw rows) with ``_errs`` and ``_key_ok``.

    ``_errs`` is NULL for a clean row, else a list of (column_name, value, reason) structs.
    """
    inner, structs, conds, key_ok = [], [], [], []
    for col, kind in src.columns.items():
        expr, reason = typed(col, kind)
        inner.append(f"{expr} AS {q(col)}")
        in_key = col in src.key
        if in_key:
            key_ok.append(f"{q(col)} IS NOT NULL")
        if reason is None:
            if in_key:
                cond = f"({q(col)} IS NULL)"
                structs.append(f"CASE WHEN {cond} THEN {{'column_name': '{col}', 'value': NULL::VARCHAR, "
                               f"'reason': 'missing key; row not loaded'}} END")
                conds.append(cond)
            continue
        raw = q("_raw_" + col)
        inner.append(f"{q(col)} AS {raw}")
        cond = f"(NULLIF(trim({raw}), '') IS NOT NULL AND {q(col)} IS NULL)"
        why = reason.replace(q(col), raw) + (" || '; row not loaded (key)'" if in_key else "")
        structs.append(f"CASE WHEN {cond} THEN {{'column_name': '{col}', 'value': {raw}, 'reason': {why}}} END")
        conds.append(cond)
        if in_key:
            cond = f"(NULLIF(trim({raw}), '') IS NULL)"
            structs.append(f"CASE WHEN {cond} THEN {{'column_name': '{col}', 'value': NULL::VARCHAR, "
                           f"'reason': 'missing key; row not loaded'}} END")
            conds.append(cond)
    lineage = ", ".join(LINEAGE_TYPES)
    where = "" if files is None else "WHERE _source_file IN (SELECT unnest(?::VARCHAR[]))"
    any_cond = " OR ".join(conds) or "false"
    con.execute("DROP TABLE IF EXISTS _typed")
    con.execute(
        f"""CREATE TEMP TABLE _typed AS
        SELECT *, {' AND '.join(key_ok) or 'true'} AS _key_ok,
               CASE WHEN {any_cond} THEN list_filter([{', '.join(structs)}], lambda e: e IS NOT NULL) END AS _errs
        FROM (SELECT {', '.join(inner)}, {lineage} FROM {src.raw_table} {where})""",
        [files] if files is not None else [],
    )


def _version(src: CsvSource, alias: str) -> str:
    """Row-comparable version of a row: (version_by with NULL lowest, file order, row)."""
    parts = []
    if src.version_by:
        low = "TIMESTAMP '0001-01-01'" if SQL_TYPES[src.columns[src.version_by]] == "TIMESTAMP" else "DATE '0001-01-01'"
        parts.append(f"coalesce({alias}.{q(src.version_by)}, {low})")
    parts += [file_order_sql(f"{alias}._source_file"), f"{alias}._row"]
    return "row(" + ", ".join(parts) + ")"


def merge_typed(con: duckdb.DuckDBPyConnection, src: CsvSource, source: str) -> tuple[int, int]:
    """Write ``_typed`` into load_rejects and the stg table; returns (field rejects, rows not loaded)."""
    n_rej = con.execute(
        """INSERT INTO load_rejects (source, _source_file, _sheet, _row, column_name, value, reason, step,
                                     _file_hash, _loaded_at)
        SELECT ?, _source_file, _sheet, _row, e.column_name, e.value, e.reason, 'type', _file_hash, _loaded_at
        FROM (SELECT *, unnest(_errs) AS e FROM _typed WHERE _errs IS NOT NULL)""",
        [source],
    ).fetchone()[0]
    n_bad = con.execute("DELETE FROM _typed WHERE NOT _key_ok").fetchone()[0]
    keys = ", ".join(q(k) for k in src.key)
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in src.key)
    # several versions of a key among the new rows: keep the latest
    con.execute(f"""DELETE FROM _typed WHERE rowid IN (
        SELECT rid FROM (
            SELECT t.rowid AS rid, row_number() OVER (PARTITION BY {', '.join('t.' + q(k) for k in src.key)}
                                                      ORDER BY {_version(src, 't')} DESC) AS rn
            FROM _typed t SEMI JOIN (SELECT {keys} FROM _typed GROUP BY ALL HAVING count(*) > 1) s ON {on})
        WHERE rn > 1)""")
    stg = src.stg_table
    if con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {stg} LIMIT 1)").fetchone()[0]:
        con.execute("DROP TABLE IF EXISTS _clash")
        con.execute(f"""CREATE TEMP TABLE _clash AS
            SELECT s.rowid AS srid, t.rowid AS trid, {_version(src, 't')} > {_version(src, 's')} AS new_wins
            FROM _typed t JOIN {stg} s ON {on}""")
        con.execute(f"DELETE FROM {stg} WHERE rowid IN (SELECT srid FROM _clash WHERE new_wins)")
        con.execute("DELETE FROM _typed WHERE rowid IN (SELECT trid FROM _clash WHERE NOT new_wins)")
        con.execute("DROP TABLE _clash")
    cols = ", ".join(q(c) for c, _t in stg_columns(src))
    con.execute(f"INSERT INTO {stg} ({cols}) SELECT {cols} FROM _typed")
    con.execute("DROP TABLE _typed")
    return int(n_rej), int(n_bad)
