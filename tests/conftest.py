"""Shared fixtures. Tests run against real DuckDB files in tmp dirs; CRM_HOME points crmlib there."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def crm_home(tmp_path, monkeypatch):
    """An empty project root (params copied from the repository) for tests that write data."""
    import shutil

    shutil.copytree(REPO / "params", tmp_path / "params")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "curated").mkdir(parents=True)
    (tmp_path / "reports").mkdir()
    monkeypatch.setenv("CRM_HOME", str(tmp_path))
    return tmp_path
