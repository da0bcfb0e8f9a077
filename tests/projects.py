"""Scratch projects for tests that run `crm` end to end, and the browser check's skip rule."""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def new_project(root: Path, notebooks: bool = False) -> Path:
    """``root`` as an empty project: params (and the notebooks) copied from the repository, empty
    ``data/raw``, ``data/curated`` and ``reports``."""
    shutil.copytree(REPO / "params", root / "params")
    if notebooks:
        shutil.copytree(REPO / "notebooks", root / "notebooks")
    for sub in ("data/raw", "data/curated", "reports"):
        (root / sub).mkdir(parents=True)
    return root


@contextlib.contextmanager
def crm_home_at(root: Path) -> Iterator[Path]:
    """CRM_HOME set to ``root`` for the block, then restored (module-scoped fixtures cannot use monkeypatch)."""
    old = os.environ.get("CRM_HOME")
    os.environ["CRM_HOME"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("CRM_HOME", None)
        else:
            os.environ["CRM_HOME"] = old


def browser_or_skip() -> None:
    """Skip a browser test where Debian's chromium is missing, unless CRM_REQUIRE_BROWSER (CI) says fail."""
    from crmlib.browser import chromium_path

    if chromium_path() is None:
        if os.environ.get("CRM_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (CRM_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("chromium not installed (apt-get install chromium fonts-noto-cjk)")
