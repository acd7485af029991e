"""The sandbox each submission's kernel runs in: one bubblewrap (`bwrap`) per run.

Inside it the kernel has no network, its own PID namespace (ending the sandbox ends every
process in it, and it cannot see or signal the grader or pytest), the course read-only without
`solutions/` and `.git`, a private in-memory /tmp holding its HOME and working folder, and
nothing of the grader's but two folders: the one check() records into and the one holding the
kernel's Unix sockets (jupyter_client's `ipc` transport, the only way in or out).
"""
from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..data import ENV_VAR as DATA_VAR
from ..data import SYSTEM_DIRS_VAR
from ..paths import REPO_ROOT

HOME, WORK = "/tmp/home", "/tmp/work"  # inside the sandbox, on its private tmpfs
RECORDS = "/course-grade/records"  # $COURSE_GRADE_DIR inside the sandbox
HIDDEN = ("solutions", ".git")  # parts of the course the kernel must not see
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf", "hosts",
       "fonts", "alternatives", "mime.types", "ssl")
UNSANDBOXED_RISK = ("each kernel runs with your rights: it can read and write your files (the grader's "
                    "bookkeeping and other students' notebooks included), reach the network, signal the grader "
                    "and leave processes behind")
INSTALL_HINT = "install Debian's bubblewrap (apt-get install bubblewrap)"


@functools.cache
def find_bwrap() -> tuple[str | None, str]:
    """(path to a working bwrap, "") or (None, why there is no sandbox); tried once per process."""
    path = shutil.which("bwrap")
    if path is None:
        return None, f"bwrap was not found on PATH; {INSTALL_HINT}"
    probe = [path, "--die-with-parent", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", "--proc", "/proc",
             "--dev", "/dev", "true"]
    try:
        r = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"bwrap could not be run: {e}"
    if r.returncode != 0:
        why = " ".join(r.stderr.split())[:200] or f"exit code {r.returncode}"
        return None, (f"bwrap cannot make a sandbox on this machine ({why}); it needs root or unprivileged "
                      "user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
    return path, ""


def _system_binds() -> list[str]:
    """/usr and the merged-/usr links, a little of /etc, /sys, the Python the kernel runs on, GPUs."""
    args = ["--ro-bind", "/usr", "/usr"]
    for p in ("/bin", "/lib", "/lib32", "/lib64", "/sbin"):
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind-try", "/sys", "/sys", "--proc", "/proc", "--dev", "/dev"]
    for dev in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/*")):  # CUDA, if the course uses it
        args += ["--dev-bind", dev, dev]
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        if not Path(prefix).resolve().is_relative_to("/usr"):
            args += ["--ro-bind", prefix, prefix]
    return args


def _data_binds(env: dict[str, str]) -> list[str]:
    """The course data folders named in the environment ($COURSE_DATA, $COURSE_SYSTEM_DATA), read-only."""
    folders = [env.get(DATA_VAR, "")] + env.get(SYSTEM_DIRS_VAR, "").split(os.pathsep)
    return [a for f in folders if f for a in ("--ro-bind-try", f, f)]


def _hide(paths: list[Path]) -> list[str]:
    """Cover what the kernel must not see inside the course: an empty folder over it, /dev/null over a file."""
    args: list[str] = []
    root = REPO_ROOT.resolve()
    for p in [root / h for h in HIDDEN] + [Path(p).resolve() for p in paths]:
        if p == root or not p.is_relative_to(root) or not p.exists():
            continue
        args += ["--tmpfs", str(p)] if p.is_dir() else ["--ro-bind", "/dev/null", str(p)]
    return args


def bwrap_prefix(bwrap: str, ipc: Path, records: Path, env: dict[str, str], hide: list[Path]) -> list[str]:
    """The bwrap command line that the kernel's own command follows (after the final "--").

    ipc: the folder of the kernel's sockets and connection file, bound at the same path.
    records: bound read-write at RECORDS. env: the kernel's whole environment (--clearenv).
    hide: folders or files inside the course to cover (the submissions, the reports, ...).
    """
    args = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "course-grade", *_system_binds(),
            "--tmpfs", "/tmp", "--dir", HOME, "--dir", WORK,
            "--ro-bind", str(REPO_ROOT), str(REPO_ROOT), *_hide(hide), *_data_binds(env),
            "--bind", str(ipc), str(ipc), "--bind", str(records), RECORDS, "--chdir", WORK, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--"]
