"""Parameters of the data-quality audit (``params/quality.yaml``)."""
from __future__ import annotations

import datetime as dt

from pydantic import Field, field_validator, model_validator

from ..params import Params, load

SOURCES = ("crm", "sales", "callcenter", "service", "erp")
# customer_records columns a key field may name
RECORD_FIELDS = ("name_raw", "uscc", "phone", "contact_name", "email", "province", "city", "address",
                 "industry", "rep_id", "record_date")
CONSISTENCY_FIELDS = ("industry", "province", "city", "region")


def _known_weights(v: dict[str, float], known, what: str) -> dict[str, float]:
    """Fix-list weights: keys among ``known``, values >= 0."""
    bad = [k for k in v if k not in known]
    if bad:
        raise ValueError(f"unknown {what}(s) {bad}; use {', '.join(known)}")
    if any(w < 0 for w in v.values()):
        raise ValueError("weights are >= 0 (a higher weight ranks the record higher in the fix list)")
    return v


class QualityParams(Params):
    primary_source: str = "crm"
    not_contacted_days: int = Field(90, ge=1)
    timeliness_limit_days: int = Field(1, ge=0)
    working_weekdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    holidays: list[dt.date] = Field(default_factory=list)
    daily_missing_days_allowed: int = Field(0, ge=0)
    date_min: dt.date = dt.date(2000, 1, 1)
    future_grace_days: int = Field(2, ge=0)
    trend_weeks: int = Field(4, ge=1, le=52)
    key_fields: dict[str, list[str]] = Field(default_factory=dict)
    required_fields: dict[str, list[str]] = Field(default_factory=dict)
    seven_digit_area_codes: list[str] = Field(default_factory=list)
    industry_keywords: dict[str, list[str]] = Field(default_factory=dict)
    consistency_fields: list[str] = Field(default_factory=lambda: ["industry", "province", "city"])
    duplicate_sources: list[str] = Field(default_factory=lambda: ["crm", "erp"])
    kind_weights: dict[str, float] = Field(default_factory=dict)
    source_weights: dict[str, float] = Field(default_factory=dict)

    @field_validator("working_weekdays")
    @classmethod
    def _weekdays(cls, v: list[int]) -> list[int]:
        if not v or any(d < 1 or d > 7 for d in v):
            raise ValueError("ISO weekdays 1 (Monday) .. 7 (Sunday), at least one")
        return sorted(set(v))

    @field_validator("primary_source")
    @classmethod
    def _primary(cls, v: str) -> str:
        if v not in SOURCES:
            raise ValueError(f"one of {', '.join(SOURCES)}")
        return v

    @field_validator("duplicate_sources")
    @classmethod
    def _dup_sources(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in SOURCES]
        if bad:
            raise ValueError(f"unknown source(s) {bad}; use {', '.join(SOURCES)}")
        return v

    @field_validator("consistency_fields")
    @classmethod
    def _cons(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in CONSISTENCY_FIELDS]
        if bad:
            raise ValueError(f"unknown field(s) {bad}; use {', '.join(CONSISTENCY_FIELDS)}")
        return v

    @field_validator("kind_weights")
    @classmethod
    def _kinds(cls, v: dict[str, float]) -> dict[str, float]:
        from .checks import REASONS

        return _known_weights(v, REASONS, "issue kind")

    @field_validator("source_weights")
    @classmethod
    def _source_weights(cls, v: dict[str, float]) -> dict[str, float]:
        return _known_weights(v, SOURCES, "source")

    @model_validator(mode="after")
    def _fields(self) -> QualityParams:
        for name in ("key_fields", "required_fields"):
            for source, fields in getattr(self, name).items():
                if source not in SOURCES:
                    raise ValueError(f"{name}: unknown source {source!r}; use {', '.join(SOURCES)}")
                bad = [f for f in fields if f not in RECORD_FIELDS]
                if bad:
                    raise ValueError(f"{name}.{source}: unknown field(s) {bad}; use {', '.join(RECORD_FIELDS)}")
        return self


def load_params(path: str | None = None, **overrides) -> QualityParams:
    return load(QualityParams, path or "quality", **overrides)
