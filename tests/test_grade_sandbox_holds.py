"""The kernel's sandbox holds (issue [17]): checked from inside it, with the grader's own bwrap command line.

Each test runs a probe under `bwrap_prefix`, the prefix every student kernel starts with, so what the
probe can do is what a submission can do: no root, no capabilities, no mount, umount or mknod, no new
user namespace, /proc/sys and the course read-only, only the records folder writable. The rest are the
grader's own defences: records that are FIFOs or links, reports a spreadsheet or terminal would act on,
and a batch whose kernels cannot start at all.
"""
from __future__ import annotations

import errno
import importlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from course_lib.grading import plugin
from course_lib.grading.run import Run, kernel_env
from course_lib.grading.sandbox import (HOME, RECORDS, Limits, bwrap_prefix, find_bwrap, give_to_sandbox, kernel_group,
                                        sandbox_user)
from course_lib.grading.text import csv_cell, short
from course_lib.paths import REPO_ROOT

judge = importlib.import_module("course_lib.grading.judge")  # the package exports a function of that name
report = importlib.import_module("course_lib.grading.report")
needs_bwrap = pytest.mark.skipif(find_bwrap()[0] is None, reason=f"no sandbox here: {find_bwrap()[1]}")

PROBE = r'''
import ctypes, errno, json, os, stat, sys
libc = ctypes.CDLL(None, use_errno=True)
out = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid()}
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out["caps"] = {k: int(status[k].strip(), 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
out["no_new_privs"] = int(status["NoNewPrivs"].strip())

def fails(fn):
    try:
        r = fn()
    except OSError as e:
        return e.errno
    return ctypes.get_errno() if r == -1 else 0

def write(path):
    with open(path, "w") as f:
        f.write("x")

out["mount"] = fails(lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
out["umount"] = fails(lambda: libc.umount2(sys.argv[1].encode(), 0))  # what hides solutions/
out["mknod"] = fails(lambda: os.mknod("/tmp/disk", stat.S_IFBLK | 0o600, os.makedev(8, 0)))
out["userns"] = fails(lambda: libc.unshare(0x10000000))  # CLONE_NEWUSER: the way back to capabilities
out["proc_sys"] = fails(lambda: write("/proc/sys/kernel/hostname"))
out["proc_sys_writable"] = os.access("/proc/sys/kernel/hostname", os.W_OK)
out["course"] = fails(lambda: write(os.path.join(sys.argv[2], "forged.txt")))
out["root"] = fails(lambda: write("/forged.txt"))
out["solutions"] = os.listdir(sys.argv[1])
out["records"] = fails(lambda: write(os.path.join(sys.argv[3], "ok.pt")))
out["home"] = fails(lambda: write(os.path.join(os.environ["HOME"], "ok")))
print(json.dumps(out))
'''


def sandboxed(tmp_path: Path, *cmd: str, limits: Limits | None = None, group=None) -> subprocess.CompletedProcess:
    """Run cmd under the kernel's own sandbox prefix (and cgroup, if given), with fresh ipc and records folders."""
    ipc, records = tmp_path / "ipc", tmp_path / "records"
    for d in (ipc, records):
        d.mkdir()
    give_to_sandbox(ipc, records)
    env = kernel_env("smoke", HOME, "/tmp", RECORDS, "marker")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    prefix = bwrap_prefix(find_bwrap()[0], ipc, records, env, [], limits, group=group)
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)


@needs_bwrap
def test_the_kernel_runs_unprivileged_and_cannot_touch_the_machine(tmp_path):
    r = sandboxed(tmp_path, sys.executable, "-c", PROBE, str(REPO_ROOT / "solutions"), str(REPO_ROOT), RECORDS)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    print(got)
    assert got["uid"] != 0 and got["euid"] != 0, "the kernel must never run as root"
    if sandbox_user():  # the grader is root: the kernel is the unprivileged user on the host too
        assert (got["uid"], got["gid"]) == sandbox_user()
    assert got["caps"]["CapEff"] == got["caps"]["CapPrm"] == got["caps"]["CapAmb"] == 0, got["caps"]
    assert got["no_new_privs"] == 1, "setuid programs must not give privileges back"
    for what in ("mount", "umount", "mknod", "userns", "proc_sys", "course", "root"):
        assert got[what] != 0, f"the sandbox let the kernel {what}"
    assert not got["proc_sys_writable"] and got["solutions"] == []
    assert got["records"] == 0 and got["home"] == 0, "the kernel must still write its records and its HOME"
    assert not (REPO_ROOT / "forged.txt").exists()


@needs_bwrap
def test_a_python_under_tmp_stays_visible_over_the_private_tmp(tmp_path, monkeypatch):
    env_dir = Path(tmp_path / "python-env").resolve()  # an environment under /tmp, as pytest's tmp_path is
    env_dir.mkdir()
    (env_dir / "marker").write_text("here")
    assert env_dir.is_relative_to("/tmp")
    monkeypatch.setattr(sys, "base_prefix", str(env_dir))
    r = sandboxed(tmp_path, "/bin/cat", str(env_dir / "marker"))
    assert r.returncode == 0 and r.stdout == "here", r.stderr[-1000:]


HOGS = r'''
import threading
try:
    hog = bytearray(3 * 2**30)
    print("memory: not capped")
except MemoryError:
    print("memory: capped")
room = bytearray(300 * 2**20)  # what a lab needs still fits
del room
started, stop = 0, threading.Event()
try:
    while started < 500:
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except RuntimeError:
    pass
stop.set()
print(f"threads: {started}")
import torch
print(f"torch: {float(torch.ones(3).sum()):g}")
'''


@needs_bwrap
def test_memory_and_process_caps_hold_and_a_normal_kernel_fits_under_them(tmp_path):
    r = sandboxed(tmp_path, sys.executable, "-c", HOGS, limits=Limits(memory_gb=2.0, processes=32))
    assert r.returncode == 0, r.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
    assert lines["memory"] == "capped", "3 GiB must not fit under a 2 GiB cap"
    assert int(lines["threads"]) < 32, "threads count against the process cap"
    assert lines["torch"] == "3", "torch still imports and runs under the caps"
    assert Limits().processes >= 128 and Limits().memory_gb > 1


FORKING_HOG = r'''
import os, sys, time
kids = []
for k in range(3):  # each child holds 600 MiB: under the 1 GiB per-process cap, 1.8 GiB together
    pid = os.fork()
    if pid == 0:
        hog = bytearray(600 * 2**20)
        hog[:: 4096] = b"x" * len(hog[:: 4096])  # touch every page: charged to the cgroup
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in kids]
print("killed:", sum(os.WIFSIGNALED(c) for c in codes), "of", len(codes))
'''


@needs_bwrap
def test_a_forking_kernel_is_capped_as_a_whole_where_cgroups_can_be_had(tmp_path):
    """RLIMIT_DATA caps each process; three children of 600 MiB each got 1.8 GiB past a 1 GiB cap before."""
    limits = Limits(memory_gb=1.0, processes=64)
    group, why = kernel_group(f"course-grade-test-{os.getpid()}", limits)
    if group is None:
        pytest.skip(f"no cgroup for the grader here: {why}")
    try:
        r = sandboxed(tmp_path, sys.executable, "-c", FORKING_HOG, limits=limits, group=group)
        assert r.returncode == 0, r.stderr[-2000:]
        killed = int(r.stdout.split("killed:")[1].split()[0])
        assert killed >= 1, f"1.8 GiB in three processes must not fit under a 1 GiB cgroup cap: {r.stdout}"
    finally:
        group.remove()
    assert not any(d.exists() for d in group.dirs), "the kernel's cgroup is removed after its run"
    (tmp_path / "alone").mkdir()
    alone = sandboxed(tmp_path / "alone", sys.executable, "-c", FORKING_HOG, limits=limits)  # no cgroup: per process
    assert "killed: 0 of 3" in alone.stdout, alone.stdout + alone.stderr[-1000:]


def test_kernel_group_on_a_cgroup_v2_tree_writes_the_caps_and_cleans_up(tmp_path, monkeypatch):
    """The v2 protocol on a stand-in tree (this machine may have only v1): controllers, memory.max, pids.max."""
    from course_lib.grading import sandbox

    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "grader").mkdir()
    (tmp_path / "grader" / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(sandbox, "_own_cgroup", lambda controller: "grader")
    real_mkdir = Path.mkdir

    def mkdir_with_files(self, *args, **kwargs):  # the kernel's cgroupfs makes a new group's files itself
        real_mkdir(self, *args, **kwargs)
        for name in ("cgroup.procs", "memory.max", "memory.swap.max", "pids.max"):
            (self / name).write_text("")
    monkeypatch.setattr(Path, "mkdir", mkdir_with_files)
    group, why = kernel_group("k1", Limits(memory_gb=1.5, processes=77), root=tmp_path)
    assert group is not None and group.version == 2, why
    d = tmp_path / "grader" / "k1"
    assert (tmp_path / "grader" / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (d / "memory.max").read_text() == str(int(1.5 * 2**30)) and (d / "pids.max").read_text() == "77"
    assert (d / "memory.swap.max").read_text() == "0"
    assert group.prefix()[-2:] == [str(d / "cgroup.procs"), "--"]

    # the grader's own cgroup holds the grader (a delegated scope): it moves itself into a leaf, then enables
    (tmp_path / "grader" / "cgroup.subtree_control").write_text("")
    real_write, busy = sandbox._write, [True]

    def write(path, value):
        if path.name == "cgroup.subtree_control" and busy[0]:
            raise OSError(errno.EBUSY, "Device or resource busy")
        if path.name == "cgroup.procs":
            busy[0] = False  # the grader left: the parent holds no process now
        real_write(path, value)
    monkeypatch.setattr(sandbox, "_write", write)
    group, why = kernel_group("k2", Limits(), root=tmp_path)
    assert group is not None, why
    assert (tmp_path / "grader" / "course-grader" / "cgroup.procs").read_text() == str(os.getpid())
    assert (tmp_path / "grader" / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_the_caps_refuse_to_be_switched_off(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report.main(["lab01", str(tmp_path), "--memory-gb", "0"])
    assert "must be positive" in capsys.readouterr().err
    with pytest.raises(ValueError, match="raise them rather than switching them off"):
        Limits(processes=0).prefix()


def item_for(records: Path) -> SimpleNamespace:
    """Enough of a pytest item for the plugin: a check cell of exercise lab01.jsd, records in `records`."""
    cell = SimpleNamespace(metadata={"course": {"role": "check", "exercise": "lab01.jsd"}})
    config = SimpleNamespace(getoption=lambda name: str(records) if name == "course_grade_records" else None)
    return SimpleNamespace(cell=cell, config=config)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder", "huge"])
def test_a_record_that_is_not_a_plain_file_costs_only_that_exercise_and_never_blocks(tmp_path, kind):
    src = tmp_path / "lab01.jsd.pt"
    secret = tmp_path / "grader-secret"
    secret.write_bytes(b"the grader's own file")
    if kind == "fifo":
        os.mkfifo(src)
    elif kind == "symlink":
        src.symlink_to(secret)
    elif kind == "folder":
        src.mkdir()
    else:
        with open(src, "wb") as f:
            f.truncate(plugin.MAX_RECORD_BYTES + 1)
    got: list = []
    reader = threading.Thread(target=lambda: got.append(plugin._take_record(item_for(tmp_path))), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert got == [None], f"a {kind} in place of a record must read as no record, at once (got {got})"
    assert secret.read_bytes() == b"the grader's own file"
    plugin.pytest_runtest_setup(item_for(tmp_path))  # the next check cell's clean-up does not crash either


def test_reports_defuse_spreadsheet_formulas_and_terminal_escapes(tmp_path):
    assert csv_cell('=HYPERLINK("http://x","y")').startswith("'=")
    assert [csv_cell(s)[0] for s in ("+1", "-2", "@A1", "\tx")] == ["'"] * 4
    assert csv_cell("kl_discrete: wrong sign") == "kl_discrete: wrong sign"
    osc = "\x1b]8;;http://evil\x07click\x1b]8;;\x07 \x1b[31mred\x1b[0m \x1b]0;title\x1b\\ \u202eevil \x00\x07z"
    cleaned = short(osc)
    assert cleaned == "click red evil z" and not any(ord(ch) < 32 or 0x7f <= ord(ch) <= 0x9f for ch in cleaned)

    ref = SimpleNamespace(name="lab", path=Path("lab.ipynb"), max_points=1.0,
                          exercises=[SimpleNamespace(id="lab01.jsd", points=1.0)], questions=())
    grade = judge.Grade('=HYPERLINK("http://evil","x")', "=cmd.ipynb",
                        {"lab01.jsd": judge.Outcome(0.0, 1.0, "-1+1 \x1b]0;owned\x07")}, 1.0, note="@SUM(A1)")
    csv_path, _ = report.write_reports(ref, [grade], tmp_path / "grades", 1.0)
    row = csv_path.read_text(encoding="utf-8").splitlines()[1]
    assert row.startswith("\"'=HYPERLINK(") and ",'=cmd.ipynb," in row and "'-1+1" in row and "'@SUM" in row
    assert "\x1b" not in row and "\x07" not in row
    assert "\x1b" not in report.format_table(ref, [grade], 1.0)


def test_no_kernel_can_start_is_the_graders_fault_and_nobody_gets_zeros(tmp_path, monkeypatch, capsys):
    starts = []

    def dead_kernel(cells, opts, deadline):
        starts.append(1)
        results = [{"status": "lost", "fatal": True, "reason": "kernel did not start: Kernel died before replying"}]
        return Run(results + [None] * (len(cells) - 1), {}, False), tmp_path / f"run{len(starts)}"

    monkeypatch.setattr(judge, "run_cells", dead_kernel)
    lab = REPO_ROOT / "labs" / "01_divergences_and_gan_theory.ipynb"
    subs = [tmp_path / f"student{k}.ipynb" for k in range(3)]
    for s in subs:
        s.write_bytes(lab.read_bytes())
    code = report.main(["lab01", *map(str, subs), "--out", str(tmp_path / "grades"), "--no-sandbox", "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "grader fault, not the students'" in err and "Kernel died" in err and "--resume" in err
    assert len(starts) == 2, "one retry, then the batch stops"
    assert json.loads((tmp_path / "grades.json").read_text())["submissions"] == [], "no zeros for the grader's fault"


@pytest.mark.parametrize("source, words", [
    ('real = getattr(check, "__glo" + "bals__")', "attribute name built at run time"),
    ("import sys\ncaller = sys._getframe(2).f_back.f_locals", "walks the interpreter's frames"),
    ("import inspect\nframes = inspect.stack()", "walks the interpreter's frames"),
    ("import gc\nholders = gc.get_referrers(kl_discrete)", "walks the interpreter's frames or objects"),
    ("ref = check.__globals__['get_exercise']", "reaches into a function's internals"),
    ("cells = collect.__closure__[0].cell_contents", "reaches into a function's internals"),
    ("exec(base64.b64decode(payload))", "runs code built at run time (exec)"),
    ("def check(exercise_id, fn):\n    pass", "redefines check()"),
    ("check = lambda *args: None", "redefines check()"),
])
def test_review_flags_each_forging_technique(source, words):
    from course_lib.grading.reference import Cell
    from course_lib.grading.review import review

    assert words in review([Cell(source, "context")])

