"""python -m course_lib.zoo list | train NAME|all | measure | install DIR | verify | add: the zoo's command line.

    python -m course_lib.zoo list
    python -m course_lib.zoo train vae-fashion-mnist-2d --device cpu          # into the course's zoo
    python -m course_lib.zoo train all --device cuda --out OUT --jobs 10       # the GPU run (make zoo-gpu)
    python -m course_lib.zoo install OUT                                        # bring OUT's entries in
    python -m course_lib.zoo measure all --device cpu --lines benchmarks.jsonl  # figures on the shipped files
    python -m course_lib.zoo verify                                             # every file: checksum, shapes
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .registry import RUNS
from .store import ZOO, ZooError, add_entry, entry_figures, install, load_pretrained, manifest, match_line


def _list() -> int:
    entries = manifest()
    for name in RUNS:
        if name not in entries:
            print(f"{name:36s}   --    not shipped yet: {RUNS[name].command('cuda')}")
    for name, e in sorted(entries.items()):
        print(f"{name:36s} {e['bytes'] / 2**20:5.1f} MiB  {e['device']}, {e['profile']} profile, {e['steps']} steps "
              f"({e.get('train_seconds') or 0:.0f} s), torch {e['torch']}: {entry_figures(name, e)}")
    total = sum(e["bytes"] for e in entries.values())
    print(f"{len(entries)} entries, {total / 2**20:.1f} MiB")
    return 0


def _train_one(name: str, args) -> None:
    from ..recipes.zoo import train_entry

    if args.out == ZOO and not args.replace:
        old = manifest().get(name)
        if old and old.get("device_type", "cuda") == "cuda" and not args.device.startswith("cuda"):
            raise SystemExit(f"{name} ships trained on {old['device']}; a {args.device} run would replace it with a "
                             f"shorter one. Train into another folder (--out DIR), or pass --replace.")
    entry = train_entry(name, device=args.device, out=args.out, profile=args.profile, steps=args.steps)
    _bench_line(entry, args)
    print(f"{name}: {entry['steps']} steps in {entry['train_seconds']:.0f} s on {entry['device']} "
          f"({entry['train_status']}), {entry['dtype']}, {entry['bytes'] / 2**20:.1f} MiB: {entry_figures(name, entry)}",
          flush=True)


def _bench_line(entry: dict, args) -> None:
    """Append the entry's figures, as a benchmarks.jsonl line (model 'zoo'), to OUT/bench.jsonl."""
    import json

    from ..bench import line
    from ..runtime import setup

    course = setup(seed=entry["seed"], device=args.device, profile=entry["profile"], quiet=True)
    figures = {**entry["figures"], "steps": entry["steps"], "train_seconds": entry["train_seconds"],
               "images_per_second": round(entry["images_seen"] / max(entry["train_seconds"], 1e-9), 1),
               "train_status": entry["train_status"], "dtype": entry["dtype"], "sha256": entry["sha256"][:12]}
    with open(Path(args.out) / "bench.jsonl", "a") as f:
        f.write(json.dumps(line("zoo", course, entry["wall_seconds"], figures)) + "\n")


def _measure(names: list[str], args) -> int:
    """Measure shipped entries on their files again (`bench zoo`'s figures) and record them in the manifest."""
    import datetime as dt
    import json
    import time

    from ..bench import line
    from ..recipes.zoo import measure, quick_check
    from ..runtime import device_name, setup
    from .store import update_entry

    for name in names:
        entry = manifest(args.folder)[name]
        course = setup(seed=entry["seed"], device=args.device, profile=args.profile or entry["profile"], quiet=True)
        t0 = time.perf_counter()
        model = load_pretrained(name, device=course.device, folder=args.folder)
        figures = measure(name, model, course)
        check = quick_check(name, model)
        update_entry(args.folder, name, figures=figures, check=check, measured={
            "device": device_name(course.device), "torch": __import__("torch").__version__,
            "profile": course.profile.name, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": f"python -m course_lib.zoo measure {name} --device {course.device.type}"})
        bench = line("zoo", course, time.perf_counter() - t0, {**figures, "steps": entry["steps"],
                                                                "trained_on": entry["device"], "sha256": entry["sha256"][:12]})
        print(json.dumps(bench), flush=True)
        if args.lines:
            with open(args.lines, "a") as f:
                f.write(json.dumps(bench) + "\n")
    return 0


def _train_parallel(names: list[str], args) -> int:
    """One process per entry (each launch-bound at these sizes, so they share one GPU well), `jobs` at a time;
    after `time_limit` seconds a run gets SIGINT, stops where it is, and is saved marked 'interrupted'."""
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    start, waiting, running, failed = time.time(), list(names), {}, []
    while waiting or running:
        while waiting and len(running) < args.jobs:
            name = waiting.pop(0)
            cmd = [sys.executable, "-m", "course_lib.zoo", "train", name, "--device", args.device,
                   "--out", str(args.out / name), "--jobs", "1",
                   *(["--profile", args.profile] if args.profile else []),
                   *(["--steps", str(args.steps)] if args.steps else [])]
            log = open(logs / f"{name}.log", "w")
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ), log, time.time())
        time.sleep(1)
        for name, (proc, log, began) in list(running.items()):
            if args.time_limit and time.time() - began > args.time_limit and proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # the loop stops at this step; the entry is saved, marked
                running[name] = (proc, log, float("inf"))
            if proc.poll() is not None:
                log.close()
                del running[name]
                print(f"{name}: exit {proc.returncode} after {time.time() - start:.0f} s", flush=True)
                if proc.returncode:
                    failed.append(name)
    print(f"zoo train: {len(names) - len(failed)} of {len(names)} entries in {time.time() - start:.0f} s"
          + (f"; failed: {failed} (see {logs})" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.zoo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every entry: size, device, steps and its figures")
    train = sub.add_parser("train", help="train registry entries, save them and measure the saved files")
    train.add_argument("names", nargs="+", help=f"entries, or all: {', '.join(RUNS)}")
    train.add_argument("--device", default="auto", help="cuda or cpu (default: cuda if present)")
    train.add_argument("--out", type=Path, default=ZOO, help="the zoo folder to write (default: the course's)")
    train.add_argument("--jobs", type=int, default=1, help="entries trained at once, one process each")
    train.add_argument("--time-limit", type=float, default=0, help="with --jobs: seconds before a run is stopped")
    train.add_argument("--profile", default=None, help="sizes to build and measure at (default the entry's: gpu)")
    train.add_argument("--steps", type=int, default=None, help="a shorter run (a test), instead of the entry's epochs")
    train.add_argument("--replace", action="store_true", help="let a CPU run replace a GPU-trained shipped entry")
    meas = sub.add_parser("measure", help="measure shipped entries on their files and record the figures")
    meas.add_argument("names", nargs="+", help="entries, or all")
    meas.add_argument("--device", default="auto")
    meas.add_argument("--profile", default=None, help="the sizes to measure at (default the entry's: gpu, n = 10,000)")
    meas.add_argument("--folder", type=Path, default=ZOO, help="the zoo folder (default: the course's)")
    meas.add_argument("--lines", type=Path, default=None, help="also append each bench line to this file")
    inst = sub.add_parser("install", help="copy entries that `train --out DIR` wrote into the course's zoo")
    inst.add_argument("folder", type=Path)
    inst.add_argument("names", nargs="*")
    check = sub.add_parser("verify", help="load every entry (checksums and shapes)")
    check.add_argument("names", nargs="*")
    add = sub.add_parser("add", help="convert `bench --save` checkpoints into entries with their bench lines")
    add.add_argument("bench_jsonl", type=Path)
    add.add_argument("checkpoints", type=Path, nargs="+")
    add.add_argument("--float32", action="store_true", help="keep float32 weights (default: half precision)")
    args = p.parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "train":
            names = list(RUNS) if args.names == ["all"] else args.names
            unknown = sorted(set(names) - set(RUNS))
            if unknown:
                raise SystemExit(f"No zoo entry {unknown} in the registry. Choose from: {', '.join(RUNS)}, or all.")
            if args.device == "auto":
                import torch

                args.device = "cuda" if torch.cuda.is_available() else "cpu"
            if args.jobs > 1 and len(names) > 1:
                return _train_parallel(names, args)
            for name in names:
                _train_one(name, args)
            return 0
        if args.command == "measure":
            return _measure(sorted(manifest(args.folder)) if args.names == ["all"] else args.names, args)
        if args.command == "install":
            for name in install(args.folder, args.names or None):
                print(f"{name}: installed ({entry_figures(name, manifest()[name])})")
            return 0
        if args.command == "verify":
            for name in args.names or sorted(manifest()):
                load_pretrained(name)
                print(f"{name}: ok")
            return 0
        lines = [__import__("json").loads(line) for line in args.bench_jsonl.read_text().splitlines()
                 if line.startswith("{")]
        for path in args.checkpoints:
            entry = add_entry(path, match_line(path.stem, lines), half_precision=not args.float32)
            print(f"{path.stem}: {entry['bytes'] / 2**20:.1f} MiB, sha256 {entry['sha256'][:12]}")
        return 0
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
