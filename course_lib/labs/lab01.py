"""Lab 1 checks: divergences, the optimal discriminator, GAN losses and the mode-coverage metric.

Every case is drawn from a seeded generator, fresh on each call. The references are the
course_lib functions the lecture uses. Cases include the edge cases the contracts mention
(zeros in p, disjoint supports, huge logits, unequal batch sizes), so a formula that is only
almost right fails.
"""
from __future__ import annotations

import math

import torch

from ..divergences import jsd_discrete, kl_discrete, kl_gaussian, optimal_discriminator
from ..exercises import Exercise, case_generator, case_random, graded, register
from ..distributions import Mixture
from ..models.gan import discriminator_loss, generator_loss
from ..recipes.toy_gan import mode_coverage

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return case_generator(seed)  # `seed` at home; mixed with the grader's secret salt when graded


def _simplex(g: torch.Generator, shape: tuple[int, ...], zeros: float = 0.0) -> torch.Tensor:
    """Random probability vectors along the last dim; a fraction `zeros` of the entries set to 0."""
    x = torch.rand(shape, generator=g, dtype=F64) + 0.05
    if zeros:
        x = x * (torch.rand(shape, generator=g, dtype=F64) >= zeros)
        x[..., 0] += 0.1  # keep at least one entry positive in every row
    return x / x.sum(-1, keepdim=True)


def kl_discrete_cases() -> list[tuple]:
    g = _gen(101)
    p = _simplex(g, (3, 6), zeros=0.4)  # 0 log 0 = 0 must hold
    return [(_simplex(g, (4, 5)), _simplex(g, (4, 5))),
            (p, _simplex(g, (3, 6))),
            (p.clone(), p.clone()),  # KL(p || p) = 0
            (_simplex(g, (7,)), _simplex(g, (7,)))]  # a single distribution


def kl_gaussian_cases() -> list[tuple]:
    g = _gen(102)
    mu = lambda: torch.randn(6, generator=g, dtype=F64) * 2  # noqa: E731
    sd = lambda: torch.rand(6, generator=g, dtype=F64) * 2 + 0.1  # noqa: E731
    m, s = mu(), sd()
    return [(mu(), sd(), mu(), sd()), (m, s, m.clone(), s.clone()), (mu(), sd(), torch.zeros(6, dtype=F64), torch.ones(6, dtype=F64))]


def jsd_cases() -> list[tuple]:
    g = _gen(103)
    p = _simplex(g, (2, 6), zeros=0.4)
    disjoint_p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.2, 0.0, 0.8, 0.0]], dtype=F64)
    disjoint_q = torch.tensor([[0.0, 0.0, 0.3, 0.7], [0.0, 1.0, 0.0, 0.0]], dtype=F64)  # JSD = log 2
    return [(_simplex(g, (4, 5)), _simplex(g, (4, 5))), (p, _simplex(g, (2, 6), zeros=0.4)),
            (disjoint_p, disjoint_q), (p.clone(), p.clone())]


def optimal_discriminator_cases() -> list[tuple]:
    x = torch.linspace(-4, 4, 41, dtype=F64)
    spread, width, g_mean, g_std = 1.5, 0.5, 0.5, 1.0
    zero_both = torch.tensor([0.3, 0.0, 0.0, 0.2, 1.0], dtype=F64)
    other = torch.tensor([0.1, 0.4, 0.0, 0.0, 1.0], dtype=F64)  # index 2: both zero -> 1/2
    if graded():  # the grader's secret cases: other densities on another grid, zeros elsewhere
        r = case_random(107)
        x = torch.linspace(-r.uniform(3, 5), r.uniform(3, 5), r.randint(31, 61), dtype=F64)
        spread, width, g_mean, g_std = r.uniform(0.8, 2.5), r.uniform(0.3, 0.8), r.uniform(-1, 1), r.uniform(0.7, 1.5)
        order = torch.randperm(5, generator=_gen(107))
        zero_both, other = zero_both[order], other[order]
    p_data = Mixture([0.5, 0.5], [-spread, spread], [width, width]).pdf(x)
    p_g = Mixture.gaussian(g_mean, g_std).pdf(x)
    return [(p_data, p_g), (p_g, p_data), (zero_both, other)]


def _logits(g: torch.Generator, n: int, scale: float) -> torch.Tensor:
    return torch.randn(n, generator=g) * scale


def discriminator_loss_cases() -> list[tuple]:
    g = _gen(104)
    huge = torch.tensor([60.0, -60.0, 120.0, -120.0, 0.0])  # log(sigmoid) and log(1 - sigmoid) overflow here
    return [(_logits(g, 64, 2.0), _logits(g, 64, 2.0)),
            (_logits(g, 32, 3.0) + 2, _logits(g, 48, 3.0) - 2),  # unequal batch sizes: two separate means
            (huge, -huge.flip(0)), (-huge, huge)]


def generator_loss_cases() -> list[tuple]:
    g = _gen(105)
    return [(_logits(g, 64, 2.0),), (_logits(g, 16, 4.0) - 5,), (torch.tensor([60.0, -60.0, 120.0, -120.0, 0.0]),)]


def mode_coverage_cases() -> list[tuple]:
    g = _gen(106)
    ring = Mixture.ring(8, radius=2.0, std=0.05)
    centers = ring.means.float()
    three = Mixture(torch.ones(3), ring.means[[0, 3, 4]], torch.full((3,), 0.08))  # drops 5 modes
    noisy = torch.cat([ring.sample(300, g), torch.rand(200, 2, generator=g) * 6 - 3])  # 40% far from any mode
    lopsided = torch.cat([ring.sample(40, g), Mixture(torch.ones(1), ring.means[[2]], [0.05]).sample(400, g)])
    return [(ring.sample(800, g), centers, 0.15, 25), (three.sample(600, g), centers, 0.15, 25),
            (noisy, centers, 0.15, 10), (lopsided, centers, 0.15, 10), (lopsided.clone(), centers, 0.3, 2)]


# -- known mistakes, for the checks to name (Exercise.mistakes) ------------------------------------------------------
def _pooled(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cat([a, b]).mean()


MISTAKES = {
    "lab01.kl_discrete": (("KL(q || p): the arguments swapped (KL is not symmetric)", lambda p, q: kl_discrete(q, p)),
                          ("a KL with its sign flipped (KL is never negative)", lambda p, q: -kl_discrete(p, q))),
    "lab01.jsd": (("the two KL terms without their 1/2 weights (the maximum becomes 2 log 2)",
                   lambda p, q: 2 * jsd_discrete(p, q)),),
    "lab01.discriminator_loss": (
        ("one mean over the real and fake batches pooled (with n = m, exactly half the loss): take one mean per batch",
         lambda r, f: _pooled(torch.nn.functional.softplus(-r), torch.nn.functional.softplus(f))),
        ("log(sigmoid(a)) computed directly: it is -inf once the sigmoid rounds to 0 or 1 (|a| ~ 100); use softplus",
         lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean()))),
    "lab01.generator_loss": (
        ("the saturating loss mean log(1 - D(G(z))), not the non-saturating -mean log D(G(z))",
         lambda f: generator_loss(f, saturating=True)),
        ("-log(sigmoid(a)) computed directly: inf once the sigmoid rounds to 0; use softplus(-a)",
         lambda f: -torch.log(torch.sigmoid(f)).mean())),
}

register(Exercise("lab01.kl_discrete", kl_discrete_cases, kl_discrete, rtol=1e-6, atol=1e-9,
                  describe="KL >= 0, zero at p = q, 0 log 0 = 0", mistakes=MISTAKES["lab01.kl_discrete"]))
register(Exercise("lab01.kl_gaussian", kl_gaussian_cases, kl_gaussian, rtol=1e-6, atol=1e-9,
                  describe="closed-form Gaussian KL"))
register(Exercise("lab01.jsd", jsd_cases, jsd_discrete, rtol=1e-6, atol=1e-9,
                  describe=f"including disjoint supports, where JSD = log 2 = {math.log(2):.4f}",
                  mistakes=MISTAKES["lab01.jsd"]))
register(Exercise("lab01.optimal_discriminator", optimal_discriminator_cases, optimal_discriminator,
                  rtol=1e-6, atol=1e-9, describe="D* = p_data / (p_data + p_g), 1/2 where both are 0"))
register(Exercise("lab01.discriminator_loss", discriminator_loss_cases, discriminator_loss, rtol=1e-5, atol=1e-5,
                  describe="BCE from logits, stable for |logit| up to 120",
                  names=("64 real and 64 fake logits", "32 real and 48 fake: unequal batches",
                         "logits of +-60 and +-120, where log(sigmoid) overflows", "the same, signs swapped"),
                  mistakes=MISTAKES["lab01.discriminator_loss"]))
register(Exercise("lab01.generator_loss", generator_loss_cases, generator_loss, rtol=1e-5, atol=1e-5,
                  describe="non-saturating -mean log D(G(z)), stable for large logits",
                  mistakes=MISTAKES["lab01.generator_loss"]))
register(Exercise("lab01.mode_coverage", mode_coverage_cases, mode_coverage, rtol=1e-9, atol=1e-12,
                  describe="modes covered and high-quality fraction"))
