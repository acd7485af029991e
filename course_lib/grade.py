"""Grade a folder of student submissions of one lab: points per exercise, on pytest and nbval.

    python -m course_lib.grade labs/01_divergences_and_gan_theory.ipynb subs/*.ipynb --out grades
    make grade LAB=lab01 SUBMISSIONS='subs/*.ipynb' OUT=grades      # the same

LAB is a lab, its solution, a lab id (lab01) or a name (01_divergences_and_gan_theory); the
reference is always solutions/<name>.ipynb. It writes grades.csv and grades.json and prints the
table and, per exercise, the mean score and the failure rate.

For each submission (the file is only ever read):
1. An empty or invalid file scores 0 on every exercise, with the reason.
2. A graded notebook is built in a temp folder: the student's code cells, without any check cell
   of theirs, and after the student's cell of each exercise (found by the id in its metadata,
   never by position) the check cell of the reference. No such cell: "missing exercise".
3. pytest --nbval-lax runs it in a fresh kernel, with a per-cell and a per-submission timeout; the
   kernel sees a scratch HOME and working folder and a minimal environment. `grade_plugin`
   notes what happened to each cell and ends a dead or stuck kernel at once.
4. If the kernel died or had to be killed, the cell that did it is dropped and the rest re-run in
   a fresh kernel, so a crash or an endless loop costs only the exercise it is in.
5. An exercise earns its points only if its check cell passed AND the outputs that check()
   recorded match the reference here, in the grader's own process: nothing the student's kernel
   patches (torch.allclose, numpy.testing, course_lib itself) can change that comparison.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import psutil
import torch

from .exercises import GRADE_DIR_VAR, get_exercise, verify
from .grade_plugin import short
from .notebooks import REPO_ROOT, checks_of, exercises_of

__all__ = ["GradeOptions", "Reference", "Grade", "Outcome", "load_reference", "grade_submission",
           "grade_batch", "summarise", "write_reports", "main"]

RUN_MARKER_VAR = "COURSE_GRADE_RUN"  # set in every process of a run, so the grader can find and end them all
PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "COURSE_DATA", "COURSE_SYSTEM_DATA")


# ---------------------------------------------------------------------------- the reference

@dataclass(frozen=True)
class RefExercise:
    id: str
    points: float
    check_source: str  # the reference check cell, run instead of whatever the student has


@dataclass(frozen=True)
class Reference:
    name: str  # e.g. "01_divergences_and_gan_theory"
    path: Path
    exercises: tuple[RefExercise, ...]

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
        exercises.append(RefExercise(ex.id, ex.points, nb.cells[checks[ex.id]].source))
    if not exercises:
        raise SystemExit(f"{path} has no exercise cells (metadata course.exercise); nothing to grade.")
    return Reference(path.stem, path, tuple(exercises))


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

    Student check cells are dropped; the reference check of each exercise goes after the last
    student cell with that exercise id. Cells with unknown or no ids are context cells. Cells
    after the last check are left out: they cannot change a grade and may train for minutes.
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
        if "check" in meta:
            continue
        ex_id = meta.get("exercise")
        cells.append(Cell(source, "exercise", ex_id) if isinstance(ex_id, str) and ex_id in ids else Cell(source, "context"))
    missing = []
    for ex in ref.exercises:
        where = [i for i, c in enumerate(cells) if c.exercise == ex.id]
        if not where:
            missing.append(ex.id)
            continue
        cells.insert(where[-1] + 1, Cell(ex.check_source, "check", ex.id))
    last_check = max((i for i, c in enumerate(cells) if c.role == "check"), default=-1)
    return cells[: last_check + 1], missing  # later cells cannot change a grade: not run


def write_notebook(cells: list[Cell], path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.source, metadata={"course": {"role": c.role, "exercise": c.exercise}})
                for c in cells]
    nbformat.write(nb, path)


# ---------------------------------------------------------------------------- running one notebook

@dataclass(frozen=True)
class GradeOptions:
    cell_timeout: float = 120.0  # seconds per cell (nbval interrupts, then the plugin kills)
    submission_timeout: float = 1200.0  # seconds for a whole submission, re-runs included
    profile: str = "smoke"  # COURSE_PROFILE in the kernel; checks do not depend on it, context cells do
    jobs: int = 1  # submissions graded at once
    keep_temp: bool = False  # keep each run's folder (graded notebook, pytest log) for debugging


@dataclass
class Run:
    results: list[dict | None]  # one per cell: the plugin's record, None if the cell never ran
    records: Path  # what each check() recorded, copied out right after its check cell
    timed_out: bool  # the submission's time ran out and the run was killed


# pytest with grade_plugin loaded from its file: `-p course_lib.grade_plugin` would import the whole
# course_lib package (and torch) into pytest, which costs seconds per run and is not needed there.
PYTEST_WITH_PLUGIN = """\
import importlib.util, sys
import pytest
spec = importlib.util.spec_from_file_location("course_grade_plugin", sys.argv[1])
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
sys.exit(pytest.main(sys.argv[2:], plugins=[plugin]))
"""

_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def end_run(proc: subprocess.Popen, marker: str) -> None:
    """Kill pytest, the kernel and anything they started (found by parentage and by the run marker)."""
    victims = []
    try:
        victims += psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(RUN_MARKER_VAR) == marker:
                victims.append(p)
        except (psutil.Error, OSError):
            continue
    for p in victims:
        try:
            p.kill()
        except psutil.Error:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    psutil.wait_procs(victims, timeout=5)


def run_env(root: Path, records: Path, marker: str, profile: str) -> dict[str, str]:
    """A small environment: scratch HOME and Jupyter folders, nothing else of the grader's."""
    home = root / "home"
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env.update({
        "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"), "MPLCONFIGDIR": str(home / ".mpl"),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_DATA_DIR": str(home / ".jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime"), "JUPYTER_PLATFORM_DIRS": "1",
        "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
        "TMPDIR": str(root / "tmp"), "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", "COURSE_PROFILE": profile,
        GRADE_DIR_VAR: str(records), RUN_MARKER_VAR: marker,
    })
    for d in (home, root / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    return env


def run_cells(cells: list[Cell], opts: GradeOptions, deadline: float) -> tuple[Run, Path]:
    """Run the cells under pytest --nbval-lax in a fresh kernel; the caller removes the returned folder."""
    root = Path(tempfile.mkdtemp(prefix="course-grade-"))
    work, grader = root / "work", root / "grader"  # the kernel's cwd; what only the grader reads
    records = root / f"records-{secrets.token_hex(8)}"  # the kernel writes here; the plugin copies to the vault
    vault = grader / "records"
    for d in (work, grader, records, vault):
        d.mkdir()
    notebook, log = work / "submission.ipynb", grader / "cells.jsonl"
    write_notebook(cells, notebook)
    (grader / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    marker = secrets.token_hex(16)
    cmd = [sys.executable, "-c", PYTEST_WITH_PLUGIN, str(Path(__file__).with_name("grade_plugin.py")),
           str(notebook), "-c", str(grader / "pytest.ini"), "--rootdir", str(work),
           "-p", "nbval.plugin", "-p", "no:cacheprovider", "-q",
           "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={opts.cell_timeout:g}",
           "--course-grade-log", str(log), f"--course-grade-hard-limit={opts.cell_timeout + 10:g}",
           "--course-grade-records", str(records), "--course-grade-vault", str(vault)]
    timed_out = False
    with open(grader / "pytest.log", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=run_env(root, records, marker, opts.profile), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            end_run(proc, marker)  # also ends anything the student left running
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    results: list[dict | None] = [None] * len(cells)
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []:
        try:
            rec = json.loads(line)
            k = rec["cell"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(k, int) and 0 <= k < len(cells) and results[k] is None:
            results[k] = rec
    return Run(results, vault, timed_out), root


# ---------------------------------------------------------------------------- judging

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


# ---------------------------------------------------------------------------- reports

def summarise(ref: Reference, grades: list[Grade]) -> dict[str, dict[str, float]]:
    """Per exercise: the mean points and the failure rate (share of submissions without full points)."""
    out = {}
    for ex in ref.exercises:
        pts = [g.outcomes[ex.id].points for g in grades]
        n = max(len(pts), 1)
        out[ex.id] = {"points": ex.points, "mean": sum(pts) / n,
                      "failure_rate": sum(p < ex.points for p in pts) / n}
    return out


def write_reports(ref: Reference, grades: list[Grade], out: Path, seconds: float) -> tuple[Path, Path]:
    """<out>.csv (one row per student) and <out>.json (everything, with the summary)."""
    out = out.with_suffix("") if out.suffix in (".csv", ".json") else out
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out.parent / f"{out.name}.csv", out.parent / f"{out.name}.json"
    ids = [ex.id for ex in ref.exercises]
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "file", *ids, "total", "max", *[f"why {i}" for i in ids], "note"])
        for g in grades:
            w.writerow([g.student, g.file, *[f"{g.outcomes[i].points:g}" for i in ids], f"{g.total:g}",
                        f"{ref.max_points:g}", *[g.outcomes[i].reason for i in ids], g.note])
    report = {"lab": ref.name, "reference": str(ref.path), "max_points": ref.max_points, "seconds": round(seconds, 1),
              "exercises": [{"id": ex.id, "points": ex.points} for ex in ref.exercises],
              "summary": summarise(ref, grades),
              "submissions": [{"student": g.student, "file": g.file, "total": g.total, "seconds": round(g.seconds, 1),
                               "runs": g.runs, "note": g.note,
                               "exercises": {i: asdict(o) for i, o in g.outcomes.items()}} for g in grades]}
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return csv_path, json_path


def format_table(ref: Reference, grades: list[Grade], seconds: float) -> str:
    """The score table, the lost exercises with reasons, and the per-exercise summary."""
    names = [ex.id.split(".", 1)[-1] for ex in ref.exercises]
    width = max([len(g.student) for g in grades] + [7])
    head = f"{'student':<{width}}  " + "  ".join(names) + "  total"
    lines = [head, "-" * len(head)]
    for g in grades:
        cells = [f"{g.outcomes[ex.id].points:g}/{ex.points:g}".rjust(len(n)) for ex, n in zip(ref.exercises, names)]
        lines.append(f"{g.student:<{width}}  " + "  ".join(cells) + f"  {g.total:g}/{ref.max_points:g}")
    lost = [f"  {g.student} · {i}: {o.reason}" for g in grades for i, o in g.outcomes.items() if o.reason]
    notes = [f"  {g.student}: {g.note}" for g in grades if g.note]
    lines += ["", "lost exercises:", *(lost or ["  none"])] + (["", "notes:", *notes] if notes else [])
    lines += ["", f"{'exercise':<28} {'mean':>6} {'of':>4} {'failed':>7}"]
    for ex_id, s in summarise(ref, grades).items():
        lines.append(f"{ex_id:<28} {s['mean']:6.2f} {s['points']:4g} {s['failure_rate']:7.0%}")
    lines.append(f"\n{len(grades)} submission(s) of {ref.name} graded in {seconds:.1f} s")
    return "\n".join(lines)


def expand(args: list[str]) -> list[Path]:
    """Paths as given; folders give their notebooks; unexpanded globs are expanded here."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out += sorted(p.glob("*.ipynb"))
        elif p.exists():
            out.append(p)
        elif any(ch in a for ch in "*?["):
            out += [Path(m) for m in sorted(glob.glob(a))]
        else:
            raise SystemExit(f"No submission at {a}: give notebook files or a folder of them.")
    if not out:
        raise SystemExit("No submissions found: give notebook files or a folder of them.")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.grade", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lab", help="labs/NN_name.ipynb, solutions/NN_name.ipynb, NN_name or labNN")
    p.add_argument("submissions", nargs="+", help="submitted notebooks, or folders of them")
    p.add_argument("--out", type=Path, default=Path("grades"), help="writes OUT.csv and OUT.json (default: grades)")
    d = GradeOptions()
    p.add_argument("--cell-timeout", type=float, default=d.cell_timeout, help="seconds per cell (default %(default)g)")
    p.add_argument("--submission-timeout", type=float, default=d.submission_timeout,
                   help="seconds per submission, re-runs included (default %(default)g)")
    p.add_argument("--profile", default=d.profile, help="COURSE_PROFILE for the notebooks (default %(default)s)")
    p.add_argument("--jobs", type=int, default=d.jobs, help="submissions graded at once (default %(default)d)")
    p.add_argument("--keep-temp", action="store_true", help="keep each run's folder and pytest log for debugging")
    a = p.parse_args(argv)
    ref = load_reference(find_reference(a.lab))
    paths = expand(a.submissions)
    opts = GradeOptions(a.cell_timeout, a.submission_timeout, a.profile, max(a.jobs, 1), a.keep_temp)
    start = time.monotonic()
    grades = grade_batch(ref, paths, opts)
    seconds = time.monotonic() - start
    csv_path, json_path = write_reports(ref, grades, a.out, seconds)
    print(format_table(ref, grades, seconds))
    print(f"wrote {csv_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
