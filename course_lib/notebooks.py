"""Single-source exercises: student labs are generated from the solution notebooks.

In a solution notebook, an exercise cell carries `{"course": {"exercise": ID, "points": P,
"contract": "...", "hints": ["...", ...]}}` in its metadata, and the code the student writes sits
between marker lines:

    def kl_discrete(p, q):
        '''contract: shapes, what to return'''
        ### BEGIN SOLUTION
        return (p * (p / q).log()).sum(-1)
        ### END SOLUTION

The lab replaces each marked region with a stub that raises NotImplementedError with the
contract (what goes in and out, where the lecture explains it: never the recipe) and points to
`hint(ID)`, which shows the hints one layer at a time (course_lib/hints.py); `labs` writes every
exercise's contract and hints to course_lib/hints.json and leaves them out of the lab's metadata.
The check cell that follows carries `{"course": {"check": ID}}`. Commands:

    python -m course_lib.notebooks labs            # regenerate labs/ from solutions/
    python -m course_lib.notebooks labs --check    # exit 1 if a committed lab is stale
    python -m course_lib.notebooks execute lectures solutions   # refresh outputs, time, update README map
    python -m course_lib.notebooks readme          # rewrite the README's course map from timings.json
"""
from __future__ import annotations

import argparse
import html
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .checkpoint import atomic_write
from .profiles import ENV_VAR as PROFILE_VAR
from .paths import README, REPO_ROOT, between_markers

# A written question's answer cell (markdown, metadata {"course": {"answer": ID}}): the solution holds a model
# answer, the lab this placeholder; the grader collects what the student wrote there for the instructor.
ANSWER_PLACEHOLDER = "*Your answer here: a few sentences. The grader collects it for your instructor; it is not scored.*"
BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
NB_VERSION = 4

__all__ = ["ExerciseCell", "exercises_of", "make_lab", "generate_labs", "stale_labs", "execute", "as_jupyterlab_keeps",
           "static_bundle", "add_static_fallbacks"]


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


@dataclass(frozen=True)
class ExerciseCell:
    id: str
    points: float
    contract: str  # what the blank stub says: the function's contract and the lecture section, no recipe
    hints: tuple[str, ...]  # hint(id) shows them in turn, the recipe last
    index: int  # position in the notebook (for messages only; ids are what count)


def course_meta(cell) -> dict:
    return dict(cell.get("metadata", {}).get("course", {}))


def exercises_of(nb) -> list[ExerciseCell]:
    """The exercises of a solution notebook, in order, from cell metadata."""
    out, seen = [], set()
    for i, cell in enumerate(nb.cells):
        meta = course_meta(cell)
        if "exercise" in meta:
            ex_id = meta["exercise"]
            if ex_id in seen:
                raise ValueError(f"exercise id {ex_id!r} appears twice (cell {i}); ids must be unique.")
            seen.add(ex_id)
            hints = meta.get("hints", [])
            if not (isinstance(hints, list) and all(isinstance(h, str) for h in hints)):
                raise ValueError(f"exercise {ex_id!r}: metadata course.hints must be a list of strings.")
            out.append(ExerciseCell(ex_id, float(meta.get("points", 1)), str(meta.get("contract", "")), tuple(hints), i))
    return out


def checks_of(nb) -> dict[str, int]:
    """exercise id -> index of its check cell."""
    return {course_meta(c)["check"]: i for i, c in enumerate(nb.cells) if "check" in course_meta(c)}


def stub_message(exercise_id: str, contract: str, hints: int) -> str:
    """What a blank exercise raises: its contract, and where to find hints; never the recipe."""
    message = f"Exercise {exercise_id}: " + (contract or "write your solution here")
    return message + (f" Stuck? hint({exercise_id!r}) gives a first nudge ({hints} in all)." if hints else "")


def stub_source(source: str, exercise_id: str, message: str) -> str:
    """Replace each BEGIN/END SOLUTION region with a stub that raises NotImplementedError(message)."""
    lines, out, i, regions = source.split("\n"), [], 0, 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if not m:
            if END.match(lines[i]):
                raise ValueError(f"exercise {exercise_id!r}: '### END SOLUTION' without a BEGIN.")
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise ValueError(f"exercise {exercise_id!r}: nested '### BEGIN SOLUTION'.")
            j += 1
        if j == len(lines):
            raise ValueError(f"exercise {exercise_id!r}: '### BEGIN SOLUTION' without an END.")
        ind = m.group("indent")
        out.append(f"{ind}# YOUR CODE HERE")
        out.append(f"{ind}raise NotImplementedError({message!r})")
        regions += 1
        i = j + 1
    if regions == 0:
        raise ValueError(f"exercise {exercise_id!r}: its cell has no '### BEGIN SOLUTION' region.")
    return "\n".join(out)


def make_lab(solution) -> nbformat.NotebookNode:
    """The student version of a solution notebook (a new notebook; the input is not changed)."""
    nb = nbformat.from_dict(solution)
    nb = nbformat.v4.upgrade(nb) if nb.nbformat < NB_VERSION else nb
    checks, exercises = checks_of(nb), {ex.id: ex for ex in exercises_of(nb)}
    for ex in exercises.values():
        if ex.id not in checks:
            raise ValueError(f"exercise {ex.id!r} has no check cell (metadata course.check = {ex.id!r}).")
        if checks[ex.id] < ex.index:
            raise ValueError(f"the check cell of {ex.id!r} comes before the exercise.")
    new_cells = []
    for cell in nb.cells:
        meta = course_meta(cell)
        if meta.get("solution_only"):
            continue
        cell = nbformat.from_dict(dict(cell))
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if "answer" in meta:
            if cell.cell_type != "markdown":
                raise ValueError(f"answer cell {meta['answer']!r} must be a markdown cell.")
            cell.source = ANSWER_PLACEHOLDER
        elif cell.cell_type == "code" and "exercise" in meta:
            ex = exercises[meta["exercise"]]
            cell.source = stub_source(cell.source, ex.id, stub_message(ex.id, ex.contract, len(ex.hints)))
            for key in ("hints", "hint"):  # the recipe is one hint() away, not in the lab's metadata
                cell.metadata["course"].pop(key, None)
        elif any(marker.match(line) for marker in (BEGIN, END) for line in cell.source.split("\n")):
            # anywhere else the markers would be copied into the lab, solution and all
            raise ValueError(f"solution markers are only allowed in code cells with exercise metadata; "
                             f"this {cell.cell_type} cell has them: {cell.source[:60]!r}")
        cell.pop("id", None)
        new_cells.append(cell)
    nb.cells = new_cells
    nb.metadata.setdefault("course", {})["generated_from"] = "solutions (run `make labs`, do not edit by hand)"
    return _normalise(nb)


def _normalise(nb) -> nbformat.NotebookNode:
    # Stable cell ids derived from position and content role, so regeneration is byte-identical.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    nb.nbformat_minor = max(nb.nbformat_minor, 5)  # cell ids exist from format 4.5 on
    nbformat.validate(nb)
    return nb


def dumps(nb) -> str:
    return nbformat.writes(nb, version=NB_VERSION) + "\n"


def lab_path(solution_path: Path) -> Path:
    return solution_path.parent.parent / "labs" / solution_path.name


def generate_labs(root: Path = REPO_ROOT, check_only: bool = False) -> list[Path]:
    """Write labs/X.ipynb for every solutions/X.ipynb; return the labs that were (or would be) changed."""
    changed = []
    solutions = sorted((root / "solutions").glob("*.ipynb"))
    for sol in solutions:
        lab = lab_path(sol)
        text = dumps(make_lab(nbformat.read(sol, as_version=NB_VERSION)))
        if not lab.exists() or lab.read_text(encoding="utf-8") != text:
            changed.append(lab)
            if not check_only:
                lab.parent.mkdir(parents=True, exist_ok=True)
                _write_text(lab, text)
    extra = sorted(set((root / "labs").glob("*.ipynb")) - {lab_path(s) for s in solutions})
    changed += extra  # a lab with no solution is stale too
    hints_file, text = root / "course_lib" / "hints.json", hints_json(solutions)
    if not hints_file.exists() or hints_file.read_text(encoding="utf-8") != text:
        changed.append(hints_file)
        if not check_only:
            _write_text(hints_file, text)
    return changed


def hints_json(solutions: list[Path]) -> str:
    """Every exercise's contract and hints, from the solution notebooks, for course_lib.hints."""
    import json

    table = {ex.id: {"contract": ex.contract, "hints": list(ex.hints)}
             for sol in solutions for ex in exercises_of(nbformat.read(sol, as_version=NB_VERSION))}
    return json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def stale_labs(root: Path = REPO_ROOT) -> list[Path]:
    return generate_labs(root, check_only=True)


def as_jupyterlab_keeps(nb, kernel: str = "python3") -> None:
    """Leave nothing in an executed notebook's metadata that JupyterLab changes when it opens it.

    Any such change marks the notebook unsaved before the student has touched it. JupyterLab sets
    `kernelspec` to {name, display_name, language} of the kernel it starts (nbclient keeps the
    notebook's own: "Python 3" where ipykernel says "Python 3 (ipykernel)"), and `language_info` to
    the kernel's (nbclient writes that one already). The widget manager marks the notebook unsaved
    for every widget it restores from saved widget state, so none is kept: the outputs carry each
    widget's last picture and text (`add_static_fallbacks`, run first), which is what JupyterLab
    shows for a notebook it does not trust yet, and a save before running would empty the state.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": spec.display_name, "language": spec.language}
    nb.metadata.pop("widgets", None)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# Where widgets are not rendered (an untrusted notebook in JupyterLab, the repository's web view),
# a widget output shows its text/plain, which ipywidgets fills once, at display time: the explorer
# reads `VBox(children=(HBox(...` and a finished progress bar reads `0%| | 0/279`. The functions
# below rebuild that fallback from the widget state saved in the notebook, i.e. the final state.

def _text_of(state: dict, model_id: str) -> str:
    """A plain-text rendering of one saved widget and its children."""
    model = state.get(model_id)
    if model is None:
        return ""
    name, s = model["model_name"], model["state"]
    children = [c.removeprefix("IPY_MODEL_") for c in s.get("children", [])]
    if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"):
        parts = [t for t in (_text_of(state, c) for c in children) if t]
        side_by_side = name == "HBoxModel" and not any("\n" in t for t in parts)  # a tqdm bar: text|bar|text
        return ("" if side_by_side else "\n").join(parts)
    if name in ("FloatProgressModel", "IntProgressModel"):
        span = (s.get("max", 100) - s.get("min", 0)) or 1
        filled = round(10 * (s.get("value", 0) - s.get("min", 0)) / span)
        return "|" + "█" * filled + " " * (10 - filled) + "|"  # tqdm's own bar, 10 wide
    label = s.get("description", "").rstrip(":")
    label = f"{label}: " if label else ""
    if name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
        return label + html.unescape(re.sub(r"<[^>]+>", "", str(s.get("value", ""))))
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        options, index = s.get("_options_labels", []), s.get("index")
        return label + (str(options[index]) if index is not None and index < len(options) else "")
    if "value" in s and not isinstance(s["value"], (dict, list)):
        return label + str(s["value"])
    return ""


def _first_png(state: dict, model_id: str) -> str | None:
    """The base64 PNG of the first Image widget under `model_id` (depth first), if any."""
    model = state.get(model_id)
    if model is None:
        return None
    if model["model_name"] == "ImageModel" and model["state"].get("format", "png") == "png":
        return next((b["data"] for b in model.get("buffers", []) if b["path"] == ["value"] and b["encoding"] == "base64"), None)
    for child in model["state"].get("children", []):
        png = _first_png(state, child.removeprefix("IPY_MODEL_"))
        if png:
            return png
    return None


def static_bundle(state: dict, model_id: str) -> dict[str, str]:
    """The static representations of a saved widget: its text, and its first picture if it has one."""
    bundle = {"text/plain": _text_of(state, model_id)}
    png = _first_png(state, model_id)
    if png:
        bundle["image/png"] = png
    return bundle


def add_static_fallbacks(nb) -> int:
    """Give every widget output of an executed notebook the static bundle of its saved state.

    The widget view stays first choice wherever widgets render; elsewhere the reader sees the
    final picture and text instead of a stale repr. Returns how many outputs were rewritten.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    done = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view and view.get("model_id") in state:
                output["data"].pop("image/png", None)
                output["data"].update(static_bundle(state, view["model_id"]))
                done += 1
    return done


TIMINGS = REPO_ROOT / "timings.json"
MAP_BEGIN, MAP_END = "<!-- course map: generated by `make notebooks`, do not edit -->", "<!-- end course map -->"


def execute(paths: list[Path], profile: str = "cpu", timeout: int = 900, kernel: str = "python3",
            timings: Path | None = TIMINGS) -> None:
    """Run notebooks top to bottom in a fresh kernel; record the time each took.

    Lectures are saved in place with their outputs (they are read on the web without running);
    solutions are only run and timed, since they are committed without outputs. The times go to
    `timings.json` with the profile and device, and from there into the README's course map.
    """
    import json
    import time

    from nbclient import NotebookClient

    from .runtime import device_name, pick_device

    record = json.loads(timings.read_text()) if timings and timings.exists() else {}
    device = device_name(pick_device("auto"))
    for path in paths:
        nb = nbformat.read(path, as_version=NB_VERSION)
        env_before = os.environ.get(PROFILE_VAR)
        os.environ[PROFILE_VAR] = profile
        t0 = time.perf_counter()
        try:
            NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        finally:
            if env_before is None:
                os.environ.pop(PROFILE_VAR, None)
            else:
                os.environ[PROFILE_VAR] = env_before
        seconds = time.perf_counter() - t0
        if path.resolve().parent.name == "lectures":
            add_static_fallbacks(nb)  # nbclient saved the widget state; unrun readers get its picture/text
            as_jupyterlab_keeps(nb, kernel)
            _write_text(path, dumps(nb))
        key = path.resolve().relative_to(REPO_ROOT).as_posix() if path.resolve().is_relative_to(REPO_ROOT) else str(path)
        record.setdefault(key, {})[profile] = {"seconds": round(seconds, 1), "device": device,
                                               "date": time.strftime("%Y-%m-%d")}
        print(f"executed {path} ({profile} profile) in {seconds:.1f} s")
    if timings:
        _write_text(timings, json.dumps(record, indent=1, sort_keys=True) + "\n")


def course_map(root: Path = REPO_ROOT, timings: Path = TIMINGS) -> str:
    """The README's course map: each lecture with its lab and solution and their cpu-profile times."""
    import json

    record = json.loads(timings.read_text()) if timings.exists() else {}

    def cell(rel: str) -> str:
        t = record.get(rel, {}).get("cpu")
        link = f"[{rel.split('/')[0][:-1]}]({rel})"
        return f"{link} {t['seconds']:.0f} s" if t else f"{link} (not timed)"

    rows = ["| # | topic | lecture (cpu time) | lab | solution (cpu time) |", "|---|---|---|---|---|"]
    for lecture in sorted((root / "lectures").glob("*.ipynb")):
        number = lecture.stem.partition("_")[0]
        title = nbformat.read(lecture, as_version=NB_VERSION).cells[0].source.splitlines()[0].lstrip("# ").strip()
        topic = re.sub(r"^(lecture\s*\d+\s*[:·.-]|\d+\s*·)\s*", "", title, flags=re.I).strip()
        # the lab and solution of a lecture share its number (07_vq_vae goes with 07_vq_vae_and_priors)
        paired = sorted((root / "solutions").glob(f"{number}_*.ipynb"))
        name = paired[0].name if paired else lecture.name
        sol, lab = f"solutions/{name}", f"labs/{name}"
        has_lab = (root / lab).exists()
        rows.append(f"| {number} | {topic} | {cell(f'lectures/{lecture.name}')} | "
                    f"{f'[lab]({lab})' if has_lab else '-'} | {cell(sol) if has_lab else '-'} |")
    devices = sorted({t["device"] for r in record.values() for p, t in r.items() if p == "cpu"})
    note = f"Times: the `cpu` profile, measured by `make notebooks` on {', '.join(devices) or 'no machine yet'}."
    return "\n".join(rows) + "\n\n" + note


def update_readme(readme: Path = README) -> bool:
    """Rewrite the course map between its markers in the README; True if it changed."""
    text = readme.read_text(encoding="utf-8")
    new = between_markers(text, MAP_BEGIN, MAP_END, course_map())
    if new != text:
        _write_text(readme, new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.notebooks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    labs = sub.add_parser("labs", help="generate labs/ from solutions/")
    labs.add_argument("--check", action="store_true", help="exit 1 if a committed lab differs from a fresh one")
    ex = sub.add_parser("execute", help="run notebooks in place so their committed outputs are fresh")
    ex.add_argument("paths", nargs="+", type=Path)
    ex.add_argument("--profile", default="cpu")
    ex.add_argument("--timeout", type=int, default=900)
    sub.add_parser("readme", help="regenerate the README's course map from timings.json")
    args = p.parse_args(argv)
    if args.cmd == "readme":
        print("README course map " + ("updated" if update_readme() else "already up to date"))
        return 0
    if args.cmd == "labs":
        changed = generate_labs(check_only=args.check)
        if args.check:
            if changed:
                print("Stale labs (run `make labs` and commit):\n" + "\n".join(f"  {c}" for c in changed))
                return 1
            print("labs are up to date")
        else:
            print("\n".join(f"wrote {c}" for c in changed) or "labs already up to date")
        return 0
    paths = [q for q in args.paths if q.suffix == ".ipynb"] + [n for q in args.paths if q.is_dir() for n in sorted(q.glob("*.ipynb"))]
    execute(paths, profile=args.profile, timeout=args.timeout)
    update_readme()
    return 0


if __name__ == "__main__":
    sys.exit(main())
