"""Runs that are trained once and reused: `load_or_train`.

Later lectures train models that take minutes; a notebook re-run (or a student reopening it)
should not train them again. One call loads the finished run from its checkpoint, continues a
run that was stopped, or trains one and saves it:

    trainer = load_or_train(gan, data.batches(128), "runs/dcgan-cpu.pt", epochs=course.profile.epochs)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterable

from torch import nn

from .checkpoint import check_same_run, read_checkpoint
from .train import TrainConfig, Trainer, count_steps

__all__ = ["load_or_train"]


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
