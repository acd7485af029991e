"""Interleaved A/B timing of CPU thread settings, at cpu-profile sizes: how [12]'s default was chosen.

    python scripts/thread_ab.py [--reps 3] [--competitor]

Each arm runs in its own process (OpenMP reads OMP_WAIT_POLICY once, when torch loads), and the arms
alternate rep by rep, so a change in the machine's load hits them alike. An arm times, after a warm-up,
the median of several steps of: a DCGAN training step (batch 128, width 32), a VAE step and a PixelCNN
step (the cpu profile's sizes), and one `evaluate` call on 2,000 images. `--competitor` runs one
single-threaded busy process beside every measurement, as a browser or a second kernel would.

Arms: `1`: setup(threads=1); `auto`: setup()'s default (the free cores, recounted while training, and
course_lib's OpenMP spin cap); `N-passive`: all the cores with OMP_WAIT_POLICY=PASSIVE (threads sleep as soon
as they wait); `N-active`: all the cores with libgomp's default spin (300,000 times before sleeping); `N-spin10k` / `N-spin100k`: all the cores, spinning 10,000 / 100,000 times (GOMP_SPINCOUNT).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# name: (setup's threads, environment). The N arms fix every core and set the OpenMP spin themselves.
ARMS = {"1": ("1", {}), "auto": ("auto", {}),  # "auto": the default, with course_lib's OpenMP settings
        "N-passive": ("N", {"OMP_WAIT_POLICY": "PASSIVE"}), "N-active": ("N", {"GOMP_SPINCOUNT": "300000"}),
        "N-spin10k": ("N", {"GOMP_SPINCOUNT": "10000"}), "N-spin100k": ("N", {"GOMP_SPINCOUNT": "100000"})}


def measure() -> dict:
    """Run inside one arm's process: seconds per step of each workload (median)."""
    from course_lib import setup  # first: it sets OpenMP's environment before torch loads
    import torch
    from course_lib.metrics import evaluate
    from course_lib.models.dcgan import DCGAN
    from course_lib.recipes.dcgan import dcgan_config
    from course_lib.models.pixelcnn import PixelCNN
    from course_lib.recipes.pixelcnn import pixelcnn_config
    from course_lib.models.vae import VAE
    from course_lib.recipes.vae import vae_config
    from course_lib.train import TrainConfig, Trainer

    course = setup(profile="cpu", device="cpu", quiet=True, threads=os.environ["AB_THREADS"])
    data = course.load_data("fashion-mnist", "train", size=2048)
    test = course.load_data("fashion-mnist", "test", size=2000)
    out = {"threads_at_setup": torch.get_num_threads()}

    def steps(model, n: int, warm: int = 2) -> float:
        trainer = Trainer(model, train_config=TrainConfig(log_every=1, progress=False))
        batches = data.batches(128, seed=0, labels=False)
        trainer.fit(batches, steps=warm)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            trainer.fit(batches, steps=1)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    out["dcgan_step_s"] = steps(DCGAN(dcgan_config(course, "fashion-mnist")), 8)
    out["vae_step_s"] = steps(VAE(vae_config(course, "fashion-mnist")), 8)
    out["pixelcnn_step_s"] = steps(PixelCNN(pixelcnn_config(course, "fashion-mnist")), 4, warm=1)
    evaluate(test.images[:50], "fashion-mnist", n=50)  # the classifier loaded once, not timed
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        evaluate(test.images, "fashion-mnist", n=2000)
        times.append(time.perf_counter() - t0)
    out["evaluate_2000_s"] = min(times)
    out["threads_at_end"] = torch.get_num_threads()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--competitor", action="store_true", help="one busy single-threaded process beside each run")
    p.add_argument("--arms", default="1,auto,N-passive,N-active")
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure()))
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    results: dict[str, list[dict]] = {arm: [] for arm in args.arms.split(",")}
    for rep in range(args.reps):
        for arm in results:
            threads, extra = ARMS[arm]
            env = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
            env.update(extra, AB_THREADS=str(cores) if threads == "N" else threads)
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.competitor else None
            try:
                load = os.getloadavg()[0]
                line = subprocess.run([sys.executable, __file__, "--measure"], env=env, check=True,
                                      capture_output=True, text=True).stdout.strip().splitlines()[-1]
            finally:
                if busy:
                    busy.kill()
            r = json.loads(line)
            r["load_before"] = round(load, 2)
            results[arm].append(r)
            print(f"rep {rep} {arm:10s} {json.dumps(r)}", flush=True)
    keys = ("dcgan_step_s", "vae_step_s", "pixelcnn_step_s", "evaluate_2000_s")
    print(f"\nmedian over {args.reps} reps, {'one competing process' if args.competitor else 'no competitor'}, "
          f"{cores} cores (seconds):")
    print(f"{'arm':10s} " + " ".join(f"{k:>16s}" for k in keys))
    for arm, rs in results.items():
        print(f"{arm:10s} " + " ".join(f"{statistics.median(r[k] for r in rs):16.4f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
