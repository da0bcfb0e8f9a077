"""Name features (computed once per distinct raw name) and the records prepared for matching: normalised
fields, the name-group key, place-less names localised."""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import names as nm
from .params import MasterParams

# ------------------------------------------------------------------------------------------------------
# name features: computed once per unique raw name
# ------------------------------------------------------------------------------------------------------

def _bigrams(text: str | None) -> list[str] | None:
    """Distinct character bigrams (:func:`crmlib.names._bigrams`: the character itself for one-character text),
    sorted for stable output; None for no text."""
    return sorted(nm._bigrams(text)) if isinstance(text, str) and text else None


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
        from .._fork import fork_pool

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
