"""Checkpoints that hold tensors and plain data only, written atomically, loaded safely.

One file per checkpoint, written by `torch.save` and read back with `weights_only=True`, so a
checkpoint can never run code when loaded. A write goes to a temporary file that replaces the
old one only once complete: an interrupt or a full disk never leaves half a checkpoint.
`atomic_write` is that mechanism for any file the course writes (data, notebooks, reports).

Besides weights, optimisers, step and history, a checkpoint records what built the model: its
class, its config (a dataclass, stored as a dict) and the seed of its initial weights. That is
what lets `Model.from_checkpoint(path)` rebuild a model, and `load_or_train` refuse a
checkpoint made with another config, showing the difference.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import torch
from torch import nn

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint", "atomic_write", "atomic_save",
           "model_identity", "sha256_file", "config_to_dict", "config_from_dict", "config_diff", "check_same_run"]

FORMAT = "course_lib.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint could not be used; the message says why and what to do."""


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Write `path` all at once or not at all: yields a temporary file in the same folder, which
    replaces `path` (os.replace) only when the block finishes; on any error it is removed.

        with atomic_write("runs/log.json", "w", encoding="utf-8") as f:
            f.write(text)
    """
    if "w" not in mode:
        raise ValueError(f"atomic_write is for writing; mode must contain 'w', got {mode!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide data and notebooks from other users (a grader's
        # sandboxed kernel runs as nobody); a file made this way gets the mode open() would give it
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else by setting it back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks: what the shipped assets' manifests record."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save to `path` through `atomic_write`."""
    with atomic_write(path) as f:
        torch.save(obj, f)
    return Path(path)


# -- what built the model: class, config, seed --------------------------------------------------------
def config_to_dict(config: Any) -> dict:
    """A config dataclass as plain data (tuples become lists, as a checkpoint stores them)."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise TypeError(f"a config must be a dataclass instance, got {type(config).__name__}.")

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    out = plain(dataclasses.asdict(config))
    _check_plain(out, f"{type(config).__name__}")
    return out


def config_from_dict(cls: type, values: Mapping[str, Any]) -> Any:
    """Rebuild a config dataclass from `config_to_dict`'s output (lists back to tuples where the default is one)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise CheckpointError(f"the checkpoint's config has fields {unknown} that {cls.__name__} does not have "
                              f"(it has {sorted(fields)}): it was saved by another version of the code.")
    kwargs = {}
    for name, v in values.items():
        default = fields[name].default
        kwargs[name] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
    return cls(**kwargs)


def config_diff(saved: Mapping[str, Any], own: Mapping[str, Any]) -> list[str]:
    """Lines `name: checkpoint A, this model B` for every config entry that differs."""
    return [f"{k}: checkpoint {saved.get(k, '(absent)')!r}, this model {own.get(k, '(absent)')!r}"
            for k in sorted(set(saved) | set(own)) if saved.get(k, object()) != own.get(k, object())]


def model_identity(model: nn.Module) -> dict:
    """What a checkpoint records of a model besides its weights: `model_class`, and where the model
    has them, `config` (as a dict) and `seed` (of its initial weights)."""
    out: dict[str, Any] = {"model_class": f"{type(model).__module__}.{type(model).__qualname__}"}
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out["config"] = config_to_dict(config)
    seed = getattr(model, "seed", None)
    if isinstance(seed, int) and not isinstance(seed, bool):
        out["seed"] = seed
    return out


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
        **model_identity(model),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizers": {name: opt.state_dict() for name, opt in (optimizers or {}).items()},
        "step": int(step),
        "history": {k: [float(x) for x in v] for k, v in (history or {}).items()},
        "extra": dict(extra or {}),
    }
    return atomic_save(state, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The whole checkpoint as a dict (weights_only), or a CheckpointError that says what is wrong."""
    path = Path(path)
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


def _check_architecture(model: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    weights, own = state["model"], model.state_dict()
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
        own_id = model_identity(model)
        if "config" in state and "config" in own_id:
            diff = config_diff(state["config"], own_id["config"])
            lines.append("  config differences: " + ("; ".join(diff) if diff else "none (the code changed since it was saved)"))
        elif state.get("model_class") not in (None, own_id["model_class"]):
            lines.append(f"  it holds a {state['model_class']}, not a {own_id['model_class']}")
        lines.append("Build the model with the same config (and profile width) it was saved with, or train again.")
        raise CheckpointError("\n".join(lines))


def load_checkpoint(path: str | Path, model: nn.Module,
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    map_location: str | torch.device = "cpu", state: Mapping[str, Any] | None = None) -> dict:
    """Load a checkpoint into `model` (and optimisers); return {'step', 'history', 'extra', 'config', 'seed', 'model_class'}.

    Nothing is changed unless the whole checkpoint fits: architecture and optimiser names are
    checked before any weight is copied. `state`: the file as `read_checkpoint` already returned it
    (a caller that inspected it first need not read it twice); `path` then only names it in errors.
    """
    path = Path(path)
    state = read_checkpoint(path, map_location) if state is None else state
    _check_architecture(model, state, path)
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
    return {"step": state.get("step", 0), "history": state.get("history", {}), "extra": state.get("extra", {}),
            "config": state.get("config"), "seed": state.get("seed"), "model_class": state.get("model_class")}


def check_same_run(state: Mapping[str, Any], model: nn.Module, path: Path) -> None:
    """Raise CheckpointError, listing the differences, unless `state` (read_checkpoint) was made by the same
    model class, config and seed as `model`."""
    own = model_identity(model)
    lines = []
    if state.get("model_class") != own["model_class"]:
        lines.append(f"model: checkpoint {state.get('model_class')!r}, this model {own['model_class']!r}")
    elif "config" in own:
        lines += config_diff(state.get("config") or {}, own["config"])
    if state.get("seed") != own.get("seed"):
        lines.append(f"seed: checkpoint {state.get('seed')!r}, this model {own.get('seed')!r}")
    if lines:
        raise CheckpointError(f"{path} was made by another run:\n" + "\n".join(f"  {line}" for line in lines) +
                              f"\nDelete it, save this run elsewhere (another path), or pass retrain=True to overwrite it.")
