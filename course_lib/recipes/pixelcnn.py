"""The PixelCNN's recipe (lecture 06): the course's config per dataset and profile, the training driver,
held-out bits/dim and the bench.

    model = PixelCNN(pixelcnn_config(course, "fashion-mnist"), seed=course.seed)
    run = train_pixelcnn(course, model, course.load_data("fashion-mnist"), checkpoint="runs/pixelcnn.pt")
    evaluate_bpd(model, course.load_data("fashion-mnist", "test"))
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..data import DATASETS, ImageData
from ..metrics import evaluate
from ..models.pixelcnn import PixelCNN, PixelCNNConfig
from ..train import TrainConfig
from .common import Run, keep_trained, quiet, sample_figures, train_with_snapshots, training_figures

__all__ = ["pixelcnn_config", "train_pixelcnn", "evaluate_bpd", "BENCHMARKS"]


def pixelcnn_config(course, dataset: str = "fashion-mnist", **changes) -> PixelCNNConfig:
    """The course's PixelCNNConfig for a dataset: the image size from the dataset; channels, layers and lr from
    the profile (`Profile.pixelcnn_*`: a PixelCNN step costs about ten VAE steps, so it has sizes of its own)."""
    p = course.profile
    return PixelCNNConfig(**{"image_size": DATASETS[dataset].image_size, "channels": p.pixelcnn_channels,
                             "n_layers": p.pixelcnn_layers, "lr": p.pixelcnn_lr, **changes})


# -- training -------------------------------------------------------------------------------------------------------
def train_pixelcnn(course, model: PixelCNN, data: ImageData, steps: int | None = None, epochs: int | None = None,
                   checkpoint: str | Path | None = None, snapshots: int = 4, n_show: int | None = None,
                   train_config: TrainConfig | None = None, callback=None, retrain: bool = False,
                   zoo: str | None = None) -> Run:
    """Train `model` on `data` in the shared loop; draw n_show samples with fixed noise `snapshots` times.

    Length: `steps`, else `epochs`, else the profile's `pixelcnn_epochs` (at least its min_steps); batch
    size: the profile's. A conditional model trains on (images, labels) and its snapshots cycle through
    the classes. `zoo=NAME` loads the course's converged model instead of training (model built with
    `entry_config(NAME)`). Each snapshot costs H W network steps. Snapshots: (step, samples (n, 1, S, S) in [0, 1]).
    """
    model.to(course.device)
    n = min(n_show or course.profile.n_show, len(data))
    k = model.config.n_classes
    cond = torch.arange(n) % k if k else None
    batches = data.to(course.device).batches(min(course.profile.batch_size, len(data)), seed=course.seed,
                                             labels=k is not None)
    return train_with_snapshots(
        course, model, batches, lambda: model.sample(n, generator=course.generator(2), cond=cond).cpu(),
        steps=steps, epochs=epochs, checkpoint=checkpoint, snapshots=snapshots, train_config=train_config,
        callback=callback, retrain=retrain, zoo=zoo, default_epochs=course.profile.pixelcnn_epochs)


# -- the bench ------------------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_bpd(model: PixelCNN, data: ImageData, batch_size: int = 250) -> float:
    """Mean bits/dim over `data` (of its L-level quantisation), with the labels for a conditional model."""
    model.eval()
    total = 0.0
    for start in range(0, len(data), batch_size):
        x = data.images[start:start + batch_size].to(model.device)
        y = data.labels[start:start + batch_size] if model.config.n_classes else None
        total += float(model.bits_per_dim(x, y).double().sum())
    return total / len(data)


def bench_pixelcnn(course, dataset: str = "fashion-mnist") -> dict:
    """Gated PixelCNN on Fashion-MNIST: test bits/dim (at `levels`), images/s, seconds per sample, FD/precision/recall.

    test_bpd is -log p(x) / (D ln 2) on the held-out images, quantised to `levels` levels (256: the
    standard 8-bit figure). Sampling takes H W network steps, so the sample metrics use `eval_n`
    samples (fewer than the profile's eval_size on a CPU).
    """
    train, test = course.load_data(dataset, "train"), course.load_data(dataset, "test")
    cuda = course.device.type == "cuda"
    # sampling takes H W network steps: 2,000 samples on a GPU; on a CPU 200 of 28x28, or the whole digits test split
    n = min(course.profile.eval_size, len(test), 2000 if cuda else 200 if DATASETS[dataset].image_size > 8 else len(test))
    model = PixelCNN(pixelcnn_config(course, dataset), seed=course.seed)
    run = train_pixelcnn(course, model, train, snapshots=0, train_config=quiet())
    keep_trained(course, model, f"pixelcnn-{dataset}-{model.config.variant}", run.trainer)
    bpd = evaluate_bpd(model, test)
    t0 = time.perf_counter()
    samples = model.sample(n, generator=course.generator(3, device=course.device))
    sample_seconds = time.perf_counter() - t0
    figures = evaluate(samples, dataset, train=train, profile=course.profile, n=n)
    trainer, c = run.trainer, model.config
    out: dict = {"dataset": dataset, "train_images": len(train), "test_images": len(test), "variant": c.variant,
                 "levels": c.levels, "channels": c.channels, "n_layers": c.n_layers,
                 "batch_size": min(course.profile.batch_size, len(train)), **training_figures(trainer),
                 "train_loss": round(run.history["loss"][-1], 3), "test_bpd": round(bpd, 4),
                 "sample_seconds_per_image": round(sample_seconds / n, 4)}
    return {**out, **sample_figures(figures)}


def bench_pixelcnn_digits(course) -> dict:
    """Gated PixelCNN on 8x8 digits (seconds on a CPU): the same figures as `pixelcnn`."""
    return bench_pixelcnn(course, "digits")


BENCHMARKS = {"pixelcnn": bench_pixelcnn, "pixelcnn-digits": bench_pixelcnn_digits}
