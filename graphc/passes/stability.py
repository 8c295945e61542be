"""stability: rewrites that make results more accurate where the naive formula overflows or cancels.

Guarantee: wherever the original result is finite and accurate, the rewritten one
agrees to a few ulp; where the original overflows, underflows to 0/0 or cancels
(log(sum(exp(x))) at x = 1000, log(1 + 1e-20)), the rewritten one is finite and
accurate. Runs after autodiff, so gradient graphs benefit: the derivative of a
log-sum-exp stays finite wherever its value is.
"""

from __future__ import annotations

from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.passes.patterns import is_filled
from graphc.rewrite import rewrite, rule_table
from graphc.shapes import reduced_shape


def _plus_one(node: Node) -> Node | None:
    """x when node is 1 + x or x + 1 (with x of node's type), else None."""
    if node.op is not ew.add:
        return None
    x, y = node.inputs
    if is_filled(x, 1) and y.type == node.type:
        return y
    if is_filled(y, 1) and x.type == node.type:
        return x
    return None


def log_one_plus(node: Node) -> Node | None:
    """log(1 + x) -> log1p(x)"""
    x = _plus_one(node.inputs[0])
    return ew.log1p(x) if x is not None else None


def exp_minus_one(node: Node) -> Node | None:
    """exp(x) - 1 -> expm1(x)"""
    e, one = node.inputs
    if e.op is ew.exp and is_filled(one, 1) and e.type == node.type:
        return ew.expm1(e.inputs[0])
    return None


def log_sum_exp(node: Node) -> Node | None:
    """log(sum(exp(x))) -> logsumexp(x)   (max-shifted)"""
    s = node.inputs[0]
    if s.op is not rd.sum_ or s.inputs[0].op is not ew.exp:
        return None
    return rd.logsumexp(s.inputs[0].inputs[0], **s.params)


def log_exp(node: Node) -> Node | None:
    """log(exp(x)) -> x"""
    e = node.inputs[0]
    return e.inputs[0] if e.op is ew.exp else None


def log_sigmoid(node: Node) -> Node | None:
    """log(sigmoid(x)) -> -softplus(-x)"""
    s = node.inputs[0]
    return ew.neg(ew.softplus(ew.neg(s.inputs[0]))) if s.op is ew.sigmoid else None


def log_one_minus_sigmoid(node: Node) -> Node | None:
    """log(1 - sigmoid(x)) -> -softplus(x)"""
    d = node.inputs[0]
    if d.op is not ew.sub or not is_filled(d.inputs[0], 1) or d.inputs[1].op is not ew.sigmoid:
        return None
    x = d.inputs[1].inputs[0]
    return ew.neg(ew.softplus(x)) if x.type == node.type else None


def log1p_exp(node: Node) -> Node | None:
    """log1p(exp(x)) -> softplus(x)"""
    e = node.inputs[0]
    return ew.softplus(e.inputs[0]) if e.op is ew.exp else None


def _shape_chain(node: Node) -> tuple[list[Node], Node]:
    """The reshape/broadcast_to ops above a node (outermost first) and the node below them."""
    chain = []
    while node.op in (sh.reshape, sh.broadcast_to):
        chain.append(node)
        node = node.inputs[0]
    return chain, node


def _replay(chain: list[Node], base: Node, like: Node) -> Node:
    """`base` broadcast to like's shape, then the chain's shape ops applied in order."""
    if base.shape != like.shape:
        base = sh.broadcast_to(base, shape=like.shape)
    for op_node in reversed(chain):
        base = op_node.op(base, **op_node.params)  # type: ignore[operator]
    return base


def _sums_line_up(chain: list[Node], d: Node, s: Node) -> bool:
    """True when `chain` (outermost first) over d = c / s puts each sum of s over the elements it summed.

    That is: s is one value, or the chain is an optional reshape of d to the keepdims
    shape (the only one when s has no kept axes) then an optional broadcast; anything
    else may pair a sum with another row of x (sum over axis 1 broadcast along axis 0).
    """
    if s.type.size == 1:
        return True
    x = s.inputs[0]
    kept = reduced_shape(x.shape, s.attr("axis"), True)  # type: ignore[arg-type]
    ops = [n.op for n in chain]
    if ops and ops[-1] is sh.reshape and chain[-1].shape == d.shape[: d.ndim - s.ndim] + kept:
        ops.pop()
    elif not s.attr("keepdims"):
        return False
    return ops in ([], [sh.broadcast_to])


def softmax_cotangent(node: Node) -> Node | None:
    """B(c / sum(exp(x))) * exp(x) -> B(c) * exp(x - logsumexp(x))   (the gradient of log-sum-exp)"""
    for p, e in (node.inputs, node.inputs[::-1]):
        if e.op is not ew.exp:
            continue
        chain, d = _shape_chain(p)
        if d.op is not ew.div or d.inputs[1].op is not rd.sum_ or d.inputs[1].inputs[0] is not e:
            continue
        if not _sums_line_up(chain, d, d.inputs[1]):
            continue
        s = d.inputs[1]
        x = e.inputs[0]
        lse = rd.logsumexp(x, axis=s.attr("axis"), keepdims=True)
        weights = ew.exp(ew.sub(x, lse))
        result = ew.mul(_replay(chain, d.inputs[0], d), weights)
        return result if result.type == node.type else None
    return None


def cancel_exp(node: Node) -> Node | None:
    """(c / exp(y)) * exp(y) -> c   (the gradient of log(exp(y)), finite where exp(y) is 0 or inf)"""
    for q, e in (node.inputs, node.inputs[::-1]):
        if e.op is ew.exp and q.op is ew.div and q.inputs[1] is e and q.inputs[0].type == node.type:
            return q.inputs[0]
    return None


def cancel_sigmoid(node: Node) -> Node | None:
    """(c / sigmoid(x)) * (sigmoid(x) * q) -> c * q   (the gradient of log(sigmoid(x)))"""
    for a, b in (node.inputs, node.inputs[::-1]):
        if a.op is not ew.div or b.op is not ew.mul:
            continue
        c, s = a.inputs
        if s.op is ew.sigmoid and s in b.inputs:
            q = b.inputs[1] if b.inputs[0] is s else b.inputs[0]
            result = ew.mul(c, q)
            return result if result.type == node.type else None
    return None


RULES = rule_table(
    ("log", log_one_plus), ("log", log_sum_exp), ("log", log_exp), ("log", log_sigmoid),
    ("log", log_one_minus_sigmoid), ("log1p", log1p_exp), ("sub", exp_minus_one),
    ("mul", softmax_cotangent), ("mul", cancel_exp), ("mul", cancel_sigmoid),
)  # fmt: skip


def stability(graph: Graph) -> Graph:
    """Apply the accuracy rewrites of this module to a fixpoint."""
    return rewrite(graph, RULES)
