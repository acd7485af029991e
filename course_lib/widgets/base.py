"""The pattern every explorer follows, and the helpers the explorers share.

Every explorer follows one pattern (`Explorer`): controls whose `observe` calls `update()`, a
state that tests can read after setting a control's value, a matplotlib figure redrawn into an
`Image` widget in place, and an `Output` widget that shows errors instead of swallowing them.

The helpers: `_slider` (a labelled FloatSlider), `_is_slider` and `_fit_slider` (slider widths),
and for explorers that decode latents into images, `_check_decode` (decode and check the shape),
`_pixels` (images to arrays for imshow) and `_image_axes` (a bare image axes).
"""
from __future__ import annotations

import io
import sys
import time

from collections.abc import Callable

import ipywidgets as W
import torch

__all__ = ["Explorer"]


CONTINUOUS_BELOW_S = 0.15  # a redraw faster than this follows a dragged slider; slower ones wait for release
PX_PER_STEP, MIN_TRACK_PX, MAX_TRACK_PX = 3, 200, 400  # slider track: wide enough to hit each step with a mouse
LABEL_PX, READOUT_PX = 70, 90  # the slider's description and its number box, beside the track


def _is_slider(control) -> bool:
    return isinstance(control, (W.FloatSlider, W.IntSlider, W.FloatLogSlider))


def _fit_slider(control) -> None:
    """Widen a slider so its track has at least PX_PER_STEP pixels per step (up to MAX_TRACK_PX)."""
    steps = round((control.max - control.min) / control.step) if not isinstance(control, W.FloatLogSlider) else 100
    track = min(max(PX_PER_STEP * steps, MIN_TRACK_PX), MAX_TRACK_PX)
    control.style.description_width = f"{LABEL_PX}px"
    control.layout.width = f"{LABEL_PX + track + READOUT_PX}px"


class Explorer:
    """Base class: subclasses build `self.controls` (name -> widget), implement `update()`, lay the
    widget out with `self.view(...)` and call `self.start()` once everything exists.

    What every explorer gets from here: sliders wide enough to drag step by step, redraws while a
    slider is dragged when a redraw is fast (`CONTINUOUS_BELOW_S`), and an error from `update()`
    shown above the figure, whose frame turns red-dashed (stale) until an update works again.
    """

    def __init__(self, controls: dict[str, W.ValueWidget], figsize: tuple[float, float] = (7.0, 3.2), dpi: int = 80) -> None:
        import matplotlib.figure

        self.controls = controls
        self.errors = W.Output()
        self.image = W.Image(format="png", layout=W.Layout(border=self.FRESH))
        self.error: Exception | None = None  # the last exception raised by update(), None if it worked
        self.update_seconds: float | None = None  # how long the last successful update took
        self.fig = matplotlib.figure.Figure(figsize=figsize, dpi=dpi)  # not pyplot: no global state, no double display
        for control in controls.values():
            if _is_slider(control):
                _fit_slider(control)
            control.observe(self._on_change, names="value")

    FRESH, STALE = "3px solid transparent", "3px dashed #d62728"  # the figure's frame: same size either way

    def update(self) -> None:
        raise NotImplementedError

    def view(self, *above: W.Widget) -> W.VBox:
        """The explorer's widget: `above` (controls, readouts), then the error if one stands, then the figure."""
        return W.VBox([*above, self.errors, self.image])

    def start(self) -> None:
        """Draw once, then time two redraws; sliders follow the mouse while dragged if a redraw is fast."""
        self._on_change()  # the first draw pays one-off costs (fonts, caches): not timed
        timings = []
        for _ in range(2):
            self._on_change()
            timings.append(self.update_seconds if self.error is None else float("inf"))
        for control in self.controls.values():
            if _is_slider(control):
                control.continuous_update = min(timings) < CONTINUOUS_BELOW_S

    def _on_change(self, change=None) -> None:
        self.errors.clear_output()
        try:
            t0 = time.perf_counter()
            self.update()
            self.update_seconds = time.perf_counter() - t0
            self.error = None
            self.image.layout.border = self.FRESH
        except Exception as e:  # shown to the student; the widget stays usable
            self.error = e
            self.image.layout.border = self.STALE
            with self.errors:  # stderr: JupyterLab shows it on a red background
                print(f"{type(e).__name__}: {e}\n(the figure below is stale: it shows the last settings that worked)",
                      file=sys.stderr)

    def render(self) -> None:
        """Redraw the figure into the Image widget (in place: the widget's value changes)."""
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png")
        self.image.value = buf.getvalue()


def _slider(value: float, lo: float, hi: float, step: float, label: str) -> W.FloatSlider:
    return W.FloatSlider(value=value, min=lo, max=hi, step=step, description=label, readout_format=".2f")


def _pixels(images: torch.Tensor) -> "numpy.ndarray":
    """(N, C, H, W) in [0, 1] -> a list of (H, W) or (H, W, 3) arrays for imshow, clipped to [0, 1]."""
    images = images.detach().float().clamp(0, 1).cpu()
    return [im[0].numpy() if im.shape[0] == 1 else im.permute(1, 2, 0).numpy() for im in images]


def _image_axes(ax, first) -> "matplotlib.image.AxesImage":
    ax.set_axis_off()
    return ax.imshow(first, cmap="gray", vmin=0, vmax=1, interpolation="nearest")


def _check_decode(decode: Callable, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        images = decode(z)
    if images.dim() != 4 or len(images) != len(z):
        raise ValueError(f"decode(z) must map (n, d) latents to (n, C, H, W) images in [0, 1]; for z of shape "
                         f"{tuple(z.shape)} it returned shape {tuple(images.shape)}.")
    return images
