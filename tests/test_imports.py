"""The import graph of ``lib/`` runs one way: no cycle between subpackages or between files, and the
floors of docs/architecture.md hold. Read from the source (``ast``), lazy imports inside functions
included, so a cycle hidden behind a function-level import is still one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"

# (importer, imported): subpackages (or top-level modules of lib) that must never import each other
# in this direction (docs/architecture.md, "Floors").
FORBIDDEN = [
    ("eval", "train"), ("deploy", "train"), ("model", "train"),
    ("model", "data"), ("data", "model"),
    ("geometry", "body"), ("geometry", "model"),
    ("config", "model"), ("config", "train"),
    ("hybrik", "deploy"),
    ("body", "model"),
]
# Violations that still stand, named so that none can be added silently and a fixed one must be struck
# off (empty: every rule holds).
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``lib.*`` module ``path`` imports, at any depth of the file (``from lib.x import y`` counts
    ``lib.x.y`` when that is a module, else ``lib.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "lib")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "lib":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else node.module)
    return found


def _is_module(name: str) -> bool:
    base = LIB.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def floor(module: str) -> str:
    """``lib.eval.metrics`` -> ``eval``; ``lib.windowed`` -> ``windowed``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def file_graph() -> dict[str, set[str]]:
    graph = {module_name(p): imports_of(p) for p in sorted(LIB.rglob("*.py"))}
    # a package's __init__ is not an edge of its own modules (it only re-exports them)
    return {m: {d for d in deps if d != m and not m.startswith(d + ".")} for m, deps in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, deps in graph.items():
        out.setdefault(floor(module), set()).update(floor(d) for d in deps if floor(d) != floor(module))
    return out


def test_no_cycle_between_files() -> None:
    assert cycles(file_graph()) == []


def test_no_cycle_between_subpackages() -> None:
    graph = package_graph(file_graph())
    for importer, imported in KNOWN:
        graph[importer].discard(imported)
    assert cycles(graph) == []


def _offending(importer: str, imported: str) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in file_graph().items() if floor(m) == importer
                  for d in deps if floor(d) == imported)


@pytest.mark.parametrize("importer, imported", FORBIDDEN, ids=[f"{a}-not->{b}" for a, b in FORBIDDEN])
def test_floor_rule(importer: str, imported: str) -> None:
    if (importer, imported) in KNOWN:
        assert _offending(importer, imported), f"{importer} -> {imported} is fixed: strike it off KNOWN"
    else:
        assert _offending(importer, imported) == []


def test_the_checker_sees_lazy_imports_and_cycles(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from lib.eval import metrics\n    import lib.train.loop\n", encoding="utf-8")
    assert imports_of(source) == {"lib.eval.metrics", "lib.train.loop"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
