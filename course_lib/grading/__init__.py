"""Grade a folder of student submissions of one lab: points per exercise, on pytest and nbval.

    python -m course_lib.grading labs/01_divergences_and_gan_theory.ipynb subs/*.ipynb --out grades
    make grade LAB=lab01 SUBMISSIONS='subs/*.ipynb' OUT=grades      # the same

LAB is a lab, its solution, a lab id (lab01) or a name (01_divergences_and_gan_theory); the
reference is always solutions/<name>.ipynb. It writes grades.csv and grades.json and prints the
table and, per exercise, the mean score and the failure rate.

For each submission (the file is only ever read):
1. An empty or invalid file scores 0 on every exercise, with the reason.
2. A graded notebook is built in a temp folder (reference.py): the student's code cells, without
   any check cell of theirs, and the reference check of each exercise (found by the id in its
   metadata, never by position) where the student's own check cell was, or else right after the
   exercise cell. No such cell: "missing exercise".
3. pytest --nbval-lax runs it (run.py), with a per-cell and a per-submission timeout; the kernel
   runs in its own bwrap sandbox (sandbox.py) as an unprivileged user with no capabilities, also
   when the grader is root: no network, its own PID namespace, the course read-only without
   solutions/, no view of the grader or other students. A kernel that cannot start at all is the
   grader's fault: the batch stops with one line instead of handing out zeros. `plugin.py`, in pytest,
   reports each cell through a pipe and reads each check's record once, right after the check.
4. If the kernel died or had to be killed, the cell that did it is dropped and the rest re-run in
   a fresh kernel, so a crash or an endless loop costs only the exercise it is in (judge.py).
5. An exercise earns its points only if its check cell passed AND the outputs that check()
   recorded match the reference here, in the grader's own process (records.py): nothing the
   student's kernel patches (torch.allclose, numpy.testing, course_lib itself) can change that.
6. review.py flags code that reaches for the reference or the checker, for a person to read.
Rows are written as each submission finishes; --resume skips the students already graded.
"""
from .judge import Grade, Outcome, grade_batch, grade_submission, judge
from .records import verify_recorded
from .reference import (Cell, Reference, RefExercise, SubmissionError, build_cells, find_reference, load_reference,
                        read_submission)
from .report import expand, format_table, main, read_done, summarise, write_reports
from .review import review
from .run import GradeOptions, Run, run_cells, run_env

__all__ = ["GradeOptions", "Reference", "RefExercise", "Grade", "Outcome", "Cell", "SubmissionError", "Run",
           "find_reference", "load_reference", "read_submission", "build_cells", "run_cells", "run_env", "judge",
           "verify_recorded", "grade_submission", "grade_batch", "summarise", "write_reports", "format_table",
           "expand", "main", "read_done", "review"]
