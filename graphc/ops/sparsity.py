"""Sparsity rules: which elements of an op's inputs each element of its output depends on.

Imports errors, shapes, ir, ops.base, ops.source; scipy inside the functions (lazily). A *pattern*
is a scipy.sparse.csr_array of bools of shape (node.size, n): row k holds the
differentiation variables (n of them) that element k of the node depends on. A rule,
the `sparsity` field of an op's record, is called as `rule(patterns, out, *inputs,
**attrs)`, `patterns` holding each input's pattern (None for an input that carries
none), and returns the output's pattern (None: none). Rules are structural and never
drop a dependence that a value could create; they are exact for elementwise ops,
broadcasts, slices, concatenation, gathers and scatters with constant indices,
reductions, matmul (a constant operand's zeros count) and cond (the union of its
branches' patterns). An op without a rule (`sparsity=None`; scan, while_loop and
fixed_point among them) gets `dense`: every output element depends on everything its
inputs do.

No pattern stores more than MAX_ENTRIES entries: a rule that would make a larger one
raises PatternTooLarge before allocating it (a dense pattern of n x n entries needs
about 9 n**2 bytes; sparsity is the wrong tool for such a Jacobian).

Most rules are *index maps*: output element k reads input element index[k] (-1: none),
which `gather` applies; reductions and matmul give a list of (output, input) pairs,
which `connect` applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np

from graphc.errors import GraphError
from graphc.errors import where as built_at
from graphc.ir import Graph, Node, toposort
from graphc.ops.base import zero
from graphc.ops.source import const_value, static_value
from graphc.shapes import fixed, fixed_size, is_float

Pattern: TypeAlias = Any
"""A scipy.sparse.csr_array of bools (scipy ships no type stubs, so it is Any to the type checker)."""

Patterns = Sequence["Pattern | None"]

MAX_ENTRIES = 2**28
"""The most entries a pattern may store (about 2.4 GB of CSR arrays): beyond it, PatternTooLarge."""


class PatternTooLarge(GraphError):
    """A sparsity pattern that would store more than MAX_ENTRIES entries."""


def _check_size(entries: int, rows: int, n: int) -> None:
    """Raise PatternTooLarge, before anything is allocated, for a pattern of more than MAX_ENTRIES entries."""
    if entries > MAX_ENTRIES:
        raise PatternTooLarge(
            f"its sparsity pattern ({rows} x {n}) would store {entries} entries, over the limit of "
            f"2**28 = {MAX_ENTRIES}: the Jacobian is dense here (or conservatively taken as dense); use gc.jacobian"
        )


# --- the pattern algebra ----------------------------------------------------------------------------------


def empty(rows: int, n: int) -> Pattern:
    """No dependence at all: a (rows, n) pattern without entries."""
    from scipy.sparse import csr_array

    return csr_array((rows, n), dtype=bool)


def identity(n: int) -> Pattern:
    """The pattern of the differentiation variable itself: element k depends on variable k."""
    from scipy.sparse import csr_array

    index = np.arange(n, dtype=np.int64)
    return csr_array((np.ones(n, dtype=bool), index, np.arange(n + 1, dtype=np.int64)), shape=(n, n))


def connect(pairs: tuple[np.ndarray, np.ndarray], rows: int, p: Pattern) -> Pattern:
    """The pattern of `rows` elements where output element o depends on input element i for each (o, i) of `pairs`."""
    from scipy.sparse import csr_array

    out_index, in_index = pairs
    _check_size(int(np.diff(p.indptr)[in_index].sum()), rows, p.shape[1])
    data = np.ones(len(out_index), dtype=bool)
    select = csr_array((data, (out_index, in_index)), shape=(rows, p.shape[0]))
    return csr_array(select @ p)


def gather(index: np.ndarray, p: Pattern) -> Pattern:
    """Row k is row index[k] of p; an index of -1 gives an empty row."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if index.size and index.min() >= 0:
        _check_size(int(np.diff(p.indptr)[index].sum()), len(index), p.shape[1])
        return p[index]
    keep = np.flatnonzero(index >= 0)
    return connect((keep, index[keep]), len(index), p)


def union(patterns: Sequence[Pattern | None]) -> Pattern | None:
    """The union of the patterns (all of one shape) that are not None; None when there are none."""
    present = [p for p in patterns if p is not None]
    if not present:
        return None
    total = present[0]
    for p in present[1:]:
        total = total + p
    return total


def dense(patterns: Patterns, out: Node, *inputs: Node, **attrs: object) -> Pattern | None:
    """The conservative rule: every output element depends on everything any input element depends on."""
    from scipy.sparse import csr_array

    present = [p for p in patterns if p is not None]
    if not present:
        return None
    n = present[0].shape[1]
    columns = np.unique(np.concatenate([p.indices for p in present]))
    rows = fixed_size(out.type.size)
    _check_size(rows * len(columns), rows, n)
    indptr = np.arange(rows + 1, dtype=np.int64) * len(columns)
    data = np.ones(rows * len(columns), dtype=bool)
    return csr_array((data, np.tile(columns, rows), indptr), shape=(rows, n))


def _passes_nothing(node: Node, index: int) -> bool:
    """Whether input `index` of node has derivative zero (its rule is `zero`): it carries no dependence."""
    rules = node.op.jvp  # type: ignore[attr-defined]
    if node.op.variadic:  # type: ignore[attr-defined]
        return bool(rules) and rules[0] is zero
    return index < len(rules) and rules[index] is zero


def propagate(outputs: Sequence[Node], seeds: dict[Node, Pattern]) -> list[Pattern | None]:
    """The pattern of each output, from the patterns of the `seeds` nodes, by each op's rule; None: no dependence.

    Only float values carry dependence, and an input whose derivative rule is `zero` (a
    comparison, floor, where's condition) passes none on. A rule that would exceed
    MAX_ENTRIES raises PatternTooLarge naming the node.
    """
    found = dict(seeds)
    for node in toposort(outputs):
        if node in found or not node.inputs or not is_float(node.dtype):
            continue
        given = [None if _passes_nothing(node, i) else found.get(a) for i, a in enumerate(node.inputs)]
        if all(g is None for g in given):
            continue
        rule = node.op.sparsity or dense  # type: ignore[attr-defined]
        try:
            pattern = rule(given, node, *node.inputs, **node.params)
        except PatternTooLarge as exc:
            raise PatternTooLarge(f"{node.op.name} {node.type}{built_at(node.loc)}: {exc}") from None
        if pattern is not None and pattern.nnz:
            found[node] = pattern
    return [found.get(o) for o in outputs]


def branches(
    patterns: Patterns, out: Node, pred: Node, *args: Node, true_body: Graph, false_body: Graph, output: int
) -> Pattern | None:
    """cond: the union of both branches' patterns of result `output`; the predicate (a bool) carries none."""
    parts = []
    for body in (true_body, false_body):
        seeds = {param: p for param, p in zip(body.inputs, patterns[1:], strict=True) if p is not None}
        parts.extend(propagate([body.outputs[output]], seeds))
    return union(parts)


def positions(shape: tuple[int, ...]) -> np.ndarray:
    """The flat position of every element of an array of `shape`, as an array of that shape."""
    return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)


def broadcast_index(out_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> np.ndarray:
    """For each element of the broadcast result, the flat position of the input element it reads."""
    return np.broadcast_to(positions(in_shape), out_shape).reshape(-1)


def nonzero_mask(node: Node) -> np.ndarray | None:
    """Where a constant operand is not zero (its zeros cut dependences), or None when it is not constant."""
    value = const_value(node)
    if value is None:
        value = static_value(node)
    if value is None:
        return None
    return np.asarray(value) != 0


# --- elementwise ----------------------------------------------------------------------------------------


def elementwise(patterns: Patterns, out: Node, *inputs: Node, **attrs: object) -> Pattern | None:
    """out[k] depends on the element of each input that broadcasting pairs with k."""
    parts = [
        gather(broadcast_index(fixed(out.shape), fixed(x.shape)), p)
        for p, x in zip(patterns, inputs, strict=True)
        if p is not None
    ]
    return union(parts)


def masked(p: Pattern, out: Node, mask: np.ndarray) -> Pattern:
    """p (broadcast to out already) with the rows where `mask` (broadcast to out) is False emptied."""
    keep = np.broadcast_to(mask, fixed(out.shape)).reshape(-1)
    index = np.where(keep, np.arange(fixed_size(out.type.size), dtype=np.int64), -1)
    return gather(index, p)


def product(patterns: Patterns, out: Node, x: Node, y: Node) -> Pattern | None:
    """x * y: as elementwise, except where the other operand is a constant zero (d(x*0)/dx = 0)."""
    parts = []
    for p, mine, other in ((patterns[0], x, y), (patterns[1], y, x)):
        if p is None:
            continue
        part = gather(broadcast_index(fixed(out.shape), fixed(mine.shape)), p)
        mask = nonzero_mask(other)
        parts.append(part if mask is None else masked(part, out, mask))
    return union(parts)


def selection(patterns: Patterns, out: Node, c: Node, x: Node, y: Node) -> Pattern | None:
    """where(c, x, y): x where c can be True, y where it can be False (a constant c decides)."""
    mask = nonzero_mask(c)
    parts = []
    for p, branch, taken in ((patterns[1], x, True), (patterns[2], y, False)):
        if p is None:
            continue
        part = gather(broadcast_index(fixed(out.shape), fixed(branch.shape)), p)
        parts.append(part if mask is None else masked(part, out, mask == taken))
    return union(parts)


# --- shapes ------------------------------------------------------------------------------------------------


def same(patterns: Patterns, out: Node, x: Node, **attrs: object) -> Pattern | None:
    """reshape: element k is element k (C order)."""
    return patterns[0]


def permuted(patterns: Patterns, out: Node, x: Node, *, axes: tuple[int, ...]) -> Pattern | None:
    """transpose: element k reads the element the permutation moves there."""
    return gather(np.transpose(positions(fixed(x.shape)), axes).reshape(-1), patterns[0])


def broadcast(patterns: Patterns, out: Node, x: Node, *, shape: tuple[int, ...]) -> Pattern | None:
    return gather(broadcast_index(fixed(out.shape), fixed(x.shape)), patterns[0])


def concatenated(patterns: Patterns, out: Node, *xs: Node, axis: int) -> Pattern | None:
    """concatenate: each input fills its own region of the output."""
    parts = []
    start = 0
    for p, x in zip(patterns, xs, strict=True):
        stop = start + fixed_size(x.shape[axis])
        if p is not None:
            where = np.full(out.shape, -1, dtype=np.int64)
            region = [slice(None)] * out.ndim
            region[axis] = slice(start, stop)
            where[tuple(region)] = positions(fixed(x.shape))
            parts.append(gather(where.reshape(-1), p))
        start = stop
    return union(parts)


def _constant_indices(indices: Node, size: int) -> np.ndarray | None:
    """Constant int indices, negative ones counted from the end, out-of-range ones as -1 (they raise at run time)."""
    value = const_value(indices)
    if value is None:
        value = static_value(indices)
    if value is None:
        return None
    value = np.asarray(value, dtype=np.int64)
    value = np.where(value < 0, value + size, value)
    return np.where((value >= 0) & (value < size), value, -1)


def _moved(shape: tuple[int, ...], axis: int, middle: tuple[int, ...]) -> tuple[int, int, int]:
    """(elements before axis, elements of `middle`, elements after axis) of a take/scatter operand."""
    before = int(np.prod(shape[:axis], dtype=np.int64))
    after = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    return before, int(np.prod(middle, dtype=np.int64)), after


def taken(patterns: Patterns, out: Node, a: Node, indices: Node, *, axis: int) -> Pattern | None:
    """take: out[..., i, ...] reads a[..., indices[i], ...]; with indices not constant, any of the axis."""
    p = patterns[0]
    if p is None:
        return None
    n_axis = fixed_size(a.shape[axis])
    chosen = _constant_indices(indices, n_axis)
    before, count, after = _moved(fixed(a.shape), axis, fixed(indices.shape))
    grid = positions((before, n_axis, after))
    if chosen is not None:
        picked = grid[:, np.maximum(chosen.reshape(-1), 0), :]
        picked = np.where(chosen.reshape(1, -1, 1) >= 0, picked, -1)
        return gather(picked.reshape(-1), p)
    out_pos = positions((before, count, after))
    o = np.broadcast_to(out_pos[:, :, None, :], (before, count, n_axis, after)).reshape(-1)
    i = np.broadcast_to(grid[:, None, :, :], (before, count, n_axis, after)).reshape(-1)
    return connect((o, i), fixed_size(out.type.size), p)


def scattered(
    patterns: Patterns, out: Node, g: Node, indices: Node, *, axis: int, size: int, base: Pattern | None = None
) -> Pattern | None:
    """scatter_add: out[..., s, ...] sums g[..., i, ...] over the i with indices[i] == s (any i when not constant)."""
    p = patterns[0]
    if p is None:
        return base
    chosen = _constant_indices(indices, size)
    before, count, after = _moved(fixed(out.shape), axis, fixed(indices.shape))
    source = positions((before, count, after))
    if chosen is not None:
        target = positions((before, size, after))[:, np.maximum(chosen.reshape(-1), 0), :]
        keep = np.broadcast_to(chosen.reshape(1, -1, 1) >= 0, target.shape).reshape(-1)
        pairs = (target.reshape(-1)[keep], source.reshape(-1)[keep])
    else:
        target = positions((before, size, after))
        o = np.broadcast_to(target[:, None, :, :], (before, count, size, after)).reshape(-1)
        i = np.broadcast_to(source[:, :, None, :], (before, count, size, after)).reshape(-1)
        pairs = (o, i)
    return union([connect(pairs, fixed_size(out.type.size), p), base])


def scatter_pattern(patterns: Patterns, out: Node, g: Node, indices: Node, *, axis: int, size: int) -> Pattern | None:
    return scattered(patterns, out, g, indices, axis=axis, size=size)


def index_add_pattern(
    patterns: Patterns, out: Node, base: Node, updates: Node, indices: Node, *, axis: int
) -> Pattern | None:
    """index_add: each element keeps its own base element, plus the updates scattered onto it."""
    return scattered(patterns[1:], out, updates, indices, axis=axis, size=fixed(base.shape)[axis], base=patterns[0])


def diag_pattern(patterns: Patterns, out: Node, v: Node) -> Pattern | None:
    """diag: out[..., i, i] reads v[..., i]; every other element is a constant zero."""
    n = fixed_size(v.shape[-1])
    where = np.full(fixed(out.shape), -1, dtype=np.int64)
    flat = positions(fixed(v.shape))
    index = np.arange(n)
    where[..., index, index] = flat
    return gather(where.reshape(-1), patterns[0])


# --- reductions and matmul ------------------------------------------------------------------------------


def reduced(patterns: Patterns, out: Node, x: Node, *, axis: tuple[int, ...], keepdims: bool) -> Pattern | None:
    """A reduction: out element k depends on every input element that reduces into it."""
    p = patterns[0]
    if p is None:
        return None
    kept = tuple(1 if a in axis else n for a, n in enumerate(fixed(x.shape)))
    target = np.broadcast_to(positions(kept), fixed(x.shape)).reshape(-1)
    return connect((target, np.arange(fixed_size(x.type.size), dtype=np.int64)), fixed_size(out.type.size), p)


def accumulated(patterns: Patterns, out: Node, x: Node, *, axis: int, reverse: bool) -> Pattern | None:
    """cumsum, cumprod: out[..., i, ...] depends on x[..., j, ...] for j <= i along the axis (j >= i reversed)."""
    p = patterns[0]
    if p is None:
        return None
    before, n, after = _moved(fixed(x.shape), axis, (fixed(x.shape)[axis],))
    i, j = np.nonzero(np.tril(np.ones((n, n), dtype=bool)) if not reverse else np.triu(np.ones((n, n), dtype=bool)))
    grid = positions((before, n, after))
    o = grid[:, i, :].reshape(-1)
    s = grid[:, j, :].reshape(-1)
    return connect((o, s), fixed_size(out.type.size), p)


def _nonzero_or_all(node: Node, shape: tuple[int, ...]) -> np.ndarray:
    """Where a matmul operand can be nonzero, broadcast to `shape` (everywhere, unless it is constant)."""
    mask = nonzero_mask(node)
    if mask is None:
        return np.ones(shape, dtype=bool)
    return np.broadcast_to(mask, shape)


def matrix_product(patterns: Patterns, out: Node, x: Node, y: Node) -> Pattern | None:
    """matmul: out[b, i, k] depends on x[b, i, j] and y[b, j, k] for every j where the other factor can be nonzero."""
    *batch, p_, q = fixed(out.shape)
    r = fixed_size(x.shape[-1])
    full_batch = tuple(batch)
    bx = np.broadcast_to(positions(fixed(x.shape)[:-2]), full_batch).reshape(-1)
    by = np.broadcast_to(positions(fixed(y.shape)[:-2]), full_batch).reshape(-1)
    parts = []
    if patterns[0] is not None:  # out (b, i, k) <- x (bx[b], i, j) where y[b, j, k] may be nonzero
        b, j, k = np.nonzero(_nonzero_or_all(y, (*full_batch, r, q)).reshape(-1, r, q))
        i = np.arange(p_)
        o = ((b[:, None] * p_ + i) * q + k[:, None]).reshape(-1)
        s = ((bx[b][:, None] * p_ + i) * r + j[:, None]).reshape(-1)
        parts.append(connect((o, s), fixed_size(out.type.size), patterns[0]))
    if patterns[1] is not None:  # out (b, i, k) <- y (by[b], j, k) where x[b, i, j] may be nonzero
        b, i, j = np.nonzero(_nonzero_or_all(x, (*full_batch, p_, r)).reshape(-1, p_, r))
        k = np.arange(q)
        o = ((b[:, None] * p_ + i[:, None]) * q + k).reshape(-1)
        s = ((by[b][:, None] * r + j[:, None]) * q + k).reshape(-1)
        parts.append(connect((o, s), fixed_size(out.type.size), patterns[1]))
    return union(parts)


__all__ = [
    "MAX_ENTRIES", "Pattern", "PatternTooLarge", "accumulated", "branches", "broadcast", "concatenated", "connect",
    "dense", "diag_pattern", "elementwise", "empty", "gather", "identity", "index_add_pattern", "matrix_product",
    "permuted", "positions", "product", "propagate", "reduced", "same", "scatter_pattern", "selection", "taken",
    "union",
]  # fmt: skip
