"""DESIGN.md's import order, enforced by parsing every module's imports.

    errors, shapes < ir < ops < tensor, functions, autodiff, rewrite, viz < passes < schedule
    < backends < compile < cli

A module may import graphc modules at its own level or lower, at module level or inside
a function alike. graphc/__init__.py (the re-exports) is exempt. llvmlite, networkx,
graphviz and dask are imported lazily: inside a function body (or under `if TYPE_CHECKING:`),
except in graphc/backends/llvm/, which `import graphc` never loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
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
    "graphc.explore": 7,  # beside compile: fn.explore calls it, and it never imports compile
    "graphc.serialize": 8,  # gc.save / gc.load: the JSON format
    "graphc.distributed": 8,  # map_reduce on dask: ships gc.dumps text to workers
    "graphc.cli": 8,
    "graphc.demo": 8,  # the `graphc demo` tour, which cli runs
    "graphc.__main__": 8,  # `python -m graphc`: the cli
    "graphc.testing": 8,  # finite-difference checks over the public API, beside cli
}
ROOT_LEVEL = 8  # `import graphc` runs __init__.py, which re-exports every level
EXEMPT = {"graphc"}  # graphc/__init__.py
LAZY = ("llvmlite", "networkx", "graphviz", "dask", "distributed")
EAGER_ALLOWED = ("graphc.backends.llvm",)  # loaded only when the llvm backend is asked for


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


def resolve(importer: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement names (for `from p import n`: p.n when that is a module, else p)."""
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
        targets.append(candidate if candidate in MODULES else base)
    return targets


class Imports(ast.NodeVisitor):
    """Every import statement with whether it runs lazily (in a function or under TYPE_CHECKING)."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self.lazy_depth = 0

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
        self.lazy_depth += 1
        for child in node.body:
            self.visit(child)
        self.lazy_depth -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self.lazy_depth > 0))

    visit_ImportFrom = visit_Import


def violations(name: str, source: str, filename: str = "<module>") -> list[str]:
    """What module `name` (with this source) imports against the layering or the lazy-import rule."""
    visitor = Imports()
    visitor.visit(ast.parse(source, filename))
    problems = []
    own = level_of(name)
    if own is None and name not in EXEMPT:
        return [f"{name} has no level: add it to LEVELS in tests/test_layering.py (and to DESIGN.md's order)"]
    for node, lazy in visitor.found:
        for target in resolve(name, node):
            where = f"{filename}:{node.lineno}"
            top = target.split(".")[0]
            if top in LAZY and not lazy and not name.startswith(EAGER_ALLOWED):
                problems.append(f"{where}: {name} imports {target} at module level; import it inside a function")
            if top != "graphc" or name in EXEMPT:
                continue
            theirs = level_of(target)
            if theirs is None:
                problems.append(f"{where}: {target} has no level: add it to LEVELS in tests/test_layering.py")
            elif theirs > own:  # type: ignore[operator]
                problems.append(f"{where}: {name} (level {own}) imports {target} (level {theirs}), a higher level")
    return problems


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
    ],
)
def test_checker(name: str, source: str, flagged: bool) -> None:
    assert bool(violations(name, source)) is flagged, violations(name, source)


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


def test_import_graphc_loads_no_optional_dependency() -> None:
    script = (
        "import sys, graphc\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LAZY!r} or m.startswith('graphc.backends.llvm')))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=60)  # fmt: skip
    assert done.stdout.strip() == "[]"
