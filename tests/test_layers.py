"""The library's layers: models/ never reaches up into the drivers, and no module of course_lib imports itself
back through another (module-level and in-function imports both count)."""
from __future__ import annotations

import ast
from pathlib import Path

import course_lib

ROOT = Path(course_lib.__file__).resolve().parent
# What models/ may not import: the layers above it (recipes, benches, the zoo), and the measuring, notebook,
# widget and grading code that sits beside them.
ABOVE_MODELS = ("recipes", "runs", "metrics", "evaluators", "bench", "zoo", "widgets", "notebooks", "grading", "labs")


def module_name(path: Path) -> str:
    parts = ["course_lib", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The course_lib modules `path` imports, by their full names (`from .x import y` names x, or x.y if a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("course_lib")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("course_lib"):
                continue
            for alias in node.names:  # `from . import divergences` names a module; `from .data import load_data` not
                sub = f"{target}.{alias.name}"
                out.add(sub if (ROOT.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                        or (ROOT.parent / Path(*sub.split("."))).is_dir() else target)
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(ROOT.rglob("*.py"))}


def test_models_import_nothing_above_them():
    bad = {m: sorted(i for i in deps if i.split(".")[1] in ABOVE_MODELS)
           for m, deps in graph().items() if m.startswith("course_lib.models")}
    bad = {m: deps for m, deps in bad.items() if deps}
    assert not bad, f"models/ holds networks and processes only; these import a layer above: {bad}"


def test_recipes_are_not_imported_by_the_core_or_models():
    above = ("course_lib.recipes", "course_lib.bench", "course_lib.zoo", "course_lib.labs")
    bad = {m: sorted(d for d in deps if d.startswith("course_lib.recipes"))
           for m, deps in graph().items() if not m.startswith(above)}
    bad = {m: deps for m, deps in bad.items() if deps}
    assert not bad, f"only the layers above recipes/ (bench, zoo, labs) may import it: {bad}"


def test_no_import_cycle():
    """Tarjan's strongly connected components over every import in the package: each must be one module.
    A package's own __init__ re-exporting its modules is not a cycle (the modules never import it back)."""
    g = graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles in course_lib (each list imports itself back): {cycles}"


def test_the_graph_sees_relative_and_in_function_imports():
    g = graph()
    assert {"course_lib.models.dcgan", "course_lib.metrics"} <= g["course_lib.recipes.dcgan"]  # from ..x import y
    assert "course_lib.runtime" in g["course_lib.notebooks"]  # imported inside a function
    assert "course_lib.divergences" in g["course_lib.labs.lab01"]  # from ..divergences import ...
