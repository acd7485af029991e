"""The explorers of lecture 04 (conditional GAN): a class against the noise (`ClassExplorer`), and
samples for a typed caption (`CaptionExplorer`)."""
from __future__ import annotations

import html

from collections.abc import Callable, Mapping

import ipywidgets as W
import torch

from .base import Explorer, _image_axes, _pixels, _slider

__all__ = ["ClassExplorer", "CaptionExplorer"]


def _noise(seed: int, n: int, z_dim: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(int(seed)))  # (n, z_dim)


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
            probs = self.classify(images[:self.n]).float().cpu()  # (n, K): the top row
        if probs.shape != (self.n, len(self.classes)):
            raise ValueError(f"classify(images) must return (n, {len(self.classes)}) class probabilities; got shape "
                             f"{tuple(probs.shape)}.")
        self.images, self.probs = images[:self.n], probs.mean(0)  # (n, C, H, W), (K,)
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
        self.z = _noise(seed, self.n, self.z_dim)  # (n, d)
        with torch.no_grad():
            images = self.generate(text, self.z)  # (n, C, H, W)
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
