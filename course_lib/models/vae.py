"""The variational autoencoder (Kingma and Welling 2014; Rezende et al. 2014), conv nets for 28x28 and 8x8 (lecture 04).

Three pieces, each swappable:
  * the networks: `Encoder`, images -> (mu, log sigma^2) of q(z|x) = N(mu, diag sigma^2), and
    `Decoder`, z -> the parameters of p(x|z), `n_params` values per pixel;
  * the likelihood p(x|z) (`LIKELIHOODS`, `VAEConfig(likelihood=...)`); each returns log p(x|z) per
    example, in nats, summed over pixels, in float32:
        bernoulli     pixels in {0, 1}: dynamically binarised data (a fresh draw per batch)
        logistic256   the discretised logistic over the 256 levels k/255 (PixelCNN++'s, one component)
        gaussian      N(x; mu, sigma^2) per pixel: sigma one learned scalar, or fixed (VAEConfig(sigma=0.1))
  * the process `VAE`: elbo(x), iwae_bound(x, k), bits_per_dim(x), encode / decode, sample(n), phases().

The bound, per example x (Kingma and Welling 2014, eq. 3; the KL in closed form, their appendix B):

    log p(x) >= ELBO(x) = E_q(z|x) log p(x|z) - KL(q(z|x) || N(0, I))
                        = reconstruction       - kl

The loss is -(reconstruction - beta kl): summed over pixels and latent dimensions, averaged over
the batch, computed in float32 also when the networks run in bf16. beta = 1 trains on the ELBO;
other betas trade rate (kl) for distortion (Higgins et al. 2017). The IWAE bound (Burda et al. 2016)
averages k importance weights inside the log, log (1/k) sum_i p(x, z_i) / q(z_i|x), in log space
(logsumexp); it is >= the ELBO on average and grows with k towards log p(x).

Data: course_lib.data gives images (N, 1, H, W) float in [0, 1]. Fashion-MNIST and MNIST are k/255
for integer levels k in 0..255, and `to_levels` (round(255 x)) recovers k exactly; digits are k/16
(17 levels), which the same rounding places on the 256-level grid (their bits/dim counts 256 levels).
Bits/dim = -ELBO / (D ln 2), D = C H W, is defined for the 256-level likelihood only: it bounds the
bits a lossless code built on the model would spend per pixel.

    vae = VAE(vae_config(course, "fashion-mnist"), seed=course.seed)
    run = train_vae(course, vae, course.load_data("fashion-mnist"), checkpoint="runs/vae.pt")
    vae.bits_per_dim(test_images).mean(); vae.sample(64)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageData
from ..runs import keep_trained, train_with_snapshots, training_figures
from ..train import Phase, TrainConfig, Trainer
from .base import ProcessModule

__all__ = ["VAEConfig", "Likelihood", "Bernoulli", "DiscretizedLogistic", "Gaussian", "LIKELIHOODS", "Encoder",
           "Decoder", "VAE", "gaussian_kl", "to_levels", "binarize", "vae_config", "iwae_k", "evaluate_vae", "VAERun",
           "train_vae", "BENCHMARKS"]

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


# name -> how to build it from the config.
LIKELIHOODS: dict[str, Callable[["VAEConfig"], Likelihood]] = {
    "bernoulli": lambda c: Bernoulli(),
    "logistic256": lambda c: DiscretizedLogistic(),
    "gaussian": lambda c: Gaussian(sigma=c.sigma),
}


@dataclass
class VAEConfig:
    image_size: int = 28  # 28 (Fashion-MNIST, MNIST) or 8 (digits); a multiple of 4
    channels: int = 1
    z_dim: int = 16  # 2 for a decoded-manifold plot
    width: int = 32  # w: the encoder has w and 2w channels, the decoder 2w and w; the profile's `width`
    likelihood: str = "logistic256"  # a key of LIKELIHOODS
    sigma: float | None = None  # gaussian only: a fixed pixel std; None learns it
    binarize: bool | None = None  # a fresh Bernoulli draw of every training batch; None: exactly for bernoulli
    beta: float = 1.0  # weight of the KL in the loss: 1 is the ELBO, others a beta-VAE
    lr: float = 3e-3  # Adam; on the cpu profile (279 steps) 3e-3 gave 3.75 bits/dim and clearer samples, 1e-3 3.84

    def __post_init__(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"Unknown likelihood {self.likelihood!r}. Choose one of {sorted(LIKELIHOODS)}.")
        if self.image_size % 4 or self.image_size < 4:
            raise ValueError(f"image_size must be a multiple of 4 (two 2x up/downsamplings), got {self.image_size}.")
        if self.z_dim < 1 or self.width < 1:
            raise ValueError(f"z_dim and width must be >= 1, got z_dim={self.z_dim}, width={self.width}.")
        if self.beta < 0:
            raise ValueError(f"beta weighs the KL and must be >= 0 (1: the ELBO), got {self.beta}.")
        if self.sigma is not None and (self.likelihood != "gaussian" or self.sigma <= 0):
            raise ValueError(f"sigma is the fixed pixel std of likelihood='gaussian' and must be > 0; got sigma="
                             f"{self.sigma} with likelihood={self.likelihood!r}. Leave it None otherwise.")
        if self.binarize is None:
            self.binarize = self.likelihood == "bernoulli"


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag e^logvar) || N(0, I)) per dimension, (B, z_dim): 1/2 (mu^2 + sigma^2 - 1 - log sigma^2).

    Kingma and Welling 2014, appendix B. Sum over dimensions for the KL of each example.
    """
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)


# -- the networks ---------------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """images (B, C, S, S) in [0, 1] -> (mu, logvar), each (B, z_dim); s = S / 4, w = width."""

    def __init__(self, c: VAEConfig) -> None:
        super().__init__()
        s, w = c.image_size // 4, c.width
        self.net = nn.Sequential(
            nn.Conv2d(c.channels, w, 4, 2, 1), nn.SiLU(),  # (B, w, 2s, 2s)
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),  # (B, 2w, s, s)
            nn.Flatten(),  # (B, 2w s s)
            nn.Linear(2 * w * s * s, 2 * c.z_dim),  # (B, 2 z_dim): mu and log sigma^2 side by side
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert x.ndim == 4, f"the encoder takes images (B, C, H, W), got {tuple(x.shape)}; add .unsqueeze(1)"
        mu, logvar = self.net(2 * x - 1).chunk(2, dim=1)  # inputs centred on 0; (B, z_dim) each
        return mu, logvar


class Decoder(nn.Module):
    """z (B, z_dim) -> likelihood parameters (B, P C, S, S), P = the likelihood's n_params; s = S / 4, w = width."""

    def __init__(self, c: VAEConfig, n_params: int) -> None:
        super().__init__()
        s, w = c.image_size // 4, c.width
        self.net = nn.Sequential(
            nn.Linear(c.z_dim, 2 * w * s * s), nn.SiLU(),  # (B, 2w s s)
            nn.Unflatten(1, (2 * w, s, s)),  # (B, 2w, s, s)
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.SiLU(),  # (B, w, 2s, 2s)
            nn.ConvTranspose2d(w, n_params * c.channels, 4, 2, 1),  # (B, P C, S, S)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        assert z.ndim == 2, f"the decoder takes latents of shape (B, z_dim), got {tuple(z.shape)}"
        return self.net(z)


# -- the process ------------------------------------------------------------------------------------------------
class VAE(ProcessModule):
    """q(z|x) by the encoder, p(z) = N(0, I), p(x|z) by the decoder and the likelihood.

    encoder, decoder, likelihood: replace the config's (a lab plugs the student's in; a test, a
    linear-Gaussian model). The encoder maps images to (mu, logvar); the decoder maps z to the
    likelihood's parameters.
    """

    config_class = VAEConfig

    def __init__(self, config: VAEConfig | None = None, seed: int = 0, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None, likelihood: Likelihood | None = None) -> None:
        super().__init__(config or VAEConfig(), seed)
        c = self.config
        with self.seeded():  # initial weights from `seed`, global RNG untouched
            self.likelihood = likelihood or LIKELIHOODS[c.likelihood](c)
            self.encoder = encoder or Encoder(c)
            self.decoder = decoder or Decoder(c, self.likelihood.n_params)
        self._noise: torch.Generator | None = None  # the training noise stream, made on first use

    @property
    def pixels(self) -> int:
        """D = C H W, the dimensions that bits/dim divides by."""
        return self.config.channels * self.config.image_size ** 2

    def noise_stream(self) -> torch.Generator:
        """The training noise stream (z's noise, the binarisation), seeded from `seed`."""
        if self._noise is None or self._noise.device != self.device:
            self._noise = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        return self._noise

    # -- the pieces -----------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) in [0, 1] -> the posterior's mean and log-variance, each (B, z_dim), float32."""
        mu, logvar = self.encoder(x)
        return mu.float(), logvar.float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim) -> the decoder's mean image (B, C, H, W) in [0, 1]."""
        return self.likelihood.mean(self.decoder(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x -> decode(the posterior's mean): (B, C, H, W) in [0, 1]."""
        return self.decode(self.encode(x)[0])

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma eps, eps ~ N(0, I): a draw from q(z|x) that gradients pass through; (B, z_dim)."""
        eps = _normal(tuple(mu.shape), generator or self.noise_stream(), mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The ELBO's terms per example, in nats, float32, with one draw z ~ q(z|x):

        reconstruction (B,): log p(x|z), an estimate of E_q log p(x|z)
        kl (B,), kl_per_dim (B, z_dim): KL(q(z|x) || N(0, I)) in closed form
        elbo (B,): reconstruction - kl, a lower bound on log p(x) (beta does not enter it)
        """
        self.likelihood.check(x)
        mu, logvar = self.encode(x)  # (B, z_dim) each
        z = self.reparameterize(mu, logvar, generator)  # (B, z_dim)
        reconstruction = self.likelihood.log_prob(self.decoder(z), x)  # (B,)
        kl_per_dim = gaussian_kl(mu, logvar)  # (B, z_dim)
        kl = kl_per_dim.sum(1)  # (B,)
        return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl, "kl_per_dim": kl_per_dim}

    def iwae_bound(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                   chunk: int | None = None) -> torch.Tensor:
        """log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x), per example (B,) in nats (Burda et al. 2016).

        k = 1 is the ELBO with a one-sample KL; the bound grows with k towards log p(x). The k
        draws go through the decoder `chunk` at a time (default: about 2048 images per call).
        """
        if k < 1:
            raise ValueError(f"k is the number of importance samples and must be >= 1, got {k}.")
        self.likelihood.check(x)
        n = len(x)
        chunk = chunk or max(1, 2048 // n)
        mu, logvar = self.encode(x)  # (B, z_dim) each
        std = torch.exp(0.5 * logvar)
        generator = generator or self.noise_stream()
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = _normal((m, *mu.shape), generator, mu.device)  # (m, B, z_dim)
            z = mu + std * eps  # (m, B, z_dim)
            log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * LOG_2PI).sum(-1)  # log q(z|x), (m, B)
            log_pz = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)  # log N(z; 0, I), (m, B)
            x_m = x.expand(m, *x.shape).flatten(0, 1)  # (m B, C, H, W), in z.flatten(0, 1)'s order
            log_px = self.likelihood.log_prob(self.decoder(z.flatten(0, 1)), x_m).view(m, n)  # (m, B)
            log_w.append(log_px + log_pz - log_q)
        return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)  # (B,)

    def bits_per_dim(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """-ELBO / (D ln 2) per example (B,): an upper bound on the bits per pixel of x, for the 256-level likelihood."""
        if self.likelihood.levels != 256:
            raise ValueError(f"bits/dim needs a likelihood over the 256 levels of a pixel; this VAE's is "
                             f"{type(self.likelihood).__name__}. Use VAEConfig(likelihood='logistic256').")
        return -self.elbo(x, generator)["elbo"] / (self.pixels * math.log(2))

    # -- training -------------------------------------------------------------------------------------------
    def prepare(self, batch: Any) -> torch.Tensor:
        """A batch (images, or a tuple whose first entry is images) -> the images the loss scores:
        binarised afresh from the training noise stream when config.binarize."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return binarize(x, self.noise_stream()) if self.config.binarize else x

    def loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """-(reconstruction - beta kl), summed over pixels, averaged over the batch; and the terms, logged."""
        terms = self.elbo(self.prepare(batch))
        loss = -(terms["reconstruction"] - self.config.beta * terms["kl"]).mean()
        out = {"loss": loss, **{k: terms[k].mean().detach() for k in ("elbo", "reconstruction", "kl")}}
        if self.likelihood.levels == 256:
            out["bpd"] = -out["elbo"] / (self.pixels * math.log(2))
        return out

    def phases(self) -> list[Phase]:
        """One phase: Adam on the encoder, the decoder and the likelihood's own parameters (a learned sigma)."""
        return [Phase("loss", self.loss, torch.optim.Adam(self.parameters(), lr=self.config.lr))]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = True) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] from z ~ N(0, I): the decoder's mean (default), or a draw x ~ p(x|z)."""
        generator = generator or self.noise_stream()
        params = self.decoder(_normal((n, self.config.z_dim), generator, self.device))
        return (self.likelihood.mean(params) if mean else self.likelihood.sample(params, generator)).float()


def vae_config(course, dataset: str = "fashion-mnist", **changes) -> VAEConfig:
    """The course's VAEConfig for a dataset: the image size from the dataset, the width from the profile."""
    size = 8 if dataset == "digits" else 28
    width = course.profile.width
    # Adam at 3e-3 sends the 256-level loss to NaN within 10 steps at width 64 (the gpu profile; seen on
    # the H200 and reproduced on a CPU); 1e-3 trains there. The narrower profiles keep 3e-3.
    lr = 3e-3 if width <= 32 else 1e-3
    return VAEConfig(**{"image_size": size, "width": width, "lr": lr, **changes})


# -- training ---------------------------------------------------------------------------------------------------
@dataclass
class VAERun:
    vae: VAE
    trainer: Trainer
    # (step, prior samples (n, C, S, S), reconstructions of n fixed training images), all in [0, 1]
    snapshots: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    @property
    def history(self) -> dict:
        return self.trainer.history


def train_vae(course, vae: VAE, data: ImageData, steps: int | None = None, epochs: int | None = None,
              checkpoint: str | Path | None = None, snapshots: int = 4, n_show: int | None = None,
              train_config: TrainConfig | None = None, callback=None, retrain: bool = False) -> VAERun:
    """Train `vae` on `data` in the shared loop; keep fixed-noise samples and reconstructions `snapshots` times.

    epochs: default the profile's (when steps is not given), and at least the profile's `min_steps`
    steps; batch size: the profile's. With a `checkpoint`, `load_or_train` loads a finished run
    instead of training. `callback(trainer)` also runs at every snapshot. On a CPU it trains on one
    thread (see `train_dcgan`).
    """
    vae.to(course.device)
    n = min(n_show or course.profile.n_show, len(data))
    fixed_z = _normal((n, vae.config.z_dim), course.generator(2), vae.device)  # the same noise every time
    fixed_x = data.images[:n].to(vae.device)  # the same training images every time
    if vae.config.binarize:
        fixed_x = binarize(fixed_x, course.generator(3, device=vae.device))
    batches = data.to(course.device).batches(min(course.profile.batch_size, len(data)), seed=course.seed, labels=False)
    trainer, shots = train_with_snapshots(
        course, vae, batches, lambda: (vae.decode(fixed_z).float().cpu(), vae.reconstruct(fixed_x).float().cpu()),
        steps=steps, epochs=epochs, checkpoint=checkpoint, snapshots=snapshots, train_config=train_config,
        callback=callback, retrain=retrain)
    return VAERun(vae, trainer, shots)


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
    from ..metrics import evaluate

    train, test = course.load_data(dataset, "train"), course.load_data(dataset, "test")
    n = min(course.profile.eval_size, 300 if dataset == "digits" else 10_000)  # digits has 300 test images
    k = iwae_k(course.profile)
    quiet = TrainConfig(log_every=10, progress=False)
    out: dict = {"dataset": dataset, "train_images": len(train), "test_images": len(test)}
    vae = VAE(vae_config(course, dataset), seed=course.seed)
    run = train_vae(course, vae, train, snapshots=0, train_config=quiet)
    keep_trained(course, vae, f"vae-{dataset}-logistic256", run.trainer)
    figures = evaluate_vae(vae, test.images, k=k, generator=course.generator(4, device=course.device))
    samples = evaluate(vae.sample(n, generator=course.generator(3, device=course.device)), dataset,
                       profile=course.profile, n=n)
    binary = VAE(vae_config(course, dataset, likelihood="bernoulli"), seed=course.seed)
    binary_run = train_vae(course, binary, train, snapshots=0, train_config=quiet)
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
    out.update({key: round(samples[key], 4) for key in ("fd", "fd_floor", "precision", "recall", "coverage")})
    out["eval_n"] = samples["n"]
    return out


def bench_vae_digits(course) -> dict:
    """VAE on 8x8 digits (seconds on a CPU): the same figures as `vae`, on the digits evaluator."""
    return bench_vae(course, "digits")


BENCHMARKS = {"vae": bench_vae, "vae-digits": bench_vae_digits}
