"""The variational autoencoder (Kingma and Welling 2014; Rezende et al. 2014), conv nets for 28x28 and 8x8 (lecture 05).

Three pieces, each swappable:
  * the networks: `Encoder`, images -> (mu, log sigma^2) of q(z|x) = N(mu, diag sigma^2), and
    `Decoder`, z -> the parameters of p(x|z), `n_params` values per pixel;
  * the likelihood p(x|z) (`models/likelihoods.py`; `VAEConfig(likelihood=...)` picks one by name):
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

Bits/dim = -ELBO / (D ln 2), D = C H W, is defined for the 256-level likelihood only: it bounds the
bits a lossless code built on the model would spend per pixel (digits, k/16, count 256 levels too).

    vae = VAE(VAEConfig(z_dim=16), seed=0)
    vae.bits_per_dim(test_images).mean(); vae.sample(64)      # (B,) bits; (64, 1, 28, 28) in [0, 1]

The course's sizes per profile, the training driver, `evaluate_vae` and the bench: `course_lib/recipes/vae.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..train import Phase
from .base import ProcessModule
from .likelihoods import LOG_2PI, Bernoulli, DiscretizedLogistic, Gaussian, Likelihood, _normal, binarize

__all__ = ["VAEConfig", "LIKELIHOODS", "Encoder", "Decoder", "VAE", "gaussian_kl"]

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

    @property
    def pixels(self) -> int:
        """D = C H W, the dimensions that bits/dim divides by."""
        return self.config.channels * self.config.image_size ** 2

    # -- the pieces -----------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) in [0, 1] -> the posterior's mean and log-variance, each (B, z_dim), float32."""
        mu, logvar = self.encoder(x)
        return mu.float(), logvar.float()

    @torch.no_grad()
    def match_prior_scale(self, images: torch.Tensor, batch_size: int = 1000,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Rescale the latent space so that the aggregate posterior has the prior's scale: E[mu^2 + sigma^2] = 1
        in every dimension, over `images` (the training images). Returns the factors c, (z_dim,).

        Mapping z -> c z (mu -> c mu, sigma -> c sigma) while the decoder's first layer takes z / c leaves
        p(x|z) and so the reconstruction term unchanged; only the KL moves. Per dimension, with
        m = E[mu^2 + sigma^2], KL(c) = 1/2 (c^2 m - 1 - E log sigma^2 - 2 log c), least at c = m^(-1/2): the
        ELBO rises by 1/2 (m - 1 - log m) >= 0 nats a dimension. Gradient descent follows this direction
        slowly (it moves the encoder's two heads and the decoder's first layer together), so a trained VAE
        is often left with codes spread wider than the prior, and prior samples land where the decoder saw
        none. Needs the course's Encoder and Decoder (a linear last and first layer).
        """
        if not (isinstance(self.encoder, Encoder) and isinstance(self.decoder, Decoder)):
            raise TypeError("match_prior_scale rescales the course's Encoder and Decoder (a linear last and first "
                            "layer); a VAE with other networks must rescale its own.")
        head, first = self.encoder.net[-1], self.decoder.net[0]
        was_training = self.training
        self.eval()
        second = torch.zeros(self.config.z_dim, dtype=torch.float64, device=self.device)
        for x in images.split(batch_size):
            x = x.to(self.device)
            if self.config.binarize:  # the data the model trains on
                x = binarize(x, generator)
            mu, logvar = self.encode(x)  # (B, z_dim) each
            second += (mu.double().pow(2) + logvar.double().exp()).sum(0)
        c = (second / len(images)).rsqrt().float()  # (z_dim,)
        d = self.config.z_dim
        head.weight[:d] *= c[:, None].to(head.weight.dtype)  # the mean head: mu -> c mu
        head.bias[:d] *= c.to(head.bias.dtype)
        head.bias[d:] += 2 * c.log().to(head.bias.dtype)  # the log-variance head: sigma -> c sigma
        first.weight /= c[None, :].to(first.weight.dtype)  # the decoder sees z / c: the same p(x|z)
        self.train(was_training)
        return c

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
    def sample(self, n: int, generator: torch.Generator | None = None, cond: Any = None,
               mean: bool = True) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] from z ~ N(0, I): the decoder's mean (default), or a draw x ~ p(x|z).

        cond: this VAE is unconditional; the argument is there so every family samples with one signature.
        """
        if cond is not None:
            raise ValueError("this VAE is unconditional: sample(n) without cond (its decoder sees z only).")
        generator = generator or self.noise_stream()
        params = self.decoder(_normal((n, self.config.z_dim), generator, self.device))
        return (self.likelihood.mean(params) if mean else self.likelihood.sample(params, generator)).float()
