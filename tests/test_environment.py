"""environment.yml and requirements.lock stay in step with pyproject.toml, the single list of dependencies."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


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
    assert "-c requirements.lock" in pip, "the pip section must install through the lock: `-c requirements.lock`"
    declared = {Requirement(r).name.lower() for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    others = [Requirement(r).name.lower() for r in pip if not r.startswith("-")]
    assert set(others) <= declared, f"pip entries {set(others) - declared} are not in pyproject.toml: add them there"


def test_torch_and_torchvision_are_the_registry_packages_with_ranges():
    _, project = load()
    reqs = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    for name in ("torch", "torchvision"):
        assert name in reqs, f"{name} must be a dependency"
        assert str(reqs[name].specifier), f"{name} needs a version range"
        assert not reqs[name].url and "+" not in str(reqs[name].specifier), f"{name} must come from the registry, not a local build"


# -- requirements.lock: exact versions for the course's own set-up -------------------------------------------
def declared():
    """pyproject.toml's requirements, base and dev, that apply on this machine."""
    _, project = load()
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": "dev"})]


def pins():
    """{canonical name: version} from requirements.lock; every entry must be a bare `name==version`."""
    out = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
        assert m, f"requirements.lock line {line!r} is not `name==version` (pip -c takes no extras): run `make lock`"
        out[canonicalize_name(m[1])] = m[2]
    return out


def test_the_lock_pins_every_dependency_of_pyproject_within_its_range():
    locked = pins()
    missing = [str(r) for r in declared() if canonicalize_name(r.name) not in locked]
    assert not missing, f"{missing} are in pyproject.toml but not in requirements.lock: run `make lock`"
    outside = [f"{r} (locked {locked[canonicalize_name(r.name)]})" for r in declared()
               if not r.specifier.contains(locked[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, f"the lock's versions are outside pyproject.toml's ranges: {outside}; run `make lock`"


def test_make_venv_installs_through_the_lock():
    """`make venv` (and so `make lab`, `make test` and CI) installs with the lock as constraints."""
    out = subprocess.run(["make", "--dry-run", "--always-make", "venv"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    installs = [line for line in out.splitlines() if "pip install" in line and "-e" in line.split()]
    assert installs and all("-c requirements.lock" in line for line in installs), \
        f"make venv must install with `-c requirements.lock`; it runs:\n{out}"


# The pins hold the course's own venv: `make venv` (so make lab, make test and CI) builds .venv at the repository
# root from the lock, and tests run there by `make test` check it. Any other interpreter (a conda environment, a
# library-only `pip install course-lib` within pyproject's ranges, another venv) may legitimately hold other
# versions, so there the comparison is skipped rather than failed; the lock's coverage above is checked everywhere.
IN_COURSE_VENV = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()


@pytest.mark.skipif(not IN_COURSE_VENV, reason=f"not running in the course venv {ROOT / '.venv'} "
                    f"(sys.prefix is {sys.prefix}), which alone is built from requirements.lock")
def test_the_course_venv_has_the_locked_versions():
    locked = pins()
    direct = {canonicalize_name(r.name) for r in declared()}

    def installed(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    # Direct dependencies must be there at the pinned version; the rest of the lock must match where installed
    # (the lock is resolved on Linux: a package that only Linux needs, e.g. nvidia-*, may be absent elsewhere).
    wrong = {name: (installed(name), pin) for name, pin in locked.items()
             if (name in direct or installed(name) is not None)
             and (installed(name) is None or Version(installed(name)) != Version(pin))}
    assert not wrong, f"installed vs locked: {wrong}; run `make venv` to install the lock"
