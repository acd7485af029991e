"""The one training loop of the course.

A model's process (a GAN, a VAE, a PixelCNN) supplies loss functions; the loop owns
everything else: devices, mixed precision, the progress bar, the history, callbacks,
checkpoints, interrupts and non-finite losses.

    trainer = Trainer(gan)                             # gan.phases(): what the loop runs
    history = trainer.fit(data.batches(128), epochs=5) # dict of lists
    # the same, spelled out: k discriminator steps per generator step
    phases = [Phase("d_loss", gan.discriminator_loss, opt_d),
              Phase("g_loss", gan.generator_loss, opt_g, every=k)]
    trainer = Trainer(gan, phases, train_config=TrainConfig(log_every=50))

A single-loss model is one phase. Stop with the Jupyter stop button at any time: `fit`
returns with the model and history intact, and calling it again continues. `load_or_train`
(runs.py) loads a finished run from its checkpoint, resumes an unfinished one, or trains and saves it.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .runtime import follow_free_cores

__all__ = ["Phase", "TrainConfig", "Trainer", "NonFiniteLossError", "count_steps"]

LossFn = Callable[[Any], Mapping[str, torch.Tensor]]


class NonFiniteLossError(FloatingPointError):
    """A loss became inf or NaN; the model was rolled back to its last good weights."""


@dataclass
class Phase:
    """One optimiser and the loss it minimises.

    loss_fn(batch) returns a dict of float32 scalar tensors; the entry named `name` is minimised,
    the others are only logged. The phase runs on steps where `step % every == 0`; `after()`, if
    given, runs right after its optimiser step (e.g. to update an EMA copy of the weights).
    """

    name: str
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    every: int = 1
    grad_clip: float | None = None  # max gradient norm, None: no clipping
    after: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"Phase {self.name!r}: every must be >= 1, got {self.every}.")


@dataclass
class TrainConfig:
    log_every: int = 25  # steps between history entries (each is the mean over those steps)
    callback_every: int | None = None  # steps between callback(trainer) calls; None: every log_every steps
    checkpoint: str | Path | None = None  # where to save; also saved at the end and on interrupt
    checkpoint_every: int | None = None  # steps between checkpoints; None: only at the end
    amp: bool | None = None  # bf16 autocast; None: on for CUDA
    channels_last: bool | None = None  # NHWC memory layout for conv nets; None: on for CUDA
    progress: bool = True  # tqdm progress bar


def count_steps(batches: Iterable, steps: int | None, epochs: int | None) -> int:
    """The number of steps that `steps=` or `epochs=` (times len(batches)) asks for; exactly one must be given."""
    if (steps is None) == (epochs is None):
        raise ValueError("Give exactly one of steps=... or epochs=....")
    if steps is None:
        try:
            per_epoch = len(batches)  # type: ignore[arg-type]
        except TypeError as e:
            raise TypeError("epochs=... needs batches with a length; pass steps=... instead.") from e
        steps = per_epoch * int(epochs)  # type: ignore[arg-type]
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}.")
    return steps


def _clone(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone(v) for v in tree)
    return tree


class Trainer:
    """Runs phases over batches; keeps `history`, `step` and the last good weights."""

    def __init__(self, model: nn.Module, phases: Phase | Sequence[Phase] | None = None,
                 train_config: TrainConfig | None = None, device: str | torch.device | None = None) -> None:
        """phases: default `model.phases()`, which every model family of the course defines."""
        self.model = model
        if phases is None:
            if not callable(getattr(model, "phases", None)):
                raise TypeError(f"{type(model).__name__} has no phases() method: pass the phases, e.g. "
                                f"Trainer(model, Phase('loss', loss_fn, optimizer)).")
            phases = model.phases()
        self.phases = [phases] if isinstance(phases, Phase) else list(phases)
        if not self.phases:
            raise ValueError("Trainer needs at least one Phase.")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"Phase names must be unique, got {names}.")
        self.train_config = train_config or TrainConfig()
        if self.train_config.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.train_config.log_every}.")
        # The one place that says how often a callback runs: its own setting, else every log interval.
        self.callback_every = self.train_config.callback_every or self.train_config.log_every
        if device is None:
            try:
                device = next(model.parameters()).device
            except StopIteration:
                device = torch.device("cpu")
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.amp = cuda if self.train_config.amp is None else self.train_config.amp
        self.channels_last = cuda if self.train_config.channels_last is None else self.train_config.channels_last
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.step = 0
        self.samples_seen = 0
        self.seconds = 0.0
        self.history: dict[str, list[float]] = {"step": [], "time": []}
        self.status = "new"  # new | running | done | loaded | interrupted | nonfinite | failed
        # (step, phases already applied in it): an interrupt between two phases of a step must
        # not apply the first phase twice when fit() continues that step.
        self._partial: tuple[int, set[str]] = (-1, set())
        # Two snapshots: `_candidate` is taken at each history flush; it becomes `_good` once a
        # later step has computed a finite loss from it. A rollback goes to the newest state
        # whose loss was seen to be finite.
        self._good = self._candidate = self._snapshot()

    # -- state -----------------------------------------------------------------------------
    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {p.name: p.optimizer for p in self.phases}

    def _snapshot(self) -> dict:
        return {"step": self.step, "model": _clone(self.model.state_dict()),
                "optimizers": {n: _clone(o.state_dict()) for n, o in self.optimizers.items()}}

    def _restore(self, snap: dict) -> None:
        self.model.load_state_dict(snap["model"])
        for n, o in self.optimizers.items():
            o.load_state_dict(snap["optimizers"][n])
        self.step = snap["step"]
        self._partial = (-1, set())
        keep = sum(1 for s in self.history["step"] if s <= self.step)  # drop rows past the restored step
        for k in self.history:
            del self.history[k][keep:]

    def save(self, path: str | Path | None = None) -> Path:
        path = path or self.train_config.checkpoint
        if path is None:
            raise ValueError("No checkpoint path: pass one, or set TrainConfig(checkpoint='runs/name.pt').")
        return save_checkpoint(path, self.model, self.optimizers, step=self.step, history=self.history,
                               extra={"samples_seen": self.samples_seen, "seconds": self.seconds})

    def load(self, path: str | Path | None = None, state: Mapping[str, Any] | None = None) -> "Trainer":
        """Resume from a checkpoint written by `save` (weights, optimisers, step, history).

        state: the file as `read_checkpoint` already returned it, so it is not read again.
        """
        path = path or self.train_config.checkpoint
        if path is None:
            raise ValueError("No checkpoint path: pass one, or set TrainConfig(checkpoint=...).")
        info = load_checkpoint(path, self.model, self.optimizers, map_location=self.device, state=state)
        self.step, self.history = int(info["step"]), {k: list(v) for k, v in info["history"].items()}
        self.history.setdefault("step", []), self.history.setdefault("time", [])
        self.samples_seen = int(info["extra"].get("samples_seen", 0))
        self.seconds = float(info["extra"].get("seconds", 0.0))
        self._good = self._candidate = self._snapshot()
        self._partial = (-1, set())
        return self

    # -- one step ----------------------------------------------------------------------------
    def _to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            batch = batch.to(self.device, non_blocking=True)
            if self.channels_last and batch.ndim == 4 and batch.is_floating_point():
                batch = batch.contiguous(memory_format=torch.channels_last)
            return batch
        if isinstance(batch, (list, tuple)):
            return type(batch)(self._to_device(b) for b in batch)
        return batch

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _run_step(self, batch: Any) -> dict[str, torch.Tensor]:
        logs: dict[str, torch.Tensor] = {}
        if self._partial[0] != self.step:
            self._partial = (self.step, set())
        done = self._partial[1]
        for phase in self.phases:
            if self.step % phase.every or phase.name in done:
                continue
            with self._autocast():
                out = phase.loss_fn(batch)
            if not isinstance(out, Mapping) or phase.name not in out:
                got = sorted(out) if isinstance(out, Mapping) else type(out).__name__
                raise TypeError(f"Phase {phase.name!r}: its loss function must return a dict with the key "
                                f"{phase.name!r} (the loss to minimise); it returned {got}.")
            loss = out[phase.name]
            if loss.ndim != 0:
                raise ValueError(f"Phase {phase.name!r}: the loss must be a scalar, got shape {tuple(loss.shape)}; "
                                 f"take .mean() over the batch.")
            if loss.dtype in (torch.float16, torch.bfloat16):
                raise TypeError(f"Phase {phase.name!r}: the loss is {loss.dtype}. Compute losses in float32, also under "
                                f"autocast (e.g. F.cross_entropy(logits.float(), y)): half precision rounds "
                                f"likelihoods, bits/dim and the ELBO.")
            phase.optimizer.zero_grad(set_to_none=True)
            loss.float().backward()
            if phase.grad_clip is not None:
                params = [p for g in phase.optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, phase.grad_clip)
            phase.optimizer.step()
            if phase.after is not None:
                phase.after()
            done.add(phase.name)
            for k, v in out.items():
                logs[k] = v.detach().float()
        return logs

    # -- the loop ----------------------------------------------------------------------------
    def _flush(self, pending: list[tuple[int, dict[str, torch.Tensor]]], t0: float) -> None:
        """Move pending losses to the CPU (one sync), check them, append window means to history."""
        if not pending:
            return
        keys = sorted({k for _, logs in pending for k in logs})
        values = {k: torch.stack([logs[k] for _, logs in pending if k in logs]).cpu() for k in keys}
        first_bad = None  # (step, key, value) of the earliest non-finite value, over every key
        for k, v in values.items():
            bad = (~torch.isfinite(v)).nonzero()
            if len(bad):
                steps = [s for s, logs in pending if k in logs]
                if first_bad is None or steps[int(bad[0])] < first_bad[0]:
                    first_bad = (steps[int(bad[0])], k, float(v[int(bad[0])]))
        if first_bad is not None:
            bad_step, k, value = first_bad
            # The candidate's own loss was computed at step candidate["step"]; if that one is
            # finite, the candidate is good, otherwise fall back to the older verified state.
            self._restore(self._candidate if bad_step > self._candidate["step"] else self._good)
            pending.clear()
            self.status = "nonfinite"
            raise NonFiniteLossError(
                f"Loss {k!r} became {value} at step {bad_step}. Training stopped and the model "
                f"was rolled back to its last good weights (step {self.step}); history is kept up to there. "
                f"Try a lower learning rate, gradient clipping (Phase(..., grad_clip=1.0)), or look for "
                f"log(0) or a division by zero in the loss.")
        self.seconds += time.perf_counter() - t0
        self.history["step"].append(float(pending[-1][0] + 1))
        self.history["time"].append(self.seconds)
        n_before = len(self.history["step"]) - 1
        for k, v in values.items():
            col = self.history.setdefault(k, [math.nan] * n_before)
            col += [math.nan] * (n_before - len(col))
            col.append(float(v.mean()))
        for k in self.history:
            if k not in values and k not in ("step", "time") and len(self.history[k]) == n_before:
                self.history[k].append(math.nan)
        pending.clear()
        self._good, self._candidate = self._candidate, self._snapshot()

    def fit(self, batches: Iterable, steps: int | None = None, epochs: int | None = None,
            callback: Callable[["Trainer"], None] | None = None) -> dict[str, list[float]]:
        """Train for `steps` more steps, or `epochs` more passes over `batches`; return the history.

        `batches` is re-iterated for each epoch (e.g. `ImageData.batches(...)` or a `Batches`).
        """
        steps = count_steps(batches, steps, epochs)
        config = self.train_config
        target = self.step + steps
        self.status = "running"
        self.model.train()
        pending: list[tuple[int, dict[str, torch.Tensor]]] = []
        bar = None
        if config.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=steps, desc="train", leave=True)
        t0 = time.perf_counter()
        try:
            while self.step < target:
                started = self.step
                for batch in batches:
                    if self.step >= target:
                        break
                    follow_free_cores()  # 'auto' threads: recounted every few seconds (runtime.RECHECK_S)
                    batch = self._to_device(batch)
                    logs = self._run_step(batch)
                    pending.append((self.step, logs))
                    first = batch[0] if isinstance(batch, (list, tuple)) else batch
                    self.samples_seen += len(first) if isinstance(first, torch.Tensor) else 1
                    self.step += 1
                    if self.step % config.log_every == 0 or self.step == target:
                        self._flush(pending, t0)
                        t0 = time.perf_counter()
                        if bar is not None:
                            bar.update(steps - (target - self.step) - bar.n)
                            bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in self.history.items()
                                             if k not in ("step", "time") and v}, refresh=False)
                            bar.refresh()
                    if callback is not None and self.step % self.callback_every == 0 and self.step < target:
                        paused = time.perf_counter()
                        callback(self)
                        t0 += time.perf_counter() - paused  # training time excludes callbacks
                    if config.checkpoint and config.checkpoint_every and self.step % config.checkpoint_every == 0:
                        self._flush(pending, t0)
                        self.save()
                        t0 = time.perf_counter()  # ... and checkpoint writes
                if self.step == started:
                    raise ValueError("batches yielded nothing: is the dataset smaller than one batch?")
        except KeyboardInterrupt:
            self._flush(pending, t0)
            self.status = "interrupted"
            print(f"Interrupted at step {self.step}: the model and history are kept. "
                  f"Call fit(...) again to continue" + (f"; checkpoint saved to {self.save()}" if config.checkpoint else "."))
            return self.history
        finally:
            if bar is not None:
                bar.close()
            self.model.eval()
            if self.status == "running":  # an exception from a loss function or a callback
                self.status = "failed"
        self.status = "done"
        if callback is not None:
            callback(self)
        if config.checkpoint:
            self.save()
        return self.history
