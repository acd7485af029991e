"""The sandbox each submission's kernel runs in: one bubblewrap (`bwrap`) per run.

Inside it the kernel has no network, its own PID namespace (ending the sandbox ends every
process in it, and it cannot see or signal the grader or pytest), the course read-only without
`solutions/` and `.git`, a private in-memory /tmp holding its HOME and working folder, and
nothing of the grader's but two folders: the one check() records into and the one holding the
kernel's Unix sockets (jupyter_client's `ipc` transport, the only way in or out).

The kernel never runs as root. bwrap started by root keeps every capability inside (it could mount
the host's disk, unmount what hides `solutions/`, write /proc/sys). So when the grader is root, bwrap
keeps only CAP_SETUID and CAP_SETGID, and a first command inside drops to an unprivileged user
(`nobody`, or $COURSE_GRADE_USER) before anything of the student's runs: no capabilities, no new
privileges (bwrap sets no_new_privs), no mount, umount or mknod. Root does the binds, so a Python
under /root still works. A second, unprivileged bwrap then forbids new user namespaces (the way
back to capabilities) and binds /proc/sys read-only; started by a user, one bwrap does all that.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import glob
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..data import ENV_VAR as DATA_VAR
from ..data import SYSTEM_DIRS_VAR
from ..paths import REPO_ROOT

HOME, WORK = "/tmp/home", "/tmp/work"  # inside the sandbox, on its private tmpfs
RECORDS = "/course-grade/records"  # $COURSE_GRADE_DIR inside the sandbox
CASES = "/course-grade/cases"  # $COURSE_GRADE_CASES inside the sandbox: this run's case inputs, read-only
HIDDEN = ("solutions", ".git")  # parts of the course the kernel must not see
LABS = Path(__file__).resolve().parents[1] / "labs"  # the references and case generators, wherever the library is
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf", "hosts",
       "fonts", "alternatives", "mime.types", "ssl")
UNSANDBOXED_RISK = ("each kernel runs with your rights: it can read and write your files (the grader's "
                    "bookkeeping and other students' notebooks included), reach the network, signal the grader "
                    "and leave processes behind")
INSTALL_HINT = "install Debian's bubblewrap (apt-get install bubblewrap)"
USER_VAR = "COURSE_GRADE_USER"  # the unprivileged user kernels run as when the grader is root (default: nobody)
# Run inside the sandbox as root with CAP_SETUID/CAP_SETGID only: drop to (uid, gid) with no supplementary
# groups, then exec the rest (an absolute path). Nothing is imported; setuid clears the last two capabilities.
DROP = "import os, sys; os.setgroups([]); os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1])); " \
       "os.execv(sys.argv[3], sys.argv[3:])"
# Run last, right before the kernel, inside the innermost user namespace: caps on memory (RLIMIT_DATA, the heap and
# private mappings of each process) and on processes and threads (RLIMIT_NPROC, counted within that namespace, so
# per sandbox, not across the grader's user). argv: nproc, data bytes, then the command.
LIMITS = "import os, resource, sys; n, m = int(sys.argv[1]), int(sys.argv[2]); " \
         "resource.setrlimit(resource.RLIMIT_NPROC, (n, n)); resource.setrlimit(resource.RLIMIT_DATA, (m, m)); " \
         "os.execvp(sys.argv[3], sys.argv[3:])"
KEEP_TO_DROP = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
NO_USERNS = ["--unshare-user", "--disable-userns"]  # no new user namespace inside: no way back to capabilities
PROC_SYS = ["--ro-bind", "/proc/sys", "/proc/sys"]


@functools.cache
def sandbox_user() -> tuple[int, int] | None:
    """(uid, gid) the kernels run as when the grader is root; None when it is not (they run as the grader's user).

    $COURSE_GRADE_USER names the user (a name or a uid); without it, `nobody`. It must not be root.
    """
    if os.geteuid() != 0:
        return None
    name = os.environ.get(USER_VAR, "").strip() or "nobody"
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        uid, gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        if not name.isdigit():
            raise SystemExit(f"${USER_VAR}={name!r}: no such user; name an existing unprivileged user or a uid")
        uid = gid = int(name)
    if uid == 0:
        raise SystemExit(f"${USER_VAR} names root; the kernels must run as an unprivileged user (unset it for nobody)")
    return uid, gid


def give_to_sandbox(*paths: Path) -> None:
    """Let the sandbox user write these (the records folder, the sockets' folder); nothing to do when not root."""
    user = sandbox_user()
    if user:
        for p in paths:
            os.chown(p, *user)


def _layers(bwrap: str, nested: bool) -> tuple[list[str], list[str]]:
    """(options of the outer bwrap, what runs inside it before the kernel's command, ending in "--" or empty).

    As a user: one bwrap, with NO_USERNS and /proc/sys read-only. As root: the outer bwrap keeps only the
    capabilities DROP needs; DROP becomes sandbox_user(); with `nested`, an inner unprivileged bwrap adds
    NO_USERNS and /proc/sys read-only over the outer sandbox (where user namespaces are off anyway, the
    kernel could not make one either, and it cannot write /proc/sys as that user).
    """
    user = sandbox_user()
    if user is None:
        return [*NO_USERNS, *PROC_SYS], []
    inner = [bwrap, *NO_USERNS, "--die-with-parent", "--dev-bind", "/", "/", *PROC_SYS, "--"] if nested else []
    return KEEP_TO_DROP, [sys.executable, "-I", "-S", "-c", DROP, str(user[0]), str(user[1]), *inner]


def _probe(path: str, nested: bool) -> subprocess.CompletedProcess:
    outer, inside = _layers(path, nested)
    cmd = [path, *outer, "--die-with-parent", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", "--proc", "/proc",
           "--dev", "/dev", *_python_binds(), "--", *inside, "/bin/true" if os.path.exists("/bin/true") else "true"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@functools.cache
def find_bwrap() -> tuple[str | None, str]:
    """(path to a working bwrap, "") or (None, why there is no sandbox); tried once per process."""
    path = shutil.which("bwrap")
    if path is None:
        return None, f"bwrap was not found on PATH; {INSTALL_HINT}"
    try:
        r = _probe(path, nested=True)
        if r.returncode != 0 and sandbox_user() is not None:
            r = _probe(path, nested=False)
            _NESTED[path] = False
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"bwrap could not be run: {e}"
    if r.returncode != 0:
        why = " ".join(r.stderr.split())[:200] or f"exit code {r.returncode}"
        how = ("as root, bwrap must be able to keep CAP_SETUID and CAP_SETGID" if sandbox_user() else
               "it needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
        return None, f"bwrap cannot make a sandbox on this machine ({why}); {how}"
    return path, ""


_NESTED: dict[str, bool] = {}  # bwrap path -> False when the root layout had to go without its inner bwrap


def _system_binds(bwrap: str) -> list[str]:
    """/usr and the merged-/usr links, a little of /etc, /sys, /proc, /dev, GPUs, and bwrap itself (for the inner one)."""
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
    if not Path(bwrap).resolve().is_relative_to("/usr"):
        args += _parents(bwrap) + ["--ro-bind", bwrap, bwrap]
    return args


def _parents(path: str | Path) -> list[str]:
    """Make the folders above a bind readable by anyone: bwrap run by root would make them 0700, and the
    kernel's unprivileged user could not reach /root/.pyenv/... or /work/course through them."""
    args: list[str] = []
    for parent in reversed(Path(path).parents):
        if str(parent) not in ("/", "/tmp", "/usr"):
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _python_binds() -> list[str]:
    """The Python the kernel runs on: bound after the private /tmp, like the course (REPO_ROOT, the library's
    real folder), or an environment under /tmp would be hidden by it and every kernel would die before it replied."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    folders |= {str(Path(f).resolve()) for f in folders}  # a symlinked environment: the link and its target
    args: list[str] = []
    for f in sorted(folders):
        if not Path(f).resolve().is_relative_to("/usr"):
            args += [*_parents(f), "--ro-bind", f, f]
    return args


def _data_binds(env: dict[str, str]) -> list[str]:
    """The course data folders named in the environment ($COURSE_DATA, $COURSE_SYSTEM_DATA), read-only."""
    folders = [env.get(DATA_VAR, "")] + env.get(SYSTEM_DIRS_VAR, "").split(os.pathsep)
    return [a for f in folders if f and Path(f).exists() for a in (*_parents(f), "--ro-bind", f, f)]


def _hide(paths: list[Path]) -> list[str]:
    """Cover what the kernel must not see inside the course: an empty folder over it, /dev/null over a file."""
    args: list[str] = ["--tmpfs", str(LABS)]  # bound with the course or with the Python environment, before this
    root = REPO_ROOT.resolve()
    for p in [root / h for h in HIDDEN] + [Path(p).resolve() for p in paths]:
        if p == root or not p.is_relative_to(root) or not p.exists():
            continue
        args += ["--tmpfs", str(p)] if p.is_dir() else ["--ro-bind", "/dev/null", str(p)]
    return args


def _default_processes() -> int:
    """128, or twice the cores where that is more: torch starts a thread per core, and threads count."""
    return max(128, 2 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class Limits:
    """What one kernel may hold: memory per process (GiB; RLIMIT_DATA) and processes plus threads (RLIMIT_NPROC)."""
    memory_gb: float = 4.0
    processes: int = field(default_factory=_default_processes)

    def prefix(self) -> list[str]:
        if self.memory_gb <= 0 or self.processes <= 0:
            raise ValueError(f"limits must be positive: {self}; raise them rather than switching them off")
        return [sys.executable, "-I", "-S", "-c", LIMITS, str(self.processes), str(int(self.memory_gb * 2**30))]


# -- one cgroup per kernel: its memory and its processes counted together ------------------------------------------
CGROUPS = Path("/sys/fs/cgroup")
# the first command of a kernel's line, before bwrap: joins the kernel's cgroup (its children inherit it), then execs
JOIN = ("import os, sys\nk = sys.argv.index('--')\nfor procs in sys.argv[1:k]:\n"
        "    with open(procs, 'w') as f:\n        f.write(str(os.getpid()))\nos.execv(sys.argv[k + 1], sys.argv[k + 1:])")


@dataclass
class KernelGroup:
    """A cgroup (v2) or a memory and a pids cgroup (v1) that one kernel and everything it starts run in.

    RLIMIT_DATA caps each process; a kernel that forks could hold processes x memory. Here the memory of all
    its processes together is capped (the kernel's OOM killer ends one when it goes over: the exercise in
    flight is lost), swap included where the kernel counts it, and so is the count of its tasks.
    """
    version: int
    dirs: list[Path]

    def prefix(self) -> list[str]:
        return [sys.executable, "-I", "-S", "-c", JOIN, *(str(d / "cgroup.procs") for d in self.dirs), "--"]

    def describe(self, limits: Limits) -> str:
        return f"cgroup v{self.version}: {limits.memory_gb:g} GiB and {limits.processes} tasks per kernel, all together"

    def remove(self) -> None:
        """Kill what is left in it (the run has ended) and remove it; never raises."""
        import signal
        import time

        for d in self.dirs:
            for _ in range(50):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    d.rmdir()
                    break
                time.sleep(0.1)


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller, or for v2 ("")."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller and controller in names.split(",")) or (not controller and names == "" and line.startswith("0:")):
            return path.lstrip("/")
    return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _enable_for_children(parent: Path) -> None:
    """Give the cgroup v2 children of `parent` the memory and pids controllers.

    A cgroup that holds processes cannot (v2's "no internal processes" rule: EBUSY), and the grader's own
    cgroup holds the grader, as in a delegated scope (`systemd-run --user -p Delegate=yes --scope ...`). So
    then the grader moves itself into a leaf beside the kernels' groups; other processes there stay, and
    EBUSY stands.
    """
    try:
        _write(parent / "cgroup.subtree_control", "+memory +pids")
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        leaf = parent / "course-grader"
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", str(os.getpid()))
        _write(parent / "cgroup.subtree_control", "+memory +pids")


def kernel_group(name: str, limits: Limits, root: Path = CGROUPS) -> tuple[KernelGroup | None, str]:
    """A fresh cgroup for one kernel with the caps of `limits`, or (None, why) where this process may not make one.

    cgroup v2 where the tree is unified and this process may create a child with the memory and pids
    controllers (root, or a delegated subtree); otherwise cgroup v1's memory and pids hierarchies. Neither (a
    container that delegates none, a user without rights): the per-process rlimits alone stay in force.
    """
    memory, tasks = str(int(limits.memory_gb * 2**30)), str(limits.processes)
    made: list[Path] = []
    try:
        if (root / "cgroup.controllers").is_file():  # v2
            own = _own_cgroup("")
            if own is None:
                return None, "this process's cgroup v2 path is unknown"
            parent = root / own
            if not {"memory", "pids"} <= set((parent / "cgroup.subtree_control").read_text().split()):
                _enable_for_children(parent)
            made.append(parent / name)
            made[0].mkdir()
            _write(made[0] / "memory.max", memory)
            if (made[0] / "memory.swap.max").exists():
                _write(made[0] / "memory.swap.max", "0")
            _write(made[0] / "pids.max", tasks)
            return KernelGroup(2, made), ""
        dirs = {c: root / c / (_own_cgroup(c) or "") for c in ("memory", "pids")}
        if not all((d / "cgroup.procs").is_file() for d in dirs.values()):
            return None, "no cgroup v2 tree and no cgroup v1 memory and pids hierarchies"
        for d in dirs.values():
            made.append(d / name)
            made[-1].mkdir()
        _write(made[0] / "memory.limit_in_bytes", memory)
        if (made[0] / "memory.memsw.limit_in_bytes").exists():  # memory and swap together: no escape into swap
            with contextlib.suppress(OSError):
                _write(made[0] / "memory.memsw.limit_in_bytes", memory)
        _write(made[1] / "pids.max", tasks)
        return KernelGroup(1, made), ""
    except OSError as e:
        KernelGroup(0, made).remove()
        return None, f"cannot make a cgroup here ({e.strerror or e})"


def bwrap_prefix(bwrap: str, ipc: Path, records: Path, env: dict[str, str], hide: list[Path],
                 limits: Limits | None = None, cases: Path | None = None, group: KernelGroup | None = None) -> list[str]:
    """The bwrap command line that the kernel's own command follows.

    ipc: the folder of the kernel's sockets and connection file, bound at the same path.
    records: bound read-write at RECORDS. cases: this run's case inputs, bound read-only at CASES.
    env: the kernel's whole environment (--clearenv).
    hide: folders or files inside the course to cover (the submissions, the reports, ...).
    limits: memory and process caps, set inside the innermost user namespace (default Limits()).
    group: the kernel's cgroup (kernel_group), joined before bwrap starts, so the caps hold for all its processes.
    The kernel's HOME and working folder are open to all (0777): only its own user is in the sandbox.
    """
    outer, inside = _layers(bwrap, _NESTED.get(bwrap, True))
    args = [bwrap, *outer, "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "course-grade", *_system_binds(bwrap),
            "--perms", "01777", "--tmpfs", "/tmp", "--perms", "0777", "--dir", HOME, "--perms", "0777", "--dir", WORK,
            *_python_binds(), *_parents(REPO_ROOT), "--ro-bind", str(REPO_ROOT), str(REPO_ROOT), *_hide(hide),
            *_data_binds(env), *_parents(ipc), "--bind", str(ipc), str(ipc), *_parents(RECORDS),
            "--bind", str(records), RECORDS, *(["--ro-bind", str(cases), CASES] if cases else []),
            "--chdir", WORK, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*(group.prefix() if group else []), *args, "--", *inside, *(limits or Limits()).prefix()]
