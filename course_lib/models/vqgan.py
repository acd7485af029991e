"""VQGAN in miniature (Esser et al. 2021, Taming Transformers): a trained VQ-VAE's decoder, fine-tuned with a
patch-level adversarial loss (lecture 07).

The VQ-VAE's decoder is trained for the mean squared error, and under a squared error the best guess of an
uncertain edge is the average of its possible places: a blur. VQGAN adds a discriminator that scores each
patch of an image as real or decoded, and trains the decoder to fool it as well as to reconstruct:

    codes k = quantize(enc(x)) (B, s, s), fixed -> x_hat = dec(e_k) -> L_dec = ||x - x_hat||^2 + lambda L_gan(D(x_hat))

Only the decoder learns here: the encoder and the codebook are frozen copies of the trained VQ-VAE's, so an
image's codes never change, and so neither does a prior fitted on them. lambda is VQGAN's adaptive weight
(their eq. 7, `adaptive_weight` in vqvae.py), the ratio of the two terms' gradient norms at the decoder's last
layer W, times `gan_weight`:

    lambda = gan_weight ||grad_W L_rec|| / (||grad_W L_gan|| + delta)

so the GAN term pushes W about as hard as the reconstruction does, whatever the scale of the discriminator's
scores. `adaptive=False` fixes lambda = gan_weight instead (the ablation). The discriminator is lecture 03's
DCGAN D with its last layer, a conv over the whole feature map (one score per image), replaced by a 3x3 conv
with one output channel: a grid of scores, one per overlapping 18x18 patch (`PatchDiscriminator`; Isola et
al. 2017's PatchGAN). It trains from step 0; the decoder's GAN term is off for the first `disc_start` steps.

    vqgan = VQGAN(vq, VQGANConfig(), seed=0)      # copies vq: vq itself is left as it was
    Trainer(vqgan).fit(image_batches, steps=300)   # phases: d_loss, then loss (the decoder's)
    vqgan.reconstruct(x)                           # (B, C, H, W) in [0, 1], through the fine-tuned decoder
    vqgan.sample(16)                               # vq's prior's codes, decoded by the fine-tuned decoder

`VQGANConfig(gan=False)` is the control: the same decoder, the same optimiser and batches, the reconstruction
loss only. The course's driver, the control and the sharpness figures: `course_lib/recipes/vqgan.py`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..train import Phase
from .base import ProcessModule
from .gan import LOSSES
from .vqvae import VQVAE, adaptive_weight

__all__ = ["VQGANConfig", "PatchDiscriminator", "VQGAN", "last_layer_weight"]

GAN_LOSSES = ("hinge", "non-saturating", "least-squares")  # keys of gan.LOSSES that need no gradient penalty


@dataclass
class VQGANConfig:
    gan: bool = True  # False: the control, the reconstruction loss only (no discriminator phase)
    disc_width: int = 32  # w: D has w and 2w channels
    disc_norm: str = "batch"  # "batch" (DCGAN's D) or "none"; not a per-image norm, which mixes the patches
    loss: str = "hinge"  # the GAN loss, a key of gan.LOSSES (VQGAN uses hinge)
    disc_start: int = 0  # decoder steps with the GAN term off (D trains from step 0)
    gan_weight: float = 1.0  # the multiplier on the adaptive lambda; lambda itself when adaptive=False
    adaptive: bool = True  # lambda from the gradient norms at the decoder's last layer (VQGAN eq. 7)
    max_weight: float = 1e4  # adaptive lambda's ceiling (a D whose gradient vanishes would make it huge)
    lr: float = 3e-4  # Adam, the decoder (1e-3 sharpened more, to speckled textures and MSE +43% in 200 cpu steps)
    lr_d: float = 3e-4  # Adam, the discriminator
    betas: tuple[float, float] = (0.5, 0.9)  # VQGAN's, for both

    def __post_init__(self) -> None:
        if self.loss not in GAN_LOSSES:
            raise ValueError(f"loss must be one of {GAN_LOSSES}, got {self.loss!r} (VQGAN uses 'hinge').")
        if self.disc_norm not in ("batch", "none"):
            raise ValueError(f"disc_norm must be 'batch' or 'none', got {self.disc_norm!r}: a per-image norm "
                             f"('layer') mixes every patch of an image, so its scores would not be local.")
        if self.disc_width < 1:
            raise ValueError(f"disc_width must be >= 1, got {self.disc_width}.")
        if self.disc_start < 0:
            raise ValueError(f"disc_start is a number of decoder steps and must be >= 0, got {self.disc_start}.")
        if self.gan_weight < 0 or not self.max_weight > 0:
            raise ValueError(f"gan_weight must be >= 0 (0 switches the GAN term off) and max_weight > 0, got "
                             f"gan_weight={self.gan_weight}, max_weight={self.max_weight}.")
        if not (self.lr > 0 and self.lr_d > 0):
            raise ValueError(f"lr and lr_d must be > 0, got lr={self.lr}, lr_d={self.lr_d}.")


# -- the network ------------------------------------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """images (B, C, S, S) in [-1, 1] -> patch scores (B, 1, S/4, S/4); w = width. No sigmoid: the loss owns it.

    Lecture 03's DCGAN D up to its last layer; then a 3x3 conv with one output channel instead of the conv over
    the whole map. Each score sees an 18 x 18 patch (receptive field 4, then 4 + 3*2 = 10, then 10 + 2*4 = 18).
    """

    def __init__(self, channels: int = 1, width: int = 32, norm: str = "batch") -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, w, S/2, S/2); no norm on the input layer
            nn.Conv2d(w, 2 * w, 4, 2, 1), *([nn.BatchNorm2d(2 * w)] if norm == "batch" else []),
            nn.LeakyReLU(0.2),  # (B, 2w, S/4, S/4)
            nn.Conv2d(2 * w, 1, 3, 1, 1),  # (B, 1, S/4, S/4): one score per patch
        )
        for m in self.modules():  # DCGAN's initialisation: N(0, 0.02^2) weights, norm scales N(1, 0.02^2)
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4, f"D takes images (B, C, H, W), got {tuple(x.shape)}; add .unsqueeze(1) for one channel"
        return self.net(x)


def last_layer_weight(decoder: nn.Module) -> nn.Parameter:
    """The weight W of the decoder's last layer (the last registered module with a weight): where lambda is measured."""
    weights = [m.weight for m in decoder.modules() if isinstance(getattr(m, "weight", None), nn.Parameter)]
    if not weights:
        raise ValueError(f"{type(decoder).__name__} has no layer with a weight, so VQGAN's adaptive lambda has no "
                         f"last layer to measure gradients at; pass VQGANConfig(adaptive=False) for a fixed lambda.")
    return weights[-1]


# -- the process ------------------------------------------------------------------------------------------------
class VQGAN(ProcessModule):
    """A trained VQVAE's decoder fine-tuned with a patch GAN; its encoder and codebook frozen.

    vq: the trained VQ-VAE. It is copied (`self.vq`), so fine-tuning leaves it unchanged and two VQGANs (the GAN
    and its control) can start from the same one; its prior, if attached, is shared, not copied.
    """

    config_class = VQGANConfig

    def __init__(self, vq: VQVAE, config: VQGANConfig | None = None, seed: int = 0) -> None:
        if not isinstance(vq, VQVAE):
            raise TypeError(f"VQGAN fine-tunes a trained course VQVAE's decoder, got {type(vq).__name__}; train one "
                            f"first with train_vqvae(course, VQVAE(vqvae_config(course)), data).")
        super().__init__(config or VQGANConfig(), seed)
        c = self.config
        self.vq = copy.deepcopy(vq, memo={id(vq.prior): vq.prior})  # memo: the prior is shared, not copied
        self.vq.encoder.requires_grad_(False)  # frozen: an image's codes stay what they were
        self.vq.codebook.requires_grad_(False)
        self.vq.decoder.requires_grad_(True)  # what trains
        with self.seeded():  # initial weights from `seed`, global RNG untouched
            self.D = PatchDiscriminator(vq.config.channels, c.disc_width, c.disc_norm)
        self.d_loss, self.g_loss = LOSSES[c.loss]
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # decoder steps taken (for disc_start)

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu", **kwargs: Any) -> "VQGAN":
        raise TypeError("A VQGAN is built around a trained VQVAE, which its checkpoint cannot rebuild: build it as "
                        "before, VQGAN(vq, config, seed), then call load_checkpoint(path, vqgan).")

    # -- the frozen part and the fine-tuned decoder ---------------------------------------------------------------
    @torch.no_grad()
    def to_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> their codes (B, s, s), long: the frozen encoder and codebook."""
        return self.vq.quantize(self.vq.encode(x.to(self.device)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, s, s) long -> images (B, C, H, W) in [0, 1], through the fine-tuned decoder."""
        return self.vq.decode(codes)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [0, 1] -> decode(to_codes(x)), (B, C, H, W) in [0, 1]."""
        assert x.ndim == 4, f"reconstruct takes images (B, C, H, W), got {tuple(x.shape)}; add .unsqueeze(1)"
        return self.decode(self.to_codes(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, cond: Any = None, **kwargs: Any) -> torch.Tensor:
        """n images: codes from the VQ-VAE's prior (see VQVAE.sample), decoded by the fine-tuned decoder."""
        return self.vq.sample(n, generator, cond, **kwargs)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> D's patch scores (B, 1, s, s), float32."""
        return self.D(2 * x - 1).float()  # D sees [-1, 1], as in lecture 03

    # -- the two phases ---------------------------------------------------------------------------------------
    def _images(self, batch: Any) -> torch.Tensor:
        x, c = batch[0] if isinstance(batch, (tuple, list)) else batch, self.vq.config
        if x.ndim != 4 or x.shape[1:] != (c.channels, c.image_size, c.image_size):
            raise ValueError(f"VQGAN's batches are images (B, {c.channels}, {c.image_size}, {c.image_size}) in [0, 1] "
                             f"like its VQ-VAE's, got {tuple(x.shape)}.")
        return x.float()

    def discriminator_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """The patch D's loss: each patch of a real image is 'real', each patch of a reconstruction 'fake'."""
        x = self._images(batch)
        with torch.no_grad():  # no gradient to the decoder in this phase
            x_hat = self.reconstruct(x)
        real, fake = self.scores(x), self.scores(x_hat)  # (B, 1, s, s) each
        return {"d_loss": self.d_loss(real, fake), "score_real": real.mean().detach(),
                "score_fake": fake.mean().detach()}

    def decoder_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """MSE + lambda L_gan; logs the reconstruction term, the GAN term and lambda (0 before disc_start)."""
        c = self.config
        x = self._images(batch)
        x_hat = self.reconstruct(x)  # (B, C, H, W): codes under no_grad, the decoder with gradients
        reconstruction = (x_hat - x).pow(2).mean()
        if not c.gan:  # the control: exactly the VQ-VAE's reconstruction term
            return {"loss": reconstruction, "reconstruction": reconstruction.detach()}
        gan = self.g_loss(self.scores(x_hat))  # the mean over patches and images
        if int(self.steps) < c.disc_start or c.gan_weight == 0:
            lam = torch.zeros((), device=x.device)
        elif c.adaptive:  # VQGAN eq. 7: ||grad_W rec|| / (||grad_W gan|| + delta), at the last layer W
            lam = c.gan_weight * adaptive_weight(reconstruction, gan, last_layer_weight(self.vq.decoder),
                                                 max_weight=c.max_weight)
        else:
            lam = torch.tensor(c.gan_weight, device=x.device)
        return {"loss": reconstruction + lam * gan, "reconstruction": reconstruction.detach(),
                "gan": gan.detach(), "lambda": lam.float()}

    def _count_step(self) -> None:
        self.steps += 1

    def phases(self) -> list[Phase]:
        """The discriminator (unless gan=False), then the decoder; Adam on each, the frozen parts untouched."""
        c = self.config
        opt = torch.optim.Adam(self.vq.decoder.parameters(), lr=c.lr, betas=c.betas)
        decoder = Phase("loss", self.decoder_loss, opt, after=self._count_step)
        if not c.gan:
            return [decoder]
        opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr_d, betas=c.betas)
        return [Phase("d_loss", self.discriminator_loss, opt_d), decoder]
