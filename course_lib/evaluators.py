"""The evaluation classifiers the sample metrics see through: trained by one command, shipped, checksummed.

Inception weights cannot be downloaded here and do not suit 28x28 grey-scale images, so the
course's metrics use features of its own classifiers, one per dataset. Each is trained by

    python -m course_lib.metrics train-classifier fashion-mnist     # or digits, or mnist

which is seeded and reproducible, and writes `course_lib/assets/<dataset>.safetensors` (tensors
only: loading it can never run code) and its entry in `course_lib/assets/manifest.json`: the
config, the test accuracy, the command, the device and the file's sha256. `load_evaluator`
checks the sha256 before it reads a byte of the weights; a missing, changed or corrupt file
gives an error that names the command that rebuilds it. MNIST is supported but not shipped (its
download is not reachable from where the course was built): train it where MNIST is present.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import atomic_write, config_from_dict, config_to_dict, sha256_file
from .data import load_data
from .models.classifier import Classifier, ClassifierConfig
from .runtime import device_name, fixed_threads, pick_device, seed_everything
from .train import TrainConfig, Trainer

__all__ = ["ASSETS", "RECIPES", "Recipe", "EvaluatorError", "train_evaluator", "load_evaluator", "manifest", "command"]

ASSETS = Path(__file__).resolve().parent / "assets"
MANIFEST = "manifest.json"


class EvaluatorError(RuntimeError):
    """An evaluation classifier is missing, changed or corrupt; the message names the command that rebuilds it."""


@dataclass(frozen=True)
class Recipe:
    """How one evaluation classifier is trained: the network, the epochs and the one-cycle learning rate."""

    config: ClassifierConfig
    epochs: int
    batch_size: int = 128
    seed: int = 0
    threads: int | None = None  # CPU threads (None: torch's default). The sum order, and so the exact
    # weights, depend on it: a pinned count makes the command reproduce bit for bit on any CPU.


# Batchnorm, two convs per downsampling stage, a 2x2 pooled grid before the head (clothes differ by
# where the sleeves and collars are, which a global average blurs), one-pixel shifts and flips, a
# one-cycle schedule. A global-average version with 2-pixel shifts and 10 epochs stopped at 91.8%:
# it underfitted (train accuracy = test accuracy). The digits are 8x8: one-pixel shifts, no flips.
RECIPES: dict[str, Recipe] = {
    "fashion-mnist": Recipe(ClassifierConfig(width=24, depth=2, pool=2, norm="batch", lr=4e-3, weight_decay=5e-4,
                                             shift=1, flip=True), epochs=15),
    "mnist": Recipe(ClassifierConfig(width=24, depth=2, pool=2, norm="batch", lr=4e-3, weight_decay=5e-4, shift=1),
                    epochs=6),
    "digits": Recipe(ClassifierConfig(width=16, depth=2, norm="batch", lr=4e-3, weight_decay=5e-4, shift=1),
                     epochs=60, batch_size=64, threads=1),
}


def command(name: str) -> str:
    return f"python -m course_lib.metrics train-classifier {name}"


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"No evaluation classifier for {name!r}: choose one of {sorted(RECIPES)}.")
    return RECIPES[name]


def manifest(folder: Path = ASSETS) -> dict:
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def train_evaluator(name: str, folder: Path = ASSETS, device: str = "auto", progress: bool = True,
                    epochs: int | None = None) -> dict:
    """Train the evaluation classifier of `name` on its whole training split, measure it on the whole
    test split, write `<name>.safetensors` and its manifest entry into `folder`; return the entry."""
    from safetensors.torch import save

    recipe = _recipe(name)
    dev = pick_device(device)
    seed_everything(recipe.seed)
    train, test = load_data(name, "train", device=dev), load_data(name, "test", device=dev)
    model = Classifier(recipe.config, seed=recipe.seed).to(dev)
    trainer = Trainer(model, train_config=TrainConfig(log_every=50, progress=progress), device=dev)
    batches = train.batches(recipe.batch_size, seed=recipe.seed)
    epochs = epochs or recipe.epochs
    (phase,) = trainer.phases
    schedule = torch.optim.lr_scheduler.OneCycleLR(phase.optimizer, max_lr=recipe.config.lr,
                                                   total_steps=len(batches) * epochs)
    phase.after = schedule.step
    with fixed_threads(recipe.threads if dev.type == "cpu" else None):  # not recounted while it trains
        threads = torch.get_num_threads()
        t0 = time.perf_counter()
        trainer.fit(batches, epochs=epochs)
    seconds = time.perf_counter() - t0
    if trainer.status != "done":
        raise EvaluatorError(f"training {name} stopped ({trainer.status}); nothing was written.")
    accuracy = model.accuracy(test)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = folder / f"{name}.safetensors"
    with atomic_write(path) as f:
        f.write(save(tensors, metadata={"dataset": name, "format": "course_lib.evaluator/1"}))
    entry = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
             "config": config_to_dict(recipe.config), "seed": recipe.seed, "epochs": epochs,
             "batch_size": recipe.batch_size, "train_images": len(train), "test_images": len(test),
             "test_accuracy": round(accuracy, 4), "command": command(name), "train_seconds": round(seconds, 1),
             "device": device_name(dev), "threads": threads if dev.type == "cpu" else None, "torch": torch.__version__,
             "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    record = manifest(folder)
    record[name] = entry
    with atomic_write(folder / MANIFEST, "w", encoding="utf-8") as f:
        f.write(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return entry


_LOADED: dict[tuple[str, str, str], Classifier] = {}


def load_evaluator(name: str, device: str | torch.device = "cpu", folder: Path = ASSETS) -> Classifier:
    """The evaluation classifier of `name`, in eval mode with frozen weights, checked against its sha256."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    _recipe(name)
    device = torch.device(device)
    key = (name, str(device), str(folder))
    if key in _LOADED:
        return _LOADED[key]
    entry = manifest(folder).get(name)
    rebuild = f"Rebuild it with `{command(name)}`"
    if entry is None:
        raise EvaluatorError(f"No evaluation classifier for {name!r} in {folder / MANIFEST}. {rebuild} "
                             f"(minutes on a CPU; it needs the {name} data).")
    path = folder / entry["file"]
    if not path.is_file():
        raise EvaluatorError(f"{path} is missing. {rebuild}, or restore it with `git checkout -- {path.name}` in {folder}.")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise EvaluatorError(f"{path} is corrupt or was changed: its sha256 is {digest[:16]}..., the manifest says "
                             f"{entry['sha256'][:16]}.... {rebuild}, or restore the shipped file with git.")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as e:
        raise EvaluatorError(f"{path} cannot be read as safetensors ({e}). {rebuild}.") from e
    model = Classifier(config_from_dict(ClassifierConfig, entry["config"]), seed=entry.get("seed", 0))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise EvaluatorError(f"{path} does not fit the classifier its manifest describes (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}): the code changed since it was made. {rebuild}.")
    model = model.to(device).eval().requires_grad_(False)
    _LOADED[key] = model
    return model
