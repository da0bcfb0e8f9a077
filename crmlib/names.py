"""Chinese organisation-name normalisation (pure functions, cached).

The center's naming rule turns what a rep typed (北京工行, 工商银行(北京), 中國工商銀行股份有限公司北京市分行)
into one parsed identity: a brand (中国工商银行), a region (北京), a branch level and a canonical name
(中国工商银行北京市分行). ``match_key`` = brand | region | branch is what the matcher blocks and compares on.

Rules worth stating:
- Known brands (``params/org_aliases.yaml``) win over region stripping, longest alias first, so 北京银行,
  中国银行 and 上海交通大学 stay brands. Aliases of ≤2 characters (and Latin ones) only count when the rest of
  the name is fully explained (region, legal form, branch word, brand filler).
- A generic remainder (银行, 大学, 医院, ...) never stands alone as a brand: 浙江大学 keeps its region.
- Municipality rule: for 北京/上海/天津/重庆 a branch named after the city (北京分行, 北京市分行, 北京工行) is a
  **province-level** branch (it reports to head office like 浙江省分行); their districts are sub-branches.
- A hierarchy brand (banks, telecoms, ...) written with a region and no branch word is that region's branch
  (北京工行 → Beijing branch, 杭州建行 → Hangzhou city branch); written with neither it is the head office.
- Region, for an ordinary company, is its home (杭州华信电子 → brand 华信电子, city 杭州); two companies with one
  trade name in two cities get two match keys.
"""
from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import field_validator, model_validator

from . import paths
from .params import Params, load

_DATA = Path(__file__).resolve().parent / "data"
_REPO_PARAMS = Path(__file__).resolve().parent.parent / "params"
MUNICIPALITIES = frozenset({"北京", "上海", "天津", "重庆"})
LEVELS = ("head", "province", "city", "subbranch")

# --------------------------------------------------------------------------------------------------
# clean
# --------------------------------------------------------------------------------------------------
_BRACKETS = str.maketrans({"[": "(", "]": ")", "【": "(", "】": ")", "〔": "(", "〕": ")", "{": "(", "}": ")",
                           "〖": "(", "〗": ")", "「": "", "」": "", "『": "", "』": "", "《": "", "》": "",
                           "〈": "", "〉": ""})
# Punctuation and spacing reps sprinkle into names; parentheses and & carry meaning and are kept.
_NOISE_RE = re.compile(r"[\s\u200b\u200c\u200d\ufeff\u00a0·•・.,，。、;；:：'\"“”‘’`!！?？*#/\\|~^_\-—–―=+<>@$%]+")
_EN_LEGAL_RE = re.compile(
    r"[\s,.]*(CO[\s.,]*LTD\.?|COMPANY[\s,]+LIMITED|CORPORATION[\s,]+LIMITED|CO[\s.,]*LIMITED|LIMITED|LTD\.?"
    r"|CORP\.?|INC\.?|CO\.)\s*$")


@lru_cache(maxsize=1)
def _traditional_chars() -> frozenset[str]:
    import opencc

    path = Path(opencc.__file__).resolve().parent / "dictionary" / "TSCharacters.txt"
    chars = set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            key, _, values = line.rstrip("\n").partition("\t")
            # A character that is also its own simplified form (著, 乾 ...) is not evidence of traditional text.
            if key and key not in values.split():
                chars.add(key)
    return frozenset(chars)


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


def _balance_parens(s: str) -> str:
    out, stack = list(s), []
    for i, ch in enumerate(s):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if stack:
                stack.pop()
            else:
                out[i] = ""
    for i in stack:
        out[i] = ""
    return "".join(out)


@lru_cache(maxsize=1 << 20)
def clean(name: str | None) -> str:
    """NFKC, upper-case Latin, traditional → simplified, one bracket form ``()``, no spaces or punctuation."""
    if name is None:
        return ""
    s = unicodedata.normalize("NFKC", str(name)).upper()
    if not s.isascii():
        trad = _traditional_chars()
        if any(ch in trad for ch in s):
            s = _t2s().convert(s)
    s = _EN_LEGAL_RE.sub("有限公司", s.strip()) if re.search(r"[A-Z]", s) else s
    s = s.translate(_BRACKETS)
    s = _NOISE_RE.sub("", s)
    s = _balance_parens(s)
    while "()" in s:
        s = s.replace("()", "")
    return s


# --------------------------------------------------------------------------------------------------
# junk
# --------------------------------------------------------------------------------------------------
_JUNK_WORDS = frozenset("""
未知 未知客户 未知单位 不详 不知道 不清楚 无 暂无 没有 空 待定 待补充 待确认 待查 个人 个体 个人客户 个体户 散客 散户
客户 公司 单位 企业 其他 其它 NULL NONE NA NAN 无名 匿名 某公司 某某 某某公司 某单位 某某单位 临时客户 新客户 测试
TEST DEMO 样例 示例 无名称 名称 客户名称 单位名称 见备注 同上 略 X XX XXX XXXX 有限公司 股份有限公司 集团
""".split())
_JUNK_RE = re.compile(
    r"^(?:[0-9]+|[\W_]+|(.)\1+"
    r"|[0-9A-Z]*(?:测试|TEST|DEMO)[0-9A-Z]*(?:客户|公司|单位|用户|账号|数据|专用)?[0-9A-Z]*"
    r"|(?:某+|X+)(?:公司|单位|客户|集团|有限公司)?"
    r"|(?:客户|用户|公司|单位)[0-9A-Z]{1,4}"
    r"|(?:未知|不详|待定|待补充|暂无)(?:客户|单位|公司|名称|用户)?[0-9]*"
    r"|(?:个人|个体|无|散户|散客)(?:客户|用户)?(?:\([^()]{0,6}\))?)$")


def _junk_pattern(cleaned: str) -> bool:
    if len(cleaned) < 2:
        return True
    return cleaned in _JUNK_WORDS or bool(_JUNK_RE.match(cleaned))


def is_junk(name: str | None) -> bool:
    """True for names that identify nobody: blank, 测试/TEST, 未知客户, 个人, 无, xxx, digits only, or a name
    that is nothing but a region, legal form and branch word (北京分公司)."""
    return parse(name).is_junk


# --------------------------------------------------------------------------------------------------
# regions
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    adcode: str
    name: str        # full name: 杭州市
    short: str       # 杭州
    level: str       # province / city / district
    province: str    # short province name
    city: str        # short city name ('' for county-level units directly under a province)


# Short forms that are ordinary words in organisation names far more often than places.
_SHORT_BLACKLIST = frozenset({"阿里"})
_FULL_BLACKLIST = frozenset({"城区", "郊区", "矿区", "东区", "西区", "南区", "北区", "中区", "新区", "市中区"})
_REGION_RANK = {"province": 0, "city": 1, "district": 2}


class _Regions:
    def __init__(self, rows: list[Region]):
        # token → [(Region, strength)]; strength: 'full', 'short' (province/city/county-level city),
        # 'weak' (short form of a 区/县: only trusted next to a branch word or a known hierarchy brand)
        self.index: dict[str, list[tuple[Region, str]]] = {}
        self.province_full: dict[str, str] = {}
        self.city_full: dict[str, str] = {}
        self.city_province: dict[str, str] = {}
        for r in rows:
            if r.name not in _FULL_BLACKLIST:
                self.index.setdefault(r.name, []).append((r, "full"))
            if r.level == "province":
                self.province_full.setdefault(r.short, r.name)
            elif r.level == "city":
                self.city_full.setdefault(r.short, r.name)
                self.city_province.setdefault(r.short, r.province)
            if r.short != r.name and len(r.short) >= 2 and r.short not in _SHORT_BLACKLIST:
                strength = "weak" if (r.level == "district" and not r.name.endswith("市")) else "short"
                self.index.setdefault(r.short, []).append((r, strength))
        # a province and a prefecture city of one short name (吉林省 / 吉林市): which is meant matters
        self.homonyms = frozenset(set(self.province_full) & set(self.city_full))
        for m in MUNICIPALITIES:
            self.city_full[m] = self.province_full[m]
            self.city_province[m] = m
        for v in self.index.values():
            v.sort(key=lambda e: (_REGION_RANK[e[0].level], e[1] != "full", e[0].adcode))
        self.maxlen = max(len(k) for k in self.index)
        self._all = {k: [r for r, _ in v] for k, v in self.index.items()}
        self._strong = {k: [r for r, st in v if st != "weak"] for k, v in self.index.items()}
        self._strong = {k: v for k, v in self._strong.items() if v}
        self.lengths = sorted({len(k) for k in self.index}, reverse=True)

    def lookup(self, token: str, weak: bool) -> list[Region]:
        return (self._all if weak else self._strong).get(token, [])

    def full_name(self, province: str | None, city: str | None) -> str:
        if city:
            return self.city_full.get(city, city)
        if province:
            return self.province_full.get(province, province)
        return ""


@lru_cache(maxsize=1)
def regions() -> _Regions:
    """Administrative divisions (provinces, prefecture-level cities, districts/counties) with short forms."""
    with open(_DATA / "regions.csv", encoding="utf-8") as fh:
        rows = [Region(r["adcode"], r["name"], r["short"], r["level"], r["province"], r["city"])
                for r in csv.DictReader(fh)]
    # Old names reps still write.
    extra = [("420600", "襄樊市", "襄樊", "city", "湖北", "襄阳"), ("530800", "思茅市", "思茅", "city", "云南", "普洱")]
    rows += [Region(*e) for e in extra]
    return _Regions(rows)


def _fits(r: Region, province: str | None, city: str | None) -> bool:
    if province and r.province != province:
        return False
    return not (city and r.level == "district" and r.city and r.city != city)


def _resolve(tokens: list[list[Region]]) -> tuple[str | None, str | None, str | None]:
    """Province, city, district from region tokens in reading order, each token's reading chosen to agree
    with what came before (北京 + 朝阳 → 朝阳区 of Beijing, not 朝阳市 of Liaoning). A district name shared by
    several cities (西湖区: 杭州, 南昌) with no city around it sets no city: we do not guess."""
    province = city = district = None
    for cands in tokens:
        fitting = [r for r in cands if _fits(r, province, city)]
        if not fitting:
            # A contradicting region: the later one describes the unit, keep it whole.
            province = city = district = None
            fitting = cands
        chosen = fitting[0]
        if chosen.level == "province" and province == chosen.province:
            # the province's name again once the province is known (国网吉林省电力有限公司吉林供电公司): the city
            # of that name
            chosen = next((r for r in fitting if r.level == "city"), chosen)
        if chosen.level == "province":
            province = province or chosen.province
        elif chosen.level == "city":
            province, city = chosen.province, chosen.city
        else:
            same = [r for r in fitting if r.level == "district" and r.name == chosen.name] or [chosen]
            district = chosen.name
            if len({r.province for r in same}) == 1:
                province = chosen.province
            if not city and len({r.city for r in same}) == 1 and chosen.city:
                city = chosen.city
    if province in MUNICIPALITIES:
        city = province
    return province, city, district


# --------------------------------------------------------------------------------------------------
# alias dictionary
# --------------------------------------------------------------------------------------------------
class SectorSpec(Params):
    label: str
    units: dict[str, str]

    @field_validator("units")
    @classmethod
    def _levels(cls, v):
        missing = {"province", "city", "subbranch"} - set(v)
        if missing:
            raise ValueError(f"units needs province, city and subbranch (missing {sorted(missing)})")
        return v


class BrandSpec(Params):
    sector: str
    hierarchy: bool = False
    aliases: list[str] = []
    fillers: list[str] = []


class OrgAliases(Params):
    """``params/org_aliases.yaml``: the published naming rule."""

    sectors: dict[str, SectorSpec]
    brands: dict[str, BrandSpec]
    ambiguous: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _consistent(self):
        owner: dict[str, str] = {}
        for brand, spec in self.brands.items():
            if spec.sector not in self.sectors:
                raise ValueError(f"brand {brand}: unknown sector {spec.sector!r}")
            for alias in [brand, *spec.aliases]:
                key = clean(alias)
                if key in owner and owner[key] != brand:
                    raise ValueError(f"alias {alias!r} points to both {owner[key]} and {brand}")
                owner[key] = brand
        for short, targets in self.ambiguous.items():
            key = clean(short)
            if key in owner:
                raise ValueError(f"ambiguous short form {short!r} is also an alias of {owner[key]}")
            for t in targets:
                if t not in self.brands:
                    raise ValueError(f"ambiguous {short!r}: {t!r} is not a brand")
        return self


class AliasDict:
    """Compiled alias dictionary (hashable by identity, so parse results can be cached per dictionary)."""

    def __init__(self, spec: OrgAliases):
        self.spec = spec
        self.alias_to_brand: dict[str, str | None] = {}   # None = ambiguous short form
        for brand, b in spec.brands.items():
            for alias in [brand, *b.aliases]:
                self.alias_to_brand[clean(alias)] = brand
        for short in spec.ambiguous:
            self.alias_to_brand[clean(short)] = None
        self.lengths = sorted({len(a) for a in self.alias_to_brand}, reverse=True)
        # alias lengths per first character: a name is scanned once, not once per alias length
        first: dict[str, set[int]] = {}
        for a in self.alias_to_brand:
            if a:
                first.setdefault(a[0], set()).add(len(a))
        self.by_first = {ch: tuple(sorted(ls, reverse=True)) for ch, ls in first.items()}

    def candidates(self, s: str) -> list[tuple[int, int, str]]:
        """Every alias occurrence (start, end, alias), longest first then leftmost."""
        found = []
        n = len(s)
        table = self.alias_to_brand
        for i, ch in enumerate(s):
            for L in self.by_first.get(ch, ()):
                if i + L <= n and s[i:i + L] in table:
                    found.append((i, i + L, s[i:i + L]))
        found.sort(key=lambda t: (t[0] - t[1], t[0]))
        return found


def aliases_path() -> Path:
    p = paths.params_dir() / "org_aliases.yaml"
    return p if p.exists() else _REPO_PARAMS / "org_aliases.yaml"


_LOADED: dict[tuple[str, float], AliasDict] = {}
_DEFAULT: dict[str | None, AliasDict] = {}


def load_aliases(path: str | Path | None = None) -> AliasDict:
    """The naming rule from ``params/org_aliases.yaml`` (or ``path``), validated and compiled.

    The default dictionary is read once per process and ``CRM_HOME``; call :func:`reload_aliases` after
    editing the file in a running session.
    """
    if path is None:
        home = os.environ.get("CRM_HOME")
        hit = _DEFAULT.get(home)
        if hit is None:
            hit = _DEFAULT[home] = load_aliases(aliases_path())
        return hit
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0)
    if key not in _LOADED:
        _LOADED[key] = AliasDict(load(OrgAliases, p))
    return _LOADED[key]


def reload_aliases() -> None:
    """Forget compiled dictionaries and cached parses (after editing ``params/org_aliases.yaml``)."""
    _LOADED.clear()
    _DEFAULT.clear()
    _parse.cache_clear()


# --------------------------------------------------------------------------------------------------
# parse
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedName:
    raw: str | None
    cleaned: str
    is_junk: bool
    brand: str                 # core identity: 中国工商银行 / 华信电子科技 / 浙江大学
    brand_known: bool          # brand comes from the naming-rule dictionary
    ambiguous: bool            # written as a short form that means several brands (平安, 民生 ...)
    sector: str | None
    hierarchy: bool            # the brand is a head-office/branch organisation
    province: str | None       # short: 北京, 浙江, 内蒙古
    city: str | None           # short: 北京, 杭州 (municipalities: city = province)
    district: str | None       # full: 海淀区
    branch_level: str | None   # head / province / city / subbranch / None
    branch_name: str | None    # 海淀支行 (sub-branches and named units only)
    legal_form: str | None     # 有限公司 / 股份有限公司 / 有限责任公司 / 集团 / 集团有限公司 / ...
    canonical: str             # the full name under the naming rule: 中国工商银行北京市分行
    match_key: str             # brand|region|branch
    parent_key: str | None     # match_key of the next level up (branch → its parent), None at the top


_LEGAL = {
    "集团股份有限公司": "集团股份有限公司", "集团有限责任公司": "集团有限责任公司", "集团有限公司": "集团有限公司",
    "股份有限责任公司": "股份有限公司", "股份有限公司": "股份有限公司", "有限责任公司": "有限责任公司",
    "有限公司": "有限公司", "股份公司": "股份有限公司", "集团公司": "集团", "集团": "集团", "公司": "公司",
    "有限合伙": "有限合伙", "合伙企业": "合伙企业", "个人独资企业": "个人独资企业", "股份合作公司": "股份合作公司",
    "有限责任": "有限责任公司", "股份": "股份有限公司", "控股集团有限公司": "集团有限公司",
    "控股集团股份有限公司": "集团股份有限公司", "控股有限公司": "有限公司", "控股股份有限公司": "股份有限公司",
    "控股集团": "集团", "控股有限责任公司": "有限责任公司",
}
_HEAD = ("集团总部", "总行", "总部", "总公司", "总社", "总院")
_PROV_W = ("省分行", "省分公司", "省公司", "省行", "一级分行", "省中心")
_CITY_W = ("市分行", "市分公司", "市公司", "市行", "中心支行", "中心支公司", "二级分行", "地区分行")
_BRANCH_W = ("分行", "分公司", "办事处", "代表处", "分部", "分社", "分院", "分校", "供电公司", "供电局")
_SUB_W = ("支行", "营业部", "营业所", "分理处", "网点", "储蓄所", "支公司", "营业厅", "营销服务部", "服务部", "校区")
_BRANCH_KIND = {**{w: "head" for w in _HEAD}, **{w: "province" for w in _PROV_W},
                **{w: "city" for w in _CITY_W}, **{w: "branch" for w in _BRANCH_W},
                **{w: "subbranch" for w in _SUB_W}}
# Named units of a known brand (华为杭州研究所, 工行软件开发中心): kept apart from the brand, never a branch level.
_UNIT_W = ("研究所", "研究院", "研发中心", "数据中心", "软件开发中心", "信用卡中心", "客服中心", "中心", "事业部",
           "实验室", "分厂", "工厂", "基地", "项目部", "指挥部", "设计院")
# Remainders that never stand alone as a brand: the region in front of them belongs to the name.
_GENERIC = frozenset("""电网 供电局 银行 商业银行 农村商业银行 农商银行 农商行 农村信用社 信用社 农村信用合作联社 信用合作联社 公司 大学 学院
医院 政府 人民政府 电力 供电 电信 移动 联通 邮政 烟草 自来水 燃气 电视台 日报 报社 海关 税务 公安 法院 检察院 图书馆 博物馆
""".split())
_INSTITUTION_ENDS = ("银行", "信用社", "联社", "大学", "学院", "学校", "中学", "小学", "幼儿园", "医院", "卫生院", "政府",
                     "委员会", "管理局", "公安局", "局", "厅", "委", "办公室", "法院", "检察院", "电视台", "电台",
                     "报社", "图书馆", "博物馆", "研究院", "研究所", "科学院", "协会", "学会", "中心", "海关", "监狱")
_BOUNDARY = ("银行", "分行", "支行", "公司", "集团", "总行", "保险", "证券", "大学", ")")


# Every tail word → its kind; on equal length a branch word beats a legal form beats a unit.
_WORDS = {**{w: "unit" for w in _UNIT_W}, **{w: "legal" for w in _LEGAL}, **{w: "branch" for w in _BRANCH_KIND}}
_WORD_LENGTHS = sorted({len(w) for w in _WORDS}, reverse=True)


@dataclass
class _Tail:
    start: int
    regions: list                 # [(pos, [Region])]
    branches: list                # [(pos, word, name or None, [Region] or None)]
    legal: str | None
    fillers: int


def _suffix_region(s: str, lo: int, hi: int, weak: bool) -> tuple[int, list[Region]] | None:
    R = regions()
    table = R._all if weak else R._strong
    for L in R.lengths:
        if L > hi - lo or L < 2:
            continue
        cands = table.get(s[hi - L:hi])
        if cands:
            return hi - L, cands
    return None


def _prefix_regions(s: str, lo: int, hi: int, weak: bool, min_rest: int) -> tuple[int, list]:
    """Peel regions from the left of s[lo:hi]; return the new start and [(pos, [Region])]."""
    R = regions()
    out, pos = [], lo
    while pos < hi:
        hit = None
        table = R._all if weak else R._strong
        for L in R.lengths:
            if L > hi - pos - min_rest or L < 2:
                continue
            cands = table.get(s[pos:pos + L])
            if cands:
                hit = (L, cands)
                break
        if not hit:
            break
        out.append((pos, hit[1]))
        pos += hit[0]
    return pos, out


def _peel_tail(s: str, lo: int, fillers: tuple[str, ...], weak: bool) -> _Tail:
    """Peel branch words, legal forms, regions and brand fillers from the right end of s, down to ``lo``."""
    hi = len(s)
    regs, branches, legal, nfill = [], [], None, 0
    while hi > lo:
        best = None  # (length, kind, token)
        for L in _WORD_LENGTHS:
            if L <= hi - lo:
                kind = _WORDS.get(s[hi - L:hi])
                if kind and (kind != "unit" or lo):
                    best = (L, kind, s[hi - L:hi])
                    break
        for f in fillers:
            if len(f) <= hi - lo and s.endswith(f, 0, hi) and (best is None or len(f) > best[0]):
                best = (len(f), "filler", f)
        reg = _suffix_region(s, lo, hi, weak=False)
        if reg and (best is None or hi - reg[0] > best[0]) and reg[0] - lo >= (0 if lo else 2):
            best = (hi - reg[0], "region", reg)
        if best is None:
            break
        L, kind, tok = best
        if kind in ("branch", "unit"):
            wpos = hi - L
            name, rg = None, None
            bkind = "unit" if kind == "unit" else _BRANCH_KIND[tok]
            if bkind in ("subbranch", "branch", "unit"):
                r = _suffix_region(s, lo, wpos, weak=True)
                if r and (r[0] - lo >= (0 if lo else 2)):
                    rg = r[1]
                    name = rg[0].short if rg[0].level == "district" else None
                    if rg[0].level != "district" and bkind == "subbranch":
                        name = None
                    if bkind == "unit":
                        name = rg[0].short
                    regs.append((r[0], rg))
                    wstart = r[0]
                elif bkind in ("subbranch", "unit"):
                    m = wpos
                    while m > lo and wpos - m < 6 and not any(s.endswith(b, 0, m) for b in _BOUNDARY):
                        m -= 1
                    if m < wpos and (m == lo or any(s.endswith(b, 0, m) for b in _BOUNDARY)) and (m - lo >= (0 if lo else 2)):
                        name = s[m:wpos]
                        wstart = m
                    else:
                        wstart = wpos
                else:
                    wstart = wpos
            else:
                wstart = wpos
            branches.append((wpos, tok, name, rg, bkind))
            hi = wstart
        elif kind == "legal":
            if tok == "公司" and hi - L - lo < (0 if lo else 2):
                break
            legal = legal or _LEGAL[tok]
            hi -= L
        elif kind == "filler":
            nfill += 1
            hi -= L
        else:
            pos, cands = tok
            regs.append((pos, cands))
            hi = pos
    regs.sort(key=lambda e: e[0])
    branches.sort(key=lambda e: e[0])
    return _Tail(hi, regs, branches, legal, nfill)


def _split_brackets(s: str) -> tuple[str, list[list[Region]]]:
    """Drop bracketed regions and former names; unwrap everything else: 工商银行(北京) → 工商银行 + [北京]."""
    found: list[list[Region]] = []

    def repl(m: re.Match) -> str:
        inner = m.group(1)
        # (中国) marks a foreign group's China entity; (原…) a former name; (个人)/(筹) say nothing about who
        if inner in ("中国", "中国区", "CHINA", "个人", "个体", "个体户", "筹", "筹建", "筹备") or \
                inner.startswith(("原", "曾用名", "旧")):
            return ""
        pos, regs = _prefix_regions(inner, 0, len(inner), weak=True, min_rest=0)
        if regs and pos == len(inner):
            found.extend(c for _, c in regs)
            return ""
        return inner

    prev = None
    while prev != s:
        prev, s = s, re.sub(r"\(([^()]*)\)", repl, s)
    return s, found


def _level_from(branches, hierarchy: bool, province, city, district) -> tuple[str | None, str | None]:
    """Branch level and sub-branch name from the branch words (deepest wins) and the region."""
    rank = {None: -1, "head": 0, "province": 1, "city": 2, "subbranch": 3}
    level, name = None, None
    for _pos, word, bname, rg, kind in branches:
        if kind == "unit":
            continue
        if kind == "branch":
            # the region's reading the whole name settled on (吉林 after 吉林省 is the city: _resolve)
            rg = rg and [next((r for r in rg if r.level == "city" and r.city == city), rg[0])]
            if rg and rg[0].level == "district":
                kind = "subbranch"
            elif rg and rg[0].level == "city" and rg[0].city not in MUNICIPALITIES:
                kind = "city"
            elif rg:
                kind = "province"
            elif district:
                kind = "subbranch"
            elif city and city not in MUNICIPALITIES:
                kind = "city"
            elif province:
                kind = "province"
            else:
                kind = None
        if kind == "city" and city in MUNICIPALITIES and not district:
            kind = "province"
        if kind == "subbranch":
            nm = (bname or "") + word
        else:
            nm = None
        if rank[kind] > rank[level]:
            level, name = kind, nm
        elif kind == "subbranch" and level == "subbranch":
            name = nm
    return level, name


def _region_key(province, city) -> str:
    return city or province or ""


@lru_cache(maxsize=1 << 20)
def _parse(name: str | None, ad: AliasDict) -> ParsedName:
    cleaned = clean(name)
    if _junk_pattern(cleaned):
        return _junk(name, cleaned)
    R = regions()
    body, bracket_regions = _split_brackets(cleaned)

    # 1. a known brand whose surroundings are all explained
    best = None
    for i, j, alias in ad.candidates(body):
        brand = ad.alias_to_brand[alias]
        spec = ad.spec.brands.get(brand) if brand else None
        fillers = tuple(spec.fillers) if spec else ()
        pos, pre = _prefix_regions(body, 0, i, weak=True, min_rest=0)
        if pos != i:
            continue
        if pre and spec is not None and not spec.hierarchy:
            # 杭州电子科技大学 is not 电子科技大学 of Chengdu: only branch networks take a region in front.
            continue
        tail = _peel_tail(body, j, fillers, weak=True)
        leftover = body[j:tail.start]
        if leftover:
            # Anything unexplained after the brand makes it another organisation (中国银行保险监督管理委员会,
            # 中国石油大学, 北京移动互联科技): the brand is only accepted when the rest is accounted for.
            continue
        best = (i, j, alias, brand, spec, pre, tail)
        break
    if best:
        i, j, alias, brand, spec, pre, tail = best
        if alias.endswith("集团"):
            # 海尔集团有限公司: the alias swallowed 集团, which is part of the legal form as written
            tail.legal = _LEGAL.get("集团" + (tail.legal or ""), tail.legal)
        tokens = [c for _, c in pre] + bracket_regions + [c for _, c in tail.regions]
        province, city, district = _resolve(tokens)
        if brand is None:  # ambiguous short form: keep it, flag it
            return _finish(name, cleaned, alias, False, True, None, False, province, city, district,
                           tail, None)
        return _finish(name, cleaned, brand, True, False, spec.sector, spec.hierarchy, province, city,
                       district, tail, ad)

    # 2. an ordinary name: [home region] core [legal form] [region + branch word]
    tail = _peel_tail(body, 0, (), weak=True)
    core_end = tail.start
    start, pre = _prefix_regions(body, 0, core_end, weak=False, min_rest=2)
    start, pre = _trade_name_regions(body, start, core_end, pre)
    core = body[start:core_end]
    home = _resolve([c for _, c in pre] + bracket_regions)
    has_branch = bool(tail.branches)
    tail_regions = [c for _, c in tail.regions]
    if not core or R.lookup(core, weak=False):
        # Nothing but region, legal form and branch words (北京分公司): identifies nobody.
        return _junk(name, cleaned)
    if core in _GENERIC or core.endswith(_INSTITUTION_ENDS):
        # 浙江大学, 杭州市第一人民医院, 北京市海淀区人民政府: the region is part of the name.
        # ... in full where the short name is a province's and a city's (吉林市税务局 is not 吉林省税务局)
        brand = "".join(c[0].name if c[0].level == "city" and c[0].short in R.homonyms else c[0].short
                        for _, c in pre) + core
        region_bound = True
    else:
        brand, region_bound = core, False
    if has_branch and tail_regions:
        province, city, district = _resolve(tail_regions)
    else:
        province, city, district = _resolve([c for _, c in pre] + bracket_regions + tail_regions)
    return _finish(name, cleaned, brand, False, False, None, False, province, city, district, tail, None,
                   home=home, region_bound=region_bound)


# Words of the industry / line of business part of a company name (国民经济行业 wording as firms write it).
# A name is 行政区划 + 字号 + 行业 + 组织形式 and the 字号 (trade name) is mandatory, so when the regions peeled
# from the front leave nothing but these words, the last "region" was the trade name (海阳酒店管理: 海阳 is a
# county-level city and a trade name).
_INDUSTRY_WORDS = frozenset("""
科技 技术 信息 电子 软件 网络 数据 智能 数码 电脑 计算机 系统 集成 通讯 通信 互联网 机械 制造 精密 汽车 零部件 配件 新材料 材料
化工 化学 电器 电气 电力 设备 仪器 仪表 自动化 光电 照明 建设 建筑 工程 装饰 装修 建材 水泥 钢铁 金属 塑料 橡胶 商贸 贸易 进出口
物流 运输 供应链 快递 医药 医疗 器械 生物 能源 燃气 新能源 环保 管理 咨询 服务 文化 传媒 广告 设计 酒店 餐饮 旅游 物业 置业 地产
房地产 开发 投资 实业 控股 发展 食品 饮料 农业 纺织 服装 服饰 印刷 包装 家具 家居 教育 培训 人力资源 网络工程
""".split())


def _industry_only(s: str) -> bool:
    """True when ``s`` is nothing but industry words (电子科技, 酒店管理, 建设工程)."""
    if not s:
        return False
    ok = [True] + [False] * len(s)
    for i in range(len(s)):
        if ok[i]:
            for j in range(i + 2, min(len(s), i + 5) + 1):
                if s[i:j] in _INDUSTRY_WORDS:
                    ok[j] = True
    return ok[len(s)]


def _trade_name_regions(body: str, start: int, core_end: int, pre: list) -> tuple[int, list]:
    """Give back to the core the prefix "regions" that are the trade name (字号).

    Stacked regions must describe one place (浙江杭州): in 福州海阳酒店管理 海阳 is not in Fujian, so it is where
    the core starts. A short region name (no 市/省/县) followed only by industry words is the trade name
    (海阳酒店管理, 泰安软件集团); written in full (泰安市软件) it stays a region."""
    if not pre:
        return start, pre
    province = city = None
    for k, (pos, cands) in enumerate(pre):
        if k and not any(_fits(r, province, city) for r in cands):
            return _trade_name_regions(body, pos, core_end, pre[:k])
        province, city, _ = _resolve([c for _, c in pre[:k + 1]])
    pos, cands = pre[-1]
    token = body[pos:start]
    if _industry_only(body[start:core_end]) and all(token != r.name for r in cands):
        return pos, pre[:-1]
    return start, pre


def _junk(raw, cleaned) -> ParsedName:
    return ParsedName(raw, cleaned, True, "", False, False, None, False, None, None, None, None, None, None,
                      "", "", None)


def _finish(raw, cleaned, brand, known, ambiguous, sector, hierarchy, province, city, district, tail,
            ad: AliasDict | None, home=None, region_bound=False) -> ParsedName:
    R = regions()
    if district and not city:
        # A district alone: infer its city when the district name is unique.
        cands = [r for r, _ in R.index.get(district, ()) if r.level == "district"]
        if len({(r.province, r.city) for r in cands}) == 1 and cands[0].city:
            province, city = cands[0].province, cands[0].city
            if province in MUNICIPALITIES:
                city = province
    level, bname = _level_from(tail.branches, hierarchy, province, city, district)
    if level == "city" and not city and province in R.homonyms:
        city = province   # 中国工商银行吉林市分行: 吉林 + 市分行 is the city of 吉林, not the province
    unit = next(((nm or "") + w for _p, w, nm, _rg, kind in reversed(tail.branches) if kind == "unit"), None)
    units = ad.spec.sectors[sector].units if (ad and sector) else {"province": "分公司", "city": "分公司",
                                                                  "subbranch": "分公司"}
    if hierarchy and level is None:
        if district:
            level = "subbranch"
            bname = next((r.short for r, _ in R.index.get(district, ())), district) + units["subbranch"]
        elif city and city not in MUNICIPALITIES:
            level = "city"
        elif province:
            level = "province"
        elif not unit:
            level = "head"
    branches = [b for b in tail.branches if b[4] != "unit"]
    # ---- match key: brand | region | branch
    if hierarchy or known:
        if level in ("province",):
            rk = province or ""
        elif level in ("city", "subbranch") or (unit and (province or city)):
            rk = _region_key(province, city)
        elif level is None and branches:
            rk = _region_key(province, city)
        else:
            rk = ""
    else:
        rk = "" if (region_bound and not branches) else _region_key(province, city)
    if level == "subbranch":
        lk = f"subbranch:{bname}"
    else:
        lk = level or ""
    if unit:
        lk = f"{lk}/unit:{unit}" if lk else f"unit:{unit}"
    match_key = f"{brand}|{rk}|{lk}"
    # ---- parent: the next level up
    if hierarchy:
        if unit and level is None:
            parent = f"{brand}||head"
        elif unit:
            parent = f"{brand}|{rk}|{'subbranch:' + bname if level == 'subbranch' else level}"
        elif level in ("head", None):
            parent = None
        elif level == "province" or not (province or city):
            parent = f"{brand}||head"
        elif level == "city":
            parent = f"{brand}|{province}|province" if province else f"{brand}||head"
        elif city and city not in MUNICIPALITIES:
            parent = f"{brand}|{city}|city"
        else:
            parent = f"{brand}|{province}|province" if province else f"{brand}||head"
    elif branches or unit:
        hk = "" if (known or region_bound or home is None) else _region_key(home[0], home[1])
        parent = f"{brand}|{hk}|"
        if parent == match_key:
            parent = None
    else:
        parent = None
    # ---- canonical name under the naming rule
    if hierarchy:
        if level in (None, "head"):
            canonical = brand
        elif level == "province":
            canonical = brand + R.full_name(province, None) + units["province"]
        elif level == "city":
            canonical = brand + R.full_name(province, city) + units["city"]
        else:
            canonical = brand + R.full_name(province, city) + (bname or "")
        if unit:
            canonical += unit
    else:
        if known or region_bound or ambiguous:
            base = brand
        else:
            base = (home_prefix(home) if home else "") + brand + (tail.legal or "")
        if branches:
            word = branches[-1][1]
            where = R.full_name(province, city) if (province or city) else ""
            canonical = base + where + (bname if level == "subbranch" and bname else word)
        else:
            canonical = base
        if unit:
            canonical += unit
    return ParsedName(raw, cleaned, False, brand, known, ambiguous, sector, hierarchy, province, city, district,
                      level, bname if level == "subbranch" else (unit if level is None else bname), tail.legal,
                      canonical, match_key, parent)


def home_prefix(home) -> str:
    province, city, district = home
    return city or province or ""


def parse(name: str | None, aliases: AliasDict | None = None) -> ParsedName:
    """Parse one organisation name under the naming rule (cached per distinct name)."""
    return _parse(name if name is None else str(name), aliases or load_aliases())


def parse_many(names, aliases: AliasDict | None = None):
    """Parse an iterable of names into a pandas DataFrame (one row per input, in order)."""
    import pandas as pd

    ad = aliases or load_aliases()
    rows = [_parse(n if n is None or isinstance(n, str) else str(n), ad) for n in names]
    return pd.DataFrame([r.__dict__ for r in rows], columns=list(ParsedName.__dataclass_fields__))


# --------------------------------------------------------------------------------------------------
# similarity (per character, not per UTF-8 byte like DuckDB's built-ins)
# --------------------------------------------------------------------------------------------------
def name_similarity(a: str | None, b: str | None) -> float:
    """Indel similarity of the cleaned names, per character, in [0, 1]; 0 when either is blank."""
    from rapidfuzz import fuzz

    ca, cb = clean(a), clean(b)
    if not ca or not cb:
        return 0.0
    return fuzz.ratio(ca, cb) / 100.0


def _bigrams(s: str) -> set[str]:
    return {s[i:i + 2] for i in range(len(s) - 1)} if len(s) > 1 else ({s} if s else set())


def char_bigram_jaccard(a: str | None, b: str | None) -> float:
    """Jaccard overlap of character bigrams of the cleaned names (order-tolerant: 工商银行北京 ~ 北京工商银行)."""
    ba, bb = _bigrams(clean(a)), _bigrams(clean(b))
    if not ba or not bb:
        return 0.0
    return len(ba & bb) / len(ba | bb)


def register_duckdb_functions(con) -> None:
    """Register per-character string functions (vectorised through Arrow) on a DuckDB connection.

    name_similarity, char_bigram_jaccard (clean their inputs); char_ratio, char_jaro_winkler,
    char_levenshtein (raw strings); name_clean, name_brand, name_match_key; normalise_phone, normalise_uscc,
    uscc_is_valid. NULL in → NULL out.
    """
    import numpy as np
    import pyarrow as pa
    from duckdb.sqltypes import BIGINT, BOOLEAN, DOUBLE, VARCHAR
    from rapidfuzz import fuzz, process
    from rapidfuzz.distance import JaroWinkler, Levenshtein

    from .uscc import uscc_is_valid

    def pairwise(fn, out_type):
        def udf(a, b):
            la, lb = a.to_pylist(), b.to_pylist()
            return pa.array([None if (x is None or y is None) else fn(x, y) for x, y in zip(la, lb, strict=True)],
                            type=out_type)
        return udf

    def vectorised(scorer, scale, out_type, prep=None):
        # One C++ call per batch (rapidfuzz cpdist), not one Python call per pair: Splink compares millions.
        def udf(a, b):
            la, lb = a.to_pylist(), b.to_pylist()
            mask = np.fromiter((x is None or y is None for x, y in zip(la, lb, strict=True)), bool, len(la))
            xs = [prep(x) if prep else (x or "") for x in la]
            ys = [prep(y) if prep else (y or "") for y in lb]
            vals = np.asarray(process.cpdist(xs, ys, scorer=scorer, workers=1))
            if prep:  # name_similarity: a blank name resembles nothing
                blank = np.fromiter((not x or not y for x, y in zip(xs, ys, strict=True)), bool, len(xs))
                vals = np.where(blank, 0, vals)
            return pa.array(vals / scale if scale != 1 else vals, type=out_type, mask=mask)
        return udf

    def unary(fn, out_type):
        def udf(a):
            return pa.array([None if x is None else fn(x) for x in a.to_pylist()], type=out_type)
        return udf

    specs = [
        ("name_similarity", vectorised(fuzz.ratio, 100.0, pa.float64(), clean), [VARCHAR, VARCHAR], DOUBLE),
        ("char_bigram_jaccard", pairwise(char_bigram_jaccard, pa.float64()), [VARCHAR, VARCHAR], DOUBLE),
        ("char_ratio", vectorised(fuzz.ratio, 100.0, pa.float64()), [VARCHAR, VARCHAR], DOUBLE),
        ("char_jaro_winkler", vectorised(JaroWinkler.normalized_similarity, 1, pa.float64()), [VARCHAR, VARCHAR],
         DOUBLE),
        ("char_levenshtein", vectorised(Levenshtein.distance, 1, pa.int64()), [VARCHAR, VARCHAR], BIGINT),
        ("name_clean", unary(clean, pa.string()), [VARCHAR], VARCHAR),
        ("name_brand", unary(lambda x: parse(x).brand, pa.string()), [VARCHAR], VARCHAR),
        ("name_match_key", unary(lambda x: parse(x).match_key, pa.string()), [VARCHAR], VARCHAR),
        ("normalise_phone", unary(normalise_phone, pa.string()), [VARCHAR], VARCHAR),
        ("normalise_uscc", unary(normalise_uscc, pa.string()), [VARCHAR], VARCHAR),
        ("uscc_is_valid", unary(uscc_is_valid, pa.bool_()), [VARCHAR], BOOLEAN),
    ]
    for fname, fn, params, ret in specs:
        try:
            con.remove_function(fname)
        except Exception:  # not registered yet on this connection
            pass
        con.create_function(fname, fn, params, ret, type="arrow")


# --------------------------------------------------------------------------------------------------
# phones and credit codes
# --------------------------------------------------------------------------------------------------
_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_PHONE_SPLIT_RE = re.compile(r"[/;,，；、]|或|\s{2,}")


def normalise_phone(s: str | None) -> str | None:
    """Digits-only phone: mobile 1[3-9]xxxxxxxxx, landline with area code 0xx(x)xxxxxxx(x), or 400/800.

    Strips +86/0086, spaces, dashes, brackets and an extension (转123, -801 after a full number). The first
    usable number of a list (``138.../010-...``) wins. A local number without area code → None (it cannot
    be compared across cities).
    """
    if s is None:
        return None
    if isinstance(s, str) and s.isascii() and _MOBILE_RE.fullmatch(s):
        return s  # already a plain mobile number (most values): what the general path returns too
    text = unicodedata.normalize("NFKC", str(s)).strip()
    if not text:
        return None
    for part in _PHONE_SPLIT_RE.split(text):
        part = re.split(r"转|EXT|ext|分机|X|x", part)[0]
        intl = bool(re.match(r"^\s*(\+|00)\s*86", part))
        digits = re.sub(r"\D", "", part)
        if intl:
            digits = re.sub(r"^(00)?86", "", digits)
        elif len(digits) == 13 and digits.startswith("861"):
            digits = digits[2:]
        if _MOBILE_RE.match(digits):
            return digits
        if intl and digits and not digits.startswith("0"):
            digits = "0" + digits
        if re.match(r"^(400|800)\d{7}$", digits):
            return digits
        # Landline: 01x/02x + 8-digit local, else 0xxx + 7- or 8-digit local; anything after is an extension.
        if digits.startswith(("01", "02")) and len(digits) >= 11:
            area, local = digits[:3], digits[3:11]
        elif digits.startswith("0") and len(digits) >= 11:
            area, local = digits[:4], digits[4:12] if len(digits) >= 12 else digits[4:11]
        else:
            continue
        if local[0] != "0":
            return area + local
    return None


_USCC_CHARS = set("0123456789ABCDEFGHJKLMNPQRTUWXY")


def normalise_uscc(s: str | None) -> str | None:
    """Upper-case, full-width folded, separators removed; an 18-character code from the GB 32100 alphabet,
    else None. The check character is not verified here (see :func:`crmlib.uscc.uscc_is_valid`)."""
    if s is None:
        return None
    code = re.sub(r"[\s\-_.·]", "", unicodedata.normalize("NFKC", str(s)).upper())
    if len(code) != 18 or not set(code) <= _USCC_CHARS:
        return None
    return code
