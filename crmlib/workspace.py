"""Checks on the workspace itself: notebooks stripped, one `parameters` cell, YAML keys declared.

papermill only warns about a parameter the notebook does not declare and exits 0, so a misspelt key
in ``params/weekly.yaml`` would silently do nothing; these checks make it an error (see tests).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from .params import read_yaml


def load_notebook(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def parameter_cells(nb: dict) -> list[dict]:
    return [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]


def declared_parameters(nb: dict) -> set[str]:
    """Names assigned at top level in the `parameters` cell."""
    names: set[str] = set()
    for cell in parameter_cells(nb):
        source = "".join(cell.get("source", []))
        for node in ast.parse(source).body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def notebook_problems(path: Path) -> list[str]:
    """Outputs or execution counts left in, or not exactly one `parameters` cell."""
    nb = load_notebook(path)
    problems = []
    for i, cell in enumerate(nb.get("cells", []), 1):
        if cell.get("outputs"):
            problems.append(f"{path.name}: cell {i} has outputs (strip them before committing)")
        if cell.get("execution_count") is not None:
            problems.append(f"{path.name}: cell {i} has an execution count (strip outputs)")
    n = len(parameter_cells(nb))
    if n != 1:
        problems.append(f"{path.name}: {n} cells tagged 'parameters' (need exactly one)")
    return problems


def kernel_name(nb: dict) -> str | None:
    return nb.get("metadata", {}).get("kernelspec", {}).get("name")


def parameter_key_problems(yaml_path: Path, notebooks_dir: Path) -> list[str]:
    """Keys a params YAML passes to notebooks (its ``parameters`` mapping) that a notebook does not declare."""
    cfg = read_yaml(yaml_path)
    passed = set((cfg.get("parameters") or {}).keys())
    names = list(cfg.get("notebooks") or [])
    if cfg.get("report_notebook"):
        names.append(cfg["report_notebook"])
    problems = []
    for name in names:
        nb_path = notebooks_dir / name
        if not nb_path.exists():
            problems.append(f"{yaml_path.name}: notebook {name} does not exist")
            continue
        missing = passed - declared_parameters(load_notebook(nb_path))
        for key in sorted(missing):
            problems.append(f"{yaml_path.name}: key {key!r} is not declared in {name}'s parameters cell")
    return problems
