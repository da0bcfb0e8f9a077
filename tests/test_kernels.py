"""Kernels started ahead for the weekly run (crmlib/kernels.py): the warm-up runs only the notebook's
imports, the notebook then runs in that kernel with its cells counted from 1, and nothing is left running."""
from __future__ import annotations

import json

import nbformat

from crmlib import kernels, report


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "crm", "display_name": "crm", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_notebook_imports_lists_each_import_once_and_skips_magics_and_code(tmp_path):
    nb = _notebook(tmp_path / "a.ipynb", [
        "x = 1",
        "import json\nfrom pathlib import Path\nprint('side effect')",
        "%matplotlib inline\nimport os",       # not Python: the whole cell is skipped
        "import json\nfrom os import path as p\nif True:\n    import csv",  # nested imports are not top-level
    ])
    assert kernels.notebook_imports(nb).splitlines() == ["import json", "from pathlib import Path",
                                                         "from os import path as p"]


def test_notebook_runs_in_the_warmed_kernel_and_it_is_shut_down(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRM_HOME", str(tmp_path))
    src = _notebook(tmp_path / "nb.ipynb", [
        "n = 1",
        "import sys\nwarm = 'colorsys' in sys.modules",  # imported by the warm-up, before its own cell
        "import colorsys\nprint(warm, n, colorsys.rgb_to_hsv(n, n, n))",
    ])
    with kernels.WarmKernels("crm", {"nb": src, "bad": src}, tmp_path) as pool:
        km = pool.take("nb")
        assert km is not None and km.has_kernel
        report.run_notebook(src, tmp_path / "out.ipynb", {"n": 5}, "crm", 120, km=km)
        assert not km.has_kernel
    out = json.loads((tmp_path / "out.ipynb").read_text(encoding="utf-8"))
    code = [c for c in out["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == [1, 2, 3, 4]  # parameters injected as cell 2
    assert "".join(code[-1]["outputs"][0]["text"]) == "True 5 (0.0, 0.0, 5)\n"


def test_a_kernel_that_cannot_start_falls_back_to_none(tmp_path, caplog):
    src = _notebook(tmp_path / "nb.ipynb", ["x = 1"])
    with kernels.WarmKernels("no-such-kernel", {"nb": src}, tmp_path) as pool:
        assert pool.take("nb") is None
        assert pool.take("nb") is None  # handed out (or failed) once
    assert "could not start a kernel ahead for nb" in caplog.text
