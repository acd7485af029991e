"""`setup()`: the first code cell of every notebook.

It seeds Python, NumPy and torch, makes kernels deterministic, picks the device and the
profile, prints one line saying so, and returns a `Course` with what a notebook needs.
"""
from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .profiles import Profile, get_profile

if TYPE_CHECKING:
    from .data import ImageData

__all__ = ["Course", "setup", "pick_device", "seed_everything", "describe", "device_name", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent  # the course checkout: lectures/, labs/, data/, ...


@dataclass
class Course:
    """What `setup()` returns: the device, the profile and the seed of this notebook."""

    device: torch.device
    profile: Profile
    seed: int
    keep_dir: Path | None = None  # `bench --save DIR`: where the benches save the models they train (runs.keep_trained)

    def generator(self, offset: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
        """A fresh torch.Generator seeded from the notebook seed (+offset), for reproducible draws."""
        return torch.Generator(device=device).manual_seed(self.seed + offset)

    @property
    def data_dir(self) -> Path:
        from .data import data_dir
        return data_dir()

    def load_data(self, name: str = "fashion-mnist", split: str = "train", size: int | None | str = "profile",
                  device: str | torch.device | None = None, download: bool = True) -> "ImageData":
        """A dataset split sized by the profile, drawn with this notebook's seed, on this notebook's device.

        size: "profile" (default) takes `profile.train_size` for "train" and `profile.eval_size` for
        "test"; an int keeps that many images; None keeps the whole split.
        device: default `course.device`, so in the gpu profile the data already sits on the GPU.
        """
        from .data import load_data

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


def describe(course: Course) -> str:
    """The one line `setup()` prints: versions, the device with its name, the profile and the seed."""
    import torchvision

    dev = course.device
    where = f"cuda ({device_name(dev)})" if dev.type == "cuda" else (
        f"cpu ({torch.get_num_threads()} threads)" if dev.type == "cpu" else dev.type)
    return (f"python {platform.python_version()} | torch {torch.__version__} | torchvision {torchvision.__version__}"
            f" | device {where} | profile {course.profile.name} | seed {course.seed}")


def setup(seed: int = 0, device: str | torch.device = "auto", profile: str | Profile | None = None,
          deterministic: bool = True, quiet: bool = False) -> Course:
    """Seed everything, pick device and profile, print one line, return a `Course`.

    profile: 'smoke', 'cpu' or 'gpu'; None reads $COURSE_PROFILE (default: gpu with CUDA, else cpu).
    """
    prof = get_profile(profile)
    dev = pick_device(device)
    seed_everything(seed)
    if deterministic:
        _deterministic()
    course = Course(device=dev, profile=prof, seed=seed)
    if not quiet:
        print(describe(course))
    return course
