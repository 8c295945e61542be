"""The NumPy-named functions of the API (exp, sum, matmul, concatenate, softmax, take, ...).

Imports errors, shapes, ir, ops and tensor. Each function has NumPy's name,
signature, dtype rules and broadcasting; composites (mean, softmax, one_hot, dot)
are written with primitives. The ML functions follow jax.nn / scipy.special.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.ops import elementwise as ew
from graphc.ops import linalg as la
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.shapes import BOOL, FLOAT64, INT64, as_shape, broadcast_shapes, is_float, normalize_axes, normalize_axis
from graphc.tensor import (
    Tensor,
    arith,
    as_tensor,
    astype,
    building,
    const,
    promote,
    reduction,
    reshape,
    to_float,
)  # fmt: skip

Axis = int | Sequence[int] | None


def _float_unary(name: str, op: ew.Op, formula: str | None = None) -> object:
    """The public function of a float unary op; `formula` describes one NumPy does not have."""

    def function(x: object) -> Tensor:
        with building(name, x):
            return Tensor(op(to_float(x).node))

    function.__name__ = name
    what = formula or f"as numpy.{name}"
    function.__doc__ = f"Elementwise {name}, {what} (ints and bools are computed in float64)."
    return function


exp = _float_unary("exp", ew.exp)
log = _float_unary("log", ew.log)
log1p = _float_unary("log1p", ew.log1p)
expm1 = _float_unary("expm1", ew.expm1)
sqrt = _float_unary("sqrt", ew.sqrt)
sin = _float_unary("sin", ew.sin)
cos = _float_unary("cos", ew.cos)
tan = _float_unary("tan", ew.tan)
tanh = _float_unary("tanh", ew.tanh)
sinh = _float_unary("sinh", ew.sinh)
cosh = _float_unary("cosh", ew.cosh)
arctan = _float_unary("arctan", ew.arctan)
sigmoid = _float_unary("sigmoid", ew.sigmoid, "1 / (1 + exp(-x)), as scipy.special.expit")
softplus = _float_unary("softplus", ew.softplus, "log(1 + exp(x)) without overflow, as jax.nn.softplus")
relu = _float_unary("relu", ew.relu, "maximum(x, 0), as jax.nn.relu")
isnan = _float_unary("isnan", ew.isnan)
isfinite = _float_unary("isfinite", ew.isfinite)


def square(x: object) -> Tensor:
    """x * x, as numpy.square."""
    t = as_tensor(x)
    return t * t


def abs(x: object) -> Tensor:
    """Elementwise absolute value; the subgradient at 0 is 0."""
    with building("abs", x):
        return Tensor(ew.abs_(as_tensor(x).node))


def sign(x: object) -> Tensor:
    with building("sign", x):
        return Tensor(ew.sign(as_tensor(x).node))


def floor(x: object) -> Tensor:
    with building("floor", x):
        return Tensor(ew.floor(as_tensor(x).node))


def round(x: object, decimals: int = 0) -> Tensor:
    """Round half to even, as numpy.round (only decimals=0 is supported)."""
    if decimals != 0:
        raise NotImplementedError("gc.round supports decimals=0 only")
    with building("round", x):
        t = as_tensor(x)
        if t.dtype == BOOL:
            t = astype(t, FLOAT64)
        return Tensor(ew.round_(t.node))


def negative(x: object) -> Tensor:
    return -as_tensor(x)


def add(x: object, y: object) -> Tensor:
    return arith("add", x, y)


def subtract(x: object, y: object) -> Tensor:
    return arith("sub", x, y)


def multiply(x: object, y: object) -> Tensor:
    return arith("mul", x, y)


def divide(x: object, y: object) -> Tensor:
    return arith("div", x, y)


def power(x: object, y: object) -> Tensor:
    return arith("pow", x, y)


def maximum(x: object, y: object) -> Tensor:
    """Elementwise maximum (NaN propagates); at ties each operand gets half the cotangent."""
    return arith("maximum", x, y)


def minimum(x: object, y: object) -> Tensor:
    """Elementwise minimum (NaN propagates); at ties each operand gets half the cotangent."""
    return arith("minimum", x, y)


def equal(x: object, y: object) -> Tensor:
    return arith("equal", x, y)


def not_equal(x: object, y: object) -> Tensor:
    return arith("not_equal", x, y)


def less(x: object, y: object) -> Tensor:
    return arith("less", x, y)


def less_equal(x: object, y: object) -> Tensor:
    return arith("less_equal", x, y)


def greater(x: object, y: object) -> Tensor:
    return arith("greater", x, y)


def greater_equal(x: object, y: object) -> Tensor:
    return arith("greater_equal", x, y)


def where(condition: object, x: object, y: object) -> Tensor:
    """x where condition else y, broadcasting all three (a non-bool condition means != 0)."""
    with building("where", condition, x, y):
        c = as_tensor(condition)
        if c.dtype != BOOL:
            c = astype(c, BOOL)
        a, b = promote(x, y)
        return Tensor(ew.where(c.node, a.node, b.node))


def clip(a: object, a_min: object, a_max: object) -> Tensor:
    """minimum(maximum(a, a_min), a_max), as numpy.clip; either bound may be None."""
    if a_min is None and a_max is None:
        raise ValueError("clip: one of a_min and a_max must be given")
    with building("clip", a, a_min, a_max):
        out = as_tensor(a)
        bounds = [as_tensor(b) for b in (a_min, a_max) if b is not None]
        broadcast_shapes(out.shape, *(b.shape for b in bounds))  # a clash names clip, not maximum
        if a_min is not None:
            out = maximum(out, a_min)
        if a_max is not None:
            out = minimum(out, a_max)
        return out


# --- reductions -------------------------------------------------------------------------


def sum(a: object, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (None: all axes); bools and ints sum as int64."""
    return reduction("sum", a, axis, keepdims)


def prod(a: object, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return reduction("prod", a, axis, keepdims)


def max(a: object, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over `axis`; the cotangent is split evenly among tied maxima."""
    return reduction("max", a, axis, keepdims)


def min(a: object, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Minimum over `axis`; the cotangent is split evenly among tied minima."""
    return reduction("min", a, axis, keepdims)


def mean(a: object, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """sum / count in the float dtype (ints and bools average in float64)."""
    with building("mean", a):
        t = to_float(a)
        axes = normalize_axes(axis, t.ndim)
        count = int(np.prod([t.shape[i] for i in axes], dtype=np.int64))
        return reduction("sum", t, axes, keepdims) / const(np.asarray(count, dtype=t.dtype))


def logsumexp(a: object, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(a))) computed with the max shift, as scipy.special.logsumexp."""
    return reduction("logsumexp", a, axis, keepdims)


def _max_shifted(a: object, axis: int) -> Tensor:
    """a minus its maximum along `axis` (0 where that is not finite), as jax.nn shifts.

    Shifting first keeps the largest entry's result exact: a - logsumexp(a) would
    round logsumexp at the magnitude of a (softmax([1e308, 1e308]) summed to 2).
    """
    t = to_float(a)
    normalize_axis(axis, t.ndim)  # a bad axis names softmax, not the max inside it
    m = max(t, axis, keepdims=True)
    return t - where(isfinite(m), m, 0.0)


def softmax(a: object, axis: int = -1) -> Tensor:
    """exp(s - logsumexp(s, axis, keepdims=True)) with s = a - max(a), as jax.nn.softmax."""
    with building("softmax", a):
        s = _max_shifted(a, axis)
        return exp(s - logsumexp(s, axis, keepdims=True))


def log_softmax(a: object, axis: int = -1) -> Tensor:
    """s - logsumexp(s, axis, keepdims=True) with s = a - max(a), as jax.nn.log_softmax."""
    with building("log_softmax", a):
        s = _max_shifted(a, axis)
        return s - logsumexp(s, axis, keepdims=True)


def argmax(a: object, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the first maximum (int64); not differentiable."""
    with building("argmax", a):
        t = as_tensor(a)
        ax = None if axis is None else normalize_axis(axis, t.ndim)
        return Tensor(rd.argmax(t.node, axis=ax, keepdims=bool(keepdims)))


def argmin(a: object, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the first minimum (int64); not differentiable."""
    with building("argmin", a):
        t = as_tensor(a)
        ax = None if axis is None else normalize_axis(axis, t.ndim)
        return Tensor(rd.argmin(t.node, axis=ax, keepdims=bool(keepdims)))


# --- shapes --------------------------------------------------------------------------------


def transpose(a: object, axes: Sequence[int] | None = None) -> Tensor:
    """Permute the axes (reverse them when `axes` is None), as numpy.transpose."""
    with building("transpose", a, axes):
        t = as_tensor(a)
        if axes is None:
            perm = tuple(reversed(range(t.ndim)))
        else:
            if not isinstance(axes, (tuple, list)):
                raise ShapeError(f"axes must be a tuple of ints or None, not {axes!r}")
            perm = tuple(normalize_axis(i, t.ndim) for i in axes)
            if len(perm) != t.ndim or sorted(perm) != list(range(t.ndim)):
                raise ShapeError(f"axes {tuple(axes)} do not match an array of dimension {t.ndim}")
        if perm == tuple(range(t.ndim)):
            return t
        return Tensor(sh.transpose(t.node, axes=perm))


def broadcast_to(a: object, shape: int | Sequence[int]) -> Tensor:
    with building("broadcast_to", a, shape):
        t = as_tensor(a)
        target = as_shape(shape)
        if target == t.shape:
            return t
        return Tensor(sh.broadcast_to(t.node, shape=target))


def expand_dims(a: object, axis: int | Sequence[int]) -> Tensor:
    """Insert length-1 axes at `axis` (positions in the result), as numpy.expand_dims."""
    with building("expand_dims", a, axis):
        t = as_tensor(a)
        if not isinstance(axis, (int, np.integer, tuple, list)):
            raise ShapeError(f"axis must be an int or a tuple of ints, not {axis!r}")
        axes = normalize_axes(axis, t.ndim + (len(axis) if isinstance(axis, (tuple, list)) else 1))
        dims = iter(t.shape)
        shape = tuple(1 if i in axes else next(dims) for i in range(t.ndim + len(axes)))
        return reshape(t, shape)


def squeeze(a: object, axis: Axis = None) -> Tensor:
    """Remove length-1 axes (all of them, or those in `axis`, which must have length 1)."""
    with building("squeeze", a, axis):
        t = as_tensor(a)
        if axis is None:
            axes = tuple(i for i, n in enumerate(t.shape) if n == 1)
        else:
            axes = normalize_axes(axis, t.ndim)
        for i in axes:
            if t.shape[i] != 1:
                raise ShapeError(f"cannot select an axis to squeeze out which has size not equal to one (axis {i})")
        return reshape(t, tuple(n for i, n in enumerate(t.shape) if i not in axes))


def concatenate(arrays: Sequence[object], axis: int | None = 0) -> Tensor:
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


def stack(arrays: Sequence[object], axis: int = 0) -> Tensor:
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


def matmul(a: object, b: object) -> Tensor:
    """Matrix product with numpy.matmul's conventions (1-D operands, broadcast batch axes)."""
    with building("matmul", a, b):
        x, y = (to_float(t) for t in promote(a, b))
        if x.ndim == 0 or y.ndim == 0:
            raise ShapeError("matmul: input operand does not have enough dimensions (0-d)")
        k = y.shape[0] if y.ndim == 1 else y.shape[-2]
        if x.shape[-1] != k:  # checked here so the message shows the caller's shapes, not the 2-D views
            raise ShapeError(f"contracted dimensions differ: {x.shape} @ {y.shape} ({x.shape[-1]} != {k})")
        xm = reshape(x, (1, x.shape[0])) if x.ndim == 1 else x
        ym = reshape(y, (y.shape[0], 1)) if y.ndim == 1 else y
        out = Tensor(la.matmul(xm.node, ym.node))
        shape = out.shape
        if y.ndim == 1:
            shape = shape[:-1]
        if x.ndim == 1:
            shape = shape[:-2] + shape[-1:] if y.ndim > 1 else shape[:-1]
        return reshape(out, shape)


def dot(a: object, b: object) -> Tensor:
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


# --- gathers and encodings -------------------------------------------------------------------


def take(a: object, indices: object, axis: int | None = None) -> Tensor:
    """numpy.take: gather along `axis` (None: the flattened array); negative indices count
    from the end; an out-of-range index raises IndexError when the function is called."""
    with building("take", a, indices):
        t = as_tensor(a)
        idx = as_tensor(indices) if isinstance(indices, Tensor) else const(np.asarray(indices), INT64)
        if is_float(idx.dtype) or idx.dtype == BOOL:
            raise DTypeError(f"indices must be integers, got {idx.dtype}")
        if axis is None:
            t = reshape(t, (-1,))
            axis = 0
        ax = normalize_axis(axis, t.ndim)
        return Tensor(sh.take(t.node, idx.node, axis=ax))


def one_hot(indices: object, n: int) -> Tensor:
    """float64 one-hot encoding with a new last axis of length n (out-of-range rows are all 0)."""
    with building("one_hot", indices):
        idx = as_tensor(indices)
        if idx.dtype != INT64:
            raise DTypeError(f"one_hot indices must be int64, got {idx.dtype}")
        classes = const(np.arange(int(n), dtype=np.int64))
        return astype(equal(expand_dims(idx, -1), classes), FLOAT64)


_ = builtins  # the builtins shadowed above stay reachable as builtins.sum etc.

__all__ = [
    "abs", "add", "arctan", "argmax", "argmin", "broadcast_to", "clip", "concatenate", "cos", "cosh",
    "divide", "dot", "equal", "exp", "expand_dims", "expm1", "floor", "greater", "greater_equal",
    "isfinite", "isnan", "less", "less_equal", "log", "log1p", "log_softmax", "logsumexp", "matmul",
    "max", "maximum", "mean", "min", "minimum", "multiply", "negative", "not_equal", "one_hot",
    "power", "prod", "relu", "reshape", "round", "sigmoid", "sign", "sin", "sinh", "softmax",
    "softplus", "sqrt", "square", "squeeze", "stack", "subtract", "sum", "take", "tan", "tanh",
    "transpose", "where",
]  # fmt: skip
