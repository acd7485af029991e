"""Measuring samples: one call, `evaluate(samples, dataset)`, and the pieces it is made of.

Every figure is computed on the features of the course's own evaluation classifier for the
dataset (`evaluators.py`: shipped, checksummed, no download), on a fixed number of samples that
the profile sets (`profile.eval_size`; the Fréchet distance is biased by it, so it is reported):

    fd, fd_floor          Fréchet distance to the test set, and the same for real training images
    kid, kid_std          kernel inception distance (unbiased), with its standard deviation
    precision, recall,    k-nearest-neighbour manifolds (Kynkäänniemi et al. 2019),
    density, coverage     and their sturdier versions (Naeem et al. 2020)
    inception_score       exp E KL(p(y|x) || p(y)), beside its value on real test images
    class_histogram       the classifier's verdict on the samples; class_accuracy with `labels`
    memorised             fraction of samples nearer to a training image than `MEMORISED` times
                          the typical test-to-train nearest distance (pixel space)

`evaluate(..., train=data)` is told the images the model trained on (or the Course, whose seed and
profile drew them); the FD floor and `memorised` compare with those, not with another subset.

Fréchet distance and KID come from torchmetrics, fed with our features (the classifier runs once
per image; the real sets' features are computed once and cached).

    python -m course_lib.metrics train-classifier fashion-mnist   # rebuild a shipped classifier
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from typing import Callable

import torch
from torch import nn

from .data import DATASETS, TEST_SIZES, ImageData, load_data, shuffled_order
from .evaluators import load_evaluator
from .profiles import Profile, get_profile
from .runtime import Course

__all__ = ["evaluate", "features", "frechet_distance", "frechet_gaussians", "kid", "prdc", "inception_score",
           "nearest_distances", "memorisation_ratio", "check_samples", "reference_data", "reference_images", "held_out",
           "held_out_images", "training_images", "MEMORISED", "K"]

K = 5  # neighbours for precision / recall / density / coverage
MEMORISED = 0.5  # a sample this much nearer to a training image than real test images are counts as a copy
CHUNK = 2048


class _Given(nn.Module):
    """torchmetrics' feature network, for features we computed already: the identity, with `num_features`."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# -- input checks and features -------------------------------------------------------------------------
def check_samples(samples: torch.Tensor, dataset: str, need: int) -> torch.Tensor:
    """Samples as float (N, 1, H, W) in [0, 1] for `dataset`, or a ValueError that says how to fix them."""
    if not isinstance(samples, torch.Tensor):
        raise TypeError(f"samples must be a tensor (N, 1, H, W), got {type(samples).__name__}.")
    size = DATASETS[dataset].image_size
    shape = (1, size, size)
    x = samples.detach()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise ValueError(f"{dataset} samples must have shape (N, {', '.join(map(str, shape))}); got {tuple(samples.shape)}. "
                         f"Grey-scale images have one channel; resize or crop to {shape[1]}x{shape[2]}.")
    if not x.is_floating_point():
        raise ValueError(f"samples must be floats in [0, 1], got {x.dtype}: divide uint8 images by 255.")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"{int((~torch.isfinite(x)).sum())} sample values are NaN or inf: the generator diverged.")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        hint = " They look like tanh outputs in [-1, 1]: map them with (x + 1) / 2." if lo < -0.01 else ""
        raise ValueError(f"samples must lie in [0, 1]; they range over [{lo:.3g}, {hi:.3g}].{hint}")
    if len(x) < need:
        raise ValueError(f"the metrics need {need} samples (the profile's eval_size), got {len(x)}: draw more, "
                         f"or pass n= to compare at a smaller size (and say so: FD depends on it).")
    return x.clamp(0, 1)


@torch.no_grad()
def features(images: torch.Tensor, dataset: str, device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features (N, d), logits (N, classes)) of the dataset's evaluation classifier, in float32."""
    net = load_evaluator(dataset, device or images.device)
    feats, logits = [], []
    for i in range(0, len(images), CHUNK):
        f = net.net.embed(images[i:i + CHUNK].to(net.device).float())  # (B, d)
        feats.append(f.float())
        logits.append(net.net.head(f).float())  # (B, classes)
    return torch.cat(feats), torch.cat(logits)


# -- Fréchet distance --------------------------------------------------------------------------------
def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric positive semi-definite matrix, by eigendecomposition."""
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_gaussians(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> torch.Tensor:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2): the squared 2-Wasserstein distance of two Gaussians.

    (C1^1/2 C2 C1^1/2)^1/2 is symmetric and has the trace of (C1 C2)^1/2, so two symmetric
    eigendecompositions suffice (no general matrix square root).
    """
    mu1, cov1, mu2, cov2 = (t.double() for t in (mu1, cov1, mu2, cov2))
    root1 = _sqrtm_psd(cov1)
    middle = _sqrtm_psd(root1 @ cov2 @ root1)
    return (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * torch.trace(middle)


def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """Fréchet distance between two feature sets (N, d), with torchmetrics' FrechetInceptionDistance."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_Given(real_features.shape[1]), normalize=True)
    fid.update(real_features.float().cpu(), real=True)
    fid.update(fake_features.float().cpu(), real=False)
    return float(fid.compute())


def kid(real_features: torch.Tensor, fake_features: torch.Tensor, subsets: int = 50, seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance (mean, std over random subsets), with torchmetrics' KernelInceptionDistance."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(1000, len(real_features) // 2, len(fake_features) // 2)  # subsets smaller than the sets, so they vary
    with warnings.catch_warnings():  # "will save all extracted features in buffer": these are the features, given
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        metric = KernelInceptionDistance(feature=_Given(real_features.shape[1]), subsets=subsets, subset_size=size,
                                         normalize=True)
    metric.update(real_features.float().cpu(), real=True)
    metric.update(fake_features.float().cpu(), real=False)
    with torch.random.fork_rng(devices=[]):  # its subsets are drawn from the global RNG
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


# -- nearest neighbours ---------------------------------------------------------------------------------
def nearest_distances(a: torch.Tensor, b: torch.Tensor, k: int = 1, exclude_self: bool = False) -> torch.Tensor:
    """Distance from each row of a (N, d) to its k-th nearest row of b (M, d); (N,). Chunked: no N x M matrix.

    Neighbours are ranked with torch.cdist in the inputs' precision (its fast matrix-product form
    is accurate to about 1e-6 relative); the chosen neighbour's distance is then computed directly,
    so an exact copy is at distance 0, not at the rounding error of |a|^2 + |b|^2 - 2 a.b.
    """
    dtype = torch.promote_types(a.dtype, b.dtype) if a.is_floating_point() else torch.float32
    a, b = a.to(dtype), b.to(dtype)
    out = []
    for i in range(0, len(a), CHUNK):
        rows = a[i:i + CHUNK]
        d = torch.cdist(rows, b)  # (chunk, M)
        nearest = d.topk(k + int(exclude_self), dim=1, largest=False).indices[:, -1]  # (chunk,)
        out.append((rows - b[nearest]).pow(2).sum(1).sqrt())
    return torch.cat(out)


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = K) -> dict[str, float]:
    """Precision, recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) of fake vs real features.

    Each real point owns a ball reaching its k-th nearest real neighbour. precision: fraction of
    fakes inside some real ball; recall: fraction of reals inside some fake ball; density: fake
    hits per real ball, over k; coverage: fraction of real balls that hold a fake. One pass over
    the fake-by-real distances, in chunks of fakes.
    """
    dtype = torch.promote_types(real.dtype, fake.dtype)
    real, fake = real.to(dtype), fake.to(dtype).to(real.device)  # one device: the real features'
    r_real = nearest_distances(real, real, k, exclude_self=True)  # (N,)
    r_fake = nearest_distances(fake, fake, k, exclude_self=True)  # (M,)
    in_ball = torch.zeros(len(fake), dtype=torch.bool, device=real.device)
    recalled = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    nearest_fake = torch.full((len(real),), math.inf, dtype=dtype, device=real.device)
    hits = 0
    for j in range(0, len(fake), CHUNK):
        d = torch.cdist(fake[j:j + CHUNK], real)  # (chunk, N)
        inside = d < r_real[None]  # fake j in the ball of real i
        in_ball[j:j + CHUNK] = inside.any(1)
        hits += int(inside.sum())
        recalled |= (d < r_fake[j:j + CHUNK, None]).any(0)  # real i in the ball of fake j
        nearest_fake = torch.minimum(nearest_fake, d.min(0).values)
    return {"precision": float(in_ball.double().mean()), "recall": float(recalled.double().mean()),
            "density": hits / (k * len(fake)), "coverage": float((nearest_fake < r_real).double().mean())}


def inception_score(logits: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) from classifier logits (N, classes): high for confident, varied classes."""
    log_p = torch.log_softmax(logits.double(), dim=1)  # (N, C) log p(y|x)
    log_marginal = torch.logsumexp(log_p, dim=0) - math.log(len(log_p))  # (C,) log p(y)
    return float(torch.exp((log_p.exp() * (log_p - log_marginal)).sum(1).mean()))


def memorisation_ratio(samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """For each sample, its distance to the nearest training image over the median such distance of test images.

    Pixel space, flattened. Real unseen images score about 1; a copy of a training image scores 0.
    """
    return _pixel_nearest(samples, train) / _pixel_nearest(test, train).median()


def _pixel_nearest(images: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """Distance of each image (N, C, H, W) to its nearest training image, on flattened pixels; (N,)."""
    return nearest_distances(images.reshape(len(images), -1).float(), train.reshape(len(train), -1).float())


# -- the real sets, computed once -------------------------------------------------------------------------
_REAL: dict[tuple, dict] = {}


def reference_data(dataset: str, n: int) -> ImageData:
    """The n test images every evaluation compares with, with their labels: a subset of the test split drawn
    with seed 0 whatever the course's seed, so every run is measured against the same images."""
    return load_data(dataset, "test", size=n, seed=0)


def reference_images(dataset: str, n: int) -> torch.Tensor:
    """The images of `reference_data(dataset, n)`, (n, 1, H, W)."""
    return reference_data(dataset, n).images


def held_out(dataset: str, n: int) -> ImageData:
    """Up to n real test images, with labels, that are not among `reference_images(dataset, n)`: what a
    perfect generator draws. They follow the reference set in the same seeded order."""
    test = load_data(dataset, "test")
    if 2 * n > len(test):
        raise ValueError(f"held_out({dataset!r}, {n}) needs {2 * n} test images (n for the reference set, n held out), "
                         f"but the test split has {len(test)}: ask for n <= {len(test) // 2}.")
    idx = shuffled_order(len(test), 0)[n:2 * n]
    return ImageData(test.name, test.split, test.images[idx], test.labels[idx], test.classes, test.source)


def held_out_images(dataset: str, n: int) -> torch.Tensor:
    return held_out(dataset, n).images


def training_images(dataset: str, profile: str | Profile | None = None, seed: int = 0) -> torch.Tensor:
    """The training images a generator of this profile trains on under `setup(seed=seed)` (profile.train_size
    images drawn with that seed): the copies to look for."""
    return load_data(dataset, "train", size=get_profile(profile).train_size, seed=seed).images


def _checksum(images: torch.Tensor) -> tuple:
    """A cheap, order-sensitive fingerprint of a set of images (on any device), to cache what is computed from it."""
    rows = images.detach().flatten(1).double().sum(1)  # (N,)
    weights = torch.arange(1, len(rows) + 1, device=rows.device, dtype=rows.dtype)
    return (tuple(images.shape), float(rows.sum()), float((rows * weights).sum()))


def _train_images(dataset: str, train, prof: Profile) -> tuple[tuple, Callable[[], torch.Tensor]]:
    """(cache key, how to get the images on the CPU) for evaluate's `train`: the images are only drawn,
    or copied off the device, when the key is not cached yet."""
    if train is None or isinstance(train, Course):  # a profile's subset, drawn with seed 0 or the course's seed
        prof, seed = (prof, 0) if train is None else (train.profile, train.seed)
        return ("subset", prof.train_size, seed), lambda: training_images(dataset, prof, seed)
    if isinstance(train, ImageData):
        if train.name != dataset:
            raise ValueError(f"train= holds {train.name} images, but the samples are evaluated as {dataset}: pass the "
                             f"data the model trained on, e.g. course.load_data({dataset!r}).")
        train = train.images
    if not isinstance(train, torch.Tensor) or train.ndim != 4:
        raise TypeError(f"train= takes the training data (an ImageData, images (N, 1, H, W) or the Course), got "
                        f"{type(train).__name__}.")
    return ("given", *_checksum(train)), lambda: train.detach().float().cpu()


def _real_test(dataset: str, n: int, device: torch.device) -> dict:
    """The reference test set's images, features and logits, computed once per (dataset, n, device)."""
    key = ("test", dataset, n, str(device))
    if key not in _REAL:
        test = reference_images(dataset, n)
        f_test, l_test = features(test.to(device), dataset)
        _REAL[key] = {"test": test, "f_test": f_test.cpu(), "l_test": l_test.cpu(),
                      "inception_score_real": inception_score(l_test)}
    return _REAL[key]


def _real(dataset: str, n: int, device: torch.device, train=None, profile: str | Profile | None = None) -> dict:
    """`_real_test`, with what depends on the training images: the FD floor (n of them against the test set)
    and the typical test-to-train nearest distance that `memorised` is measured against."""
    prof = get_profile(profile)
    key, get_images = _train_images(dataset, train, prof)
    key = ("train", dataset, n, str(device), key)
    if key not in _REAL:
        real = _real_test(dataset, n, device)
        images = get_images()
        n_floor = min(n, len(images))
        floor_imgs = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:n_floor]]
        f_floor, _ = features(floor_imgs.to(device), dataset)
        _REAL[key] = {"train": images, "fd_floor": frechet_distance(real["f_test"], f_floor),
                      "typical": _pixel_nearest(real["test"], images).median()}
    return {**_real_test(dataset, n, device), **_REAL[key]}


def evaluate(samples: torch.Tensor, dataset: str = "fashion-mnist", labels: torch.Tensor | None = None, *,
             train=None, profile: str | Profile | None = None, n: int | None = None,
             device: str | torch.device | None = None) -> dict:
    """Every sample metric of the course on the first n samples (n: the profile's eval_size). Returns a dict.

    train: what the model trained on, for the FD floor and `memorised`: its ImageData (or images), or the
    Course (the profile's training subset drawn with the course's seed). None: that subset with seed 0.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}: choose one of {sorted(DATASETS)}.")
    prof = get_profile(profile)
    n = min(n or prof.eval_size, TEST_SIZES[dataset])
    x = check_samples(samples, dataset, n)[:n]
    device = torch.device(device) if device is not None else x.device
    real = _real(dataset, n, device, train, prof)
    f, logits = features(x.to(device), dataset)
    f, logits = f.cpu(), logits.cpu()
    kid_mean, kid_std = kid(real["f_test"], f)
    predicted = logits.argmax(1)
    out = {"dataset": dataset, "n": n, "fd": frechet_distance(real["f_test"], f), "fd_floor": real["fd_floor"],
           "kid": kid_mean, "kid_std": kid_std, **prdc(real["f_test"], f),
           "inception_score": inception_score(logits), "inception_score_real": real["inception_score_real"],
           "class_histogram": torch.bincount(predicted, minlength=logits.shape[1]).tolist()}
    if labels is not None:
        labels = torch.as_tensor(labels)[:n].cpu()
        if len(labels) != n:
            raise ValueError(f"labels must have one entry per sample ({n}), got {len(labels)}.")
        out["class_accuracy"] = float((predicted == labels).double().mean())
    ratio = _pixel_nearest(x.cpu(), real["train"]) / real["typical"]
    out["memorised"] = float((ratio < MEMORISED).double().mean())
    out["memorised_threshold"] = MEMORISED
    return out


# -- the bench ---------------------------------------------------------------------------------------------
def bench_metrics(course) -> dict:
    """Sample metrics: classifier accuracies, FD floors, a compact degradation table, seconds for 10,000 samples."""
    import time

    from .evaluators import manifest

    out: dict = {}
    for name, entry in sorted(manifest().items()):
        out[f"{name}_accuracy"] = entry["test_accuracy"]
    n = course.profile.eval_size
    for name in ("fashion-mnist", "digits"):
        m = min(n, TEST_SIZES[name])
        out[f"{name}_fd_floor_n{m}"] = round(_real(name, m, course.device, course, course.profile)["fd_floor"], 4)
    n = min(n, TEST_SIZES["fashion-mnist"] // 2)  # the table's "clean" row: test images beyond the reference set
    held_data = held_out("fashion-mnist", n)
    held = held_data.images
    g = torch.Generator().manual_seed(course.seed)
    failures = {"clean": held, "noise0.2": (held + 0.2 * torch.randn(held.shape, generator=g)).clamp(0, 1),
                "one_class": held[held_data.labels == 0].repeat(20, 1, 1, 1)[:n],
                "copies": training_images("fashion-mnist", course.profile, course.seed)[:n]}
    for name, x in failures.items():
        r = evaluate(x, "fashion-mnist", train=course, profile=course.profile, n=min(n, len(x)))
        out[f"table_{name}"] = {k: round(r[k], 4) for k in ("fd", "kid", "precision", "recall", "coverage",
                                                            "inception_score", "memorised")}
    big = torch.cat([held] * (10_000 // len(held) + 1))[:10_000]  # 10,000 samples, whatever the profile
    evaluate(big[:10], "fashion-mnist", profile=course.profile, n=10)  # classifier loaded, not timed
    t0 = time.perf_counter()
    r = evaluate(big, "fashion-mnist", profile=course.profile, n=10_000)
    out["evaluate_seconds_10k"] = round(time.perf_counter() - t0, 2)
    out["evaluate_n"] = r["n"]
    out["eval_size"] = n
    return out


BENCHMARKS = {"metrics": bench_metrics}


# -- command line ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.metrics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train-classifier", help="train and ship the evaluation classifier of a dataset")
    t.add_argument("dataset", help="fashion-mnist, digits or mnist")
    t.add_argument("--device", default="auto")
    t.add_argument("--epochs", type=int, default=None, help="override the recipe (for a quick try; not for shipping)")
    args = p.parse_args(argv)
    from .evaluators import train_evaluator

    print(json.dumps(train_evaluator(args.dataset, device=args.device, epochs=args.epochs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
