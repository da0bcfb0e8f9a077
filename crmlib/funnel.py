"""Sales funnel: stage snapshot, cohort conversion, time in stage, aging, win/loss, weighted pipeline,
the customer lifecycle funnel and the customer-resource plan (客户资源计划, ``crm plan``).

Definitions (the tests pin each of them down):

* **Stage order** is ``params.stages`` (获得销售机会 → 新建 → 分配 → 客户关系建立 → 商务谈判 → 获得标书 →
  赢单); 输单 (``lost_stage``) is outside the order: it ends a deal without passing any stage.
* **As of.** Every function sees only what was known at the end of ``as_of``: stage entries with
  ``entered_at`` on or before ``as_of`` and opportunities created on or before it. Amounts, expected
  close dates, lost reasons and competitors come from the latest opportunity row (the CRM keeps no history
  of them).
* **Reached stage S** (cohort conversion) = the opportunity entered S *or any later stage* within the
  window, i.e. before ``created_at + window_months`` calendar months (and by ``as_of``). A skipped
  stage therefore counts as passed. Every opportunity in a cohort has reached the first stage.
* **Reopened deals count once**: the opportunity's furthest stage over all its entries is what counts,
  however often it re-entered stages.
* **Lost deals**: a deal lost at stage S reached S but not the next stage (输单 adds nothing).
* **Converted** = entered 赢单 within the window. Deals still open (or lost) at the window's end are not
  converted; **time to convert** (days from creation to the first 赢单 entry) is measured on converted
  deals only, so open deals are excluded from it.
* **Step rate** of stage S = reached S / reached the stage before S; **overall rate** = reached S /
  cohort size.
* **Counting unit**: ``unit="opportunity"`` counts opportunities; ``unit="customer"`` counts master
  customers (``customer_id``): a customer reached S if any of its cohort opportunities did. With a
  breakdown, a customer is counted in each group one of its opportunities falls in (e.g. under each rep).
* **Time in stage** = total days an opportunity spent in a stage over all its visits (a reopened deal
  may visit a stage twice). A visit ends at the next stage entry; a visit still running at ``as_of`` is
  censored and left out of the time-in-stage statistics (it shows up as a stuck deal instead).
* **Current state** as of a date = the last stage entry by then (ties broken by stage order, 输单 last);
  open unless that is 赢单 or 输单. An opportunity with no entry by then is open in the first stage since
  its creation date.
* **Lifecycle funnel** (per master customer): 目标客户 = every customer in the master in scope, plus the
  companies on marketing's target lists (``stg_targets``) that are not customers yet (:mod:`crmlib.target_lists`);
  潜在客户 = qualified: has a CRM account opened by ``as_of`` (a name only called or visited is still 待识别;
  with no CRM export at all, any contact counts); 机会客户 = has a CRM opportunity created by ``as_of``; 订单 =
  has an ERP order dated by ``as_of``. Stages are cumulative like the opportunity funnel: a customer with an
  order also counts as potential and opportunity customer even without an account. These are stock counts
  (most known customers already buy). The segments' stages (:mod:`crmlib.segments`) are another view: there
  潜在 means "touched recently".
* **Plan rates** (``crm plan`` without ``--rates``, :func:`historical_rates`) are flow rates, as the seed's
  plan means them: target→potential = share of listed targets that became potentials within
  ``target_window_days`` (:func:`crmlib.target_lists.read_target_conversion`; without target lists: potential /
  target customers of the lifecycle funnel, a stock ratio; also while every list is younger than the
  window); potential→opportunity =
  share of *new* potentials — customers whose CRM account was opened after the order and contact history
  began, with no order or opportunity before it — that got an opportunity (:func:`new_potential_conversion`;
  a name only called or visited, with no account, is still 待识别); opportunity→order =
  win rate of decided deals, won / (won + lost) (:func:`opportunity_win_rate`). Plans round up at each stage
  with exact fractions.
"""
from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import field_validator, model_validator

from . import params as params_mod
from .db import database_file, table_exists
from .encoding import read_text
from .errors import MissingData, UserError
from .frames import isin
from .i18n import tr

# --------------------------------------------------------------------------------------------------
# parameters and labels


class FunnelParams(params_mod.Params):
    stages: list[str] = ["获得销售机会", "新建", "分配", "客户关系建立", "商务谈判", "获得标书", "赢单"]
    lost_stage: str = "输单"
    window_months: int = 12
    stage_probability: dict[str, float] = {}
    stuck_days: int = 60
    stuck_days_by_stage: dict[str, int] = {}
    aging_edges: list[int] = [30, 60, 90]
    win_rate_days: int = 90
    lifecycle_scopes: list[str] = []
    contact_sources: list[str] = ["sales", "callcenter"]
    new_potential_burn_in_days: int = 0
    new_potential_mature_days: int = 120
    target_window_days: int = 365
    plan_targets: dict[str, float] = {}
    plan_growth: float = 0.2
    plan_avg_order_value: float | None = None
    plan_rates: list[float] | None = None

    @field_validator("window_months", "stuck_days", "win_rate_days", "target_window_days")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive number of months/days")
        return v

    @field_validator("plan_rates")
    @classmethod
    def _rates(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 3 or not all(0 < r <= 1 for r in v)):
            raise ValueError("three rates in (0, 1]: target→potential, potential→opportunity, opportunity→order")
        return v

    @field_validator("aging_edges")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if not v or any(b <= a for a, b in zip(v, v[1:], strict=False)) or v[0] <= 0:
            raise ValueError("must be increasing positive day counts, e.g. [30, 60, 90]")
        return v

    @model_validator(mode="after")
    def _known_stages(self) -> FunnelParams:
        if len(self.stages) < 2 or len(set(self.stages)) != len(self.stages):
            raise ValueError("stages must list at least two distinct stages")
        if self.lost_stage in self.stages:
            raise ValueError("lost_stage must not be one of stages")
        for key in (*self.stage_probability, *self.stuck_days_by_stage):
            if key not in self.stages[:-1]:
                raise ValueError(f"unknown open stage {key!r} (open stages: {self.stages[:-1]})")
        for k, p in self.stage_probability.items():
            if not 0 <= p <= 1:
                raise ValueError(f"stage_probability[{k}] must be between 0 and 1")
        return self

    @property
    def won_stage(self) -> str:
        return self.stages[-1]

    @property
    def open_stages(self) -> list[str]:
        return self.stages[:-1]

    def rank(self) -> dict[str, int]:
        """Stage → position; the lost stage ranks -1 (it passes no stage)."""
        return {s: i for i, s in enumerate(self.stages)} | {self.lost_stage: -1}

    def stuck_threshold(self, stage: str) -> int:
        return self.stuck_days_by_stage.get(stage, self.stuck_days)


def load_params(path: str | Path | None = None) -> FunnelParams:
    return params_mod.load(FunnelParams, path or "funnel")


LIFECYCLE_STAGES = ["target", "potential", "opportunity", "order"]

LABELS: dict[str, dict[str, str]] = {
    "stage": {"zh": "阶段", "en": "Stage"},
    "count": {"zh": "数量", "en": "Count"},
    "amount": {"zh": "金额（万元）", "en": "Amount (10k CNY)"},
    "weighted": {"zh": "加权金额（万元）", "en": "Weighted amount (10k CNY)"},
    "opportunities": {"zh": "商机数", "en": "Opportunities"},
    "customers": {"zh": "客户数", "en": "Customers"},
    "unit_opportunity": {"zh": "按商机计", "en": "per opportunity"},
    "unit_customer": {"zh": "按主数据客户计", "en": "per master customer"},
    "overall_rate": {"zh": "累计转化率", "en": "Overall conversion"},
    "step_rate": {"zh": "逐级转化率", "en": "Step conversion"},
    "cohort_month": {"zh": "创建月份", "en": "Cohort month"},
    "win_conversion": {"zh": "赢单转化率", "en": "Conversion to won"},
    "days": {"zh": "天数", "en": "Days"},
    "days_in_stage": {"zh": "阶段停留天数", "en": "Days in stage"},
    "time_to_convert": {"zh": "赢单用时（天）", "en": "Days to win"},
    "bucket": {"zh": "账龄", "en": "Aging"},
    "stuck": {"zh": "停滞商机", "en": "Stuck deals"},
    "overdue": {"zh": "逾期未关闭商机", "en": "Past expected close"},
    "region": {"zh": "区域", "en": "Region"},
    "industry": {"zh": "行业", "en": "Industry"},
    "rep_id": {"zh": "销售代表", "en": "Rep"},
    "rep_region": {"zh": "销售代表所属区域", "en": "Rep region"},
    "target": {"zh": "目标客户", "en": "Target customers"},
    "potential": {"zh": "潜在客户", "en": "Potential customers"},
    "opportunity": {"zh": "机会客户", "en": "Opportunity customers"},
    "order": {"zh": "订单客户", "en": "Ordering customers"},
    "plan": {"zh": "计划", "en": "Plan"},
    "plan_count": {"zh": "数量（客户 / 商机 / 赢单）", "en": "Count (customers / opportunities / won deals)"},
    "actual": {"zh": "实际", "en": "Actual"},
    "won": {"zh": "赢单", "en": "Won"},
    "lost": {"zh": "输单", "en": "Lost"},
    "win_rate": {"zh": "赢率", "en": "Win rate"},
    "lost_reason": {"zh": "输单原因", "en": "Lost reason"},
    "competitor": {"zh": "竞争对手", "en": "Competitor"},
    "close_month": {"zh": "预计成交月份", "en": "Expected close month"},
    "funnel_title": {"zh": "销售漏斗", "en": "Sales funnel"},
    "lifecycle_title": {"zh": "客户生命周期漏斗", "en": "Customer lifecycle funnel"},
    "trend_title": {"zh": "按创建月份的转化率趋势", "en": "Conversion by cohort month"},
    "box_title": {"zh": "各阶段停留时间", "en": "Time in stage"},
    "aging_title": {"zh": "停滞与逾期商机账龄", "en": "Aging of stuck and overdue deals"},
    "immature": {"zh": "窗口未满", "en": "window not complete"},
}


STAGE_EN = {"获得销售机会": "Lead", "新建": "New", "分配": "Assigned", "客户关系建立": "Relationship",
            "商务谈判": "Negotiation", "获得标书": "Tender", "赢单": "Won", "输单": "Lost"}


def label(key: str, lang: str = "zh") -> str:
    return tr(LABELS, key, lang)


def stage_label(stage: str, lang: str = "zh") -> str:
    """Stage names are Chinese in the data; English reports show a short translation."""
    return STAGE_EN.get(stage, stage) if lang == "en" else stage


# --------------------------------------------------------------------------------------------------
# small helpers


def _cutoff(as_of) -> pd.Timestamp:
    """Exclusive end of the as-of day: everything strictly before it is known."""
    return pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)


def period_start(as_of, months: int) -> pd.Timestamp:
    """First day of the ``months`` months ending on ``as_of`` (both days inclusive): 2024-12-31, 12 → 2024-01-01."""
    return pd.Timestamp(as_of).normalize() - pd.DateOffset(months=months) + pd.Timedelta(days=1)


def _dims(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def aging_bucket_labels(edges: Sequence[int]) -> list[str]:
    """'0–30', '31–60', '61–90', '>90' for edges [30, 60, 90]."""
    out, lo = [], 0
    for e in edges:
        out.append(f"{lo}–{e}")
        lo = e + 1
    out.append(f">{edges[-1]}")
    return out


def aging_bucket(days: pd.Series, edges: Sequence[int]) -> pd.Series:
    """Bucket whole days: 0–30 includes 30, 31–60 includes 60, ... (right-closed)."""
    bins = [-np.inf, *edges, np.inf]
    labels = aging_bucket_labels(edges)
    return pd.cut(days, bins=bins, labels=labels, right=True).astype(
        pd.CategoricalDtype(labels, ordered=True))


def _check_cols(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}")


def _prepare_history(history: pd.DataFrame, p: FunnelParams, as_of) -> pd.DataFrame:
    """Stage entries known by ``as_of``, sorted chronologically (ties: stage order, lost last)."""
    _check_cols(history, ["opp_id", "stage", "entered_at"], "stage history")
    h = history[["opp_id", "stage", "entered_at"]].copy()
    h["entered_at"] = pd.to_datetime(h["entered_at"])
    rank = p.rank()
    unknown = sorted(set(h["stage"].unique()) - set(rank))  # unique(): no per-row iteration
    if unknown:
        # unknown stage names cannot be placed in the order: drop them rather than guess
        h = h[h["stage"].isin(rank)]
    if as_of is not None:
        h = h[h["entered_at"] < _cutoff(as_of)]
    h["rank"] = h["stage"].map(rank).astype(int)
    h["tie"] = h["rank"].where(h["rank"] >= 0, len(p.stages))
    return h.sort_values(["opp_id", "entered_at", "tie"], kind="stable").drop(columns="tie")


def _prepare_opps(opps: pd.DataFrame, as_of) -> pd.DataFrame:
    _check_cols(opps, ["opp_id", "created_at"], "opportunities")
    o = opps.copy()
    o["created_at"] = pd.to_datetime(o["created_at"])
    if as_of is not None:
        o = o[o["created_at"] < _cutoff(as_of)]
    return o.sort_values("opp_id", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# current state, snapshot, stuck and overdue deals


def current_state(opps: pd.DataFrame, history: pd.DataFrame, p: FunnelParams, as_of) -> pd.DataFrame:
    """One row per opportunity created by ``as_of``: its stage, status and days in stage at ``as_of``.

    Adds ``current_stage``, ``entered_current_at``, ``status`` (open/won/lost), ``closed_at`` (entry into
    赢单/输单, NaT while open) and ``days_in_stage`` (whole days from entering the stage to ``as_of``).
    """
    o = _prepare_opps(opps, as_of)
    h = _prepare_history(history, p, as_of)
    last = h.groupby("opp_id", sort=True).tail(1).set_index("opp_id")
    o["current_stage"] = o["opp_id"].map(last["stage"]).fillna(p.stages[0])
    o["entered_current_at"] = pd.Series(last["entered_at"].reindex(o["opp_id"]).to_numpy(),
                                        index=o.index).fillna(o["created_at"])
    status = np.where(o["current_stage"] == p.won_stage, "won",
                      np.where(o["current_stage"] == p.lost_stage, "lost", "open"))
    o["status"] = status
    o["closed_at"] = o["entered_current_at"].where(o["status"] != "open")
    as_of_day = pd.Timestamp(as_of).normalize()
    o["days_in_stage"] = (as_of_day - o["entered_current_at"].dt.normalize()).dt.days
    return o


def stage_snapshot(state: pd.DataFrame, p: FunnelParams, by=None) -> pd.DataFrame:
    """Count and amount (万元) of opportunities per current stage (open stages, then 赢单, 输单).

    Counts are per opportunity; won/lost rows are cumulative over all deals closed by ``as_of``.
    """
    dims = _dims(by)
    order = [*p.stages, p.lost_stage]
    amount = state["amount"] if "amount" in state else pd.Series(0.0, index=state.index)
    df = state.assign(amount=amount.fillna(0.0))
    g = (df.groupby([*dims, "current_stage"], observed=True, dropna=False)
         .agg(count=("opp_id", "size"), amount=("amount", "sum")).reset_index()
         .rename(columns={"current_stage": "stage"}))
    # every stage appears (count 0) so funnels of different groups line up
    if dims:
        keys = g[dims].drop_duplicates()
        full = keys.merge(pd.DataFrame({"stage": order}), how="cross")
    else:
        full = pd.DataFrame({"stage": order})
    g = full.merge(g, on=[*dims, "stage"], how="left").fillna({"count": 0, "amount": 0.0})
    g["count"] = g["count"].astype(int)
    g["stage_rank"] = g["stage"].map({s: i for i, s in enumerate(order)})
    g["is_open"] = g["stage"].isin(p.open_stages)
    return g.sort_values([*dims, "stage_rank"], kind="stable").reset_index(drop=True)


def stuck_deals(state: pd.DataFrame, p: FunnelParams) -> pd.DataFrame:
    """Open deals longer in their current stage than the stage's threshold, with aging bucket of the excess.

    ``days_over`` = days_in_stage - threshold (> 0); bucket over days_over (0–30 includes 30).
    """
    o = state[state["status"] == "open"].copy()
    o["threshold"] = o["current_stage"].map(p.stuck_threshold).astype(int)
    o["days_over"] = o["days_in_stage"] - o["threshold"]
    o = o[o["days_over"] > 0].copy()
    o["bucket"] = aging_bucket(o["days_over"], p.aging_edges)
    return o.sort_values(["days_over", "opp_id"], ascending=[False, True]).reset_index(drop=True)


def overdue_deals(state: pd.DataFrame, p: FunnelParams, as_of) -> pd.DataFrame:
    """Open deals whose expected close date is before ``as_of``; ``days_overdue`` and aging bucket."""
    o = state[(state["status"] == "open") & state["expected_close"].notna()].copy()
    o["days_overdue"] = (pd.Timestamp(as_of).normalize()
                         - pd.to_datetime(o["expected_close"]).dt.normalize()).dt.days
    o = o[o["days_overdue"] > 0].copy()
    o["bucket"] = aging_bucket(o["days_overdue"], p.aging_edges)
    return o.sort_values(["days_overdue", "opp_id"], ascending=[False, True]).reset_index(drop=True)


def aging_table(deals: pd.DataFrame, p: FunnelParams, by=None) -> pd.DataFrame:
    """Count and amount per aging bucket (every bucket listed, 0 when empty)."""
    dims = _dims(by)
    labels = aging_bucket_labels(p.aging_edges)
    df = deals.assign(amount=deals["amount"].fillna(0.0) if "amount" in deals else 0.0)
    g = (df.groupby([*dims, "bucket"], observed=False, dropna=False)
         .agg(count=("opp_id", "size"), amount=("amount", "sum")).reset_index())
    g["bucket"] = g["bucket"].astype(pd.CategoricalDtype(labels, ordered=True))
    g["count"] = g["count"].astype(int)
    return g.sort_values([*dims, "bucket"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# cohort conversion


def opportunity_progress(opps: pd.DataFrame, history: pd.DataFrame, p: FunnelParams, as_of,
                         window_months: int | None = None) -> pd.DataFrame:
    """One row per opportunity created by ``as_of``: furthest stage reached within the window.

    Columns added: ``window_end`` (created_at + window months, exclusive), ``window_complete`` (the whole
    window lies on or before ``as_of``), ``max_rank``/``max_stage`` (furthest stage reached, at least the
    first), ``won`` (entered 赢单 in the window), ``won_at`` and ``days_to_win`` (won deals only),
    ``lost`` (last entry in the window is 输单) and ``status_at_window_end`` (won/lost/open).
    """
    months = window_months or p.window_months
    o = _prepare_opps(opps, as_of)
    h = _prepare_history(history, p, as_of)
    o["window_end"] = o["created_at"] + pd.DateOffset(months=months)
    o["window_complete"] = o["window_end"] <= _cutoff(as_of)
    h = h.merge(o[["opp_id", "window_end"]], on="opp_id", how="inner")
    h = h[h["entered_at"] < h["window_end"]]
    rank = h.groupby("opp_id")["rank"].max()
    o["max_rank"] = o["opp_id"].map(rank).fillna(0).clip(lower=0).astype(int)
    o["max_stage"] = o["max_rank"].map(dict(enumerate(p.stages)))
    won_rank = len(p.stages) - 1
    won_at = h[h["rank"] == won_rank].groupby("opp_id")["entered_at"].min()
    o["won"] = o["max_rank"] == won_rank
    # reindex (not map) keeps the datetime dtype when no deal was won
    o["won_at"] = won_at.reindex(o["opp_id"]).to_numpy()
    # calendar days: created_at is a date, stage entries are timestamps
    o["days_to_win"] = (o["won_at"].dt.normalize() - o["created_at"].dt.normalize()).dt.days
    last = h.groupby("opp_id").tail(1).set_index("opp_id")["stage"]
    o["lost"] = (o["opp_id"].map(last) == p.lost_stage) & ~o["won"]
    o["status_at_window_end"] = np.where(o["won"], "won", np.where(o["lost"], "lost", "open"))
    return o


def cohort_conversion(progress: pd.DataFrame, p: FunnelParams, by=None, unit: str = "opportunity",
                      created_from=None, created_to=None, complete_only: bool = False) -> pd.DataFrame:
    """Share of a creation cohort reaching each stage (see the module docstring for the rules).

    ``created_from``/``created_to`` bound the cohort by creation date (both inclusive);
    ``complete_only`` keeps only opportunities whose whole window has elapsed by ``as_of``.
    ``unit``: "opportunity" counts opportunities, "customer" counts master customers (``customer_id``).
    Returns one row per (group, stage): ``cohort`` (size), ``reached``, ``step_rate``, ``overall_rate``.
    """
    if unit not in ("opportunity", "customer"):
        raise ValueError("unit must be 'opportunity' or 'customer'")
    dims = _dims(by)
    df = progress
    if created_from is not None:
        df = df[df["created_at"] >= pd.Timestamp(created_from)]
    if created_to is not None:
        df = df[df["created_at"] < _cutoff(created_to)]
    if complete_only:
        df = df[df["window_complete"]]
    key = "opp_id" if unit == "opportunity" else "customer_id"
    df = df[df[key].notna()] if unit == "customer" else df
    # one row per counted unit (per group): its furthest stage
    units = df.groupby([*dims, key], observed=True, dropna=False)["max_rank"].max().reset_index()
    n_stages = len(p.stages)
    if dims:
        grouped = units.groupby(dims, observed=True, dropna=False, sort=True)
        gid = grouped.ngroup().to_numpy()
        keys = grouped.size().index.to_frame(index=False)       # one row per group, in ngroup's order
    else:
        gid = np.zeros(len(units), dtype=np.int64)
        keys = pd.DataFrame(index=range(1))                       # one cohort, even an empty one
    # counts[g, r]: units of group g whose furthest stage is r; reached[g, i]: units at stage i or beyond
    counts = np.zeros((len(keys), n_stages), dtype=np.int64)
    np.add.at(counts, (gid, units["max_rank"].to_numpy(dtype=np.int64).clip(0, n_stages - 1)), 1)
    reached = counts[:, ::-1].cumsum(axis=1)[:, ::-1]
    cohort = counts.sum(axis=1)
    prev = np.column_stack([cohort, reached[:, :-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(prev > 0, reached / np.where(prev > 0, prev, 1), np.nan)
        overall = np.where(cohort[:, None] > 0, reached / np.where(cohort > 0, cohort, 1)[:, None], np.nan)
    out = keys.loc[keys.index.repeat(n_stages)].reset_index(drop=True)
    out = out.assign(stage=np.tile(np.asarray(p.stages, dtype=object), len(keys)),
                     stage_rank=np.tile(np.arange(n_stages), len(keys)), unit=unit,
                     cohort=np.repeat(cohort, n_stages), reached=reached.ravel(),
                     step_rate=step.ravel(), overall_rate=overall.ravel())
    cols = [*dims, "stage", "stage_rank", "unit", "cohort", "reached", "step_rate", "overall_rate"]
    return out[cols].sort_values([*dims, "stage_rank"], kind="stable").reset_index(drop=True)


def conversion_trend(progress: pd.DataFrame, p: FunnelParams, by=None, stage: str | None = None,
                     unit: str = "opportunity") -> pd.DataFrame:
    """Overall conversion to ``stage`` (default 赢单) per creation month; ``window_complete`` is False for
    months whose cohort window has not fully elapsed (their rate still grows)."""
    stage = stage or p.won_stage
    df = progress.assign(cohort_month=progress["created_at"].dt.to_period("M").astype(str))
    conv = cohort_conversion(df, p, by=[*_dims(by), "cohort_month"], unit=unit)
    conv = conv[conv["stage"] == stage]
    complete = df.groupby("cohort_month")["window_complete"].all()
    conv = conv.assign(window_complete=conv["cohort_month"].map(complete).astype(bool))
    return conv.drop(columns=["stage_rank"]).sort_values([*_dims(by), "cohort_month"]).reset_index(drop=True)


def time_to_convert(progress: pd.DataFrame, by=None) -> pd.DataFrame:
    """Days from creation to 赢单 for deals won within the window (open/lost deals excluded): n, median,
    quartiles, mean."""
    won = progress[progress["won"]]
    return _describe(won, "days_to_win", _dims(by))


def _describe(df: pd.DataFrame, col: str, dims: list[str]) -> pd.DataFrame:
    def stats(s: pd.Series) -> pd.Series:
        return pd.Series({"n": int(s.count()), "median": s.median(), "p25": s.quantile(0.25),
                          "p75": s.quantile(0.75), "mean": s.mean(), "max": s.max()})
    if not dims:
        return stats(df[col]).to_frame().T.astype({"n": int})
    out = df.groupby(dims, observed=True)[col].apply(stats).unstack().reset_index()
    return out.astype({"n": int}).sort_values(dims).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# time in stage


def stage_durations(opps: pd.DataFrame, history: pd.DataFrame, p: FunnelParams, as_of) -> pd.DataFrame:
    """One row per (opportunity, open stage): total days spent there over all visits.

    A visit lasts from its entry to the next entry of the same opportunity. ``censored`` is True when the
    opportunity is still in that stage at ``as_of`` (its days so far are in ``days`` but it should not
    enter completed-duration statistics). Terminal stages (赢单/输单) have no duration.
    """
    o = _prepare_opps(opps, as_of)
    h = _prepare_history(history, p, as_of)
    h = h[isin(h["opp_id"], o["opp_id"])].copy()
    h["left_at"] = h.groupby("opp_id")["entered_at"].shift(-1)
    h = h[h["stage"].isin(p.open_stages)].copy()
    h["censored"] = h["left_at"].isna()
    end = h["left_at"].fillna(pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1))
    # a still-running visit counts up to the end of the as-of day
    h["days"] = (end - h["entered_at"]).dt.total_seconds() / 86400.0
    g = (h.groupby(["opp_id", "stage"], sort=False)
         .agg(days=("days", "sum"), visits=("days", "size"), censored=("censored", "any"))
         .reset_index())
    g["stage_rank"] = g["stage"].map(p.rank())
    extra = [c for c in o.columns if c not in g.columns and c != "created_at"]
    g = g.merge(o[["opp_id", *extra]], on="opp_id", how="left")
    return g.sort_values(["opp_id", "stage_rank"]).reset_index(drop=True)


def time_in_stage(durations: pd.DataFrame, p: FunnelParams, by=None) -> pd.DataFrame:
    """Median and quartiles of completed days in each open stage (censored stays excluded)."""
    dims = _dims(by)
    done = durations[~durations["censored"]]
    out = _describe(done, "days", [*dims, "stage"]) if len(done) else pd.DataFrame(
        columns=[*dims, "stage", "n", "median", "p25", "p75", "mean", "max"])
    out["stage_rank"] = out["stage"].map(p.rank())
    return out.sort_values([*dims, "stage_rank"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# win/loss, pipeline, forecast


def closed_between(state: pd.DataFrame, start, end) -> pd.DataFrame:
    """Deals whose close (entry into 赢单/输单) falls between ``start`` and ``end`` (both days inclusive)."""
    c = state[state["status"] != "open"]
    if start is not None:
        c = c[c["closed_at"] >= pd.Timestamp(start).normalize()]
    return c[c["closed_at"] < _cutoff(end)]


def win_loss(state: pd.DataFrame, start, end, by=None) -> pd.DataFrame:
    """Won and lost counts and amounts of deals closed in [start, end]; win_rate = won / (won + lost)."""
    dims = _dims(by)
    c = closed_between(state, start, end).assign(
        won_n=lambda d: (d["status"] == "won").astype(int),
        lost_n=lambda d: (d["status"] == "lost").astype(int),
        won_amount=lambda d: d["amount"].fillna(0).where(d["status"] == "won", 0.0),
        lost_amount=lambda d: d["amount"].fillna(0).where(d["status"] == "lost", 0.0))
    agg = dict(won=("won_n", "sum"), lost=("lost_n", "sum"),
               won_amount=("won_amount", "sum"), lost_amount=("lost_amount", "sum"))
    g = c.groupby(dims, observed=True).agg(**agg).reset_index() if dims else \
        pd.DataFrame([{k: c[v[0]].sum() for k, v in agg.items()}])
    g["closed"] = g["won"] + g["lost"]
    g["win_rate"] = np.where(g["closed"] > 0, g["won"] / g["closed"].where(g["closed"] > 0, 1), np.nan)
    return g.sort_values(dims).reset_index(drop=True) if dims else g


def lost_reasons(state: pd.DataFrame, start, end, column: str = "lost_reason", by=None) -> pd.DataFrame:
    """Lost deals closed in [start, end] by ``column`` (lost_reason or competitor); blank = '(未填写)'."""
    dims = _dims(by)
    c = closed_between(state, start, end)
    c = c[c["status"] == "lost"].copy()
    c[column] = c[column].fillna("").astype(str).str.strip().replace("", "(未填写)")
    g = (c.groupby([*dims, column], observed=True)
         .agg(count=("opp_id", "size"), amount=("amount", "sum")).reset_index())
    g["share"] = g["count"] / g.groupby(dims)["count"].transform("sum") if dims else g["count"] / g["count"].sum()
    return g.sort_values([*dims, "count", column], ascending=[*[True] * len(dims), False, True]) \
        .reset_index(drop=True)


def weighted_pipeline(state: pd.DataFrame, p: FunnelParams, by=None) -> pd.DataFrame:
    """Open deals per stage: count, amount and amount × stage probability (params.stage_probability)."""
    dims = _dims(by)
    o = state[state["status"] == "open"].copy()
    o["probability"] = o["current_stage"].map(p.stage_probability).fillna(0.0)
    o["amount"] = o["amount"].fillna(0.0)
    o["weighted"] = o["amount"] * o["probability"]
    g = (o.groupby([*dims, "current_stage"], observed=True)
         .agg(count=("opp_id", "size"), amount=("amount", "sum"), probability=("probability", "first"),
              weighted=("weighted", "sum")).reset_index().rename(columns={"current_stage": "stage"}))
    g["stage_rank"] = g["stage"].map(p.rank())
    return g.sort_values([*dims, "stage_rank"]).reset_index(drop=True)


def forecast_by_close_month(state: pd.DataFrame, p: FunnelParams, as_of, by=None) -> pd.DataFrame:
    """Open deals by expected close month: count, amount, weighted amount; ``overdue`` marks months
    before the as-of month (deals that should have closed already). Missing dates go to '(未填写)'."""
    dims = _dims(by)
    o = state[state["status"] == "open"].copy()
    o["weighted"] = o["amount"].fillna(0.0) * o["current_stage"].map(p.stage_probability).fillna(0.0)
    ec = pd.to_datetime(o["expected_close"])
    o["close_month"] = ec.dt.to_period("M").astype(str).where(ec.notna(), "(未填写)")
    g = (o.groupby([*dims, "close_month"], observed=True)
         .agg(count=("opp_id", "size"), amount=("amount", "sum"), weighted=("weighted", "sum"))
         .reset_index())
    as_of_month = str(pd.Timestamp(as_of).to_period("M"))
    g["overdue"] = (g["close_month"] < as_of_month) & (g["close_month"] != "(未填写)")
    return g.sort_values([*dims, "close_month"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# lifecycle funnel


def lifecycle_stage(customers: pd.DataFrame, potentials: Iterable[str], with_opportunity: Iterable[str],
                    with_order: Iterable[str]) -> pd.DataFrame:
    """Each target customer's furthest lifecycle stage (0 target .. 3 order; cumulative, see module doc)."""
    c = customers.copy()
    ids = c["customer_id"]
    c["lifecycle_rank"] = np.select(
        [isin(ids, set(with_order)), isin(ids, set(with_opportunity)), isin(ids, set(potentials))],
        [3, 2, 1], default=0)
    c["lifecycle_stage"] = c["lifecycle_rank"].map(dict(enumerate(LIFECYCLE_STAGES)))
    return c


def lifecycle_funnel(stages: pd.DataFrame, by="region") -> pd.DataFrame:
    """Customers reaching each lifecycle stage per group with step rates (per master customer).

    ``rate`` of a stage = customers reaching it / customers reaching the previous stage (target: 1).
    A row stands for ``n`` customers when ``stages`` has that column (listed targets, counted per group).
    """
    dims = _dims(by)
    rows = []
    if "n" not in stages.columns:
        stages = stages.assign(n=1)
    groups = stages.groupby(dims, observed=True, dropna=False) if dims else [((), stages)]
    for gkey, g in groups:
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        prev = None
        for i, s in enumerate(LIFECYCLE_STAGES):
            n = int(g.loc[g["lifecycle_rank"] >= i, "n"].sum())
            rows.append({**dict(zip(dims, gkey, strict=False)), "stage": s, "stage_rank": i, "customers": n,
                         "rate": (n / prev if prev else np.nan) if i else 1.0})
            prev = n
    out = pd.DataFrame(rows, columns=[*dims, "stage", "stage_rank", "customers", "rate"])
    return out.sort_values([*dims, "stage_rank"]).reset_index(drop=True)


def lifecycle_rates(funnel: pd.DataFrame, by="region") -> pd.DataFrame:
    """Wide rates per group: target_to_potential, potential_to_opportunity, opportunity_to_order, and
    the counts of each stage."""
    dims = _dims(by)
    counts = funnel.pivot_table(index=dims or None, columns="stage", values="customers", aggfunc="sum")
    if not dims:
        counts = funnel.set_index("stage")["customers"].to_frame().T
    counts = counts.reindex(columns=LIFECYCLE_STAGES).fillna(0).astype(int)
    out = counts.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for a, b in zip(LIFECYCLE_STAGES, LIFECYCLE_STAGES[1:], strict=False):
            out[f"{a}_to_{b}"] = np.where(counts[a] > 0, counts[b] / counts[a].where(counts[a] > 0, 1), np.nan)
    out.columns.name = None
    return out.reset_index(drop=not dims)


def opportunity_win_rate(state: pd.DataFrame, by="region") -> pd.DataFrame:
    """Opportunity→order as a flow rate: won / (won + lost) over every deal decided by ``as_of`` (per
    opportunity; open deals left out). This is the plan's opportunity→order rate."""
    # the state only holds closes up to its as_of, so "closed by the newest close" = every decided deal
    last = state["closed_at"].max()
    wl = win_loss(state, None, last if pd.notna(last) else "1900-01-01", by=by)
    return wl.rename(columns={"win_rate": "opportunity_to_order", "closed": "decided"})


def _dated(firsts: pd.DataFrame) -> pd.DataFrame:
    """A copy of :func:`read_customer_firsts`' frame (or a hand-built one) with its dates as timestamps."""
    f = firsts.copy()
    for c in ("first_account", "first_contact", "first_order", "first_opp"):
        f[c] = pd.to_datetime(f[c])
    return f


def _new_potentials(firsts: pd.DataFrame, lo, hi) -> pd.Series:
    """Mask of the customers (:func:`read_customer_firsts`, dates parsed) whose first CRM account was opened
    from ``lo`` to ``hi`` with no order and no opportunity before it: new potentials."""
    fa = firsts["first_account"]
    return (fa.notna() & (fa >= lo) & (fa <= hi) & (firsts["first_order"].isna() | (firsts["first_order"] > fa))
            & (firsts["first_opp"].isna() | (firsts["first_opp"] >= fa)))


def new_potential_conversion(firsts: pd.DataFrame, as_of, burn_in_days: int = 0, mature_days: int = 120,
                             by="region") -> pd.DataFrame:
    """Potential→opportunity as a flow rate, per master customer.

    ``firsts`` has per customer ``first_account`` (first CRM account created), ``first_order``,
    ``first_opp`` and ``first_contact`` (NaT if none; :func:`read_customer_firsts`). A customer becomes a
    **potential** (潜在客户) when a rep qualifies it and opens its CRM account; a name that was only called or
    visited and never got an account is still 待识别 and is not counted (an opportunity hangs on a CRM account,
    so only a customer with one can convert; the lifecycle funnel and the target lists use the same event).
    A **new potential** is a customer whose first account was created

    * on or after the day both the order history and the contact history have begun (the later of the earliest
      order and the earliest contact; either alone when the other is missing) plus ``burn_in_days`` — before it
      "no order yet" cannot be checked, and long-standing customers' accounts are older; raise
      ``burn_in_days`` when the CRM was filled by a migration that stamped old accounts with the import date;
    * at least ``mature_days`` before ``as_of`` (time to convert);
    * with no order before the account and no opportunity before it.

    Converted = has an opportunity created on or after the account, by ``as_of``.
    """
    dims = _dims(by)
    f = _dated(firsts)
    begun = [d for d in (f["first_order"].min(), f["first_contact"].min()) if pd.notna(d)]
    history = max(begun) if begun else pd.NaT
    new = _new_potentials(f, history + pd.Timedelta(days=burn_in_days),
                          pd.Timestamp(as_of) - pd.Timedelta(days=mature_days))
    f = f[new].assign(converted=lambda d: d["first_opp"].notna().astype(int))
    if dims:
        g = f.groupby(dims, observed=True).agg(new_potentials=("converted", "size"),
                                               converted=("converted", "sum")).reset_index()
    else:
        g = pd.DataFrame([{"new_potentials": len(f), "converted": int(f["converted"].sum())}])
    g["potential_to_opportunity"] = np.where(g["new_potentials"] > 0,
                                             g["converted"] / g["new_potentials"].clip(lower=1), np.nan)
    return g.sort_values(dims).reset_index(drop=True) if dims else g


# --------------------------------------------------------------------------------------------------
# customer-resource plan (客户资源计划)

PLAN_COLUMNS = ["region", "revenue_target", "orders", "opportunities", "potentials", "leads"]


@dataclass(frozen=True)
class PlanRates:
    """target→potential, potential→opportunity, opportunity→order, as exact fractions."""

    target_to_potential: Fraction
    potential_to_opportunity: Fraction
    opportunity_to_order: Fraction


def _fraction(text: str) -> Fraction:
    """Exact value of a decimal string ('0.1' → 1/10); raises ValueError if not a finite number."""
    t = str(text).strip().replace(",", "")
    if not t:
        raise ValueError("empty")
    f = Fraction(t)  # accepts '250', '0.02', '1e3'; no binary float anywhere
    return f


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def parse_rates(text: str) -> PlanRates:
    parts = [s.strip() for s in str(text).split(",")]
    if len(parts) != 3:
        raise UserError(f"--rates needs three comma-separated rates, got {text!r}",
                        hint="target→potential,potential→opportunity,opportunity→order, e.g. 0.02,0.1,0.5")
    vals = []
    for name, s in zip(("target→potential", "potential→opportunity", "opportunity→order"), parts, strict=False):
        try:
            v = _fraction(s)
        except (ValueError, ZeroDivisionError):
            raise UserError(f"--rates: {name} rate {s!r} is not a number") from None
        if not 0 < v <= 1:
            raise UserError(f"--rates: {name} rate {s} must be in (0, 1]")
        vals.append(v)
    return PlanRates(*vals)


def parse_positive(text: str, what: str) -> Fraction:
    try:
        v = _fraction(text)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"{what} {text!r} is not a number") from None
    if v <= 0:
        raise UserError(f"{what} must be greater than 0, got {text}")
    return v


TARGET_HINT = ("write the region's revenue target as a plain number >= 0, without units such as 万, in the "
               "same unit as --avg-order-value")


def read_targets(path: str | Path) -> list[tuple[str, Fraction, str]]:
    """Read ``region,revenue_target`` rows → [(region, exact target, target as written)].

    UTF-8 (with or without BOM) or GB18030 (Excel on Chinese Windows). Errors name file, row (the line
    number as a spreadsheet shows it, header = 1) and column.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("targets file not found", file=str(path))
    text = read_text(path)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise UserError("the file is empty; expected a header row region,revenue_target", file=str(path))
    cols = [h.strip().lower() for h in header]
    for need in ("region", "revenue_target"):
        if need not in cols:
            raise UserError(f"missing column {need!r} (found: {', '.join(header)})", file=str(path),
                            column=need, hint="the header must be: region,revenue_target")
    ir, it = cols.index("region"), cols.index("revenue_target")
    out, seen = [], {}
    for lineno, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue  # blank lines are harmless
        region = row[ir].strip() if ir < len(row) else ""
        value = row[it].strip() if it < len(row) else ""
        if not region:
            raise UserError("region is blank", file=str(path), row=lineno, column="region")
        if region in seen:
            raise UserError(f"region {region!r} appears twice (first on row {seen[region]})",
                            file=str(path), row=lineno, column="region", hint="one row per region")
        try:
            target = _fraction(value)
        except (ValueError, ZeroDivisionError):
            raise UserError(f"revenue_target {value!r} is not a number" if value else "revenue_target is blank", file=str(path), row=lineno,
                            column="revenue_target", hint=TARGET_HINT) from None
        if target < 0:
            raise UserError(f"revenue_target {value} is negative", file=str(path), row=lineno,
                            column="revenue_target", hint=TARGET_HINT)
        seen[region] = lineno
        out.append((region, target, value.replace(",", "")))
    if not out:
        raise UserError("no data rows under the header", file=str(path))
    return out


def resource_plan(targets: list[tuple[str, Fraction, str]], avg_order_value: Fraction,
                  rates: PlanRates | dict[str, PlanRates]) -> pd.DataFrame:
    """Work back from revenue to orders, opportunities, potentials and leads (target customers).

    Each stage is rounded up before the next: orders = ⌈target / avg order value⌉, opportunities =
    ⌈orders / (opportunity→order)⌉, potentials = ⌈opportunities / (potential→opportunity)⌉, leads =
    ⌈potentials / (target→potential)⌉. Exact rational arithmetic: 250/10 is 25, never 25.000000000004.
    ``rates`` is one set for all regions or a dict per region.
    """
    rows = []
    for region, target, written in targets:
        r = rates[region] if isinstance(rates, dict) else rates
        orders = _ceil(Fraction(target) / avg_order_value)
        opps = _ceil(orders / r.opportunity_to_order)
        pots = _ceil(opps / r.potential_to_opportunity)
        leads = _ceil(pots / r.target_to_potential)
        rows.append({"region": region, "revenue_target": written, "orders": orders,
                     "opportunities": opps, "potentials": pots, "leads": leads})
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


# each plan rate's denominator column in :func:`historical_rates` and what it counts
RATE_BASES = {"target_to_potential": ("target", "listed targets with a complete window"),
              "potential_to_opportunity": ("new_potentials", "new potentials (CRM accounts opened since the "
                                                             "order and contact history began)"),
              "opportunity_to_order": ("decided", "decided deals")}


def pooled_rates(rates_wide: pd.DataFrame) -> dict[str, float]:
    """All regions together, each rate weighted by its own denominator (targets, new potentials, decided
    deals): the fallback for a region too small to have a history of its own."""
    w = rates_wide
    out = {}
    for name, (den, _) in RATE_BASES.items():
        if name not in w or den not in w:
            continue
        d = pd.to_numeric(w[den], errors="coerce").fillna(0)
        r = pd.to_numeric(w[name], errors="coerce").fillna(0)
        out[name] = float((r * d).sum() / d.sum()) if d.sum() > 0 else float("nan")
    return out


def historical_plan_rates(rates_wide: pd.DataFrame, regions: Iterable[str], digits: int = 4,
                          file: str | None = None, notes: list[str] | None = None,
                          db: str | None = None) -> dict[str, PlanRates]:
    """Per-region PlanRates from :func:`historical_rates` output, rounded to ``digits`` decimals (the
    printed rates reproduce the plan). A region with no history for a step (no conversions yet) takes the
    pooled rate of all regions for that step, and ``notes`` says so; an unknown region is an error (naming
    the targets ``file``), no region with history for a step too (naming the database ``db``)."""
    by_region = rates_wide.set_index("region")
    pooled = pooled_rates(rates_wide)
    out = {}
    names = ("target_to_potential", "potential_to_opportunity", "opportunity_to_order")
    for region in regions:
        if region not in by_region.index:
            raise UserError(f"region {region!r} has no customers in the database (known: "
                            f"{', '.join(map(str, by_region.index))})", file=file, column="region",
                            hint="use the database's region names or pass --rates")
        vals = []
        for n in names:
            v = by_region.at[region, n]
            if pd.isna(v) or round(float(v), digits) <= 0:
                v = pooled.get(n, float("nan"))
                if pd.isna(v) or round(float(v), digits) <= 0:
                    den, what = RATE_BASES[n]
                    base = (int(pd.to_numeric(rates_wide[den], errors="coerce").fillna(0).sum())
                            if den in rates_wide else 0)
                    held = f"{base} {what}, none converted" if base else f"no {what}"
                    raise UserError(f"no region has historical {n.replace('_', ' ')} conversions yet ({held})",
                                    file=db, hint="pass --rates for this plan")
                if notes is not None:
                    notes.append(f"{region}: no {n.replace('_', ' ')} history of its own; "
                                 f"using all regions' rate {float(v):.{digits}f}")
            vals.append(Fraction(f"{float(v):.{digits}f}"))
        out[region] = PlanRates(*vals)
    return out


def plan_actuals(con, state: pd.DataFrame, as_of, p: FunnelParams, months: int = 12) -> pd.DataFrame:
    """What the ``months`` months ending on ``as_of`` produced at each stage of the plan, per region, in the
    plan's own units (``region, target, potential, opportunity, order``): target-list entries listed (NaN
    without lists), new potentials (CRM accounts opened, no order or opportunity before), opportunities
    created and deals won (the plan's order = one won deal, as :func:`won_revenue` counts them). ``state`` =
    :func:`current_state` as of ``as_of``."""
    from . import target_lists as tg

    start = period_start(as_of, months)
    f = _dated(read_customer_firsts(con, as_of, p.contact_sources))
    pot = f[_new_potentials(f, start, pd.Timestamp(as_of))].groupby("region").size().rename("potential")
    created = state[(state["created_at"] >= start) & (state["created_at"] < _cutoff(as_of))]
    opp = created.groupby("region").size().rename("opportunity")
    order = won_revenue(state, as_of, months).set_index("region")["orders"].rename("order")
    out = pd.concat([pot, opp, order], axis=1).fillna(0).astype(int)
    if tg.has_targets(con):
        listed = tg.read_listed_counts(con, start, as_of).set_index("region")["listed"].rename("target")
        out = out.join(listed, how="outer").fillna(0).astype(int)
    else:
        out["target"] = np.nan
    out.index.name = "region"
    return out.reset_index()[["region", "target", "potential", "opportunity", "order"]]


def plan_vs_actual(plan: pd.DataFrame, actual_rates: pd.DataFrame) -> pd.DataFrame:
    """Plan counts next to the actual counts per region (``actual_rates`` columns ``target, potential,
    opportunity, order``, e.g. :func:`plan_actuals`) and the gap (actual - plan)."""
    act = actual_rates.rename(columns={"target": "leads_actual", "potential": "potentials_actual",
                                       "opportunity": "opportunities_actual", "order": "orders_actual"})
    m = plan.merge(act[["region", "leads_actual", "potentials_actual", "opportunities_actual",
                        "orders_actual"]], on="region", how="left")
    for c in ("orders", "opportunities", "potentials", "leads"):
        m[f"{c}_gap"] = m[f"{c}_actual"] - m[c]
    return m


def won_revenue(state: pd.DataFrame, as_of, months: int = 12, by="region") -> pd.DataFrame:
    """Deals won in the ``months`` months ending on ``as_of``: revenue (Σ amount, 万元), orders (won
    deals) and avg_order_value per group — the plan's revenue basis: one won opportunity = one order."""
    dims = _dims(by)
    w = closed_between(state, period_start(as_of, months), as_of)
    w = w[w["status"] == "won"]
    g = w.groupby(dims, observed=True).agg(revenue=("amount", "sum"), orders=("opp_id", "size")).reset_index()
    g["avg_order_value"] = g["revenue"] / g["orders"]
    return g.sort_values(dims).reset_index(drop=True)


def plan_for_regions(rates_wide: pd.DataFrame, revenue: pd.DataFrame, p: FunnelParams,
                     actual_wide: pd.DataFrame | None = None) -> pd.DataFrame:
    """The notebook's plan vs actual (actual = ``actual_wide``, e.g. the last 12 months' lifecycle counts;
    default ``rates_wide``): targets from ``p.plan_targets`` (else ``revenue`` per region, e.g.
    :func:`won_revenue`, × (1 + plan_growth)), average order value from ``p.plan_avg_order_value`` (else the region's own),
    rates from ``p.plan_rates`` (else the region's historical lifecycle rates). Regions without usable
    history are skipped. Returns :func:`plan_vs_actual` plus the inputs used per region."""
    rev = revenue.set_index("region")
    if p.plan_targets:
        targets = {r: Fraction(str(v)) for r, v in p.plan_targets.items()}
    else:
        growth = Fraction(str(p.plan_growth))
        targets = {r: Fraction(f"{v:.2f}") * (1 + growth) for r, v in rev["revenue"].items()}
    frames = []
    for region, target in sorted(targets.items()):
        aov = p.plan_avg_order_value or (rev["avg_order_value"].get(region) if region in rev.index else None)
        if not aov or pd.isna(aov):
            continue
        try:
            rates = (PlanRates(*(Fraction(str(r)) for r in p.plan_rates)) if p.plan_rates
                     else historical_plan_rates(rates_wide, [region])[region])
        except UserError:
            continue
        plan = resource_plan([(region, target, f"{float(target):.2f}")], Fraction(f"{aov:.4f}"), rates)
        plan["avg_order_value"] = round(float(aov), 4)
        plan["rates"] = ", ".join(f"{float(x):.4f}" for x in (rates.target_to_potential,
                                  rates.potential_to_opportunity, rates.opportunity_to_order))
        frames.append(plan)
    if not frames:
        return pd.DataFrame(columns=[*PLAN_COLUMNS, "avg_order_value", "rates"])
    return plan_vs_actual(pd.concat(frames, ignore_index=True),
                          rates_wide if actual_wide is None else actual_wide)


RATE_NAMES = ["target_to_potential", "potential_to_opportunity", "opportunity_to_order"]


def truth_rates(manifest: dict, which: str = "by_region") -> pd.DataFrame:
    """The demo generator's conversion rates per region from ``manifest.json``: ``by_region`` (the nominal
    rates it simulates with) or ``realized_by_region`` (what its world actually produced, target→potential
    measured on its target lists over ``target_window_days``). One row per region, columns RATE_NAMES (missing = NaN)."""
    src = (manifest.get("conversion_rates") or {}).get(which) or {}
    rows = [{"region": r, **{n: (v or {}).get(n) for n in RATE_NAMES}} for r, v in sorted(src.items())]
    return pd.DataFrame(rows, columns=["region", *RATE_NAMES]).astype({n: float for n in RATE_NAMES})


def compare_with_truth(rates: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """Recovered rate per region and step next to the generator's nominal and realized rates, with the
    absolute difference from the realized rate (from the nominal one where none was realized)."""
    def long(df, name):
        return df.melt("region", value_vars=RATE_NAMES, var_name="step", value_name=name)
    m = (long(truth_rates(manifest, "by_region"), "nominal")
         .merge(long(truth_rates(manifest, "realized_by_region"), "realized"), on=["region", "step"], how="outer")
         .merge(long(rates, "recovered"), on=["region", "step"], how="left"))
    m["abs_diff"] = (m["recovered"] - m["realized"].fillna(m["nominal"])).abs()
    return m.sort_values(["step", "region"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# database readers (thin)




def read_opportunities(con, as_of) -> pd.DataFrame:
    """Opportunities created by ``as_of`` with their customer and breakdown columns.

    ``customer_id``, ``region`` and ``industry`` come from the customer master through the xref
    (source 'crm', key account_id); when the master is not built yet, ``customer_id`` falls back to
    'crm:' + account_id and region/industry to the CRM account. ``rep_region`` is the owner rep's region.
    """
    master = table_exists(con, "customer_xref") and table_exists(con, "customer_master")
    if master:
        cust = """LEFT JOIN customer_xref x ON x.record_id = 'crm:' || o.account_id
                  LEFT JOIN customer_master m ON m.customer_id = x.customer_id"""
        cols = """coalesce(m.customer_id, 'crm:' || o.account_id) AS customer_id,
                  coalesce(m.region, a.region) AS region, coalesce(m.industry, a.industry) AS industry"""
    else:
        cust = ""
        cols = "'crm:' || o.account_id AS customer_id, a.region, a.industry"
    sql = f"""
        SELECT o.opp_id, o.account_id, {cols}, o.owner_rep_id AS rep_id, r.rep_name,
               r.region AS rep_region, o.product_line, o.amount, o.created_at, o.expected_close,
               o.lost_reason, o.competitor
        FROM stg_crm_opportunities o
        LEFT JOIN stg_crm_accounts a ON a.account_id = o.account_id
        LEFT JOIN stg_reps r ON r.rep_id = o.owner_rep_id
        {cust}
        WHERE o.created_at <= ?
        ORDER BY o.opp_id"""
    return con.execute(sql, [pd.Timestamp(as_of).date()]).df()


def read_stage_history(con, as_of) -> pd.DataFrame:
    return con.execute("""
        SELECT opp_id, stage, entered_at FROM stg_crm_opportunity_stages
        WHERE entered_at < ? ORDER BY opp_id, entered_at, stage""", [_cutoff(as_of).to_pydatetime()]).df()


def read_lifecycle(con, as_of, p: FunnelParams, since=None, with_lists: bool = True) -> pd.DataFrame:
    """Target customers with their furthest lifecycle stage as of ``as_of`` (needs the master).

    ``since`` (a date) counts only accounts opened, opportunities and orders dated from it on: the actuals of a
    plan period. Target customers are the same either way. ``with_lists=False`` leaves marketing's list
    entries out (the master's customers only)."""
    lo = pd.Timestamp(since).date() if since is not None else date(1900, 1, 1)
    if not all(table_exists(con, t) for t in ("customer_master", "customer_xref", "customer_records")):
        raise UserError("the customer master is not built yet", hint="run `crm resolve` first")
    d = pd.Timestamp(as_of).date()
    # a customer first seen after as_of was not a target yet
    customers = con.execute("""
        SELECT customer_id, region, industry, scope, owner_rep_id FROM customer_master
        WHERE first_seen IS NULL OR first_seen <= ? ORDER BY customer_id""", [d]).df()
    if p.lifecycle_scopes:
        customers = customers[customers["scope"].isin(p.lifecycle_scopes)]
    acts = con.execute(f"""
        SELECT DISTINCT customer_id, kind FROM ({activity_sql(con, potential_sources(con, p.contact_sources))})
        WHERE day >= ?""", [d, lo]).df()
    kind = acts["kind"]
    potentials = acts.loc[kind.isin(["account", "contact"]), "customer_id"]
    with_opp = acts.loc[kind == "opportunity", "customer_id"]
    with_order = acts.loc[kind == "order", "customer_id"]
    if with_lists:
        customers = _with_listed_targets(con, customers, d)
    return lifecycle_stage(customers, potentials, with_opp, with_order)


def _with_listed_targets(con, customers: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Customers plus the listed targets that are not customers yet, one row per region and industry with
    their count in ``n`` (customers count 1 each; :func:`lifecycle_funnel` weighs rows by it)."""
    from . import target_lists as tg

    if not tg.has_targets(con):
        return customers
    t = tg.read_unmatched_counts(con, as_of)
    if t.empty:
        return customers
    extra = t.assign(customer_id="targets:" + t["region"].fillna("").astype(str) + "|"
                     + t["industry"].fillna("").astype(str), scope=None, owner_rep_id=None)
    return pd.concat([customers.assign(n=1), extra], ignore_index=True)


def read_region_revenue(con, as_of, months: int = 12) -> pd.DataFrame:
    """ERP revenue per master region in the ``months`` months ending on ``as_of``: revenue (万元; orders
    are in 元), distinct orders, avg_order_value (万元 per order). Orders net of nothing (returns ignored)."""
    if not all(table_exists(con, t) for t in ("stg_orders", "customer_xref", "customer_master")):
        return pd.DataFrame(columns=["region", "revenue", "orders", "avg_order_value"])
    end = pd.Timestamp(as_of)
    start = period_start(end, months).date()
    df = con.execute("""
        SELECT coalesce(m.region, '(未知)') AS region, sum(o.amount) / 10000.0 AS revenue,
               count(DISTINCT o.order_id) AS orders
        FROM stg_orders o
        JOIN customer_xref x ON x.record_id = 'erp:' || o.erp_customer_id
        JOIN customer_master m ON m.customer_id = x.customer_id
        WHERE o.order_date BETWEEN ? AND ?
        GROUP BY ALL ORDER BY region""", [start, end.date()]).df()
    df["avg_order_value"] = df["revenue"] / df["orders"]
    return df


CONTACT_SOURCES = ("sales", "callcenter")


def activity_sql(con, contact_sources=CONTACT_SOURCES) -> str:
    """SELECT customer_id, kind, day: every dated activity of a master customer on or before the one
    parameter (as_of). Kinds: ``contact`` (customer records of ``contact_sources``; none when it is empty),
    ``account`` (CRM account created), ``opportunity`` (created), ``order`` (order date); a table the database
    lacks gives no rows. :func:`read_customer_firsts` and ``crmlib.target_lists`` aggregate it."""
    parts = []
    if contact_sources:
        srcs = ", ".join("'" + str(x).replace("'", "''") + "'" for x in contact_sources)
        parts.append(f"""SELECT x.customer_id, 'contact' AS kind, r.record_date AS day
                 FROM customer_xref x JOIN customer_records r USING (record_id) WHERE r.source IN ({srcs})""")
    for table, kind, day, record in (
            ("stg_crm_accounts", "account", "CAST(a.created_at AS DATE)", "'crm:' || a.account_id"),
            ("stg_crm_opportunities", "opportunity", "CAST(a.created_at AS DATE)", "'crm:' || a.account_id"),
            ("stg_orders", "order", "a.order_date", "'erp:' || a.erp_customer_id")):
        if table_exists(con, table):
            parts.append(f"""SELECT x.customer_id, '{kind}' AS kind, {day} AS day FROM {table} a
                             JOIN customer_xref x ON x.record_id = {record}""")
    if not parts:
        parts.append("SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS kind, NULL::DATE AS day")
    return f"""SELECT * FROM ({' UNION ALL '.join(parts)}) WHERE customer_id IS NOT NULL AND day <= ?"""


def potential_sources(con, contact_sources=CONTACT_SOURCES) -> tuple:
    """The contact sources whose records mark a potential (潜在客户): none when the database holds CRM accounts
    (an opened account marks it; a name only called or visited is still 待识别), else ``contact_sources``
    (no CRM export at all: a contact is the only sign there is)."""
    return () if table_exists(con, "stg_crm_accounts") else tuple(contact_sources)


def read_customer_firsts(con, as_of, contact_sources=CONTACT_SOURCES) -> pd.DataFrame:
    """Per master customer (with region): first CRM account created, first contact (a record of
    ``contact_sources``), first order, first opportunity, each on or before ``as_of``."""
    return con.execute(f"""
        WITH f AS (
            SELECT customer_id, min(day) FILTER (WHERE kind = 'account') AS first_account,
                   min(day) FILTER (WHERE kind = 'contact') AS first_contact,
                   min(day) FILTER (WHERE kind = 'order') AS first_order,
                   min(day) FILTER (WHERE kind = 'opportunity') AS first_opp
            FROM ({activity_sql(con, contact_sources)}) GROUP BY customer_id)
        SELECT m.customer_id, m.region, f.first_account, f.first_contact, f.first_order, f.first_opp
        FROM customer_master m LEFT JOIN f USING (customer_id)
        ORDER BY m.customer_id""", [pd.Timestamp(as_of).date()]).df()


def target_rates(con, as_of, p: FunnelParams) -> pd.DataFrame:
    """target→potential per region with its counts (``region, target, potential, target_to_potential``):
    from the target lists when they hold a complete window (:func:`crmlib.target_lists.read_target_conversion`;
    target = the cohort, potential = its conversions), else the lifecycle funnel's stock ratio."""
    from . import target_lists as tg

    if tg.has_targets(con):
        lc = (tg.read_target_conversion(con, as_of, p.target_window_days)
              .rename(columns={"targets": "target", "converted": "potential"}))
        if len(lc) and lc["target"].sum() > 0:
            lc.attrs["target_source"] = "lists"
            return lc
    # the master's customers only: young list entries would dilute the stock ratio they cannot measure yet
    lc = lifecycle_rates(lifecycle_funnel(read_lifecycle(con, as_of, p, with_lists=False), by="region"))
    lc.attrs["target_source"] = "lifecycle"
    return lc


# what :func:`historical_rates` reads: the master (`crm resolve`) and CRM opportunities (`crm load`)
PLAN_TABLES = ("customer_master", "customer_xref", "customer_records", "stg_crm_opportunities",
               "stg_crm_opportunity_stages", "stg_crm_accounts", "stg_reps")


def historical_rates(con, as_of, p: FunnelParams, funnel: FunnelData | None = None) -> pd.DataFrame:
    """The plan's historical rates per region (one row each, columns RATE_NAMES plus their counts):
    target→potential from marketing's target lists (``target`` = listed targets whose window is complete,
    ``potential`` = those that became potentials; :func:`crmlib.target_lists.read_target_conversion`) or, without
    lists, from the lifecycle funnel (potential / target customers, a stock ratio); potential→opportunity
    from new potentials (:func:`new_potential_conversion`), opportunity→order = win rate of decided deals
    (:func:`opportunity_win_rate`). The list rate and the last two are flow rates, which is what the
    seed's plan means. ``funnel``: the opportunities already read for ``as_of`` (:func:`read_funnel`), used
    instead of reading them again."""
    missing = [t for t in PLAN_TABLES if not table_exists(con, t)]
    if missing:
        raise UserError(f"the database has no {', '.join(missing)} table{'s' if len(missing) > 1 else ''}; "
                        "historical rates need loaded and resolved data", file=database_file(con),
                        hint="run `crm load` and `crm resolve` first, or pass --rates")
    lc = target_rates(con, as_of, p)
    source = lc.attrs.get("target_source")
    firsts = read_customer_firsts(con, as_of, p.contact_sources)
    npc = new_potential_conversion(firsts, as_of, p.new_potential_burn_in_days, p.new_potential_mature_days)
    same = funnel is not None and funnel.as_of == pd.Timestamp(as_of).date() and funnel.params == p
    fd = funnel if same else read_funnel(con, as_of, p)
    win = opportunity_win_rate(fd.state, by="region")
    out = (lc[["region", "target", "potential", "target_to_potential"]]
           .merge(npc, on="region", how="outer").merge(win[["region", "decided", "opportunity_to_order"]],
                                                       on="region", how="outer"))
    out = out.sort_values("region").reset_index(drop=True)
    out.attrs["target_source"] = source  # "lists" or "lifecycle": which target→potential this is
    return out


@dataclass
class FunnelData:
    as_of: date
    params: FunnelParams
    opps: pd.DataFrame
    history: pd.DataFrame

    @functools.cached_property
    def state(self) -> pd.DataFrame:
        """:func:`current_state`, computed once (2 s at scale 100; the notebook, the weekly figures and the
        plan's rates all ask for it). Treat it as read-only."""
        return current_state(self.opps, self.history, self.params, self.as_of)

    def progress(self, window_months: int | None = None) -> pd.DataFrame:
        return opportunity_progress(self.opps, self.history, self.params, self.as_of, window_months)

    def durations(self) -> pd.DataFrame:
        return stage_durations(self.opps, self.history, self.params, self.as_of)


class NoOpportunities(MissingData):
    """No opportunity created on or before the date: there is no funnel to draw."""

    what = {"zh": "商机数据（CRM 商机导出 crm/opportunities*.csv）",
            "en": "opportunities (the CRM export crm/opportunities*.csv)"}


def read_funnel(con, as_of=None, params: FunnelParams | None = None) -> FunnelData:
    """Opportunities and stage history known at ``as_of`` (None = newest data date). Raises
    :class:`NoOpportunities` when there are none."""
    p = params or load_params()
    from .asof import resolve
    as_of = resolve(con, as_of)
    opps = read_opportunities(con, as_of) if table_exists(con, "stg_crm_opportunities") else pd.DataFrame()
    if opps.empty:
        raise NoOpportunities(f"no opportunities created on or before {as_of} (table stg_crm_opportunities): "
                              "the funnel has nothing to show", file=database_file(con),
                              hint="load the CRM's opportunity exports (crm/opportunities*.csv and "
                                   "crm/opportunity_stages*.csv) with `crm load`, or check the date")
    return FunnelData(as_of, p, opps, read_stage_history(con, as_of))


def funnel_weekly_metrics(con, as_of, params: FunnelParams | None = None, cache: dict | None = None) -> dict:
    """Flat headline numbers for metrics.json (prefix ``funnel_``), all as of ``as_of``: stage entries
    after it are ignored, so last week's figures are recomputed with ``as_of - 7 days``.

    open_count/open_amount (open deals, 万元), weighted_pipeline (Σ amount × stage probability),
    win_rate_90d (won / closed among deals closed in the ``win_rate_days`` days ending on as_of, both
    ends inclusive) and closed_90d, lead_to_order (lifecycle: customers with an order / target customers,
    listed targets included; None without the master), opp_win_conversion (opportunities whose window has elapsed: share won within
    it), stuck_deals, overdue_deals. Raises :class:`NoOpportunities` when there are none at ``as_of``.
    ``cache``: a dict that receives, per date, the tables these figures come from (``state``, ``progress``,
    ``lifecycle``), for the managers' report of the same run (``crmlib.metrics.save_frames``).
    """
    if not table_exists(con, "stg_crm_opportunity_stages"):
        raise NoOpportunities("no opportunity stage history (table stg_crm_opportunity_stages)",
                              file=database_file(con), hint="run `crm load` on the CRM exports")
    fd = read_funnel(con, as_of, params)
    p, st = fd.params, fd.state
    open_ = st[st["status"] == "open"]
    start = pd.Timestamp(fd.as_of) - pd.Timedelta(days=p.win_rate_days - 1)
    wl = win_loss(st, start, fd.as_of).iloc[0]
    progress = fd.progress()
    mature = progress.query("window_complete")
    try:
        lifecycle = read_lifecycle(con, fd.as_of, p)
        lc = lifecycle_funnel(lifecycle, by=None).set_index("stage")["customers"]
        lead_to_order = lc["order"] / lc["target"] if lc["target"] else None
    except UserError:
        lifecycle, lead_to_order = None, None
    if cache is not None:
        cache[fd.as_of] = {"state": st, "progress": progress, "lifecycle": lifecycle}

    def num(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)

    return {
        "funnel_open_count": int(len(open_)),
        "funnel_open_amount": num(open_["amount"].fillna(0).sum()),
        "funnel_weighted_pipeline": num(weighted_pipeline(st, p)["weighted"].sum()),
        "funnel_win_rate_90d": num(wl["win_rate"]),
        "funnel_closed_90d": int(wl["closed"]),
        "funnel_lead_to_order": num(lead_to_order),
        "funnel_opp_win_conversion": num(mature["won"].mean()) if len(mature) else None,
        "funnel_stuck_deals": int(len(stuck_deals(st, p))),
        "funnel_overdue_deals": int(len(overdue_deals(st, p, fd.as_of))),
    }


# --------------------------------------------------------------------------------------------------
# CLI: crm plan


def _cmd_plan(args) -> int:
    from .asof import parse, resolve

    targets = read_targets(args.targets)
    aov = parse_positive(args.avg_order_value, "--avg-order-value")
    parse(args.as_of, "--as-of")  # a bad date is an error with --rates too, where it is not used
    if args.rates:
        rates = parse_rates(args.rates)
        note = f"rates (given): target→potential {args.rates.split(',')[0].strip()}, " \
               f"potential→opportunity {args.rates.split(',')[1].strip()}, " \
               f"opportunity→order {args.rates.split(',')[2].strip()}"
    else:
        from .db import connect
        p = load_params()
        con = connect(args.db, read_only=True)
        try:
            as_of = resolve(con, args.as_of, "--as-of", command="plan", other_way="leave --as-of out, or pass --rates")
            wide = historical_rates(con, as_of, p)
            db_file = database_file(con)
            t2p = (f"target→potential = listed targets that became potentials within {p.target_window_days} days"
                   if wide.attrs.get("target_source") == "lists" else "target→potential = potential / target customers")
        finally:
            con.close()
        fallbacks: list[str] = []
        rates = historical_plan_rates(wide, [t[0] for t in targets], file=str(args.targets), notes=fallbacks,
                                      db=db_file)
        lines = [f"  {r}: {float(v.target_to_potential):.4f}, {float(v.potential_to_opportunity):.4f}, "
                 f"{float(v.opportunity_to_order):.4f}" for r, v in rates.items()]
        note = ("no --rates given: using each region's historical rates from the database "
                f"(as of {as_of}; {t2p}, potential→opportunity = "
                "new potentials (CRM accounts opened since the history began) that got an opportunity, "
                "opportunity→order = win rate of decided deals):\n"
                + "\n".join(lines) + "".join(f"\n  note: {n}" for n in fallbacks))
    plan = resource_plan(targets, aov, rates)
    print(note)
    print(plan.to_string(index=False))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # BOM so Excel on Chinese Windows shows the region names correctly
        plan.to_csv(out, index=False, encoding="utf-8-sig")
        print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    sp = subparsers.add_parser(
        "plan", help="customer-resource plan: revenue targets → orders → opportunities → potentials → leads",
        description="Work back from revenue targets per region (CSV with columns region,revenue_target) "
                    "to the orders, opportunities, potential and target customers needed, rounding up "
                    "at each stage.")
    sp.add_argument("targets", help="CSV with columns region,revenue_target")
    sp.add_argument("--avg-order-value", required=True,
                    help="average order value, same unit as revenue_target (e.g. 10 万元)")
    sp.add_argument("--rates", help="target→potential,potential→opportunity,opportunity→order, e.g. "
                                    "0.02,0.1,0.5 (default: each region's historical rates from the database)")
    sp.add_argument("--out", help="write the plan to this CSV")
    sp.add_argument("--db", help="database (default data/curated/crm.duckdb); only used without --rates")
    sp.add_argument("--as-of", help="date for historical rates (default: newest data)")
    sp.set_defaults(func=_cmd_plan)
