"""Cumulative primitives: cumsum and cumprod along one axis, forward or reversed.

Imports errors, shapes, ir, ops.base, ops.source, ops.elementwise and ops.reduce. `axis` is a
non-negative int; `reverse` accumulates from the end (out[i] = x[i] + x[i+1] + ... + x[n-1]),
which is what the cotangent of a forward cumsum needs. The accumulation is sequential, as
NumPy's add.accumulate and multiply.accumulate, so results are NumPy's bit for bit.
Rules shift `axis` by the cotangent's or tangent's leading batch axes.

cumprod's derivative is exact where x has zeros, and so are its own first derivatives
(Hessians): the products of x's zero entries are carried as sums of those entries, whose
value is 0 but whose derivatives are right (as prod's rule does, reduce.py).
"""

from __future__ import annotations

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.ir import Node
from graphc.ops.base import Op
from graphc.ops.elementwise import add, astype, div, equal, mul, sub, where
from graphc.ops.source import scalar
from graphc.ops.sparsity import accumulated
from graphc.shapes import BOOL, TensorType


def _infer(x: TensorType, *, axis: int, reverse: bool) -> TensorType:
    if x.dtype == BOOL:
        raise DTypeError("accumulates numbers, not bools (NumPy sums bools as int64: cast first)")
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"axis {axis} is out of bounds for {x.shape}")
    return x


def _accumulate(ufunc: np.ufunc) -> object:
    def evaluate(x: np.ndarray, *, axis: int, reverse: bool) -> np.ndarray:
        x = np.asarray(x)
        if not reverse:
            return ufunc.accumulate(x, axis=axis, dtype=x.dtype)
        return np.flip(ufunc.accumulate(np.flip(x, axis), axis=axis, dtype=x.dtype), axis)

    evaluate.__name__ = f"{ufunc.__name__}_accumulate"
    return evaluate


def batched_axis(g: Node, x: Node, axis: int) -> int:
    """`axis` of x in a cotangent or tangent g with leading batch axes."""
    return axis + g.ndim - x.ndim


cumsum: Op = Op(
    "cumsum", _infer, _accumulate(np.add),  # type: ignore[arg-type]
    vjp=(lambda ct, out, x, *, axis, reverse: cumsum(ct, axis=batched_axis(ct, out, axis), reverse=not reverse),),
    jvp=(lambda t, out, x, *, axis, reverse: cumsum(t, axis=batched_axis(t, x, axis), reverse=reverse),),
    sparsity=accumulated,
)  # fmt: skip
"""cumsum(x; axis, reverse): out[i] = x[0] + ... + x[i] along `axis` (from the end when `reverse`)."""


class _ZeroParts:
    """The prefix quantities of x along the scan that make cumprod's derivative exact where x has zeros.

    With count_j the number of zeros in x[..j] and S_j (Q_j) the sum of those zero entries
    (of their squares), all values 0 but with derivatives: N = cumprod of x with zeros as 1;
    zp = the product of the zero entries (1, S, (S^2 - Q)/2 for 0, 1, 2 zeros, 0 beyond);
    others = the product of the zero entries but one (1, S for 1, 2 zeros; S minus that
    one is carried by `two`, the indicator of two zeros). Exact to 2nd order with 2 zeros.
    """

    def __init__(self, x: Node, axis: int, reverse: bool) -> None:
        zero, one = scalar(0, x), scalar(1, x)
        self.is_zero = equal(x, zero)
        self.safe = where(self.is_zero, one, x)
        count = cumsum(astype(self.is_zero, dtype=x.dtype), axis=axis, reverse=reverse)
        zeros_only = where(self.is_zero, x, zero)
        s = cumsum(zeros_only, axis=axis, reverse=reverse)
        q = cumsum(mul(zeros_only, zeros_only), axis=axis, reverse=reverse)
        first, second = equal(count, one), equal(count, scalar(2, x))
        pairs = mul(sub(mul(s, s), q), scalar(0.5, x))
        self.n = cumprod(self.safe, axis=axis, reverse=reverse)
        self.zp = where(equal(count, zero), one, where(first, s, where(second, pairs, zero)))
        self.others = where(first, one, where(second, s, zero))
        self.two = astype(second, dtype=x.dtype)


def _cumprod_vjp(ct: Node, out: Node, x: Node, *, axis: int, reverse: bool) -> Node:
    """d/dx_i = sum_{j >= i} ct_j prod_{k <= j, k != i} x_k = suffix_sum(ct N zp) / x_i for x_i != 0, and
    suffix_sum(ct N others) - x_i suffix_sum(ct N two) for x_i == 0 (that zero left out of the product)."""
    z = _ZeroParts(x, axis, reverse)
    at = batched_axis(ct, out, axis)
    weighted = mul(ct, z.n)

    def suffix(v: Node) -> Node:
        return cumsum(v, axis=at, reverse=not reverse)

    nonzero = div(suffix(mul(weighted, z.zp)), z.safe)
    at_zero = sub(suffix(mul(weighted, z.others)), mul(x, suffix(mul(weighted, z.two))))
    return where(z.is_zero, at_zero, nonzero)


def _cumprod_jvp(t: Node, out: Node, x: Node, *, axis: int, reverse: bool) -> Node:
    """d out_j = sum_{i <= j} t_i prod_{k <= j, k != i} x_k = N_j (zp_j prefix_sum(t / x over nonzeros)_j
    + others_j prefix_sum(t over zeros)_j - two_j prefix_sum(t x over zeros)_j)."""
    z = _ZeroParts(x, axis, reverse)
    at = batched_axis(t, x, axis)
    zero = scalar(0, t)

    def prefix(v: Node) -> Node:
        return cumsum(v, axis=at, reverse=reverse)

    nonzero = mul(z.zp, prefix(where(z.is_zero, zero, div(t, z.safe))))
    zeros = sub(mul(z.others, prefix(where(z.is_zero, t, zero))), mul(z.two, prefix(where(z.is_zero, mul(t, x), zero))))
    return mul(z.n, add(nonzero, zeros))


cumprod: Op = Op("cumprod", _infer, _accumulate(np.multiply), vjp=(_cumprod_vjp,), jvp=(_cumprod_jvp,),  # type: ignore[arg-type]
                  sparsity=accumulated)  # fmt: skip
"""cumprod(x; axis, reverse): out[i] = x[0] * ... * x[i] along `axis` (from the end when `reverse`)."""

__all__ = ["batched_axis", "cumprod", "cumsum"]
