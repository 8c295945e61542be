"""fastmath (opt-in, `gc.compile(..., fast_math=True)`): identities that ignore NaN, inf and -0.0.

Guarantee: results equal the original for finite inputs where no intermediate
overflows; NaN/inf/-0.0 results may change (0 * inf is NaN, but x*0 -> 0 says 0).
"""

from __future__ import annotations

import numpy as np

from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.ops import shape as sh
from graphc.ops.source import const
from graphc.passes.patterns import is_filled
from graphc.rewrite import Settled, rewrite, rule_table


def filled(value: float, like: Node) -> Node:
    """A constant `value` broadcast to like's type."""
    scalar = const(np.asarray(value, dtype=like.dtype))
    return scalar if like.shape == () else sh.broadcast_to(scalar, shape=like.shape)


def mul_zero(node: Node) -> Node | None:
    """x * 0 -> 0"""
    x, y = node.inputs
    return filled(0, node) if is_filled(x, 0) or is_filled(y, 0) else None


def add_zero(node: Node) -> Node | None:
    """x + 0 -> x"""
    x, y = node.inputs
    if is_filled(y, 0) and x.type == node.type:
        return x
    if is_filled(x, 0) and y.type == node.type:
        return y
    return None


def sub_self(node: Node) -> Node | None:
    """x - x -> 0"""
    x, y = node.inputs
    return filled(0, node) if x is y else None


def div_self(node: Node) -> Node | None:
    """x / x -> 1"""
    x, y = node.inputs
    return filled(1, node) if x is y else None


def exp_log(node: Node) -> Node | None:
    """exp(log(x)) -> x"""
    (x,) = node.inputs
    return x.inputs[0] if x.op is ew.log else None


RULES = rule_table(
    ("mul", mul_zero),
    ("add", add_zero),
    ("sub", sub_self),
    ("div", div_self),
    ("exp", exp_log),
)


_SETTLED = Settled()  # the fixpoints of RULES met so far (graphc.rewrite: a walk passes over them)


def fastmath(graph: Graph) -> Graph:
    """Apply the non-IEEE identities of this module to a fixpoint."""
    return rewrite(graph, RULES, _SETTLED)
