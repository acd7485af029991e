"""Paths between two latents, decoded as you move along them.

`InterpolationExplorer` (lecture 03, any decoder of noise): between two standard normal draws,
straight (`lerp`) or along the sphere (`slerp`, from `course_lib.latent`).
`PairInterpolationExplorer` (lecture 05, an encoder and a decoder): the straight path between the
encodings of two chosen images.
"""
from __future__ import annotations

import math

from collections.abc import Callable

import ipywidgets as W
import torch

from .base import Explorer, _check_decode, _image_axes, _pixels, _slider

__all__ = ["InterpolationExplorer", "PairInterpolationExplorer"]


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
        from ..latent import lerp, slerp

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
        self.z_a, self.z_b = self.latent(c["seed A"]), self.latent(c["seed B"])  # (1, d) each
        ts = torch.linspace(0, 1, self.n_frames)  # (F,)
        self.z_t = f(self.z_a, self.z_b, c["t"])  # (1, d)
        path = torch.cat([f(self.z_a, self.z_b, float(s)) for s in ts])  # (F, d)
        images = _check_decode(self.decode, torch.cat([self.z_t, path]))  # (1 + F, C, H, W)
        self.frames = images[1:]  # (F, C, H, W)
        fine = torch.linspace(0, 1, 101)
        # |z| along each path: name -> (101,)
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
        self.z_a, self.z_b = codes[:1].float().cpu(), codes[1:].float().cpu()  # (1, d) each
        t = float(c["t"])
        self.z_t = (1 - t) * self.z_a + t * self.z_b  # (1, d)
        ts = torch.linspace(0, 1, self.n_frames)[:, None]  # (F, 1)
        path = (1 - ts) * self.z_a + ts * self.z_b  # (F, d)
        decoded = _check_decode(self.decode, torch.cat([self.z_t, path])).float().cpu()  # (1 + F, C, H, W)
        self.frames = decoded[1:]  # (F, C, H, W)
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
