"""Lab 6 checks: the PixelCNN's pieces, against the library's (course_lib.models.pixelcnn) or a reference here.

The masks are compared exactly with the library's `mask` for k = 1, 3, 5, 7 and both kinds (other
odd sizes on the grader's secret cases). The masked conv is checked through `conv_outputs(cls)`
(course_lib.harness.lab06, which also builds the sampler's and the causality check's cases from
their plain data in the kernel): it builds the student's class, then sets every
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

from ..exercises import Exercise, case_generator, case_random, case_seed, compare_close, graded, register, no_reference
from ..harness.lab06 import conv_outputs, gated, network_spec, stack
from ..models.pixelcnn import MaskedConv2d, causality_violations, mask

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return case_generator(seed)  # `seed` at home; mixed with the grader's secret salt when graded


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
    sizes = (1, 3, 5, 7)
    if graded():  # the grader's secret cases: other odd sizes, in another order
        r = case_random(600)
        sizes = tuple(r.sample((1, 3, 5, 7, 9, 11, 13), 4))
    return [(kind, k) for k in sizes for kind in ("A", "B")]


# -- the masked conv ----------------------------------------------------------------------------------------
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


def _raster(levels: int, shape: tuple[int, int], strength: float, shift: int, g: torch.Generator) -> dict:
    """A RasterLogits (course_lib.harness.lab06) as plain data: its table drawn from g."""
    return {"levels": levels, "strength": strength, "shift": shift, "table": torch.randn(levels, *shape, generator=g)}


def sampling_cases() -> list[tuple]:
    g = _gen(602)
    # (logits, n, shape, levels, generator seed): a fixed table, then logits that follow the previous pixel
    return [(_raster(4, (3, 3), 0.0, 0, g), 5, (3, 3), 4, case_seed(610)),
            (_raster(2, (4, 4), 6.0, 1, g), 6, (4, 4), 2, case_seed(611)),  # a pixel flips its predecessor
            (_raster(5, (3, 5), 4.0, 2, g), 4, (3, 5), 5, case_seed(612)),
            (_raster(17, (2, 3), 8.0, 0, g), 3, (2, 3), 17, case_seed(613)),  # repeats its predecessor
            (_raster(3, (1, 6), 3.0, 1, g), 1, (1, 6), 3, case_seed(614))]


# -- the causality check ------------------------------------------------------------------------------------
def _stack(kinds: list[str | None], channels: int, g: torch.Generator, c_in: int = 1, k0: int = 5) -> dict:
    """A stack of masked convs (course_lib.harness.lab06.stack) as plain data, its weights drawn from g."""
    net = stack(kinds, channels, c_in, k0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return network_spec("stack", net, kinds=list(kinds), channels=channels, c_in=c_in, k0=k0)


def causality_cases() -> list[tuple]:
    g = _gen(603)
    config = {"image_size": 5, "levels": 4, "channels": 4, "n_layers": 2, "first_kernel": 3}
    shapes = [(1, 6, 6), (1, 5, 5), (1, 5, 6), (2, 4, 5), (1, 5, 5), (1, 3, 4)]
    if graded():  # the grader's secret cases: other image sizes, so the violating pairs differ from the ones at home
        r = case_random(603)
        shapes = [(c, r.randint(3, 7), r.randint(3, 7)) for c, _, _ in shapes]
    cases = [(_stack(["A", "B", "B"], 4, g), shapes[0]),  # causal
             (_stack(["B", "B"], 4, g), shapes[1]),  # type B first: every pixel sees itself
             (_stack(["A", None, "B"], 3, g), shapes[2]),  # an unmasked middle layer: later pixels leak in
             (_stack(["A", "B"], 3, g, c_in=2, k0=3), shapes[3]),  # two input channels, causal
             (network_spec("gated", gated(config), config=config), shapes[4]),  # the library's gated PixelCNN: causal
             (network_spec("peek_ahead"), shapes[5])]
    if graded():
        case_random(604).shuffle(cases)
    return cases


def compare_causality(got, want, args) -> None:
    compare_pairs(got, want, f"lab06.causality_check, images {tuple(args[1])}")


# -- build and train: the student's whole PixelCNN, scored by what it predicts -----------------------------------------
# (channels, n_layers, levels, lr, steps, images): 1-3 s on one CPU core. 16 levels keep the check fast; the lab's
# longer run uses 256.
TRAIN = dict(channels=16, n_layers=3, levels=16, lr=1e-2, steps=100, n=64)
# The trained bits/dim must be below this fraction of the untrained one: a right build went from 3.89-3.91 to
# 1.61-1.66 bits/dim (ratio 0.41-0.43, two seeds); one that cannot learn (learning rate 0) stays at 1.
TRAIN_FACTOR = 0.6
CAUSAL_ATOL = 1e-4  # log-probabilities at a pixel, with and without the pixels from it on redrawn (float32)


def build_pixelcnn_cases() -> list[tuple]:
    """(channels, n_layers, levels, lr, seed, steps, images, probes, positions): n test images on the L-level grid,
    the same images redrawn from a position on, and the positions; all drawn with the grader's secret salt."""
    from ..data import load_data

    t, g = TRAIN, _gen(615)
    L, n = t["levels"], t["n"]
    test = load_data("fashion-mnist", "test").images
    images = torch.round(test[torch.randperm(len(test), generator=g)[:n]] * (L - 1)) / (L - 1)  # (n, 1, 28, 28)
    index = torch.randint(28, 28 * 28 - 28, (n,), generator=g)  # raster positions, not on the first or last row
    positions = torch.stack([index // 28, index % 28], 1)  # (n, 2)
    later = torch.arange(28 * 28)[None] >= index[:, None]  # (n, 784): the pixel itself and every one after it
    noise = torch.randint(0, L, (n, 28 * 28), generator=g).float() / (L - 1)
    probes = torch.where(later, noise, images.flatten(1)).view(n, 1, 28, 28)
    return [(t["channels"], t["n_layers"], L, t["lr"], case_seed(616) % 2**31, t["steps"], images, probes, positions)]



def train_compare(got, want, args) -> None:
    """It trains and is a causal model: finite log-probabilities that sum to 1 over the levels, do not change when the
    pixel and those after it do, and give bits/dim below TRAIN_FACTOR x the untrained model's. Computed here."""
    channels, n_layers, L, lr, _, steps, images, probes, positions = args
    where = f"lab06.build_pixelcnn, {steps} steps of {n_layers} layers x {channels} channels, {L} levels"
    n = len(images)
    keys = {"before": (n, 28, 28), "after": (n, 28, 28), "at": (n, L), "at_probe": (n, L)}
    if not (isinstance(got, dict) and all(isinstance(got.get(k), torch.Tensor) for k in keys)):
        raise AssertionError(f"{where}: expected what train_and_score returns ({sorted(keys)}); keep the check cell "
                             f"as given (it imports train_and_score from course_lib.harness.lab06).")
    for k, shape in keys.items():
        if tuple(got[k].shape) != shape or not bool(torch.isfinite(got[k]).all()):
            raise AssertionError(f"{where}: {k} must be finite, of shape {shape}; got {tuple(got[k].shape)}. Does your "
                                 f"network map (B, 1, 28, 28) to logits (B, {L}, 28, 28), one per level?")
    at, at_probe = got["at"].double(), got["at_probe"].double()
    total = float((at.logsumexp(1) - 0).abs().max())
    if total > 1e-3:
        raise AssertionError(f"{where}: the predictions at a pixel are not a distribution over the {L} levels (their "
                             f"probabilities sum to {float(at.logsumexp(1).exp().max()):.4g}); keep the check cell as given.")
    rows, cols = positions[:, 0].long(), positions[:, 1].long()
    level = torch.round(images[torch.arange(n), 0, rows, cols] * (L - 1)).long()  # (n,) the true level there
    if float((at.gather(1, level[:, None])[:, 0] - got["after"].double()[torch.arange(n), rows, cols]).abs().max()) > 1e-3:
        raise AssertionError(f"{where}: 'after' does not hold the log-probabilities of the images' own levels; keep "
                             f"the check cell as given.")
    moved = (at - at_probe).abs().amax(1)  # (n,)
    if float(moved.max()) > CAUSAL_ATOL:
        i = int(moved.argmax())
        raise AssertionError(f"{where}: not causal: the prediction for pixel ({int(rows[i])}, {int(cols[i])}) changes "
                             f"(by up to {float(moved[i]):.3g} in log-probability) when that pixel and the ones after it "
                             f"are redrawn, so the network sees the pixel it predicts or later ones. It looks like a "
                             f"type-B (or unmasked) first layer: the first layer must be type A, the later ones B.")
    bpd = {k: float(-got[k].double().sum((1, 2)).mean() / (28 * 28 * math.log(2))) for k in ("before", "after")}
    if not bpd["after"] < TRAIN_FACTOR * bpd["before"]:
        raise AssertionError(f"{where}: it does not train: {bpd['before']:.3f} bits/dim untrained -> {bpd['after']:.3f} "
                             f"after training, expected below {TRAIN_FACTOR:g} x the untrained figure. Check the learning "
                             f"rate (lr=) and that your network is the process's net=.")


register(Exercise("lab06.masks", mask_cases, mask, rtol=0, atol=0,
                  mistakes=(("types A and B swapped: A hides the centre pixel, B shows it",
                             lambda kind, k: mask("B" if kind == "A" else "A", k)),),
                  describe="k = 1, 3, 5, 7: type A hides the centre, B shows it, rows above whole"))
register(Exercise("lab06.masked_conv", masked_conv_cases, conv_outputs(MaskedConv2d),
                  compare=compare_conv,
                  describe="weights set after construction, masked in forward; H x W kept; type A causal"))
register(Exercise("lab06.bits_per_dim", bits_per_dim_cases, bits_per_dim, rtol=1e-9, atol=1e-12,
                  mistakes=(("nats per dimension: divide by ln 2 as well to get bits",
                             lambda nll, dims: nll / dims),
                            ("ln 2 multiplied instead of divided", lambda nll, dims: nll * math.log(2) / dims),
                            ("one mean over the batch: return one value per image",
                             lambda nll, dims: (nll / (dims * math.log(2))).mean())),
                  describe="D = 1, 64, 784, 3072, and a uniform 17-level model at log2 17"))
register(Exercise("lab06.sampling_loop", sampling_cases, sample, rtol=0, atol=1e-7,
                  describe="draw for draw, with logits that depend on the pixels drawn before"))
register(Exercise("lab06.build_pixelcnn", build_pixelcnn_cases, no_reference, compare=train_compare, judged=True,
                  describe=f"trained {TRAIN['steps']} steps on Fashion-MNIST ({TRAIN['levels']} levels): causal, and its "
                           f"bits/dim below {TRAIN_FACTOR:g} x the untrained model's"))
register(Exercise("lab06.causality_check", causality_cases, causality_violations, compare=compare_causality,
                  describe="causal stacks pass; type B first, an unmasked layer and a peek ahead are caught"))
