"""Exercise checks: the student's function against a trusted reference, on seeded cases.

Each exercise has a stable id such as "lab00.to_signed". Its cases and reference live in
`course_lib/labs/lab00.py`; its points and hint live in the solution notebook's cell
metadata (the single source the student lab is generated from).

In a notebook, the check cell after an exercise is one line:

    check("lab00.to_signed", to_signed)

It runs the student's function on every case, compares with the reference within the
tolerances, and raises an AssertionError that says what differs.

When a grader runs the notebook, the kernel holds no reference and no case generator (the sandbox
hides `course_lib/labs/`). The grader draws each run's cases with a secret salt mixed into every
case seed (`salted`, `case_generator`), writes their inputs, as plain data, to $COURSE_GRADE_CASES,
and check() only runs the student's function on them and records the outputs in $COURSE_GRADE_DIR.
The grader compares them with the reference in its own process. A notebook cannot copy answers it
has never seen, and a table of the answers to the cases a student sees at home fails on the
grader's. What the kernel needs to call the function (turning a case's plain data into a module, a
generator, a logits function) lives in `course_lib.harness`, which holds no reference.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import math
import importlib
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["Exercise", "register", "get_exercise", "check", "collect", "verify", "to_plain", "GRADE_DIR_VAR",
           "GRADE_CASES_VAR", "salted", "graded", "case_seed", "case_generator", "case_random", "draw_cases"]

GRADE_DIR_VAR = "COURSE_GRADE_DIR"  # where check() records the outputs, in grading mode
GRADE_CASES_VAR = "COURSE_GRADE_CASES"  # where the grader put this run's case inputs, in grading mode

# The grader's secret for one run, set only in the grader's own process while it draws or verifies that
# run's cases. A context variable: each grading thread has its own, and a student's notebook sees 0.
_SALT: contextvars.ContextVar[int] = contextvars.ContextVar("course_case_salt", default=0)

# Some cases and references seed torch's global generator for a moment (a module's initial weights, under
# models.base.seeded). That generator is one per process: two grading threads drawing at once would draw
# each other's weights. The grader draws and verifies under this lock, one exercise at a time.
_GLOBAL_RNG = threading.RLock()


@contextlib.contextmanager
def salted(salt: int):
    """Draw cases with `salt` mixed into every case seed (the grader's, per run); salt 0: the cases a student sees."""
    token = _SALT.set(int(salt))
    try:
        yield
    finally:
        _SALT.reset(token)


def graded() -> bool:
    """True while the grader draws a run's secret cases (case functions also vary their sizes then)."""
    return _SALT.get() != 0


def _mixed(seed: int) -> int:
    salt = _SALT.get()
    if not salt:
        return seed
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def case_seed(seed: int) -> int:
    """An integer seed for a case (a torch.Generator the student's function gets, a module's initial weights):
    `seed` at home, `seed` mixed with the grader's secret salt when graded."""
    return _mixed(seed)


def case_generator(seed: int) -> torch.Generator:
    """The torch.Generator a lab's cases are drawn from: `seed` at home, `seed` mixed with the grader's salt when graded."""
    return torch.Generator().manual_seed(_mixed(seed))


def case_random(seed: int) -> random.Random:
    """A random.Random for a case function's choices (sizes, kinds, order), seeded like case_generator."""
    return random.Random(_mixed(seed))


@dataclass(frozen=True)
class Exercise:
    """A check: `reference(*args)` for args in `cases()`, compared within tolerances.

    cases: argument tuples, deterministic (seeded), fresh objects on each call.
    compare(got, want, args) -> None raises AssertionError; the default compares numbers and
    tensors (shapes, dtypes ignored) with `rtol`/`atol`, recursing into tuples, lists, dicts.
    """

    id: str
    cases: Callable[[], Sequence[tuple]]
    reference: Callable[..., Any]
    rtol: float = 1e-5
    atol: float = 1e-6
    compare: Callable[[Any, Any, tuple], None] | None = None
    describe: str = ""  # what the check checks, shown on success
    # what each case is, in words, in the order cases() returns them ("orthogonal unit vectors, t = 0.5"): a failing
    # case is named by it, with a summary of its inputs
    names: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # names of the parts of a tuple output ("the penalty", "its weight gradient")
    # known-wrong variants of the reference, called like it: (what the mistake is, the variant). When an answer
    # fails, the check says which one it matches on every case ("it looks like a per-pixel mean: ...")
    mistakes: tuple[tuple[str, Callable[..., Any]], ...] = ()
    # no one right output (a trained model's samples): `reference` returns None and `compare` judges what the
    # output shows, in the grader's process (lab03.build_gan: the FD of the samples before and after training)
    judged: bool = False

    @property
    def builds_on(self) -> tuple[tuple[str, str], ...]:
        """(name in the student's code, exercise id) pairs, from course_lib.harness: while this exercise is checked,
        that name is the other exercise's reference, so a mistake in an earlier exercise costs only that one."""
        from . import harness

        return tuple((name, other) for name, other, _ in harness.builds_on(self.id))


REGISTRY: dict[str, Exercise] = {}


def register(ex: Exercise) -> Exercise:
    if "." not in ex.id:
        raise ValueError(f"Exercise id must look like 'lab00.name', got {ex.id!r}.")
    REGISTRY[ex.id] = ex
    return ex


def get_exercise(exercise_id: str) -> Exercise:
    """Find an exercise by id, importing `course_lib.labs.<lab>` on first use."""
    lab = exercise_id.split(".", 1)[0]
    if exercise_id not in REGISTRY:
        try:
            importlib.import_module(f"course_lib.labs.{lab}")
        except ModuleNotFoundError as e:
            if e.name != f"course_lib.labs.{lab}":  # the lab exists but needs a missing package: say that
                raise
            raise KeyError(f"No lab module course_lib/labs/{lab}.py for exercise {exercise_id!r}.") from e
    if exercise_id not in REGISTRY:
        known = sorted(k for k in REGISTRY if k.startswith(lab + "."))
        raise KeyError(f"Unknown exercise {exercise_id!r}; {lab} has {known}.")
    return REGISTRY[exercise_id]


def to_plain(value: Any) -> Any:
    """Convert an output to tensors, floats, ints, bools, strings and containers of them.

    This is what is stored for the grader (loadable with torch.load(weights_only=True)).
    """
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value] if isinstance(value, list) else tuple(to_plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    raise TypeError(f"cannot check a value of type {type(value).__name__}; return tensors or numbers.")


def _shape(x: Any) -> str:
    return f"tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _dtype(x: Any) -> str:
    return str(x.dtype).replace("torch.", "") if isinstance(x, torch.Tensor) else type(x).__name__


def _numbers(gi: float, wi: float, got: Any, want: Any) -> str:
    """got and expected, with enough digits to see the difference, and the dtypes where 6 digits hide it."""
    short_g, short_w = f"{gi:.6g}", f"{wi:.6g}"
    if short_g != short_w:
        return f"got {short_g}, expected {short_w}"
    return f"got {gi!r} ({_dtype(got)}), expected {wi!r} ({_dtype(want)})"


def compare_close(got: Any, want: Any, rtol: float, atol: float, where: str = "output",
                  parts: Sequence[str] = ()) -> None:
    """Raise AssertionError unless got and want agree (recursively) within tolerances.

    parts: names of the elements of a tuple output, used in the message instead of their index.
    """
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            raise AssertionError(f"{where}: expected a tuple of {len(want)} values, got {_shape(got)}"
                                 + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else "") + ".")
        for i, (g, w) in enumerate(zip(got, want)):
            part = parts[i] if i < len(parts) else f"item {i + 1} of {len(want)}"
            compare_close(g, w, rtol, atol, f"{where}, {part}")
        return
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            raise AssertionError(f"{where}: expected a dict with keys {sorted(want)}, got "
                                 f"{sorted(got) if isinstance(got, dict) else _shape(got)}.")
        for k in want:
            compare_close(got[k], want[k], rtol, atol, f"{where}[{k!r}]")
        return
    if isinstance(want, (str, bool)) or want is None:
        if got != want:
            raise AssertionError(f"{where}: expected {want!r}, got {got!r}.")
        return
    if isinstance(got, (bool,)) or isinstance(got, str) or got is None or isinstance(got, (list, tuple, dict)):
        raise AssertionError(f"{where}: expected a number or tensor, got {_shape(got)}.")
    g = torch.as_tensor(got, dtype=torch.float64)
    w = torch.as_tensor(want, dtype=torch.float64)
    if isinstance(want, torch.Tensor) and want.ndim > 0 and tuple(g.shape) != tuple(w.shape):
        raise AssertionError(f"{where}: expected shape {tuple(w.shape)}, got {tuple(g.shape)}.")
    if g.numel() != w.numel():
        raise AssertionError(f"{where}: expected {w.numel()} value(s), got {g.numel()}.")
    g, w = g.reshape(w.shape), w
    both_nan = torch.isnan(g) & torch.isnan(w)
    ok = torch.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True) | both_nan
    if not bool(ok.all()):
        i = int((~ok).flatten().nonzero()[0])
        gi, wi = float(g.flatten()[i]), float(w.flatten()[i])
        n_bad = int((~ok).sum())
        at = f" at flat index {i}" if w.numel() > 1 else ""
        raise AssertionError(f"{where}: {n_bad} of {w.numel()} value(s) differ from the reference{at}: "
                             f"{_numbers(gi, wi, got, want)} (rtol={rtol:g}, atol={atol:g}).{_ratio(g, w)}")


def _ratio(g: torch.Tensor, w: torch.Tensor) -> str:
    """' Every value is c x the reference's.' where one constant factor relates them (a scale mistake), else ''."""
    finite = torch.isfinite(g) & torch.isfinite(w) & (w.abs() > 1e-12)
    if int(finite.sum()) < 3 or not bool(finite.all()):  # one or two numbers always have "a constant ratio"
        return ""
    r = g[finite] / w[finite]
    c = float(r.mean())
    if c == 0 or abs(c - 1) < 1e-9 or float((r - c).abs().max()) > 1e-6 * abs(c):
        return ""
    known = {2: "2", 0.5: "1/2", -1: "-1", math.log(2): "ln 2", 1 / math.log(2): "1/ln 2"}
    name = next((v for k, v in known.items() if abs(c - k) < 1e-9 * max(1, abs(k))), None)
    if name is None and abs(1 / c - round(1 / c)) < 1e-6 * abs(1 / c) and abs(1 / c) >= 2:
        name = f"1/{round(1 / c)}"
    return f" Every value is {name or f'{c:.6g}'} x the reference's: a scale or sign mistake, not noise."


def _globals_of(obj: Any) -> dict | None:
    """The globals a function looks names up in, or those of a class's methods; None for anything else."""
    if hasattr(obj, "__globals__"):
        return obj.__globals__
    for member in vars(obj).values() if isinstance(obj, type) else ():
        member = getattr(member, "__func__", member)
        if hasattr(member, "__globals__"):
            return member.__globals__
    return None


def _student_namespaces(fn: Any) -> list[dict]:
    """Where the student's code looks names up: fn's globals, and those of what a check wrapper closes over
    (lab06's conv_outputs(MaskedConv2d) holds the student's class). The library's own modules are never touched."""
    found: list[dict] = []
    for obj in [fn, *(c.cell_contents for c in getattr(fn, "__closure__", None) or () if _filled(c))]:
        ns = _globals_of(obj)
        if ns is not None and not str(ns.get("__name__", "")).startswith("course_lib") and all(ns is not f for f in found):
            found.append(ns)
    return found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty closure cell
        return False
    return True


@contextlib.contextmanager
def _earlier_answers_replaced(exercise_id: str, fn: Any):
    """While an exercise is checked, each name it builds on is the reference of the exercise that name answers."""
    from . import harness

    earlier = harness.builds_on(exercise_id)
    saved: list[tuple[dict, str, Any]] = []
    for ns in _student_namespaces(fn) if earlier else ():
        for name, _, reference in earlier:
            if name in ns:
                saved.append((ns, name, ns[name]))
                ns[name] = reference()
    try:
        yield
    finally:
        for ns, name, value in saved:
            ns[name] = value


def no_reference(*args) -> None:
    """A judged exercise's reference (build-and-train): its compare judges what the kernel returned; there is no one
    right output to compare with."""
    return None


def returned_samples(got: Any, keys: Sequence[str], where: str, wrapper: str, n: int, fix: str) -> None:
    """What a build-and-train check's kernel wrapper returned, checked before it is judged: a dict holding a tensor
    at each of `keys`, and n finite images (n, 1, 28, 28) at "before" and "after". `wrapper` names the harness
    function the check cell imports ("lab03:train_and_sample"); `fix` is what to look at when the images are wrong."""
    module, name = wrapper.split(":")
    if not (isinstance(got, dict) and all(isinstance(got.get(k), torch.Tensor) for k in keys)):
        raise AssertionError(f"{where}: expected what {name} returns ({sorted(keys)}); keep the check cell as given "
                             f"(it imports {name} from course_lib.harness.{module}).")
    for k in ("before", "after"):
        x = got[k]
        if tuple(x.shape) != (n, 1, 28, 28) or not bool(torch.isfinite(x).all()):
            raise AssertionError(f"{where}: the samples {k} training must be {n} finite images (n, 1, 28, 28); got "
                                 f"shape {tuple(x.shape)}. {fix}")


def draw_cases(ex: Exercise) -> list[tuple]:
    """The exercise's cases as plain data (tensors, numbers, strings, containers), what the grader hands a kernel."""
    with _GLOBAL_RNG:
        cases = [tuple(case) for case in ex.cases()]
    for k, case in enumerate(cases):
        odd = odd_type(case)
        if odd:
            raise TypeError(f"{ex.id}, case {k + 1}: a case must be plain data for the grader to hand it to a kernel, "
                            f"found a {odd}; build it in course_lib.harness.prepare instead.")
    return cases


PLAIN = (torch.Tensor, float, int, bool, str, type(None))  # what crosses between grader and kernel, with containers


def odd_type(value: Any) -> str | None:
    """The type name of the first value that is not a plain tensor, number, string or container (exact types: a
    Tensor subclass or a float with its own __float__ counts as odd); None if all are plain."""
    if type(value) in (list, tuple):
        return next((t for t in map(odd_type, value) if t), None)
    if type(value) is dict:
        return next((t for t in map(odd_type, value.values()) if t), None)
    return None if type(value) in PLAIN else type(value).__name__


# PyTorch's words for the errors students meet in these exercises -> the course's (added as a note to the error)
TORCH_ERRORS: tuple[tuple[str, str], ...] = (
    (r"appears to not have been used in the graph",
     "torch.autograd.grad was asked for the gradient with respect to a tensor the output does not depend on: make "
     "the input require grad *before* you compute the output from it, and do not detach it on the way."),
    (r"does not require grad and does not have a grad_fn",
     "the value you differentiate is not connected to the graph: a .detach(), .item(), torch.no_grad() or a trip "
     "through NumPy cut it; keep the computation in torch."),
    (r"Trying to backward through the graph a second time",
     "an earlier backward or autograd.grad freed the graph: pass retain_graph=True to the earlier call, or "
     "create_graph=True where its result must itself be differentiated (a gradient penalty)."),
    (r"a leaf Variable that requires grad is being used in an in-place operation",
     "an in-place operation (x += ..., x.mul_(...)) on a tensor that requires grad: write x = x + ... instead."),
    (r"mat1 and mat2 shapes cannot be multiplied|size mismatch",
     "a layer or matrix product got an input of the wrong width: print the shapes as they go through your code "
     "and compare them with the contract's."),
    (r"The size of tensor a \(\d+\) must match the size of tensor b|shape .* doesn't match the broadcast shape",
     "two tensors do not broadcast: a (B,) tensor against (B, C, H, W) needs .reshape(-1, 1, 1, 1) (or [:, None, "
     "None, None]) first; the batch axis is the first one."),
    (r"expected scalar type \w+ but found \w+|expected m1 and m2 to have the same dtype|must have the same dtype",
     "tensors of two dtypes meet (float32 and float64): make new tensors with dtype=x.dtype, or .to(x.dtype)."),
    (r"Expected all tensors to be on the same device",
     "tensors on two devices meet: create new tensors with device=x.device."),
)


def explain_torch_error(e: BaseException) -> str:
    """The course's explanation of a PyTorch error message, or ''."""
    import re

    text = str(e)
    return next((why for pattern, why in TORCH_ERRORS if re.search(pattern, text)), "")


def _run(exercise_id: str, fn: Callable[..., Any], cases: Sequence[tuple]) -> list[Any]:
    from . import harness

    if not callable(fn):
        raise TypeError(f"{exercise_id}: check() needs the function you wrote, got {type(fn).__name__}.")
    outputs = []
    for k, case in enumerate(cases):
        args = harness.prepare(exercise_id, case)
        try:
            outputs.append(to_plain(fn(*args)))
        except Exception as e:
            why = explain_torch_error(e)
            if why and hasattr(e, "add_note"):
                e.add_note(f"{exercise_id}, case {k + 1} of {len(cases)} (inputs: {describe_inputs(case)}): {why}")
            raise
    return outputs


def describe_inputs(args: Sequence[Any], limit: int = 160) -> str:
    """A case's inputs in a few words: shapes and dtypes of tensors (and their range), numbers and strings as they are."""
    def one(x: Any) -> str:
        if isinstance(x, torch.Tensor):
            if x.numel() == 0:
                return f"empty {tuple(x.shape)} {_dtype(x)}"
            if x.numel() == 1:
                return f"{x.item():.4g} ({_dtype(x)})"
            if x.dtype.is_floating_point:
                return f"{tuple(x.shape)} {_dtype(x)} in [{float(x.min()):.3g}, {float(x.max()):.3g}]"
            return f"{tuple(x.shape)} {_dtype(x)}"
        if isinstance(x, dict):
            return "{" + ", ".join(f"{k}: {one(v)}" for k, v in list(x.items())[:4]) + (", ..." if len(x) > 4 else "") + "}"
        if isinstance(x, (list, tuple)):
            inner = ", ".join(one(v) for v in list(x)[:4])
            return f"[{inner}{', ...' if len(x) > 4 else ''}]" if isinstance(x, list) else f"({inner})"
        if isinstance(x, float):
            return f"{x:.4g}"
        if callable(x):
            return getattr(x, "__name__", type(x).__name__)
        return repr(x)
    text = ", ".join(one(a) for a in args)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def collect(ex: Exercise, fn: Callable[..., Any]) -> list[Any]:
    """Run the student's function on every case; return the outputs as plain data."""
    return _run(ex.id, fn, ex.cases())


def verify(ex: Exercise, outputs: Sequence[Any]) -> int:
    """Compare outputs with the reference on fresh cases (the grader's salted ones while `salted`); return how many."""
    with _GLOBAL_RNG:
        return _verify(ex, outputs)


def _verify(ex: Exercise, outputs: Sequence[Any]) -> int:
    from . import harness

    cases = list(ex.cases())
    if len(outputs) != len(cases):
        raise AssertionError(f"{ex.id}: expected {len(cases)} outputs, got {len(outputs)}.")
    for k, (args, got) in enumerate(zip(cases, outputs)):
        want = to_plain(ex.reference(*harness.prepare(ex.id, args)))
        name = f"{ex.names[k]}; " if len(ex.names) == len(cases) else ""
        where = f"{ex.id}, case {k + 1} of {len(cases)} ({name}inputs: {describe_inputs(args)})"
        try:
            _compare(ex, got, want, args, where)
        except AssertionError as e:
            looks_like = _mistake_matched(ex, outputs, cases)
            if looks_like:
                raise AssertionError(f"{e} It looks like {looks_like}.") from None
            raise
    return len(cases)


def _compare(ex: Exercise, got: Any, want: Any, args: tuple, where: str) -> None:
    if ex.compare is not None:
        ex.compare(got, want, args)
    else:
        compare_close(got, want, ex.rtol, ex.atol, where, ex.outputs)


def _mistake_matched(ex: Exercise, outputs: Sequence[Any], cases: Sequence[tuple]) -> str:
    """The first known mistake of the exercise whose outputs the answer matches on every case, or ''."""
    from . import harness

    for what, variant in ex.mistakes:
        try:
            for args, got in zip(cases, outputs):
                _compare(ex, got, to_plain(variant(*harness.prepare(ex.id, args))), args, "")
        except Exception:  # AssertionError: not this mistake; anything else: the variant does not apply here
            continue
        return what
    return ""


def _record(exercise_id: str, outputs: list[Any]) -> None:
    folder = os.environ.get(GRADE_DIR_VAR)
    if not folder:
        return
    from .checkpoint import atomic_save

    atomic_save({"exercise": exercise_id, "outputs": outputs}, Path(folder) / f"{exercise_id}.pt")


def _graded_cases(exercise_id: str) -> list[tuple] | None:
    """In grading mode, the inputs the grader drew for this run; None in a student's own notebook."""
    folder = os.environ.get(GRADE_CASES_VAR)
    if not folder:
        return None
    path = Path(folder) / f"{exercise_id}.pt"
    if not path.is_file():
        raise AssertionError(f"{exercise_id}: the grader left no cases for this exercise ({path}).")
    cases = torch.load(path, map_location="cpu", weights_only=True)
    return [tuple(case) for case in cases]


def check(exercise_id: str, fn: Callable[..., Any]) -> None:
    """Check the student's `fn` for an exercise; print a line on success, raise AssertionError if not.

    In grading mode ($COURSE_GRADE_CASES set) it runs `fn` on the grader's secret cases and records the outputs;
    the comparison happens in the grader, so nothing is printed about right or wrong here.
    """
    cases = _graded_cases(exercise_id)
    if cases is not None:
        with _earlier_answers_replaced(exercise_id, fn):
            outputs = _run(exercise_id, fn, cases)
        _record(exercise_id, outputs)
        print(f"{exercise_id}: {len(outputs)} outputs recorded for the grader")
        return
    ex = get_exercise(exercise_id)
    with _earlier_answers_replaced(ex.id, fn):
        outputs = collect(ex, fn)
    _record(ex.id, outputs)
    n = verify(ex, outputs)
    if ex.judged:  # no reference output: the check judged what the output shows
        print(f"✓ {ex.id}: passes" + (f" ({ex.describe})" if ex.describe else ""))
        return
    print(f"✓ {ex.id}: matches the reference on {n} case{'s' * (n != 1)}" + (f" ({ex.describe})" if ex.describe else ""))
