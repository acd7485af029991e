"""Build, train and judge ([18] item 1): lab 03's build_gan check trains the student's whole GAN and judges its
samples, and the written questions reach the instructor (collected by the grader, never scored)."""
import json

import nbformat
import pytest
import torch

from course_lib import check
from course_lib.harness.lab03 import reference_discriminator, reference_generator, train_and_sample
from course_lib.models.gan import GAN, GANConfig, hinge_discriminator_loss, hinge_generator_loss
from course_lib.notebooks import ANSWER_PLACEHOLDER, REPO_ROOT, make_lab


def builder(**config):
    def build_gan(width, seed):
        return GAN(reference_generator(64, width, 28), reference_discriminator(width, 28),
                   GANConfig(z_dim=64, loss="hinge", **config), seed=seed,
                   d_loss=hinge_discriminator_loss, g_loss=hinge_generator_loss)
    return build_gan


@pytest.mark.slow
def test_a_right_build_trains_and_passes(real_data, capsys):
    check("lab03.build_gan", train_and_sample(builder()))
    assert "✓ lab03.build_gan" in capsys.readouterr().out


@pytest.mark.slow
def test_a_build_that_cannot_learn_fails_with_its_fds(real_data):
    with pytest.raises(AssertionError, match=r"it does not train: FD \d+\.\d untrained -> \d+\.\d after training, "
                                             r"expected below 0.8 x the untrained FD"):
        check("lab03.build_gan", train_and_sample(builder(lr_g=0.0, lr_d=0.0)))


def test_a_build_that_returns_something_else_is_named():
    with pytest.raises(TypeError, match="build_gan must return the course's GAN process"):
        check("lab03.build_gan", train_and_sample(lambda width, seed: torch.nn.Linear(2, 2)))


def test_the_lab_shows_a_placeholder_where_the_solution_has_a_model_answer():
    sol = nbformat.read(REPO_ROOT / "solutions" / "03_dcgan.ipynb", as_version=4)
    answers = [c for c in sol.cells if "answer" in c.metadata.get("course", {})]
    assert len(answers) == 2 and all(len(c.source) > 200 for c in answers)
    lab = make_lab(sol)
    shown = [c.source for c in lab.cells if "answer" in c.metadata.get("course", {})]
    assert shown == [ANSWER_PLACEHOLDER] * 2


def test_the_grader_collects_written_answers_for_the_instructor(tmp_path):
    from course_lib.grading.judge import Grade, Outcome, written_answers
    from course_lib.grading.reference import load_reference
    from course_lib.grading.report import write_reports

    ref = load_reference(REPO_ROOT / "solutions" / "03_dcgan.ipynb")
    assert ref.questions == ("lab03.q_hinge", "lab03.q_zoo")
    nb = make_lab(nbformat.read(REPO_ROOT / "solutions" / "03_dcgan.ipynb", as_version=4))
    cell = next(c for c in nb.cells if c.metadata.get("course", {}).get("answer") == "lab03.q_hinge")
    cell.source = "At 2 every score is 0."
    got = written_answers(nb, ref.questions)
    assert got == {"lab03.q_hinge": "At 2 every score is 0.", "lab03.q_zoo": ""}
    grade = Grade("ada", "ada.ipynb", {ex.id: Outcome(0.0, ex.points) for ex in ref.exercises}, 1.0, answers=got)
    csv_path, json_path = write_reports(ref, [grade], tmp_path / "grades", 1.0)
    assert json.loads(json_path.read_text())["submissions"][0]["answers"] == got
    assert csv_path.read_text().splitlines()[1].endswith(",1 of 2")
    md = (tmp_path / "grades.answers.md").read_text()
    assert "## lab03.q_hinge" in md and "At 2 every score is 0." in md and "*(no answer)*" in md


def test_review_flags_data_loaded_in_an_exercise_cell():
    from course_lib.grading.reference import Cell
    from course_lib.grading.review import review

    forged = Cell("def build_gan(width, seed):\n    real = load_data('fashion-mnist', 'train').images\n"
                  "    return real", "exercise", "lab03.build_gan")
    assert "loads data in an exercise cell" in review([forged])
    assert review([Cell("data = course.load_data('fashion-mnist', 'train')", "context")]) == ""
