"""Judging: each exercise's outcome from one run, and a whole submission with its re-runs."""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ..exercises import get_exercise, verify
from .plugin import short
from .reference import Cell, RefExercise, Reference, SubmissionError, build_cells, read_submission
from .run import _LIVE, _LIVE_LOCK, GradeOptions, Run, run_cells


@dataclass
class Outcome:
    points: float
    max_points: float
    reason: str = ""  # empty when the exercise earned its points


def verify_recorded(ex_id: str, records: Path) -> str:
    """Compare what check() recorded with the reference, here; return a reason, or "" if it matches."""
    path = records / f"{ex_id}.pt"
    if not path.is_file():
        return "check passed in the kernel but recorded no outputs (was check() replaced?)"
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        return short(f"recorded outputs unreadable: {type(e).__name__}: {e}")
    if not isinstance(data, dict) or data.get("exercise") != ex_id or not isinstance(data.get("outputs"), (list, tuple)):
        return "recorded outputs are not the ones check() writes"
    try:
        verify(get_exercise(ex_id), list(data["outputs"]))
    except AssertionError as e:
        return short(f"differs from the reference (compared by the grader): {e}")
    except Exception as e:
        return short(f"outputs could not be compared with the reference: {type(e).__name__}: {e}")
    return ""


def judge(ex: RefExercise, cells: list[Cell], run: Run) -> Outcome:
    """The outcome of one exercise whose check cell ran in `run`."""
    check = next(i for i, c in enumerate(cells) if c.role == "check" and c.exercise == ex.id)
    result = run.results[check] or {"status": "lost", "reason": "check cell did not run"}
    if result["status"] == "passed":
        reason = verify_recorded(ex.id, run.records)
        return Outcome(0.0 if reason else ex.points, ex.points, reason)
    own = [run.results[i] for i, c in enumerate(cells) if c.role == "exercise" and c.exercise == ex.id]
    broken = [r for r in own if r is not None and r["status"] != "passed"]
    if result["status"] == "error" and broken:  # e.g. a SyntaxError, then NameError in the check
        return Outcome(0.0, ex.points, short(f"exercise cell: {broken[-1]['reason']}"))
    return Outcome(0.0, ex.points, short(result.get("reason") or result["status"]))


@dataclass
class Grade:
    student: str
    file: str
    outcomes: dict[str, Outcome]
    seconds: float
    note: str = ""  # about the whole submission (invalid file, wrong lab, time out, re-runs)
    runs: int = 0  # kernels started

    @property
    def total(self) -> float:
        return sum(o.points for o in self.outcomes.values())


def grade_submission(path: Path, ref: Reference, opts: GradeOptions, student: str | None = None) -> Grade:
    """Grade one submission; never raises for anything in the file, never writes it."""
    start = time.monotonic()
    student = student or path.stem
    outcomes: dict[str, Outcome] = {}
    notes: list[str] = []
    try:
        nb = read_submission(path)
    except SubmissionError as e:
        zero = {ex.id: Outcome(0.0, ex.points, str(e)) for ex in ref.exercises}
        return Grade(student, str(path), zero, time.monotonic() - start, note=str(e))
    cells, missing = build_cells(ref, nb)
    for ex_id in missing:
        outcomes[ex_id] = Outcome(0.0, next(e.points for e in ref.exercises if e.id == ex_id),
                                  "missing exercise: no cell has this exercise id in its metadata")
    if len(missing) == len(ref.exercises):
        notes.append(f"no exercise of {ref.name} found: is this the right lab?")
    deadline, runs = start + opts.submission_timeout, 0
    while any(c.role == "check" and c.exercise not in outcomes for c in cells):
        run, tmp = run_cells(cells, opts, deadline)
        runs += 1
        try:
            fatal = next((i for i, r in enumerate(run.results) if r is None or r["fatal"]), len(cells))
            for ex in ref.exercises:
                pos = next((i for i, c in enumerate(cells) if c.role == "check" and c.exercise == ex.id), None)
                if ex.id not in outcomes and pos is not None and pos < fatal:
                    outcomes[ex.id] = judge(ex, cells, run)
        finally:
            if opts.keep_temp:
                notes.append(f"run {runs} kept in {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        if fatal == len(cells):
            break
        culprit, result = cells[fatal], run.results[fatal]
        if run.timed_out or result is None or result["status"] == "lost":
            why = (f"submission timeout: grading took over {opts.submission_timeout:g} s" if run.timed_out
                   else short(f"not graded: {result['reason']}" if result else "not graded: the run stopped early"))
            notes.append(why)
            for ex in ref.exercises:
                outcomes.setdefault(ex.id, Outcome(0.0, ex.points, why))
            break
        if culprit.exercise and culprit.exercise not in outcomes:
            ex = next(e for e in ref.exercises if e.id == culprit.exercise)
            where = "exercise cell" if culprit.role == "exercise" else "check"
            outcomes[ex.id] = Outcome(0.0, ex.points, short(f"{where}: {result['reason']}"))
        notes.append(f"re-run without {culprit.role} cell {fatal} ({result['status']})")
        cells = [c for c in cells if c is not culprit
                 and not (c.role == "check" and c.exercise in outcomes)
                 and not (culprit.role == "exercise" and c.exercise == culprit.exercise)]
    ordered = {ex.id: outcomes.get(ex.id) or Outcome(0.0, ex.points, "not graded") for ex in ref.exercises}
    return Grade(student, str(path), ordered, time.monotonic() - start, "; ".join(notes), runs)


def student_names(paths: list[Path]) -> list[str]:
    """File stems, or the paths where two stems clash."""
    stems = [p.stem for p in paths]
    return [s if stems.count(s) == 1 else str(p) for s, p in zip(stems, paths)]


def grade_safely(path: Path, ref: Reference, opts: GradeOptions, student: str) -> Grade:
    """grade_submission, but a bug of the grader's costs this submission only, never the batch."""
    try:
        return grade_submission(path, ref, opts, student)
    except Exception as e:
        why = short(f"grader error ({type(e).__name__}: {e}); grade this one by hand and report the bug")
        return Grade(student, str(path), {ex.id: Outcome(0.0, ex.points, why) for ex in ref.exercises}, 0.0, why)


def grade_batch(ref: Reference, paths: list[Path], opts: GradeOptions) -> list[Grade]:
    """Grade every submission (opts.jobs at a time); Ctrl-C ends every run still going."""
    names = student_names(paths)
    try:
        if opts.jobs <= 1:
            return [grade_safely(p, ref, opts, n) for p, n in zip(paths, names)]
        with ThreadPoolExecutor(opts.jobs) as pool:
            return list(pool.map(lambda pn: grade_safely(pn[0], ref, opts, pn[1]), zip(paths, names)))
    except KeyboardInterrupt:
        with _LIVE_LOCK:
            for proc in list(_LIVE):
                proc.kill()
        raise
