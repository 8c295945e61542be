"""The error classes of graphc and the capture of the user's file:line.

Imports nothing from graphc. Every other module may import it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

E = TypeVar("E", bound=Exception)

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class GraphError(ValueError):
    """A graph that cannot be built: the base of ShapeError and DTypeError."""


class ShapeError(GraphError):
    """Operand shapes that an op cannot combine (broadcasting, axes, matmul, reshape)."""


class DTypeError(GraphError):
    """Operand dtypes that an op cannot combine or does not accept."""


class DifferentiationError(GraphError):
    """A derivative that is undefined along a path the caller asked for."""


class GraphFormatError(GraphError):
    """A saved graph (gc.load/gc.loads) that is malformed, hostile or beyond the load limits.

    `path` points into the document in JSONPath style (`$.nodes[12].attrs.axis`); the
    message starts with it.
    """

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class ConvergenceError(RuntimeError):
    """An iterative computation (fixed_point) did not converge at call time."""


@dataclass(frozen=True)
class Location:
    """Where the user built a node: a file and a line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


_HELPER_FILES = (contextlib.__file__, functools.__file__)


def _is_internal(filename: str) -> bool:
    """Frames of graphc itself and of the stdlib helpers it calls through."""
    return filename.startswith(_PACKAGE_DIR) or filename.startswith("<frozen ") or filename in _HELPER_FILES


def user_location() -> Location | None:
    """The innermost stack frame outside the graphc package (the user's line)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return None
    return Location(frame.f_code.co_filename, frame.f_lineno)


def where(location: Location | None) -> str:
    """' (built at file:line)' for messages, or '' when the location is unknown."""
    if location is None:
        return ""
    return f" (built at {location})"


def located(exc: E, what: str, loc: Location | None) -> E:
    """The same error class with `what` (the op and its operands) and the user's line added.

    An error that already names its location is returned unchanged.
    """
    if getattr(exc, "graphc_located", False):
        return exc
    message = f"{what}: {exc}"
    if loc is not None:
        message += f"\n  at {loc}"
    try:
        new = type(exc)(message)
    except Exception:  # an error class whose constructor takes other arguments: left as it is
        return exc
    new.graphc_located = True  # type: ignore[attr-defined]
    return new
