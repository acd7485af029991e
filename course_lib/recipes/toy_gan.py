"""The toy GAN's recipe (lecture 01): the 8-Gaussian ring, its mode metrics, the two configs the
lecture compares (BASELINE collapses, REMEDY covers the ring), the training driver and the bench.

    ring = Mixture.ring()                                          # 8 Gaussians on a circle
    run = train_ring_gan(course, REMEDY)                           # the shared training loop
    ring_metrics(run.model.sample(2000), ring)                     # {'modes': 8, 'high_quality': 0.9, ...}
"""
from __future__ import annotations

import math
import time

import torch

from ..data import Batches
from ..distributions import Mixture
from ..models.toy_gan import ToyGAN, ToyGANConfig
from ..train import TrainConfig, Trainer
from .common import Run

__all__ = ["mode_coverage", "ring_metrics", "BASELINE", "REMEDY", "train_ring_gan", "BENCHMARKS"]


# -- metrics -----------------------------------------------------------------------------------------
def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, radius: float, min_count: int) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples).

    A sample is high quality if it lies within `radius` of its nearest centre; a mode is covered
    if at least `min_count` high-quality samples have it as their nearest centre.
    """
    dist = torch.cdist(samples.double(), torch.as_tensor(centers).double())  # (N, K)
    nearest_dist, nearest = dist.min(dim=1)  # (N,), (N,)
    good = nearest_dist <= radius
    counts = torch.bincount(nearest[good], minlength=dist.shape[1])  # (K,) high-quality samples per mode
    return int((counts >= min_count).sum()), float(good.double().mean())


def ring_metrics(samples: torch.Tensor, ring: Mixture, n_std: float = 3.0) -> dict:
    """Mode metrics on the ring: high quality = within n_std stds of a centre; a mode is covered
    when it gets at least a quarter of its fair share, N / (4K), of the samples."""
    n, k = len(samples), len(ring.means)
    min_count = max(1, math.ceil(n / (4 * k)))
    modes, hq = mode_coverage(samples.cpu(), ring.means, n_std * float(ring.stds.max()), min_count)
    return {"modes": modes, "high_quality": hq, "min_count": min_count, "n": n}


# -- training on the ring ---------------------------------------------------------------------------
# Mode collapse on the ring (lecture 01, section 6). BASELINE: the standard GAN (non-saturating loss, one
# D step per G step) with a discriminator that learns 10x faster than the generator; the generator ends on
# one or two modes. REMEDY: the learning rates balanced, and D judges pairs of samples (PacGAN), so a
# batch whose samples all sit on the same modes is easy to tell from real data.
BASELINE = ToyGANConfig(lr_g=1e-4, lr_d=1e-3)
REMEDY = ToyGANConfig(lr_g=1e-3, lr_d=1e-3, pack=2)


def train_ring_gan(course, config: ToyGANConfig | None = None, steps: int | None = None, snapshots: int = 4,
                   n_eval: int = 2000, ring: Mixture | None = None, progress: bool = True, **gan_kwargs) -> Run:
    """Train a ToyGAN on the ring with the shared Trainer; keep samples at `snapshots` times.

    steps: default course.profile.toy_steps; batch size course.profile.toy_batch. The same
    fixed noise is used for every snapshot and for the final metrics (`run.metrics`, `ring_metrics`).
    Snapshots: (step, samples (n_eval, 2)).
    """
    ring = ring or Mixture.ring()
    steps = steps or course.profile.toy_steps
    data = ring.sample(max(10_000, course.profile.toy_batch), generator=course.generator(1)).to(course.device)
    gan = ToyGAN(config, seed=course.seed, **gan_kwargs).to(course.device)
    fixed = course.generator(2)
    z_eval = torch.randn(n_eval, gan.config.z_dim, generator=fixed).to(course.device)
    shots: list[tuple] = []

    def snapshot(trainer) -> None:
        if not shots or shots[-1][0] != trainer.step:  # fit's final callback may repeat a step
            with torch.no_grad():
                shots.append((trainer.step, gan.G(z_eval).cpu()))

    every = max(1, steps // snapshots) if snapshots else None
    trainer = Trainer(gan, train_config=TrainConfig(log_every=max(1, steps // 50), callback_every=every, progress=progress))
    if snapshots:
        snapshot(trainer)  # step 0: the untrained generator
    trainer.fit(Batches(data, course.profile.toy_batch, seed=course.seed), steps=steps,
                callback=snapshot if snapshots else None)
    with torch.no_grad():
        metrics = ring_metrics(gan.G(z_eval), ring)
    return Run(gan, trainer, shots, metrics)


def bench_ring_gan(course) -> dict:
    """Toy GAN on the 8-Gaussian ring: baseline versus remedy (balanced rates, PacGAN), modes covered and high-quality fraction."""
    out = {"steps": course.profile.toy_steps, "batch": course.profile.toy_batch}
    for name, config in (("baseline", BASELINE), ("remedy", REMEDY)):
        t0 = time.perf_counter()
        run = train_ring_gan(course, config, snapshots=0, progress=False)
        seconds = time.perf_counter() - t0
        out[f"{name}_modes"] = run.metrics["modes"]
        out[f"{name}_high_quality"] = round(run.metrics["high_quality"], 4)
        out[f"{name}_steps_per_s"] = round(out["steps"] / seconds, 1)
        out[f"{name}_d_loss"] = round(run.history["d_loss"][-1], 4)
        out[f"{name}_g_loss"] = round(run.history["g_loss"][-1], 4)
    return out


BENCHMARKS = {"ring-gan": bench_ring_gan}
