"""Typed loading of ``params/*.yaml``. Unknown keys are errors, not warnings.

Each analysis declares a pydantic model (subclass :class:`Params`) and calls :func:`load`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from . import paths
from .errors import UserError


class Params(BaseModel):
    """Base for every params model: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=Params)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError("parameter file not found", file=str(path))
    if path.is_dir():
        raise UserError("is a folder, not a parameter file", file=str(path), hint="pass a .yaml file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                        row=(mark.line + 1) if mark else None) from None
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", file=str(path),
                        hint="save the parameter file as UTF-8 (e.g. in a text editor: Save with encoding UTF-8)") from None
    except ValueError as exc:  # YAML reads 2026-02-30 as a date and fails on it
        raise UserError(f"a value cannot be read: {exc}", file=str(path),
                        hint="write dates as real dates, YYYY-MM-DD, or put the value in quotes") from None
    if not isinstance(data, dict):
        raise UserError("expected a mapping of keys to values at the top level", file=str(path))
    return data


def params_path(name_or_path: str | Path) -> Path:
    """``params/<name>.yaml`` for a bare name (``"master"``), else the path as given."""
    path = Path(name_or_path)
    if path.suffix or len(path.parts) > 1:
        return path
    return paths.params_dir() / f"{name_or_path}.yaml"


def load(model: type[P], name_or_path: str | Path, **overrides) -> P:
    """Load ``params/<name>.yaml`` (or a path) into ``model``; keyword overrides win over the file."""
    path = params_path(name_or_path)
    data = read_yaml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"invalid parameters: {problems}", file=str(path),
                        hint="fix the key or value; see the comments in the file") from None
