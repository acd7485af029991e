"""What check() recorded in the kernel, judged in the grader's own process.

The bytes come from pytest (plugin.py), which read them once right after the check cell. They
are loaded with torch.load(weights_only=True): nothing in them can run code here. Only plain
tensors, numbers, strings and containers of them are accepted; anything else (a Tensor
subclass, a float whose __float__ lies) is named in the reason instead of torch's message.
"""
from __future__ import annotations

import io
import pickletools
import zipfile
from typing import Any

import torch

from ..exercises import get_exercise, odd_type, salted, verify
from .text import short

TRUSTED_MODULES = ("torch", "collections", "builtins", "_codecs", "copyreg")


def foreign_globals(data: bytes) -> list[str]:
    """Classes named in the pickle of a torch.save file that are not torch's own (e.g. __main__.Liar)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        ops = list(pickletools.genops(pkl))
    except Exception:  # not a torch.save file at all: the caller says "unreadable"
        return []
    found = []
    for k, (op, arg, _) in enumerate(ops):
        if op.name == "GLOBAL":
            name = str(arg).replace(" ", ".")
        elif op.name == "STACK_GLOBAL" and k >= 2:
            name = f"{ops[k - 2][1]}.{ops[k - 1][1]}"
        else:
            continue
        if name.split(".", 1)[0] not in TRUSTED_MODULES:
            found.append(name)
    return found


def verify_recorded(ex_id: str, data: bytes | None, salt: int = 0) -> str:
    """Compare what check() recorded with the reference on the run's cases (drawn with its secret `salt`), here;
    return a reason, or "" if it matches."""
    if data is None:
        return "check passed in the kernel but recorded no outputs (was check() replaced?)"
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        foreign = foreign_globals(data)
        if foreign:
            return f"returned a {foreign[0].rsplit('.', 1)[-1]} ({foreign[0]}), expected a tensor or number"
        return short(f"recorded outputs unreadable: {type(e).__name__}: {e}")
    if not isinstance(loaded, dict) or loaded.get("exercise") != ex_id or type(loaded.get("outputs")) not in (list, tuple):
        return "recorded outputs are not the ones check() writes"
    odd = odd_type(loaded["outputs"])
    if odd:
        return f"returned a {odd}, expected a tensor or number"
    try:
        with salted(salt):
            verify(get_exercise(ex_id), list(loaded["outputs"]))
    except AssertionError as e:
        text = str(e)
        if " It looks like " in text:  # the diagnosis first: the reason is cut at 200 characters
            body, mistake = text.split(" It looks like ", 1)
            return short(f"looks like {mistake.rstrip('.')}; differs from the reference (compared by the grader): {body}",
                         400)
        return short(f"differs from the reference (compared by the grader): {text}", 400)  # room for the case's inputs
    except Exception as e:
        return short(f"outputs could not be compared with the reference: {type(e).__name__}: {e}")
    return ""
