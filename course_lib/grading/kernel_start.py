"""Run by the grader in each kernel before the first cell (IPKernelApp.exec_files); not a module.

`exit()` and `quit()` normally ask the kernel to stop about a second later, during whichever cell
runs then: that cell, not the one that called them, would be blamed. Here they raise SystemExit
at once, like `sys.exit()`, which IPython turns into an error of the calling cell only.
"""


def _course_grade_exit_in_cell():
    shell = get_ipython()  # noqa: F821 (IPython defines it in the kernel's namespace)

    def ask_exit():
        raise SystemExit("exit() or quit() was called; the grader stops this cell instead of the kernel")

    shell.ask_exit = ask_exit


_course_grade_exit_in_cell()
del _course_grade_exit_in_cell
