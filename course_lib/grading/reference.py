"""The reference (solutions/<name>.ipynb) and the graded notebook built from a submission."""
from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..exercises import get_exercise
from ..notebooks import REPO_ROOT, checks_of, course_meta, exercises_of
from .text import short


@dataclass(frozen=True)
class RefExercise:
    id: str
    points: float
    check_source: str  # the reference check cell, run instead of whatever the student has
    names: tuple[str, ...] = ()  # what the solution's exercise cell defines (functions, classes)


# CPython 3.11 keeps ast.parse's recursion count in state shared between threads, so two grading threads parsing
# at once can fail with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905, fixed in
# later releases): a submission graded that way got "grader error". Every parse in the grader takes this lock.
AST_LOCK = threading.Lock()


def parse(source: str) -> ast.Module:
    """ast.parse, one thread at a time (see AST_LOCK)."""
    with AST_LOCK:
        return ast.parse(source)


def defined_names(source: str) -> tuple[str, ...]:
    """The functions and classes a cell defines at its top level; () if it does not parse."""
    try:
        tree = parse(source)
    except (SyntaxError, ValueError):
        return ()
    return tuple(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


@dataclass(frozen=True)
class Reference:
    name: str  # e.g. "01_divergences_and_gan_theory"
    path: Path
    exercises: tuple[RefExercise, ...]
    questions: tuple[str, ...] = ()  # ids of the written questions (answer cells), in order: collected, not scored

    @property
    def max_points(self) -> float:
        return sum(ex.points for ex in self.exercises)


def find_reference(lab: str, root: Path = REPO_ROOT) -> Path:
    """solutions/<name>.ipynb for a lab path, a solution path, a lab id ("lab01") or a name."""
    solutions = root / "solutions"
    stem = Path(lab).name.removesuffix(".ipynb")
    number = stem.removeprefix("lab") if stem.startswith("lab") and stem[3:].isdigit() else None
    candidates = [solutions / f"{stem}.ipynb"] if number is None else sorted(solutions.glob(f"{number}_*.ipynb"))
    found = [c for c in candidates if c.is_file()]
    if len(found) != 1:
        known = ", ".join(p.stem for p in sorted(solutions.glob("*.ipynb"))) or "none"
        raise SystemExit(f"No single reference solution for {lab!r} in {solutions} (solutions: {known}). "
                         f"Give a lab path such as labs/00_getting_started.ipynb or a lab id such as lab00.")
    return found[0]


def load_reference(path: Path) -> Reference:
    """The exercises, points and check cells of a solution notebook; imports their checks now.

    Importing every check before any student code runs means that a submission which rewrites
    files of course_lib on disk cannot change the references the grader compares with.
    """
    nb = nbformat.read(path, as_version=4)
    checks = checks_of(nb)
    exercises = []
    for ex in exercises_of(nb):
        if ex.id not in checks:
            raise SystemExit(f"{path}: exercise {ex.id!r} has no check cell; fix the solution notebook first.")
        get_exercise(ex.id)
        exercises.append(RefExercise(ex.id, ex.points, nb.cells[checks[ex.id]].source,
                                     defined_names(nb.cells[ex.index].source)))
    if not exercises:
        raise SystemExit(f"{path} has no exercise cells (metadata course.exercise); nothing to grade.")
    questions = tuple(course_meta(c)["answer"] for c in nb.cells if "answer" in course_meta(c))
    return Reference(path.stem, path, tuple(exercises), questions)


# ---------------------------------------------------------------------------- the graded notebook

class SubmissionError(Exception):
    """The submission cannot be run at all (empty, not JSON, not a notebook)."""


@dataclass(frozen=True)
class Cell:
    source: str
    role: str  # "context" (any cell of the student's), "exercise" or "check"
    exercise: str | None = None


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Parse a submission (read-only); raise SubmissionError with a short reason."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SubmissionError(f"unreadable file: {e.strerror or e}") from e
    if not data.strip():
        raise SubmissionError("empty file")
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as e:  # nbformat raises many kinds (JSON, validation, version) for broken files
        raise SubmissionError(f"invalid notebook: {short(f'{type(e).__name__}: {e}', 160)}") from e
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError("invalid notebook: no list of cells")
    return nb


def build_cells(ref: Reference, nb: nbformat.NotebookNode) -> tuple[list[Cell], list[str]]:
    """The code cells to run and the reference exercises the submission has no cell for.

    Student check cells are not run: the reference check of each exercise takes the place of the
    student's own check cell for that id (found by its `check` metadata) if that comes after the
    exercise cell, as when the answer is written in a new cell below the stub; otherwise it goes
    right after the last cell with that exercise id. Cells with unknown or no ids are context
    cells, except that an exercise no cell is tagged with (its cell deleted, the answer moved to a new
    cell) is found by what it defines: the last untagged cell defining the solution's function or
    class is its exercise cell. Cells after the last check are left out: they cannot change a grade
    and may train for minutes.
    """
    ids = {ex.id for ex in ref.exercises}
    cells: list[Cell] = []
    for cell in nb.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("course") if isinstance(cell.get("metadata"), dict) else None
        meta = meta if isinstance(meta, dict) else {}
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        ex_id = meta.get("check", meta.get("exercise"))
        known = isinstance(ex_id, str) and ex_id in ids
        if "check" in meta:
            cells += [Cell("", "slot", ex_id)] if known else []  # where the student checks it; never run
        else:
            cells.append(Cell(source, "exercise", ex_id) if known else Cell(source, "context"))
    missing, anchor = [], {}  # anchor: index in cells after which each reference check goes
    for ex in ref.exercises:
        where = [i for i, c in enumerate(cells) if c.role == "exercise" and c.exercise == ex.id]
        untagged = [i for i, c in enumerate(cells)
                    if c.role == "context" and set(defined_names(c.source)) & set(ex.names)]
        if not where and untagged:  # the answer in a cell without the exercise's metadata: grade it all the same
            cells[untagged[-1]] = Cell(cells[untagged[-1]].source, "exercise", ex.id)
            where = untagged[-1:]
        if not where:
            missing.append(ex.id)
            continue
        slots = [i for i, c in enumerate(cells) if c.role == "slot" and c.exercise == ex.id and i > where[-1]]
        anchor.setdefault(slots[0] if slots else where[-1], []).append(Cell(ex.check_source, "check", ex.id))
    out: list[Cell] = []
    for i, c in enumerate(cells):
        out += ([] if c.role == "slot" else [c]) + anchor.get(i, [])
    last_check = max((i for i, c in enumerate(out) if c.role == "check"), default=-1)
    return out[: last_check + 1], missing  # later cells cannot change a grade: not run


def write_notebook(cells: list[Cell], path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.source, metadata={"course": {"role": c.role, "exercise": c.exercise}})
                for c in cells]
    nbformat.write(nb, path)
