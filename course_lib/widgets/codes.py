"""The explorer of lecture 07 (VQ-VAE with a PixelCNN prior): edit an image's grid of codes, cell by
cell, and see what the decoder makes of it and what the prior thinks of it."""
from __future__ import annotations

import html
import math

from collections.abc import Callable

import ipywidgets as W
import numpy as np
import torch

from .base import CONTINUOUS_BELOW_S, Explorer, _image_axes, _pixels

__all__ = ["CodeGridExplorer"]

SELECTED, EDITED = "#6baed6", "#fdae6b"  # the grid buttons' colours: the selected cell (blue), edited cells (orange)
TITLE = {"fontsize": 8, "y": 1.0}  # a fixed title place: matplotlib's automatic one costs a third of a redraw
REDRAWS = 20  # "resample bottom half" draws again (the next seed) while a draw equals the current rows


class CodeGridExplorer(Explorer):
    """Edit the s x s grid of codes of an image and decode it: a code is a patch of the picture.

    `decode(codes)` maps grids (n, s, s) long in 0..K-1 to images (n, C, H, W) in [0, 1] (a VQ-VAE's
    `vq.decode`); `codes` (N, s, s) are the starting grids (the codes of test images, `vq.to_codes(x)`),
    `images` (N, C, H, W) their originals, shown beside (optional). Optional, from the prior over codes:
    `conditional(codes (1, s, s), row, col)` -> log p(code at (row, col) = j | all the other codes), (1, K)
    (`vq.code_conditional`); `complete(codes (n, s, s), visible_rows, generator)` -> grids with the first
    `visible_rows` rows kept and the rest drawn (`vq.complete_codes`); `joint_bits(codes (n, s, s))` ->
    -log2 p(codes) / s^2 per grid (n,). Without them the buttons that need the prior are disabled.

    The s x s buttons, labelled with their codes, select a cell; the "code" slider sets the selected
    cell's code; the "image" slider picks the starting grid (and drops the edits). "resample cell" draws
    the selected cell's code from the conditional given the rest, among the codes other than its current
    one; "resample bottom half" keeps the top ceil(s / 2) rows and draws the rest (the next seed each
    click); "reset" goes back to the unedited grid. The figure: the edited grid decoded, the selected
    cell outlined in red and the edited cells tinted orange; the original and the unedited decode; and
    the conditional p(code | rest) of the selected cell over the K codes.
    State after each update: `grid` (s, s) and `base` (s, s) (edited, unedited), `selected` (row, col),
    `decoded` and `unedited` (1, C, H, W), `log_probs` (K,) or None, `values`.
    """

    def __init__(self, decode: Callable[[torch.Tensor], torch.Tensor], codes: torch.Tensor, K: int,
                 conditional: Callable | None = None, complete: Callable | None = None,
                 joint_bits: Callable | None = None, images: torch.Tensor | None = None, index: int = 0,
                 seed: int = 0) -> None:
        codes = torch.as_tensor(codes).detach().cpu()
        if codes.ndim != 3 or len(codes) < 1 or codes.shape[1] != codes.shape[2] or codes.shape[1] < 2:
            raise ValueError(f"codes must be grids (N, s, s) with N >= 1 and s >= 2, got {tuple(codes.shape)}. "
                             f"vq.to_codes(images) gives them.")
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"codes must be integer codes (a long tensor), got {codes.dtype}: use .long().")
        if not (isinstance(K, int) and K >= 2):
            raise ValueError(f"K is the number of codes (vq.config.codebook_size) and must be an int >= 2, got {K!r}.")
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= K:
            raise ValueError(f"codes must lie in 0..{K - 1} (K = {K}), got values in [{lo}, {hi}]. Pass "
                             f"K=vq.config.codebook_size.")
        count, s = len(codes), codes.shape[1]
        if images is not None:
            images = torch.as_tensor(images).detach().float().cpu()
            if images.ndim != 4 or len(images) != count:
                raise ValueError(f"images must be the {count} originals of the grids, (N, C, H, W), got "
                                 f"{tuple(images.shape)}. Add .unsqueeze(1) to (N, H, W) grey images.")
        if not (isinstance(index, int) and 0 <= index < count):
            raise ValueError(f"index {index!r} must pick one of the {count} grids (0 to {count - 1}).")
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
        self.decode_fn, self.conditional, self.complete, self.joint_bits = decode, conditional, complete, joint_bits
        self.codes, self.images, self.K, self.s, self.seed = codes.long(), images, K, s, seed
        self.selected = (s // 2, s // 2)  # the centre: not the first button, so every button click selects anew
        self.base = self.codes[index].clone()  # (s, s)
        self.grid = self.base.clone()  # (s, s): the edited grid
        self._index, self._action, self._quiet = index, None, False
        self._cache: dict[str, tuple] = {}  # what depends on the image only, and the last conditional
        controls = {"image": W.IntSlider(value=index, min=0, max=count - 1, description="image"),
                    "code": W.IntSlider(value=int(self.grid[self.selected]), min=0, max=K - 1, description="code")}
        super().__init__(controls, figsize=(6.6, 2.9))
        no_prior = "needs the prior: pass {} to CodeGridExplorer (vq.{})"
        self.buttons = {
            "resample cell": W.Button(description="resample cell", disabled=conditional is None, tooltip=(
                "draw the selected cell's code from p(code | all the other codes), among the codes other than its "
                "current one, so that the picture always changes" if conditional is not None else
                no_prior.format("conditional=", "code_conditional"))),
            "resample bottom half": W.Button(description="resample bottom half", disabled=complete is None, tooltip=(
                f"keep the top {self.visible_rows} rows of codes and draw the rest from the prior given them (the next "
                f"seed each click; a draw equal to the current rows is drawn again)" if complete is not None else
                no_prior.format("complete=", "complete_codes"))),
            "reset": W.Button(description="reset", tooltip="back to the unedited grid of codes")}
        for name, button in self.buttons.items():
            button.on_click(lambda _, a=name: self._act(a))
        self.cells = [[W.Button(layout=W.Layout(width="36px", height="26px", padding="0", margin="1px"))
                       for _ in range(s)] for _ in range(s)]
        for r, row in enumerate(self.cells):
            for c, button in enumerate(row):
                button.on_click(lambda _, r=r, c=c: self.select(r, c))
        self._shown: dict[tuple[int, int], tuple] = {}  # what each grid button shows now: only changes are sent
        self.readout = W.HTML()
        grid_box = W.GridBox([b for row in self.cells for b in row],
                             layout=W.Layout(grid_template_columns=f"repeat({s}, 38px)", align_self="center"))
        self.widget = W.VBox([W.HBox([controls["image"], controls["code"]], layout=W.Layout(flex_flow="row wrap")),
                              W.HBox(list(self.buttons.values())), self.readout, self.errors,
                              W.HBox([self.image, grid_box], layout=W.Layout(flex_flow="row wrap"))])
        gs = self.fig.add_gridspec(2, 3, width_ratios=[2.0, 1.0, 2.2])
        self._ax_edit, self._ax_top, self._ax_base = (self.fig.add_subplot(gs[:, 0]), self.fig.add_subplot(gs[0, 1]),
                                                      self.fig.add_subplot(gs[1, 1]))
        self._ax_bars = self.fig.add_subplot(gs[:, 2])
        self._artists = None
        self.start()

    def start(self) -> None:
        """As every explorer starts; then the image slider follows the mouse only if a redraw with everything
        computed anew (another grid: two decodes, the conditional, the bits) is fast too."""
        super().start()
        self._cache.clear()
        self._on_change()
        slow = self.error is not None or self.update_seconds >= CONTINUOUS_BELOW_S
        self.controls["image"].continuous_update = self.controls["image"].continuous_update and not slow

    @property
    def visible_rows(self) -> int:
        """The rows of codes that "resample bottom half" keeps: ceil(s / 2)."""
        return (self.s + 1) // 2

    # -- what the buttons do: set the state, then one update (errors shown, not raised) -------------------------------
    def select(self, row: int, col: int) -> None:
        """Select the cell (row, col): the code slider moves to its code without editing anything."""
        self.selected = (row, col)
        self._set_code(int(self.grid[row, col]))
        self._on_change()

    def _act(self, action: str) -> None:
        self._action = action  # done inside update(), so that an error in it is shown like any other
        self._on_change()

    def _set_code(self, code: int) -> None:
        """Move the code slider without the redraw (and edit) its change would trigger."""
        self._quiet = True
        try:
            self.controls["code"].value = code
        finally:
            self._quiet = False

    def _on_change(self, change=None) -> None:
        if not self._quiet:
            super()._on_change(change)

    # -- the callables, checked -----------------------------------------------------------------------------------
    def _decode(self, grid: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            images = torch.as_tensor(self.decode_fn(grid[None])).detach().float().cpu()
        if images.ndim != 4 or len(images) != 1:
            raise ValueError(f"decode(codes) must map grids (n, {self.s}, {self.s}) to images (n, C, H, W) in [0, 1]; "
                             f"for n = 1 it returned shape {tuple(images.shape)}.")
        return images  # (1, C, H, W)

    def _bits(self, grid: torch.Tensor) -> float:
        with torch.no_grad():
            bits = torch.as_tensor(self.joint_bits(grid[None])).detach().float().cpu()
        if bits.shape != (1,):
            raise ValueError(f"joint_bits(codes) must map grids (n, {self.s}, {self.s}) to bits per code (n,); for "
                             f"n = 1 it returned shape {tuple(bits.shape)}.")
        return float(bits[0])

    def _log_probs(self) -> torch.Tensor:
        """log p(code at the selected cell = j | the other codes), (K,); it does not depend on the cell's own code."""
        r, c = self.selected
        rest = self.grid.clone()
        rest[r, c] = -1
        key = (self.selected, tuple(rest.flatten().tolist()))
        if self._cache.get("conditional", (None,))[0] != key:
            with torch.no_grad():
                log_p = torch.as_tensor(self.conditional(self.grid[None].clone(), r, c)).detach().float().cpu()
            if log_p.shape != (1, self.K):
                raise ValueError(f"conditional(codes, row, col) must return log-probabilities (1, K = {self.K}) for "
                                 f"codes (1, {self.s}, {self.s}); it returned shape {tuple(log_p.shape)}.")
            total = float(torch.logsumexp(log_p[0].double(), 0))
            if not abs(total) < 1e-3:
                raise ValueError(f"conditional(codes, row, col) must return log-probabilities (their exps sum to 1), "
                                 f"got a log-sum-exp of {total:.4g}: apply a log_softmax over the K codes.")
            self._cache["conditional"] = (key, log_p[0])
        return self._cache["conditional"][1]

    def _complete_bottom(self) -> torch.Tensor:
        """The grid with its top rows kept and the rest drawn (the next seed), different from the current rows."""
        rows, s = self.visible_rows, self.s
        for _ in range(REDRAWS):
            self.seed += 1
            generator = torch.Generator().manual_seed(self.seed)
            with torch.no_grad():
                out = torch.as_tensor(self.complete(self.grid[None].clone(), rows, generator)).detach().cpu()
            if out.shape != (1, s, s) or out.is_floating_point() or not 0 <= int(out.min()) <= int(out.max()) < self.K:
                raise ValueError(f"complete(codes, visible_rows, generator) must return integer codes in "
                                 f"0..{self.K - 1} of the input's shape (1, {s}, {s}); got shape {tuple(out.shape)}, "
                                 f"{out.dtype}.")
            out = out[0].long()
            if not torch.equal(out[:rows], self.grid[:rows]):
                raise ValueError(f"complete(codes, visible_rows, generator) changed the top {rows} rows: it must keep "
                                 f"them as given and draw only the rows below.")
            if not torch.equal(out, self.grid):
                return out
        return out  # the prior keeps drawing these rows: nothing else it would draw

    # -- the update ---------------------------------------------------------------------------------------------------
    def update(self) -> None:
        index = int(self.controls["image"].value)
        if index != self._index:  # another starting grid: the edits are dropped
            self._index, self.base = index, self.codes[index].clone()
            self.grid = self.base.clone()
        else:  # the code slider holds the selected cell's code
            self.grid[self.selected] = int(self.controls["code"].value)
        action, self._action = self._action, None
        r, c = self.selected
        if action == "reset":
            self.grid = self.base.clone()
        elif action == "resample cell":
            log_p = self._log_probs().clone()
            log_p[int(self.grid[r, c])] = -math.inf  # another code than the current one: the picture changes
            self.seed += 1
            generator = torch.Generator().manual_seed(self.seed)
            self.grid[r, c] = int(torch.multinomial(torch.softmax(log_p, 0), 1, generator=generator))
        elif action == "resample bottom half":
            self.grid = self._complete_bottom()
        self._set_code(int(self.grid[r, c]))
        code = int(self.grid[r, c])

        if self._cache.get("image", (None,))[0] != index:  # what depends on the starting grid only
            self._cache["image"] = (index, self._decode(self.base),
                                    self._bits(self.base) if self.joint_bits is not None else None)
        _, self.unedited, base_bits = self._cache["image"]
        self.decoded = self._decode(self.grid)  # (1, C, H, W)
        if self.decoded.shape != self.unedited.shape:
            raise ValueError(f"decode(codes) returned images of shape {tuple(self.decoded.shape)} for one grid and "
                             f"{tuple(self.unedited.shape)} for another: it must give one size.")
        edited = self.grid != self.base  # (s, s)
        self.log_probs = self._log_probs() if self.conditional is not None else None
        self.values = {"row": float(r), "column": float(c), "code": float(code), "edited cells": float(edited.sum()),
                       "mean |edited - unedited| (pixels)": float((self.decoded - self.unedited).abs().mean())}
        if self.log_probs is not None:
            self.values["log2 p(code | rest)"] = float(self.log_probs[code]) / math.log(2)
        if self.joint_bits is not None:
            self.values["bits per code"] = self._bits(self.grid)
            self.values["bits per code, unedited"] = base_bits
        shown = " &nbsp; ".join(f"{html.escape(k)} = <b>{v:.4f}</b>" for k, v in self.values.items())
        self.readout.value = f"image {index}, seed {self.seed} &nbsp; {shown}"
        self._show_cells(edited)
        self._draw(edited, code)

    def _show_cells(self, edited: torch.Tensor) -> None:
        """Label each grid button with its code and colour it (selected, edited); only changed buttons are sent."""
        for r, row in enumerate(self.cells):
            for c, button in enumerate(row):
                code, sel = int(self.grid[r, c]), (r, c) == self.selected
                look = (code, sel, bool(edited[r, c]))
                if self._shown.get((r, c)) == look:
                    continue
                button.description = str(code)
                button.style.button_color = SELECTED if sel else EDITED if look[2] else None
                button.style.font_weight = "bold" if sel else ""
                button.tooltip = (f"cell ({r}, {c}): code {code}" + (", edited" if look[2] else "") +
                                  ("; selected" if sel else "; click to select it"))
                self._shown[(r, c)] = look

    def _draw(self, edited: torch.Tensor, code: int) -> None:
        s, (r, c) = self.s, self.selected
        height, width = self.decoded.shape[-2:]
        ph, pw = height / s, width / s  # one cell is a (H / s) x (W / s) patch
        top = self.images[self._index:self._index + 1] if self.images is not None else self.decoded - self.unedited
        pixels = [_pixels(im.abs())[0] for im in (self.decoded, top, self.unedited)]  # originals: any size
        tint = np.zeros((s, s, 4))
        tint[..., :3] = (0.99, 0.55, 0.24)  # orange
        tint[..., 3] = 0.35 * edited.numpy()
        if self._artists is None:
            from matplotlib.patches import Rectangle
            from matplotlib.ticker import MaxNLocator

            axes = (self._ax_edit, self._ax_top, self._ax_base)
            a = {"images": [_image_axes(ax, im) for ax, im in zip(axes, pixels)],
                 "tint": self._ax_edit.imshow(tint, extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                                              interpolation="nearest")}
            a["boxes"] = [ax.add_patch(Rectangle((0, 0), pw, ph, fill=False, edgecolor="tab:red", lw=lw))
                          for ax, lw in ((self._ax_edit, 2.0), (self._ax_base, 1.2))]
            self._ax_top.set_title("original" if self.images is not None else "|edited - unedited|", **TITLE)
            self._ax_base.set_title("unedited, decoded", **TITLE)
            ax = self._ax_bars
            if self.conditional is None:
                ax.set_axis_off()
                ax.text(0.5, 0.5, "p(code | rest) needs the prior:\npass conditional=vq.code_conditional",
                        ha="center", va="center", fontsize=8, transform=ax.transAxes)
            else:
                edges = np.arange(self.K + 1) - 0.5  # one step of width 1 per code: a histogram in one artist
                a["bars"] = ax.stairs(np.zeros(self.K), edges, fill=True, color="tab:blue")
                a["code"] = ax.stairs([0.0], [-0.5, 0.5], fill=True, color="tab:red")
                a["mark"] = ax.axvline(0, color="black", lw=1, ls=":")
                ax.set_xlim(-0.5, self.K - 0.5), ax.set_xticks([0, self.K // 2, self.K - 1])
                ax.set_xlabel("code j", fontsize=8), ax.tick_params(labelsize=7)
                ax.yaxis.tick_right(), ax.yaxis.set_major_locator(MaxNLocator(4))
            self.fig.subplots_adjust(left=0.01, right=0.93, bottom=0.15, top=0.86, wspace=0.12, hspace=0.3)
            self._artists = a
        a = self._artists
        for artist, im in zip(a["images"], pixels):
            artist.set_data(im)
        a["tint"].set_data(tint)
        for box in a["boxes"]:
            box.set_xy((c * pw - 0.5, r * ph - 0.5))
        self._ax_edit.set_title(f"edited ({int(edited.sum())} cells), decoded", **TITLE)
        if self.log_probs is not None:
            p = self.log_probs.exp().numpy()  # (K,)
            a["bars"].set_data(p)
            a["code"].set_data([p[code]], [code - 0.5, code + 0.5])  # the cell's code, in red
            a["mark"].set_xdata([int(self.base[r, c])] * 2)  # the unedited code, dotted
            self._ax_bars.set_ylim(0, max(1e-3, 1.1 * float(p.max())))
            self._ax_bars.set_title(f"p(code at ({r}, {c}) | the rest)\nred: now {code}; dotted: unedited", **TITLE)
        self.render()
