"""Customer master: one row per real customer, built from every source's customer mentions.

Pipeline (``resolve``): ``customer_records`` (one row per mention) → names normalised once per unique name
(:mod:`crmlib.names`) → records with the same normalised key form a *name group* → Splink (DuckDB) scores
blocked pairs of name groups with m/u trained without labels → hard rules and reviewers' decisions → Splink's
connected components, repaired so no cluster breaks a hard rule → stable ``C``+6-digit ids → golden records
(survivorship from ``params/master.yaml``) → hierarchy (:mod:`crmlib.hierarchy`) → review queue.

Hard rules the model cannot override: two different dictionary brands are never one customer; two different
regions written in the names are never one customer; for branch-type organisations (banks, telecoms, ...) a
different branch level, branch name or city is never one customer (a branch and its head office are
parent/child in ``customer_hierarchy``, not one customer). Reviewers' decisions in
``params/review_decisions.csv`` override the model and the hard rules (a person looked at the pair).

``crm dedup`` runs the same engine on any CSV.

Modules, in pipeline order (each imports only those before it):

- ``params``     MasterParams (``params/master.yaml``), the shared column lists
- ``records``    ``customer_records`` from the stg_* tables; CRM contacts' phones as side evidence
- ``features``   name features per distinct raw name; records prepared for matching; the name-group key
- ``engine``     name groups and Splink: settings, priors, training, scoring of blocked pairs
- ``clusters``   hard rules, the same-trade-name-same-city rule, clustering that respects them
- ``decisions``  stewards' decisions (``params/review_decisions.csv``)
- ``match``      ``match_records``: records → clusters in memory (also ``crm dedup``)
- ``store``      stable customer ids, golden-record SQL, the stored model and name-parse cache
- ``pipeline``   ``resolve`` / ``resolve_db`` on a database, and the review queue
- ``accuracy``   ``evaluate``: accuracy against a known truth; the weekly figures
- ``cli``        ``crm resolve``, ``crm dedup``
- ``notebook``   read-only helpers for ``notebooks/01_master.ipynb``

The names below are the package's interface; anything else lives in its module.
"""
from __future__ import annotations

from .accuracy import evaluate, heads_merged_with_branches, master_weekly_metrics, pairwise_scores
from .cli import dedup_frame, register
from .clusters import (
                       TRADE_NAME_CITY,
                       cluster_groups,
                       hard_rule_violation,
                       trade_name_city_pairs,
                       units_conflict,
)
from .decisions import append_decision, append_decisions, read_decisions
from .engine import build_groups, score_groups, splink_settings
from .features import group_key, localise_unregioned, name_features, prepare_records, strip_trailing_code
from .match import MatchResult, match_records
from .notebook import (
                       cluster_size_counts,
                       evidence_labels,
                       largest_group,
                       merge_samples,
                       review_widget,
                       rule_merges,
)
from .params import COMPARISONS, DECISION_COLUMNS, RECORD_COLUMNS, SOURCES, MasterParams, load_master_params
from .pipeline import REVIEW_REASONS, ResolveSummary, bare_name_candidates, resolve, resolve_db, review_queue
from .records import build_customer_records, contact_phones, records_sql
from .store import (
                       MODEL_TABLE,
                       NAME_CACHE_TABLE,
                       assign_ids,
                       model_key,
                       name_cache_key,
                       read_model,
                       read_name_cache,
)

__all__ = [
    "COMPARISONS", "DECISION_COLUMNS", "MODEL_TABLE", "MasterParams", "MatchResult", "NAME_CACHE_TABLE",
    "RECORD_COLUMNS", "REVIEW_REASONS", "ResolveSummary", "SOURCES", "TRADE_NAME_CITY", "append_decision",
    "append_decisions", "assign_ids", "bare_name_candidates", "build_customer_records", "build_groups",
    "cluster_groups", "cluster_size_counts", "contact_phones", "dedup_frame", "evaluate", "evidence_labels",
    "group_key", "hard_rule_violation", "heads_merged_with_branches", "largest_group", "load_master_params",
    "localise_unregioned", "master_weekly_metrics", "match_records", "merge_samples", "model_key",
    "name_cache_key", "name_features", "pairwise_scores", "prepare_records", "read_decisions", "read_model",
    "read_name_cache", "records_sql", "register", "resolve", "resolve_db", "review_queue", "review_widget",
    "rule_merges", "score_groups", "splink_settings", "strip_trailing_code", "trade_name_city_pairs",
    "units_conflict",
]
