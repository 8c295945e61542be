"""Linear algebra primitives: matmul, solve, inv, slogdet, cholesky (batch axes broadcast).

Imports errors, shapes, ir and the other op families. The frontend (tensor.py for
matmul, graphc/linalg.py for the rest) maps NumPy's conventions (1-D operands, `det`,
`cholesky(upper=True)`, `norm`) onto these primitives, so the rules and every backend
see one shape convention: matrices are the last two axes, and leading axes are a batch
that broadcasts. The values are NumPy's (`numpy.linalg`, LAPACK underneath); a singular
or non-positive-definite matrix raises `numpy.linalg.LinAlgError` at call time.

`slogdet` is one node with both results stacked on a last axis of 2 (sign, logabsdet),
so a graph needing both factorizes once. Derivatives use the standard identities:
d(A⁻¹B) = A⁻¹(dB - dA·A⁻¹B), d(A⁻¹) = -A⁻¹·dA·A⁻¹, d log|det A| = tr(A⁻¹dA), and for
the Cholesky factor those of I. Murray, "Differentiation of the Cholesky decomposition",
arXiv:1602.07527 (2016), section 3.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.ir import Node
from graphc.ops.base import Kind, Op
from graphc.ops.elementwise import add, mul, neg
from graphc.ops.reduce import sum_
from graphc.ops.shape import reshape, slice_, transpose, unslice
from graphc.ops.source import const
from graphc.ops.sparsity import matrix_product
from graphc.shapes import TensorType, broadcast_shapes, fixed_size, is_float


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


matmul: Op = Op(
    "matmul", _matmul_infer, np.matmul,
    vjp=(lambda ct, out, x, y: matmul(ct, swap_last(y)), lambda ct, out, x, y: matmul(swap_last(x), ct)),
    jvp=(lambda t, out, x, y: matmul(t, y), lambda t, out, x, y: matmul(x, t)),
    kind=Kind.OPAQUE, aligns=True, numpy="matmul", sparsity=matrix_product,
)  # fmt: skip

# --- shared checks ------------------------------------------------------------------------


def _square_infer(a: TensorType) -> TensorType:
    """A float stack of square matrices: (..., n, n)."""
    if not is_float(a.dtype):
        raise DTypeError(f"expects a floating-point operand, got {a.dtype}")
    if a.ndim < 2:
        raise ShapeError(f"{a.ndim}-dimensional array given: a matrix needs at least 2 axes, got {a.shape}")
    if a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"the last 2 dimensions must be square, got {a.shape}")
    return a


# --- solve --------------------------------------------------------------------------------


def _solve_infer(a: TensorType, b: TensorType, *, transposed: bool) -> TensorType:
    _square_infer(a)
    if b.dtype != a.dtype:
        raise DTypeError(f"operands must share one float dtype, got {a.dtype} and {b.dtype}")
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise ShapeError(
            f"right-hand side {b.shape} does not match the matrix {a.shape}: expected (..., {a.shape[-1]}, k)"
        )
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return TensorType((*batch, *b.shape[-2:]), a.dtype)


def _solve_eval(a: np.ndarray, b: np.ndarray, *, transposed: bool) -> np.ndarray:
    """x with a x = b (aᵀ x = b when `transposed`), as numpy.linalg.solve."""
    return np.linalg.solve(np.swapaxes(a, -1, -2) if transposed else a, b)


def _solve_a_vjp(ct: Node, out: Node, a: Node, b: Node, *, transposed: bool) -> Node:
    """x = A⁻¹B: Ā = -B̄xᵀ with B̄ = A⁻ᵀx̄ (for x = A⁻ᵀB: Ā = -xB̄ᵀ)."""
    b_bar = _solve_b_vjp(ct, out, a, b, transposed=transposed)
    if transposed:
        return neg(matmul(out, swap_last(b_bar)))
    return neg(matmul(b_bar, swap_last(out)))


def _solve_b_vjp(ct: Node, out: Node, a: Node, b: Node, *, transposed: bool) -> Node:
    """B̄ = A⁻ᵀx̄ (A⁻¹x̄ for a transposed solve)."""
    return solve(a, ct, transposed=not transposed)


def _solve_a_jvp(t: Node, out: Node, a: Node, b: Node, *, transposed: bool) -> Node:
    """dx = -A⁻¹·dA·x (-A⁻ᵀ·dAᵀ·x for a transposed solve)."""
    da = swap_last(t) if transposed else t
    return neg(solve(a, matmul(da, out), transposed=transposed))


def _solve_b_jvp(t: Node, out: Node, a: Node, b: Node, *, transposed: bool) -> Node:
    """dx = A^-1 dB."""
    return solve(a, t, transposed=transposed)


solve = Op(
    "solve", _solve_infer, _solve_eval,
    vjp=(_solve_a_vjp, _solve_b_vjp), jvp=(_solve_a_jvp, _solve_b_jvp),
    kind=Kind.OPAQUE, aligns=True,
)  # fmt: skip

# --- inv ----------------------------------------------------------------------------------


def _inv_vjp(ct: Node, out: Node, a: Node) -> Node:
    """Ā = -A⁻ᵀ·Ā_out·A⁻ᵀ."""
    return neg(matmul(swap_last(out), matmul(ct, swap_last(out))))


inv = Op(
    "inv", _square_infer, np.linalg.inv,
    vjp=(_inv_vjp,), jvp=(lambda t, out, a: neg(matmul(out, matmul(t, out))),),
)  # fmt: skip

# --- slogdet ------------------------------------------------------------------------------


def _slogdet_infer(a: TensorType) -> TensorType:
    _square_infer(a)
    return TensorType((*a.shape[:-2], 2), a.dtype)


def _slogdet_eval(a: np.ndarray) -> np.ndarray:
    """numpy.linalg.slogdet's (sign, logabsdet) stacked on a last axis of 2."""
    sign, logabsdet = np.linalg.slogdet(a)
    return np.stack([sign, logabsdet], axis=-1)


def _slogdet_vjp(ct: Node, out: Node, a: Node) -> Node:
    """Only logabsdet has a derivative: Ā = c̄·A⁻ᵀ (the sign is piecewise constant)."""
    g = slice_(ct, index=((1, 2, 1),))
    return mul(reshape(g, shape=(*g.shape[:-1], 1, 1)), swap_last(inv(a)))


def _slogdet_jvp(t: Node, out: Node, a: Node) -> Node:
    """d logabsdet = tr(A⁻¹·dA) = Σ A⁻ᵀ ⊙ dA; the sign's tangent is 0."""
    dl = sum_(mul(t, swap_last(inv(a))), axis=(t.ndim - 2, t.ndim - 1), keepdims=False)
    return unslice(reshape(dl, shape=(*dl.shape, 1)), index=((1, 2, 1),), shape=(2,))


slogdet = Op("slogdet", _slogdet_infer, _slogdet_eval, vjp=(_slogdet_vjp,), jvp=(_slogdet_jvp,))

# --- cholesky -----------------------------------------------------------------------------


def _mask(like: Node, lower: float, diagonal: float, upper: float) -> Node:
    """An (n, n) constant of `like`'s dtype: `lower` below the diagonal, `diagonal` on it, `upper` above."""
    n = fixed_size(like.shape[-1])
    rows, cols = np.indices((n, n))
    values = np.where(rows > cols, lower, np.where(rows == cols, diagonal, upper))
    return const(values.astype(like.dtype))


def _phi(x: Node) -> Node:
    """Φ(X): the lower triangle of X with its diagonal halved."""
    return mul(x, _mask(x, 1.0, 0.5, 0.0))


def _lower_vjp(ct: Node, out: Node) -> Node:
    """A_bar = Φ(S + Sᵀ), S = L⁻ᵀ·Φ(Lᵀ·L_bar)·L⁻¹ (Murray 2016, section 3).

    numpy.linalg.cholesky reads only the lower triangle of A, so this is the exact
    derivative: zero above the diagonal, S + Sᵀ below it. For an input that is
    symmetric by construction (A = XXᵀ) it agrees with the symmetrized gradient
    (S + Sᵀ)/2 that JAX and PyTorch return.
    """
    p = _phi(matmul(swap_last(out), ct))
    s = swap_last(solve(out, swap_last(solve(out, p, transposed=True)), transposed=True))
    return _phi(add(s, swap_last(s)))


def _lower_jvp(t: Node, out: Node) -> Node:
    """dL = L·Φ(L⁻¹·dA·L⁻ᵀ), dA the symmetric matrix of t's lower triangle."""
    lower = mul(t, _mask(t, 1.0, 1.0, 0.0))
    da = add(lower, swap_last(mul(t, _mask(t, 1.0, 0.0, 0.0))))
    z = solve(out, da, transposed=False)
    c = swap_last(solve(out, swap_last(z), transposed=False))
    return matmul(out, _phi(c))


def _cholesky_vjp(ct: Node, out: Node, a: Node, *, upper: bool) -> Node:
    """The lower factor's rule; the upper factor U of A is the lower one of Aᵀ, transposed."""
    if upper:
        return swap_last(_lower_vjp(swap_last(ct), swap_last(out)))
    return _lower_vjp(ct, out)


def _cholesky_jvp(t: Node, out: Node, a: Node, *, upper: bool) -> Node:
    if upper:
        return swap_last(_lower_jvp(swap_last(t), swap_last(out)))
    return _lower_jvp(t, out)


def _cholesky_infer(a: TensorType, *, upper: bool) -> TensorType:
    return _square_infer(a)


def _cholesky_eval(a: np.ndarray, *, upper: bool) -> np.ndarray:
    """numpy.linalg.cholesky: L from the lower triangle, or (upper) U = Lᵀ from the upper triangle."""
    return np.linalg.cholesky(a, upper=upper)


cholesky = Op("cholesky", _cholesky_infer, _cholesky_eval, vjp=(_cholesky_vjp,), jvp=(_cholesky_jvp,))

__all__ = ["cholesky", "inv", "matmul", "slogdet", "solve", "swap_last"]
