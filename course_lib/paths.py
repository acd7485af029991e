"""Where the course lives on disk: the one module every layer may import for a path (it imports nothing of ours)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_ROOT", "README", "between_markers"]

REPO_ROOT = Path(__file__).resolve().parent.parent  # the course checkout: lectures/, labs/, data/, ...
README = REPO_ROOT / "README.md"


def between_markers(text: str, begin: str, end: str, body: str) -> str:
    """`text` with what lies between the marker lines `begin` and `end` replaced by `body` (the README's
    generated sections: the course map, the model zoo's table)."""
    if begin not in text or end not in text:
        raise ValueError(f"the text has no markers {begin!r} ... {end!r}: put them back where the section goes.")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"
