"""Single points of a latent space, decoded.

`ArithmeticExplorer` (lecture 03): the point A + amount * (C - B) from named latent vectors,
decoded and classified. `LatentExplorer` (lecture 05): a point of a two-dimensional latent space
placed by two sliders, on a scatter of encoded images.
"""
from __future__ import annotations

import html
import math

from collections.abc import Callable, Mapping

import ipywidgets as W
import torch

from .base import Explorer, _check_decode, _image_axes, _pixels, _slider

__all__ = ["ArithmeticExplorer", "LatentExplorer"]


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
        a, b, cc = (self.latents[c[k]].reshape(1, -1).float() for k in ("A", "B", "C"))  # (1, d) each
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
        self.probs = probs[3].float()  # (K,): the result's
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
        self.z = torch.tensor([[z1, z2]])  # (1, 2)
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
