"""DCGAN (Radford, Metz and Chintala 2016): convolutional G and D for 28x28 and 8x8 images (lecture 03).

The paper's guidelines, each visible in the code below:
  * no pooling: D downsamples with strided convolutions, G upsamples with fractionally-strided
    (transposed) ones, so both learn their own resampling;
  * batchnorm in G (every layer but the output) and in D (every layer but the input);
  * no fully connected hidden layers: G's first layer is a transposed conv on a 1x1 "image" of
    noise (a matrix product, reshaped), D's last is a conv over the whole final feature map;
  * ReLU in G with a Tanh output, LeakyReLU(0.2) in D;
  * weights drawn from N(0, 0.02^2) (std 0.02), Adam with beta1 = 0.5. The paper's learning rate, 2e-4, is made
    for tens of thousands of steps; the course trains for a few hundred on a CPU, where 1e-3 for
    both networks gave recognisable garments after 3 epochs of 12,000 images and 2e-4 did not.

The process is the generic `GAN` (models/gan.py), so every loss of its family, the gradient
penalty, spectral norm, k D steps per G step and the EMA of G work here too. G's tanh lives in
[-1, 1]; `DCGAN` maps data batches with 2x - 1 (`from_data`) and returns `sample()` in [0, 1] with
(x + 1) / 2 (`to_data`), ready for `course_lib.metrics.evaluate`.

    gan = DCGAN(DCGANConfig(width=32), seed=0)
    gan.sample(64)                                      # (64, 1, 28, 28) in [0, 1]

The course's sizes per profile, the training driver and the bench: `course_lib/recipes/dcgan.py`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import seeded
from .gan import GAN, GANConfig, LossOnLogits

__all__ = ["DCGANConfig", "Generator", "Discriminator", "DCGAN"]


@dataclass
class DCGANConfig(GANConfig):
    lr_g: float = 1e-3  # the paper's 2e-4 needs many more steps than the cpu profile takes
    lr_d: float = 1e-3
    image_size: int = 28  # 28 (Fashion-MNIST, MNIST) or 8 (digits); must be a multiple of 4
    channels: int = 1
    width: int = 32  # w: D has w and 2w channels, G 4w and 2w; the profile's `width`
    g_batchnorm: bool = True  # ablation: False drops every batchnorm of G
    d_norm: str = "batch"  # normalisation in D: "batch" (the paper), "layer" or "none" (for the gradient penalty)
    d_pool: bool = False  # ablation: downsample in D by max pooling after a stride-1 conv, not a strided conv

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size % 4 or self.image_size < 4:
            raise ValueError(f"image_size must be a multiple of 4 (two 2x up/downsamplings), got {self.image_size}.")
        if self.d_norm not in ("batch", "layer", "none"):
            raise ValueError(f"d_norm must be 'batch', 'layer' or 'none', got {self.d_norm!r}.")
        if self.d_norm == "batch" and (self.gp > 0 or self.r1 > 0):
            raise ValueError("a gradient penalty needs each score to depend on its own image only, and batchnorm in D "
                             "mixes the images of a batch: pass d_norm='layer' (or 'none') with gp or r1.")


def _init(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02^2); norm scales ~ N(1, 0.02^2), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, C, S, S) in [-1, 1]; s = S / 4 (7 for 28x28, 2 for 8x8), w = width."""

    def __init__(self, c: DCGANConfig) -> None:
        super().__init__()
        s, w = c.image_size // 4, c.width

        def norm(ch: int) -> nn.Module:
            return nn.BatchNorm2d(ch) if c.g_batchnorm else nn.Identity()

        bias = not c.g_batchnorm  # a bias before batchnorm is cancelled by its mean subtraction
        self.net = nn.Sequential(
            nn.Unflatten(1, (c.z_dim, 1, 1)),  # (B, z_dim, 1, 1): the noise as a 1x1 image
            nn.ConvTranspose2d(c.z_dim, 4 * w, s, 1, 0, bias=bias), norm(4 * w), nn.ReLU(),  # (B, 4w, s, s)
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=bias), norm(2 * w), nn.ReLU(),  # (B, 2w, 2s, 2s)
            nn.ConvTranspose2d(2 * w, c.channels, 4, 2, 1), nn.Tanh(),  # (B, C, 4s, 4s) = (B, C, S, S)
        )
        self.apply(_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        assert z.ndim == 2, f"G takes noise of shape (B, z_dim), got {tuple(z.shape)}"
        return self.net(z)


class Discriminator(nn.Module):
    """images (B, C, S, S) in [-1, 1] -> scores (B, 1, 1, 1); s = S / 4, w = width. No sigmoid: the loss owns it."""

    def __init__(self, c: DCGANConfig) -> None:
        super().__init__()
        s, w = c.image_size // 4, c.width

        def down(c_in: int, c_out: int) -> list[nn.Module]:  # (B, c_in, 2n, 2n) -> (B, c_out, n, n)
            if c.d_pool:  # the ablation: a fixed max over 2x2 windows instead of a learned stride
                return [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.MaxPool2d(2)]
            return [nn.Conv2d(c_in, c_out, 4, 2, 1)]

        def norm(ch: int) -> list[nn.Module]:
            if c.d_norm == "batch":
                return [nn.BatchNorm2d(ch)]
            if c.d_norm == "layer":  # over (ch, n, n) of each image: no mixing across the batch
                return [nn.GroupNorm(1, ch)]
            return []

        self.net = nn.Sequential(
            *down(c.channels, w), nn.LeakyReLU(0.2),  # (B, w, 2s, 2s); no norm on the input layer
            *down(w, 2 * w), *norm(2 * w), nn.LeakyReLU(0.2),  # (B, 2w, s, s)
            nn.Conv2d(2 * w, 1, s, 1, 0),  # (B, 1, 1, 1): one score per image, a conv over the whole map
        )
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4, f"D takes images (B, C, H, W), got {tuple(x.shape)}; add .unsqueeze(1) for one channel"
        return self.net(x)


class DCGAN(GAN):
    """The generic GAN process with DCGAN's G and D; data in [0, 1], G's tanh outputs in [-1, 1].

    d_loss / g_loss replace the config's loss functions (the lab plugs the student's in).
    """

    config_class = DCGANConfig

    def __init__(self, config: DCGANConfig | None = None, seed: int = 0, d_loss: LossOnLogits | None = None,
                 g_loss: LossOnLogits | None = None) -> None:
        c = config or DCGANConfig()
        with seeded(seed):  # initial weights from `seed`, global RNG untouched
            generator, discriminator = Generator(c), Discriminator(c)
        super().__init__(generator, discriminator, c, seed=seed, d_loss=d_loss, g_loss=g_loss)

    def from_data(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1  # [0, 1] -> [-1, 1], the range of G's tanh

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2  # [-1, 1] -> [0, 1], the range of the data and of `evaluate`
