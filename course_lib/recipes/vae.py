"""The VAE's recipe (lecture 05): the course's config per dataset and profile, the training driver,
held-out evaluation (ELBO, IWAE, bits/dim, active dimensions) and the bench.

    vae = VAE(vae_config(course, "fashion-mnist"), seed=course.seed)
    run = train_vae(course, vae, course.load_data("fashion-mnist"), checkpoint="runs/vae.pt")
    evaluate_vae(vae, course.load_data("fashion-mnist", "test").images, k=iwae_k(course.profile))
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..bench import latest_by_seed
from ..data import DATASETS, ImageData
from ..metrics import evaluate
from ..models.likelihoods import _normal, binarize
from ..models.vae import VAE, VAEConfig
from ..train import TrainConfig
from .common import Run, eval_size, keep_trained, quiet, sample_figures, train_with_snapshots, training_figures

__all__ = ["vae_config", "train_vae", "iwae_k", "evaluate_vae", "beta_runs", "BETAS", "BETA_STEPS", "BENCHMARKS"]


def vae_config(course, dataset: str = "fashion-mnist", **changes) -> VAEConfig:
    """The course's VAEConfig for a dataset: the image size from the dataset, the width from the profile."""
    width = course.profile.width
    # Adam at 3e-3 sends the 256-level loss to NaN within 10 steps at width 64 (the gpu profile; seen on
    # the H200 and reproduced on a CPU); 1e-3 trains there. The narrower profiles keep 3e-3.
    lr = 3e-3 if width <= 32 else 1e-3
    return VAEConfig(**{"image_size": DATASETS[dataset].image_size, "width": width, "lr": lr, **changes})


# -- training ---------------------------------------------------------------------------------------------------
def train_vae(course, vae: VAE, data: ImageData, steps: int | None = None, epochs: int | None = None,
              checkpoint: str | Path | None = None, snapshots: int = 4, n_show: int | None = None,
              train_config: TrainConfig | None = None, callback=None, retrain: bool = False,
              zoo: str | None = None) -> Run:
    """Train `vae` on `data` in the shared loop; keep fixed-noise samples and reconstructions `snapshots` times.

    epochs: default the profile's (when steps is not given), and at least the profile's `min_steps`
    steps; batch size: the profile's. With a `checkpoint`, `load_or_train` loads a finished run
    instead of training; with `zoo=NAME` the course's converged model is loaded (the model built with
    `entry_config(NAME)`). `callback(trainer)` also runs at every snapshot. Snapshots: (step, prior
    samples (n, C, S, S), reconstructions of n fixed training images), all in [0, 1].
    """
    vae.to(course.device)
    n = min(n_show or course.profile.n_show, len(data))
    fixed_z = _normal((n, vae.config.z_dim), course.generator(2), vae.device)  # the same noise every time
    fixed_x = data.images[:n].to(vae.device)  # the same training images every time
    if vae.config.binarize:
        fixed_x = binarize(fixed_x, course.generator(3, device=vae.device))
    batches = data.to(course.device).batches(min(course.profile.batch_size, len(data)), seed=course.seed, labels=False)
    return train_with_snapshots(
        course, vae, batches, lambda: (vae.decode(fixed_z).float().cpu(), vae.reconstruct(fixed_x).float().cpu()),
        steps=steps, epochs=epochs, checkpoint=checkpoint, snapshots=snapshots, train_config=train_config,
        callback=callback, retrain=retrain, zoo=zoo)


# -- evaluation and the bench -------------------------------------------------------------------------------------
def iwae_k(profile) -> int:
    """Importance samples for the IWAE bound: the profile's Monte Carlo budget spread over its test images."""
    return max(1, profile.mc_samples // profile.eval_size)


@torch.no_grad()
def evaluate_vae(vae: VAE, images: torch.Tensor, k: int = 64, batch_size: int = 250,
                 generator: torch.Generator | None = None) -> dict:
    """Means over `images` (in nats per image): elbo, reconstruction, kl, iwae (with k), and bpd for 256 levels.

    active_dims counts latent dimensions with mean KL > 0.01 nats (the rest collapsed to the prior).
    Binarise images first for a Bernoulli VAE.
    """
    vae.eval()
    images = images.to(vae.device)
    generator = generator or torch.Generator(device=vae.device).manual_seed(0)
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        terms = vae.elbo(x, generator)
        terms["iwae"] = vae.iwae_bound(x, k, generator)
        for key, v in terms.items():
            sums[key] = sums.get(key, 0) + v.double().sum(0)
    means = {key: v / len(images) for key, v in sums.items()}
    out = {key: float(means[key]) for key in ("elbo", "reconstruction", "kl", "iwae")}
    out.update(k=k, n=len(images), active_dims=int((means["kl_per_dim"] > 0.01).sum()),
               kl_per_dim=means["kl_per_dim"].tolist())
    if vae.likelihood.levels == 256:
        out["bpd"] = -out["elbo"] / (vae.pixels * math.log(2))
    return out


def bench_vae(course, dataset: str = "fashion-mnist") -> dict:
    """VAE on Fashion-MNIST: test ELBO, bits/dim, IWAE, binarised-data ELBO, FD/precision/recall of samples, images/s.

    Two models train the same steps: a 256-level (discretised logistic) VAE, whose held-out ELBO,
    IWAE bound and bits/dim are reported along with FD, precision and recall of its prior samples
    (decoder means), and a Bernoulli VAE on dynamically binarised data, whose held-out ELBO on
    once-binarised test images is `binarised_elbo_nats`. ELBO and IWAE figures are log-likelihood
    bounds per image, in nats: negative, higher is better; test_bpd = -test_elbo_nats / (D ln 2).
    """
    train, test = course.load_data(dataset, "train"), course.load_data(dataset, "test")
    n = eval_size(course, dataset)
    k = iwae_k(course.profile)
    out: dict = {"dataset": dataset, "train_images": len(train), "test_images": len(test)}
    vae = VAE(vae_config(course, dataset), seed=course.seed)
    run = train_vae(course, vae, train, snapshots=0, train_config=quiet())
    keep_trained(course, vae, f"vae-{dataset}-logistic256", run.trainer)
    figures = evaluate_vae(vae, test.images, k=k, generator=course.generator(4, device=course.device))
    samples = evaluate(vae.sample(n, generator=course.generator(3, device=course.device)), dataset,
                       train=train, profile=course.profile, n=n)
    binary = VAE(vae_config(course, dataset, likelihood="bernoulli"), seed=course.seed)
    binary_run = train_vae(course, binary, train, snapshots=0, train_config=quiet())
    keep_trained(course, binary, f"vae-{dataset}-bernoulli", binary_run.trainer)
    binary_test = binarize(test.images.to(course.device), course.generator(5, device=course.device))
    binary_figures = evaluate_vae(binary, binary_test, k=1, generator=course.generator(4, device=course.device))
    trainer = run.trainer
    c = vae.config
    out.update({"likelihood": c.likelihood, "z_dim": c.z_dim, "width": c.width,
                "batch_size": min(course.profile.batch_size, len(train)), **training_figures(trainer),
                "train_loss": round(run.history["loss"][-1], 3),
                "test_elbo_nats": round(figures["elbo"], 3), "test_bpd": round(figures["bpd"], 4),
                "test_reconstruction_nats": round(figures["reconstruction"], 3), "test_kl_nats": round(figures["kl"], 3),
                "iwae_nats": round(figures["iwae"], 3), "iwae_k": k, "active_dims": figures["active_dims"],
                "binarised_elbo_nats": round(binary_figures["elbo"], 3),
                "binarised_train_seconds": round(binary_run.trainer.seconds, 3)})
    return {**out, **sample_figures(samples)}


def bench_vae_digits(course) -> dict:
    """VAE on 8x8 digits (seconds on a CPU): the same figures as `vae`, on the digits evaluator."""
    return bench_vae(course, "digits")


# Lecture 05's beta sweep: the 256-level VAE trained at one beta on the whole training split, long enough for
# the held-out rate and distortion to settle (the line keeps their curve, so that can be checked), with
# several seeds (`--seed`): one seed of a short run says nothing about beta.
BETAS = ("0.25", "1", "4", "16")
BETA_STEPS = {"smoke": 20, "cpu": 6000, "gpu": 6000}  # cpu: 6,000 batches of 128, about 13 passes over 60,000 images
BETA_CURVE_POINTS = 6  # held-out (step, distortion, rate) this many times during the run
BETA_CURVE_N = 500  # test images for each curve point (the final figures use the profile's eval_size)


def beta_runs(lines: list[dict], min_seeds: int = 2) -> dict[float, dict[int, dict]]:
    """beta -> {seed: line}, from `vae-beta` bench lines (the latest line of each beta and seed), betas in
    increasing order. Every beta found needs `min_seeds` seeds: one seed says nothing about beta."""
    return latest_by_seed(lines, lambda line: float(line["beta"]), (), min_seeds,
                          "python -m course_lib.bench vae-beta --variant B --seed S --out benchmarks.jsonl")


def bench_vae_beta(course, variant: str = "1", dataset: str = "fashion-mnist", steps: int | None = None) -> dict:
    """A beta-VAE (lecture 05): the 256-level VAE trained on D + beta R; held-out distortion D, rate R, per-dim KL.

    variant: beta, as text. Trains on the whole training split for BETA_STEPS[profile] steps (or `steps`),
    batches of the profile's size; measures, on the profile's eval_size test images with one draw of z each
    (the same draws for every beta and seed): distortion = -E log p(x|z), rate = KL(q(z|x) || N(0, I)), the
    ELBO -(D + R), the training objective -(D + beta R), and the KL of each latent dimension. The line also
    keeps `curve`: held-out [step, D, R] on BETA_CURVE_N test images, BETA_CURVE_POINTS times, to show whether
    the run has settled. All in nats per image. Run each beta with several --seed.
    """
    beta = float(variant)
    train = course.load_data(dataset, "train", size=None)
    test = course.load_data(dataset, "test")
    steps = steps or BETA_STEPS.get(course.profile.name, BETA_STEPS["cpu"])
    vae = VAE(vae_config(course, dataset, beta=beta), seed=course.seed)
    probe = test.images[:BETA_CURVE_N].to(course.device)
    every = max(1, steps // BETA_CURVE_POINTS)
    curve: list[list[float]] = []

    def measure(trainer) -> None:  # the same held-out images and draws at every point
        if trainer.step % every == 0 or trainer.step == steps:
            f = evaluate_vae(vae, probe, k=1, generator=course.generator(4, device=course.device))
            curve.append([trainer.step, round(-f["reconstruction"], 2), round(f["kl"], 3)])
            vae.train()

    config = TrainConfig(log_every=10, progress=False, callback_every=every)
    run = train_vae(course, vae, train, steps=steps, snapshots=0, train_config=config, callback=measure)
    keep_trained(course, vae, f"vae-beta-{variant}-seed{course.seed}", run.trainer)
    f = evaluate_vae(vae, test.images, k=1, generator=course.generator(4, device=course.device))
    per_dim = [round(v, 4) for v in f["kl_per_dim"]]
    distortion, rate = -f["reconstruction"], f["kl"]
    return {"dataset": dataset, "variant": variant, "beta": beta, "likelihood": vae.config.likelihood,
            "z_dim": vae.config.z_dim, "width": vae.config.width, "train_images": len(train),
            "batch_size": min(course.profile.batch_size, len(train)), **training_figures(run.trainer),
            "train_loss": round(run.history["loss"][-1], 3), "eval_n": f["n"],
            "distortion_nats": round(distortion, 3), "rate_nats": round(rate, 4), "elbo_nats": round(f["elbo"], 3),
            "objective_nats": round(-(distortion + beta * rate), 3), "bpd": round(f["bpd"], 4),
            "active_dims": f["active_dims"], "dims_over_0.1": sum(v > 0.1 for v in per_dim),
            "kl_per_dim": per_dim, "curve": curve}


bench_vae_beta.choices = {"variant": BETAS}

BENCHMARKS = {"vae": bench_vae, "vae-digits": bench_vae_digits, "vae-beta": bench_vae_beta}
