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
_INTERNAL: dict[str, bool] = {}  # file name -> whether its frames are graphc's own (few files: never pruned)
_LOCATIONS: dict[tuple[str, int], Location] = {}  # one Location per user line, shared by every node built there
_MAX_LOCATIONS = 1 << 16


def _is_internal(filename: str) -> bool:
    """Frames of graphc itself and of the stdlib helpers it calls through."""
    return filename.startswith(_PACKAGE_DIR) or filename.startswith("<frozen ") or filename in _HELPER_FILES


def user_location() -> Location | None:
    """The innermost stack frame outside the graphc package (the user's line).

    Whether a file is internal is decided once per file name, and the Location of a
    line is made once and shared (it is immutable): a graph built in a loop asks this
    once per node from the same few lines.
    """
    frame: FrameType | None = sys._getframe(1)
    internal = _INTERNAL
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = internal.get(filename)
        if inside is None:
            inside = internal[filename] = _is_internal(filename)
        if not inside:
            return _location(filename, frame.f_lineno)
        frame = frame.f_back
    return None


def _location(filename: str, line: int) -> Location:
    """The shared Location of file:line (the table is emptied when it grows past _MAX_LOCATIONS)."""
    key = (filename, line)
    loc = _LOCATIONS.get(key)
    if loc is None:
        if len(_LOCATIONS) >= _MAX_LOCATIONS:
            _LOCATIONS.clear()
        loc = _LOCATIONS[key] = Location(filename, line)
    return loc


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
