"""Customer value pyramid: indicators per customer, weighted score 0-100, tiers, concentration, migration.

Pure core (frames in, frames out, params passed in) plus thin readers: :func:`read_inputs` (DuckDB, master
customers) and :func:`read_transactions_csv` (a transaction list a user brings to ``crm pyramid``).

Conventions (also in ``params/value_model.yaml``):
- Everything is computed *as of* a date: rows dated after ``as_of`` are ignored.
- The scored customers are those with at least one order on or before ``as_of`` (prospects without
  orders belong to the funnel, not the pyramid).
- Normalisation: percentile rank by default, ``s = (average rank - 1) / (n - 1)``; winsorised min-max as an
  option. Direction -1 indicators are flipped so larger ``s`` is always better.
- Missing indicator values get ``missing_score`` (0.5, neutral). Indicators that do not vary are dropped.
- Tiers: ``vip`` if score > 80, ``important`` if > 60, ``ordinary`` if > 40, else ``small`` (strict ``>``),
  after rounding the score to 6 decimals. Loss-making (profit < 0) is a separate flag, not a tier.
- Concentration: top share uses ``k = ceil(top_share * n)`` customers ranked by value; Gini is
  ``2 * sum(i * x_(i)) / (n * sum x) - (n + 1) / n`` over ascending values.
"""
from __future__ import annotations

import json
import math
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr, field_validator, model_validator

from .asof import parse as parse_as_of
from .asof import resolve as resolve_as_of
from .db import table_exists
from .encoding import read_user_csv
from .errors import MissingData, UserError
from .params import Params, load, params_path
from .weights import ahp_weights, entropy_weights

FAMILIES = ("transaction", "finance", "contact", "profile")
TIERS = ("vip", "important", "ordinary", "small")          # best first
TIER_RANK = {t: i for i, t in enumerate(reversed(TIERS))}  # small 0 .. vip 3

# every indicator this module can compute, by family
INDICATORS = {
    "transaction": ("n_orders", "revenue", "profit", "gross_margin", "avg_order", "max_order",
                    "return_amount", "return_count", "return_rate", "tenure_days", "purchase_interval"),
    "finance": ("receipts_total", "max_receipt", "avg_receipt", "collection_days", "overdue_amount",
                "overdue_ratio"),
    "contact": ("activities", "praise", "complaints", "suggestions"),
    "profile": ("size", "registered_capital", "listed", "region", "industry"),
}
ALL_INDICATORS = tuple(i for fam in FAMILIES for i in INDICATORS[fam])

LABELS = {
    "vip": {"zh": "VIP客户", "en": "VIP"},
    "important": {"zh": "重要客户", "en": "Important"},
    "ordinary": {"zh": "普通客户", "en": "Ordinary"},
    "small": {"zh": "小客户", "en": "Small"},
    "transaction": {"zh": "交易", "en": "Transaction"},
    "finance": {"zh": "财务", "en": "Finance"},
    "contact": {"zh": "联系", "en": "Contact"},
    "profile": {"zh": "基本情况", "en": "Profile"},
    "n_orders": {"zh": "订单数", "en": "Orders"},
    "revenue": {"zh": "销售额", "en": "Revenue"},
    "profit": {"zh": "利润", "en": "Profit"},
    "gross_margin": {"zh": "毛利率", "en": "Gross margin"},
    "avg_order": {"zh": "平均订单额", "en": "Average order"},
    "max_order": {"zh": "最大订单额", "en": "Largest order"},
    "return_amount": {"zh": "退货金额", "en": "Returned amount"},
    "return_count": {"zh": "退货次数", "en": "Orders with returns"},
    "return_rate": {"zh": "退货率", "en": "Return rate"},
    "tenure_days": {"zh": "合作天数", "en": "Tenure (days)"},
    "purchase_interval": {"zh": "平均购买间隔(天)", "en": "Purchase interval (days)"},
    "receipts_total": {"zh": "回款总额", "en": "Receipts"},
    "max_receipt": {"zh": "最大回款", "en": "Largest receipt"},
    "avg_receipt": {"zh": "平均回款", "en": "Average receipt"},
    "collection_days": {"zh": "平均回款天数", "en": "Collection days"},
    "overdue_amount": {"zh": "逾期金额", "en": "Overdue amount"},
    "overdue_ratio": {"zh": "逾期比例", "en": "Overdue ratio"},
    "activities": {"zh": "相关活动数", "en": "Activities"},
    "praise": {"zh": "表扬次数", "en": "Praise"},
    "complaints": {"zh": "投诉次数", "en": "Complaints"},
    "suggestions": {"zh": "建议次数", "en": "Suggestions"},
    "size": {"zh": "企业规模", "en": "Company size"},
    "registered_capital": {"zh": "注册资本(万元)", "en": "Registered capital (10k CNY)"},
    "listed": {"zh": "是否上市", "en": "Listed"},
    "region": {"zh": "区域", "en": "Region"},
    "industry": {"zh": "行业", "en": "Industry"},
    "customers": {"zh": "客户数", "en": "Customers"},
    "score": {"zh": "价值得分", "en": "Value score"},
    "tier": {"zh": "层级", "en": "Tier"},
    "revenue_share": {"zh": "销售额占比", "en": "Revenue share"},
    "profit_share": {"zh": "利润占比", "en": "Profit share"},
    "loss_making": {"zh": "亏损客户", "en": "Loss-making"},
    "new": {"zh": "新增", "en": "New"},
    "gone": {"zh": "流失", "en": "Gone"},
}


# ---------------------------------------------------------------- parameters
class IndicatorSpec(Params):
    family: Literal["transaction", "finance", "contact", "profile"]
    direction: Literal[1, -1] = 1
    weight: float = Field(0.0, ge=0)
    levels: dict[str, float] | None = None


class Normalisation(Params):
    method: Literal["percentile", "minmax"] = "percentile"
    winsor: tuple[float, float] = (0.05, 0.95)

    @field_validator("winsor")
    @classmethod
    def _winsor_range(cls, v):
        if not 0 <= v[0] < v[1] <= 1:
            raise ValueError("winsor must be two quantiles 0 <= low < high <= 1")
        return v


class Cutoffs(Params):
    vip: float = 80.0
    important: float = 60.0
    ordinary: float = 40.0

    @model_validator(mode="after")
    def _descending(self):
        if not self.vip > self.important > self.ordinary:
            raise ValueError("cut-offs must satisfy vip > important > ordinary")
        return self


class AHPSpec(Params):
    criteria: list[Literal["transaction", "finance", "contact", "profile"]]
    matrix: list[list[float]]

    @field_validator("matrix", mode="before")
    @classmethod
    def _fractions(cls, v):
        # YAML has no fractions; "1/3" reads as a string, so accept it
        try:
            return [[float(Fraction(str(x))) for x in row] for row in v]
        except (ValueError, ZeroDivisionError, TypeError) as exc:
            raise ValueError(f"matrix entries must be numbers or fractions like 1/3 ({exc})") from None

    @model_validator(mode="after")
    def _square(self):
        n = len(self.criteria)
        if len(set(self.criteria)) != n or len(self.matrix) != n or any(len(r) != n for r in self.matrix):
            raise ValueError(f"matrix must be {n} x {n}, one row and column per distinct criterion")
        return self


class ValueModel(Params):
    weighting: Literal["manual", "ahp", "entropy"] = "manual"
    normalisation: Normalisation = Normalisation()
    missing_score: float = Field(0.5, ge=0, le=1)
    cutoffs: Cutoffs = Cutoffs()
    top_share: float = Field(0.2, gt=0, lt=1)
    migration_days: int = Field(7, ge=1)
    indicators: dict[str, IndicatorSpec]
    ahp: AHPSpec | None = None
    _source: str = PrivateAttr("params/value_model.yaml")  # the file it came from, for error messages

    @field_validator("indicators")
    @classmethod
    def _known(cls, v):
        unknown = sorted(set(v) - set(ALL_INDICATORS))
        if unknown:
            raise ValueError(f"unknown indicators {unknown}; known: {list(ALL_INDICATORS)}")
        for name, spec in v.items():
            fam = next(f for f in FAMILIES if name in INDICATORS[f])
            if spec.family != fam:
                raise ValueError(f"indicator {name} belongs to family {fam}, not {spec.family}")
        return v

    @model_validator(mode="after")
    def _ahp_present(self):
        if self.weighting == "ahp" and self.ahp is None:
            raise ValueError("weighting: ahp needs an `ahp` section (criteria + matrix)")
        return self


def load_params(path: str | Path | None = None, **overrides) -> ValueModel:
    params = load(ValueModel, path or "value_model", **overrides)
    if path:
        params._source = str(params_path(path))
    return params


class NothingToScore(MissingData):
    """The data leave nothing to rank (no weighted indicator varies): not a configuration error."""

    what = {"zh": "可评分的客户（至少两个订单或回款不同的客户，ERP 导出 erp/orders*.csv）",
            "en": "customers to rank (two or more who differ in orders or receipts: the ERP export erp/orders*.csv)"}


# ---------------------------------------------------------------- indicators (pure)
def _as_ts(as_of) -> pd.Timestamp:
    return pd.Timestamp(as_of).normalize()


def transaction_indicators(orders: pd.DataFrame, as_of) -> pd.DataFrame:
    """Per customer from order lines ``customer_id, order_id, order_date, amount[, cost, returned_amount]``.

    Lines with a null ``order_id`` are pure returns (count towards returns, not orders). Revenue is net of
    returns; profit = revenue - cost (NaN when no cost is known); gross margin NaN when revenue <= 0;
    purchase interval = (last - first order date) / (distinct order dates - 1), NaN for one date.
    """
    t = _as_ts(as_of)
    o = orders.copy()
    o["order_date"] = pd.to_datetime(o["order_date"]).dt.normalize()
    o = o[o["order_date"] <= t]
    for col in ("cost", "returned_amount"):
        if col not in o:
            o[col] = np.nan if col == "cost" else 0.0
    o["returned_amount"] = o["returned_amount"].fillna(0.0)
    g = o.groupby("customer_id", sort=True)
    out = pd.DataFrame({
        "gross": g["amount"].sum(),
        "return_amount": g["returned_amount"].sum(),
        "cost": g["cost"].sum(min_count=1),
        "n_orders": g["order_id"].nunique(),
    })
    out["revenue"] = out["gross"] - out["return_amount"]
    out["profit"] = out["revenue"] - out["cost"]
    out["gross_margin"] = (out["profit"] / out["revenue"]).where(out["revenue"] > 0)
    out["avg_order"] = (out["gross"] / out["n_orders"]).where(out["n_orders"] > 0)
    real = o[o["order_id"].notna()]
    per_order = real.groupby(["customer_id", "order_id"], sort=True).agg(
        value=("amount", "sum"), returned=("returned_amount", "sum"), day=("order_date", "min"))
    by_cust = per_order.groupby(level="customer_id")
    out["max_order"] = by_cust["value"].max()
    # orders with a return, plus return lines that belong to no order (a user's list: negative amounts)
    loose = o[o["order_id"].isna() & (o["returned_amount"] > 0)].groupby("customer_id").size()
    out["return_count"] = (per_order["returned"] > 0).groupby(level="customer_id").sum() \
        .add(loose, fill_value=0)
    out["return_rate"] = (out["return_amount"] / out["gross"]).where(out["gross"] > 0)
    first, last = by_cust["day"].min(), by_cust["day"].max()
    n_days = real.groupby("customer_id")["order_date"].nunique()
    out["tenure_days"] = (t - first).dt.days
    out["purchase_interval"] = ((last - first).dt.days / (n_days - 1)).where(n_days > 1)
    out["return_count"] = out["return_count"].fillna(0).astype(int)
    out = out[out["n_orders"] > 0]
    return out[list(INDICATORS["transaction"])]


# order lines of master customers up to a date; $1 = as_of
_ORDER_LINES_SQL = """
    SELECT x.customer_id, o.order_id, o.line_no, CAST(o.order_date AS DATE) AS order_date, o.amount, o.cost,
           o.returned_amount
    FROM stg_orders o JOIN customer_xref x ON x.record_id = 'erp:' || o.erp_customer_id
    WHERE x.customer_id IS NOT NULL AND o.order_date <= $1"""


def transaction_indicators_sql(con, as_of) -> pd.DataFrame:
    """:func:`transaction_indicators` of the database's order lines, aggregated inside DuckDB: the same
    frame (a test holds the two equal), without moving every order line into pandas (9.3M lines at
    ``--scale 100``: 16 s of pandas grouping and 7 s of conversion per date, against about 2 s here)."""
    t = _as_ts(as_of).date()
    df = con.execute(f"""
        WITH o AS (SELECT customer_id, order_id, order_date AS day, amount, cost,
                          coalesce(returned_amount, 0.0) AS ret FROM ({_ORDER_LINES_SQL})),
        per_order AS (SELECT customer_id, order_id, coalesce(sum(amount), 0.0) AS value, sum(ret) AS returned,
                             min(day) AS day
                      FROM o WHERE order_id IS NOT NULL GROUP BY customer_id, order_id),
        po AS (SELECT customer_id, max(value) AS max_order, count(*) FILTER (WHERE returned > 0) AS ret_orders,
                      min(day) AS first_day, max(day) AS last_day FROM per_order GROUP BY customer_id),
        c AS (SELECT customer_id, coalesce(sum(amount), 0.0) AS gross, sum(ret) AS return_amount,
                     sum(cost) AS cost, count(DISTINCT order_id) AS n_orders,
                     count(*) FILTER (WHERE order_id IS NULL AND ret > 0) AS loose,
                     count(DISTINCT day) FILTER (WHERE order_id IS NOT NULL) AS n_days
              FROM o GROUP BY customer_id)
        SELECT c.customer_id, c.n_orders, c.gross - c.return_amount AS revenue,
               c.gross - c.return_amount - c.cost AS profit,
               CASE WHEN c.gross - c.return_amount > 0
                    THEN (c.gross - c.return_amount - c.cost) / (c.gross - c.return_amount) END AS gross_margin,
               c.gross / c.n_orders AS avg_order, po.max_order, c.return_amount,
               coalesce(po.ret_orders, 0) + c.loose AS return_count,
               CASE WHEN c.gross > 0 THEN c.return_amount / c.gross END AS return_rate,
               date_diff('day', po.first_day, $1) AS tenure_days,
               CASE WHEN c.n_days > 1 THEN date_diff('day', po.first_day, po.last_day) / (c.n_days - 1) END
                   AS purchase_interval
        FROM c LEFT JOIN po USING (customer_id)
        WHERE c.n_orders > 0
        ORDER BY c.customer_id""", [t]).df()
    df = df.set_index("customer_id")
    for c in df.columns:
        if c not in ("n_orders", "return_count", "tenure_days"):
            df[c] = df[c].astype(float)
    return df[list(INDICATORS["transaction"])]


def finance_indicators(receipts: pd.DataFrame, as_of) -> pd.DataFrame:
    """Per customer from ``customer_id, invoice_date, due_date, paid_date, amount``.

    Only receipts invoiced on or before ``as_of`` count; a receipt is paid if ``paid_date <= as_of``;
    overdue if ``due_date < as_of`` and not paid by ``as_of``. Overdue ratio = overdue / amount due before
    as_of (NaN when nothing was due).
    """
    t = _as_ts(as_of)
    r = receipts.copy()
    for c in ("invoice_date", "due_date", "paid_date"):
        r[c] = pd.to_datetime(r[c]).dt.normalize()
    r = r[r["invoice_date"] <= t]
    paid = r["paid_date"].notna() & (r["paid_date"] <= t)
    due = r["due_date"] < t
    r = r.assign(paid_amt=r["amount"].where(paid), days=(r["paid_date"] - r["invoice_date"]).dt.days.where(paid),
                 due_amt=r["amount"].where(due, 0.0), overdue_amt=r["amount"].where(due & ~paid, 0.0))
    g = r.groupby("customer_id", sort=True)
    out = pd.DataFrame({
        "receipts_total": g["paid_amt"].sum(),
        "max_receipt": g["paid_amt"].max(),
        "avg_receipt": g["paid_amt"].mean(),
        "collection_days": g["days"].mean(),
        "overdue_amount": g["overdue_amt"].sum(),
    })
    out["overdue_ratio"] = (out["overdue_amount"] / g["due_amt"].sum()).where(g["due_amt"].sum() > 0)
    return out[list(INDICATORS["finance"])]


def contact_indicators(activities: pd.DataFrame | None, calls: pd.DataFrame | None, as_of) -> pd.DataFrame:
    """Counts up to ``as_of``: activities (``customer_id, activity_date``: visits + opportunities) and
    call-center praise / complaints / suggestions (``customer_id, called_at, call_type`` 表扬/投诉/建议)."""
    t = _as_ts(as_of)
    parts = []
    if activities is not None and len(activities):
        a = activities[pd.to_datetime(activities["activity_date"]).dt.normalize() <= t]
        parts.append(a.groupby("customer_id").size().rename("activities"))
    if calls is not None and len(calls):
        c = calls[pd.to_datetime(calls["called_at"]).dt.normalize() <= t]
        for name, kind in (("praise", "表扬"), ("complaints", "投诉"), ("suggestions", "建议")):
            parts.append(c[c["call_type"] == kind].groupby("customer_id").size().rename(name))
    out = pd.concat(parts, axis=1) if parts else pd.DataFrame()
    out.index.name = "customer_id"
    return out.reindex(columns=list(INDICATORS["contact"]))


def profile_indicators(profile: pd.DataFrame, params: ValueModel) -> pd.DataFrame:
    """Profile columns mapped to numbers: categorical ones through ``levels`` (unknown = missing)."""
    p = profile.set_index("customer_id")
    out = pd.DataFrame(index=p.index)
    for name in INDICATORS["profile"]:
        spec = params.indicators.get(name)
        col = p[name] if name in p else pd.Series(np.nan, index=p.index)
        if spec is not None and spec.levels is not None:
            # one lookup per distinct value (312k master customers at --scale 100, a handful of levels)
            level = {v: spec.levels.get(str(v).strip(), np.nan) for v in col.dropna().unique()}
            out[name] = col.map(level).astype(float)
        else:
            out[name] = pd.to_numeric(col, errors="coerce")
    return out


def compute_indicators(orders: pd.DataFrame | None, as_of, params: ValueModel,
                       receipts: pd.DataFrame | None = None, activities: pd.DataFrame | None = None,
                       calls: pd.DataFrame | None = None, profile: pd.DataFrame | None = None,
                       transactions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per customer with an order on or before ``as_of`` (index ``customer_id``, sorted).

    Families whose source frame is None are absent (columns not present); counts and amounts of a
    present family are 0 for a customer with no rows in it. ``transactions``: the transaction family
    already computed (:func:`transaction_indicators_sql`), instead of from ``orders``.
    """
    tx = transaction_indicators(orders, as_of) if transactions is None else transactions
    out = tx
    if receipts is not None:
        fin = finance_indicators(receipts, as_of).reindex(out.index)
        fin[["receipts_total", "overdue_amount"]] = fin[["receipts_total", "overdue_amount"]].fillna(0.0)
        out = out.join(fin)
    if activities is not None or calls is not None:
        con = contact_indicators(activities, calls, as_of).reindex(out.index).fillna(0).astype(int)
        if activities is None:
            con = con.drop(columns="activities")
        if calls is None:
            con = con.drop(columns=["praise", "complaints", "suggestions"])
        out = out.join(con)
    if profile is not None:
        out = out.join(profile_indicators(profile, params).reindex(out.index))
    out.index.name = "customer_id"
    return out.sort_index()


# ---------------------------------------------------------------- normalisation, weights, score (pure)
def normalise(values: pd.Series, direction: int = 1, method: str = "percentile",
              winsor: tuple[float, float] = (0.05, 0.95)) -> pd.Series:
    """Map one indicator to [0, 1], larger = better; NaN stays NaN (see module docstring)."""
    x = pd.to_numeric(values, errors="coerce").astype(float) * (1 if direction >= 0 else -1)
    present = x.dropna()
    out = pd.Series(np.nan, index=x.index)
    if present.empty:
        return out
    if method == "percentile":
        n = len(present)
        s = (present.rank(method="average") - 1) / (n - 1) if n > 1 else pd.Series(0.5, index=present.index)
    else:
        lo, hi = present.quantile(winsor[0]), present.quantile(winsor[1])
        if hi <= lo:  # the winsorised range is empty (heavy ties): fall back to the raw range
            lo, hi = present.min(), present.max()
        s = ((present.clip(lo, hi) - lo) / (hi - lo)) if hi > lo else pd.Series(0.5, index=present.index)
    out.loc[s.index] = s
    return out


def normalise_all(ind: pd.DataFrame, params: ValueModel) -> pd.DataFrame:
    nm = params.normalisation
    cols = [c for c in ind.columns if c in params.indicators]
    return pd.DataFrame({c: normalise(ind[c], params.indicators[c].direction, nm.method, tuple(nm.winsor))
                         for c in cols}, index=ind.index)


def informative(ind: pd.DataFrame) -> list[str]:
    """Indicators with at least two distinct non-missing values (others carry no information)."""
    return [c for c in ind.columns if ind[c].dropna().nunique() > 1]


def family_weights_ahp(params: ValueModel) -> dict[str, float]:
    try:
        res = ahp_weights(params.ahp.matrix)
    except UserError as exc:  # not square, reciprocal, positive: say which file
        raise UserError(str(exc), file=params._source, column="ahp.matrix") from None
    if not res.consistent:
        raise UserError(f"AHP matrix is inconsistent: CR = {res.cr:.3f} >= 0.10 (Saaty RI {res.ri})",
                        file=params._source, column="ahp.matrix",
                        hint="revise the pairwise judgements")
    return dict(zip(params.ahp.criteria, map(float, res.weights), strict=True))


def weights(ind: pd.DataFrame, params: ValueModel, family_weights: dict[str, float] | None = None,
            method: str | None = None) -> pd.Series:
    """Effective weights (sum 1) over the informative indicators of ``ind`` with a manual weight > 0.

    ``family_weights`` (e.g. from sliders or AHP) rescale families, split inside a family in proportion
    to the manual weights; ``method`` overrides ``params.weighting``.
    """
    method = method or params.weighting
    weighted = [c for c in ind.columns if c in params.indicators and params.indicators[c].weight > 0]
    if not weighted:
        raise UserError("no indicator scored here has a weight above 0", file=params._source, column="indicators",
                        hint=f"give at least one of {', '.join(ind.columns)} a weight > 0")
    usable = [c for c in informative(ind) if c in weighted]
    if not usable:
        raise NothingToScore("no indicator varies across the customers: nothing to score on")
    manual = pd.Series({c: params.indicators[c].weight for c in usable}, dtype=float)
    if method == "entropy" and family_weights is None:
        w = entropy_weights(ind[usable], {c: params.indicators[c].direction for c in usable})
    else:
        if family_weights is None and method == "ahp":
            family_weights = family_weights_ahp(params)
        w = manual.copy()
        if family_weights is not None:
            fam = pd.Series({c: params.indicators[c].family for c in usable})
            share = manual / manual.groupby(fam).transform("sum")
            w = share * fam.map(lambda f: float(family_weights.get(f, 0.0)))
    total = w.sum()
    if total <= 0:
        raise UserError("all weights are zero", hint="give at least one family or indicator a weight")
    return (w / total).reindex(usable)


def tier_of(score: float, cutoffs: Cutoffs | None = None) -> str:
    """vip if score > vip cut-off, important if > important, ordinary if > ordinary, else small."""
    c = cutoffs or Cutoffs()
    s = round(float(score), 6)
    if s > c.vip:
        return "vip"
    if s > c.important:
        return "important"
    if s > c.ordinary:
        return "ordinary"
    return "small"


def score(ind: pd.DataFrame, params: ValueModel, family_weights: dict[str, float] | None = None,
          method: str | None = None) -> pd.DataFrame:
    """``customer_id`` -> ``score`` (0-100, 6 decimals), ``tier``, ``loss_making`` (profit < 0)."""
    w = weights(ind, params, family_weights, method)
    s = normalise_all(ind[list(w.index)], params).fillna(params.missing_score)
    sc = (100.0 * (s * w).sum(axis=1)).round(6)
    out = pd.DataFrame({"score": sc}, index=ind.index)
    out["tier"] = [tier_of(v, params.cutoffs) for v in sc]
    out["loss_making"] = (ind["profit"] < 0) if "profit" in ind else False
    out.index.name = "customer_id"
    return out


# ---------------------------------------------------------------- concentration (pure)
def top_share(values: pd.Series, share: float = 0.2) -> float:
    """Share of the total held by the top ``ceil(share * n)`` values (total includes negatives)."""
    v = pd.Series(values, dtype=float).dropna().sort_values(ascending=False)
    if v.empty or v.sum() == 0:
        return float("nan")
    k = math.ceil(round(share * len(v), 9))
    return float(v.iloc[:k].sum() / v.sum())


def gini(values: pd.Series) -> float:
    """Gini coefficient of non-negative values (0 = all equal, (n-1)/n = one holds everything)."""
    x = np.sort(pd.Series(values, dtype=float).dropna().to_numpy())
    n = len(x)
    if n == 0 or x.sum() == 0:
        return float("nan")
    if x[0] < 0:
        raise ValueError("Gini is defined here for non-negative values only")
    i = np.arange(1, n + 1)
    return float(2 * (i * x).sum() / (n * x.sum()) - (n + 1) / n)


def lorenz(values: pd.Series) -> pd.DataFrame:
    """Lorenz curve points from (0, 0): ``customer_share`` and cumulative ``value_share``, ascending."""
    x = np.sort(pd.Series(values, dtype=float).dropna().to_numpy())
    n = len(x)
    cum = np.concatenate([[0.0], np.cumsum(x)])
    return pd.DataFrame({"customer_share": np.arange(n + 1) / max(n, 1),
                         "value_share": cum / cum[-1] if n and cum[-1] else cum})


def tier_table(scored: pd.DataFrame, ind: pd.DataFrame) -> pd.DataFrame:
    """Per tier (vip first): customers, revenue and profit with their shares, loss-making count."""
    df = scored.join(ind[[c for c in ("revenue", "profit") if c in ind]])
    rows = []
    for t in TIERS:
        part = df[df["tier"] == t]
        row = {"tier": t, "customers": len(part), "customer_share": len(part) / len(df) if len(df) else np.nan,
               "loss_making": int(part["loss_making"].sum())}
        for col in ("revenue", "profit"):
            if col in df and df[col].notna().any():
                total = df[col].sum()
                row[col] = float(part[col].sum())
                row[f"{col}_share"] = float(part[col].sum() / total) if total else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def concentration(ind: pd.DataFrame, share: float = 0.2) -> dict:
    out = {"n_customers": int(len(ind)),
           "top_customers": int(math.ceil(round(share * len(ind), 9))),
           "top20_revenue_share": top_share(ind["revenue"], share),
           "gini": gini(ind["revenue"].clip(lower=0))}
    if "profit" in ind and ind["profit"].notna().any():
        out["top20_profit_share"] = top_share(ind["profit"], share)
        out["loss_making"] = int((ind["profit"] < 0).sum())
    return out


# ---------------------------------------------------------------- migration (pure)
def migration(prev: pd.Series, cur: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tier moves between two scorings (Series customer_id -> tier).

    Returns (matrix: rows = last week's tier plus ``new``, columns = this week's tier plus ``gone``,
    counts), (movers: customer_id, prev_tier, tier, move in up/down/new/gone; unchanged left out).
    """
    both = pd.concat([prev.rename("prev_tier"), cur.rename("tier")], axis=1)
    both.index.name = "customer_id"
    both = both.sort_index()
    frm = both["prev_tier"].fillna("new")
    to = both["tier"].fillna("gone")
    rows, cols = list(TIERS) + ["new"], list(TIERS) + ["gone"]
    matrix = pd.crosstab(frm, to).reindex(index=rows, columns=cols, fill_value=0)
    matrix.index.name, matrix.columns.name = "prev_tier", "tier"
    rank_prev = both["prev_tier"].map(TIER_RANK)
    rank_cur = both["tier"].map(TIER_RANK)
    move = pd.Series(np.select([both["prev_tier"].isna(), both["tier"].isna(), rank_cur > rank_prev,
                                rank_cur < rank_prev], ["new", "gone", "up", "down"], default=""),
                     index=both.index)
    movers = both.assign(move=move)[move != ""].reset_index()
    return matrix, movers


# ---------------------------------------------------------------- database (thin)
def read_inputs(con, as_of=None, lines: bool = True) -> dict[str, pd.DataFrame | None]:
    """Frames for :func:`compute_indicators` keyed by master ``customer_id`` (via ``customer_xref``).
    ``lines=False`` leaves the order lines out (``orders`` is None): :func:`indicators_from_db` aggregates
    them in the database."""
    for t in ("stg_orders", "customer_xref", "customer_master"):
        if not table_exists(con, t):
            raise UserError(f"table {t} missing from the database", hint="run `crm load` and `crm resolve`")
    as_of = resolve_as_of(con, as_of)
    q = lambda sql: con.execute(sql, [as_of]).df()  # noqa: E731
    out: dict[str, pd.DataFrame | None] = {"as_of": as_of}
    out["orders"] = con.execute(f"""
        SELECT customer_id, order_id, order_date, amount, cost, returned_amount FROM ({_ORDER_LINES_SQL})
        ORDER BY customer_id, order_id, line_no""", [as_of]).df() if lines else None
    out["receipts"] = q("""
        SELECT x.customer_id, r.invoice_date, r.due_date, r.paid_date, r.amount
        FROM stg_receipts r JOIN customer_xref x ON x.record_id = 'erp:' || r.erp_customer_id
        WHERE x.customer_id IS NOT NULL AND r.invoice_date <= ?
        ORDER BY x.customer_id, r.receipt_id""") if table_exists(con, "stg_receipts") else None
    acts = []
    if table_exists(con, "stg_sales_visits"):
        acts.append("""SELECT x.customer_id, v.visit_date AS activity_date, 'visit' AS kind, v.record_key AS k
            FROM stg_sales_visits v JOIN customer_xref x ON x.record_id = 'sales:' || v.record_key
            WHERE x.customer_id IS NOT NULL AND v.visit_date <= $1""")
    if table_exists(con, "stg_crm_opportunities"):
        acts.append("""SELECT x.customer_id, CAST(p.created_at AS DATE), 'opportunity', p.opp_id
            FROM stg_crm_opportunities p JOIN customer_xref x ON x.record_id = 'crm:' || p.account_id
            WHERE x.customer_id IS NOT NULL AND CAST(p.created_at AS DATE) <= $1""")
    out["activities"] = con.execute(" UNION ALL ".join(acts) + " ORDER BY 1, 3, 4", [as_of]).df() \
        if acts else None
    out["calls"] = q("""
        SELECT x.customer_id, c.called_at, c.call_type
        FROM stg_calls c JOIN customer_xref x ON x.record_id = 'callcenter:' || c.call_id
        WHERE x.customer_id IS NOT NULL AND CAST(c.called_at AS DATE) <= ?
        ORDER BY x.customer_id, c.call_id""") if table_exists(con, "stg_calls") else None
    out["profile"] = con.execute("""
        SELECT customer_id, name, size, registered_capital, listed, region, industry
        FROM customer_master ORDER BY customer_id""").df()
    return out


def customer_names(con) -> pd.Series:
    """Master customer names by ``customer_id`` (for tables of customers)."""
    return con.execute("SELECT customer_id, name FROM customer_master ORDER BY customer_id").df() \
        .set_index("customer_id")["name"]


def indicators_from_db(con, as_of, params: ValueModel) -> pd.DataFrame:
    f = read_inputs(con, as_of, lines=False)
    return compute_indicators(None, f["as_of"], params, receipts=f["receipts"], activities=f["activities"],
                              calls=f["calls"], profile=f["profile"],
                              transactions=transaction_indicators_sql(con, f["as_of"]))


def _score_or_empty(ind: pd.DataFrame, params: ValueModel) -> pd.DataFrame:
    """Score, or an empty frame when the data leave nothing to rank (fewer than two customers have ordered
    yet, or none differs on a weighted indicator). Configuration errors (no indicator with a weight, a bad
    AHP matrix) are raised either way."""
    try:
        return score(ind, params)
    except NothingToScore:
        if params.weighting == "ahp":
            family_weights_ahp(params)  # a bad matrix is an error in a week with nothing to rank too
        return pd.DataFrame(columns=["score", "tier", "loss_making"])


def scored_at(con, day, params: ValueModel, cache: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(indicators, scores) at ``day`` from the database, kept in ``cache`` by date (one run, same params);
    the scores are empty when there is nothing to rank (see :func:`_score_or_empty`)."""
    if day not in cache:
        ind = indicators_from_db(con, day, params)
        cache[day] = (ind, _score_or_empty(ind, params))
    return cache[day]


def pyramid_weekly_metrics(con, as_of=None, params: ValueModel | None = None, cache: dict | None = None) -> dict:
    """Flat ``pyramid_*`` headline figures for metrics.json: customers per tier, top-20% revenue and profit
    share, revenue Gini, loss-making count, upgrades / downgrades / new against ``as_of - 7 days``.
    ``cache``: a dict kept across the calls of one run with the same database and params; a date scored
    once (this week's "a week ago" is last week's "now") is not scored again."""
    return _weekly(con, as_of, params, cache)[0]


def _weekly(con, as_of=None, params: ValueModel | None = None,
            cache: dict | None = None) -> tuple[dict, pd.DataFrame]:
    """:func:`pyramid_weekly_metrics` and the scoring at ``as_of`` they come from."""
    params = params or load_params()
    as_of = resolve_as_of(con, as_of)
    cache = {} if cache is None else cache
    ind, cur = scored_at(con, as_of, params, cache)
    prev = scored_at(con, as_of - timedelta(days=params.migration_days), params, cache)[1]
    _, movers = migration(prev["tier"], cur["tier"])
    conc = concentration(ind, params.top_share) if len(ind) else {}
    out = {"pyramid_customers": int(len(cur))}
    out.update({f"pyramid_{t}": int((cur["tier"] == t).sum()) for t in TIERS})
    out.update({
        "pyramid_top20_revenue_share": conc.get("top20_revenue_share", float("nan")),
        "pyramid_top20_profit_share": conc.get("top20_profit_share", float("nan")),
        "pyramid_gini": conc.get("gini", float("nan")),
        "pyramid_loss_making": int(conc.get("loss_making", 0)),
        "pyramid_upgrades": int((movers["move"] == "up").sum()),
        "pyramid_downgrades": int((movers["move"] == "down").sum()),
        "pyramid_new": int((movers["move"] == "new").sum()),
    })
    return out, cur


def weights_table(ind: pd.DataFrame, params: ValueModel) -> pd.DataFrame:
    """Effective weights per indicator under manual, AHP (if configured) and entropy weighting."""
    cols = {"manual": weights(ind, params, method="manual")}
    if params.ahp is not None:
        cols["ahp"] = weights(ind, params, method="ahp")
    cols["entropy"] = weights(ind, params, method="entropy")
    out = pd.DataFrame(cols)
    out.insert(0, "family", [params.indicators[c].family for c in out.index])
    out.insert(1, "direction", [params.indicators[c].direction for c in out.index])
    out.index.name = "indicator"
    return out


def truth_mapping(con, truth_dir: str | Path) -> pd.DataFrame:
    """Demo only: master ``customer_id`` -> the true customer most of its records belong to (ties: the
    smaller true id), with the generator's ``value_group`` and ``latent_value``."""
    truth_dir = Path(truth_dir)
    rec = pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False)
    rec = rec[rec["true_customer_id"] != ""]
    rec = rec.assign(record_id=rec["source"] + ":" + rec["source_key"])
    xref = con.execute("SELECT record_id, customer_id FROM customer_xref WHERE customer_id IS NOT NULL "
                       "ORDER BY record_id").df()
    m = rec.merge(xref, on="record_id")
    votes = m.groupby(["customer_id", "true_customer_id"]).size().rename("n").reset_index()
    votes = votes.sort_values(["customer_id", "n", "true_customer_id"], ascending=[True, False, True])
    best = votes.drop_duplicates("customer_id")[["customer_id", "true_customer_id"]]
    cust = pd.read_csv(truth_dir / "customers.csv", dtype={"true_customer_id": str})
    return best.merge(cust[["true_customer_id", "value_group", "latent_value"]], on="true_customer_id",
                      how="left").set_index("customer_id").sort_index()


def latent_value_correlation(scored: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Spearman rank correlation of the score with the generator's latent value (scored customers that map
    to a true customer; when several master customers map to one true customer each counts)."""
    j = scored[["score"]].join(truth[["latent_value", "value_group"]], how="inner").dropna()
    return {"n": int(len(j)),
            "spearman_latent": float(j["score"].corr(j["latent_value"], method="spearman")),
            "spearman_group": float(j["score"].corr(j["value_group"], method="spearman"))}


# ---------------------------------------------------------------- a user's transaction list (thin)
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y.%m.%d")


def read_transactions_csv(path: str | Path, customer: str, date_col: str, amount: str) -> pd.DataFrame:
    """A CSV of transactions -> order lines (one order per row; negative amounts are returns).

    Dates may be YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD or YYYY.MM.DD (one format per file); errors name the
    file, the row (line number, header = 1) and the column.
    """
    path = Path(path)
    raw = read_user_csv(path, "transaction file")
    raw.columns = [str(c).strip() for c in raw.columns]
    for col in (customer, date_col, amount):
        if col not in raw.columns:
            hint = f"columns in the file: {', '.join(raw.columns)}"
            if len(raw.columns) == 1 and len(raw.columns[0].split()) > 1:
                hint = "the file looks whitespace-separated; save it as CSV (comma-separated)"
            raise UserError("column not found", file=str(path), column=col, hint=hint)
    if raw.empty:
        raise UserError("no transactions in the file", file=str(path))
    line = pd.Series(np.arange(len(raw)) + 2, index=raw.index)
    cust = raw[customer].str.strip()
    blank = cust == ""
    if blank.any():
        raise UserError("customer is blank", file=str(path), row=int(line[blank].iloc[0]), column=customer)
    amt = pd.to_numeric(raw[amount].str.replace(",", "", regex=False).str.strip(), errors="coerce")
    bad = ~np.isfinite(amt)  # "inf", "1e400" read as infinite: no total, share or Gini from them
    if bad.any():
        i = bad.idxmax()
        what = "is not a number" if pd.isna(amt.at[i]) else "is not a finite number"
        raise UserError(f"amount {raw.at[i, amount]!r} {what}", file=str(path), row=int(line[i]),
                        column=amount, hint="write amounts as plain numbers, e.g. 1234.50 or -80 for a return")
    text = raw[date_col].str.strip()
    best = None
    for fmt in DATE_FORMATS:
        d = pd.to_datetime(text, format=fmt, errors="coerce")
        if best is None or d.isna().sum() < best.isna().sum():
            best = d
        if d.notna().all():
            break
    if best.isna().any():
        i = best.isna().idxmax()
        raise UserError(f"date {raw.at[i, date_col]!r} is not a date", file=str(path), row=int(line[i]),
                        column=date_col, hint="use YYYY-MM-DD or YYYYMMDD, one format per file")
    is_return = amt < 0
    return pd.DataFrame({
        "customer_id": cust,
        "order_id": pd.Series(np.arange(len(raw)).astype(str), index=raw.index).where(~is_return),
        "order_date": best.dt.normalize(),
        "amount": amt.where(~is_return, 0.0),
        "returned_amount": (-amt).where(is_return, 0.0),
    })


def pyramid_from_transactions(tx: pd.DataFrame, params: ValueModel, as_of=None) -> tuple[pd.DataFrame, dict]:
    """Score a transaction list on transaction indicators only; returns (tiers, summary)."""
    as_of = pd.Timestamp(as_of) if as_of is not None else tx["order_date"].max()
    ind = transaction_indicators(tx, as_of)
    sc = score(ind, params)
    conc = concentration(ind, params.top_share)
    w = weights(ind, params)
    summary = {
        "as_of": pd.Timestamp(as_of).date().isoformat(),
        "transactions": int(len(tx)),
        "customers": int(len(ind)),
        "top_share": params.top_share,
        "top_customers": conc["top_customers"],
        "top20_revenue_share": round(conc["top20_revenue_share"], 6),
        "gini": round(conc["gini"], 6),
        "tier_counts": {t: int((sc["tier"] == t).sum()) for t in TIERS},
        "revenue_share_by_tier": {r["tier"]: round(r["revenue_share"], 6)
                                  for r in tier_table(sc, ind).to_dict("records")},
        "weights": {k: round(float(v), 6) for k, v in w.items()},
        "normalisation": params.normalisation.method,
    }
    return tiers_table(sc), summary


def tiers_table(scored: pd.DataFrame) -> pd.DataFrame:
    """``customer, score, tier`` (the ``--out`` file), best score first, ties by customer."""
    tiers = scored.rename_axis("customer").reset_index()
    tiers = tiers.sort_values(["score", "customer"], ascending=[False, True], kind="mergesort")
    return tiers[["customer", "score", "tier"]].reset_index(drop=True)


# ---------------------------------------------------------------- CLI
def _run(args) -> int:
    params = load_params(args.params) if args.params else load_params()
    if args.transactions is None:
        from .db import connect
        con = connect(args.db, read_only=True)
        try:
            as_of = resolve_as_of(con, args.as_of, "--as-of", command="pyramid")
            m, scored = _weekly(con, as_of, params)
        finally:
            con.close()
        if args.out:
            tiers_table(scored).to_csv(args.out, index=False, float_format="%.6f")
        m = {"as_of": as_of.isoformat(), **{
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()}}
        text = json.dumps(m, ensure_ascii=False, indent=2)
        if args.summary:
            Path(args.summary).write_text(text + "\n", encoding="utf-8")
        print(text)
        return 0
    missing = [f"--{n}" for n in ("customer", "date", "amount") if getattr(args, n) is None]
    if missing:
        raise UserError(f"{', '.join(missing)} required with a transaction file",
                        hint="e.g. crm pyramid tx.csv --customer id --date date --amount amount")
    as_of = parse_as_of(args.as_of, "--as-of")
    tx = read_transactions_csv(args.transactions, args.customer, args.date, args.amount)
    first, last = tx["order_date"].min().date(), tx["order_date"].max().date()
    if as_of is not None and as_of < first:
        raise UserError(f"no transactions on or before --as-of {as_of}: the file's dates run from {first} "
                        f"to {last}", file=str(args.transactions), column=args.date,
                        hint=f"give a date on or after {first}, or leave --as-of out")
    try:
        tiers, summary = pyramid_from_transactions(tx, params, as_of)
    except NothingToScore as exc:
        raise UserError(str(exc), file=str(args.transactions),
                        hint="the list needs at least two customers that differ in what they bought") from None
    summary["file"] = str(args.transactions)
    if args.out:
        tiers.to_csv(args.out, index=False, float_format="%.6f")
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    c = summary["tier_counts"]
    print(f"{summary['customers']} customers from {summary['transactions']} transactions as of {summary['as_of']}; "
          f"top {params.top_share:.0%} hold {summary['top20_revenue_share']:.1%} of revenue; "
          f"Gini {summary['gini']:.3f}; tiers: vip {c['vip']}, important {c['important']}, "
          f"ordinary {c['ordinary']}, small {c['small']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pyramid", help="customer value pyramid: score, tiers, concentration",
        description="Score customers 0-100 and cut tiers (vip > 80, important > 60, ordinary > 40, small). "
                    "With TRANSACTIONS.csv: transaction indicators only, from a user's list. Without: the "
                    "master customers in the database, printing the weekly metrics.")
    p.add_argument("transactions", nargs="?", help="CSV of transactions (one row per purchase)")
    p.add_argument("--customer", help="customer id column")
    p.add_argument("--date", help="transaction date column (YYYY-MM-DD or YYYYMMDD)")
    p.add_argument("--amount", help="amount column (negative = return)")
    p.add_argument("--out", help="write customer, score, tier to this CSV")
    p.add_argument("--summary", help="write the summary JSON here")
    p.add_argument("--as-of", dest="as_of", help="score as of this date (default: newest date in the data)")
    p.add_argument("--params", help="value model YAML (default params/value_model.yaml)")
    p.add_argument("--db", help="database (default data/curated/crm.duckdb)")
    p.set_defaults(func=_run)
