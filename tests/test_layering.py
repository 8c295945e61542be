"""The import order of docs/architecture.md, enforced by parsing every module's imports.

    errors, shapes < ir < ops < tensor, functions, linalg, nn, random, autodiff, recurrence, rewrite, viz
    < passes < schedule < backends < compile, explore < serialize, distributed, cli, demo, testing, bench

A module may import graphc modules at its own level or lower, at module level or inside
a function alike. graphc/__init__.py (the re-exports) is exempt. Backends render Programs:
they never import graphc.ir, graphc.tensor or graphc.functions. No import cycles between
modules, lazy imports (inside functions) included; imports under `if TYPE_CHECKING:` are
for the type checker only and do not count. The package imports nothing outside itself
but the standard library and the distributions pyproject.toml declares (dependencies and
extras). llvmlite, networkx, graphviz, scipy, dask and distributed are imported lazily:
inside a function body (or under `if TYPE_CHECKING:`), except in graphc/backends/llvm/,
which `import graphc` never loads.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "graphc"

# Every module of graphc, by dotted prefix: a package's entry covers all of its modules.
LEVELS = {
    "graphc.errors": 0,
    "graphc.shapes": 0,
    "graphc.ir": 1,
    "graphc.ops": 2,
    "graphc.tensor": 3,
    "graphc.functions": 3,
    "graphc.arrays": 3,  # zeros, pad, cumsum, ...: functions re-exports them
    "graphc.einsum": 3,  # einsum, tensordot: functions re-exports them
    "graphc.linalg": 3,  # gc.linalg: numpy.linalg's functions, beside graphc.functions
    "graphc.numpy_protocol": 3,  # np.exp(t), np.sum(t): Tensor's NumPy protocols, dispatching to functions
    "graphc.autodiff": 3,
    "graphc.recurrence": 3,  # gc.scan / gc.fixed_point: their rules use the autodiff engine
    "graphc.random": 3,  # gc.random: Threefry over integer ops, with tensor and functions
    "graphc.nn": 3,  # gc.nn: dropout (with random), convolutions
    "graphc.rewrite": 3,
    "graphc.viz": 3,
    "graphc.layered": 0,  # the layered layout: plain numbers, imports nothing of graphc
    "graphc.passes": 4,
    "graphc.schedule": 5,
    "graphc.backends": 6,
    "graphc.compile": 7,
    "graphc.compile_options": 7,  # gc.set_num_threads and compile's progress lines: compile imports it
    "graphc.plan_cache": 7,  # the graph-level compile cache's key: compile imports it
    "graphc.explore": 7,  # beside compile: fn.explore calls it, and it never imports compile
    "graphc.serialize": 8,  # gc.save / gc.load: the JSON format
    "graphc.distributed": 8,  # map_reduce on dask: ships gc.dumps text to workers
    "graphc.cli": 8,
    "graphc.demo": 8,  # the `graphc demo` tour, which cli runs
    "graphc.__main__": 8,  # `python -m graphc`: the cli
    "graphc.testing": 8,  # finite-difference checks over the public API, beside cli
    "graphc.bench": 8,  # the benchmark suite that `graphc bench` runs, over the public API
}
ROOT_LEVEL = 8  # `import graphc` runs __init__.py, which re-exports every level
EXEMPT = {"graphc"}  # graphc/__init__.py
LAZY = ("llvmlite", "networkx", "graphviz", "scipy", "dask", "distributed")
EAGER_ALLOWED = ("graphc.backends.llvm",)  # loaded only when the llvm backend is asked for
# Modules that must not import these (and what they import instead):
FORBIDDEN = {
    "graphc.backends": ("graphc.ir", "graphc.tensor", "graphc.functions"),  # backends read Programs (schedule)
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_files() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = module_files()


def level_of(name: str) -> int | None:
    """The level of a graphc module by its longest entry in LEVELS; None when no entry covers it."""
    if name == "graphc":
        return ROOT_LEVEL
    covering = [key for key in LEVELS if name == key or name.startswith(key + ".")]
    if not covering:
        return None
    return LEVELS[max(covering, key=len)]


def is_package(name: str) -> bool:
    path = MODULES.get(name)
    return path is not None and path.name == "__init__.py"


def resolve(importer: str, node: ast.Import | ast.ImportFrom, known: Iterable[str] = MODULES) -> list[str]:
    """The modules an import statement names (for `from p import n`: p.n when that is a known module, else p)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = importer if is_package(importer) else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        targets.append(candidate if candidate in known else base)
    return targets


class Imports(ast.NodeVisitor):
    """Every import statement, whether it runs lazily (in a function) and whether only for types (TYPE_CHECKING)."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool, bool]] = []
        self.lazy_depth = 0
        self.typing_depth = 0

    def _lazy_block(self, node: ast.AST) -> None:
        self.lazy_depth += 1
        self.generic_visit(node)
        self.lazy_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _lazy_block

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        self.typing_depth += 1
        for child in node.body:
            self.visit(child)
        self.typing_depth -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        typing_only = self.typing_depth > 0
        self.found.append((node, self.lazy_depth > 0 or typing_only, typing_only))

    visit_ImportFrom = visit_Import


def imports_of(source: str, filename: str = "<module>") -> list[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    visitor = Imports()
    visitor.visit(ast.parse(source, filename))
    return visitor.found


def violations(name: str, source: str, filename: str = "<module>") -> list[str]:
    """What module `name` (with this source) imports against the layering, the lazy-import or the outside rule."""
    problems = []
    own = level_of(name)
    if own is None and name not in EXEMPT:
        return [f"{name} has no level: add it to LEVELS in tests/test_layering.py (and to docs/architecture.md)"]
    for node, lazy, _ in imports_of(source, filename):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        for target in resolve(name, node):
            where = f"{filename}:{node.lineno}"
            top = target.split(".")[0]
            if top in LAZY and not lazy and not name.startswith(EAGER_ALLOWED):
                problems.append(f"{where}: {name} imports {target} at module level; import it inside a function")
            if top != "graphc":
                if not allowed_outside(top):
                    problems.append(
                        f"{where}: {name} imports {target}, which is neither the standard library nor "
                        "a dependency or extra that pyproject.toml declares"
                    )
                continue
            if name in EXEMPT:
                continue
            problems += _level_problems(name, own, target, where)  # type: ignore[arg-type]
    return problems


def _level_problems(name: str, own: int, target: str, where: str) -> list[str]:
    theirs = level_of(target)
    if theirs is None:
        return [f"{where}: {target} has no level: add it to LEVELS in tests/test_layering.py"]
    if theirs > own:
        return [f"{where}: {name} (level {own}) imports {target} (level {theirs}), a higher level"]
    for prefix, banned in FORBIDDEN.items():
        if name.startswith(prefix) and any(target == b or target.startswith(b + ".") for b in banned):
            return [f"{where}: {name} imports {target}; modules under {prefix} may not import {', '.join(banned)}"]
    return []


# --- what lies outside the package ----------------------------------------------------------------------


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "_", distribution).lower()


def declared_distributions() -> set[str]:
    """The distributions pyproject.toml names: dependencies and every extra (normalized names)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    names = {_normalized(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}
    for requirement in requirements:  # `dask[distributed]` declares what dask's extra requires too
        match = re.match(r"([\w.-]+)\[([\w,\s-]+)\]", requirement)
        if match:
            names |= _extra_requirements(match.group(1), [e.strip() for e in match.group(2).split(",")])
    return names


def _extra_requirements(distribution: str, extras: list[str]) -> set[str]:
    """The distributions that these extras of an installed distribution require (none if it is not installed)."""
    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    found = set()
    for requirement in requires:
        marker = re.search(r"extra\s*==\s*['\"]([\w-]+)['\"]", requirement)
        if marker and marker.group(1) in extras:
            found.add(_normalized(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]))
    return found


def _import_names(distributions: Iterable[str]) -> set[str]:
    """Top-level import names of these distributions: their own names, and what installed ones provide."""
    wanted = set(distributions)
    names = set(wanted)
    for top, providers in importlib.metadata.packages_distributions().items():
        if any(_normalized(p) in wanted for p in providers):
            names.add(top)
    return names


@functools.cache
def declared_imports() -> frozenset[str]:
    return frozenset(_import_names(declared_distributions()))


def allowed_outside(top: str) -> bool:
    """Whether graphc may import the top-level module `top`: the standard library or a declared distribution."""
    if top in sys.stdlib_module_names:
        return True
    return top in declared_imports() or _normalized(top) in declared_imports()


# --- cycles ----------------------------------------------------------------------------------------------


def import_graph(modules: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the graphc modules it imports (lazy imports included, TYPE_CHECKING ones not)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, source in modules.items():
        for node, _, typing_only in imports_of(source):
            if typing_only:
                continue
            graph[name].update(t for t in resolve(name, node, modules) if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each one or more cycles), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root not in index:
            _strongconnect(root, graph, index, low, stack, found)
    return sorted(sorted(c) for c in found if len(c) > 1)


def _strongconnect(
    root: str,
    graph: dict[str, set[str]],
    index: dict[str, int],
    low: dict[str, int],
    stack: list[str],
    found: list[list[str]],
) -> None:
    """Tarjan's algorithm, iteratively."""
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = len(index)
    stack.append(root)
    while work:
        node, successors = work[-1]
        advanced = False
        for succ in successors:
            if succ not in index:
                index[succ] = low[succ] = len(index)
                stack.append(succ)
                work.append((succ, iter(sorted(graph[succ]))))
                advanced = True
                break
            if succ in stack:
                low[node] = min(low[node], index[succ])
        if advanced:
            continue
        work.pop()
        if work:
            low[work[-1][0]] = min(low[work[-1][0]], low[node])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            found.append(component)


# --- the checker itself -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source", "flagged"),
    [
        ("graphc.ir", "from graphc.tensor import Tensor", True),
        ("graphc.ir", "def f():\n    from graphc.ops import OPS", True),  # lazy upward imports count too
        ("graphc.ir", "from graphc.errors import GraphError\nfrom graphc.shapes import TensorType", False),
        ("graphc.ops.shape", "from . import base\nfrom ..ir import Node", False),
        ("graphc.ops.shape", "from .. import tensor", True),
        ("graphc.ops", "from graphc.ops import elementwise", False),
        ("graphc.tensor", "import graphc", True),
        ("graphc.cli", "import graphc as gc", False),
        ("graphc.passes.fold", "import graphc.schedule", True),
        ("graphc.autodiff.vjp", "from graphc import functions", False),
        ("graphc.compile", "from graphc.backends import numpy_source", False),
        ("graphc.backends.interpreter", "from graphc.compile import compile", True),
        ("graphc.viz", "import networkx", True),
        ("graphc.viz", "def to_networkx():\n    import networkx", False),
        ("graphc.viz", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import networkx", False),
        ("graphc.compile", "import llvmlite.binding as llvm", True),
        ("graphc.compile", "from llvmlite import ir", True),
        ("graphc.backends.llvm.jit", "import llvmlite.binding as llvm", False),
        ("graphc.schedule", "import graphviz", True),
        ("graphc.utils", "import numpy", True),  # a module with no level
        ("graphc.ops.base", "from graphc.newthing import x", True),
        ("graphc.backends.numpy_source", "from graphc.ir import Node", True),  # backends read Programs only
        ("graphc.backends.llvm.plan", "def f():\n    from graphc.tensor import Tensor", True),
        ("graphc.backends.interpreter", "from graphc.schedule import Program", False),
        ("graphc.cli", "from benchmarks import harness", True),  # outside the package, not a dependency
        ("graphc.cli", "def f():\n    import benchmarks", True),
        ("graphc.viz", "def f():\n    import scipy.sparse", False),  # a declared extra, lazily
        ("graphc.viz", "import scipy.sparse", True),  # scipy is imported lazily
        ("graphc.ir", "import json\nimport numpy as np", False),  # the standard library and a dependency
        ("graphc.ir", "import requests", True),
    ],
)
def test_checker(name: str, source: str, flagged: bool) -> None:
    assert bool(violations(name, source)) is flagged, violations(name, source)


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({"graphc.a": "import graphc.b", "graphc.b": "def f():\n    import graphc.a"}, [["graphc.a", "graphc.b"]]),
        ({"graphc.a": "from graphc import b", "graphc.b": "from graphc.c import x", "graphc.c": "import graphc.a"},
         [["graphc.a", "graphc.b", "graphc.c"]]),
        ({"graphc.a": "import graphc.b", "graphc.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
          "    import graphc.a"}, []),  # for the type checker only
        ({"graphc.a": "import graphc.b", "graphc.b": "import numpy"}, []),
    ],
)  # fmt: skip
def test_cycle_finder(sources: dict[str, str], expected: list[list[str]]) -> None:
    assert cycles(import_graph(sources)) == expected


def test_unknown_module_message_says_to_add_it() -> None:
    (message,) = violations("graphc.utils", "")
    assert "add it to LEVELS" in message


# --- the package -----------------------------------------------------------------------------------------


def test_the_package_has_modules() -> None:
    for name in ("graphc", "graphc.errors", "graphc.ir", "graphc.ops.base", "graphc.tensor", "graphc.functions"):
        assert name in MODULES


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports_follow_the_layers(name: str) -> None:
    path = MODULES[name]
    problems = violations(name, path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert problems == [], "\n".join(problems)


def test_no_import_cycles() -> None:
    """No module imports (even lazily) a module that imports it back, directly or around a loop."""
    graph = import_graph({name: path.read_text(encoding="utf-8") for name, path in MODULES.items()})
    assert cycles(graph) == []


def test_the_declared_distributions_are_read() -> None:
    assert {"numpy", "networkx", "llvmlite", "scipy", "graphviz"} <= declared_distributions()
    assert allowed_outside("numpy") and allowed_outside("os") and not allowed_outside("benchmarks")


def test_import_graphc_loads_no_optional_dependency() -> None:
    script = (
        "import sys, graphc\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LAZY!r} or m.startswith('graphc.backends.llvm')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
