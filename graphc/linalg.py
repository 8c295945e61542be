"""gc.linalg: numpy.linalg's solve, inv, det, slogdet, cholesky and norm on Tensors.

Imports errors, shapes, ops, tensor and functions. Each function has numpy.linalg's name,
signature, dtype rules (ints and bools compute in float64, float32 stays float32) and
batching: matrices are the last two axes, leading axes are a stack (broadcast between the
operands of `solve`). A malformed call raises ShapeError/DTypeError at build time, naming
the function, the operand types and the caller's line; a singular or non-positive-definite
matrix raises `numpy.linalg.LinAlgError` when the function is called, on every backend.

The primitives are in graphc/ops/linalg.py; here NumPy's conventions are mapped onto
them: a 1-D right-hand side of `solve`, `det` as `sign * exp(logabsdet)` (what NumPy
computes too) and `norm` as reductions. Every function is differentiable; `norm` has a zero (not NaN)
gradient where the norm is 0. Matrix norms that need singular values (`ord=2`, `-2`,
`'nuc'`) are not supported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from graphc import functions as fn
from graphc.errors import GraphError, ShapeError
from graphc.ops import linalg as la
from graphc.shapes import normalize_axis
from graphc.tensor import NUMPY_FUNCTIONS, Tensor, building, const, promote, reshape, to_float

Order = float | str | None


class SlogdetResult(NamedTuple):
    """The sign and the natural log of the absolute value of a determinant, as numpy.linalg.slogdet returns."""

    sign: Tensor
    logabsdet: Tensor


def _matrices(t: Tensor) -> None:
    """ShapeError unless `t` is a stack of square matrices (..., n, n)."""
    if t.ndim < 2:
        raise ShapeError(f"{t.ndim}-dimensional array given: a matrix needs at least 2 axes, got {t.shape}")
    if t.shape[-1] != t.shape[-2]:
        raise ShapeError(f"the last 2 dimensions must be square, got {t.shape}")


def solve(a: object, b: object) -> Tensor:
    """The solution x of a @ x = b, as numpy.linalg.solve.

    `a` is (..., M, M); `b` is (M,) (one vector, for every matrix of the stack) or
    (..., M, K); the stack axes broadcast. LinAlgError at call time if a matrix is singular.
    """
    with building("solve", a, b):
        x, y = (to_float(t) for t in promote(a, b))
        _matrices(x)
        if y.ndim == 0:
            raise ShapeError("the right-hand side is 0-dimensional: expected (M,) or (..., M, K)")
        vector = y.ndim == 1
        rows = y.shape[0] if vector else y.shape[-2]
        if rows != x.shape[-1]:
            expected = f"({x.shape[-1]},) or (..., {x.shape[-1]}, K)"
            raise ShapeError(f"right-hand side {y.shape} does not match the matrix {x.shape}: expected {expected}")
        rhs = reshape(y, (y.shape[0], 1)) if vector else y
        out = Tensor(la.solve(x.node, rhs.node, transposed=False))
        return reshape(out, out.shape[:-1]) if vector else out


def inv(a: object) -> Tensor:
    """The inverse of each matrix of a stack (..., M, M), as numpy.linalg.inv; LinAlgError if one is singular."""
    with building("inv", a):
        t = to_float(a)
        _matrices(t)
        return Tensor(la.inv(t.node))


def slogdet(a: object) -> SlogdetResult:
    """(sign, logabsdet) of each matrix of a stack, as numpy.linalg.slogdet: det = sign * exp(logabsdet).

    A singular matrix gives (0, -inf). Only `logabsdet` has a derivative, A⁻ᵀ, which
    raises LinAlgError at call time for a singular matrix.
    """
    with building("slogdet", a):
        t = to_float(a)
        _matrices(t)
        both = Tensor(la.slogdet(t.node))
        return SlogdetResult(both[..., 0], both[..., 1])


def det(a: object) -> Tensor:
    """The determinant of each matrix of a stack, as numpy.linalg.det: sign * exp(logabsdet), as NumPy computes it.

    Its derivative is det(A)·A⁻ᵀ, which raises LinAlgError at call time for a singular matrix.
    """
    with building("det", a):
        _matrices(to_float(a))
        sign, logabsdet = slogdet(a)
        return sign * fn.exp(logabsdet)


def cholesky(a: object, /, *, upper: bool = False) -> Tensor:
    """The Cholesky factor of each symmetric positive-definite matrix of a stack, as numpy.linalg.cholesky.

    Lower-triangular L with a = L @ L.T, from a's lower triangle only (upper=True: the
    upper-triangular U = L.T from a's upper triangle). LinAlgError at call time if a
    matrix is not positive definite. The gradient is the exact derivative of the triangle
    read (zero on the other side); see docs/linalg.md.
    """
    with building("cholesky", a):
        t = to_float(a)
        _matrices(t)
        return Tensor(la.cholesky(t.node, upper=bool(upper)))


# --- norm ---------------------------------------------------------------------------------


def _root(s: Tensor, p: float) -> Tensor:
    """s ** (1/p) (sqrt for p = 2), 0 where s == 0 by a branch whose gradient is 0 instead of inf * 0."""
    if not p > 0:  # negative (or NaN): s is never 0 unless the axis is empty
        return fn.power(s, const(np.reciprocal(p, dtype=s.dtype)))
    zero = s == 0
    safe = fn.where(zero, 1, s)
    root = fn.sqrt(safe) if p == 2 else fn.power(safe, const(np.reciprocal(p, dtype=s.dtype)))
    return fn.where(zero, 0, root)


def _abs_power(t: Tensor, p: float) -> Tensor:
    """|t| ** p, with 0 ** p (0, or inf for p < 0) taken by a branch whose gradient is 0, not inf * 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        at_zero = float(np.power(np.zeros((), t.dtype), p))
    magnitude = fn.abs(t)
    zero = magnitude == 0
    return fn.where(zero, at_zero, fn.power(fn.where(zero, 1, magnitude), p))


def _two_norm(t: Tensor, axis: tuple[int, ...] | None, keepdims: bool) -> Tensor:
    return _root(fn.sum(t * t, axis=axis, keepdims=keepdims), 2)


def _extreme(t: Tensor, axis: int, keepdims: bool, largest: bool) -> Tensor:
    """max (with NumPy's initial=0: 0 over an empty axis) or min along one axis."""
    if t.shape[axis] == 0 and not largest:
        raise ShapeError("zero-size array to reduction operation minimum which has no identity")
    if t.shape[axis] == 0:
        shape = tuple(1 if i == axis else n for i, n in enumerate(t.shape) if keepdims or i != axis)
        return const(np.zeros(shape, dtype=t.dtype))
    return fn.max(t, axis=axis, keepdims=keepdims) if largest else fn.min(t, axis=axis, keepdims=keepdims)


def _vector_norm(t: Tensor, ord: Order, axis: int, keepdims: bool) -> Tensor:
    if isinstance(ord, str):
        raise GraphError(f"invalid norm order {ord!r} for vectors")
    if ord is None or ord == 2:
        return _two_norm(t, (axis,), keepdims)
    if ord == math.inf or ord == -math.inf:
        return _extreme(fn.abs(t), axis, keepdims, largest=ord > 0)
    if ord == 0:
        return fn.sum((t != 0).astype(t.dtype), axis=axis, keepdims=keepdims)
    if ord == 1:
        return fn.sum(fn.abs(t), axis=axis, keepdims=keepdims)
    p = float(ord)
    return _root(fn.sum(_abs_power(t, p), axis=axis, keepdims=keepdims), p)


def _matrix_norm(t: Tensor, ord: Order, axes: tuple[int, int], keepdims: bool) -> Tensor:
    """Frobenius, or the largest/smallest column (ord ±1) or row (ord ±inf) sum of |t|."""
    row, col = axes
    if ord is None or ord in ("fro", "f"):
        return _two_norm(t, axes, keepdims)
    if ord in (2, -2, "nuc"):
        raise NotImplementedError(
            f"gc.linalg.norm(ord={ord!r}) of a matrix needs singular values (an SVD), which gc.linalg does not have"
        )
    if ord not in (1, -1, math.inf, -math.inf):
        raise GraphError(f"invalid norm order {ord!r} for matrices")
    summed, across = (row, col) if ord in (1, -1) else (col, row)
    sums = fn.sum(fn.abs(t), axis=summed, keepdims=True)
    out = _extreme(sums, across, True, largest=ord > 0)  # type: ignore[operator]
    if keepdims:
        return out
    return reshape(out, tuple(n for i, n in enumerate(t.shape) if i not in axes))


def _norm_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    given = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(normalize_axis(int(a), ndim) for a in given)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"duplicate axes given: {tuple(given)}")
    return axes


def norm(x: object, ord: Order = None, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """A vector or matrix norm, as numpy.linalg.norm.

    `axis` None: the 2-norm of all elements when `ord` is None, else the vector norm of a
    1-D or the matrix norm of a 2-D `x`; an int: vector norms along it; two ints: matrix
    norms over them. Vector `ord`: None/2, ±inf, 0, 1, any other p (sum |x|^p)^(1/p);
    matrix `ord`: None/'fro', ±1, ±inf (2, -2 and 'nuc' raise NotImplementedError).
    The gradient is 0 where the norm is 0.
    """
    with building("norm", x):
        t = to_float(x)
        keep = bool(keepdims)
        if axis is None and (ord is None or (ord in ("fro", "f") and t.ndim == 2) or (ord == 2 and t.ndim == 1)):
            return _two_norm(t, None, keep)
        axes = _norm_axes(axis, t.ndim)
        if len(axes) == 1:
            return _vector_norm(t, ord, axes[0], keep)
        if len(axes) == 2:
            return _matrix_norm(t, ord, (axes[0], axes[1]), keep)
        raise ShapeError(f"improper number of dimensions to norm: {len(axes)} axes of {t.shape}")


__all__ = ["SlogdetResult", "cholesky", "det", "inv", "norm", "slogdet", "solve"]

NUMPY_FUNCTIONS.update({f"linalg.{name}": globals()[name] for name in __all__ if name != "SlogdetResult"})
