"""crmlib defers rfc3987_syntax's grammar compile (crmlib/_startup.py) without changing behaviour."""
import subprocess
import sys

import pytest

CHECK = r"""
import sys, time
import crmlib, jsonschema, nbformat, plotly.io
shim = sys.modules.get("rfc3987_syntax")
print("deferred", getattr(shim, "_crm_deferred", False))
from jsonschema import Draft202012Validator, FormatChecker
v = Draft202012Validator({"type": "string", "format": "iri"}, format_checker=FormatChecker())
print("valid", v.is_valid("http://例子.测试/路径?q=1"))
print("invalid", v.is_valid("http://exa mple.com/ bad"))
print("real", not getattr(sys.modules["rfc3987_syntax"], "_crm_deferred", False))
"""


def test_iri_checks_still_work_after_deferral():
    pytest.importorskip("rfc3987_syntax")
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["deferred", "True", "valid", "True", "invalid", "False", "real", "True"]
