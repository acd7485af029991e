"""The zoo's registry: every entry the course ships, what it is and how long it trains on each device.

    run = RUNS["dcgan-fashion-mnist-hinge"]
    run.family, run.options, run.epochs["cuda"]     # 'dcgan', {'loss': 'hinge'}, 20

An entry is a family's recipe (`course_lib.recipes.<family>`) with its options, built at the sizes of
a profile (`gpu`: the full-size models), trained on the whole training split with a seed for a number
of epochs that depends on the device (a CPU affords fewer). `python -m course_lib.zoo train NAME`
trains it; `load_pretrained(NAME)` loads the shipped weights. Pure data: importing it trains nothing
and imports no recipe (the recipes import the zoo).
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ZooRun", "RUNS", "FAMILIES", "LOSSES"]

FAMILIES = ("dcgan", "cgan", "vae", "pixelcnn")
LOSSES = ("non-saturating", "hinge", "least-squares", "wgan-gp")  # recipes.dcgan.LOSS_FAMILY, in the lecture's order


@dataclass(frozen=True)
class ZooRun:
    """One shipped model: the recipe that builds and trains it, and the length of its run per device type.

    options: what the family's recipe takes beyond its profile config: `loss` for dcgan (with the loss's
    own recipe, `recipes.dcgan.loss_config`), else changes to the config (`condition`, `likelihood`, `z_dim`).
    epochs: passes over the training split per device type ("cuda", "cpu"); a device with no entry trains
    the cuda length. lectures: the notebooks that draw conclusions from it. finish: methods of the process,
    called with the training images after training and before saving (`VAE.match_prior_scale`: an exact
    reparametrisation that only lowers the KL, and puts the codes where prior samples land).
    """

    name: str
    family: str
    options: dict = field(default_factory=dict)
    epochs: dict = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    seed: int = 0
    profile: str = "gpu"
    lectures: tuple[str, ...] = ()
    about: str = ""
    finish: tuple[str, ...] = ()  # methods of the trained process run before saving, e.g. the VAE's match_prior_scale

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"zoo entry {self.name!r}: family {self.family!r} is not one of {FAMILIES}.")
        if "cuda" not in self.epochs:
            raise ValueError(f"zoo entry {self.name!r}: give its length on a GPU, epochs={{'cuda': N, ...}}.")

    def epochs_on(self, device: str) -> int:
        """The run's length in passes over the training split on `device` ('cuda', 'cpu', or a torch device string)."""
        kind = str(device).split(":")[0]
        return self.epochs.get(kind, self.epochs["cuda"])

    def command(self, device: str) -> str:
        """The one command that trains this entry and measures its saved weights."""
        return f"python -m course_lib.zoo train {self.name} --device {str(device).split(':')[0]}"


# The gpu profile's lengths (20 epochs of 234 steps; PixelCNN 10) are what one H200 trains in one
# parallel call of about 6 minutes (`make zoo-gpu`); the 2-D VAE is small enough to train on a CPU.
_RUNS = [
    *(ZooRun(f"dcgan-fashion-mnist-{loss}", "dcgan", {"loss": loss}, {"cuda": 20, "cpu": 20}, lectures=("03",),
             about=f"DCGAN, {loss} loss" + (" (5 critic steps, gradient penalty 10, Adam(1e-4, (0, 0.9)))"
                                             if loss == "wgan-gp" else ""))
      for loss in LOSSES),
    ZooRun("cgan-fashion-mnist-label", "cgan", {}, {"cuda": 20}, lectures=("04",),
           about="label-conditional GAN: projection discriminator, matching-aware"),
    ZooRun("cgan-fashion-mnist-caption", "cgan", {"condition": "caption"}, {"cuda": 20}, lectures=("04",),
           about="caption-conditional GAN (colour, size and fit words plus the garment)"),
    ZooRun("vae-fashion-mnist-logistic256", "vae", {}, {"cuda": 20, "cpu": 20}, lectures=("05",),
           about="VAE, 16-d latent, 256-level discretised logistic likelihood", finish=("match_prior_scale",)),
    ZooRun("vae-fashion-mnist-bernoulli", "vae", {"likelihood": "bernoulli"}, {"cuda": 20, "cpu": 20},
           lectures=("05",), about="VAE, 16-d latent, Bernoulli likelihood on dynamically binarised images",
           finish=("match_prior_scale",)),
    ZooRun("vae-fashion-mnist-2d", "vae", {"z_dim": 2}, {"cuda": 20, "cpu": 20}, lectures=("05",),
           about="VAE with a 2-d latent (256-level likelihood), for the decoded manifold and the latent map",
           finish=("match_prior_scale",)),
    ZooRun("pixelcnn-fashion-mnist-gated", "pixelcnn", {}, {"cuda": 10}, lectures=("06",),
           about="gated PixelCNN, 12 layers of 128 channels, 256-way softmax per pixel"),
]
RUNS: dict[str, ZooRun] = {run.name: run for run in _RUNS}
