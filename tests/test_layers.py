"""The package's shape: no import cycle among rnnexp's modules (lazy imports inside functions
included), and nothing in rnnexp reaches into a plugin's private module."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import rnnexp

PACKAGE = Path(rnnexp.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement anywhere in the file names: `from a.b import c` names
    a.b.c where that is a module, else a.b."""
    name = module_name(path)
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if importlib.util.find_spec(sub.split(".")[0]) and _is_module(sub)
                          else base)
    return found


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in imported_modules(p) if i in modules and i != m}
            for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walk_sees_the_imports():
    graph = import_graph()
    assert "rnnexp.runner" in graph["rnnexp.reproduce"]
    assert "rnnexp.sweeps.grammar" in graph["rnnexp.sweeps.sweep"]
    assert "rnnexp.tuning.hooks" in graph["rnnexp.cli.train"]  # imported inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_no_private_plugin_module_is_imported():
    private = sorted((m, i) for m, p in ((module_name(p), p) for p in PACKAGE.rglob("*.py"))
                     for i in imported_modules(p)
                     if i.startswith("hydra_plugins.") and any(part.startswith("_")
                                                                for part in i.split(".")[1:]))
    assert private == []
