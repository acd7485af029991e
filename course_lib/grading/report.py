"""Reports (CSV, JSON, the printed table) and the command line."""
from __future__ import annotations

import argparse
import csv
import glob
import json
import time
from dataclasses import asdict
from pathlib import Path

from . import __doc__ as GRADING_DOC
from .judge import Grade, grade_batch
from .reference import Reference, find_reference, load_reference
from .run import GradeOptions


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
    p = argparse.ArgumentParser(prog="python -m course_lib.grading", description=GRADING_DOC,
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
