"""Flag submissions for review: code that reaches for the reference or the checker.

A kernel can always forge what check() records (it runs the student's code), so these are not
zeroed, only flagged with the reason for a person to look at: imports or uses of the reference
implementations (course_lib.labs), of the checks' harness (course_lib.harness), of course_lib.exercises
beyond check(), of the grader, of
$COURSE_GRADE_DIR or solutions/, monkeypatching of course_lib, walking the interpreter's frames
(sys._getframe, f_back, gc.get_referrers), a function's internals (__globals__, __closure__),
getattr or exec of names and code built at run time, a check() of one's own, and data loaded in an exercise
cell. The setup cell's honest
`from course_lib import setup, check` and `from course_lib.models... import ...` are not flagged.
The scan runs in the grader's process on the cells that are run; nothing of the student's runs.
"""
from __future__ import annotations

import ast
import re

from .reference import Cell, parse

FORBIDDEN = {"course_lib.labs": "imports the reference implementations (course_lib.labs)",
             "course_lib.harness": "uses the checks' harness (course_lib.harness), which only check cells need",
             "course_lib.grading": "uses the grader (course_lib.grading)",
             "course_lib.exercises": "uses course_lib.exercises beyond check()"}
ALLOWED = {"course_lib.exercises.check"}
STRINGS = {"course_lib.labs": FORBIDDEN["course_lib.labs"], "course_lib.exercises": FORBIDDEN["course_lib.exercises"],
           "course_lib.harness": FORBIDDEN["course_lib.harness"],
           "COURSE_GRADE": "reads or changes $COURSE_GRADE_DIR", "solutions/": "reads solutions/",
           "/solutions": "reads solutions/"}
PATCHERS = ("setattr", "delattr")
# No exercise's answer reads a dataset; one that does in a judged exercise (build_gan, build_cgan, build_vae of labs
# 03 to 05, judged by their samples) could hand real images in as samples.
DATA_IN_EXERCISE = r"\b(load_data|ensure_dataset|load_digits|read_idx)\b|\.images\b|idx[13]-ubyte"
# Ways to reach the checker's internals without naming course_lib ([17]): frames, function internals,
# names built at run time, code built at run time, and a check() of one's own.
FRAME_ATTRS = {"_getframe", "currentframe", "getouterframes", "getinnerframes", "walk_stack", "f_back", "f_globals",
               "f_locals", "f_builtins", "tb_frame", "get_referrers", "get_referents", "get_objects"}
INTERNAL_ATTRS = {"__globals__", "__closure__", "__code__", "__builtins__", "__subclasses__", "cell_contents"}
DYNAMIC_NAME = ("getattr", "setattr", "delattr", "hasattr")
DYNAMIC_CODE = ("exec", "eval", "compile", "__import__")
STRINGS |= {s: "names frame or function internals in a string" for s in
            ("_getframe", "__globals__", "f_back", "f_globals", "__closure__", "cell_contents")}


def _python(source: str) -> str:
    """The cell as plain Python (magics and shell escapes turned into calls), as IPython runs it."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


class _Scan(ast.NodeVisitor):
    def __init__(self, references: dict[str, str] | None = None) -> None:
        self.aliases: dict[str, str] = {}  # local name -> the course_lib path it is bound to
        self.found: list[str] = []
        self.references = references or {}  # dotted path of a reference function -> why it is flagged

    def flag(self, path: str, patched: bool = False) -> None:
        if patched and path.startswith("course_lib"):
            self.found.append(f"monkeypatches {path}")
        elif path not in ALLOWED:
            self.found += [why for prefix, why in FORBIDDEN.items() if path == prefix or path.startswith(prefix + ".")]
            if path in self.references:
                self.found.append(self.references[path])
        if path.startswith("course_lib") and path.endswith(".__file__"):
            self.found.append("reads the course's files through course_lib.__file__")

    def dotted(self, node: ast.AST) -> str | None:
        """course_lib.x.y for an expression such as `ex.y` where ex is bound to course_lib.x."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def visit_Import(self, node: ast.Import) -> None:
        self._redefines_check([a.asname for a in node.names if a.asname])
        for a in node.names:
            if a.name.startswith("course_lib"):
                self.flag(a.name)
                self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if module not in ("course_lib", "course_lib.exercises"):  # the honest `from course_lib import check`
            self._redefines_check([a.asname or a.name for a in node.names])
        if node.level == 0 and module.startswith("course_lib"):
            for a in node.names:
                self.flag(f"{module}.{a.name}")
                self.aliases[a.asname or a.name] = f"{module}.{a.name}"

    def visit_Attribute(self, node: ast.Attribute) -> None:
        path = self.dotted(node)
        if path:
            self.flag(path, patched=isinstance(node.ctx, (ast.Store, ast.Del)))
        if node.attr in FRAME_ATTRS or (node.attr in ("stack", "trace") and isinstance(node.value, ast.Name)
                                        and node.value.id == "inspect"):
            self.found.append(f"walks the interpreter's frames or objects (.{node.attr})")
        if node.attr in INTERNAL_ATTRS:
            self.found.append(f"reaches into a function's internals (.{node.attr})")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name in PATCHERS and node.args and (self.dotted(node.args[0]) or "").startswith("course_lib"):
            self.found.append(f"monkeypatches {self.dotted(node.args[0])} with {name}()")
        if name in DYNAMIC_NAME and len(node.args) > 1 and not isinstance(node.args[1], ast.Constant):
            self.found.append(f"calls {name}() with an attribute name built at run time")
        if name in DYNAMIC_NAME and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                and str(node.args[1].value) in FRAME_ATTRS | INTERNAL_ATTRS:
            self.found.append(f"reaches into internals with {name}(..., {node.args[1].value!r})")
        if name in DYNAMIC_CODE and node.args and not isinstance(node.args[0], ast.Constant):
            self.found.append(f"runs code built at run time ({name})")
        self.generic_visit(node)

    def _redefines_check(self, names) -> None:
        if "check" in names:
            self.found.append("redefines check()")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._redefines_check([node.name])
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._redefines_check([node.name])
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._redefines_check([node.id])

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self.found += [why for s, why in STRINGS.items() if s in node.value]


def reference_paths(exercise_ids) -> dict[str, str]:
    """The library functions the exercises are checked against (e.g. course_lib.divergences.jsd_discrete),
    each with the reason a submission that imports or calls it is flagged."""
    from ..exercises import get_exercise

    out = {}
    for ex_id in exercise_ids:
        fn = get_exercise(ex_id).reference
        path = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
        out[path] = f"uses {path}, the reference that {ex_id} is checked against"
    return out


def review(cells: list[Cell], references: dict[str, str] | None = None) -> str:
    """Reasons to look at this submission by hand ("" if none), with the cell numbers.

    references: from `reference_paths(ids)`: library functions that solve the exercises outright.
    """
    scan, notes = _Scan(references), []
    for k, cell in enumerate(cells):
        if cell.role == "check":  # the grader's own check cells
            continue
        before = len(scan.found)
        try:
            scan.visit(parse(_python(cell.source)))
        except (SyntaxError, ValueError):  # cannot be parsed: look for the words
            scan.found += [why for s, why in {**STRINGS, **FORBIDDEN}.items() if re.search(re.escape(s), cell.source)]
        if cell.role == "exercise" and re.search(DATA_IN_EXERCISE, cell.source):
            scan.found.append("loads data in an exercise cell (a judged exercise could hand in real images as samples)")
        notes += [f"cell {k}: {why}" for why in dict.fromkeys(scan.found[before:])]
    return "; ".join(dict.fromkeys(notes))
