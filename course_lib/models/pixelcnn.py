"""PixelCNN (van den Oord et al. 2016a) and the gated PixelCNN (2016b), for 28x28 and 8x8 (lecture 06).

2016a: Pixel Recurrent Neural Networks (masked convs, types A and B). 2016b: Conditional Image
Generation with PixelCNN Decoders (vertical and horizontal stacks, gated units, class conditioning).

An autoregressive model writes p(x) exactly, one pixel at a time in raster order (row by row, left to right):

    log p(x) = sum_i log p(x_i | x_1, ..., x_{i-1}),     D = H W terms for a one-channel image

Each conditional is a `levels`-way softmax over the pixel's intensities (256 by default). One pass of
a *causal* network gives all D conditionals at once: its output at pixel i may depend on the input
pixels before i only. `causality_violations` / `check_causal` check that with autograd on any network.

Three pieces:
  * masks and layers: `mask(kind, k)`, the (k, k) raster-order mask (type A hides the centre pixel, B
    shows it), `MaskedConv2d`, and `GatedBlock`, a vertical and a horizontal stack (2016b, fig. 2);
  * the networks, images (B, 1, H, W) centred on 0 -> logits (B, levels, H, W):
        plain   a masked 7x7 conv of type A, then 3x3 convs of type B. Its receptive field has a blind
                spot: pixels above and to the right of i that no path reaches (`receptive_field` shows it)
        gated   gated blocks; the vertical stack sees whole rows above, so no blind spot
  * the process `PixelCNN`: log_prob(x), bits_per_dim(x), sample(n), complete(x, visible_rows), phases().

Levels instead of images: `log_prob_levels(k)` and `sample_levels(n)` take and give the integer levels
k (B, 1, H, W) in 0..L-1 themselves, and `loss` takes a batch of integer tensors as levels. That is what a
prior over discrete codes needs (lecture 07: the VQ-VAE's 7x7 grid of codes, L = K): the images' methods
are these plus the rounding k = round(x (L - 1)) and the division k / (L - 1). The network still sees each
level as the number 2 k / (L - 1) - 1, an order that codes do not have; it learns them all the same.

Discretisation: x in [0, 1] becomes the level k = round(x (L - 1)), L = config.levels. With L = 256 on
8-bit data (Fashion-MNIST: x = k / 255) that is exact, and bits/dim = -log p(x) / (D ln 2) is the
standard figure. With fewer levels it is the bits/dim of the L-level quantisation of the data: at most
log2 L, not comparable with 256-level figures (the bench reports `levels` next to `test_bpd`). Digits
are k / 16 (17 levels), which the same rounding places on the 256-level grid, as in vae.py.

Sampling takes H W steps, one per pixel, under no_grad. Only what the next pixel needs is computed: the
vertical stack sees finished rows only, so it runs once per row (on the rows that reach it), and the
horizontal stack runs per pixel on its row up to that pixel; a test checks these logits against the full pass.

    model = PixelCNN(PixelCNNConfig(channels=32, n_layers=5), seed=0)
    model.bits_per_dim(test_images).mean(); model.sample(16, progress=True); model.complete(x, visible_rows=14)

The course's sizes per profile (`Profile.pixelcnn_*`), the training driver, `evaluate_bpd` and the
bench: `course_lib/recipes/pixelcnn.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..train import Phase
from .base import ProcessModule

__all__ = ["PixelCNNConfig", "mask", "MaskedConv2d", "gate", "GatedBlock", "Head", "PlainNet", "GatedNet", "NETWORKS",
           "PixelCNN", "receptive_field", "causality_violations", "check_causal"]


@dataclass
class PixelCNNConfig:
    image_size: int = 28  # 28 (Fashion-MNIST) or 8 (digits); images have one channel
    variant: str = "gated"  # "gated" (no blind spot) or "plain" (stacked masked convs, with the blind spot)
    levels: int = 256  # L: the softmax's intensities; bits/dim is the standard one for 256
    channels: int = 64  # hidden channels of every layer
    n_layers: int = 8  # the first (type A) layer included
    kernel_size: int = 3  # the later layers' kernel
    first_kernel: int = 7  # the first layer's kernel (type A)
    n_classes: int | None = None  # class-conditional p(x | y) with this many classes; None: p(x)
    lr: float = 1e-3  # Adam

    def __post_init__(self) -> None:
        if self.variant not in NETWORKS:
            raise ValueError(f"Unknown variant {self.variant!r}. Choose one of {sorted(NETWORKS)}.")
        if not 2 <= self.levels <= 256:
            raise ValueError(f"levels must be between 2 and 256 (256: 8-bit data), got {self.levels}.")
        for name in ("kernel_size", "first_kernel"):
            k = getattr(self, name)
            if k < 3 or k % 2 == 0:
                raise ValueError(f"{name} must be odd and >= 3 (a centre pixel and a neighbour each side), got {k}.")
        if self.n_layers < 1 or self.channels < 1 or self.image_size < 1:
            raise ValueError(f"n_layers, channels and image_size must be >= 1, got {self.n_layers}, {self.channels}, "
                             f"{self.image_size}.")
        if self.n_classes is not None and self.n_classes < 1:
            raise ValueError(f"n_classes is the number of classes to condition on (or None), got {self.n_classes}.")


# -- masks and layers -----------------------------------------------------------------------------------------------
def mask(kind: str, kernel_size: int) -> torch.Tensor:
    """The (k, k) mask of a causal conv: 1 on the pixels before the centre in raster order, 0 after.

    Type A (the first layer, which sees the image) also hides the centre: output i must not see x_i.
    Type B (later layers, which see features) shows it: feature i already depends only on x_<i.
    """
    if kind not in ("A", "B"):
        raise ValueError(f"kind must be 'A' (first layer: hides the centre) or 'B' (later layers), got {kind!r}.")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd so the kernel has a centre pixel, got {kernel_size}.")
    c = kernel_size // 2
    m = torch.zeros(kernel_size, kernel_size)
    m[:c] = 1  # the rows above
    m[c, :c] = 1  # the centre row, left of the centre
    if kind == "B":
        m[c, c] = 1
    return m


class MaskedConv2d(nn.Conv2d):
    """A k x k conv (padding k // 2, so H and W are kept) whose weights are multiplied by `mask(kind, k)`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, kind: str, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.kind = kind
        self.register_buffer("mask", mask(kind, kernel_size), persistent=False)  # from `kind`, never saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def gate(x: torch.Tensor) -> torch.Tensor:
    """(B, 2c, ...) -> tanh(a) * sigmoid(b), (B, c, ...): the gated activation (2016b, eq. 2)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedBlock(nn.Module):
    """One layer of the gated PixelCNN: a vertical stack over the rows above, a horizontal stack along the row.

    vertical: a (p+1, k) conv padded p rows on top: feature (i, j) sees rows i-p..i, columns j-p..j+p.
        It sees pixels at and after (i, j), so it never feeds the output directly: shifted down one row
        (row i gets row i-1), it feeds the horizontal stack through a 1x1 conv.
    horizontal: a (1, p+1) conv padded p columns on the left: columns j-p..j; in the first layer (type A)
        a (1, p) conv shifted one column right: columns j-p..j-1, so x_ij is never seen. A residual
        connection around it from the second layer on.
    class conditioning: an embedding of the label added inside both gates (2016b, eq. 4).
    """

    def __init__(self, c_in: int, c: int, kernel_size: int, first: bool, n_classes: int | None = None) -> None:
        super().__init__()
        p = kernel_size // 2
        self.p, self.first, self.c = p, first, c
        self.v_conv = nn.Conv2d(c_in, 2 * c, (p + 1, kernel_size))
        self.h_conv = nn.Conv2d(c_in, 2 * c, (1, p if first else p + 1))
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)
        self.embed = nn.Embedding(n_classes, 4 * c) if n_classes else None

    def condition(self, labels: torch.Tensor | None) -> tuple[Any, Any]:
        """labels (B,) -> the terms the gates add: (B, 2c, 1, 1) for each stack, or zeros."""
        if self.embed is None or labels is None:
            return 0, 0
        cv, ch = self.embed(labels)[:, :, None, None].chunk(2, dim=1)
        return cv, ch

    def vertical(self, v: torch.Tensor, cv: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """v (B, c_in, H, W) -> (the pre-gate features (B, 2c, H, W), the stack's output (B, c, H, W))."""
        f = self.v_conv(F.pad(v, (self.p, self.p, self.p, 0)))  # pad left, right, top: (B, 2c, H, W)
        return f, gate(f + cv)

    def down(self, f: torch.Tensor) -> torch.Tensor:
        """Vertical features (B, 2c, H, W) -> what the horizontal stack gets: row i from row i-1 (row 0: zeros)."""
        return self.v_to_h(F.pad(f, (0, 0, 1, 0))[:, :, :-1])

    def horizontal(self, h: torch.Tensor, from_v: torch.Tensor, ch: Any) -> torch.Tensor:
        """h (B, c_in, H, W), from_v (B, 2c, H, W) -> (B, c, H, W). Output column j sees columns <= j only."""
        f = self.h_conv(F.pad(h, (self.p, 0)))  # (B, 2c, H, W), or W + 1 columns in the first layer ...
        if self.first:
            f = f[..., :-1]  # ... cut back to W: column j now sees j-p..j-1
        out = self.h_out(gate(f + from_v + ch))  # (B, c, H, W)
        return out if self.first else h + out


class Head(nn.Module):
    """Features (B, c, H, W) -> logits (B, levels, H, W), pixel by pixel: ReLU, c -> c, ReLU, c -> levels.

    Linear layers on channels-last features: the logits come out as a (B, H, W, L) tensor seen as
    (B, L, H, W), so the softmax over L reads contiguous memory (a third faster on a CPU than 1x1 convs).
    """

    def __init__(self, c: int, levels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Linear(c, c), nn.ReLU(), nn.Linear(c, levels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, H, W, L) viewed as (B, L, H, W)


# -- the networks ---------------------------------------------------------------------------------------------------
# Both map images (B, 1, H, W) on [-1, 1] and labels (B,) or None to logits (B, L, H, W), and give the sampler
# the logits of one pixel cheaply: begin_row(x, i) once per row, then pixel_logits(x, i, j, state) per pixel.
class PlainNet(nn.Module):
    """PixelCNN (2016a): MaskedConv2d 7x7 A, then n_layers - 1 ReLU + 3x3 B convs; labels add a bias per layer."""

    def __init__(self, c: PixelCNNConfig) -> None:
        super().__init__()
        w = c.channels
        self.convs = nn.ModuleList([MaskedConv2d(1, w, c.first_kernel, "A")] +
                                   [MaskedConv2d(w, w, c.kernel_size, "B") for _ in range(c.n_layers - 1)])
        self.embed = nn.ModuleList(nn.Embedding(c.n_classes, w) for _ in self.convs) if c.n_classes else None
        self.head = Head(w, c.levels)
        # output row i sees input rows i - rows_above .. i: the sampler runs on that window only
        self.rows_above = c.first_kernel // 2 + (c.n_layers - 1) * (c.kernel_size // 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        for n, conv in enumerate(self.convs):
            h = conv(h if n == 0 else F.relu(h))  # (B, w, H, W)
            if self.embed is not None and labels is not None:
                h = h + self.embed[n](labels)[:, :, None, None]
        return self.head(h)  # (B, L, H, W)

    def begin_row(self, x: torch.Tensor, i: int, labels: torch.Tensor | None = None) -> None:
        return None

    def pixel_logits(self, x: torch.Tensor, i: int, j: int, state: None, labels: torch.Tensor | None = None):
        """The logits (B, L) of pixel (i, j), from the rows that can reach it (masks hide the rows below)."""
        lo = max(0, i - self.rows_above)
        return self(x[:, :, lo:i + 1], labels)[:, :, -1, j]


class GatedNet(nn.Module):
    """Gated PixelCNN (2016b): n_layers GatedBlocks (the first of type A), then a 1x1 head on the horizontal stack."""

    def __init__(self, c: PixelCNNConfig) -> None:
        super().__init__()
        w = c.channels
        self.blocks = nn.ModuleList(
            [GatedBlock(1, w, c.first_kernel, True, c.n_classes)] +
            [GatedBlock(w, w, c.kernel_size, False, c.n_classes) for _ in range(c.n_layers - 1)])
        self.head = Head(w, c.levels)
        # r: how far the receptive field reaches, left, right and up; the vertical stack adds a row (the shift)
        self.reach = c.first_kernel // 2 + (c.n_layers - 1) * (c.kernel_size // 2)
        self.rows_above = self.reach + 1

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        v = h = x  # (B, 1, H, W)
        for block in self.blocks:
            cv, ch = block.condition(labels)
            f, v = block.vertical(v, cv)  # (B, 2w, H, W), (B, w, H, W)
            h = block.horizontal(h, block.down(f), ch)  # (B, w, H, W)
        return self.head(h)  # (B, L, H, W)

    def begin_row(self, x: torch.Tensor, i: int, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """What the rows above give row i's horizontal stack, per block (B, 2w, 1, W): computed once per row."""
        b, _, _, width = x.shape
        v = x[:, :, max(0, i - self.rows_above):i]  # the finished rows that reach row i
        out = []
        for block in self.blocks:
            if i == 0:  # no rows above: the shift brings zeros
                f = x.new_zeros(b, 2 * block.c, 1, width)
            else:
                f, v = block.vertical(v, block.condition(labels)[0])
            out.append(block.v_to_h(f[:, :, -1:]))  # row i - 1 of the features, shifted to row i
        return out

    def pixel_logits(self, x: torch.Tensor, i: int, j: int, state: list[torch.Tensor],
                     labels: torch.Tensor | None = None) -> torch.Tensor:
        """The logits (B, L) of pixel (i, j): the horizontal stack on row i, columns 0..j only (it looks left)."""
        h = x[:, :, i:i + 1, :j + 1]  # (B, 1, 1, j + 1)
        for block, from_v in zip(self.blocks, state):
            h = block.horizontal(h, from_v[..., :j + 1], block.condition(labels)[1])
        return self.head(h[..., -1:])[:, :, 0, 0]  # (B, L)


NETWORKS: dict[str, Callable[[PixelCNNConfig], nn.Module]] = {"plain": PlainNet, "gated": GatedNet}


# -- causality, checked with autograd -------------------------------------------------------------------------------
def _input_gradients(model_fn: Callable, shape: tuple[int, int, int], positions: list[tuple[int, int]],
                     generator: torch.Generator | None = None, device: torch.device | str | None = None):
    """|d out[b, :, i_b, j_b] / d x[b]| summed over channels, (len(positions), H, W): one batch row per position.

    The outputs' channels (the logits) are weighed by a random vector, so that no dependence cancels out.
    model_fn must treat the images of a batch independently (no batchnorm in training mode).
    """
    c, h, w = shape
    if device is None:
        device = next(model_fn.parameters()).device if isinstance(model_fn, nn.Module) else "cpu"
    g = generator or torch.Generator().manual_seed(0)
    x = torch.randn(1, c, h, w, generator=g).repeat(len(positions), 1, 1, 1).to(device).requires_grad_()
    out = model_fn(x)
    if out.ndim != 4 or out.shape[0] != len(positions) or tuple(out.shape[-2:]) != (h, w):
        raise ValueError(f"model_fn must map images (B, C, H, W) to outputs (B, K, H, W) of the same H and W; "
                         f"got {tuple(x.shape)} -> {tuple(out.shape)}.")
    rows, cols = torch.tensor(positions, device=device).T
    picked = out[torch.arange(len(positions), device=device), :, rows, cols].float()  # (P, K)
    weights = torch.randn(out.shape[1], generator=g).to(device)
    (grad,) = torch.autograd.grad(picked @ weights, x, grad_outputs=torch.ones(len(positions), device=device))
    return grad.abs().sum(1)  # (P, H, W)


def receptive_field(model_fn: Callable, shape: tuple[int, int, int], position: tuple[int, int],
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """The map (H, W) of |d logits at `position` / d input pixel|: nonzero exactly where output `position` looks.

    shape: (C, H, W) of the images model_fn takes, e.g. receptive_field(model.net, (1, 8, 8), (4, 3)).
    """
    return _input_gradients(model_fn, shape, [tuple(position)], generator)[0].detach().cpu()


def causality_violations(model_fn: Callable, shape: tuple[int, int, int],
                         generator: torch.Generator | None = None) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Every (output pixel, input pixel) pair where the output depends on an input at or after it in raster order.

    For each output pixel i of a (C, H, W) image, the gradient of its logits with respect to every
    input pixel q >= i must be exactly 0 (masks give exact zeros). One forward and backward pass, a
    batch row per output pixel: keep images small (8x8 is 64 rows). [] for a causal model.
    """
    _, h, w = shape
    positions = [(i, j) for i in range(h) for j in range(w)]
    grads = _input_gradients(model_fn, shape, positions, generator).flatten(1)  # (HW outputs, HW inputs)
    after = torch.ones(h * w, h * w, dtype=torch.bool, device=grads.device).triu()  # input index >= output index
    bad = ((grads != 0) & after).nonzero().tolist()
    return [(divmod(p, w), divmod(q, w)) for p, q in bad]


def check_causal(model_fn: Callable, shape: tuple[int, int, int], generator: torch.Generator | None = None) -> None:
    """Raise an AssertionError naming the first output pixel that sees itself or a later pixel."""
    bad = causality_violations(model_fn, shape, generator)
    if bad:
        (out, inp), n = bad[0], len(bad)
        kind = "itself" if out == inp else f"input pixel {inp}, which comes after it in raster order"
        raise AssertionError(f"not causal: output pixel {out} depends on {kind} ({n} such pairs in all). "
                             f"Check the masks: type A (centre hidden) in the first layer, type B after it; nothing "
                             f"below the centre row, nothing right of the centre on its row.")


# -- the process ----------------------------------------------------------------------------------------------------
class PixelCNN(ProcessModule):
    """p(x) = prod_i p(x_i | x_<i), or p(x | y) with n_classes: a causal network and its softmax per pixel.

    net: replaces the config's network (a lab plugs the student's in); it maps images (B, 1, H, W) on
    [-1, 1] and labels to logits (B, L, H, W), and offers begin_row / pixel_logits (see PlainNet) for sampling.
    """

    config_class = PixelCNNConfig

    def __init__(self, config: PixelCNNConfig | None = None, seed: int = 0, net: nn.Module | None = None) -> None:
        super().__init__(config or PixelCNNConfig(), seed)
        with self.seeded():  # initial weights from `seed`, global RNG untouched
            self.net = net or NETWORKS[self.config.variant](self.config)

    @property
    def pixels(self) -> int:
        """D = H W, the dimensions that bits/dim divides by."""
        return self.config.image_size ** 2

    # -- inputs ----------------------------------------------------------------------------------------------------
    def check(self, x: torch.Tensor, what: str = "x") -> None:
        """Raise a ValueError that says how to fix images this model cannot score."""
        s = self.config.image_size
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, s, s):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{what} must be images (B, 1, {s}, {s}), got {got}. Add .unsqueeze(1) to images "
                             f"(B, {s}, {s}); a model for another size needs PixelCNNConfig(image_size=...).")
        lo, hi = torch.stack(torch.aminmax(x.detach().float())).tolist()
        if lo < 0 or hi > 1:
            raise ValueError(f"{what} must be images in [0, 1], as course_lib.data gives them; got values in "
                             f"[{lo:.4g}, {hi:.4g}]. Integer levels 0..255: divide by 255. Data in [-1, 1]: use "
                             f"(x + 1) / 2.")

    def class_ids(self, labels: Any, n: int, what: str = "labels") -> torch.Tensor | None:
        """None, one class id, or n ids -> (n,) long on the device (None for an unconditional model)."""
        k = self.config.n_classes
        if k is None:
            if labels is not None:
                raise ValueError(f"this PixelCNN is unconditional (n_classes=None): leave {what}=None, or build a "
                                 f"conditional one with PixelCNNConfig(n_classes=10) and train it on (images, labels).")
            return None
        if labels is None:
            raise ValueError(f"this PixelCNN is class-conditional (n_classes={k}): pass {what}= one class id, or "
                             f"one per image ({n}).")
        y = torch.as_tensor(labels, device=self.device).long().reshape(-1)
        y = y.expand(n) if len(y) == 1 else y
        if len(y) != n or int(y.min()) < 0 or int(y.max()) >= k:
            raise ValueError(f"{what} must be one class id or {n} of them, each in 0..{k - 1}; got {labels!r}.")
        return y

    def check_levels(self, k: torch.Tensor, what: str = "k") -> None:
        """Raise a ValueError that says how to fix levels this model cannot score."""
        s, L = self.config.image_size, self.config.levels
        if not isinstance(k, torch.Tensor) or k.ndim != 4 or tuple(k.shape[1:]) != (1, s, s):
            got = tuple(k.shape) if isinstance(k, torch.Tensor) else type(k).__name__
            raise ValueError(f"{what} must be levels (B, 1, {s}, {s}), got {got}. Add .unsqueeze(1) to a grid "
                             f"(B, {s}, {s}); a model for another size needs PixelCNNConfig(image_size=...).")
        if k.is_floating_point() or k.is_complex() or k.dtype == torch.bool:
            raise ValueError(f"{what} must be integer levels (a long tensor), got {k.dtype}. Images in [0, 1] go "
                             f"to log_prob / sample; levels to log_prob_levels / sample_levels.")
        lo, hi = torch.stack(torch.aminmax(k)).tolist()
        if lo < 0 or hi >= L:
            raise ValueError(f"{what} must be levels in 0..{L - 1} (PixelCNNConfig(levels={L})), got values in "
                             f"[{lo}, {hi}]. Codes of a codebook of K entries need levels=K.")

    def to_levels(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> levels k = round(x (L - 1)) in 0..L-1 (long), the same shape."""
        return torch.round(x.float() * (self.config.levels - 1)).long()

    def centre(self, k: torch.Tensor) -> torch.Tensor:
        """Levels k -> the network's input 2 k / (L - 1) - 1 in [-1, 1], float32."""
        return k.float() * (2 / (self.config.levels - 1)) - 1

    # -- likelihood --------------------------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """Images (B, 1, H, W) in [0, 1] -> logits of every pixel's conditional (B, L, H, W), float32."""
        self.check(x)
        return self._logits(self.to_levels(x).to(self.device), labels)

    def _logits(self, k: torch.Tensor, labels: Any) -> torch.Tensor:
        """Levels (B, 1, H, W) on the device -> logits (B, L, H, W), float32."""
        return self.net(self.centre(k), self.class_ids(labels, len(k))).float()

    def log_prob(self, x: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """log p(x) (or log p(x | labels)) per image (B,), in nats, float32, of x's L-level quantisation."""
        self.check(x)
        return self.log_prob_levels(self.to_levels(x), labels)

    def log_prob_levels(self, k: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """log p(k) (or log p(k | labels)) per grid (B,), in nats, float32, of the levels k (B, 1, H, W) in 0..L-1."""
        self.check_levels(k)
        k = k.to(self.device)
        logits = self._logits(k, labels).movedim(1, -1)  # (B, H, W, L), float32 also under autocast
        log_p = F.log_softmax(logits, dim=-1).gather(-1, k.movedim(1, -1))  # log p(k_i | k_<i): (B, H, W, 1)
        return log_p.flatten(1).sum(1)  # summed over pixels: (B,)

    def bits_per_dim(self, x: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """-log p(x) / (D ln 2) per image (B,): the bits per pixel a code built on the model would spend."""
        return -self.log_prob(x, labels) / (self.pixels * math.log(2))

    # -- training ----------------------------------------------------------------------------------------------------
    def loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """The mean over the batch of -log p(x) in nats (summed over pixels), and bits/dim, logged.

        A batch of integer tensors is taken as levels k (log_prob_levels): a prior trains on codes as they are.
        """
        x, y = (batch[0], batch[1] if len(batch) > 1 else None) if isinstance(batch, (tuple, list)) else (batch, None)
        log_prob = self.log_prob if x.is_floating_point() else self.log_prob_levels
        nll = -log_prob(x, y if self.config.n_classes else None).mean()
        return {"loss": nll, "bpd": nll.detach() / (self.pixels * math.log(2))}

    def phases(self) -> list[Phase]:
        """One phase: Adam on the network."""
        return [Phase("loss", self.loss, torch.optim.Adam(self.parameters(), lr=self.config.lr))]

    # -- sampling ----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _fill(self, k: torch.Tensor, first_row: int, generator: torch.Generator | None, temperature: float,
              y: torch.Tensor | None, progress: bool) -> torch.Tensor:
        """Draw the levels k (B, 1, H, W) from row `first_row` on, pixel by pixel, in place; the rows above are kept."""
        if not temperature > 0:
            raise ValueError(f"temperature divides the logits and must be > 0 (1: the model; < 1: sharper), "
                             f"got {temperature}.")
        s, n = self.config.image_size, len(k)
        x = self.centre(k)  # (B, 1, H, W): the network's input, filled in as we go
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=(s - first_row) * s, desc="sample", leave=True)  # a notebook saves it finished, not at 0%
        g_device = generator.device if generator is not None else self.device
        for i in range(first_row, s):
            state = self.net.begin_row(x, i, y)  # the rows above: once per row
            for j in range(s):
                logits = self.net.pixel_logits(x, i, j, state, y).float() / temperature  # (B, L)
                cdf = torch.softmax(logits, dim=1).cumsum(1)  # (B, L)
                u = torch.rand(n, 1, generator=generator, device=g_device).to(self.device)
                level = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp(max=self.config.levels - 1)  # (B, 1)
                k[:, 0, i, j] = level[:, 0]
                x[:, 0, i, j] = self.centre(level[:, 0])
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return k

    def sample(self, n: int, generator: torch.Generator | None = None, cond: Any = None, temperature: float = 1.0,
               progress: bool = False) -> torch.Tensor:
        """n images (n, 1, H, W) in [0, 1], on the levels k / (L - 1), drawn pixel by pixel (H W network steps).

        cond: a class id, or n of them, for a conditional model. temperature < 1 sharpens every
        conditional (less diverse, cleaner samples). progress: a tqdm bar over the pixels.
        """
        return self.sample_levels(n, generator, cond, temperature, progress).float() / (self.config.levels - 1)

    def sample_levels(self, n: int, generator: torch.Generator | None = None, cond: Any = None,
                      temperature: float = 1.0, progress: bool = False) -> torch.Tensor:
        """n grids of integer levels (n, 1, H, W) in 0..L-1 (long), drawn as `sample` draws them."""
        was = self.training
        self.eval()
        y = self.class_ids(cond, n, "cond")
        s = self.config.image_size
        out = self._fill(torch.zeros(n, 1, s, s, dtype=torch.long, device=self.device), 0, generator, temperature, y,
                         progress)
        self.train(was)
        return out

    def complete(self, x: torch.Tensor, visible_rows: int, generator: torch.Generator | None = None,
                 cond: Any = None, temperature: float = 1.0, progress: bool = False) -> torch.Tensor:
        """Keep the first `visible_rows` rows of x (B, 1, H, W) exactly and sample the rest: p(x_below | x_above)."""
        self.check(x)
        s = self.config.image_size
        if not 0 <= visible_rows <= s:
            raise ValueError(f"visible_rows is the number of rows kept from the top, between 0 (sample everything) "
                             f"and {s} (keep everything); got {visible_rows}.")
        was = self.training
        self.eval()
        y = self.class_ids(cond, len(x), "cond")
        k = self._fill(self.to_levels(x).to(self.device), visible_rows, generator, temperature, y, progress)
        out = k.float() / (self.config.levels - 1)
        self.train(was)
        out[:, :, :visible_rows] = x[:, :, :visible_rows].to(out)  # the visible rows, as given
        return out
