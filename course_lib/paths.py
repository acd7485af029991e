"""Where the course lives on disk: the one module every layer may import for a path (it imports nothing of ours)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent  # the course checkout: lectures/, labs/, data/, ...
