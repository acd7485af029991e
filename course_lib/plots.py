"""Plots: image grids (torchvision's make_grid) and loss curves, with matplotlib. One API."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

__all__ = ["image_grid", "show_images", "plot_history", "LivePlot"]


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}.")
    if images.ndim == 3:  # (N, H, W): one channel
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, C, H, W) with C = 1 or 3 (or (N, H, W)); got "
                         f"{tuple(images.shape)}. For a single image use x.unsqueeze(0).")
    if len(images) == 0:
        raise ValueError("images is empty: nothing to show.")
    if not images.is_floating_point():
        images = images.float() / 255.0
    return images.detach().float().cpu()


def image_grid(images: torch.Tensor, nrow: int | None = None, value_range: tuple[float, float] = (0.0, 1.0),
               padding: int = 2) -> torch.Tensor:
    """A (3, H', W') grid image of a batch (N, C, H, W) whose values lie in `value_range`."""
    from torchvision.utils import make_grid

    images = _check_images(images)
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}.")
    images = ((images - lo) / (hi - lo)).clamp(0, 1)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(images)))))
    return make_grid(images, nrow=nrow, padding=padding, pad_value=1.0)


def show_images(images: torch.Tensor, nrow: int | None = None, title: str | None = None, ax=None,
                value_range: tuple[float, float] = (0.0, 1.0), size: float = 4.0):
    """Show a batch as a grid; returns the matplotlib Axes. Use value_range=(-1, 1) for tanh outputs."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow=nrow, value_range=value_range)
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size * grid.shape[1] / grid.shape[2]))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_history(history: Mapping[str, Sequence[float]], keys: Sequence[str] | None = None, ax=None,
                 title: str | None = None, logy: bool = False):
    """Loss curves from a Trainer history (dict of lists with a 'step' list). Returns the Axes."""
    import matplotlib.pyplot as plt

    if "step" not in history:
        raise ValueError(f"history needs a 'step' list (a Trainer history); it has {sorted(history)}.")
    keys = list(keys) if keys is not None else [k for k in history if k not in ("step", "time")]
    missing = [k for k in keys if k not in history]
    if missing:
        raise KeyError(f"history has no {missing}; it has {sorted(k for k in history if k not in ('step', 'time'))}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for k in keys:
        n = min(len(history["step"]), len(history[k]))
        ax.plot(history["step"][:n], history[k][:n], label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("log")
    if keys:
        ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


class LivePlot:
    """A Trainer callback that redraws loss curves (and optional samples) in place in Jupyter.

        live = LivePlot(samples=lambda: model.sample(16))
        trainer.fit(batches, epochs=3, callback=live)
    """

    def __init__(self, samples=None, value_range: tuple[float, float] = (0.0, 1.0), keys: Sequence[str] | None = None):
        self.samples, self.value_range, self.keys = samples, value_range, keys
        self.handle = None

    def __call__(self, trainer) -> None:
        import matplotlib.pyplot as plt

        ncols = 2 if self.samples is not None else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.2), squeeze=False)
        if trainer.history["step"]:
            plot_history(trainer.history, keys=self.keys, ax=axes[0, 0], title=f"step {trainer.step}")
        if self.samples is not None:
            with torch.no_grad():
                show_images(self.samples(), ax=axes[0, 1], value_range=self.value_range, title="samples")
        fig.tight_layout()
        try:
            from IPython.display import display
            if self.handle is None:
                self.handle = display(fig, display_id=True)
            else:
                self.handle.update(fig)
        except ImportError:  # not in IPython: nothing to draw into
            pass
        plt.close(fig)
