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

__all__ = ["ZooRun", "RUNS", "FAMILIES", "LOSSES", "made_by"]

FAMILIES = ("dcgan", "cgan", "vae", "pixelcnn", "vqvae")
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
    A vqvae run trains two processes, so it saves two entries (`saves`): the VQ-VAE as NAME and, after it, the
    PixelCNN prior over its codes as NAME-prior, for `prior_epochs` passes over the codes of the training split.
    targets: what the lecture needs of the entry, checked on the saved files and recorded with it.
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
    prior_epochs: dict = field(default_factory=dict)  # vqvae: the prior's passes over the codes per device type
    targets: tuple[str, ...] = ()  # names of checks in recipes.zoo.TARGETS, recorded with the entry

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"zoo entry {self.name!r}: family {self.family!r} is not one of {FAMILIES}.")
        if "cuda" not in self.epochs:
            raise ValueError(f"zoo entry {self.name!r}: give its length on a GPU, epochs={{'cuda': N, ...}}.")
        if (self.family == "vqvae") != ("cuda" in self.prior_epochs):
            raise ValueError(f"zoo entry {self.name!r}: a vqvae entry, and only one, gives its prior's length on a "
                             f"GPU, prior_epochs={{'cuda': N, ...}}.")

    def epochs_on(self, device: str) -> int:
        """The run's length in passes over the training split on `device` ('cuda', 'cpu', or a torch device string)."""
        kind = str(device).split(":")[0]
        return self.epochs.get(kind, self.epochs["cuda"])

    def prior_epochs_on(self, device: str) -> int:
        """A vqvae run's prior length in passes over the codes of the training split on `device`."""
        kind = str(device).split(":")[0]
        return self.prior_epochs.get(kind, self.prior_epochs["cuda"])

    @property
    def saves(self) -> tuple[str, ...]:
        """The zoo entries this run writes: its own, and a VQ-VAE's prior as NAME-prior."""
        return (self.name, f"{self.name}-prior") if self.family == "vqvae" else (self.name,)

    def command(self, device: str) -> str:
        """The one command that trains this entry and measures its saved weights."""
        return f"python -m course_lib.zoo train {self.name} --device {str(device).split(':')[0]}"


# The gpu profile's lengths (20 epochs of 234 steps; PixelCNN 10) are what one H200 trains in one
# parallel call of about 6 minutes (`make zoo-gpu`); the 2-D VAE is small enough to train on a CPU.
# The VQ-VAE is the VAE's size (its 20 epochs took the VAE 40 s on the H200); its prior is the PixelCNN's
# 10 epochs on a 7x7 grid of codes instead of 28x28 pixels, 16 times fewer positions. On this course's 2-core
# CPU (two threads) the VQ-VAE's 20 epochs took 21 min (1293 s) and the prior's first 3 epochs 16 min (961 s):
# its 10 would take almost an hour, so a CPU trains the prior for 3 (its record says how many steps it had).
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
    ZooRun("vqvae-fashion-mnist", "vqvae", {}, {"cuda": 20, "cpu": 20}, prior_epochs={"cuda": 10, "cpu": 3}, lectures=("07",),
           about="VQ-VAE, K = 64 codes of 16 dims on a 7x7 grid; its gated PixelCNN prior over the codes ships as "
                 "vqvae-fashion-mnist-prior", targets=("perplexity", "fd_vs_vae", "speed_vs_pixelcnn")),
]
RUNS: dict[str, ZooRun] = {run.name: run for run in _RUNS}
# Registered, trained by the next `make zoo-gpu`, not shipped yet: name -> why (empty now: every entry ships).
# tests/test_zoo.py fails when an entry named here ships (take it off) or when any other entry has no shipped file.
AWAITING_GPU: dict[str, str] = {}


def made_by(name: str) -> ZooRun:
    """The registry run that writes zoo entry `name` (a VQ-VAE's prior is written by the VQ-VAE's run)."""
    for run in _RUNS:
        if name in run.saves:
            return run
    raise KeyError(f"No registry run writes a zoo entry {name!r}; the runs are: {', '.join(RUNS)}.")
