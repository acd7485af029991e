"""environment.yml stays in step with pyproject.toml, the single list of dependencies."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent


def load():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return env, project


def test_conda_gives_python_and_pip_from_conda_forge_only():
    env, project = load()
    assert env["channels"] == ["conda-forge"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    names = sorted(re.split(r"[=<>! ]", d)[0] for d in conda)
    assert names == ["pip", "python"], f"conda should install only python and pip, got {conda}; add packages to pyproject.toml"
    python = next(d for d in conda if d.startswith("python"))
    version = python.split("=", 1)[1]
    assert version in SpecifierSet(project["requires-python"]), \
        f"environment.yml's python {version} is outside pyproject's requires-python {project['requires-python']}"


def test_pip_section_installs_the_project_with_dev_extras():
    env, project = load()
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e .[dev]" in pip, "the pip section must install the project itself: `-e .[dev]`"
    declared = {Requirement(r).name.lower() for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    others = [Requirement(r).name.lower() for r in pip if not r.startswith("-e")]
    assert set(others) <= declared, f"pip entries {set(others) - declared} are not in pyproject.toml: add them there"


def test_torch_and_torchvision_are_the_registry_packages_with_ranges():
    _, project = load()
    reqs = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    for name in ("torch", "torchvision"):
        assert name in reqs, f"{name} must be a dependency"
        assert str(reqs[name].specifier), f"{name} needs a version range"
        assert not reqs[name].url and "+" not in str(reqs[name].specifier), f"{name} must come from the registry, not a local build"
