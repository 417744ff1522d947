"""The package's shape: no import circles under vidprod/, and the sandbox kept apart.

The import graph is read from the source with `ast`, not by importing: every `import`
and `from … import` anywhere in a module counts (inside functions and under
TYPE_CHECKING too, since a circle that only a late import hides is still a circle).
`from pkg import name` points at `pkg.name` when that is a module, else at `pkg`.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vidprod"


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> every module of the package it imports (at any depth of its code)."""
    files = {module_name(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . / .. import x
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            else:
                continue
            graph[name].update(target for target in targets if target in files and target != name)
    return graph


def edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(module, target) for module, targets in graph.items() for target in targets}


def a_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (its modules, the first repeated at the end), or None.
    graphlib's topological sort finds it for us."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return error.args[1]
    return None


def test_the_graph_sees_imports_of_every_kind(tmp_path):
    """The reader finds top-level, function-level, TYPE_CHECKING and relative imports, so
    the circle test below cannot pass by missing them."""
    package = tmp_path / "vidprod"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from vidprod.sub import b\n")
    (package / "sub" / "b.py").write_text("def late():\n    from . import c\n")
    (package / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import vidprod.a\n"
    )
    graph = import_graph(package)
    assert edges(graph) == {
        ("vidprod.a", "vidprod.sub.b"),
        ("vidprod.sub.b", "vidprod.sub.c"),
        ("vidprod.sub.c", "vidprod.a"),
    }
    assert set(a_circle(graph)) == {"vidprod.a", "vidprod.sub.b", "vidprod.sub.c"}


def test_no_import_circle_under_vidprod():
    graph = import_graph()
    assert len(edges(graph)) > 100  # the real package was read
    circle = a_circle(graph)
    assert circle is None, "import circle: " + " -> ".join(reversed(circle or []))


def test_the_sandbox_is_apart_from_the_product():
    """The sandbox imports nothing of the product, and the product reaches it only
    through its one entry point, the `vidprod.sandbox` package."""
    graph = import_graph()
    sandbox = {name for name in graph if name == "vidprod.sandbox" or name.startswith("vidprod.sandbox.")}
    assert len(sandbox) > 5
    leaks = [(a, b) for a, b in edges(graph) if a in sandbox and b not in sandbox]
    assert leaks == []
    reaching_in = [(a, b) for a, b in edges(graph) if a not in sandbox and b in sandbox]
    assert reaching_in and all(b == "vidprod.sandbox" for _, b in reaching_in), reaching_in
