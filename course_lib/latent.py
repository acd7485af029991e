"""Paths through a latent space: straight (`lerp`) and along the sphere (`slerp`).

A generator's noise z ~ N(0, I_d) concentrates on the shell of radius sqrt(d): a straight line
between two draws cuts inside it, where the generator saw no training noise; slerp stays on it.
Lecture 03 compares the two on a DCGAN, lecture 05 on a VAE's posterior means; the explorers in
`course_lib.widgets` take either.

    path = torch.stack([slerp(z0, z1, t) for t in torch.linspace(0, 1, 8).tolist()])
"""
from __future__ import annotations

import torch

__all__ = ["lerp", "slerp"]


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """(1 - t) z0 + t z1, row by row: (B, d), (B, d) -> (B, d). Its midpoints fall inside the sqrt(d) shell."""
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation, row by row: (B, d), (B, d) -> (B, d) (Shoemake 1985; White 2016 for GANs).

    slerp = sin((1 - t) W) / sin W z0 + sin(t W) / sin W z1, with W the angle between z0 and z1.
    For z0, z1 of equal norm it keeps that norm; rows less than `eps` radians apart fall back to lerp.
    """
    cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos.clamp(-1.0, 1.0))  # (B, 1), the angle W
    sin = torch.sin(omega)
    close = sin.abs() < eps
    safe = torch.where(close, torch.ones_like(sin), sin)  # no 0 / 0 where the rows are (anti)parallel
    out = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / safe
    return torch.where(close, lerp(z0, z1, t), out)
