"""Reductions: sum, prod, max, min, logsumexp (axis tuple + keepdims), argmax/argmin.

`axis` is always a sorted tuple of non-negative axes; `keepdims` a bool. Rules
shift axes by the number of leading batch axes of the cotangent or tangent.
Subgradients: max/min split the cotangent evenly among tied maxima.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.ir import Node
from graphc.ops.base import Kind, Op
from graphc.ops.elementwise import (
    astype,
    div,
    equal,
    exp,
    isfinite,
    mul,
    sub,
    where,
)  # fmt: skip
from graphc.ops.shape import reshape
from graphc.ops.source import scalar
from graphc.ops.sparsity import reduced
from graphc.shapes import INT64, TensorType, is_float, reduced_shape

Axes = tuple[int, ...]


def _reduce_infer(x: TensorType, *, axis: Axes, keepdims: bool) -> TensorType:
    if any(not 0 <= a < x.ndim for a in axis) or list(axis) != sorted(set(axis)):
        raise ShapeError(f"invalid axes {axis} for shape {x.shape}")
    return TensorType(reduced_shape(x.shape, axis, keepdims), x.dtype)


def _float_reduce_infer(x: TensorType, *, axis: Axes, keepdims: bool) -> TensorType:
    if not is_float(x.dtype):
        raise DTypeError(f"expects a floating-point operand, got {x.dtype}")
    return _reduce_infer(x, axis=axis, keepdims=keepdims)


def shifted(axis: Axes, nb: int) -> Axes:
    return tuple(a + nb for a in axis)


def kept(ct: Node, out: Node, x: Node, axis: Axes) -> Node:
    """`ct` (batch + out.shape) reshaped to batch + x.shape with the reduced axes as 1s."""
    batch = ct.shape[: ct.ndim - out.ndim]
    return reshape(ct, shape=batch + reduced_shape(x.shape, axis, True))


def _sum_vjp(ct: Node, out: Node, x: Node, *, axis: Axes, keepdims: bool) -> Node:
    """d(sum x)/dx = 1: the cotangent broadcast back over the reduced axes."""
    return kept(ct, out, x, axis)


def _sum_jvp(t: Node, out: Node, x: Node, *, axis: Axes, keepdims: bool) -> Node:
    return sum_(t, axis=shifted(axis, t.ndim - x.ndim), keepdims=keepdims)


def _sum_eval(x: np.ndarray, *, axis: Axes, keepdims: bool) -> np.ndarray:
    return np.sum(x, axis=axis, keepdims=keepdims, dtype=np.asarray(x).dtype)


sum_ = Op("sum", _reduce_infer, _sum_eval, vjp=(_sum_vjp,), jvp=(_sum_jvp,), kind=Kind.REDUCE, sparsity=reduced)


def _prod_others(x: Node, axis: Axes) -> Node:
    """prod_{j != i} x_j along `axis`, exact where x has zeros, and so are its own derivatives.

    With P the product of the nonzero entries and Z the product of the zero entries' values
    (0 when there is one, but d Z/d x_zero is right): for x_i != 0 it is P / x_i * Z; for
    x_i == 0 it is P times the product of the other zeros: 1 with one zero, the other zero
    (S - x_i, S the sum of the zero entries) with two, 0 with more. No division by zero.
    """
    zero = scalar(0, x)
    one = scalar(1, x)
    is_zero = equal(x, zero)
    safe = where(is_zero, one, x)
    nonzero_prod = prod(safe, axis=axis, keepdims=True)
    zero_prod = prod(where(is_zero, x, one), axis=axis, keepdims=True)
    zeros = sum_(astype(is_zero, dtype=x.dtype), axis=axis, keepdims=True)
    zero_sum = sum_(where(is_zero, x, zero), axis=axis, keepdims=True)
    two_zeros = where(equal(zeros, scalar(2, x)), sub(zero_sum, x), zero)
    other_zeros = where(equal(zeros, one), one, two_zeros)
    elsewhere = mul(div(nonzero_prod, safe), zero_prod)
    return where(is_zero, mul(nonzero_prod, other_zeros), elsewhere)


def _prod_vjp(ct: Node, out: Node, x: Node, *, axis: Axes, keepdims: bool) -> Node:
    return mul(kept(ct, out, x, axis), _prod_others(x, axis))


def _prod_jvp(t: Node, out: Node, x: Node, *, axis: Axes, keepdims: bool) -> Node:
    return sum_(mul(t, _prod_others(x, axis)), axis=shifted(axis, t.ndim - x.ndim), keepdims=keepdims)


def _prod_eval(x: np.ndarray, *, axis: Axes, keepdims: bool) -> np.ndarray:
    return np.prod(x, axis=axis, keepdims=keepdims, dtype=np.asarray(x).dtype)


prod = Op("prod", _reduce_infer, _prod_eval, vjp=(_prod_vjp,), jvp=(_prod_jvp,), kind=Kind.REDUCE, sparsity=reduced)


def _extremum_share(out: Node, x: Node, axis: Axes) -> Node:
    """1/k at each of the k positions that attain the extremum, 0 elsewhere."""
    hit = astype(equal(x, reshape(out, shape=reduced_shape(x.shape, axis, True))), dtype=x.dtype)
    return div(hit, sum_(hit, axis=axis, keepdims=True))


def _extremum_vjp(ct: Node, out: Node, x: Node, *, axis: Axes, keepdims: bool) -> Node:
    return mul(kept(ct, out, x, axis), _extremum_share(out, x, axis))


def _extremum_jvp(t: Node, out: Node, x: Node, *, axis: Axes, keepdims: bool) -> Node:
    share = _extremum_share(out, x, axis)
    return sum_(mul(t, share), axis=shifted(axis, t.ndim - x.ndim), keepdims=keepdims)


def _extremum_infer(x: TensorType, *, axis: Axes, keepdims: bool) -> TensorType:
    if 0 in x.shape and any(x.shape[a] == 0 for a in axis):
        raise ShapeError("zero-size array to reduction operation which has no identity")
    return _reduce_infer(x, axis=axis, keepdims=keepdims)


max_ = Op("max", _extremum_infer, lambda x, *, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
          vjp=(_extremum_vjp,), jvp=(_extremum_jvp,), kind=Kind.REDUCE, sparsity=reduced)  # fmt: skip
min_ = Op("min", _extremum_infer, lambda x, *, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
          vjp=(_extremum_vjp,), jvp=(_extremum_jvp,), kind=Kind.REDUCE, sparsity=reduced)  # fmt: skip


def _logsumexp_eval(x: np.ndarray, *, axis: Axes, keepdims: bool) -> np.ndarray:
    """log(sum(exp(x))) shifted by the (finite) maximum, as scipy.special.logsumexp (-inf over no elements)."""
    x = np.asarray(x)
    if any(x.shape[a] == 0 for a in axis):
        return np.full(reduced_shape(x.shape, axis, keepdims), -np.inf, dtype=x.dtype)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, np.zeros((), dtype=x.dtype))
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis)
    return out.astype(x.dtype, copy=False)


def _logsumexp_weights(out: Node, x: Node, axis: Axes) -> Node:
    """softmax(x) = exp(x - logsumexp(x)): finite wherever the value is finite."""
    full = reshape(out, shape=reduced_shape(x.shape, axis, True))
    safe = where(isfinite(full), full, scalar(0, full))
    return exp(sub(x, safe))


def _logsumexp_vjp(ct: Node, out: Node, x: Node, *, axis: Axes, keepdims: bool) -> Node:
    return mul(kept(ct, out, x, axis), _logsumexp_weights(out, x, axis))


def _logsumexp_jvp(t: Node, out: Node, x: Node, *, axis: Axes, keepdims: bool) -> Node:
    weighted = mul(t, _logsumexp_weights(out, x, axis))
    return sum_(weighted, axis=shifted(axis, t.ndim - x.ndim), keepdims=keepdims)


logsumexp = Op("logsumexp", _float_reduce_infer, _logsumexp_eval,
               vjp=(_logsumexp_vjp,), jvp=(_logsumexp_jvp,), kind=Kind.REDUCE, sparsity=reduced)  # fmt: skip


def _arg_infer(x: TensorType, *, axis: int | None, keepdims: bool) -> TensorType:
    if x.size == 0:
        raise ShapeError("attempt to get argmax/argmin of an empty sequence")
    if axis is None:
        shape: tuple[int, ...] = (1,) * x.ndim if keepdims else ()
        return TensorType(shape, INT64)
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"axis {axis} is out of bounds for {x.shape}")
    return TensorType(reduced_shape(x.shape, (axis,), keepdims), INT64)


argmax = Op("argmax", _arg_infer, lambda x, *, axis, keepdims: np.argmax(x, axis=axis, keepdims=keepdims),
            vjp=(None,), jvp=(None,), kind=Kind.OPAQUE)  # fmt: skip
argmin = Op("argmin", _arg_infer, lambda x, *, axis, keepdims: np.argmin(x, axis=axis, keepdims=keepdims),
            vjp=(None,), jvp=(None,), kind=Kind.OPAQUE)  # fmt: skip

__all__ = ["argmax", "argmin", "logsumexp", "max_", "min_", "prod", "sum_"]
