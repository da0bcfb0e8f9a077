"""The workspace itself: notebooks stripped and parameterised, YAML keys declared, set-up files agree."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from crmlib import workspace

REPO = Path(__file__).resolve().parent.parent


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (e.g. an sdist): fall back to the file system
        return sorted(REPO.glob(pattern))
    return [REPO / line for line in out.stdout.splitlines()]


NOTEBOOKS = tracked("notebooks/*.ipynb")
PARAM_FILES = tracked("params/*.yaml")


def test_there_are_notebooks_and_params():
    assert NOTEBOOKS, "no notebooks in git"
    assert REPO / "params" / "weekly.yaml" in PARAM_FILES


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_with_one_parameters_cell(nb):
    assert workspace.notebook_problems(nb) == []


def test_notebook_check_catches_outputs_and_missing_parameters(tmp_path):
    nb = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    nb["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps(nb), encoding="utf-8")
    problems = workspace.notebook_problems(bad)
    assert any("has outputs" in p for p in problems)
    assert any("0 cells tagged 'parameters'" in p for p in problems)


@pytest.mark.parametrize("yaml_path", PARAM_FILES, ids=lambda p: p.name)
def test_params_keys_are_declared_in_notebooks(yaml_path):
    assert workspace.parameter_key_problems(yaml_path, REPO / "notebooks") == []


def test_misspelt_parameter_key_is_caught(tmp_path):
    cfg = yaml.safe_load((REPO / "params" / "weekly.yaml").read_text(encoding="utf-8"))
    cfg["parameters"]["langauge"] = cfg["parameters"].pop("lang")
    bad = tmp_path / "weekly.yaml"
    bad.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    problems = workspace.parameter_key_problems(bad, REPO / "notebooks")
    assert problems and all("'langauge'" in p for p in problems)


def test_report_notebook_declares_metrics_path():
    """`crm weekly` passes metrics_path to the managers' notebook on top of the YAML parameters."""
    cfg = yaml.safe_load((REPO / "params" / "weekly.yaml").read_text(encoding="utf-8"))
    nb = workspace.load_notebook(REPO / "notebooks" / cfg["report_notebook"])
    assert "metrics_path" in workspace.declared_parameters(nb)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_kernel_exists_in_venv(nb):
    from jupyter_client.kernelspec import KernelSpecManager

    name = workspace.kernel_name(workspace.load_notebook(nb))
    specs = KernelSpecManager().find_kernel_specs()
    assert name in specs, f"{nb.name} names kernel {name!r}; registered: {sorted(specs)}"
    assert Path(specs[name]).resolve().is_relative_to(Path(sys.prefix).resolve()), \
        "the kernel must be registered inside the venv (ipykernel install --sys-prefix)"


def _norm(name: str) -> str:
    return re.split(r"[\[<>=!~; ]", name.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_norm(d) for d in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        wanted |= {_norm(d) for d in extra}
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_norm(d) for d in pip_section if not d.startswith("-")}
    assert listed == wanted
    assert "python=3.11" in env["dependencies"]
    assert "-c constraints.txt" in pip_section


def test_constraints_are_name_equals_version_lines_covering_every_dependency():
    lines = (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-!]+", line) for line in lines)
    pinned = {_norm(line) for line in lines}
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    assert {_norm(d) for d in deps} <= pinned


def test_readme_first_screen_shows_both_commands():
    first_screen = "\n".join((REPO / "README.md").read_text(encoding="utf-8").splitlines()[:30])
    assert "make weekly" in first_screen and "make test" in first_screen


def test_ci_calls_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_ignored_data_folders_keep_a_readme():
    for folder in ("data/raw", "data/curated", "reports"):
        assert (REPO / folder / "README.md").exists(), folder
    ignored = subprocess.run(["git", "check-ignore", "data/raw/x.csv", "data/curated/crm.duckdb",
                              "reports/2026-W47/x.html"], cwd=REPO, capture_output=True, text=True)
    assert len(ignored.stdout.split()) == 3


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_reads_every_parameter(nb):
    """papermill parses the parameters cell itself; a line it cannot parse (a ';' in a comment, say)
    makes it warn 'unknown parameter' for a key the notebook does declare."""
    import papermill as pm

    assert set(pm.inspect_notebook(str(nb))) == workspace.declared_parameters(workspace.load_notebook(nb))
