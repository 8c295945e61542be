"""fold: evaluate nodes whose inputs are all constants, with the ops' NumPy reference `eval`.

Guarantee: bit-identical results (the reference evaluator computes the same
value at run time). Results larger than MAX_FOLD_ELEMENTS that are larger than
their inputs (broadcasts of a scalar, say) are left to run time.
"""

from __future__ import annotations

import numpy as np

from graphc.ir import Graph, Node
from graphc.ops.base import Kind
from graphc.ops.loops import is_loop
from graphc.ops.source import const, const_op, const_value
from graphc.rewrite import EVERY_OP, Settled, rewrite, rule_table

MAX_FOLD_ELEMENTS = 4096


def fold_constant(node: Node) -> Node | None:
    """op(const, ..., const) -> const(op.eval(...))"""
    for operand in node.inputs:
        if operand.op is not const_op:
            return None  # the common case, first: most nodes have an operand that is not a constant
    if node.op.kind is Kind.SOURCE or not node.inputs or is_loop(node):  # type: ignore[attr-defined]
        return None  # loops run at call time: a non-converging fixed_point must raise there
    if not node.type.static:
        return None  # its size is named: known only when a call binds it
    values = [const_value(i) for i in node.inputs]
    if any(v is None for v in values):
        return None
    biggest = max(v.size for v in values)  # type: ignore[union-attr]
    if node.type.size > MAX_FOLD_ELEMENTS and node.type.size > biggest:
        return None
    try:
        with np.errstate(all="ignore"):
            value = np.asarray(node.op.eval(*values, **node.params))  # type: ignore[attr-defined]
    except (ArithmeticError, IndexError, TypeError, ValueError):
        return None  # an error (an index out of range, say) belongs to run time, not to the optimizer
    if value.shape != node.shape or value.dtype != node.dtype:
        return None  # never fold a value that disagrees with the node's type
    return const(value)


RULES = rule_table((EVERY_OP, fold_constant))
"""fold's rule table: its one rule is offered to every node."""
_SETTLED = Settled()  # the fixpoints of fold met so far (graphc.rewrite: a walk passes over them)


def fold(graph: Graph) -> Graph:
    """Replace every all-constant computation by its value."""
    return rewrite(graph, RULES, _SETTLED)
