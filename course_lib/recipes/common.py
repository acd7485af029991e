"""What every family's recipe shares: one `Run`, the training driver with snapshots, the bench's figures.

    run = train_with_snapshots(course, model, batches, take=lambda: model.sample(16))
    run.model, run.trainer, run.history, run.snapshots     # [(step, samples), ...]

`train_with_snapshots` is the one driver behind every `train_*` of `course_lib.recipes`: it runs the
shared loop (`Trainer`), loads a finished run from its checkpoint instead (`load_or_train`), and
records what `take()` returns a few times along the way, for the lectures' progress grids.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..checkpoint import save_checkpoint
from ..data import TEST_SIZES
from ..runs import load_or_train
from ..train import TrainConfig, Trainer

__all__ = ["Run", "train_with_snapshots", "training_figures", "sample_figures", "keep_trained", "eval_size", "quiet"]

SAMPLE_FIGURES = ("fd", "fd_floor", "precision", "recall", "coverage")  # what every bench reports of its samples


@dataclass
class Run:
    """A trained (or loaded) model, the trainer that ran it, and what was recorded along the way.

    snapshots: (step, *what the driver's `take()` returned) at a few steps, e.g. (step, samples (n, C, H, W)).
    metrics: figures the driver measured at the end, where it measures any (the ring GAN's modes).
    """

    model: nn.Module
    trainer: Trainer
    snapshots: list[tuple] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    @property
    def history(self) -> dict:
        return self.trainer.history


def quiet() -> TrainConfig:
    """The loop's settings for a bench: no progress bar, a log line every 10 steps."""
    return TrainConfig(log_every=10, progress=False)


def eval_size(course, dataset: str) -> int:
    """Samples to evaluate: the profile's eval_size, at most the dataset's test split (digits has 300)."""
    return min(course.profile.eval_size, TEST_SIZES[dataset])


def train_with_snapshots(course, model: nn.Module, batches, take: Callable[[], Any], *, steps: int | None = None,
                         epochs: int | None = None, checkpoint: str | Path | None = None, snapshots: int = 4,
                         train_config: TrainConfig | None = None, callback: Callable[[Trainer], None] | None = None,
                         retrain: bool = False, default_epochs: int | None = None, zoo: str | None = None) -> Run:
    """The driver every family's `train_*` shares: train `model` on `batches` in the shared loop and
    record `take()` (e.g. fixed-noise samples) `snapshots` times, as (step, *what take returned).

    Length: `steps`, else `epochs` passes, else `default_epochs` passes (a family with sizes of its own,
    e.g. `profile.pixelcnn_epochs`; default the profile's epochs), but at least the profile's `min_steps`.
    `take()` runs in eval mode (batchnorm with running statistics) with no gradients; the model goes
    back to training mode after. With a `checkpoint`, `load_or_train` loads a finished run (then the
    snapshots are the untrained one and the final one). `zoo`: a shipped model's name: its converged weights
    are loaded into `model` (built with the entry's config) instead of training, and the snapshots are the
    untrained and the converged one. `callback(trainer)` runs at every snapshot.
    CPU threads: setup()'s (by default the free cores, recounted as it trains). Returns the `Run`;
    the model is left in eval mode.
    """
    if steps is None:
        p = course.profile
        steps = len(batches) * epochs if epochs is not None else max(len(batches) * (default_epochs or p.epochs),
                                                                         p.min_steps)
    shots: list[tuple] = []

    def snapshot(step: int) -> None:
        if shots and shots[-1][0] == step:  # fit's final callback may repeat a step
            return
        was_training = model.training
        model.eval()
        with torch.no_grad():
            out = take()
        model.train(was_training)
        shots.append((step, *out) if isinstance(out, tuple) else (step, out))

    def hook(trainer: Trainer) -> None:
        if snapshots:
            snapshot(trainer.step)
        if callback is not None:
            callback(trainer)

    config = train_config or TrainConfig(log_every=max(1, steps // 50))
    if snapshots:
        config = dataclasses.replace(config, callback_every=max(1, steps // snapshots))
        snapshot(0)  # the untrained model (also before loading a finished run: the same seed, the same weights)
    if zoo is not None:
        trainer = load_or_train(model, zoo=zoo, train_config=config)
    elif checkpoint is not None:
        trainer = load_or_train(model, batches, checkpoint, steps=steps, train_config=config, callback=hook,
                                retrain=retrain)
    else:
        trainer = Trainer(model, train_config=config)
        trainer.fit(batches, steps=steps, callback=hook)
    if snapshots and trainer.status == "loaded":
        snapshot(trainer.step)
    model.eval()
    return Run(model, trainer, shots)


def training_figures(trainer: Trainer) -> dict:
    """What every bench reports about a finished run: steps, train_seconds, images_per_second, and
    train_status ('done', or 'interrupted' for a run stopped early, e.g. by a time limit's SIGINT)."""
    return {"steps": trainer.step, "train_status": trainer.status, "train_seconds": round(trainer.seconds, 3),
            "images_per_second": round(trainer.samples_seen / max(trainer.seconds, 1e-9), 1)}


def sample_figures(evaluated: dict, keys: tuple[str, ...] = SAMPLE_FIGURES) -> dict:
    """The figures a bench line reports from `metrics.evaluate(...)`'s dict, rounded, and eval_n, the samples used."""
    return {**{key: round(evaluated[key], 4) for key in keys}, "eval_n": evaluated["n"]}


def keep_trained(course, model: nn.Module, name: str, trainer: Trainer) -> Path | None:
    """Save a bench's trained `model` as `course.keep_dir/name.pt` when the bench was asked to keep them
    (`python -m course_lib.bench ... --save DIR`); otherwise do nothing. Returns the path written, or None.

    The file is a course checkpoint without optimisers (weights, class, config, seed, step, history),
    so `Family.from_checkpoint(path)` rebuilds the model that the bench line measured.
    """
    if course.keep_dir is None:
        return None
    path = Path(course.keep_dir) / f"{name}.pt"
    return save_checkpoint(path, model, step=trainer.step, history=trainer.history,
                           extra={"train_seconds": round(trainer.seconds, 3), "samples_seen": int(trainer.samples_seen),
                                  "profile": course.profile.name})
