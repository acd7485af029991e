"""Lecture 05's beta sweep: the `vae-beta` bench (a tiny smoke run) and `beta_runs`, which the lecture reads."""
import math

import pytest

from course_lib import bench
from course_lib.recipes.vae import BETAS, beta_runs, bench_vae_beta


def test_vae_beta_bench_smoke_run_records_rate_distortion_and_per_dim_kl(real_data):
    '''One smoke run: the line's ELBO is -(D + R), its objective -(D + beta R), the per-dim KLs add up to R,
    and the held-out curve ends at the last step.'''
    assert bench.find_benchmarks()["vae-beta"] is bench_vae_beta
    assert bench_vae_beta.choices == {"variant": BETAS} and "1" in BETAS
    line = bench.run("vae-beta", profile="smoke", device="cpu", seed=1, variant="4")
    assert line["model"] == "vae-beta" and line["seed"] == 1 and line["beta"] == 4.0 and line["variant"] == "4"
    assert line["train_status"] == "done" and line["steps"] == 20 and line["train_images"] == 60_000
    d, r = line["distortion_nats"], line["rate_nats"]
    assert d > 0 and r >= 0 and len(line["kl_per_dim"]) == line["z_dim"] == 16
    assert math.isclose(line["elbo_nats"], -(d + r), abs_tol=0.01)
    assert math.isclose(line["objective_nats"], -(d + 4 * r), abs_tol=0.01)
    assert line["objective_nats"] <= line["elbo_nats"], "with beta >= 1 the objective is below the ELBO"
    assert math.isclose(sum(line["kl_per_dim"]), r, abs_tol=0.01)
    assert line["active_dims"] == sum(v > 0.01 for v in line["kl_per_dim"])
    assert line["curve"][-1][0] == 20 and all(len(point) == 3 for point in line["curve"])
    assert line["eval_n"] == 256 and math.isclose(line["bpd"], d / 784 / math.log(2) + r / 784 / math.log(2), abs_tol=1e-3)


def test_beta_runs_keep_the_latest_line_of_each_seed_and_need_two_seeds():
    def line(beta, seed, date, d):
        return {"model": "vae-beta", "beta": beta, "seed": seed, "date": date, "distortion_nats": d}

    lines = [line(b, s, f"2026-01-0{s + 1}", 1.0) for b in (4.0, 0.25, 1.0) for s in (0, 1)]
    lines.append(line(1.0, 0, "2025-12-31", 9.0))  # older: the run on 2026-01-01 wins
    lines.append(line(4.0, 1, "2026-02-01", 5.0))  # newer: it replaces seed 1's line
    runs = beta_runs(lines)
    assert list(runs) == [0.25, 1.0, 4.0] and all(sorted(seeds) == [0, 1] for seeds in runs.values())
    assert runs[1.0][0]["distortion_nats"] == 1.0 and runs[4.0][1]["distortion_nats"] == 5.0
    with pytest.raises(ValueError, match="fewer than 2 seeds.*--seed"):
        beta_runs([x for x in lines if not (x["beta"] == 0.25 and x["seed"] == 1)])
    with pytest.raises(ValueError, match="fewer than 2 seeds"):
        beta_runs([])
