"""The zoo's store: the shipped files, their manifest, and loading an entry with its checks.

Files live in `course_lib/assets/zoo/`: `<name>.safetensors` (tensors only: loading one can never run
code; floating-point weights in half precision where that changes no figure measurably, else float32)
and one record per model in `manifest.json`: class, config, seed, data, steps, images seen, training
seconds and status, the device and torch version that trained it, the command that trains it again,
the loss curves, the file's sha256 (checked before a byte is read), and the figures the bench measured
on the saved file. A missing, changed or corrupt file gives an error that names the command that
rebuilds it.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import atomic_write, config_from_dict, config_to_dict, read_checkpoint, sha256_file
from .registry import RUNS

__all__ = ["ZOO", "ZooError", "manifest", "load_pretrained", "load_weights", "entry_config", "write_entry",
           "update_entry", "install", "add_entry", "match_line", "entry_figures", "rebuild_command", "half",
           "utc_now"]

ZOO = Path(__file__).resolve().parent.parent / "assets" / "zoo"
MANIFEST = "manifest.json"
MODEL_PACKAGE = "course_lib.models."  # the only classes an entry may name


def utc_now() -> str:
    """The time a record is written, as the manifest and the bench lines give it (UTC, seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ZooError(RuntimeError):
    """A zoo entry is unknown, missing, changed or corrupt; the message says how to get it back."""


def manifest(folder: Path = ZOO) -> dict[str, dict]:
    """name -> entry, as `manifest.json` records them ({} when the zoo is empty)."""
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_manifest(entries: dict, folder: Path) -> None:
    with atomic_write(Path(folder) / MANIFEST, "w", encoding="utf-8") as f:
        f.write(json.dumps(entries, indent=1, sort_keys=True) + "\n")


def _model_class(name: str) -> type:
    if not name.startswith(MODEL_PACKAGE):
        raise ZooError(f"the manifest names {name!r}; a zoo entry must be a class in {MODEL_PACKAGE}*.")
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls)


def rebuild_command(name: str, entry: dict | None = None) -> str:
    """How to make entry `name` again: its registry command, else the command its manifest records."""
    if name in RUNS:
        device = (entry or {}).get("device_type", "cuda")
        return f"{RUNS[name].command(device)} --out DIR, then python -m course_lib.zoo install DIR"
    return (entry or {}).get("command", "(no command recorded)")


def _entry(name: str, folder: Path) -> dict:
    entries = manifest(folder)
    if name not in entries:
        raise ZooError(f"No zoo entry {name!r}. The zoo has: {', '.join(sorted(entries)) or 'nothing yet'} "
                       f"(python -m course_lib.zoo list).")
    return entries[name]


def entry_config(name: str, folder: Path = ZOO) -> Any:
    """The config entry `name` was trained with, as its class's config dataclass (to build the same model)."""
    entry = _entry(name, folder)
    cls = _model_class(entry["model_class"])
    return config_from_dict(cls.config_class, entry["config"])


def _checked_weights(name: str, entry: dict, folder: Path) -> dict[str, torch.Tensor]:
    path = Path(folder) / entry["file"]
    rebuild = f"Rebuild it with: {rebuild_command(name, entry)}"
    if not path.is_file():
        raise ZooError(f"The zoo file {path} is missing (the manifest lists it). Restore it from the repository "
                       f"(git checkout -- {path.name}), or: {rebuild}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ZooError(f"The zoo file {path} has sha256 {digest[:12]}..., not the manifest's {entry['sha256'][:12]}...: "
                       f"it was changed or damaged. Restore it (git checkout -- {path.name}), or: {rebuild}")
    from safetensors.torch import load_file

    return load_file(str(path))


def _fill(model: nn.Module, saved: dict[str, torch.Tensor], name: str, entry: dict) -> None:
    own = model.state_dict()
    if set(saved) != set(own):
        raise ZooError(f"The zoo file of {name} does not fit {type(model).__name__} as the code builds it now (missing "
                       f"{sorted(set(own) - set(saved))[:5]}, extra {sorted(set(saved) - set(own))[:5]}). "
                       f"Rebuild it with: {rebuild_command(name, entry)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in saved.items()})


def load_pretrained(name: str, device: str | torch.device = "cpu", folder: Path = ZOO) -> nn.Module:
    """The zoo's trained model `name`, rebuilt from its recorded class, config and seed, in eval mode.

        gan = load_pretrained("dcgan-fashion-mnist-hinge")
        x = gan.sample(64)          # (64, 1, 28, 28) in [0, 1]

    The file's sha256 is checked first; floating-point weights come back in float32.
    """
    entry = _entry(name, folder)
    saved = _checked_weights(name, entry, folder)
    cls = _model_class(entry["model_class"])
    model = cls(config_from_dict(cls.config_class, entry["config"]), seed=entry["seed"])
    _fill(model, saved, name, entry)
    return model.to(device).eval()


def load_weights(model: nn.Module, name: str, folder: Path = ZOO) -> dict:
    """Put zoo entry `name`'s weights into `model`, which must be the class and config it was trained with.

    Returns the manifest entry. A model of another class or config is refused with the differences and
    the way to build the right one (`entry_config(name)`, or `load_pretrained(name)`).
    """
    entry = _entry(name, folder)
    cls_name = f"{type(model).__module__}.{type(model).__qualname__}"
    if cls_name != entry["model_class"]:
        raise ZooError(f"zoo entry {name!r} is a {entry['model_class']}, not a {cls_name}: use load_pretrained({name!r}).")
    from ..checkpoint import config_diff

    diff = config_diff(entry["config"], config_to_dict(model.config))
    if diff:
        raise ZooError(f"zoo entry {name!r} was trained with another config than this model's:\n  "
                       + "\n  ".join(d.replace("checkpoint", "zoo") for d in diff)
                       + f"\nBuild the model with its config: {cls_name.rsplit('.', 1)[1]}(entry_config({name!r})), "
                         f"or take load_pretrained({name!r}).")
    _fill(model, _checked_weights(name, entry, folder), name, entry)
    return entry


def write_entry(folder: Path, name: str, weights: dict[str, torch.Tensor], record: dict) -> dict:
    """Save `weights` as `folder/<name>.safetensors` and record `record` (plus file, bytes, sha256) in its manifest."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.safetensors"
    with atomic_write(target) as f:
        f.write(save({k: v.detach().cpu().contiguous() for k, v in weights.items()}))
    entry = {**record, "file": target.name, "bytes": target.stat().st_size, "sha256": sha256_file(target)}
    entries = manifest(folder)
    entries[name] = entry
    _write_manifest(entries, folder)
    return entry


def update_entry(folder: Path, name: str, **changes: Any) -> dict:
    """Add or replace fields of entry `name`'s record (e.g. the figures measured on its file)."""
    entries = manifest(folder)
    entries[name] = {**_entry(name, folder), **changes}
    _write_manifest(entries, folder)
    return entries[name]


def install(source: Path, names: list[str] | None = None, folder: Path = ZOO) -> list[str]:
    """Copy entries (default: all) from a zoo folder that `zoo train --out` wrote into the course's zoo,
    each file checked against its record first. A folder of per-entry folders (the parallel GPU run) works too."""
    source = Path(source)
    found = {n: (source, e) for n, e in manifest(source).items()}
    for sub in sorted(p for p in source.iterdir() if p.is_dir()) if source.is_dir() else ():
        found.update({n: (sub, e) for n, e in manifest(sub).items()})
    if not found:
        raise ZooError(f"{source} holds no zoo manifest ({MANIFEST}): give the folder `zoo train --out` wrote.")
    unknown = sorted(set(names or ()) - set(found))
    if unknown:
        raise ZooError(f"{source} has no entry {unknown}; it has {sorted(found)}.")
    entries = manifest(folder)
    Path(folder).mkdir(parents=True, exist_ok=True)
    done = []
    for name in names or sorted(found):
        where, entry = found[name]
        if sha256_file(where / entry["file"]) != entry["sha256"]:
            raise ZooError(f"{where / entry['file']} does not match its record's sha256: it was damaged on the way.")
        shutil.copyfile(where / entry["file"], Path(folder) / entry["file"])
        entries[name] = {**entry, "installed": utc_now()}
        done.append(name)
    _write_manifest(entries, folder)
    return done


# The headline figures of each kind of entry (the cgan and vae bench lines cover two models each).
HEADLINES = {"cgan-*-label": ("fd", "fd_floor", "class_accuracy", "recall_class_median"),
             "cgan-*-caption": ("attribute_accuracy", "caption_class_accuracy", "z_spread_ratio_worst"),
             "vae-*-2d": ("test_bpd", "grid_classes", "posterior_in_box"),
             "vae-*-logistic256": ("test_bpd", "iwae_bpd", "iwae_n", "fd", "fd_floor", "fd_n"),
             "vae-*-bernoulli": ("binarised_elbo_nats",),
             "pixelcnn-*": ("test_bpd", "bpd_n", "fd", "fd_floor", "fd_n"),
             "dcgan-*": ("fd", "fd_floor", "recall", "precision"),
             "vqvae-*-prior": ("bits_per_code", "bits_per_image", "uniform_bits_per_image"),  # before vqvae-*: first match
             "vqvae-*": ("test_mse", "perplexity", "dead_codes", "bits_per_image", "fd", "fd_floor", "fd_n",
                         "speedup_vs_pixelcnn")}


def entry_figures(name: str, entry: dict) -> str:
    """The headline figures of an entry, for `list`: those measured on the saved file where it has them
    ('figures'), else those of the bench line that trained it ('bench', measured before saving)."""
    from fnmatch import fnmatch

    keys = next((k for pattern, k in HEADLINES.items() if fnmatch(name, pattern)), ())
    b = entry.get("figures") or entry.get("bench", {})
    where = "on the file" if entry.get("figures") else "before saving"
    return ", ".join(f"{k} {b[k]}" for k in keys if k in b) + f" (n={b.get('eval_n')}, {where})"


def half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state with floating-point tensors in half precision (the zoo's files, where that changes nothing)."""
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def add_entry(checkpoint: Path, bench_line: dict, folder: Path = ZOO, half_precision: bool = True,
              half_check: dict | None = None) -> dict:
    """Convert a `bench --save` checkpoint to `<name>.safetensors` in the zoo and record it with its bench line
    (how the first entries came in; `zoo train` is the way now)."""
    checkpoint = Path(checkpoint)
    state = read_checkpoint(checkpoint)
    extra = state.get("extra", {})
    options = " --loss " + bench_line["loss"] if "loss" in bench_line else ""
    record = {
        "dtype": "float16" if half_precision else "float32",
        "model_class": state["model_class"], "config": state["config"], "seed": state.get("seed", 0),
        "steps": state["step"], "images_seen": extra.get("samples_seen"), "train_seconds": extra.get("train_seconds"),
        "profile": bench_line["profile"], "device": bench_line["device_name"], "device_type": bench_line["device"],
        "torch": bench_line["torch"],
        "command": f"python -m course_lib.bench {bench_line['model']} --profile {bench_line['profile']}{options} --save DIR",
        "trained": bench_line["date"],
        "bench": {k: v for k, v in bench_line.items() if k not in ("model", "profile", "device", "device_name", "torch",
                                                                   "seed", "date", "threads")},
        "bench_note": "measured by the bench on the float32 weights in memory, before the half-precision copy",
        "added": utc_now(),
        **({"half_check": half_check} if half_check else {}),
    }
    weights = half(state["model"]) if half_precision else state["model"]
    return write_entry(folder, checkpoint.stem, weights, record)


def match_line(name: str, lines: list[dict]) -> dict:
    """The bench line a `bench --save` checkpoint came from: its file is named `<bench>-<dataset>-<variant>`."""
    for line in lines:
        model, dataset = line["model"].removesuffix("-digits"), line.get("dataset", "")
        if not name.startswith(f"{model}-{dataset}-"):
            continue
        if model in ("dcgan", "pixelcnn") and not name.endswith("-" + (line.get("loss") or line.get("variant"))):
            continue  # one line per loss / variant; cgan and vae lines cover both of their models
        return line
    raise ZooError(f"no bench line for {name}: give the bench.jsonl that the same `bench --save` run wrote.")
