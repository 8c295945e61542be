"""Forward mode: the graph of the Jacobian-vector product, by a walk over the toposort.

Imports errors, shapes, ir, ops. Tangents may carry `nb` leading batch axes. For
ops that broadcast their operands (`op.aligns`), each input tangent is first
padded to the output's rank so that batch axes never meet operand axes.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.autodiff.common import (
    accumulate,
    activity,
    align,
    cast_like,
    no_rule,
    unbroadcast,
    untraceable,
    wrt_names,
)
from graphc.errors import DifferentiationError, located
from graphc.ir import Node, collector_paused, derived_from, toposort


@collector_paused()
def jvp_graph(outputs: Sequence[Node], wrt: Sequence[Node], tangents: Sequence[Node], nb: int = 0) -> list[Node | None]:
    """For each output, the sum over wrt of d(output)/d(wrt) · t, or None where it is zero."""
    nodes = toposort(outputs)
    active, tainted = activity(nodes, wrt)
    ts: dict[Node, Node] = {w: t for w, t in zip(wrt, tangents, strict=True) if w in active}
    for node in nodes:
        if node in ts or node not in active:
            continue
        t = _push_forward(node, nb, ts, tainted, wrt)
        if t is not None:
            ts[node] = t
    return [ts.get(o) for o in outputs]


def _push_forward(
    node: Node, nb: int, ts: dict[Node, Node], tainted: dict[Node, Node], wrt: Sequence[Node]
) -> Node | None:
    parts: list[Node] = []
    params = node.params
    for i, x in enumerate(node.inputs):
        if x in tainted:
            raise untraceable(node, tainted[x], wrt_names(wrt))
        t = ts.get(x)
        if t is None:
            continue
        rule = node.op.jvp_rule(i)  # type: ignore[attr-defined]
        if rule is None:
            raise no_rule(node, i)
        if node.op.aligns:  # type: ignore[attr-defined]
            t = align(t, nb, node.ndim)
        with derived_from(node, derivative=True):
            try:
                part = rule(t, node, *node.inputs, **params)
            except DifferentiationError as exc:
                raise located(exc, node.op.name, node.loc) from None
            if part is not None:
                parts.append(cast_like(unbroadcast(part, nb, node.shape), node))
    if not parts:
        return None
    with derived_from(node, derivative=True):
        return accumulate(parts)
