"""Lab 6 checks: the PixelCNN's pieces, against the library's (course_lib.models.pixelcnn) or a reference here.

The masks are compared exactly with the library's `mask` for k = 1, 3, 5, 7 and both kinds. The
masked conv is checked through `conv_outputs(cls)`: it builds the student's class, then sets every
weight (the masked ones too, as an optimiser step could) and compares the output and the conv's
causality violations with the library's MaskedConv2d, so a conv that masks its weights only once, at
construction, fails. bits/dim (here: the library's is a method of PixelCNN) takes several numbers of
dimensions D. The sampler (here: the library's draws by inverting the cdf, not with multinomial)
is checked draw for draw: its contract fixes one torch.multinomial call per pixel on all n rows, and
each case brings a fresh seeded generator and a deterministic logits function whose logits depend on
the pixels drawn before (one pass on the blank canvas gives other images); tests/test_lab06.py checks
this reference against the exact chain-rule density. The causality cases, checked against the
library's `causality_violations`, are stacks with tanh between the layers, so the set of dependences
does not depend on the input a checker feeds them, the library's gated PixelCNN, and a function that
peeks one pixel ahead; the broken ones are a type B first layer, an unmasked middle layer and the
peek. Every case is built from a seeded generator, fresh on each call, and leaves the global
generator as it was.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..exercises import Exercise, compare_close, register
from ..models.pixelcnn import MaskedConv2d, PixelCNN, PixelCNNConfig, causality_violations, mask

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pairs(value, where: str) -> set:
    """A list of ((i, j), (k, l)) pairs -> a set of tuples, or an AssertionError that says what was returned."""
    try:
        return {(tuple(int(v) for v in out), tuple(int(v) for v in inp)) for out, inp in value}
    except (TypeError, ValueError):
        raise AssertionError(f"{where}: expected a list of ((i, j), (k, l)) pairs, got {type(value).__name__}.") from None


def compare_pairs(got, want, where: str) -> None:
    """Compare two lists of (output pixel, input pixel) pairs as sets; name a pair that differs."""
    g, w = _pairs(got, where), _pairs(want, where)
    if g == w:
        return
    if w - g:
        out, inp = min(w - g)
        raise AssertionError(f"{where}: {len(w - g)} violating pair(s) not found, e.g. output pixel {out} depends on "
                             f"input pixel {inp} (you found {len(g)} pairs, the reference {len(w)}).")
    out, inp = min(g - w)
    raise AssertionError(f"{where}: {len(g - w)} pair(s) reported that are not violations, e.g. output {out} and "
                         f"input {inp} (you found {len(g)} pairs, the reference {len(w)}).")


# -- masks --------------------------------------------------------------------------------------------------
def mask_cases() -> list[tuple]:
    return [(kind, k) for k in (1, 3, 5, 7) for kind in ("A", "B")]


# -- the masked conv ----------------------------------------------------------------------------------------
def conv_outputs(conv_class: Callable[..., nn.Conv2d]) -> Callable:
    """What the check compares for a MaskedConv2d class: its output, and its causality violations.

    The conv is built as conv_class(in_ch, out_ch, kernel_size, kind); then every weight is set to
    the case's (the masked positions too, as an optimiser step could move them), so only a mask
    applied in forward gives the reference's output.
    """
    def report(in_ch: int, out_ch: int, k: int, kind: str, weight: torch.Tensor, bias: torch.Tensor,
               x: torch.Tensor) -> tuple:
        with torch.random.fork_rng(devices=[]):  # the initial weights are drawn, then replaced: global RNG untouched
            conv = conv_class(in_ch, out_ch, k, kind)
        assert isinstance(conv, nn.Conv2d), f"MaskedConv2d must subclass nn.Conv2d, got {type(conv).__name__}"
        assert tuple(conv.weight.shape) == tuple(weight.shape) and conv.bias is not None, (
            f"MaskedConv2d({in_ch}, {out_ch}, {k}, {kind!r}) should have weight {tuple(weight.shape)} and a bias, "
            f"got weight {tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(weight)  # every weight, the masked ones too
            conv.bias.copy_(bias)
        out = conv(x)  # (B, out_ch, H, W)
        assert out.shape[-2:] == x.shape[-2:], (f"MaskedConv2d must keep H x W (padding = kernel_size // 2): "
                                                f"{tuple(x.shape)} -> {tuple(out.shape)}")
        return out.detach(), causality_violations(conv, (in_ch, *x.shape[-2:]))
    return report


def masked_conv_cases() -> list[tuple]:
    g = _gen(600)
    out = []
    # (in_ch, out_ch, k, kind, H, W): a first layer of each kernel size, later layers with several channels
    for c_in, c_out, k, kind, h, w in ((1, 4, 3, "A", 5, 5), (1, 3, 7, "A", 8, 8), (3, 2, 3, "B", 4, 6),
                                       (2, 5, 5, "B", 6, 5), (4, 4, 5, "A", 5, 7), (2, 3, 1, "B", 3, 3)):
        out.append((c_in, c_out, k, kind, torch.randn(c_out, c_in, k, k, generator=g), torch.randn(c_out, generator=g),
                    torch.randn(2, c_in, h, w, generator=g)))
    return out


def compare_conv(got, want, args) -> None:
    where = f"lab06.masked_conv, MaskedConv2d({args[0]}, {args[1]}, {args[2]}, {args[3]!r})"
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise AssertionError(f"{where}: expected (output, violations) as conv_outputs reports them.")
    leaks = _pairs(got[1], where) - _pairs(want[1], where)
    if leaks:
        out, inp = min(leaks)
        seen = "itself" if out == inp else f"input pixel {inp}, which comes after it"
        raise AssertionError(f"{where}: output pixel {out} depends on {seen} ({len(leaks)} such pairs) after the "
                             f"weights were set. Are they multiplied by the mask in forward (not once, when built)?")
    compare_close(got[0], want[0], 1e-5, 1e-5, where + ", output")


# -- bits per dimension -------------------------------------------------------------------------------------
def bits_per_dim(nll: torch.Tensor, dims: int) -> torch.Tensor:
    """nll (B,) in nats per image, D = dims -> bits/dim (B,): nll / (D ln 2)."""
    return nll / (dims * math.log(2))


def bits_per_dim_cases() -> list[tuple]:
    g = _gen(601)
    return [(torch.rand(5, generator=g, dtype=F64) * 200 + 100, 64),  # 8x8 digits
            (torch.rand(3, generator=g, dtype=F64) * 1500 + 1000, 784),  # 28x28
            (torch.rand(4, generator=g, dtype=F64) * 5000 + 6000, 3 * 32 * 32),  # CIFAR-10's 3072
            (torch.tensor([64 * math.log(17)], dtype=F64), 64),  # a uniform 17-level model: log2 17
            (torch.tensor([0.7, 0.0, 2.5], dtype=F64), 1)]  # one dimension


# -- the sampling loop --------------------------------------------------------------------------------------
def sample(logits_fn: Callable[[torch.Tensor], torch.Tensor], n: int, shape: tuple[int, int], levels: int,
           generator: torch.Generator) -> torch.Tensor:
    """n images (n, 1, H, W) in [0, 1] on the grid k / (levels - 1), drawn pixel by pixel in raster order."""
    h, w = shape
    x = torch.zeros(n, 1, h, w)
    with torch.no_grad():
        for i in range(h):
            for j in range(w):
                probs = torch.softmax(logits_fn(x)[:, :, i, j], dim=1)  # (n, L)
                k = torch.multinomial(probs, 1, generator=generator)[:, 0]  # (n,)
                x[:, 0, i, j] = k / (levels - 1)
    return x


class RasterLogits:
    """A fixed causal logits function for the sampler's cases: images (n, 1, H, W) in [0, 1] -> (n, L, H, W).

    logits(i, j) = table[:, i, j] + strength * (onehot(level of the previous pixel in raster order) rolled by
    `shift`): pixel (i, j) likes the level `shift` above the one drawn just before it (pixel (0, 0): the table).
    """

    def __init__(self, levels: int, shape: tuple[int, int], strength: float, shift: int, g: torch.Generator) -> None:
        self.levels, self.strength, self.shift = levels, strength, shift
        self.table = torch.randn(levels, *shape, generator=g)  # (L, H, W)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        k = torch.round(x.reshape(n, h * w) * (self.levels - 1)).long()  # (n, HW) levels, raster order
        prev = torch.roll(nn.functional.one_hot(k, self.levels).float(), (1, self.shift), dims=(1, 2))  # (n, HW, L)
        prev[:, 0] = 0  # pixel (0, 0) has no previous pixel
        return self.table + self.strength * prev.transpose(1, 2).reshape(n, self.levels, h, w)  # (n, L, H, W)


def sampling_cases() -> list[tuple]:
    g = _gen(602)
    # (logits_fn, n, shape, levels, generator): a fixed table, then logits that follow the previous pixel
    return [(RasterLogits(4, (3, 3), 0.0, 0, g), 5, (3, 3), 4, _gen(610)),
            (RasterLogits(2, (4, 4), 6.0, 1, g), 6, (4, 4), 2, _gen(611)),  # a pixel flips its predecessor
            (RasterLogits(5, (3, 5), 4.0, 2, g), 4, (3, 5), 5, _gen(612)),
            (RasterLogits(17, (2, 3), 8.0, 0, g), 3, (2, 3), 17, _gen(613)),  # repeats its predecessor
            (RasterLogits(3, (1, 6), 3.0, 1, g), 1, (1, 6), 3, _gen(614))]


# -- the causality check ------------------------------------------------------------------------------------
class SmoothStack(nn.Sequential):
    """Convs with tanh between them, weights from a seeded generator: where a gradient is 0, it is 0 for every input."""

    def __init__(self, layers: list[nn.Module], g: torch.Generator) -> None:
        mods: list[nn.Module] = []
        for n, layer in enumerate(layers):
            mods += [nn.Tanh(), layer] if n else [layer]
        super().__init__(*mods)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def _stack(kinds: list[str | None], channels: int, g: torch.Generator, c_in: int = 1, k0: int = 5) -> nn.Module:
    """Masked convs of the given kinds (None: an unmasked 3x3 conv), then a 1x1 conv to 4 'logits'."""
    with torch.random.fork_rng(devices=[]):  # construction draws initial weights; they are replaced from g
        layers: list[nn.Module] = []
        for n, kind in enumerate(kinds):
            c, k = (c_in, k0) if n == 0 else (channels, 3)
            layers.append(MaskedConv2d(c, channels, k, kind) if kind else nn.Conv2d(c, channels, k, padding=k // 2))
        return SmoothStack(layers + [nn.Conv2d(channels, 4, 1)], g)


def peek_ahead(x: torch.Tensor) -> torch.Tensor:
    """Output (i, j) = input (i, j + 1), wrapping around each row: every pixel but the last of a row looks ahead."""
    return torch.roll(x, -1, dims=3)


def causality_cases() -> list[tuple]:
    g = _gen(603)
    with torch.random.fork_rng(devices=[]):
        gated = PixelCNN(PixelCNNConfig(image_size=5, levels=4, channels=4, n_layers=2, first_kernel=3), seed=6).net
    return [(_stack(["A", "B", "B"], 4, g), (1, 6, 6)),  # causal
            (_stack(["B", "B"], 4, g), (1, 5, 5)),  # type B first: every pixel sees itself
            (_stack(["A", None, "B"], 3, g), (1, 5, 6)),  # an unmasked middle layer: later pixels leak in
            (_stack(["A", "B"], 3, g, c_in=2, k0=3), (2, 4, 5)),  # two input channels, causal
            (gated, (1, 5, 5)),  # the library's gated PixelCNN: causal
            (peek_ahead, (1, 3, 4))]


def compare_causality(got, want, args) -> None:
    compare_pairs(got, want, f"lab06.causality_check, images {tuple(args[1])}")


register(Exercise("lab06.masks", mask_cases, mask, rtol=0, atol=0,
                  describe="k = 1, 3, 5, 7: type A hides the centre, B shows it, rows above whole"))
register(Exercise("lab06.masked_conv", masked_conv_cases, conv_outputs(MaskedConv2d),
                  builds_on=(("causal_mask", "lab06.masks"),), compare=compare_conv,
                  describe="weights set after construction, masked in forward; H x W kept; type A causal"))
register(Exercise("lab06.bits_per_dim", bits_per_dim_cases, bits_per_dim, rtol=1e-9, atol=1e-12,
                  describe="D = 1, 64, 784, 3072, and a uniform 17-level model at log2 17"))
register(Exercise("lab06.sampling_loop", sampling_cases, sample, rtol=0, atol=1e-7,
                  describe="draw for draw, with logits that depend on the pixels drawn before"))
register(Exercise("lab06.causality_check", causality_cases, causality_violations, compare=compare_causality,
                  describe="causal stacks pass; type B first, an unmasked layer and a peek ahead are caught"))
