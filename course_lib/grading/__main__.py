"""`python -m course_lib.grading LAB SUBMISSIONS... --out grades`: see course_lib/grading/__init__.py."""
import sys

from .report import main

sys.exit(main())
