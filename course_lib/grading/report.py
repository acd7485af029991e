"""Reports (CSV, JSON, the printed table) and the command line."""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from .judge import Grade, GraderFault, Outcome, grade_batch
from .reference import Reference, find_reference, load_reference
from .run import GradeOptions
from .sandbox import UNSANDBOXED_RISK, Limits, find_bwrap, kernel_group
from .text import csv_cell, plain, short


def summarise(ref: Reference, grades: list[Grade]) -> dict[str, dict[str, float]]:
    """Per exercise: the mean points and the failure rate (share of submissions without full points)."""
    out = {}
    for ex in ref.exercises:
        pts = [g.outcomes[ex.id].points for g in grades]
        n = max(len(pts), 1)
        out[ex.id] = {"points": ex.points, "mean": sum(pts) / n,
                      "failure_rate": sum(p < ex.points for p in pts) / n}
    return out


def report_paths(out: Path) -> tuple[Path, Path]:
    out = out.with_suffix("") if out.suffix in (".csv", ".json") else out
    return out.parent / f"{out.name}.csv", out.parent / f"{out.name}.json"


def _replace(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: a crash leaves the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(ref: Reference, grades: list[Grade], out: Path, seconds: float, sandbox: str = "",
                  complete: bool = True, caps: str = "") -> tuple[Path, Path]:
    """<out>.csv (one row per student) and <out>.json (everything, with the summary).

    Called again as each submission finishes (complete=False), so a crash loses at most the
    submissions in flight; `--resume` reads the JSON back (read_done).
    """
    csv_path, json_path = report_paths(out)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    ids = [ex.id for ex in ref.exercises]
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["student", "file", *ids, "total", "max", *[f"why {i}" for i in ids], "note", "review", "hints asked",
                "written answers"])
    for g in grades:  # the text cells come from students (file names, exception messages): csv_cell defuses them
        w.writerow([csv_cell(g.student), csv_cell(g.file), *[f"{g.outcomes[i].points:g}" for i in ids],
                    f"{g.total:g}", f"{ref.max_points:g}", *[csv_cell(g.outcomes[i].reason) for i in ids],
                    csv_cell(g.note), csv_cell(g.review), csv_cell(g.hints), _answered(g, ref)])
    report = {"lab": ref.name, "reference": str(ref.path), "max_points": ref.max_points, "seconds": round(seconds, 1),
              "sandbox": sandbox, "caps": caps, "complete": complete,
              "exercises": [{"id": ex.id, "points": ex.points} for ex in ref.exercises],
              "summary": summarise(ref, grades),
              "submissions": [{"student": g.student, "file": g.file, "total": g.total, "seconds": round(g.seconds, 1),
                               "runs": g.runs, "note": g.note, "review": g.review, "hints": g.hints,
                               "answers": g.answers,
                               "exercises": {i: asdict(o) for i, o in g.outcomes.items()}} for g in grades]}
    _replace(csv_path, rows.getvalue())
    if ref.questions:
        _replace(csv_path.with_suffix(".answers.md"), answers_markdown(ref, grades))
    _replace(json_path, json.dumps(report, indent=1) + "\n")
    return csv_path, json_path


def read_done(ref: Reference, out: Path) -> dict[str, Grade]:
    """The grades already in <out>.json for this lab, by file path (for --resume)."""
    json_path = report_paths(out)[1]
    if not json_path.exists():
        return {}
    try:
        report = json.loads(json_path.read_text(encoding="utf-8"))
        if report.get("lab") != ref.name:
            raise SystemExit(f"--resume: {json_path} is a report of {report.get('lab')}, not {ref.name}; "
                             "give another --out or drop --resume.")
        return {s["file"]: Grade(s["student"], s["file"], {i: Outcome(**o) for i, o in s["exercises"].items()},
                                 s["seconds"], s["note"], s["runs"], s.get("review", ""), s.get("hints", ""),
                                 s.get("answers", {}))
                for s in report["submissions"] if set(s["exercises"]) == {ex.id for ex in ref.exercises}}
    except (ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"--resume: cannot read {json_path} ({type(e).__name__}: {e}); "
                         "give another --out or drop --resume.") from e


def format_table(ref: Reference, grades: list[Grade], seconds: float) -> str:
    """The score table, the lost exercises with reasons, and the per-exercise summary (students' text made plain)."""
    names = [ex.id.split(".", 1)[-1] for ex in ref.exercises]
    width = max([len(plain(g.student)) for g in grades] + [7])
    head = f"{'student':<{width}}  " + "  ".join(names) + "  total"
    lines = [head, "-" * len(head)]
    for g in grades:
        cells = [f"{g.outcomes[ex.id].points:g}/{ex.points:g}".rjust(len(n)) for ex, n in zip(ref.exercises, names)]
        lines.append(f"{plain(g.student):<{width}}  " + "  ".join(cells) + f"  {g.total:g}/{ref.max_points:g}")
    lost = [plain(f"  {g.student} · {i}: {o.reason}") for g in grades for i, o in g.outcomes.items() if o.reason]
    flagged = [plain(f"  {g.student}: {g.review}") for g in grades if g.review]
    notes = [plain(f"  {g.student}: {g.note}") for g in grades if g.note]
    lines += ["", "lost exercises (and notes on kept ones):", *(lost or ["  none"])]
    lines += (["", "notes:", *notes] if notes else []) + (["", "to review by hand:", *flagged] if flagged else [])
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


def sandbox_status(opts: GradeOptions, require: bool) -> str:
    """"bwrap" or "none: why"; warns on stderr without one, or refuses with --require-sandbox."""
    bwrap, why = find_bwrap() if opts.sandbox else (None, "--no-sandbox was given")
    if bwrap:
        return "bwrap"
    if require:
        raise SystemExit(f"--require-sandbox: no sandbox, so nothing was graded: {why}.")
    print(f"WARNING: grading WITHOUT a sandbox ({why}): {UNSANDBOXED_RISK}. "
          "Pass --require-sandbox to refuse instead.", file=sys.stderr)
    return f"none: {why}"


def _answered(g: Grade, ref: Reference) -> str:
    return f"{sum(bool(g.answers.get(q)) for q in ref.questions)} of {len(ref.questions)}" if ref.questions else ""


def answers_markdown(ref: Reference, grades: list[Grade]) -> str:
    """<out>.answers.md: each written question, then every student's answer, for the instructor to read."""
    lines = [f"# Written answers: {ref.name}", "", "Not scored by the grader. Unanswered questions are marked.", ""]
    for q in ref.questions:
        lines += [f"## {q}", ""]
        for g in grades:
            text = g.answers.get(q, "")
            lines += [f"### {g.student}", "", text if text else "*(no answer)*", ""]
    return "\n".join(lines)


def caps_status(opts: GradeOptions, sandbox: str) -> str:
    """What caps each kernel: a cgroup for all its processes together, or else rlimits per process (and why)."""
    if sandbox != "bwrap":
        return "none (no sandbox)"
    group, why = kernel_group(f"course-grade-probe-{os.getpid()}", opts.limits)
    if group is None:
        return (f"per process only: {opts.limits.memory_gb:g} GiB each (RLIMIT_DATA), {opts.limits.processes} tasks "
                f"(RLIMIT_NPROC); no cgroup: {why}")
    group.remove()
    return group.describe(opts.limits) + ", and per process (rlimits)"


def main(argv: list[str] | None = None) -> int:
    how = sys.modules[__package__].__doc__  # the package's docstring: how grading works (imported before this module)
    p = argparse.ArgumentParser(prog="python -m course_lib.grading", description=how,
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
    p.add_argument("--resume", action="store_true", help="keep the students already in OUT.json; grade the rest")
    p.add_argument("--require-sandbox", action="store_true", help="refuse to grade if bwrap cannot sandbox the kernels")
    p.add_argument("--no-sandbox", action="store_true", help="run kernels unsandboxed (trusted code, timing runs)")
    p.add_argument("--memory-gb", type=float, default=d.limits.memory_gb,
                   help="memory a sandboxed kernel may hold, GiB: all its processes together where the grader can "
                        "make cgroups, and each process in any case (default %(default)g)")
    p.add_argument("--max-processes", type=int, default=d.limits.processes,
                   help="processes and threads a sandboxed kernel may run at once (default %(default)d)")
    a = p.parse_args(argv)
    if a.memory_gb <= 0 or a.max_processes <= 0:
        p.error("--memory-gb and --max-processes must be positive; raise them for a lab that needs more")
    ref = load_reference(find_reference(a.lab))
    paths = expand(a.submissions)
    csv_path, json_path = report_paths(a.out)
    hide = (*dict.fromkeys(q.parent for q in paths), csv_path.parent, csv_path, json_path)  # out of the kernel's view
    opts = GradeOptions(a.cell_timeout, a.submission_timeout, a.profile, max(a.jobs, 1), a.keep_temp,
                        sandbox=not a.no_sandbox, hide=hide, limits=Limits(a.memory_gb, a.max_processes))
    sandbox = sandbox_status(opts, a.require_sandbox)
    caps = caps_status(opts, sandbox)
    print(f"caps: {caps}")
    done = read_done(ref, a.out) if a.resume else {}
    grades: list[Grade | None] = [done.get(str(q)) for q in paths]
    todo = [q for q, g in zip(paths, grades) if g is None]
    if done:
        print(f"--resume: {len(paths) - len(todo)} of {len(paths)} already graded in {report_paths(a.out)[1]}")
    lock, start = threading.Lock(), time.monotonic()
    write_reports(ref, [g for g in grades if g is not None], a.out, 0.0, sandbox, False, caps)  # exists before any kernel

    def finished(k: int, grade: Grade) -> None:
        with lock:
            grades[paths.index(todo[k])] = grade
            write_reports(ref, [g for g in grades if g is not None], a.out, time.monotonic() - start, sandbox, False,
                          caps)

    try:
        grade_batch(ref, todo, opts, done=finished)
    except GraderFault as e:
        graded = sum(g is not None for g in grades)
        print(f"grader fault, not the students': {short(e)}. Stopped after {graded} of {len(paths)} submissions; "
              f"the rest got no score. Rerun with --keep-temp to read the run's pytest.log, fix the environment, "
              f"then add --resume to grade only the rest.", file=sys.stderr)
        return 2
    seconds = time.monotonic() - start
    final = [g for g in grades if g is not None]
    csv_path, json_path = write_reports(ref, final, a.out, seconds, sandbox, caps=caps)
    print(format_table(ref, final, seconds))
    print(f"wrote {csv_path} and {json_path}")
    return 0
