"""`python -m course_lib.bench MODEL --profile P`: the only source of the figures we quote.

Each run prints one JSON object on one line: the model, the profile, the device (with its
name), the versions, the wall-clock seconds and the model's own figures (losses, images/s,
and the metric that model family reports). Add `--out FILE` to append the line to a file.

    python -m course_lib.bench classifier --profile cpu
    python -m course_lib.bench all --profile smoke
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from .runtime import Course, setup

__all__ = ["BENCHES", "benchmark", "run", "main"]

# name -> function(course) -> dict of figures. Each model module registers its own with
# @benchmark("name"); the modules are imported lazily by `_load_all`.
BENCHES: dict[str, Callable[[Course], dict]] = {}
MODULES = ("course_lib.classifier", "course_lib.toy_gan")


def benchmark(name: str):
    def deco(fn: Callable[[Course], dict]) -> Callable[[Course], dict]:
        BENCHES[name] = fn
        return fn
    return deco


def _load_all() -> None:
    import importlib

    for mod in MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # a real missing dependency, not a module that does not exist yet
                raise


def device_name(dev: torch.device) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo where there is one."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(name: str, profile: str | None = None, device: str = "auto", seed: int = 0) -> dict:
    """Run one benchmark and return its JSON-ready record."""
    _load_all()
    if name not in BENCHES:
        raise SystemExit(f"Unknown model {name!r}. Choose one of {sorted(BENCHES)} or 'all'.")
    course = setup(seed=seed, device=device, profile=profile, quiet=True)
    dev = course.device
    t0 = time.perf_counter()
    figures = BENCHES[name](course)
    seconds = time.perf_counter() - t0
    record = {
        "model": name,
        "profile": course.profile.name,
        "device": dev.type,
        "device_name": device_name(dev),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seed": seed,
        "seconds": round(seconds, 3),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    clash = sorted(set(figures) & set(record))
    if clash:
        raise ValueError(f"benchmark {name!r} returned {clash}, which the record sets itself; rename those figures.")
    return {**record, **figures}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model name, or 'all'")
    p.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $COURSE_PROFILE, else by device)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also append each JSON line to this file")
    args = p.parse_args(argv)
    _load_all()
    names = sorted(BENCHES) if args.model == "all" else [args.model]
    for name in names:
        line = json.dumps(run(name, args.profile, args.device, args.seed))
        print(line, flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    # Run through the importable module: model modules register into *its* BENCHES, not __main__'s.
    from course_lib.bench import main as _main

    sys.exit(_main())
