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


class _Socket:
    """A socket whose first ``missed`` polls report nothing although a message waits (the lost wake-up of
    nbclient issue #312): each such poll returns only when its own timeout has passed, as zmq's does."""

    def __init__(self, missed: int | None):
        self.missed, self.polls = missed, []

    async def poll(self, timeout_ms):
        import asyncio

        self.polls.append(timeout_ms)
        if self.missed is None or len(self.polls) <= self.missed:
            await asyncio.sleep((timeout_ms or 0) / 1000)
            return 0
        return 1


def _channel(socket):
    ch = kernels.SlicedChannel.__new__(kernels.SlicedChannel)   # no real ZMQ socket: the wait logic alone
    ch.socket = socket

    async def recv():
        return {"msg": "reply"}
    ch._recv = recv
    return ch


def test_a_missed_wake_up_costs_one_slice_not_the_whole_timeout(monkeypatch):
    import asyncio
    import time
    from queue import Empty

    import pytest

    monkeypatch.setattr(kernels, "POLL_SLICE", 0.05)
    sock = _Socket(missed=1)
    t0 = time.monotonic()
    assert asyncio.run(_channel(sock).get_msg(timeout=600)) == {"msg": "reply"}
    assert time.monotonic() - t0 < 1 and sock.polls == [50, 50]    # plain get_msg: one poll of 600,000 ms
    # no timeout: waits slice after slice; nothing ever arrives: Empty once the whole timeout has passed
    assert asyncio.run(_channel(_Socket(missed=3)).get_msg(timeout=None)) == {"msg": "reply"}
    sock = _Socket(missed=None)
    t0 = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(_channel(sock).get_msg(timeout=0.12))
    # slices of 50, 50, 20 ms (a sleep ending a hair early adds a last one of 0-1 ms)
    assert 0.12 <= time.monotonic() - t0 < 0.5 and 3 <= len(sock.polls) <= 4 and max(sock.polls) <= 50


def test_notebooks_run_with_the_sliced_client(tmp_path):
    assert kernels.SlicedKernelManager(kernel_name="crm").client().shell_channel_class is kernels.SlicedChannel
    assert kernels.SlicedKernelManager(kernel_name="crm").client().iopub_channel_class is kernels.SlicedChannel
