"""Profiles: the one place that says how big every run is.

A profile scales every notebook and model at once, from CI (`smoke`, seconds) through a
2-core laptop (`cpu`, minutes) to one GPU (`gpu`, full quality). Notebooks read the knobs
from `setup().profile`; nothing else in the course hard-codes a size.

    COURSE_PROFILE=smoke jupyter lab      # or: setup(profile="smoke")
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

import torch

ENV_VAR = "COURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Every size knob of the course. Models and notebooks derive their sizes from these."""

    name: str
    train_size: int | None  # training images used (None: the whole split)
    eval_size: int  # held-out images for metrics (Frechet distance, bits/dim, ELBO)
    epochs: int  # passes over the training images for image models
    batch_size: int  # images per step for image models
    width: int  # base channel count of conv nets; layers use multiples of it
    toy_steps: int  # optimisation steps on 1D/2D toy problems
    toy_batch: int  # samples per step on toy problems
    mc_samples: int  # Monte Carlo samples for numerical checks
    n_show: int  # images in a sample grid
    min_steps: int = 0  # the fewest steps a generative model's default run takes (smoke's 8 batches teach a GAN nothing)
    # PixelCNN keeps the full H x W in every layer, so a step costs about ten VAE steps: it gets its own sizes.
    # Short runs need a large step: on the cpu profile's data, 60 steps of a 16-channel net reached 4.89
    # bits/dim with lr 1e-3, 4.22 with 3e-3 and 3.92 with 1e-2 (most of the early loss is the 256-way marginal).
    pixelcnn_channels: int = 32
    pixelcnn_layers: int = 5
    pixelcnn_lr: float = 1e-2
    pixelcnn_epochs: int = 1  # passes over the training images (at least min_steps steps)

    def scaled(self, **changes) -> "Profile":
        """A copy with some knobs changed: `profile.scaled(epochs=1)`."""
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise TypeError(f"Profile has no knob(s) {sorted(unknown)}; knobs are {sorted(asdict(self))}.")
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", train_size=512, eval_size=256, epochs=1, batch_size=64, width=8,
                     toy_steps=300, toy_batch=256, mc_samples=20_000, n_show=16, min_steps=150,
                     pixelcnn_channels=16, pixelcnn_layers=4),
    # cpu: PixelCNN trains one epoch, 93 steps of 128 (1.5-2.5 s a step on one core of a busy 2-core machine)
    "cpu": Profile("cpu", train_size=12_000, eval_size=2_000, epochs=3, batch_size=128, width=32,
                   toy_steps=3_000, toy_batch=256, mc_samples=200_000, n_show=64),
    "gpu": Profile("gpu", train_size=None, eval_size=10_000, epochs=20, batch_size=256, width=64,
                   toy_steps=10_000, toy_batch=512, mc_samples=2_000_000, n_show=64,
                   pixelcnn_channels=128, pixelcnn_layers=12, pixelcnn_lr=2e-3, pixelcnn_epochs=10),
}


def default_profile_name() -> str:
    """`COURSE_PROFILE` if set, else `gpu` when CUDA is present, else `cpu`."""
    name = os.environ.get(ENV_VAR, "").strip()
    if name:
        return name
    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | Profile | None = None) -> Profile:
    """Look a profile up by name (None: the default, see `default_profile_name`)."""
    if isinstance(name, Profile):
        return name
    key = (name or default_profile_name()).strip().lower()
    if key not in PROFILES:
        source = f"${ENV_VAR}" if name is None else "profile="
        raise ValueError(f"Unknown profile {key!r} (from {source}). Choose one of {sorted(PROFILES)}, "
                         f"e.g. `export {ENV_VAR}=cpu` or `setup(profile='smoke')`.")
    return PROFILES[key]
