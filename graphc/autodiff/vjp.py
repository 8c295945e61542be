"""Reverse mode: the graph of the vector-Jacobian product, by a walk over the reverse toposort.

Imports errors, shapes, ir, ops. Cotangents may carry `nb` leading batch axes
(Jacobians seed a whole basis at once); each rule sees them and the engine sums a
contribution back to its operand's shape, once, here.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.autodiff.common import accumulate, activity, cast_like, no_rule, unbroadcast, untraceable, wrt_names
from graphc.errors import DifferentiationError, located
from graphc.ir import Node, collector_paused, derived_from, toposort


@collector_paused()
def vjp_graph(
    outputs: Sequence[Node], wrt: Sequence[Node], cotangents: Sequence[Node], nb: int = 0
) -> list[Node | None]:
    """For each wrt node, the sum over outputs of ct · d(output)/d(wrt), or None where it is zero."""
    nodes = toposort(outputs)
    active, tainted = activity(nodes, wrt)
    cts: dict[Node, list[Node]] = {}
    for out, ct in zip(outputs, cotangents, strict=True):
        if out in active:
            cts.setdefault(out, []).append(ct)
    leaves = set(wrt)
    results: dict[Node, Node] = {}
    for node in reversed(nodes):
        parts = cts.pop(node, None)
        if parts is None:
            continue
        with derived_from(node, derivative=True):  # the sum of its cotangents and their pullbacks point back to it
            ct = accumulate(parts)
            if node in leaves:
                results[node] = ct
                continue
            _pull_back(node, ct, nb, active, tainted, cts, wrt)
    return [results.get(w) for w in wrt]


def _pull_back(
    node: Node,
    ct: Node,
    nb: int,
    active: set[Node],
    tainted: dict[Node, Node],
    cts: dict[Node, list[Node]],
    wrt: Sequence[Node],
) -> None:
    """Apply the node's rules to its cotangent and add the results to its inputs' cotangents.

    Runs inside `derived_from(node, derivative=True)`: what the rules build belongs to node's derivative.
    """
    params = node.params
    for i, x in enumerate(node.inputs):
        if x in tainted:
            raise untraceable(node, tainted[x], wrt_names(wrt))
        if x not in active:
            continue
        rule = node.op.vjp_rule(i)  # type: ignore[attr-defined]
        if rule is None:
            raise no_rule(node, i)
        try:
            g = rule(ct, node, *node.inputs, **params)
        except DifferentiationError as exc:
            raise located(exc, node.op.name, node.loc) from None
        if g is None:
            continue
        g = cast_like(unbroadcast(g, nb, x.type.shape), x)
        cts.setdefault(x, []).append(g)
