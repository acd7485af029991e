"""Text helpers the grader and its pytest plugin share; this module imports nothing (plugin.py loads it from its file)."""
from __future__ import annotations

import re
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def short(text: Any, limit: int = 200) -> str:
    """One line of at most `limit` characters, without terminal colours."""
    line = " ".join(ANSI.sub("", str(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
