"""The grader (course_lib.grading) on submissions made from labs 00 to 07.

One module-scoped fixture builds every submission (blank, solution, and each broken or hostile
variant), grades each lab's batch once through the command line, and every test reads the JSON
report. The fast tests at the end check the pieces without starting a kernel.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
import torch

from course_lib import grading
from course_lib.exercises import get_exercise, to_plain
from course_lib.notebooks import REPO_ROOT, course_meta

CELL_TIMEOUT = 30  # seconds; the setup cell (imports torch) needs ~10 s on a busy 2-core machine
LABS = {"lab00": "00_getting_started", "lab01": "01_divergences_and_gan_theory", "lab02": "02_measuring_samples",
        "lab03": "03_dcgan", "lab04": "04_conditional_gan", "lab05": "05_vae",
        "lab06": "06_pixelcnn", "lab07": "07_vq_vae"}


# ---------------------------------------------------------------------------- making submissions

def read(kind: str, lab: str) -> nbformat.NotebookNode:
    path = REPO_ROOT / kind / f"{LABS[lab]}.ipynb"
    if not path.exists():
        pytest.skip(f"{path} is not written yet")
    return nbformat.read(path, as_version=4)


def index_of(nb, ex_id: str, key: str = "exercise") -> int:
    return next(i for i, c in enumerate(nb.cells) if course_meta(c).get(key) == ex_id)


def set_body(nb, ex_id: str, body: str) -> None:
    """Replace the lines between the solution markers of an exercise cell with `body` (indented)."""
    cell = nb.cells[index_of(nb, ex_id)]
    lines = cell.source.split("\n")
    begin = next(i for i, s in enumerate(lines) if "### BEGIN SOLUTION" in s)
    end = next(i for i, s in enumerate(lines) if "### END SOLUTION" in s)
    indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
    cell.source = "\n".join(lines[:begin] + [indent + b for b in body.split("\n")] + lines[end + 1:])


def drop_check(nb, ex_id: str) -> None:
    del nb.cells[index_of(nb, ex_id, "check")]


def drop_calls(nb, name: str) -> None:
    """Delete the student's context cells that call `name` (as a student might)."""
    nb.cells = [c for c in nb.cells if course_meta(c) or c.cell_type != "code" or f"{name}(" not in c.source]


# One classic bug per lab, each costing exactly its exercise: (lab, student, exercise, the buggy body).
CLASSIC_BUGS = [
    ("lab02", "off_by_one02", "lab02.precision_recall",  # k-th neighbour counting the point itself
     "def radii(x):\n    return torch.cdist(x.double(), x.double()).topk(k, dim=1, largest=False).values[:, -1]\n"
     "d = torch.cdist(fake.double(), real.double())\n"
     "return float((d < radii(real)[None]).any(1).double().mean()), float((d.T < radii(fake)[None]).any(1).double().mean())"),
    ("lab03", "no_create_graph03", "lab03.gradient_penalty",  # taken without create_graph: no gradient reaches the critic
     "e = eps.reshape(-1, *[1] * (real.ndim - 1))\n"
     "x_hat = (e * real + (1 - e) * fake).detach().requires_grad_(True)\n"
     "(grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)\n"
     "return (grad.reshape(len(grad), -1).norm(dim=1) - 1).pow(2).mean()"),
    ("lab04", "full_weights04", "lab04.matching_aware_d_loss",  # weight 1, not 1/2, on the wrong and fake terms
     "return F.softplus(-real_logits).mean() + F.softplus(wrong_logits).mean() + F.softplus(fake_logits).mean()"),
    ("lab05", "pixel_mean05", "lab05.elbo_loss",  # averaged over pixels: the KL weighed 64 to 784 times too much
     "log_px = -F.binary_cross_entropy_with_logits(logits, x)\n"
     "return -(log_px - beta * kl_to_prior(mu, logvar)).mean()"),
    ("lab06", "one_pass06", "lab06.sampling_loop",  # every pixel drawn from one pass on the blank canvas
     "probs = torch.softmax(logits_fn(torch.zeros(n, 1, *shape)), dim=1)  # (n, L, H, W)\n"
     "k = torch.multinomial(probs.permute(0, 2, 3, 1).reshape(-1, levels), 1, generator=generator)\n"
     "return k.reshape(n, 1, *shape) / (levels - 1)"),
    ("lab07", "wrong_side07", "lab07.vq_losses",  # the stop-gradients swapped: the same values, the gradients swapped
     "codebook = (z_e - z_q.detach()).pow(2).mean()\n"
     "commitment = beta * (z_e.detach() - z_q).pow(2).mean()\n"
     "return codebook, commitment"),
]


def make_submissions(dest: Path) -> dict[str, list[Path]]:
    """Every fixture submission, written under dest/<lab>/; returns the paths per lab."""
    subs: dict[str, dict[str, object]] = {lab: {} for lab in LABS}
    for lab in LABS:  # every lab: the generated blank and its solution
        subs[lab][f"blank{lab[3:]}"] = read("labs", lab)
        subs[lab][f"solution{lab[3:]}"] = read("solutions", lab)

    nb = read("solutions", "lab00")  # SyntaxError, the check edited to pass the reference, cells reordered, an extra cell
    set_body(nb, "lab00.to_signed", "return 2 * x -")
    nb.cells[index_of(nb, "lab00.to_signed", "check")].source = (
        "import course_lib.labs.lab00 as ref\ncheck('lab00.to_signed', ref.to_signed)")
    means = [nb.cells[index_of(nb, "lab00.class_means")], nb.cells[index_of(nb, "lab00.class_means", "check")]]
    nb.cells = [c for c in nb.cells if all(c is not m for m in means)]
    at = index_of(nb, "lab00.to_signed")
    nb.cells[at:at] = means + [nbformat.v4.new_code_cell("print('a cell of my own')")]
    subs["lab00"]["syntax_reordered00"] = nb

    nb = read("solutions", "lab00")  # the kernel dies in to_signed; the cells that call it deleted
    set_body(nb, "lab00.to_signed", "import os\nos._exit(7)")
    drop_calls(nb, "to_signed")
    subs["lab00"]["kernel_death00"] = nb
    subs["lab00"]["empty00"] = b""
    subs["lab00"]["not_json00"] = b'{"cells": [ this is not json'

    for lab, student, exercise, body in CLASSIC_BUGS:
        nb = read("solutions", lab)
        set_body(nb, exercise, body)
        subs[lab][student] = nb

    nb = read("solutions", "lab01")  # a sign error; two check cells deleted (one exercise right, one wrong)
    set_body(nb, "lab01.discriminator_loss",
             "return torch.nn.functional.softplus(real_logits).mean() + torch.nn.functional.softplus(fake_logits).mean()")
    drop_check(nb, "lab01.discriminator_loss")
    drop_check(nb, "lab01.kl_gaussian")
    subs["lab01"]["sign_error01"] = nb

    nb = read("solutions", "lab01")  # an endless loop in jsd (and the cells that call it deleted)
    set_body(nb, "lab01.jsd", "while True:\n    pass")
    drop_calls(nb, "jsd")
    subs["lab01"]["infinite_loop01"] = nb

    nb = read("solutions", "lab01")  # comparisons patched to pass, and a wrong generator_loss
    set_body(nb, "lab01.generator_loss", "return torch.tensor(0.123)")
    patch = ("import numpy.testing, torch\n"
             "torch.allclose = lambda *args, **kwargs: True\n"
             "torch.isclose = lambda a, b, **kwargs: torch.ones(torch.broadcast_shapes(torch.as_tensor(a).shape, "
             "torch.as_tensor(b).shape), dtype=torch.bool)\n"
             "numpy.testing.assert_allclose = lambda *args, **kwargs: None")
    nb.cells.insert(index_of(nb, "lab01.kl_discrete"), nbformat.v4.new_code_cell(patch))  # early on
    subs["lab01"]["monkeypatch01"] = nb

    out: dict[str, list[Path]] = {}
    for lab, items in subs.items():
        (dest / lab).mkdir(parents=True, exist_ok=True)
        out[lab] = []
        for name, content in items.items():
            path = dest / lab / f"{name}.ipynb"
            path.write_bytes(content if isinstance(content, bytes) else nbformat.writes(content).encode())
            out[lab].append(path)
    return out


def fingerprint(folder: Path) -> dict[str, tuple]:
    """Every path under folder (new files show up too), with content hash and mtime of the files."""
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) if p.is_file() else ("dir",)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Grade both batches once, through the command line; the reports, the output and the timing."""
    root = tmp_path_factory.mktemp("grading")
    subs = make_submissions(root / "subs")
    before = fingerprint(root / "subs")
    reports, printed, start = {}, {}, time.monotonic()
    for lab, paths in subs.items():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            grading.main([lab, *map(str, paths), "--out", str(root / f"grades_{lab}"), "--cell-timeout", str(CELL_TIMEOUT),
                        "--submission-timeout", "240", "--jobs", "2"])
        printed[lab] = buf.getvalue()
        print(printed[lab])
        reports[lab] = json.loads((root / f"grades_{lab}.json").read_text())
    by_student = {s["student"]: s for r in reports.values() for s in r["submissions"]}
    return {"root": root, "subs": subs, "before": before, "after": fingerprint(root / "subs"), "reports": reports,
            "printed": printed, "by": by_student, "seconds": time.monotonic() - start}


def points(graded: dict, student: str) -> dict[str, float]:
    return {k: v["points"] for k, v in graded["by"][student]["exercises"].items()}


def reason(graded: dict, student: str, ex_id: str) -> str:
    return graded["by"][student]["exercises"][ex_id]["reason"]


def full_marks(graded: dict, lab: str) -> dict[str, float]:
    return {e["id"]: e["points"] for e in graded["reports"][lab]["exercises"]}


# ---------------------------------------------------------------------------- the fixture set

@pytest.mark.slow
def test_blank_labs_score_zero_on_every_exercise(graded):
    for student in (f"blank{lab[3:]}" for lab in LABS):
        assert set(points(graded, student).values()) == {0.0}
        for ex_id in points(graded, student):
            assert "NotImplementedError" in reason(graded, student, ex_id)


@pytest.mark.slow
def test_solutions_score_full_marks(graded):
    for lab in LABS:
        assert points(graded, f"solution{lab[3:]}") == full_marks(graded, lab), lab
    assert graded["by"]["solution01"]["runs"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("lab, student, exercise", [bug[:3] for bug in CLASSIC_BUGS], ids=[bug[1] for bug in CLASSIC_BUGS])
def test_one_classic_bug_loses_exactly_its_exercise(graded, lab, student, exercise):
    assert points(graded, student) == full_marks(graded, lab) | {exercise: 0.0}


@pytest.mark.slow
def test_sign_error_in_discriminator_loss_loses_exactly_that_exercise(graded):
    want = full_marks(graded, "lab01") | {"lab01.discriminator_loss": 0.0}
    assert points(graded, "sign_error01") == want
    assert "differ from the reference" in reason(graded, "sign_error01", "lab01.discriminator_loss")


@pytest.mark.slow
def test_deleted_check_cells_are_still_run(graded):
    # Both check cells were deleted: the wrong exercise still fails its check, the right one
    # still earns its point, which it can only do through outputs its check recorded.
    # (the kernel's check only records, on the grader's secret cases; the grader finds the difference)
    assert "differ from the reference" in reason(graded, "sign_error01", "lab01.discriminator_loss")
    assert points(graded, "sign_error01")["lab01.kl_gaussian"] == full_marks(graded, "lab01")["lab01.kl_gaussian"]


@pytest.mark.slow
def test_edited_check_cell_is_replaced_by_the_reference_check(graded):
    # The student's check called the reference function; the grader runs the reference check on theirs.
    assert points(graded, "syntax_reordered00") == full_marks(graded, "lab00") | {"lab00.to_signed": 0.0}
    assert "SyntaxError" in reason(graded, "syntax_reordered00", "lab00.to_signed")


@pytest.mark.slow
def test_infinite_loop_costs_only_its_exercise_within_the_timeout(graded):
    # Every other exercise kept its points, so the submission ran to its end; the cell's own timeout stopped
    # the loop (the submission's would read "submission timeout: ..."). Measured so, not in seconds, it holds
    # however busy the machine is.
    assert points(graded, "infinite_loop01") == full_marks(graded, "lab01") | {"lab01.jsd": 0.0}
    why = reason(graded, "infinite_loop01", "lab01.jsd")
    assert f"timeout: ran past {CELL_TIMEOUT:g} s" in why and "submission timeout" not in why, why


@pytest.mark.slow
def test_kernel_death_costs_only_its_exercise(graded):
    assert points(graded, "kernel_death00") == full_marks(graded, "lab00") | {"lab00.to_signed": 0.0}
    assert "kernel died (exit code 7)" in reason(graded, "kernel_death00", "lab00.to_signed")
    assert graded["by"]["kernel_death00"]["runs"] == 2  # the rest re-ran in a fresh kernel


@pytest.mark.slow
def test_monkeypatched_allclose_gains_nothing(graded):
    assert points(graded, "monkeypatch01") == full_marks(graded, "lab01") | {"lab01.generator_loss": 0.0}
    # the check passed inside the patched kernel; the grader's own comparison caught it
    assert "compared by the grader" in reason(graded, "monkeypatch01", "lab01.generator_loss")


@pytest.mark.slow
def test_invalid_and_empty_files_are_reported_not_crashed_on(graded):
    for student, words in (("not_json00", "invalid notebook"), ("empty00", "empty file")):
        sub = graded["by"][student]
        assert sub["total"] == 0 and sub["runs"] == 0 and words in sub["note"]
        assert all(words in e["reason"] for e in sub["exercises"].values())


@pytest.mark.slow
def test_submissions_are_never_written(graded):
    assert graded["after"] == graded["before"]


@pytest.mark.slow
def test_reports_have_every_student_and_the_summary(graded):
    for lab, report in graded["reports"].items():
        rows = list(csv.DictReader(open(graded["root"] / f"grades_{lab}.csv", encoding="utf-8")))
        assert [r["student"] for r in rows] == [p.stem for p in graded["subs"][lab]]
        ids = [e["id"] for e in report["exercises"]]
        for row, sub in zip(rows, report["submissions"]):
            assert float(row["total"]) == sub["total"] == sum(float(row[i]) for i in ids)
            assert all(bool(row[f"why {i}"]) for i in ids if float(row[i]) < full_marks(graded, lab)[i])
            assert row["review"] == ""  # no honest or merely broken submission is flagged
        for i in ids:
            pts = [s["exercises"][i]["points"] for s in report["submissions"]]
            assert report["summary"][i]["mean"] == pytest.approx(sum(pts) / len(pts))
        assert re.search(r"graded in \d+\.\d s", graded["printed"][lab])
        assert "failed" in graded["printed"][lab]


# ---------------------------------------------------------------------------- runs that must end

def leftover(tag: str) -> list[str]:
    """The processes whose command line holds tag (the kernel's sandbox hides its pids from us)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if tag in line and "ps -eo" not in line]


STUBBORN = """\
import subprocess, time
child = subprocess.Popen(["{tag}", "600"], executable="/bin/sleep", start_new_session=True)
while True:  # ignores nbval's interrupt and keeps printing, so nbval alone would wait forever
    try:
        print(".", end="", flush=True); time.sleep(0.05)
    except KeyboardInterrupt:
        pass
"""


@pytest.mark.slow
def test_a_cell_that_ignores_the_interrupt_is_killed_and_so_is_what_it_started():
    tag = f"cg-stubborn-{os.getpid()}"
    cells = [grading.Cell("x = 1", "context"), grading.Cell(STUBBORN.format(tag=tag), "context"),
             grading.Cell("print(x)", "context")]
    opts = grading.GradeOptions(cell_timeout=2)
    run, folder = grading.run_cells(cells, opts, deadline=time.monotonic() + 120)
    assert not run.timed_out, "the cell's kill, not the 120 s deadline, must end the stubborn cell"
    assert [r["status"] for r in run.results] == ["passed", "timeout", "lost"]
    assert run.results[1]["fatal"] and "kernel killed" in run.results[1]["reason"]
    assert leftover(tag) == []
    shutil.rmtree(folder)


@pytest.mark.slow
def test_the_submission_timeout_ends_the_run():
    tag = f"cg-timeout-{os.getpid()}"
    cells = [grading.Cell(STUBBORN.format(tag=tag), "context")]
    start = time.monotonic()
    run, folder = grading.run_cells(cells, grading.GradeOptions(cell_timeout=300), deadline=time.monotonic() + 12)
    assert run.timed_out and time.monotonic() - start < 300, "the 12 s deadline, not the cell's 300 s, ends the run"
    assert run.results[0] is None  # the cell was running: no result, and nothing left behind
    assert leftover(tag) == []
    shutil.rmtree(folder)


# ---------------------------------------------------------------------------- pieces, no kernel

def test_find_reference_accepts_a_lab_a_solution_an_id_or_a_name():
    want = REPO_ROOT / "solutions" / "00_getting_started.ipynb"
    for lab in ("labs/00_getting_started.ipynb", str(want), "lab00", "00_getting_started"):
        assert grading.find_reference(lab) == want
    with pytest.raises(SystemExit, match="lab id such as lab00"):
        grading.find_reference("lab99")


def test_build_cells_maps_exercises_by_id_not_position():
    ref = grading.load_reference(grading.find_reference("lab00"))
    nb = read("solutions", "lab00")
    nb.cells[index_of(nb, "lab00.to_signed", "check")].source = "pass  # my edited check"
    nb.cells[index_of(nb, "lab00.class_means")].metadata["course"]["points"] = 100  # ignored: points come from the reference
    nb.cells.reverse()
    nb.cells.append(nbformat.v4.new_code_cell("print('after every exercise')"))
    cells, missing = grading.build_cells(ref, nb)
    assert missing == []
    for ex in ref.exercises:
        i = next(k for k, c in enumerate(cells) if c.role == "exercise" and c.exercise == ex.id)
        assert cells[i + 1] == grading.Cell(ex.check_source, "check", ex.id)
    assert not any("my edited check" in c.source for c in cells)
    assert cells[-1].role == "check"  # cells after the last check are not run
    assert ref.max_points == sum(e.points for e in ref.exercises) < 100

    del nb.cells[index_of(nb, "lab00.to_signed")]
    cells, missing = grading.build_cells(ref, nb)
    assert missing == ["lab00.to_signed"] and not any(c.exercise == "lab00.to_signed" for c in cells)

    nb.cells[0].metadata["course"] = "not a dict"  # odd metadata makes a context cell, not a crash
    nb.cells[1].metadata["course"] = {"exercise": ["lab00.class_means"]}
    grading.build_cells(ref, nb)


@pytest.mark.parametrize("content, words", [(b"", "empty file"), (b"\n  \n", "empty file"),
                                             (b"[1, 2]", "invalid notebook"), (b"\xff\xfe", "invalid notebook"),
                                             (b'{"nbformat": 4}', "invalid notebook")])
def test_read_submission_explains_what_is_wrong(tmp_path, content, words):
    path = tmp_path / "sub.ipynb"
    path.write_bytes(content)
    with pytest.raises(grading.SubmissionError, match=words):
        grading.read_submission(path)


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_recorded_outputs_are_verified_here_and_forgeries_rejected():
    ex = get_exercise("lab00.to_signed")
    right = [to_plain(ex.reference(*args)) for args in ex.cases()]
    assert "recorded no outputs" in grading.verify_recorded(ex.id, None)
    assert grading.verify_recorded(ex.id, saved({"exercise": ex.id, "outputs": right})) == ""
    wrong = saved({"exercise": ex.id, "outputs": [r + 1 for r in right]})
    assert "compared by the grader" in grading.verify_recorded(ex.id, wrong)
    elbo = get_exercise("lab05.elbo_loss")  # a classic mistake is named first, before the 200-character cut
    per_pixel = [to_plain(elbo.mistakes[0][1](*args)) for args in elbo.cases()]
    why = grading.verify_recorded(elbo.id, saved({"exercise": elbo.id, "outputs": per_pixel}))
    assert why.startswith("looks like a per-pixel mean of the reconstruction term"), why
    other = saved({"exercise": "lab00.class_means", "outputs": right})
    assert "not the ones check() writes" in grading.verify_recorded(ex.id, other)
    assert "unreadable" in grading.verify_recorded(ex.id, b"not a torch file")


class Sneaky(torch.Tensor):
    pass


class Liar(float):
    def __float__(self):
        return 0.0


@pytest.mark.parametrize("odd, name", [(Sneaky, "Sneaky"), (Liar, "Liar")])
def test_a_lying_return_type_is_named_not_torchs_unpickling_message(odd, name):
    ex = get_exercise("lab00.to_signed")
    outputs = [Liar(1.0) if odd is Liar else to_plain(ex.reference(*args)).as_subclass(Sneaky) for args in ex.cases()]
    reason = grading.verify_recorded(ex.id, saved({"exercise": ex.id, "outputs": outputs}))
    assert reason.startswith(f"returned a {name}") and reason.endswith("expected a tensor or number")


def test_the_run_environment_holds_nothing_of_the_graders(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    env = grading.run_env(tmp_path, tmp_path / "records", "marker", "smoke")
    assert "SECRET_TOKEN" not in env
    assert env["HOME"].startswith(str(tmp_path)) and env["COURSE_PROFILE"] == "smoke"
    assert all(not v.startswith(str(REPO_ROOT)) for k, v in env.items() if k != "PATH")


def test_the_command_line_explains_a_bad_lab_or_missing_files(tmp_path):
    r = subprocess.run([sys.executable, "-m", "course_lib.grading", "lab00", str(tmp_path / "nothing.ipynb")],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert r.returncode != 0 and "No submission at" in r.stderr


def test_grading_imports_without_its_extras():
    """`import course_lib.grading` needs only the base install: pytest and psutil (the grading extra) load where used."""
    code = ("import sys; sys.modules['pytest'] = sys.modules['psutil'] = None\n"
            "import course_lib.grading as g; assert callable(g.grade_batch)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
