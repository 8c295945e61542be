"""Linear algebra primitive: matmul of operands with at least two axes (batch axes broadcast).

The frontend maps NumPy's 1-D matmul/dot conventions onto this primitive with
reshapes, so the rule and every backend see one shape convention.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.ir import Node
from graphc.ops.base import Kind, Op
from graphc.ops.shape import transpose
from graphc.ops.sparsity import matrix_product
from graphc.shapes import TensorType, broadcast_shapes, is_float


def _matmul_infer(x: TensorType, y: TensorType) -> TensorType:
    if x.dtype != y.dtype or not is_float(x.dtype):
        raise DTypeError(f"operands must share one float dtype, got {x.dtype} and {y.dtype}")
    if x.ndim < 2 or y.ndim < 2:
        raise ShapeError(f"the primitive needs at least 2 axes, got {x.shape} and {y.shape}")
    if x.shape[-1] != y.shape[-2]:
        raise ShapeError(f"contracted dimensions differ: {x.shape} @ {y.shape} ({x.shape[-1]} != {y.shape[-2]})")
    batch = broadcast_shapes(x.shape[:-2], y.shape[:-2])
    return TensorType((*batch, x.shape[-2], y.shape[-1]), x.dtype)


def swap_last(x: Node) -> Node:
    """x with its last two axes exchanged."""
    axes = (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2)
    return transpose(x, axes=axes)


matmul = Op(
    "matmul", _matmul_infer, np.matmul,
    vjp=(lambda ct, out, x, y: matmul(ct, swap_last(y)), lambda ct, out, x, y: matmul(swap_last(x), ct)),
    jvp=(lambda t, out, x, y: matmul(t, y), lambda t, out, x, y: matmul(x, t)),
    kind=Kind.OPAQUE, aligns=True, numpy="matmul", sparsity=matrix_product,
)  # fmt: skip
