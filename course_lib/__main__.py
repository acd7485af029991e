"""`python -m course_lib data [NAME ...]`: make datasets available offline (used by `make lab` and `make test`)."""
import sys

from .data import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "data":
        sys.exit("usage: python -m course_lib data [fashion-mnist|mnist|digits ...] [--no-download]")
    sys.exit(main(args[1:]))
