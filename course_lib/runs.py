"""Runs that are trained once and reused: `load_or_train`.

Later lectures train models that take minutes; a notebook re-run (or a student reopening it)
should not train them again. One call loads the finished run from its checkpoint, continues a
run that was stopped, or trains one and saves it:

    trainer = load_or_train(gan, data.batches(128), "runs/dcgan-cpu.pt", epochs=course.profile.epochs)

or takes the course's converged model from the zoo instead of training at all:

    trainer = load_or_train(gan, zoo="dcgan-fashion-mnist-hinge")   # gan built with entry_config(name)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterable

from torch import nn

from .checkpoint import check_same_run, read_checkpoint
from .train import TrainConfig, Trainer, count_steps

__all__ = ["load_or_train", "from_zoo"]


def load_or_train(model: nn.Module, batches: Iterable | None = None, path: str | Path | None = None, *,
                  steps: int | None = None, epochs: int | None = None, train_config: TrainConfig | None = None,
                  callback: Callable[[Trainer], None] | None = None, retrain: bool = False,
                  zoo: str | None = None) -> Trainer:
    """Load a finished run from `path`; otherwise train `model` (resuming a run that stopped early) and save it.

        trainer = load_or_train(gan, data.batches(128), "runs/ring-gan.pt", steps=3000)
        gan.sample(16)                  # trained now, or loaded: the same model either way
        plot_history(trainer.history)   # the history is in the checkpoint too

    steps / epochs: the length of the whole run (not "more" steps, as in `fit`). The checkpoint
    records the model's class, config and seed; one made by another class, config or seed is
    refused with the differences listed. A run stopped with the stop button is saved, and the
    next call continues it. `retrain=True` trains from scratch and overwrites the file.

    zoo: the name of a shipped model (`python -m course_lib.zoo list`) to load instead: `model` must be built
    with that entry's config (`entry_config(name)`); the trainer comes back with status 'loaded', the
    entry's steps, seconds and (thinned) loss curves, and nothing is trained or written.
    """
    if zoo is not None:
        return from_zoo(model, zoo, train_config)
    if batches is None or path is None:
        raise TypeError("load_or_train needs the training batches and a checkpoint path (or zoo=NAME).")
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


def from_zoo(model: nn.Module, name: str, train_config: TrainConfig | None = None) -> Trainer:
    """Load zoo entry `name` into `model` and return a Trainer that records its run (status 'loaded')."""
    from .zoo import load_weights

    entry = load_weights(model, name)
    trainer = Trainer(model, train_config=train_config or TrainConfig())
    trainer.step, trainer.samples_seen = int(entry["steps"]), int(entry.get("images_seen") or 0)
    trainer.seconds = float(entry.get("train_seconds") or 0.0)
    trainer.history = {k: list(v) for k, v in entry.get("history", {}).items()}
    trainer.history.setdefault("step", []), trainer.history.setdefault("time", [])
    trainer.status = "loaded"
    print(f"Loaded the zoo's {name}: {trainer.step} steps ({trainer.seconds:.0f} s) on {entry['device']}, "
          f"the course's converged model (python -m course_lib.zoo list).")
    return trainer
