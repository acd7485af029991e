"""`setup()`: the first code cell of every notebook.

It seeds Python, NumPy and torch, makes kernels deterministic, picks the device and the
profile, prints one line saying so, and returns a `Course` with what a notebook needs.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import ImageData, data_dir, load_data
from .profiles import Profile, get_profile

__all__ = ["Course", "setup", "pick_device", "seed_everything", "describe", "device_name",
           "set_threads", "fixed_threads", "follow_free_cores", "usable_cores", "THREADS_VAR"]



@dataclass
class Course:
    """What `setup()` returns: the device, the profile and the seed of this notebook."""

    device: torch.device
    profile: Profile
    seed: int
    keep_dir: Path | None = None  # `bench --save DIR`: where the benches save the models they train (recipes.common.keep_trained)

    def generator(self, offset: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
        """A fresh torch.Generator seeded from the notebook seed (+offset), for reproducible draws."""
        return torch.Generator(device=device).manual_seed(self.seed + offset)

    @property
    def data_dir(self) -> Path:
        return data_dir()

    def load_data(self, name: str = "fashion-mnist", split: str = "train", size: int | None | str = "profile",
                  device: str | torch.device | None = None, download: bool = True) -> ImageData:
        """A dataset split sized by the profile, drawn with this notebook's seed, on this notebook's device.

        size: "profile" (default) takes `profile.train_size` for "train" and `profile.eval_size` for
        "test"; an int keeps that many images; None keeps the whole split.
        device: default `course.device`, so in the gpu profile the data already sits on the GPU.
        """
        if size == "profile":
            size = self.profile.train_size if split == "train" else self.profile.eval_size
        elif size is not None and not isinstance(size, int):
            raise TypeError(f"size must be 'profile', an int or None (the whole split), got {size!r}.")
        return load_data(name, split, size=size, device=self.device if device is None else device,
                         seed=self.seed, download=download)


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global state and torch (CPU and every GPU)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu. An explicit device must be available."""
    if isinstance(device, torch.device):
        device = str(device)
    device = device.strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was asked for but MPS is not available; use device='auto' or 'cpu'.")
    return dev


def _deterministic() -> None:
    # cuBLAS needs this workspace setting for deterministic matmuls; it must be set before
    # the first cuBLAS call, so set it here rather than leave it to chance.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # warn_only: a few ops (e.g. some scatter/upsample backwards on CUDA) have no deterministic
    # kernel; a warning is better than a crash in the middle of a lab.
    torch.use_deterministic_algorithms(True, warn_only=True)


def device_name(dev: torch.device | str) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo where there is one: what figures are recorded with."""
    dev = torch.device(dev)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type != "cpu":
        return dev.type
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- CPU threads -------------------------------------------------------------------------------------------
# torch's intra-op threads (OpenMP) split every op over the cores. On an idle machine that is faster than
# one thread; on a machine where another process holds a core, one of our threads shares its core, every
# op waits for it, and the others spin while they wait: a 2-thread DCGAN step took 5x one thread's time.
# So the default follows the cores that are free: `setup()` counts the cores other processes are using
# (from /proc/stat, less this process's own time) and uses the rest, and the training loop counts again
# every RECHECK_S seconds. course_lib/__init__ also caps OpenMP's spinning (GOMP_SPINCOUNT) before torch
# loads, so the seconds before a recount cost little. scripts/thread_ab.py measured each choice.
THREADS_VAR = "COURSE_THREADS"  # an int fixes the thread count (CI, shared machines); unset or 'auto' follows
RECHECK_S = 5.0

_threads = {"mode": "auto", "last": None}  # "auto" or the fixed count; last: (time, busy, total, own) sample


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota where there is one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:  # cgroup v2: "max 100000" or "200000 100000" (quota, period)
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _cpu_sample() -> tuple[float, int, int, int] | None:
    """(time, busy jiffies of all CPUs, all jiffies, this process's jiffies), or None where /proc is absent."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is counted in user)
    return time.monotonic(), total - idle, total, int(own[11]) + int(own[12])  # utime + stime


def _others_busy(a, b) -> float | None:
    """Cores' worth of CPU that other processes used between samples a and b."""
    if a is None or b is None or b[2] <= a[2]:
        return None
    cores_all = os.cpu_count() or 1  # /proc/stat sums every CPU of the machine
    per_core = (b[2] - a[2]) / cores_all
    return max(0.0, ((b[1] - a[1]) - (b[3] - a[3])) / per_core)


def _free_cores(busy: float | None) -> int:
    cores = usable_cores()
    if busy is None:
        return cores
    spare = (os.cpu_count() or cores) - busy  # cores of the machine nobody else is using
    return max(1, min(cores, int(spare + 0.5)))


def set_threads(threads: int | str | None = None) -> int:
    """Set torch's CPU threads and return the count now in use.

    threads: an int fixes the count; None reads $COURSE_THREADS, else 'auto'; 'auto' uses the cores other
    processes leave free (counted over 0.1 s now, and again every few seconds while a Trainer runs).
    """
    if threads is None:
        threads = os.environ.get(THREADS_VAR, "").strip() or "auto"
    if isinstance(threads, str):
        if threads.lower() == "auto":
            threads = "auto"
        elif threads.isdigit():
            threads = int(threads)
        else:
            raise ValueError(f"threads must be a positive int or 'auto', got {threads!r} "
                             f"(from setup(threads=...) or ${THREADS_VAR}); e.g. `export {THREADS_VAR}=1`.")
    if threads == "auto":
        first = _cpu_sample()
        time.sleep(0.1)
        last = _cpu_sample()
        _threads.update(mode="auto", last=last)
        torch.set_num_threads(_free_cores(_others_busy(first, last)))
    else:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int or 'auto', got {threads!r}.")
        _threads.update(mode=threads, last=None)
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def follow_free_cores() -> None:
    """In 'auto' mode, recount the free cores if RECHECK_S seconds have passed, and set the threads to them.
    Cheap to call every step: the shared training loop does."""
    if _threads["mode"] != "auto":
        return
    last = _threads["last"]
    if last is not None and time.monotonic() - last[0] < RECHECK_S:
        return
    now = _cpu_sample()
    if now is None:
        return
    _threads["last"] = now
    free = _free_cores(_others_busy(last, now))
    if free != torch.get_num_threads():
        torch.set_num_threads(free)


@contextlib.contextmanager
def fixed_threads(threads: int | None):
    """Within the block, exactly `threads` CPU threads (None: leave the setting alone), never recounted; then
    the setting before it, mode and count. For results that must not depend on the machine's load, e.g.
    the evaluation classifiers, whose weights depend on the thread count through the order of sums."""
    if threads is None:
        yield
        return
    before, count = dict(_threads), torch.get_num_threads()
    set_threads(threads)
    try:
        yield
    finally:
        _threads.update(before)
        torch.set_num_threads(count)


def threads_mode() -> str:
    """'auto' or 'fixed', as setup's line says."""
    return "auto" if _threads["mode"] == "auto" else "fixed"


def describe(course: Course) -> str:
    """The one line `setup()` prints: versions, the device with its name, the profile and the seed."""
    import torchvision

    dev = course.device
    where = f"cuda ({device_name(dev)})" if dev.type == "cuda" else dev.type
    n = torch.get_num_threads()
    threads = f"{n} CPU thread{'s' if n != 1 else ''} ({threads_mode()})"
    return (f"python {platform.python_version()} | torch {torch.__version__} | torchvision {torchvision.__version__}"
            f" | device {where} | {threads} | profile {course.profile.name} | seed {course.seed}")


def setup(seed: int = 0, device: str | torch.device = "auto", profile: str | Profile | None = None,
          deterministic: bool = True, quiet: bool = False, threads: int | str | None = None) -> Course:
    """Seed everything, pick device, profile and CPU threads, print one line, return a `Course`.

    profile: 'smoke', 'cpu' or 'gpu'; None reads $COURSE_PROFILE (default: gpu with CUDA, else cpu).
    threads: CPU threads for torch; None reads $COURSE_THREADS, else 'auto' (the cores other processes
    leave free, recounted while training); an int fixes it, e.g. threads=1 on a machine you share.
    """
    prof = get_profile(profile)
    dev = pick_device(device)
    set_threads(threads)
    seed_everything(seed)
    if deterministic:
        _deterministic()
    course = Course(device=dev, profile=prof, seed=seed)
    if not quiet:
        print(describe(course))
        package = __import__("sys").modules.get(__package__)
        if dev.type == "cpu" and not getattr(package, "OPENMP_ENV_APPLIED", True):
            print("note: torch was imported before course_lib, so its idle CPU threads spin at OpenMP's default "
                  "and slow down when another program needs a core; import course_lib first (restart the kernel).")
    return course
