"""Lab 5's harness: the references the later exercises build on (see course_lib.harness), and the kernel's half of
the build-and-train check, `train_and_sample(build_vae)`."""
from __future__ import annotations

import torch

from . import training_pairs
from ..models.likelihoods import Bernoulli
from ..models.vae import gaussian_kl


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag e^logvar) || N(0, I)) per example, (B,)."""
    return gaussian_kl(mu, logvar).sum(1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The library's draw with lab 05's signature: mu + sigma eps, (B, d)."""
    return mu + torch.exp(0.5 * logvar) * eps


def elbo_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0) -> torch.Tensor:
    """The library's Bernoulli ELBO with lab 05's signature: -(log p(x|z) - beta KL), the mean over the batch."""
    return -(Bernoulli().log_prob(logits, x) - beta * kl_to_prior(mu, logvar)).mean()


# -- the build-and-train exercise: the kernel trains the student's VAE; the grader judges its samples -------------
def train_and_sample(build_vae):
    """The check cell's wrapper of `build_vae(z_dim, width, seed) -> VAE`: (z_dim, width, seed, steps, noise_seed, n)
    -> what it did.

    Builds the student's VAE (the global generator seeded with `seed` for the weights a network draws itself),
    draws n prior samples (the decoder's means) from fixed noise, trains it `steps` steps in the course's loop on
    4,096 Fashion-MNIST training images in [0, 1] (batches of 64; the process binarises them), and draws again
    from the same noise. Returns {"before", "after": (n, 1, 28, 28) in [0, 1]; "loss": the logged losses (k,)};
    the grader computes the Fréchet distances from the samples, in its own process.
    """
    from ..data import Batches
    from ..train import TrainConfig, Trainer

    def run(z_dim: int, width: int, seed: int, steps: int, noise_seed: int, n: int) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            vae = build_vae(int(z_dim), int(width), int(seed))
        if not (hasattr(vae, "sample") and hasattr(vae, "phases") and hasattr(vae, "encode")):
            raise TypeError(f"build_vae must return the course's VAE process (course_lib.models.vae.VAE) or a "
                            f"subclass of it, got {type(vae).__name__}.")

        def draw() -> torch.Tensor:
            vae.eval()
            with torch.no_grad():
                x = vae.sample(int(n), generator=torch.Generator().manual_seed(int(noise_seed)))
            return x.float().clamp(0, 1).cpu()  # (n, 1, 28, 28)

        before = draw()
        vae.train()
        trainer = Trainer(vae, train_config=TrainConfig(log_every=10, progress=False))
        trainer.fit(Batches(training_pairs(seed).images, 64, seed=int(seed)), steps=int(steps))
        return {"before": before, "after": draw(),
                "loss": torch.tensor(trainer.history.get("loss", []), dtype=torch.float64)}

    return run
