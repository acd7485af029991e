"""Secret cases ([17] finding 2): what a grading run's cases are, and why a kernel cannot forge its answers.

The grader draws each run's cases with a secret salt (course_lib.exercises.salted) and hands the kernel only
their inputs. These tests hold that up for every registered exercise: the salted cases are plain data, differ
from the ones a student sees at home, are answered right by the reference, and are answered wrong by a table
of the answers to the home cases (the lookup table that passed lab 04 and lab 06 before). The end-to-end
forgeries, in a real sandboxed grading run, are in tests/test_grade_sandbox_holds.py.
"""
import importlib
import io
import pkgutil
import threading

import pytest
import torch

from course_lib.exercises import (REGISTRY, _run, case_generator, case_seed, draw_cases, get_exercise, salted,
                                  to_plain, verify)

SALTS = (0x5EC12E7, 0x1234567890ABC)  # two of the grader's secrets (it draws a fresh 62-bit one per run)


def every_exercise_id() -> list[str]:
    import course_lib.labs

    for info in pkgutil.iter_modules(course_lib.labs.__path__):
        importlib.import_module(f"course_lib.labs.{info.name}")
    return sorted(REGISTRY)


def through_a_file(cases: list[tuple]) -> list[tuple]:
    """As the kernel gets them: saved by the grader, loaded with weights_only (plain data only)."""
    buf = io.BytesIO()
    torch.save(cases, buf)
    buf.seek(0)
    return [tuple(c) for c in torch.load(buf, map_location="cpu", weights_only=True)]


def same(a, b) -> bool:
    a, b = to_plain(a), to_plain(b)
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def test_the_salt_changes_every_seed_and_zero_is_home():
    assert case_seed(7) == 7 and torch.equal(case_generator(7).get_state(), torch.Generator().manual_seed(7).get_state())
    with salted(SALTS[0]):
        a = case_seed(7)
    with salted(SALTS[1]):
        b = case_seed(7)
    assert len({7, a, b}) == 3 and 0 <= a < 2**63 and 0 <= b < 2**63
    with salted(SALTS[0]):
        assert case_seed(7) == a, "the same salt must draw the same cases: the grader verifies with it"


@pytest.mark.parametrize("exercise_id", every_exercise_id())
def test_secret_cases_are_plain_new_and_only_the_right_answer_passes(exercise_id, request):
    ex = get_exercise(exercise_id)
    if ex.judged:  # a build-and-train case may hold test images (lab06's)
        request.getfixturevalue("real_data")
    home_cases = draw_cases(ex)
    home_answers = _run(exercise_id, ex.reference, through_a_file(home_cases))
    for salt in SALTS:
        with salted(salt):
            cases = through_a_file(draw_cases(ex))  # raises if a case is not plain data
        assert not same(cases, home_cases), f"{exercise_id}: salt {salt:#x} draws the cases a student sees at home"
        if ex.judged:  # no reference output to replay: its compare judges behaviour (tests/test_build_and_train.py)
            continue
        answers = _run(exercise_id, ex.reference, cases)  # what the kernel computes, with the reference's code
        with salted(salt):
            assert verify(ex, answers) == len(cases)
            with pytest.raises(AssertionError):  # a table of the home answers, replayed
                verify(ex, home_answers)


@pytest.mark.parametrize("exercise_id", ["lab03.gradient_penalty", "lab03.generator", "lab06.causality_check"])
def test_two_grading_threads_draw_and_verify_their_own_cases(exercise_id):
    """Some cases seed torch's global generator for a moment; with --jobs 2 one thread drew the other's critic
    weights, and a right gradient penalty scored 0 (seen on the first two submissions of a batch)."""
    ex = get_exercise(exercise_id)
    want, answers = {}, {}
    for salt in SALTS:  # what each run's kernel gets and answers (in its own process: not here, in the threads)
        with salted(salt):
            want[salt] = through_a_file(draw_cases(ex))
        answers[salt] = _run(exercise_id, ex.reference, want[salt])
    failures: list[str] = []

    def grade(salt: int) -> None:
        for _ in range(6):
            with salted(salt):
                cases = draw_cases(ex)
                if not same(cases, want[salt]):
                    failures.append(f"salt {salt:#x}: other cases")
                try:
                    verify(ex, answers[salt])
                except AssertionError as e:
                    failures.append(f"salt {salt:#x}: {e}")

    threads = [threading.Thread(target=grade, args=(s,)) for s in SALTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]


def test_draw_cases_refuses_what_a_kernel_could_not_load():
    from course_lib.exercises import Exercise

    ex = Exercise("labx.odd", lambda: [(torch.nn.Linear(2, 2),)], lambda m: 0)
    with pytest.raises(TypeError, match=r"labx.odd, case 1: a case must be plain data .* found a Linear; "
                                        r"build it in course_lib.harness.prepare"):
        draw_cases(ex)


def test_in_grading_mode_check_records_the_graders_inputs_and_judges_nothing(tmp_path, monkeypatch, capsys):
    """check() in a graded kernel: runs the function on $COURSE_GRADE_CASES, records, prints no verdict."""
    from course_lib.exercises import GRADE_CASES_VAR, GRADE_DIR_VAR, check

    ex = get_exercise("lab01.kl_discrete")
    with salted(SALTS[0]):
        cases = draw_cases(ex)
    (tmp_path / "cases").mkdir()
    (tmp_path / "records").mkdir()
    torch.save(cases, tmp_path / "cases" / "lab01.kl_discrete.pt")
    monkeypatch.setenv(GRADE_CASES_VAR, str(tmp_path / "cases"))
    monkeypatch.setenv(GRADE_DIR_VAR, str(tmp_path / "records"))
    check("lab01.kl_discrete", lambda p, q: torch.zeros(()))  # wrong, and no error here: the grader judges
    assert "recorded for the grader" in capsys.readouterr().out
    outputs = torch.load(tmp_path / "records" / "lab01.kl_discrete.pt", weights_only=True)["outputs"]
    assert len(outputs) == len(cases)
    with salted(SALTS[0]), pytest.raises(AssertionError, match="expected shape"):
        verify(ex, outputs)
    with pytest.raises(AssertionError, match="the grader left no cases for this exercise"):
        check("lab01.jsd", lambda p, q: torch.zeros(()))
