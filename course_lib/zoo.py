"""The model zoo: trained weights that ship with the course, offline and checksummed.

A lecture that draws a conclusion needs a converged model, and a laptop cannot train one in a
lecture's minutes. The zoo holds models trained once, at full size, each with the record of how:

    python -m course_lib.zoo list                       # every entry: size, device, its bench figures
    model = load_pretrained("cgan-fashion-mnist-label")  # the trained process, in eval mode, on the CPU

Files live in `course_lib/assets/zoo/`: `<name>.safetensors` (tensors only: loading one can never
run code; floating-point weights in half precision, checked below) and one entry per model in
`manifest.json`: the model's class, config and seed, its steps, images seen and training seconds,
the device and torch version that trained it, the command, the bench line measured on those
weights, and the file's sha256, checked before a byte is read. A missing, changed or corrupt file
gives an error that names the command that rebuilds it.

Entries come from the bench: `python -m course_lib.bench MODEL --profile gpu --save DIR` (or
`scripts/gpu-bench.sh DIR`, every family in one GPU call) trains, measures and saves each model;
`python -m course_lib.zoo add DIR/bench.jsonl DIR/*.pt` converts them and records their lines.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import sys
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_write, config_from_dict, read_checkpoint, sha256_file

__all__ = ["ZOO", "ZooError", "manifest", "load_pretrained", "add_entry", "entry_figures", "main"]

ZOO = Path(__file__).resolve().parent / "assets" / "zoo"
MANIFEST = "manifest.json"
MODEL_PACKAGE = "course_lib.models."  # the only classes an entry may name


class ZooError(RuntimeError):
    """A zoo entry is unknown, missing, changed or corrupt; the message says how to get it back."""


def manifest(folder: Path = ZOO) -> dict[str, dict]:
    """name -> entry, as `manifest.json` records them ({} when the zoo is empty)."""
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _model_class(name: str) -> type:
    if not name.startswith(MODEL_PACKAGE):
        raise ZooError(f"the manifest names {name!r}; a zoo entry must be a class in {MODEL_PACKAGE}*.")
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls)


def load_pretrained(name: str, device: str | torch.device = "cpu", folder: Path = ZOO) -> nn.Module:
    """The zoo's trained model `name`, rebuilt from its recorded class, config and seed, in eval mode.

        gan = load_pretrained("dcgan-fashion-mnist-hinge")
        x = gan.sample(64)          # (64, 1, 28, 28) in [0, 1]

    The file's sha256 is checked first; floating-point weights come back in float32.
    """
    entries = manifest(folder)
    if name not in entries:
        raise ZooError(f"No zoo entry {name!r}. The zoo has: {', '.join(sorted(entries)) or 'nothing yet'} "
                       f"(python -m course_lib.zoo list).")
    entry = entries[name]
    path = Path(folder) / entry["file"]
    rebuild = f"Rebuild it with: {entry['command']}, then python -m course_lib.zoo add DIR/bench.jsonl DIR/{name}.pt"
    if not path.is_file():
        raise ZooError(f"The zoo file {path} is missing (the manifest lists it). Restore it from the repository "
                       f"(git checkout -- {path.name}), or: {rebuild}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ZooError(f"The zoo file {path} has sha256 {digest[:12]}..., not the manifest's {entry['sha256'][:12]}...: "
                       f"it was changed or damaged. Restore it (git checkout -- {path.name}), or: {rebuild}")
    from safetensors.torch import load_file

    cls = _model_class(entry["model_class"])
    model = cls(config_from_dict(cls.config_class, entry["config"]), seed=entry["seed"])
    own = model.state_dict()
    saved = load_file(str(path))
    if set(saved) != set(own):
        raise ZooError(f"{path} does not fit {cls.__name__} as the code builds it now (missing "
                       f"{sorted(set(own) - set(saved))[:5]}, extra {sorted(set(saved) - set(own))[:5]}): {rebuild}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in saved.items()})
    return model.to(device).eval()


# The figures of a bench line that belong to each model (the cgan and vae benches train two models a line).
HEADLINES = {"cgan-*-label": ("fd", "fd_floor", "class_accuracy", "recall_class_median"),
             "cgan-*-caption": ("attribute_accuracy", "caption_class_accuracy"),
             "vae-*-logistic256": ("test_bpd", "iwae_nats", "fd", "fd_floor"),
             "vae-*-bernoulli": ("binarised_elbo_nats",),
             "pixelcnn-*": ("test_bpd", "fd", "fd_floor"),
             "dcgan-*": ("fd", "fd_floor", "recall", "precision")}


def entry_figures(name: str, entry: dict) -> str:
    """The headline figures of an entry's bench line, for `list`."""
    from fnmatch import fnmatch

    keys = next((k for pattern, k in HEADLINES.items() if fnmatch(name, pattern)), ())
    b = entry.get("bench", {})
    return ", ".join(f"{k} {b[k]}" for k in keys if k in b) + f" (n={b.get('eval_n')})"


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def add_entry(checkpoint: Path, bench_line: dict, folder: Path = ZOO, half: bool = True,
              half_check: dict | None = None) -> dict:
    """Convert a `bench --save` checkpoint to `<name>.safetensors` in the zoo and record it with its bench line."""
    from safetensors.torch import save

    checkpoint = Path(checkpoint)
    name = checkpoint.stem
    state = read_checkpoint(checkpoint)
    weights = _half(state["model"]) if half else {k: v.contiguous() for k, v in state["model"].items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.safetensors"
    with atomic_write(target) as f:
        f.write(save(weights))
    extra = state.get("extra", {})
    options = " --loss " + bench_line["loss"] if "loss" in bench_line else ""
    entry = {
        "file": target.name, "bytes": target.stat().st_size, "sha256": sha256_file(target),
        "dtype": "float16" if half else "float32",
        "model_class": state["model_class"], "config": state["config"], "seed": state.get("seed", 0),
        "steps": state["step"], "images_seen": extra.get("samples_seen"), "train_seconds": extra.get("train_seconds"),
        "profile": bench_line["profile"], "device": bench_line["device_name"], "torch": bench_line["torch"],
        "command": f"python -m course_lib.bench {bench_line['model']} --profile {bench_line['profile']}{options} --save DIR",
        "trained": bench_line["date"],
        "bench": {k: v for k, v in bench_line.items() if k not in ("model", "profile", "device", "device_name", "torch",
                                                                   "seed", "date", "threads")},
        "bench_note": "measured by the bench on the float32 weights in memory, before the half-precision copy",
        "added": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if half_check:
        entry["half_check"] = half_check
    entries = manifest(folder)
    entries[name] = entry
    with atomic_write(folder / MANIFEST, "w", encoding="utf-8") as f:
        f.write(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    return entry


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.zoo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every entry: size, device, steps and its bench figures")
    add = sub.add_parser("add", help="convert `bench --save` checkpoints into zoo entries with their bench lines")
    add.add_argument("bench_jsonl", type=Path)
    add.add_argument("checkpoints", type=Path, nargs="+")
    add.add_argument("--float32", action="store_true", help="keep float32 weights (default: half precision)")
    check = sub.add_parser("verify", help="load every entry (checksums and shapes)")
    check.add_argument("names", nargs="*")
    args = p.parse_args(argv)
    if args.command == "list":
        entries = manifest()
        if not entries:
            print("The zoo is empty.")
        for name, e in sorted(entries.items()):
            print(f"{name:36s} {e['bytes'] / 2**20:5.1f} MiB  {e['device']}, {e['profile']} profile, {e['steps']} steps, "
                  f"torch {e['torch']}: {entry_figures(name, e)}")
        return 0
    if args.command == "verify":
        for name in args.names or sorted(manifest()):
            load_pretrained(name)
            print(f"{name}: ok")
        return 0
    lines = [json.loads(line) for line in args.bench_jsonl.read_text().splitlines() if line.startswith("{")]
    for path in args.checkpoints:
        entry = add_entry(path, match_line(path.stem, lines), half=not args.float32)
        print(f"{path.stem}: {entry['bytes'] / 2**20:.1f} MiB, sha256 {entry['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
