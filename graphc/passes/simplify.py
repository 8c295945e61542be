"""simplify: algebraic identities that are exact in IEEE arithmetic.

Guarantee: results are bit-identical to the unsimplified graph for every input,
NaN, ±inf and -0.0 included, except `sum_broadcast` (n equal terms summed become one
product: a documented reassociation). Rules that are only algebraically true
(x*0 -> 0, x-x -> 0) live in passes/fastmath.py.
"""

from __future__ import annotations

import numpy as np

from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.ops import shape as sh
from graphc.ops.source import const
from graphc.passes.patterns import is_filled, keeps_shape
from graphc.rewrite import Settled, rewrite, rule_table
from graphc.shapes import product


def mul_one(node: Node) -> Node | None:
    """x * 1 -> x,  1 * x -> x"""
    x, y = node.inputs
    if is_filled(y, 1) and keeps_shape(x, node):
        return x
    if is_filled(x, 1) and keeps_shape(y, node):
        return y
    return None


def mul_minus_one(node: Node) -> Node | None:
    """x * -1 -> -x"""
    x, y = node.inputs
    if is_filled(y, -1) and keeps_shape(x, node):
        return ew.neg(x)
    if is_filled(x, -1) and keeps_shape(y, node):
        return ew.neg(y)
    return None


def mul_neg_neg(node: Node) -> Node | None:
    """(-a) * (-b) -> a * b"""
    x, y = node.inputs
    if x.op is ew.neg and y.op is ew.neg:
        return ew.mul(x.inputs[0], y.inputs[0])
    return None


def add_minus_zero(node: Node) -> Node | None:
    """x + (-0.0) -> x   (x + 0.0 is not exact: -0.0 + 0.0 = +0.0)"""
    x, y = node.inputs
    if is_filled(y, -0.0) and keeps_shape(x, node):
        return x
    if is_filled(x, -0.0) and keeps_shape(y, node):
        return y
    return None


def add_neg(node: Node) -> Node | None:
    """x + (-y) -> x - y"""
    x, y = node.inputs
    if y.op is ew.neg:
        return ew.sub(x, y.inputs[0])
    return None


def sub_zero(node: Node) -> Node | None:
    """x - 0.0 -> x"""
    x, y = node.inputs
    if is_filled(y, 0.0) and keeps_shape(x, node):
        return x
    return None


def sub_neg(node: Node) -> Node | None:
    """x - (-y) -> x + y"""
    x, y = node.inputs
    if y.op is ew.neg:
        return ew.add(x, y.inputs[0])
    return None


def div_one(node: Node) -> Node | None:
    """x / 1 -> x"""
    x, y = node.inputs
    if is_filled(y, 1) and keeps_shape(x, node):
        return x
    return None


def neg_neg(node: Node) -> Node | None:
    """-(-x) -> x"""
    (x,) = node.inputs
    return x.inputs[0] if x.op is ew.neg else None


def pow_two(node: Node) -> Node | None:
    """x ** 2 -> x * x   (pow(x, 2) is exactly rounded x*x)"""
    x, y = node.inputs
    if is_filled(y, 2) and keeps_shape(x, node):
        return ew.mul(x, x)
    return None


def pow_one(node: Node) -> Node | None:
    """x ** 1 -> x"""
    x, y = node.inputs
    if is_filled(y, 1) and keeps_shape(x, node):
        return x
    return None


def pow_half(node: Node) -> Node | None:
    """x ** 0.5 -> sqrt(x)   (pow is sqrt where the exponent is 0.5, as NumPy's x ** 0.5)"""
    x, y = node.inputs
    if is_filled(y, 0.5) and keeps_shape(x, node):
        return ew.sqrt(x)
    return None


def where_constant(node: Node) -> Node | None:
    """where(True, x, y) -> x,  where(False, x, y) -> y"""
    c, x, y = node.inputs
    if is_filled(c, True) and keeps_shape(x, node):
        return x
    if is_filled(c, False) and keeps_shape(y, node):
        return y
    return None


def mul_neg(node: Node) -> Node | None:
    """(-a) * b -> -(a * b),  a * (-b) -> -(a * b)   (rounding is symmetric in sign)"""
    x, y = node.inputs
    if x.op is ew.neg and y.op is not ew.neg:
        return ew.neg(ew.mul(x.inputs[0], y))
    if y.op is ew.neg and x.op is not ew.neg:
        return ew.neg(ew.mul(x, y.inputs[0]))
    return None


def neg_add(node: Node) -> Node | None:
    """(-x) + y -> y - x"""
    x, y = node.inputs
    if x.op is ew.neg and y.op is not ew.neg:
        return ew.sub(y, x.inputs[0])
    return None


def where_same(node: Node) -> Node | None:
    """where(c, x, x) -> x"""
    _, x, y = node.inputs
    return x if x is y and keeps_shape(x, node) else None


def transpose_transpose(node: Node) -> Node | None:
    """transpose(transpose(x, p), q) -> transpose(x, p∘q)"""
    (x,) = node.inputs
    if x.op is not sh.transpose:
        return None
    inner = x.attr("axes")
    outer = node.attr("axes")
    assert isinstance(inner, tuple) and isinstance(outer, tuple)
    return sh.transpose(x.inputs[0], axes=tuple(inner[a] for a in outer))


def reshape_reshape(node: Node) -> Node | None:
    """reshape(reshape(x, a), b) -> reshape(x, b)"""
    (x,) = node.inputs
    if x.op is not sh.reshape:
        return None
    return sh.reshape(x.inputs[0], shape=node.shape)


def broadcast_broadcast(node: Node) -> Node | None:
    """broadcast_to(broadcast_to(x, a), b) -> broadcast_to(x, b)"""
    (x,) = node.inputs
    if x.op is not sh.broadcast_to:
        return None
    return sh.broadcast_to(x.inputs[0], shape=node.shape)


def astype_roundtrip(node: Node) -> Node | None:
    """astype(astype(x: f32, f64), f32) -> x   (widening then narrowing back is exact)"""
    (x,) = node.inputs
    if x.op is not ew.astype or x.inputs[0].dtype != node.dtype:
        return None
    inner = x.inputs[0]
    if inner.dtype.kind == "f" and x.dtype.kind == "f" and x.dtype.itemsize > inner.dtype.itemsize:
        return inner
    return None


def _broadcast_only_axes(b: Node, axes: tuple[int, ...]) -> bool:
    """True when `axes` are exactly the axes along which broadcast_to `b` repeats its input."""
    x = b.inputs[0]
    padded = (1,) * (b.ndim - x.ndim) + x.shape
    repeated = {a for a in range(b.ndim) if padded[a] == 1 and b.shape[a] != 1}
    return all(padded[a] == 1 for a in axes) and repeated <= set(axes)


def sum_broadcast(node: Node) -> Node | None:
    """sum(broadcast_to(x), the repeated axes) -> x * n   (a reassociation: n equal terms -> one product)"""
    (b,) = node.inputs
    axes = node.attr("axis")
    assert isinstance(axes, tuple)
    if b.op is not sh.broadcast_to or b.dtype.kind != "f" or not _broadcast_only_axes(b, axes):
        return None
    count = product(b.shape[a] for a in axes)
    if not isinstance(count, int) or count == 0:
        return None  # an empty sum is 0, but x * 0 is NaN for infinite x (and a named count may be 0)
    x = b.inputs[0]
    if x.shape != node.shape:
        x = sh.reshape(x, shape=node.shape)
    return ew.mul(x, const(np.asarray(count, x.dtype)))


RULES = rule_table(
    ("mul", mul_one),
    ("mul", mul_minus_one),
    ("mul", mul_neg_neg),
    ("mul", mul_neg),
    ("add", add_minus_zero),
    ("add", add_neg),
    ("add", neg_add),
    ("where", where_constant),
    ("sub", sub_zero),
    ("sub", sub_neg),
    ("div", div_one),
    ("neg", neg_neg),
    ("pow", pow_two),
    ("pow", pow_one),
    ("pow", pow_half),
    ("where", where_same),
    ("transpose", transpose_transpose),
    ("reshape", reshape_reshape),
    ("broadcast_to", broadcast_broadcast),
    ("astype", astype_roundtrip),
    ("sum", sum_broadcast),
)


_SETTLED = Settled()  # the fixpoints of RULES met so far (graphc.rewrite: a walk passes over them)


def simplify(graph: Graph) -> Graph:
    """Apply the IEEE-exact identities of this module to a fixpoint."""
    return rewrite(graph, RULES, _SETTLED)


__all__ = ["RULES", "simplify"]
