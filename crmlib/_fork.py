"""Forked worker pools that survive a parent which has run Jupyter kernels.

The weekly run (and any analyst's kernel) holds ZeroMQ sockets, asyncio loops and their threads. A child
forked from such a process inherits those objects; if its cyclic garbage collector later finalises one of
them, the child can crash (seen as "Fatal Python error: Segmentation fault / Garbage-collecting" in
demo-data workers after a notebook test). :func:`fork_pool` collects the parent's garbage first and
freezes what is left (``gc.freeze``), so children never finalise inherited objects. Workers still share
module state by fork (the callers rely on it), which is why this is not a spawn/forkserver pool.
"""
from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp


@contextlib.contextmanager
def fork_pool(processes: int):
    gc.collect()
    gc.freeze()
    try:
        with mp.get_context("fork").Pool(processes) as pool:
            yield pool
    finally:
        gc.unfreeze()
