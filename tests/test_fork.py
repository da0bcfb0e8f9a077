"""crmlib._fork.fork_pool: forked workers never finalise objects they inherited as garbage (a parent that
ran Jupyter kernels holds ZeroMQ objects whose finalisers crash a forked child)."""
from __future__ import annotations

import gc
import os
from pathlib import Path

from crmlib._fork import fork_pool


class _Trap:
    """Garbage in a reference cycle; finalised in a child, it leaves a marker file."""

    def __init__(self, parent: int, marker: Path):
        self.parent, self.marker, self.me = parent, marker, self

    def __del__(self):
        if os.getpid() != self.parent:
            self.marker.touch()


def _work(_):
    gc.collect()  # what a busy child's collector would do sooner or later
    return os.getpid()


def test_children_do_not_finalise_the_parents_garbage(tmp_path):
    marker = tmp_path / "finalised-in-child"
    was_enabled = gc.isenabled()
    gc.disable()  # keep the trap uncollected until the pool is made
    try:
        _Trap(os.getpid(), marker)
        with fork_pool(2) as pool:
            pids = pool.map(_work, range(4))
    finally:
        if was_enabled:
            gc.enable()
    assert os.getpid() not in pids
    assert not marker.exists()
    assert gc.get_freeze_count() == 0  # unfrozen again afterwards
