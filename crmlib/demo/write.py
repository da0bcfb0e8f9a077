"""Writers: cut the simulated world at a window (lo, hi] and write the raw drop files + truth rows."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog as cat
from . import names as nm
from .events import cust_dict
from .world import CITIES, NEVER, S_CALLS, WORLD_START, day_to_date, owner_at, rng_for

EPOCH = np.datetime64(WORLD_START.isoformat(), "D")
NEG = -10 ** 7  # "from the beginning"


def dates(days, fmt: str = "%Y-%m-%d") -> np.ndarray:
    """Format integer days; NEVER -> ''."""
    days = np.asarray(days, np.int64)
    ok = days < NEVER
    d = (EPOCH + np.where(ok, days, 0).astype("timedelta64[D]")).astype("datetime64[D]")
    s = pd.to_datetime(d).strftime(fmt).to_numpy(object)
    return np.where(ok, s, "")


def stamps(days, secs, fmt: str = "%Y-%m-%d %H:%M:%S") -> np.ndarray:
    t = (EPOCH.astype("datetime64[s]") + (np.asarray(days, np.int64) * 86400 + np.asarray(secs, np.int64))
         .astype("timedelta64[s]"))
    return pd.to_datetime(t).strftime(fmt).to_numpy(object)


def date1(day) -> str:
    return "" if day >= NEVER else day_to_date(int(day)).isoformat()


def iso_week(day: int) -> str:
    y, w, _ = day_to_date(day).isocalendar()
    return f"{y}-W{w:02d}"


def week_of(days: np.ndarray) -> np.ndarray:
    d = pd.to_datetime(EPOCH + np.asarray(days, np.int64).astype("timedelta64[D]"))
    iso = d.isocalendar()
    return (iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)).to_numpy()


def in_win(days, lo: int, hi: int) -> np.ndarray:
    days = np.asarray(days)
    return (days > lo) & (days <= hi)


CSV_CHUNK = 200_000  # rows per to_csv call: the object copy and the text of a chunk bound the memory


def write_csv(path: Path, df: pd.DataFrame, encoding: str, crlf: bool = False, mode: str = "w",
              header: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb" if mode == "w" else "ab") as f:
        # rows are formatted one by one, so chunks concatenate to the same bytes as one call
        for start in range(0, max(len(df), 1), CSV_CHUNK):
            part = df.iloc[start:start + CSV_CHUNK]
            part = part.astype(object).where(pd.notna(part), "")
            text = part.to_csv(index=False, header=header and start == 0,
                               lineterminator="\r\n" if crlf else "\n")
            data = text.encode(encoding.replace("-sig", ""))
            if encoding == "utf-8-sig" and mode == "w" and start == 0:
                data = b"\xef\xbb\xbf" + data
            f.write(data)


def num(x, nd=2) -> np.ndarray:
    return np.array([f"{v:.{nd}f}" if v == v else "" for v in np.asarray(x, float)], object)


def cents(x) -> np.ndarray:
    """``num(x, 2)`` for values already rounded with np.round(., 2), vectorised (millions of order lines).

    Such a value is the double nearest k/100, so rint(v * 100) gives back k and f"{v:.2f}" prints k/100:
    the text is built from the integer k. The sign follows the sign bit, as f-strings print -0.00."""
    v = np.asarray(x, float)
    if v.size == 0:  # an empty week (scale 10 has some): np.char.zfill cannot size an empty array
        return np.empty(v.shape, dtype=object)
    k = np.rint(np.abs(v) * 100).astype(np.int64)
    whole = (k // 100).astype(str).astype(object)
    frac = np.char.zfill((k % 100).astype(str), 2).astype(object)
    return np.where(np.signbit(v), "-", "").astype(object) + whole + "." + frac


# ------------------------------------------------------------------------------------------ truth helpers
class Truth:
    """Truth rows collected in plain lists (cheap per week), turned into frames once at the end."""

    def __init__(self, cust: pd.DataFrame):
        self.cid = cust["cid"].to_numpy()
        self.rec: list[tuple] = []
        self.errs: list[tuple] = []

    def add(self, source: str, keys, cust_idx, kinds: list[list[str]], junk=None):
        keys = list(keys)
        junk = [False] * len(keys) if junk is None else list(junk)
        for k, c, ks, j in zip(keys, cust_idx, kinds, junk, strict=False):
            c = int(c)
            self.rec.append((source, k, self.cid[c] if c >= 0 else "", int(bool(j)), 1 if ks else 0, ";".join(ks)))

    def err(self, rows: list[tuple]):
        self.errs.extend(rows)

    @property
    def records(self) -> pd.DataFrame:
        return pd.DataFrame(self.rec, columns=["source", "source_key", "true_customer_id", "is_junk", "has_error",
                                               "error_kinds"])

    @property
    def errors(self) -> pd.DataFrame:
        return pd.DataFrame(self.errs, columns=["source", "source_key", "field", "kind", "true_value",
                                                "written_value"])


def write_rows(path: Path, header: list[str], rows: list[tuple], encoding: str, crlf: bool = False):
    """Small files: the csv module is much cheaper than a DataFrame per week."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    wr.writerow(header)
    wr.writerows(rows)
    data = buf.getvalue().encode(encoding.replace("-sig", ""))
    path.write_bytes((b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b"") + data)


# ------------------------------------------------------------------------------------------ CRM
def write_crm(out: Path, w, lo: int, hi: int, suffix: str, truth: Truth):
    reps, _cust, acc, con, opps, st = w.reps, w.cust, w.accounts, w.contacts, w.opps, w.stages
    sfx = f"_{suffix}" if suffix else ""
    # accounts: a new version when created and whenever the territory changes hands
    rep_hired = reps.set_index("rep_id")["hired"]
    owner = owner_at(reps, acc["pos"].to_numpy(), np.full(len(acc), hi))
    hired = rep_hired[owner].to_numpy()
    created = acc["created"].to_numpy()
    updated = np.maximum(created, np.where(hired <= hi, hired, created))
    sel = (created <= hi) & ((created > lo) | (updated > lo))
    a = acc[sel]
    df = pd.DataFrame({
        "account_id": a["account_id"], "account_name": a["account_name"], "uscc": a["uscc"],
        "industry": a["industry"], "scope": a["scope"], "region": a["region"], "province": a["province"],
        "city": a["city"], "address": a["address"], "phone": a["phone"], "owner_rep_id": owner[sel],
        "size": a["size"], "registered_capital": num(a["registered_capital"], 0),
        "listed": a["listed"], "parent_account_id": a["parent_account_id"],
        "created_at": dates(created[sel]), "updated_at": dates(updated[sel])})
    write_csv(out / "crm" / f"accounts{sfx}.csv", df, "utf-8-sig")
    new = a[in_win(a["created"], lo, hi)]
    truth.add("crm", new["account_id"], new["cust"], list(new["kinds"]), new["is_junk"])
    # contacts
    c = con[in_win(con["created"], lo, hi)]
    write_csv(out / "crm" / f"contacts{sfx}.csv", pd.DataFrame({
        "contact_id": c["contact_id"], "account_id": c["account_id"], "contact_name": c["contact_name"],
        "title": c["title"], "mobile": c["mobile"], "phone": c["phone"], "email": c["email"],
        "updated_at": dates(c["created"])}), "utf-8-sig")
    truth.add("crm_contacts", c["contact_id"], c["cust"], list(c["kinds"]))
    truth.err([("crm_contacts", r.contact_id, "mobile", "wrong_phone", r.true_mobile, r.mobile)
               for r in c.itertuples() if r.kinds])
    # opportunities: state as of hi for those touched in the window
    s = st[st["day"] <= hi]
    touched = s.loc[in_win(s["day"], lo, hi), "opp_id"].unique()
    last = s.drop_duplicates("opp_id", keep="last").set_index("opp_id")
    o = opps[opps["opp_id"].isin(touched)]
    lst = last.loc[o["opp_id"]]
    stage = lst["stage"].to_numpy()
    status = np.where(stage == cat.WON, "won", np.where(stage == cat.LOST, "lost", "open"))
    closed = np.where(status != "open", lst["day"].to_numpy(), NEVER)
    write_csv(out / "crm" / f"opportunities{sfx}.csv", pd.DataFrame({
        "opp_id": o["opp_id"], "account_id": o["account_id"], "opp_name": o["opp_name"],
        "owner_rep_id": o["owner_rep_id"], "product_line": o["product_line"], "amount": num(o["amount"], 1),
        "created_at": dates(o["created"]), "expected_close": dates(o["expected_close"]), "current_stage": stage,
        "status": status, "lost_reason": np.where(status == "lost", o["lost_reason"], ""),
        "competitor": np.where(status == "lost", o["competitor"], ""), "closed_at": dates(closed),
        "updated_at": dates(lst["day"].to_numpy())}), "utf-8-sig")
    sw = s[in_win(s["day"], lo, hi)]
    secs = 8 * 3600 + (sw["j"].to_numpy() * 7919 + sw.index.to_numpy() * 104729) % 36000
    write_csv(out / "crm" / f"opportunity_stages{sfx}.csv", pd.DataFrame({
        "opp_id": sw["opp_id"], "stage": sw["stage"], "entered_at": stamps(sw["day"], secs)}), "utf-8-sig")
    # reps
    left = reps["left"].to_numpy()
    rsel = (reps["hired"] <= hi) & (in_win(reps["hired"], lo, hi) | in_win(left, lo, hi) | (lo == NEG))
    r = reps[rsel]
    write_csv(out / "crm" / f"reps{sfx}.csv", pd.DataFrame({
        "rep_id": r["rep_id"], "rep_name": r["rep_name"], "region": r["region"],
        "hired_at": dates(r["hired"]), "left_at": dates(np.where(r["left"] <= hi, r["left"], NEVER))}),
        "utf-8-sig")
    return {"accounts": len(df), "contacts": len(c), "opportunities": len(o), "opportunity_stages": len(sw)}


# ------------------------------------------------------------------------------------------ ERP
def erp_customers(w) -> pd.DataFrame:
    """One row per ERP customer id (primary and duplicate) with creation day and written fields."""
    rng = rng_for(w.seed, 51)
    _cust, erp = w.cust, w.erp
    has = w.active_from < NEVER
    rows = []
    for i in np.flatnonzero(has):
        row = w.crec[i]
        cd = cust_dict(row)
        name = row["name"] if rng.random() < 0.9 else nm.variant(rng, cd, 0.3)
        r = rng.random()
        uscc, kinds, errs = row["uscc"], [], []
        if r < 0.04:
            uscc = nm.corrupt_uscc(rng, row["uscc"])
            kinds.append("uscc_bad_check")
            errs.append(("uscc", "uscc_bad_check", row["uscc"], uscc))
        elif r < 0.12:
            uscc = ""
        city = CITIES[row["city"]]
        addr = f"{city.city}{cat.ROADS[int(rng.integers(len(cat.ROADS)))]}{int(rng.integers(1, 999))}号"
        rows.append((erp["id"][i], i, int(erp["created"][i]), name, uscc, row["province"], row["city"], addr,
                     row["phone"], kinds, errs))
        if erp["dup_id"][i]:
            dn = nm.variant(rng, cd, 1.0)
            rows.append((erp["dup_id"][i], i, int(erp["dup_day"][i]), dn, "", row["province"], row["city"], "",
                         nm.format_phone(rng, row["phone"], rng.random()), ["duplicate_record"],
                         [("customer_name", "duplicate_record", row["name"], dn)]))
    df = pd.DataFrame(rows, columns=["erp_customer_id", "cust", "created", "customer_name", "uscc", "province",
                                     "city", "address", "phone", "kinds", "errs"])
    return df.sort_values(["created", "erp_customer_id"], kind="stable").reset_index(drop=True)


def write_erp_customers(out: Path, w, lo, hi, suffix, truth: Truth):
    e = w.erp_customers
    e = e[in_win(e["created"], lo, hi)]
    sfx = f"_{suffix}" if suffix else ""
    write_csv(out / "erp" / f"customers{sfx}.csv", e[["erp_customer_id", "customer_name", "uscc", "province",
                                                      "city", "address", "phone"]], "utf-8-sig")
    truth.add("erp", e["erp_customer_id"], e["cust"], list(e["kinds"]))
    truth.err([("erp", r.erp_customer_id, f, k, tv, wv) for r in e.itertuples() for f, k, tv, wv in r.errs])
    return len(e)


def write_orders(out: Path, lines: pd.DataFrame, rec: pd.DataFrame, names: dict, lo, hi, suffix, truth: Truth,
                 first: bool):
    sfx = f"_{suffix}" if suffix else ""
    ln = lines[(lines["day"] <= hi) & (in_win(lines["day"], lo, hi) | in_win(lines["ret_day"], lo, hi))]
    ret = np.where(ln["ret_day"].to_numpy() <= hi, ln["returned_amount"].to_numpy(), 0.0)
    df = pd.DataFrame({
        "order_id": ln["order_id"], "line_no": ln["line_no"], "order_date": dates(ln["day"]),
        "erp_customer_id": ln["erp_customer_id"], "customer_name": ln["erp_customer_id"].map(names),
        "product": ln["product"], "qty": ln["qty"], "amount": cents(ln["written_amount"]), "cost": cents(ln["cost"]),
        "returned_amount": cents(ret), "rep_id": ln["rep_id"]})
    mode = "w" if first else "a"
    write_csv(out / "erp" / f"orders{sfx}.csv", df, "utf-8", mode=mode, header=first)
    neg = ln[ln["neg"].to_numpy() & in_win(ln["day"], lo, hi)]
    truth.err([("erp_orders", f"{r.order_id}|{r.line_no}", "amount", "negative_amount", f"{r.amount:.2f}",
                f"{r.written_amount:.2f}") for r in neg.itertuples()])
    rc = rec[(rec["inv"] <= hi) & (in_win(rec["inv"], lo, hi) | in_win(rec["paid"], lo, hi))]
    write_csv(out / "erp" / f"receipts{sfx}.csv", pd.DataFrame({
        "receipt_id": rc["receipt_id"], "order_id": rc["order_id"], "erp_customer_id": rc["erp_customer_id"],
        "invoice_date": dates(rc["inv"]), "due_date": dates(rc["due"]),
        "paid_date": dates(np.where(rc["paid"] <= hi, rc["paid"], NEVER)), "amount": cents(rc["amount"])}),
        "utf-8", mode=mode, header=first)
    return len(df), len(rc)


# ------------------------------------------------------------------------------------------ call center
AGENTS = [f"{s}{g}" for s, g in zip("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗", "丽敏静婷娟燕霞洁颖琳雪梅芳红玲艳慧璐倩", strict=False)]
CALL_JUNK = ["个人", "", "不详", "未知客户", "无", "散户"]


def _gbk_safe(s: str, fallback: str) -> str:
    try:
        s.encode("gbk")
        return s
    except UnicodeEncodeError:
        return fallback


def write_calls(out: Path, w, lo, hi, suffix, truth: Truth):
    calls, _cust = w.calls, w.cust
    c = calls[in_win(calls["day"], lo, hi)]
    if not len(c):
        return 0
    files = np.full(len(c), suffix, object) if suffix else week_of(c["day"].to_numpy())
    n = 0
    for wk in pd.unique(files):
        part = c[files == wk]
        rng = rng_for(w.seed, S_CALLS, 1000 + int(part["day"].iloc[-1]) // 7)
        gb18030 = rng.random() < 0.2  # the newer export module writes GB18030
        rows, keys, cs, kinds_l, junks, errs = [], [], [], [], [], []
        for r in part.itertuples():
            row = w.crec[r.cust]
            company = nm.variant(rng, cust_dict(row), 0.8)
            kinds, junk = [], False
            u = rng.random(4)
            if u[0] < 0.03:
                company, junk = CALL_JUNK[int(rng.integers(len(CALL_JUNK)))], True
                kinds.append("junk_name")
                errs.append((r.call_id, "company", "junk_name", row["name"], company))
            elif u[0] < 0.06:
                t = nm.typo(rng, company)
                if t != company:
                    kinds.append("name_typo")
                    errs.append((r.call_id, "company", "name_typo", row["name"], t))
                    company = t
            if not gb18030:
                company = _gbk_safe(company, row["name"])
            person = row["people"][int(rng.integers(3))]
            phone = nm.format_phone(rng, person[2] if u[1] < 0.75 else row["phone"], rng.random() * 0.8)
            if u[2] < 0.02:
                bad = nm.bad_phone(rng, phone)
                kinds.append("wrong_phone")
                errs.append((r.call_id, "phone", "wrong_phone", phone, bad))
                phone = bad
            caller = person[0] if u[3] < 0.5 else person[0][0] + ("先生" if rng.random() < 0.6 else "女士")
            if gb18030 and rng.random() < 0.02:
                caller = person[0][0] + "䶮"  # a character outside GBK: why these weeks are GB18030
            pool = [p for p in cat.PRODUCTS if p[4]] if r.call_type == "报修" else cat.PRODUCTS
            prod = pool[int(rng.integers(len(pool)))][0]
            tmpl = cat.CALL_SUMMARIES[r.call_type]
            rows.append((r.call_id, r.called_at, r.call_type, company, caller, phone, prod,
                         tmpl[int(rng.integers(len(tmpl)))].format(p=prod), AGENTS[int(rng.integers(len(AGENTS)))]))
            keys.append(r.call_id), cs.append(-1 if junk else r.cust), kinds_l.append(kinds), junks.append(junk)
        write_rows(out / "callcenter" / f"calls_{wk}.csv", ["工单号", "来电时间", "来电类型", "客户单位", "来电人",
                                                             "来电号码", "产品", "摘要", "坐席"],
                   rows, "gb18030" if gb18030 else "gbk", crlf=True)
        truth.add("callcenter", keys, cs, kinds_l, junks)
        truth.err([("callcenter", *e) for e in errs])
        n += len(rows)
    return n


# ------------------------------------------------------------------------------------------ service
def write_tickets(out: Path, w, lo, hi, suffix, truth: Truth):
    """Ticket versions: the week a ticket opens shows it (closed already or 处理中), the week it closes
    shows the final version. A delta file holds both kinds of rows of its window."""
    tk, _cust = w.tickets, w.cust
    opened, closed = tk["opened"].to_numpy(), tk["closed"].to_numpy()
    rows = []  # (ticket index, file label, closed?)
    wo = w.ticket_weeks
    if not suffix:
        wc = week_of(np.minimum(closed, hi))
        for i in np.flatnonzero(opened <= hi):
            if closed[i] <= hi and wo[i] == wc[i]:
                rows.append((i, wo[i], True))
            else:
                rows.append((i, wo[i], False))
                if closed[i] <= hi:
                    rows.append((i, wc[i], True))
    else:
        for i in np.flatnonzero(in_win(opened, lo, hi) | (in_win(closed, lo, hi) & (opened <= lo))):
            rows.append((i, suffix, bool(closed[i] <= hi)))
    if not rows:
        return 0
    rows.sort(key=lambda x: (x[1], opened[x[0]] if not x[2] or x[1] != suffix else closed[x[0]], x[0]))
    n = 0
    labels = np.array([x[1] for x in rows], object)
    for wk in pd.unique(labels):
        out_rows, keys, cs, kinds_l = [], [], [], []
        for i, _, is_closed in [x for x in rows if x[1] == wk]:
            r = w.trec[i]
            row = w.crec[int(r["cust"])]
            tid = w.ticket_ids[i]
            trng = rng_for(w.seed, 62, int(i))  # per ticket, so both versions carry the same typed fields
            name = nm.variant(trng, cust_dict(row), 0.6)
            kinds, errs = [], []
            u = trng.random(3)
            if u[0] < 0.02:
                t2 = nm.typo(trng, name)
                if t2 != name:
                    errs.append((tid, "customer_name", "name_typo", row["name"], t2))
                    kinds.append("name_typo")
                    name = t2
            phone = nm.format_phone(trng, row["people"][int(trng.integers(3))][2], trng.random() * 0.6)
            if u[1] < 0.02:
                bad = nm.bad_phone(trng, phone)
                errs.append((tid, "contact_phone", "wrong_phone", phone, bad))
                kinds.append("wrong_phone")
                phone = bad
            city = CITIES[row["city"]]
            status = ("已取消" if r["cancelled"] else "已关闭") if is_closed else "处理中"
            sat = str(int(r["satisfaction"])) if (is_closed and r["satisfaction"]) else ""
            out_rows.append((tid, name, phone, city.city if u[2] < 0.8 else city.short, r["product"],
                             r["serial_no"], date1(r["opened"]), date1(r["closed"]) if is_closed else "",
                             status, sat, f"{city.short}服务站"))
            if lo < opened[i] <= hi and (not is_closed or suffix or wk == wo[i]):
                keys.append(tid), cs.append(int(r["cust"])), kinds_l.append(kinds)
                truth.err([("service", *e) for e in errs])
        write_rows(out / "service" / f"tickets_{wk}.csv", ["ticket_id", "customer_name", "contact_phone", "city",
                                                           "product", "serial_no", "opened_at", "closed_at", "status",
                                                           "satisfaction", "station"], out_rows, "utf-8")
        truth.add("service", keys, cs, kinds_l)
        n += len(out_rows)
    return n
