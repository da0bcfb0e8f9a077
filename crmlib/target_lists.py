"""Marketing's target lists (目标客户名单, table ``stg_targets``): which listed companies are already master
customers, and how many of them became potentials — the funnel's target→potential rate.

Definitions (tests pin them down on hand-built lists):

* **Match.** A listed company is a master customer when its credit code (normalised, check character
  valid) is on that customer's records and on no other customer's, or, failing that, when its name
  (trimmed) is written exactly so on one customer's records or is that customer's master name — unless
  both carry valid credit codes that differ (two companies with one name). Names are not parsed: a list
  is a directory extract with registered names, and a wrong match would count a conversion that did not
  happen. A list written loosely (abbreviations, typos) matches less; its rate is then biased low.
* **Listed at** = the list's ``listed_at``; an entry without one counts from its first delivery (the ISO
  week in the file name, else the day that file was loaded).
* **Potential since** (per customer) = the earliest of the creation of its first CRM account, its first
  opportunity and its first order: the day a rep qualified it (潜在客户, as in :mod:`crmlib.funnel`). A listed
  company that only called or was visited is still 待识别: it has not converted. (A database without any CRM
  account export counts a first contact too, as the lifecycle funnel does then.)
* **Cohort and conversion.** A target belongs to the cohort when it was listed at least ``window_days``
  before ``as_of`` (its window is complete) and was not already a potential when listed. It converted
  when its customer became a potential after the listing day and at most ``window_days`` later.
  target→potential = converted / cohort, per region of the list entry (the matched customer's region
  when the list has none).

Counts are per list entry: a company on two lists (a directory and a trade-show list) counts twice, as
marketing's effort does; the demo lists each company once.

Everything aggregates in DuckDB: a list holds 50 entries per new customer (the seed's 0.02), millions at
scale 100, and only counts leave the database.
"""
from __future__ import annotations

import pandas as pd

from .db import table_exists
from .funnel import activity_sql, potential_sources


def has_targets(con) -> bool:
    return table_exists(con, "stg_targets")


_FULL = "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ"
_HALF = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _code_sql(col: str) -> str:
    """SQL for a credit code as written → upper case, full-width folded, separators removed; NULL unless 18
    characters of the GB 32100 alphabet (same rule as :func:`crmlib.names.normalise_uscc`, in SQL: it runs
    over every list entry)."""
    ok = "'[0-9A-HJ-NPQRTUWXY]{18}'"
    c = f"translate(upper(regexp_replace({col}, '[\\s\\-_.·]', '', 'g')), '{_FULL}', '{_HALF}')"
    # most codes are written canonically: test that first (the clean-up costs ~1.5 µs a value)
    return (f"CASE WHEN regexp_full_match({col}, {ok}) THEN {col} "
            f"WHEN regexp_full_match({c}, {ok}) THEN {c} END")


def _week_monday_sql(col: str) -> str:
    """SQL: the Monday of the ISO week in a file name ``…_YYYY-Www.ext`` (NULL without one)."""
    pattern = "'_(\\d{4})-W(\\d{2})\\.[^./]+$'"
    y = f"TRY_CAST(regexp_extract({col}, {pattern}, 1) AS INTEGER)"
    w = f"TRY_CAST(regexp_extract({col}, {pattern}, 2) AS INTEGER)"
    jan4 = f"make_date({y}, 1, 4)"
    return f"({jan4} - CAST(isodow({jan4}) - 1 AS INTEGER) + 7 * ({w} - 1))"


def _first_known_sql(con) -> str:
    """SELECT target_id, first_known: for entries without a listing date, the earliest delivery that held
    them (the ISO week in the file name, else the day the file was loaded); stable when later files repeat
    the entry."""
    if table_exists(con, "raw_targets"):
        return f"""SELECT trim(target_id) AS target_id,
                          min(coalesce({_week_monday_sql('_source_file')}, CAST(_loaded_at AS DATE))) AS first_known
                   FROM raw_targets
                   WHERE trim(target_id) IN (SELECT target_id FROM stg_targets WHERE listed_at IS NULL)
                   GROUP BY 1"""
    return "SELECT target_id, CAST(_loaded_at AS DATE) AS first_known FROM stg_targets WHERE listed_at IS NULL"


def _matched_sql(con) -> str:
    """SELECT of the list entries known at the parameter date with their matched customer (see the module
    doc): target_id, company_name, region, city, industry, listed_at, customer_id, match."""
    from .uscc import uscc_is_valid_sql

    return f"""
        WITH t AS (
            SELECT * FROM (
                SELECT s.target_id, trim(s.company_name) AS company_name, {_code_sql('s.uscc')} AS code,
                       s.region, s.city, s.industry, coalesce(s.listed_at, f.first_known) AS listed_at
                FROM stg_targets s LEFT JOIN ({_first_known_sql(con)}) f USING (target_id))
            WHERE listed_at <= ?),
        codes AS MATERIALIZED (  -- credit codes on each customer's records
            SELECT DISTINCT x.customer_id, c.code
            FROM (SELECT record_id, {_code_sql('uscc')} AS code FROM customer_records WHERE uscc IS NOT NULL) c
            JOIN customer_xref x USING (record_id)
            WHERE x.customer_id IS NOT NULL AND c.code IS NOT NULL),
        code_hits AS MATERIALIZED (  -- list codes found on exactly one customer
            SELECT t.target_id, min(c.customer_id) AS customer_id, min(c.code) AS code
            FROM t JOIN codes c ON c.code = t.code
            GROUP BY t.target_id HAVING count(DISTINCT c.customer_id) = 1),
        by_code AS (SELECT target_id, customer_id FROM code_hits WHERE {uscc_is_valid_sql('code')}),
        names AS (  -- names as written on records, and master names
            SELECT DISTINCT trim(r.name_raw) AS name, x.customer_id
            FROM customer_records r JOIN customer_xref x USING (record_id)
            WHERE x.customer_id IS NOT NULL AND r.name_raw IS NOT NULL
            UNION SELECT trim(name), customer_id FROM customer_master WHERE name IS NOT NULL),
        by_name AS MATERIALIZED (
            SELECT t.target_id, min(n.customer_id) AS customer_id, min(t.code) AS code
            FROM t JOIN names n ON n.name = t.company_name
            WHERE t.target_id NOT IN (SELECT target_id FROM by_code)
            GROUP BY t.target_id HAVING count(DISTINCT n.customer_id) = 1),
        coded AS MATERIALIZED (  -- the codes of the customers a name points at
            SELECT DISTINCT c.customer_id, c.code FROM codes c SEMI JOIN by_name b USING (customer_id)),
        valid_coded AS (SELECT customer_id, code FROM coded WHERE {uscc_is_valid_sql('code')}),
        by_name_ok AS (  -- not when both sides carry valid codes and the list's is none of the customer's
            SELECT b.target_id, b.customer_id
            FROM (SELECT *, {uscc_is_valid_sql('code')} AS ok FROM by_name) b
            WHERE NOT b.ok OR b.customer_id NOT IN (SELECT customer_id FROM valid_coded)
               OR EXISTS (SELECT 1 FROM valid_coded v WHERE v.customer_id = b.customer_id AND v.code = b.code))
        SELECT t.target_id, t.company_name, t.region, t.city, t.industry, t.listed_at,
               coalesce(c.customer_id, n.customer_id) AS customer_id,
               CASE WHEN c.customer_id IS NOT NULL THEN 'uscc' WHEN n.customer_id IS NOT NULL THEN 'name' END
                   AS "match"
        FROM t LEFT JOIN by_code c USING (target_id) LEFT JOIN by_name_ok n USING (target_id)"""


# a list entry's region: the list's own, else its matched customer's (``cm``), else unknown
_ENTRY_REGION = "coalesce(nullif(trim(m.region), ''), cm.region, '(未知)')"


def _since_sql(con) -> str:
    """SELECT customer_id, potential_since (see the module doc): the first account, opportunity or order
    (:func:`crmlib.funnel.activity_sql` without contacts) on or before the parameter date. A database without
    any CRM account export counts contacts too, as the lifecycle funnel does then."""
    return (f"SELECT customer_id, min(day) AS potential_since FROM ({activity_sql(con, potential_sources(con))}) "
            "GROUP BY customer_id")


def read_matched_targets(con, as_of) -> pd.DataFrame:
    """List entries known at ``as_of`` with the matched ``customer_id`` (NULL = not a customer) and
    ``match`` ('uscc', 'name' or NULL), one row each (for reading and tests; the figures aggregate in SQL)."""
    return con.execute(_matched_sql(con) + " ORDER BY t.target_id", [pd.Timestamp(as_of).date()]).df()


def read_potential_since(con, as_of) -> pd.DataFrame:
    """Per master customer: ``potential_since`` (see the module doc), on or before ``as_of``."""
    return con.execute(_since_sql(con) + " ORDER BY customer_id",
                       [pd.Timestamp(as_of).date()]).df()


def read_target_conversion(con, as_of, window_days: int, by: str | None = "region") -> pd.DataFrame:
    """target→potential per region (``by="region"``) or over all (``by=None``): ``targets`` (the cohort),
    ``converted``, ``target_to_potential`` (definitions in the module doc). A blank list region takes the
    matched customer's region, else '(未知)'."""
    d = pd.Timestamp(as_of).date()
    w = int(window_days)
    group = _ENTRY_REGION if by == "region" else "'all'"
    if by not in ("region", None):
        raise ValueError(f"by must be 'region' or None, not {by!r}")
    g = con.execute(f"""
        WITH m AS ({_matched_sql(con)}), s AS ({_since_sql(con)}),
        x AS (SELECT {group} AS grp, m.listed_at, s.potential_since
              FROM m LEFT JOIN s USING (customer_id) LEFT JOIN customer_master cm USING (customer_id))
        SELECT grp, count(*) AS targets,
               count(*) FILTER (WHERE potential_since > listed_at
                                  AND potential_since <= listed_at + {w}) AS converted
        FROM x
        WHERE listed_at <= CAST(? AS DATE) - {w} AND NOT coalesce(potential_since <= listed_at, false)
        GROUP BY grp ORDER BY grp""", [d, d, d]).df()
    g["target_to_potential"] = g["converted"] / g["targets"].where(g["targets"] > 0)
    if by is None:
        if g.empty:
            g = pd.DataFrame([{"grp": "all", "targets": 0, "converted": 0, "target_to_potential": float("nan")}])
        return g.drop(columns="grp")
    return g.rename(columns={"grp": "region"})


def read_listed_counts(con, start, as_of) -> pd.DataFrame:
    """List entries listed from ``start`` to ``as_of`` (both inclusive) per region (``region, listed``; a blank
    list region takes the matched customer's region, else '(未知)'): the leads a plan period actually produced."""
    d = pd.Timestamp(as_of).date()
    return con.execute(f"""
        WITH m AS ({_matched_sql(con)})
        SELECT {_ENTRY_REGION} AS region, count(*) AS listed
        FROM m LEFT JOIN customer_master cm USING (customer_id)
        WHERE m.listed_at >= CAST(? AS DATE)
        GROUP BY 1 ORDER BY 1""", [d, pd.Timestamp(start).date()]).df()


def read_unmatched_counts(con, as_of) -> pd.DataFrame:
    """Listed targets known at ``as_of`` that are not customers at ``as_of`` (not matched, or matched to a
    customer first seen later), counted per region and industry (``n``): the lifecycle funnel's targets
    beyond the master."""
    d = pd.Timestamp(as_of).date()
    return con.execute(f"""
        WITH m AS ({_matched_sql(con)})
        SELECT coalesce(nullif(trim(m.region), ''), '(未知)') AS region, m.industry, count(*) AS n
        FROM m LEFT JOIN customer_master cm USING (customer_id)
        WHERE m.customer_id IS NULL OR cm.first_seen > CAST(? AS DATE)  -- a customer only later: a target then
        GROUP BY ALL ORDER BY ALL""", [d, d]).df()


def match_summary(con, as_of) -> pd.DataFrame:
    """Per list (``list_name``): entries known at ``as_of``, matched by credit code, by name, and not customers
    at ``as_of`` (as the lifecycle funnel counts them) — for an analyst to see how much of a list the master
    recognises before trusting its rate."""
    d = pd.Timestamp(as_of).date()
    return con.execute(f"""
        WITH m AS ({_matched_sql(con)}),
        k AS (SELECT m.*, (m.customer_id IS NOT NULL AND coalesce(cm.first_seen <= CAST(? AS DATE), true)) AS known
              FROM m LEFT JOIN customer_master cm USING (customer_id))
        SELECT coalesce(s.list_name, '(未填写)') AS list_name, count(*) AS entries,
               count(*) FILTER (WHERE k.known AND k."match" = 'uscc') AS by_code,
               count(*) FILTER (WHERE k.known AND k."match" = 'name') AS by_name,
               count(*) FILTER (WHERE NOT k.known) AS not_customers
        FROM k JOIN stg_targets s USING (target_id) GROUP BY ALL ORDER BY entries DESC, list_name""",
                       [d, d]).df()
