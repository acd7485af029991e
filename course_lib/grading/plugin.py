"""A small pytest plugin that the grader loads into the pytest it runs on each submission.

Everything here runs in the pytest process, outside the kernel's sandbox: the kernel can neither
see nor signal this process, and nothing it writes is trusted as a result.

1. After every notebook cell that nbval runs, it writes one JSON line to the pipe the grader
   passed as `--course-grade-fd` (never to a file): the cell's number among code cells, a status
   (passed, skipped, error, timeout, died, lost), whether the kernel is gone after it (`fatal`),
   and a short reason. Which cell passed is thus known only to this process and the grader.
2. While a cell runs, a watchdog thread watches the kernel process. If the kernel dies, nbval would
   wait for the whole cell timeout before noticing; if a cell ignores nbval's interrupt and keeps
   printing, nbval would wait forever. The watchdog ends both at once: it kills the kernel if the
   cell runs past `--course-grade-hard-limit` seconds, and stops nbval's wait with a signal, so
   the cell fails with `KernelGone` and the later cells fail fast with "Kernel dead".
3. Around each check cell the grader inserted, it deletes any record of that exercise from
   `--course-grade-records` before the cell runs, and reads the record check() wrote once, right
   after it, sending its bytes down the same pipe: the grader never reads that folder itself.
4. `--course-grade-kernel` names a JSON file saying how to start the kernel: a command prefix
   (the bwrap sandbox), the folder of its Unix sockets (jupyter_client's ipc transport), and a
   startup file; nbval's KernelManager is replaced by one that does so. `--course-grade-parent`
   makes this process die with the grader, so a killed grader leaves no run behind.

The grader (run.py) loads it from this file into `pytest.main(..., plugins=[...])`.
It imports nothing of course_lib (so pytest does not import torch).
"""
from __future__ import annotations

import base64
import ctypes
import json
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

if __package__:  # imported as course_lib.grading.plugin
    from .text import short
else:  # loaded from its file into the grader's pytest: text.py (which imports nothing) from beside it
    import importlib.util

    _spec = importlib.util.spec_from_file_location("course_grade_text", Path(__file__).with_name("text.py"))
    _text = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_text)
    short = _text.short

WAKE_SIGNAL = signal.SIGUSR1


class KernelGone(Exception):
    """Raised in pytest's main thread when the watchdog finds the kernel dead or has killed it."""


class Watchdog:
    """Watches the kernel process while one cell runs (see the module docstring)."""

    def __init__(self, process: Any, cell_timeout: float, hard_limit: float) -> None:
        self.process, self.cell_timeout, self.hard_limit = process, cell_timeout, hard_limit
        self.died: int | None = None  # the kernel's exit code, if it died on its own
        self.killed = False  # True if we killed it for running past the hard limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="course-grade-watchdog")

    def _watch(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(0.1):
            code, elapsed = self.process.poll(), time.monotonic() - start
            if code is None and elapsed > self.hard_limit:
                try:  # the kernel leads its own process group (jupyter starts it in a new session)
                    os.killpg(self.process.pid, signal.SIGKILL)
                except OSError:
                    self.process.kill()
                self.process.wait()  # dead before the next cell asks whether it is alive
                self.killed = True
            elif code is not None and elapsed < self.cell_timeout:
                self.died = code  # later, nbval itself has stopped the kernel after its timeout
            elif code is not None:
                return
            else:
                continue
            _armed.wait_raise = True
            os.kill(os.getpid(), WAKE_SIGNAL)  # Python runs the handler in the main thread
            return

    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _Armed:
    """Whether the wake-up signal should raise (only while a cell runs and the watchdog fired)."""

    wait_raise = False
    running = False


_armed = _Armed()


def _on_wake(signum: int, frame: Any) -> None:
    if _armed.running and _armed.wait_raise:
        _armed.wait_raise = False
        raise KernelGone("the kernel is gone")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course-grade", "course_lib grading")
    group.addoption("--course-grade-fd", type=int, default=None, help="write one JSON line per notebook cell to this fd")
    group.addoption("--course-grade-hard-limit", type=float, default=None,
                    help="kill the kernel when one cell runs longer than this many seconds")
    group.addoption("--course-grade-records", default=None, help="the folder check() records into ($COURSE_GRADE_DIR)")
    group.addoption("--course-grade-kernel", default=None, help="JSON file: how to start the kernel (see the docstring)")
    group.addoption("--course-grade-parent", type=int, default=None, help="the grader's pid: die when it dies")


MAX_RECORD_BYTES = 64 * 2**20
PR_SET_PDEATHSIG = 1


def _check_of(item: pytest.Item) -> str | None:
    """The exercise id if this item is a check cell the grader inserted."""
    meta = getattr(getattr(item, "cell", None), "metadata", {}).get("course", {})
    return meta.get("exercise") if meta.get("role") == "check" else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    ex_id, records = _check_of(item), item.config.getoption("course_grade_records")
    if ex_id and records:
        _remove(Path(records) / f"{ex_id}.pt")


def _remove(path: Path) -> None:
    """Remove what the kernel left at a record's name: a file, a link, a FIFO; a folder there just stays."""
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a folder: it never reads as a record (not a regular file)
        pass


def _take_record(item: pytest.Item) -> str | None:
    """The record of this check cell (base64), read once and removed; None if there is no sane one."""
    ex_id, records = _check_of(item), item.config.getoption("course_grade_records")
    if not (ex_id and records):
        return None
    src = Path(records) / f"{ex_id}.pt"
    try:  # a plain file of sane size only: no links to the grader's files, no huge dumps
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO would block the open
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RECORD_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)
        _remove(src)
    return base64.b64encode(data).decode("ascii") if len(data) <= MAX_RECORD_BYTES else None


def _die_with(parent: int) -> None:
    """Be killed when the grader dies (Linux), and stop now if it is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the grader's own clean-up is all there is
        pass
    if os.getppid() != parent:
        os._exit(70)


def _use_kernel_launcher(spec_file: str) -> None:
    """Make nbval start each kernel as the grader says: sandbox prefix, ipc sockets, startup file."""
    import nbval.kernel

    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    base = nbval.kernel.KernelManager

    class GradeKernelManager(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if spec.get("ipc"):  # Unix sockets in a folder bound into the sandbox: the only way in or out
                self.transport, self.ip = "ipc", str(Path(spec["ipc"]) / "kernel")
                self.connection_file = str(Path(spec["ipc"]) / "kernel.json")
                self.kernel_spec.interrupt_mode = "message"  # a signal would hit bwrap, not the kernel

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            cmd = super().format_kernel_cmd(extra_arguments)  # jupyter_client has written the connection file
            if spec.get("user") and os.path.exists(self.connection_file):  # root's 0600 file, for the kernel's user
                os.chown(self.connection_file, *spec["user"])
            return [*spec.get("prefix", []), *cmd, f"--IPKernelApp.exec_files={spec['startup']}"]

    nbval.kernel.KernelManager = GradeKernelManager


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("course_grade_parent"):
        _die_with(config.getoption("course_grade_parent"))
    if config.getoption("course_grade_kernel"):
        _use_kernel_launcher(config.getoption("course_grade_kernel"))
    if config.getoption("course_grade_fd") is not None and threading.current_thread() is threading.main_thread():
        signal.signal(WAKE_SIGNAL, _on_wake)


def _kernel_process(item: pytest.Item) -> Any:
    kernel = getattr(getattr(item, "parent", None), "kernel", None)
    provisioner = getattr(getattr(kernel, "km", None), "provisioner", None)
    return getattr(provisioner, "process", None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    limit = item.config.getoption("course_grade_hard_limit")
    process = _kernel_process(item) if item.config.getoption("course_grade_fd") is not None else None
    if process is None or not limit or process.poll() is not None:  # dead already: nbval says so itself
        yield
        return
    watchdog = Watchdog(process, float(item.config.getoption("nbval_cell_timeout")), limit)
    item._course_watchdog = watchdog  # read by pytest_runtest_makereport
    _armed.running, _armed.wait_raise = True, False
    try:
        with watchdog:
            yield
    finally:
        _armed.running = False


def classify(item: pytest.Item, call: pytest.CallInfo) -> dict:
    """What happened in one cell, from nbval's exception and the watchdog's notes."""
    watchdog = getattr(item, "_course_watchdog", None)
    exc = call.excinfo.value if call.excinfo else None
    if call.when == "setup":  # nbval starts the kernel while setting up the first cell
        return {"status": "lost", "fatal": True, "reason": f"kernel did not start: {short(exc)}"}
    if watchdog is not None and watchdog.killed:
        return {"status": "timeout", "fatal": True,
                "reason": f"timeout: ran past {watchdog.hard_limit:g} s and ignored the interrupt; kernel killed"}
    if watchdog is not None and watchdog.died is not None:
        return {"status": "died", "fatal": True, "reason": f"kernel died (exit code {watchdog.died})"}
    if exc is None:
        return {"status": "passed", "fatal": False, "reason": ""}
    if isinstance(exc, pytest.skip.Exception):
        return {"status": "skipped", "fatal": False, "reason": "cell skipped (NBVAL_SKIP)"}
    message = short(exc)
    if "Kernel dead" in message:
        return {"status": "lost", "fatal": True, "reason": "not run: the kernel was already dead"}
    if "Timeout" in message:  # nbval's words; after "Failed to interrupt" it has stopped the kernel
        fatal = "Failed to interrupt" in message or "waiting for output" in message
        seconds = item.config.getoption("nbval_cell_timeout")
        return {"status": "timeout", "fatal": fatal, "reason": f"timeout: ran past {float(seconds):g} s"}
    errors = [o for o in (getattr(item, "test_outputs", None) or []) if o.get("output_type") == "error"]
    if errors:
        return {"status": "error", "fatal": False,
                "reason": short(f"{errors[-1].get('ename')}: {errors[-1].get('evalue')}")}
    return {"status": "error", "fatal": False, "reason": short(f"{type(exc).__name__}: {message}")}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    yield
    fd = item.config.getoption("course_grade_fd")
    cell = getattr(item, "cell_num", None)
    if fd is None or cell is None or call.when == "teardown" or (call.when == "setup" and call.excinfo is None):
        return
    record = {"cell": cell, "seconds": round(call.duration, 3), **classify(item, call)}
    if call.when == "call" and _check_of(item):
        record["record"] = _take_record(item)
    line = (json.dumps(record) + "\n").encode()
    while line:  # a pipe may take a long line in parts
        line = line[os.write(fd, line):]
