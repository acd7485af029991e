"""Text helpers the grader and its pytest plugin share; this module imports nothing (plugin.py loads it from its file)."""
from __future__ import annotations

import re
from typing import Any

# Terminal escapes: CSI (colours, cursor moves) and OSC (titles, hyperlinks, clipboard), whole.
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|$)|\x1b[@-_]?")
# What remains that a terminal or an editor would act on: C0 and C1 controls, DEL, bidirectional overrides.
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting so as a formula


def plain(text: Any) -> str:
    """The text without terminal escapes or control characters (newlines and tabs kept)."""
    return CONTROLS.sub("", ESCAPES.sub("", str(text)))


def short(text: Any, limit: int = 200) -> str:
    """One line of at most `limit` characters, with no terminal escapes or control characters."""
    line = " ".join(plain(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def csv_cell(value: Any) -> str:
    """A text cell a spreadsheet shows as text: a leading ' before = + - @ (OWASP's CSV-injection advice)."""
    text = plain(value)
    return "'" + text if text.startswith(FORMULA_START) else text
