"""Customer segmentation: lifecycle stage, scope cross-tabs, RFM, KMeans clusters, slipping-away list.

Pure functions take a :class:`History` (frames keyed by master ``customer_id``) plus params and return
frames; :func:`read_history` is the thin part that reads the DuckDB tables through ``customer_xref``.
Rules and thresholds are documented in ``params/segments.yaml``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pydantic import model_validator

from . import params as params_mod
from .errors import MissingData, UserError
from .i18n import tr

# ---------------------------------------------------------------------------------------------- params

STAGES = ["待识别", "潜在", "机会", "订单", "用户", "流失"]
NOT_YET = "(未出现)"  # row label in the transition matrix for customers not yet known at the earlier date

# every (from, to) pair the stage rules can produce between two dates a week apart, given
# contact_days >= 7 and new_order_days <= churn_days - 7 (both enforced by StageRules); tests cover each.
ALLOWED_TRANSITIONS = {
    ("待识别", "潜在"), ("待识别", "机会"), ("待识别", "订单"), ("待识别", "用户"),
    ("潜在", "待识别"), ("潜在", "机会"), ("潜在", "订单"), ("潜在", "用户"),
    ("机会", "潜在"), ("机会", "订单"), ("机会", "用户"), ("机会", "流失"),
    ("订单", "用户"),
    ("用户", "流失"), ("用户", "机会"),
    ("流失", "机会"), ("流失", "用户"),
}


class StageRules(params_mod.Params):
    contact_days: int = 90
    new_order_days: int = 90
    churn_days: int = 365
    service_call_types: list[str] = ["报修", "投诉"]


class RfmSegment(params_mod.Params):
    key: str
    zh: str
    en: str
    r: tuple[int, int]
    fm: tuple[int, int]


class RfmParams(params_mod.Params):
    bins: int = 5
    segments: list[RfmSegment]

    @model_validator(mode="after")
    def _covers_grid(self):
        missing = [(r, fm) for r in range(1, self.bins + 1) for fm in range(1, self.bins + 1)
                   if not any(s.r[0] <= r <= s.r[1] and s.fm[0] <= fm <= s.fm[1] for s in self.segments)]
        if missing:
            raise ValueError(f"rfm.segments leave (r, fm) cells without a segment: {missing}")
        return self


class ClusterParams(params_mod.Params):
    features: list[str]
    k_min: int = 2
    k_max: int = 8
    n_init: int = 10
    random_state: int = 42
    stability_seeds: list[int] = [1, 2, 3, 4, 5]
    silhouette_sample: int | None = 5000
    recency_cap_days: int = 730
    rate_min_days: int = 365
    payment_cap_days: int = 90
    buyers_only: bool = True
    # share of the distance each feature carries after scaling (1 when not listed): features that measure
    # one thing (revenue and orders per year) can share one unit instead of counting twice
    weights: dict[str, float] = {}
    names_zh: dict[int, list[str]] = {}
    names_en: dict[int, list[str]] = {}

    @model_validator(mode="after")
    def _check(self):
        bad = [f for f in self.features if f not in CLUSTER_FEATURES]
        if bad:
            raise ValueError(f"unknown cluster features {bad}; choose from {CLUSTER_FEATURES}")
        stray = [f for f in self.weights if f not in self.features]
        if stray:
            raise ValueError(f"weights given for {stray}, which are not among the features {self.features}")
        if any(not w > 0 for w in self.weights.values()):
            raise ValueError("feature weights must be > 0")
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError("need 2 <= k_min <= k_max")
        if self.rate_min_days < 1 or self.payment_cap_days < 1:
            raise ValueError("rate_min_days and payment_cap_days must be >= 1")
        return self


class SlippingParams(params_mod.Params):
    top_share: float = 0.2
    no_contact_days: int = 90
    no_order_days: int = 180
    exclude_stages: list[str] = ["流失"]


class SegmentsParams(params_mod.Params):
    transition_days: int = 7
    stages: StageRules = StageRules()
    rfm: RfmParams
    clusters: ClusterParams
    slipping: SlippingParams = SlippingParams()

    @model_validator(mode="after")
    def _check(self):
        s = self.stages
        # these two keep the week-over-week matrix within ALLOWED_TRANSITIONS (see its comment)
        if s.contact_days < self.transition_days:
            raise ValueError("stages.contact_days must be >= transition_days")
        if s.new_order_days > s.churn_days - self.transition_days:
            raise ValueError("stages.new_order_days must be <= stages.churn_days - transition_days")
        return self


def load_params(**overrides) -> SegmentsParams:
    return params_mod.load(SegmentsParams, "segments", **overrides)


LABELS = {
    "待识别": {"zh": "待识别", "en": "To identify"},
    "潜在": {"zh": "潜在", "en": "Potential"},
    "机会": {"zh": "机会", "en": "Opportunity"},
    "订单": {"zh": "订单", "en": "Ordering"},
    "用户": {"zh": "用户", "en": "User"},
    "流失": {"zh": "流失", "en": "Churned"},
    NOT_YET: {"zh": "(未出现)", "en": "(not yet known)"},
    "stage": {"zh": "生命周期阶段", "en": "Lifecycle stage"},
    "customers": {"zh": "客户数", "en": "Customers"},
    "recency_days": {"zh": "最近购买距今天数 (距 as_of)", "en": "Days since last order (to as_of)"},
    "frequency": {"zh": "订单数", "en": "Orders"},
    "revenue_per_year": {"zh": "年均净销售额", "en": "Net revenue per year"},
    "orders_per_year": {"zh": "年均订单数", "en": "Orders per year"},
    "days_late": {"zh": "平均付款逾期天数 (负数 = 提前)", "en": "Mean days paid after due date (negative = early)"},
    "monetary": {"zh": "净销售额", "en": "Net revenue"},
    "r_score": {"zh": "R 分 (5=最近下单)", "en": "R score (5 = ordered most recently)"},
    "fm_score": {"zh": "FM 分", "en": "FM score"},
    "scope": {"zh": "客户范围", "en": "Scope"},
    "region": {"zh": "区域", "en": "Region"},
    "industry": {"zh": "行业", "en": "Industry"},
    "cluster": {"zh": "聚类", "en": "Cluster"},
    "revenue_share": {"zh": "收入占比", "en": "Revenue share"},
    "customer_share": {"zh": "客户占比", "en": "Customer share"},
    "silhouette": {"zh": "轮廓系数", "en": "Silhouette"},
    "from": {"zh": "上周阶段", "en": "Stage a week earlier"},
    "to": {"zh": "本周阶段", "en": "Stage now"},
    "no_contact": {"zh": "久未联系", "en": "No contact"},
    "no_order": {"zh": "久未下单", "en": "No order"},
}


# --------------------------------------------------------------------------------------------- history

@dataclass
class History:
    """Everything the segments need, keyed by master ``customer_id``; dates are ``datetime64``.

    customers: customer_id (+ optional first_seen, name, scope, region, industry, owner_rep_id)
    orders: customer_id, order_id, order_date, amount (net of returns)
    contacts: customer_id, date, channel (visit / call)
    service: customer_id, date (repair tickets and service-type calls)
    opportunities: customer_id, opp_id, created_at, closed_at (NaT = still open)
    reps: rep_id, rep_name, left_at
    receipts: customer_id, due_date, paid_date (NaT = unpaid) of ERP invoices; None = not read
    """

    customers: pd.DataFrame
    orders: pd.DataFrame = field(default_factory=lambda: _empty(["customer_id", "order_id", "order_date", "amount"]))
    contacts: pd.DataFrame = field(default_factory=lambda: _empty(["customer_id", "date", "channel"]))
    service: pd.DataFrame = field(default_factory=lambda: _empty(["customer_id", "date"]))
    opportunities: pd.DataFrame = field(
        default_factory=lambda: _empty(["customer_id", "opp_id", "created_at", "closed_at"]))
    reps: pd.DataFrame = field(default_factory=lambda: _empty(["rep_id", "rep_name", "left_at"]))
    receipts: pd.DataFrame | None = None

    def __post_init__(self):
        dated = [(self.orders, ["order_date"]), (self.contacts, ["date"]), (self.service, ["date"]),
                 (self.opportunities, ["created_at", "closed_at"]),
                 (self.customers, ["first_seen"] if "first_seen" in self.customers else [])]
        if self.receipts is not None:
            dated.append((self.receipts, ["due_date", "paid_date"]))
        for frame, cols in dated:
            for c in cols:
                # day resolution: a call at 10:00 on as_of happened "on or before as_of"
                frame[c] = pd.to_datetime(frame[c]).dt.normalize()
        if "order_id" not in self.orders:  # no order ids (e.g. CDNOW): one order per customer-day
            self.orders["order_id"] = self.orders["order_date"].dt.strftime("%Y-%m-%d")

    def newest_date(self) -> date | None:
        dates = [self.orders["order_date"].max(), self.contacts["date"].max(), self.service["date"].max(),
                 self.opportunities["created_at"].max(), self.opportunities["closed_at"].max()]
        dates = [d for d in dates if pd.notna(d)]
        return max(dates).date() if dates else None


def _empty(cols):
    return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})


def _ts(as_of) -> pd.Timestamp:
    return pd.Timestamp(as_of).normalize()


# ------------------------------------------------------------------------------------------- lifecycle

def customer_facts(h: History, as_of, rules: StageRules) -> pd.DataFrame:
    """Per customer, as of ``as_of`` (events dated after it ignored): the facts the stage rules use."""
    t = _ts(as_of)
    out = h.customers[["customer_id"]].drop_duplicates().set_index("customer_id")

    o = h.orders[h.orders["order_date"] <= t]
    g = o.groupby("customer_id")
    out["first_order"] = g["order_date"].min()
    out["last_order"] = g["order_date"].max()
    out["n_orders"] = g["order_id"].nunique()
    out["revenue"] = g["amount"].sum()

    s = h.service[h.service["date"] <= t].merge(out["first_order"].reset_index(), on="customer_id")
    out["service_after_first_order"] = s[s["date"] >= s["first_order"]].groupby("customer_id").size()
    out["n_tickets"] = h.service[h.service["date"] <= t].groupby("customer_id").size()

    op = h.opportunities[h.opportunities["created_at"] <= t]
    is_open = op["closed_at"].isna() | (op["closed_at"] > t)
    out["open_opps"] = op[is_open].groupby("customer_id").size()
    out["n_opportunities"] = op.groupby("customer_id").size()
    out["n_contacts"] = h.contacts[h.contacts["date"] <= t].groupby("customer_id").size()

    closed = op.loc[~is_open, ["customer_id", "closed_at"]].rename(columns={"closed_at": "date"})
    touches = pd.concat([
        h.contacts[["customer_id", "date"]], h.service[["customer_id", "date"]],
        op[["customer_id", "created_at"]].rename(columns={"created_at": "date"}), closed,
    ])
    touches = touches[touches["date"] <= t]
    out["last_contact"] = touches.groupby("customer_id")["date"].max()
    first_event = pd.concat([touches, o[["customer_id", "order_date"]].rename(columns={"order_date": "date"})])
    out["first_event"] = first_event.groupby("customer_id")["date"].min()
    # the earliest event of all time (not cut at t) decides whether an undated customer existed at t
    ever = pd.concat([h.contacts[["customer_id", "date"]], h.service[["customer_id", "date"]],
                      h.opportunities[["customer_id", "created_at"]].rename(columns={"created_at": "date"}),
                      h.orders[["customer_id", "order_date"]].rename(columns={"order_date": "date"})])
    first_ever = ever.groupby("customer_id")["date"].min().reindex(out.index)

    for c in ("n_orders", "service_after_first_order", "n_tickets", "open_opps", "n_opportunities",
              "n_contacts"):
        out[c] = out[c].fillna(0).astype(int)
    out["revenue"] = out["revenue"].fillna(0.0)
    out["days_since_order"] = (t - out["last_order"]).dt.days
    out["days_since_contact"] = (t - out["last_contact"]).dt.days
    out["days_since_first_order"] = (t - out["first_order"]).dt.days

    # known at t: the master saw it by then, or it has an event by then; no date at all = always known
    if "first_seen" in h.customers:
        fs = h.customers.drop_duplicates("customer_id").set_index("customer_id")["first_seen"]
        known_from = pd.concat([fs.reindex(out.index), first_ever], axis=1).min(axis=1)
    else:
        known_from = first_ever
    out["known"] = known_from.isna() | (known_from <= t)
    return out.reset_index()


def assign_stage(facts: pd.DataFrame, rules: StageRules) -> pd.Series:
    """Apply the ordered stage rules (see params/segments.yaml) to :func:`customer_facts` output."""
    has_orders = facts["n_orders"] > 0
    churned_by_age = has_orders & (facts["days_since_order"] > rules.churn_days)
    has_open = facts["open_opps"] > 0
    new_order = (has_orders & (facts["n_orders"] == 1) & (facts["service_after_first_order"] == 0)
                 & (facts["days_since_first_order"] <= rules.new_order_days))
    recent_touch = facts["days_since_contact"].notna() & (facts["days_since_contact"] <= rules.contact_days)
    conditions = [
        churned_by_age & has_open,
        churned_by_age,
        new_order,
        has_orders,
        has_open,
        recent_touch,
    ]
    stage = np.select(conditions, ["机会", "流失", "订单", "用户", "机会", "潜在"], default="待识别")
    stage = pd.Series(stage, index=facts.index, dtype="object")
    stage[~facts["known"].astype(bool)] = None
    return stage


def lifecycle_stages(h: History, as_of, rules: StageRules) -> pd.DataFrame:
    """One row per master customer: stage as of ``as_of`` (None when not yet known) plus the facts."""
    facts = customer_facts(h, as_of, rules)
    facts.insert(1, "stage", assign_stage(facts, rules))
    return facts.sort_values("customer_id", kind="stable").reset_index(drop=True)


ATTRIBUTES = ["name", "scope", "region", "industry", "owner_rep_id"]


def with_attributes(frame: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (keyed by customer_id) plus the master attributes used for filters and cross-tabs."""
    keep = ["customer_id"] + [c for c in ATTRIBUTES if c in customers and c not in frame]
    return frame.merge(customers[keep].drop_duplicates("customer_id"), on="customer_id", how="left")


def stage_counts(stages: pd.DataFrame) -> pd.Series:
    """Customers per stage in lifecycle order (zeros kept); unknown-yet customers are not counted."""
    return stages["stage"].value_counts().reindex(STAGES, fill_value=0).rename("customers")


def transition_matrix(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Counts of customers by (stage at the earlier date) x (stage at the later date).

    Rows: STAGES plus NOT_YET (customers unknown at the earlier date); columns: STAGES.
    """
    m = before[["customer_id", "stage"]].merge(after[["customer_id", "stage"]], on="customer_id",
                                                suffixes=("_from", "_to"))
    m = m[m["stage_to"].notna()]
    m["stage_from"] = m["stage_from"].fillna(NOT_YET)
    tab = pd.crosstab(m["stage_from"], m["stage_to"])
    return tab.reindex(index=STAGES + [NOT_YET], columns=STAGES, fill_value=0).rename_axis(
        index="from", columns="to")


def transitions(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Customers whose stage changed (who moved where), ordered by customer_id."""
    m = before[["customer_id", "stage"]].merge(after[["customer_id", "stage"]], on="customer_id",
                                                suffixes=("_from", "_to"))
    m = m[m["stage_to"].notna()]
    m["stage_from"] = m["stage_from"].fillna(NOT_YET)
    return m[m["stage_from"] != m["stage_to"]].sort_values("customer_id").reset_index(drop=True)


# ------------------------------------------------------------------------------------ scope, cross-tabs

def crosstab(customers: pd.DataFrame, index: str, columns: str, values: str | None = None,
             margins: bool = True) -> pd.DataFrame:
    """Customer counts (or the sum of ``values``) by ``index`` x ``columns``; missing shown as '(空)'."""
    df = customers.copy()
    for c in (index, columns):
        df[c] = df[c].fillna("(空)").astype(str)
    if values is None:
        tab = pd.crosstab(df[index], df[columns], margins=margins, margins_name="合计")
    else:
        tab = pd.crosstab(df[index], df[columns], values=df[values].fillna(0), aggfunc="sum",
                          margins=margins, margins_name="合计").fillna(0)
    return tab


def filter_customers(df: pd.DataFrame, region=None, industry=None, rep=None) -> pd.DataFrame:
    """Rows matching every given filter (None or '(全部)' = no filter); used by the notebook widgets."""
    mask = pd.Series(True, index=df.index)
    for col, val in (("region", region), ("industry", industry), ("owner_rep_id", rep)):
        if val not in (None, "", "(全部)", "(all)") and col in df:
            mask &= df[col] == val
    return df[mask]


# ------------------------------------------------------------------------------------------------- RFM

def equal_count_scores(values: pd.Series, ids: pd.Series, bins: int = 5,
                       higher_is_better: bool = True) -> np.ndarray:
    """Scores 1..bins in equal-count groups: sort worst -> best by value, ties by ascending id.

    score = position * bins // n + 1, so group sizes differ by at most one and a tie straddling a
    boundary is split by customer id (lower id -> lower score). Deterministic for any input order.
    """
    n = len(values)
    if n == 0:
        return np.array([], dtype=int)
    key = values.to_numpy(dtype=float) if higher_is_better else -values.to_numpy(dtype=float)
    # numeric ids sort as numbers, others as strings (C000010 after C000009 either way)
    tie = ids.to_numpy() if pd.api.types.is_numeric_dtype(ids) else ids.astype(str).to_numpy()
    order = np.lexsort((tie, key))  # last key is primary
    score = np.empty(n, dtype=int)
    score[order] = np.arange(n) * bins // n + 1
    return score


def rfm_table(orders: pd.DataFrame, as_of, rfm: RfmParams) -> pd.DataFrame:
    """RFM per customer with at least one order on or before ``as_of``.

    recency_days = as_of - last order date, in days (0 = ordered on as_of). This is NOT the
    buy-till-you-die recency (age at the last repeat purchase). frequency = distinct order_id
    (distinct order dates when there is no order_id column); monetary = sum of amount, rounded to 0.01. Scores via :func:`equal_count_scores`; fm_score = (f + m + 1) // 2.
    """
    t = _ts(as_of)
    o = orders.assign(order_date=pd.to_datetime(orders["order_date"]).dt.normalize())
    o = o[o["order_date"] <= t]
    if "order_id" not in o:
        o = o.assign(order_id=o["order_date"].dt.strftime("%Y-%m-%d"))
    g = o.groupby("customer_id")
    df = pd.DataFrame({
        "recency_days": (t - g["order_date"].max()).dt.days,
        "frequency": g["order_id"].nunique(),
        # cents: float noise in a sum must not decide a tie
        "monetary": g["amount"].sum().round(2),
    }).reset_index().sort_values("customer_id", kind="stable").reset_index(drop=True)
    ids = df["customer_id"]
    df["r_score"] = equal_count_scores(df["recency_days"], ids, rfm.bins, higher_is_better=False)
    df["f_score"] = equal_count_scores(df["frequency"], ids, rfm.bins)
    df["m_score"] = equal_count_scores(df["monetary"], ids, rfm.bins)
    df["fm_score"] = (df["f_score"] + df["m_score"] + 1) // 2
    df["rfm_code"] = (df["r_score"].astype(str) + df["f_score"].astype(str) + df["m_score"].astype(str))
    df["segment"] = rfm_segment(df["r_score"], df["fm_score"], rfm)
    return df


def rfm_segment(r: pd.Series, fm: pd.Series, rfm: RfmParams) -> pd.Series:
    """Segment key of the first params rule whose (inclusive) r and fm ranges hold the scores."""
    out = pd.Series(None, index=r.index, dtype="object")
    for seg in rfm.segments:
        hit = out.isna() & r.between(*seg.r) & fm.between(*seg.fm)
        out[hit] = seg.key
    return out


def segment_label(key: str, rfm: RfmParams, lang: str = "zh") -> str:
    for seg in rfm.segments:
        if seg.key == key:
            return seg.zh if lang == "zh" else seg.en
    return key


def rfm_summary(table: pd.DataFrame, rfm: RfmParams, lang: str = "zh") -> pd.DataFrame:
    """Per named segment (params order): customers, share, revenue share, mean R/F/M."""
    g = table.groupby("segment")
    out = pd.DataFrame({
        "customers": g.size(),
        "recency_days": g["recency_days"].mean(),
        "frequency": g["frequency"].mean(),
        "monetary": g["monetary"].mean(),
        "revenue": g["monetary"].sum(),
    }).reindex([s.key for s in rfm.segments]).fillna({"customers": 0, "revenue": 0})
    out["customers"] = out["customers"].astype(int)
    out["customer_share"] = out["customers"] / max(len(table), 1)
    total = table["monetary"].sum()
    out["revenue_share"] = out["revenue"] / total if total else 0.0
    out.insert(0, "name", [segment_label(k, rfm, lang) for k in out.index])
    return out


# --------------------------------------------------------------------------------------------- clusters

CLUSTER_FEATURES = ["revenue", "n_orders", "avg_order", "n_contacts", "n_opportunities", "n_tickets",
                    "recency_days", "tenure_days", "revenue_per_year", "orders_per_year", "days_late"]
# signed (days_late < 0 = paid early): standardised as they are; every other feature is a count, an
# amount or a number of days >= 0 and goes through log1p first (long right tails)
UNLOGGED_FEATURES = {"days_late"}


def payment_facts(receipts: pd.DataFrame, as_of, cap_days: int = 90) -> pd.DataFrame:
    """Per customer: mean days between due date and payment over its invoices due on or before as_of.

    An invoice still unpaid at as_of (no paid_date, or one after as_of) counts as paid on as_of, so a
    customer who stops paying does not look punctual; each invoice counts at most ``cap_days`` late
    (the usual "90+ days" ageing bucket), so one written-off invoice does not outweigh all the others.
    Negative = paid early. Columns: customer_id, days_late, invoices_due.
    """
    t = _ts(as_of)
    due = pd.to_datetime(receipts["due_date"])
    r, due = receipts[due <= t], due[due <= t]
    paid = pd.to_datetime(r["paid_date"])
    paid = paid.where(paid <= t, t)   # NaT compares False -> as_of
    late = ((paid - due).dt.days).clip(upper=cap_days).astype(float)
    g = late.groupby(r["customer_id"])
    out = pd.DataFrame({"days_late": g.mean(), "invoices_due": g.size()})
    return out.rename_axis("customer_id").reset_index()


def cluster_features(facts: pd.DataFrame, as_of, cp: ClusterParams,
                     receipts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Raw (unlogged) behavioural features per known customer from :func:`customer_facts` output.

    Per-year rates divide by the years the customer has been known (first event to as_of, at least
    ``rate_min_days``: a young account's "per year" is what it did so far, not an extrapolation), so
    old accounts do not outrank equally active younger ones. ``days_late`` (:func:`payment_facts`)
    needs ``receipts`` (:func:`read_history` with ``receipts=True``); customers without an invoice due
    get NaN there, which :func:`fit_clusters` fills with the median.
    """
    t = _ts(as_of)
    f = facts[facts["known"].astype(bool)].copy()
    f["revenue"] = f["revenue"].clip(lower=0)  # net of returns can dip below zero; log1p needs >= 0
    f["avg_order"] = np.where(f["n_orders"] > 0, f["revenue"] / f["n_orders"].clip(lower=1), 0.0)
    f["recency_days"] = f["days_since_order"].fillna(cp.recency_cap_days).clip(upper=cp.recency_cap_days)
    f["tenure_days"] = (t - f["first_event"]).dt.days.fillna(0)
    years = f["tenure_days"].clip(lower=cp.rate_min_days) / 365.0
    f["revenue_per_year"] = f["revenue"] / years
    f["orders_per_year"] = f["n_orders"] / years
    if receipts is None:
        if "days_late" in cp.features:
            raise UserError("cluster feature days_late needs the ERP receipts",
                            hint="read the history with read_history(con, receipts=True) and pass h.receipts")
        f["days_late"] = np.nan
    else:
        pay = payment_facts(receipts, t, cp.payment_cap_days).set_index("customer_id")["days_late"]
        f["days_late"] = f["customer_id"].map(pay)
    return (f[["customer_id"] + CLUSTER_FEATURES].sort_values("customer_id", kind="stable")
            .reset_index(drop=True))


@dataclass
class ClusterResult:
    labels: pd.DataFrame      # customer_id, cluster (0 = highest mean revenue, -1 = not clustered), name
    profile: pd.DataFrame     # per cluster: name, customers, shares, feature means
    silhouette: pd.DataFrame  # k, silhouette
    k: int
    stability: pd.DataFrame   # seed, ari (vs the random_state run)


def _scaled(features: pd.DataFrame, cols: list[str], weights: dict[str, float] | None = None) -> np.ndarray:
    """log1p (except UNLOGGED_FEATURES), missing values -> the column's median, then StandardScaler; each
    column then times the square root of its weight (1 when not given), so that a feature's share of the
    squared distance KMeans minimises is its weight."""
    from sklearn.preprocessing import StandardScaler
    parts = []
    for c in cols:
        x = features[c].to_numpy(dtype=float)
        x = x if c in UNLOGGED_FEATURES else np.log1p(x)
        med = np.nanmedian(x) if np.isfinite(x).any() else 0.0
        parts.append(np.where(np.isnan(x), med, x))
    w = np.sqrt([float((weights or {}).get(c, 1.0)) for c in cols])
    return StandardScaler().fit_transform(np.column_stack(parts)) * w


def _kmeans(X, k, cp: ClusterParams, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: on a few thousand customers KMeans' threads spend their time waiting for each
    # other, worst when the weekly run executes two notebooks at once on two cores (9 fits took 43 s with
    # the default threads, 1.7 s with one, on the default demo). Same labels (checked on the demo; the
    # centers differ in the 15th digit).
    with threadpool_limits(limits=1, user_api="openmp"):
        return KMeans(n_clusters=k, n_init=cp.n_init, random_state=seed).fit_predict(X)


def cluster_names(k: int, cp: ClusterParams, lang: str = "zh") -> list[str]:
    """Names for clusters ordered by mean revenue (highest first)."""
    names = (cp.names_zh if lang == "zh" else cp.names_en).get(k)
    if names and len(names) == k:
        return list(names)
    hi, mid, lo = ("高价值", "中价值", "低价值") if lang == "zh" else ("High value", "Mid value", "Low value")
    return [hi] + [f"{mid}-{i}" for i in range(1, k - 1)] + [lo]


NO_ORDERS = {"zh": "无订单", "en": "No orders"}


class NoOrders(MissingData):
    """No customer has an order: there is no buying behaviour to cluster."""

    what = {"zh": "订单数据（ERP 订单导出 erp/orders*.csv）", "en": "orders (the ERP export erp/orders*.csv)"}


def fit_clusters(features: pd.DataFrame, cp: ClusterParams, lang: str = "zh",
                 progress: bool = False) -> ClusterResult:
    """log1p (not days_late) -> StandardScaler -> KMeans for k in [k_min, k_max]; keep the best silhouette.

    With ``buyers_only`` only customers with an order are clustered (without orders there is no
    behaviour that tells value apart); the others get cluster -1, named 无订单 / No orders.
    Clusters are renumbered by mean revenue (0 = highest) so labels compare across seeds; stability is
    the adjusted Rand index of each ``stability_seeds`` run against the ``random_state`` run.
    """
    from sklearn.metrics import adjusted_rand_score, silhouette_score
    from tqdm.auto import tqdm

    fit_mask = (features["n_orders"] > 0).to_numpy() if cp.buyers_only else np.ones(len(features), bool)
    fit = features[fit_mask]
    n = len(fit)
    if n == 0 and cp.buyers_only:
        raise NoOrders("no customer has an order (table stg_orders): nothing to cluster",
                       hint="load the ERP's orders (erp/orders*.csv) with `crm load`, or check the as_of date")
    if n < cp.k_min + 1:
        raise UserError(f"only {n} customers to cluster: too few", hint="check the as_of date and data")
    X = _scaled(fit, cp.features, cp.weights)
    sample = cp.silhouette_sample if cp.silhouette_sample and n > cp.silhouette_sample else None
    rows, runs = [], {}
    for k in tqdm(range(cp.k_min, min(cp.k_max, n - 1) + 1), desc="k", disable=not progress):
        lab = _kmeans(X, k, cp, cp.random_state)
        sil = (silhouette_score(X, lab, sample_size=sample, random_state=cp.random_state)
               if len(set(lab)) > 1 else float("nan"))
        rows.append({"k": k, "silhouette": float(sil)})
        runs[k] = lab
    sil = pd.DataFrame(rows)
    k = int(sil.sort_values(["silhouette", "k"], ascending=[False, True]).iloc[0]["k"])  # tie -> smaller k
    fit_labels = _order_by_revenue(runs[k], fit["revenue"].to_numpy())

    stab = [{"seed": s, "ari": float(adjusted_rand_score(fit_labels, _kmeans(X, k, cp, s)))}
            for s in cp.stability_seeds]
    names = cluster_names(k, cp, lang)
    labels = np.full(len(features), -1)
    labels[fit_mask] = fit_labels
    all_names = {**dict(enumerate(names)), -1: NO_ORDERS["zh" if lang == "zh" else "en"]}
    lab_df = pd.DataFrame({"customer_id": features["customer_id"].to_numpy(), "cluster": labels})
    lab_df["name"] = lab_df["cluster"].map(all_names)
    return ClusterResult(lab_df, cluster_profile(features, labels, all_names, cp.features), sil, k,
                         pd.DataFrame(stab, columns=["seed", "ari"]))


def _order_by_revenue(labels: np.ndarray, revenue: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..k-1 by descending mean revenue (ties by original label)."""
    ks = np.unique(labels)
    means = [(-revenue[labels == c].mean(), c) for c in ks]
    mapping = {c: i for i, (_, c) in enumerate(sorted(means))}
    return np.array([mapping[c] for c in labels])


def cluster_profile(features: pd.DataFrame, labels: np.ndarray, names, cols: list[str]) -> pd.DataFrame:
    """Per cluster (-1 = not clustered, last): name, customers, customer share, revenue share, mean of
    each raw feature."""
    df = features.assign(cluster=labels)
    g = df.groupby("cluster")
    prof = g[sorted(set(cols) | {"revenue"}, key=CLUSTER_FEATURES.index)].mean()
    prof.insert(0, "customers", g.size())
    prof.insert(1, "customer_share", prof["customers"] / len(df))
    total = df["revenue"].sum()
    prof.insert(2, "revenue_share", g["revenue"].sum() / total if total else 0.0)
    prof.insert(0, "name", [names[c] for c in prof.index])
    return prof.loc[sorted(prof.index, key=lambda c: (c < 0, c))]


# ---------------------------------------------------------------------------------------- slipping away

def slipping_away(stages: pd.DataFrame, customers: pd.DataFrame, reps: pd.DataFrame,
                  sp: SlippingParams) -> pd.DataFrame:
    """Valuable customers (top ``top_share`` by revenue) with no touch / no order for too long.

    Value rank: revenue descending, then customer_id; only customers with revenue > 0 are ranked and
    the top ceil(top_share * n) are valuable. Output ordered by revenue desc, then customer_id.
    """
    s = stages[stages["stage"].notna() & (stages["revenue"] > 0)]
    s = s.sort_values(["revenue", "customer_id"], ascending=[False, True], kind="stable")
    top = s.head(math.ceil(sp.top_share * len(s))).copy()
    top["no_contact"] = top["days_since_contact"].isna() | (top["days_since_contact"] > sp.no_contact_days)
    top["no_order"] = top["days_since_order"] > sp.no_order_days
    out = top[(top["no_contact"] | top["no_order"]) & ~top["stage"].isin(sp.exclude_stages)]
    out = with_attributes(out, customers)
    keep = ["customer_id"] + [c for c in ATTRIBUTES if c in out]
    if "owner_rep_id" in out and len(reps):
        r = reps[["rep_id", "rep_name"] + (["left_at"] if "left_at" in reps else [])]
        out = out.merge(r.rename(columns={"rep_id": "owner_rep_id", "left_at": "rep_left_at"}),
                        on="owner_rep_id", how="left")
    cols = keep + [c for c in ("rep_name", "rep_left_at") if c in out] + [
        "stage", "revenue", "last_order", "days_since_order", "last_contact", "days_since_contact",
        "no_contact", "no_order"]
    return out[cols].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ database

def read_history(con, rules: StageRules | None = None, receipts: bool = False) -> History:
    """Read master customers and their orders / contacts / service / opportunities through the xref;
    with ``receipts`` also the ERP invoices (for the days_late cluster feature; the weekly metrics and
    the managers' view do not need them)."""
    from .db import table_exists

    rules = rules or StageRules()
    for t in ("customer_master", "customer_xref", "customer_records"):
        if not table_exists(con, t):
            raise UserError(f"table {t} not found", hint="run `crm load` and `crm resolve` first")

    def q(sql, params=None):
        return con.execute(sql, params or []).df()

    def has(t):
        return table_exists(con, t)

    xref = """(SELECT r.source, r.source_key, x.customer_id FROM customer_records r
               JOIN customer_xref x USING (record_id) WHERE x.customer_id IS NOT NULL)"""
    customers = q("SELECT * FROM customer_master ORDER BY customer_id")
    orders = q(f"""SELECT x.customer_id, o.order_id, o.order_date,
                     sum(coalesce(o.amount, 0) - coalesce(o.returned_amount, 0)) AS amount
                   FROM stg_orders o JOIN {xref} x ON x.source = 'erp' AND x.source_key = o.erp_customer_id
                   WHERE o.order_date IS NOT NULL
                   GROUP BY ALL ORDER BY x.customer_id, o.order_id""") if has("stg_orders") else None
    parts = []
    if has("stg_sales_visits"):
        parts.append(f"""SELECT x.customer_id, CAST(coalesce(v.visit_date, v.report_date) AS TIMESTAMP) AS date,
                   'visit' AS channel FROM stg_sales_visits v
                   JOIN {xref} x ON x.source = 'sales' AND x.source_key = v.record_key""")
    if has("stg_calls"):
        parts.append(f"""SELECT x.customer_id, CAST(c.called_at AS TIMESTAMP) AS date, 'call' AS channel
                   FROM stg_calls c JOIN {xref} x ON x.source = 'callcenter' AND x.source_key = c.call_id""")
    contacts = q(" UNION ALL ".join(parts) + " ORDER BY 1, 2, 3") if parts else None
    parts = []
    if has("stg_tickets"):
        parts.append(f"""SELECT x.customer_id, CAST(t.opened_at AS TIMESTAMP) AS date FROM stg_tickets t
                   JOIN {xref} x ON x.source = 'service' AND x.source_key = t.ticket_id""")
    if has("stg_calls") and rules.service_call_types:
        types = ", ".join("'" + s.replace("'", "''") + "'" for s in rules.service_call_types)
        parts.append(f"""SELECT x.customer_id, CAST(c.called_at AS TIMESTAMP) AS date FROM stg_calls c
                   JOIN {xref} x ON x.source = 'callcenter' AND x.source_key = c.call_id
                   WHERE c.call_type IN ({types})""")
    service = q(" UNION ALL ".join(parts) + " ORDER BY 1, 2") if parts else None
    # a closed deal without closed_at: its last update is the best date we have for the close
    opps = q(f"""SELECT x.customer_id, o.opp_id, CAST(o.created_at AS TIMESTAMP) AS created_at,
                   CAST(coalesce(o.closed_at, CASE WHEN o.status IN ('won', 'lost') THEN o.updated_at END)
                        AS TIMESTAMP) AS closed_at
                 FROM stg_crm_opportunities o
                 JOIN {xref} x ON x.source = 'crm' AND x.source_key = o.account_id
                 WHERE o.created_at IS NOT NULL ORDER BY x.customer_id, o.opp_id""") \
        if has("stg_crm_opportunities") else None
    reps = q("SELECT rep_id, rep_name, left_at FROM stg_reps ORDER BY rep_id") if has("stg_reps") else None
    rec = None
    if receipts:  # no receipts file loaded: an empty frame (days_late then carries no information)
        rec = q(f"""SELECT x.customer_id, r.due_date, r.paid_date FROM stg_receipts r
                    JOIN {xref} x ON x.source = 'erp' AND x.source_key = r.erp_customer_id
                    WHERE r.due_date IS NOT NULL ORDER BY x.customer_id, r.receipt_id""") \
            if has("stg_receipts") else _empty(["customer_id", "due_date", "paid_date"])
    kw = {k: v for k, v in dict(orders=orders, contacts=contacts, service=service, opportunities=opps,
                                  reps=reps, receipts=rec).items() if v is not None}
    return History(customers=customers, **kw)


def resolve_as_of(h: History, as_of) -> date:
    """For a history that comes without a database (a transaction file, a test): None = its newest
    event. Histories read from the database take :func:`crmlib.asof.resolve` instead, as every analysis."""
    if as_of in (None, ""):
        d = h.newest_date()
        if d is None:
            raise UserError("no dated events in the history", hint="pass as_of explicitly")
        return d
    try:
        return pd.Timestamp(as_of).date()
    except ValueError:
        raise UserError(f"as_of {as_of!r} is not a date", hint="use YYYY-MM-DD") from None


STAGE_KEYS = {"待识别": "to_identify", "潜在": "potential", "机会": "opportunity", "订单": "ordering",
              "用户": "user", "流失": "churned"}


def weekly_metrics(h: History, as_of, p: SegmentsParams, stages: dict | None = None) -> dict:
    """Flat headline numbers (prefix ``segments_``) for metrics.json; pure version of
    :func:`segments_weekly_metrics`. "This week" = (as_of - transition_days, as_of]. ``stages``: a dict
    of :func:`lifecycle_stages` by date, kept across calls with the same history and params (this week's
    "before" is last week's "now")."""
    t = resolve_as_of(h, as_of)
    stages = {} if stages is None else stages
    before = stages_at(h, t - timedelta(days=p.transition_days), p.stages, stages)
    now = stages_at(h, t, p.stages, stages)
    m = before[["customer_id", "stage"]].merge(now[["customer_id", "stage"]], on="customer_id",
                                                suffixes=("_from", "_to"))
    slip = slipping_away(now, h.customers, h.reps, p.slipping)
    out = {"segments_as_of": t.isoformat(), "segments_customers": int(now["stage"].notna().sum())}
    for stage, n in stage_counts(now).items():
        out[f"segments_stage_{STAGE_KEYS[stage]}"] = int(n)
    out.update({
        "segments_new_customers_week": int((m["stage_from"].isna() & m["stage_to"].notna()).sum()),
        "segments_lost_week": int(((m["stage_to"] == "流失") & (m["stage_from"] != "流失")).sum()),
        "segments_won_back_week": int(((m["stage_from"] == "流失") & m["stage_to"].isin(["机会", "用户"])).sum()),
        "segments_slipping_away": int(len(slip)),
    })
    return out


def segments_weekly_metrics(con, as_of, params: SegmentsParams | None = None, cache: dict | None = None) -> dict:
    """Counts per lifecycle stage, new customers this week, lost (流失) this week, slipping-away count.

    Flat dict, keys prefixed ``segments_``. ``as_of`` None = the database's default (crmlib.asof).
    ``cache``: a dict kept across the calls of one run with the same database and params; the history is
    then read once and each date's stages computed once.
    """
    from .asof import resolve
    p = params or load_params()
    cache = {} if cache is None else cache
    return weekly_metrics(history_in(con, p.stages, cache), resolve(con, as_of), p, cache.setdefault("stages", {}))


def history_in(con, rules: StageRules, cache: dict) -> History:
    """:func:`read_history` (without receipts), read once per ``cache`` (one run, same database)."""
    if "history" not in cache:
        cache["history"] = read_history(con, rules)
    return cache["history"]


def stages_at(h: History, day, rules: StageRules, stages: dict) -> pd.DataFrame:
    """:func:`lifecycle_stages` at ``day``, kept in ``stages`` by date (same history and rules)."""
    if day not in stages:
        stages[day] = lifecycle_stages(h, day, rules)
    return stages[day]


def stage_label(stage: str, lang: str = "zh") -> str:
    return tr(LABELS, stage, lang)


# ------------------------------------------------------------------------------------ demo truth check

def map_to_truth(records: pd.DataFrame, truth_records: pd.DataFrame, truth_customers: pd.DataFrame) -> pd.DataFrame:
    """Master customer -> demo truth customer by majority vote of its records.

    records: customer_id, source, source_key (resolved records); truth_records: source, source_key,
    true_customer_id; truth_customers: true_customer_id, value_group (+ true_stage). Ties in the vote
    go to the smaller true_customer_id. Junk records (blank truth id) do not vote.
    """
    tr_ = truth_records[["source", "source_key", "true_customer_id"]].astype(str)
    tr_ = tr_[tr_["true_customer_id"].str.strip() != ""]
    m = records[["customer_id", "source", "source_key"]].astype(str).merge(tr_, on=["source", "source_key"])
    votes = m.groupby(["customer_id", "true_customer_id"]).size().rename("votes").reset_index()
    votes = votes.sort_values(["customer_id", "votes", "true_customer_id"], ascending=[True, False, True])
    best = votes.drop_duplicates("customer_id")[["customer_id", "true_customer_id"]]
    cols = [c for c in ("true_customer_id", "value_group", "true_stage", "latent_value") if c in truth_customers]
    tc = truth_customers[cols].astype({"true_customer_id": str})
    return best.merge(tc, on="true_customer_id", how="left").reset_index(drop=True)


def read_truth_map(con, truth_dir) -> pd.DataFrame | None:
    """:func:`map_to_truth` for the database's resolved records; None when there is no demo truth."""
    from pathlib import Path

    truth_dir = Path(truth_dir)
    if not (truth_dir / "records.csv").exists() or not (truth_dir / "customers.csv").exists():
        return None
    recs = con.execute("""SELECT x.customer_id, r.source, r.source_key FROM customer_records r
        JOIN customer_xref x USING (record_id) WHERE x.customer_id IS NOT NULL
        ORDER BY x.customer_id, r.record_id""").df()
    return map_to_truth(recs, pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False),
                        pd.read_csv(truth_dir / "customers.csv", dtype=str, keep_default_na=False))


def latent_reference_ari(labels: pd.DataFrame, truth_map: pd.DataFrame, k: int, cp: ClusterParams) -> float:
    """What "lining up" can reach: the ARI with ``value_group`` of KMeans with the same ``k`` (and the
    params' ``n_init``/``random_state``) on the log of the generator's hidden ``latent_value`` itself, over
    the same clustered customers. The value groups are quantile cuts of that continuous value, not
    clusters, so even the hidden value does not cluster into them exactly: this is the reference the
    behavioural clusters' ARI is read against (default demo: 0.50 against 0.65 at k = 3). NaN without
    ``latent_value``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    if "latent_value" not in truth_map:
        return float("nan")
    m = labels[labels["cluster"] >= 0].merge(truth_map[["customer_id", "value_group", "latent_value"]].dropna(),
                                            on="customer_id")
    if len(m) <= k:
        return float("nan")
    x = np.log(pd.to_numeric(m["latent_value"]).clip(lower=1e-12).to_numpy()).reshape(-1, 1)
    pred = KMeans(n_clusters=k, n_init=cp.n_init, random_state=cp.random_state).fit_predict(x)
    return float(adjusted_rand_score(m["value_group"], pred))


def truth_ari(labels: pd.DataFrame, truth_map: pd.DataFrame, column: str = "value_group") -> dict:
    """Adjusted Rand index between cluster labels and a truth column, over customers found in both:
    all of them, and only the clustered ones (cluster >= 0)."""
    from sklearn.metrics import adjusted_rand_score

    m = labels.merge(truth_map[["customer_id", column]].dropna(), on="customer_id")
    c = m[m["cluster"] >= 0]

    def score(d):
        return float(adjusted_rand_score(d[column], d["cluster"])) if len(d) else float("nan")

    # "all" counts the unclustered (no orders) as one more group; "clustered" is KMeans' own work
    return {"customers": int(len(m)), "ari": score(m), "customers_clustered": int(len(c)),
            "ari_clustered": score(c)}
