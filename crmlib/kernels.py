"""Jupyter kernels started ahead of time for the weekly run.

Every notebook pays ~4 CPU-seconds before its first line of analysis: the kernel process starts and
imports pandas, DuckDB, plotly and crmlib. The weekly run's load and resolve steps use one core for
15-20 s, so :class:`WarmKernels` starts one kernel per notebook at the beginning of the run, in background
threads, and runs the notebook's own import statements in it (found with :func:`notebook_imports`;
``store_history=False``, so the executed notebook still counts its cells from 1). papermill then runs
the notebook in that kernel (``km=``) instead of starting a cold one.

Every notebook client waits for kernel messages in slices (:class:`SlicedKernelManager`, nbclient issue
#312: a cell with widgets otherwise sometimes sat out the whole cell timeout; ``benchmarks/notebook_stall.md``).

Nothing depends on the warm-up succeeding: a kernel that fails to start or warm is logged and the notebook
gets a fresh kernel from papermill as before, which reports the problem the usual way.
"""
from __future__ import annotations

import ast
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

log = logging.getLogger("crm.weekly")

KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]  # the kernel's "TCP without encryption" warning (localhost)

# A message that arrives on an asyncio ZMQ socket while the client waits for it is sometimes noticed only
# when the wait times out (nbclient issue #312, open: cells with ipywidgets "sometimes block"). nbclient
# waits for a cell's execute reply with the whole cell timeout, so such a cell sat out the full timeout and
# then completed normally. Waiting in slices of POLL_SLICE seconds bounds that stall to one slice: each new
# wait looks at the socket afresh.
POLL_SLICE = 1.0


class SlicedChannel(AsyncZMQSocketChannel):
    """``get_msg`` waiting in slices of :data:`POLL_SLICE` seconds; same messages, same overall timeout."""

    async def get_msg(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await super().get_msg(min(POLL_SLICE, left))
            except Empty:
                if deadline is not None and deadline - time.monotonic() < 0.001:  # poll() counts whole ms
                    raise


class SlicedClient(AsyncKernelClient):
    shell_channel_class = Type(SlicedChannel)
    iopub_channel_class = Type(SlicedChannel)


class SlicedKernelManager(AsyncKernelManager):
    """The kernel manager of every notebook run (papermill's ``kernel_manager_class``, the warm kernels):
    its clients wait in slices, see :data:`POLL_SLICE`."""

    client_class = DottedObjectName("crmlib.kernels.SlicedClient")
    client_factory = Type(SlicedClient)


def notebook_imports(path: Path) -> str:
    """The top-level ``import`` / ``from … import`` statements of a notebook's code cells, one per line.
    Cells Python cannot parse (IPython magics) are skipped; imports are idempotent, so running them
    before the notebook changes nothing but the time its first cell takes."""
    from .workspace import load_notebook

    nb = load_notebook(path)
    lines: list[str] = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        try:
            tree = ast.parse(src if isinstance(src, str) else "".join(src))
        except SyntaxError:
            continue
        lines += [ast.unparse(node) for node in tree.body
                  if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0)]
    return "\n".join(dict.fromkeys(lines))


def start_warm_kernel(kernel: str, notebook: Path, cwd: Path, timeout: float = 300):
    """Start ``kernel`` in ``cwd``, run the notebook's imports silently, return the running kernel manager."""
    from jupyter_core.utils import run_sync

    code = notebook_imports(notebook)  # a missing or broken notebook fails here, in the background
    km = SlicedKernelManager(kernel_name=kernel)
    run_sync(km.start_kernel)(extra_arguments=list(KERNEL_ARGS), cwd=str(cwd))
    try:
        kc = km.client()
        kc.start_channels()
        try:
            run_sync(kc.wait_for_ready)(timeout=timeout)
            if code:
                msg_id = kc.execute(code, silent=True, store_history=False)
                while True:
                    reply = run_sync(kc.get_shell_msg)(timeout=timeout)
                    if reply.get("parent_header", {}).get("msg_id") == msg_id:
                        break
        finally:
            kc.stop_channels()
    except BaseException:
        shutdown(km)
        raise
    return km


def shutdown(km) -> None:
    from jupyter_core.utils import run_sync

    try:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
    except Exception as exc:  # the process is gone already, or will be at exit
        log.debug("kernel shutdown: %s", exc)


class WarmKernels:
    """One kernel per notebook, started and warmed in background threads; :meth:`take` hands it over."""

    def __init__(self, kernel: str, notebooks: dict[str, Path], cwd: Path):
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(notebooks)), thread_name_prefix="warm-kernel")
        self._futures: dict[str, Future] = {
            name: self._pool.submit(start_warm_kernel, kernel, path, cwd)
            for name, path in notebooks.items()}

    def take(self, name: str):
        """The warmed kernel manager for notebook ``name`` (waits for its warm-up), or None."""
        fut = self._futures.pop(name, None)
        if fut is None:
            return None
        try:
            return fut.result()
        except Exception as exc:
            log.warning("could not start a kernel ahead for %s (%s); starting one when it runs", name, exc)
            return None

    def close(self) -> None:
        """Shut down every kernel not handed out (a failed or interrupted run)."""
        for fut in self._futures.values():
            try:
                shutdown(fut.result())
            except Exception:  # it never started
                pass
        self._futures.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> WarmKernels:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
