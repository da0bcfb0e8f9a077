"""Events of the demo world: opportunities, CRM accounts/contacts (with injected errors), orders,
receipts, calls, repair tickets. All simulated over the whole world window from the seed."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalog as cat
from . import names as nm
from .world import (
    END,
    NEVER,
    S_CALLS,
    S_CRM,
    S_ERP,
    S_OPPS,
    S_ORDERS,
    S_TICKETS,
    owner_at,
    pick,
    region_rates,
    rng_for,
)

KEY = "大客户及行业客户"


def cust_dict(row) -> dict:
    """Name parts of a customer row (a pandas Series or an itertuples row) for names.variant."""
    if isinstance(row, (pd.Series, dict)):
        return {k: row[k] for k in ("name", "alias_from", "aliases", "place", "home", "level")}
    return {"name": row.name, "alias_from": row.alias_from, "aliases": row.aliases, "place": row.place,
            "home": row.home, "level": row.level}


# ------------------------------------------------------------------------------------------ opportunities
def build_opps(seed: int, cust: pd.DataFrame, reps: pd.DataFrame):
    """Opportunities with their stage history; adds ``active_from`` (first day the customer buys)."""
    rng = rng_for(seed, S_OPPS)
    n = len(cust)
    scope = cust["scope"].to_numpy()
    v = cust["latent_value"].to_numpy()
    g = cust["value_group"].to_numpy()
    region = cust["region"].to_numpy()
    rates = {r: region_rates(r) for r in cat.KEY_QUOTA}
    p_po = np.array([rates[r]["potential_to_opportunity"] for r in region])
    p_oo = np.array([rates[r]["opportunity_to_order"] for r in region])
    p_win = np.clip(p_oo * (0.7 + 0.15 * (g - 1)), 0.05, 0.95)
    existing = cust["existing"].to_numpy()
    pot = cust["potential_at"].to_numpy()
    churn = cust["churn_at"].to_numpy()
    prospect = cust["kind"].to_numpy() == "prospect"

    opp_cust, opp_t0, conv = [], [], []
    # conversion opportunities of new potentials
    new = ~existing & ~prospect
    converts = new & (rng.random(n) < p_po)
    t_conv = pot + 5 + rng.exponential(45, n).astype(int)
    for i in np.flatnonzero(converts & (t_conv < END)):
        opp_cust.append(i), opp_t0.append(int(t_conv[i])), conv.append(True)
    # repeat business of existing customers
    rate = np.where(scope == KEY, 0.55 * v ** 0.4, np.where(scope == "渠道", 0.6, 0.15 * v ** 0.4))
    start, stop = np.full(n, -150), np.minimum(churn, END)
    cnt = rng.poisson(np.where(existing, rate * (stop - start) / 365.0, 0))
    for i in np.flatnonzero(cnt):
        for t in np.sort(rng.integers(start[i], stop[i], cnt[i])):
            opp_cust.append(i), opp_t0.append(int(t)), conv.append(False)
    opp_cust = np.array(opp_cust, int)
    opp_t0 = np.array(opp_t0, int)
    conv = np.array(conv, bool)
    order = np.lexsort((opp_cust, opp_t0))
    opp_cust, opp_t0, conv = opp_cust[order], opp_t0[order], conv[order]
    m = len(opp_cust)

    stages_rows = []
    won_day = np.full(m, NEVER)
    closed = np.full(m, NEVER)
    status_final = np.empty(m, object)
    amount = np.where(scope[opp_cust] == KEY, np.exp(rng.normal(np.log(12) + 0.35 * np.log(v[opp_cust]), 0.6, m)),
                      np.exp(rng.normal(np.log(3), 0.5, m)))
    amount = np.round(amount, 1)
    wins = rng.random(m) < p_win[opp_cust]
    for j in range(m):
        r = rng.random(12)
        path = [s for k, s in enumerate(cat.STAGES) if not (k in (2, 3, 5) and r[k] < 0.12)]
        if not wins[j]:
            path = path[: 2 + int(r[6] * (len(path) - 1))]
        t = opp_t0[j]
        ents = []
        for s in path:
            ents.append((s, t))
            t += 1 + int(rng.exponential(12))
        final = cat.WON if wins[j] else cat.LOST
        ents.append((final, t))
        if not wins[j] and r[7] < 0.06:  # reopened: back to negotiation, decided again
            t += 15 + int(r[8] * 75)
            ents.append(("商务谈判", t))
            t += 1 + int(rng.exponential(15))
            final = cat.WON if r[9] < 0.4 else cat.LOST
            ents.append((final, t))
        closed[j] = t
        status_final[j] = "won" if final == cat.WON else "lost"
        if final == cat.WON:
            won_day[j] = t
        for s, d in ents:
            stages_rows.append((j, s, d))
    opps = pd.DataFrame({"cust": opp_cust, "created": opp_t0, "conv": conv, "amount": amount,
                         "closed": closed, "status_final": status_final, "won_day": won_day})
    opps["opp_id"] = [f"OP{i + 1:07d}" for i in range(m)]
    opps["product_line"] = rng.choice(cat.PRODUCT_LINES, m)
    opps["expected_close"] = opps["created"] + rng.integers(30, 180, m)
    opps["lost_reason"] = np.where(opps["status_final"] == "lost", rng.choice(cat.LOST_REASONS, m), "")
    opps["competitor"] = np.where((opps["status_final"] == "lost") & (rng.random(m) < 0.7),
                                  rng.choice(cat.COMPETITORS, m), "")
    opps["owner_rep_id"] = owner_at(reps, cust["pos"].to_numpy()[opp_cust], opp_t0)
    short = [nm.variant(rng, cust_dict(row), 0.4) for row in cust.iloc[opp_cust].itertuples()]
    yr = (opps["created"].to_numpy() // 365 + 2024).astype(str)
    opps["opp_name"] = [f"{s}{y}年{pl}采购项目" for s, y, pl in zip(short, yr, opps["product_line"], strict=False)]
    st = pd.DataFrame(stages_rows, columns=["j", "stage", "day"])
    st["opp_id"] = opps["opp_id"].to_numpy()[st["j"].to_numpy()]
    # first day each customer buys: existing customers already do; converted ones from their first win
    first_win = pd.Series(won_day).groupby(opp_cust).min() if m else pd.Series(dtype=int)
    active_from = np.where(existing, -10 ** 5, NEVER)
    conv_win = pd.Series(np.where(conv, won_day, NEVER)).groupby(opp_cust).min() if m else pd.Series(dtype=int)
    idx = conv_win.index.to_numpy()
    active_from[idx] = np.where(existing[idx], active_from[idx], conv_win.to_numpy())
    del first_win
    return opps, st, active_from


# ------------------------------------------------------------------------------------------ CRM accounts
ACCOUNT_KINDS = ["name_typo", "wrong_phone", "uscc_bad_check", "uscc_missing", "wrong_city", "wrong_industry",
                 "missing_contact"]


def build_crm(seed: int, cust: pd.DataFrame, reps: pd.DataFrame):
    """CRM accounts (primary, duplicate, junk) and contacts, with the error truth.

    Error shares are stratified over customers in order of account creation, so any as-of cut (a prefix)
    keeps them: per 100 CRM customers 4 get a duplicate account, 10 a wrong field in their account, 6 a
    wrong contact only; junk accounts are 1.8% of account records. That gives ~20% of customers with an
    error and ~15% of account records wrong.
    """
    rng = rng_for(seed, S_CRM)
    in_crm = np.flatnonzero(cust["potential_at"].to_numpy() < NEVER)
    created = cust["potential_at"].to_numpy()[in_crm]
    in_crm = in_crm[np.lexsort((in_crm, created))]
    n = len(in_crm)
    u = np.empty(n)
    for b in range(0, n, 100):
        k = min(100, n - b)
        u[b:b + k] = ((np.arange(k) + rng.random(k)) / k)[rng.permutation(k)]
    cat_ = np.where(u < 0.04, "dup", np.where(u < 0.14, "field", np.where(u < 0.20, "contact", "clean")))

    acc, errs, contacts = [], [], []
    cols = cust.iloc[in_crm]
    for (ci, row), c in zip(zip(in_crm, cols.itertuples(), strict=False), cat_, strict=False):
        city = row.city
        phone = row.phone
        addr = f"{row.province if row.province != city else ''}{city}{pick(rng, cat.ROADS)}{int(rng.integers(1, 999))}号"
        base = {"cust": ci, "account_name": row.name if rng.random() < 0.8 else nm.variant(rng, cust_dict(row), 0.6),
                "uscc": row.uscc, "industry": row.industry, "scope": row.scope, "region": row.region,
                "province": row.province, "city": city, "address": addr, "phone": phone, "size": row.size,
                "registered_capital": row.registered_capital, "listed": row.listed, "created": int(row.potential_at),
                "parent_cust": row.parent, "is_junk": False, "kinds": []}
        n_contacts = 1 + int(rng.poisson(1.0 if row.scope == KEY else 0.3))
        n_err0 = len(errs)  # only errors appended from here on can be this new account's (no O(n^2) scan)
        if c == "field":
            ks = list(rng.choice(ACCOUNT_KINDS, 2 if rng.random() < 0.2 else 1, replace=False))
            for k in ks:
                _apply_error(rng, base, k, row, errs)
            if "missing_contact" in ks:
                n_contacts = 0
        base["kinds"] = [e[1] for e in errs[n_err0:] if e[0] is base]
        acc.append(base)
        if c == "contact":
            n_contacts = max(n_contacts, 1)
        for m in range(min(n_contacts, 3)):
            bad = c == "contact" and m == 0
            pname, ptitle, mob = row.people[m]
            contacts.append({"acc": base, "contact_name": pname, "title": ptitle,
                             "mobile": nm.bad_phone(rng, mob) if bad else mob,
                             "phone": phone if rng.random() < 0.5 else "", "true_mobile": mob,
                             "email": "", "created": base["created"] + int(rng.integers(0, 30)),
                             "kinds": ["wrong_phone"] if bad else []})
        if c == "dup":
            d = dict(base)
            d.update(account_name=nm.variant(rng, cust_dict(row), 1.0), created=base["created"] + int(rng.integers(5, 120)),
                     kinds=[], parent_cust="", address=addr if rng.random() < 0.5 else "")
            d["phone"] = nm.format_phone(rng, phone, rng.random())
            n_err0 = len(errs)
            errs.append((d, "duplicate_record", "account_name", row.name, d["account_name"]))
            if rng.random() < 0.7:
                d["uscc"] = ""
                errs.append((d, "uscc_missing", "uscc", row.uscc, ""))
            d["kinds"] = [e[1] for e in errs[n_err0:] if e[0] is d]
            acc.append(d)
            if rng.random() < 0.6:
                pname, ptitle, mob = row.people[int(rng.integers(3))]
                contacts.append({"acc": d, "contact_name": pname, "title": ptitle,
                                 "mobile": mob, "phone": "", "true_mobile": mob, "email": "",
                                 "created": d["created"], "kinds": []})
    # junk accounts: 1.8% of records, spread over time like real entries
    n_junk = int(round(len(acc) * 0.018 / 0.982))
    for _ in range(n_junk):
        name = str(pick(rng, cat.JUNK_NAMES))
        d = {"cust": -1, "account_name": name, "uscc": "", "industry": "", "scope": "", "region": "",
             "province": "", "city": "", "address": "", "phone": "", "size": "", "registered_capital": np.nan,
             "listed": "", "created": int(rng.integers(-1500, END)), "parent_cust": "", "is_junk": True,
             "kinds": ["junk_name"]}
        errs.append((d, "junk_name", "account_name", "", name))
        acc.append(d)
    accounts = pd.DataFrame(acc)
    accounts["_obj"] = acc
    accounts = accounts.sort_values(["created", "cust"], kind="stable").reset_index(drop=True)
    accounts["account_id"] = [f"A{i + 100001:07d}" for i in range(len(accounts))]
    acc_id = {id(o): a for o, a in zip(accounts["_obj"], accounts["account_id"], strict=False)}
    # owner: the position's rep at creation; junk accounts belong to a random rep
    pos = np.where(accounts["cust"] >= 0, cust["pos"].to_numpy()[np.maximum(accounts["cust"], 0)],
                   rng.integers(0, cust["pos"].max() + 1, len(accounts)))
    accounts["pos"] = pos
    # parent account: the parent customer's first account; a third of branches were never linked
    first_acc = accounts[accounts["cust"] >= 0].drop_duplicates("cust").set_index("cust")["account_id"]
    cid_to_idx = pd.Series(cust.index.to_numpy(), index=cust["cid"])
    par = []
    for pc in accounts["parent_cust"]:
        if pc and rng.random() < 0.67:
            par.append(first_acc.get(int(cid_to_idx[pc]), ""))
        else:
            par.append("")
    accounts["parent_account_id"] = par
    err_df = pd.DataFrame([{"source": "crm", "source_key": acc_id[id(e[0])], "field": e[2], "kind": e[1],
                            "true_value": e[3], "written_value": e[4]} for e in errs])
    con = pd.DataFrame(contacts)
    con["account_id"] = [acc_id[id(o)] for o in con["acc"]]
    con["cust"] = [o["cust"] for o in con["acc"]]
    con = con.drop(columns=["acc"]).sort_values(["created", "account_id"], kind="stable").reset_index(drop=True)
    con["contact_id"] = [f"CT{i + 1:07d}" for i in range(len(con))]
    doms = cust["domain"].to_numpy()
    letters = "abcdefghjklmnprstwxyz"  # integers(0, 21, 5): the draw rng.choice(list(letters), 5) makes
    con["email"] = [(f"{''.join(letters[i] for i in rng.integers(0, 21, 5))}{int(rng.integers(10, 99))}@"
                     f"{doms[c] if c >= 0 and doms[c] else pick(rng, ['163.com', 'qq.com', '126.com'])}")
                    if rng.random() < 0.6 else "" for c in con["cust"]]
    accounts = accounts.drop(columns=["_obj"])
    return accounts, con, err_df


def _apply_error(rng, a: dict, kind: str, row, errs: list):
    if kind == "name_typo":
        t = nm.typo(rng, a["account_name"])
        if t == a["account_name"]:
            t = a["account_name"] + a["account_name"][-1]  # doubled last character
        errs.append((a, kind, "account_name", row.name, t))
        a["account_name"] = t
    elif kind == "wrong_phone":
        b = nm.bad_phone(rng, a["phone"])
        errs.append((a, kind, "phone", a["phone"], b))
        a["phone"] = b
    elif kind == "uscc_bad_check":
        b = nm.corrupt_uscc(rng, row.uscc)
        errs.append((a, kind, "uscc", row.uscc, b))
        a["uscc"] = b
    elif kind == "uscc_missing":
        errs.append((a, kind, "uscc", row.uscc, ""))
        a["uscc"] = ""
    elif kind == "wrong_city":
        from .world import CITIES
        others = [c for c in CITIES.values() if c.province != row.province]
        c = others[int(rng.integers(len(others)))]
        errs.append((a, kind, "city", row.city, c.city))
        a["city"] = c.city
    elif kind == "wrong_industry":
        others = [i for i in cat.INDUSTRIES if i != row.industry]
        b = others[int(rng.integers(len(others)))]
        errs.append((a, kind, "industry", row.industry, b))
        a["industry"] = b
    elif kind == "missing_contact":
        errs.append((a, kind, "phone", a["phone"], ""))
        a["phone"] = ""


# ------------------------------------------------------------------------------------------ orders & receipts
def orders_block(seed: int, block: int, cust: pd.DataFrame, idx: np.ndarray, active_from: np.ndarray,
                 won: pd.DataFrame, reps: pd.DataFrame, erp: dict):
    """Order lines and receipts of customers ``idx`` (one block; memory stays bounded)."""
    rng = rng_for(seed, S_ORDERS, block)
    sub = cust.iloc[idx]
    v = sub["latent_value"].to_numpy()
    g = sub["value_group"].to_numpy()
    scope = sub["scope"].to_numpy()
    start = np.maximum(active_from[idx], 0)
    stop = np.minimum(sub["churn_at"].to_numpy(), END)
    rate = np.where(scope == KEY, 3.8 * v ** 0.55, np.where(scope == "渠道", 14 * v ** 0.5, 2.0 * v ** 0.5))
    cnt = rng.poisson(np.where(start < stop, rate * np.maximum(stop - start, 0) / 365.0, 0))
    oc = np.repeat(np.arange(len(idx)), cnt)
    od = (start[oc] + rng.random(len(oc)) * (stop - start)[oc]).astype(int)
    # big orders from won opportunities
    w = won[won["cust"].isin(idx)]
    loc = pd.Series(np.arange(len(idx)), index=idx)
    wc = loc[w["cust"].to_numpy()].to_numpy() if len(w) else np.zeros(0, int)
    wd = (w["won_day"].to_numpy() + rng.integers(3, 20, len(w))) if len(w) else np.zeros(0, int)
    big = np.concatenate([np.zeros(len(oc), bool), np.ones(len(wc), bool)])
    target = np.concatenate([np.zeros(len(oc)), w["amount"].to_numpy() * 10000 if len(w) else np.zeros(0)])
    oc = np.concatenate([oc, wc]).astype(int)
    od = np.concatenate([od, wd]).astype(int)
    keep = od <= END
    oc, od, big, target = oc[keep], od[keep], big[keep], target[keep]
    o = np.lexsort((oc, od))
    oc, od, big, target = oc[o], od[o], big[o], target[o]
    no = len(oc)
    gi = idx[oc]
    order_id = np.array([f"SO{x:09d}" for x in (block * 10 ** 6 + np.arange(no))]) if no else np.zeros(0, str)
    # a customer with a duplicate ERP id gets about half of its later orders booked on the duplicate
    o_erp = erp["id"][gi]
    use_dup = (erp["dup_day"][gi] <= od) & (rng.random(no) < 0.5)
    o_erp = np.where(use_dup, erp["dup_id"][gi], o_erp)
    # lines
    lam = np.where(scope[oc] == KEY, 1.6, np.where(scope[oc] == "渠道", 2.0, 0.8))
    nl = 1 + rng.poisson(lam)
    li = np.repeat(np.arange(no), nl)
    line_no = np.arange(len(li)) - np.repeat(np.cumsum(nl) - nl, nl) + 1
    prods = cat.PRODUCTS
    pw = np.array([1.0 if p[4] else 0.6 for p in prods])
    p = rng.choice(len(prods), len(li), p=pw / pw.sum())
    price = np.array([x[2] for x in prods], float)[p]
    margin = np.array([x[3] for x in prods])[p] * rng.uniform(0.7, 1.2, len(li))
    qmean = np.where(scope[oc][li] == "渠道", 6.0, np.where(scope[oc][li] == KEY, 2.5 * v[oc][li] ** 0.35, 1.2))
    qty = 1 + rng.poisson(qmean)
    amt = np.round(qty * price * rng.uniform(0.82, 1.0, len(li)), 2)
    # lines of a won-opportunity order are scaled to the opportunity amount
    tot = np.bincount(li, weights=amt, minlength=no)
    fac = np.where(big, target / np.maximum(tot, 1), 1.0)
    qty = np.maximum(1, np.round(qty * fac[li])).astype(int)
    amt = np.round(qty * price * rng.uniform(0.82, 1.0, len(li)), 2)
    cost = np.round(amt * (1 - margin), 2)
    p_ret = np.array([0, 0.06, 0.04, 0.025, 0.012])[g[oc][li]]
    ret = rng.random(len(li)) < p_ret
    ret_amt = np.where(ret, np.round(amt * rng.choice([0.1, 0.25, 0.5, 1.0], len(li)), 2), 0.0)
    ret_day = np.where(ret, od[li] + rng.integers(5, 60, len(li)), NEVER)
    neg = rng.random(len(li)) < 0.0008
    lines = pd.DataFrame({"order_id": order_id[li], "line_no": line_no, "day": od[li], "cust": gi[li],
                          "erp_customer_id": o_erp[li], "product": np.array([x[0] for x in prods])[p],
                          "qty": qty, "amount": amt, "written_amount": np.where(neg, -amt, amt), "cost": cost,
                          "returned_amount": ret_amt, "ret_day": ret_day, "neg": neg})
    lines["rep_id"] = owner_at(reps, cust["pos"].to_numpy()[lines["cust"].to_numpy()], lines["day"].to_numpy())
    # receipts: one invoice per order; valuable customers pay on time, the others late or never
    tot = np.round(np.bincount(li, weights=amt, minlength=no), 2)
    inv = od + rng.integers(0, 8, no)
    terms = np.where(scope[oc] == KEY, 60, np.where(scope[oc] == "渠道", 45, 30))
    due = inv + terms
    mu = np.array([0, 28, 12, 2, -4])[g[oc]]
    delay = np.round(rng.normal(mu, 12)).astype(int)
    paid = np.maximum(due + delay, inv + 1)
    bad = rng.random(no) < np.array([0, 0.06, 0.02, 0.005, 0.0])[g[oc]]
    paid = np.where(bad, NEVER, paid)
    rec = pd.DataFrame({"receipt_id": np.char.replace(order_id.astype(str), "SO", "RC") if no else order_id,
                        "order_id": order_id, "cust": gi, "erp_customer_id": o_erp, "inv": inv, "due": due,
                        "paid": paid, "amount": tot})
    return lines, rec


# ------------------------------------------------------------------------------------------ calls & tickets
def volume_factor(scale: float) -> float:
    """Calls and tickets per customer shrink above scale 1 (1 below): at --scale 100 the customer records of
    all sources stay near 1M (calls + tickets would be ~1.3M of ~1.8M at full rate). Scale <= 1 unchanged."""
    return 1.0 if scale <= 1 else float(scale) ** -0.2


def build_calls(seed: int, cust: pd.DataFrame, active_from: np.ndarray, scale: float = 1.0):
    rng = rng_for(seed, S_CALLS)
    f = volume_factor(scale)
    v = cust["latent_value"].to_numpy()
    g = cust["value_group"].to_numpy()
    churn = cust["churn_at"].to_numpy()
    prospect = cust["kind"].to_numpy() == "prospect"
    pot = cust["potential_at"].to_numpy()
    fc = cust["first_contact"].to_numpy()
    segs = []  # (cust, start, stop, rate, active)
    act_start = np.maximum(active_from, 0)
    a = act_start < END
    segs.append((np.flatnonzero(a), act_start[a], np.minimum(churn, END)[a], 0.9 * v[a] ** 0.3 + 0.4, True))
    ch = churn < END
    segs.append((np.flatnonzero(ch), churn[ch], np.full(ch.sum(), END), np.full(ch.sum(), 0.15), True))
    pr = prospect
    segs.append((np.flatnonzero(pr), np.maximum(fc[pr], 0), np.minimum(np.maximum(fc[pr], 0) + 365, END),
                 np.full(pr.sum(), 1.2), False))
    po = ~prospect & (active_from >= NEVER) & (pot < END)
    segs.append((np.flatnonzero(po), np.maximum(pot[po], 0), np.full(po.sum(), END), np.full(po.sum(), 0.3), False))
    cs, ds, acts = [], [], []
    for ci, s0, s1, r, act in segs:
        k = rng.poisson(r * f * np.maximum(s1 - s0, 0) / 365.0)
        c = np.repeat(ci, k)
        d = (np.repeat(s0, k) + rng.random(k.sum()) * np.repeat(np.maximum(s1 - s0, 0), k)).astype(int)
        cs.append(c), ds.append(d), acts.append(np.full(len(c), act))
    c = np.concatenate(cs)
    d = np.concatenate(ds)
    act = np.concatenate(acts)
    sec = rng.integers(8 * 3600, 20 * 3600, len(c))
    o = np.lexsort((c, sec, d))
    c, d, act, sec = c[o], d[o], act[o], sec[o]
    w = np.zeros((len(c), 5))
    w[:, 0] = np.where(act, 0.35, 0.9)
    w[:, 1] = np.where(act, 0.35, 0.0)
    w[:, 2] = np.where(act, np.array([0, .16, .10, .06, .03])[g[c]], 0.02)
    w[:, 3] = np.where(act, np.array([0, .02, .04, .07, .10])[g[c]], 0.0)
    w[:, 4] = np.where(act, 0.05, 0.08)
    w /= w.sum(1, keepdims=True)
    t = (w.cumsum(1) < rng.random((len(c), 1))).sum(1)
    return pd.DataFrame({"cust": c, "day": d, "sec": sec, "call_type": np.array(cat.CALL_TYPES)[np.minimum(t, 4)]})


def build_tickets(seed: int, cust: pd.DataFrame, active_from: np.ndarray, scale: float = 1.0):
    rng = rng_for(seed, S_TICKETS)
    f = volume_factor(scale)
    v = cust["latent_value"].to_numpy()
    g = cust["value_group"].to_numpy()
    s0 = np.maximum(active_from, 0)
    s1 = np.minimum(cust["churn_at"].to_numpy() + 180, END)
    lam = np.where(s0 < s1, 0.7 * v ** 0.45 * (s1 - s0) / 365.0, 0)
    k = rng.poisson(lam * f)
    c = np.repeat(np.arange(len(cust)), k)
    d = (np.repeat(s0, k) + rng.random(k.sum()) * np.repeat(np.maximum(s1 - s0, 0), k)).astype(int)
    o = np.lexsort((c, d))
    c, d = c[o], d[o]
    dur = (rng.exponential(3, len(c)) + np.array([0, 3, 1.5, 0.5, 0])[g[c]]).astype(int)
    sat = np.clip(np.round(rng.normal(2.4 + 0.55 * g[c] - 0.08 * dur, 0.8)), 1, 5).astype(int)
    surveyed = rng.random(len(c)) < 0.7
    cancelled = rng.random(len(c)) < 0.04
    hw = [p for p in cat.PRODUCTS if p[4]]
    prod = rng.integers(0, len(hw), len(c))
    al = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"  # integers(0, 34, 8) = rng.choice(list(al), 8)'s draw
    serial = ["".join(al[i] for i in rng.integers(0, 34, 8)) for _ in range(len(c))]
    return pd.DataFrame({"cust": c, "opened": d, "closed": d + dur, "satisfaction": np.where(surveyed & ~cancelled,
                                                                                         sat, 0),
                         "cancelled": cancelled, "product": np.array([p[0] for p in hw])[prod],
                         "serial_no": [f"{_model(hw[p][0])}{s}" for p, s in zip(prod, serial, strict=False)]})


def _model(product: str) -> str:
    """Model code of a product name (塔式服务器T350 -> T350), the prefix of its serial numbers."""
    import re
    m = re.search(r"[A-Z][A-Z0-9]+", product)
    return m.group(0) if m else "SN"


def erp_ids(seed: int, cust: pd.DataFrame, active_from: np.ndarray) -> dict:
    """ERP customer ids (shuffled, so they say nothing about the truth) and the 3% duplicate ids."""
    rng = rng_for(seed, S_ERP)
    n = len(cust)
    perm = rng.permutation(2 * n)
    ids = np.array([f"E{100001 + x:07d}" for x in perm[:n]])
    created = np.where(active_from < 0, -1, active_from)
    has_dup = (active_from < NEVER) & (rng.random(n) < 0.03)
    dup_day = np.where(has_dup, np.maximum(created, 0) + rng.integers(30, 400, n), NEVER)
    dup_id = np.where(has_dup, np.array([f"E{100001 + x:07d}" for x in perm[n:]]), "")
    return {"id": ids, "created": created, "dup_id": dup_id, "dup_day": dup_day}
