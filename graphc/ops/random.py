"""The primitives random numbers are built from: integer bit operations, a counter, a sort.

Imports errors, shapes, ir and ops.base. graphc.random builds a counter-based generator
(Threefry-2x32) out of these, elementwise over `iota`'s counter, so it fuses, and every
executor computes the same bits: the ops are exact integer functions with NumPy
references, and their LLVM emitters reproduce NumPy's results for every operand,
out-of-range shift amounts included.

- bitwise_and, bitwise_or, bitwise_xor: int64 or bool operands, as numpy's.
- left_shift, right_shift: int64 operands; right_shift is arithmetic (sign-filling), as
  numpy's on int64. A shift amount outside [0, 63] gives 0 (and -1 for a right shift of a
  negative value), as numpy's does.
- iota(shape): int64 [0, 1, .., n-1] in C order, shaped `shape`: each element's flat index.
- sort(x): int64 x sorted along its last axis (numpy.sort); no derivative.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from graphc.errors import DTypeError, GraphError
from graphc.ops.base import Kind, Op, Public, zero
from graphc.ops.elementwise import binary
from graphc.shapes import BOOL, INT64, Dim, Shape, TensorType, broadcast_shapes


def _bitwise_infer(x: TensorType, y: TensorType) -> TensorType:
    if x.dtype != y.dtype or x.dtype not in (INT64, BOOL):
        raise DTypeError(f"expects int64 or bool operands of one dtype, got {x.dtype} and {y.dtype}")
    return TensorType(broadcast_shapes(x.shape, y.shape), x.dtype)


def _shift_infer(x: TensorType, y: TensorType) -> TensorType:
    if x.dtype != INT64 or y.dtype != INT64:
        raise DTypeError(f"expects int64 operands, got {x.dtype} and {y.dtype}")
    return TensorType(broadcast_shapes(x.shape, y.shape), INT64)


def _integer_op(name: str, infer: Callable[..., TensorType], doc: str) -> Op:
    """A broadcasting binary op on integers that is numpy's `name`; derivative zero (integer results)."""
    return binary(name, (zero, zero), numpy=name, infer=infer, public=Public(name, doc, arity=2))


bitwise_and = _integer_op("bitwise_and", _bitwise_infer, "Elementwise bit-and of int64 or bool operands, as numpy's.")
bitwise_or = _integer_op("bitwise_or", _bitwise_infer, "Elementwise bit-or of int64 or bool operands, as numpy's.")
bitwise_xor = _integer_op("bitwise_xor", _bitwise_infer, "Elementwise bit-xor of int64 or bool operands, as numpy's.")
left_shift = _integer_op(
    "left_shift", _shift_infer, "x << y for int64 operands, as numpy.left_shift (a shift outside [0, 63] gives 0)."
)
right_shift = _integer_op(
    "right_shift", _shift_infer,
    "x >> y for int64 operands, arithmetic as numpy.right_shift (a shift outside [0, 63] gives 0, or -1 for x < 0).",
)  # fmt: skip


def _iota_infer(*, shape: Shape) -> TensorType:
    if not isinstance(shape, tuple) or not all(isinstance(n, Dim) or (isinstance(n, int) and n >= 0) for n in shape):
        raise GraphError(f"iota's shape must be a tuple of ints >= 0 and named dimensions, got {shape!r}")
    return TensorType(shape, INT64)


def _iota_eval(*, shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=INT64).reshape(shape)


iota = Op("iota", _iota_infer, _iota_eval, kind=Kind.OPAQUE)
"""iota(; shape): the flat C-order index of each element, int64."""


def _sort_infer(x: TensorType) -> TensorType:
    if x.dtype != INT64 or x.ndim == 0:
        raise DTypeError(f"sort takes an int64 array of at least one axis, got {x}")
    return x


def _sort_eval(x: np.ndarray) -> np.ndarray:
    return np.sort(x, axis=-1)


sort = Op("sort", _sort_infer, _sort_eval, vjp=(None,), jvp=(None,), kind=Kind.OPAQUE)
"""sort(x): int64 x sorted along its last axis."""

__all__ = ["bitwise_and", "bitwise_or", "bitwise_xor", "iota", "left_shift", "right_shift", "sort"]
