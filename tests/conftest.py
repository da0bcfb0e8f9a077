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
