"""The grader against hostile and careless submissions of lab 01, each kernel in its bwrap sandbox.

One batch (through the command line, --jobs 2, --require-sandbox) holds every case of issue 8:
forged bookkeeping, a thread forging records, a daemon aimed at the next student, a double-forked
process, a cell that kills the grader, exit() in an exercise and in the setup cell (three times
the same file), the answer below the stub, a patched collect(), the imported reference, reading
solutions/, lying return types and a cell timeout; and the forgeries that earned points from a blank lab
before each run had secret cases (a check() of one's own, check.__globals__, frame walking, a table of
the answers seen at home). EXPECTED is the fair score of each; `ps`
before and after checks that nothing any of them started is still alive.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.sandbox import find_bwrap
from course_lib.notebooks import REPO_ROOT, course_meta

pytestmark = pytest.mark.skipif(find_bwrap()[0] is None, reason=f"no sandbox here: {find_bwrap()[1]}")

LAB = "01_divergences_and_gan_theory"
CELL_TIMEOUT = 30  # the setup cell imports torch: ~10 s on a busy 2-core machine
TAG = "cgfix"  # in the command line of every process a fixture starts, for `ps`
IDS = ["kl_discrete", "kl_gaussian", "jsd", "optimal_discriminator", "discriminator_loss", "generator_loss",
       "mode_coverage"]


def notebook(kind: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO_ROOT / kind / f"{LAB}.ipynb", as_version=4)


def at(nb, name: str, key: str = "exercise") -> int:
    return next(i for i, c in enumerate(nb.cells) if course_meta(c).get(key) == f"lab01.{name}")


def add(nb, source: str, where: int = 2) -> nbformat.NotebookNode:
    nb.cells.insert(where, nbformat.v4.new_code_cell(source))
    return nb


def body(nb, name: str, first_line: str) -> nbformat.NotebookNode:
    """Put a line at the top of the function body of an exercise (after its docstring)."""
    cell = nb.cells[at(nb, name)]
    lines = cell.source.split("\n")
    k = next(i for i, s in enumerate(lines) if "### BEGIN SOLUTION" in s)
    indent = lines[k][: len(lines[k]) - len(lines[k].lstrip())]
    cell.source = "\n".join(lines[: k + 1] + [indent + first_line] + lines[k + 1:])
    return nb


def below_stubs(nb, source_of) -> nbformat.NotebookNode:
    """A new cell under each exercise cell (the check stays below it), as students do."""
    for name in IDS:
        add(nb, source_of(name), at(nb, name) + 1)
    return nb


REFERENCE_OUTPUTS = """\
from course_lib.exercises import get_exercise, to_plain
forged = {{i: {{"exercise": i, "outputs": [to_plain(get_exercise(i).reference(*a)) for a in get_exercise(i).cases()]}}
          for i in {ids!r}}}
""".format(ids=[f"lab01.{n}" for n in IDS])

FORGED_LOG = REFERENCE_OUTPUTS + """\
import glob, json, os, torch
for i, rec in forged.items():
    torch.save(rec, os.path.join(os.environ["COURSE_GRADE_DIR"], f"{i}.pt"))
for log in glob.glob("/tmp/course-grade-*/**/*.jsonl", recursive=True) + ["/tmp/cells.jsonl"]:
    with open(log, "a") as f:
        for k in range(60):
            f.write(json.dumps({"cell": k, "status": "passed", "fatal": False, "reason": "", "seconds": 0}) + "\\n")
"""

FORGING_THREAD = REFERENCE_OUTPUTS + """\
import os, threading, torch
def forge():
    while True:
        for i, rec in forged.items():
            torch.save(rec, os.path.join(os.environ["COURSE_GRADE_DIR"], f"{i}.pt"))
threading.Thread(target=forge, daemon=True).start()
"""

DAEMON = """\
import os, subprocess, sys
code = '''
import glob, json, time
end = time.time() + 120
while time.time() < end:
    for log in glob.glob("/tmp/course-grade-*/**/*.jsonl", recursive=True):
        open(log, "a").write(json.dumps({"cell": 0, "status": "error", "fatal": True, "reason": "made up"}) + "\\\\n")
    time.sleep(0.05)
'''
if os.fork() == 0:
    os.setsid()
    subprocess.Popen([sys.executable, "-c", code, "TAG-daemon"], start_new_session=True, env={})
    os._exit(0)
""".replace("TAG", TAG)

DOUBLE_FORK = """\
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve("/bin/sleep", ["TAG-orphan", "600"], {})
    os._exit(0)
os.wait()
""".replace("TAG", TAG)

KILL_GRADER = """\
import os, signal
def parent(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("PPid:")))
pid = parent(os.getpid())
while pid > 1:
    up = parent(pid)
    os.kill(pid, signal.SIGKILL)
    pid = up
print("my grandparents:", pid)
"""

PATCHED_COLLECT = """\
import course_lib.exercises as ex
ex.collect = lambda exercise, fn: [ex.to_plain(exercise.reference(*args)) for args in exercise.cases()]
"""

READ_SOLUTIONS = """\
import json, os, course_lib
solution = os.path.join(os.path.dirname(course_lib.__file__), "..", "solutions", "01_divergences_and_gan_theory.ipynb")
for cell in json.load(open(solution))["cells"]:
    if cell["cell_type"] == "code" and "exercise" in cell["metadata"].get("course", {}):
        exec("".join(cell["source"]))
"""

LYING = """\
class Sneaky(torch.Tensor):
    pass
class Liar(float):
    def __float__(self):
        return 0.0
"""



# -- forged records: a blank lab trying every way to points without solving ([17] finding 2) ----------------

FORGER = r'''
import base64, io, os, sys, threading, time
import torch
HOME_ANSWERS = torch.load(io.BytesIO(base64.b64decode(PAYLOAD)), weights_only=True)  # {id: [(inputs, outputs)]}

def same(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b

def forge_records(ex_id):
    """Write the answers seen at home where the grader reads check()'s records."""
    from course_lib.checkpoint import atomic_save
    folder = os.environ["COURSE_GRADE_" + "DIR"]
    atomic_save({"exercise": ex_id, "outputs": [out for _, out in HOME_ANSWERS[ex_id]]}, os.path.join(folder, ex_id + ".pt"))

def answer(ex_id, args):
    """The home answer of a case with these inputs, or else the first one (a lookup table)."""
    for inputs, out in HOME_ANSWERS[ex_id]:
        if same(list(inputs), list(args)):
            return out
    return HOME_ANSWERS[ex_id][0][1]
'''

TECHNIQUES = {  # technique -> (code in the helpers' cell, the body of each exercise function it answers)
    # a table of the answers to the cases seen at home, looked up by the inputs
    "lookup": ("", "return answer({id!r}, args)"),
    # the real check's globals: get_exercise, and the reference it holds
    "globals": ("", "return getattr(check, '__glo' + 'bals__')['get_exercise']({id!r}).reference(*args)"),
    # up the stack from the function to the check, and whatever reference a frame there holds
    "frames": ("", "f = sys._getframe(1)\n    while f is not None:\n"
                   "        for v in list(f.f_locals.values()):\n"
                   "            if hasattr(v, 'reference') and getattr(v, 'id', None) == {id!r}:\n"
                   "                return v.reference(*args)\n        f = f.f_back\n"
                   "    raise NotImplementedError"),
    # check() of one's own: it writes the home answers where the grader reads them (a thread doing the same
    # whatever check() does is FORGING_THREAD above)
    "own_check": ("def check(exercise_id, fn):\n    forge_records(exercise_id)\n", "raise NotImplementedError"),
}


def home_answers_payload() -> str:
    import base64
    import io

    import torch

    from course_lib.exercises import _run, draw_cases, get_exercise

    table = {}
    for name in IDS:
        ex = get_exercise(f"lab01.{name}")
        cases = draw_cases(ex)  # salt 0: the cases every student sees at home
        table[ex.id] = list(zip(cases, _run(ex.id, ex.reference, cases)))
    buf = io.BytesIO()
    torch.save(table, buf)
    return base64.b64encode(buf.getvalue()).decode()


def forged_lab01(techniques: list[str], payload: str) -> nbformat.NotebookNode:
    """A blank lab 01 whose exercises are answered by these techniques in turn, their helpers after the setup cell."""
    nb = notebook("labs")
    first = next(k for k, c in enumerate(nb.cells) if c.cell_type == "code")
    setup = "".join(TECHNIQUES[t][0] for t in techniques)
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(f"PAYLOAD = {payload!r}\n{FORGER}\n{setup}"))
    for k, name in enumerate(IDS):
        body = TECHNIQUES[techniques[k % len(techniques)]][1].format(id=f"lab01.{name}")
        nb.cells[at(nb, name)].source = f"def {name}(*args):\n    {body}"
    return nb


def solution_source(name: str) -> str:
    nb = notebook("solutions")
    return nb.cells[at(nb, name)].source


def submissions() -> dict[str, tuple[nbformat.NotebookNode, float, bool]]:
    """student -> (notebook, expected total of 7, flagged for review)."""
    blank, sol = lambda: notebook("labs"), lambda: notebook("solutions")
    payload = home_answers_payload()
    exits = body(body(body(sol(), "jsd", "exit()"), "kl_gaussian", "quit()"), "optimal_discriminator",
                 "import sys; sys.exit(3)")
    exits = body(exits, "mode_coverage", "import os; os._exit(5)")
    setup_exit = sol()
    setup_exit.cells[1].source += "\nexit()"
    lying = add(sol(), LYING, 2)
    add(lying, "_kl = kl_discrete\nkl_discrete = lambda p, q: _kl(p, q).as_subclass(Sneaky)", at(lying, "kl_discrete") + 1)
    add(lying, "_g = generator_loss\ngenerator_loss = lambda f: Liar(float(_g(f)))", at(lying, "generator_loss") + 1)
    slow = sol()
    slow.cells[at(slow, "jsd")].source += "\nimport time\nwhile True:\n    time.sleep(0.1)"
    return {
        "forged_log": (add(blank(), FORGED_LOG), 0, True),
        "forged_thread": (add(blank(), FORGING_THREAD), 0, True),
        "daemon": (add(blank(), DAEMON), 0, False),
        "killer": (add(sol(), KILL_GRADER), 7, False),
        "solution_after": (sol(), 7, False),
        "double_fork": (add(sol(), DOUBLE_FORK), 7, False),
        "exits_a": (exits, 3, False),
        "exits_b": (exits, 3, False),
        "exits_c": (exits, 3, False),
        "exit_in_setup": (setup_exit, 7, False),
        "answer_below_stub": (below_stubs(blank(), solution_source), 7, False),
        # 7 of 7 before secret cases: in grading mode the kernel holds no reference to collect or import
        "patched_collect": (add(blank(), PATCHED_COLLECT), 0, True),
        "imported_reference": (below_stubs(blank(), lambda n: (
            "from course_lib.exercises import get_exercise\n"
            f"{n} = get_exercise('lab01.{n}').reference")), 0, True),
        "read_solutions": (below_stubs(blank(), lambda n: READ_SOLUTIONS), 0, True),
        "lying_types": (lying, 5, False),  # jsd reuses kl_discrete, but is checked with the reference kl_discrete
        "timeout_kept": (slow, 7, False),
        # each of these earned points from a blank lab before secret cases ([17] finding 2): now 0 whatever they write
        "forged_answers": (forged_lab01(["lookup", "globals", "frames"], payload), 0, True),  # each on 2 or 3 exercises
        "forged_check": (forged_lab01(["own_check"], payload), 0, True),
    }


def ps_tagged() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if TAG in line and "ps -eo" not in line]


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hostile")
    subs = submissions()
    paths = []
    for name, (nb, _, _) in subs.items():
        paths.append(root / "subs" / f"{name}.ipynb")
        paths[-1].parent.mkdir(exist_ok=True)
        paths[-1].write_text(nbformat.writes(nb), encoding="utf-8")
    before = ps_tagged()
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "course_lib.grading", "lab01", *map(str, paths), "--out",
                        str(root / "out" / "grades"), "--cell-timeout", str(CELL_TIMEOUT), "--submission-timeout", "200",
                        "--jobs", "2", "--require-sandbox"], capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - start
    print(r.stdout[-6000:], r.stderr[-3000:])
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((root / "out" / "grades.json").read_text())
    print(f"\nhostile batch: {len(paths)} submissions in {seconds:.0f} s")
    return {"by": {s["student"]: s for s in report["submissions"]}, "subs": subs, "before": before,
            "after": ps_tagged(), "report": report, "seconds": seconds}


def test_every_case_gets_its_fair_score(batch):
    got = {name: batch["by"][name]["total"] for name in batch["subs"]}
    want = {name: float(expected) for name, (_, expected, _) in batch["subs"].items()}
    print("\n".join(f"{n:<20} expected {want[n]:g}  got {got[n]:g}" for n in want))
    assert got == want
    assert batch["report"]["sandbox"] == "bwrap" and batch["report"]["complete"]


def test_review_flags_the_cheats_and_no_one_else(batch):
    for name, (_, _, flagged) in batch["subs"].items():
        assert bool(batch["by"][name]["review"]) == flagged, (name, batch["by"][name]["review"])
    assert "monkeypatches course_lib.exercises.collect" in batch["by"]["patched_collect"]["review"]
    assert "course_lib.exercises" in batch["by"]["imported_reference"]["review"]
    assert "course_lib.__file__" in batch["by"]["read_solutions"]["review"]


def test_nothing_a_submission_started_outlives_the_batch(batch):
    assert batch["before"] == [] and batch["after"] == []


def reasons(batch, student: str) -> dict[str, str]:
    return {k.split(".", 1)[1]: v["reason"] for k, v in batch["by"][student]["exercises"].items()}


def test_exit_costs_only_the_cell_that_called_it_every_time(batch):
    runs = [reasons(batch, s) for s in ("exits_a", "exits_b", "exits_c")]
    assert runs[0] == runs[1] == runs[2]
    lost = {k for k, v in runs[0].items() if v}
    assert lost == {"jsd", "kl_gaussian", "optimal_discriminator", "mode_coverage"}
    assert "SystemExit" in runs[0]["jsd"] and "exit code 5" in runs[0]["mode_coverage"]


def test_clear_reasons_for_lying_types_and_timeouts(batch):
    why = reasons(batch, "lying_types")
    assert why["kl_discrete"].startswith("returned a Sneaky") and "expected a tensor or number" in why["kl_discrete"]
    assert why["generator_loss"].startswith("returned a Liar")
    kept = batch["by"]["timeout_kept"]["exercises"]["lab01.jsd"]
    assert kept["points"] == 1 and "full points" in kept["reason"] and "timeout" in kept["reason"]


# ---------------------------------------------------------------------------- a grader killed mid-batch

SLEEPER = 'import subprocess\nsubprocess.run(["TAG-sleeper", "600"], executable="/bin/sleep")'.replace("TAG", TAG)


def test_a_killed_grader_leaves_nothing_running_and_resume_keeps_the_finished_rows(tmp_path):
    first, second = tmp_path / "a_invalid.ipynb", tmp_path / "b_sleeper.ipynb"
    first.write_text('{"cells": [ not json')
    second.write_text(nbformat.writes(add(notebook("labs"), SLEEPER)))
    out = tmp_path / "grades"
    cmd = [sys.executable, "-m", "course_lib.grading", "lab01", str(first), str(second), "--out", str(out),
           "--cell-timeout", "300", "--require-sandbox"]
    grader = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not ps_tagged() and time.monotonic() < deadline:  # the sleeper's cell is running in its kernel
        time.sleep(0.5)
    assert ps_tagged(), "the sleeping cell never started"
    rows = json.loads((tmp_path / "grades.json").read_text())["submissions"]
    assert [r["student"] for r in rows] == ["a_invalid"]  # written as soon as it was graded
    os.kill(grader.pid, signal.SIGKILL)
    grader.wait()
    deadline = time.monotonic() + 20
    while ps_tagged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ps_tagged() == []  # pytest died with the grader, the sandbox with pytest

    second.write_text("")  # graded again by --resume (now at once); the first row is kept as it was
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "1 of 2 already graded" in r.stdout
    report = json.loads((tmp_path / "grades.json").read_text())
    assert [s["student"] for s in report["submissions"]] == ["a_invalid", "b_sleeper"]
    assert report["submissions"][0] == rows[0] and "empty file" in report["submissions"][1]["note"]


def test_require_sandbox_refuses_and_no_sandbox_warns(tmp_path, monkeypatch):
    from course_lib.grading import report

    monkeypatch.setattr(report, "find_bwrap", lambda: (None, "bwrap was not found on PATH"))
    opts = report.GradeOptions()
    with pytest.raises(SystemExit, match="--require-sandbox: no sandbox.*bwrap was not found"):
        report.sandbox_status(opts, require=True)
    assert report.sandbox_status(opts, require=False).startswith("none")


# -- the review, in the grader's process (no kernel): fast ---------------------------------------------------
@pytest.mark.parametrize("source", [
    "from course_lib.divergences import jsd_discrete\njsd = jsd_discrete",
    "from course_lib import divergences as dv\ndef jsd(p, q):\n    return dv.jsd_discrete(p, q)",
    "import course_lib.divergences\njsd = course_lib.divergences.jsd_discrete",
])
def test_review_flags_the_library_function_an_exercise_is_checked_against(source):
    from course_lib.grading.reference import Cell
    from course_lib.grading.review import reference_paths, review

    flags = review([Cell(source, "exercise", "lab01.jsd")], reference_paths(["lab01.jsd", "lab01.kl_discrete"]))
    assert "course_lib.divergences.jsd_discrete, the reference that lab01.jsd is checked against" in flags


@pytest.mark.parametrize("lab", sorted(p.stem for p in (Path(__file__).parent.parent / "solutions").glob("*.ipynb")))
def test_review_never_flags_an_honest_solution(lab):
    import nbformat

    from course_lib.grading.reference import Cell
    from course_lib.grading.review import reference_paths, review
    from course_lib.notebooks import REPO_ROOT, course_meta, exercises_of

    nb = nbformat.read(REPO_ROOT / "solutions" / f"{lab}.ipynb", as_version=4)
    cells = [Cell(c.source, "exercise" if "exercise" in course_meta(c) else "context", course_meta(c).get("exercise"))
             for c in nb.cells if c.cell_type == "code" and "check" not in course_meta(c)]  # roles as the grader sees them
    assert review(cells, reference_paths(ex.id for ex in exercises_of(nb))) == ""
