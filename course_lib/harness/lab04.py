"""Lab 4's harness: the embedding table of a condition_input case becomes the nn.Embedding the function takes; the
kernel's half of build_cgan's check (train the student's cGAN, sample before and after); what build_cgan builds on."""
from __future__ import annotations

import torch
from torch import nn

from . import training_pairs


def condition_input_args(z: torch.Tensor, labels: torch.Tensor, table: torch.Tensor) -> tuple:
    """(z, labels, table (classes, k)) -> (z, labels, an nn.Embedding holding a trainable copy of the table)."""
    return z, labels, nn.Embedding.from_pretrained(table.clone(), freeze=False)  # no draw from the global generator


# -- the build-and-train exercise: the kernel trains the student's cGAN; the grader judges its samples -----------------
def balanced_labels(n: int) -> torch.Tensor:
    """(n,) class ids 0, 1, ..., 9, 0, 1, ...: the labels the check's samples are drawn for."""
    return torch.arange(int(n)) % 10


def train_and_sample(build_cgan):
    """The check cell's wrapper of `build_cgan(width, seed) -> CGAN`: (width, seed, steps, noise_seed, n) -> what it did.

    Builds the student's cGAN (inside `seeded(seed)`: the same weights whatever ran before), draws n samples for
    balanced labels from fixed noise, trains it `steps` steps in the course's loop on 4,096 Fashion-MNIST (image,
    label) pairs (batches of 64), and draws again from the same noise. Returns {"before", "after": (n, 1, 28, 28)
    in [0, 1]; "labels": (n,) what each sample was drawn for; "d_loss", "g_loss": the logged losses (k,)}; the
    grader computes the Fréchet distance and the class accuracy from the samples, in its own process.
    """
    from ..models.base import seeded
    from ..train import Trainer, TrainConfig

    def run(width: int, seed: int, steps: int, noise_seed: int, n: int) -> dict:
        with seeded(int(seed)):  # nets built with the global generator get the same weights on every run
            gan = build_cgan(int(width), int(seed))
        if not (hasattr(gan, "sample") and hasattr(gan, "phases") and hasattr(gan, "condition")):
            raise TypeError(f"build_cgan must return the course's conditional GAN process "
                            f"(course_lib.models.cgan.CGAN), got {type(gan).__name__}.")
        labels = balanced_labels(n)

        def draw() -> torch.Tensor:
            # In training mode, batchnorm normalises with the batch's own statistics: in eval mode its running
            # statistics, which move during training even when no weight does, would let a model that learns
            # nothing (learning rate 0) look trained.
            gan.train()
            with torch.no_grad():
                x = gan.sample(int(n), generator=torch.Generator().manual_seed(int(noise_seed)), cond=labels)
            return x.float().clamp(0, 1).cpu()  # (n, 1, 28, 28): CGAN.sample returns [0, 1]

        before = draw()
        trainer = Trainer(gan, train_config=TrainConfig(log_every=10, progress=False))
        trainer.fit(training_pairs(seed).batches(64, seed=int(seed), labels=True), steps=int(steps))
        history = {k: torch.tensor(trainer.history.get(k, []), dtype=torch.float64) for k in ("d_loss", "g_loss")}
        return {"before": before, "after": draw(), "labels": labels, **history}

    return run


# -- what build_cgan builds on: the references of the earlier exercises, with the lab's signatures -------------------
def reference_condition_input(z: torch.Tensor, labels: torch.Tensor, embedding: nn.Module) -> torch.Tensor:
    """The library's G input with lab 04's signature: concat_noise(z, embedding(labels)), (B, z_dim + k)."""
    from ..models.cgan import concat_noise

    return concat_noise(z, embedding(labels))
