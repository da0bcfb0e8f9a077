"""Start-up cost of every process that imports crmlib (each notebook kernel, `crm`, papermill runs).

``jsonschema`` (imported by ``nbformat``, which ``plotly.io`` and papermill import) does
``from rfc3987_syntax import is_valid_syntax`` when that package is installed, and importing it compiles
a Lark grammar: about 1.2-1.7 CPU-seconds, paid by every kernel of the weekly run although no notebook
validates an IRI. :func:`defer_slow_imports` puts a stand-in module in ``sys.modules`` whose
``is_valid_syntax`` imports the real package on its first call, so behaviour is unchanged and the cost
is paid only by a process that really checks an IRI.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

_DEFERRED = "rfc3987_syntax"


def _load_real() -> types.ModuleType:
    shim = sys.modules.get(_DEFERRED)
    if getattr(shim, "_crm_deferred", False):
        del sys.modules[_DEFERRED]
    try:
        return importlib.import_module(_DEFERRED)
    except BaseException:
        if shim is not None:
            sys.modules.setdefault(_DEFERRED, shim)
        raise


def defer_slow_imports() -> None:
    """Install the stand-in unless the real package is already imported or not installed."""
    if _DEFERRED in sys.modules or importlib.util.find_spec(_DEFERRED) is None:
        return
    shim = types.ModuleType(_DEFERRED, "stand-in: imports the real rfc3987_syntax on first use")
    shim._crm_deferred = True

    def is_valid_syntax(*args, **kwargs):
        return _load_real().is_valid_syntax(*args, **kwargs)

    def __getattr__(name: str):  # any other public attribute: the real module's
        if name.startswith("__"):  # the import system probes __path__, __spec__, ...
            raise AttributeError(name)
        return getattr(_load_real(), name)

    shim.is_valid_syntax = is_valid_syntax
    shim.__getattr__ = __getattr__
    sys.modules[_DEFERRED] = shim
