"""Lab 7's harness: the adaptive weight's cases, turned from plain data into two losses at a decoder's last layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def last_layer_losses(h: torch.Tensor, weight: torch.Tensor, x: torch.Tensor, critic: torch.Tensor,
                      gan_scale: float, delta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """A case -> (rec_loss, gan_loss, last_layer_weight, delta), the arguments of the library's adaptive_weight.

    A decoder's last layer W (C, F), a fresh copy that requires grad, maps features h (B, F) to images
    x_hat = sigmoid(h W^T) (B, C). rec_loss: the mean squared error to x (B, C); gan_loss: gan_scale times the
    non-saturating generator loss against a linear critic (C,), softplus(-critic . x_hat) averaged over the batch
    (gan_scale 0: the discriminator switched off, its loss still on the graph).
    """
    w = weight.clone().requires_grad_(True)  # (C, F)
    x_hat = torch.sigmoid(h @ w.T)  # (B, C)
    rec_loss = (x_hat - x).pow(2).mean()
    gan_loss = float(gan_scale) * F.softplus(-(x_hat @ critic)).mean()
    return rec_loss, gan_loss, w, float(delta)
