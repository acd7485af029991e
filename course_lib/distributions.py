"""Explicit densities that can also be sampled: the toy data of lecture 01 and its widgets.

`Mixture` is a mixture of isotropic Gaussians in d dimensions with a closed-form `log_prob`,
so every divergence between two of them can be computed on a grid and checked.

    p = Mixture([0.3, 0.7], [-2.0, 1.0], [0.5, 0.8])    # 1D, two components
    ring = Mixture.ring()                               # 8 Gaussians on a circle, in 2D
    ring.sample(1000, generator=g)                      # (1000, 2)
"""
from __future__ import annotations

import math

import torch

__all__ = ["Mixture"]


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
