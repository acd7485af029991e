"""Lab 3's harness: `facts(net, x)`, what the network checks look at, and the critics of the gradient-penalty cases.

The check cells import `facts` from here, so a notebook cannot hand the check facts of its own making.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from . import training_pairs



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


# -- the critics of the gradient-penalty cases -------------------------------------------------------------
class Quadratic(nn.Module):
    """x (B, ...) -> <w, x> + c ||x||^2 per example: a critic whose gradient norms vary from point to point."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, dim))
        self.c = nn.Parameter(torch.tensor(0.3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1)
        return flat @ self.w + self.c * flat.pow(2).sum(1)  # (B,)


def critic(kind: str, dim: int = 16) -> nn.Module:
    """A critic of the cases: "conv" (B, 1, 8, 8) -> (B, 1, 1, 1), "mlp" (B, 2) -> (B, 1), or "quadratic" over dim inputs.

    Initialised from the global generator (the case functions seed it). No bias on the last layers: a
    constant shift never reaches the input gradient, so the penalty has none.
    """
    if kind == "conv":
        return nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.LeakyReLU(0.2),  # (B, 1, 8, 8) -> (B, 4, 4, 4)
                             nn.Conv2d(4, 1, 4, bias=False))  # (B, 1, 1, 1)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1, bias=False))  # points (B, 2) -> (B, 1)
    if kind == "quadratic":
        return Quadratic(dim)
    raise ValueError(f"unknown critic kind {kind!r}")


def critic_spec(net: nn.Module, kind: str, dim: int = 16) -> dict:
    """A critic as plain data, for the grader to hand a kernel."""
    return {"kind": kind, "dim": dim, "state": {k: v.detach().clone() for k, v in net.state_dict().items()}}


def gradient_penalty_args(spec: dict, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> tuple:
    """({"kind", "dim", "state"}, real, fake, eps) -> (the critic with the case's weights, real, fake, eps)."""
    with torch.random.fork_rng(devices=[]):  # its initial weights are drawn, then replaced: global RNG untouched
        net = critic(spec["kind"], int(spec["dim"]))
    net.load_state_dict(spec["state"])
    return net, real, fake, eps


# -- the build-and-train exercise: the kernel trains the student's GAN; the grader judges its samples ---------------
def train_and_sample(build_gan):
    """The check cell's wrapper of `build_gan(width, seed) -> GAN`: (width, seed, steps, noise_seed, n) -> what it did.

    Builds the student's GAN, draws n samples from fixed noise, trains it `steps` steps in the course's loop on
    4,096 Fashion-MNIST training images (batches of 64, mapped to [-1, 1]), and draws again from the same noise.
    Returns {"before", "after": (n, 1, 28, 28) in [0, 1]; "d_loss", "g_loss": the logged losses (k,)}; the
    grader computes the Fréchet distances from the samples, in its own process.
    """
    from ..data import Batches
    from ..train import Trainer, TrainConfig

    def run(width: int, seed: int, steps: int, noise_seed: int, n: int) -> dict:
        gan = build_gan(int(width), int(seed))
        if not (hasattr(gan, "sample") and hasattr(gan, "parameters")):
            raise TypeError(f"build_gan must return the course's GAN process (course_lib.models.gan.GAN), "
                            f"got {type(gan).__name__}.")
        train = training_pairs(seed).images * 2 - 1  # (4096, 1, 28, 28) in [-1, 1] for a tanh generator

        def draw() -> torch.Tensor:
            # In training mode, batchnorm normalises with the batch's own statistics: in eval mode its running
            # statistics, which move during training even when no weight does, would let a model that learns
            # nothing (learning rate 0) look trained.
            gan.train()
            with torch.no_grad():
                x = gan.sample(int(n), generator=torch.Generator().manual_seed(int(noise_seed)))
            return ((x.float() + 1) / 2).clamp(0, 1).cpu()  # (n, 1, 28, 28) in [0, 1]

        before = draw()
        trainer = Trainer(gan, train_config=TrainConfig(log_every=10, progress=False))
        trainer.fit(Batches(train, 64, seed=int(seed)), steps=int(steps))
        history = {k: torch.tensor(trainer.history.get(k, []), dtype=torch.float64) for k in ("d_loss", "g_loss")}
        return {"before": before, "after": draw(), **history}

    return run


# -- what build_gan builds on: the references of the earlier exercises, with the lab's signatures ----------------------
def reference_generator(z_dim: int, width: int, image_size: int) -> nn.Module:
    """The course's DCGAN generator with lab 03's signature: Generator(z_dim, width, image_size)."""
    from ..models.dcgan import DCGANConfig, Generator

    return Generator(DCGANConfig(z_dim=z_dim, width=width, image_size=image_size))


def reference_discriminator(width: int, image_size: int) -> nn.Module:
    """The course's DCGAN discriminator with lab 03's signature: Discriminator(width, image_size)."""
    from ..models.dcgan import DCGANConfig, Discriminator

    return Discriminator(DCGANConfig(width=width, image_size=image_size))
