"""Small predicates the rewrite rules share: constants, identity shapes, single values.

Imports ir and ops only.
"""

from __future__ import annotations

import math

import numpy as np

from graphc.ir import Node
from graphc.ops.source import const_value


def is_filled(node: Node, value: float) -> bool:
    """True when `node` is a (broadcast or reshaped) constant that is `value` everywhere, sign of zero included."""
    while node.op.name in ("broadcast_to", "reshape"):
        node = node.inputs[0]
    array = const_value(node)
    if array is None or array.size == 0:
        return False
    if array.size == 1:  # the common case, in Python scalars: NumPy's per-call cost dominated the optimizer
        item = array.item()
        if item != value:
            return False
        return value != 0 or array.dtype.kind != "f" or math.copysign(1.0, item) == math.copysign(1.0, value)
    target = np.asarray(value, dtype=array.dtype)
    if target != value:
        return False  # `value` has no spelling in this dtype (0.5 in int64 would read as 0)
    same = array == target
    if value == 0:
        same &= np.signbit(array) == np.signbit(target)
    return bool(np.all(same))


def keeps_shape(x: Node, node: Node) -> bool:
    """True when replacing `node` by `x` changes neither shape nor dtype (no broadcasting lost)."""
    return x.type == node.type


def single(node: Node, op_name: str) -> bool:
    return node.op.name == op_name
