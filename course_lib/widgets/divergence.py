"""The explorer of lecture 01: two 1D densities p and q, the divergences between them, and the optimal
discriminator D* = p / (p + q), all computed on a grid by `course_lib.divergences`."""
from __future__ import annotations

import ipywidgets as W
import torch

from .. import divergences as dv
from ..distributions import Mixture
from .base import Explorer, _slider

__all__ = ["DivergenceExplorer"]


class DivergenceExplorer(Explorer):
    """Two 1D distributions p and q, each a Gaussian or a two-component mixture.

    Shows both densities and the optimal discriminator D* = p / (p + q) (p plays p_data, q plays
    p_g), with KL(p||q), KL(q||p) and JSD computed on a grid. State after each update:
    `x`, `log_p`, `log_q` (grid tensors), `d_star`, `values`.
    """

    KINDS = ("Gaussian", "mixture")

    def __init__(self, p: dict | None = None, q: dict | None = None, lim: float = 10.0, n_grid: int = 4001) -> None:
        self.x = torch.linspace(-lim, lim, n_grid, dtype=torch.float64)  # (N,), the grid the densities live on
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
