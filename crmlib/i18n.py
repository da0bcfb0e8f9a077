"""Report language: Chinese by default, English on request.

Modules keep their own label tables ``{key: {"zh": ..., "en": ...}}`` and call :func:`tr`.
"""
from __future__ import annotations

LANGS = ("zh", "en")


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        from .errors import UserError
        raise UserError(f"unknown report language {lang!r}", hint="use lang: zh or lang: en")
    return lang


def tr(labels: dict[str, dict[str, str]], key: str, lang: str = "zh") -> str:
    """Label for ``key`` in ``lang``; falls back to the key itself so a missing label is visible."""
    entry = labels.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry.get("zh") or key
