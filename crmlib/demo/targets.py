"""Marketing's target lists (目标客户名单): the top of the lifecycle funnel.

Marketing buys or assembles lists of companies it wants to reach (industry directories, trade-show
visitor lists); a few of them later become potentials: a rep qualifies the company and opens a CRM
account for it. The demo lists ``LISTED_SHARE`` of the customers that become potentials during the world
(not the ones already buying when it starts, not the contacted names that never qualify) between
``LEAD_DAYS`` before that day, plus fictitious companies that never become potentials, as many per region
as the region's nominal target→potential rate implies (``world.region_rates``). The realized rate,
measured as the funnel measures it (:func:`realized`), goes to the manifest.

Companies appear as a directory lists them: the registered name and its credit code, or (trade-show
leads, ``NO_CODE_SHARE``) the name only. Fictitious names are drawn from the same pools as the customers'
names, so some collide with a real customer's name — as in life, where the credit code tells them apart.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalog as cat
from .world import NEVER, region_rates, rng_for

S_TARGETS = 12
LISTED_SHARE = 0.8            # new potentials that came from a list (the rest came in by themselves)
LEAD_DAYS = (14, 240)         # listed this many days before becoming a potential
NO_CODE_SHARE = 0.05          # trade-show leads: no credit code
FIRST_LIST_DAY = -240         # lists start before the world (a target listed then may convert in it)
WINDOW_DAYS = 365             # the manifest's realized rate: converted within this many days of listing
_USCC_CHARS = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", np.uint8)
_USCC_W = np.array([pow(3, i, 31) for i in range(17)])
_ORG_W = np.array([3, 7, 9, 10, 5, 8, 4, 2])


def _codes(rng: np.random.Generator, admin: np.ndarray) -> np.ndarray:
    """Valid enterprise credit codes (91 + admin code + organisation code + check), vectorised."""
    n = len(admin)
    org = rng.integers(0, 10, (n, 8))
    c9 = 11 - (org * _ORG_W).sum(1) % 11
    org_chk = np.where(c9 == 10, ord("X"), np.where(c9 == 11, ord("0"), ord("0") + c9 % 10))
    adm = np.frombuffer("".join(admin).encode("ascii"), np.uint8).reshape(n, 6)
    body = np.empty((n, 18), np.uint8)
    body[:, 0], body[:, 1] = ord("9"), ord("1")
    body[:, 2:8] = adm
    body[:, 8:16] = ord("0") + org
    body[:, 16] = org_chk
    val = np.where(body[:, :17] <= ord("9"), body[:, :17] - ord("0"), 0).astype(np.int64)
    val[:, 16] = np.where(body[:, 16] == ord("X"), np.searchsorted(_USCC_CHARS, ord("X")), val[:, 16])
    body[:, 17] = _USCC_CHARS[(31 - (val * _USCC_W).sum(1) % 31) % 31]
    return body.view("S18").ravel().astype(str)


def _cities(region: str) -> list[tuple[str, str, str, str]]:
    """(province, province short name, city, admin code) of a region (any region for 集团)."""
    out = []
    for prov, short, reg, _muni, cities in cat.PROVINCES:
        if reg == region or region == cat.GROUP_REGION:
            out += [(prov, short, city, code) for city, code, _area in cities]
    return out


def build_targets(seed: int, cust: pd.DataFrame, world_end: int) -> pd.DataFrame:
    """Every list entry of the world: target_id, company_name, uscc, region, province, city, industry,
    list_name, listed (day), cust (customer index; -1 = never becomes a potential)."""
    rng = rng_for(seed, S_TARGETS)
    pot = cust["potential_at"].to_numpy()
    new = ~cust["existing"].to_numpy() & (pot < NEVER) & (pot >= 0)
    idx = np.flatnonzero(new & (rng.random(len(cust)) < LISTED_SHARE))
    c = cust.iloc[idx]
    real = pd.DataFrame({"company_name": c["name"].to_numpy(), "uscc": c["uscc"].to_numpy(),
                         "region": c["region"].to_numpy(), "province": c["province"].to_numpy(),
                         "city": c["city"].to_numpy(), "industry": c["industry"].to_numpy(),
                         "listed": pot[idx] - rng.integers(*LEAD_DAYS, len(idx)), "cust": idx})
    fakes = []
    for region, n_real in real["region"].value_counts().sort_index().items():
        rate = region_rates(region)["target_to_potential"]
        n = int(round(n_real * (1 / rate - 1)))
        places = _cities(region)
        pick = rng.integers(0, len(places), n)
        prov = np.array([p[0] for p in places])[pick]
        short_city = np.array([p[2].removesuffix("市") for p in places])[pick]
        z = np.array(cat.ZIHAO_CHARS)
        trade = np.char.add(z[rng.integers(0, len(z), n)], z[rng.integers(0, len(z), n)])
        iw = rng.integers(0, len(cat.IND_WORDS), n)
        legal = np.array(cat.LEGAL_FORMS)[rng.integers(0, len(cat.LEGAL_FORMS), n)]
        name = np.char.add(np.char.add(np.char.add(short_city, trade),
                                       np.array([w for w, _i in cat.IND_WORDS])[iw]), legal)
        fakes.append(pd.DataFrame({
            "company_name": name, "uscc": _codes(rng, np.array([p[3] for p in places])[pick]),
            "region": region, "province": prov, "city": np.array([p[2] for p in places])[pick],
            "industry": np.array([i for _w, i in cat.IND_WORDS])[iw],
            "listed": rng.integers(FIRST_LIST_DAY, world_end - LEAD_DAYS[0], n), "cust": -1}))
    t = pd.concat([real, *fakes], ignore_index=True)
    t.loc[rng.random(len(t)) < NO_CODE_SHARE, "uscc"] = ""
    t["list_name"] = np.where(t["uscc"] == "", "展会名单", "行业名录")
    t = t.sort_values(["listed", "company_name", "cust"], kind="stable").reset_index(drop=True)
    t["target_id"] = [f"T{i:08d}" for i in range(1, len(t) + 1)]
    for c in ("region", "province", "city", "industry", "list_name"):  # few values: ~0.5 GB less at scale 100
        t[c] = t[c].astype("category")
    return t


def realized(targets: pd.DataFrame, cust: pd.DataFrame, day: int, window_days: int) -> dict:
    """Per region: targets listed at least ``window_days`` before ``day`` (a complete window) and the share
    of them that became a potential within ``window_days`` after being listed — the funnel's definition
    (``crmlib.target_lists.read_target_conversion``)."""
    t = targets[targets["listed"] <= day - window_days]
    pot = np.full(len(t), NEVER)
    real = t["cust"].to_numpy() >= 0
    pot[real] = cust["potential_at"].to_numpy()[t["cust"].to_numpy()[real]]
    conv = (pot > t["listed"].to_numpy()) & (pot <= t["listed"].to_numpy() + window_days) & (pot <= day)
    out = {}
    for region, m in t.groupby("region", observed=True).indices.items():
        out[region] = {"listed_targets": int(len(m)),
                       "target_to_potential": round(float(conv[m].mean()), 5) if len(m) else None}
    return out


def write_targets(out, targets: pd.DataFrame, cid: np.ndarray, lo: int, hi: int, suffix: str,
                  truth_rows: list) -> int:
    """``marketing/targets[_<suffix>].csv`` with the entries listed in (lo, hi]; their true customer ids
    (blank = never a customer) are appended to ``truth_rows``."""
    from .write import dates, in_win, write_csv

    t = targets[in_win(targets["listed"], lo, hi)]
    sfx = f"_{suffix}" if suffix else ""
    write_csv(out / "marketing" / f"targets{sfx}.csv", pd.DataFrame({
        "target_id": t["target_id"], "company_name": t["company_name"], "uscc": t["uscc"],
        "region": t["region"], "province": t["province"], "city": t["city"], "industry": t["industry"],
        "list_name": t["list_name"], "listed_at": dates(t["listed"])}), "utf-8-sig")
    c = t["cust"].to_numpy()
    truth_rows.append(pd.DataFrame({"target_id": t["target_id"].to_numpy(),
                                    "true_customer_id": np.where(c >= 0, cid[np.maximum(c, 0)], "")}))
    return len(t)
