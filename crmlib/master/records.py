"""``customer_records``: one row per customer mention in any source, and the CRM contacts' phones."""
from __future__ import annotations

import duckdb
import pandas as pd

from .. import db as dbmod
from ..errors import UserError

# ------------------------------------------------------------------------------------------------------
# customer_records: one row per customer mention in any source
# ------------------------------------------------------------------------------------------------------

def _col(cols: set[str], name: str, alias: str | None = None, cast: str = "VARCHAR", prefix: str = "") -> str:
    """``prefix.name`` cast, or NULL when the loader did not produce that column (older drops)."""
    alias = alias or name
    if name in cols:
        return f"CAST({prefix}{name} AS {cast}) AS {alias}"
    return f"CAST(NULL AS {cast}) AS {alias}"


def records_sql(con: duckdb.DuckDBPyConnection) -> str:
    """SQL selecting the union of customer mentions from the stg_* tables that exist."""
    parts = []
    acc = dbmod.columns(con, "stg_crm_accounts")
    if acc:
        cc = dbmod.columns(con, "stg_crm_contacts")
        # CRM contacts are side evidence for their account: the most recently updated contact's name and
        # phone (ties: smallest contact_id) stand in where the account has none.
        contact_cte = ""
        c_name = c_phone = c_email = "NULL"
        if {"account_id", "contact_name"} <= cc:
            order = "updated_at DESC NULLS LAST, contact_id" if "updated_at" in cc else "contact_id"
            mob = "mobile" if "mobile" in cc else "NULL"
            ph = "phone" if "phone" in cc else "NULL"
            em = "email" if "email" in cc else "NULL"
            contact_cte = f"""LEFT JOIN (
                SELECT account_id, contact_name, coalesce({mob}, {ph}) AS c_phone, {em} AS c_email,
                       row_number() OVER (PARTITION BY account_id ORDER BY {order}) AS rn
                FROM stg_crm_contacts) c ON c.account_id = a.account_id AND c.rn = 1"""
            c_name, c_phone, c_email = "c.contact_name", "c.c_phone", "c.c_email"
        date = ("coalesce(CAST(a.updated_at AS DATE), CAST(a.created_at AS DATE))"
                if {"updated_at", "created_at"} <= acc else "CAST(NULL AS DATE)")
        phone = f"coalesce(CAST(a.phone AS VARCHAR), {c_phone})" if "phone" in acc else c_phone
        parts.append(f"""
            SELECT 'crm' AS source, CAST(a.account_id AS VARCHAR) AS source_key,
                   CAST(a.account_name AS VARCHAR) AS name_raw, {_col(acc, 'uscc', prefix='a.')},
                   {phone} AS phone, CAST({c_name} AS VARCHAR) AS contact_name,
                   CAST({c_email} AS VARCHAR) AS email,
                   {_col(acc, 'province', prefix='a.')}, {_col(acc, 'city', prefix='a.')},
                   {_col(acc, 'address', prefix='a.')}, {_col(acc, 'industry', prefix='a.')},
                   {_col(acc, 'owner_rep_id', 'rep_id', prefix='a.')}, {date} AS record_date,
                   {_col(acc, '_source_file', prefix='a.')}, {_col(acc, '_row', cast='BIGINT', prefix='a.')}
            FROM stg_crm_accounts a {contact_cte}""")
    erp = dbmod.columns(con, "stg_erp_customers")
    if erp:
        oc = dbmod.columns(con, "stg_orders")
        date_join, date = "", "CAST(NULL AS DATE)"
        if {"erp_customer_id", "order_date"} <= oc:
            # an ERP customer is as recent as its latest order
            date_join = """LEFT JOIN (SELECT erp_customer_id, max(CAST(order_date AS DATE)) AS last_order
                           FROM stg_orders GROUP BY erp_customer_id) o
                           ON o.erp_customer_id = e.erp_customer_id"""
            date = "o.last_order"
        parts.append(f"""
            SELECT 'erp', CAST(e.erp_customer_id AS VARCHAR), CAST(e.customer_name AS VARCHAR),
                   {_col(erp, 'uscc', prefix='e.')}, {_col(erp, 'phone', prefix='e.')},
                   CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
                   {_col(erp, 'province', prefix='e.')}, {_col(erp, 'city', prefix='e.')},
                   {_col(erp, 'address', prefix='e.')}, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
                   {date}, {_col(erp, '_source_file', prefix='e.')}, {_col(erp, '_row', cast='BIGINT', prefix='e.')}
            FROM stg_erp_customers e {date_join}""")
    sv = dbmod.columns(con, "stg_sales_visits")
    if sv:
        date = ("coalesce(CAST(visit_date AS DATE), CAST(report_date AS DATE))"
                if {"visit_date", "report_date"} <= sv else
                ("CAST(report_date AS DATE)" if "report_date" in sv else "CAST(NULL AS DATE)"))
        parts.append(f"""
            SELECT 'sales', CAST(record_key AS VARCHAR), CAST(customer_name AS VARCHAR),
                   {_col(sv, 'uscc')}, {_col(sv, 'phone')}, {_col(sv, 'contact_name')}, {_col(sv, 'email')},
                   {_col(sv, 'province')}, {_col(sv, 'city')}, {_col(sv, 'address')}, {_col(sv, 'industry')},
                   {_col(sv, 'rep_id')}, {date}, {_col(sv, '_source_file')}, {_col(sv, '_row', cast='BIGINT')}
            FROM stg_sales_visits""")
    tk = dbmod.columns(con, "stg_tickets")
    if tk:
        parts.append(f"""
            SELECT 'service', CAST(ticket_id AS VARCHAR), CAST(customer_name AS VARCHAR),
                   CAST(NULL AS VARCHAR), {_col(tk, 'contact_phone', 'phone')}, CAST(NULL AS VARCHAR),
                   CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), {_col(tk, 'city')}, CAST(NULL AS VARCHAR),
                   CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), {_col(tk, 'opened_at', 'record_date', 'DATE')},
                   {_col(tk, '_source_file')}, {_col(tk, '_row', cast='BIGINT')}
            FROM stg_tickets""")
    ca = dbmod.columns(con, "stg_calls")
    if ca:
        parts.append(f"""
            SELECT 'callcenter', CAST(call_id AS VARCHAR), CAST(company AS VARCHAR),
                   CAST(NULL AS VARCHAR), {_col(ca, 'phone')}, {_col(ca, 'caller', 'contact_name')},
                   CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
                   CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), {_col(ca, 'called_at', 'record_date', 'DATE')},
                   {_col(ca, '_source_file')}, {_col(ca, '_row', cast='BIGINT')}
            FROM stg_calls""")
    if not parts:
        raise UserError("no source tables (stg_*) in the database", file=dbmod.database_file(con),
                        hint="run `crm load` first")
    union = "\nUNION ALL\n".join(parts)
    return f"""
        SELECT source || ':' || source_key AS record_id, source, source_key,
               name_raw, uscc, phone, contact_name, email, province, city, address, industry, rep_id,
               record_date, _source_file, _row
        FROM ({union}) u (source, source_key, name_raw, uscc, phone, contact_name, email, province, city,
                          address, industry, rep_id, record_date, _source_file, _row)
        WHERE source_key IS NOT NULL
    """


def contact_phones(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``record_id, phones_more``: every phone and mobile of a CRM account's contacts, as side evidence of the
    account's name group (``customer_records`` carries one phone per record: the account's own, else its latest
    contact's). A caller who gives only a bare trade name and rings from a contact's mobile then meets the
    account on that shared phone. Empty when the database has no CRM contacts."""
    cc = dbmod.columns(con, "stg_crm_contacts")
    if "account_id" not in cc or not ({"mobile", "phone"} & cc):
        return pd.DataFrame(columns=["record_id", "phones_more"])
    cols = " UNION ALL ".join(f"SELECT account_id, CAST({c} AS VARCHAR) AS p FROM stg_crm_contacts"
                              for c in ("mobile", "phone") if c in cc)
    return con.execute(f"""
        SELECT 'crm:' || CAST(account_id AS VARCHAR) AS record_id, list_sort(list(DISTINCT p)) AS phones_more
        FROM ({cols}) WHERE account_id IS NOT NULL AND p IS NOT NULL AND trim(p) <> ''
        GROUP BY 1 ORDER BY 1""").df()


def build_customer_records(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build ``customer_records`` from the stg tables; returns the number of records."""
    con.execute(f"CREATE OR REPLACE TABLE customer_records AS {records_sql(con)} ORDER BY record_id")
    return con.execute("SELECT count(*) FROM customer_records").fetchall()[0][0]
