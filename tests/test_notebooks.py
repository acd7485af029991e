"""The single-source pipeline on the real notebooks: labs are fresh, and a blank lab fails every check.

That each solution passes every check is proved by nbval, which runs solutions/ in `make test`.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_lib.notebooks import REPO_ROOT, checks_of, course_meta, exercises_of, lab_path, stale_labs

SOLUTIONS = sorted((REPO_ROOT / "solutions").glob("*.ipynb"))


def test_there_are_solutions_and_labs():
    assert SOLUTIONS, "no solution notebooks found"
    for sol in SOLUTIONS:
        assert lab_path(sol).exists(), f"{lab_path(sol)} is missing: run `make labs`"


def test_committed_labs_equal_freshly_generated_ones():
    stale = stale_labs()
    assert not stale, f"stale labs {[str(p.relative_to(REPO_ROOT)) for p in stale]}: run `make labs` and commit"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_every_exercise_has_points_a_contract_layered_hints_and_a_check(solution: Path):
    nb = nbformat.read(solution, as_version=4)
    exercises, checks = exercises_of(nb), checks_of(nb)
    assert exercises, f"{solution.name} has no exercises"
    for ex in exercises:
        assert ex.points > 0 and ex.contract, f"{ex.id}: give it points and a contract in its cell metadata"
        assert "lecture" in ex.contract or "this lab" in ex.contract, f"{ex.id}: the contract says where it is explained"
        assert len(ex.hints) >= 2 and all(ex.hints), f"{ex.id}: give it hints in layers, the recipe last"
        assert "hint" not in course_meta(nb.cells[ex.index]), f"{ex.id}: the one-line 'hint' became 'hints'"
        assert ex.id in checks and checks[ex.id] > ex.index, f"{ex.id}: needs a check cell after it"


@pytest.mark.slow
@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_blank_lab_fails_every_check(solution: Path, monkeypatch, real_data):
    """Run the generated lab as a student gets it (on the real data): every check cell must end in an error."""
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    lab = nbformat.read(lab_path(solution), as_version=4)
    NotebookClient(lab, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(REPO_ROOT / "labs")}}).execute()
    checks = checks_of(lab)
    assert checks, "the lab has no check cells"
    for ex_id, index in checks.items():
        errors = [o for o in lab.cells[index].outputs if o.output_type == "error"]
        assert errors, f"{ex_id}: the check passed on the blank lab, so it cannot fail; make it compare with the reference"
        assert errors[0].ename in {"NotImplementedError", "AssertionError", "NameError"}, \
            f"{ex_id}: the blank lab failed with {errors[0].ename}, not the stub's NotImplementedError"
    # The blank lab fails for the right reason: every cell before the first exercise runs.
    first_exercise = min(i for i, c in enumerate(lab.cells) if "exercise" in c.metadata.get("course", {}))
    for i, cell in enumerate(lab.cells[:first_exercise]):
        errors = [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"cell {i} of the blank lab fails before any exercise: {errors}"


def test_readme_course_map_is_generated_from_the_timings():
    from course_lib.notebooks import MAP_BEGIN, MAP_END, README, course_map

    text = README.read_text()
    assert MAP_BEGIN in text and MAP_END in text, "README lost its course-map markers"
    current = text.split(MAP_BEGIN, 1)[1].split(MAP_END, 1)[0].strip()
    assert current == course_map().strip(), "README's course map is stale: run `python -m course_lib.notebooks readme`"


def test_notebook_tools_do_not_need_ipywidgets():
    """`execute` rewrites widget outputs from saved state alone: it runs where ipywidgets is not installed."""
    import subprocess
    import sys

    code = "import sys, course_lib.notebooks; assert 'ipywidgets' not in sys.modules, 'course_lib.notebooks imports ipywidgets'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
