"""The VQ-VAE (van den Oord et al. 2017, Neural Discrete Representation Learning) and its PixelCNN prior (lecture 07).

An encoder maps an image to a grid of vectors z_e; each is replaced by its nearest entry of a codebook
of K vectors e_1..e_K in R^D; a decoder maps the grid of chosen vectors back to an image. An image
becomes s x s integers in 0..K-1 (7 x 7 for 28 x 28 images), and a PixelCNN over those codes, a K-way
softmax per position, is the prior that makes the model generative (their section 3.3):

    x -> z_e = enc(x) (B, D, s, s) -> k = argmin_j ||z_e - e_j||^2 (B, s, s) -> z_q = e_k -> x_hat = dec(z_q)

The loss (their eq. 3), sg = stop-gradient (.detach()):

    L = reconstruction(x, x_hat) + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2
                                    codebook term       commitment term (beta = 0.25, their choice)

argmin has no gradient, so the decoder's gradient is copied onto z_e unchanged: the straight-through
estimator z_e + sg[z_q - z_e] (`straight_through`). The codebook term moves the codes towards the encoder
outputs assigned to them, the commitment term keeps the encoder near its codes. With `ema=True` the codes
are instead running means of their assigned vectors (their appendix A.1), with no codebook gradient.
Codes that nothing picks stay dead; `restart_dead=True` moves codes unused for `restart_window` steps onto
encoder outputs of the current batch. `perplexity` and `dead_codes` measure how many codes are in use.
`adaptive_weight` is VQGAN's weight of an added GAN term (Esser et al. 2021), from two gradients at the last layer.

The likelihood: the reconstruction term is the mean squared error between x in [0, 1] and the decoder's
sigmoid output, a Gaussian with a fixed variance up to a scale. We keep it because Fashion-MNIST is
grey-level (a Bernoulli would need binarised images, which lose the texture that the codes should carry),
and because the MSE in [0, 1] is the figure the lecture reports. The VQ-VAE's own score is not a
likelihood; the prior's is: bits per code = -log2 p(k) / s^2, against log2 K for the uniform prior
(s^2 log2 K bits per image, 49 log2 64 = 294 bits at K = 64).

    vq = VQVAE(VQVAEConfig(codebook_size=64), seed=0)         # Trainer(vq).fit(images)
    codes = vq.to_codes(train_images)                         # (N, 7, 7) long
    prior = PixelCNN(vq.prior_config(channels=64), seed=0)    # Trainer(prior).fit(codes[:, None] batches)
    vq.prior = prior; vq.sample(16)                           # (16, 1, 28, 28) in [0, 1]
    vq.code_conditional(codes[:1], 3, 3)                      # log p(k_33 = j | the other 48 codes): (1, K)
    vq.complete_codes(codes[:4], visible_rows=4)              # the top 4 rows kept, the rest drawn: (4, 7, 7)

The course's sizes per profile and the training drivers live a layer up, in `course_lib/recipes/`.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..train import Phase
from .base import ProcessModule
from .pixelcnn import PixelCNN, PixelCNNConfig

__all__ = ["VQVAEConfig", "Encoder", "Decoder", "Codebook", "VQVAE", "straight_through", "codebook_loss",
           "commitment_loss", "perplexity", "dead_codes", "adaptive_weight"]


@dataclass
class VQVAEConfig:
    image_size: int = 28  # a multiple of 4: two stride-2 convs give the s x s grid of codes, s = image_size / 4
    channels: int = 1
    width: int = 32  # w: the encoder has w and 2w channels, the decoder 2w and w
    code_dim: int = 16  # D: the length of each code vector
    codebook_size: int = 64  # K: the number of codes, and the prior's softmax size
    beta: float = 0.25  # weight of the commitment term (van den Oord et al. 2017)
    ema: bool = False  # codes as running means of their assigned vectors (no codebook gradient)
    ema_decay: float = 0.99  # gamma of the running means
    ema_eps: float = 1e-5  # Laplace smoothing of the running counts: no code's count reaches 0
    restart_dead: bool = False  # move codes unused for restart_window steps onto encoder outputs
    restart_window: int = 100  # training steps per dead-code check
    lr: float = 2e-3  # Adam

    def __post_init__(self) -> None:
        if self.image_size % 4 or self.image_size < 4:
            raise ValueError(f"image_size must be a multiple of 4 (two stride-2 convs: 28 -> 14 -> 7), "
                             f"got {self.image_size}.")
        if min(self.channels, self.width, self.code_dim) < 1:
            raise ValueError(f"channels, width and code_dim must be >= 1, got {self.channels}, {self.width}, "
                             f"{self.code_dim}.")
        if not 2 <= self.codebook_size <= 256:
            raise ValueError(f"codebook_size K must be between 2 and 256 (the PixelCNN prior's softmax has at most "
                             f"256 levels), got {self.codebook_size}.")
        if self.beta < 0:
            raise ValueError(f"beta weighs the commitment term and must be >= 0 (0.25 in the paper), got {self.beta}.")
        if not 0 <= self.ema_decay < 1 or not self.ema_eps > 0:
            raise ValueError(f"ema_decay must be in [0, 1) (0.99: slow running means) and ema_eps > 0 (1e-5), got "
                             f"ema_decay={self.ema_decay}, ema_eps={self.ema_eps}.")
        if self.restart_window < 1:
            raise ValueError(f"restart_window is a number of training steps and must be >= 1, "
                             f"got {self.restart_window}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")


# -- the quantiser's pieces, each a formula ---------------------------------------------------------------------
def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """z_e + sg[z_q - z_e]: the value of z_q, the gradient of z_e (the decoder's gradient is copied onto z_e;
    through this path the codebook gets none)."""
    return z_e + (z_q - z_e).detach()


def codebook_loss(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """||sg[z_e] - e||^2, the mean over elements: its gradient moves the codes only."""
    return (z_e.detach().float() - z_q.float()).pow(2).mean()


def commitment_loss(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """||z_e - sg[e]||^2, the mean over elements (the caller weighs it by beta): its gradient moves the encoder only."""
    return (z_e.float() - z_q.detach().float()).pow(2).mean()


def perplexity(codes: torch.Tensor, K: int) -> torch.Tensor:
    """exp(entropy of the histogram of codes): K when all K are used equally, 1 when one code is; float32."""
    p = torch.bincount(codes.flatten(), minlength=K).float() / codes.numel()  # (K,)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())  # 0 log 0 = 0


def dead_codes(codes: torch.Tensor, K: int) -> int:
    """How many of the K codes do not occur in `codes`."""
    return int((torch.bincount(codes.flatten(), minlength=K) == 0).sum())


def adaptive_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer_weight: torch.Tensor,
                    delta: float = 1e-4, max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN's weight of the GAN term (Esser et al. 2021, eq. 7), from the gradients at the decoder's last layer W:

        lambda = ||grad_W rec_loss|| / (||grad_W gan_loss|| + delta),   clamped to [0, max_weight], detached

    so that lambda * gan_loss pushes W as hard as the reconstruction does; delta keeps it finite when the GAN
    loss does not reach W (a discriminator switched off). Both graphs are kept (retain_graph) for the backward
    pass of the total loss that follows. Returns a float32 scalar that carries no gradient.
    """
    rec_grad = torch.autograd.grad(rec_loss, last_layer_weight, retain_graph=True)[0]  # (shape of W)
    gan_grad = None  # a GAN loss that does not reach W (a constant 0 while the discriminator is off): no push
    if torch.is_tensor(gan_loss) and gan_loss.requires_grad:
        gan_grad = torch.autograd.grad(gan_loss, last_layer_weight, retain_graph=True, allow_unused=True)[0]
    gan_norm = gan_grad.float().norm() if gan_grad is not None else torch.zeros((), device=rec_grad.device)
    return (rec_grad.float().norm() / (gan_norm + delta)).clamp(0.0, max_weight).detach()


class Codebook(nn.Module):
    """K code vectors (K, D), nearest-code quantisation, EMA updates and dead-code restarts.

    weight: a parameter (the codebook term trains it), or with ema=True a frozen one that `ema_update`
    sets to running means: sum of the assigned vectors / count of them, both averaged with `decay`.
    usage: how often each code was picked since the last `restart`; steps: the batches counted (`count_usage`),
    saved and restored with the state_dict, and counted alongside as a Python int so that training never reads
    it back from the device (one read after construction or a load_state_dict, none per step).
    """

    def __init__(self, K: int, D: int, ema: bool = False, decay: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__()
        self.K, self.D, self.ema, self.decay, self.eps = K, D, ema, decay, eps
        self.weight = nn.Parameter(torch.empty(K, D).uniform_(-1 / K, 1 / K), requires_grad=not ema)
        if ema:  # each code starts as if it had been assigned once, to itself: unused codes stay where they are
            self.register_buffer("count", torch.ones(K))  # running count N_i, (K,)
            self.register_buffer("total", self.weight.detach().clone())  # running sum m_i, (K, D)
        self.register_buffer("usage", torch.zeros(K))  # (K,)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._steps: int | None = None  # `steps` as a Python int; None: read the buffer once at the next count

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Vectors z (N, D) -> the index of the nearest code (N,), by squared distance in float32.

        ||z - e_j||^2 = ||z||^2 - 2 z.e_j + ||e_j||^2. Ties (equal distances as computed) go to the lowest
        index: torch.argmin returns the first minimum.
        """
        with torch.autocast(z.device.type, enabled=False):  # bf16 distances would pick wrong codes
            z, e = z.float(), self.weight.float()
            d = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(1)  # (N, K)
        return d.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, s, s) -> their vectors (B, D, s, s), float32."""
        return self.weight.float()[codes].permute(0, 3, 1, 2)  # (B, s, s, D) -> (B, D, s, s)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_e (B, D, s, s) -> (codes (B, s, s) long, z_q (B, D, s, s): the chosen codes' vectors, float32)."""
        b, d, h, w = z_e.shape
        assert d == self.D, f"z_e has {d} channels, the codebook's vectors {self.D}: set code_dim to match"
        z = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B s s, D): one vector per grid position
        codes = self.nearest(z).view(b, h, w)  # (B, s, s)
        return codes, self.lookup(codes)

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        """One EMA step (van den Oord et al. 2017, appendix A.1) from vectors z (N, D) and their codes (N,):

            N_i <- decay N_i + (1 - decay) n_i,      m_i <- decay m_i + (1 - decay) sum_{j: code j = i} z_j,
            e_i <- m_i / N~_i,  N~_i = (N_i + eps) / (sum N + K eps) sum N   (Laplace smoothing: N~_i > 0)
        """
        if not self.ema:
            raise RuntimeError("this codebook learns by gradient (ema=False); build it with ema=True for EMA updates.")
        one_hot = F.one_hot(codes, self.K).float()  # (N, K)
        self.count.mul_(self.decay).add_(one_hot.sum(0), alpha=1 - self.decay)  # (K,)
        self.total.mul_(self.decay).add_(one_hot.T @ z.float(), alpha=1 - self.decay)  # (K, D)
        n = self.count.sum()
        smoothed = (self.count + self.eps) / (n + self.K * self.eps) * n  # (K,)
        self.weight.copy_(self.total / smoothed[:, None])

    @torch.no_grad()
    def count_usage(self, codes: torch.Tensor) -> int:
        """Add the codes picked in a batch to `usage`, and one to `steps`; return `steps` as a Python int.

        The int is counted on the host: reading the buffer (`int(self.steps)`) would wait for the GPU every step.
        """
        self.usage += torch.bincount(codes.flatten(), minlength=self.K).to(self.usage)
        self.steps += 1
        self._steps = int(self.steps) if self._steps is None else self._steps + 1  # one read after a (re)load
        return self._steps

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._steps = None  # `steps` came from a checkpoint (a resumed run, a rollback): read it at the next count

    @torch.no_grad()
    def restart(self, z: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Move every code with usage 0 onto a vector of z (N, D), drawn without replacement where N allows;
        reset `usage`. Returns how many codes moved."""
        dead = (self.usage == 0).nonzero()[:, 0]  # (n_dead,)
        if len(dead):
            g_device = generator.device if generator is not None else z.device
            if len(dead) <= len(z):
                pick = torch.randperm(len(z), generator=generator, device=g_device)[:len(dead)]
            else:
                pick = torch.randint(len(z), (len(dead),), generator=generator, device=g_device)
            new = z[pick.to(z.device)].float().to(self.weight)  # (n_dead, D)
            self.weight[dead] = new
            if self.ema:  # a fresh running mean at the new place, as at the start
                self.count[dead] = 1.0
                self.total[dead] = new
        self.usage.zero_()
        return len(dead)


def _index(value: Any, name: str) -> int:
    """An integer argument (a Python, NumPy or 0-d tensor integer) as an int, or a ValueError naming it."""
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}.") from None


# -- the networks -----------------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """images (B, C, S, S) in [0, 1] -> z_e (B, D, s, s), s = S / 4; w = width."""

    def __init__(self, c: VQVAEConfig) -> None:
        super().__init__()
        w = c.width
        self.net = nn.Sequential(
            nn.Conv2d(c.channels, w, 4, 2, 1), nn.SiLU(),  # (B, w, 2s, 2s)
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),  # (B, 2w, s, s)
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.SiLU(),  # (B, 2w, s, s)
            nn.Conv2d(2 * w, c.code_dim, 1),  # (B, D, s, s): one vector per grid position
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4, f"the encoder takes images (B, C, H, W), got {tuple(x.shape)}; add .unsqueeze(1)"
        return self.net(2 * x - 1)  # inputs centred on 0


class Decoder(nn.Module):
    """z_q (B, D, s, s) -> logits (B, C, S, S); the image is their sigmoid. w = width."""

    def __init__(self, c: VQVAEConfig) -> None:
        super().__init__()
        w = c.width
        self.net = nn.Sequential(
            nn.Conv2d(c.code_dim, 2 * w, 3, 1, 1), nn.SiLU(),  # (B, 2w, s, s)
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.SiLU(),  # (B, w, 2s, 2s)
            nn.ConvTranspose2d(w, c.channels, 4, 2, 1),  # (B, C, S, S)
        )

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        assert z_q.ndim == 4, f"the decoder takes code vectors (B, D, s, s), got {tuple(z_q.shape)}"
        return self.net(z_q)


# -- the process ------------------------------------------------------------------------------------------------
class VQVAE(ProcessModule):
    """The VQ-VAE: encoder, codebook, decoder; and, once attached, a PixelCNN prior over its codes.

    encoder, decoder: replace the config's (a lab plugs the student's in). prior: a `PixelCNN` with
    `prior_config()` (image_size s, levels K) trained on `to_codes(images)`. It is kept out of this
    module's parameters and state_dict: it is trained and saved as a process of its own (its own phases
    and checkpoint), and attached with `vq.prior = prior` or `VQVAE(..., prior=prior)`; `.to()` leaves it.
    """

    config_class = VQVAEConfig

    def __init__(self, config: VQVAEConfig | None = None, seed: int = 0, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None, prior: PixelCNN | None = None) -> None:
        super().__init__(config or VQVAEConfig(), seed)
        c = self.config
        with self.seeded():  # initial weights from `seed`, global RNG untouched
            self.encoder = encoder or Encoder(c)
            self.codebook = Codebook(c.codebook_size, c.code_dim, c.ema, c.ema_decay, c.ema_eps)
            self.decoder = decoder or Decoder(c)
        self.prior = prior

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "prior":  # a plain reference, not a submodule (see the class docstring)
            self._check_prior(value)
            self.__dict__["prior"] = value
        else:
            super().__setattr__(name, value)

    @property
    def grid(self) -> int:
        """s: the codes of an image form an s x s grid."""
        return self.config.image_size // 4

    # -- the pieces -------------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> z_e (B, D, s, s), float32."""
        return self.encoder(x).float()

    def quantize(self, z_e: torch.Tensor) -> torch.Tensor:
        """z_e (B, D, s, s) -> the nearest codes (B, s, s), long."""
        return self.codebook(z_e)[0]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, s, s) long -> images (B, C, H, W) in [0, 1]."""
        assert codes.ndim == 3, f"decode takes codes (B, s, s), got {tuple(codes.shape)}; drop a channel axis"
        return torch.sigmoid(self.decoder(self.codebook.lookup(codes.to(self.device))).float())

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x -> decode(quantize(encode(x))): (B, C, H, W) in [0, 1]."""
        return self.decode(self.quantize(self.encode(x)))

    @torch.no_grad()
    def to_codes(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Images (N, C, H, W) -> codes (N, s, s) long on the device, `batch_size` at a time: the prior's data."""
        return torch.cat([self.quantize(self.encode(b.to(self.device))) for b in x.split(batch_size)])

    # -- training ---------------------------------------------------------------------------------------------
    def loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """reconstruction + codebook + beta commitment; the terms and the perplexity of the batch's codes, logged.

        reconstruction: the MSE in [0, 1]. codebook: ||sg[z_e] - e||^2, in the loss unless ema (logged
        either way: the mean squared quantisation error). commitment: beta ||z_e - sg[e]||^2, as in the loss.
        In training mode with gradients on (a training step, not an evaluation under no_grad) it also updates the
        EMA codebook and restarts dead codes, as configured.
        """
        c = self.config
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        z_e = self.encode(x)  # (B, D, s, s)
        codes, z_q = self.codebook(z_e)  # (B, s, s), (B, D, s, s)
        x_hat = torch.sigmoid(self.decoder(straight_through(z_e, z_q)).float())  # (B, C, H, W)
        reconstruction = (x_hat - x.float()).pow(2).mean()
        codebook, commitment = codebook_loss(z_e, z_q), c.beta * commitment_loss(z_e, z_q)
        loss = reconstruction + commitment + (0 if c.ema else codebook)
        if self.training and torch.is_grad_enabled():
            self._update_codebook(z_e.detach().permute(0, 2, 3, 1).reshape(-1, c.code_dim), codes.flatten())
        return {"loss": loss, "reconstruction": reconstruction.detach(), "codebook": codebook.detach(),
                "commitment": commitment.detach(), "perplexity": perplexity(codes, c.codebook_size)}

    def _update_codebook(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        """After a training batch's quantisation, z (N, D) and codes (N,): the EMA step, the dead-code bookkeeping."""
        c = self.config
        if c.ema:
            self.codebook.ema_update(z, codes)
        if c.restart_dead:
            steps = self.codebook.count_usage(codes)  # a Python int: no device read per step
            if steps % c.restart_window == 0:  # usage then covers the last window
                self.codebook.restart(z, self.noise_stream())

    def phases(self) -> list[Phase]:
        """One phase: Adam on the encoder, the decoder and (unless ema) the codebook."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [Phase("loss", self.loss, torch.optim.Adam(params, lr=self.config.lr))]

    # -- the prior --------------------------------------------------------------------------------------------
    def prior_config(self, **changes: Any) -> PixelCNNConfig:
        """The PixelCNNConfig of a prior over this model's codes: image_size s, levels K; `changes` set the rest."""
        if {"image_size", "levels"} & set(changes):
            raise ValueError("the prior's image_size and levels are the code grid's s and the codebook's K; "
                             "leave them out of prior_config(...).")
        return PixelCNNConfig(**{**changes, "image_size": self.grid, "levels": self.config.codebook_size})

    def _check_prior(self, prior: Any) -> None:
        if prior is None:
            return
        s, K = self.grid, self.config.codebook_size
        if not isinstance(prior, PixelCNN):
            raise TypeError(f"the prior must be a course PixelCNN over the codes, got {type(prior).__name__}. "
                            f"Build one with PixelCNN(vq.prior_config()).")
        if (prior.config.image_size, prior.config.levels) != (s, K):
            raise ValueError(f"the prior must model {s}x{s} grids of {K} codes (image_size={s}, levels={K}), got "
                             f"image_size={prior.config.image_size}, levels={prior.config.levels}. "
                             f"Build it with PixelCNN(vq.prior_config()).")

    def _need_prior(self) -> PixelCNN:
        if self.prior is None:
            raise RuntimeError("this VQ-VAE has no prior over its codes, so it cannot sample or score them: fit one, "
                               "prior = PixelCNN(vq.prior_config()) trained on vq.to_codes(images)[:, None], then "
                               "attach it: vq.prior = prior.")
        return self.prior

    def bits_per_code(self, x: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """-log2 p(codes of x) / s^2 per image (B,), under the prior; the uniform prior gives log2 K."""
        prior = self._need_prior()
        codes = self.to_codes(x)[:, None]  # (B, 1, s, s)
        return -prior.log_prob_levels(codes, labels) / (self.grid ** 2 * math.log(2))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, cond: Any = None,
               temperature: float = 1.0, progress: bool = False) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1]: codes drawn from the prior position by position, then decoded.

        cond: passed to the prior (class ids for a class-conditional PixelCNN; an unconditional one refuses it).
        temperature, progress: as in PixelCNN.sample.
        """
        codes = self._need_prior().sample_levels(n, generator, cond, temperature, progress)  # (n, 1, s, s)
        return self.decode(codes[:, 0].to(self.device))  # (n, C, H, W)

    # -- editing a grid of codes under the prior (lecture 07's code-grid explorer) ---------------------------------
    def _check_codes(self, codes: Any, what: str = "codes") -> None:
        """Raise a ValueError that says how to fix a grid of codes (B, s, s) this model cannot take."""
        s, K = self.grid, self.config.codebook_size
        if not isinstance(codes, torch.Tensor) or codes.ndim != 3 or tuple(codes.shape[1:]) != (s, s):
            got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"{what} must be grids of codes (B, {s}, {s}), got {got}. vq.to_codes(images) gives "
                             f"them; take [:, 0] of the prior's (B, 1, {s}, {s}) levels.")
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"{what} must be integer codes (a long tensor), got {codes.dtype}: use .long().")
        lo, hi = torch.stack(torch.aminmax(codes)).tolist()
        if lo < 0 or hi >= K:
            raise ValueError(f"{what} must be codes in 0..{K - 1} (codebook_size K = {K}), got values in [{lo}, {hi}].")

    @torch.no_grad()
    def code_conditional(self, codes: torch.Tensor, row: int, col: int, labels: Any = None) -> torch.Tensor:
        """log p(k_{row,col} = j | all the other codes) under the prior, for j = 0..K-1: log-probs (B, K), float32.

        Exact, from the joint: p(j | rest) = p(grid with j at (row, col)) / sum_j' p(grid with j' there).
        The PixelCNN's own softmax at (row, col) is p(j | the codes before it) only; the codes after it
        depend on j too, and the joint counts them. One batched forward of the B K grids that differ
        at (row, col) only (K = 64: 64 grids per image), then a log-softmax over j.
        labels: as in bits_per_code (a class-conditional prior's classes, one per image).
        """
        prior = self._need_prior()
        self._check_codes(codes)
        s, K = self.grid, self.config.codebook_size
        row, col = _index(row, "row"), _index(col, "col")
        if not (0 <= row < s and 0 <= col < s):
            raise ValueError(f"row and col must pick a cell of the {s}x{s} grid (each in 0..{s - 1}), got "
                             f"row={row}, col={col}.")
        b = len(codes)
        grids = codes.to(prior.device).repeat_interleave(K, 0)  # (B K, s, s): K copies of each grid
        grids[:, row, col] = torch.arange(K, device=grids.device).repeat(b)  # copy j holds code j at (row, col)
        labels = None if labels is None else prior.class_ids(labels, b).repeat_interleave(K)  # (B K,)
        was = prior.training
        prior.eval()
        try:
            log_joint = prior.log_prob_levels(grids[:, None], labels).view(b, K)  # log p(grid_j): (B, K)
        finally:
            prior.train(was)
        return torch.log_softmax(log_joint, dim=1)  # log p(grid_j) - log sum_j' p(grid_j'): (B, K)

    def complete_codes(self, codes: torch.Tensor, visible_rows: int, generator: torch.Generator | None = None,
                       temperature: float = 1.0, cond: Any = None) -> torch.Tensor:
        """Keep the first `visible_rows` rows of the grids (B, s, s) exactly, draw the rest from the prior given them.

        p(codes below | codes above), code by code as PixelCNN.complete draws pixels; decode the result to see
        it. Returns codes (B, s, s) long on the prior's device. temperature, cond: as in `sample`.
        """
        prior = self._need_prior()
        self._check_codes(codes)
        s, visible_rows = self.grid, _index(visible_rows, "visible_rows")
        if not 0 <= visible_rows <= s:
            raise ValueError(f"visible_rows is the number of rows of codes kept from the top, between 0 (draw the "
                             f"whole grid) and {s} (keep it all); got {visible_rows}.")
        was = prior.training
        prior.eval()
        try:
            y = prior.class_ids(cond, len(codes), "cond")
            k = codes.to(prior.device).clone()[:, None]  # (B, 1, s, s): the prior's levels, filled in place
            prior._fill(k, visible_rows, generator, temperature, y, False)
        finally:
            prior.train(was)
        return k[:, 0]  # (B, s, s)
