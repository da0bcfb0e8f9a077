"""Shared fixtures. Tests run against real DuckDB files in tmp dirs; CRM_HOME points crmlib there."""
from __future__ import annotations

import pytest
from projects import new_project


@pytest.fixture
def crm_home(tmp_path, monkeypatch):
    """An empty project root (params copied from the repository) for tests that write data."""
    monkeypatch.setenv("CRM_HOME", str(new_project(tmp_path)))
    return tmp_path


@pytest.fixture(scope="session")
def demo_resolved(tmp_path_factory):
    """One small demo (seed 7, scale 0.1) generated, loaded and resolved once for the whole session.

    Layout: ``raw/``, ``truth/`` (with ``manifest.json``) and ``crm.duckdb``. Read-only for tests: a test
    that changes data builds its own.
    """
    demo = pytest.importorskip("crmlib.demo")
    from crmlib import load, master

    root = tmp_path_factory.mktemp("demo_seed7_scale0.1")
    demo.generate(root / "raw", root / "truth", seed=7, scale=0.1)
    load.load_all(root / "raw", root / "crm.duckdb", progress=False)
    master.resolve_db(root / "crm.duckdb", progress=False)
    return root
