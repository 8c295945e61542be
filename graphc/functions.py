"""The NumPy-named functions of the API (exp, sum, matmul, concatenate, softmax, take, ...).

Imports errors, shapes, ir, ops, tensor, arrays and einsum (whose functions it re-exports).
Each function has NumPy's name, signature, dtype rules and broadcasting. The functions that apply one op (exp,
subtract, maximum, ...) are made here from the op's record (`Op.public`), so adding
such an op adds its function, its `__all__` entry and graphc's export; the rest are
written below: composites with primitives (mean, softmax, one_hot, dot) and the
functions with their own arguments (round, where, reductions). The ML functions follow
jax.nn / scipy.special.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from graphc.arrays import (
    arange,
    cumprod,
    cumsum,
    diff,
    eye,
    flip,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    outer,
    pad,
    repeat,
    roll,
    tile,
    tril,
    triu,
    zeros,
    zeros_like,
)
from graphc.einsum import einsum, tensordot
from graphc.errors import DTypeError, ShapeError
from graphc.ops import OPS, Op
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.shapes import BOOL, FLOAT64, INT64, Dim, as_shape, broadcast_shapes, normalize_axes, normalize_axis
from graphc.tensor import (
    NUMPY_FUNCTIONS,
    Tensor,
    TensorLike,
    all_,
    any_,
    arith,
    as_tensor,
    astype,
    building,
    const,
    invert,
    logical_not,
    matmul,
    mean,
    promote,
    reduction,
    reshape,
    squeeze,
    std,
    take,
    to_float,
    transpose,
    truth,
    variance,
)

Axis = int | Sequence[int] | None


def _unary(op: Op, name: str, floats: bool) -> Callable[[TensorLike], Tensor]:
    def function(x: TensorLike) -> Tensor:
        with building(name, x):
            t = to_float(x) if floats else as_tensor(x)
            return Tensor(op(t.node))

    return function


def _binary(op: Op, name: str, floats: bool) -> Callable[[TensorLike, TensorLike], Tensor]:
    def function(x: TensorLike, y: TensorLike) -> Tensor:
        if not floats:
            return arith(op.name, x, y)
        with building(name, x, y):
            a, b = (to_float(t) for t in promote(x, y))
            return Tensor(op(a.node, b.node))

    return function


def public_function(op: Op) -> Callable[..., Tensor]:
    """The function of graphc that applies `op` to Tensors, as its record's `public` describes it."""
    spec = op.public
    if spec is None:
        raise ValueError(f"op {op.name!r} has no public function")
    if spec.arity == 2:
        function: Callable[..., Tensor] = _binary(op, spec.name, spec.floats)
    else:
        function = _unary(op, spec.name, spec.floats)
    function.__name__ = function.__qualname__ = spec.name
    function.__doc__ = spec.doc
    function.__module__ = __name__
    return function


PUBLIC: dict[str, Callable[..., Tensor]] = {
    op.public.name: public_function(op) for op in OPS.values() if op.public is not None
}
"""The functions made from op records, by name (exp, subtract, maximum, equal, ...)."""
globals().update(PUBLIC)

if TYPE_CHECKING:  # what type checkers see of the functions made from records

    def __getattr__(name: str) -> Callable[..., Tensor]: ...


def square(x: TensorLike) -> Tensor:
    """x * x, as numpy.square."""
    t = as_tensor(x)
    return t * t


def round(x: TensorLike, decimals: int = 0) -> Tensor:
    """Round half to even, as numpy.round (only decimals=0 is supported)."""
    if decimals != 0:
        raise NotImplementedError("gc.round supports decimals=0 only")
    with building("round", x):
        t = as_tensor(x)
        if t.dtype == BOOL:
            t = astype(t, FLOAT64)
        return Tensor(ew.round_(t.node))


def where(condition: TensorLike, x: TensorLike, y: TensorLike) -> Tensor:
    """x where condition else y, broadcasting all three (a non-bool condition means != 0)."""
    with building("where", condition, x, y):
        c = as_tensor(condition)
        if c.dtype != BOOL:
            c = astype(c, BOOL)
        a, b = promote(x, y)
        return Tensor(ew.where(c.node, a.node, b.node))


def clip(a: TensorLike, a_min: TensorLike, a_max: TensorLike) -> Tensor:
    """minimum(maximum(a, a_min), a_max), as numpy.clip; either bound may be None."""
    if a_min is None and a_max is None:
        raise ValueError("clip: one of a_min and a_max must be given")
    with building("clip", a, a_min, a_max):
        out = as_tensor(a)
        bounds = [as_tensor(b) for b in (a_min, a_max) if b is not None]
        broadcast_shapes(out.shape, *(b.shape for b in bounds))  # a clash names clip, not maximum
        if a_min is not None:
            out = arith("maximum", out, a_min)
        if a_max is not None:
            out = arith("minimum", out, a_max)
        return out


# --- reductions -------------------------------------------------------------------------


def sum(a: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (None: all axes); bools and ints sum as int64."""
    return reduction("sum", a, axis, keepdims)


def prod(a: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return reduction("prod", a, axis, keepdims)


def max(a: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over `axis`; the cotangent is split evenly among tied maxima."""
    return reduction("max", a, axis, keepdims)


def min(a: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Minimum over `axis`; the cotangent is split evenly among tied minima."""
    return reduction("min", a, axis, keepdims)


def logsumexp(a: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(a))) computed with the max shift, as scipy.special.logsumexp."""
    return reduction("logsumexp", a, axis, keepdims)


def _max_shifted(a: TensorLike, axis: int) -> Tensor:
    """a minus its maximum along `axis` (0 where that is not finite), as jax.nn shifts.

    Shifting first keeps the largest entry's result exact: a - logsumexp(a) would
    round logsumexp at the magnitude of a (softmax([1e308, 1e308]) summed to 2).
    """
    t = to_float(a)
    ax = normalize_axis(axis, t.ndim)  # a bad axis names softmax, not the max inside it
    if t.shape[ax] == 0:
        return t  # nothing to shift: an empty result, as jax.nn and torch give
    m = max(_with_minus_inf(t, ax) if isinstance(t.shape[ax], Dim) else t, axis, keepdims=True)
    return t - where(Tensor(ew.isfinite(m.node)), m, 0.0)


def _with_minus_inf(t: Tensor, axis: int) -> Tensor:
    """t with one -inf appended along a named axis: its maximum is t's, and exists when the axis is empty."""
    slab = (*t.shape[:axis], 1, *t.shape[axis + 1 :])
    minus_inf = broadcast_to(const(np.asarray(-np.inf, dtype=t.dtype)), slab)
    return Tensor(sh.concatenate(t.node, minus_inf.node, axis=axis))


def softmax(a: TensorLike, axis: int = -1) -> Tensor:
    """exp(s - logsumexp(s, axis, keepdims=True)) with s = a - max(a), as jax.nn.softmax."""
    with building("softmax", a):
        s = _max_shifted(a, axis)
        return Tensor(ew.exp((s - logsumexp(s, axis, keepdims=True)).node))


def log_softmax(a: TensorLike, axis: int = -1) -> Tensor:
    """s - logsumexp(s, axis, keepdims=True) with s = a - max(a), as jax.nn.log_softmax."""
    with building("log_softmax", a):
        s = _max_shifted(a, axis)
        return s - logsumexp(s, axis, keepdims=True)


def argmax(a: TensorLike, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the first maximum (int64); not differentiable."""
    with building("argmax", a):
        t = as_tensor(a)
        ax = None if axis is None else normalize_axis(axis, t.ndim)
        return Tensor(rd.argmax(t.node, axis=ax, keepdims=bool(keepdims)))


def argmin(a: TensorLike, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the first minimum (int64); not differentiable."""
    with building("argmin", a):
        t = as_tensor(a)
        ax = None if axis is None else normalize_axis(axis, t.ndim)
        return Tensor(rd.argmin(t.node, axis=ax, keepdims=bool(keepdims)))


# --- shapes --------------------------------------------------------------------------------


def broadcast_to(a: TensorLike, shape: int | Sequence[int]) -> Tensor:
    with building("broadcast_to", a, shape):
        t = as_tensor(a)
        target = as_shape(shape)
        if target == t.shape:
            return t
        return Tensor(sh.broadcast_to(t.node, shape=target))


def expand_dims(a: TensorLike, axis: int | Sequence[int]) -> Tensor:
    """Insert length-1 axes at `axis` (positions in the result), as numpy.expand_dims."""
    with building("expand_dims", a, axis):
        t = as_tensor(a)
        if not isinstance(axis, (int, np.integer, tuple, list)):
            raise ShapeError(f"axis must be an int or a tuple of ints, not {axis!r}")
        axes = normalize_axes(axis, t.ndim + (len(axis) if isinstance(axis, (tuple, list)) else 1))
        dims = iter(t.shape)
        shape = tuple(1 if i in axes else next(dims) for i in range(t.ndim + len(axes)))
        return reshape(t, shape)


def concatenate(arrays: Sequence[TensorLike], axis: int | None = 0) -> Tensor:
    """Join along an existing axis (axis=None flattens first), with NumPy's promotion."""
    with building("concatenate", *arrays):
        if not arrays:
            raise ShapeError("need at least one array to concatenate")
        tensors = promote(*arrays)
        if axis is None:
            tensors = [reshape(t, (-1,)) for t in tensors]
            axis = 0
        if not tensors or tensors[0].ndim == 0:
            raise ShapeError("zero-dimensional arrays cannot be concatenated")
        ax = normalize_axis(axis, tensors[0].ndim)
        if len(tensors) == 1:
            return tensors[0]
        return Tensor(sh.concatenate(*(t.node for t in tensors), axis=ax))


def stack(arrays: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Join along a new axis; all arrays must have the same shape."""
    with building("stack", *arrays):
        if not arrays:
            raise ShapeError("need at least one array to stack")
        tensors = promote(*arrays)
        if len({t.shape for t in tensors}) != 1:
            raise ShapeError("all input arrays must have the same shape")
        ax = normalize_axis(axis, tensors[0].ndim + 1)
        return concatenate([expand_dims(t, ax) for t in tensors], axis=ax)


# --- linear algebra --------------------------------------------------------------------------


def dot(a: TensorLike, b: TensorLike) -> Tensor:
    """numpy.dot: products for 0-d, matmul for 1-D/2-D, sum over a's last and b's second-to-last axis."""
    with building("dot", a, b):
        x, y = promote(a, b)
        if x.ndim == 0 or y.ndim == 0:
            return x * y
        if y.ndim <= 2:
            return matmul(x, y)
        k = y.shape[-2]
        if x.shape[-1] != k:
            raise ShapeError(f"shapes {x.shape} and {y.shape} not aligned: {x.shape[-1]} (dim {x.ndim - 1}) != {k}")
        moved = transpose(y, (y.ndim - 2, *range(y.ndim - 2), y.ndim - 1))
        flat = matmul(reshape(x, (-1, k)), reshape(moved, (k, -1)))
        return reshape(flat, x.shape[:-1] + y.shape[:-2] + y.shape[-1:])


# --- truth values ------------------------------------------------------------------------------

any = any_  # NumPy's names; builtins.any and builtins.all stay reachable
all = all_


def _logical(name: str, x1: TensorLike, x2: TensorLike) -> Tensor:
    with building(name, x1, x2):
        a, b = truth(x1), truth(x2)
        if name == "logical_xor":
            return arith("not_equal", a, b)
        op = ew.logical_and if name == "logical_and" else ew.logical_or
        return Tensor(op(a.node, b.node))


def logical_and(x1: TensorLike, x2: TensorLike) -> Tensor:
    """Elementwise AND of the truth values (nonzero is true), as numpy.logical_and."""
    return _logical("logical_and", x1, x2)


def logical_or(x1: TensorLike, x2: TensorLike) -> Tensor:
    """Elementwise OR of the truth values (nonzero is true), as numpy.logical_or."""
    return _logical("logical_or", x1, x2)


def logical_xor(x1: TensorLike, x2: TensorLike) -> Tensor:
    """Elementwise XOR of the truth values (nonzero is true), as numpy.logical_xor."""
    return _logical("logical_xor", x1, x2)


# --- gathers and encodings -------------------------------------------------------------------


def one_hot(indices: TensorLike, n: int) -> Tensor:
    """float64 one-hot encoding with a new last axis of length n (out-of-range rows are all 0)."""
    with building("one_hot", indices):
        idx = as_tensor(indices)
        if idx.dtype != INT64:
            raise DTypeError(f"one_hot indices must be int64, got {idx.dtype}")
        classes = const(np.arange(int(n), dtype=np.int64))
        return astype(arith("equal", expand_dims(idx, -1), classes), FLOAT64)


__all__ = [
    "all", "any", "arange", "argmax", "argmin", "broadcast_to", "clip", "concatenate", "cumprod", "cumsum", "diff",
    "dot", "einsum", "expand_dims", "eye", "flip", "full", "full_like", "invert", "linspace", "log_softmax",
    "logical_and", "logical_not", "logical_or", "logical_xor", "logsumexp", "matmul", "max", "mean", "min", "one_hot",
    "ones", "ones_like", "outer", "pad", "prod", "repeat", "reshape", "roll", "round", "softmax", "square", "squeeze",
    "stack", "std", "sum", "take", "tensordot", "tile", "transpose", "tril", "triu", "variance", "where", "zeros",
    "zeros_like",
]  # fmt: skip
__all__ += sorted(PUBLIC)


def _ravel(a: TensorLike, order: str = "C") -> Tensor:
    """np.ravel(t): the elements as a 1-D Tensor in C order (the only order graphc has)."""
    if order != "C":
        raise TypeError(f"np.ravel(..., order={order!r}) is not supported on graphc Tensors: they ravel in C order")
    return reshape(a, (-1,))


NUMPY_FUNCTIONS.update({name: globals()[name] for name in __all__}, ravel=_ravel)
