"""Running one graded notebook: pytest --nbval-lax with the plugin, the kernel in its own sandbox."""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data import ENV_VAR as DATA_VAR
from ..data import SYSTEM_DIRS_VAR
from ..exercises import GRADE_CASES_VAR, GRADE_DIR_VAR, draw_cases, get_exercise, salted
from ..profiles import ENV_VAR as PROFILE_VAR
from .reference import Cell, write_notebook
from .sandbox import CASES, HOME, RECORDS, Limits, bwrap_prefix, find_bwrap, give_to_sandbox, kernel_group, sandbox_user

RUN_MARKER_VAR = "COURSE_GRADE_RUN"  # set in every process of a run, so the grader can find and end them all
PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                DATA_VAR, SYSTEM_DIRS_VAR)
STARTUP = Path(__file__).with_name("kernel_start.py")


@dataclass(frozen=True)
class GradeOptions:
    cell_timeout: float = 120.0  # seconds per cell (nbval interrupts, then the plugin kills)
    submission_timeout: float = 1200.0  # seconds for a whole submission, re-runs included
    profile: str = "smoke"  # COURSE_PROFILE in the kernel; checks do not depend on it, context cells do
    jobs: int = 1  # submissions graded at once
    keep_temp: bool = False  # keep each run's folder (graded notebook, pytest log) for debugging
    sandbox: bool = True  # run each kernel in bwrap when it works here (see sandbox.py)
    hide: tuple[Path, ...] = field(default=())  # more to cover in the sandbox: submissions, reports
    limits: Limits = field(default_factory=Limits)  # each sandboxed kernel's memory and process caps


@dataclass
class Run:
    results: list[dict | None]  # one per cell: the plugin's record, None if the cell never ran
    records: dict[str, bytes]  # what each check() recorded, read by pytest right after its check cell
    timed_out: bool  # the submission's time ran out and the run was killed
    salt: int = 0  # the run's secret: its cases were drawn with it, and are verified with it


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
    """Kill pytest, the kernel and anything they started (found by parentage and by the run marker).

    In the sandbox, killing the kernel's bwrap ends its PID namespace and so every process in it;
    the search by marker is for runs without one.
    """
    import psutil  # the grading extra (pip install "course-lib[grading]"); imported here, not with the package

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


def kernel_env(profile: str, home: str, tmp: str, records: str, marker: str, cases: str = "") -> dict[str, str]:
    """The kernel's whole environment: scratch HOME and Jupyter folders, nothing else of the grader's."""
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env.update({
        "HOME": home, "IPYTHONDIR": f"{home}/.ipython", "MPLCONFIGDIR": f"{home}/.mpl",
        "JUPYTER_CONFIG_DIR": f"{home}/.jupyter", "JUPYTER_DATA_DIR": f"{home}/.jupyter-data",
        "JUPYTER_RUNTIME_DIR": f"{home}/.jupyter-runtime", "JUPYTER_PLATFORM_DIRS": "1",
        "XDG_CACHE_HOME": f"{home}/.cache", "XDG_CONFIG_HOME": f"{home}/.config",
        "TMPDIR": tmp, "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", PROFILE_VAR: profile,
        GRADE_DIR_VAR: records, RUN_MARKER_VAR: marker,
    })
    if cases:  # grading: check() runs the student's function on these inputs and leaves the verdict to the grader
        env[GRADE_CASES_VAR] = cases
    return env


def run_env(root: Path, records: Path, marker: str, profile: str, cases: Path | None = None) -> dict[str, str]:
    """pytest's environment (and the kernel's, without a sandbox): scratch folders under root."""
    home, tmp = root / "home", root / "tmp"
    for d in (home, tmp):
        d.mkdir(parents=True, exist_ok=True)
    return kernel_env(profile, str(home), str(tmp), str(records), marker, str(cases) if cases else "")


def write_cases(cells: list[Cell], folder: Path, salt: int) -> None:
    """The inputs of every checked exercise's cases, drawn with the run's secret salt, as plain data for the kernel."""
    import torch

    for ex_id in sorted({c.exercise for c in cells if c.role == "check" and c.exercise}):
        with salted(salt):
            cases = draw_cases(get_exercise(ex_id))
        torch.save(cases, folder / f"{ex_id}.pt")


def sandbox_or_none(opts: GradeOptions) -> str | None:
    """The bwrap to run kernels in, or None when opts.sandbox is off or bwrap does not work here."""
    return find_bwrap()[0] if opts.sandbox else None


def read_pipe(fd: int, lines: list[bytes]) -> threading.Thread:
    """Collect what the plugin writes on fd (its pytest holds the only other end) in a thread."""
    def drain() -> None:
        with os.fdopen(fd, "rb") as f:
            lines.extend(f)
    t = threading.Thread(target=drain, daemon=True, name="course-grade-pipe")
    t.start()
    return t


def parse_results(lines: list[bytes], cells: list[Cell]) -> tuple[list[dict | None], dict[str, bytes]]:
    """The plugin's lines: one result per cell (the first wins) and the record of each check cell."""
    results: list[dict | None] = [None] * len(cells)
    records: dict[str, bytes] = {}
    for line in lines:
        try:
            rec = json.loads(line)
            k = rec["cell"]
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(k, int) or not 0 <= k < len(cells) or results[k] is not None:
            continue
        data = rec.pop("record", None)
        results[k] = rec
        if isinstance(data, str) and cells[k].role == "check" and cells[k].exercise:
            try:
                records[cells[k].exercise] = base64.b64decode(data, validate=True)
            except ValueError:
                pass
    return results, records


def run_cells(cells: list[Cell], opts: GradeOptions, deadline: float) -> tuple[Run, Path]:
    """Run the cells under pytest --nbval-lax in a fresh kernel; the caller removes the returned folder."""
    root = Path(tempfile.mkdtemp(prefix="course-grade-"))
    work, grader, ipc = root / "work", root / "grader", root / "ipc"  # pytest's cwd; only the grader's; sockets
    records = root / f"records-{secrets.token_hex(8)}"  # the kernel writes here; the plugin reads right after a check
    cases = root / "cases"  # the kernel reads its inputs here; the salt they were drawn with stays in this process
    for d in (work, grader, ipc, records, cases):
        d.mkdir()
    salt = secrets.randbits(62) | 1  # never 0, the cases a student sees at home
    write_cases(cells, cases, salt)
    notebook = grader / "submission.ipynb"
    write_notebook(cells, notebook)
    (grader / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    marker, bwrap = secrets.token_hex(16), sandbox_or_none(opts)
    spec: dict = {"startup": str(STARTUP)}
    group = kernel_group(f"course-grade-{marker}", opts.limits)[0] if bwrap else None  # None: per-process caps only
    if bwrap:
        env = kernel_env(opts.profile, HOME, "/tmp", RECORDS, marker, CASES)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
        spec |= {"ipc": str(ipc), "prefix": bwrap_prefix(bwrap, ipc, records, env, [root, *opts.hide], opts.limits, cases,
                                                         group)}
        if sandbox_user():  # root binds the folders; the kernel's unprivileged user writes only these two
            give_to_sandbox(ipc, records)
            spec["user"] = list(sandbox_user())  # the plugin hands it the connection file jupyter_client wrote
    (grader / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-c", PYTEST_WITH_PLUGIN, str(Path(__file__).with_name("plugin.py")),
           str(notebook), "-c", str(grader / "pytest.ini"), "--rootdir", str(grader),
           "-p", "nbval.plugin", "-p", "no:cacheprovider", "-q",
           "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={opts.cell_timeout:g}",
           f"--course-grade-fd={write_fd}", f"--course-grade-hard-limit={opts.cell_timeout + 10:g}",
           "--course-grade-records", str(records), "--course-grade-kernel", str(grader / "kernel.json"),
           f"--course-grade-parent={os.getpid()}"]
    timed_out, lines = False, []
    with open(grader / "pytest.log", "wb") as out:
        try:
            proc = subprocess.Popen(cmd, cwd=work, env=run_env(root, records, marker, opts.profile, cases),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=(write_fd,))
        finally:
            os.close(write_fd)  # pytest holds the only write end now: the reader ends when it does
        reader = read_pipe(read_fd, lines)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            end_run(proc, marker)  # also ends anything the student left running
            if group:
                group.remove()
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        reader.join(timeout=10)
    results, records_read = parse_results(lines, cells)
    return Run(results, records_read, timed_out, salt), root
