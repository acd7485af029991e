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
import math
import sys
import time

from collections.abc import Callable, Mapping

import ipywidgets as W
import torch

from . import divergences as dv
from .distributions import Mixture

__all__ = ["Explorer", "DivergenceExplorer", "InterpolationExplorer", "ArithmeticExplorer"]


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


class InterpolationExplorer(Explorer):
    """A path between two latent draws, linear or spherical, decoded as you move along it.

    `decode` maps latents (n, z_dim) to images (n, C, H, W) in [0, 1] (for a GAN: the generator
    then `gan.decode`, in eval mode). Each endpoint is a standard normal draw fixed by its seed; the
    buttons draw new ones. The figure shows the image at t, the norm of z along both paths against
    the sqrt(d) shell where the training noise lives, and a strip of frames along the chosen path.
    State after each update: `z_a`, `z_b`, `z_t` (1, d), `frames` (F, C, H, W), `values`.
    """

    PATHS = ("spherical", "linear")

    def __init__(self, decode: Callable[[torch.Tensor], torch.Tensor], z_dim: int, seeds: tuple[int, int] = (0, 1),
                 t: float = 0.5, path: str = "spherical", frames: int = 8, max_seed: int = 99) -> None:
        from .latent import lerp, slerp

        if path not in self.PATHS:
            raise ValueError(f"path must be one of {self.PATHS}, got {path!r}.")
        if not all(0 <= s <= max_seed for s in seeds):
            raise ValueError(f"seeds must lie in [0, {max_seed}], got {seeds}.")
        self.decode, self.z_dim, self.n_frames = decode, z_dim, frames
        self._paths = {"spherical": slerp, "linear": lerp}
        controls = {"t": _slider(t, 0.0, 1.0, 0.05, "t"),
                    "path": W.Dropdown(options=self.PATHS, value=path, description="path:", layout=W.Layout(width="260px")),
                    "seed A": W.IntSlider(value=seeds[0], min=0, max=max_seed, description="seed A"),
                    "seed B": W.IntSlider(value=seeds[1], min=0, max=max_seed, description="seed B")}
        super().__init__(controls, figsize=(7.5, 4.2))
        self.buttons = {end: W.Button(description=f"new {end}", tooltip=f"draw a new endpoint {end} (next seed)")
                        for end in ("A", "B")}
        for end, button in self.buttons.items():
            button.on_click(lambda _, end=end: self.resample(end))
        self.readout = W.HTML()
        c = controls
        self.widget = self.view(W.HBox([W.VBox([c["t"], c["path"]]), W.VBox([c["seed A"], c["seed B"]]),
                                        W.VBox(list(self.buttons.values()))], layout=W.Layout(flex_flow="row wrap")),
                                self.readout)
        grid = self.fig.add_gridspec(2, frames, height_ratios=[3, 1])
        half = frames // 2
        self._ax_image, self._ax_norm = self.fig.add_subplot(grid[0, :half]), self.fig.add_subplot(grid[0, half:])
        self._ax_frames = [self.fig.add_subplot(grid[1, i]) for i in range(frames)]
        self._artists = None
        self.start()

    def resample(self, end: str) -> None:
        """The next seed for endpoint 'A' or 'B' (a different one from the other endpoint's)."""
        control, other = self.controls[f"seed {end}"], self.controls[f"seed {'B' if end == 'A' else 'A'}"]
        new = (control.value + 1) % (control.max + 1)
        if new == other.value:
            new = (new + 1) % (control.max + 1)
        control.value = new

    def latent(self, seed: int) -> torch.Tensor:
        """The standard normal draw (1, z_dim) that `seed` names."""
        return torch.randn(1, self.z_dim, generator=torch.Generator().manual_seed(int(seed)))

    def update(self) -> None:
        c = {k: w.value for k, w in self.controls.items()}
        f = self._paths[c["path"]]
        self.z_a, self.z_b = self.latent(c["seed A"]), self.latent(c["seed B"])
        ts = torch.linspace(0, 1, self.n_frames)
        self.z_t = f(self.z_a, self.z_b, c["t"])  # (1, d)
        path = torch.cat([f(self.z_a, self.z_b, float(s)) for s in ts])  # (F, d)
        images = _check_decode(self.decode, torch.cat([self.z_t, path]))  # (1 + F, C, H, W)
        self.frames = images[1:]
        fine = torch.linspace(0, 1, 101)
        norms = {name: torch.cat([g(self.z_a, self.z_b, float(s)) for s in fine]).norm(dim=1) for name, g in self._paths.items()}
        shell = math.sqrt(self.z_dim)
        norm_t = float(self.z_t.norm())
        self.values = {"t": float(c["t"]), "|z_t|": norm_t, "|z_t| / sqrt(d)": norm_t / shell}
        self.readout.value = (f"t = <b>{c['t']:.4f}</b> &nbsp; |z_t| = <b>{norm_t:.4f}</b> &nbsp; "
                              f"|z_t| / sqrt(d) = <b>{norm_t / shell:.4f}</b> (the training noise: about 1)")
        pixels = _pixels(images)
        self._ax_image.set_title(f"{c['path']}, t = {c['t']:.2f}", fontsize=10)
        self._ax_norm.set_title(f"|z| along the path (d = {self.z_dim})", fontsize=10)
        if self._artists is None:  # artists once, then only their data changes
            ax = self._ax_norm
            lines = {name: ax.plot(fine.numpy(), n.numpy(), label=name)[0] for name, n in norms.items()}
            ax.axhline(shell, color="k", lw=0.8, ls="--", label="sqrt(d)")
            (marker,) = ax.plot([], [], "ko")
            ax.set_xlabel("t"), ax.set_ylabel("|z|"), ax.legend(fontsize="small", loc="lower center")
            ax.set_xlim(0, 1)
            self._artists = {"image": _image_axes(self._ax_image, pixels[0]), "lines": lines, "marker": marker,
                             "frames": [_image_axes(a, im) for a, im in zip(self._ax_frames, pixels[1:])]}
            self.fig.tight_layout()
        a = self._artists
        a["image"].set_data(pixels[0])
        for artist, im in zip(a["frames"], pixels[1:]):
            artist.set_data(im)
        for name, line in a["lines"].items():
            line.set_ydata(norms[name].numpy())
        a["marker"].set_data([c["t"]], [norm_t])
        top = max(float(n.max()) for n in norms.values())
        self._ax_norm.set_ylim(0, 1.1 * max(top, shell))
        self.render()


class ArithmeticExplorer(Explorer):
    """Latent arithmetic on named latent vectors: z = A + amount * (C - B), then decoded and classified.

    `latents` maps names to latent vectors (d,), for example the mean latent of the samples the
    evaluation classifier puts in each class. `radius` (for a GAN: sqrt(d)) rescales the result onto
    the shell where the training noise lives; None leaves it as is. `classify` maps images to class
    probabilities (n, K) for the `classes`; the bar chart shows them for the result.
    State after each update: `z` (1, d), `images` (4, C, H, W) for A, B, C and the result, `probs` (K,), `values`.
    """

    def __init__(self, decode: Callable[[torch.Tensor], torch.Tensor], latents: Mapping[str, torch.Tensor],
                 classify: Callable[[torch.Tensor], torch.Tensor], classes: list[str],
                 start: tuple[str, str, str] | None = None, amount: float = 1.0, radius: float | None = None) -> None:
        names = list(latents)
        if len(names) < 2:
            raise ValueError(f"latent arithmetic needs at least two named latents, got {names}.")
        start = start or (names[0], names[0], names[1])
        unknown = [s for s in start if s not in latents]
        if unknown:
            raise ValueError(f"start names {unknown} are not among the latents: {names}.")
        self.decode, self.latents, self.classify, self.classes, self.radius = decode, dict(latents), classify, list(classes), radius
        controls = {"A": W.Dropdown(options=names, value=start[0], description="A:", layout=W.Layout(width="260px")),
                    "B": W.Dropdown(options=names, value=start[1], description="minus B:", layout=W.Layout(width="260px")),
                    "C": W.Dropdown(options=names, value=start[2], description="plus C:", layout=W.Layout(width="260px")),
                    "amount": _slider(amount, 0.0, 2.0, 0.05, "amount")}
        super().__init__(controls, figsize=(8.0, 2.8))
        self.readout = W.HTML()
        c = controls
        self.widget = self.view(W.HBox([W.VBox([c["A"], c["B"], c["C"]]), c["amount"]],
                                       layout=W.Layout(flex_flow="row wrap")), self.readout)
        grid = self.fig.add_gridspec(1, 6)
        self._axes = [self.fig.add_subplot(grid[0, i]) for i in range(4)]
        self._ax_probs = self.fig.add_subplot(grid[0, 4:])
        self._artists = None
        self.start()

    def update(self) -> None:
        c = {k: w.value for k, w in self.controls.items()}
        a, b, cc = (self.latents[c[k]].reshape(1, -1).float() for k in ("A", "B", "C"))
        z = a + c["amount"] * (cc - b)  # (1, d)
        if self.radius is not None:
            z = z / z.norm().clamp_min(1e-12) * self.radius
        self.z = z
        self.images = _check_decode(self.decode, torch.cat([a, b, cc, z]))  # (4, C, H, W)
        with torch.no_grad():
            probs = self.classify(self.images)  # (4, K)
        if probs.shape != (4, len(self.classes)):
            raise ValueError(f"classify(images) must return (n, {len(self.classes)}) class probabilities; "
                             f"got shape {tuple(probs.shape)}.")
        self.probs = probs[3].float()
        top = int(self.probs.argmax())
        cos_c = float(torch.nn.functional.cosine_similarity(z, cc).squeeze())
        self.values = {"amount": float(c["amount"]), "p(top class)": float(self.probs[top]), "cos(z, C)": cos_c}
        self.readout.value = (f"z = {html.escape(c['A'])} + <b>{c['amount']:.4f}</b> × ({html.escape(c['C'])} − "
                              f"{html.escape(c['B'])}); cos(z, C) = <b>{cos_c:.4f}</b>; the classifier says "
                              f"<b>{html.escape(self.classes[top])}</b> (p = <b>{float(self.probs[top]):.4f}</b>)")
        pixels = _pixels(self.images)
        for ax, title in zip(self._axes, [c["A"], f"− {c['B']}", f"+ {c['C']}", f"= result ({c['amount']:.2f})"]):
            ax.set_title(title[:18], fontsize=8)
        if self._artists is None:
            ax = self._ax_probs
            bars = ax.barh(range(len(self.classes)), self.probs.numpy(), color="tab:blue")
            ax.set_yticks(range(len(self.classes)), self.classes, fontsize=7)
            ax.set_xlim(0, 1), ax.invert_yaxis(), ax.set_xlabel("p(class | result)", fontsize=8)
            self._artists = {"images": [_image_axes(axi, im) for axi, im in zip(self._axes, pixels)], "bars": bars}
            self.fig.tight_layout()
        for artist, im in zip(self._artists["images"], pixels):
            artist.set_data(im)
        for bar, p in zip(self._artists["bars"], self.probs.tolist()):
            bar.set_width(p)
            bar.set_color("tab:orange" if p == float(self.probs[top]) else "tab:blue")
        self.render()


# -- the explorers of lecture 05 (VAE): a 2D latent space, and paths between encoded images -------------------
_CLASS_COLOURS = "tab10"


class LatentExplorer(Explorer):
    """A two-dimensional latent space: two sliders place z, the decoded image updates, and the point
    moves on a scatter of the encodings of real images coloured by class.

    `decode` maps latents (n, 2) to images (n, C, H, W) in [0, 1]; `codes` (N, 2) are encodings of
    images (for a VAE: the posterior means of test images) with their `labels` (N,) indexing `classes`.
    State after each update: `z` (1, 2), `decoded` (1, C, H, W), `nearest` (the index of the closest
    code), `values`.
    """

    def __init__(self, decode: Callable[[torch.Tensor], torch.Tensor], codes: torch.Tensor, labels: torch.Tensor,
                 classes: list[str], z: tuple[float, float] = (0.0, 0.0), lim: float = 3.0, step: float = 0.05) -> None:
        codes, labels = torch.as_tensor(codes).detach().float().cpu(), torch.as_tensor(labels).cpu()
        if codes.ndim != 2 or codes.shape[1] != 2 or len(labels) != len(codes):
            raise ValueError(f"codes must be (N, 2) latents with one label each; got codes of shape {tuple(codes.shape)} "
                             f"and {len(labels)} labels. A VAE with z_dim=2 gives them (its posterior means).")
        if not all(-lim <= v <= lim for v in z):
            raise ValueError(f"the starting point {z} must lie in the sliders' range [-{lim}, {lim}].")
        self.decode, self.codes, self.labels, self.classes = decode, codes, labels, list(classes)
        controls = {"z1": _slider(z[0], -lim, lim, step, "z1"), "z2": _slider(z[1], -lim, lim, step, "z2")}
        super().__init__(controls, figsize=(7.5, 3.5))
        self.readout = W.HTML()
        self.widget = self.view(W.HBox([controls["z1"], controls["z2"]], layout=W.Layout(flex_flow="row wrap")),
                                self.readout)
        grid = self.fig.add_gridspec(1, 5)
        self._ax_image, self._ax_codes = self.fig.add_subplot(grid[0, :2]), self.fig.add_subplot(grid[0, 2:])
        self.lim = lim
        self._artists = None
        self.start()

    def update(self) -> None:
        z1, z2 = (float(self.controls[k].value) for k in ("z1", "z2"))
        self.z = torch.tensor([[z1, z2]])
        self.decoded = _check_decode(self.decode, self.z)  # (1, C, H, W)
        distances = (self.codes - self.z).norm(dim=1)  # (N,)
        self.nearest = int(distances.argmin())
        near_class = self.classes[int(self.labels[self.nearest])]
        log_prior = float(-0.5 * self.z.pow(2).sum() - math.log(2 * math.pi))  # log N(z; 0, I_2)
        self.values = {"z1": z1, "z2": z2, "log p(z)": log_prior, "nearest code": float(distances[self.nearest])}
        self.readout.value = (f"z = (<b>{z1:.4f}</b>, <b>{z2:.4f}</b>) &nbsp; log N(z; 0, I) = <b>{log_prior:.4f}</b> "
                              f"&nbsp; nearest test encoding: <b>{self.values['nearest code']:.4f}</b> away, a "
                              f"{html.escape(near_class)}")
        pixels = _pixels(self.decoded)
        if self._artists is None:
            ax = self._ax_codes
            ax.scatter(self.codes[:, 0].numpy(), self.codes[:, 1].numpy(), c=self.labels.numpy(), cmap=_CLASS_COLOURS,
                       vmin=-0.5, vmax=9.5, s=4, alpha=0.6)
            (marker,) = ax.plot([], [], "k*", markersize=14, markeredgecolor="w")
            ax.set_xlim(-self.lim, self.lim), ax.set_ylim(-self.lim, self.lim), ax.set_aspect("equal")
            ax.set_xlabel("z1"), ax.set_ylabel("z2"), ax.set_title("test encodings, coloured by class", fontsize=9)
            self._artists = {"image": _image_axes(self._ax_image, pixels[0]), "marker": marker}
            self.fig.tight_layout()
        self._ax_image.set_title(f"decode(z): near a {near_class}"[:40], fontsize=9)
        self._artists["image"].set_data(pixels[0])
        self._artists["marker"].set_data([z1], [z2])
        self.render()


class PairInterpolationExplorer(Explorer):
    """The straight path between the encodings of two chosen images, decoded as you move along it.

    `encode` maps images (n, C, H, W) to latents (n, d) (for a VAE: the posterior means); `decode`
    maps latents back to images in [0, 1]; `images` (N, C, H, W) are the images to choose from
    (test images). Two sliders pick the images by index, `t` moves along the path, and the button
    picks a random pair (from its own seeded generator). The figure shows image A, the decoded
    point at t and image B, and a strip of decoded frames along the path.
    State after each update: `z_a`, `z_b`, `z_t` (1, d), `frames` (F, C, H, W), `values`.
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor],
                 images: torch.Tensor, pair: tuple[int, int] = (0, 1), t: float = 0.5, frames: int = 8,
                 seed: int = 0) -> None:
        images = torch.as_tensor(images).detach().float().cpu()
        n = len(images)
        if images.ndim != 4 or n < 2:
            raise ValueError(f"images must be (N, C, H, W) with N >= 2 to choose pairs from, got {tuple(images.shape)}.")
        if not all(0 <= i < n for i in pair):
            raise ValueError(f"pair {pair} must index the {n} images (0 to {n - 1}).")
        self.encode, self.decode, self.images, self.n_frames = encode, decode, images, frames
        self._random = torch.Generator().manual_seed(seed)
        controls = {"t": _slider(t, 0.0, 1.0, 0.05, "t"),
                    "image A": W.IntSlider(value=pair[0], min=0, max=n - 1, description="image A"),
                    "image B": W.IntSlider(value=pair[1], min=0, max=n - 1, description="image B")}
        super().__init__(controls, figsize=(7.5, 3.6))
        self.button = W.Button(description="random pair", tooltip="two other images, drawn at random")
        self.button.on_click(lambda _: self.random_pair())
        self.readout = W.HTML()
        self.widget = self.view(W.HBox([controls["t"], W.VBox([controls["image A"], controls["image B"]]), self.button],
                                       layout=W.Layout(flex_flow="row wrap")), self.readout)
        grid = self.fig.add_gridspec(2, frames, height_ratios=[2, 1])
        third = frames // 3
        self._ax_top = [self.fig.add_subplot(grid[0, i * third:(i + 1) * third]) for i in range(3)]
        self._ax_frames = [self.fig.add_subplot(grid[1, i]) for i in range(frames)]
        self._artists = None
        self.start()

    def random_pair(self) -> None:
        """Set both sliders to a random pair of distinct images, different from the current pair."""
        n, current = len(self.images), (self.controls["image A"].value, self.controls["image B"].value)
        while True:
            a, b = torch.randperm(n, generator=self._random)[:2].tolist()
            if (a, b) != current:
                break
        with self.controls["image A"].hold_trait_notifications():
            self.controls["image A"].value = a
        self.controls["image B"].value = b

    def update(self) -> None:
        c = {k: w.value for k, w in self.controls.items()}
        ends = self.images[[c["image A"], c["image B"]]]  # (2, C, H, W)
        with torch.no_grad():
            codes = self.encode(ends)
        if codes.ndim != 2 or len(codes) != 2:
            raise ValueError(f"encode(images) must map (n, C, H, W) images to (n, d) latents; for 2 images it "
                             f"returned shape {tuple(codes.shape)}.")
        self.z_a, self.z_b = codes[:1].float().cpu(), codes[1:].float().cpu()
        t = float(c["t"])
        self.z_t = (1 - t) * self.z_a + t * self.z_b  # (1, d)
        ts = torch.linspace(0, 1, self.n_frames)[:, None]  # (F, 1)
        path = (1 - ts) * self.z_a + ts * self.z_b  # (F, d)
        decoded = _check_decode(self.decode, torch.cat([self.z_t, path])).float().cpu()  # (1 + F, C, H, W)
        self.frames = decoded[1:]
        gap = float((self.z_a - self.z_b).norm())
        self.values = {"t": t, "|z_A - z_B|": gap, "|z_t|": float(self.z_t.norm())}
        self.readout.value = (f"t = <b>{t:.4f}</b> &nbsp; |z_A − z_B| = <b>{gap:.4f}</b> &nbsp; "
                              f"|z_t| = <b>{self.values['|z_t|']:.4f}</b> (images {c['image A']} and {c['image B']})")
        pixels = _pixels(torch.cat([ends[:1], decoded[:1], ends[1:]]))
        frames = _pixels(self.frames)
        titles = [f"image A (#{c['image A']})", f"decoded at t = {t:.2f}", f"image B (#{c['image B']})"]
        if self._artists is None:
            self._artists = {"top": [_image_axes(ax, im) for ax, im in zip(self._ax_top, pixels)],
                             "frames": [_image_axes(ax, im) for ax, im in zip(self._ax_frames, frames)]}
            self.fig.tight_layout()
        for ax, title in zip(self._ax_top, titles):
            ax.set_title(title, fontsize=9)
        for artist, im in zip(self._artists["top"] + self._artists["frames"], pixels + frames):
            artist.set_data(im)
        self.render()


__all__ += ["LatentExplorer", "PairInterpolationExplorer"]


# -- the explorers of lecture 04 (conditional GAN): classes against noise, and captions -----------------------
def _noise(seed: int, n: int, z_dim: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(int(seed)))


class ClassExplorer(Explorer):
    """A conditional generator's class against its noise.

    `embed(labels)` maps class ids (n,) to the generator's condition embeddings (n, k); `decode(z, e)`
    maps noise (n, z_dim) and embeddings (n, k) to images (n, C, H, W) in [0, 1]; `classify(images)`
    gives class probabilities (n, K) for the `classes`. The top row draws `n` noise columns (a
    standard normal draw named by `seed`, each moved by the direction sliders along fixed orthonormal
    directions) for the condition (1 - t) e(A) + t e(B): t = 0 is class A, t = 1 class B. The bottom
    row keeps the first column's noise and walks t from 0 to 1. The bars give the classifier's mean
    probabilities over the top row.
    State after each update: `z` (n, d), `e` (1, k), `images` (n, C, H, W), `probs` (K,), `values`.
    """

    def __init__(self, embed: Callable[[torch.Tensor], torch.Tensor],
                 decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z_dim: int, classes: list[str],
                 classify: Callable[[torch.Tensor], torch.Tensor], start: tuple[int, int] = (0, 1), t: float = 0.0,
                 n: int = 6, directions: int = 3, seed: int = 0, max_seed: int = 99, reach: float = 3.0) -> None:
        classes = list(classes)
        if not all(0 <= k < len(classes) for k in start):
            raise ValueError(f"start {start} must name two of the {len(classes)} classes by index (0 to {len(classes) - 1}).")
        if not 0 <= seed <= max_seed:
            raise ValueError(f"seed must lie in [0, {max_seed}], got {seed}.")
        if not 1 <= directions <= z_dim:
            raise ValueError(f"directions must be between 1 and z_dim = {z_dim}, got {directions}.")
        self.embed, self.decode_fn, self.classify, self.classes = embed, decode, classify, classes
        self.z_dim, self.n = z_dim, n
        # orthonormal directions (directions, d), fixed: the columns of Q in a QR of a seeded Gaussian matrix
        g = torch.Generator().manual_seed(10_000 + seed)
        self.directions = torch.linalg.qr(torch.randn(z_dim, directions, generator=g))[0].T.contiguous()
        names = [f"{i}: {c}" for i, c in enumerate(classes)]
        self._names = names
        controls = {"class A": W.Dropdown(options=names, value=names[start[0]], description="class A:",
                                          layout=W.Layout(width="240px")),
                    "class B": W.Dropdown(options=names, value=names[start[1]], description="class B:",
                                          layout=W.Layout(width="240px")),
                    "t": _slider(t, 0.0, 1.0, 0.05, "t (A→B)"),
                    "seed": W.IntSlider(value=seed, min=0, max=max_seed, description="noise seed")}
        controls |= {f"direction {i + 1}": _slider(0.0, -reach, reach, 0.25, f"dir {i + 1}") for i in range(directions)}
        super().__init__(controls, figsize=(8.5, 3.6))
        self.button = W.Button(description="new noise", tooltip="the next noise seed")
        self.button.on_click(lambda _: self.resample())
        self.readout = W.HTML()
        c = controls
        self.widget = self.view(
            W.HBox([W.VBox([c["class A"], c["class B"], self.button]), W.VBox([c["t"], c["seed"]]),
                    W.VBox([c[f"direction {i + 1}"] for i in range(directions)])], layout=W.Layout(flex_flow="row wrap")),
            self.readout)
        images = self.fig.add_gridspec(2, n, left=0.01, right=0.70, bottom=0.03, top=0.90, wspace=0.05, hspace=0.25)
        self._ax_top = [self.fig.add_subplot(images[0, i]) for i in range(n)]
        self._ax_path = [self.fig.add_subplot(images[1, i]) for i in range(n)]
        self._ax_probs = self.fig.add_subplot(self.fig.add_gridspec(1, 1, left=0.83, right=0.99, bottom=0.15, top=0.90)[0])
        self._row_titles = (self.fig.text(0.01, 0.95, ""), self.fig.text(0.01, 0.48, "column 1 of the row, t from 0 (A) to 1 (B)"))
        for text in self._row_titles:
            text.set_fontsize(9)
        self._artists = None
        self.start()

    def resample(self) -> None:
        """The next noise seed (wrapping around at the slider's end)."""
        control = self.controls["seed"]
        control.value = (control.value + 1) % (control.max + 1)

    def noise(self) -> torch.Tensor:
        """The top row's noise (n, d): the seed's draw, moved along the directions by the sliders' amounts."""
        amounts = torch.tensor([self.controls[f"direction {i + 1}"].value for i in range(len(self.directions))])
        return _noise(self.controls["seed"].value, self.n, self.z_dim) + amounts @ self.directions  # (n, d)

    def update(self) -> None:
        c = {k: w.value for k, w in self.controls.items()}
        a, b = self._names.index(c["class A"]), self._names.index(c["class B"])
        t = float(c["t"])
        with torch.no_grad():
            ends = self.embed(torch.tensor([a, b])).float().cpu()  # (2, k)
            if ends.ndim != 2 or len(ends) != 2:
                raise ValueError(f"embed(labels) must map (n,) class ids to (n, k) embeddings; for 2 ids it returned "
                                 f"shape {tuple(ends.shape)}.")
            self.z, self.e = self.noise(), torch.lerp(ends[:1], ends[1:], t)  # (n, d), (1, k)
            ts = torch.linspace(0, 1, self.n)[:, None]  # (n, 1)
            path_e = torch.lerp(ends[:1], ends[1:], ts)  # (n, k): A to B
            z = torch.cat([self.z, self.z[:1].expand(self.n, -1)])  # (2n, d): the row, then column 0 along the path
            images = self.decode_fn(z, torch.cat([self.e.expand(self.n, -1), path_e])).float().cpu()
            if images.ndim != 4 or len(images) != 2 * self.n:
                raise ValueError(f"decode(z, e) must map (m, d) noise and (m, k) embeddings to (m, C, H, W) images; for "
                                 f"m = {2 * self.n} it returned shape {tuple(images.shape)}.")
            probs = self.classify(images[:self.n]).float().cpu()
        if probs.shape != (self.n, len(self.classes)):
            raise ValueError(f"classify(images) must return (n, {len(self.classes)}) class probabilities; got shape "
                             f"{tuple(probs.shape)}.")
        self.images, self.probs = images[:self.n], probs.mean(0)
        self.values = {"t": t, "p(A)": float(self.probs[a]), "p(B)": float(self.probs[b]),
                       "|z_1|": float(self.z[0].norm())}
        top = int(self.probs.argmax())
        self.readout.value = (f"condition (1 − t)·e(<b>{html.escape(self.classes[a])}</b>) + t·e(<b>"
                              f"{html.escape(self.classes[b])}</b>), t = <b>{t:.4f}</b> &nbsp; classifier: p(A) = "
                              f"<b>{self.values['p(A)']:.4f}</b>, p(B) = <b>{self.values['p(B)']:.4f}</b>, most likely "
                              f"<b>{html.escape(self.classes[top])}</b> &nbsp; |z_1| = <b>{self.values['|z_1|']:.4f}</b>")
        pixels = _pixels(images)
        if self._artists is None:
            ax = self._ax_probs
            bars = ax.barh(range(len(self.classes)), self.probs.numpy(), color="tab:blue")
            ax.set_yticks(range(len(self.classes)), self.classes, fontsize=7)
            ax.set_xlim(0, 1), ax.invert_yaxis(), ax.set_xlabel("mean p(class), top row", fontsize=8)
            self._artists = {"images": [_image_axes(ax, im) for ax, im in zip(self._ax_top + self._ax_path, pixels)],
                             "bars": bars}
        self._row_titles[0].set_text(f"{self.classes[a]} → {self.classes[b]} at t = {t:.2f}, noise seed {c['seed']}")
        for artist, im in zip(self._artists["images"], pixels):
            artist.set_data(im)
        for k, (bar, p) in enumerate(zip(self._artists["bars"], self.probs.tolist())):
            bar.set_width(p)
            bar.set_color("tab:orange" if k in (a, b) else "tab:blue")
        self.render()


class CaptionExplorer(Explorer):
    """Samples for a typed caption: type words from the vocabulary, press Enter, see what the model draws.

    `generate(caption, z)` maps one caption (a string) and noise (n, z_dim) to images (n, C, H, W) in
    [0, 1]; it raises a ValueError for a caption it cannot read (an unknown word, an empty caption),
    and that message is shown in place of the figure's update. `score(images, caption)` returns named
    fractions in [0, 1] (for the course's caption model: how many of the caption's attribute words
    the samples satisfy, and how many the classifier puts in the caption's class). The vocabulary is
    listed under the box; `examples`, if given, fill a menu that types one into the box.
    State after each update: `z` (n, d), `images` (n, C, H, W), `scores`, `values`.
    """

    def __init__(self, generate: Callable[[str, torch.Tensor], torch.Tensor], z_dim: int, caption: str,
                 vocabulary: list[str], score: Callable[[torch.Tensor, str], Mapping[str, float]] | None = None,
                 examples: list[str] | None = None, n: int = 8, seed: int = 0, max_seed: int = 99) -> None:
        if not 0 <= seed <= max_seed:
            raise ValueError(f"seed must lie in [0, {max_seed}], got {seed}.")
        self.generate, self.score, self.z_dim, self.n = generate, score, z_dim, n
        self.examples = list(examples or [])
        controls = {"caption": W.Text(value=caption, description="caption:", continuous_update=False,
                                      placeholder="e.g. " + caption, layout=W.Layout(width="420px")),
                    "seed": W.IntSlider(value=seed, min=0, max=max_seed, description="noise seed")}
        super().__init__(controls, figsize=(8.0, 1.9))
        self.button = W.Button(description="new noise", tooltip="the next noise seed")
        self.button.on_click(lambda _: self.resample())
        self.readout = W.HTML()
        words = W.HTML(f"<small>words (any order, press Enter): {html.escape(', '.join(vocabulary))}</small>")
        row = [controls["caption"], controls["seed"], self.button]
        if self.examples:  # a menu that types an example into the box (the box is what update() reads)
            menu = W.Dropdown(options=self.examples, value=caption if caption in self.examples else None,
                              description="examples:", layout=W.Layout(width="320px"))
            menu.observe(lambda change: change["new"] and setattr(controls["caption"], "value", change["new"]), names="value")
            # and the menu follows the box: it names the typed caption if it is an example, else nothing
            controls["caption"].observe(lambda change: setattr(menu, "value", change["new"] if change["new"] in self.examples
                                                               else None), names="value")
            self.controls["example"] = menu
            row.insert(1, menu)
        self.widget = self.view(W.HBox(row, layout=W.Layout(flex_flow="row wrap")), words, self.readout)
        self._axes = [self.fig.add_subplot(1, n, i + 1) for i in range(n)]
        self._artists = None
        self.start()

    def resample(self) -> None:
        control = self.controls["seed"]
        control.value = (control.value + 1) % (control.max + 1)

    def update(self) -> None:
        text, seed = self.controls["caption"].value, self.controls["seed"].value
        self.z = _noise(seed, self.n, self.z_dim)
        with torch.no_grad():
            images = self.generate(text, self.z)
        if images.ndim != 4 or len(images) != self.n:
            raise ValueError(f"generate(caption, z) must map (n, d) noise to (n, C, H, W) images; for n = {self.n} "
                             f"it returned shape {tuple(images.shape)}.")
        self.images = images.float().cpu()
        self.scores = dict(self.score(self.images, text)) if self.score is not None else {}
        self.values = {**{k: float(v) for k, v in self.scores.items()}, "mean intensity": float(self.images.mean())}
        shown = " &nbsp; ".join(f"{html.escape(k)}: <b>{v:.4f}</b>" for k, v in self.values.items())
        self.readout.value = f"“{html.escape(text)}”, noise seed {seed} &nbsp; {shown}"
        pixels = _pixels(self.images)
        if self._artists is None:
            self._artists = [_image_axes(ax, im) for ax, im in zip(self._axes, pixels)]
            self.fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.05)
        self._axes[0].set_title(text[:60], fontsize=9, loc="left")
        for artist, im in zip(self._artists, pixels):
            artist.set_data(im)
        self.render()


__all__ += ["ClassExplorer", "CaptionExplorer"]


# -- the explorer of lecture 06 (PixelCNN): completions of a partly hidden image ------------------------------
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
                bits = torch.as_tensor(self.bits_fn(torch.cat([self.original, out]))).detach().float().cpu()
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


__all__ += ["CompletionExplorer"]
