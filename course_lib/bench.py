"""`python -m course_lib.bench MODEL --profile P`: the only source of the figures we quote.

Each run prints one JSON object on one line: the model, the profile, the device (with its
name), the versions, the wall-clock seconds and the model's own figures (losses, images/s,
and the metric that model family reports). Add `--out FILE` to append the line to a file.

    python -m course_lib.bench classifier --profile cpu
    python -m course_lib.bench all --profile smoke
    python -m course_lib.bench dcgan --profile cpu --loss all     # one line per GAN loss
    python -m course_lib.bench --list
    python -m course_lib.bench vae --profile gpu --save runs/bench   # and keep the trained weights
    python -m course_lib.bench zoo --entry all --profile gpu         # the shipped models, measured on their files
    python -m course_lib.bench dcgan-ablation --variant all --seed 1 --profile cpu   # lecture 03's ablations

Benchmarks are found by walking `course_lib/recipes/`: a family's recipe lists its own in a
module-level dict `BENCHMARKS = {name: fn}`, fn(course) -> dict of figures. The sample metrics
(`course_lib/metrics.py`), which every model reports with, list theirs the same way.

A benchmark that can be run several ways says so in an attribute `fn.choices = {"loss": (...)}`:
`--loss NAME` runs fn(course, loss=NAME), and `--loss all` runs it once per choice, a line each.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from .runtime import Course, device_name, setup

__all__ = ["find_benchmarks", "run", "main", "read_lines", "OPTIONS", "LINES_FILE"]

Benchmark = Callable[[Course], dict]
RECIPES_PACKAGE = "course_lib.recipes"
METRICS_MODULE = "course_lib.metrics"  # not a model family, but benchmarked like one
OPTIONS = ("loss", "entry", "variant")  # the command-line options a benchmark may take, through `fn.choices`
LINES_FILE = Path(__file__).resolve().parent.parent / "benchmarks.jsonl"  # the repository's record of every figure


def latest_by_seed(lines: list[dict], key: Callable[[dict], object], expected: tuple = (), min_seeds: int = 2,
                   rerun: str = "") -> dict:
    """value -> {seed: line}: the latest line (by date) of each value of key(line) and seed.

    expected: the values to keep, in that order, each required (others are dropped); empty: every value found,
    sorted. Every value needs `min_seeds` seeds, one seed says nothing about it: otherwise a ValueError that
    names what is short and the command `rerun` that adds seeds.
    """
    runs: dict = {value: {} for value in expected}
    for line in sorted(lines, key=lambda line: line["date"]):
        value = key(line)
        if not expected or value in runs:
            runs.setdefault(value, {})[line["seed"]] = line
    short = {value: sorted(seeds) for value, seeds in runs.items() if len(seeds) < min_seeds}
    if not runs or short:
        raise ValueError(f"the bench has fewer than {min_seeds} seeds of {short or 'any value'} (value: seeds found). "
                         f"Run `{rerun}` for more seeds S.")
    return runs if expected else dict(sorted(runs.items()))


def read_lines(model: str, path: str | Path | None = None, **match) -> list[dict]:
    """The lines of `benchmarks.jsonl` (or `path`) of benchmark `model` whose fields equal `match`, oldest first.

        read_lines("dcgan-ablation", profile="cpu", variant="baseline")   # one line per run, each seed's
    """
    path = Path(path) if path is not None else LINES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the bench's record ships with the repository "
                                f"(git checkout -- {path.name}), or run `python -m course_lib.bench {model} --out {path}`.")
    lines = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}, is not JSON ({error}): restore the file from git.") from None
        if line.get("model") == model and all(line.get(k) == v for k, v in match.items()):
            lines.append(line)
    return lines


def find_benchmarks(package: str = RECIPES_PACKAGE, also: tuple[str, ...] | None = None) -> dict[str, Benchmark]:
    """name -> benchmark, from the `BENCHMARKS` dict of every module in `package` (imported now), and of
    the modules in `also` (default: the metrics module when walking the course's recipes)."""
    pkg = importlib.import_module(package)
    if also is None:
        also = (METRICS_MODULE,) if package == RECIPES_PACKAGE else ()
    modules = [f"{package}.{info.name}" for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)]
    found: dict[str, Benchmark] = {}
    for module_name in [*modules, *also]:
        module = importlib.import_module(module_name)
        for name, fn in getattr(module, "BENCHMARKS", {}).items():
            if name in found:
                raise ValueError(f"benchmark {name!r} is defined twice: in {found[name].__module__} and {module.__name__}; "
                                 f"rename one.")
            found[name] = fn
    return found


def describe_benchmarks(benches: dict[str, Benchmark]) -> str:
    """One line per benchmark: its name, the model file it lives in and its docstring's first line."""
    lines = []
    for name, fn in sorted(benches.items()):
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        where = fn.__module__.removeprefix("course_lib.").replace(".", "/") + ".py"
        lines.append(f"{name:15s} {where:22s} {summary}")
        for option, values in getattr(fn, "choices", {}).items():
            lines.append(f"{'':15s} --{option}: {', '.join(values)} or all")
    return "\n".join(lines)


def variants(fn: Benchmark, options: dict[str, str]) -> list[dict[str, str]]:
    """The keyword sets to run `fn` with: one per choice of each option given ('all' expands)."""
    choices = getattr(fn, "choices", {})
    out = [{}]
    for option, value in options.items():
        if option not in choices:
            raise SystemExit(f"The {fn.__module__} benchmark takes no --{option}; its options: "
                             f"{sorted(choices) or 'none'}.")
        allowed = tuple(choices[option])
        if value != "all" and value not in allowed:
            raise SystemExit(f"Unknown --{option} {value!r}. Choose one of {list(allowed)} or 'all'.")
        out = [{**kw, option: v} for kw in out for v in (allowed if value == "all" else (value,))]
    return out


def run(name: str, profile: str | None = None, device: str = "auto", seed: int = 0,
        benches: dict[str, Benchmark] | None = None, save: str | Path | None = None, **options: str) -> dict:
    """Run one benchmark (with `options` among its `choices`) and return its JSON-ready record.

    save: a folder where the benchmark saves the models it trains (`recipes.common.keep_trained`), so the
    weights behind a bench line can be kept (the GPU run brings them back this way)."""
    benches = find_benchmarks() if benches is None else benches
    if name not in benches:
        raise SystemExit(f"Unknown model {name!r}. Choose one of {sorted(benches)} or 'all'.")
    if "all" in options.values():
        raise ValueError("run() runs one variant: expand 'all' with variants() first (the command line does).")
    variants(benches[name], options)  # checks each option against the benchmark's choices
    course = setup(seed=seed, device=device, profile=profile, quiet=True)
    course.keep_dir = None if save is None else Path(save)
    t0 = time.perf_counter()
    figures = benches[name](course, **options)
    return line(name, course, time.perf_counter() - t0, figures)


def line(name: str, course: Course, seconds: float, figures: dict) -> dict:
    """A benchmarks.jsonl line: what ran, where (profile, device and its name, threads, torch), when, how long,
    and the figures. `python -m course_lib.zoo train` writes its entries' lines with it too."""
    record = {
        "model": name,
        "profile": course.profile.name,
        "device": course.device.type,
        "device_name": device_name(course.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seed": course.seed,
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
    p.add_argument("model", nargs="?", help="a benchmark name, or 'all'")
    p.add_argument("--list", action="store_true", help="list the benchmarks found in course_lib/recipes/ and exit")
    p.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $COURSE_PROFILE, else by device)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also append each JSON line to this file")
    p.add_argument("--save", type=Path, default=None, help="also save the models each benchmark trains into this folder")
    p.add_argument("--loss", default=None, help="for benchmarks that take one (see --list): a loss, or 'all'")
    p.add_argument("--entry", default=None, help="for the zoo benchmark: a shipped entry, or 'all'")
    p.add_argument("--variant", default=None, help="for dcgan-ablation: an ablation; for vae-beta: a beta (0.25, 1, 4, 16); or 'all'")
    args = p.parse_args(argv)
    benches = find_benchmarks()
    if args.list:
        print(describe_benchmarks(benches))
        return 0
    if not args.model:
        p.error("name a benchmark, or 'all' (see --list)")
    names = sorted(benches) if args.model == "all" else [args.model]
    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    if args.model == "all":  # each option goes to the benchmarks that take it
        jobs = [(n, kw) for n in names for kw in variants(benches[n], {k: v for k, v in options.items()
                                                                         if k in getattr(benches[n], "choices", {})})]
    else:
        if args.model not in benches:
            raise SystemExit(f"Unknown model {args.model!r}. Choose one of {sorted(benches)} or 'all'.")
        jobs = [(args.model, kw) for kw in variants(benches[args.model], options)]
    for name, kw in jobs:
        line = json.dumps(run(name, args.profile, args.device, args.seed, benches=benches, save=args.save, **kw))
        print(line, flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
