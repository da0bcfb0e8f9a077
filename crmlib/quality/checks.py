"""Pure record checks: frames in, issue frames out.

An *issue* is one problem of one record in one field: ``record_id, source, source_key, customer_id, kind,
field, value, suggested, reason, suggested_customer_id, since`` (``since``: the date from which the issue
holds when that is not "as long as the record exists", e.g. a load reject from its file's week). A record is *erroneous* when it has at least one issue. ``kind`` uses the
demo generator's error-kind names where one exists, so measured and injected errors compare directly.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from functools import lru_cache

import numpy as np
import pandas as pd

from ..frames import isin

ISSUE_COLS = ["record_id", "source", "source_key", "customer_id", "kind", "field", "value", "suggested",
              "reason", "suggested_customer_id", "since"]

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
        gold = pd.concat([gold, m[~isin(m.index, gold.index)]])
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
        rec = records[isin(records["customer_id"], gold.index)]
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


def duplicate_order(records: pd.DataFrame, sources: list[str], key_fields: dict[str, list[str]]) -> pd.Series:
    """Which record of a customer in a master-data source is kept: rank in the keep order (0 = kept), on
    the records' index; NaN for records of other sources or without a customer.

    The order is the most complete (most key fields filled) first, then the earliest, then the smallest
    key. Restricted to the records that existed at an earlier date, the same order says which record was
    kept then (:func:`crmlib.quality.audit.records_at`)."""
    rec = records[records["source"].isin(sources) & records["customer_id"].notna()]
    out = pd.Series(np.nan, index=records.index)
    if rec.empty:
        return out
    filled = pd.Series(0, index=rec.index)
    for source, fields in key_fields.items():
        of_source = (rec["source"] == source).to_numpy()
        if of_source.any():
            for f in fields:
                filled += of_source & ~blank_mask(_column(rec, f))
    key = pd.DataFrame({"source": rec["source"], "customer_id": rec["customer_id"], "_filled": filled,
                        "_date": pd.to_datetime(rec["record_date"]), "source_key": rec["source_key"]})
    key = key.sort_values(["source", "customer_id", "_filled", "_date", "source_key"],
                          ascending=[True, True, False, True, True], na_position="last")
    out.loc[key.index] = np.arange(len(key), dtype=float)
    return out


def check_duplicates(records: pd.DataFrame, sources: list[str], key_fields: dict[str, list[str]],
                     order: pd.Series | None = None) -> pd.DataFrame:
    """Second and later records of one customer in one master-data source.

    The record kept is the first in :func:`duplicate_order`; the others are flagged with the kept record as
    the suggestion (merge into it). ``order``: that order when the caller has it already.
    """
    order = duplicate_order(records, sources, key_fields) if order is None else order
    rec = records[order.notna()].assign(_o=order[order.notna()]).sort_values("_o")
    if rec.empty:
        return issues_frame([])
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


# legal forms written inside a name, where bank and insurer branches carry them (…股份有限工司鞍山分行)
INNER_LEGAL = ("股份有限公司", "有限责任公司", "有限公司")
# endings stripped to compare a name without its legal form (longest first)
LEGAL_ENDS = ("集团股份有限公司", "集团有限责任公司", "股份有限责任公司", "集团有限公司", "股份有限公司", "有限责任公司",
              "有限公司", "股份公司", "集团公司", "公司")
# words of legal forms: characters of these are no typo of a trade name (控股集团有限责任公司 for 集团有限公司)
LEGAL_WORDS = ("股份", "有限", "责任", "公司", "集团", "控股")
BRANCH_WORDS = ("省分行", "市分行", "分行", "支行", "分公司", "支公司", "中心支公司", "营业部", "办事处", "营业所")
# cross-customer evidence: the pair of characters the correction restores is in the names of at least this
# many customers, and this many times more than the pair the record wrote (a misspelt common word or place:
# 料技 for 科技, 楠京 for 南京, 每淀 for 海淀); below that, a one-character difference is also what two
# different companies' trade names look like (远银 / 远佳)
COMMON_PAIR_MIN = 10
COMMON_PAIR_RATIO = 3


def one_sub(a: str, b: str) -> int | None:
    """Position of the only differing character of two equal-length strings, else ``None``."""
    if len(a) != len(b):
        return None
    pos = None
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            if pos is not None:
                return None
            pos = i
    return pos


@lru_cache(maxsize=1 << 20)
def strip_legal(cleaned: str) -> str:
    """A cleaned name without its legal-form ending (华隆能源科技股份有限公司 → 华隆能源科技)."""
    for e in LEGAL_ENDS:
        if cleaned.endswith(e) and len(cleaned) > len(e):
            return cleaned[:-len(e)]
    return cleaned


def _without_legal_words(cleaned: str) -> str:
    for w in LEGAL_WORDS:
        cleaned = cleaned.replace(w, "")
    return cleaned


def _masked(text: str, skip: frozenset[int] = frozenset()) -> list[tuple[str, int]]:
    """The text with each character in turn replaced by a placeholder (one-substitution keys)."""
    return [(text[:i] + "\0" + text[i + 1:], i) for i in range(len(text)) if i not in skip]


@lru_cache(maxsize=1 << 20)
def legal_typo(cleaned: str) -> bool:
    """True when a legal form is written one character off anywhere in a name (股份有很公司…分行)."""
    for w in INNER_LEGAL:
        n = len(w)
        # one changed character leaves a pair of the form in place: only windows around such a pair
        starts = set()
        for k in range(n - 1):
            at = cleaned.find(w[k:k + 2])
            while at >= 0:
                if 0 <= at - k <= len(cleaned) - n:
                    starts.add(at - k)
                at = cleaned.find(w[k:k + 2], at + 1)
        for j in starts:
            sub = cleaned[j:j + n]
            if sub != w and one_sub(sub, w) is not None \
                    and not any(v in cleaned[max(0, j - 2):j + n + 2] for v in INNER_LEGAL):
                return True
    return False


@lru_cache(maxsize=1)
def _word_keys() -> tuple[frozenset[str], frozenset[str]]:
    """Place names, legal forms and branch words, and their one-substitution keys."""
    from ..names import regions
    words = frozenset({k for k in regions().index if len(k) >= 2} | set(LEGAL_ENDS) | set(BRANCH_WORDS))
    return words, frozenset(k for w in words for k, _ in _masked(w))


@lru_cache(maxsize=1 << 16)
def misspelt_word(x: str) -> bool:
    """True when ``x`` is one character off a place name, legal form or branch word and is none of them."""
    words, keys = _word_keys()
    return len(x) >= 2 and x not in words and any(k in keys for k, _ in _masked(x))


@lru_cache(maxsize=4)
def _alias_keys(ad) -> dict[str, tuple[str, ...]]:
    """One-substitution keys of the naming rule's brands and aliases (Chinese ones, 2+ characters)."""
    out: dict[str, list[str]] = {}
    for a in ad.alias_to_brand:
        if len(a) >= 2 and not a.isascii():
            for k, _ in _masked(a):
                out.setdefault(k, []).append(a)
    return {k: tuple(sorted(v)) for k, v in out.items()}


@lru_cache(maxsize=1 << 18)
def _dictionary_typo(name: str, ad) -> tuple[tuple[str, int], ...]:
    from ..names import parse
    p = parse(name, ad)
    if p.brand_known or p.ambiguous or p.is_junk or not p.brand or p.brand in ad.alias_to_brand:
        return ()
    b, c, keys = p.brand, p.cleaned, _alias_keys(ad)
    out = []
    for n in range(min(len(b), max(ad.lengths)), 1, -1):
        # the whole brand, or (3+ characters) its first or last characters: 中囯石化|贵州石油
        for start in ((0,) if n == len(b) else (0, len(b) - n) if n >= 3 else ()):
            sub = b[start:start + n]
            at = c.find(sub)
            if at < 0:
                continue
            for k, i in _masked(sub):
                for a in keys.get(k, ()):
                    fixed = c[:at] + a + c[at + n:]
                    q = parse(fixed, ad)
                    if q.brand_known and not q.ambiguous:
                        out.append((fixed, at + i))
    return tuple(out)


def dictionary_typo(name: str) -> tuple[tuple[str, int], ...]:
    """Corrections of one character that turn a name's unknown brand into a brand of the naming rule
    (``params/org_aliases.yaml``), as (corrected cleaned name, position): 油储银行北京市朝阳支行 → 邮储银行…,
    青海光大银航 → 青海光大银行. Names already naming a known brand, and short forms the rule calls
    ambiguous, have none. Whether a correction is likely is for the caller to weigh (南京市财政局 is one
    character off 南京市邮政局 too)."""
    from ..names import load_aliases
    return _dictionary_typo(name, load_aliases())


def _ref_brands(rec: pd.DataFrame, gold: dict, freq: dict) -> dict:
    """The customers' brands, with ties settled by the more common spelling.

    ``gold`` is the strict majority of the records, else the master's; where no brand has a strict majority
    and a tied brand is one character off the master's, the spelling whose character is in more customers'
    names wins: a typo is rarely the commoner character (帆天 over 帆夭), and the master often took its name
    from the typo'd CRM record."""
    ref = dict(gold)
    bc = rec.groupby(["customer_id", "brand"]).size()
    top = bc.groupby(level=0).transform("max")
    at_top = bc[bc == top]
    n_top = at_top.groupby(level=0).size()
    for cid in n_top.index[n_top.to_numpy() >= 2]:
        g = ref.get(cid)
        if not g:
            continue
        for b in at_top.loc[cid].index:
            i = one_sub(b, g) if b != g else None
            if i is not None and freq.get(b[i], 0) > freq.get(g[i], 0):
                ref[cid] = b
                break
    return ref


def _one_substitution_pairs(lone_forms: dict, multi: dict[str, bool], freq: Counter) -> list[tuple]:
    """Pairs of a lone name's form and another customer's form of the same length differing in exactly one
    character, at a position outside the lone form's place names: ``(lone form, position, other form,
    around(other), around(lone))``, where ``around`` is the commonest pair of characters touching the
    position (in how many customers' names it occurs). Only pairs that can count are returned: the other
    form's pair is common (COMMON_PAIR_MIN) or it belongs to a customer with several records (``multi``)
    and is at least as common.

    A self-join in DuckDB on "the form with one character masked" (≈ 30M masked keys at scale 100). The same
    search in Python dictionaries gave the same 48,309 name issues at scale 100 in 223 s against 149 s here
    (both measured with another job on one core), at 0.7 GB less peak memory (7.9 against 8.6 GB)."""
    import duckdb
    import pyarrow as pa

    lone = list(lone_forms)
    spans = [sorted(_region_spans(f)) for f in lone]
    owners = list(multi)
    pairs = [(k, n) for k, n in freq.items() if len(k) == 2]
    con = duckdb.connect()
    try:
        con.register("lone_t", pa.table({"qf": lone, "spans": pa.array(spans, type=pa.list_(pa.int64()))}))
        con.register("owner_t", pa.table({"f": owners, "multi": [multi[f] for f in owners]}))
        con.register("pair_t", pa.table({"pair": [k for k, _ in pairs], "n": [n for _, n in pairs]}))
        # around(text, i): the pairs text[i-1:i+1] and text[i:i+2] (DuckDB strings count characters, 1-based)
        around = ("greatest(coalesce((SELECT n FROM pair_t WHERE pair = substr({t}, {i}, 2) AND {i} >= 1), 0), "
                  "coalesce((SELECT n FROM pair_t WHERE pair = substr({t}, {i} + 1, 2) AND {i} + 2 <= length({t})),"
                  " 0))")
        sql = f"""
            WITH q AS (SELECT qf, i, substr(qf, 1, i) || chr(1) || substr(qf, i + 2) AS k
                       FROM (SELECT qf, spans, unnest(range(length(qf))) AS i FROM lone_t)
                       WHERE NOT list_contains(spans, i)),
                 o AS (SELECT f, multi, i, substr(f, 1, i) || chr(1) || substr(f, i + 2) AS k
                       FROM (SELECT f, multi, unnest(range(length(f))) AS i FROM owner_t)),
                 m AS (SELECT q.qf, o.i, o.f, o.multi FROM q JOIN o USING (k) WHERE q.qf <> o.f),
                 s AS (SELECT qf, i, f, multi, {around.format(t="f", i="i")} AS ft,
                              {around.format(t="qf", i="i")} AS fq FROM m)
            SELECT qf, i, f, ft, fq FROM s
            WHERE (ft >= {COMMON_PAIR_MIN} AND ft >= {COMMON_PAIR_RATIO} * fq) OR (multi AND ft >= fq)
            ORDER BY qf, i, f"""
        return con.execute(sql).fetchall()
    finally:
        con.close()


def check_names(records: pd.DataFrame, master: pd.DataFrame, sources: list[str],
                min_len: int = 6) -> pd.DataFrame:
    """Records whose customer name is mistyped.

    Anywhere: a legal form one character off (:func:`suffix_typo` at the end, :func:`legal_typo` inside).

    Within a customer: a name is a typo when (1) its brand under the naming rule
    (:func:`crmlib.names.parse`) is not the customer's brand (strict majority of its records, else the
    master's, ties settled by :func:`_ref_brands`), so short forms, legal forms and places written
    differently do not count; and (2) it holds a character few of the customer's records use (at most 2, and
    under half) that is not part of a place name, or it ends in a doubled character, or its brand is the
    customer's brand with one character changed, or the customer's brand followed or preceded by a place
    name, legal form or branch word one character off (民生陕希省分行).

    A customer with a single record has nothing to compare with inside; a typo often keeps the resolver
    from matching it at all, so its name (whole, without legal form, and its brand) is compared with the
    names of the other customers, one substituted character apart (not inside a place name the record
    wrote). That makes it a typo of the other customer when the correction restores a pair of characters
    common in the customers' names that the record's pair is not (:data:`COMMON_PAIR_MIN`,
    :data:`COMMON_PAIR_RATIO`: 料技 → 科技, 楠京 → 南京), unless both names are brands of the naming rule
    (中信银行 / 中国银行) or the character is in the other name's trade name (字号: 伟信能源 / 伟智能源 are
    two companies). Without that evidence the whole name (``min_len``+ characters) must be one character off
    a customer with several records, outside its place names, and the record must place itself there: its
    city (field or name) is that customer's, or it shares a phone with it. A doubled last character of a
    name of a customer with several records is a typo too. Failing all that, a name one character off a
    brand of the naming rule (:func:`dictionary_typo`) is a typo when the correction restores a pair of
    characters :data:`COMMON_PAIR_RATIO` times as common. The customer found is the suggested one.
    """
    from ..names import clean, normalise_phone, parse
    rec = records[records["customer_id"].notna() & records["name_raw"].notna()].copy()
    if rec.empty or "name" not in master.columns:
        return issues_frame([])
    uniq = rec["name_raw"].unique()
    parsed = {n: parse(n) for n in uniq}
    brand = {n: p.brand for n, p in parsed.items()}
    cleaned = {n: clean(n) for n in uniq}
    rec["brand"] = rec["name_raw"].map(brand)
    m = master[["customer_id", "name"]].copy()
    m["brand"] = [None if blank(n) else parse(str(n)).brand for n in m["name"].to_numpy(dtype=object)]
    gold = golden_values(rec, m, "brand")
    gold = gold.to_dict() if gold.index.is_unique else gold
    # each customer's names (plain lists: pandas' groupby-to-list boxes every Arrow string one by one)
    names_of: dict[str, list[str]] = {}
    for cid, n in zip(rec["customer_id"].to_numpy(dtype=object), rec["name_raw"].to_numpy(dtype=object),
                      strict=True):
        names_of.setdefault(cid, []).append(n)

    def char_count(cid: str, ch: str) -> int:
        return sum(ch in cleaned[n] for n in names_of[cid])

    # plain dicts: the loop below looks these up once or more per record, Series lookups cost ~30 µs each
    n_rec_s = rec.groupby("customer_id").size()
    n_rec = n_rec_s.to_dict()
    master_name = m.set_index("customer_id")["name"]
    master_brand = m.set_index("customer_id")["brand"]
    if master_name.index.is_unique:
        master_name, master_brand = master_name.to_dict(), master_brand.to_dict()
    m_city = {}
    if "city" in master.columns and master["customer_id"].is_unique:
        m_city = dict(zip(master["customer_id"], map_distinct(master["city"], norm_place), strict=True))

    # in how many customers' names each character and each pair of characters occurs
    freq: Counter = Counter()
    for names in names_of.values():
        seen: set[str] = set()
        for n in set(names):
            c = cleaned[n]
            seen.update(c)
            seen.update(c[j:j + 2] for j in range(len(c) - 1))
        freq.update(seen)
    ref = _ref_brands(rec, gold, freq) if isinstance(gold, dict) else gold

    def around(text: str, i: int) -> int:
        return max((freq.get(text[j:j + 2], 0) for j in (i - 1, i) if j >= 0 and j + 2 <= len(text)), default=0)

    # one-substitution matches of single-record customers' names against every customer's names
    forms_of: dict[str, dict[str, bool]] = {}

    def forms(name: str) -> dict[str, bool]:
        """Name forms compared across customers → whether the form is the whole name."""
        hit = forms_of.get(name)
        if hit is not None:
            return hit
        c = cleaned[name]
        out = {c: True} if len(c) >= min_len else {}
        s = strip_legal(c)
        if len(s) >= 5:
            out.setdefault(s, False)
        b = brand[name]
        if b and len(b) >= 4:
            out.setdefault(b, False)
        forms_of[name] = out
        return out

    lone = [n for n in rec.loc[rec["customer_id"].map(n_rec_s) < 2, "name_raw"].unique()]
    lone_forms: dict[str, list[tuple[bool, str]]] = {}  # form of a lone name -> [(whole, name)]
    for n in lone:
        for f, whole in forms(n).items():
            lone_forms.setdefault(f, []).append((whole, n))
    # every customer's forms, each form once with the customers writing it (the brand 中国工商银行 is a form
    # of thousands of branch customers: its neighbours are looked up once, not once per customer)
    owners: dict[str, list[tuple[str, str]]] = {}   # form -> [(customer, its name giving that form)]
    exact: dict[str, set[str]] = {}
    for cid, names in names_of.items():
        fs: dict[str, str] = {}
        for n in sorted(set(names)):
            for f in forms(n):
                fs.setdefault(f, n)
            if n_rec[cid] >= 2:
                exact.setdefault(cleaned[n], set()).add(cid)
        for f, n_of in fs.items():
            owners.setdefault(f, []).append((cid, n_of))
    # lone name -> (its form, position, other form, common, near) of the neighbours that can count below:
    # the correction restores a common pair of characters (common), or the whole name is one character off
    # a customer with several records outside its place names (near)
    multi = {f: any(n_rec[o] >= 2 for o, _ in owned) for f, owned in owners.items()}
    hits: dict[str, list[tuple[str, int, str, bool, bool]]] = {}
    for qf, i, f, ft, fq in _one_substitution_pairs(lone_forms, multi, freq):
        common = ft >= COMMON_PAIR_MIN and ft >= COMMON_PAIR_RATIO * fq
        near_f = multi[f] and ft >= fq and i not in _region_spans(f)
        if not (common or near_f):
            continue
        for whole, n in lone_forms[qf]:
            if common or whole:
                hits.setdefault(n, []).append((qf, i, f, common, near_f and whole))

    def trade_name_at(form: str, name: str, i: int) -> bool:
        """Whether position ``i`` of a form of ``name`` is in the first two characters of its brand when the
        brand is not one of the naming rule's: the trade name (字号), where one character tells two
        companies apart (伟信能源 / 伟智能源)."""
        p = parsed[name]
        if p.brand_known or not p.brand:
            return False
        at = form.find(p.brand)
        return at >= 0 and at <= i < at + 2

    raw_phones: dict[str, list] = {}
    phones_of: dict[str, set[str]] = {}

    def phones(cid: str) -> set[str]:
        if not raw_phones and "phone" in rec.columns:
            for x, ph in zip(rec["customer_id"].to_numpy(dtype=object), rec["phone"].to_numpy(dtype=object),
                             strict=True):
                raw_phones.setdefault(x, []).append(ph)
        if cid not in phones_of:
            phones_of[cid] = {normalise_phone(x) for x in raw_phones.get(cid, ()) if not blank(x)} - {None}
        return phones_of[cid]

    def home(cid: str) -> str | None:
        """The customer's city: the master's, else the first one its names give."""
        return m_city.get(cid) or next((parsed[n].city for n in names_of[cid] if parsed[n].city), None)

    typo_end = {c: suffix_typo(c) or legal_typo(c) for c in set(cleaned.values())}
    out = []
    for r in rows(rec[rec["source"].isin(sources) & isin(rec["customer_id"], ref.keys())]):
        cid, name = r["customer_id"], r["name_raw"]
        c = cleaned[name]
        if typo_end[c]:
            out.append(_issue(r, "name_typo", "name_raw", name, master_name.get(cid)))
            continue
        if n_rec[cid] < 2:
            strong: set[str] = set()
            weak: set[str] = set()
            known = parsed[name].brand_known
            for _qf, i, of, common, near in hits.get(name, ()):
                for ocid, oname in owners[of]:
                    if ocid == cid:
                        continue
                    if common and not (known and parsed[oname].brand_known) and not trade_name_at(of, oname, i):
                        strong.add(ocid)
                    elif near and n_rec[ocid] >= 2:
                        weak.add(ocid)
            if len(c) > 2 and c[-1] == c[-2]:
                strong |= exact.get(c[:-1], set()) - {cid}
            if weak and not strong:
                city = norm_place(r.get("city")) or parsed[name].city
                ph = None if blank(r.get("phone")) else normalise_phone(r["phone"])
                weak = {x for x in weak if (city and home(x) == city) or (ph and ph in phones(x))}
            other = strong or weak
            if other:
                to = sorted(other, key=lambda x: (-n_rec[x], x))[0]
                i = _issue(r, "name_typo", "name_raw", name, master_name.get(to))
                i["suggested_customer_id"] = to
                out.append(i)
                continue
            fixed = next((f for f, i in dictionary_typo(name) if around(f, i) >= COMMON_PAIR_RATIO * around(c, i)),
                         None)
            if fixed:
                out.append(_issue(r, "name_typo", "name_raw", name, fixed))
            continue
        b, g = r["brand"], ref[cid]
        if blank(b) or b == g:
            continue
        # brackets and other signs are no typo (中信(曲靖) is a short form), nor are legal-form words some
        # records add (控股集团有限责任公司): a typo in those is a legal-form typo above
        novel = {ch for ch in set(_without_legal_words(c))
                 if ch.isalnum() and (k := char_count(cid, ch)) <= 2 and k < n_rec[cid] / 2}
        novel -= _region_chars(c)
        if novel or (len(c) > 2 and c[-1] == c[-2]) or (g and len(g) >= 3 and one_sub(b, g) is not None) \
                or (g and ((b.startswith(g) and misspelt_word(b[len(g):]))
                           or (b.endswith(g) and misspelt_word(b[:-len(g)])))):
            sug = master_name.get(cid)
            if g != master_brand.get(cid):
                # the master carries the typo: suggest the customer's own spelling
                sug = next((n for n in names_of[cid] if brand[n] == g), sug)
            out.append(_issue(r, "name_typo", "name_raw", name, sug))
    return issues_frame(out)


def check_uscc_against_master(records: pd.DataFrame, master: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Master-data records without the credit code the master knows, or with a different valid code."""
    if "uscc" not in master.columns:
        return issues_frame([])
    m = master.set_index("customer_id")["uscc"]
    m = m[~m.map(blank)]
    out = []
    for r in rows(records[records["source"].isin(sources) & isin(records["customer_id"], m.index)]):
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
