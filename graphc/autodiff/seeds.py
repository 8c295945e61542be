"""Structured seeds: the identity basis of a dense Jacobian is structure (`diag`), and the rules that keep it so.

Imports ir, ops, rewrite. gc.jacobian seeds its batched VJP (or JVP) with `diag(ones(n))`,
reshaped to (n,) + shape, instead of an n x n constant. The derivative rules then build
products, sums and matrix products of that diagonal; the rules here rewrite them into
structure again, so a Jacobian reads like the one written by hand:

    diag(v) * w -> diag(v * w)           (w constant along the seed axis, or w's diagonal)
    diag(a) + diag(b) -> diag(a + b)     M + diag(v) -> M with v added on its diagonal (index_add)
                                         (the engines build sums with add: a sub's rule negates)
    sum(diag(v), axis) -> v              (one entry per row and per column: no sum is left)
    M @ diag(v) -> M * v                 diag(v) @ M -> v[:, None] * M
    Aᵀ @ (a batch of columns diag(v)) -> (A * v[:, None]) in the batch's layout

`diag(v)` here also stands for `reshape(diag(v), (n,) + s)`, the seed of an argument of
shape s. The rules are *structural*: an entry off the diagonal is exactly 0, where the
dense identity would give 0 * w (NaN for an infinite w). That is what a Jacobian is, and
what a hand-written one and a sparse one give; but it is not the IEEE-exact identity the
optimizer's simplify pass requires, so the rules run here, on the derivative nodes only,
right after the batched VJP/JVP is built: the graph gc.jacobian returns is already
structured, and the evaluator and both backends agree on it bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

from graphc.ir import Node
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.ops import structure as st
from graphc.ops.source import const
from graphc.rewrite import Rule, is_filled, rewrite_nodes, rule_table
from graphc.shapes import DimLike, Shape, broadcast_shapes, fixed_size


def identity_seed(shape: tuple[int, ...], dtype: np.dtype) -> Node:
    """The basis of R^size as structure: diag(ones(size)) seen as (size,) + shape."""
    size = int(np.prod(shape, dtype=np.int64))
    ones = sh.broadcast_to(const(np.ones((), dtype=dtype)), shape=(size,))
    return _build(ones, shape)


def structured(node: Node) -> tuple[Node, Shape] | None:
    """(v, s) when node is diag(v) (s = (n,)) or reshape(diag(v), (n,) + s) with v a vector; else None."""
    inner = node.inputs[0] if node.op is sh.reshape and node.ndim >= 1 else node
    if inner.op is not st.diag or inner.ndim != 2 or node.shape[:1] != inner.shape[:1]:
        return None
    return inner.inputs[0], node.shape[1:]


def _build(v: Node, s: Shape) -> Node:
    """diag(v) seen as (n,) + s."""
    d = st.diag(v)
    return d if d.shape[1:] == s else sh.reshape(d, shape=(d.shape[0], *s))


def along(w: Node, n: DimLike, s: Shape) -> Node | None:
    """w as the length-n vector of its values along the structure, when it is constant along the seed axis."""
    full = (n, *s)
    if w.ndim > len(full):
        return None
    padded = (1,) * (len(full) - w.ndim) + w.shape
    if padded[0] != 1 or broadcast_shapes(padded, full) != full:
        return None
    inner = padded[1:]
    w = sh.reshape(w, shape=inner) if w.shape != inner else w
    w = sh.broadcast_to(w, shape=s) if inner != s else w
    return sh.reshape(w, shape=(n,)) if s != (n,) else w


def _values_for(other: Node, node: Node, n: DimLike, s: Shape) -> Node | None:
    """What a structured operand meets in `node` (elementwise): `other` along the structure, or its diagonal."""
    w = along(other, n, s)
    if w is not None:
        return w
    if other.shape == node.shape:
        return st.diagonal(sh.reshape(other, shape=(n, n)))
    return None


def _elementwise_pair(node: Node, combine: Callable[[Node, Node], Node]) -> Node | None:
    """diag(v) op w -> diag(v op w') and w op diag(v) -> diag(w' op v), for ops zero at a zero structured operand."""
    x, y = node.inputs
    for mine, other, first in ((x, y, True), (y, x, False)):
        found = structured(mine)
        if found is None or mine.shape != node.shape:
            continue
        v, s = found
        w = _values_for(other, node, v.shape[0], s)
        if w is None:
            continue
        return _build(combine(v, w) if first else combine(w, v), s)
    return None


def mul_structured(node: Node) -> Node | None:
    """diag(v) * w -> diag(v * w),  w * diag(v) -> diag(w * v)"""
    return _elementwise_pair(node, ew.mul)


def div_structured(node: Node) -> Node | None:
    """diag(v) / w -> diag(v / w)"""
    x, y = node.inputs
    found = structured(x)
    if found is None or x.shape != node.shape:
        return None
    v, s = found
    w = _values_for(y, node, v.shape[0], s)
    return None if w is None else _build(ew.div(v, w), s)


def neg_structured(node: Node) -> Node | None:
    """-diag(v) -> diag(-v)"""
    found = structured(node.inputs[0])
    return None if found is None else _build(ew.neg(found[0]), found[1])


def astype_structured(node: Node) -> Node | None:
    """astype(diag(v)) -> diag(astype(v))"""
    found = structured(node.inputs[0])
    dtype = node.attr("dtype")
    return None if found is None else _build(ew.astype(found[0], dtype=dtype), found[1])


def _on_diagonal(m: Node, v: Node) -> Node:
    """m (shape (n,) + s) with v added to the entries the structure occupies: index_add on the flat array."""
    n = fixed_size(v.shape[0])  # the flat positions of the diagonal are numbers
    flat = sh.reshape(m, shape=(n * n,))
    where = const(np.arange(n, dtype=np.int64) * (n + 1))
    out = st.index_add(flat, v, where, axis=0)
    return sh.reshape(out, shape=m.shape)


def add_structured(node: Node) -> Node | None:
    """diag(a) + diag(b) -> diag(a + b),  M + diag(v) -> index_add(M, v, the diagonal)"""
    x, y = node.inputs
    fx, fy = structured(x), structured(y)
    if x.shape != node.shape or y.shape != node.shape:
        return None
    if fx is not None and fy is not None and fx[1] == fy[1]:
        return _build(ew.add(fx[0], fy[0]), fx[1])
    if fy is not None:
        return _on_diagonal(x, fy[0])
    if fx is not None:
        return _on_diagonal(y, fx[0])
    return None


def where_structured(node: Node) -> Node | None:
    """where(c, diag(v), 0) -> diag(where(c, v, 0)),  where(c, 0, diag(v)) -> diag(where(c, 0, v))"""
    c, x, y = node.inputs
    for mine, zero, first in ((x, y, True), (y, x, False)):
        found = structured(mine)
        if found is None or mine.shape != node.shape or not is_filled(zero, 0.0) or zero.ndim != 0:
            continue
        v, s = found
        cv = along(c, v.shape[0], s)
        if cv is None:
            continue
        picked = ew.where(cv, v, zero) if first else ew.where(cv, zero, v)
        return _build(picked, s)
    return None


def sum_structured(node: Node) -> Node | None:
    """sum(diag(v), every axis but the seed's) -> v,  sum(diag(v), the seed axis) -> v   (one entry each)"""
    x = node.inputs[0]
    found = structured(x)
    if found is None:
        return None
    v = found[0]
    axes = node.attr("axis")
    if axes == tuple(range(x.ndim)):
        return sh.reshape(rd.sum_(v, axis=(0,), keepdims=False), shape=node.shape)
    if axes in (tuple(range(1, x.ndim)), (0,)) and x.ndim >= 2:
        return sh.reshape(v, shape=node.shape) if v.shape != node.shape else v
    return None


def matmul_structured(node: Node) -> Node | None:
    """M @ diag(v) -> M * v,  diag(v) @ M -> v[:, None] * M,  and a batch of one-column (or one-row) seeds"""
    m, x = node.inputs
    fm, fx = structured(m), structured(x)
    if fx is not None and x.ndim == 2 and node.shape == m.shape:
        return ew.mul(m, fx[0])
    if fm is not None and m.ndim == 2 and node.shape == x.shape:
        return ew.mul(sh.reshape(fm[0], shape=(m.shape[0], 1)), x)
    if fx is not None and x.ndim == 3 and fx[1][1:] == (1,) and m.ndim == 2:
        v = fx[0]  # out[k, i, 0] = m[i, k] v[k]
        scaled = ew.mul(sh.transpose(m, axes=(1, 0)), sh.reshape(v, shape=(v.shape[0], 1)))
        return sh.reshape(scaled, shape=node.shape)
    if fm is not None and m.ndim == 3 and fm[1][:1] == (1,) and x.ndim == 2:
        v = fm[0]  # out[k, 0, l] = v[k] x[k, l]
        return sh.reshape(ew.mul(sh.reshape(v, shape=(v.shape[0], 1)), x), shape=node.shape)
    return None


def transpose_diag(node: Node) -> Node | None:
    """transpose(diag(v), (1, 0)) -> diag(v)"""
    x = node.inputs[0]
    return x if x.op is st.diag and node.attr("axes") == (1, 0) else None


RULES: tuple[tuple[str, Rule], ...] = (
    ("mul", mul_structured), ("div", div_structured), ("neg", neg_structured), ("astype", astype_structured),
    ("add", add_structured), ("where", where_structured), ("sum", sum_structured),
    ("matmul", matmul_structured), ("transpose", transpose_diag),
)  # fmt: skip


def _guarded(rule: Rule, keep: Collection[Node]) -> Rule:
    """The rule, except on the nodes of `keep` (the function being differentiated stays as it was)."""

    def guarded(node: Node) -> Node | None:
        return None if node in keep else rule(node)

    guarded.__name__ = rule.__name__
    guarded.__doc__ = rule.__doc__
    return guarded


def restructure(nodes: Sequence[Node], keep: Collection[Node]) -> list[Node]:
    """`nodes` with the structured-seed rules applied to a fixpoint, except on the nodes of `keep`."""
    table = rule_table(*((op, _guarded(rule, keep)) for op, rule in RULES))
    return rewrite_nodes(nodes, table)


__all__ = ["RULES", "along", "identity_seed", "restructure", "structured"]
