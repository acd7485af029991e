"""Fair to honest students ([17] finding 7): one mistake costs one exercise, and an answer is graded where it is.

- Where one exercise builds on another (lab01's jsd on kl_discrete, lab05's elbo_loss on kl_to_prior,
  lab06's MaskedConv2d on causal_mask), the later one is checked with the earlier one's reference in
  its place: a wrong kl_discrete no longer costs jsd too, and the student's own function is back after.
- An answer moved into a new cell without the exercise's metadata (the tagged cell deleted) is found
  by the function or class it defines, instead of scoring 0 as "missing exercise".
"""
from __future__ import annotations

import json

import nbformat
import pytest

from course_lib import grading
from course_lib.exercises import check, get_exercise
from course_lib.notebooks import REPO_ROOT, course_meta

WRONG_KL = "def kl_discrete(p, q):\n    return (q * (q / p).log()).sum(-1)  # the arguments swapped\n"
JSD = ("def jsd(p, q):\n    m = (p + q) / 2\n"
       "    return 0.5 * kl_discrete(p, m) + 0.5 * kl_discrete(q, m)\n")


def namespace_with(*sources: str) -> dict:
    """A notebook's namespace after running these cells (as the kernel's user namespace would be)."""
    ns: dict = {"__name__": "__main__"}
    exec("import torch", ns)  # noqa: S102 (test code builds a student's namespace)
    for source in sources:
        exec(source, ns)  # noqa: S102
    return ns


def test_a_wrong_earlier_exercise_costs_only_itself():
    ns = namespace_with(WRONG_KL, JSD)
    with pytest.raises(AssertionError):  # the wrong kl_discrete still fails its own check
        check("lab01.kl_discrete", ns["kl_discrete"])
    check("lab01.jsd", ns["jsd"])  # a right jsd passes although it calls the wrong kl_discrete
    assert ns["kl_discrete"].__code__.co_filename == "<string>", "the student's own function is back after the check"


def test_a_wrong_later_exercise_still_fails_with_the_earlier_replaced():
    ns = namespace_with(WRONG_KL, JSD.replace("0.5 * kl_discrete(q, m)", "0.5 * kl_discrete(m, q)"))
    with pytest.raises(AssertionError):
        check("lab01.jsd", ns["jsd"])
    assert ns["kl_discrete"].__code__.co_filename == "<string>", "restored after a failing check too"


def test_a_class_that_builds_on_an_earlier_function_is_checked_with_its_reference():
    ns = namespace_with(
        "import torch.nn as nn, torch.nn.functional as F",
        "def causal_mask(kind, kernel_size):\n    return torch.ones(kernel_size, kernel_size)  # wrong: no mask\n",
        "class MaskedConv2d(nn.Conv2d):\n"
        "    def __init__(self, cin, cout, k, kind):\n"
        "        super().__init__(cin, cout, k, padding=k // 2)\n"
        "        self.register_buffer('mask', causal_mask(kind, k))\n"
        "    def forward(self, x):\n"
        "        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)\n")
    with pytest.raises(AssertionError):
        check("lab06.masks", ns["causal_mask"])
    from course_lib.harness.lab06 import conv_outputs  # as the check cell does: the wrapper holds the student's class

    check("lab06.masked_conv", conv_outputs(ns["MaskedConv2d"]))
    assert ns["causal_mask"].__code__.co_filename == "<string>"


@pytest.mark.parametrize("lab, exercise", [("01_divergences_and_gan_theory", "lab01.kl_gaussian"),
                                           ("06_pixelcnn", "lab06.masked_conv")])
def test_an_answer_in_an_untagged_cell_is_graded_not_missing(lab, exercise):
    ref = grading.load_reference(REPO_ROOT / "solutions" / f"{lab}.ipynb")
    nb = nbformat.read(REPO_ROOT / "solutions" / f"{lab}.ipynb", as_version=4)
    k = next(i for i, c in enumerate(nb.cells) if course_meta(c).get("exercise") == exercise)
    answer = nb.cells[k].source
    del nb.cells[k]  # the tagged cell deleted; the answer pasted into a fresh cell further down
    nb.cells.insert(k + 1, nbformat.v4.new_code_cell(answer))
    cells, missing = grading.build_cells(ref, nb)
    assert exercise not in missing
    i = next(i for i, c in enumerate(cells) if c.role == "exercise" and c.exercise == exercise)
    assert cells[i].source == answer
    assert any(c.role == "check" and c.exercise == exercise for c in cells[i + 1:])

    del nb.cells[k + 1]  # gone for good: still missing, with the reason
    assert exercise in grading.build_cells(ref, nb)[1]


def test_every_builds_on_names_an_exercise_of_the_same_lab_and_a_name_its_solution_uses():
    for lab in sorted((REPO_ROOT / "solutions").glob("*.ipynb")):
        nb = json.loads(lab.read_text(encoding="utf-8"))
        sources = {course_meta(c).get("exercise"): "".join(c["source"]) for c in nb["cells"]}
        for ex_id, source in sources.items():
            if not ex_id:
                continue
            for name, other in get_exercise(ex_id).builds_on:
                assert other.split(".")[0] == ex_id.split(".")[0] and other in sources, (ex_id, other)
                assert name in source, f"{ex_id} builds on {name!r}, which its solution never calls"


def test_review_and_reference_parse_one_thread_at_a_time(monkeypatch):
    """CPython 3.11's ast.parse keeps its recursion count in shared state (python/cpython#106905): with --jobs 2 a
    submission got 'grader error (SystemError: AST constructor recursion depth mismatch)' in CI. The race is too
    rare to provoke on demand, so this checks the cure: no two grading threads are ever inside ast.parse at once."""
    import ast
    import threading
    import time

    from course_lib.grading.reference import Cell, defined_names
    from course_lib.grading.review import review

    real, inside, most, lock = ast.parse, [0], [0], threading.Lock()

    def slow_parse(*args, **kwargs):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.002)  # a wide window for the other thread
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(ast, "parse", slow_parse)
    source = (REPO_ROOT / "solutions" / "05_vae.ipynb").read_text(encoding="utf-8")
    cells = [Cell("".join(c["source"]), "context") for c in json.loads(source)["cells"] if c["cell_type"] == "code"]

    def work() -> None:
        for _ in range(3):
            review(cells)
            for c in cells:
                defined_names(c.source)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1, "two grading threads were inside ast.parse at once"
