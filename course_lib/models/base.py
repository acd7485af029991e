"""The process contract, written once, and the small base class that meets most of it.

See the package docstring (`course_lib.models`) for the contract in words.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar, Iterator, Protocol, runtime_checkable

import torch
from torch import nn

from ..checkpoint import CheckpointError, config_from_dict, load_checkpoint, read_checkpoint
from ..train import Phase

__all__ = ["Process", "GenerativeProcess", "ProcessModule", "seeded"]


@runtime_checkable
class Process(Protocol):
    """What the training loop, checkpoints, benches and notebooks may rely on for every family.

    config: a dataclass with defaults: every size and hyper-parameter of the model.
    seed: the seed its initial weights were drawn with.
    device: where its parameters live.
    phases(): the `Phase`s the loop runs, with fresh optimisers; each loss function maps a batch to
        a dict of float32 scalar tensors, the phase's own name among them (the loss it minimises).
    """

    config: Any
    seed: int

    @property
    def device(self) -> torch.device: ...

    def phases(self) -> list[Phase]: ...


@runtime_checkable
class GenerativeProcess(Process, Protocol):
    """A process that can also draw samples: `sample(n, generator=None, cond=None)` -> n samples on `device`.

    With a torch.Generator the draw is reproducible and leaves the training noise stream alone. cond:
    one condition per sample (or one for all) for a conditional model; an unconditional one refuses it.
    """

    def sample(self, n: int, generator: torch.Generator | None = None, cond: Any = None) -> torch.Tensor: ...


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw initial weights from `seed` without touching the global random state.

        with seeded(3):
            net = nn.Linear(4, 2)   # the same weights for seed 3, whatever ran before
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    with torch.random.fork_rng(devices=[]):  # the CPU stream only: modules are built on the CPU
        torch.manual_seed(seed)
        yield


class ProcessModule(nn.Module):
    """Base class of the families' processes: `config`, `seed`, `device`, `seeded()`, `noise_stream()`, `from_checkpoint`.

    Subclasses set `config_class` and build their networks inside `with self.seeded():`.
    """

    config_class: ClassVar[type]

    def __init__(self, config: Any, seed: int = 0) -> None:
        super().__init__()
        expected = getattr(type(self), "config_class", None)
        if expected is not None and not isinstance(config, expected):
            raise TypeError(f"{type(self).__name__} takes a {expected.__name__}, got {type(config).__name__}. "
                            f"Build one with {expected.__name__}(...) (every field has a default).")
        self.config = config
        self.seed = seed
        self._noise: torch.Generator | None = None  # the training noise stream, made on first use

    def seeded(self) -> contextlib.AbstractContextManager:
        return seeded(self.seed)

    def noise_stream(self) -> torch.Generator:
        """The training noise stream (a GAN's z, a VAE's reparametrisation noise, ...), seeded from `seed` + 1 on
        the model's device; made anew when the model moves. Draws with a generator of your own leave it alone."""
        if self._noise is None or self._noise.device != self.device:
            self._noise = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        return self._noise

    @property
    def device(self) -> torch.device:
        try:
            return next(self.parameters()).device
        except StopIteration:
            return torch.device("cpu")

    def phases(self) -> list[Phase]:
        raise NotImplementedError(f"{type(self).__name__} must define phases(): the list of Phases the loop runs.")

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu", **kwargs: Any) -> "ProcessModule":
        """Rebuild the model that wrote `path` (same config, same seed) and load its weights.

        kwargs go to the constructor (e.g. the loss functions a lab plugs in).
        """
        state = read_checkpoint(path, map_location)
        name = f"{cls.__module__}.{cls.__qualname__}"
        saved = state.get("model_class")
        if saved != name:
            raise CheckpointError(f"{path} holds a {saved or 'model of unknown class'}, not a {name}: "
                                  f"call from_checkpoint on its own class.")
        if "config" not in state:
            raise CheckpointError(f"{path} has no config, so {cls.__name__} cannot be rebuilt from it: build the model "
                                  f"yourself and call load_checkpoint(path, model).")
        model = cls(config_from_dict(cls.config_class, state["config"]), seed=state.get("seed", 0), **kwargs)
        load_checkpoint(path, model, map_location=map_location, state=state)
        return model.to(map_location)
