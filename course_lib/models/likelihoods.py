"""Likelihoods p(x|z) on images, and the data they score: pixel levels and binarisation (lecture 05).

Each `Likelihood` turns a decoder's output into log p(x|z) per example, in nats, summed over pixels,
in float32 (also when the networks run in bf16):

    Bernoulli            pixels in {0, 1}: dynamically binarised data (a fresh draw per batch)
    DiscretizedLogistic  the discretised logistic over the 256 levels k/255 (PixelCNN++'s, one component)
    Gaussian             N(x; mu, sigma^2) per pixel: sigma one learned scalar, or fixed

Data: course_lib.data gives images (N, 1, H, W) float in [0, 1]. Fashion-MNIST and MNIST are k/255 for
integer levels k in 0..255, and `to_levels` (round(255 x)) recovers k exactly; digits are k/16 (17
levels), which the same rounding places on the 256-level grid.

    lik = DiscretizedLogistic()
    lik.log_prob(decoder(z), x)      # (B,) nats; decoder(z) is (B, 2 C, H, W): mu and log s per pixel
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Likelihood", "Bernoulli", "DiscretizedLogistic", "Gaussian", "to_levels", "binarize", "LOG_2PI"]

LOG_2PI = math.log(2 * math.pi)


# -- data ---------------------------------------------------------------------------------------------------
def _check_range(x: torch.Tensor, low: float, high: float, what: str) -> None:
    lo, hi = torch.stack(torch.aminmax(x.detach().float())).tolist()
    if lo < low or hi > high:
        raise ValueError(f"{what} expects images in [{low:g}, {high:g}], as course_lib.data gives them; got values in "
                         f"[{lo:.4g}, {hi:.4g}]. Integer levels 0..255: divide by 255. Data in [-1, 1]: use (x + 1) / 2.")


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> integer levels k = round(255 x) in 0..255 (long), the same shape."""
    _check_range(x, 0.0, 1.0, "to_levels")
    return torch.round(x.float() * 255).long()


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli draw per pixel with probability x in [0, 1]: binary images (Salakhutdinov and Murray 2008).

    Drawn afresh for every training batch (dynamic binarisation, VAEConfig(binarize=True)); for a
    test set, once with a seeded generator (on the data's device).
    """
    _check_range(x, 0.0, 1.0, "binarize")
    return torch.bernoulli(x.float(), generator=generator)


def _uniform(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U(0, 1) draws from `generator` (on its own device), moved to `device`."""
    g_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=g_device).to(device)


def _normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    g_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=g_device).to(device)


# -- likelihoods p(x|z) ---------------------------------------------------------------------------------------
class Likelihood(nn.Module):
    """p(x|z) on images. The decoder gives `n_params` maps per image channel, stacked as (B, n_params C, H, W).

    log_prob(params, x) -> (B,): log p(x|z) in nats, summed over pixels, float32.
    mean(params) -> (B, C, H, W) in [0, 1]: what a reconstruction or a sample shows.
    sample(params, generator) -> (B, C, H, W) in [0, 1]: a draw x ~ p(x|z).
    levels: 256 for a likelihood over the 256 levels (bits/dim is then defined), else None.
    """

    n_params: int = 1
    levels: int | None = None

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, n_params C, H, W) -> n_params tensors (B, C, H, W), in float32."""
        return params.float().unflatten(1, (self.n_params, -1)).unbind(1)

    def check(self, x: torch.Tensor) -> None:
        """Raise a ValueError that says how to fix data this likelihood cannot score."""

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class Bernoulli(Likelihood):
    """Each pixel ~ Bernoulli(sigmoid(l)); log p = x l - softplus(l), written on logits (no log of 0)."""

    def check(self, x: torch.Tensor) -> None:
        bad = x[(x != 0) & (x != 1)]
        if len(bad):
            raise ValueError(f"the Bernoulli likelihood needs binary pixels in {{0, 1}}; got values such as "
                             f"{float(bad[0]):.4g}. Binarise them: VAEConfig(binarize=True) draws a fresh Bernoulli "
                             f"image per training batch; binarize(x, generator) does it once for a test set.")

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.split(params)
        log_p = -F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")  # (B, C, H, W)
        return log_p.flatten(1).sum(1)  # (B,)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.split(params)[0])

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        p = self.mean(params)
        return (_uniform(p.shape, generator, p.device) < p).float()


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - e^-d) for d > 0, accurate at both ends (Maechler 2012)."""
    return torch.where(d < math.log(2), torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d)))


class DiscretizedLogistic(Likelihood):
    """Level k of 256 gets the mass of a logistic(mu, s) over its bin of the [-1, 1] scale (Salimans et al. 2017).

    Bin centres y_k = 2k/255 - 1, edges y_k -+ 1/255; the end bins take the tails, so the 256
    masses sum to 1. Parameters per pixel: mu and log s (clamped at -7, as in PixelCNN++).
    """

    n_params = 2
    levels = 256

    def check(self, x: torch.Tensor) -> None:
        _check_range(x, 0.0, 1.0, "the 256-level likelihood")

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_s = self.split(params)  # (B, C, H, W) each, on the [-1, 1] scale
        k = torch.round(x.float() * 255)  # (B, C, H, W): the integer level, as a float
        y = k / 127.5 - 1  # the bin centre in [-1, 1]
        inv_s = torch.exp(-log_s.clamp(min=-7.0))
        upper = (y + 1 / 255 - mu) * inv_s  # the bin's edges, standardised
        lower = (y - 1 / 255 - mu) * inv_s
        # log(sigmoid(u) - sigmoid(l)) = log sigmoid(u) + log sigmoid(-l) + log(1 - e^(l - u)): no difference of
        # two nearly equal numbers is ever taken, in either tail.
        inner = F.logsigmoid(upper) + F.logsigmoid(-lower) + _log1mexp(upper - lower)
        log_p = torch.where(k == 0, F.logsigmoid(upper),  # (-inf, upper edge]
                            torch.where(k == 255, F.logsigmoid(-lower), inner))  # [lower edge, inf)
        return log_p.flatten(1).sum(1)  # (B,)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The location mu, mapped to [0, 1] (the logistic's mean, before the tails are folded into the end bins)."""
        return (self.split(params)[0].clamp(-1, 1) + 1) / 2

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu, log_s = self.split(params)
        u = _uniform(mu.shape, generator, mu.device).clamp(1e-5, 1 - 1e-5)
        y = mu + torch.exp(log_s.clamp(min=-7.0)) * (torch.log(u) - torch.log1p(-u))  # inverse CDF of the logistic
        return torch.round((y.clamp(-1, 1) + 1) * 127.5) / 255  # the level it falls in, back to [0, 1]


class Gaussian(Likelihood):
    """Each pixel ~ N(mu, sigma^2), a density on the real line: sigma fixed, or one learned scalar (Rybkin et al. 2021).

    log p = -(x - mu)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2 per pixel. A fixed sigma makes the
    reconstruction term a scaled squared error, and sigma sets the weight of the KL against it.
    """

    def __init__(self, sigma: float | None = None, init: float = 0.1) -> None:
        super().__init__()
        self.fixed = sigma
        self.log_sigma = nn.Parameter(torch.tensor(math.log(init))) if sigma is None else None

    def sigma(self) -> torch.Tensor:
        if self.log_sigma is None:
            return torch.tensor(float(self.fixed))
        return torch.exp(self.log_sigma.float().clamp(min=math.log(1e-3)))

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        (mu,) = self.split(params)
        sigma = self.sigma().to(mu.device)
        log_p = -0.5 * ((x.float() - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * LOG_2PI  # (B, C, H, W)
        return log_p.flatten(1).sum(1)  # (B,)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0].clamp(0, 1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        (mu,) = self.split(params)
        return (mu + self.sigma().to(mu.device) * _normal(tuple(mu.shape), generator, mu.device)).clamp(0, 1)
