"""What both autodiff directions share: which nodes are active, untraceable paths, fitting shapes.

Imports errors, shapes, ir, ops. A node is *active* when it is a float node that
depends on a differentiation variable through float values. A non-float node
that depends on one through a cast to int/bool (or argmax/argmin) is *tainted*:
a derivative that needs it is undefined. Comparisons are not taints: their
derivative is zero almost everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.errors import DifferentiationError, located
from graphc.ir import Node
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.shapes import Shape, is_float

_TAINTING = ("astype", "argmax", "argmin")


def activity(nodes: Sequence[Node], wrt: Sequence[Node]) -> tuple[set[Node], dict[Node, Node]]:
    """The active float nodes, and for each tainted non-float node the op that tainted it."""
    active: set[Node] = {w for w in wrt if is_float(w.dtype)}
    tainted: dict[Node, Node] = {}
    for node in nodes:
        if node in active:
            continue
        if is_float(node.dtype):
            if any(i in active or i in tainted for i in node.inputs):
                active.add(node)  # a tainted input makes it active, so that using it raises
            continue
        culprit = _taint_of(node, active, tainted)
        if culprit is not None:
            tainted[node] = culprit
    return active, tainted


def _taint_of(node: Node, active: set[Node], tainted: dict[Node, Node]) -> Node | None:
    if node.op.name in _TAINTING and any(i in active for i in node.inputs):
        return node
    for i in node.inputs:
        if i in tainted:
            return tainted[i]
    return None


def untraceable(user: Node, culprit: Node, wrt_name: str) -> DifferentiationError:
    """The error for a derivative that would pass through an int/bool value."""
    what = culprit.op.name
    if what == "astype":
        what = f"a cast to {culprit.dtype}"
    message = (
        f"cannot differentiate with respect to {wrt_name}: the path passes through {what}, "
        f"which has no derivative (used by {user.op.name}{_at(user)})"
    )
    return located(DifferentiationError(message), culprit.op.name, culprit.loc)


def wrt_names(wrt: Sequence[Node]) -> str:
    """The names of the float differentiation variables, for error messages."""
    names = [str(w.attr("name")) if w.op.name == "var" else w.op.name for w in wrt if is_float(w.dtype)]
    return ", ".join(names) or "the inputs"


def no_rule(node: Node, index: int) -> DifferentiationError:
    message = f"{node.op.name} has no derivative with respect to its operand {index}"
    return located(DifferentiationError(message), node.op.name, node.loc)


def _at(node: Node) -> str:
    return f" at {node.loc}" if node.loc is not None else ""


def unbroadcast(g: Node, nb: int, shape: Shape) -> Node:
    """g (batch + s, s broadcast-compatible with `shape`) summed and broadcast to batch + shape."""
    if g.type.shape[nb:] == shape:  # the common case, where every step below leaves g as it is
        return g
    extra = g.ndim - nb - len(shape)
    if extra > 0:
        g = rd.sum_(g, axis=tuple(range(nb, nb + extra)), keepdims=False)
    g = align(g, nb, len(shape))
    s = g.shape[nb:]
    ones = tuple(nb + i for i, (n, m) in enumerate(zip(shape, s, strict=True)) if n == 1 and m != 1)
    if ones:
        g = rd.sum_(g, axis=ones, keepdims=True)
    target = g.shape[:nb] + shape
    if g.shape != target:
        g = sh.broadcast_to(g, shape=target)
    return g


def align(g: Node, nb: int, rank: int) -> Node:
    """g (batch + s) reshaped to batch + (1,)*k + s so its non-batch part has `rank` axes."""
    s = g.shape[nb:]
    if len(s) >= rank:
        return g
    return sh.reshape(g, shape=g.shape[:nb] + (1,) * (rank - len(s)) + s)


def accumulate(parts: list[Node]) -> Node:
    """The sum of the contributions, left to right (a deterministic order)."""
    total = parts[0]
    for part in parts[1:]:
        total = ew.add(total, part)
    return total


def cast_like(g: Node, like: Node) -> Node:
    return g if g.dtype == like.dtype else ew.astype(g, dtype=like.dtype)
