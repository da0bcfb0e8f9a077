"""The audit: read the database as of a date, run every check, aggregate into the scorecard.

"As of" a date means over the records that existed then: a customer record counts when its
``record_date`` is on or before the date (records without a date always count), and the master mapping
is today's (re-resolving history is the resolver's job; the mapping of old records rarely changes).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from .. import db as dbmod
from ..frames import isin
from . import checks
from .checks import issues_frame, reason
from .config import QualityParams
from .discipline import daily_sending, not_contacted, rep_only_customers, timeliness

RECORD_COLS = ["record_id", "source", "source_key", "name_raw", "uscc", "phone", "contact_name", "email",
               "province", "city", "address", "industry", "rep_id", "record_date", "_source_file", "_row"]
# record-level error kinds that are not errors of the data itself never enter the rates
NOT_ERRORS: set[str] = set()


@dataclass
class AuditInputs:
    as_of: dt.date
    records: pd.DataFrame            # customer_records + customer_id (+ region from the master)
    master: pd.DataFrame             # customer_master
    extra_issues: pd.DataFrame       # date/amount issues found in stg tables, keyed by record_id
    rejects: pd.DataFrame            # load_rejects as of the date (+ record_id when the row is a record)
    visits: pd.DataFrame             # stg_sales_visits: rep_id, visit_date, report_date
    reps: pd.DataFrame               # stg_reps
    contacts: pd.DataFrame = None    # stg_crm_contacts of the accounts audited (own mobile/phone/email)


@dataclass
class Audit:
    as_of: dt.date
    records: pd.DataFrame            # one row per record: + n_issues, erroneous, kinds, region
    issues: pd.DataFrame             # one row per (record, kind, field)
    completeness: pd.DataFrame
    master: pd.DataFrame
    rejects: pd.DataFrame
    visits: pd.DataFrame
    reps: pd.DataFrame
    extras: dict = field(default_factory=dict)


# ---------------------------------------------------------------- reading

def _df(con, sql: str, params=None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def read_inputs(con: duckdb.DuckDBPyConnection, as_of: dt.date, params: QualityParams) -> AuditInputs:
    if not dbmod.table_exists(con, "customer_records"):
        from ..errors import UserError
        raise UserError("the database has no customer_records table", file=dbmod.database_file(con),
                        hint="run `crm load` and `crm resolve` first")
    has_xref = dbmod.table_exists(con, "customer_xref")
    records = _df(con, f"""
        SELECT {', '.join('r.' + c for c in RECORD_COLS)},
               {'x.customer_id' if has_xref else 'CAST(NULL AS VARCHAR) AS customer_id'},
               {since_sql(con)} AS _own_since
        FROM customer_records r
        {'LEFT JOIN customer_xref x ON x.record_id = r.record_id' if has_xref else ''}
        {since_joins(con)}
        ORDER BY r.record_id""")
    records["exists_from"] = exists_from(records)
    records = records[records["exists_from"].isna() | (records["exists_from"] <= as_of)]
    records = records.drop(columns=["_own_since"]).reset_index(drop=True)
    contacts = read_contacts(con, records)
    if len(contacts):
        records = pd.concat([records, contacts[records.columns]], ignore_index=True)
    master = (_df(con, "SELECT * FROM customer_master ORDER BY customer_id")
              if dbmod.table_exists(con, "customer_master") else pd.DataFrame(columns=["customer_id", "name"]))
    reps = (_df(con, "SELECT * FROM stg_reps ORDER BY rep_id") if dbmod.table_exists(con, "stg_reps")
            else pd.DataFrame(columns=["rep_id", "rep_name", "region", "hired_at", "left_at"]))
    visits = (_df(con, """SELECT record_key, rep_id, visit_date, report_date FROM stg_sales_visits
                          WHERE report_date IS NULL OR report_date <= ? ORDER BY record_key""", [as_of])
              if dbmod.table_exists(con, "stg_sales_visits")
              else pd.DataFrame(columns=["record_key", "rep_id", "visit_date", "report_date"]))
    keys = set(records["record_id"])
    extra = stg_issues(con, as_of, params)
    extra = extra[isin(extra["record_id"], keys)]
    rejects = read_rejects(con, as_of)
    return AuditInputs(as_of, records, master, extra, rejects, visits, reps, contacts)


def _file_week_end(path: str | None) -> dt.date | None:
    """The Sunday ending the ISO week in a file name (``..._2024-W05.csv``, ``2024-W05_R001.xlsx``)."""
    m = re.search(r"(\d{4})-W(\d{2})", path or "")
    if not m:
        return None
    return dt.date.fromisocalendar(int(m.group(1)), int(m.group(2)), 7)


def since_sql(con) -> str:
    """SQL for the date a record came to exist, by source: a CRM account when created, an ERP customer at
    its first order, a sheet row when reported; otherwise the record's own date."""
    parts = ["CASE"]
    if "created_at" in dbmod.columns(con, "stg_crm_accounts"):
        parts.append("WHEN r.source = 'crm' THEN CAST(a.created_at AS DATE)")
    if {"erp_customer_id", "order_date"} <= dbmod.columns(con, "stg_orders"):
        parts.append("WHEN r.source = 'erp' THEN o.first_order")
    if "report_date" in dbmod.columns(con, "stg_sales_visits"):
        parts.append("WHEN r.source = 'sales' THEN CAST(v.report_date AS DATE)")
    parts.append("ELSE CAST(r.record_date AS DATE) END")
    return " ".join(parts)


def since_joins(con) -> str:
    j = []
    if "created_at" in dbmod.columns(con, "stg_crm_accounts"):
        j.append("LEFT JOIN stg_crm_accounts a ON r.source = 'crm' AND a.account_id = r.source_key")
    if {"erp_customer_id", "order_date"} <= dbmod.columns(con, "stg_orders"):
        j.append("""LEFT JOIN (SELECT erp_customer_id, min(CAST(order_date AS DATE)) AS first_order FROM stg_orders
                    GROUP BY erp_customer_id) o ON r.source = 'erp' AND o.erp_customer_id = r.source_key""")
    if "report_date" in dbmod.columns(con, "stg_sales_visits"):
        j.append("LEFT JOIN stg_sales_visits v ON r.source = 'sales' AND v.record_key = r.source_key")
    return "\n".join(j)


def exists_from(records: pd.DataFrame) -> pd.Series:
    """Date from which a record counts in an audit: its own date, but never later than the end of the week
    its file was dropped (a mistyped future date must not hide the record). Files without a week suffix
    are the initial full-history drop: the record's own date decides. NULL = always existed."""
    week_end = records["_source_file"].map({f: _file_week_end(f) for f in records["_source_file"].dropna().unique()})
    own = pd.to_datetime(records["_own_since"], errors="coerce").dt.date
    out = [min(o, w) if (o is not None and not pd.isna(o) and w is not None and not pd.isna(w))
           else (w if o is None or pd.isna(o) else o)
           for o, w in zip(own, week_end, strict=True)]
    return pd.Series([None if v is None or pd.isna(v) else v for v in out], index=records.index, dtype=object)


def read_contacts(con, records: pd.DataFrame) -> pd.DataFrame:
    """CRM contacts of the audited accounts as records of source ``crm_contacts`` (customer = the account's).

    Their own fields (mobile, phone, e-mail) are checked by :func:`checks.check_contacts`; in the record
    frame they carry only the contact name, so the generic checks leave them alone."""
    if not {"contact_id", "account_id"} <= dbmod.columns(con, "stg_crm_contacts"):
        return pd.DataFrame(columns=[*RECORD_COLS, "customer_id", "exists_from", "mobile"])
    c = _df(con, """SELECT contact_id, account_id, contact_name, mobile, phone, email,
                           CAST(updated_at AS DATE) AS record_date, _source_file, _row
                    FROM stg_crm_contacts ORDER BY contact_id""")
    acc = records[records["source"] == "crm"].set_index("source_key")
    c = c[isin(c["account_id"], acc.index)].copy()
    c["record_id"] = "crm_contacts:" + c["contact_id"]
    c["source"], c["source_key"] = "crm_contacts", c["contact_id"]
    for col in ("name_raw", "customer_id", "rep_id", "province", "city", "industry", "exists_from"):
        c[col] = c["account_id"].map(acc[col])
    own = pd.to_datetime(c["record_date"]).dt.date
    c["exists_from"] = [max(e, d) if e is not None and not pd.isna(e) and d is not None and not pd.isna(d)
                        else e for e, d in zip(c["exists_from"], own, strict=True)]
    # the generic checks must not see the contact's phone/e-mail (check_contacts reports them by field)
    c["landline"], c["contact_email"] = c["phone"], c["email"]
    c["phone"], c["email"], c["uscc"], c["address"] = None, None, None, None
    return c.reset_index(drop=True)


REJECT_KINDS = [("negative", "negative_amount"), ("date", "future_or_impossible_date")]


def _reject_kind(reason_text: str) -> str:
    r = str(reason_text or "").lower()
    return next((k for word, k in REJECT_KINDS if word in r), "load_reject")


def read_rejects(con, as_of: dt.date) -> pd.DataFrame:
    """load_rejects of files dated (by their ISO-week suffix) on or before ``as_of``; initial full-history
    files have no week and always count. ``file_week_end`` says which week a reject belongs to;
    ``record_id`` names the customer record (or order line / opportunity) the rejected field belongs to."""
    cols = ["_source_file", "_sheet", "_row", "column", "value", "reason", "kind", "file_week_end", "record_id"]
    if not dbmod.table_exists(con, "load_rejects"):
        return pd.DataFrame(columns=cols)
    colname = "column_name" if "column_name" in dbmod.columns(con, "load_rejects") else '"column"'
    rj = _df(con, f"""SELECT _source_file, _sheet, _row, {colname} AS "column", "value", reason FROM load_rejects
                      ORDER BY _source_file, _sheet, _row, "column" """)
    rj["kind"] = rj["reason"].map(_reject_kind)
    rj["file_week_end"] = rj["_source_file"].map(_file_week_end)
    # a boolean array, not a Series: an empty object Series would select columns (none) instead of rows
    keep = np.array([d is None or pd.isna(d) or d <= as_of + dt.timedelta(days=6) for d in rj["file_week_end"]],
                    dtype=bool)
    rj = rj.loc[keep]
    rj = rj.reset_index(drop=True)
    rj["record_id"] = None
    if not len(rj):
        return rj[cols]
    links = []
    if dbmod.table_exists(con, "customer_records"):
        links.append("SELECT _source_file, _row, min(record_id) AS rid FROM customer_records "
                     "WHERE _source_file IS NOT NULL AND source <> 'sales' GROUP BY 1, 2")
    # transactions are not customer records, but their rejects still belong to a keyed row
    if {"order_id", "line_no", "_row"} <= dbmod.columns(con, "raw_orders"):
        links.append("SELECT _source_file, _row, min('erp_orders:' || order_id || '|' || line_no) FROM raw_orders "
                     "GROUP BY 1, 2")
    if {"opp_id", "_row"} <= dbmod.columns(con, "raw_crm_opportunities"):
        links.append("SELECT _source_file, _row, min('crm_opportunities:' || opp_id) FROM raw_crm_opportunities "
                     "GROUP BY 1, 2")
    if {"contact_id", "_row"} <= dbmod.columns(con, "raw_crm_contacts"):
        links.append("SELECT _source_file, _row, min('crm_contacts:' || contact_id) FROM raw_crm_contacts "
                     "GROUP BY 1, 2")
    if links:
        con.register("_rj_keys", rj[["_source_file", "_row"]].drop_duplicates())
        try:
            link = _df(con, "SELECT l._source_file, l._row, min(l.rid) AS rid FROM (" + " UNION ALL ".join(links)
                       + ") l (_source_file, _row, rid) JOIN _rj_keys k USING (_source_file, _row) GROUP BY 1, 2")
        finally:
            con.unregister("_rj_keys")
        rj = rj.merge(link, on=["_source_file", "_row"], how="left")
        rj["record_id"] = rj["rid"]
    # a sheet row's key names file, sheet and row (rows repeat across sheets of one workbook)
    sheet = rj["_sheet"].notna()
    rj.loc[sheet, "record_id"] = ("sales:" + rj.loc[sheet, "_source_file"].map(lambda p: str(p).rsplit("/", 1)[-1])
                                  + "|" + rj.loc[sheet, "_sheet"].astype(str) + "|"
                                  + rj.loc[sheet, "_row"].astype("Int64").astype(str))
    return rj[cols].reset_index(drop=True)


def stg_issues(con, as_of: dt.date, params: QualityParams) -> pd.DataFrame:
    """Impossible dates and negative amounts in the stg tables, attributed to a customer record."""
    lo = params.date_min
    hi = as_of + dt.timedelta(days=params.future_grace_days)
    specs = [
        # table, record_id expression, source, key expr, date columns, amount columns, ordered date pairs
        ("stg_sales_visits", "'sales:' || record_key", "sales", "record_key",
         ["visit_date", "report_date"], ["est_amount"], [("visit_date", "report_date")]),
        ("stg_crm_accounts", "'crm:' || account_id", "crm", "account_id",
         ["created_at", "updated_at"], ["registered_capital"], [("created_at", "updated_at")]),
        ("stg_crm_opportunities", "'crm:' || account_id", "crm", "account_id",
         ["created_at", "expected_close", "closed_at"], ["amount"], [("created_at", "closed_at")]),
        ("stg_calls", "'callcenter:' || call_id", "callcenter", "call_id", ["called_at"], [], []),
        ("stg_tickets", "'service:' || ticket_id", "service", "ticket_id",
         ["opened_at", "closed_at"], [], [("opened_at", "closed_at")]),
        ("stg_orders", "'erp:' || erp_customer_id", "erp", "erp_customer_id",
         ["order_date"], ["amount", "qty", "cost"], []),
        ("stg_receipts", "'erp:' || erp_customer_id", "erp", "erp_customer_id",
         ["invoice_date", "paid_date"], ["amount"], [("invoice_date", "paid_date")]),
    ]
    out = []
    for table, rid, source, key, dates, amounts, pairs in specs:
        if not dbmod.table_exists(con, table):
            continue
        have = dbmod.columns(con, table)
        dates = [c for c in dates if c in have]
        amounts = [c for c in amounts if c in have]
        pairs = [p for p in pairs if p[0] in have and p[1] in have]
        parts = []
        for c in dates:
            # the upper bound is the audit date for the record's own date, so a row entered today with a
            # date next week is impossible; expected/planned dates (expected_close) may lie ahead
            upper = "" if c == "expected_close" else f" OR CAST({c} AS DATE) > DATE '{hi}'"
            parts.append(f"SELECT {rid} AS record_id, '{source}' AS source, {key} AS source_key, "
                         f"'future_or_impossible_date' AS kind, '{c}' AS field, CAST({c} AS VARCHAR) AS value "
                         f"FROM {table} WHERE CAST({c} AS DATE) < DATE '{lo}'{upper}")
        for a, b in pairs:
            parts.append(f"SELECT {rid}, '{source}', {key}, 'future_or_impossible_date', '{b}', "
                         f"CAST({b} AS VARCHAR) FROM {table} WHERE CAST({b} AS DATE) < CAST({a} AS DATE)")
        for c in amounts:
            parts.append(f"SELECT {rid}, '{source}', {key}, 'negative_amount', '{c}', CAST({c} AS VARCHAR) "
                         f"FROM {table} WHERE {c} < 0")
        if parts:
            out.append(_df(con, " UNION ALL ".join(parts)))
    if not out:
        return issues_frame([])
    df = pd.concat(out, ignore_index=True).drop_duplicates()
    df["reason"] = [reason(k, f) for k, f in zip(df["kind"], df["field"], strict=True)]
    df["customer_id"] = None
    df["suggested"] = None
    return issues_frame(df)


# ---------------------------------------------------------------- running

def run_checks(inp: AuditInputs, params: QualityParams) -> Audit:
    """Every record check over the inputs; pure (no database)."""
    rec, master = inp.records.copy(), inp.master
    dup_sources = list(params.duplicate_sources)
    cust_rec = rec[rec["source"] != "crm_contacts"]
    seven = frozenset(params.seven_digit_area_codes)
    dup_order = checks.duplicate_order(cust_rec, dup_sources, params.key_fields)
    parts = [
        checks.check_junk(cust_rec),
        checks.check_validity(cust_rec, seven),
        checks.check_required(cust_rec, params.required_fields),
        checks.check_city_province(cust_rec),
        checks.check_consistency(cust_rec, master, params.consistency_fields, params.industry_keywords),
        checks.check_duplicates(cust_rec, dup_sources, params.key_fields, order=dup_order),
        checks.check_names(cust_rec, master, sorted(set(cust_rec["source"]))),
        checks.check_contacts(inp.contacts, seven) if inp.contacts is not None and len(inp.contacts) else issues_frame([]),
        inp.extra_issues,
    ]
    rj = inp.rejects.dropna(subset=["record_id"])
    if len(rj):
        # a rejected value counts from the week its file came in (read_rejects keeps files of weeks ending
        # up to 6 days after the audit date): an earlier week's figure (records_at) leaves it out
        parts.append(issues_frame([{
            "record_id": r["record_id"], "source": r["record_id"].split(":", 1)[0],
            "source_key": r["record_id"].split(":", 1)[1], "kind": r["kind"], "field": r["column"],
            "value": r["value"], "reason": f"{reason(r['kind'], r['column'])}：{r['reason']}",
            "since": None if r["file_week_end"] is None or pd.isna(r["file_week_end"])
            else r["file_week_end"] - dt.timedelta(days=6)}
            for r in rj.to_dict("records")]))
    issues = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) \
        else issues_frame([])
    issues = issues_frame(issues)
    cust = rec.set_index("record_id")["customer_id"]
    issues["customer_id"] = issues["record_id"].map(cust)
    issues = issues[isin(issues["record_id"], cust.index) | ~issues["source"].isin(set(rec["source"]))]
    # one issue per (record, kind, field); found by a check that holds at any date (since None) beats a reject
    issues = issues.assign(_s=pd.to_datetime(issues["since"])).sort_values(
        ["record_id", "kind", "field", "_s"], na_position="first", kind="stable")
    issues = issues.drop_duplicates(["record_id", "kind", "field"]).drop(columns="_s").reset_index(drop=True)

    err = issues[~issues["kind"].isin(NOT_ERRORS)]
    # "kind1;kind2" per record (a plain loop: a pandas lambda per group costs seconds at scale 100)
    pairs = err[["record_id", "kind"]].drop_duplicates().sort_values(["record_id", "kind"])
    joined: dict[str, str] = {}
    for rid, kind in zip(pairs["record_id"].to_numpy(dtype=object), pairs["kind"].to_numpy(dtype=object),
                         strict=True):
        joined[rid] = f"{joined[rid]};{kind}" if rid in joined else kind
    kinds = pd.Series(joined, dtype=object)
    rec["n_issues"] = rec["record_id"].map(err.groupby("record_id").size()).fillna(0).astype(int)
    rec["erroneous"] = rec["n_issues"] > 0
    rec["kinds"] = rec["record_id"].map(kinds)
    region = master.set_index("customer_id")["region"] if "region" in master.columns else pd.Series(dtype=object)
    rep_region = inp.reps.set_index("rep_id")["region"] if len(inp.reps) else pd.Series(dtype=object)
    rec["region"] = rec["customer_id"].map(region)
    # junk records have no customer: fall back to the rep's region so they still land somewhere
    if len(rep_region):
        rec["region"] = rec["region"].fillna(rec["rep_id"].map(rep_region))
    rec["dup_order"] = dup_order.reindex(rec.index)
    comp = checks.completeness(rec, params.key_fields)
    return Audit(inp.as_of, rec, issues, comp, master, inp.rejects, inp.visits, inp.reps)


def records_at(audit: Audit, d: dt.date | None) -> pd.DataFrame:
    """The audit's records that existed at an earlier date ``d``, with ``erroneous`` as of then.

    Judged with today's knowledge: the checks of one record (formats, required fields, junk names, place
    names) hold at any date; a duplicate counts only when the record kept instead of it existed then too
    (the keep order of :func:`checks.duplicate_order` restricted to the records of then); a load reject
    only from the week its file came in. Agreement with a customer's other records (consistency, name
    typos) is judged against the customer's records of today, as the master mapping is today's: a record
    shown wrong by a later record was wrong then too. This is what the trend and the earlier weeks of
    the weekly figures use, so one audit per week serves them all (at ``--scale 100`` one audit is
    minutes of work). ``d`` on or after the audit date (or None) gives the audit's own records."""
    if d is None or d >= audit.as_of:
        return audit.records
    return _records_at(audit, d)


def _records_at(audit: Audit, d: dt.date) -> pd.DataFrame:
    rec = audit.records
    ef = pd.to_datetime(rec["exists_from"])
    rec = rec[ef.isna() | (ef <= pd.Timestamp(d))]
    iss = audit.issues
    since = pd.to_datetime(iss["since"])
    iss = iss[~iss["kind"].isin(NOT_ERRORS) & (iss["kind"] != "duplicate_record")
              & (since.isna() | (since <= pd.Timestamp(d)))]
    err = isin(rec["record_id"], iss["record_id"])
    dup = rec[rec["dup_order"].notna()].sort_values("dup_order")
    later = dup.groupby(["source", "customer_id"]).cumcount() > 0
    err |= pd.Series(later.reindex(rec.index, fill_value=False).to_numpy(dtype=bool), index=rec.index)
    return rec.assign(erroneous=err.to_numpy(dtype=bool))


def run_audit(con: duckdb.DuckDBPyConnection, as_of: dt.date, params: QualityParams) -> Audit:
    """The audit as of a date; kept in the on-disk cache beside the database (see :func:`_cache_key`), so
    the weekly run's metrics step, the quality notebook and the managers' report audit each date once."""
    key = _cache_key(con, as_of, params)
    with _cache_lock(key):  # a second process wanting the same audit waits for it instead of redoing it
        hit = _cache_load(key)
        if hit is not None:
            return hit
        audit = run_checks(read_inputs(con, as_of, params), params)
        _cache_store(key, audit)
    return audit


# ---------------------------------------------------------------- cache
# The weekly run audits the same dates in separate processes (metrics, 02_quality, the managers' report),
# ~5 s each on the default demo. An audit is a pure function of the database content, the parameters and
# the code, so it is cached under a key made of all three: every table's row count and summed row hashes
# (DuckDB, ~0.2 s on the default demo), the column types, the parameters, the org-alias and region
# dictionaries the name checks use, and the source of the crmlib package. Any change gives a new key, so
# a stale audit cannot be returned. Set CRM_NO_AUDIT_CACHE=1 to switch it off.

_CACHE_KEEP = 16  # newest entries kept per cache folder


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    """Hash of the crmlib sources and data files (read once per process, as the code running is the code
    imported) and of the library versions the pickle depends on."""
    import hashlib
    import sys
    from pathlib import Path

    h = hashlib.sha256(f"{sys.version}|{pd.__version__}|{duckdb.__version__}".encode())
    pkg = Path(__file__).resolve().parent.parent
    for f in sorted([*pkg.rglob("*.py"), *(pkg / "data").rglob("*")]):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(pkg)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _cache_key(con, as_of: dt.date, params: QualityParams) -> tuple | None:
    """(cache folder, key) for this database, date and parameters; None when caching is off or impossible."""
    import hashlib
    import os
    from pathlib import Path

    if os.environ.get("CRM_NO_AUDIT_CACHE"):
        return None
    try:
        path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                           ).fetchone()[0]
        if not path or path == ":memory:":
            return None
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = current_schema() ORDER BY table_name").fetchall()]
        content = con.execute(" UNION ALL ".join(
            f"SELECT '{t}', count(*), sum(hash(\"{t}\")::HUGEINT) FROM \"{t}\"" for t in tables)
            + " ORDER BY 1").fetchall() if tables else []
        columns = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = "
            "current_database() AND schema_name = current_schema() ORDER BY table_name, column_index").fetchall()
        from ..names import load_aliases
        aliases = load_aliases().spec.model_dump_json()  # the dictionary this process parses names with
        h = hashlib.sha256(repr((content, columns, as_of.isoformat(), params.model_dump_json(), aliases,
                                 _code_version())).encode())
        return Path(path).resolve().parent / ".cache" / "quality-audit", h.hexdigest()[:40]
    except Exception:  # never let the cache break an audit
        return None


@contextlib.contextmanager
def _cache_lock(key: tuple | None):
    """Exclusive lock on one cache entry while it is looked up and computed (the weekly run's metrics
    step and the quality notebook start together and want the same dates). One entry at a time per
    process, so two processes cannot wait on each other; the OS drops the lock if a process dies."""
    import fcntl
    if key is None:
        yield
        return
    folder, name = key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / f".{name}.lock", "a+b")  # noqa: SIM115 - closed below
    except OSError:  # read-only folder: no cache, no lock
        yield
        return
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()  # releases the lock


def _cache_load(key: tuple | None) -> Audit | None:
    import pickle
    if key is None:
        return None
    f = key[0] / f"{key[1]}.pkl"
    try:
        with open(f, "rb") as fh:
            audit = pickle.load(fh)
        return audit if isinstance(audit, Audit) else None
    except Exception:  # missing, half-written by a crashed run, unreadable: run the audit
        return None


def _cache_store(key: tuple | None, audit: Audit) -> None:
    import os
    import pickle
    if key is None:
        return
    folder, name = key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(audit, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, folder / f"{name}.pkl")  # atomic: a reader sees all of it or nothing
        old = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)[_CACHE_KEEP:]
        for p in old:
            p.unlink(missing_ok=True)
            p.with_name(f".{p.stem}.lock").unlink(missing_ok=True)
    except Exception:  # read-only folder, full disk, a file pruned by another process: no cache
        pass


# ---------------------------------------------------------------- aggregating

def headline(audit: Audit, source: str | None, at: dt.date | None = None) -> dict:
    """Seed-style figures over one source (``None`` = all sources).

    Record error rate = erroneous records / records of the source. Customer error rate = master customers
    with at least one erroneous record / master customers with at least one record, where a source's
    records include its satellite rows (CRM: the accounts' contacts), as the seed counted a customer wrong
    when anything the CRM held about it was wrong. ``at``: the figures of an earlier date, over the
    records that existed then (:func:`records_at`).
    """
    return _headline(records_at(audit, at), source)


def _headline(recs: pd.DataFrame, source: str | None) -> dict:
    """:func:`headline` over a records frame (one :func:`records_at` serves several scopes)."""
    rec = recs if source is None else recs[recs["source"] == source]
    n_rec, n_err = len(rec), int(rec["erroneous"].sum())
    crec = recs if source is None else recs[recs["source"].isin([source, f"{source}_contacts"])]
    c = crec[crec["customer_id"].notna()].groupby("customer_id")["erroneous"].any()
    return {"n_records": n_rec, "n_records_erroneous": n_err,
            "record_error_rate": n_err / n_rec if n_rec else None,
            "n_customers": len(c), "n_customers_erroneous": int(c.sum()),
            "customer_error_rate": float(c.mean()) if len(c) else None}


def breakdown(audit: Audit, by: str, source: str | None = None) -> pd.DataFrame:
    """Record and customer error rates per ``source``, ``region`` or ``rep_id`` (of the record)."""
    rec = audit.records if source is None else audit.records[audit.records["source"] == source]
    rec = rec.assign(**{by: rec[by].fillna("(空)")})
    g = rec.groupby(by)
    out = pd.DataFrame({"n_records": g.size(), "n_records_erroneous": g["erroneous"].sum().astype(int)})
    out["record_error_rate"] = out["n_records_erroneous"] / out["n_records"]
    cust = rec[rec["customer_id"].notna()].groupby([by, "customer_id"])["erroneous"].any().reset_index()
    cg = cust.groupby(by)["erroneous"]
    out["n_customers"] = cg.size().reindex(out.index).fillna(0).astype(int)
    out["n_customers_erroneous"] = cg.sum().reindex(out.index).fillna(0).astype(int)
    out["customer_error_rate"] = (out["n_customers_erroneous"] / out["n_customers"]).where(out["n_customers"] > 0)
    return out.reset_index().sort_values(by).reset_index(drop=True)


def kinds_table(audit: Audit) -> pd.DataFrame:
    """Issues per kind and source."""
    if audit.issues.empty:
        return pd.DataFrame(columns=["kind", "source", "n_issues", "n_records"])
    g = audit.issues.groupby(["kind", "source"])
    return pd.DataFrame({"n_issues": g.size(), "n_records": g["record_id"].nunique()}).reset_index()


def discipline_tables(audit: Audit, params: QualityParams) -> dict[str, pd.DataFrame]:
    return {
        "timeliness": timeliness(audit.visits, params.timeliness_limit_days),
        "daily": daily_sending(audit.visits, audit.reps, audit.as_of, params),
        "rep_only": rep_only_customers(audit.records),
        "not_contacted": not_contacted(audit.records, audit.master, audit.as_of, params.not_contacted_days),
    }


def trend(con: duckdb.DuckDBPyConnection, as_of: dt.date, params: QualityParams,
          weeks: int | None = None, audits: dict[dt.date, Audit] | None = None) -> pd.DataFrame:
    """Headline figures as of ``as_of``, ``as_of - 7``, ... (``weeks`` dates, newest first), each over the
    records that existed at that date, judged by the audit as of ``as_of`` (:func:`records_at`): one audit,
    not one per week. ``audits``: audits already run (same database and params) by date; the audit as of
    ``as_of`` is taken from it, else run and added to it."""
    weeks = weeks or params.trend_weeks
    audits = {} if audits is None else audits
    if as_of not in audits:
        audits[as_of] = run_audit(con, as_of, params)
    a = audits[as_of]
    rows = []
    for k in range(weeks):
        d = as_of - dt.timedelta(days=7 * k)
        recs = records_at(a, d)
        for scope in (params.primary_source, None):
            rows.append({"as_of": d, "weeks_back": k, "scope": scope or "all", **_headline(recs, scope)})
    return pd.DataFrame(rows)


def trend_summary(tr: pd.DataFrame, scope: str) -> dict:
    """This week, last week and the average over the trend window for one scope."""
    t = tr[tr["scope"] == scope].sort_values("weeks_back")
    out = {}
    for m in ("customer_error_rate", "record_error_rate"):
        vals = t[m].tolist()
        out[m] = {"this_week": vals[0] if vals else None, "last_week": vals[1] if len(vals) > 1 else None,
                  "avg": float(pd.Series(vals, dtype=float).mean()) if vals else None}
    return out


def rejects_in_week(rejects: pd.DataFrame, as_of: dt.date) -> int:
    """Rejected (row, column)s from files of the ISO week containing ``as_of``."""
    if rejects.empty:
        return 0
    end = dt.date.fromisocalendar(*as_of.isocalendar()[:2], 7)
    return int((rejects["file_week_end"] == end).sum())


def quality_weekly_metrics(con: duckdb.DuckDBPyConnection, as_of: dt.date,
                           params: QualityParams | None = None, judged_with: dict | None = None) -> dict:
    """Flat figures for ``metrics.json``; empty when the master is not built yet.

    ``judged_with``: a dict shared by the calls of one weekly run, newest date first. The first call keeps
    its audit there; a later call for an earlier date takes its figures from that audit over the records
    that existed then (:func:`records_at`), as the quality trend does, instead of auditing again."""
    from .config import load_params
    params = params or load_params()
    if not dbmod.table_exists(con, "customer_records"):
        return {}
    held = (judged_with or {}).get("quality_audit")
    if held is not None and held.as_of >= as_of:
        a = held
    else:
        a = run_audit(con, as_of, params)
        if judged_with is not None:
            judged_with["quality_audit"] = a
    recs = records_at(a, as_of)
    prim, allh = _headline(recs, params.primary_source), _headline(recs, None)
    comp = (checks.completeness(recs, params.key_fields) if as_of < a.as_of else a.completeness)["share"].dropna()
    daily = daily_sending(a.visits, a.reps, as_of, params)
    return {
        "quality_customer_error_rate": prim["customer_error_rate"],
        "quality_record_error_rate": prim["record_error_rate"],
        "quality_customer_error_rate_all_sources": allh["customer_error_rate"],
        "quality_record_error_rate_all_sources": allh["record_error_rate"],
        "quality_rejects_this_week": rejects_in_week(a.rejects, as_of),
        "quality_completeness_avg": float(comp.mean()) if len(comp) else None,
        "quality_reps_not_sending_daily": int(daily["not_daily"].sum()) if len(daily) else 0,
    }
