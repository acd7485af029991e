"""A small conv classifier: the training loop's first customer, and the course's feature network.

Lecture 00 trains it to show the loop; later lectures reuse its penultimate layer
(`embed`) as the feature space for the Frechet distance between real and generated images.

    model = Classifier(ClassifierConfig(width=course.profile.width), seed=course.seed)
    trainer = Trainer(model)                     # one phase: cross-entropy with Adam
    trainer.fit(train.batches(128), epochs=3)
    model.accuracy(test)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageData
from ..runtime import Course
from ..train import Phase, TrainConfig, Trainer
from .base import ProcessModule

__all__ = ["ClassifierConfig", "ConvNet", "Classifier", "train_classifier", "BENCHMARKS"]


@dataclass
class ClassifierConfig:
    width: int = 32  # channels of the first conv; the profile's `width` by default in train_classifier
    in_channels: int = 1
    n_classes: int = 10
    feature_dim: int = 128  # size of the embedding used for Frechet distances
    lr: float = 2e-3


class ConvNet(nn.Module):
    """(B, C, H, W) in [0, 1] -> features (B, feature_dim) -> logits (B, n_classes). Any H, W >= 4."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        w = config.width
        self.body = nn.Sequential(
            nn.Conv2d(config.in_channels, w, 3, padding=1), nn.GroupNorm(4, w), nn.SiLU(),  # (B, w, H, W)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(4, 2 * w), nn.SiLU(),  # (B, 2w, H/2, W/2)
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(4, 4 * w), nn.SiLU(),  # (B, 4w, H/4, W/4)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 4w)
            nn.Linear(4 * w, config.feature_dim), nn.SiLU(),  # (B, feature_dim)
        )
        self.head = nn.Linear(config.feature_dim, config.n_classes)  # (B, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4, f"expected images (B, C, H, W), got shape {tuple(x.shape)}; add .unsqueeze(0) for one image"
        return self.body(x * 2 - 1)  # [0, 1] -> [-1, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class Classifier(ProcessModule):
    """The process around ConvNet: its loss for the Trainer, and evaluation."""

    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig | None = None, seed: int = 0) -> None:
        super().__init__(config or ClassifierConfig(), seed)
        with self.seeded():
            self.net = ConvNet(self.config)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch  # (B, C, H, W), (B,)
        logits = self.net(x).float()  # (B, n_classes), float32 even under bf16 autocast
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(-1) == y).float().mean()}

    def phases(self) -> list[Phase]:
        return [Phase("loss", self.loss, torch.optim.Adam(self.parameters(), lr=self.config.lr))]

    @torch.no_grad()
    def accuracy(self, data: ImageData, batch_size: int = 1000) -> float:
        self.eval()
        correct = 0
        for i in range(0, len(data), batch_size):
            x = data.images[i:i + batch_size].to(self.device)
            correct += int((self.net(x).argmax(-1).cpu() == data.labels[i:i + batch_size].cpu()).sum())
        return correct / len(data)


def train_classifier(course: Course, data: ImageData, config: ClassifierConfig | None = None,
                     epochs: int | None = None, train_config: TrainConfig | None = None,
                     callback=None) -> tuple[Classifier, Trainer]:
    """Train a Classifier on `data` with the course's one loop; returns (classifier, trainer)."""
    config = config or ClassifierConfig(width=course.profile.width, in_channels=data.shape[0], n_classes=len(data.classes))
    model = Classifier(config, seed=course.seed).to(course.device)
    trainer = Trainer(model, train_config=train_config or TrainConfig(log_every=10), device=course.device)
    batch = min(course.profile.batch_size, len(data))
    trainer.fit(data.to(course.device).batches(batch, seed=course.seed), epochs=epochs or course.profile.epochs,
                callback=callback)
    return model, trainer


def bench_classifier(course: Course) -> dict:
    """Fashion-MNIST classifier: images/s and test accuracy after the profile's epochs."""
    p = course.profile
    train, test = course.load_data("fashion-mnist", "train"), course.load_data("fashion-mnist", "test")
    model, trainer = train_classifier(course, train, train_config=TrainConfig(log_every=10, progress=False))
    return {"dataset": "fashion-mnist", "train_images": len(train), "epochs": p.epochs, "steps": trainer.step,
            "train_seconds": round(trainer.seconds, 3),
            "images_per_s": round(trainer.samples_seen / max(trainer.seconds, 1e-9), 1),
            "final_loss": round(trainer.history["loss"][-1], 4), "test_accuracy": round(model.accuracy(test), 4)}


BENCHMARKS = {"classifier": bench_classifier}
