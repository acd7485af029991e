"""The generic GAN process: any generator and discriminator, the losses on logits, one training loop.

    gan = GAN(generator, discriminator, GANConfig(z_dim=64, d_steps=2, r1=1.0, ema=0.999))
    trainer = Trainer(gan)                        # gan.phases(): k D steps per G step
    trainer.fit(data.batches(128), epochs=5)
    gan.sample(64, generator=course.generator(1)) # (64, ...) from the EMA generator if there is one

The networks are plain modules: G maps noise z (B, z_dim) to a sample, D maps a sample to one
logit a per example, D(x) = sigmoid(a). The process owns everything else: the noise, the losses,
the R1 penalty, the phases, sampling and an optional EMA copy of G. The losses are written on
logits, log D = -softplus(-a) and log(1 - D) = -softplus(a), so no log of 0 is ever taken, and
in float32 even when the networks run in bf16.

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

__all__ = ["GANConfig", "GAN", "LOSSES", "discriminator_loss", "generator_loss", "saturating_generator_loss"]


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


# name -> (discriminator loss (real_logits, fake_logits), generator loss (fake_logits)); each returns a scalar.
LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "non-saturating": (discriminator_loss, generator_loss),
    "saturating": (discriminator_loss, saturating_generator_loss),
}


@dataclass
class GANConfig:
    z_dim: int = 64  # size of the noise vector z ~ N(0, I)
    loss: str = "non-saturating"  # a key of LOSSES
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    d_steps: int = 1  # k discriminator steps per generator step
    r1: float = 0.0  # weight of the R1 penalty (r1 / 2) E_data ||grad_x D_logit(x)||^2; 0: none
    ema: float = 0.0  # decay of an exponential moving average of G's weights, e.g. 0.999; 0: none
    conditional: bool = False  # batches are (x, condition); G(z, c) and D(x, c)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"Unknown GAN loss {self.loss!r}. Choose one of {sorted(LOSSES)}.")
        if self.d_steps < 1:
            raise ValueError(f"d_steps must be >= 1 (discriminator steps per generator step), got {self.d_steps}.")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema is a decay in [0, 1) (0: no EMA; 0.999 is typical), got {self.ema}.")
        if self.r1 < 0:
            raise ValueError(f"r1 is a penalty weight and must be >= 0, got {self.r1}.")


LossOnLogits = Callable[..., torch.Tensor]


class GAN(ProcessModule):
    """G: z (B, z_dim) [, c] -> x; D: x [, c] -> logits (B,) (any shape with one value per example).

    d_loss(real_logits, fake_logits) and g_loss(fake_logits) replace the config's losses (a lab
    plugs the student's in).
    """

    config_class = GANConfig

    def __init__(self, generator: nn.Module, discriminator: nn.Module, config: GANConfig | None = None,
                 seed: int = 0, d_loss: LossOnLogits | None = None, g_loss: LossOnLogits | None = None) -> None:
        super().__init__(config or GANConfig(), seed)
        self.G, self.D = generator, discriminator
        default_d, default_g = LOSSES[self.config.loss]
        self.d_loss, self.g_loss = d_loss or default_d, g_loss or default_g
        # A frozen copy of G whose weights trail G's (updated after each G step); sample() uses it.
        self.G_ema = copy.deepcopy(generator).requires_grad_(False) if self.config.ema > 0 else None
        self._noise: torch.Generator | None = None  # the training noise stream, made on first use

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
        if generator is None:
            if self._noise is None or self._noise.device != self.device:
                self._noise = torch.Generator(device=self.device).manual_seed(self.seed + 1)
            generator = self._noise
        return torch.randn(n, self.config.z_dim, generator=generator, device=generator.device).to(self.device)

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
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not self.config.conditional:
            return x, None
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("This GAN is conditional (GANConfig(conditional=True)): batches must be (images, "
                             "conditions), e.g. data.batches(128) with labels=True.")
        return x, batch[1]

    # -- the two phases --------------------------------------------------------------------------------------
    def discriminator_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        real, cond = self._unpack(batch)
        with torch.no_grad():  # no gradient to G in this phase
            fake = self.generate(self.z(len(real)), cond)
        real = real.detach().requires_grad_(self.config.r1 > 0)
        real_logits, fake_logits = self.logits(real, cond), self.logits(fake, cond)
        loss = self.d_loss(real_logits.float(), fake_logits.float())
        out = {"d_real": torch.sigmoid(real_logits.float()).mean().detach(),
               "d_fake": torch.sigmoid(fake_logits.float()).mean().detach()}
        if self.config.r1 > 0:
            (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)  # like real
            penalty = 0.5 * self.config.r1 * grad.float().pow(2).reshape(len(real), -1).sum(1).mean()
            loss = loss + penalty
            out["r1"] = penalty.detach()
        return {"d_loss": loss, **out}

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
        """n samples from G (from the EMA copy when there is one); pass a generator for fixed draws."""
        if self.config.conditional and cond is None:
            raise ValueError("This GAN is conditional: pass cond=... with one condition per sample.")
        return self.generate(self.z(n, generator), cond, ema=True)
