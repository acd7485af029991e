"""The generic GAN process: any generator and discriminator, the losses on logits, one training loop.

    gan = GAN(generator, discriminator, GANConfig(z_dim=64, d_steps=2, r1=1.0, ema=0.999))
    trainer = Trainer(gan)                        # gan.phases(): k D steps per G step
    trainer.fit(data.batches(128), epochs=5)
    gan.sample(64, generator=course.generator(1)) # (64, ...) from the EMA generator if there is one

The networks are plain modules: G maps noise z (B, z_dim) to a sample, D maps a sample to one
score a per example. The process owns everything else: the noise, the losses, the penalties
(R1 on real data, the WGAN-GP penalty on interpolates), spectral norm in D, the phases, sampling
and an optional EMA copy of G. The loss family, `GANConfig(loss=...)`:

    non-saturating  D(x) = sigmoid(a); BCE for D, -log D(G(z)) for G (the default)
    saturating      the same D; G minimises log(1 - D(G(z))), the minimax game as written
    hinge           D: relu(1 - a_real) + relu(1 + a_fake); G: -a_fake
    least-squares   LSGAN: D regresses real to 1 and fake to 0; G pulls a_fake to 1
    wgan-gp         a is a critic, no sigmoid: D maximises a_real - a_fake under a gradient
                    penalty (gp > 0) that keeps it near 1-Lipschitz; G maximises a_fake

The BCE losses are written on logits, log D = -softplus(-a) and log(1 - D) = -softplus(a), so no
log of 0 is ever taken; every loss is computed in float32, also when the networks run in bf16.

A batch is a tensor of real samples, or a tuple whose first entry is (images, labels, ...). With
`GANConfig(conditional=True)` the second entry is the condition: G is called as G(z, c) and D as
D(x, c), fakes are made for the real batch's conditions, and `sample(n, cond=c)` needs one.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..train import Phase
from .base import ProcessModule

__all__ = ["GANConfig", "GAN", "LOSSES", "PROBABILITY_LOSSES", "WGAN_GP", "discriminator_loss", "generator_loss",
           "saturating_generator_loss", "hinge_discriminator_loss", "hinge_generator_loss",
           "least_squares_discriminator_loss", "least_squares_generator_loss", "wasserstein_critic_loss",
           "spectral_norm"]


# -- losses on logits ----------------------------------------------------------------------------------
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE of a real/fake classifier: -mean log D(x) - mean log(1 - D(G(z))); this is -V(D, G)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # -log sigmoid(a) = softplus(-a)


def generator_loss(fake_logits: torch.Tensor, saturating: bool = False) -> torch.Tensor:
    """Non-saturating -mean log D(G(z)) (default), or the saturating mean log(1 - D(G(z)))."""
    if saturating:
        return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(a)) = -softplus(a)
    return F.softplus(-fake_logits).mean()


def saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The minimax generator loss, mean log(1 - D(G(z))): its gradient vanishes where D rejects G's samples."""
    return generator_loss(fake_logits, saturating=True)


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """mean relu(1 - a_real) + mean relu(1 + a_fake): a margin of 1 on each side, nothing to gain past it."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """-mean a_fake: G raises D's score of its samples (also WGAN's generator loss)."""
    return -fake_scores.mean()


def least_squares_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN (Mao et al. 2017, targets b = 1 for real, a = 0 for fake): 1/2 mean (a_real - 1)^2 + 1/2 mean a_fake^2."""
    return 0.5 * (real_scores - 1).pow(2).mean() + 0.5 * fake_scores.pow(2).mean()


def least_squares_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN's generator (target c = 1): 1/2 mean (a_fake - 1)^2; its gradient grows with the distance to 1."""
    return 0.5 * (fake_scores - 1).pow(2).mean()


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """mean a_fake - mean a_real: minus the Kantorovich-Rubinstein estimate of W1 (the critic must be 1-Lipschitz)."""
    return fake_scores.mean() - real_scores.mean()


# name -> (discriminator loss (real_scores, fake_scores), generator loss (fake_scores)); each returns a scalar.
LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "non-saturating": (discriminator_loss, generator_loss),
    "saturating": (discriminator_loss, saturating_generator_loss),
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "least-squares": (least_squares_discriminator_loss, least_squares_generator_loss),
    "wgan-gp": (wasserstein_critic_loss, hinge_generator_loss),
}
PROBABILITY_LOSSES = ("non-saturating", "saturating")  # D's score is a logit: D(x) = sigmoid(a) is logged

# Gulrajani et al. 2017's recipe: GANConfig(**WGAN_GP) or DCGANConfig(**WGAN_GP, width=...).
WGAN_GP = dict(loss="wgan-gp", gp=10.0, d_steps=5, lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9))


@dataclass
class GANConfig:
    z_dim: int = 64  # size of the noise vector z ~ N(0, I)
    loss: str = "non-saturating"  # a key of LOSSES
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    d_steps: int = 1  # k discriminator steps per generator step
    r1: float = 0.0  # weight of the R1 penalty (r1 / 2) E_data ||grad_x D_logit(x)||^2; 0: none
    gp: float = 0.0  # weight of the WGAN-GP penalty gp E_xhat (||grad D(xhat)|| - 1)^2 on interpolates; 0: none
    spectral_norm: bool = False  # divide every weight of D by its largest singular value (Miyato et al. 2018)
    ema: float = 0.0  # decay of an exponential moving average of G's weights, e.g. 0.999; 0: none
    conditional: bool = False  # batches are (x, condition); G(z, c) and D(x, c)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"Unknown GAN loss {self.loss!r}. Choose one of {sorted(LOSSES)}.")
        if self.d_steps < 1:
            raise ValueError(f"d_steps must be >= 1 (discriminator steps per generator step), got {self.d_steps}.")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema is a decay in [0, 1) (0: no EMA; 0.999 is typical), got {self.ema}.")
        if self.r1 < 0 or self.gp < 0:
            raise ValueError(f"r1 and gp are penalty weights and must be >= 0, got r1={self.r1}, gp={self.gp}.")
        if self.loss == "wgan-gp" and self.gp == 0:
            raise ValueError("loss='wgan-gp' needs its gradient penalty, which keeps the critic near 1-Lipschitz: "
                             "pass gp=10.0 (the paper's weight), or use the whole recipe, GANConfig(**WGAN_GP).")


LossOnLogits = Callable[..., torch.Tensor]


def spectral_norm(net: nn.Module) -> nn.Module:
    """Reparametrise every conv and linear weight of `net` as W / sigma(W), in place; returns `net`.

    sigma(W) is the largest singular value of W reshaped to (out, in * k * k), estimated by one
    power iteration per forward pass in training mode (torch's parametrization). Draws its start
    vectors from the global generator: call it inside `seeded(...)`.
    """
    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(module)
    return net


class GAN(ProcessModule):
    """G: z (B, z_dim) [, c] -> x; D: x [, c] -> logits (B,) (any shape with one value per example).

    d_loss(real_logits, fake_logits) and g_loss(fake_logits) replace the config's losses (a lab
    plugs the student's in).
    """

    config_class = GANConfig

    def __init__(self, generator: nn.Module, discriminator: nn.Module, config: GANConfig | None = None,
                 seed: int = 0, d_loss: LossOnLogits | None = None, g_loss: LossOnLogits | None = None) -> None:
        super().__init__(config or GANConfig(), seed)
        if self.config.spectral_norm:
            with self.seeded():  # the power iteration's start vectors come from the seed
                spectral_norm(discriminator)
        self.G, self.D = generator, discriminator
        default_d, default_g = LOSSES[self.config.loss]
        self.d_loss, self.g_loss = d_loss or default_d, g_loss or default_g
        # A frozen copy of G whose weights trail G's (updated after each G step); sample() uses it.
        self.G_ema = copy.deepcopy(generator).requires_grad_(False) if self.config.ema > 0 else None

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu", **kwargs: Any) -> "GAN":
        if cls is GAN:
            raise TypeError("A GAN built from your own networks cannot rebuild them from a checkpoint: build it as "
                            "before, then call load_checkpoint(path, gan). Families such as ToyGAN rebuild themselves: "
                            "ToyGAN.from_checkpoint(path).")
        return super().from_checkpoint(path, map_location, **kwargs)  # type: ignore[return-value]

    # -- noise, networks and batches ----------------------------------------------------------------------
    def z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise (n, z_dim) on the model's device: from `generator` if given, else the training stream."""
        generator = self.noise_stream() if generator is None else generator
        return torch.randn(n, self.config.z_dim, generator=generator, device=generator.device).to(self.device)

    def from_data(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> the range G's outputs live in (identity here; a tanh generator maps [0, 1] to [-1, 1])."""
        return x

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """G's outputs -> the data's range, the inverse of `from_data`; `sample()` returns `to_data(G(z))`."""
        return x

    def generate(self, z: torch.Tensor, cond: Any = None, ema: bool = False) -> torch.Tensor:
        net = self.G_ema if ema and self.G_ema is not None else self.G
        return net(z) if cond is None else net(z, cond)

    def logits(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        out = self.D(x) if cond is None else self.D(x, cond)
        out = out.reshape(len(x), -1)  # (B, 1) or (B, 1, 1, 1) -> (B, 1)
        if out.shape[1] != 1:
            raise ValueError(f"the discriminator must return one logit per example; it returned {out.shape[1]} "
                             f"values each. End it with a layer that has one output.")
        return out[:, 0]  # (B,)

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, Any]:
        x = self.from_data(batch[0] if isinstance(batch, (tuple, list)) else batch)
        if not self.config.conditional:
            return x, None
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("This GAN is conditional (GANConfig(conditional=True)): batches must be (images, "
                             "conditions), e.g. data.batches(128) with labels=True.")
        return x, batch[1]

    # -- the two phases --------------------------------------------------------------------------------------
    def discriminator_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        c = self.config
        real, cond = self._unpack(batch)
        with torch.no_grad():  # no gradient to G in this phase
            fake = self.generate(self.z(len(real)), cond)
        real = real.detach().requires_grad_(c.r1 > 0)
        real_logits, fake_logits = self.logits(real, cond).float(), self.logits(fake, cond).float()
        loss = self.d_loss(real_logits, fake_logits)
        if c.loss in PROBABILITY_LOSSES:  # D(x) = sigmoid(a): the probability D gives to "real"
            out = {"d_real": torch.sigmoid(real_logits).mean().detach(),
                   "d_fake": torch.sigmoid(fake_logits).mean().detach()}
        else:  # a score, not a probability: log its mean
            out = {"score_real": real_logits.mean().detach(), "score_fake": fake_logits.mean().detach()}
        if c.r1 > 0:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)  # like real
            penalty = 0.5 * c.r1 * grad.float().pow(2).reshape(len(real), -1).sum(1).mean()
            loss = loss + penalty
            out["r1"] = penalty.detach()
        if c.gp > 0:
            penalty, norms = self.gradient_penalty(real.detach(), fake, cond)
            loss = loss + penalty
            out["gp"], out["grad_norm"] = penalty.detach(), norms.mean().detach()
        if c.loss == "wgan-gp":
            out["wasserstein"] = (real_logits.mean() - fake_logits.mean()).detach()  # the critic's estimate of W1
        return {"d_loss": loss, **out}

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, cond: Any = None,
                         eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(gp * mean (||grad_x D(xhat)|| - 1)^2, the norms (B,)) at xhat = eps real + (1 - eps) fake.

        eps ~ U(0, 1), one per example (B,), from the training noise stream unless given. Gulrajani
        et al. 2017: an optimal 1-Lipschitz critic has gradient norm 1 on the lines between the two
        distributions, so the penalty asks for exactly that there.
        """
        if eps is None:
            g = self.noise_stream()
            eps = torch.rand(len(real), generator=g, device=g.device).to(real.device)
        eps = eps.reshape(-1, *[1] * (real.ndim - 1)).to(real.dtype)  # (B, 1, 1, 1) for images
        xhat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)  # like real
        (grad,) = torch.autograd.grad(self.logits(xhat, cond).float().sum(), xhat, create_graph=True)  # like real
        norms = grad.float().reshape(len(xhat), -1).norm(dim=1)  # (B,)
        return self.config.gp * (norms - 1).pow(2).mean(), norms

    def generator_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        real, cond = self._unpack(batch)  # real only sets the batch size: G never sees data
        fake = self.generate(self.z(len(real)), cond)
        return {"g_loss": self.g_loss(self.logits(fake, cond).float())}

    @torch.no_grad()
    def update_ema(self) -> None:
        """G_ema <- ema * G_ema + (1 - ema) * G for weights; buffers (batchnorm statistics) are copied."""
        if self.G_ema is None:
            return
        for e, p in zip(self.G_ema.parameters(), self.G.parameters()):
            e.lerp_(p.detach(), 1.0 - self.config.ema)
        for e, b in zip(self.G_ema.buffers(), self.G.buffers()):
            e.copy_(b)

    def phases(self) -> list[Phase]:
        """The discriminator every step, the generator every d_steps-th (k D steps per G step)."""
        c = self.config
        opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr_d, betas=c.betas)
        opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr_g, betas=c.betas)
        return [Phase("d_loss", self.discriminator_loss, opt_d),
                Phase("g_loss", self.generator_loss, opt_g, every=c.d_steps,
                      after=self.update_ema if self.G_ema is not None else None)]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, cond: Any = None) -> torch.Tensor:
        """n samples from G (its EMA copy when there is one), decoded to the data's space; a generator fixes the draw."""
        if self.config.conditional and cond is None:
            raise ValueError("This GAN is conditional: pass cond=... with one condition per sample.")
        if not self.config.conditional and cond is not None:
            raise ValueError("This GAN is unconditional: sample(n) without cond (GANConfig(conditional=True) takes one).")
        return self.to_data(self.generate(self.z(n, generator), cond, ema=True))
