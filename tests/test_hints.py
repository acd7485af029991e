"""Layered hints (course_lib/hints.py): one layer per call, the recipe last, and what the grader reads back."""
import json

import pytest

from course_lib import hints
from course_lib.notebooks import REPO_ROOT, exercises_of
from course_lib.notebooks import hints_json


@pytest.fixture
def table(monkeypatch, tmp_path):
    path = tmp_path / "hints.json"
    path.write_text(json.dumps({"lab09.double": {"contract": "double x (this lab, 'Doubling')",
                                                 "hints": ["twice as much", "the * operator", "return 2 * x"]}}))
    monkeypatch.setattr(hints, "HINTS_FILE", path)
    monkeypatch.setattr(hints, "_ASKED", {})
    hints._table.cache_clear()
    yield
    hints._table.cache_clear()


def test_each_call_shows_the_next_layer_and_the_last_says_it_is_the_recipe(table, capsys):
    for _ in range(4):
        hints.hint("lab09.double")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[hint 1/3 · lab09.double] twice as much  (run hint('lab09.double') again for more)"
    assert lines[1].startswith("[hint 2/3 · lab09.double] the * operator")
    assert lines[2] == lines[3] == "[hint 3/3 · lab09.double] return 2 * x  (that is the whole recipe)"
    hints.hint("lab09.double", 1)  # one layer again, on demand
    assert capsys.readouterr().out.startswith("[hint 1/3 · lab09.double] twice")
    assert hints.contract("lab09.double") == "double x (this lab, 'Doubling')"


def test_bad_ids_and_levels_say_what_exists(table):
    with pytest.raises(KeyError, match=r"No exercise 'lab09.triple'; the ones there are: lab09.double"):
        hints.hint("lab09.triple")
    with pytest.raises(ValueError, match=r"lab09.double has hints 1 to 3; got level=4"):
        hints.hint("lab09.double", 4)


def test_the_grader_reads_the_deepest_level_asked_from_saved_outputs(table, capsys):
    hints.hint("lab09.double")
    hints.hint("lab09.double")
    text = capsys.readouterr().out + "\nunrelated [hint x/y] line\n[hint 1/2 · lab08.other] ..."
    assert hints.asked_in(text) == {"lab09.double": (2, 3), "lab08.other": (1, 2)}


def test_the_shipped_hints_file_is_the_solutions_and_every_exercise_has_one():
    solutions = sorted((REPO_ROOT / "solutions").glob("*.ipynb"))
    assert (REPO_ROOT / "course_lib" / "hints.json").read_text(encoding="utf-8") == hints_json(solutions), \
        "course_lib/hints.json is stale: run `make labs`"
    import nbformat

    ids = {ex.id for s in solutions for ex in exercises_of(nbformat.read(s, as_version=4))}
    hints._table.cache_clear()
    assert set(hints._table()) == ids
    for ex_id in ids:
        assert len(hints._table()[ex_id]["hints"]) >= 2, ex_id


def test_the_grader_reports_the_hints_a_saved_notebook_shows():
    import nbformat

    from course_lib.grading.judge import hints_seen

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("hint('lab01.jsd')", outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="[hint 1/3 · lab01.jsd] ...\n[hint 2/3 · lab01.jsd] ...\n")]),
        nbformat.v4.new_code_cell("hint('lab01.kl_discrete', 3)", outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text=["[hint 3/3 · lab01.kl_discrete] the recipe\n"])]),
        nbformat.v4.new_code_cell("x = 1")])
    assert hints_seen(nb, ["lab01.kl_discrete", "lab01.jsd", "lab01.mode_coverage"]) == \
        "lab01.kl_discrete 3/3; lab01.jsd 2/3"
    assert hints_seen(nbformat.v4.new_notebook(), ["lab01.jsd"]) == ""
