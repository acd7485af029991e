import ast
import json
import math
import sys
import types

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_lib import exercises as ex_mod
from course_lib import notebooks
from course_lib.exercises import Exercise, check, collect, compare_close, get_exercise, register, to_plain, verify
from course_lib.notebooks import dumps, exercises_of, generate_labs, make_lab, stale_labs, stub_message, stub_source


# -- compare_close ------------------------------------------------------------------------------
def test_close_values_pass():
    compare_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-9]), 1e-5, 1e-6)
    compare_close(0.1 + 0.2, 0.3, 1e-5, 1e-6)
    compare_close(torch.tensor(3.0), 3, 1e-5, 1e-6)  # dtypes do not matter
    compare_close(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]), 0, 0)
    compare_close((1.0, [torch.ones(2), 2.0]), (1.0, (torch.ones(2), 2.0)), 1e-5, 1e-6)
    compare_close({"a": 1.0, "b": torch.zeros(3)}, {"b": torch.zeros(3), "a": 1.0}, 1e-5, 1e-6)
    compare_close("ok", "ok", 0, 0)
    compare_close(None, None, 0, 0)
    compare_close(True, True, 0, 0)
    compare_close(float("inf"), math.inf, 1e-5, 1e-6)


def test_tolerances_are_applied():
    compare_close(1.0 + 1e-3, 1.0, rtol=0, atol=2e-3)
    compare_close(100.5, 100.0, rtol=1e-2, atol=0)
    with pytest.raises(AssertionError, match=r"got 1.003, expected 1 \(rtol=0, atol=0.002\)"):
        compare_close(1.003, 1.0, rtol=0, atol=2e-3)


def test_mismatch_message_points_at_the_value():
    want = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    got = want.clone()
    got[1, 0] = 3.5
    with pytest.raises(AssertionError, match=r"^out: 1 of 4 value\(s\) differ from the reference at flat index 2: "
                                             r"got 3.5, expected 3 \(rtol=1e-05, atol=1e-06\)\.$"):
        compare_close(got, want, 1e-5, 1e-6, where="out")


def test_nan():
    compare_close(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]), 1e-5, 1e-6)
    compare_close(float("nan"), float("nan"), 0, 0)
    with pytest.raises(AssertionError, match="got nan, expected 1"):
        compare_close(torch.tensor([float("nan"), 1.0]), torch.tensor([1.0, 1.0]), 1e-5, 1e-6)
    with pytest.raises(AssertionError, match="got 1, expected nan"):
        compare_close(1.0, float("nan"), 1e-5, 1e-6)
    with pytest.raises(AssertionError, match="got inf, expected -inf"):
        compare_close(math.inf, -math.inf, 1e-5, 1e-6)


def test_shape_mismatch():
    with pytest.raises(AssertionError, match=r"output: expected shape \(3,\), got \(3, 1\)"):
        compare_close(torch.zeros(3, 1), torch.zeros(3), 1e-5, 1e-6)  # a broadcasting trap
    with pytest.raises(AssertionError, match=r"expected shape \(2,\), got \(\)"):
        compare_close(0.0, torch.zeros(2), 1e-5, 1e-6)
    with pytest.raises(AssertionError, match=r"expected 1 value\(s\), got 2"):
        compare_close(torch.zeros(2), 0.0, 1e-5, 1e-6)


def test_container_mismatches():
    with pytest.raises(AssertionError, match=r"expected a tuple of 2 values, got tuple of length 3"):
        compare_close((1, 2, 3), (1, 2), 0, 0)
    with pytest.raises(AssertionError, match=r"expected a tuple of 2 values, got tensor of shape \(2,\)"):
        compare_close(torch.zeros(2), (0.0, 0.0), 0, 0)
    with pytest.raises(AssertionError, match=r"output, item 2 of 2, item 1 of 1: .*got 5, expected 4"):
        compare_close((1.0, (5.0,)), (1.0, (4.0,)), 0, 0)
    with pytest.raises(AssertionError, match=r"expected a dict with keys \['a', 'b'\], got \['a'\]"):
        compare_close({"a": 1}, {"a": 1, "b": 2}, 0, 0)
    with pytest.raises(AssertionError, match=r"expected a dict with keys \['a'\], got float"):
        compare_close(1.0, {"a": 1}, 0, 0)
    with pytest.raises(AssertionError, match=r"output\['a'\]: .*got 2, expected 1"):
        compare_close({"a": 2.0}, {"a": 1.0}, 0, 0)


def test_type_mismatches():
    with pytest.raises(AssertionError, match="expected a number or tensor, got str"):
        compare_close("1.0", 1.0, 0, 0)
    with pytest.raises(AssertionError, match="expected a number or tensor, got NoneType"):
        compare_close(None, torch.zeros(2), 0, 0)
    with pytest.raises(AssertionError, match="expected a number or tensor, got bool"):
        compare_close(True, 1.0, 0, 0)
    with pytest.raises(AssertionError, match="expected a number or tensor, got list"):
        compare_close([1.0], 1.0, 0, 0)
    with pytest.raises(AssertionError, match="expected 'a', got 'b'"):
        compare_close("b", "a", 0, 0)
    with pytest.raises(AssertionError, match="expected None, got 0"):
        compare_close(0, None, 0, 0)


# -- to_plain -----------------------------------------------------------------------------------
def test_to_plain():
    t = torch.ones(2, requires_grad=True) * 2
    out = to_plain({"t": t, 1: (np.float32(1.5), np.int64(3), np.bool_(True)), "a": np.arange(3), "l": [None, "s"]})
    assert set(out) == {"t", "1", "a", "l"}
    assert isinstance(out["t"], torch.Tensor) and not out["t"].requires_grad and torch.equal(out["t"], torch.full((2,), 2.0))
    assert out["1"] == (1.5, 3, True) and [type(v) for v in out["1"]] == [float, int, bool]
    assert torch.equal(out["a"], torch.arange(3)) and out["l"] == [None, "s"]


def test_to_plain_copies():
    t = torch.zeros(3)
    a = np.zeros(3)
    plain_t, plain_a = to_plain(t), to_plain(a)
    t += 1
    a += 1
    assert torch.equal(plain_t, torch.zeros(3)) and torch.equal(plain_a, torch.zeros(3, dtype=torch.float64))


def test_to_plain_refuses_other_objects():
    with pytest.raises(TypeError, match="cannot check a value of type Linear; return tensors or numbers"):
        to_plain([torch.nn.Linear(1, 1)])
    with pytest.raises(TypeError, match="type set"):
        to_plain({1, 2})


# -- exercises and check() ----------------------------------------------------------------------
@pytest.fixture
def square():
    """A small exercise under a test-only lab id, removed from the registry afterwards."""

    def cases():
        g = torch.Generator().manual_seed(0)
        return [(torch.randn(3, generator=g),), (torch.randn(2, 2, generator=g),), (torch.tensor(0.5),)]

    ex = register(Exercise("testlab.square", cases, lambda x: x ** 2, describe="squares elementwise"))
    yield ex
    for k in [k for k in ex_mod.REGISTRY if k.startswith("testlab.")]:
        del ex_mod.REGISTRY[k]


def test_check_passes_a_correct_function(square, capsys):
    check("testlab.square", lambda x: x * x)
    assert capsys.readouterr().out == "✓ testlab.square: matches the reference on 3 cases (squares elementwise)\n"


def test_check_fails_a_wrong_function(square):
    with pytest.raises(AssertionError, match=r"testlab.square, case 1 of 3 \(inputs: \(3,\) float32 in \[.*\]\): .* differ from the reference"):
        check("testlab.square", lambda x: x * x + 1e-3)
    with pytest.raises(AssertionError, match=r"case 1 of 3 \(inputs: .*\): expected shape \(3,\), got \(1, 3\)"):
        check("testlab.square", lambda x: (x * x).unsqueeze(0))


def test_check_propagates_the_stub_error(square):
    def stub(x):
        raise NotImplementedError("Exercise testlab.square: write your solution here")

    with pytest.raises(NotImplementedError, match="write your solution"):
        check("testlab.square", stub)


def test_check_needs_a_function(square):
    with pytest.raises(TypeError, match="check\\(\\) needs the function you wrote, got Tensor"):
        check("testlab.square", torch.ones(3))


def test_check_records_outputs_for_the_grader(square, tmp_path, monkeypatch):
    check("testlab.square", lambda x: x * x)
    assert list(tmp_path.iterdir()) == [tmp_path / "course_data"] or not list(tmp_path.glob("*.pt"))  # off by default
    monkeypatch.setenv("COURSE_GRADE_DIR", str(tmp_path / "grade"))
    with pytest.raises(AssertionError):
        check("testlab.square", lambda x: x * 3)  # recorded even when it fails: the grader decides
    record = torch.load(tmp_path / "grade" / "testlab.square.pt", weights_only=True)
    assert record["exercise"] == "testlab.square" and len(record["outputs"]) == 3
    cases = square.cases()
    for (x,), out in zip(cases, record["outputs"]):
        assert torch.equal(out, x * 3)
    check("testlab.square", lambda x: x * x)
    record = torch.load(tmp_path / "grade" / "testlab.square.pt", weights_only=True)
    assert verify(square, record["outputs"]) == 3  # the grader's own comparison
    assert [p.name for p in (tmp_path / "grade").iterdir()] == ["testlab.square.pt"]


def test_cases_are_fresh_each_time(square):
    def mutating(x):
        x.mul_(0)  # a student function that overwrites its input must not change the reference
        return x

    with pytest.raises(AssertionError, match="differ"):
        check("testlab.square", mutating)
    assert verify(square, collect(square, lambda x: x ** 2)) == 3


def test_verify_counts_outputs(square):
    with pytest.raises(AssertionError, match="testlab.square: expected 3 outputs, got 2"):
        verify(square, [torch.zeros(3), torch.zeros(2, 2)])


def test_custom_compare(square):
    seen = []

    def compare(got, want, args):
        seen.append(args)
        assert got.sum() >= 0, "must be non-negative"

    ex = register(Exercise("testlab.nonneg", square.cases, lambda x: x ** 2, compare=compare))
    assert verify(ex, collect(ex, lambda x: x.abs())) == 3 and len(seen) == 3
    with pytest.raises(AssertionError, match="must be non-negative"):
        check("testlab.nonneg", lambda x: -x.abs() - 1)


def test_register_and_get_errors(square, monkeypatch):
    with pytest.raises(ValueError, match="must look like 'lab00.name'"):
        register(Exercise("square", square.cases, square.reference))
    assert get_exercise("testlab.square") is square
    with pytest.raises(KeyError, match=r"No lab module course_lib/labs/nolab.py for exercise 'nolab.x'"):
        get_exercise("nolab.x")
    monkeypatch.setitem(sys.modules, "course_lib.labs.testlab", types.ModuleType("course_lib.labs.testlab"))
    with pytest.raises(KeyError, match=r"Unknown exercise 'testlab.cube'; testlab has \['testlab.square'\]"):
        get_exercise("testlab.cube")


def test_a_broken_lab_module_shows_its_real_error(monkeypatch):
    def import_module(name):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")  # the lab imports a missing package

    monkeypatch.setattr(ex_mod.importlib, "import_module", import_module)
    with pytest.raises(ModuleNotFoundError, match="scipy"):
        get_exercise("brokenlab.x")


# -- stub_source --------------------------------------------------------------------------------
SOURCE = '''def f(x):
    """contract"""
    y = 1
    ### BEGIN SOLUTION
    secret = x + y
    return secret
    ### END SOLUTION


def g(x):
\tif x:
\t\t### BEGIN SOLUTION   
\t\treturn "hidden"
\t\t### END SOLUTION
\treturn 0'''


def test_stub_keeps_indentation_and_every_region():
    out = stub_source(SOURCE, "lab09.f", "Exercise lab09.f: use x + 1")
    assert "secret" not in out and "hidden" not in out and "SOLUTION" not in out
    lines = out.split("\n")
    assert lines[:5] == ['def f(x):', '    """contract"""', '    y = 1', '    # YOUR CODE HERE',
                         "    raise NotImplementedError('Exercise lab09.f: use x + 1')"]
    assert "\t\t# YOUR CODE HERE" in lines and "\treturn 0" in lines
    ast.parse(out)
    ns = {}
    exec(compile(out, "<stub>", "exec"), ns)
    with pytest.raises(NotImplementedError, match="Exercise lab09.f: use x \\+ 1"):
        ns["f"](1)
    assert ns["g"](0) == 0


def test_stub_message_gives_the_contract_and_points_to_the_hints_and_survives_quotes():
    assert stub_message("lab09.f", "", 0) == "Exercise lab09.f: write your solution here"
    assert stub_message("lab09.f", "f(x) -> x + 1 (lecture 09, 'Adding')", 3) == (
        "Exercise lab09.f: f(x) -> x + 1 (lecture 09, 'Adding') Stuck? hint('lab09.f') gives a first nudge (3 in all).")
    src = "def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION"
    ns = {}
    exec(stub_source(src, "lab09.f", stub_message("lab09.f", "it's \"easy\"\nreally", 0)), ns)
    with pytest.raises(NotImplementedError) as e:
        ns["f"]()
    assert str(e.value) == "Exercise lab09.f: it's \"easy\"\nreally"


@pytest.mark.parametrize("src,match", [
    ("x = 1\n### BEGIN SOLUTION\nx = 2", "BEGIN SOLUTION' without an END"),
    ("x = 1\n### END SOLUTION", "END SOLUTION' without a BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
    ("x = 1\n# BEGIN SOLUTION\nx = 2", "has no '### BEGIN SOLUTION' region"),
    ("### BEGIN SOLUTION\nx\n### END SOLUTION\n### END SOLUTION", "without a BEGIN"),
])
def test_stub_errors(src, match):
    with pytest.raises(ValueError, match=match) as e:
        stub_source(src, "lab09.f", "")
    assert "'lab09.f'" in str(e.value)


# -- make_lab and generate_labs -----------------------------------------------------------------
EXERCISE = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"


def solution_nb(check=True, minor=None):
    cells = [
        new_markdown_cell("# Lab 9\nDouble a number."),
        new_code_cell("from course_lib import setup\ncourse = setup()", execution_count=1,
                      outputs=[new_output("stream", name="stdout", text="python 3 | device cpu\n")]),
        new_code_cell(EXERCISE, metadata={"course": {"exercise": "lab09.double", "points": 2, "contract": "multiply",
                                                    "hints": ["twice", "the * operator", "return 2 * x"]}},
                      execution_count=2),
        new_code_cell("print('solution only: the answer is 4')", metadata={"course": {"solution_only": True}}),
    ]
    if check:
        cells.append(new_code_cell('check("lab09.double", double)', metadata={"course": {"check": "lab09.double"}},
                                   execution_count=3, outputs=[new_output("stream", name="stdout", text="✓\n")]))
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    if minor is not None:  # an older notebook format, e.g. 4.4, saved by older Jupyter: no cell ids
        nb.nbformat_minor = minor
        for c in nb.cells:
            c.pop("id", None)
    return nb


def test_exercises_of_reads_metadata():
    (ex,) = exercises_of(solution_nb())
    assert (ex.id, ex.points, ex.contract, ex.hints, ex.index) == (
        "lab09.double", 2.0, "multiply", ("twice", "the * operator", "return 2 * x"), 2)
    nb = solution_nb()
    nb.cells[2].metadata["course"]["hints"] = "not a list"
    with pytest.raises(ValueError, match="course.hints must be a list of strings"):
        exercises_of(nb)
    nb = solution_nb()
    nb.cells.append(new_code_cell(EXERCISE, metadata={"course": {"exercise": "lab09.double"}}))
    with pytest.raises(ValueError, match="appears twice"):
        exercises_of(nb)


def test_make_lab():
    sol = solution_nb()
    before = dumps(sol)
    lab = make_lab(sol)
    assert dumps(sol) == before  # the solution is not changed
    sources = [c.source for c in lab.cells]
    assert len(lab.cells) == 4 and not any("solution only" in s for s in sources)
    assert "2 * x" not in "".join(sources)
    assert ("raise NotImplementedError(\"Exercise lab09.double: multiply Stuck? hint('lab09.double') gives a first "
            "nudge (3 in all).\")") in sources[2]
    assert "hints" not in lab.cells[2].metadata["course"], "the recipe is one hint() away, not in the lab's metadata"
    for c in lab.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
    assert lab.cells[2].metadata["course"]["exercise"] == "lab09.double"  # the grader finds cells by id
    assert lab.cells[3].metadata["course"] == {"check": "lab09.double"}
    assert [c.id for c in lab.cells] == ["cell-000", "cell-001", "cell-002", "cell-003"]
    assert "do not edit" in lab.metadata["course"]["generated_from"]
    assert lab.metadata["kernelspec"]["name"] == "python3"
    nbformat.validate(lab)


def test_make_lab_is_deterministic():
    a, b = solution_nb(), solution_nb()
    assert [c.id for c in a.cells] != [c.id for c in b.cells]  # nbformat gives new cells random ids
    assert dumps(make_lab(a)) == dumps(make_lab(b))  # the lab does not depend on them


def test_make_lab_accepts_an_older_notebook_format():
    lab = make_lab(solution_nb(minor=4))
    nbformat.validate(lab)
    assert [c.source for c in lab.cells] == [c.source for c in make_lab(solution_nb()).cells]


def test_make_lab_needs_a_check_cell_after_each_exercise():
    with pytest.raises(ValueError, match=r"'lab09.double' has no check cell \(metadata course.check = 'lab09.double'\)"):
        make_lab(solution_nb(check=False))
    nb = solution_nb()
    nb.cells.insert(1, nb.cells.pop())  # the check before the exercise
    with pytest.raises(ValueError, match="check cell of 'lab09.double' comes before the exercise"):
        make_lab(nb)


@pytest.mark.parametrize("cell", [
    new_markdown_cell("### BEGIN SOLUTION\nthe answer\n### END SOLUTION"),
    new_code_cell("x = 1\n### BEGIN SOLUTION\nsecret = 42\n### END SOLUTION"),  # no exercise metadata
])
def test_markers_outside_an_exercise_cell_are_an_error(cell):
    nb = solution_nb()
    nb.cells.insert(2, cell)
    with pytest.raises(ValueError, match="only allowed in code cells with exercise metadata"):
        make_lab(nb)


def write_solution(root, name, nb):
    (root / "solutions").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, root / "solutions" / name)


def test_generate_labs_then_nothing_is_stale(tmp_path):
    write_solution(tmp_path, "09_double.ipynb", solution_nb())
    written = [tmp_path / "labs" / "09_double.ipynb", tmp_path / "course_lib" / "hints.json"]
    assert stale_labs(tmp_path) == written  # check only: nothing written
    assert not (tmp_path / "labs").exists() and not (tmp_path / "course_lib").exists()
    assert generate_labs(tmp_path) == written
    text = (tmp_path / "labs" / "09_double.ipynb").read_text()
    assert text == dumps(make_lab(solution_nb())) and "2 * x" not in text
    assert json.loads(written[1].read_text()) == {
        "lab09.double": {"contract": "multiply", "hints": ["twice", "the * operator", "return 2 * x"]}}
    assert generate_labs(tmp_path) == [] and stale_labs(tmp_path) == []
    assert (tmp_path / "labs" / "09_double.ipynb").read_text() == text  # byte-identical on regeneration


def test_stale_and_extra_labs_are_reported(tmp_path):
    write_solution(tmp_path, "09_double.ipynb", solution_nb())
    generate_labs(tmp_path)
    lab = tmp_path / "labs" / "09_double.ipynb"
    lab.write_text(lab.read_text().replace("multiply", "add"))  # edited by hand
    orphan = tmp_path / "labs" / "10_orphan.ipynb"
    orphan.write_text(dumps(make_lab(solution_nb())))  # a lab whose solution is gone
    assert stale_labs(tmp_path) == [lab, orphan]
    sol = solution_nb()
    sol.cells[2].metadata["course"]["contract"] = "add"
    write_solution(tmp_path, "09_double.ipynb", sol)
    assert stale_labs(tmp_path) == [orphan, tmp_path / "course_lib" / "hints.json"]  # the hand edit matches; the
    # contract changed, so the hints file must be written again


def test_cli_check_exit_code(tmp_path, monkeypatch, capsys):
    real = notebooks.generate_labs
    monkeypatch.setattr(notebooks, "generate_labs", lambda check_only=False: real(tmp_path, check_only=check_only))
    write_solution(tmp_path, "09_double.ipynb", solution_nb())
    assert notebooks.main(["labs", "--check"]) == 1
    assert "Stale labs" in capsys.readouterr().out
    assert notebooks.main(["labs"]) == 0
    assert notebooks.main(["labs", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def _every_exercise_id() -> list[str]:
    import importlib
    import pkgutil

    import course_lib.labs
    from course_lib.exercises import REGISTRY
    for info in pkgutil.iter_modules(course_lib.labs.__path__):
        importlib.import_module(f"course_lib.labs.{info.name}")
    return sorted(REGISTRY)


@pytest.mark.parametrize("exercise_id", _every_exercise_id())
def test_every_exercise_draws_fresh_and_equal_cases(exercise_id, request):
    """A check must not hand the student objects a previous check touched, nor depend on when it runs."""
    ex = get_exercise(exercise_id)
    if ex.judged:  # a build-and-train case may hold test images (lab06's)
        request.getfixturevalue("real_data")
    a, b = ex.cases(), ex.cases()
    assert len(a) == len(b) > 0, f"{exercise_id}: no cases, or a different number each time"
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, torch.Tensor):
                assert torch.equal(u, v) and u is not v, f"{exercise_id}: a case tensor is shared or differs"
            elif isinstance(u, torch.Generator):
                assert torch.equal(u.get_state(), v.get_state()) and u is not v, f"{exercise_id}: a generator is shared"
