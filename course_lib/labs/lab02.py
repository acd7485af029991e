"""Lab 2 checks: the Fréchet distance between Gaussians, k-NN precision and recall, the memorisation ratio.

Cases are drawn from seeded generators, fresh on each call, and include the edge cases the
contracts mention: equal distributions (distance 0), rank-deficient covariances, sets of
different sizes, and exact copies of training images.
"""
from __future__ import annotations

import torch

from ..exercises import Exercise, case_generator, register
from ..metrics import frechet_gaussians, memorisation_ratio, prdc

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return case_generator(seed)  # `seed` at home; mixed with the grader's secret salt when graded


def _spd(g: torch.Generator, d: int, rank: int | None = None) -> torch.Tensor:
    a = torch.randn(d, rank or d, generator=g, dtype=F64)
    return a @ a.T / d  # (d, d), positive semi-definite; singular when rank < d


def frechet_cases() -> list[tuple]:
    g = _gen(201)
    mu, cov = torch.randn(5, generator=g, dtype=F64), _spd(g, 5)
    return [(torch.randn(3, generator=g, dtype=F64), _spd(g, 3), torch.randn(3, generator=g, dtype=F64), _spd(g, 3)),
            (torch.randn(8, generator=g, dtype=F64), _spd(g, 8), torch.randn(8, generator=g, dtype=F64) + 2, _spd(g, 8)),
            (mu, cov, mu.clone(), cov.clone()),  # the same Gaussian: distance 0
            (torch.zeros(6, dtype=F64), _spd(g, 6, rank=2), torch.ones(6, dtype=F64), _spd(g, 6, rank=3))]  # singular


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    """The reference: precision and recall from course_lib.metrics.prdc."""
    out = prdc(real, fake, k)
    return out["precision"], out["recall"]


def precision_recall_cases() -> list[tuple]:
    g = _gen(202)
    real = torch.randn(300, 8, generator=g)
    wide = torch.randn(200, 8, generator=g) * 2.0  # spread past the real data: recall high, precision low
    narrow = torch.randn(250, 8, generator=g) * 0.4  # inside it: precision high, recall low
    return [(real, torch.randn(300, 8, generator=g) + 0.5, 5), (real.clone(), wide, 5), (real.clone(), narrow, 3),
            (torch.randn(120, 4, generator=g), torch.randn(80, 4, generator=g), 1)]


def memorisation_cases() -> list[tuple]:
    g = _gen(203)
    train, test = torch.rand(200, 1, 6, 6, generator=g), torch.rand(50, 1, 6, 6, generator=g)
    copies = train[torch.randint(0, 200, (10,), generator=g)]  # exact copies: ratio 0
    near = (train[:10] + 0.02 * torch.randn(10, 1, 6, 6, generator=g)).clamp(0, 1)
    fresh = torch.rand(15, 1, 6, 6, generator=g)
    return [(torch.cat([copies, near, fresh]), train, test), (fresh.clone(), train.clone(), test.clone())]


register(Exercise("lab02.frechet_gaussians", frechet_cases, frechet_gaussians, rtol=1e-6, atol=1e-8,
                  describe="the squared 2-Wasserstein distance of two Gaussians, 0 for equal ones, also singular"))
register(Exercise("lab02.precision_recall", precision_recall_cases, precision_recall, rtol=0, atol=1e-9,
                  describe="k-NN precision and recall, with the k-th neighbour excluding the point itself"))
register(Exercise("lab02.memorisation_ratio", memorisation_cases, memorisation_ratio, rtol=1e-4, atol=1e-5,
                  describe="0 for copies of training images, about 1 for fresh ones"))
