"""Captions measured from pixels, and their tokens: the conditions of lecture 04's caption GAN.

No annotation is needed: `attributes` gives each image's ink intensity, area and width;
`Captioner.fit` puts each threshold at its class's median, so each word of a pair ("dark"/"light",
"small"/"large", "narrow"/"wide") describes half of every class. A caption is
"<intensity> <area> <width> <class>", e.g. "light large narrow trouser"; its tokens are the words'
indices in the vocabulary (PAD, the six attribute words, the class words), padded with 0.

    cap = Captioner(DATASETS["fashion-mnist"].classes).fit(train.images, train.labels)
    cap.caption(x, y)                       # ['dark small wide coat', ...]
    cap.encode(["light large trouser"])     # token ids (1, 3)
    cap.attribute_accuracy(samples, texts)  # the fraction of attribute words the samples satisfy
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data import DATASETS

__all__ = ["ATTRIBUTES", "PAD", "VOCAB", "class_words", "vocabulary", "attributes", "fit_thresholds", "caption",
           "encode_caption", "Captioner"]


ATTRIBUTES = (("intensity", "dark", "light"), ("area", "small", "large"), ("width", "narrow", "wide"))
PAD = "<pad>"  # token 0: fills short captions to the batch's longest; the text encoder ignores it
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def class_words(classes: Sequence[str]) -> tuple[str, ...]:
    """One lower-case word per class: "T-shirt/top" -> "t-shirt", "Ankle boot" -> "ankle-boot", "3" -> "three"."""
    return tuple(_DIGITS[int(c)] if c.isdigit() else c.lower().split("/")[0].replace(" ", "-") for c in classes)


def vocabulary(classes: Sequence[str]) -> tuple[str, ...]:
    """(PAD, the six attribute words, the class words): a word's token id is its index here."""
    return (PAD, *[w for _, low, high in ATTRIBUTES for w in (low, high)], *class_words(classes))


VOCAB = vocabulary(DATASETS["fashion-mnist"].classes)


def attributes(images: torch.Tensor, ink: float = 0.1) -> dict[str, torch.Tensor]:
    """Per-image measurements of images (N, 1, H, W) in [0, 1]; each entry (N,).

    intensity: mean value of the inked pixels (value > ink): how bright the garment or stroke is;
    area: mean of min(x / 0.5, 1): the fraction of the image that is inked (fainter pixels count in part);
    width: 2 x the standard deviation of the ink's column position, over W: its horizontal spread.
    """
    x = images.float().flatten(1, 2)  # (N, H, W): one channel
    mask = (x > ink).float()
    intensity = (x * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1)
    area = (x / 0.5).clamp(max=1).mean((1, 2))
    mass = x.sum(1)  # (N, W): the ink in each column
    cols = torch.arange(x.shape[2], device=x.device, dtype=x.dtype)
    total = mass.sum(1).clamp(min=1e-6)
    mu = (mass * cols).sum(1) / total
    var = (mass * (cols - mu[:, None]) ** 2).sum(1) / total
    return {"intensity": intensity, "area": area, "width": 2 * var.sqrt() / x.shape[2]}


def _measure(images: torch.Tensor) -> torch.Tensor:
    a = attributes(images)
    return torch.stack([a[name] for name, _, _ in ATTRIBUTES], 1)  # (N, 3)


def fit_thresholds(images: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-class medians of each attribute, (n_classes, 3): half of each class gets each word of a pair."""
    values, labels = _measure(images), labels.to(images.device)
    out = []
    for k in range(n_classes):
        rows = values[labels == k]
        if len(rows) == 0:
            raise ValueError(f"class {k} has no images, so its thresholds cannot be set: fit on data with every class.")
        out.append(rows.quantile(0.5, dim=0))
    return torch.stack(out)


def _high(images: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """(N, 3) bool: True where the image is above its class's threshold (the second word of the pair)."""
    return _measure(images) > thresholds.to(images.device)[labels.to(images.device)]


def caption(images: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor,
            classes: Sequence[str] = DATASETS["fashion-mnist"].classes) -> list[str]:
    """"<intensity> <area> <width> <class>" for each image, e.g. "dark large narrow coat"."""
    high, words = _high(images, labels, thresholds).tolist(), class_words(classes)
    return [" ".join([*(pair[1 + h] for pair, h in zip(ATTRIBUTES, row)), words[int(y)]])
            for row, y in zip(high, labels.tolist())]


def encode_caption(text: str, vocab: Sequence[str] = VOCAB) -> list[int]:
    """A caption -> its token ids; a ValueError that lists the vocabulary for an empty caption or unknown words."""
    words = text.lower().replace(",", " ").split() if isinstance(text, str) else None
    listing = f"Captions are made of these words (any order): {', '.join(vocab[1:])}."
    if not words:
        raise ValueError(f"the caption {text!r} is empty. {listing}")
    unknown = [w for w in words if w not in vocab or w == PAD]
    if unknown:
        raise ValueError(f"unknown word(s) {unknown} in the caption {text!r}. {listing}")
    return [vocab.index(w) for w in words]


class Captioner(nn.Module):
    """The per-class thresholds (a buffer, saved with the model) and the vocabulary of one dataset."""

    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__()
        self.classes, self.vocab = tuple(classes), vocabulary(classes)
        self.register_buffer("thresholds", torch.zeros(len(classes), len(ATTRIBUTES)))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit(self, images: torch.Tensor, labels: torch.Tensor) -> "Captioner":
        self.thresholds.copy_(fit_thresholds(images, labels, len(self.classes)))
        self.fitted.fill_(True)
        return self

    def _check(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError("the captioner has no thresholds yet: call .fit(images, labels) on the training data "
                               "(train_cgan does).")

    def caption(self, images: torch.Tensor, labels: torch.Tensor) -> list[str]:
        self._check()
        return caption(images, labels, self.thresholds, self.classes)

    def high(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, 3) bool, one column per attribute pair: True where the image earns the pair's second word
        ("light", "large", "wide") for its class."""
        self._check()
        return _high(images, labels, self.thresholds)

    def tokens(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The token ids of `caption(images, labels)` without strings: (N, 4) long, on the images' device."""
        high = self.high(images, labels).long()  # (N, 3)
        attr = 1 + 2 * torch.arange(len(ATTRIBUTES), device=high.device) + high  # (N, 3): low word or high word
        cls = 1 + 2 * len(ATTRIBUTES) + labels.to(high.device).long()  # (N,)
        return torch.cat([attr, cls[:, None]], 1)

    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Captions -> token ids (B, L), padded with 0 to the longest."""
        ids = [encode_caption(t, self.vocab) for t in ([texts] if isinstance(texts, str) else texts)]
        out = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long, device=self.thresholds.device)
        for i, row in enumerate(ids):
            out[i, :len(row)] = torch.tensor(row)
        return out

    def parse(self, text: str) -> tuple[int, dict[str, bool]]:
        """(class id, {attribute: True for its second word}) of a caption that names exactly one class."""
        words = [self.vocab[i] for i in encode_caption(text, self.vocab)]
        named = [w for w in words if w in class_words(self.classes)]
        if len(named) != 1:
            raise ValueError(f"the caption {text!r} must name exactly one class, one of {class_words(self.classes)}.")
        said = {}
        for name, low, high in ATTRIBUTES:
            if low in words and high in words:
                raise ValueError(f"the caption {text!r} says both {low!r} and {high!r}.")
            if low in words or high in words:
                said[name] = high in words
        return class_words(self.classes).index(named[0]), said

    def attribute_accuracy(self, images: torch.Tensor, captions: Sequence[str]) -> float:
        """The fraction of attribute words in `captions` that the images satisfy, with each class's thresholds."""
        self._check()
        parsed = [self.parse(t) for t in captions]
        labels = torch.tensor([y for y, _ in parsed])
        high = self.high(images, labels).cpu()  # (N, 3)
        hits = [high[i, j] == said[name] for i, (_, said) in enumerate(parsed)
                for j, (name, _, _) in enumerate(ATTRIBUTES) if name in said]
        if not hits:
            raise ValueError("the captions name no attribute words, so there is nothing to check.")
        return float(torch.stack(hits).double().mean())
