"""`crm demo-data`: a deterministic demo world written as the raw drop folders a center receives.

``generate(out_dir, truth_dir, seed, scale, as_of)`` is the entry point. The world (customers, reps,
every event over 2024-01-01..2027-12-31) is simulated from the seed alone and cut at the as-of date,
so a later as-of sees the same past. A first run writes the full history; a later run into the same
folders (same seed and scale, later as-of) adds only that week's files, suffixed ``_<YYYY>-W<ww>``.
Ground truth goes to ``truth_dir`` (never read by the loader); see docs/contracts.md.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError

DEFAULT_AS_OF = dt.date(2026, 11, 22)
DEFAULT_SEED = 42
SHEET_WEEKS = 8
BLOCK = 4000  # customers per order-generation block: bounds memory at large scales
CREC_COLS = ["name", "alias_from", "aliases", "place", "home", "level", "people", "phone", "city", "province",
             "uscc", "domain", "industry"]


@dataclass
class World:
    seed: int
    scale: float
    cust: pd.DataFrame
    reps: pd.DataFrame
    opps: pd.DataFrame
    stages: pd.DataFrame
    active_from: np.ndarray
    accounts: pd.DataFrame
    contacts: pd.DataFrame
    crm_errors: pd.DataFrame
    erp: dict
    calls: pd.DataFrame
    tickets: pd.DataFrame
    ticket_ids: np.ndarray = None
    erp_customers: pd.DataFrame = None
    extra: dict = field(default_factory=dict)
    crec: list = None
    trec: list = None
    ticket_weeks: np.ndarray = None


def build_world(seed: int, scale: float) -> World:
    from . import events as ev
    from . import world as wd
    from .write import stamps

    cust = wd.build_customers(seed, scale)
    reps, cust = wd.build_reps(seed, scale, cust)
    cust = wd.build_lifecycle(seed, cust)
    opps, stages, active_from = ev.build_opps(seed, cust, reps)
    accounts, contacts, crm_err = ev.build_crm(seed, cust, reps)
    # opportunities hang on the customer's first account (the duplicate in a few cases, as in life)
    first_acc = accounts[accounts["cust"] >= 0].drop_duplicates("cust").set_index("cust")["account_id"]
    any_acc = accounts[accounts["cust"] >= 0].drop_duplicates("cust", keep="last").set_index("cust")["account_id"]
    rng = wd.rng_for(seed, 71)
    pick_dup = rng.random(len(opps)) < 0.3
    opps["account_id"] = np.where(pick_dup, any_acc.reindex(opps["cust"]).to_numpy(),
                                  first_acc.reindex(opps["cust"]).to_numpy())
    opps = opps[opps["account_id"].notna()].reset_index(drop=True)
    stages = stages[stages["opp_id"].isin(opps["opp_id"])].reset_index(drop=True)
    erp = ev.erp_ids(seed, cust, active_from)
    calls = ev.build_calls(seed, cust, active_from, scale)
    calls["called_at"] = stamps(calls["day"], calls["sec"], "%Y/%m/%d %H:%M:%S")
    seq = calls.groupby("day").cumcount().to_numpy() + 1
    day_s = pd.Series(calls["called_at"].str.slice(0, 10).str.replace("/", "")).to_numpy()
    calls["call_id"] = [f"CC{d}{s:05d}" for d, s in zip(day_s, seq, strict=False)]
    tickets = ev.build_tickets(seed, cust, active_from, scale)
    tseq = tickets.groupby("opened").cumcount().to_numpy() + 1
    from .write import dates
    tdays = [x.replace("-", "") for x in dates(tickets["opened"])]
    w = World(seed, scale, cust, reps, opps, stages, active_from, accounts, contacts, crm_err, erp, calls, tickets)
    w.ticket_ids = np.array([f"TK{d}{s:04d}" for d, s in zip(tdays, tseq, strict=False)])
    # only the fields the per-record writers read: a dict per customer is most of the world's memory at scale 100
    w.crec = cust[CREC_COLS].to_dict("records")
    w.trec = tickets.to_dict("records")
    from .write import week_of
    w.ticket_weeks = week_of(tickets["opened"].to_numpy())
    from .write import erp_customers
    w.erp_customers = erp_customers(w)
    from .targets import build_targets
    w.extra["targets"] = build_targets(seed, cust, wd.END)
    return w


def _rss() -> str:
    """Peak resident memory so far, for the progress log (bounded memory at large scales is a requirement)."""
    try:
        import resource
        return f", peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB"
    except ImportError:  # not on Windows
        return ""


def _state(truth_dir: Path) -> dict | None:
    p = truth_dir / "manifest.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


def generate(out_dir, truth_dir, seed: int = DEFAULT_SEED, scale: float = 1.0, as_of=DEFAULT_AS_OF,
             progress: bool = False) -> dict:
    """Write (or extend by a week) the raw drop folders and the truth; returns the manifest."""
    from . import world as wd
    from .write import NEG

    out_dir, truth_dir = Path(out_dir), Path(truth_dir)
    if isinstance(as_of, str):
        try:
            as_of = dt.date.fromisoformat(as_of)
        except ValueError:
            raise UserError(f"--as-of {as_of!r} is not a date", hint="use YYYY-MM-DD") from None
    if not (dt.date(2025, 1, 1) <= as_of <= wd.WORLD_END):
        raise UserError(f"--as-of {as_of} is outside the simulated world",
                        hint=f"choose a date between 2025-01-01 and {wd.WORLD_END}")
    if not (math.isfinite(scale) and scale > 0):
        raise UserError(f"--scale must be a positive number, not {scale}", hint="1 is the default size, 100 ~1M records")
    if not (isinstance(seed, int) and 0 <= seed < 2 ** 32):
        raise UserError(f"--seed must be a whole number from 0 to {2 ** 32 - 1}, not {seed}")
    state = _state(truth_dir)
    existing = (out_dir / "crm" / "accounts.csv").exists()
    hi = wd.date_to_day(as_of)
    if existing and state is None:
        raise UserError("the output folder already holds data but there is no demo manifest",
                        file=str(truth_dir / "manifest.json"), hint="use an empty --out folder")
    if existing:
        if state["seed"] != seed or state["scale"] != scale:
            raise UserError(f"the output folder was generated with seed {state['seed']} scale {state['scale']}",
                            hint="use the same --seed/--scale to add a week, or an empty --out folder")
        prev = dt.date.fromisoformat(state["as_of_dates"][-1])
        if as_of == prev:
            return state
        if as_of < prev:
            raise UserError(f"the output folder is already generated up to {prev}",
                            hint="pass a later --as-of, or an empty --out folder")
        if as_of.isocalendar()[:2] == prev.isocalendar()[:2]:
            raise UserError(f"{as_of} is in the same ISO week as the last generated as-of {prev}",
                            hint="weekly drops: pass a date in a later week")
        lo0 = wd.date_to_day(prev)
        # one drop per ISO week between the previous as-of and this one (weeks end on Sunday)
        ends, d = [], prev + dt.timedelta(days=6 - prev.weekday())
        while d < as_of:
            if d > prev:
                ends.append(d)
            d += dt.timedelta(days=7)
        ends.append(as_of)
        windows, lo = [], lo0
        for e in ends:
            y, wk, _ = e.isocalendar()
            windows.append((lo, wd.date_to_day(e), f"{y}-W{wk:02d}"))
            lo = wd.date_to_day(e)
    else:
        windows = [(NEG, hi, "")]

    t0 = time.time()
    w = build_world(seed, scale)
    log = print if progress else (lambda *a, **k: None)
    log(f"world built in {time.time() - t0:.1f}s: {len(w.cust)} customers, {len(w.reps)} reps{_rss()}")
    counts = _write_windows(w, out_dir, truth_dir, windows, fresh=not existing, log=log)
    manifest = _write_truth(w, truth_dir, state, as_of, counts, fresh=not existing)
    log(f"done in {time.time() - t0:.1f}s{_rss()}")
    return manifest


def _write_windows(w: World, out: Path, truth_dir: Path, windows, fresh: bool, log) -> dict:
    from . import write as wr
    from .sales import SalesContext

    counts: dict[str, int] = {}

    def add(k, v):
        counts[k] = counts.get(k, 0) + int(v)

    from .targets import write_targets

    truth = wr.Truth(w.cust)
    target_truth: list = []
    won = w.opps[w.opps["won_day"] < 10 ** 6]
    ctx = SalesContext(w)
    for lo, hi, suffix in windows:
        for k, v in wr.write_crm(out, w, lo, hi, suffix, truth).items():
            add(f"crm/{k}", v)
        add("erp/customers", wr.write_erp_customers(out, w, lo, hi, suffix, truth))
        names = dict(zip(w.erp_customers["erp_customer_id"], w.erp_customers["customer_name"], strict=False))
        n = len(w.cust)
        for b, start in enumerate(range(0, n, BLOCK)):
            from .events import orders_block
            lines, rec = orders_block(w.seed, b, w.cust, np.arange(start, min(start + BLOCK, n)), w.active_from,
                                      won, w.reps, w.erp)
            nl, nr = wr.write_orders(out, lines, rec, names, lo, hi, suffix, truth, first=(b == 0))
            add("erp/orders", nl)
            add("erp/receipts", nr)
        log(f"  crm + erp written ({counts.get('erp/orders', 0)} order lines) {time.process_time():.1f}s cpu{_rss()}")
        add("callcenter/calls", wr.write_calls(out, w, lo, hi, suffix, truth))
        add("service/tickets", wr.write_tickets(out, w, lo, hi, suffix, truth))
        log(f"  call center + service written {time.process_time():.1f}s cpu{_rss()}")
        add("sales_sheets/rows", _write_sales(w, ctx, out, lo, hi, suffix, truth, counts))
        log(f"  sales sheets written ({counts.get('sales_sheets/files', 0)} workbooks) {time.process_time():.1f}s cpu")
        add("marketing/targets", write_targets(out, w.extra["targets"], w.cust["cid"].to_numpy(), lo, hi, suffix,
                                               target_truth))
    w.extra["truth"] = truth
    w.extra["target_truth"] = target_truth
    return counts


_SALES_STATE: dict = {}


def _sales_job(job):
    """Write one rep-week workbook; returns its truth rows (runs in a worker process when forked)."""
    from .sales import make_rows, visits_for, write_workbook
    from .world import day_to_date

    st = _SALES_STATE
    mons, label, ri = job
    rep = st["reps"][ri]
    items = []
    for mon in mons:  # a delivery may span two calendar weeks: all its visits go in one workbook
        got, rng = visits_for(st["ctx"], rep, ri, mon, st["lo"], st["hi"])
        items += got
    if not items:
        return None
    rows = make_rows(st["ctx"], rep, items, rng)
    stamp = dt.datetime.combine(day_to_date(max(d for d, _ in items)), dt.time(18, 30))
    fname = f"{label}_{rep.rep_id}.xlsx"
    placed = write_workbook(st["folder"] / fname, rep, label, rows, rng, stamp)
    keys = [f"{fname}|{s}|{r}" for s, r, _ in placed]
    return ([(k, x["_cust"], x["_kinds"], x["_junk"]) for k, (_, _, x) in zip(keys, placed, strict=False)],
            [("sales", k, *e) for k, (_, _, x) in zip(keys, placed, strict=False) for e in x["_errs"]])


def _write_sales(w, ctx, out: Path, lo: int, hi: int, suffix: str, truth, counts) -> int:
    import os

    from . import world as wd
    from .world import day_to_date

    # the 日清日结 template started recently: sheets only for the last SHEET_WEEKS weeks before the as-of
    start = max(lo, hi - 7 * SHEET_WEEKS)
    first_mon = start + 1 - day_to_date(start + 1).weekday()
    # at large scales only a subset of reps (reps / scale**0.75) writes sheets: xlsx count stays manageable
    reps = list(w.reps.reset_index(drop=True).itertuples())
    keep = np.ones(len(reps), bool)
    if w.scale > 1:
        keep[:] = False
        keep[wd.rng_for(w.seed, 81).permutation(len(reps))[:int(round(len(reps) / w.scale ** 0.75))]] = True
    folder = out / "sales_sheets"
    folder.mkdir(parents=True, exist_ok=True)
    mons = list(range(first_mon, hi + 1, 7))
    groups = [[m] for m in mons] if not suffix else [mons]
    jobs = []
    for g in groups:
        y, wk, _ = day_to_date(g[-1]).isocalendar()
        label = suffix or f"{y}-W{wk:02d}"
        for ri, rep in enumerate(reps):
            if keep[ri] and rep.hired <= g[-1] + 6 and rep.left > g[0]:
                jobs.append((tuple(g), label, ri))
    _SALES_STATE.update(reps=reps, ctx=ctx, folder=folder, lo=start, hi=hi)
    n_proc = min(4, os.cpu_count() or 1)
    if n_proc > 1 and len(jobs) > 200 and hasattr(os, "fork"):
        from .._fork import fork_pool

        with fork_pool(n_proc) as pool:
            results = pool.map(_sales_job, jobs, chunksize=16)
    else:
        results = [_sales_job(j) for j in jobs]
    recs, errs = [], []
    for r in results:
        if r is None:
            continue
        recs.extend(r[0])
        errs.extend(r[1])
        counts["sales_sheets/files"] = counts.get("sales_sheets/files", 0) + 1
    if recs:
        truth.add("sales", [r[0] for r in recs], [r[1] for r in recs], [r[2] for r in recs], [r[3] for r in recs])
    truth.err(errs)
    return len(recs)


def _stage_at(w: World, day: int) -> np.ndarray:
    """True lifecycle stage of every customer on ``day``."""
    cust = w.cust
    n = len(cust)
    o = w.opps[w.opps["created"] <= day]
    had_opp = np.zeros(n, bool)
    had_opp[o["cust"].to_numpy()] = True
    af = w.active_from
    churn = cust["churn_at"].to_numpy()
    pot = cust["potential_at"].to_numpy()
    st = np.full(n, "待识别", object)
    st[pot <= day] = "潜在"
    st[had_opp & (pot <= day)] = "机会"
    buyer = af <= day
    st[buyer] = "用户"
    st[buyer & (af > day - 180) & (af >= 0)] = "订单"
    st[buyer & (churn <= day)] = "流失"
    return st


def _write_truth(w: World, truth_dir: Path, state, as_of: dt.date, counts: dict, fresh: bool) -> dict:
    from . import world as wd
    from .write import write_csv

    truth_dir.mkdir(parents=True, exist_ok=True)
    day = wd.date_to_day(as_of)
    t = w.extra["truth"]
    rec, errs = t.records, t.errors
    crm_rows = w.crm_errors
    # CRM account errors are known up front; keep the ones whose account was written in this run
    acc_keys = set(rec.loc[rec["source"] == "crm", "source_key"]) if len(rec) else set()
    errs = pd.concat([crm_rows[crm_rows["source_key"].isin(sorted(acc_keys))], errs], ignore_index=True)
    if fresh:
        rec_all, err_all = rec, errs
    else:
        rec_all = pd.concat([pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False), rec.astype(str)],
                            ignore_index=True)
        err_all = pd.concat([pd.read_csv(truth_dir / "errors.csv", dtype=str, keep_default_na=False), errs.astype(str)],
                            ignore_index=True)
    write_csv(truth_dir / "records.csv", rec_all, "utf-8")
    write_csv(truth_dir / "errors.csv", err_all, "utf-8")
    tt = pd.concat(w.extra["target_truth"], ignore_index=True)
    new_file = fresh or not (truth_dir / "targets.csv").exists()  # a folder made before target lists
    write_csv(truth_dir / "targets.csv", tt, "utf-8", mode="w" if new_file else "a", header=new_file)
    # customers seen by the as-of
    cust = w.cust
    seen = np.zeros(len(cust), bool)
    cid_idx = pd.Series(np.arange(len(cust)), index=cust["cid"])
    ids = rec_all.loc[rec_all["true_customer_id"].astype(str) != "", "true_customer_id"].unique()
    seen[cid_idx[ids].to_numpy()] = True
    stage = _stage_at(w, day)
    owner = wd.owner_at(w.reps, cust["pos"].to_numpy(), np.full(len(cust), day))
    c = cust[seen]
    write_csv(truth_dir / "customers.csv", pd.DataFrame({
        "true_customer_id": c["cid"], "canonical_name": c["name"], "parent_id": c["parent"], "level": c["level"],
        "scope": c["scope"], "region": c["region"], "province": c["province"], "city": c["city"],
        "industry": c["industry"], "size": c["size"],
        "registered_capital": [f"{x:.0f}" if x == x else "" for x in c["registered_capital"]],
        "listed": c["listed"], "uscc": c["uscc"], "value_group": c["value_group"],
        "latent_value": c["latent_value"], "true_stage": stage[seen], "owner_rep_id": owner[seen]}), "utf-8")
    r = w.reps[w.reps["hired"] <= day]
    write_csv(truth_dir / "reps.csv", pd.DataFrame({"rep_id": r["rep_id"], "habit": r["habit"],
                                                    "region": r["region"]}), "utf-8")
    rates = error_rates(rec_all)
    from .world import BASE_RATES, region_rates
    realized = _realized_rates(w, day)
    from .targets import WINDOW_DAYS
    from .targets import realized as target_realized
    for region, v in target_realized(w.extra["targets"], w.cust, day, WINDOW_DAYS).items():
        realized.setdefault(region, {}).update(v)
    manifest = {
        "seed": w.seed, "scale": w.scale,
        "as_of_dates": (state["as_of_dates"] if state and not fresh else []) + [as_of.isoformat()],
        "world": {"start": wd.WORLD_START.isoformat(), "end": wd.WORLD_END.isoformat()},
        "conversion_rates": {"base": BASE_RATES, "by_region": {r: region_rates(r) for r in sorted(realized)},
                             "realized_by_region": realized, "target_window_days": WINDOW_DAYS},
        "error_rates": rates,
        "counts_last_run": counts,
        "n_customers_seen": int(seen.sum()),
        "true_stage_counts": {k: int(v) for k, v in sorted(pd.Series(stage[seen]).value_counts().items())},
    }
    (truth_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True),
                                             encoding="utf-8")
    return manifest


def error_rates(rec: pd.DataFrame) -> dict:
    """The two seed figures, measured on the truth (definitions in docs/contracts.md)."""
    rec = rec.astype(str)
    acc = rec[rec["source"] == "crm"]
    bad_acc = (acc["has_error"] == "1") | (acc["is_junk"] == "1")
    crm_any = rec[rec["source"].isin(["crm", "crm_contacts"]) & (rec["true_customer_id"] != "")]
    per_cust = (crm_any["has_error"] == "1").groupby(crm_any["true_customer_id"]).any()  # vectorised
    return {"crm_account_records_wrong": round(float(bad_acc.mean()), 4) if len(acc) else None,
            "crm_customers_with_error": round(float(per_cust.mean()), 4) if len(per_cust) else None,
            "crm_account_records": int(len(acc)), "crm_customers": int(len(per_cust))}


def _realized_rates(w: World, day: int) -> dict:
    """Share of new potentials with an opportunity, and win rate of decided opportunities, per region."""
    cust = w.cust
    reg = cust["region"].to_numpy()
    new = ~cust["existing"].to_numpy() & (cust["potential_at"].to_numpy() <= day - 120)
    o = w.opps[w.opps["created"] <= day]
    got = np.zeros(len(cust), bool)
    got[o.loc[o["conv"], "cust"].to_numpy()] = True
    dec = o[o["closed"] <= day]
    out = {}
    for r in sorted(pd.unique(reg)):
        m = new & (reg == r)
        d = dec[reg[dec["cust"].to_numpy()] == r]
        out[r] = {"potential_to_opportunity": round(float(got[m].mean()), 4) if m.any() else None,
                  "opportunity_to_order": round(float((d["status_final"] == "won").mean()), 4) if len(d) else None,
                  "new_potentials": int(m.sum()), "decided_opportunities": int(len(d))}
    return out


# ------------------------------------------------------------------------------------------ CLI
def register(subparsers):
    from .. import paths

    p = subparsers.add_parser("demo-data", help="generate the demo raw drop folders (deterministic)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="raw drop folder (default data/raw)")
    p.add_argument("--truth", default=None, help="truth folder (default data/demo_truth)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--scale", type=float, default=1.0, help="1 = ~1,580 key accounts; 100 = ~10M order lines")
    p.add_argument("--as-of", default=DEFAULT_AS_OF.isoformat(), help="cut date YYYY-MM-DD (default %(default)s)")

    def run(args):
        out = Path(args.out) if args.out else paths.raw_dir()
        truth = Path(args.truth) if args.truth else paths.truth_dir()
        m = generate(out, truth, args.seed, args.scale, args.as_of, progress=True)
        er = m["error_rates"]
        print(f"demo data as of {m['as_of_dates'][-1]} in {out} (truth in {truth}); "
              f"CRM customers with an error {er['crm_customers_with_error']:.1%}, "
              f"wrong account records {er['crm_account_records_wrong']:.1%}")
        return 0

    p.set_defaults(func=run)
