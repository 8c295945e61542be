"""The frontend's imports go one way: ops < numpy_protocol < tensor < functions; autodiff engines share common.py.

A targeted check until tests/test_layering.py checks every cycle: every import statement
counts, inside functions too (only `if TYPE_CHECKING:` blocks are left out), and the
graph of imports among graphc.ops, graphc.numpy_protocol, graphc.tensor,
graphc.functions and graphc.autodiff has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "graphc"
CHECKED = ("graphc.ops", "graphc.tensor", "graphc.functions", "graphc.numpy_protocol", "graphc.autodiff")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement outside `if TYPE_CHECKING:` blocks, lazy ones included."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return found


def graphc_imports(name: str) -> set[str]:
    """The graphc modules that module `name` imports (for `from p import n`: p.n when it is a module, else p)."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            up = package
            for _ in range(node.level - 1):
                up = up.rpartition(".")[0]
            base = f"{up}.{base}" if base else up
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            targets.add(candidate if candidate in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


def checked(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in CHECKED)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of nodes, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_find_cycle_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_lazy_imports_count() -> None:
    tree = ast.parse("def f():\n    from graphc import functions\nif TYPE_CHECKING:\n    import graphc.compile\n")
    assert [type(n).__name__ for n in _runtime_imports(tree)] == ["ImportFrom"]


def test_no_cycle_among_ops_tensor_functions_autodiff() -> None:
    graph = {name: {t for t in graphc_imports(name) if checked(t)} for name in MODULES if checked(name)}
    # a package's __init__ importing its own submodules is the package being assembled, not a cycle
    for name, targets in graph.items():
        if MODULES[name].name == "__init__.py":
            graph[name] = {t for t in targets if not t.startswith(name + ".")}
    assert find_cycle(graph) is None, find_cycle(graph)


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [("graphc.tensor", "graphc.functions"), ("graphc.autodiff.jvp", "graphc.autodiff.vjp")],
)
def test_one_way(importer: str, forbidden: str) -> None:
    assert forbidden not in graphc_imports(importer)


def test_tensor_has_no_lazy_imports() -> None:
    tree = ast.parse(MODULES["graphc.tensor"].read_text())
    lazy = [
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert lazy == []
