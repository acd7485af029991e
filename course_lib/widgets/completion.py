"""The explorer of lecture 06 (PixelCNN): completions of a partly hidden image, drawn by an
autoregressive model."""
from __future__ import annotations

import html

from collections.abc import Callable

import ipywidgets as W
import torch

from .base import Explorer, _image_axes, _pixels, _slider

__all__ = ["CompletionExplorer"]


class CompletionExplorer(Explorer):
    """Hide the bottom of an image and let an autoregressive model draw what is under it, several times.

    `complete_fn(x, visible_rows, temperature, generator)` maps images x (n, C, H, W) in [0, 1] (n
    copies of the chosen image) to completions of the same shape: the first `visible_rows` rows kept,
    the rest drawn with `generator` (for a PixelCNN: `model.complete(x, visible_rows, generator=...,
    temperature=...)`). `images` (N, C, H, W) are the images to choose from (test images). Optional
    `bits_fn(x)` maps images (n, C, H, W) to bits per pixel (n, H, W), -log2 p(x_i | x_<i), from which
    the readout gives the bits/dim of the original's visible rows and of the completions' hidden rows.
    Sliders pick the image, the visible rows and the temperature; the button draws new completions
    (the next seed). The figure shows the original, the occluded input and `n` completions.
    State after each update: `original` (1, C, H, W), `completions` (n, C, H, W), `values`.
    """

    def __init__(self, complete_fn: Callable, images: torch.Tensor, bits_fn: Callable | None = None, index: int = 0,
                 visible_rows: int | None = None, temperature: float = 1.0, n: int = 4, seed: int = 0,
                 max_seed: int = 999, max_temperature: float = 2.0) -> None:
        images = torch.as_tensor(images).detach().float().cpu()
        if images.ndim != 4 or len(images) < 1 or images.shape[-2] < 2:
            raise ValueError(f"images must be (N, C, H, W) with N >= 1 and H >= 2 to hide rows of, got "
                             f"{tuple(images.shape)}. Add .unsqueeze(1) to (N, H, W) grey images.")
        count, height = len(images), images.shape[-2]
        visible_rows = height // 2 if visible_rows is None else visible_rows
        if not 0 <= index < count:
            raise ValueError(f"index {index} must pick one of the {count} images (0 to {count - 1}).")
        if not 0 <= visible_rows < height:
            raise ValueError(f"visible_rows must be between 0 (draw the whole image) and {height - 1} (one hidden "
                             f"row), got {visible_rows}.")
        if not 0 < temperature <= max_temperature:
            raise ValueError(f"temperature must lie in (0, {max_temperature}] (1: the model as trained), got {temperature}.")
        if n < 1 or not 0 <= seed <= max_seed:
            raise ValueError(f"n (completions shown) must be >= 1 and seed in [0, {max_seed}]; got n={n}, seed={seed}.")
        self.complete_fn, self.bits_fn, self.images, self.n, self.seed = complete_fn, bits_fn, images, n, seed
        self.max_seed = max_seed
        controls = {"image": W.IntSlider(value=index, min=0, max=count - 1, description="image"),
                    "visible rows": W.IntSlider(value=visible_rows, min=0, max=height - 1, description="visible"),
                    "temperature": _slider(temperature, 0.1, max_temperature, 0.05, "temperature")}
        super().__init__(controls, figsize=(1.25 * (n + 2), 1.9))
        self.button = W.Button(description="new samples", tooltip="draw new completions (the next seed)")
        self.button.on_click(lambda _: self.resample())
        self.readout = W.HTML()
        c = controls
        self.widget = self.view(W.HBox([W.VBox([c["image"], c["visible rows"]]), c["temperature"], self.button],
                                       layout=W.Layout(flex_flow="row wrap")), self.readout)
        self._axes = [self.fig.add_subplot(1, n + 2, i + 1) for i in range(n + 2)]
        self._artists = None
        self.start()

    def resample(self) -> None:
        """New completions of the same image: the next seed (wrapping around after `max_seed`)."""
        self.seed = (self.seed + 1) % (self.max_seed + 1)
        self._on_change()

    def update(self) -> None:
        index, rows = int(self.controls["image"].value), int(self.controls["visible rows"].value)
        temperature = float(self.controls["temperature"].value)
        self.original = self.images[index:index + 1]  # (1, C, H, W)
        x = self.original.expand(self.n, -1, -1, -1).clone()  # (n, C, H, W)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            out = self.complete_fn(x, rows, temperature, generator)
        out = torch.as_tensor(out).detach().float().cpu()
        if out.shape != x.shape:
            raise ValueError(f"complete_fn(x, visible_rows, temperature, generator) must return completions of x's "
                             f"shape {tuple(x.shape)}, got {tuple(out.shape)}.")
        if not torch.allclose(out[..., :rows, :], x[..., :rows, :], atol=1e-6):
            raise ValueError(f"complete_fn changed the {rows} visible rows: it must keep them as given and draw only "
                             f"the rows below.")
        self.completions = out
        hidden = out[..., rows:, :]  # (n, C, H - rows, W)
        self.values = {"temperature": temperature,
                       "|completion - original| (hidden rows)": float((hidden - x[..., rows:, :]).abs().mean()),
                       "spread between completions": float(hidden.std(0).mean()) if self.n > 1 else 0.0}
        if self.bits_fn is not None:
            with torch.no_grad():
                bits = torch.as_tensor(self.bits_fn(torch.cat([self.original, out]))).detach().float().cpu()  # (n + 1, H, W)
            if bits.shape != (self.n + 1, *x.shape[-2:]):
                raise ValueError(f"bits_fn(images) must map (m, C, H, W) images to bits per pixel (m, H, W); for m = "
                                 f"{self.n + 1} it returned shape {tuple(bits.shape)}.")
            if rows:
                self.values["bits/dim, visible rows"] = float(bits[0, :rows].mean())
            self.values["bits/dim, completed rows"] = float(bits[1:, rows:].mean())
        shown = " &nbsp; ".join(f"{html.escape(k)} = <b>{v:.4f}</b>" for k, v in self.values.items())
        self.readout.value = f"image {index}, {rows} rows visible, seed {self.seed} &nbsp; {shown}"
        occluded = self.original.clone()
        occluded[..., rows:, :] = 0.5  # hidden: mid grey
        pixels = _pixels(torch.cat([self.original, occluded, out]))
        if self._artists is None:
            self._artists = {"images": [_image_axes(ax, im) for ax, im in zip(self._axes, pixels)],
                             "lines": [ax.axhline(rows - 0.5, color="tab:red", lw=1) for ax in self._axes[1:]]}
            self.fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.82, wspace=0.08)
        for artist, im in zip(self._artists["images"], pixels):
            artist.set_data(im)
        for line in self._artists["lines"]:
            line.set_ydata([rows - 0.5, rows - 0.5])
        for ax, title in zip(self._axes, ["original", f"input ({rows} rows)"] + [f"T = {temperature:.2f}"] * self.n):
            ax.set_title(title, fontsize=8)
        self.render()
