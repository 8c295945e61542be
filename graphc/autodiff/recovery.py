"""Recovery: a sparse Jacobian's values gathered from the compressed product, the gather pushed down the graph.

Imports shapes, ir, ops. values[k] = compressed.ravel()[position[k]]: one gather would do.
This module moves the gather down through what only moves or combines values elementwise
(reshape, transpose, broadcast_to, slice, unslice, concatenate, add, sub, neg, and mul
or div by a factor that does not depend on the inputs) and evaluates, once, at build time, every part that does
not depend on the inputs. A residual's linear part with constant coefficients (a
stencil's Laplacian, applied to the seed) then becomes a constant vector of values, and
only the entries that change are computed per call:

    values = index_add(constant values, the entries that change, where they go)

which is what a hand-written CSR Jacobian does. A term that a constant factor multiplies
by zero at an entry is a structural zero there and is dropped, as the Jacobian's own
zeros are; sums are regrouped (constant part first), so values agree with the plain
gather to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from graphc.ir import Node, toposort
from graphc.ops import elementwise as ew
from graphc.ops import shape as sh
from graphc.ops import structure as st
from graphc.ops.loops import is_loop
from graphc.ops.source import const, const_op, var_op
from graphc.ops.sparsity import broadcast_index, positions
from graphc.shapes import fixed

MAX_DEPTH = 200
"""Deeper than this the gather is not pushed further (a plain take there)."""


@dataclass
class Gathered:
    """Values at L positions: `base` (constant) plus each term's node added at its positions."""

    base: np.ndarray
    terms: list[tuple[np.ndarray, Node]] = field(default_factory=list)

    def negated(self) -> Gathered:
        return Gathered(-self.base, [(where, ew.neg(node)) for where, node in self.terms])

    def plus(self, other: Gathered) -> Gathered:
        return Gathered(self.base + other.base, self.terms + other.terms)


@dataclass
class Context:
    """What one recovery shares: which nodes depend on inputs, constant values, gathers already made."""

    dependent: set[Node]
    values: dict[Node, np.ndarray] = field(default_factory=dict)
    memo: dict[tuple[Node, bytes], Gathered] = field(default_factory=dict)


def dependent_nodes(root: Node) -> set[Node]:
    """The nodes that depend on a var (or run a loop): they are computed per call, the others at build time."""
    dependent: set[Node] = set()
    for node in toposort([root]):
        if node.op is var_op or is_loop(node) or any(i in dependent for i in node.inputs):
            dependent.add(node)
    return dependent


def constant_value(node: Node, ctx: Context) -> np.ndarray:
    """The value of a node that depends on no var, by the ops' reference eval (memoized)."""
    for n in toposort([node]):
        if n in ctx.values:
            continue
        if n.op is const_op:
            ctx.values[n] = np.asarray(n.attr("value").array)  # type: ignore[attr-defined]
            continue
        args = [ctx.values[i] for i in n.inputs]
        with np.errstate(all="ignore"):
            ctx.values[n] = np.asarray(n.op.eval(*args, **n.params))  # type: ignore[attr-defined]
    return ctx.values[node]


def recover(compressed: Node, where: np.ndarray) -> Node:
    """The node of compressed.ravel()[where] (shape (len(where),)), with the gather pushed down."""
    ctx = Context(dependent_nodes(compressed))
    found = gather(compressed, np.asarray(where, dtype=np.int64), ctx, 0)
    return assemble(found, compressed.dtype)


def gather(node: Node, where: np.ndarray, ctx: Context, depth: int) -> Gathered:
    """node.ravel()[where] as a Gathered."""
    if node not in ctx.dependent:
        return Gathered(constant_value(node, ctx).reshape(-1)[where].astype(node.dtype))
    key = (node, where.tobytes())
    found = ctx.memo.get(key)
    if found is None:
        push = PUSH.get(node.op.name)
        found = push(node, where, ctx, depth + 1) if push is not None and depth < MAX_DEPTH else None
        if found is None:
            found = Gathered(np.zeros(len(where), node.dtype), [(np.arange(len(where)), take_flat(node, where))])
        ctx.memo[key] = found
    return found


def take_flat(node: Node, where: np.ndarray) -> Node:
    """node.ravel()[where] as a node: a reshape when `where` is every position in order, else a take."""
    flat = sh.reshape(node, shape=(node.type.size,)) if node.shape != (node.type.size,) else node
    if len(where) == node.type.size and np.array_equal(where, np.arange(len(where))):
        return flat
    return sh.take(flat, const(where), axis=0)


# --- pushing the gather through one op ------------------------------------------------------------


def _reshape(node: Node, where: np.ndarray, ctx: Context, depth: int) -> Gathered:
    return gather(node.inputs[0], where, ctx, depth)


def _moved(node: Node, where: np.ndarray, ctx: Context, depth: int) -> Gathered:
    """transpose, broadcast_to, slice: the input's position of every output position."""
    x = node.inputs[0]
    if node.op is sh.transpose:
        source = np.transpose(positions(fixed(x.shape)), node.attr("axes")).reshape(-1)  # type: ignore[call-overload]
    elif node.op is sh.broadcast_to:
        source = broadcast_index(fixed(node.shape), fixed(x.shape))
    else:
        source = positions(x.shape)[sh.as_slices(node.attr("index"))].reshape(-1)  # type: ignore[arg-type, index]
    return gather(x, source[where], ctx, depth)


def _placed(node: Node, where: np.ndarray, ctx: Context, depth: int) -> Gathered:
    """unslice and concatenate: each position reads one input's element, or is a constant zero (unslice)."""
    total = Gathered(np.zeros(len(where), node.dtype))
    if node.op is sh.unslice:
        source = np.full(node.shape, -1, dtype=np.int64)
        source[sh.as_slices(node.attr("index"))] = positions(node.inputs[0].shape)  # type: ignore[arg-type]
        owners = [(node.inputs[0], source.reshape(-1))]
    else:
        owners = _regions(node)
    for x, source in owners:
        at = source[where]
        kept = np.flatnonzero(at >= 0)
        if len(kept):
            total = total.plus(_spread(gather(x, at[kept], ctx, depth), kept, len(where)))
    return total


def _regions(node: Node) -> list[tuple[Node, np.ndarray]]:
    """For each input of a concatenate, the position in it of every output element (-1 outside its region)."""
    axis = int(node.attr("axis"))  # type: ignore[call-overload]
    regions = []
    start = 0
    for x in node.inputs:
        source = np.full(node.shape, -1, dtype=np.int64)
        region = [slice(None)] * node.ndim
        region[axis] = slice(start, start + x.shape[axis])
        source[tuple(region)] = positions(fixed(x.shape))
        regions.append((x, source.reshape(-1)))
        start += x.shape[axis]
    return regions


def _operands(node: Node, where: np.ndarray, ctx: Context, depth: int) -> list[Gathered]:
    return [gather(x, broadcast_index(fixed(node.shape), fixed(x.shape))[where], ctx, depth) for x in node.inputs]


def _sum(node: Node, where: np.ndarray, ctx: Context, depth: int) -> Gathered:
    a, b = _operands(node, where, ctx, depth)
    return a.plus(b.negated() if node.op is ew.sub else b)


def _neg(node: Node, where: np.ndarray, ctx: Context, depth: int) -> Gathered:
    return gather(node.inputs[0], where, ctx, depth).negated()


def _constant_at(x: Node, node: Node, where: np.ndarray, ctx: Context) -> np.ndarray | None:
    """The values of operand x at the positions (None when x depends on the inputs)."""
    if x in ctx.dependent:
        return None
    return constant_value(x, ctx).reshape(-1)[broadcast_index(fixed(node.shape), fixed(x.shape))[where]]


def _product(node: Node, where: np.ndarray, ctx: Context, depth: int) -> Gathered | None:
    """x * c or c * x (c constant): x's values scaled, gathered only where c is not zero (elsewhere: structural 0)."""
    x, y = node.inputs
    for other, factor in ((y, x), (x, y)):
        c = _constant_at(factor, node, where, ctx)
        if c is None:
            continue
        kept = np.flatnonzero(c != 0)
        inner = gather(other, broadcast_index(fixed(node.shape), fixed(other.shape))[where][kept], ctx, depth)
        return _spread(_scaled(inner, c[kept].astype(node.dtype), ew.mul), kept, len(where))
    return None


def _spread(g: Gathered, kept: np.ndarray, length: int) -> Gathered:
    """g, whose positions are `kept` of `length`, at its place among all positions (zeros elsewhere)."""
    if len(kept) == length:
        return g
    base = np.zeros(length, dtype=g.base.dtype)
    base[kept] = g.base
    return Gathered(base, [(kept[at], part) for at, part in g.terms])


def _quotient(node: Node, where: np.ndarray, ctx: Context, depth: int) -> Gathered | None:
    """x / c (c constant): x's values divided."""
    x, y = node.inputs
    c = _constant_at(y, node, where, ctx)
    if c is None:
        return None
    inner = gather(x, broadcast_index(fixed(node.shape), fixed(x.shape))[where], ctx, depth)
    terms = [(at, ew.div(part, const(c[at].astype(node.dtype)))) for at, part in inner.terms]
    with np.errstate(all="ignore"):
        return Gathered((inner.base / c).astype(node.dtype), terms)


def _scaled(g: Gathered, c: np.ndarray, combine: Callable[[Node, Node], Node]) -> Gathered:
    """g times the constant c (one value per position); terms at positions where c is 0 are dropped there."""
    with np.errstate(all="ignore"):
        base = (g.base * c).astype(g.base.dtype)
    terms = []
    for at, part in g.terms:
        factor = c[at]
        keep = factor != 0
        if not np.any(keep):
            continue
        if not np.all(keep):
            part = sh.take(part, const(np.flatnonzero(keep)), axis=0)
            at, factor = at[keep], factor[keep]
        terms.append((at, part if np.all(factor == 1) else combine(part, const(factor))))
    return Gathered(base, terms)


PUSH: dict[str, Callable[[Node, np.ndarray, Context, int], Gathered | None]] = {
    "reshape": _reshape, "transpose": _moved, "broadcast_to": _moved, "slice": _moved,
    "add": _sum, "sub": _sum, "neg": _neg, "mul": _product, "div": _quotient, "unslice": _placed,
    "concatenate": _placed,
}  # fmt: skip


# --- the values node --------------------------------------------------------------------------------


def assemble(g: Gathered, dtype: np.dtype) -> Node:
    """The node of g's values: the constant, or the terms, or the constant with the terms added (index_add)."""
    base = g.base.astype(dtype)
    if not g.terms:
        return const(base)
    where = np.concatenate([at for at, _ in g.terms])
    parts = [part for _, part in g.terms]
    updates = parts[0] if len(parts) == 1 else sh.concatenate(*parts, axis=0)
    if not np.any(base) and not np.signbit(base).any() and np.array_equal(np.sort(where), np.arange(len(base))):
        if np.array_equal(where, np.arange(len(base))):
            return updates
        inverse = np.empty_like(where)
        inverse[where] = np.arange(len(where))
        return sh.take(updates, const(inverse), axis=0)
    return st.index_add(const(base), updates, const(where), axis=0)


__all__ = ["Gathered", "assemble", "gather", "recover"]
