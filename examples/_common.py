"""Helpers the examples share: optional packages with a clear message, choosing a backend, pictures.

Not part of graphc; each example imports it from its own folder.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import graphc as gc
from graphc.viz import render

INSTALL_HINT = "pip install tqdm matplotlib scikit-learn   (or, from a checkout: pip install -e '.[examples]')"


def require(module: str, package: str, why: str) -> ModuleType:
    """Import `module`, or exit with a message naming the package to install and what it is for."""
    try:
        return importlib.import_module(module)
    except ImportError:
        sys.exit(
            f"error: this example needs {package} ({why}), which is not installed.\ninstall it with: {INSTALL_HINT}"
        )


def count(text: str) -> int:
    """An argparse type: an int >= 0 (0 is allowed: the example then trains nothing and says so)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def llvm_available() -> bool:
    """Whether gc.compile(..., backend="llvm") works in this installation."""
    probe = gc.var("probe")
    try:
        fn = gc.compile([probe], probe * 2.0, backend="llvm")
        return bool(np.asarray(fn(1.0)) == 2.0)
    except (NotImplementedError, ImportError):
        return False


def pick_backend(requested: str) -> str:
    """'auto' -> 'llvm' when it is available, else 'numpy' (with a note); 'llvm' or 'numpy' as asked."""
    if requested != "auto":
        return requested
    if llvm_available():
        return "llvm"
    print("note: the llvm backend is not available in this installation; using backend='numpy'")
    return "numpy"


def compile_with_fallback(inputs: list[gc.Tensor], outputs: object, backend: str) -> Any:
    """gc.compile on `backend`; where the llvm backend cannot compile a graph yet, numpy with a note."""
    try:
        return gc.compile(inputs, outputs, backend=backend)  # type: ignore[arg-type]
    except NotImplementedError as missing:
        if backend == "numpy":
            raise
        print(f"note: backend={backend!r} cannot compile this graph ({missing}); using backend='numpy'")
        return gc.compile(inputs, outputs, backend="numpy")  # type: ignore[arg-type]


def add_backend_flag(parser: object) -> None:
    parser.add_argument(  # type: ignore[attr-defined]
        "--backend",
        choices=("auto", "llvm", "numpy"),
        default="auto",
        help="graphc backend: llvm (native code), numpy (generated NumPy source), "
        "or auto (llvm when available, else numpy; the default)",
    )


def write_graph(graph: object, folder: Path, stem: str, fmt: str = "svg") -> Path:
    """folder/stem.<fmt> drawn with Graphviz, or folder/stem.dot (DOT text) when `dot` is not installed."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("dot") is not None:
        return render(graph, folder / f"{stem}.{fmt}", format=fmt)
    path = folder / f"{stem}.dot"
    path.write_text(gc.to_dot(graph))
    return path


def graphviz_note() -> str | None:
    """The note to print when graphs can only be written as DOT text."""
    if shutil.which("dot") is not None:
        return None
    return (
        "note: the Graphviz program `dot` is not on PATH, so graphs are written as .dot text files; "
        "install Graphviz (e.g. `apt-get install graphviz`) to get SVG/PNG, or paste the .dot text into any DOT viewer"
    )
