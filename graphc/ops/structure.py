"""Structure primitives: `diag` (a vector on the diagonal of a matrix) and `index_add` (a base plus a scatter).

Imports errors, shapes, ir and ops. These are what structured Jacobians are built of:
the identity seed of a dense Jacobian is `diag(ones)` (autodiff/seeds.py recognizes it
and keeps derivatives diagonal instead of multiplying by an identity), and a sparse
Jacobian's values are a constant part plus the entries that change, `index_add(base,
updates, indices)` (autodiff/recovery.py). Both take exact zeros off the diagonal or
outside the indices: nothing is multiplied by a zero there.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.ir import Node
from graphc.ops.base import Op
from graphc.ops.shape import batch_of, reshape, scatter_add, slice_, take
from graphc.ops.sparsity import Pattern, diag_pattern, index_add_pattern
from graphc.shapes import INT64, TensorType

# --- diag -------------------------------------------------------------------------------------


def _diag_infer(v: TensorType) -> TensorType:
    if v.ndim == 0:
        raise ShapeError("diag needs at least one axis, got a 0-d operand")
    return TensorType((*v.shape, v.shape[-1]), v.dtype)


def _diag_eval(v: np.ndarray) -> np.ndarray:
    """out[..., i, i] = v[..., i], exact zeros elsewhere."""
    v = np.asarray(v)
    n = v.shape[-1]
    out = np.zeros((*v.shape, n), dtype=v.dtype)
    index = np.arange(n)
    out[..., index, index] = v
    return out


def diagonal(x: Node) -> Node:
    """x[..., i, i] (the diagonal of the last two axes, which are square): a view, as reshape and a stepped slice."""
    n = x.shape[-1]
    flat = reshape(x, shape=(*x.shape[:-2], n * n))
    return slice_(flat, index=((0, n * n, n + 1),))


def _diag_vjp(ct: Node, out: Node, v: Node) -> Node:
    """d diag(v) / dv: the cotangent's diagonal."""
    return diagonal(ct)


diag: Op = Op(
    "diag", _diag_infer, _diag_eval,
    vjp=(_diag_vjp,), jvp=(lambda t, out, v: diag(t),),
    sparsity=diag_pattern,
)  # fmt: skip
"""diag(v): (..., n) -> (..., n, n), v on the diagonal of the last two axes, exact zeros elsewhere."""

# --- index_add ------------------------------------------------------------------------------


def _index_add_infer(base: TensorType, updates: TensorType, indices: TensorType, *, axis: int) -> TensorType:
    if indices.dtype != INT64:
        raise DTypeError(f"indices must be int64, got {indices.dtype}")
    if base.dtype != updates.dtype:
        raise DTypeError(f"base and updates must share one dtype, got {base.dtype} and {updates.dtype}")
    if not 0 <= axis < base.ndim:
        raise ShapeError(f"axis {axis} is out of bounds for {base.shape}")
    expected = (*base.shape[:axis], *indices.shape, *base.shape[axis + 1 :])
    if updates.shape != expected:
        raise ShapeError(f"updates of shape {updates.shape} do not fit indices {indices.shape} into {base.shape}")
    return base


def _index_add_eval(base: np.ndarray, updates: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    """A copy of base with updates added at indices along axis (repeated indices add up, in order)."""
    out = np.array(base, copy=True)
    indices = np.asarray(indices)
    updates = np.asarray(updates)
    if axis == 0 and out.ndim == 1 and indices.ndim == 1:
        np.add.at(out, indices, updates)
        return out
    moved = np.moveaxis(out, axis, 0)
    values = updates.reshape((*updates.shape[:axis], -1, *updates.shape[axis + indices.ndim :]))
    np.add.at(moved, indices.reshape(-1), np.moveaxis(values, axis, 0))
    return out


def _index_add_vjp_updates(ct: Node, out: Node, base: Node, updates: Node, indices: Node, *, axis: int) -> Node:
    return take(ct, indices, axis=axis + len(batch_of(ct, out)))


def _index_add_jvp_updates(t: Node, out: Node, base: Node, updates: Node, indices: Node, *, axis: int) -> Node:
    nb = len(batch_of(t, updates))
    return scatter_add(t, indices, axis=axis + nb, size=base.shape[axis])


index_add: Op = Op(
    "index_add", _index_add_infer, _index_add_eval,
    vjp=(lambda ct, out, base, updates, indices, *, axis: ct, _index_add_vjp_updates, None),
    jvp=(lambda t, out, base, updates, indices, *, axis: t, _index_add_jvp_updates, None),
    sparsity=index_add_pattern,
)  # fmt: skip
"""index_add(base, updates, indices; axis): base with updates added at indices along axis (np.add.at on a copy)."""

__all__ = ["Pattern", "diag", "diagonal", "index_add"]
