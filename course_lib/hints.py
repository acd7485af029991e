"""Hints in layers: `hint("lab03.generator")` shows a first nudge; asking again shows more, the recipe last.

A blank exercise raises NotImplementedError with its contract only (what goes in, what comes out, where the
lecture explains it). The hints are for when the contract is not enough:

    hint("lab03.generator")     # 1 of 3: the idea
    hint("lab03.generator")     # 2 of 3: the tools, and the classic pitfall
    hint("lab03.generator")     # 3 of 3: the recipe
    hint("lab03.generator", 1)  # show level 1 again

Each exercise's contract and hints are written once, in its solution cell's metadata (`contract`, `hints`);
`python -m course_lib.notebooks labs` copies them into `course_lib/hints.json`, which this module reads. Every
hint printed starts with "[hint k/n · exercise id]": the grader reads those lines in a submission's saved
outputs and reports the deepest level asked per exercise, for the instructor (it never changes a score).
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["hint", "contract", "HINTS_FILE", "HINT_LINE"]

HINTS_FILE = Path(__file__).with_name("hints.json")
HINT_LINE = re.compile(r"\[hint (\d+)/(\d+) · ([A-Za-z0-9_]+\.[A-Za-z0-9_]+)\]")  # what the grader looks for
_ASKED: dict[str, int] = {}  # exercise id -> the deepest level shown in this kernel


@lru_cache(maxsize=1)
def _table() -> dict[str, dict]:
    try:
        return json.loads(HINTS_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{HINTS_FILE} is missing: run `make labs` (python -m course_lib.notebooks labs) "
                                f"to write it from the solution notebooks.") from None


def _entry(exercise_id: str) -> dict:
    table = _table()
    if exercise_id not in table:
        lab = exercise_id.split(".")[0]
        known = sorted(k for k in table if k.startswith(lab + ".")) or sorted(table)
        raise KeyError(f"No exercise {exercise_id!r}; the ones there are: {', '.join(known)}.")
    return table[exercise_id]


def contract(exercise_id: str) -> str:
    """What the exercise's function must do, and where the lecture explains it (the blank stub's message)."""
    return _entry(exercise_id)["contract"]


def hint(exercise_id: str, level: int | None = None) -> None:
    """Print the next hint for an exercise (or hint number `level`, from 1); the last one is the recipe."""
    hints = _entry(exercise_id)["hints"]
    n = len(hints)
    if level is None:
        level = min(_ASKED.get(exercise_id, 0) + 1, n)
    elif not (isinstance(level, int) and 1 <= level <= n):
        raise ValueError(f"{exercise_id} has hints 1 to {n}; got level={level!r}.")
    _ASKED[exercise_id] = max(_ASKED.get(exercise_id, 0), level)
    more = (f"  (run hint({exercise_id!r}) again for more)" if level < n else "  (that is the whole recipe)")
    print(f"[hint {level}/{n} · {exercise_id}] {hints[level - 1]}{more}")


def asked_in(outputs_text: str) -> dict[str, tuple[int, int]]:
    """exercise id -> (deepest level, number of hints) among the hint lines in a notebook's saved outputs."""
    seen: dict[str, tuple[int, int]] = {}
    for k, n, ex_id in HINT_LINE.findall(outputs_text):
        level = (int(k), int(n))
        if level > seen.get(ex_id, (0, 0)):
            seen[ex_id] = level
    return seen
