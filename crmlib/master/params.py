"""Parameters of the customer master (``params/master.yaml``) and the names shared by its modules."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from ..errors import UserError
from ..params import Params, params_path
from ..params import load as load_params

SOURCES = ("crm", "erp", "sales", "service", "callcenter")
RECORD_COLUMNS = ["record_id", "source", "source_key", "name_raw", "uscc", "phone", "contact_name", "email",
                  "province", "city", "address", "industry", "rep_id", "record_date", "_source_file", "_row"]
DECISION_COLUMNS = ["record_id_l", "record_id_r", "decision", "reviewer", "decided_at"]
# Splink comparisons, in the order of the model (used for the evidence chart and the pairs table)
COMPARISONS = ["name", "uscc", "phone", "contact", "city", "address"]


class MasterParams(Params):
    threshold: float = 0.9
    review_low: float = 0.8
    review_high: float = 0.95
    seed: int = Field(42, ge=0)
    u_max_pairs: float = Field(5e5, gt=0)
    em_max_pairs: float = Field(2e5, gt=0)
    em_min_groups: int = Field(1000, ge=2)
    min_m_probability: float = Field(1e-3, ge=0, lt=0.1)
    prior_rules_recall: float = Field(0.6, gt=0, le=1)
    threads: int = Field(2, ge=1)
    memory_limit: str = Field("6GB", pattern=r"(?i)^\s*(\d+(\.\d+)?\s*(K|M|G|T)(i?B)?|\d+(\.\d+)?\s*%)\s*$")
    predict_chunks: int = Field(1, ge=1)
    max_values_per_group: int = Field(5, ge=1)
    # every phone of a CRM account's contacts is phone evidence of the account (see contact_phones)
    contact_phones: bool = True
    name_similarity_levels: list[float] = Field([0.85, 0.7, 0.55], min_length=3, max_length=3)
    unregioned_brand_is_local: bool = False
    hierarchy_sectors: list[str] = ["bank", "insurance", "securities", "telecom", "energy", "transport"]
    source_trust: list[str] = Field(list(SOURCES), min_length=1)
    ambiguity_margin: float = 3.0
    review_bare_candidates: int = Field(5, ge=0)
    review_bare_max_records: int = Field(200, ge=0)
    same_trade_name_same_city: bool = True
    model_max_age_days: int = Field(28, ge=0)
    model_max_growth: float = Field(0.2, ge=0)

    @field_validator("name_similarity_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not all(0 < x <= 1 for x in v) or sorted(v, reverse=True) != v or len(set(v)) != len(v):
            raise ValueError("three similarities between 0 and 1, highest first, e.g. [0.85, 0.7, 0.55]")
        return v

    @field_validator("source_trust")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in SOURCES]
        if bad or len(set(v)) != len(v):
            raise ValueError(f"each of {', '.join(SOURCES)} at most once (not {', '.join(bad) or 'repeated'})")
        return v


def load_master_params(path: str | Path | None = None) -> MasterParams:
    p = load_params(MasterParams, path or "master")
    where = str(params_path(path or "master"))
    if not 0 < p.threshold < 1:
        raise UserError("threshold must be between 0 and 1", file=where)
    if not p.review_low <= p.threshold <= p.review_high:
        raise UserError("need review_low <= threshold <= review_high", file=where)
    return p
