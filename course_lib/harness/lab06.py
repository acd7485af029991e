"""Lab 6's harness: `conv_outputs`, which the masked-conv check cell wraps a class with, and what the sampler's and
the causality check's cases are built from (a logits function, seeded generators, masked stacks)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from . import training_pairs
from ..models.pixelcnn import MaskedConv2d, PixelCNN, PixelCNNConfig, causality_violations


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


# -- the sampling loop --------------------------------------------------------------------------------------
class RasterLogits:
    """A fixed causal logits function for the sampler's cases: images (n, 1, H, W) in [0, 1] -> (n, L, H, W).

    logits(i, j) = table[:, i, j] + strength * (onehot(level of the previous pixel in raster order) rolled by
    `shift`): pixel (i, j) likes the level `shift` above the one drawn just before it (pixel (0, 0): the table).
    """

    def __init__(self, levels: int, strength: float, shift: int, table: torch.Tensor) -> None:
        self.levels, self.strength, self.shift = levels, strength, shift
        self.table = table  # (L, H, W)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        k = torch.round(x.reshape(n, h * w) * (self.levels - 1)).long()  # (n, HW) levels, raster order
        prev = torch.roll(nn.functional.one_hot(k, self.levels).float(), (1, self.shift), dims=(1, 2))  # (n, HW, L)
        prev[:, 0] = 0  # pixel (0, 0) has no previous pixel
        return self.table + self.strength * prev.transpose(1, 2).reshape(n, self.levels, h, w)  # (n, L, H, W)


def sampling_args(logits: dict, n: int, shape: tuple, levels: int, seed: int) -> tuple:
    """({"levels", "strength", "shift", "table"}, n, (H, W), levels, seed) -> (logits_fn, n, (H, W), levels, generator)."""
    fn = RasterLogits(int(logits["levels"]), float(logits["strength"]), int(logits["shift"]), logits["table"])
    return fn, int(n), tuple(int(s) for s in shape), int(levels), torch.Generator().manual_seed(int(seed))


# -- the causality check ------------------------------------------------------------------------------------
class SmoothStack(nn.Sequential):
    """Convs with tanh between them: where a gradient is 0, it is 0 for every input."""

    def __init__(self, layers: list[nn.Module]) -> None:
        mods: list[nn.Module] = []
        for n, layer in enumerate(layers):
            mods += [nn.Tanh(), layer] if n else [layer]
        super().__init__(*mods)


def stack(kinds: list, channels: int, c_in: int = 1, k0: int = 5) -> SmoothStack:
    """Masked convs of the given kinds (None: an unmasked 3x3 conv), then a 1x1 conv to 4 'logits'.

    Its initial weights are drawn without touching the global generator; the cases set them.
    """
    with torch.random.fork_rng(devices=[]):
        layers: list[nn.Module] = []
        for n, kind in enumerate(kinds):
            c, k = (c_in, k0) if n == 0 else (channels, 3)
            layers.append(MaskedConv2d(c, channels, k, kind) if kind else nn.Conv2d(c, channels, k, padding=k // 2))
        return SmoothStack(layers + [nn.Conv2d(channels, 4, 1)])


def gated(config: dict) -> nn.Module:
    """The library's gated PixelCNN network for a config, initial weights drawn without touching the global generator."""
    with torch.random.fork_rng(devices=[]):
        return PixelCNN(PixelCNNConfig(**config), seed=6).net


def peek_ahead(x: torch.Tensor) -> torch.Tensor:
    """Output (i, j) = input (i, j + 1), wrapping around each row: every pixel but the last of a row looks ahead."""
    return torch.roll(x, -1, dims=3)


def network_spec(kind: str, net: nn.Module | None = None, **how) -> dict:
    """A causality case's network as plain data: its kind, how it is built, and its weights."""
    state = {} if net is None else {k: v.detach().clone() for k, v in net.state_dict().items()}
    return {"kind": kind, **how, "state": state}


def causality_args(spec: dict, shape: tuple) -> tuple:
    """(network spec, (C, H, W)) -> (the network or function, (C, H, W))."""
    kind = spec["kind"]
    if kind == "peek_ahead":
        return peek_ahead, tuple(shape)
    if kind == "stack":
        net = stack(list(spec["kinds"]), int(spec["channels"]), int(spec["c_in"]), int(spec["k0"]))
    elif kind == "gated":
        net = gated(dict(spec["config"]))
    else:
        raise ValueError(f"unknown network kind {kind!r}")
    net.load_state_dict(spec["state"])
    return net, tuple(int(s) for s in shape)


# -- the build-and-train exercise: the kernel trains the student's PixelCNN; the grader scores what it predicts ----------
def train_and_score(build_pixelcnn):
    """The check cell's wrapper of `build_pixelcnn(channels, n_layers, levels, lr, seed) -> PixelCNN`:
    (channels, n_layers, levels, lr, seed, steps, images, probes, positions) -> what the model predicts.

    Builds the student's PixelCNN (the global generator seeded with `seed` for the weights a network draws itself),
    scores the case's images, trains `steps` steps in the course's loop on 4,096 Fashion-MNIST training images
    (batches of 32), and scores them again. images: (n, 1, 28, 28) on the L-level grid; probes: the same images with
    every pixel from positions[i] on (raster order) redrawn; positions: (n, 2) rows and columns. Returns
    {"before", "after": log p(x_i | x_<i) of every pixel (n, 28, 28); "at", "at_probe": after training, the
    log-softmax over the L levels at positions[i] for images and probes (n, L); "loss": the logged losses}. The
    grader turns them into bits/dim, and checks that they are log-probabilities and causal, in its own process.
    """
    import torch.nn.functional as F

    from ..data import Batches
    from ..train import TrainConfig, Trainer

    def run(channels: int, n_layers: int, levels: int, lr: float, seed: int, steps: int, images: torch.Tensor,
            probes: torch.Tensor, positions: torch.Tensor) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = build_pixelcnn(int(channels), int(n_layers), int(levels), float(lr), int(seed))
        if not (hasattr(model, "logits") and hasattr(model, "phases") and hasattr(model, "to_levels")):
            raise TypeError(f"build_pixelcnn must return the course's PixelCNN process "
                            f"(course_lib.models.pixelcnn.PixelCNN) with your network as net=, got {type(model).__name__}.")
        rows = torch.arange(len(images))
        r, c = positions[:, 0].long(), positions[:, 1].long()

        def log_softmax(x: torch.Tensor) -> torch.Tensor:
            model.eval()
            with torch.no_grad():
                return F.log_softmax(model.logits(x).float(), dim=1).cpu()  # (n, L, 28, 28)

        def score() -> torch.Tensor:
            k = model.to_levels(images).cpu()  # (n, 1, 28, 28) levels
            return log_softmax(images).gather(1, k)[:, 0]  # (n, 28, 28): log p(x_i | x_<i)

        before = score()
        model.train()
        trainer = Trainer(model, train_config=TrainConfig(log_every=10, progress=False))
        trainer.fit(Batches(training_pairs(seed).images, 32, seed=int(seed)), steps=int(steps))
        after = score()
        return {"before": before, "after": after, "at": log_softmax(images)[rows, :, r, c],  # (n, L)
                "at_probe": log_softmax(probes)[rows, :, r, c],
                "loss": torch.tensor(trainer.history.get("loss", []), dtype=torch.float64)}

    return run
