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
from ..train import Phase
from .base import ProcessModule

__all__ = ["ClassifierConfig", "ConvNet", "Classifier"]


@dataclass
class ClassifierConfig:
    width: int = 32  # channels of the first conv; the profile's `width` by default in train_classifier
    in_channels: int = 1
    n_classes: int = 10
    feature_dim: int = 128  # size of the embedding used for Frechet distances
    lr: float = 2e-3
    depth: int = 1  # convs in each downsampling stage (stages: width at full size, 2 width at 1/2, 4 width at 1/4)
    pool: int = 1  # side of the average-pooled grid the head sees (1: global average; 2 keeps coarse layout)
    norm: str = "group"  # "group" (GroupNorm, 4 groups) or "batch" (BatchNorm)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    shift: int = 0  # augmentation: random translation by up to this many pixels (0: none)
    flip: bool = False  # augmentation: random horizontal flips (clothes, not digits)

    def __post_init__(self) -> None:
        if self.norm not in ("group", "batch"):
            raise ValueError(f"norm must be 'group' or 'batch', got {self.norm!r}.")
        if self.depth < 1 or self.shift < 0:
            raise ValueError(f"depth must be >= 1 and shift >= 0, got depth={self.depth}, shift={self.shift}.")


class ConvNet(nn.Module):
    """(B, C, H, W) in [0, 1] -> features (B, feature_dim) -> logits (B, n_classes). Any H, W >= 4."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        w = config.width

        def conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
            norm = nn.GroupNorm(4, c_out) if config.norm == "group" else nn.BatchNorm2d(c_out)
            return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), norm, nn.SiLU()]

        layers = conv(config.in_channels, w)  # (B, w, H, W)
        for c_in, c_out in ((w, 2 * w), (2 * w, 4 * w)):
            layers += conv(c_in, c_out, stride=2)  # (B, 2w, H/2, W/2), then (B, 4w, H/4, W/4)
            for _ in range(config.depth - 1):
                layers += conv(c_out, c_out)  # same shape
        grid = config.pool * config.pool
        self.body = nn.Sequential(
            *layers,
            nn.AdaptiveAvgPool2d(config.pool), nn.Flatten(),  # (B, 4w * pool^2)
            nn.Linear(4 * w * grid, config.feature_dim), nn.SiLU(),  # (B, feature_dim)
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
        self._augment_rng: torch.Generator | None = None  # made on first use, on the model's device

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random shifts by up to `shift` pixels (zero padding) and random horizontal flips, per image."""
        c = self.config
        if self._augment_rng is None or self._augment_rng.device != x.device:
            self._augment_rng = torch.Generator(device=x.device).manual_seed(self.seed + 2)
        g, (b, _, h, w) = self._augment_rng, x.shape
        if c.flip:
            flip = torch.rand(b, 1, 1, 1, generator=g, device=x.device) < 0.5
            x = torch.where(flip, x.flip(-1), x)
        if c.shift:
            s = c.shift
            padded = F.pad(x, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
            dy, dx = (torch.randint(0, 2 * s + 1, (b,), generator=g, device=x.device) for _ in range(2))
            rows = torch.arange(h, device=x.device)[None] + dy[:, None]  # (B, H)
            cols = torch.arange(w, device=x.device)[None] + dx[:, None]  # (B, W)
            batch = torch.arange(b, device=x.device)[:, None, None]
            x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        return x

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch  # (B, C, H, W), (B,)
        if self.training and (self.config.shift or self.config.flip):
            x = self.augment(x)
        logits = self.net(x).float()  # (B, n_classes), float32 even under bf16 autocast
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(-1) == y).float().mean()}

    def phases(self) -> list[Phase]:
        c = self.config
        opt = (torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay) if c.weight_decay
               else torch.optim.Adam(self.parameters(), lr=c.lr))
        return [Phase("loss", self.loss, opt)]

    @torch.no_grad()
    def accuracy(self, data: ImageData, batch_size: int = 1000) -> float:
        self.eval()
        correct = 0
        for i in range(0, len(data), batch_size):
            x = data.images[i:i + batch_size].to(self.device)
            correct += int((self.net(x).argmax(-1).cpu() == data.labels[i:i + batch_size].cpu()).sum())
        return correct / len(data)
