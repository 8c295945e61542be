"""stability: rewrites that make results more accurate where the naive formula overflows or cancels.

Guarantee: wherever the original result is finite and accurate, the rewritten one
agrees to a few ulp; where the original overflows, underflows to 0/0 or cancels
(log(sum(exp(x))) at x = 1000, log(1 + 1e-20)), the rewritten one is finite and
accurate. Runs after autodiff, on the gradient graph as well.

Two kinds of rules. The forward ones (log(1 - sigmoid(x)) -> -softplus(x), ...) are
defined in graphc/autodiff/canonical.py, because autodiff applies them *before*
differentiating, so that a gradient is the derivative of the stable form (that is
what makes a cross-entropy gradient finite at z = 800: the engine never builds
1 / (1 - sigmoid(z))). The gradient-side ones, here, match the shapes derivative
rules build for formulas that reached autodiff unrewritten (a user's hand-written
gradient, a loop body's derivative, a rule's own output such as sigmoid's
out * (1 - out)).
"""

from __future__ import annotations

from graphc.autodiff.canonical import RULES as FORWARD_RULES
from graphc.autodiff.canonical import plus_one
from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.rewrite import Settled, rewrite, rule_table
from graphc.shapes import reduced_shape


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


def cancel_one_plus_exp(node: Node) -> Node | None:
    """(c / (1 + exp(x))) * exp(x) -> c * sigmoid(x)   (the gradient of log(1 + exp(x)), finite at x = 800)"""
    for q, e in (node.inputs, node.inputs[::-1]):
        if e.op is not ew.exp or q.op is not ew.div or plus_one(q.inputs[1]) is not e:
            continue
        result = ew.mul(q.inputs[0], ew.sigmoid(e.inputs[0]))
        return result if result.type == node.type else None
    return None


GRADIENT_RULES = rule_table(
    ("mul", softmax_cotangent),
    ("mul", cancel_exp),
    ("mul", cancel_sigmoid),
    ("mul", cancel_one_plus_exp),
)

RULES = {
    op: [*FORWARD_RULES.get(op, ()), *GRADIENT_RULES.get(op, ())] for op in sorted({*FORWARD_RULES, *GRADIENT_RULES})
}


_SETTLED = Settled()  # the fixpoints of RULES met so far (graphc.rewrite: a walk passes over them)


def stability(graph: Graph) -> Graph:
    """Apply the accuracy rewrites of this module to a fixpoint."""
    return rewrite(graph, RULES, _SETTLED)
