"""Project-relative paths, in one place.

The project root is found from this file (an editable install keeps it inside the repository) and can be
overridden with the ``CRM_HOME`` environment variable (tests and schedulers use it).
"""
from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    env = os.environ.get("CRM_HOME")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


def raw_dir() -> Path:
    return root() / "data" / "raw"


def curated_dir() -> Path:
    return root() / "data" / "curated"


def truth_dir() -> Path:
    return root() / "data" / "demo_truth"


def db_path() -> Path:
    return curated_dir() / "crm.duckdb"


def params_dir() -> Path:
    return root() / "params"


def notebooks_dir() -> Path:
    return root() / "notebooks"


def reports_dir() -> Path:
    return root() / "reports"


def review_decisions_path() -> Path:
    """Reviewers' match decisions: kept outside the database so they survive rebuilds."""
    return params_dir() / "review_decisions.csv"
