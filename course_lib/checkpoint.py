"""Checkpoints that hold tensors and plain data only, written atomically, loaded safely.

One file per checkpoint, written by `torch.save` and read back with `weights_only=True`, so a
checkpoint can never run code when loaded. A write goes to a temporary file that replaces the
old one only once complete: an interrupt or a full disk never leaves half a checkpoint.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "atomic_save"]

FORMAT = "course_lib.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint could not be used; the message says why and what to do."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save to `path` through a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError unless value is tensors and plain data, which load_checkpoint can read back."""
    if isinstance(value, (torch.Tensor, bool, int, float, str)) or value is None:
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds tensors "
                    f"and plain data only (load_checkpoint would refuse it). Store e.g. dataclasses.asdict(config).")


def save_checkpoint(path: str | Path, model: nn.Module, optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    step: int = 0, history: Mapping[str, list] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Save model weights, optimiser states, the step, the history and small extra data."""
    _check_plain(dict(extra or {}), "extra")
    state = {
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizers": {name: opt.state_dict() for name, opt in (optimizers or {}).items()},
        "step": int(step),
        "history": {k: [float(x) for x in v] for k, v in (history or {}).items()},
        "extra": dict(extra or {}),
    }
    return atomic_save(state, path)


def _read(path: Path, map_location: str | torch.device) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Train first (Trainer(..., TrainConfig(checkpoint=...)).fit) "
                                f"or check the path.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch wraps every unpickling failure in "Weights only load failed"; only a reference to
        # a Python class or function (a GLOBAL, which it asks to allowlist) means "objects".
        # Anything else (e.g. "Unsupported operand" from random bytes) is a damaged file.
        if any(s in str(e) for s in ("GLOBAL", "add_safe_globals", "allowlist")):
            raise CheckpointError(
                f"Refused to load {path}: it contains Python objects other than tensors and plain data, "
                f"which could run code when loaded. Only load checkpoints you trust, and re-save them with "
                f"course_lib.save_checkpoint.") from e
        raise CheckpointError(f"{path} is truncated or corrupt (it is not a readable torch file). "
                              f"Delete it and train again, or use an earlier copy.") from e
    except Exception as e:  # RuntimeError, EOFError, KeyError...: whatever a damaged file makes torch.load raise
        raise CheckpointError(f"{path} is truncated or corrupt ({type(e).__name__}: {str(e)[:160]}). "
                              f"Delete it and train again, or use an earlier copy.") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a course checkpoint (no '{FORMAT}' marker). Save checkpoints with "
                              f"course_lib.save_checkpoint; for a bare state_dict use model.load_state_dict(torch.load(..., weights_only=True)).")
    return state


def _check_architecture(model: nn.Module, weights: Mapping[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(weights) if tuple(own[k].shape) != tuple(weights[k].shape))
    if missing or unexpected or shapes:
        lines = [f"{path} does not match this model's architecture:"]
        if missing:
            lines.append(f"  missing in the checkpoint ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  not in the model ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if shapes:
            lines.append(f"  different shapes ({len(shapes)}): " + "; ".join(shapes[:20]))
        lines.append("Build the model with the same config (and profile width) it was saved with, or train again.")
        raise CheckpointError("\n".join(lines))


def load_checkpoint(path: str | Path, model: nn.Module,
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint into `model` (and optimisers); return {'step', 'history', 'extra'}.

    Nothing is changed unless the whole checkpoint fits: architecture and optimiser names are
    checked before any weight is copied.
    """
    path = Path(path)
    state = _read(path, map_location)
    _check_architecture(model, state["model"], path)
    saved_opts = state.get("optimizers", {})
    for name, opt in (optimizers or {}).items():
        if name not in saved_opts:
            raise CheckpointError(f"{path} has no state for optimiser {name!r} (it has {sorted(saved_opts)}).")
        # the check Optimizer.load_state_dict makes, done before anything is loaded
        sizes = lambda groups: [len(g["params"]) for g in groups]  # noqa: E731
        saved_sizes, own_sizes = sizes(saved_opts[name].get("param_groups", [])), sizes(opt.param_groups)
        if saved_sizes != own_sizes:
            raise CheckpointError(f"{path}: optimiser {name!r} was saved for parameter groups of sizes {saved_sizes}, "
                                  f"but this one has {own_sizes}. Build the optimiser over the same parameters.")
    model.load_state_dict(state["model"])
    for name, opt in (optimizers or {}).items():
        opt.load_state_dict(saved_opts[name])
    return {"step": state.get("step", 0), "history": state.get("history", {}), "extra": state.get("extra", {})}
