"""Source ops: `var` (a symbolic input), `const` (an array baked into the graph) and `dim`.

`dim` is the size of a named dimension as a 0-d value (mean over a `batch` axis divides
by it). It exists only in graphs with named dimensions: when a call binds the sizes,
specialization (ops/dims.py) replaces it by a constant, so no backend ever meets it.
"""

from __future__ import annotations

import itertools

import numpy as np

from graphc.errors import GraphError
from graphc.ir import ConstValue, Node
from graphc.ops.base import Kind, Op
from graphc.shapes import Dim, DimLike, Shape, TensorType, as_dtype

_UIDS = itertools.count()


def _var_eval(**_attrs: object) -> np.ndarray:
    raise TypeError("a var has no value of its own; pass it one")


def _var_infer(*, name: str, shape: Shape, dtype: np.dtype, uid: int) -> TensorType:
    return TensorType(shape, dtype)


def _const_infer(*, value: ConstValue) -> TensorType:
    return TensorType(value.array.shape, as_dtype(value.array.dtype))


def _dim_infer(*, size: Dim, dtype: np.dtype) -> TensorType:
    if not isinstance(size, Dim):
        raise GraphError(f"dim stands for a named size, not {size!r} (a known size is a constant)")
    return TensorType((), as_dtype(dtype))


def _dim_eval(*, size: Dim, dtype: np.dtype) -> np.ndarray:
    raise TypeError(f"the size {size} exists only when a call binds it; specialize the graph to the sizes first")


var_op = Op("var", _var_infer, _var_eval, kind=Kind.SOURCE)
const_op = Op("const", _const_infer, lambda *, value: value.array, kind=Kind.SOURCE)
dim_op = Op("dim", _dim_infer, _dim_eval, kind=Kind.SOURCE, transient=True)


def dim_value(size: DimLike, dtype: np.dtype) -> Node:
    """A size as a 0-d value of `dtype`: a constant when it is known, else a `dim` node."""
    if isinstance(size, Dim):
        return dim_op(size=size, dtype=dtype)
    return const(np.asarray(size, dtype=dtype))


def var(name: str, shape: Shape, dtype: np.dtype) -> Node:
    """A new symbolic input: every call makes a distinct var, even with the same name."""
    return var_op(name=name, shape=shape, dtype=dtype, uid=next(_UIDS))


def const(value: object, dtype: np.dtype | None = None) -> Node:
    """The interned constant node for an array-like (cast to `dtype` when given)."""
    array = np.asarray(value, dtype=dtype)
    as_dtype(array.dtype)
    return const_op(value=ConstValue(array))


def scalar(value: float, like: Node) -> Node:
    """A 0-d constant with the dtype of `like` (for use inside derivative rules)."""
    return const(np.asarray(value, dtype=like.dtype))


def const_value(node: Node) -> np.ndarray | None:
    """The array of a const node, or None for any other node."""
    if node.op is not const_op:
        return None
    value = node.attr("value")
    assert isinstance(value, ConstValue)
    return value.array


def static_value(node: Node, depth: int = 8) -> np.ndarray | None:
    """The value of a small expression of constants (a rule sees `y - 1` before folding), or None.

    Only elementwise-sized work: expressions deeper than `depth` or larger than 4096
    elements are not evaluated.
    """
    value = const_value(node)
    if value is not None or depth == 0 or not node.inputs or node.type.size > 4096 or not isinstance(node.op, Op):
        return value
    args = []
    for i in node.inputs:
        arg = static_value(i, depth - 1)
        if arg is None:
            return None
        args.append(arg)
    with np.errstate(all="ignore"):
        return np.asarray(node.op.eval(*args, **node.params))
