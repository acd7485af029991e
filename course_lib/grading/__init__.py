"""Grade a folder of student submissions of one lab: points per exercise, on pytest and nbval.

    python -m course_lib.grading labs/01_divergences_and_gan_theory.ipynb subs/*.ipynb --out grades
    make grade LAB=lab01 SUBMISSIONS='subs/*.ipynb' OUT=grades      # the same

LAB is a lab, its solution, a lab id (lab01) or a name (01_divergences_and_gan_theory); the
reference is always solutions/<name>.ipynb. It writes grades.csv and grades.json and prints the
table and, per exercise, the mean score and the failure rate.

For each submission (the file is only ever read):
1. An empty or invalid file scores 0 on every exercise, with the reason.
2. A graded notebook is built in a temp folder: the student's code cells, without any check cell
   of theirs, and after the student's cell of each exercise (found by the id in its metadata,
   never by position) the check cell of the reference. No such cell: "missing exercise".
3. pytest --nbval-lax runs it in a fresh kernel, with a per-cell and a per-submission timeout; the
   kernel sees a scratch HOME and working folder and a minimal environment. `plugin.py`
   notes what happened to each cell and ends a dead or stuck kernel at once.
4. If the kernel died or had to be killed, the cell that did it is dropped and the rest re-run in
   a fresh kernel, so a crash or an endless loop costs only the exercise it is in.
5. An exercise earns its points only if its check cell passed AND the outputs that check()
   recorded match the reference here, in the grader's own process: nothing the student's kernel
   patches (torch.allclose, numpy.testing, course_lib itself) can change that comparison.
"""
from .judge import Grade, Outcome, grade_batch, grade_submission, judge, verify_recorded
from .reference import (Cell, Reference, RefExercise, SubmissionError, build_cells, find_reference, load_reference,
                        read_submission)
from .report import expand, format_table, main, summarise, write_reports
from .run import GradeOptions, Run, run_cells, run_env

__all__ = ["GradeOptions", "Reference", "RefExercise", "Grade", "Outcome", "Cell", "SubmissionError", "Run",
           "find_reference", "load_reference", "read_submission", "build_cells", "run_cells", "run_env", "judge",
           "verify_recorded", "grade_submission", "grade_batch", "summarise", "write_reports", "format_table",
           "expand", "main"]
