"""Runs that are trained once and reused: `load_or_train`.

Later lectures train models that take minutes; a notebook re-run (or a student reopening it)
should not train them again. One call loads the finished run from its checkpoint, continues a
run that was stopped, or trains one and saves it:

    trainer = load_or_train(gan, data.batches(128), "runs/dcgan-cpu.pt", epochs=course.profile.epochs)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable

from torch import nn

from .checkpoint import check_same_run, read_checkpoint, save_checkpoint
from .train import TrainConfig, Trainer, count_steps

__all__ = ["load_or_train", "train_with_snapshots", "training_figures", "keep_trained"]


def load_or_train(model: nn.Module, batches: Iterable, path: str | Path, *, steps: int | None = None,
                  epochs: int | None = None, train_config: TrainConfig | None = None,
                  callback: Callable[[Trainer], None] | None = None, retrain: bool = False) -> Trainer:
    """Load a finished run from `path`; otherwise train `model` (resuming a run that stopped early) and save it.

        trainer = load_or_train(gan, data.batches(128), "runs/ring-gan.pt", steps=3000)
        gan.sample(16)                  # trained now, or loaded: the same model either way
        plot_history(trainer.history)   # the history is in the checkpoint too

    steps / epochs: the length of the whole run (not "more" steps, as in `fit`). The checkpoint
    records the model's class, config and seed; one made by another class, config or seed is
    refused with the differences listed. A run stopped with the stop button is saved, and the
    next call continues it. `retrain=True` trains from scratch and overwrites the file.
    """
    path = Path(path)
    total = count_steps(batches, steps, epochs)
    trainer = Trainer(model, train_config=dataclasses.replace(train_config or TrainConfig(), checkpoint=path))
    if path.exists() and not retrain:
        state = read_checkpoint(path, map_location=trainer.device)  # read once: checked, then loaded
        check_same_run(state, model, path)
        trainer.load(path, state=state)
        if trainer.step >= total:
            trainer.status = "loaded"
            print(f"Loaded {path}: a finished run of {trainer.step} steps ({trainer.seconds:.0f} s of training). "
                  f"Pass retrain=True to train again.")
            return trainer
        print(f"Resuming {path} at step {trainer.step} of {total}.")
    trainer.fit(batches, steps=total - trainer.step, callback=callback)
    return trainer


def train_with_snapshots(course, model: nn.Module, batches, take: Callable[[], Any], *, steps: int | None = None,
                         epochs: int | None = None, checkpoint: str | Path | None = None, snapshots: int = 4,
                         train_config: TrainConfig | None = None, callback: Callable[[Trainer], None] | None = None,
                         retrain: bool = False) -> tuple[Trainer, list[tuple]]:
    """The driver every family's `train_*` shares: train `model` on `batches` in the shared loop and
    record `take()` (e.g. fixed-noise samples) `snapshots` times, as (step, *what take returned).

    Length: `steps`, else `epochs` passes, else the profile's epochs but at least its `min_steps`.
    `take()` runs in eval mode (batchnorm with running statistics) with no gradients; the model goes
    back to training mode after. With a `checkpoint`, `load_or_train` loads a finished run (then the
    snapshots are the untrained one and the final one). `callback(trainer)` runs at every snapshot.
    CPU threads: setup()'s (by default the free cores, recounted as it trains). Returns (trainer,
    snapshots); the model is left in eval mode.
    """
    import torch

    if steps is None:
        p = course.profile
        steps = len(batches) * epochs if epochs is not None else max(len(batches) * p.epochs, p.min_steps)
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
    if checkpoint is not None:
        trainer = load_or_train(model, batches, checkpoint, steps=steps, train_config=config, callback=hook,
                                retrain=retrain)
    else:
        trainer = Trainer(model, train_config=config)
        trainer.fit(batches, steps=steps, callback=hook)
    if snapshots and trainer.status == "loaded":
        snapshot(trainer.step)
    model.eval()
    return trainer, shots


def training_figures(trainer: Trainer) -> dict:
    """What every bench reports about a finished run: steps, train_seconds, images_per_second, and
    train_status ('done', or 'interrupted' for a run stopped early, e.g. by a time limit's SIGINT)."""
    return {"steps": trainer.step, "train_status": trainer.status, "train_seconds": round(trainer.seconds, 3),
            "images_per_second": round(trainer.samples_seen / max(trainer.seconds, 1e-9), 1)}


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
