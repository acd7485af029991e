"""Judging: each exercise's outcome from one run, and a whole submission with its re-runs."""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .text import short
from .records import verify_recorded
from .review import reference_paths, review
from .reference import Cell, RefExercise, Reference, SubmissionError, build_cells, read_submission
from .run import _LIVE, _LIVE_LOCK, GradeOptions, Run, run_cells


class GraderFault(RuntimeError):
    """No kernel could start: the grader's environment is at fault, not the student; the batch stops."""


@dataclass
class Outcome:
    points: float
    max_points: float
    reason: str = ""  # why points were lost; for full points, only something worth knowing (a timeout)


def judge(ex: RefExercise, cells: list[Cell], run: Run) -> Outcome:
    """The outcome of one exercise whose check cell ran in `run`."""
    check = next(i for i, c in enumerate(cells) if c.role == "check" and c.exercise == ex.id)
    result = run.results[check] or {"status": "lost", "reason": "check cell did not run"}
    own = [run.results[i] for i, c in enumerate(cells) if c.role == "exercise" and c.exercise == ex.id]
    if result["status"] == "passed":
        reason = verify_recorded(ex.id, run.records.get(ex.id), run.salt)
        slow = [r for r in own if r is not None and r["status"] == "timeout"]
        if slow and not reason:  # e.g. a demo loop after the def, interrupted; the function itself is right
            return Outcome(ex.points, ex.points, f"full points, but its exercise cell {slow[-1]['reason']} (interrupted)")
        return Outcome(0.0 if reason else ex.points, ex.points, reason)
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
    review: str = ""  # why a person should look at the code (see review.py); never changes the points
    hints: str = ""  # the hints the saved notebook shows were asked for, e.g. "lab03.slerp 3/3"; never changes the points
    answers: dict[str, str] = field(default_factory=dict)  # written question id -> the student's answer ("": none)

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
    flags = review(cells, reference_paths(ex.id for ex in ref.exercises))
    seen = hints_seen(nb, [ex.id for ex in ref.exercises])
    answers = written_answers(nb, ref.questions)
    for ex_id in missing:
        outcomes[ex_id] = Outcome(0.0, next(e.points for e in ref.exercises if e.id == ex_id),
                                  "missing exercise: no cell has this exercise id in its metadata")
    if len(missing) == len(ref.exercises):
        notes.append(f"no exercise of {ref.name} found: is this the right lab?")
    deadline, runs, failed_starts = start + opts.submission_timeout, 0, 0
    while any(c.role == "check" and c.exercise not in outcomes for c in cells):
        run, tmp = run_cells(cells, opts, deadline)
        runs += 1
        first = run.results[0] if run.results else None
        if first is not None and first["status"] == "lost" and first["reason"].startswith("kernel did not start"):
            if not opts.keep_temp:
                shutil.rmtree(tmp, ignore_errors=True)
            failed_starts += 1  # nothing of the student's has run yet: the kernel's start is the grader's business
            if failed_starts == 2 or time.monotonic() > deadline:
                raise GraderFault(f"{first['reason']} (twice, before any cell of the submission ran)")
            continue
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
    return Grade(student, str(path), ordered, time.monotonic() - start, "; ".join(notes), runs, flags, seen, answers)


def written_answers(nb, questions: tuple[str, ...]) -> dict[str, str]:
    """What the student wrote in each written question's answer cell (found by its id); "" if unanswered."""
    from ..notebooks import ANSWER_PLACEHOLDER

    found: dict[str, str] = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("course", {}) if isinstance(cell, dict) else {}
        qid = meta.get("answer") if isinstance(meta, dict) else None
        if qid in questions:
            text = "".join(cell.get("source", "")) if isinstance(cell.get("source"), list) else str(cell.get("source", ""))
            found[qid] = "" if text.strip() in ("", ANSWER_PLACEHOLDER) else text.strip()
    return {q: found.get(q, "") for q in questions}


def hints_seen(nb, exercise_ids: list[str]) -> str:
    """The deepest hint level of each exercise in the notebook's saved outputs ("" if none): what the student
    asked for at home, as far as the file shows (outputs can be cleared: it is for the instructor, not the score)."""
    from ..hints import asked_in

    text = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if isinstance(cell, dict) else []:
            if isinstance(out, dict):
                value = out.get("text", "")
                text.append("".join(value) if isinstance(value, list) else str(value))
    seen = asked_in("\n".join(text))
    return "; ".join(f"{i} {seen[i][0]}/{seen[i][1]}" for i in exercise_ids if i in seen)


def student_names(paths: list[Path]) -> list[str]:
    """File stems, or the paths where two stems clash."""
    stems = [p.stem for p in paths]
    return [s if stems.count(s) == 1 else str(p) for s, p in zip(stems, paths)]


def grade_safely(path: Path, ref: Reference, opts: GradeOptions, student: str) -> Grade:
    """grade_submission, but a bug of the grader's costs this submission only, never the batch."""
    try:
        return grade_submission(path, ref, opts, student)
    except GraderFault:
        raise
    except Exception as e:
        why = short(f"grader error ({type(e).__name__}: {e}); grade this one by hand and report the bug")
        return Grade(student, str(path), {ex.id: Outcome(0.0, ex.points, why) for ex in ref.exercises}, 0.0, why)


def grade_batch(ref: Reference, paths: list[Path], opts: GradeOptions,
                done: Callable[[int, Grade], None] | None = None) -> list[Grade]:
    """Grade every submission (opts.jobs at a time), calling done(index, grade) as each one finishes.

    Ctrl-C ends every run still going. GraderFault (no kernel starts) stops the batch: nobody gets zeros for it.
    """
    names = student_names(paths)

    def one(k: int) -> Grade:
        grade = grade_safely(paths[k], ref, opts, names[k])
        if done is not None:
            done(k, grade)
        return grade

    try:
        if opts.jobs <= 1:
            return [one(k) for k in range(len(paths))]
        pool = ThreadPoolExecutor(opts.jobs)
        try:
            return list(pool.map(one, range(len(paths))))
        finally:  # a GraderFault: the submissions not started yet are not started at all
            pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        with _LIVE_LOCK:
            for proc in list(_LIVE):
                proc.kill()
        raise
