"""Pure record checks: frames in, issue frames out.

An *issue* is one problem of one record in one field: ``record_id, source, source_key, customer_id, kind,
field, value, suggested, reason``. A record is *erroneous* when it has at least one issue. ``kind`` uses the
demo generator's error-kind names where one exists, so measured and injected errors compare directly.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import lru_cache

import numpy as np
import pandas as pd

ISSUE_COLS = ["record_id", "source", "source_key", "customer_id", "kind", "field", "value", "suggested",
              "reason", "suggested_customer_id"]

EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$")

# field labels for the fix list and reasons (Chinese first: the data stewards read Chinese)
FIELD_ZH = {
    "name_raw": "客户名称", "uscc": "统一社会信用代码", "phone": "电话", "mobile": "手机", "contact_name": "联系人",
    "email": "电子邮箱", "province": "省份", "city": "城市", "address": "地址", "industry": "行业",
    "region": "大区", "rep_id": "销售代表", "record_date": "日期", "record": "整条记录",
}

REASONS = {
    "junk_name": "客户名称是垃圾信息（测试/未知/空白），无法对应任何客户",
    "name_typo": "客户名称与主数据标准名称不一致（疑似错别字或不规范简称）",
    "wrong_phone": "电话号码格式无效（手机应为1[3-9]开头11位，座机须带区号）",
    "phone_mismatch": "电话号码与该客户其他来源记录不一致",
    "bad_email": "电子邮箱格式无效",
    "uscc_bad_check": "统一社会信用代码校验位错误（GB 32100-2015）",
    "uscc_bad_format": "统一社会信用代码格式无效（应为18位，GB 32100-2015）",
    "uscc_missing": "统一社会信用代码缺失（CRM客户必须登记）",
    "uscc_mismatch": "统一社会信用代码与主数据不一致",
    "wrong_city": "城市与该客户多数来源/主数据不一致",
    "wrong_city_province": "城市不属于所填省份",
    "wrong_province": "省份与该客户多数来源/主数据不一致",
    "wrong_region": "大区与该客户多数来源/主数据不一致",
    "wrong_industry": "行业与该客户多数来源/主数据不一致",
    "duplicate_record": "同一客户在同一来源中重复建档",
    "missing_field": "必填字段为空",
    "missing_contact": "缺少联系人或联系电话",
    "future_or_impossible_date": "日期不可能（晚于审计日、早于下限或先后颠倒）",
    "negative_amount": "金额为负数",
    "load_reject": "导入时被拒收",
}
REASONS_EN = {
    "junk_name": "junk customer name (test/unknown/blank), matches no customer",
    "name_typo": "name differs from the master's canonical name (typo or non-standard short name)",
    "wrong_phone": "invalid phone number (mobile 1[3-9] + 9 digits; landline needs an area code)",
    "phone_mismatch": "phone disagrees with the customer's other records",
    "bad_email": "invalid e-mail address",
    "uscc_bad_check": "unified social credit code has a wrong check character (GB 32100-2015)",
    "uscc_bad_format": "unified social credit code malformed (18 characters, GB 32100-2015)",
    "uscc_missing": "unified social credit code missing (required in the CRM)",
    "uscc_mismatch": "unified social credit code differs from the master",
    "wrong_city": "city disagrees with the customer's majority / master value",
    "wrong_city_province": "the city is not in the province given",
    "wrong_province": "province disagrees with the customer's majority / master value",
    "wrong_region": "region disagrees with the customer's majority / master value",
    "wrong_industry": "industry disagrees with the customer's majority / master value",
    "duplicate_record": "the same customer entered twice in one source",
    "missing_field": "required field is blank",
    "missing_contact": "no contact person or phone",
    "future_or_impossible_date": "impossible date (after the audit date, before the minimum, or out of order)",
    "negative_amount": "negative amount",
    "load_reject": "rejected at load",
}


def reason(kind: str, column: str, lang: str = "zh") -> str:
    """Reason text naming the column, e.g. ``统一社会信用代码校验位错误（GB 32100-2015）［列 uscc］``."""
    if lang == "en":
        return f"{REASONS_EN.get(kind, kind)} [column {column}]"
    return f"{REASONS.get(kind, kind)}［列 {column}］"


def blank(v) -> bool:
    """True for None/NaN/NaT and strings that are empty after stripping."""
    if v is None:
        return True
    try:
        if pd.isna(v):
            return True
    except (TypeError, ValueError):
        return False
    return isinstance(v, str) and not v.strip()


# ---------------------------------------------------------------- single values

_EXT_RE = re.compile(r"(转|分机|EXT\.?|X)\s*\d{1,6}$", re.I)
_LIST_RE = re.compile(r"[/;,，；、]|或")


def phone_digits(raw) -> str | None:
    """Digits of a written phone number after the usual decoration (spaces, dashes, brackets, +86/0086,
    an extension marked 转/分机/ext); ``None`` when anything else is left (a letter o for a zero ...)."""
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    text = _EXT_RE.sub("", text).strip()
    text = re.sub(r"^(\+|00)\s*86[\s-]*", "", text)
    d = re.sub(r"[\s\-()]", "", text)
    return d if d.isdigit() else None


def phone_problem(raw, seven_digit_areas: frozenset[str] = frozenset()) -> str | None:
    """``None`` when blank or valid, else ``"wrong_phone"``.

    Valid: mobile ``1[3-9]`` + 9 digits; landline = area code + local number, where 010/02x take 8 digits,
    other area codes 8 digits, or 7 in ``seven_digit_areas`` (params); local numbers start 2-9; 400/800
    hot lines. Each number of a list (``138.../010-...``) must be valid. :func:`crmlib.names.normalise_phone`
    is deliberately lenient (it extracts a number to match on); validity is stricter.
    """
    if blank(raw):
        return None
    for part in _LIST_RE.split(str(raw)):
        if not part.strip():
            continue
        d = phone_digits(part)
        if d is None:
            return "wrong_phone"
        ok = (re.fullmatch(r"1[3-9]\d{9}", d) or re.fullmatch(r"(010|02\d)[2-9]\d{7}", d)
              or re.fullmatch(r"0[3-9]\d{2}[2-9]\d{7}", d) or re.fullmatch(r"[48]00\d{7}", d)
              or (re.fullmatch(r"0[3-9]\d{2}[2-9]\d{6}", d) and d[:4] in seven_digit_areas))
        if not ok:
            return "wrong_phone"
    return None


def email_problem(raw) -> str | None:
    if blank(raw):
        return None
    return None if EMAIL_RE.match(str(raw).strip()) else "bad_email"


def uscc_problem(raw) -> str | None:
    """``uscc_bad_format`` (not 18 characters of the code alphabet), ``uscc_bad_check`` or ``None``."""
    if blank(raw):
        return None
    from ..uscc import uscc_is_valid  # lazy: uscc.py is written in parallel
    code = str(raw).strip().upper()
    if uscc_is_valid(code):
        return None
    if re.fullmatch(r"[0-9A-HJ-NP-RT-UW-Y]{2}\d{6}[0-9A-HJ-NP-RT-UW-Y]{10}", code):
        return "uscc_bad_check"
    return "uscc_bad_format"


def date_problem(value, as_of: dt.date, date_min: dt.date) -> bool:
    """True when a date is after ``as_of`` or before ``date_min`` (both bounds inclusive-valid)."""
    if blank(value):
        return False
    d = pd.Timestamp(value).date()
    return d > as_of or d < date_min


# ---------------------------------------------------------------- frames

def issues_frame(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in ISSUE_COLS:
        if c not in df.columns:
            df[c] = None
    return df[ISSUE_COLS].astype(object).where(df[ISSUE_COLS].notna(), None).reset_index(drop=True)


def rows(df: pd.DataFrame) -> list[dict]:
    """``df.to_dict("records")`` with the same values and types, several times faster: pandas boxes every
    cell of an Arrow-backed string column one by one, ``to_numpy(object)`` converts a column at once."""
    cols = list(df.columns)
    arrays = [df[c].to_numpy(dtype=object) for c in cols]
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*arrays, strict=True)]


def map_distinct(values: pd.Series, fn) -> pd.Series:
    """``values.map(fn)`` calling ``fn`` once per distinct value (NA values all get ``fn`` of the first NA
    met, which every function here treats as blank); object result on the same index."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    na = values[codes < 0]
    out = np.empty(len(uniques) + 1, dtype=object)
    out[:-1] = [fn(u) for u in uniques]
    out[-1] = fn(na.iloc[0] if len(na) else None)
    return pd.Series(out[codes], index=values.index, dtype=object)


# the audit runs for several dates in one process (trend, week-over-week): per-value results of these pure
# functions are kept (bounded) so later audits only check values not seen before
_phone_problem = lru_cache(maxsize=1 << 20)(lambda v, areas: phone_problem(v, areas))
_email_problem = lru_cache(maxsize=1 << 20)(lambda v: email_problem(v))
_uscc_problem = lru_cache(maxsize=1 << 20)(lambda v: uscc_problem(v))


def blank_mask(values: pd.Series) -> pd.Series:
    """``values.map(blank)`` as a boolean Series, one :func:`blank` call per distinct value."""
    return map_distinct(values, blank).astype(bool)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-None when the frame lacks it (as ``record.get(name)`` would give)."""
    return df[name] if name in df.columns else pd.Series(None, index=df.index, dtype=object)


def _issue(rec, kind: str, field: str, value=None, suggested=None) -> dict:
    return {"record_id": rec["record_id"], "source": rec["source"], "source_key": rec["source_key"],
            "customer_id": rec.get("customer_id"), "kind": kind, "field": field,
            "value": None if blank(value) else str(value), "suggested": suggested,
            "reason": reason(kind, field)}


def check_junk(records: pd.DataFrame) -> pd.DataFrame:
    """Records whose name is junk (测试, 未知客户, blank ...)."""
    from ..names import is_junk
    junk = map_distinct(records["name_raw"], lambda n: blank(n) or is_junk(n)).astype(bool)
    out = [_issue(r, "junk_name", "name_raw", r["name_raw"], "删除或补全真实客户名称")
           for r in rows(records[junk])]
    return issues_frame(out)


def check_validity(records: pd.DataFrame, seven_digit_areas: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Format checks on phone, e-mail and credit code of customer records."""
    # each distinct value is checked once; only records with a problem are turned into issues
    phone = map_distinct(_column(records, "phone"), lambda v: _phone_problem(v, seven_digit_areas))
    email = map_distinct(_column(records, "email"), _email_problem)
    uscc = map_distinct(_column(records, "uscc"), _uscc_problem)
    bad = phone.notna() | email.notna() | uscc.notna()
    out = []
    for r, ph, em, k in zip(rows(records[bad]), phone[bad], email[bad], uscc[bad], strict=True):
        if ph:
            out.append(_issue(r, "wrong_phone", "phone", r.get("phone")))
        if em:
            out.append(_issue(r, "bad_email", "email", r.get("email")))
        if k:
            out.append(_issue(r, k, "uscc", r.get("uscc")))
    return issues_frame(out)


def completeness(records: pd.DataFrame, key_fields: dict[str, list[str]]) -> pd.DataFrame:
    """Share of records with each key field filled: ``source, field, n_records, n_filled, share``."""
    rows = []
    for source in sorted(key_fields):
        sub = records[records["source"] == source]
        for f in key_fields[source]:
            n = len(sub)
            filled = int((~blank_mask(sub[f])).sum()) if n else 0
            rows.append({"source": source, "field": f, "n_records": n, "n_filled": filled,
                         "share": filled / n if n else None})
    return pd.DataFrame(rows, columns=["source", "field", "n_records", "n_filled", "share"])


def check_required(records: pd.DataFrame, required: dict[str, list[str]]) -> pd.DataFrame:
    """Blank required fields (junk names are reported by :func:`check_junk`, not here)."""
    # only records with some required field blank are visited (in their original order)
    any_blank = pd.Series(False, index=records.index)
    for source, fields in required.items():
        of_source = (records["source"] == source).to_numpy()
        for f in fields:
            if f != "name_raw" and of_source.any():
                any_blank |= of_source & blank_mask(_column(records, f))
    out = []
    for r in rows(records[any_blank]):
        for f in required.get(r["source"], []):
            if f == "name_raw":
                continue
            if blank(r.get(f)):
                kind = ("missing_contact" if f in ("phone", "contact_name", "email")
                        else "uscc_missing" if f == "uscc" else "missing_field")
                out.append(_issue(r, kind, f))
    return issues_frame(out)


def norm_place(v) -> str | None:
    """Compare places without their administrative suffix: 杭州市 = 杭州, 浙江省 = 浙江."""
    if blank(v):
        return None
    s = str(v).strip()
    s = re.sub(r"(特别行政区|维吾尔自治区|壮族自治区|回族自治区|自治区|自治州|地区|省|市)$", "", s)
    return s or None


def _norm_value(field: str, v) -> str | None:
    if field in ("city", "province"):
        return norm_place(v)
    return None if blank(v) else str(v).strip()


def golden_values(records: pd.DataFrame, master: pd.DataFrame, field: str,
                  extra_votes: pd.Series | None = None, extra_weight: float = 1.5) -> pd.Series:
    """Per customer, the value a record should carry: strict majority over records, else the master's.

    Each record is one vote; ``extra_votes`` (customer → value) adds ``extra_weight`` votes. Tie-break
    rule: when no value has a strict majority, the master (golden) value wins; a customer whose records all
    agree keeps that value even if the master differs.
    """
    rec = records[records["customer_id"].notna()][["customer_id", field]].copy()
    rec["v"] = map_distinct(rec[field], lambda x: _norm_value(field, x))
    rec = rec[rec["v"].notna()].assign(w=1.0)[["customer_id", "v", "w"]]
    if extra_votes is not None and len(extra_votes):
        ev = extra_votes.dropna()
        rec = pd.concat([rec, pd.DataFrame({"customer_id": ev.index, "v": ev.values, "w": extra_weight})],
                        ignore_index=True)
    counts = rec.groupby(["customer_id", "v"])["w"].sum().rename("n").reset_index()
    counts = counts.sort_values(["customer_id", "n", "v"], ascending=[True, False, True])
    top = counts.groupby("customer_id").head(2).copy()
    top["rank"] = top.groupby("customer_id").cumcount()
    first = top[top["rank"] == 0].set_index("customer_id")
    second = top[top["rank"] == 1].set_index("customer_id")["n"]
    strict = first["n"] > second.reindex(first.index).fillna(0)
    gold = first.loc[strict, "v"]
    if field in master.columns:
        m = master.set_index("customer_id")[field]
        m = map_distinct(m, lambda x: _norm_value(field, x)).dropna()
        gold = pd.concat([gold, m[~m.index.isin(gold.index)]])
    return gold.sort_index()


def implied_industry(name, keywords: dict[str, list[str]]) -> str | None:
    """The industry a name implies: the first rule (in file order) with a keyword in the name."""
    if blank(name):
        return None
    for industry, words in keywords.items():
        if any(w in str(name) for w in words):
            return industry
    return None


def check_consistency(records: pd.DataFrame, master: pd.DataFrame, fields: list[str],
                      industry_keywords: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Records whose field disagrees with the customer's golden value (the odd one out)."""
    out = []
    master_raw = master.set_index("customer_id") if len(master) else master
    for field in fields:
        if field not in records.columns:
            continue
        extra = None
        if field == "industry" and industry_keywords and "name" in master.columns:
            extra = master.set_index("customer_id")["name"].map(lambda n: implied_industry(n, industry_keywords))
        gold = golden_values(records, master, field, extra)
        rec = records[records["customer_id"].isin(gold.index)]
        # compare all records at once; only the odd ones out are visited for the suggestion
        norm = map_distinct(rec[field], lambda x, f=field: _norm_value(f, x))
        golden = rec["customer_id"].map(gold)
        odd = (norm.notna() & (norm != golden)).to_numpy(dtype=bool)
        for r, v, g in zip(rows(rec[odd]), norm[odd], golden[odd], strict=True):
            if v is not None and v != g:
                sug = g
                if field in master_raw.columns and r["customer_id"] in master_raw.index:
                    mv = master_raw.at[r["customer_id"], field]
                    if _norm_value(field, mv) == g:
                        sug = mv  # keep the master's spelling (with its suffix)
                out.append(_issue(r, f"wrong_{field}", field, r.get(field), sug))
    return issues_frame(out)


def check_duplicates(records: pd.DataFrame, sources: list[str], key_fields: dict[str, list[str]]) -> pd.DataFrame:
    """Second and later records of one customer in one master-data source.

    The record kept is the most complete (most key fields filled), then the earliest, then the smallest key;
    the others are flagged with the kept record as the suggestion (merge into it).
    """
    rec = records[records["source"].isin(sources) & records["customer_id"].notna()].copy()
    if rec.empty:
        return issues_frame([])
    filled = pd.Series(0, index=rec.index)
    for source, fields in key_fields.items():
        of_source = (rec["source"] == source).to_numpy()
        if of_source.any():
            for f in fields:
                filled += of_source & ~blank_mask(_column(rec, f))
    rec["_filled"] = filled
    rec["_date"] = pd.to_datetime(rec["record_date"])
    rec = rec.sort_values(["source", "customer_id", "_filled", "_date", "source_key"],
                          ascending=[True, True, False, True, True], na_position="last")
    rec["_n"] = rec.groupby(["source", "customer_id"]).cumcount()
    keep = rec[rec["_n"] == 0].set_index(["source", "customer_id"])["record_id"]
    keep = keep.to_dict()
    out = [_issue(r, "duplicate_record", "record", r["name_raw"], f"合并到 {keep[(r['source'], r['customer_id'])]}")
           for r in rows(rec[rec["_n"] > 0])]
    return issues_frame(out)


@lru_cache(maxsize=1 << 20)
def _region_chars(cleaned: str) -> frozenset[str]:
    """Characters of the place names written in a name (沈阳辽宁大学 → 沈阳辽宁), which a variant may add."""
    from ..names import regions
    idx = regions().index
    out: set[str] = set()
    for i in range(len(cleaned)):
        for j in range(i + 2, min(len(cleaned), i + 8) + 1):
            if cleaned[i:j] in idx:
                out.update(cleaned[i:j])
    return frozenset(out)


@lru_cache(maxsize=1 << 20)
def _region_spans(cleaned: str) -> frozenset[int]:
    """Positions of a name covered by a place name (2+ characters found in the region table)."""
    from ..names import regions
    idx = regions().index
    out: set[int] = set()
    for i in range(len(cleaned)):
        for j in range(i + 2, min(len(cleaned), i + 8) + 1):
            if cleaned[i:j] in idx:
                out.update(range(i, j))
    return frozenset(out)


# legal forms (and 大学): a name whose ending is one character off one of these, where no real ending covers
# that character, carries a typo: 有限工司, 股份友限公司, 有很公司, 有限责任公同, 河北太学. Two-character
# branch words (分行/总行) are left out: 开行, 总局 and the like are real endings one character away.
SUFFIX_WORDS = ("股份有限公司", "有限责任公司", "有限公司", "股份公司", "大学")
SUFFIX_VALID = SUFFIX_WORDS + ("公司", "中学", "小学", "化学", "医学", "科学")


def suffix_typo(cleaned: str) -> bool:
    """True when a name's ending is one character off a legal form and that character is in no real ending."""
    for w in SUFFIX_WORDS:
        n = len(w)
        if len(cleaned) <= n:
            continue
        tail = cleaned[-n:]
        diff = [i for i in range(n) if tail[i] != w[i]]
        if len(diff) != 1:
            continue
        from_end = n - diff[0]
        if not any(cleaned.endswith(v) and len(v) >= from_end for v in SUFFIX_VALID):
            return True
    return False


def check_names(records: pd.DataFrame, master: pd.DataFrame, sources: list[str],
                min_len: int = 6) -> pd.DataFrame:
    """Records whose customer name is mistyped.

    Within a customer: a name is a typo when (1) its brand under the naming rule
    (:func:`crmlib.names.parse`) is not the customer's brand (strict majority of its records, else the
    master's), so short forms, legal forms and places written differently do not count; and (2) it holds
    a character few of the customer's records use (at most 2, and under half) that is not part of a place
    name, or it ends in a doubled character.

    A customer with a single record has nothing to compare with inside; a typo often keeps the resolver
    from matching it at all, so its name is compared with the names of customers that have several
    records: one substituted character (not inside a place name; names of ``min_len``+ characters) or a
    doubled last character makes it a typo of that customer, which becomes the suggested customer.

    Any record whose ending is one character off a legal form (:func:`suffix_typo`) is a typo too.
    """
    from ..names import clean, parse
    rec = records[records["customer_id"].notna() & records["name_raw"].notna()].copy()
    if rec.empty or "name" not in master.columns:
        return issues_frame([])
    uniq = rec["name_raw"].unique()
    brand = {n: parse(n).brand for n in uniq}
    cleaned = {n: clean(n) for n in uniq}
    rec["brand"] = rec["name_raw"].map(brand)
    m = master[["customer_id", "name"]].copy()
    m["brand"] = m["name"].map(lambda n: None if blank(n) else parse(str(n)).brand)
    gold = golden_values(rec, m, "brand")
    # records per customer holding a character, counted only for the few customers that need it below
    names_of = rec.groupby("customer_id")["name_raw"].agg(list).to_dict()

    def char_count(cid: str, ch: str) -> int:
        return sum(ch in cleaned[n] for n in names_of[cid])

    # plain dicts: the loop below looks these up once or more per record, Series lookups cost ~30 µs each
    n_rec_s = rec.groupby("customer_id").size()
    n_rec = n_rec_s.to_dict()
    master_name = m.set_index("customer_id")["name"]
    if master_name.index.is_unique:
        master_name = master_name.to_dict()
    # one-substitution index over the names of customers with several records
    multi = rec[rec["customer_id"].map(n_rec_s) >= 2]
    masked: dict[str, set[str]] = {}
    exact: dict[str, set[str]] = {}

    key_cache: dict[str, list[str]] = {}

    def keys(text: str) -> list[str]:
        hit = key_cache.get(text)
        if hit is None:
            spans = _region_spans(text)
            hit = key_cache[text] = [text[:i] + "\0" + text[i + 1:] for i in range(len(text)) if i not in spans]
        return hit

    for cid, name in multi[["customer_id", "name_raw"]].drop_duplicates().itertuples(index=False):
        c = cleaned[name]
        exact.setdefault(c, set()).add(cid)
        if len(c) >= min_len:
            for k in keys(c):
                masked.setdefault(k, set()).add(cid)
    gold = gold.to_dict() if gold.index.is_unique else gold
    typo_end = {c: suffix_typo(c) for c in set(cleaned.values())}
    out = []
    for r in rows(rec[rec["source"].isin(sources) & rec["customer_id"].isin(list(gold.keys()))]):
        cid, name = r["customer_id"], r["name_raw"]
        c = cleaned[name]
        if typo_end[c]:
            out.append(_issue(r, "name_typo", "name_raw", name, master_name.get(cid)))
            continue
        if n_rec[cid] < 2:
            other: set[str] = set()
            if len(c) >= min_len:
                for k in keys(c):
                    other |= masked.get(k, set())
            if len(c) > 2 and c[-1] == c[-2]:
                other |= exact.get(c[:-1], set())
            other.discard(cid)
            if other:
                to = sorted(other, key=lambda x: (-n_rec[x], x))[0]
                i = _issue(r, "name_typo", "name_raw", name, master_name.get(to))
                i["suggested_customer_id"] = to
                out.append(i)
            continue
        if blank(r["brand"]) or r["brand"] == gold[cid]:
            continue
        novel = {ch for ch in set(c) if char_count(cid, ch) <= 2 and char_count(cid, ch) < n_rec[cid] / 2}
        novel -= _region_chars(c)
        if novel or (len(c) > 2 and c[-1] == c[-2]):
            out.append(_issue(r, "name_typo", "name_raw", name, master_name.get(cid)))
    return issues_frame(out)


def check_uscc_against_master(records: pd.DataFrame, master: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Master-data records without the credit code the master knows, or with a different valid code."""
    if "uscc" not in master.columns:
        return issues_frame([])
    m = master.set_index("customer_id")["uscc"]
    m = m[~m.map(blank)]
    out = []
    for r in rows(records[records["source"].isin(sources) & records["customer_id"].isin(m.index)]):
        code = m[r["customer_id"]]
        if blank(r.get("uscc")):
            out.append(_issue(r, "uscc_missing", "uscc", None, code))
        elif uscc_problem(r["uscc"]) is None and str(r["uscc"]).strip().upper() != str(code).strip().upper():
            out.append(_issue(r, "uscc_mismatch", "uscc", r["uscc"], code))
    return issues_frame(out)


def _region_maps():
    from ..names import regions
    r = regions()
    city_prov = dict(r.city_province)
    for short, full in r.city_full.items():
        if short in r.city_province:
            city_prov.setdefault(full, r.city_province[short])
    prov = {s: s for s in r.province_full}
    prov.update({full: s for s, full in r.province_full.items()})
    return city_prov, prov


def check_city_province(records: pd.DataFrame) -> pd.DataFrame:
    """Records whose city lies in another province than the one they name (杭州 with 江苏省).

    Places the region table does not know are skipped. The city is blamed: a wrong pick from a city list
    is the usual slip, and the cross-source check corrects the rare wrong province.
    """
    city_prov, prov = _region_maps()
    out = []
    rec = records[records["province"].notna() & records["city"].notna()]
    pc = map_distinct(rec["city"], lambda c: city_prov.get(str(c).strip()))
    pp = map_distinct(rec["province"], lambda p: prov.get(str(p).strip()))
    clash = (pc.notna() & pp.notna() & (pc != pp)).to_numpy(dtype=bool)
    for r in rows(rec[clash]):
        c, p = str(r["city"]).strip(), str(r["province"]).strip()
        pc, pp = city_prov.get(c), prov.get(p)
        if pc and pp and pc != pp:
            i = _issue(r, "wrong_city", "city", r["city"])
            i["reason"] = reason("wrong_city_province", "city")
            out.append(i)
    return issues_frame(out)


def check_contacts(contacts: pd.DataFrame, seven_digit_areas: frozenset[str] = frozenset()) -> pd.DataFrame:
    """CRM contact rows: mobile, landline and e-mail validity (columns ``mobile``, ``landline``,
    ``contact_email``; reported under the CRM column names mobile, phone, email)."""
    out = []
    for r in rows(contacts):
        for col, f in (("mobile", "mobile"), ("landline", "phone")):
            if _phone_problem(r.get(col), seven_digit_areas):
                out.append(_issue(r, "wrong_phone", f, r.get(col)))
        if _email_problem(r.get("contact_email")):
            out.append(_issue(r, "bad_email", "email", r.get("contact_email")))
    return issues_frame(out)
