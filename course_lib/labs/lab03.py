"""Lab 3 checks: DCGAN's generator and discriminator, the hinge losses, the gradient penalty, slerp.

The networks are checked by what they do, not by how they are written. The lab's check cells
pass `facts(net, x)` (imported from course_lib.harness.lab03 in the check cell, so a notebook cannot
redefine it): the network's output on the case's input, the torch functions its forward pass calls (seen through a
TorchFunctionMode, so `F.max_pool2d` counts as surely as `nn.MaxPool2d`), how many of its
convolutions stride, and its output with every parameter ten times larger. The compare functions
then ask for the contract: the reference's output shape (one score per image for D), G's outputs in
[-1, 1], the operations the guidelines name (transposed convolutions, batchnorm and ReLU in G;
strided convolutions and LeakyReLU, no pooling and no sigmoid in D), and raw scores from D: a score
that stays within [-1, 1] when the weights grow tenfold has been squashed, however it was written. The
gradient penalty is checked with its gradient with respect to the critic's weights, so a penalty
that cannot train the critic (no `create_graph=True`) fails; its critics travel to the kernel as plain
data (kind and weights) and are rebuilt there by course_lib.harness.lab03. Every case is drawn from a
seeded generator, fresh on each call, with the grader's secret salt in a grading run.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..exercises import Exercise, case_generator, case_random, case_seed, graded, register, returned_samples, no_reference
from ..harness.lab03 import critic, critic_spec, facts, reference_discriminator, reference_generator
from ..models.base import seeded
from ..latent import slerp
from ..models.gan import GAN, GANConfig, hinge_discriminator_loss, hinge_generator_loss

F64 = torch.float64
NET_SIZES = [(16, 4, 8), (32, 8, 28), (8, 2, 28)]  # (z_dim, width, image_size)


def _gen(seed: int) -> torch.Generator:
    return case_generator(seed)  # `seed` at home; mixed with the grader's secret salt when graded


# -- the networks, by what they do ------------------------------------------------------------------------
POOLING_OPS = ("pool",)  # max_pool2d, avg_pool2d, adaptive_*_pool2d, lp_pool2d, fractional_max_pool2d, ...
SQUASHING_OPS = {"sigmoid", "special_expit", "tanh", "hardtanh", "hardsigmoid", "softmax", "log_softmax"}


def _generator_facts(z_dim: int, width: int, image_size: int, z: torch.Tensor) -> dict:
    with seeded(0):
        return facts(reference_generator(z_dim, width, image_size), z)


def _discriminator_facts(width: int, image_size: int, x: torch.Tensor) -> dict:
    with seeded(0):
        return facts(reference_discriminator(width, image_size), x)


def _facts_of(got: Any, where: str) -> tuple[torch.Tensor, set[str], dict]:
    keys = {"output": torch.Tensor, "ops": list, "strided_convs": int, "scaled_output": torch.Tensor}
    if not (isinstance(got, dict) and all(isinstance(got.get(k), t) for k, t in keys.items())):
        raise AssertionError(f"{where}: expected facts(net, x) with {sorted(keys)}; keep the check cell as given "
                             f"(it imports facts from course_lib.harness.lab03).")
    return got["output"].float(), set(got["ops"]), got


def generator_compare(got: Any, want: Any, args: tuple) -> None:
    where = f"lab03.generator, Generator{args[:3]}"
    out, ops, _ = _facts_of(got, where)
    shape = tuple(want["output"].shape)
    if tuple(out.shape) != shape:
        raise AssertionError(f"{where}: noise of shape {tuple(args[3].shape)} must give images of shape {shape}, "
                             f"got {tuple(out.shape)}.")
    if not (float(out.abs().max()) <= 1.0 and float(out.min()) < 0):
        raise AssertionError(f"{where}: outputs range over [{float(out.min()):.3g}, {float(out.max()):.3g}]; a tanh output "
                             f"spans [-1, 1].")
    for op, why in (("conv_transpose2d", "upsample with fractionally-strided (transposed) convolutions"),
                    ("batch_norm", "use batchnorm in G"), ("relu", "use ReLU activations in G")):
        if not any(o == op or o == op + "_" for o in ops):  # relu_ is the in-place one
            raise AssertionError(f"{where}: its forward pass never calls {op}; the guidelines ask to {why}. "
                                 f"It calls {sorted(ops)}.")


def discriminator_compare(got: Any, want: Any, args: tuple) -> None:
    where = f"lab03.discriminator, Discriminator{args[:2]}"
    out, ops, facts_ = _facts_of(got, where)
    n = len(args[2])
    if out.numel() != n or out.shape[0] != n:
        raise AssertionError(f"{where}: {n} images must give {n} scores, one per image, e.g. shape ({n}, 1, 1, 1); "
                             f"got shape {tuple(out.shape)}.")
    pools = sorted(op for op in ops if any(p in op for p in POOLING_OPS))
    if pools:
        raise AssertionError(f"{where}: it pools ({', '.join(pools)}); downsample with strided convolutions instead.")
    if facts_["strided_convs"] < 1:
        raise AssertionError(f"{where}: no convolution has a stride above 1; downsample with strided convolutions "
                             f"(Conv2d(C_in, C_out, 4, 2, 1) halves the size).")
    if not ops & {"leaky_relu", "leaky_relu_"}:
        raise AssertionError(f"{where}: its forward pass never calls leaky_relu; the guidelines use LeakyReLU(0.2) in D. "
                             f"It calls {sorted(ops)}.")
    squashed = sorted(ops & SQUASHING_OPS)
    if squashed or float(facts_["scaled_output"].abs().max()) <= 1.0:
        how = f"it calls {', '.join(squashed)}" if squashed else ("its scores stay within [-1, 1] even with every "
                                                                  "weight ten times larger")
        raise AssertionError(f"{where}: {how}, so its scores are squashed; return the raw score (a logit), the losses "
                             f"own the sigmoid.")


def net_cases(kind: str) -> list[tuple]:
    g = _gen(300 if kind == "generator" else 301)
    sizes, batch = NET_SIZES, (5 if kind == "generator" else 6)
    if graded():  # the grader's secret cases: other sizes and batches, so the facts of the home cases do not fit
        r = case_random(300 if kind == "generator" else 301)
        sizes = [(r.choice([8, 16, 24, 32]), r.choice([2, 4, 8]), r.choice([8, 12, 16, 28])) for _ in NET_SIZES]
        batch = r.randint(3, 9)
    if kind == "generator":
        return [(z_dim, width, size, torch.randn(batch, z_dim, generator=g)) for z_dim, width, size in sizes]
    return [(width, size, torch.rand(batch, 1, size, size, generator=g) * 2 - 1) for _, width, size in sizes]


# -- hinge losses --------------------------------------------------------------------------------------------
def _scores(g: torch.Generator, n: int, scale: float, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, generator=g) * scale + shift


def hinge_d_cases() -> list[tuple]:
    g = _gen(302)
    margins = torch.tensor([-1.0, 1.0, 0.0, 1.5, -1.5])  # exactly at the margins: relu(0) = 0
    return [(_scores(g, 64, 1.5), _scores(g, 64, 1.5)),
            (_scores(g, 20, 2.0, 2.0), _scores(g, 36, 2.0, -2.0)),  # unequal batch sizes: two separate means
            (margins, -margins), (_scores(g, 8, 50.0), _scores(g, 8, 50.0))]


def hinge_g_cases() -> list[tuple]:
    g = _gen(303)
    return [(_scores(g, 64, 1.5),), (_scores(g, 10, 3.0, -4.0),), (torch.tensor([-1.0, 1.0, 0.0]),)]


# -- the gradient penalty ------------------------------------------------------------------------------------
def penalty_and_weight_gradient(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> tuple:
    """The reference, as the lab's check cell reports the student's: (penalty, its gradient w.r.t. the critic's weights)."""
    gan = GAN(nn.Identity(), critic, GANConfig(loss="wgan-gp", gp=1.0))  # weight 1: the bare mean (||g|| - 1)^2
    value = gan.gradient_penalty(real, fake, eps=eps)[0]
    grads = torch.autograd.grad(value, list(critic.parameters()))
    return value.detach(), torch.cat([gr.flatten() for gr in grads])


def gradient_penalty_cases() -> list[tuple]:
    g = _gen(304)
    with torch.random.fork_rng(devices=[]), seeded(case_seed(304)):  # the critics' weights: plain data for the kernel
        conv, mlp = critic_spec(critic("conv"), "conv"), critic_spec(critic("mlp"), "mlp")
    quadratic = critic_spec(critic("quadratic", 16), "quadratic", 16)
    return [(conv, torch.rand(6, 1, 8, 8, generator=g) * 2 - 1, torch.rand(6, 1, 8, 8, generator=g) * 2 - 1,
             torch.rand(6, generator=g)),
            (mlp, torch.randn(10, 2, generator=g), torch.randn(10, 2, generator=g) + 2, torch.rand(10, generator=g)),
            (quadratic, torch.randn(5, 1, 4, 4, generator=g), torch.randn(5, 1, 4, 4, generator=g),
             torch.tensor([0.0, 1.0, 0.5, 0.25, 0.9]))]  # eps = 0 and 1: the fake and the real point themselves


# -- build and train: the student's whole GAN, judged by its samples -------------------------------------------------
TRAIN_STEPS, TRAIN_WIDTH, TRAIN_N = 150, 16, 256  # 4-15 s on one CPU core
# The trained FD must be below this fraction of the untrained one. A right build went from 285-332 to 171-190 (ratio
# 0.53-0.66 over three seeds); one that cannot learn (learning rate 0) stays at 1.
TRAIN_FACTOR = 0.8


def build_gan_cases() -> list[tuple]:
    """(width, seed, steps, noise_seed, n): one run, its seeds the grader's secret in a grading run."""
    return [(TRAIN_WIDTH, case_seed(306) % 2**31, TRAIN_STEPS, case_seed(307) % 2**31, TRAIN_N)]



def train_compare(got, want, args) -> None:
    """It trains: finite losses, samples in range, and an FD on Fashion-MNIST below TRAIN_FACTOR x the untrained one,
    without copies of training images. The FDs are computed here, from the samples (in the grader's process)."""
    from ..metrics import evaluate

    where = f"lab03.build_gan, {args[2]} steps of width {args[0]}"
    n = int(args[4])
    returned_samples(got, ("before", "after", "d_loss", "g_loss"), where, "lab03:train_and_sample", n,
                     "Does your Generator(64, width, 28) make 28x28 images?")
    losses = torch.cat([got["d_loss"].flatten(), got["g_loss"].flatten()])
    if len(losses) == 0 or not bool(torch.isfinite(losses).all()) or float(losses.abs().max()) > 1e4:
        raise AssertionError(f"{where}: the training losses diverged (largest |loss| {float(losses.abs().max()):.3g}, "
                             f"finite: {bool(torch.isfinite(losses).all())}); a hinge loss stays near 0 to 2.")
    fd = {k: evaluate(got[k], "fashion-mnist", profile="smoke", n=n) for k in ("before", "after")}
    if fd["after"]["memorised"] > 0.5:
        raise AssertionError(f"{where}: {fd['after']['memorised']:.0%} of the samples are copies of training images.")
    if not fd["after"]["fd"] < TRAIN_FACTOR * fd["before"]["fd"]:
        raise AssertionError(f"{where}: it does not train: FD {fd['before']['fd']:.1f} untrained -> {fd['after']['fd']:.1f} "
                             f"after training, expected below {TRAIN_FACTOR:g} x the untrained FD. Check the "
                             f"learning rates and that G and D use your losses (d_loss=, g_loss=).")


# -- slerp ---------------------------------------------------------------------------------------------------
def slerp_cases() -> list[tuple]:
    g = _gen(305)
    z0, z1 = torch.randn(6, 64, generator=g, dtype=F64), torch.randn(6, 64, generator=g, dtype=F64)
    e0, e1 = torch.eye(4, dtype=F64)[:2], torch.eye(4, dtype=F64)[1:3]  # orthogonal unit vectors (and one repeat)
    same = torch.randn(3, 8, generator=g, dtype=F64)
    return [(z0, z1, 0.3), (z0.clone(), z1.clone(), 0.0), (z0.clone(), z1.clone(), 1.0), (e0, e1, 0.5),
            (same, same.clone(), 0.4),  # identical rows: the angle is 0, return the lerp (here the row itself)
            (torch.randn(4, 100, generator=g, dtype=F64), 3 * torch.randn(4, 100, generator=g, dtype=F64), 0.75)]


register(Exercise("lab03.generator", lambda: net_cases("generator"), _generator_facts, compare=generator_compare,
                  describe="(B, z_dim) -> (B, 1, S, S) in [-1, 1] for S = 8 and 28; transposed convs, batchnorm, ReLU"))
register(Exercise("lab03.discriminator", lambda: net_cases("discriminator"), _discriminator_facts,
                  compare=discriminator_compare,
                  describe="one score per image for S = 8 and 28; LeakyReLU; no pooling, no sigmoid"))
register(Exercise("lab03.hinge_d_loss", hinge_d_cases, hinge_discriminator_loss, rtol=1e-5, atol=1e-6,
                  describe="two separate means, zero past the margins",
                  mistakes=(("one mean over the real and fake terms pooled: take one mean per batch",
                             lambda r, f: torch.cat([torch.relu(1 - r), torch.relu(1 + f)]).mean()),
                            ("the margins' signs swapped: max(0, 1 + real) and max(0, 1 - fake)",
                             lambda r, f: torch.relu(1 + r).mean() + torch.relu(1 - f).mean()))))
register(Exercise("lab03.hinge_g_loss", hinge_g_cases, hinge_generator_loss, rtol=1e-5, atol=1e-6,
                  describe="-mean D(G(z))",
                  mistakes=(("D's hinge term max(0, 1 - a) reused for G: it stops pushing once a sample scores 1",
                             lambda f: torch.relu(1 - f).mean()),
                            ("+mean D(G(z)): the generator would lower D's scores of its samples",
                             lambda f: f.mean()))))
register(Exercise("lab03.gradient_penalty", gradient_penalty_cases, penalty_and_weight_gradient,
                  rtol=1e-4, atol=1e-5, describe="the penalty and its gradient w.r.t. the critic's weights",
                  names=("a conv critic on 8x8 images", "an MLP critic on 2-D points",
                         "a quadratic critic, eps = 0 and 1 included (the fake and real points themselves)"),
                  outputs=("the penalty", "its gradient w.r.t. the critic's weights")))
register(Exercise("lab03.build_gan", build_gan_cases, no_reference, compare=train_compare, judged=True,
                  describe=f"trained {TRAIN_STEPS} steps on Fashion-MNIST, its FD below {TRAIN_FACTOR:g} x the untrained one"))
register(Exercise("lab03.slerp", slerp_cases, slerp, rtol=1e-6, atol=1e-8,
                  describe="endpoints, orthogonal unit vectors, identical rows (lerp fallback)",
                  names=("random rows, t = 0.3", "t = 0: z0 itself", "t = 1: z1 itself", "orthogonal unit vectors, t = 0.5",
                         "identical rows, t = 0.4: the lerp fallback", "rows of norms about 10 and 30, t = 0.75"),
                  mistakes=(("the straight line (lerp): slerp follows the great circle between the rows",
                             lambda z0, z1, t: (1 - t) * z0 + t * z1),)))
