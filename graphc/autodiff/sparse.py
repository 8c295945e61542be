"""Sparse Jacobians and Hessians: pattern, coloring, one compressed VJP or JVP, and CSR values by a gather.

Imports shapes, ir, ops, tensor and the autodiff modules (scipy and networkx lazily).

    pattern P (m x n)        autodiff/sparsity.py, from the op records' rules
    coloring                 autodiff/coloring.py: of P's columns (forward) or rows (reverse)
    compressed product       one batched JVP of the colors' seeds, (colors,) + f.shape,
                             or one batched VJP, (colors,) + x.shape
    values                   entry (i, j) of P read from the compressed product at
                             (color of j, i) or (color of i, j): autodiff/recovery.py

The mode: forward (column compression) when the columns need no more colors than the
rows, reverse (row compression) otherwise; mode="fwd" or "rev" forces one. Hessians
are the forward-mode Jacobian of the gradient with a star coloring of the symmetric
pattern (each entry is read directly, from its row or from its column), or a plain
column coloring when that needs no more colors or the star coloring is too costly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias

import numpy as np

from graphc.autodiff.coloring import color_columns, count, lower_bound, star_coloring
from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.recovery import recover
from graphc.autodiff.sparsity import hessian_pattern, jacobian_pattern
from graphc.autodiff.vjp import vjp_graph
from graphc.errors import located, user_location
from graphc.ir import Node
from graphc.ops import shape as sh
from graphc.ops.source import const
from graphc.shapes import fixed
from graphc.tensor import Tensor

Pattern: TypeAlias = Any
"""A scipy.sparse.csr_array of bools (scipy ships no type stubs, so it is Any to the type checker)."""


_USE_INSTEAD = "use .values (a Tensor of the stored entries), .to_dense(), or compile it (a scipy csr_array)"


def _refuse(symbol: str) -> Callable[..., NoReturn]:
    """An operator method that raises TypeError: a SparseTensor supports no arithmetic."""

    def method(self: SparseTensor, *other: object) -> NoReturn:
        error = TypeError(f"does not support {symbol} (a SparseTensor supports no arithmetic); {_USE_INSTEAD}")
        raise located(error, repr(self), user_location())

    return method


@dataclass(frozen=True, eq=False)
class SparseTensor:
    """A sparse matrix in CSR form: `values` is a Tensor of shape (nnz,), `indices` and `indptr` are fixed.

    `colors` is how many compressed directions computed it; `mode` is "fwd" (columns
    compressed), "rev" (rows) or "star" (a symmetric Hessian). gc.compile returns it as
    a scipy.sparse.csr_array; `values` can be used in further graph arithmetic.
    """

    values: Tensor
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]
    colors: int
    mode: str

    @property
    def nnz(self) -> int:
        return len(self.indices)

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def compression(self) -> float:
        """The directions a dense Jacobian would take (columns in forward mode, rows in reverse) per color used."""
        directions = self.shape[0] if self.mode == "rev" else self.shape[1]
        return directions / self.colors if self.colors else 1.0

    def rows(self) -> np.ndarray:
        """The row of every stored entry."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def to_dense(self) -> Tensor:
        """The dense (m, n) Tensor: the values scattered into zeros."""
        m, n = self.shape
        flat = self.rows() * n + self.indices
        scattered = sh.scatter_add(self.values.node, const(flat.astype(np.int64)), axis=0, size=m * n)
        return Tensor(sh.reshape(scattered, shape=(m, n)))

    def summary(self) -> str:
        """'2000 x 2000, 5998 stored, 3 colors (forward, compression 667x)'."""
        m, n = self.shape
        how = {"fwd": "forward", "rev": "reverse", "star": "star, symmetric"}[self.mode]
        return f"{m} x {n}, {self.nnz} stored, {self.colors} colors ({how}, compression {self.compression:.3g}x)"

    def __repr__(self) -> str:
        return f"<SparseTensor {self.summary()}, {self.dtype}>"

    __add__ = __radd__ = _refuse("+")
    __sub__ = __rsub__ = _refuse("-")
    __mul__ = __rmul__ = _refuse("*")
    __truediv__ = __rtruediv__ = _refuse("/")
    __floordiv__ = __rfloordiv__ = _refuse("//")
    __mod__ = __rmod__ = _refuse("%")
    __pow__ = __rpow__ = _refuse("**")
    __matmul__ = __rmatmul__ = _refuse("@")
    __neg__ = _refuse("unary -")
    __pos__ = _refuse("unary +")
    __abs__ = _refuse("abs()")
    __invert__ = _refuse("~")
    __lt__ = _refuse("<")
    __le__ = _refuse("<=")
    __gt__ = _refuse(">")
    __ge__ = _refuse(">=")
    __array__ = _refuse("conversion to a NumPy array")
    __array_ufunc__ = None  # ndarray + sparse: NumPy defers to the operator above


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, copy=True)
    out.setflags(write=False)
    return out


def _seed(colors: np.ndarray, number: int, shape: tuple[int, ...], dtype: np.dtype) -> Node:
    """The compressed seed: direction c is the sum of the basis vectors of color c, shape (number,) + shape."""
    seed = np.zeros((number, len(colors)), dtype=dtype)
    seed[colors, np.arange(len(colors))] = 1
    return const(seed.reshape((number, *shape)))


def _tensor(p: Pattern, values: Node, colors: int, mode: str) -> SparseTensor:
    return SparseTensor(Tensor(values), _frozen(p.indices), _frozen(p.indptr), p.shape, colors, mode)


def _no_values(p: Pattern, dtype: np.dtype, mode: str) -> SparseTensor:
    return _tensor(p, const(np.zeros(0, dtype=dtype)), 0, mode)


def choose_mode(p: Pattern, mode: str) -> tuple[str, np.ndarray]:
    """("fwd", column colors) or ("rev", row colors): the one with fewer colors when mode is "auto" (ties: fwd)."""
    if mode == "fwd":
        return "fwd", color_columns(p)
    if mode == "rev":
        return "rev", color_columns(p.T.tocsr())
    columns = color_columns(p)
    if count(columns) <= lower_bound(p.T) or _symmetric(p):  # rows cannot do better / would color alike
        return "fwd", columns
    rows = color_columns(p.T.tocsr())
    return ("fwd", columns) if count(columns) <= count(rows) else ("rev", rows)


def _symmetric(p: Pattern) -> bool:
    return p.shape[0] == p.shape[1] and (p != p.T).nnz == 0


def sparse_jacobian_graph(f: Node, x: Node, mode: str = "auto") -> SparseTensor:
    """The sparse Jacobian of f (stable form) with respect to the var x, shape (f.size, x.size)."""
    p = jacobian_pattern(f, x)
    if p.nnz == 0:
        return _no_values(p, f.dtype, "fwd" if mode == "auto" else mode)
    mode, colors = choose_mode(p, mode)
    number = count(colors)
    m, n = p.shape
    rows = np.repeat(np.arange(m), np.diff(p.indptr))
    if mode == "fwd":
        (compressed,) = jvp_graph([f], [x], [_seed(colors, number, fixed(x.shape), x.dtype)], nb=1)
        where = colors[p.indices] * m + rows
    else:
        (compressed,) = vjp_graph([f], [x], [_seed(colors, number, fixed(f.shape), f.dtype)], nb=1)
        where = colors[rows] * n + p.indices
    assert compressed is not None  # the pattern has entries, so f depends on x
    return _tensor(p, recover(compressed, where), number, mode)


def star_positions(p: Pattern, colors: np.ndarray) -> np.ndarray:
    """For each entry (i, j) of a symmetric pattern, its position in B = H @ S (shape (colors, n)): (color(j), i)
    when j is the only neighbor of i with its color, else (color(i), j) (the star coloring's guarantee)."""
    from scipy.sparse import csr_array

    n = p.shape[0]
    rows = np.repeat(np.arange(n), np.diff(p.indptr))
    cols = p.indices
    off = rows != cols
    one_hot = csr_array((np.ones(n, dtype=np.int64), (np.arange(n), colors)), shape=(n, count(colors)))
    adjacency = csr_array((np.ones(int(off.sum()), dtype=np.int64), (rows[off], cols[off])), shape=(n, n))
    around = (adjacency @ one_hot).toarray()  # around[i, c]: neighbors of i with color c
    direct = around[rows, colors[cols]] == 1
    use_row = ~off | direct
    return np.where(use_row, colors[cols] * n + rows, colors[rows] * n + cols)


def sparse_hessian_graph(gradient: Node, x: Node) -> SparseTensor:
    """The sparse Hessian whose gradient graph (stable form) is `gradient`, shape (x.size, x.size)."""
    p = hessian_pattern(gradient, x)
    if p.nnz == 0:
        return _no_values(p, gradient.dtype, "star")
    columns = color_columns(p)
    star = star_coloring(p)
    use_star = star is not None and count(star) < count(columns)
    colors = star if use_star and star is not None else columns
    number = count(colors)
    n = p.shape[0]
    (compressed,) = jvp_graph([gradient], [x], [_seed(colors, number, fixed(x.shape), x.dtype)], nb=1)
    assert compressed is not None
    rows = np.repeat(np.arange(n), np.diff(p.indptr))
    where = star_positions(p, colors) if use_star else colors[p.indices] * n + rows
    return _tensor(p, recover(compressed, where), number, "star" if use_star else "fwd")


__all__ = ["SparseTensor", "choose_mode", "sparse_hessian_graph", "sparse_jacobian_graph", "star_positions"]
