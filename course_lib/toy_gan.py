"""A GAN on toy data: Gaussian mixtures in 1D and 2D (the 8-Gaussian ring), small MLPs, mode metrics.

Three layers, as everywhere in the course:
  * the data: `Mixture`, an explicit density (log_prob) that can also be sampled;
  * the networks: `mlp()` for the generator (z -> x) and the discriminator (x -> one logit);
  * the process: `ToyGAN` owns the losses and sampling; `Trainer` runs its two phases.

    ring = Mixture.ring()                                        # 8 Gaussians on a circle
    run = train_ring_gan(course, GANConfig(d_steps=2, r1=1.0))   # the shared training loop
    ring_metrics(run.gan.sample(2000), ring)                     # {'modes': 8, 'high_quality': 0.9, ...}

The losses are written on the discriminator's logits a = D_logit(x), D(x) = sigmoid(a), so
log D = -softplus(-a) and log(1 - D) = -softplus(a) never take the log of 0.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .bench import benchmark
from .data import Batches
from .train import Phase, TrainConfig, Trainer

__all__ = ["Mixture", "mlp", "GANConfig", "ToyGAN", "discriminator_loss", "generator_loss", "mode_coverage",
           "ring_metrics", "RingRun", "train_ring_gan", "BASELINE", "REMEDY", "one_thread"]


# -- data: explicit densities that can be sampled ---------------------------------------------------
class Mixture:
    """A mixture of isotropic Gaussians in d dimensions: weights (K,), means (K, d), stds (K,)."""

    def __init__(self, weights, means, stds) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.weights = self.weights / self.weights.sum()
        means = torch.as_tensor(means, dtype=torch.float64)
        self.means = means[:, None] if means.ndim == 1 else means  # (K, d)
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(len(self.weights)).clone()  # (K,)
        k, self.dim = self.means.shape
        assert len(self.weights) == k and bool((self.stds > 0).all()), \
            "need one weight, one mean and one positive std per component"

    @classmethod
    def gaussian(cls, mu: float, sigma: float) -> "Mixture":
        return cls([1.0], [mu], [sigma])

    @classmethod
    def ring(cls, k: int = 8, radius: float = 2.0, std: float = 0.05) -> "Mixture":
        """k equal-weight Gaussians with centres evenly spaced on a circle."""
        angle = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
        return cls(torch.ones(k), radius * torch.stack([angle.cos(), angle.sin()], 1), torch.full((k,), std))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) for x (N, d), or (N,) when d = 1; returns (N,) in x's dtype."""
        x = torch.as_tensor(x)
        x = x[:, None] if x.ndim == 1 and self.dim == 1 else x
        means, stds = self.means.to(x), self.stds.to(x)
        sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)  # (N, K) squared distances to each centre
        log_comp = -0.5 * sq / stds**2 - self.dim * (stds.log() + 0.5 * math.log(2 * math.pi))  # log N(x; m_k, s_k^2 I)
        return torch.logsumexp(self.weights.to(x).log() + log_comp, dim=1)

    def pdf(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x).exp()

    def sample(self, n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
        """n samples (n, d): pick a component by weight, then add its Gaussian noise."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.stds[k, None] * eps).to(dtype)

    def mean(self) -> torch.Tensor:
        return self.weights @ self.means  # (d,)

    def variance(self) -> torch.Tensor:
        """Per-dimension variance: E[x^2] - E[x]^2, with E[x^2] = sum_k w_k (s_k^2 + m_k^2)."""
        second = self.weights @ (self.stds[:, None] ** 2 + self.means**2)
        return second - self.mean() ** 2


# -- networks --------------------------------------------------------------------------------------
def mlp(in_dim: int, out_dim: int, hidden: int = 128, depth: int = 3) -> nn.Sequential:
    """`depth` hidden layers of width `hidden` with LeakyReLU(0.2), then a linear output."""
    layers, d = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.LeakyReLU(0.2)]
        d = hidden
    return nn.Sequential(*layers, nn.Linear(d, out_dim))


# -- losses on logits --------------------------------------------------------------------------------
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE of a real/fake classifier: -mean log D(x) - mean log(1 - D(G(z))); this is -V(D, G)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # -log sigmoid(a) = softplus(-a)


def generator_loss(fake_logits: torch.Tensor, saturating: bool = False) -> torch.Tensor:
    """Non-saturating -mean log D(G(z)) (default), or the saturating mean log(1 - D(G(z)))."""
    if saturating:
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(a)) = -softplus(a)
    return F.softplus(-fake_logits).mean()


# -- the process -----------------------------------------------------------------------------------
@dataclass
class GANConfig:
    data_dim: int = 2
    z_dim: int = 2
    hidden: int = 128
    depth: int = 3
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    saturating: bool = False  # generator loss: log(1 - D(G(z))) if True, else -log D(G(z))
    d_steps: int = 1  # k discriminator steps per generator step
    r1: float = 0.0  # weight of the R1 gradient penalty (r1 / 2) E_data ||grad_x D_logit(x)||^2


LossOnLogits = Callable[..., torch.Tensor]


class ToyGAN(nn.Module):
    """Generator G: z (B, z_dim) -> x (B, data_dim); discriminator D: x -> logit (B,).

    d_loss / g_loss replace the loss functions on logits (the lab plugs the student's in).
    """

    def __init__(self, config: GANConfig | None = None, seed: int = 0, d_loss: LossOnLogits | None = None,
                 g_loss: LossOnLogits | None = None) -> None:
        super().__init__()
        self.config = c = config or GANConfig()
        with torch.random.fork_rng(devices=[]):  # initial weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.G = mlp(c.z_dim, c.data_dim, c.hidden, c.depth)
            self.D = mlp(c.data_dim, 1, c.hidden, c.depth)
        self.d_loss = d_loss or discriminator_loss
        self.g_loss = g_loss or (lambda logits: generator_loss(logits, saturating=c.saturating))
        self.noise = torch.Generator().manual_seed(seed + 1)  # the z draws of training

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.D(x).squeeze(-1)  # (B, data_dim) -> (B,)

    def z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.config.z_dim, generator=generator or self.noise).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples (n, data_dim) from the generator (pass a generator for fixed draws)."""
        return self.G(self.z(n, generator))

    def discriminator_loss(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        fake = self.G(self.z(len(real))).detach()  # (B, data_dim); no gradient to G in this phase
        real = real.detach().requires_grad_(self.config.r1 > 0)
        real_logits, fake_logits = self.logits(real), self.logits(fake)
        loss = self.d_loss(real_logits, fake_logits)
        out = {"d_real": torch.sigmoid(real_logits).mean().detach(), "d_fake": torch.sigmoid(fake_logits).mean().detach()}
        if self.config.r1 > 0:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)  # (B, data_dim)
            penalty = 0.5 * self.config.r1 * grad.pow(2).sum(1).mean()  # (r1/2) E ||grad_x D_logit||^2
            loss = loss + penalty
            out["r1"] = penalty.detach()
        return {"d_loss": loss, **out}

    def generator_loss(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        fake = self.G(self.z(len(real)))  # real is only used for the batch size: G never sees data
        return {"g_loss": self.g_loss(self.logits(fake))}

    def phases(self) -> list[Phase]:
        """The discriminator every step, the generator every d_steps-th (k D steps per G step)."""
        c = self.config
        opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr_d, betas=c.betas)
        opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr_g, betas=c.betas)
        return [Phase("d_loss", self.discriminator_loss, opt_d), Phase("g_loss", self.generator_loss, opt_g, every=c.d_steps)]


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
@contextlib.contextmanager
def one_thread(device: torch.device | str = "cpu"):
    """Run toy-sized networks on one CPU thread, then restore the thread count.

    A 128-wide MLP gains nothing from intra-op threads, and on a CPU shared with other work the
    threads wait on each other at every op: measured 20x slower per step with 2 threads on a busy
    2-core machine. No effect on GPU runs.
    """
    before = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


BASELINE = GANConfig()  # the standard GAN: non-saturating loss, one D step per G step, no penalty
REMEDY = GANConfig(r1=1.0)  # the same with an R1 gradient penalty on the discriminator


@dataclass
class RingRun:
    gan: ToyGAN
    history: dict
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, samples (n, 2))
    metrics: dict = field(default_factory=dict)


def train_ring_gan(course, config: GANConfig | None = None, steps: int | None = None, snapshots: int = 4,
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
    trainer = Trainer(gan, gan.phases(), TrainConfig(log_every=max(1, steps // 50), callback_every=every, progress=progress))
    with one_thread(course.device):
        if snapshots:
            snapshot(trainer)  # step 0: the untrained generator
        run.history = trainer.fit(Batches(data, course.profile.toy_batch, seed=course.seed), steps=steps,
                                  callback=snapshot if snapshots else None)
        with torch.no_grad():
            run.metrics = ring_metrics(gan.G(z_eval), ring)
    return run


@benchmark("ring-gan")
def bench(course) -> dict:
    """Baseline versus remedy on the 8-Gaussian ring, measured with ring_metrics."""
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
