"""Static types: the four dtypes, TensorType, broadcasting and axis arithmetic.

Imports only errors. Every check raises ShapeError/DTypeError with a message
that names what was wrong; the caller (the node constructor) adds the op and
the user's line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from graphc.errors import DTypeError, ShapeError

Shape = tuple[int, ...]

FLOAT64 = np.dtype("float64")
FLOAT32 = np.dtype("float32")
INT64 = np.dtype("int64")
BOOL = np.dtype("bool")
DTYPES: tuple[np.dtype, ...] = (FLOAT64, FLOAT32, INT64, BOOL)

_SHORT = {FLOAT64: "f64", FLOAT32: "f32", INT64: "i64", BOOL: "bool"}


def as_dtype(dtype: object) -> np.dtype:
    """The graphc dtype for a NumPy dtype-like; DTypeError for anything else."""
    try:
        d = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise DTypeError(f"not a dtype: {dtype!r}") from exc
    if d not in DTYPES:
        names = ", ".join(str(t) for t in DTYPES)
        raise DTypeError(f"unsupported dtype {d}; graphc supports {names}")
    return d


def is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def short_name(dtype: np.dtype) -> str:
    return _SHORT[dtype]


@dataclass(frozen=True)
class TensorType:
    """The static type of a node: a shape of ints and one of the four dtypes."""

    shape: Shape
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        dims = ",".join(str(n) for n in self.shape)
        return f"{short_name(self.dtype)}[{dims}]"


def as_shape(shape: object) -> Shape:
    """A shape tuple from an int or a sequence of non-negative ints."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, Iterable):
        raise ShapeError(f"a shape must be an int or a tuple of ints, not {shape!r}")
    dims = tuple(shape)
    for n in dims:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ShapeError(f"invalid shape {dims}: dimensions must be ints >= 0")
    return tuple(int(n) for n in dims)


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy's broadcasting of shapes; ShapeError naming them when they clash."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        dims = {s[i] for s in shapes if len(s) >= -i}
        dims.discard(1)
        if len(dims) > 1:
            listed = " and ".join(str(s) for s in shapes)
            raise ShapeError(f"shapes {listed} cannot be broadcast together")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def normalize_axis(axis: int, ndim: int) -> int:
    """An axis in [0, ndim) from a possibly negative one."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise ShapeError(f"axis must be an int, not {axis!r}")
    if not -ndim <= axis < ndim:
        raise ShapeError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return int(axis) % ndim


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Sorted non-negative axes; None means all axes. Repeated axes are an error."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)):
        axis = (int(axis),)
    if not isinstance(axis, (tuple, list)):
        raise ShapeError(f"axis must be an int, a tuple of ints or None, not {axis!r}")
    axes = tuple(normalize_axis(a, ndim) for a in axis)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"repeated axis in {tuple(axis)}")
    return tuple(sorted(axes))


def reduced_shape(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def result_dtype(*dtypes: np.dtype) -> np.dtype:
    """NumPy's promotion of array dtypes, restricted to graphc's four dtypes."""
    return as_dtype(np.result_type(*dtypes))


def resolve_reshape(old: Shape, new: object) -> Shape:
    """The target of a reshape, with one -1 dimension inferred as in NumPy."""
    if isinstance(new, (int, np.integer)):
        new = (new,)
    if not isinstance(new, Iterable):
        raise TypeError(f"a shape is an int or a sequence of ints, got {type(new).__name__}")
    dims = tuple(int(n) for n in new)
    size = int(np.prod(old, dtype=np.int64))
    if dims.count(-1) > 1:
        raise ShapeError(f"can only specify one unknown dimension in {dims}")
    if any(n < -1 for n in dims):
        raise ShapeError(f"invalid shape {dims}")
    known = int(np.prod([n for n in dims if n != -1], dtype=np.int64))
    if -1 in dims:
        if known == 0 or size % known:
            raise ShapeError(f"cannot reshape array of shape {old} into shape {dims}")
        dims = tuple(size // known if n == -1 else n for n in dims)
    if int(np.prod(dims, dtype=np.int64)) != size:
        raise ShapeError(f"cannot reshape array of shape {old} into shape {dims}")
    return dims
