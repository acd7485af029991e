"""A GAN on toy data: the 8-Gaussian ring, small MLPs, mode metrics (lecture 01).

Three layers, as everywhere in the course:
  * the data: `Mixture` (course_lib.distributions), an explicit density that can also be sampled;
  * the networks: `mlp()` for the generator (z -> x) and the discriminator (x -> one logit);
  * the process: `ToyGAN` is the generic `GAN` (models/gan.py) with two MLPs; `Trainer` runs its phases.

    gan = ToyGAN(ToyGANConfig(pack=2), seed=0)                     # G: z (B, 2) -> x (B, 2); D judges pairs
    Trainer(gan).fit(Batches(Mixture.ring().sample(10_000), 256), steps=3000)

The ring's training driver, its mode metrics and the two configs lecture 01 compares (BASELINE,
REMEDY): `course_lib/recipes/toy_gan.py`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import seeded
from .gan import GAN, GANConfig, LossOnLogits

__all__ = ["mlp", "Packed", "ToyGANConfig", "ToyGAN"]


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
