"""Datasets, found offline first, and a batch iterator that keeps them on the device.

`load_data("fashion-mnist")` looks in this order, and says exactly what it tried if all fail:
  1. the course data folder: `data/` at the repository root, or `$COURSE_DATA`;
  2. system copies, e.g. Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist);
  3. torchvision's download into the course data folder (needs the internet).
Files found in a system copy are decompressed into the data folder once, in torchvision's
layout (`FashionMNIST/raw/...`), and read by torchvision's own dataset class.

`digits` is scikit-learn's 8x8 digits, shipped inside the package: it always works offline.
"""
from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from .checkpoint import atomic_write
from .paths import REPO_ROOT

__all__ = ["ImageData", "Batches", "DataNotFoundError", "DATASETS", "TEST_SIZES", "data_dir", "load_data",
           "ensure_dataset", "shuffled_order"]

ENV_VAR = "COURSE_DATA"
SYSTEM_DIRS_VAR = "COURSE_SYSTEM_DATA"  # colon-separated; overrides the system search path (tests use it)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    classes: tuple[str, ...]
    torchvision_class: str | None  # class in torchvision.datasets, None for non-IDX datasets
    system_dirs: tuple[str, ...] = ()
    debian_package: str | None = None
    image_size: int = 28  # the side of its square one-channel images


DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "FashionMNIST", ("/usr/share/datasets/fashion-mnist",), "dataset-fashion-mnist"),
    "mnist": DatasetInfo("mnist", tuple(str(i) for i in range(10)), "MNIST", ("/usr/share/datasets/mnist",)),
    "digits": DatasetInfo("digits", tuple(str(i) for i in range(10)), None, image_size=8),
}


TEST_SIZES = {"fashion-mnist": 10_000, "mnist": 10_000, "digits": 300}  # images in each test split


def shuffled_order(n: int, seed: int) -> torch.Tensor:
    """The seeded permutation of range(n) that `ImageData.subset(size, seed)` takes its first `size` from."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


class DataNotFoundError(FileNotFoundError):
    """No copy of a dataset was found and it could not be downloaded."""


@dataclass
class ImageData:
    """Images (N, 1, H, W) float32 in [0, 1] and labels (N,) int64, on one device."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str = ""  # where the files came from, for the record

    def __post_init__(self) -> None:
        assert self.images.ndim == 4 and self.images.shape[1] == 1, \
            f"images must be (N, 1, H, W), got {tuple(self.images.shape)}"
        assert len(self.images) == len(self.labels), "images and labels must have the same length"

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def to(self, device: str | torch.device) -> "ImageData":
        return ImageData(self.name, self.split, self.images.to(device), self.labels.to(device), self.classes, self.source)

    def subset(self, n: int | None, seed: int = 0) -> "ImageData":
        """A class-balanced-in-expectation random subset of n images (None or n >= N: all)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"subset size must be positive, got {n}.")
        idx = shuffled_order(len(self), seed)[:n].to(self.images.device)
        return ImageData(self.name, self.split, self.images[idx], self.labels[idx], self.classes, self.source)

    def batches(self, batch_size: int, seed: int = 0, labels: bool = True, drop_last: bool = True) -> "Batches":
        tensors = (self.images, self.labels) if labels else (self.images,)
        return Batches(tensors, batch_size=batch_size, seed=seed, drop_last=drop_last)


class Batches:
    """Shuffled minibatches of tensors that already live on the device.

    No DataLoader and no workers: indexing a device tensor is the fastest input pipeline for
    datasets that fit in memory. Each `iter()` is one epoch in a fresh order drawn from a
    seeded generator, so runs repeat exactly. Yields a tuple (or a lone tensor) per batch.
    """

    def __init__(self, tensors: torch.Tensor | tuple[torch.Tensor, ...], batch_size: int, seed: int = 0,
                 drop_last: bool = True) -> None:
        self.single = isinstance(tensors, torch.Tensor)
        self.tensors = (tensors,) if self.single else tuple(tensors)
        if not self.tensors:
            raise ValueError("Batches needs at least one tensor.")
        n = len(self.tensors[0])
        if any(len(t) != n for t in self.tensors):
            raise ValueError(f"all tensors must have the same length, got {[len(t) for t in self.tensors]}.")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        if drop_last and batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n}); lower it or pass drop_last=False.")
        self.n, self.batch_size, self.drop_last = n, batch_size, drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, ...]]:
        order = torch.randperm(self.n, generator=self.generator).to(self.tensors[0].device)
        self.epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            batch = tuple(t[idx] for t in self.tensors)
            yield batch[0] if self.single else batch


def data_dir() -> Path:
    """The course data folder: $COURSE_DATA, else `data/` at the repository root."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT / "data"


def _system_dirs(info: DatasetInfo) -> list[Path]:
    env = os.environ.get(SYSTEM_DIRS_VAR)
    if env is not None:  # explicit override (empty string: no system copies at all)
        return [Path(p) / info.name for p in env.split(os.pathsep) if p]
    return [Path(p) for p in info.system_dirs]


def _raw_dir(root: Path, info: DatasetInfo) -> Path:
    return root / str(info.torchvision_class) / "raw"


def _has_raw(raw: Path) -> bool:
    return all((raw / f).is_file() for pair in IDX_FILES.values() for f in pair)


def _find_files(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _copy_decompressed(src: Path, dst: Path) -> None:
    """Copy an IDX file (gzipped or not) to dst, atomically: a half-written file is never left."""
    opener = gzip.open if src.suffix == ".gz" else open
    with atomic_write(dst) as out, opener(src, "rb") as inp:
        shutil.copyfileobj(inp, out)


def _import_from(folder: Path, raw: Path) -> bool:
    stems = [f for pair in IDX_FILES.values() for f in pair]
    found = {s: _find_files(folder, s) for s in stems}
    if not all(found.values()):
        return False
    for stem, path in found.items():
        _copy_decompressed(path, raw / stem)  # type: ignore[arg-type]
    return True


def ensure_dataset(name: str = "fashion-mnist", download: bool = True) -> Path:
    """Make the IDX files of `name` available in the course data folder and return its root.

    Raises DataNotFoundError, listing everything tried and the fixes, when no copy is found.
    """
    info = _info(name)
    if info.torchvision_class is None:
        return data_dir()  # shipped with a package: nothing to fetch
    root = data_dir()
    raw = _raw_dir(root, info)
    tried = []
    if _has_raw(raw):
        return root
    for folder in [root / info.name, root, *_system_dirs(info)]:
        tried.append(f"IDX files (.gz or not) in {folder}")
        if folder.is_dir() and _import_from(folder, raw):
            return root
    tried.insert(0, f"torchvision layout in {raw}")
    if download:
        import torchvision.datasets as tvd

        try:
            getattr(tvd, info.torchvision_class)(root=str(root), train=True, download=True)
            getattr(tvd, info.torchvision_class)(root=str(root), train=False, download=True)
            if _has_raw(raw):
                return root
            tried.append("torchvision download: finished but the files are not there")
        except Exception as e:  # no network, a mirror down, a full disk...
            tried.append(f"torchvision download: failed ({type(e).__name__}: {str(e)[:200]})")
    else:
        tried.append("torchvision download: skipped (download=False)")
    fixes = []
    if info.debian_package:
        fixes.append(f"install the Debian package: sudo apt-get install {info.debian_package}")
    fixes += [f"put the four IDX files ({', '.join(f for p in IDX_FILES.values() for f in p)}, gzipped or not) "
              f"in {root / info.name}  (or point ${ENV_VAR} at a folder that has them)",
              "connect to the internet and run again: torchvision downloads them",
              "or use the dataset that ships with scikit-learn: load_data('digits')"]
    raise DataNotFoundError(f"Could not find the {name!r} dataset.\nTried:\n" +
                            "\n".join(f"  - {t}" for t in tried) + "\nTo fix, do one of:\n" +
                            "\n".join(f"  {i}. {f}" for i, f in enumerate(fixes, 1)))


def _info(name: str) -> DatasetInfo:
    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Choose one of {sorted(DATASETS)}.")
    return DATASETS[key]


def _load_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))  # fixed split, 1497 / 300
    test = TEST_SIZES["digits"]
    idx = perm[:-test] if split == "train" else perm[-test:]
    return x[idx], y[idx]


def load_data(name: str = "fashion-mnist", split: str = "train", size: int | None = None,
              device: str | torch.device = "cpu", seed: int = 0, download: bool = True) -> ImageData:
    """Images (N, 1, H, W) in [0, 1] and labels of a dataset split, on `device`.

    size: keep a random subset of this many images (e.g. `course.profile.train_size`).
    """
    info = _info(name)
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if info.torchvision_class is None:
        images, labels = _load_digits(split)
        source = "scikit-learn load_digits"
    else:
        import torchvision.datasets as tvd

        root = ensure_dataset(info.name, download=download)
        ds = getattr(tvd, info.torchvision_class)(root=str(root), train=(split == "train"), download=False)
        images = ds.data.unsqueeze(1).float().div_(255.0)  # (N, 28, 28) uint8 -> (N, 1, 28, 28) in [0, 1]
        labels = ds.targets.long()
        source = str(_raw_dir(root, info))
    data = ImageData(info.name, split, images, labels, info.classes, source).subset(size, seed=seed)
    return data.to(device)


def main(argv: list[str] | None = None) -> int:
    """`python -m course_lib data [NAME ...]`: make datasets available (used by `make lab/test`)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("names", nargs="*", default=["fashion-mnist"])
    p.add_argument("--no-download", action="store_true")
    args = p.parse_args(argv)
    for name in args.names:
        try:
            root = ensure_dataset(name, download=not args.no_download)
        except DataNotFoundError as e:
            print(e)
            return 1
        print(f"{name}: ready in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
