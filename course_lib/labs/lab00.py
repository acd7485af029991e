"""Lab 00 checks: the two warm-up exercises that run the whole exercise pipeline."""
from __future__ import annotations

import torch

from ..exercises import Exercise, case_generator, register


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Reference: images in [0, 1] -> [-1, 1] (the range of a tanh output layer)."""
    return x * 2 - 1


def class_means(images: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Reference: (N, C, H, W), (N,) -> (n_classes, C, H, W) mean image per class, zeros for absent classes."""
    sums = torch.zeros(n_classes, *images.shape[1:], dtype=images.dtype).index_add_(0, labels, images)
    counts = torch.bincount(labels, minlength=n_classes).clamp(min=1).to(images.dtype)  # (n_classes,)
    return sums / counts.view(-1, *[1] * (images.ndim - 1))


def _signed_cases() -> list[tuple]:
    g = case_generator(0)
    return [(torch.rand(4, 1, 5, 5, generator=g),),
            (torch.tensor([[[[0.0, 0.5, 1.0]]]]),),
            (torch.rand(2, 3, 2, 2, generator=g),)]


def _means_cases() -> list[tuple]:
    g = case_generator(1)
    labels = torch.tensor([0, 2, 2, 1, 0, 2])
    return [(torch.rand(6, 1, 3, 3, generator=g), labels, 3),
            (torch.rand(5, 1, 2, 2, generator=g), torch.tensor([1, 1, 3, 3, 3]), 4),  # classes 0 and 2 absent
            (torch.rand(50, 1, 4, 4, generator=g), torch.randint(0, 10, (50,), generator=g), 10)]


register(Exercise("lab00.to_signed", _signed_cases, to_signed, describe="[0, 1] -> [-1, 1], shape kept"))
register(Exercise("lab00.class_means", _means_cases, class_means, atol=1e-6,
                  describe="per-class means, zeros for absent classes"))
