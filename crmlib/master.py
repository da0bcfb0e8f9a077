"""Customer master: one row per real customer, built from every source's customer mentions.

Pipeline (``resolve``): ``customer_records`` (one row per mention) → names normalised once per unique name
(:mod:`crmlib.names`) → records with the same normalised key form a *name group* → Splink (DuckDB) scores
blocked pairs of name groups with m/u trained without labels → hard rules and reviewers' decisions → Splink's
connected components, repaired so no cluster breaks a hard rule → stable ``C``+6-digit ids → golden records
(survivorship from ``params/master.yaml``) → hierarchy (:mod:`crmlib.hierarchy`) → review queue.

Hard rules the model cannot override: two different dictionary brands are never one customer; two different
regions written in the names are never one customer; for branch-type organisations (banks, telecoms, ...) a
different branch level, branch name or city is never one customer (a branch and its head office are
parent/child in ``customer_hierarchy``, not one customer). Reviewers' decisions in
``params/review_decisions.csv`` override the model and the hard rules (a person looked at the pair).

``crm dedup`` runs the same engine on any CSV.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from pydantic import Field, field_validator
from tqdm.auto import tqdm

from . import db as dbmod
from . import names as nm
from . import paths
from .encoding import read_user_csv
from .errors import UserError
from .params import Params, params_path
from .params import load as load_params

log = logging.getLogger("crm.master")

SOURCES = ("crm", "erp", "sales", "service", "callcenter")
RECORD_COLUMNS = ["record_id", "source", "source_key", "name_raw", "uscc", "phone", "contact_name", "email",
                  "province", "city", "address", "industry", "rep_id", "record_date", "_source_file", "_row"]
DECISION_COLUMNS = ["record_id_l", "record_id_r", "decision", "reviewer", "decided_at"]
# Splink comparisons, in the order of the model (used for the evidence chart and the pairs table)
COMPARISONS = ["name", "uscc", "phone", "contact", "city", "address"]


class MasterParams(Params):
    threshold: float = 0.9
    review_low: float = 0.8
    review_high: float = 0.95
    seed: int = Field(42, ge=0)
    u_max_pairs: float = Field(5e5, gt=0)
    em_max_pairs: float = Field(2e5, gt=0)
    em_min_groups: int = Field(1000, ge=2)
    prior_rules_recall: float = Field(0.6, gt=0, le=1)
    threads: int = Field(2, ge=1)
    memory_limit: str = Field("6GB", pattern=r"(?i)^\s*(\d+(\.\d+)?\s*(K|M|G|T)(i?B)?|\d+(\.\d+)?\s*%)\s*$")
    predict_chunks: int = Field(1, ge=1)
    max_values_per_group: int = Field(5, ge=1)
    # every phone of a CRM account's contacts is phone evidence of the account (see contact_phones)
    contact_phones: bool = True
    name_similarity_levels: list[float] = Field([0.85, 0.7, 0.55], min_length=3, max_length=3)
    unregioned_brand_is_local: bool = False
    hierarchy_sectors: list[str] = ["bank", "insurance", "securities", "telecom", "energy", "transport"]
    source_trust: list[str] = Field(list(SOURCES), min_length=1)
    ambiguity_margin: float = 3.0
    review_bare_candidates: int = Field(5, ge=0)
    review_bare_max_records: int = Field(200, ge=0)
    same_trade_name_same_city: bool = True
    model_max_age_days: int = Field(28, ge=0)
    model_max_growth: float = Field(0.2, ge=0)

    @field_validator("name_similarity_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not all(0 < x <= 1 for x in v) or sorted(v, reverse=True) != v or len(set(v)) != len(v):
            raise ValueError("three similarities between 0 and 1, highest first, e.g. [0.85, 0.7, 0.55]")
        return v

    @field_validator("source_trust")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in SOURCES]
        if bad or len(set(v)) != len(v):
            raise ValueError(f"each of {', '.join(SOURCES)} at most once (not {', '.join(bad) or 'repeated'})")
        return v


def load_master_params(path: str | Path | None = None) -> MasterParams:
    p = load_params(MasterParams, path or "master")
    where = str(params_path(path or "master"))
    if not 0 < p.threshold < 1:
        raise UserError("threshold must be between 0 and 1", file=where)
    if not p.review_low <= p.threshold <= p.review_high:
        raise UserError("need review_low <= threshold <= review_high", file=where)
    return p


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


# ------------------------------------------------------------------------------------------------------
# name features: computed once per unique raw name
# ------------------------------------------------------------------------------------------------------

def _bigrams(text: str | None) -> list[str] | None:
    """Distinct character bigrams (single characters for one-character text), sorted for stable output."""
    if not isinstance(text, str) or not text:
        return None
    if len(text) == 1:
        return [text]
    return sorted({text[i:i + 2] for i in range(len(text) - 1)})


def _strip_parts(canonical: str, parts: list[str | None]) -> str:
    core = canonical
    for part in parts:
        if part and len(core) > len(part):
            core = core.replace(part, "", 1)
    return core


# Record codes reps and systems append to names (杭州华远软件有限公司 KH0231, ...#A17, (编号 33), /客户码9931,
# -0042): not part of the organisation's name, so cut before parsing.
_TRAILING_CODE_RE = re.compile(
    r"(?:[\s#/\\|_\-—–:：,，]+|[(（\[【]\s*)"
    r"(?:编号|代码|客户码|客户编号|客户代码|编码|NO\.?|ID)?\s*[:：#]?\s*[A-Z]{0,4}[-_]?\d{2,}\s*[)）\]】]?\s*$",
    re.IGNORECASE)
_HEAD_WORDS = ("总行", "总部", "总公司", "总社", "总院")
# Any word that names an organisational unit. A branch-type brand written with a region but none of these
# (北京中国移动, 民生证券(银川), 云南中信银行) is "bare": it may be the regional branch or the head office
# prefixed with its home city, so its unit is left open and the evidence decides.
_UNIT_WORDS = _HEAD_WORDS + ("分行", "分公司", "支行", "营业部", "营业所", "分理处", "网点", "储蓄所", "支公司",
                             "营业厅", "服务部", "办事处", "代表处", "分部", "分社", "分院", "分校", "校区", "省行",
                             "市行", "省公司", "市公司", "分局", "中心")


def strip_trailing_code(name: str | None) -> str | None:
    """Cut a trailing record code (``KH0231``, ``#A17``, ``(编号 33)``) when a real name remains."""
    if not isinstance(name, str):
        return name
    cut = _TRAILING_CODE_RE.sub("", name)
    if cut != name and len(cut.strip()) >= 3:
        return cut.strip()
    return name


_FEATURE_COLUMNS = ["name_raw", "is_junk", "canonical", "match_key", "brand", "core", "ambiguous", "hier",
                    "n_province", "n_city", "n_district", "branch_level", "branch_name", "legal_form", "parent_key",
                    "head_written", "bare", "local", "cleaned"]
_BOOL_FEATURES = ["is_junk", "hier", "ambiguous", "head_written", "bare", "local"]


@lru_cache(maxsize=1)
def _homonym_provinces() -> frozenset:
    """Provinces whose short name is also a city's (吉林): 中国工商银行吉林分行 may be either branch."""
    r = nm.regions()
    return frozenset(set(r.province_full) & (set(r.city_full) - set(nm.MUNICIPALITIES)))


def _features_of(raw: str | None, sectors: frozenset) -> tuple:
    p = nm.parse(strip_trailing_code(raw)) if raw is not None else None
    if p is None or p.is_junk or not p.canonical:
        return (raw, True) + (None,) * 4 + (False, False) + (None,) * 7 + (False, False, False, None)
    hier = bool(p.brand_known) and (bool(p.hierarchy) or (p.sector in sectors if p.sector else False))
    unit_word = any(w in p.cleaned for w in _UNIT_WORDS)
    regional = hier and bool(p.province or p.city) and not unit_word
    # only a region written in front of the brand can be a head office's home city (北京中国移动);
    # 国网湖南省电力有限公司 states its unit in its legal name
    prefixed = any(x and p.cleaned.startswith(x) for x in (p.province, p.city))
    # 吉林分行 without 省 or 市: the province or the city of the same name; left to the evidence ("local")
    homonym = (hier and p.province in _homonym_provinces() and not p.city and p.branch_level == "province"
               and (p.province + "省") not in p.cleaned)
    return (raw, False, p.canonical, p.match_key, p.brand if p.brand_known else None, p.brand or p.canonical,
            bool(p.ambiguous), hier, p.province, p.city, p.district, p.branch_level, p.branch_name,
            p.legal_form, p.parent_key, any(w in p.cleaned for w in _HEAD_WORDS),
            # region in brackets (中国建设银行(北京), 民生证券(银川)) names a unit in that region, level unknown
            # ("local"); a prefixed one (北京中国移动) may also be the head office's home city ("bare")
            regional and prefixed and "(" not in p.cleaned and not homonym, (regional and "(" in p.cleaned) or homonym,
            p.cleaned)


def _features_chunk(args: tuple) -> list[tuple]:
    chunk, sectors = args
    return [_features_of(r, sectors) for r in chunk]


def name_features(names: list[str | None], sectors: set[str] | None = None, workers: int = 1) -> pd.DataFrame:
    """One row per distinct raw name: the parsed name (crmlib.names) plus the fields matching needs.

    ``core`` is the organisation's core identity (brand or trade name, without region, branch and legal
    form): what name similarity compares. ``brand`` is set only for dictionary brands (the hard rule
    "different brand never merges" applies to them); ``hier`` marks head-office/branch organisations.
    ``sectors`` (params) adds sectors whose brands count as branch-type even when the dictionary says not.
    Parsing is pure Python; with ``workers`` > 1 and many names it is spread over forked processes.
    """
    sectors = frozenset(sectors or ())
    names = list(names)
    if workers > 1 and len(names) >= 50000:
        from ._fork import fork_pool

        nm.load_aliases()  # load once before forking
        size = 5000
        chunks = [(names[i:i + size], sectors) for i in range(0, len(names), size)]
        rows = []
        with fork_pool(workers) as pool:
            for part in tqdm(pool.imap(_features_chunk, chunks), total=len(chunks), desc="names",
                             unit="chunk", mininterval=2):
                rows.extend(part)
    else:
        rows = [_features_of(r, sectors) for r in
                tqdm(names, desc="names", unit="name", mininterval=2, disable=len(names) < 20000)]
    df = pd.DataFrame(rows, columns=_FEATURE_COLUMNS)
    for c in _BOOL_FEATURES:
        df[c] = df[c].fillna(False).astype(bool)
    return df


def _normalise_values(values: pd.Series, fn) -> pd.Series:
    """Apply a normaliser once per distinct value (factorised on plain objects: iterating pandas' Arrow
    strings one by one costs more than the normaliser at scale 100)."""
    codes, uniq = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)

    def safe(v):
        try:
            return fn(v)
        except Exception:  # a value the normaliser cannot read is no evidence, not an error
            return None

    out = np.array([safe(v) for v in uniq] + [None], dtype=object)
    return pd.Series(out[codes], index=values.index, dtype=object)


def _clean_city(v: str | None) -> str | None:
    if v is None:
        return None
    s = str(v).strip().replace(" ", "")
    for suffix in ("特别行政区", "自治州", "地区", "盟", "市"):
        if len(s) > len(suffix) + 1 and s.endswith(suffix):
            s = s[: -len(suffix)]
            break
    return s or None


def _clean_text(v: str | None) -> str | None:
    if v is None:
        return None
    s = "".join(str(v).split())
    return s or None


def prepare_records(records: pd.DataFrame, params: MasterParams,
                    known: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records with normalised evidence and their name features; returns (records, names).

    ``known``: name features parsed by an earlier run with the same parser (see :func:`name_cache_key`);
    only names not in it are parsed."""
    recs = records.copy()
    for c in ["uscc", "phone", "contact_name", "city", "address", "province"]:
        if c not in recs:
            recs[c] = None
    recs["name_raw"] = recs["name_raw"].astype(object).where(recs["name_raw"].notna(), None)
    uniq = sorted(set(recs["name_raw"].dropna().unique()))
    if known is not None and len(known):
        known = known[known["name_raw"].isin(uniq)][_FEATURE_COLUMNS]
        have = set(known["name_raw"])
        todo = [n for n in uniq if n not in have]
    else:
        known, todo = None, uniq
    feats = name_features(todo + ([None] if recs["name_raw"].isna().any() else []),
                          set(params.hierarchy_sectors), workers=params.threads)
    if known is not None:
        feats = pd.concat([known, feats], ignore_index=True)
    recs = recs.merge(feats, on="name_raw", how="left")
    recs.loc[recs["is_junk"].isna(), "is_junk"] = True
    recs["is_junk"] = recs["is_junk"].astype(bool)
    recs["phone_n"] = _normalise_values(recs["phone"], nm.normalise_phone)
    recs["phones_more_n"] = _more_phones(recs) if params.contact_phones else None
    recs["uscc_n"] = _normalise_values(recs["uscc"], nm.normalise_uscc)
    recs["contact_n"] = _normalise_values(recs["contact_name"], _clean_text)
    recs["city_n"] = _normalise_values(recs["city"], _clean_city)
    recs["address_n"] = _normalise_values(recs["address"], _clean_text)
    recs["n_city_c"] = _normalise_values(recs["n_city"], _clean_city)
    recs = localise_unregioned(recs, params)
    return recs, feats


def _more_phones(recs: pd.DataFrame) -> pd.Series:
    """Normalised side phones of each record (``phones_more``, see :func:`contact_phones`) other than its own
    ``phone_n``, sorted; None where there are none."""
    n = len(recs)
    if "phones_more" not in recs or n == 0:
        return pd.Series([None] * n, index=recs.index, dtype=object)
    flat = pd.Series(recs["phones_more"].to_numpy(dtype=object), index=np.arange(n)).explode().dropna()
    norm = _normalise_values(flat, nm.normalise_phone).to_numpy(dtype=object)
    own = recs["phone_n"].to_numpy(dtype=object)
    side: dict[int, set] = {}
    for pos, v in zip(flat.index.to_numpy(), norm, strict=True):
        if v is not None and v != own[pos]:
            side.setdefault(pos, set()).add(v)
    return pd.Series([sorted(side[k]) if k in side else None for k in range(n)], index=recs.index, dtype=object)


def group_key(recs: pd.DataFrame, params: MasterParams) -> pd.Series:
    """Name-group key: records with the same normalised name key are one customer without further evidence.
    Bare branch-type names (region + brand, no unit word) form groups of their own: see ``_UNIT_WORDS``."""
    key = recs["match_key"].astype(object)
    # bare names: one group per record city + phone + credit code, so the evidence of each mention can pull
    # it to the head office or to the regional branch (see _UNIT_WORDS)
    bare = recs["bare"].fillna(False).astype(bool)
    ev = ("|bare@" + recs["city_n"].astype(object).fillna("") + "|" + recs["phone_n"].astype(object).fillna("")
          + "|" + recs["uscc_n"].astype(object).fillna(""))
    key = key.where(~bare, key + ev)
    key = key.where(~recs["local"].fillna(False).astype(bool), key + "|local" + ev)
    # a short form meaning several brands (平安, 中信) is only grouped with the very same writing
    amb = recs["ambiguous"].fillna(False).astype(bool)
    key = key.where(~amb, "ambiguous|" + recs["cleaned"].astype(object).fillna(""))
    # a trade name written without any region (合联电器公司) is one group per record city: two companies with
    # one trade name in two cities are common
    regionless = _regionless(recs)
    # ... and a bare name of a trade name found in several cities is a group per phone (see _bare_multi_city)
    split = _bare_multi_city(recs)
    key = key.where(~split, key + "|tel:" + recs["phone_n"].astype(object).fillna(""))
    return key.where(~regionless, key + "|@" + recs["city_n"].astype(object).fillna(""))


def _regionless(recs: pd.DataFrame) -> pd.Series:
    """A name with no dictionary brand and no region in it (合联电器公司)."""
    return recs["brand"].isna() & recs["n_city"].isna() & recs["n_province"].isna()


def _place(recs: pd.DataFrame) -> pd.Series:
    """A record's city: the one in its name, else its city field."""
    return recs["n_city_c"].astype(object).where(recs["n_city_c"].notna(), recs["city_n"])


def _bare_multi_city(recs: pd.DataFrame) -> pd.Series:
    """Records of a bare trade name (no region, no city, no credit code: a caller who gave 合联电器) whose
    trade name the records show in two or more cities. Two callers of 合联电器 may be the 成都 and the 重庆
    company, and only each one's phone can tell which, so they are a group per phone (:func:`group_key`)
    and, when left alone, listed for stewards (:func:`bare_name_candidates`). A bare name only one city knows
    stays one group (中南大学 from ten phones is one customer)."""
    cityless = _regionless(recs) & recs["city_n"].isna() & recs["uscc_n"].isna()
    if not cityless.any():
        return cityless
    cities = pd.DataFrame({"core": recs["core"], "city": _place(recs)}).dropna().drop_duplicates()
    n_cities = cities.groupby("core").size()
    return cityless & recs["core"].isin(n_cities.index[n_cities >= 2])


def localise_unregioned(recs: pd.DataFrame, params: MasterParams) -> pd.DataFrame:
    """With ``unregioned_brand_is_local``, a branch-type brand written bare (工行: no region, no 总行) in a
    record that has a city is read as that city's branch: the record is re-parsed as city + name."""
    if not params.unregioned_brand_is_local or recs.empty:
        return recs
    m = (recs["hier"] & recs["n_city"].isna() & recs["n_province"].isna() & (recs["branch_level"] == "head")
         & ~recs["head_written"] & recs["city_n"].notna())
    if not m.any():
        return recs
    local = (recs.loc[m, "city_n"].astype(str) + recs.loc[m, "name_raw"].astype(str))
    feats = name_features(sorted(set(local)), set(params.hierarchy_sectors)).set_index("name_raw")
    cols = [c for c in feats.columns if c in recs.columns and c != "name_raw"]
    recs = recs.copy()
    recs.loc[m, cols] = feats.loc[local.to_numpy(), cols].to_numpy()
    recs.loc[m, "n_city_c"] = recs.loc[m, "n_city"].map(_clean_city)
    return recs


# ------------------------------------------------------------------------------------------------------
# the matching engine
# ------------------------------------------------------------------------------------------------------

@dataclass
class MatchResult:
    records: pd.DataFrame      # record_id, group_id, cluster (int, NaN for junk), match_probability + features
    groups: pd.DataFrame       # one row per name group (Splink input)
    pairs: pd.DataFrame        # scored group pairs (>= review_low) with gammas, probability, hard-rule flag
    model: dict                # Splink model (settings with trained m/u)
    stats: dict = field(default_factory=dict)
    names: pd.DataFrame | None = None  # name features per distinct raw name (the parse cache's rows)


def _top_values(s: pd.Series, k: int) -> list | None:
    vals = [v for v, _ in Counter(x for x in s if x is not None and x == x).most_common(k)]
    return sorted(vals) or None


def build_groups(recs: pd.DataFrame, params: MasterParams, key: pd.Series | None = None) -> pd.DataFrame:
    """Aggregate non-junk records into name groups with the evidence Splink compares.

    ``key`` (per record) overrides :func:`group_key` (match_records passes the keys it already computed; the
    benchmark's plain-Splink baseline groups raw
    strings)."""
    live = recs[~recs["is_junk"]].copy()
    if live.empty:
        return pd.DataFrame(columns=["group_id", "gkey"])
    live["gkey"] = group_key(live, params) if key is None else key[~recs["is_junk"]]
    k = params.max_values_per_group
    more_phones = "phones_more_n" in live and live["phones_more_n"].notna().any()
    con = duckdb.connect()
    try:
        con.register("live", live[["gkey", "record_id", "canonical", "core", "brand", "hier", "ambiguous", "bare", "local", "cleaned", "n_province",
                                   "n_city_c", "n_district", "branch_level", "branch_name", "uscc_n", "phone_n",
                                   "contact_n", "city_n", "address_n", "match_key"]
                                  + (["phones_more_n"] if more_phones else [])])
        g = con.execute("""
            SELECT gkey, min(record_id) AS first_record, count(*) AS n_records,
                   mode(canonical ORDER BY canonical) AS canonical, min(core) AS core, min(brand) AS brand,
                   bool_or(hier) AS hier, min(match_key) AS match_key, bool_or(ambiguous) AS ambiguous,
                   bool_and(bare) AS bare, bool_and(local) AS local, mode(cleaned ORDER BY cleaned) AS written,
                   min(n_province) AS n_province, min(n_city_c) AS n_city, min(n_district) AS n_district,
                   min(branch_level) AS branch_level, min(branch_name) AS branch_name,
                   mode(address_n ORDER BY address_n) AS address
            FROM live GROUP BY gkey ORDER BY gkey
        """).df()
        # the k most frequent distinct values of each evidence field per group (ties: smallest value)
        # side phones (a CRM account's contacts) count as phone evidence of the group, once each
        more = ("\n                UNION ALL SELECT gkey, 'phone', unnest(phones_more_n) FROM live "
                "WHERE phones_more_n IS NOT NULL") if more_phones else ""
        vals = con.sql(f"""
            WITH v AS (
                SELECT gkey, 'uscc' AS f, uscc_n AS v FROM live WHERE uscc_n IS NOT NULL
                UNION ALL SELECT gkey, 'phone', phone_n FROM live WHERE phone_n IS NOT NULL{more}
                UNION ALL SELECT gkey, 'contact', contact_n FROM live WHERE contact_n IS NOT NULL
                UNION ALL SELECT gkey, 'city', city_n FROM live WHERE city_n IS NOT NULL
            ), c AS (SELECT gkey, f, v, count(*) AS n FROM v GROUP BY gkey, f, v)
            SELECT gkey, f, list_sort(list(v)) AS vals FROM (
                SELECT *, row_number() OVER (PARTITION BY gkey, f ORDER BY n DESC, v) AS rn FROM c
            ) WHERE rn <= {int(k)} GROUP BY gkey, f ORDER BY gkey, f
        """).to_arrow_table()
    finally:
        con.close()
    # plain objects (None for NULL): the list comprehensions below iterate them, and pandas' Arrow strings
    # are slow to iterate one by one at scale 100
    for c in g.columns:
        if g[c].dtype != bool and not pd.api.types.is_numeric_dtype(g[c]):
            g[c] = g[c].astype(object).where(g[c].notna(), None)
    maps: dict[str, dict] = {c: {} for c in ["uscc", "phone", "contact", "city"]}
    for gk, f, v in zip(vals.column("gkey").to_pylist(), vals.column("f").to_pylist(),
                        vals.column("vals").to_pylist(), strict=True):
        maps[f][gk] = v
    gkeys = g["gkey"].to_numpy(dtype=object)
    for c, m in maps.items():
        g[c] = pd.Series([m.get(x) for x in gkeys], index=g.index, dtype=object)
    # the name's own city counts as city evidence too
    g["city"] = [sorted(set((c or []) + ([nc] if isinstance(nc, str) else []))) or None
                 for c, nc in zip(g["city"], g["n_city"], strict=False)]
    g.insert(0, "group_id", np.arange(len(g), dtype=np.int64))
    g["core_bigrams"] = [_bigrams(c) for c in g["core"]]
    g["address_bigrams"] = [_bigrams(a) for a in g["address"]]
    g["core_p2"] = [c[:2] if isinstance(c, str) and len(c) >= 2 else None for c in g["core"]]
    # the core without its first / without its second character: one mistyped character in the trade name
    # (伟捷智能科技 / 韦捷智能科技, 凯龙电脑 / 凯笼电脑) still meets its partner in a small block
    g["core_c1"] = [c[1:] if isinstance(c, str) and len(c) >= 3 else None for c in g["core"]]
    g["core_c02"] = [c[0] + c[2:] if isinstance(c, str) and len(c) >= 3 else None for c in g["core"]]
    # the core without a 2-4 character head: a misspelt region written in front (宝定中曦运输 / 中曦运输) left in
    # the core still meets the plain core
    for k in _TAIL_CUTS:
        g[f"core_t{k}"] = [c[k:] if isinstance(c, str) and len(c) - k >= 2 else None for c in g["core"]]
    g["city_b"] = [nc if isinstance(nc, str) else (c[0] if c else None) for nc, c in zip(g["n_city"], g["city"], strict=False)]
    g["phone_1"] = [p[0] if p else None for p in g["phone"]]
    g["uscc_1"] = [u[0] if u else None for u in g["uscc"]]
    # 江西省烟草专卖局 vs 南昌市烟草专卖局, 浙江华远 vs 杭州华远: a province-level and a city-level name are two
    # organisations (bare branch-type names excepted: their region may be the head office's home city)
    g["region_level"] = [None if (bare or isinstance(b, str)) else
                         ("city" if isinstance(c, str) else "province" if isinstance(p, str) else None)
                         for c, p, bare, b in zip(g["n_city"], g["n_province"], g["bare"], g["brand"], strict=True)]
    # organisation unit for the branch hard rule (dictionary brands, or any name with a branch word):
    # level + branch + district as written; a head office and its branches are different units
    firm = [
        f"{bl if isinstance(bl, str) else 'main'}|{bn if isinstance(bn, str) else ''}|{di if isinstance(di, str) else ''}"
        if (isinstance(b, str) or isinstance(bl, str)) else None
        for b, bl, bn, di in zip(g["brand"], g["branch_level"], g["branch_name"], g["n_district"], strict=True)]
    g["unit"] = [BARE_PREFIX + (f or "") if bare else LOCAL_UNIT if local else f
                 for f, bare, local in zip(firm, g["bare"], g["local"], strict=True)]
    return g


_TAIL_CUTS = (2, 3, 4)  # region lengths (宜昌, 石家庄, 乌鲁木齐) cut from the head of a core for blocking


def _jaccard_sql(col: str) -> str:
    inter = f"len(list_intersect({col}_l, {col}_r))"
    return f"({inter} / greatest(len({col}_l) + len({col}_r) - {inter}, 1))"


# Prior m / u per comparison level (m: chance the level is seen on a true match; u: on two different
# customers). Used where the data cannot train a value (small lists, no EM); u is re-estimated by random
# sampling and m by EM on larger inputs. Order = the levels below, null level excluded. A third element True
# fixes u: person names and addresses collide between different organisations far more often than random
# pairs suggest (common names; one office building, many tenants), so their evidence is capped.
_PRIOR_MU = {
    "name": [(0.5, 1e-5), (0.25, 3e-5), (0.05, 1e-4), (0.1, 1e-4), (0.06, 5e-4), (0.03, 2e-3), (0.04, 2e-4),
             (0.02, 1e-2), (0.04, 0.99)],
    "uscc": [(0.9, 1e-6), (0.1, 1.0)],
    "phone": [(0.6, 1e-5), (0.4, 1.0)],
    "contact": [(0.4, 0.02, True), (0.6, 0.98)],
    "city": [(0.95, 0.05), (0.05, 0.95)],
    "address": [(0.5, 0.005, True), (0.3, 0.01, True), (0.2, 1.0)],
}


def splink_settings(params: MasterParams):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on
    from splink.blocking_rule_library import CustomRule

    def levels(name, lvls):
        out = [lvls[0]]
        for lv, prior in zip(lvls[1:], _PRIOR_MU[name], strict=True):
            m, u, *fix = prior
            out.append(lv.configure(m_probability=m, u_probability=u, fix_u_probability=bool(fix and fix[0])))
        return out

    # name: per-character similarity (core_sim, rapidfuzz, registered by _engine_connection) of the core, and
    # whether the trade name (字号, the first two characters of the core) agrees: 远锐电子科技集团 and
    # 鑫辰电子科技集团 are similar strings but two companies
    t1, t2, t3 = params.name_similarity_levels
    sim = "core_sim(core_l, core_r)"
    same_tn = "core_p2_l = core_p2_r"
    one_typo = ("length(written_l) = length(written_r) AND "
                "core_sim(written_l, written_r) >= 1 - 1.0 / length(written_l) - 1e-9")
    name_levels = [cll.NullLevel("core"),
                   cll.CustomLevel("canonical_l = canonical_r", "canonical name equal"),
                   cll.CustomLevel("core_l = core_r", "name core equal"),
                   # one mistyped character anywhere (有很公司, 营亚部) can break parsing: compare as written
                   cll.CustomLevel(one_typo, "written names differ by one character"),
                   cll.CustomLevel(f"{sim} >= {t1} AND {same_tn}", f"similarity >= {t1}, same trade name"),
                   cll.CustomLevel(f"{sim} >= {t2} AND {same_tn}", f"similarity >= {t2}, same trade name"),
                   cll.CustomLevel(f"{sim} >= {t3} AND {same_tn}", f"similarity >= {t3}, same trade name"),
                   cll.CustomLevel(f"{sim} >= {t1}", f"similarity >= {t1}, other trade name"),
                   cll.CustomLevel(f"{sim} >= {t3}", f"similarity >= {t3}, other trade name")]
    name_levels.append(cll.ElseLevel())

    def array_cmp(col: str, label: str):
        return cl.CustomComparison(output_column_name=col, comparison_levels=levels(col, [
            cll.NullLevel(col),
            cll.CustomLevel(f"len(list_intersect({col}_l, {col}_r)) >= 1", f"{label} shared"),
            cll.ElseLevel()]))

    addr = _jaccard_sql("address_bigrams")
    comparisons = [
        cl.CustomComparison(output_column_name="name", comparison_levels=levels("name", name_levels)),
        array_cmp("uscc", "credit code"),
        array_cmp("phone", "phone"),
        array_cmp("contact", "contact"),
        array_cmp("city", "city"),
        cl.CustomComparison(output_column_name="address", comparison_levels=levels("address", [
            cll.NullLevel("address"),
            cll.CustomLevel("address_l = address_r", "address equal"),
            cll.CustomLevel(f"{addr} >= 0.6", "address bigram Jaccard >= 0.6"),
            cll.ElseLevel()])),
    ]
    blocking = [
        block_on("match_key"),
        block_on("uscc_x", arrays_to_explode=["uscc_x"]),
        block_on("phone_x", arrays_to_explode=["phone_x"]),
        CustomRule("l.brand = r.brand AND l.city_b = r.city_b"),
        CustomRule("l.core = r.core AND l.brand IS NULL"),
        block_on("core_p2", "city_b"),
        # A block on the last two characters + city alone (科技|成都) grows with the square of the customers
        # per city: 73M pairs at scale 100 for ~0.1% true matches. The typos it was there for are caught by
        # the core minus its first or second character; a core written at the end of a longer one (三峡大学 /
        # 宜昌三峡大学, a misspelt region in front) by the longer core minus its head (equality joins only).
        block_on("core_c1", "city_b"),
        block_on("core_c02", "city_b"),
        *[CustomRule(f"{a}.core_t{k} = {b}.core AND l.city_b = r.city_b")
          for k in _TAIL_CUTS for a, b in (("l", "r"), ("r", "l"))],
    ]
    return SettingsCreator(
        link_type="dedupe_only", unique_id_column_name="group_id", comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking, retain_matching_columns=False,
        retain_intermediate_calculation_columns=True, probability_two_random_records_match=1e-4,
        additional_columns_to_retain=[],
    )


def _register_core_sim(con: duckdb.DuckDBPyConnection) -> None:
    """``core_sim(a, b)``: per-character Indel similarity in [0, 1] (DuckDB's own distances count UTF-8
    bytes). Vectorised with rapidfuzz's cpdist: one C++ call per batch, not one Python call per pair, which
    is what keeps Splink's predict fast on millions of pairs (names.register_duckdb_functions loops in
    Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from duckdb.sqltypes import DOUBLE, VARCHAR
    from rapidfuzz import fuzz, process

    def core_sim(a, b):
        mask = pc.or_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
        sims = process.cpdist(pc.fill_null(a, "").to_pylist(), pc.fill_null(b, "").to_pylist(),
                              scorer=fuzz.ratio, workers=1)
        return pa.array(np.asarray(sims, dtype=np.float64) / 100.0, mask=mask)

    con.create_function("core_sim", core_sim, [VARCHAR, VARCHAR], DOUBLE, type="arrow")


def _engine_connection(params: MasterParams) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    _register_core_sim(con)
    con.execute(f"SET threads = {int(params.threads)}")
    con.execute(f"SET memory_limit = '{params.memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def score_groups(groups: pd.DataFrame, params: MasterParams, con: duckdb.DuckDBPyConnection | None = None,
                 progress: bool = True, stats: dict | None = None,
                 model: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Train the Splink model without labels and score blocked pairs of name groups.

    Returns (pairs with group_id_l/r, gamma_* , match_weight, match_probability for pairs at or above
    ``review_low``, the trained model as a dict). ``stats`` (optional) receives seconds per step."""
    import time

    from splink import DuckDBAPI, Linker, block_on

    stats = {} if stats is None else stats
    clock = [time.perf_counter()]

    def lap(key: str) -> None:
        now = time.perf_counter()
        stats[key] = round(now - clock[0], 1)
        clock[0] = now

    own = con is None
    con = con or _engine_connection(params)
    cols = ["group_id", "canonical", "core", "written", "core_bigrams", "brand", "match_key", "uscc", "phone", "contact",
            "city", "address", "address_bigrams", "core_p2", "core_c1", "core_c02",
            *[f"core_t{k}" for k in _TAIL_CUTS], "city_b", "phone_1", "uscc_1"]
    inp = groups[cols].copy()
    inp["uscc_x"] = inp["uscc"]
    inp["phone_x"] = inp["phone"]
    con.register("_groups_df", inp)
    con.execute("CREATE OR REPLACE TABLE splink_groups AS SELECT * FROM _groups_df ORDER BY group_id")
    con.unregister("_groups_df")
    logging.getLogger("splink").setLevel(logging.ERROR)
    db_api = DuckDBAPI(con)
    sdf = db_api.register("splink_groups")
    # a model trained by an earlier resolve (``model``) is used as it is: no training
    linker = Linker(sdf, model if model is not None else splink_settings(params), log_level=None)
    n = len(groups)
    steps = tqdm(total=4, desc="splink", disable=not progress)
    if model is not None:
        steps.update(2)
    elif n >= 2:
        from splink.blocking_rule_library import CustomRule

        # prior chance two name groups are one customer, from near-certain rules (a shared credit code; a
        # shared phone with similar names; near-identical names in one city) whose recall is guessed
        settings = linker._settings_obj
        try:
            linker.training.estimate_probability_two_random_records_match(
                [block_on("uscc_x", arrays_to_explode=["uscc_x"]),
                 CustomRule("l.phone_1 = r.phone_1 AND core_sim(l.core, r.core) >= 0.55"),
                 CustomRule("l.core_p2 = r.core_p2 AND l.city_b = r.city_b AND core_sim(l.core, r.core) >= 0.85")],
                recall=params.prior_rules_recall)
        except Exception as exc:  # e.g. rules more matches than the recall allows on a tiny list
            log.info("prior not estimated: %s", exc)
        lam = settings._probability_two_random_records_match
        if not 0 < lam < 0.5:
            # no near-certain pair at all: assume each group has about one partner
            settings._probability_two_random_records_match = min(0.5, 1.0 / n)
        lap("seconds_splink_prior")
        if n >= params.em_min_groups:
            # on a short list random pairs are too often true matches to estimate u: keep the priors
            linker.training.estimate_u_using_random_sampling(
                max_pairs=min(params.u_max_pairs, n * (n - 1) / 2), seed=params.seed)
        lap("seconds_splink_u")
        steps.update()
        if n >= params.em_min_groups:
            for rule in (block_on("core_p2"), block_on("city_b", "phone_1")):
                try:
                    linker.training.estimate_parameters_using_expectation_maximisation(
                        rule, max_pairs=params.em_max_pairs)
                except Exception as exc:  # too few pairs for this rule: keep the priors / other session
                    log.info("EM session skipped (%s): %s", rule, exc)
        lap("seconds_splink_em")
        steps.update()
    # predict_chunks > 1: Splink blocks and scores one slice of the left-hand groups at a time (the same
    # pairs, fewer held in memory at once)
    chunks = {} if params.predict_chunks <= 1 else {"num_chunks_left": params.predict_chunks, "num_chunks_right": 1}
    pred = linker.inference.predict(threshold_match_probability=min(params.review_low, params.threshold),
                                    warning_mode="never", **chunks)
    steps.update()
    mw_cols = [f"mw_{c}" for c in COMPARISONS]
    pairs = con.execute(f"""
        SELECT group_id_l, group_id_r, {', '.join(mw_cols)}, match_weight, match_probability
        FROM {pred.physical_name} ORDER BY group_id_l, group_id_r""").df()
    model = model if model is not None else linker.misc.save_model_to_json()
    lap("seconds_splink_predict")
    steps.update()
    steps.close()
    if own:
        con.close()
    return pairs, model


TRADE_NAME_CITY = "trade_name_city"


def _single_place(g: pd.DataFrame) -> pd.Series:
    """A name group's one city: the city in its name, else the only city its records give; None when the
    records give none or several."""
    one = [c[0] if isinstance(c, list | np.ndarray) and len(c) == 1 else None for c in g["city"]]
    return g["n_city"].astype(object).where(g["n_city"].notna(), pd.Series(one, index=g.index, dtype=object))


def trade_name_city_pairs(groups: pd.DataFrame) -> pd.DataFrame:
    """Pairs of name groups with the same name core (trade name + industry: 伟峰管理咨询) in the same city,
    neither a dictionary brand nor an ambiguous short form. Columns group_id_l < group_id_r. A core and city
    whose records carry two credit codes that no group shares (two registered companies, or a mistyped
    code: the records cannot say which) is left to the scores altogether.

    One registration authority does not register the same trade name twice in one industry (企业名称登记管理
    规定, 2020, art. 17), so 伟峰管理咨询 in a ticket from 太原 is 太原伟峰管理咨询有限责任公司 whatever the legal
    form or the phone: Splink's score for such a pair, often below the threshold because the phones differ
    and the prior chance of a match among 400k name groups is tiny, does not decide it. Brands (banks,
    insurers: 中信银行(昆明) may be the city or the provincial branch) and hard-rule conflicts
    (:func:`_vector_violations`, applied by the caller) are left to the scores.
    """
    cols = ["group_id_l", "group_id_r"]
    if groups.empty:
        return pd.DataFrame(columns=cols, dtype=np.int64)
    g = groups[groups["brand"].isna() & ~groups["ambiguous"].fillna(False).astype(bool) & groups["core"].notna()]
    g = pd.DataFrame({"group_id": g["group_id"].to_numpy(), "core": g["core"].to_numpy(),
                      "place": _single_place(g).to_numpy(), "uscc": g["uscc"].to_numpy()}).dropna(subset=["place"])
    m = g.merge(g, on=["core", "place"], suffixes=("_l", "_r"))
    m = m[m["group_id_l"] < m["group_id_r"]]
    conflict = np.array([isinstance(a, list | np.ndarray) and isinstance(b, list | np.ndarray)
                         and len(a) > 0 and len(b) > 0 and not set(a) & set(b)
                         for a, b in zip(m["uscc_l"], m["uscc_r"], strict=True)], dtype=bool)
    two_codes = m.loc[conflict, ["core", "place"]].drop_duplicates().assign(_two=True)
    m = m.merge(two_codes, on=["core", "place"], how="left")
    m = m[m["_two"].isna()]
    return m[cols].sort_values(cols).reset_index(drop=True).astype(np.int64)


def _add_rule_pairs(pairs: pd.DataFrame, rule_pairs: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Mark scored pairs a rule accepts (``rule`` column) and append the ones Splink did not return (scored
    below review_low): no probability or weights for those."""
    if rule_pairs.empty:
        return pairs
    key = ["group_id_l", "group_id_r"]
    hit = pairs[key].merge(rule_pairs.assign(_r=True), on=key, how="left")["_r"].fillna(False).to_numpy(bool)
    pairs.loc[hit, "rule"] = rule
    extra = rule_pairs.merge(pairs[key], on=key, how="left", indicator=True)
    extra = extra.loc[extra["_merge"] == "left_only", key].assign(rule=rule)
    if extra.empty:
        return pairs
    return pd.concat([pairs, extra], ignore_index=True).sort_values(key, kind="stable").reset_index(drop=True)


def _rule_strength(pairs: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A copy of ``pairs`` in which a pair a rule accepts is at least just strong enough to be accepted
    (probability ``threshold`` and its match weight; Splink's own score when higher)."""
    out = pairs.copy()
    r = out["rule"].notna()
    if r.any():
        floor = math.log2(threshold / (1 - threshold)) if threshold < 1 else 64.0
        out.loc[r, "match_probability"] = out.loc[r, "match_probability"].fillna(0).clip(lower=threshold)
        out.loc[r, "match_weight"] = out.loc[r, "match_weight"].fillna(floor).clip(lower=floor)
    return out


# Fields whose values must agree (when both are written) for two name groups to be one customer
_HARD_KEYS = ["brand", "n_province", "n_city", "unit"]
_HARD_REASONS = {"brand": "different brand", "n_province": "different province in name",
                 "n_city": "different city in name", "unit": "different branch / head office",
                 "region_level": "province vs city in name", "ambiguous": "ambiguous short form"}
LOCAL_UNIT = "~local"   # a unit in the named region, level unknown: any unit but the head office
BARE_PREFIX = "~bare:"  # + the unit the name reads as: that unit, or the head office written with its home city
HEAD_UNIT = "head||"


def units_conflict(units: set) -> bool:
    """True when a set of unit values cannot belong to one customer.

    Firm units must all be equal; ``LOCAL_UNIT`` fits any unit but the head office; ``~bare:<unit>`` fits
    that unit or the head office."""
    firm = {u for u in units if not u.startswith("~")}
    if len(firm) > 1:
        return True
    bares = {u[len(BARE_PREFIX):] for u in units if u.startswith(BARE_PREFIX)}
    if len(bares) > 1:
        return True
    local = LOCAL_UNIT in units
    if local and HEAD_UNIT in firm:
        return True
    if bares:
        b = next(iter(bares))
        if firm and firm != {b} and firm != {HEAD_UNIT}:
            return True
        if local and firm == {HEAD_UNIT}:
            return True
    return False


def hard_rule_violation(a: dict, b: dict) -> str | None:
    """Why two name groups can never be one customer, or None. Blank fields never conflict.

    ``brand`` (dictionary brands only), region written in the name, and ``unit`` (branch level, branch name,
    district; set for dictionary brands and names with a branch word) must agree; the same name core at a
    province and at a city level (江西省烟草专卖局 / 南昌市烟草专卖局) are two organisations. A short form that
    means several brands (``ambiguous``) joins a group of a named brand only on a shared phone or credit code
    (``shared_id``), never another short form; otherwise a reviewer decides."""
    for k in ["brand", "n_province", "n_city"]:
        x, y = a.get(k), b.get(k)
        if isinstance(x, str) and isinstance(y, str) and x != y:
            return _HARD_REASONS[k]
    ua, ub = a.get("unit"), b.get("unit")
    if isinstance(ua, str) and isinstance(ub, str) and units_conflict({ua, ub}):
        return _HARD_REASONS["unit"]
    ra, rb = a.get("region_level"), b.get("region_level")
    if isinstance(ra, str) and isinstance(rb, str) and ra != rb and a.get("core") == b.get("core"):
        return _HARD_REASONS["region_level"]
    if (a.get("ambiguous") or b.get("ambiguous")) and (
            not a.get("shared_id") or (a.get("ambiguous") and b.get("ambiguous"))):
        return _HARD_REASONS["ambiguous"]
    return None


def _vector_violations(pairs: pd.DataFrame, groups: pd.DataFrame) -> pd.Series:
    """:func:`hard_rule_violation` for many pairs at once; the reason or None per pair."""
    g = groups.set_index("group_id")[_HARD_KEYS + ["region_level", "ambiguous", "core"]]
    L = g.loc[pairs["group_id_l"].to_numpy()].reset_index(drop=True)
    R = g.loc[pairs["group_id_r"].to_numpy()].reset_index(drop=True)
    out = np.full(len(pairs), None, dtype=object)

    def differ(k):
        return (L[k].notna() & R[k].notna() & (L[k] != R[k])).to_numpy()

    shared_id = ((pairs["mw_phone"].to_numpy() > 0) | (pairs["mw_uscc"].to_numpy() > 0))
    la, ra = L["ambiguous"].fillna(False).astype(bool).to_numpy(), R["ambiguous"].fillna(False).astype(bool).to_numpy()
    unit = np.array([isinstance(a, str) and isinstance(b, str) and units_conflict({a, b})
                     for a, b in zip(L["unit"], R["unit"], strict=True)], dtype=bool)
    rules = [("brand", differ("brand")), ("n_province", differ("n_province")), ("n_city", differ("n_city")),
             ("unit", unit), ("region_level", differ("region_level") & (L["core"] == R["core"]).to_numpy()),
             ("ambiguous", ((la | ra) & ~shared_id) | (la & ra))]
    for k, mask in reversed(rules):  # the first rule wins
        out[mask] = _HARD_REASONS[k]
    return pd.Series(out, index=pairs.index, dtype=object)


def _core_level_conflict(pairs: set) -> bool:
    """One name core written at a province and at a city level (江西省烟草专卖局 / 南昌市烟草专卖局)."""
    seen: dict = {}
    for core, level in pairs:
        if seen.setdefault(core, level) != level:
            return True
    return False


class _UnionFind:
    """Union-find whose components remember their hard-rule values and reviewers' no-match partners."""

    def __init__(self, groups: pd.DataFrame, cannot: set[tuple[int, int]]):
        self.parent: dict[int, int] = {}
        self.vals: dict[int, dict[str, set]] = {}
        self.cannot: dict[int, set[int]] = {}
        self.rows = groups.set_index("group_id")[_HARD_KEYS + ["core", "region_level"]].to_dict("index")
        for a, b in cannot:
            self.cannot.setdefault(a, set()).add(b)
            self.cannot.setdefault(b, set()).add(a)

    def find(self, x: int) -> int:
        if x not in self.parent:
            self.parent[x] = x
            r = self.rows[x]
            self.vals[x] = {"members": {x}, **{k: ({r[k]} if isinstance(r[k], str) else set()) for k in _HARD_KEYS},
                            "core_level": ({(r["core"], r["region_level"])}
                                           if isinstance(r["region_level"], str) else set())}
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def compatible(self, a: int, b: int) -> bool:
        va, vb = self.vals[a], self.vals[b]
        for k in ("brand", "n_province", "n_city"):
            if va[k] and vb[k] and va[k] != vb[k]:
                return False
        if units_conflict(va["unit"] | vb["unit"]):
            return False
        if _core_level_conflict(va["core_level"] | vb["core_level"]):
            return False
        small, big = (va, vb) if len(va["members"]) <= len(vb["members"]) else (vb, va)
        return not any(self.cannot.get(m, set()) & big["members"] for m in small["members"])

    def union(self, a: int, b: int, force: bool = False) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not force and not self.compatible(ra, rb):
            return False
        if len(self.vals[ra]["members"]) < len(self.vals[rb]["members"]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        for k, v in self.vals[rb].items():
            self.vals[ra][k] |= v
        del self.vals[rb]
        return True


def cluster_groups(groups: pd.DataFrame, edges: pd.DataFrame, cannot: set[tuple[int, int]],
                   forced: list[tuple[int, int]], params: MasterParams,
                   con: duckdb.DuckDBPyConnection | None = None) -> pd.Series:
    """Cluster label per group_id (index = group_id).

    Splink's connected components over the accepted edges plus reviewers' forced matches; then every
    component that chains incompatible groups (through groups whose fields are blank) or holds a reviewer's
    no-match pair is rebuilt greedily: forced matches first, then edges strongest first (ties: smallest
    ids), skipping any edge that would join incompatible parts.
    """
    from splink import DuckDBAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    ids = groups["group_id"].to_numpy()
    # match weights, when given, serve the ambiguity check (_detach_ambiguous); forced matches: infinitely strong
    e = edges[["group_id_l", "group_id_r", "match_probability"]
              + (["match_weight"] if "match_weight" in edges else [])]
    if forced:
        f = pd.DataFrame(forced, columns=["group_id_l", "group_id_r"]).assign(match_probability=1.0)
        if "match_weight" in e:
            f["match_weight"] = np.inf
        e = pd.concat([f, e], ignore_index=True)
    e = e[e["match_probability"] >= params.threshold].reset_index(drop=True)
    own = con is None
    con = con or _engine_connection(params)
    try:
        cc = cluster_pairwise_predictions_at_threshold(
            pd.DataFrame({"group_id": ids}), e, db_api=DuckDBAPI(con), node_id_column_name="group_id",
            edge_id_column_name_left="group_id_l", edge_id_column_name_right="group_id_r",
            threshold_match_probability=params.threshold,
        ).as_pandas_dataframe()
    finally:
        if own:
            con.close()
    lab = pd.Series(cc["cluster_id"].astype(str).to_numpy(), index=cc["group_id"].astype(np.int64).to_numpy())
    lab = lab.reindex(ids)
    g = groups.set_index("group_id")
    frame = pd.DataFrame({"cluster": lab.to_numpy()}, index=ids)
    for k in _HARD_KEYS:
        frame[k] = g.loc[ids, k].to_numpy()
    bad = set()
    for k in ("brand", "n_province", "n_city"):
        nun = frame.dropna(subset=[k]).groupby("cluster")[k].nunique()
        bad |= set(nun[nun > 1].index)
    units = frame.dropna(subset=["unit"]).groupby("cluster")["unit"].agg(set)
    bad |= {c for c, u in units.items() if units_conflict(u)}
    frame["core_level"] = [(c, r) if isinstance(r, str) else None
                           for c, r in zip(g.loc[ids, "core"], g.loc[ids, "region_level"], strict=True)]
    cl = frame.dropna(subset=["core_level"]).groupby("cluster")["core_level"].agg(set)
    bad |= {c for c, v in cl.items() if _core_level_conflict(v)}
    for a, b in cannot:
        if lab.get(a) is not None and lab.get(a) == lab.get(b):
            bad.add(lab[a])
    if not bad:
        return lab
    members = set(frame.index[frame["cluster"].isin(bad)].tolist())
    uf = _UnionFind(groups[groups["group_id"].isin(members)], cannot)
    for a, b in sorted(forced):
        if a in members and b in members:
            uf.union(a, b, force=True)
    sub = e[e["group_id_l"].isin(members) & e["group_id_r"].isin(members)]
    sub = sub.sort_values(["match_probability", "group_id_l", "group_id_r"], ascending=[False, True, True])
    for a, b in zip(sub["group_id_l"].to_numpy(), sub["group_id_r"].to_numpy(), strict=False):
        uf.union(int(a), int(b))
    rebuilt = sorted(members)
    lab = lab.astype(object)
    lab.loc[rebuilt] = [f"r{uf.find(int(gid))}" for gid in rebuilt]
    detached = _detach_ambiguous(groups, sub, uf, members, {x for f in forced for x in f}, params)
    for gid in detached:
        lab.loc[gid] = f"a{gid}"
    lab.attrs["ambiguous_groups"] = sorted(detached)
    return lab


def _detach_ambiguous(groups: pd.DataFrame, edges: pd.DataFrame, uf: _UnionFind, members: set[int],
                      pinned: set[int], params: MasterParams) -> set[int]:
    """Name groups with no place at all (no region in the name, no city, no credit code on any record:
    和和商贸集团 written bare in a call log) that the greedy rebuild joined to one customer although an edge
    almost as strong (match weight within ``ambiguity_margin`` bits) led to another customer it could not
    join (another city): the evidence cannot tell which one it is, so the group stays a customer of its own
    and its pairs go to the review queue. Only a group whose customer stays connected without it is
    detached; groups in a reviewer's match decision stay where the reviewer put them. Without match
    weights (``edges`` lacks them) nothing is detached."""
    if "match_weight" not in edges:
        return set()
    placeless = groups.loc[groups[["brand", "n_province", "n_city", "city", "uscc"]].isna().all(axis=1),
                           "group_id"]
    cand = sorted(int(x) for x in set(placeless) & members if x not in pinned)
    if not cand:
        return set()
    root = {int(x): uf.find(int(x)) for x in members}
    el, er, ep = (edges["group_id_l"].to_numpy(), edges["group_id_r"].to_numpy(),
                  edges["match_weight"].to_numpy())
    by_group: dict[int, list[tuple[float, int]]] = {}
    for a, b, p in zip(el, er, ep, strict=True):
        by_group.setdefault(int(a), []).append((float(p), int(b)))
        by_group.setdefault(int(b), []).append((float(p), int(a)))
    inside: dict[int, list[tuple[int, int]]] = {}  # edges within each customer
    nodes: dict[int, list[int]] = {}
    for a, b in zip(el, er, strict=True):
        if root[int(a)] == root[int(b)]:
            inside.setdefault(root[int(a)], []).append((int(a), int(b)))
    for y in members:
        nodes.setdefault(root[int(y)], []).append(int(y))
    out = set()
    for x in cand:
        own = [p for p, y in by_group.get(x, []) if root[y] == root[x] and y not in out]
        other = [p for p, y in by_group.get(x, []) if root[y] != root[x] and y not in out]
        if not own or not other or max(other) < max(own) - params.ambiguity_margin:
            continue
        # the rest of its customer must stay connected without it (and without the groups detached before)
        gone = out | {x}
        rest = [y for y in nodes[root[x]] if y not in gone]
        if rest and not _connected(rest, inside.get(root[x], []), exclude=gone):
            continue
        out.add(x)
    return out


def _connected(nodes: list[int], edges: list[tuple[int, int]], exclude: set[int]) -> bool:
    """Whether ``nodes`` form one component over ``edges`` touching none of ``exclude``."""
    parent = {n: n for n in nodes}

    def find(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        if a not in exclude and b not in exclude:
            parent[find(a)] = find(b)
    return len({find(n) for n in nodes}) == 1


def read_decisions(path: str | Path | None = None) -> pd.DataFrame:
    """Reviewers' decisions; the latest decision per pair (by decided_at, then file order) wins."""
    path = Path(path) if path else paths.review_decisions_path()
    if not path.exists():
        return pd.DataFrame(columns=DECISION_COLUMNS)
    if path.is_dir():
        raise UserError("is a folder, not a decisions file", file=str(path),
                        hint="pass a .csv file (params/review_decisions.csv by default)")
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    df = read_user_csv(path, "review decisions file")   # UTF-8 or GBK (a file saved from Excel)
    missing = [c for c in DECISION_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"missing column(s) {', '.join(missing)}", file=str(path),
                        hint="header must be " + ",".join(DECISION_COLUMNS))
    bad = df[~df["decision"].isin(["match", "no_match"])]
    if len(bad):
        raise UserError(f"decision must be match or no_match, got {bad['decision'].iloc[0]!r}", file=str(path),
                        row=int(bad.index[0]) + 2, column="decision")
    df["_order"] = range(len(df))
    lo = df[["record_id_l", "record_id_r"]].min(axis=1)
    hi = df[["record_id_l", "record_id_r"]].max(axis=1)
    df["record_id_l"], df["record_id_r"] = lo, hi
    df = df.sort_values(["decided_at", "_order"]).groupby(["record_id_l", "record_id_r"]).tail(1)
    return df.sort_values(["record_id_l", "record_id_r"])[DECISION_COLUMNS].reset_index(drop=True)


def append_decision(record_id_l: str, record_id_r: str, decision: str, reviewer: str,
                    path: str | Path | None = None, decided_at: str | None = None) -> None:
    """Append one reviewer decision to the decisions file (created with its header when absent)."""
    append_decisions([(record_id_l, record_id_r, decision)], reviewer, path, decided_at)


def append_decisions(rows, reviewer: str, path: str | Path | None = None, decided_at: str | None = None) -> None:
    """Append ``(record_id_l, record_id_r, decision)`` rows in one write (a file edited by hand and left
    without a final newline gets one first, so the first new row is not glued to the last old one)."""
    rows = list(rows)
    bad = [d for _l, _r, d in rows if d not in ("match", "no_match")]
    if bad:
        raise UserError(f"decision must be match or no_match, got {bad[0]!r}")
    path = Path(path) if path else paths.review_decisions_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        read_decisions(path)   # refuses a file that is not a decisions file
        from .encoding import detect
        if detect(path).encoding != "utf-8":
            raise UserError("the decisions file is not UTF-8: new decisions would be written in another "
                            "encoding", file=str(path), hint="save it as UTF-8 (CSV UTF-8 in Excel), then apply again")
        with path.open("rb") as f:
            f.seek(-1, 2)
            needs_newline = f.read(1) not in (b"\n", b"\r")
    at = decided_at or dt.datetime.now().isoformat(timespec="seconds")
    with path.open("a", encoding="utf-8", newline="") as f:
        if not new and needs_newline:
            f.write("\n")
        w = csv.writer(f)
        if new:
            w.writerow(DECISION_COLUMNS)
        w.writerows([[a, b, d, reviewer, at] for a, b, d in rows])


def match_records(records: pd.DataFrame, params: MasterParams, decisions: pd.DataFrame | None = None,
                  progress: bool = True, known_names: pd.DataFrame | None = None,
                  model: dict | None = None) -> MatchResult:
    """The engine shared by ``crm resolve`` and ``crm dedup``: records in, clusters out.

    ``records`` needs ``record_id`` and ``name_raw``; ``uscc, phone, contact_name, city, address`` are used
    when present. ``match_probability`` of a record is the strongest accepted edge joining its name group to
    the rest of its cluster (1.0 when the group is the whole cluster: the name key alone decides it).
    """
    import time

    clock = [time.perf_counter()]

    def lap() -> float:
        now = time.perf_counter()
        dt_, clock[0] = now - clock[0], now
        return round(dt_, 1)

    recs, feats = prepare_records(records, params, known_names)
    t_names = lap()
    live = ~recs["is_junk"]
    recs["gkey"] = None
    recs.loc[live, "gkey"] = group_key(recs[live], params)
    groups = build_groups(recs, params, key=recs["gkey"])
    recs["group_id"] = recs["gkey"].map(pd.Series(groups["group_id"].to_numpy(), index=groups["gkey"].to_numpy()))
    stats: dict[str, Any] = {"records": len(recs), "junk": int((~live).sum()), "groups": len(groups),
                             "seconds_names": t_names, "seconds_groups": lap()}
    if len(groups) == 0:
        recs["cluster"] = None
        recs["match_probability"] = np.nan
        return MatchResult(recs, groups, pd.DataFrame(), {}, stats, feats)
    con = _engine_connection(params)
    try:
        stats["model"] = "reused" if model is not None else "trained"
        pairs, model = score_groups(groups, params, con=con, progress=progress, stats=stats, model=model)
        stats["seconds_splink"] = lap()
        stats["pairs_scored"] = len(pairs)   # by Splink (rule pairs it did not return are appended below)
        pairs["rule"] = None
        if params.same_trade_name_same_city:
            pairs = _add_rule_pairs(pairs, trade_name_city_pairs(groups), TRADE_NAME_CITY)
        pairs["violation"] = _vector_violations(pairs, groups) if len(pairs) else pd.Series(dtype=object)
        # reviewers' decisions, mapped from record ids to name groups
        rid2g = dict(zip(recs["record_id"], recs["group_id"], strict=False))
        cannot, forced = set(), []
        pairs["decision"] = None
        if decisions is not None and len(decisions):
            for r in decisions.itertuples(index=False):
                a, b = rid2g.get(r.record_id_l), rid2g.get(r.record_id_r)
                if a is None or b is None or pd.isna(a) or pd.isna(b) or a == b:
                    continue
                a, b = sorted((int(a), int(b)))
                if r.decision == "match":
                    forced.append((a, b))
                else:
                    cannot.add((a, b))
            key = list(zip(pairs["group_id_l"], pairs["group_id_r"], strict=False))
            dec = {p: "match" for p in forced} | {p: "no_match" for p in cannot}
            pairs["decision"] = [dec.get(k) for k in key]
        allowed = pairs[pairs["violation"].isna() & (pairs["decision"].fillna("") != "no_match")]
        # pairs joined only because of a rule (Splink scored them below the threshold, or not at all)
        stats["pairs_by_rule"] = int((allowed["rule"].notna() & ~(allowed["match_probability"] >= params.threshold)).sum())
        allowed = _rule_strength(allowed, params.threshold)
        lab = cluster_groups(groups, allowed[allowed["match_probability"] >= params.threshold], cannot, forced,
                             params, con=con)
    finally:
        con.close()
    amb = set(lab.attrs.get("ambiguous_groups", []))
    pairs["ambiguous"] = (pairs["group_id_l"].isin(amb) | pairs["group_id_r"].isin(amb)) if len(pairs) else False
    stats["ambiguous_groups"] = len(amb)
    # cluster numbers in order of each cluster's first record, so outputs are stable
    groups["cluster_label"] = lab.to_numpy()
    # numpy, not groupby().min(): pandas reduces object strings group by group in Python (32 s at scale 100)
    codes, _ = pd.factorize(groups["cluster_label"].to_numpy(dtype=object))
    perm = np.argsort(groups["first_record"].to_numpy(dtype=object), kind="stable")
    _, first_pos = np.unique(codes[perm], return_index=True)  # per label: rank of its smallest first_record
    groups["cluster"] = np.argsort(np.argsort(first_pos, kind="stable"), kind="stable")[codes].astype(np.int64)
    # per-group confidence: best accepted edge inside its cluster (or a forced decision = 1.0)
    gcl = dict(zip(groups["group_id"], groups["cluster"], strict=False))
    best: dict[int, float] = {}
    for a, b, p in zip(allowed["group_id_l"], allowed["group_id_r"], allowed["match_probability"], strict=False):
        if gcl[a] == gcl[b]:
            best[a] = max(best.get(a, 0.0), p)
            best[b] = max(best.get(b, 0.0), p)
    for a, b in forced:
        best[a] = best[b] = 1.0
    size = groups.groupby("cluster")["group_id"].transform("size")
    groups["match_probability"] = [1.0 if s == 1 else best.get(g, params.threshold)
                                   for g, s in zip(groups["group_id"], size, strict=False)]
    recs = recs.merge(groups[["group_id", "cluster", "match_probability"]], on="group_id", how="left")
    stats.update({"seconds_cluster": lap(), "clusters": int(groups["cluster"].nunique()),
                  "pairs_blocked_by_rule": int(pairs["violation"].notna().sum()) if len(pairs) else 0})
    return MatchResult(recs, groups, pairs, model, stats, feats)


# ------------------------------------------------------------------------------------------------------
# stable customer ids
# ------------------------------------------------------------------------------------------------------

def assign_ids(clusters: pd.DataFrame, old_map: pd.DataFrame | None) -> dict:
    """Customer id per cluster label, stable across runs.

    ``clusters``: record_id, cluster (junk rows excluded). ``old_map``: record_id, customer_id from earlier
    runs. A cluster takes the id most of its already-known records had (ties: smallest id); when two clusters
    claim one id (a customer split), the cluster holding more of its records keeps it (ties: the cluster with
    the smallest record_id), the other tries its next candidate. Clusters left over get new numbers after the
    largest id ever issued, in order of their smallest record_id. Ids are never reused.
    """
    # counted and sorted in DuckDB: a million records with a million earlier ids at scale 100
    con = duckdb.connect()
    try:
        con.register("_c", clusters[["record_id", "cluster"]])
        first = con.execute("SELECT cluster, min(record_id) AS first FROM _c GROUP BY cluster ORDER BY first").df()
        order = first["cluster"].to_numpy(dtype=object)
        if old_map is None or old_map.empty:
            return {c: f"C{i + 1:06d}" for i, c in enumerate(order)}
        con.register("_o", old_map[["record_id", "customer_id"]])
        # candidates per cluster in preference order; claims settled strongest first
        votes = con.execute("""
            SELECT c.cluster, o.customer_id, count(*) AS n, min(f.first) AS first
            FROM _c c JOIN _o o USING (record_id)
                 JOIN (SELECT cluster, min(record_id) AS first FROM _c GROUP BY cluster) f USING (cluster)
            GROUP BY c.cluster, o.customer_id ORDER BY n DESC, o.customer_id, first""").df()
        top = con.execute("SELECT max(CAST(substr(customer_id, 2) AS BIGINT)) FROM _o "
                          "WHERE customer_id IS NOT NULL").fetchall()[0][0]
    finally:
        con.close()
    out: dict = {}
    taken: set[str] = set()
    for cl, cid in zip(votes["cluster"].to_numpy(dtype=object), votes["customer_id"].to_numpy(dtype=object),
                       strict=True):
        if cl in out or cid in taken:
            continue
        out[cl] = cid
        taken.add(cid)
    nxt = int(top) + 1 if top is not None else 1
    for c in order:
        if c not in out:
            out[c] = f"C{nxt:06d}"
            nxt += 1
    return out


# ------------------------------------------------------------------------------------------------------
# golden records, review queue, evidence
# ------------------------------------------------------------------------------------------------------

_GOLDEN_FIELDS = ["uscc", "industry", "province", "city", "address", "phone"]
_CRM_FIELDS = ["scope", "region", "size", "registered_capital", "listed", "owner_rep_id"]


def golden_sql(trust: list[str]) -> str:
    """Golden record per customer from ``_xrec`` (records with customer_id, canonical, completeness).

    Survivorship per field: most trusted source, then most recent record_date (blank last), then most
    complete record, then smallest record_id."""
    rank = "CASE source " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(trust)) + f" ELSE {len(trust)} END"
    order = f"{rank}, record_date DESC NULLS LAST, completeness DESC, record_id"

    def pick(expr: str, alias: str, unit: bool = False) -> str:
        # identity fields come from names that state their unit: a bare name (北京中国移动) is ambiguous
        o = f"bare, {order}" if unit else order
        return f"first({expr} ORDER BY {o}) FILTER (WHERE {expr} IS NOT NULL) AS {alias}"

    fields = ",\n".join(pick(f, f) for f in _GOLDEN_FIELDS + _CRM_FIELDS + ["rep_id"])
    src_list = "list_sort(list(DISTINCT source))"
    return f"""
        SELECT customer_id, {pick('canonical', 'name', True)}, {fields},
               count(*) AS n_records, array_to_string({src_list}, ',') AS sources,
               min(record_date) AS first_seen, max(record_date) AS last_seen,
               {pick('brand', 'brand', True)}, {pick('n_city', 'name_city', True)},
               {pick('n_province', 'name_province', True)}, {pick('branch_level', 'branch_level', True)},
               {pick('branch_name', 'branch_name', True)},
               bool_or(coalesce(hier, false)) AS hier
        FROM _xrec WHERE customer_id IS NOT NULL GROUP BY customer_id
    """


def model_weights(model: dict) -> pd.DataFrame:
    """Match weight per comparison level of a trained Splink model (gamma numbering as in predictions)."""
    rows = []
    for comp in model.get("comparisons", []):
        name = comp.get("output_column_name")
        levels = comp.get("comparison_levels", [])
        non_null = [lv for lv in levels if not lv.get("is_null_level")]
        for lv in levels:
            if lv.get("is_null_level"):
                rows.append({"comparison": name, "gamma": -1, "label": lv.get("label_for_charts"),
                             "m": None, "u": None, "weight": 0.0})
                continue
            gamma = len(non_null) - 1 - non_null.index(lv)
            m, u = lv.get("m_probability"), lv.get("u_probability")
            w = math.log2(m / u) if m and u else 0.0
            rows.append({"comparison": name, "gamma": gamma, "label": lv.get("label_for_charts"),
                         "m": m, "u": u, "weight": w})
    prior = model.get("probability_two_random_records_match", 1e-4)
    rows.append({"comparison": "prior", "gamma": 0, "label": "prior", "m": None, "u": None,
                 "weight": math.log2(prior / (1 - prior))})
    return pd.DataFrame(rows)


@dataclass
class ResolveSummary:
    records: int
    junk: int
    customers: int
    groups: int
    pairs_scored: int
    review_queue: int
    kept_ids: int
    new_ids: int
    seconds: float
    stats: dict = field(default_factory=dict)


def _write_df(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, order: str) -> None:
    con.register("_w", df)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _w ORDER BY {order}")
    finally:
        con.unregister("_w")


NAME_CACHE_TABLE = "customer_name_parse"


def name_cache_key(params: MasterParams) -> str:
    """Fingerprint of everything a name's features depend on: the code of the parser (crmlib/names.py) and
    of this module (feature extraction and its word lists), the region table, the naming-rule dictionary
    and the hierarchy sectors. A cached parse is reused only under the same key."""
    import hashlib

    h = hashlib.sha256()
    for path in (Path(nm.__file__), Path(__file__), nm._DATA / "regions.csv",
                 nm.aliases_path()):
        h.update(path.read_bytes() if path.exists() else b"-")
    h.update(repr(sorted(params.hierarchy_sectors)).encode())
    return h.hexdigest()[:16]


def read_name_cache(con: duckdb.DuckDBPyConnection, key: str) -> pd.DataFrame | None:
    """Name features kept by the last resolve of this database under the same parser (else None)."""
    if set(_FEATURE_COLUMNS) - dbmod.columns(con, NAME_CACHE_TABLE):  # missing, or an older layout
        return None
    cols = ", ".join(_FEATURE_COLUMNS)
    df = con.execute(f"SELECT {cols} FROM {NAME_CACHE_TABLE} WHERE parser = ? ORDER BY name_raw", [key]).df()
    if df.empty:
        return None
    for c in _BOOL_FEATURES:
        df[c] = df[c].fillna(False).astype(bool)
    for c in df.columns:
        if df[c].dtype != bool:  # NULL -> None, as a fresh parse gives
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def write_name_cache(con: duckdb.DuckDBPyConnection, feats: pd.DataFrame | None, key: str) -> None:
    """Keep this run's name features (one row per distinct raw name) so the next run parses only new names."""
    if feats is None:
        return
    f = feats[feats["name_raw"].notna()][_FEATURE_COLUMNS].assign(parser=key)
    _write_df(con, NAME_CACHE_TABLE, f, "name_raw")


MODEL_TABLE = "customer_match_model_json"
_TRAINING_PARAMS = ("seed", "u_max_pairs", "em_max_pairs", "em_min_groups", "prior_rules_recall",
                    "name_similarity_levels", "max_values_per_group", "contact_phones")


def model_key(params: MasterParams, parser_key: str | None = None) -> str:
    """Fingerprint of what a trained model depends on besides the data: the parser and this module
    (:func:`name_cache_key`, or ``parser_key`` when the caller has it already) and the training parameters."""
    import hashlib

    train = {k: getattr(params, k) for k in _TRAINING_PARAMS}
    parser_key = parser_key or name_cache_key(params)
    return hashlib.sha256((parser_key + json.dumps(train, sort_keys=True)).encode()).hexdigest()[:16]


def read_model(con: duckdb.DuckDBPyConnection, params: MasterParams, retrain: bool = False,
               now: dt.datetime | None = None, records: int | None = None,
               key: str | None = None) -> tuple[dict | None, str]:
    """The Splink model an earlier resolve trained, when it may be used again, and a note saying why or why not.

    Training again on every run moves the weights a little with every change of the data (u from a random
    sample of pairs, m by EM), and the pairs near the threshold and in the review band follow them: at scale
    100 the queue held 462 to 2,372 pairs for three seeds of one database (benchmarks/resolve_scale100.md).
    So a model is kept for ``model_max_age_days`` (0: train every run), unless ``retrain``, the parser,
    engine or training parameters changed (:func:`model_key`), or the number of customer ``records`` moved by
    more than ``model_max_growth`` (a share) since it was trained (a first resolve of a partial load must not
    decide the weights for the full one). ``key``: :func:`model_key` of ``params``, when the caller has it."""
    if retrain:
        return None, "trained (--retrain)"
    if params.model_max_age_days == 0:
        return None, "trained (model_max_age_days: 0)"
    if not {"key", "trained_at", "model", "records"} <= dbmod.columns(con, MODEL_TABLE):  # none, or an older layout
        return None, "trained (first run)"
    rows = con.execute(f"SELECT key, trained_at, model, records FROM {MODEL_TABLE} "
                       "ORDER BY trained_at DESC LIMIT 1").fetchall()
    if not rows:
        return None, "trained (first run)"
    stored_key, trained_at, model, then = rows[0]
    if stored_key != (key or model_key(params)):
        return None, "trained (parser, engine or training parameters changed)"
    age = ((now or dt.datetime.now()) - trained_at).days
    if age > params.model_max_age_days:
        return None, f"trained (the last model was {age} days old, model_max_age_days {params.model_max_age_days})"
    if records is not None and then and abs(records - then) > params.model_max_growth * then:
        return None, (f"trained (the last model saw {then:,} records, now {records:,}: more than "
                      f"model_max_growth {params.model_max_growth:.0%} apart)")
    return json.loads(model), f"reused (trained {trained_at:%Y-%m-%d %H:%M})"


def write_model(con: duckdb.DuckDBPyConnection, model: dict, params: MasterParams, records: int,
                now: dt.datetime | None = None, key: str | None = None) -> None:
    """Keep the model this run trained on ``records`` customer records (one row) for the next runs
    (:func:`read_model`)."""
    con.execute(f"CREATE OR REPLACE TABLE {MODEL_TABLE} (key VARCHAR, trained_at TIMESTAMP, records BIGINT, "
                "model VARCHAR)")
    con.execute(f"INSERT INTO {MODEL_TABLE} VALUES (?, ?, ?, ?)",
                [key or model_key(params), now or dt.datetime.now(), int(records),
                 json.dumps(model, ensure_ascii=False)])


def resolve(con: duckdb.DuckDBPyConnection, params: MasterParams | None = None,
            decisions_path: str | Path | None = None, progress: bool = True,
            retrain: bool = False) -> ResolveSummary:
    """Build the customer master inside ``con`` (the caller owns the transaction)."""
    import time

    from . import hierarchy

    t0 = time.perf_counter()
    clock = [t0]
    phase: dict[str, float] = {}

    def lap(key: str) -> None:
        now = time.perf_counter()
        phase[key] = round(now - clock[0], 1)
        clock[0] = now

    params = params or load_master_params()
    build_customer_records(con)
    # provenance columns (_source_file, _row) stay in the table: matching never reads them
    records = con.execute("SELECT * EXCLUDE (_source_file, _row) FROM customer_records ORDER BY record_id").df()
    # side evidence, not a record field; prepare_records uses it when params.contact_phones
    records = records.merge(contact_phones(con), on="record_id", how="left")
    if records.empty:
        raise UserError("the loaded sources hold no customer records: nothing to resolve",
                        file=dbmod.database_file(con),
                        hint="load the customer sources first: `crm load --raw data/raw` with the crm/, erp/, "
                             "sales_sheets/, callcenter/ or service/ folders (data/raw/README.md)")
    decisions = read_decisions(decisions_path)
    cache_key = name_cache_key(params)
    known = read_name_cache(con, cache_key)
    lap("seconds_records")
    mkey = model_key(params, cache_key)
    stored, model_note = read_model(con, params, retrain, records=len(records), key=mkey)
    res = match_records(records, params, decisions, progress=progress, known_names=known, model=stored)
    clock[0] = time.perf_counter()
    write_name_cache(con, res.names, cache_key)
    if res.stats.get("model") == "trained" and res.model:
        write_model(con, res.model, params, len(records), key=mkey)
    res.stats["model_note"] = model_note if res.stats.get("model") else "no name groups: no model"
    recs = res.records
    lap("seconds_name_cache_write")

    # stable ids
    live = recs[recs["cluster"].notna()][["record_id", "cluster"]]
    old = (con.execute("SELECT record_id, customer_id FROM customer_id_map").df()
           if dbmod.table_exists(con, "customer_id_map") else None)
    idmap = assign_ids(live, old)
    recs["customer_id"] = recs["cluster"].map(idmap)
    old_ids = set(old["customer_id"]) if old is not None else set()
    kept = len(set(idmap.values()) & old_ids)
    today = dt.date.today()
    new_map = recs.loc[recs["customer_id"].notna(), ["record_id", "customer_id"]].assign(assigned_at=today)
    if old is not None and len(old):
        # earlier assignments of records no longer resolved stay, so their ids are never reused
        con.register("_nm", new_map)
        try:
            con.execute("""CREATE OR REPLACE TEMP TABLE _id_map AS
                SELECT record_id, customer_id, CAST(assigned_at AS DATE) AS assigned_at FROM customer_id_map
                WHERE record_id NOT IN (SELECT record_id FROM _nm)
                UNION ALL SELECT record_id, customer_id, CAST(assigned_at AS DATE) FROM _nm""")
            con.execute("CREATE OR REPLACE TABLE customer_id_map AS SELECT * FROM _id_map ORDER BY record_id")
            con.execute("DROP TABLE _id_map")
        finally:
            con.unregister("_nm")
    else:
        _write_df(con, "customer_id_map", new_map, "record_id")
    lap("seconds_ids")

    # xref
    xref = recs[["record_id", "source", "source_key", "customer_id", "match_probability"]].copy()
    xref.loc[xref["customer_id"].isna(), "match_probability"] = np.nan
    _write_df(con, "customer_xref", xref, "record_id")

    # golden records
    cols = ["record_id", "source", "customer_id", "record_date", "canonical", "brand", "n_city", "n_province",
            "branch_level", "branch_name", "hier", "bare", "industry", "province", "city", "address", "rep_id"]
    x = recs[cols].copy()
    x["uscc"] = recs["uscc_n"]
    x["phone"] = recs["phone_n"]
    x["completeness"] = recs[["uscc", "phone", "contact_name", "email", "province", "city", "address",
                              "industry"]].notna().sum(axis=1)
    con.register("_x", x)
    acc_cols = dbmod.columns(con, "stg_crm_accounts")
    extra = ", ".join(f"CAST(a.{c} AS VARCHAR) AS {c}" if c in acc_cols else f"CAST(NULL AS VARCHAR) AS {c}"
                      for c in _CRM_FIELDS)
    join = ("LEFT JOIN stg_crm_accounts a ON x.source = 'crm' AND a.account_id = split_part(x.record_id, ':', 2)"
            if acc_cols else "")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _xrec AS SELECT x.*, {extra} FROM _x x {join}")
    con.unregister("_x")
    golden = con.execute(golden_sql(params.source_trust) + " ORDER BY customer_id").df()
    lap("seconds_golden")

    # hierarchy
    crm_parent = pd.DataFrame(columns=["customer_id", "parent_customer_id"])
    if "parent_account_id" in acc_cols:
        crm_parent = con.execute("""
            SELECT DISTINCT xc.customer_id, xp.customer_id AS parent_customer_id
            FROM stg_crm_accounts a
            JOIN customer_xref xc ON xc.record_id = 'crm:' || a.account_id
            JOIN customer_xref xp ON xp.record_id = 'crm:' || a.parent_account_id
            WHERE xc.customer_id IS NOT NULL AND xp.customer_id IS NOT NULL
              AND xc.customer_id <> xp.customer_id
            ORDER BY 1, 2""").df()
    hier = hierarchy.build_hierarchy(golden, crm_parent)
    _write_df(con, "customer_hierarchy", hier, "child_id")
    level = hierarchy.master_levels(golden, hier)
    golden = golden.merge(level, on="customer_id", how="left")
    golden["owner_rep_id"] = golden["owner_rep_id"].fillna(golden["rep_id"])
    master_cols = ["customer_id", "name", "uscc", "industry", "scope", "region", "province", "city", "size",
                   "registered_capital", "listed", "level", "parent_customer_id", "owner_rep_id", "n_records",
                   "sources", "first_seen", "last_seen", "brand", "address", "phone"]
    golden["registered_capital"] = pd.to_numeric(golden["registered_capital"], errors="coerce")
    _write_df(con, "customer_master", golden[master_cols], "customer_id")
    lap("seconds_hierarchy")

    # review queue and evidence for the notebook
    queue = review_queue(res, params, decisions)
    _write_df(con, "match_review_queue", queue, "record_id_l, record_id_r")
    pairs = res.pairs.copy()
    g = res.groups.set_index("group_id")
    pairs["record_id_l"] = g.loc[pairs["group_id_l"], "first_record"].to_numpy()
    pairs["record_id_r"] = g.loc[pairs["group_id_r"], "first_record"].to_numpy()
    pairs["name_l"] = g.loc[pairs["group_id_l"], "canonical"].to_numpy()
    pairs["name_r"] = g.loc[pairs["group_id_r"], "canonical"].to_numpy()
    keep = ["record_id_l", "record_id_r", "name_l", "name_r"] + [f"mw_{c}" for c in COMPARISONS] + [
        "match_weight", "match_probability", "violation", "decision", "rule"]
    _write_df(con, "customer_match_pairs", pairs[keep], "record_id_l, record_id_r")
    _write_df(con, "customer_match_model", model_weights(res.model), "comparison, gamma")
    con.execute("DROP TABLE IF EXISTS _xrec")
    lap("seconds_review_pairs")
    n_cust = int(golden["customer_id"].nunique())
    return ResolveSummary(
        records=len(recs), junk=res.stats["junk"], customers=n_cust, groups=res.stats["groups"],
        pairs_scored=res.stats.get("pairs_scored", 0), review_queue=len(queue), kept_ids=kept,
        new_ids=n_cust - kept, seconds=round(time.perf_counter() - t0, 1), stats={**res.stats, **phase})


REVIEW_REASONS = {"score": "match probability between review_low and review_high",
                  "ambiguous": "a name without place that matches customers in two places about equally",
                  "bare_name": "a trade name written bare, known in several cities, no phone tying it to one"}


def review_queue(res: MatchResult, params: MasterParams, decisions: pd.DataFrame | None) -> pd.DataFrame:
    """Pairs of name groups scored in [review_low, review_high), or touching a group left on its own as
    ambiguous (see ``_detach_ambiguous``), not ruled out by a hard rule and not decided yet; one
    representative record (the group's smallest record_id) per side. Then the pairs of
    :func:`bare_name_candidates`. ``reason``: a key of :data:`REVIEW_REASONS`."""
    cols = ["record_id_l", "record_id_r", "name_l", "name_r", "match_probability", "match_weight",
            "same_cluster", "n_records_l", "n_records_r", "reason"]
    bare = bare_name_candidates(res, params, decisions)
    p = res.pairs
    if p is None or p.empty:
        return bare[cols].reset_index(drop=True) if len(bare) else pd.DataFrame(columns=cols)
    band = (p["match_probability"] >= params.review_low) & (p["match_probability"] < params.review_high)
    amb = p["ambiguous"].fillna(False).astype(bool) if "ambiguous" in p else False
    by_rule = p["rule"].notna() if "rule" in p else False
    q = p[p["violation"].isna() & p["decision"].isna() & ~by_rule & (band | amb)].copy()
    g = res.groups.set_index("group_id")
    a = g.loc[q["group_id_l"]]
    b = g.loc[q["group_id_r"]]
    q["record_id_l"], q["record_id_r"] = a["first_record"].to_numpy(), b["first_record"].to_numpy()
    q["name_l"], q["name_r"] = a["canonical"].to_numpy(), b["canonical"].to_numpy()
    q["n_records_l"], q["n_records_r"] = a["n_records"].to_numpy(), b["n_records"].to_numpy()
    q["same_cluster"] = a["cluster"].to_numpy() == b["cluster"].to_numpy()
    q["reason"] = np.where(band.loc[q.index], "score", "ambiguous")
    q = _smaller_record_left(q)[cols]
    if len(bare):
        seen = set(zip(q["record_id_l"], q["record_id_r"], strict=True))
        bare = bare[[(a, b) not in seen for a, b in zip(bare["record_id_l"], bare["record_id_r"], strict=True)]]
        q = pd.concat([q, bare[cols]], ignore_index=True)
    return q.sort_values(["record_id_l", "record_id_r"]).reset_index(drop=True)


def _rule_note(stats: dict) -> str:
    """``; 1,234 pairs joined by the same-trade-name-same-city rule`` (pairs Splink scored below the threshold)."""
    n = stats.get("pairs_by_rule", 0)
    return f"; {n:,} pairs joined by the same-trade-name-same-city rule" if n else ""


def _bare_note(stats: dict) -> str:
    """`` (bare-name records: 12 of 40 listed, …)`` for the resolve summary, when some are left out."""
    total, listed = stats.get("bare_name_records", 0), stats.get("bare_name_listed", 0)
    return f" (bare-name records: {listed} of {total} listed, review_bare_max_records)" if total > listed else ""


def _smaller_record_left(q: pd.DataFrame) -> pd.DataFrame:
    """Each pair with the smaller record id on the left (its name and record count move with it). Column by
    column from copies: swapping two columns of one pandas block through ``.loc`` and ``to_numpy()`` reads
    a view of the block it is writing (both columns end up equal)."""
    swap = (q["record_id_l"] > q["record_id_r"]).to_numpy()
    out = q.copy()
    for x, y in (("record_id_l", "record_id_r"), ("name_l", "name_r"), ("n_records_l", "n_records_r")):
        a, b = q[x].to_numpy(copy=True), q[y].to_numpy(copy=True)
        out[x], out[y] = np.where(swap, b, a), np.where(swap, a, b)
    return out


def bare_name_candidates(res: MatchResult, params: MasterParams, decisions: pd.DataFrame | None,
                         ) -> pd.DataFrame:
    """Pairs for stewards: a trade name written bare (no region, city or credit code: 合联电器 given by a
    caller) that the records show in two or more cities is grouped per phone (:func:`group_key`); when no
    phone ties it to one of those companies it stays a customer of its own, and its pairs with them score
    below ``review_low``, where nobody would see them. Each such record (its group alone in its customer)
    is paired with every customer holding the same trade name with a place, at most
    ``review_bare_candidates`` (most records first), leaving out pairs a steward has decided. At most
    ``review_bare_max_records`` such records are listed, those with the fewest candidates first (the
    quickest to decide; at scale 100 there are about 36,000 of them, which no steward team works through by
    hand); ``res.stats`` gets ``bare_name_records`` (all) and ``bare_name_listed``. Columns as
    :func:`review_queue`; ``match_probability`` is Splink's where the pair was scored, else empty."""
    cols = ["record_id_l", "record_id_r", "name_l", "name_r", "match_probability", "match_weight",
            "same_cluster", "n_records_l", "n_records_r", "reason"]
    r = res.records
    need = {"core", "brand", "n_city", "n_province", "city_n", "uscc_n", "n_city_c", "group_id", "cluster"}
    if r is None or r.empty or params.review_bare_candidates == 0 or need - set(r.columns):
        return pd.DataFrame(columns=cols)
    live = r[r["cluster"].notna() & r["core"].notna()]
    bare = live[_bare_multi_city(live)]
    bare = bare[bare["cluster"].map(live.groupby("cluster")["group_id"].nunique()).to_numpy() == 1]
    if bare.empty:
        return pd.DataFrame(columns=cols)
    # the customers of each such trade name with a place: representative record and group; most records first
    placed = live[_place(live).notna() & live["core"].isin(set(bare["core"]))]
    cand = placed.groupby(["core", "cluster"]).agg(record=("record_id", "min"), group_id=("group_id", "min"))
    cand = cand.reset_index().assign(n=lambda c: c["cluster"].map(live.groupby("cluster").size()))
    n_cand = cand.groupby("core").size()
    cand = cand.sort_values(["core", "n", "record"], ascending=[True, False, True])
    cand = cand.groupby("core").head(params.review_bare_candidates)
    one = bare.groupby("group_id").agg(record=("record_id", "min"), core=("core", "first"),
                                       cluster=("cluster", "first")).reset_index()
    one = one.assign(n_cand=one["core"].map(n_cand)).sort_values(["n_cand", "record"], kind="stable")
    res.stats["bare_name_records"] = len(one)
    one = one.head(params.review_bare_max_records)
    res.stats["bare_name_listed"] = len(one)
    q = one.merge(cand, on="core", suffixes=("_l", "_r"))
    q = q[q["cluster_l"] != q["cluster_r"]]
    # Splink's probability and weight where it scored the pair (either orientation), else empty
    sp = (res.pairs if res.pairs is not None else pd.DataFrame(columns=["group_id_l", "group_id_r"]))[
        ["group_id_l", "group_id_r", "match_probability", "match_weight"]]
    both = pd.concat([sp, sp.rename(columns={"group_id_l": "group_id_r", "group_id_r": "group_id_l"})])
    q = q.merge(both.drop_duplicates(["group_id_l", "group_id_r"]), on=["group_id_l", "group_id_r"], how="left")
    g = res.groups.set_index("group_id")
    out = pd.DataFrame({
        "record_id_l": q["record_l"].to_numpy(), "record_id_r": q["record_r"].to_numpy(),
        "name_l": g.loc[q["group_id_l"], "canonical"].to_numpy(), "name_r": g.loc[q["group_id_r"], "canonical"].to_numpy(),
        "match_probability": q["match_probability"].to_numpy(dtype=float),
        "match_weight": q["match_weight"].to_numpy(dtype=float), "same_cluster": False,
        "n_records_l": g.loc[q["group_id_l"], "n_records"].to_numpy(),
        "n_records_r": g.loc[q["group_id_r"], "n_records"].to_numpy(),
        "reason": "bare_name"})
    out = _smaller_record_left(out)
    if decisions is not None and len(decisions):
        decided = set(zip(decisions["record_id_l"], decisions["record_id_r"], strict=True))
        out = out[[(a, b) not in decided for a, b in zip(out["record_id_l"], out["record_id_r"], strict=True)]]
    return out.drop_duplicates(["record_id_l", "record_id_r"]).reset_index(drop=True)


def resolve_db(db: str | Path | None = None, params: MasterParams | None = None,
               progress: bool | None = None, retrain: bool = False) -> ResolveSummary:
    """``crm resolve``: build the master inside the database in one transaction."""
    progress = sys.stderr.isatty() if progress is None else progress
    path = Path(db) if db else paths.db_path()
    if not path.exists():
        raise UserError("database not found", file=str(path), hint="run `crm load` first, or check --db")
    with dbmod.writer(db) as con:
        return resolve(con, params, progress=progress, retrain=retrain)


# ------------------------------------------------------------------------------------------------------
# evaluation and weekly metrics
# ------------------------------------------------------------------------------------------------------

def _pairs_count(sizes: pd.Series) -> int:
    s = sizes.to_numpy(dtype=np.int64)
    return int((s * (s - 1) // 2).sum())


def pairwise_scores(pred: pd.Series, truth: pd.Series) -> dict:
    """Pairwise precision/recall of a clustering: pairs of records put together vs truly together.

    Both series are indexed by record; records with a blank label on either side are left out (junk)."""
    df = pd.DataFrame({"p": pred, "t": truth}).dropna()
    both = _pairs_count(df.groupby(["p", "t"]).size())
    predicted = _pairs_count(df.groupby("p").size())
    true = _pairs_count(df.groupby("t").size())
    precision = both / predicted if predicted else 1.0
    recall = both / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs_predicted": predicted,
            "pairs_true": true, "pairs_correct": both, "records_evaluated": len(df)}


def heads_merged_with_branches(pred: pd.Series, truth: pd.Series, parents: dict[str, str]) -> int:
    """Predicted customers holding records of a true customer and of one of its descendants."""
    df = pd.DataFrame({"p": pred, "t": truth}).dropna().drop_duplicates()
    n = 0
    for _, members in df.groupby("p")["t"]:
        ts = set(members)
        if len(ts) < 2:
            continue
        bad = False
        for t in ts:
            seen, cur = set(), parents.get(t)
            while cur and cur not in seen:
                if cur in ts:
                    bad = True
                    break
                seen.add(cur)
                cur = parents.get(cur)
            if bad:
                break
        n += bad
    return n


def evaluate(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> dict:
    """Pairwise precision / recall of ``customer_xref`` against demo truth, plus head offices merged with
    their own branches (must be 0). Junk records (blank truth) and unresolved records are left out."""
    truth_dir = Path(truth_dir)
    rec = pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False)
    cust = pd.read_csv(truth_dir / "customers.csv", dtype=str, keep_default_na=False)
    rec["record_id"] = rec["source"] + ":" + rec["source_key"]
    rec["true_customer_id"] = rec["true_customer_id"].replace("", None)
    xref = con.execute("SELECT record_id, customer_id FROM customer_xref").df()
    df = xref.merge(rec[["record_id", "true_customer_id"]], on="record_id", how="inner")
    scores = pairwise_scores(df.set_index("record_id")["customer_id"],
                             df.set_index("record_id")["true_customer_id"])
    parents = {r.true_customer_id: r.parent_id for r in cust.itertuples() if r.parent_id}
    scores["heads_merged_with_branches"] = heads_merged_with_branches(
        df.set_index("record_id")["customer_id"], df.set_index("record_id")["true_customer_id"], parents)
    junk_true = set(rec.loc[rec["true_customer_id"].isna(), "record_id"])
    got_junk = set(xref.loc[xref["customer_id"].isna(), "record_id"])
    scores["junk_recall"] = len(junk_true & got_junk) / len(junk_true) if junk_true else 1.0
    scores["real_records_left_unresolved"] = int(
        df["true_customer_id"].notna().sum() - df.dropna().shape[0])
    return scores


def master_weekly_metrics(con: duckdb.DuckDBPyConnection, as_of: dt.date,
                          truth_dir: str | Path | None = None) -> dict:
    """Headline figures of the customer master for ``metrics.json`` (prefix ``master_``).

    New customers this week: first seen in the 7 days ending on ``as_of`` (inclusive)."""
    if not dbmod.table_exists(con, "customer_master"):
        return {}
    as_of = pd.Timestamp(as_of).date()
    start = as_of - dt.timedelta(days=6)
    customers = con.execute("SELECT count(*) FROM customer_master WHERE first_seen IS NULL OR first_seen <= ?",
                            [as_of]).fetchall()[0][0]
    new = con.execute("SELECT count(*) FROM customer_master WHERE first_seen BETWEEN ? AND ?",
                      [start, as_of]).fetchall()[0][0]
    n_rec, n_matched = con.execute("""
        SELECT count(*), count(x.customer_id) FROM customer_xref x
        JOIN customer_records r USING (record_id) WHERE r.record_date IS NULL OR r.record_date <= ?""",
                                   [as_of]).fetchall()[0]
    queue = (con.execute("SELECT count(*) FROM match_review_queue").fetchall()[0][0]
             if dbmod.table_exists(con, "match_review_queue") else 0)
    out = {"master_customers": int(customers), "master_new_customers_week": int(new),
           "master_records": int(n_rec), "master_match_rate": (n_matched / n_rec) if n_rec else None,
           "master_review_queue": int(queue)}
    if truth_dir and Path(truth_dir, "records.csv").exists():
        ev = evaluate(con, truth_dir)
        out.update({"master_precision": ev["precision"], "master_recall": ev["recall"],
                    "master_heads_merged_with_branches": ev["heads_merged_with_branches"]})
    return out


# ------------------------------------------------------------------------------------------------------
# crm dedup: the same engine on any CSV
# ------------------------------------------------------------------------------------------------------

_DEDUP_OPTIONAL = {"city": "city", "phone": "phone", "contact": "contact_name", "address": "address",
                   "uscc": "uscc"}


def dedup_frame(df: pd.DataFrame, id_col: str = "id", name_col: str = "name",
                params: MasterParams | None = None, progress: bool = False,
                source: str = "input") -> pd.DataFrame:
    """``crm dedup`` core: a user's table in, ``id, cluster_id, canonical_name, match_probability`` out.

    ``cluster_id`` is the id of the cluster's first row (file order); junk names get a blank cluster."""
    params = params or load_master_params()
    if id_col == "id" and "id" not in df.columns:
        # no id column and none named: the CSV line number (header = line 1) identifies a row
        df = df.assign(id=[str(i + 2) for i in range(len(df))])
    for col in (id_col, name_col):
        if col not in df.columns:
            raise UserError(f"column {col!r} not found (columns: {', '.join(map(str, df.columns))})",
                            file=source, column=col, hint="name it with --id-col / --name-col")
    ids = df[id_col].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise UserError(f"id {dup.iloc[0]!r} appears more than once", file=source, column=id_col,
                        row=int(dup.index[0]) + 2, hint="ids must be unique")
    recs = pd.DataFrame({"record_id": [f"{i:09d}" for i in range(len(df))],
                         "name_raw": df[name_col].replace("", None)})
    for src, dst in _DEDUP_OPTIONAL.items():
        recs[dst] = df[src].replace("", None) if src in df.columns else None
    res = match_records(recs, params, None, progress=progress)
    r = res.records.sort_values("record_id").reset_index(drop=True)
    r["id"] = ids.to_numpy()
    first_id = r.dropna(subset=["cluster"]).groupby("cluster")["id"].first()
    # canonical name of the cluster: the most frequent canonical name among its rows (ties: first in file)
    canon = (r.dropna(subset=["cluster"]).groupby(["cluster", "canonical"], sort=False).size()
             .rename("n").reset_index().sort_values(["cluster", "n"], ascending=[True, False], kind="stable")
             .groupby("cluster").head(1).set_index("cluster")["canonical"])
    out = pd.DataFrame({
        "id": r["id"],
        "cluster_id": r["cluster"].map(first_id),
        "canonical_name": r["cluster"].map(canon),
        "match_probability": r["match_probability"].round(4),
    })
    return out


def _cmd_dedup(args) -> int:
    if Path(args.out).resolve() == Path(args.input).resolve():
        raise UserError("--out is the input file: it would be overwritten", file=str(args.input),
                        hint="write the result to another file")
    df = read_user_csv(args.input)  # crmlib.encoding
    params = load_master_params(args.params) if args.params else load_master_params()
    out = dedup_frame(df, args.id_col, args.name_col, params, progress=sys.stderr.isatty(),
                      source=str(args.input))
    out_path = Path(args.out)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(out_path, index=False, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write output: {exc.strerror}", file=str(out_path)) from None
    n_cl = out["cluster_id"].nunique()
    print(f"{len(out)} rows → {n_cl} organisations ({int(out['cluster_id'].isna().sum())} junk names); "
          f"written to {out_path}")
    return 0


def _cmd_resolve(args) -> int:
    params = load_master_params(args.params) if args.params else load_master_params()
    s = resolve_db(args.db, params, retrain=args.retrain)
    print(f"{s.records} records ({s.junk} junk) → {s.customers} customers; model {s.stats.get('model_note')}; "
          f"{s.kept_ids} kept their id, "
          f"{s.new_ids} new; {s.review_queue} pairs to review{_bare_note(s.stats)}{_rule_note(s.stats)}; "
          f"{s.seconds:.1f} s")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("resolve", help="build the customer master (records, xref, master, hierarchy)")
    p.add_argument("--db", default=None, help="database (default data/curated/crm.duckdb)")
    p.add_argument("--params", default=None, help="parameter file (default params/master.yaml)")
    p.add_argument("--retrain", action="store_true",
                   help="train the matching model again instead of reusing the stored one (model_max_age_days)")
    p.set_defaults(func=_cmd_resolve)
    d = subparsers.add_parser("dedup", help="find duplicate organisations in any CSV")
    d.add_argument("input", help="CSV with an id and a name column (optional: city, phone, contact, address, uscc)")
    d.add_argument("--out", required=True, help="output CSV: id, cluster_id, canonical_name, match_probability")
    d.add_argument("--id-col", default="id")
    d.add_argument("--name-col", default="name")
    d.add_argument("--params", default=None, help="parameter file (default params/master.yaml)")
    d.set_defaults(func=_cmd_dedup)


# ------------------------------------------------------------------------------------------------------
# notebook helpers (read-only)
# ------------------------------------------------------------------------------------------------------

def cluster_size_counts(con: duckdb.DuckDBPyConnection) -> pd.Series:
    """Records per customer (one value per customer)."""
    return con.execute("SELECT n_records FROM customer_master ORDER BY customer_id").df()["n_records"]


def merge_samples(con: duckdb.DuckDBPyConnection, n: int = 5, threshold: float | None = None) -> pd.DataFrame:
    """A stable sample of accepted merges of differently written names, weakest evidence first."""
    threshold = threshold if threshold is not None else load_master_params().threshold
    return con.execute("""
        SELECT * FROM customer_match_pairs
        WHERE match_probability >= ? AND violation IS NULL AND coalesce(decision, '') <> 'no_match'
          AND name_l <> name_r
        ORDER BY hash(record_id_l || record_id_r), record_id_l, record_id_r LIMIT ?""", [threshold, n]).df() \
        .sort_values(["match_probability", "record_id_l", "record_id_r"]).reset_index(drop=True)


def rule_merges(con: duckdb.DuckDBPyConnection, threshold: float, n: int = 8) -> tuple[int, pd.DataFrame]:
    """Pairs a rule joined that Splink alone would not have (scored below ``threshold``, or not returned:
    probability blank): how many, and a stable sample (name_l, name_r, match_probability, rule). (0, empty)
    for a database resolved before rules were recorded."""
    if "rule" not in dbmod.columns(con, "customer_match_pairs"):
        return 0, pd.DataFrame(columns=["name_l", "name_r", "match_probability", "rule"])
    where = """rule IS NOT NULL AND violation IS NULL AND coalesce(decision, '') <> 'no_match'
               AND coalesce(match_probability, 0) < ?"""
    total = con.execute(f"SELECT count(*) FROM customer_match_pairs WHERE {where}", [threshold]).fetchall()[0][0]
    sample = con.execute(f"""SELECT name_l, name_r, round(match_probability, 4) AS match_probability, rule
        FROM customer_match_pairs WHERE {where}
        ORDER BY hash(record_id_l || record_id_r), record_id_l, record_id_r LIMIT ?""", [threshold, n]).df()
    return int(total), sample


def evidence_labels(con: duckdb.DuckDBPyConnection, pair: pd.Series) -> tuple[float, dict[str, str]]:
    """(prior match weight, comparison → label of the level whose weight the pair got)."""
    w = con.execute("SELECT comparison, gamma, label, weight FROM customer_match_model "
                    "ORDER BY comparison, gamma").df()
    prior = float(w.loc[w["comparison"] == "prior", "weight"].iloc[0])
    labels = {}
    for c in COMPARISONS:
        lv = w[w["comparison"] == c]
        val = float(pair.get(f"mw_{c}", 0.0) or 0.0)
        if len(lv):
            best = lv.iloc[(lv["weight"] - val).abs().argsort().iloc[0]]
            labels[c] = f"{best['label']} ({val:+.1f})"
    return prior, labels


def largest_group(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The group with the most customers under one head: customer_id, parent_id, name, level, revenues."""
    from . import hierarchy

    r = hierarchy.rollup_revenue(con)
    if r.empty:
        return r
    size = r.groupby("group_id").size().sort_values(ascending=False, kind="stable")
    top = size[size == size.iloc[0]].index.min()
    t = r[r["group_id"] == top].copy()
    parents = con.execute("SELECT child_id, parent_id FROM customer_hierarchy").df()
    t["parent_id"] = t["customer_id"].map(dict(zip(parents["child_id"], parents["parent_id"], strict=True)))
    t.loc[t["customer_id"] == top, "parent_id"] = None
    return t.sort_values("customer_id").reset_index(drop=True)


def review_widget(queue: pd.DataFrame, reviewer: str = "analyst", path: str | Path | None = None, limit: int = 20):
    """ipywidgets list of queued pairs with 'same customer' / 'different' buttons; each click appends a
    decision to ``params/review_decisions.csv`` (applied by the next ``crm resolve``).

    A decision that cannot be written (a decisions file saved in another encoding, a file in use) is
    reported in the pair's status label: an exception in a button callback would only reach the kernel's
    log, and the reviewer would think the decision was saved."""
    import ipywidgets as w

    rows = []
    for r in queue.head(limit).itertuples(index=False):
        status = w.Label("")
        yes = w.Button(description="同一客户 match", button_style="success", layout=w.Layout(width="150px"))
        no = w.Button(description="不同客户 no match", button_style="danger", layout=w.Layout(width="150px"))

        def click(decision, a=r.record_id_l, b=r.record_id_r, s=status):
            def handler(_):
                try:
                    append_decision(a, b, decision, reviewer, path=path)
                except (UserError, OSError) as exc:
                    s.value = f"✗ {decision} not saved: {exc}"
                    return
                s.value = f"✓ {decision}"
            return handler

        yes.on_click(click("match"))
        no.on_click(click("no_match"))
        prob = "–" if pd.isna(r.match_probability) else f"{r.match_probability:.3f}"
        text = w.HTML(f"<b>{r.name_l}</b> ↔ <b>{r.name_r}</b> &nbsp; p={prob} "
                      f"<small>({r.record_id_l} / {r.record_id_r})</small>")
        rows.append(w.HBox([text, yes, no, status]))
    return w.VBox(rows or [w.Label("review queue is empty")])
