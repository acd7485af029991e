"""A GAN on toy data: the 8-Gaussian ring, small MLPs, mode metrics (lecture 01).

Three layers, as everywhere in the course:
  * the data: `Mixture` (course_lib.distributions), an explicit density that can also be sampled;
  * the networks: `mlp()` for the generator (z -> x) and the discriminator (x -> one logit);
  * the process: `ToyGAN` is the generic `GAN` (models/gan.py) with two MLPs; `Trainer` runs its phases.

    ring = Mixture.ring()                                          # 8 Gaussians on a circle
    run = train_ring_gan(course, REMEDY)                           # the shared training loop
    ring_metrics(run.gan.sample(2000), ring)                       # {'modes': 8, 'high_quality': 0.9, ...}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import Batches
from ..distributions import Mixture
from ..train import TrainConfig, Trainer
from .base import seeded
from .gan import GAN, GANConfig, LossOnLogits

__all__ = ["mlp", "ToyGANConfig", "ToyGAN", "mode_coverage", "ring_metrics", "RingRun", "train_ring_gan",
           "BASELINE", "REMEDY", "BENCHMARKS"]


# -- networks --------------------------------------------------------------------------------------
def mlp(in_dim: int, out_dim: int, hidden: int = 128, depth: int = 3) -> nn.Sequential:
    """`depth` hidden layers of width `hidden` with LeakyReLU(0.2), then a linear output."""
    layers, d = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.LeakyReLU(0.2)]
        d = hidden
    return nn.Sequential(*layers, nn.Linear(d, out_dim))


class Packed(nn.Module):
    """PacGAN's discriminator (Lin et al. 2018): judge `pack` samples at once, one logit per group.

    x (B, d) -> groups (B / pack, pack * d) -> net -> (B / pack, 1), repeated to (B, 1) so that every
    sample carries its group's logit (a mean over samples is then the mean over groups).
    """

    def __init__(self, net: nn.Module, pack: int) -> None:
        super().__init__()
        self.net, self.pack = net, pack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) % self.pack:
            raise ValueError(f"a packed discriminator needs batches divisible by pack={self.pack}; got {len(x)}.")
        groups = x.reshape(len(x) // self.pack, -1)  # (B / pack, pack * d)
        return self.net(groups).repeat_interleave(self.pack, dim=0)  # (B, 1)


# -- the process: the generic GAN with two MLPs -------------------------------------------------------
@dataclass
class ToyGANConfig(GANConfig):
    z_dim: int = 2
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    data_dim: int = 2
    hidden: int = 128
    depth: int = 3
    pack: int = 1  # PacGAN: D sees `pack` samples side by side (all real or all generated); 1: plain D


class ToyGAN(GAN):
    """The generic GAN process with G = mlp(z_dim -> data_dim) and D = mlp(data_dim -> 1 logit).

    d_loss / g_loss replace the loss functions on logits (the lab plugs the student's in).
    """

    config_class = ToyGANConfig

    def __init__(self, config: ToyGANConfig | None = None, seed: int = 0, d_loss: LossOnLogits | None = None,
                 g_loss: LossOnLogits | None = None) -> None:
        c = config or ToyGANConfig()
        with seeded(seed):  # initial weights from `seed`, global RNG untouched
            generator = mlp(c.z_dim, c.data_dim, c.hidden, c.depth)  # z (B, z_dim) -> x (B, data_dim)
            discriminator = mlp(c.data_dim * c.pack, 1, c.hidden, c.depth)  # x (B, data_dim) -> logit (B, 1)
            if c.pack > 1:
                discriminator = Packed(discriminator, c.pack)  # x (B, data_dim) -> (B / pack) groups -> (B, 1)
        super().__init__(generator, discriminator, c, seed=seed, d_loss=d_loss, g_loss=g_loss)


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


@dataclass
class RingRun:
    gan: ToyGAN
    history: dict
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, samples (n, 2))
    metrics: dict = field(default_factory=dict)


def train_ring_gan(course, config: ToyGANConfig | None = None, steps: int | None = None, snapshots: int = 4,
                   n_eval: int = 2000, ring: Mixture | None = None, progress: bool = True, **gan_kwargs) -> RingRun:
    """Train a ToyGAN on the ring with the shared Trainer; keep samples at `snapshots` times.

    steps: default course.profile.toy_steps; batch size course.profile.toy_batch. The same
    fixed noise is used for every snapshot and for the final metrics.
    """
    ring = ring or Mixture.ring()
    steps = steps or course.profile.toy_steps
    data = ring.sample(max(10_000, course.profile.toy_batch), generator=course.generator(1)).to(course.device)
    gan = ToyGAN(config, seed=course.seed, **gan_kwargs).to(course.device)
    fixed = course.generator(2)
    z_eval = torch.randn(n_eval, gan.config.z_dim, generator=fixed).to(course.device)
    run = RingRun(gan, {})

    def snapshot(trainer) -> None:
        if not run.snapshots or run.snapshots[-1][0] != trainer.step:  # fit's final callback may repeat a step
            with torch.no_grad():
                run.snapshots.append((trainer.step, gan.G(z_eval).cpu()))

    every = max(1, steps // snapshots) if snapshots else None
    trainer = Trainer(gan, train_config=TrainConfig(log_every=max(1, steps // 50), callback_every=every, progress=progress))
    if snapshots:
        snapshot(trainer)  # step 0: the untrained generator
    run.history = trainer.fit(Batches(data, course.profile.toy_batch, seed=course.seed), steps=steps,
                              callback=snapshot if snapshots else None)
    with torch.no_grad():
        run.metrics = ring_metrics(gan.G(z_eval), ring)
    return run


def bench_ring_gan(course) -> dict:
    """Toy GAN on the 8-Gaussian ring: baseline versus remedy (balanced rates, PacGAN), modes covered and high-quality fraction."""
    import time

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
