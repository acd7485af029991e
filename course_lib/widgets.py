"""Interactive explorers for the lectures, built from explicit ipywidgets.

Every explorer follows one pattern (`Explorer`): controls whose `observe` calls `update()`, a
state that tests can read after setting a control's value, a matplotlib figure redrawn into an
`Image` widget in place, and an `Output` widget that shows errors instead of swallowing them.

    explorer = DivergenceExplorer()
    display(explorer.widget)            # in a notebook
    explorer.controls["q.mu1"].value = 2.0
    explorer.values                     # {'KL(p||q)': ..., 'KL(q||p)': ..., 'JSD': ...}
"""
from __future__ import annotations

import html
import io
import re
import sys
import time

import ipywidgets as W
import torch

from . import divergences as dv
from .distributions import Mixture
from .models.toy_gan import one_thread

__all__ = ["Explorer", "DivergenceExplorer", "static_bundle", "add_static_fallbacks"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


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
            with one_thread():  # grid-sized tensors: intra-op threads only wait on each other on a busy CPU
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


class DivergenceExplorer(Explorer):
    """Two 1D distributions p and q, each a Gaussian or a two-component mixture.

    Shows both densities and the optimal discriminator D* = p / (p + q) (p plays p_data, q plays
    p_g), with KL(p||q), KL(q||p) and JSD computed on a grid. State after each update:
    `x`, `log_p`, `log_q` (grid tensors), `d_star`, `values`.
    """

    KINDS = ("Gaussian", "mixture")

    def __init__(self, p: dict | None = None, q: dict | None = None, lim: float = 10.0, n_grid: int = 4001) -> None:
        self.x = torch.linspace(-lim, lim, n_grid, dtype=torch.float64)
        controls = {}
        defaults = {"p": dict(kind="mixture", mu1=-2.0, sigma1=0.6, mu2=2.0, sigma2=0.6, w1=0.5),
                    "q": dict(kind="Gaussian", mu1=0.5, sigma1=1.0, mu2=3.0, sigma2=0.5, w1=0.5)}
        for name, given in (("p", p), ("q", q)):
            d = {**defaults[name], **(given or {})}
            controls[f"{name}.kind"] = W.Dropdown(options=self.KINDS, value=d["kind"], description=f"{name}:",
                                                  layout=W.Layout(width="260px"))
            controls[f"{name}.mu1"] = _slider(d["mu1"], -4, 4, 0.1, "mean 1")
            controls[f"{name}.sigma1"] = _slider(d["sigma1"], 0.2, 3, 0.05, "std 1")
            controls[f"{name}.mu2"] = _slider(d["mu2"], -4, 4, 0.1, "mean 2")
            controls[f"{name}.sigma2"] = _slider(d["sigma2"], 0.2, 3, 0.05, "std 2")
            controls[f"{name}.w1"] = _slider(d["w1"], 0.05, 0.95, 0.05, "weight 1")
        super().__init__(controls)
        self.readout = W.HTML()
        columns = [W.VBox([c for k, c in controls.items() if k.startswith(n + ".")]) for n in ("p", "q")]
        self.widget = self.view(W.HBox(columns, layout=W.Layout(flex_flow="row wrap")), self.readout)
        ax1 = self.fig.add_subplot(1, 1, 1)
        ax2 = ax1.twinx()
        (self._line_p,) = ax1.plot([], [], label="p")
        (self._line_q,) = ax1.plot([], [], label="q")
        (self._line_d,) = ax2.plot([], [], "k--", lw=1, label="D* = p/(p+q)")
        ax1.set_xlabel("x"), ax1.set_ylabel("density"), ax2.set_ylabel("D*")
        ax2.set_ylim(-0.02, 1.02)
        ax1.legend(handles=[self._line_p, self._line_q, self._line_d], loc="upper left", fontsize="small")
        self._axes = (ax1, ax2)
        self.values: dict[str, float] = {}
        self._laid_out = False
        self.start()

    def distribution(self, name: str) -> Mixture:
        """The Mixture that the controls of `name` ('p' or 'q') describe now."""
        c = {k.split(".", 1)[1]: w.value for k, w in self.controls.items() if k.startswith(name + ".")}
        mixture = c["kind"] == "mixture"
        for key in ("mu2", "sigma2", "w1"):
            self.controls[f"{name}.{key}"].disabled = not mixture
        if not mixture:
            return Mixture.gaussian(c["mu1"], c["sigma1"])
        return Mixture([c["w1"], 1 - c["w1"]], [c["mu1"], c["mu2"]], [c["sigma1"], c["sigma2"]])

    def update(self) -> None:
        x = self.x
        self.log_p, self.log_q = self.distribution("p").log_prob(x), self.distribution("q").log_prob(x)  # (N,)
        self.d_star = torch.sigmoid(self.log_p - self.log_q)  # p / (p + q), stable where both are tiny
        self.values = {"KL(p||q)": float(dv.kl_integral_log(self.log_p, self.log_q, x)),
                       "KL(q||p)": float(dv.kl_integral_log(self.log_q, self.log_p, x)),
                       "JSD": float(dv.jsd_integral_log(self.log_p, self.log_q, x))}
        v = self.values
        self.readout.value = (f"KL(p‖q) = <b>{v['KL(p||q)']:.4f}</b> &nbsp; KL(q‖p) = <b>{v['KL(q||p)']:.4f}</b> "
                              f"&nbsp; JSD = <b>{v['JSD']:.4f}</b> (max log 2 = {dv.LOG2:.4f}) nats")
        p, q = self.log_p.exp(), self.log_q.exp()
        self._line_p.set_data(x.numpy(), p.numpy())
        self._line_q.set_data(x.numpy(), q.numpy())
        self._line_d.set_data(x.numpy(), self.d_star.numpy())
        ax1 = self._axes[0]
        ax1.set_xlim(float(x[0]) / 1.5, float(x[-1]) / 1.5)
        ax1.set_ylim(0, 1.05 * float(torch.maximum(p, q).max()))
        ax1.set_title(f"KL(p||q) = {v['KL(p||q)']:.3f}   KL(q||p) = {v['KL(q||p)']:.3f}   JSD = {v['JSD']:.3f}", fontsize=9)
        if not self._laid_out:  # margins once: tight_layout costs as much as the rest of a redraw
            self.fig.tight_layout()
            self._laid_out = True
        self.render()


# Where widgets are not rendered (an untrusted notebook in JupyterLab, the repository's web view),
# a widget output shows its text/plain, which ipywidgets fills once, at display time: the explorer
# reads `VBox(children=(HBox(...` and a finished progress bar reads `0%| | 0/279`. The functions
# below rebuild that fallback from the widget state saved in the notebook, i.e. the final state.

def _text_of(state: dict, model_id: str) -> str:
    """A plain-text rendering of one saved widget and its children."""
    model = state.get(model_id)
    if model is None:
        return ""
    name, s = model["model_name"], model["state"]
    children = [c.removeprefix("IPY_MODEL_") for c in s.get("children", [])]
    if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"):
        parts = [t for t in (_text_of(state, c) for c in children) if t]
        side_by_side = name == "HBoxModel" and not any("\n" in t for t in parts)  # a tqdm bar: text|bar|text
        return ("" if side_by_side else "\n").join(parts)
    if name in ("FloatProgressModel", "IntProgressModel"):
        span = (s.get("max", 100) - s.get("min", 0)) or 1
        filled = round(10 * (s.get("value", 0) - s.get("min", 0)) / span)
        return "|" + "█" * filled + " " * (10 - filled) + "|"  # tqdm's own bar, 10 wide
    label = s.get("description", "").rstrip(":")
    label = f"{label}: " if label else ""
    if name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
        return label + html.unescape(re.sub(r"<[^>]+>", "", str(s.get("value", ""))))
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        options, index = s.get("_options_labels", []), s.get("index")
        return label + (str(options[index]) if index is not None and index < len(options) else "")
    if "value" in s and not isinstance(s["value"], (dict, list)):
        return label + str(s["value"])
    return ""


def _first_png(state: dict, model_id: str) -> str | None:
    """The base64 PNG of the first Image widget under `model_id` (depth first), if any."""
    model = state.get(model_id)
    if model is None:
        return None
    if model["model_name"] == "ImageModel" and model["state"].get("format", "png") == "png":
        return next((b["data"] for b in model.get("buffers", []) if b["path"] == ["value"] and b["encoding"] == "base64"), None)
    for child in model["state"].get("children", []):
        png = _first_png(state, child.removeprefix("IPY_MODEL_"))
        if png:
            return png
    return None


def static_bundle(state: dict, model_id: str) -> dict[str, str]:
    """The static representations of a saved widget: its text, and its first picture if it has one."""
    bundle = {"text/plain": _text_of(state, model_id)}
    png = _first_png(state, model_id)
    if png:
        bundle["image/png"] = png
    return bundle


def add_static_fallbacks(nb) -> int:
    """Give every widget output of an executed notebook the static bundle of its saved state.

    The widget view stays first choice wherever widgets render; elsewhere the reader sees the
    final picture and text instead of a stale repr. Returns how many outputs were rewritten.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    done = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view and view.get("model_id") in state:
                output["data"].pop("image/png", None)
                output["data"].update(static_bundle(state, view["model_id"]))
                done += 1
    return done
