"""Interactive explorers for the lectures, built from explicit ipywidgets.

    explorer = DivergenceExplorer()
    display(explorer.widget)            # in a notebook
    explorer.controls["q.mu1"].value = 2.0
    explorer.values                     # {'KL(p||q)': ..., 'KL(q||p)': ..., 'JSD': ...}

The package, one module per kind of explorer:

    base.py           `Explorer`, the pattern they all follow, and their shared slider and image helpers
    divergence.py     `DivergenceExplorer`: two 1D densities, KL, JSD and D* (lecture 01)
    interpolation.py  `InterpolationExplorer` (between noise draws, 03),
                      `PairInterpolationExplorer` (between encoded images, 05)
    latent_space.py   `ArithmeticExplorer` (A + amount * (C - B), 03), `LatentExplorer` (a 2D latent space, 05)
    conditional.py    `ClassExplorer` (classes against noise), `CaptionExplorer` (typed captions) (lecture 04)
    completion.py     `CompletionExplorer`: completions of a partly hidden image (lecture 06)
    codes.py          `CodeGridExplorer`: a VQ-VAE's grid of codes, edited cell by cell under its prior (lecture 07)

The static fallbacks of executed notebooks' widget outputs are in `course_lib.notebooks`.
"""
from .base import Explorer
from .codes import CodeGridExplorer
from .completion import CompletionExplorer
from .conditional import CaptionExplorer, ClassExplorer
from .divergence import DivergenceExplorer
from .interpolation import InterpolationExplorer, PairInterpolationExplorer
from .latent_space import ArithmeticExplorer, LatentExplorer

__all__ = ["Explorer", "DivergenceExplorer", "InterpolationExplorer", "ArithmeticExplorer", "LatentExplorer",
           "PairInterpolationExplorer", "ClassExplorer", "CaptionExplorer", "CompletionExplorer", "CodeGridExplorer"]
