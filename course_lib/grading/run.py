"""Running one graded notebook: pytest --nbval-lax with the plugin, in a fresh kernel."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..exercises import GRADE_DIR_VAR
from .reference import Cell, write_notebook

RUN_MARKER_VAR = "COURSE_GRADE_RUN"  # set in every process of a run, so the grader can find and end them all
PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "COURSE_DATA", "COURSE_SYSTEM_DATA")


@dataclass(frozen=True)
class GradeOptions:
    cell_timeout: float = 120.0  # seconds per cell (nbval interrupts, then the plugin kills)
    submission_timeout: float = 1200.0  # seconds for a whole submission, re-runs included
    profile: str = "smoke"  # COURSE_PROFILE in the kernel; checks do not depend on it, context cells do
    jobs: int = 1  # submissions graded at once
    keep_temp: bool = False  # keep each run's folder (graded notebook, pytest log) for debugging


@dataclass
class Run:
    results: list[dict | None]  # one per cell: the plugin's record, None if the cell never ran
    records: Path  # what each check() recorded, copied out right after its check cell
    timed_out: bool  # the submission's time ran out and the run was killed


# pytest with plugin.py loaded from its file: `-p course_lib.grading.plugin` would import the whole
# course_lib package (and torch) into pytest, which costs seconds per run and is not needed there.
PYTEST_WITH_PLUGIN = """\
import importlib.util, sys
import pytest
spec = importlib.util.spec_from_file_location("course_grade_plugin", sys.argv[1])
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
sys.exit(pytest.main(sys.argv[2:], plugins=[plugin]))
"""

_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def end_run(proc: subprocess.Popen, marker: str) -> None:
    """Kill pytest, the kernel and anything they started (found by parentage and by the run marker)."""
    victims = []
    try:
        victims += psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(RUN_MARKER_VAR) == marker:
                victims.append(p)
        except (psutil.Error, OSError):
            continue
    for p in victims:
        try:
            p.kill()
        except psutil.Error:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    psutil.wait_procs(victims, timeout=5)


def run_env(root: Path, records: Path, marker: str, profile: str) -> dict[str, str]:
    """A small environment: scratch HOME and Jupyter folders, nothing else of the grader's."""
    home = root / "home"
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env.update({
        "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"), "MPLCONFIGDIR": str(home / ".mpl"),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_DATA_DIR": str(home / ".jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime"), "JUPYTER_PLATFORM_DIRS": "1",
        "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
        "TMPDIR": str(root / "tmp"), "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", "COURSE_PROFILE": profile,
        GRADE_DIR_VAR: str(records), RUN_MARKER_VAR: marker,
    })
    for d in (home, root / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    return env


def run_cells(cells: list[Cell], opts: GradeOptions, deadline: float) -> tuple[Run, Path]:
    """Run the cells under pytest --nbval-lax in a fresh kernel; the caller removes the returned folder."""
    root = Path(tempfile.mkdtemp(prefix="course-grade-"))
    work, grader = root / "work", root / "grader"  # the kernel's cwd; what only the grader reads
    records = root / f"records-{secrets.token_hex(8)}"  # the kernel writes here; the plugin copies to the vault
    vault = grader / "records"
    for d in (work, grader, records, vault):
        d.mkdir()
    notebook, log = work / "submission.ipynb", grader / "cells.jsonl"
    write_notebook(cells, notebook)
    (grader / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    marker = secrets.token_hex(16)
    cmd = [sys.executable, "-c", PYTEST_WITH_PLUGIN, str(Path(__file__).with_name("plugin.py")),
           str(notebook), "-c", str(grader / "pytest.ini"), "--rootdir", str(work),
           "-p", "nbval.plugin", "-p", "no:cacheprovider", "-q",
           "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={opts.cell_timeout:g}",
           "--course-grade-log", str(log), f"--course-grade-hard-limit={opts.cell_timeout + 10:g}",
           "--course-grade-records", str(records), "--course-grade-vault", str(vault)]
    timed_out = False
    with open(grader / "pytest.log", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=run_env(root, records, marker, opts.profile), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            end_run(proc, marker)  # also ends anything the student left running
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    results: list[dict | None] = [None] * len(cells)
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []:
        try:
            rec = json.loads(line)
            k = rec["cell"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(k, int) and 0 <= k < len(cells) and results[k] is None:
            results[k] = rec
    return Run(results, vault, timed_out), root
