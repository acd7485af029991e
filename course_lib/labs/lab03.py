"""Lab 3 checks: DCGAN's generator and discriminator, the hinge losses, the gradient penalty, slerp.

The networks are checked by what they do, not by how they are written. The lab's check cells
pass `facts(net, x)` (imported from here in the check cell, so a notebook cannot redefine it): the
network's output on a fixed input, the torch functions its forward pass calls (seen through a
TorchFunctionMode, so `F.max_pool2d` counts as surely as `nn.MaxPool2d`), how many of its
convolutions stride, and its output with every parameter ten times larger. The compare functions
then ask for the contract: the reference's output shape (one score per image for D), G's outputs in
[-1, 1], the operations the guidelines name (transposed convolutions, batchnorm and ReLU in G;
strided convolutions and LeakyReLU, no pooling and no sigmoid in D), and raw scores from D: a score
that stays within [-1, 1] when the weights grow tenfold has been squashed, however it was written. The
gradient penalty is checked with its gradient with respect to the critic's weights, so a penalty
that cannot train the critic (no `create_graph=True`) fails. Every case is drawn from a seeded
generator, fresh on each call.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..exercises import Exercise, register
from ..models.base import seeded
from ..latent import slerp
from ..models.dcgan import DCGANConfig, Discriminator, Generator
from ..models.gan import GAN, GANConfig, hinge_discriminator_loss, hinge_generator_loss

F64 = torch.float64
NET_SIZES = [(16, 4, 8), (32, 8, 28), (8, 2, 28)]  # (z_dim, width, image_size)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- the networks, by what they do ------------------------------------------------------------------------
POOLING_OPS = ("pool",)  # max_pool2d, avg_pool2d, adaptive_*_pool2d, lp_pool2d, fractional_max_pool2d, ...
SQUASHING_OPS = {"sigmoid", "special_expit", "tanh", "hardtanh", "hardsigmoid", "softmax", "log_softmax"}


class _Calls(TorchFunctionMode):
    """Records the torch functions a forward pass calls, and how many of its convolutions stride."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.strided = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        self.names.add(name)
        if name in ("conv2d", "conv_transpose2d"):
            stride = kwargs.get("stride", args[3] if len(args) > 3 else 1)
            if max(stride if isinstance(stride, (tuple, list)) else (stride,)) > 1:
                self.strided += 1
        return func(*args, **kwargs)


def facts(net: nn.Module, x: torch.Tensor) -> dict:
    """What the network checks look at (the lab's check cells import it from here).

    output: net(x) in training mode; ops: the torch functions that forward pass called; strided_convs: how
    many of its (transposed) convolutions have a stride above 1; scaled_output: the output of a copy with
    every parameter ten times larger (a raw score grows with its weights, a squashed one cannot leave its
    range); layers: the module types, for messages.
    """
    net.train()
    with _Calls() as calls:
        out = net(x)  # (B, ...)
    out = out.detach()
    big = copy.deepcopy(net)
    with torch.no_grad():
        for p in big.parameters():
            p.mul_(10)
        scaled = big(x).detach()
    return {"output": out, "ops": sorted(calls.names), "strided_convs": calls.strided, "scaled_output": scaled,
            "layers": sorted({type(m).__name__ for m in net.modules()})}


def _generator_facts(z_dim: int, width: int, image_size: int, z: torch.Tensor) -> dict:
    with seeded(0):
        return facts(Generator(DCGANConfig(z_dim=z_dim, width=width, image_size=image_size)), z)


def _discriminator_facts(width: int, image_size: int, x: torch.Tensor) -> dict:
    with seeded(0):
        return facts(Discriminator(DCGANConfig(width=width, image_size=image_size)), x)


def _facts_of(got: Any, where: str) -> tuple[torch.Tensor, set[str], dict]:
    keys = {"output": torch.Tensor, "ops": list, "strided_convs": int, "scaled_output": torch.Tensor}
    if not (isinstance(got, dict) and all(isinstance(got.get(k), t) for k, t in keys.items())):
        raise AssertionError(f"{where}: expected facts(net, x) with {sorted(keys)}; keep the check cell as given "
                             f"(it imports facts from course_lib.labs.lab03).")
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
    if kind == "generator":
        return [(z_dim, width, size, torch.randn(5, z_dim, generator=g)) for z_dim, width, size in NET_SIZES]
    return [(width, size, torch.rand(6, 1, size, size, generator=g) * 2 - 1) for _, width, size in NET_SIZES]


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


class _Quadratic(nn.Module):
    """x (B, ...) -> <w, x> + c ||x||^2 per example: a critic whose gradient norms vary from point to point."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, dim))
        self.c = nn.Parameter(torch.tensor(0.3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1)
        return flat @ self.w + self.c * flat.pow(2).sum(1)  # (B,)


def gradient_penalty_cases() -> list[tuple]:
    g = _gen(304)
    with seeded(304):
        # no bias on the last layers: a constant shift never reaches the input gradient, so the penalty has none
        conv = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.LeakyReLU(0.2),  # (B, 1, 8, 8) -> (B, 4, 4, 4)
                             nn.Conv2d(4, 1, 4, bias=False))  # (B, 1, 1, 1)
        mlp = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1, bias=False))  # points (B, 2) -> (B, 1)
    return [(conv, torch.rand(6, 1, 8, 8, generator=g) * 2 - 1, torch.rand(6, 1, 8, 8, generator=g) * 2 - 1,
             torch.rand(6, generator=g)),
            (mlp, torch.randn(10, 2, generator=g), torch.randn(10, 2, generator=g) + 2, torch.rand(10, generator=g)),
            (_Quadratic(16), torch.randn(5, 1, 4, 4, generator=g), torch.randn(5, 1, 4, 4, generator=g),
             torch.tensor([0.0, 1.0, 0.5, 0.25, 0.9]))]  # eps = 0 and 1: the fake and the real point themselves


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
                  describe="two separate means, zero past the margins"))
register(Exercise("lab03.hinge_g_loss", hinge_g_cases, hinge_generator_loss, rtol=1e-5, atol=1e-6,
                  describe="-mean D(G(z))"))
register(Exercise("lab03.gradient_penalty", gradient_penalty_cases, penalty_and_weight_gradient,
                  rtol=1e-4, atol=1e-5, describe="the penalty and its gradient w.r.t. the critic's weights"))
register(Exercise("lab03.slerp", slerp_cases, slerp, rtol=1e-6, atol=1e-8,
                  describe="endpoints, orthogonal unit vectors, identical rows (lerp fallback)"))
