"""The simulated world: true customers, reps, and every event, generated from the seed alone.

Nothing here depends on the as-of date: events are simulated over a fixed window
[WORLD_START, WORLD_END] and the writers cut them at the as-of, so a later as-of sees the same past.
Days are integers counted from WORLD_START.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import catalog as cat
from . import names as nm

WORLD_START = dt.date(2024, 1, 1)
WORLD_END = dt.date(2027, 12, 31)
END = (WORLD_END - WORLD_START).days
NEVER = 10 ** 6

# stream ids for numpy SeedSequence([seed, stream, ...]); fixed so adding a stream never shifts others
S_CUST, S_REPS, S_LIFE, S_OPPS, S_CRM, S_ORDERS, S_CALLS, S_TICKETS, S_VISITS, S_ERP = range(1, 11)

# per-region true conversion multipliers around the seed's 0.02 / 0.1 / 0.5
REGION_MULT = {"华东": 1.15, "华南": 1.10, "华北": 1.20, "西南": 0.85, "西北": 0.80, "东北": 0.75, "华中": 0.95,
               cat.GROUP_REGION: 1.0}
BASE_RATES = {"target_to_potential": 0.02, "potential_to_opportunity": 0.10, "opportunity_to_order": 0.50}


def region_rates(region: str) -> dict:
    m = REGION_MULT[region]
    return {"target_to_potential": round(0.02 * m, 4), "potential_to_opportunity": round(0.10 * m, 4),
            "opportunity_to_order": round(min(0.5 * m ** 0.5, 0.9), 4)}


def pick(rng: np.random.Generator, seq):
    """``rng.choice(seq)`` with the same draw (integers(0, len)) but without the per-call array conversion."""
    return seq[int(rng.integers(0, len(seq)))]


def cdf(p) -> np.ndarray:
    """Cumulative weights as ``Generator.choice(..., p=p)`` builds them, for ``pick_p``."""
    c = np.asarray(p, float).cumsum()
    return c / c[-1]


def pick_p(rng: np.random.Generator, c: np.ndarray) -> int:
    """``rng.choice(len(p), p=p)`` with the same draw (one uniform, searchsorted on the cdf), minus overhead."""
    return int(c.searchsorted(rng.random(), side="right"))


_LF3 = cdf([0.7, 0.15, 0.15])
_SIZE3 = cdf([0.15, 0.55, 0.3])


def rng_for(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *[int(k) for k in key]])))


def day_to_date(d: int) -> dt.date:
    return WORLD_START + dt.timedelta(days=int(d))


def date_to_day(d: dt.date) -> int:
    return (d - WORLD_START).days


# ------------------------------------------------------------------------------------------ geography
@dataclass(frozen=True)
class City:
    city: str
    short: str
    province: str
    prov_short: str
    region: str
    admin: str
    area: str
    muni: bool


CITIES: dict[str, City] = {}
CITIES_BY_REGION: dict[str, list[City]] = {r: [] for r in cat.REGIONS}
PROV_CITIES: dict[str, list[City]] = {}
for _p, _ps, _r, _muni, _cs in cat.PROVINCES:
    for _c, _code, _area in _cs:
        _city = City(_c, _c[:-1] if _c.endswith("市") else _c, _p, _ps, _r, _code, _area, _muni)
        CITIES[_c] = _city
        CITIES_BY_REGION[_r].append(_city)
        PROV_CITIES.setdefault(_p, []).append(_city)


# ------------------------------------------------------------------------------------------ customers
def _branch_names(style: str, legal: str, brand: str, abbrs: list[str], prov: str, ps: str, muni: bool,
                  sub: str | None, district: bool):
    """(name, alias_from, aliases) of a provincial (sub None) or city branch (sub = city/district short)."""
    pv = prov if muni else ps + ("省" if prov.endswith("省") else "")
    brand_aliases = [brand, brand] + abbrs
    if style in ("bank", "bank_local"):
        if sub is None:
            return f"{legal}{prov}分行", legal, brand_aliases
        return (f"{legal}{prov}{sub}支行" if district else f"{legal}{sub}分行"), legal, brand_aliases
    if style == "insurer":
        if sub is None:
            return f"{legal}{ps}分公司", legal, brand_aliases
        return (f"{legal}{prov}{sub}支公司" if district else f"{legal}{sub}中心支公司"), legal, brand_aliases
    if style == "securities":
        if sub is None:
            return f"{legal}{ps}分公司", legal, brand_aliases
        return f"{legal}{sub}营业部", legal, brand_aliases
    if style == "sinopec":
        base = "中国石化销售股份有限公司"
        return (f"{base}{ps}石油分公司" if sub is None else f"{base}{ps}{sub}石油分公司"), base, ["中国石化", "中石化", "石化"]
    if style == "cnpc":
        base = "中国石油天然气股份有限公司"
        return (f"{base}{ps}销售分公司" if sub is None else f"{base}{ps}{sub}销售分公司"), base, ["中国石油", "中石油"]
    if style == "cmcc":
        base = "中国移动通信集团"
        return (f"{base}{ps}有限公司" if sub is None else f"{base}{ps}有限公司{sub}分公司"), base, ["中国移动", "移动", "中移动"]
    if style == "cu":
        base = "中国联合网络通信有限公司"
        return (f"{base}{pv}分公司" if sub is None else f"{base}{sub}市分公司"), base, ["中国联通", "联通"]
    if style == "ct":
        base = "中国电信股份有限公司"
        return (f"{base}{ps}分公司" if sub is None else f"{base}{sub}分公司"), base, ["中国电信", "电信"]
    if style == "sgcc":
        p = f"国网{pv}电力有限公司" if not muni else f"国网{prov}电力公司"
        return (p if sub is None else f"{p}{sub}供电公司"), "国网", ["国家电网", "国网"]
    if style == "csg":
        p = f"{ps}电网有限责任公司"
        return (p if sub is None else f"{p}{sub}供电局"), "", []
    if style == "airline":
        return (f"{legal}{ps}分公司" if sub is None else None), legal, brand_aliases
    if style == "post":
        base = "中国邮政集团有限公司"
        return (f"{base}{pv}分公司" if sub is None else f"{base}{sub}市分公司"), base, ["中国邮政", "邮政"]
    if style == "tobacco":
        return (f"{pv}烟草专卖局" if sub is None else f"{sub}市烟草专卖局"), "", []
    return None, "", []


class _Names:
    """Generated company names, unique the way China's name registration makes them (企业名称登记管理规定):
    within a city, names that differ only in their legal form (有限公司 / 股份有限公司 / 集团有限公司) are
    the same name, so one city never holds 正佳软件有限公司 and 正佳软件股份有限公司 as two companies; a
    name registered without a region (a national group) owns its trade name: 通力集团 and 通力控股集团 are
    not two groups. When the two-character trade names of a city run out (only at large scales) a
    three-character one is drawn. A dict keeps insertion order: no set iteration anywhere."""

    def __init__(self, rng):
        self.rng, self.used = rng, {}

    def company(self, city_short: str, words: list[str], legal: str | None = None) -> str:
        for attempt in range(200):
            width = 2 if attempt < 50 else 3
            z = "".join(cat.ZIHAO_CHARS[i] for i in self.rng.integers(0, len(cat.ZIHAO_CHARS), width))
            w = words[int(self.rng.integers(len(words)))]
            lf = legal or cat.LEGAL_FORMS[pick_p(self.rng, _LF3)]
            key = f"{city_short}{z}{w}" if city_short else z
            if key not in self.used:
                self.used[key] = 1
                return f"{city_short}{z}{w}{lf}"
        n = f"{city_short}{len(self.used)}{words[0]}有限公司"
        self.used[n] = 1
        return n


def _scaled(n: float, scale: float) -> int:
    return max(1, int(round(n * scale)))


def build_customers(seed: int, scale: float) -> pd.DataFrame:
    rng = rng_for(seed, S_CUST)
    gen = _Names(rng)
    rows: list[dict] = []

    def add(**kw):
        kw.setdefault("parent", "")
        kw.setdefault("alias_from", "")
        kw.setdefault("aliases", [])
        kw.setdefault("listed", "N")
        kw.setdefault("domain", "")
        city = CITIES[kw["city"]]
        kw.setdefault("home", city.short)
        kw.setdefault("place", "")
        kw["province"], kw["admin"], kw["area"] = city.province, kw.get("admin") or city.admin, city.area
        kw["cid"] = f"T{len(rows) + 1:06d}"
        kw.setdefault("uscc_kind", "ent")
        rows.append(kw)
        return kw["cid"]

    # group level: brand heads first (their branches come later), then head-only groups, then generated
    n_group = _scaled(cat.KEY_QUOTA[cat.GROUP_REGION], scale)
    heads: dict[str, str] = {}
    for key, brand, legal, abbrs, style, city, listed, dom in cat.HIER_BRANDS:
        if len(heads) >= n_group:
            break
        aliases = [brand] + abbrs + ([brand + "总行", abbrs[0] + "总行"] if style.startswith("bank") else
                                     [brand + "集团"])
        heads[key] = add(name=legal, alias_from=legal, aliases=aliases, level="head", scope="大客户及行业客户",
                         region=cat.GROUP_REGION, city=city, listed="Y" if listed else "N", domain=dom,
                         size="大型", kind="head")
    n_made = len(heads)
    for legal, abbrs, city, listed in cat.HEAD_ONLY:
        if n_made >= n_group:
            break
        add(name=legal, alias_from=legal, aliases=abbrs, level="head", scope="大客户及行业客户",
            region=cat.GROUP_REGION, city=city, listed="Y" if listed else "N", size="大型", kind="head",
            uscc_kind="gov" if legal.endswith(("总局", "总署")) else "ent")
        n_made += 1
    big = ["北京市", "上海市", "深圳市", "广州市", "杭州市", "南京市", "成都市", "武汉市"]
    while n_made < n_group:
        city = big[int(rng.integers(len(big)))]
        name = gen.company("", [str(rng.choice(["控股集团", "集团", "实业集团", "投资集团"]))], "有限公司")
        add(name=name, level="none", scope="大客户及行业客户", region=cat.GROUP_REGION, city=city, size="大型",
            kind="group_gen", home="")
        n_made += 1

    # regional key accounts: branches of the groups above, institutions, generated enterprises
    brand_info = {b[0]: b for b in cat.HIER_BRANDS}
    sgcc_skip = set(cat.BRAND_PROVINCES["csg"])
    for region in cat.REGIONS:
        quota = _scaled(cat.KEY_QUOTA[region], scale)
        n_branch_max = int(round(quota * 0.45))
        blocks = []
        provinces = [p for p in cat.PROVINCES if p[2] == region]
        for key in heads:
            _, brand, legal, abbrs, style, _, listed, dom = brand_info[key]
            allowed = cat.BRAND_PROVINCES.get(key)
            for prov, ps, _, muni, _pc in provinces:
                pcities = PROV_CITIES[prov]
                if allowed and prov not in allowed:
                    continue
                if key == "sgcc" and prov in sgcc_skip:
                    continue
                if key == "rail":
                    if prov not in cat.RAIL_BUREAUS:
                        continue
                    b = cat.RAIL_BUREAUS[prov]
                    if any(x[0][0] == f"中国铁路{b}局集团有限公司" for blk in blocks for x in blk):
                        continue
                    blocks.append([(f"中国铁路{b}局集团有限公司", f"中国铁路{b}局集团有限公司",
                                    [f"{b}铁路局", f"{b}局集团", f"中国铁路{b}局"], "province", pcities[0], ps,
                                    listed, dom)])
                    continue
                pname, afrom, al = _branch_names(style, legal, brand, abbrs, prov, ps, muni, None, False)
                if pname is None:
                    continue
                blk = [(pname, afrom, al, "province", pcities[0], ps, listed, dom)]
                subs = ([(d, code) for d, code in cat.DISTRICTS[prov]] if muni else
                        [(c.short, None) for c in PROV_CITIES[prov]])
                n_sub = int(rng.integers(0, min(4, len(subs)) + 1))
                for j in rng.permutation(len(subs))[:n_sub]:
                    sub, code = subs[int(j)]
                    cname, afrom2, al2 = _branch_names(style, legal, brand, abbrs, prov, ps, muni, sub, muni)
                    if cname is None:
                        continue
                    city = pcities[0] if muni else CITIES[sub + "市"]
                    blk.append((cname, afrom2, al2, "city", city, sub, listed, dom, code))
                blocks.append(blk)
        order = rng.permutation(len(blocks))
        n_branch = 0
        for bi in order:
            if n_branch >= n_branch_max:
                break
            parent_cid = None
            for item in blocks[int(bi)]:
                if n_branch >= n_branch_max:
                    break
                name, afrom, al, level, city, place, listed, dom = item[:8]
                code = item[8] if len(item) > 8 else None
                parent = parent_cid if level == "city" else heads[[k for k in heads if
                                                                    brand_info[k][1] in name or
                                                                    brand_info[k][2] in name or
                                                                    (k == "sinopec" and "石化" in name) or
                                                                    (k == "cnpc" and "石油天然气" in name) or
                                                                    (k == "cmcc" and "移动" in name) or
                                                                    (k == "cu" and "联合网络" in name) or
                                                                    (k == "ct" and "电信" in name) or
                                                                    (k == "sgcc" and name.startswith("国网")) or
                                                                    (k == "csg" and "电网有限责任" in name) or
                                                                    (k == "rail" and "中国铁路" in name) or
                                                                    (k == "chinapost" and "邮政" in name) or
                                                                    (k == "tobacco" and "烟草" in name)][0]]
                cid = add(name=name, alias_from=afrom, aliases=al, level=level, parent=parent,
                          scope="大客户及行业客户", region=region, city=city.city, place=place,
                          listed="Y" if listed else "N", domain=dom, size="大型" if level == "province" else
                          pick(rng, ["大型", "中型"]), kind="branch", admin=code)
                if level == "province":
                    parent_cid = cid
                n_branch += 1
        # institutions
        n_inst = 0
        unis = [u for u in cat.UNIVERSITIES if CITIES[u[1]].region == region]
        for uname, ucity in unis:
            if n_inst >= int(quota * 0.08) + 1 or n_branch + n_inst >= quota:
                break
            add(name=uname, level="none", scope="大客户及行业客户", region=region, city=ucity, size="大型",
                kind="inst", uscc_kind="inst", home="" if uname.startswith(CITIES[ucity].short) else CITIES[ucity].short)
            n_inst += 1
        cities = CITIES_BY_REGION[region]
        inst_names: dict[str, int] = {}
        target_inst = n_inst + int(quota * 0.17)
        tries = 0
        while n_inst < target_inst and n_branch + n_inst < quota and tries < 10 * quota:
            tries += 1
            c = cities[int(rng.integers(len(cities)))]
            pat = str(rng.choice(cat.HOSPITAL_PATTERNS + cat.GOV_PATTERNS))
            name = pat.format(c=c.short, p=c.prov_short).replace("北京市省", "北京市").replace(
                "上海省", "上海市").replace("天津省", "天津市").replace("重庆省", "重庆市")
            if "{p}" in pat and not c.province.endswith("省"):
                name = pat.format(c=c.short, p=c.province[:-3] if c.province.endswith("自治区") else c.short)
                name = name.replace("省", "自治区" if c.province.endswith("自治区") else "市", 1)
            if name in inst_names:
                continue
            inst_names[name] = 1
            gov = pat in cat.GOV_PATTERNS
            add(name=name, level="none", scope="大客户及行业客户", region=region, city=c.city, size="中型",
                kind="gov" if gov else "inst", uscc_kind="gov" if gov else "inst", home="")
            n_inst += 1
        for _ in range(quota - n_branch - n_inst):
            c = cities[int(rng.integers(len(cities)))]
            words = [w for w, _ in cat.IND_WORDS]
            name = gen.company(c.short, words, pick(rng, ["有限公司", "股份有限公司", "集团有限公司"]))
            add(name=name, level="none", scope="大客户及行业客户", region=region, city=c.city, place=c.short,
                size=pick(rng, ["大型", "中型"]), kind="ent",
                listed="Y" if rng.random() < 0.06 else "N")

    # SMB, channel partners, not-yet-identified prospects
    weights = np.array([cat.KEY_QUOTA[r] for r in cat.REGIONS], float)
    weights /= weights.sum()
    wcdf = cdf(weights)
    ind_words = [w for w, _ in cat.IND_WORDS]
    for scope, n, kind in (("中小企业", 1200, "smb"), ("渠道", 150, "channel"), ("中小企业", 400, "prospect")):
        for _ in range(_scaled(n, scale)):
            region = cat.REGIONS[pick_p(rng, wcdf)]
            cities = CITIES_BY_REGION[region]
            c = cities[int(rng.integers(len(cities)))]
            words = cat.CHANNEL_WORDS if kind == "channel" else ind_words
            name = gen.company(c.short, words)
            add(name=name, level="none", scope=scope, region=region, city=c.city, place=c.short,
                size=("中型", "小型", "微型")[pick_p(rng, _SIZE3)], kind=kind,
                listed="Y" if rng.random() < 0.005 else "N")

    df = pd.DataFrame(rows)
    n = len(df)
    df["industry"] = [nm.infer_industry(x) for x in df["name"]]
    df["uscc"] = [nm.make_uscc(rng, k, a) for k, a in zip(df["uscc_kind"], df["admin"], strict=False)]
    # registered capital (万元): none for branches and government bodies, who have none
    cap_mu = df["size"].map({"大型": 11.0, "中型": 8.5, "小型": 6.0, "微型": 4.0}).to_numpy()
    cap = np.round(np.exp(rng.normal(cap_mu, 0.8)) / 10) * 10
    no_cap = df["kind"].isin(["branch", "gov"]).to_numpy()
    df["registered_capital"] = np.where(no_cap, np.nan, np.maximum(cap, 10))
    # latent value: skewed (lognormal); heads and channel partners richer, prospects poorer
    mu = df["kind"].map({"head": 1.3, "branch": 0.9, "inst": 0.6, "gov": 0.5, "ent": 0.7, "group_gen": 1.0,
                         "smb": -0.4, "channel": 0.8, "prospect": -0.6}).to_numpy()
    lv = rng.normal(mu, 1.0)
    df["latent_value"] = np.round(np.exp(lv), 4)
    q = np.quantile(lv, [0.4, 0.7, 0.9])
    df["value_group"] = 1 + (lv > q[0]).astype(int) + (lv > q[1]).astype(int) + (lv > q[2]).astype(int)
    df["idx"] = np.arange(n)
    return df


# ------------------------------------------------------------------------------------------ reps
def build_reps(seed: int, scale: float, cust: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reps (one row per person) and positions (territories that survive turnover).

    Returns (reps, cust) where cust gains ``pos`` (the owning position).
    """
    rng = rng_for(seed, S_REPS)
    n_pos = _scaled(180, scale)
    regions = list(cat.KEY_QUOTA)
    w = np.array([cat.KEY_QUOTA[r] for r in regions], float)
    alloc = np.maximum(1, np.floor(w / w.sum() * n_pos)).astype(int)
    for i in np.argsort(-(w / w.sum() * n_pos - np.floor(w / w.sum() * n_pos)), kind="stable"):
        if alloc.sum() >= n_pos:
            break
        alloc[i] += 1
    reps = []
    pos_region = []
    for r, k in zip(regions, alloc, strict=False):
        for _ in range(k):
            p = len(pos_region)
            pos_region.append(r)
            start = int(rng.integers(-3000, -30))
            while start <= END:
                left = int(rng.integers(max(start, 0) + 60, END + 400)) if rng.random() < 0.2 else NEVER
                if left > END:
                    left = NEVER
                reps.append({"pos": p, "region": r, "hired": start, "left": left})
                if left == NEVER:
                    break
                start = left + int(rng.integers(7, 40))
    reps = pd.DataFrame(reps)
    reps["rep_id"] = [f"R{i + 1:04d}" for i in range(len(reps))]
    reps["rep_name"] = [nm.person_name(rng) for _ in range(len(reps))]
    u = (np.arange(len(reps)) + 0.5) / len(reps)
    u = u[rng.permutation(len(reps))]
    reps["habit"] = np.where(u < 0.64, "diary", np.where(u < 0.91, "laptop", "none"))
    # territories: key accounts dealt round-robin within their region, others at random
    pos_by_region = {r: [i for i, x in enumerate(pos_region) if x == r] for r in regions}
    pos = np.zeros(len(cust), int)
    for r in regions:
        idx = np.flatnonzero((cust["region"] == r).to_numpy())
        ps = pos_by_region[r] or pos_by_region[cat.GROUP_REGION]
        key = idx[(cust["scope"].to_numpy()[idx] == "大客户及行业客户")]
        key = key[rng.permutation(len(key))]
        pos[key] = np.array(ps)[np.arange(len(key)) % len(ps)]
        other = np.setdiff1d(idx, key)
        pos[other] = np.array(ps)[rng.integers(0, len(ps), len(other))]
    cust = cust.assign(pos=pos)
    return reps, cust


def owner_at(reps: pd.DataFrame, pos: np.ndarray, day: np.ndarray) -> np.ndarray:
    """rep_id owning position ``pos`` on ``day``: the latest rep hired on or before it (else the first)."""
    r = reps.sort_values(["pos", "hired"], kind="stable")
    key = r["pos"].to_numpy().astype(np.int64) * 10 ** 7 + (r["hired"].to_numpy() + 5 * 10 ** 6)
    q = np.asarray(pos, np.int64) * 10 ** 7 + (np.asarray(day, np.int64) + 5 * 10 ** 6)
    i = np.searchsorted(key, q, side="right") - 1
    first = np.searchsorted(r["pos"].to_numpy(), np.asarray(pos), side="left")
    i = np.where((i < 0) | (r["pos"].to_numpy()[np.maximum(i, 0)] != pos), first, i)
    return r["rep_id"].to_numpy()[i]


# ------------------------------------------------------------------------------------------ lifecycle
def build_lifecycle(seed: int, cust: pd.DataFrame) -> pd.DataFrame:
    """When each customer became a potential, whether it already buys, when it churns."""
    rng = rng_for(seed, S_LIFE)
    n = len(cust)
    kind = cust["kind"].to_numpy()
    p_exist = pd.Series(kind).map({"head": 0.92, "branch": 0.85, "inst": 0.8, "gov": 0.8, "ent": 0.72,
                                   "group_gen": 0.8, "smb": 0.4, "channel": 1.0, "prospect": 0.0}).to_numpy()
    existing = rng.random(n) < p_exist
    prospect = kind == "prospect"
    potential_at = np.where(existing, rng.integers(-3650, -30, n), rng.integers(0, END, n))
    potential_at = np.where(prospect, NEVER, potential_at)
    first_contact = np.where(prospect, rng.integers(-200, END, n), potential_at)
    g = cust["value_group"].to_numpy()
    p_churn = np.array([0, 0.40, 0.22, 0.10, 0.04])[g]
    churn_at = np.where(existing & (rng.random(n) < p_churn), rng.integers(0, END, n), NEVER)
    # one switchboard number and three contact people per customer, shared by every source
    area = cust["area"].to_numpy()
    phone = [nm.make_landline(rng, a) for a in area]
    people = [[(nm.person_name(rng), str(cat.TITLES[int(rng.integers(len(cat.TITLES)))]), nm.make_mobile(rng))
               for _ in range(3)] for _ in range(n)]
    return cust.assign(existing=existing, potential_at=potential_at, first_contact=first_contact,
                       churn_at=churn_at, phone=phone, people=people)
