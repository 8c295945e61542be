"""Pre-differentiation canonicalization: stable forms of the forward formulas, before their derivative is taken.

Imports ir, ops, rewrite. The derivative of a formula that overflows or cancels
usually does so too, and worse: the gradient of log(1 - sigmoid(z)) divides by
1 - sigmoid(z), which is 0 from z = 37 on, so a binary cross-entropy gradient is NaN
at z = 40 even though its value is finite. Rewriting the gradient graph afterwards
means matching whatever shapes the derivative rules happen to build (and rebuild);
rewriting the *forward* formula first (log(1 - sigmoid(z)) -> -softplus(z)) makes the
derivative the stable rule's (sigmoid(z)), whatever the rules look like. So
grad/vjp/jvp/jacobian/hessian, and the tracing of scan/fixed_point steps, apply these
rules to the forward graph first. The optimizer's stability pass (passes/stability.py)
applies the same rules, plus rules for the gradient shapes, to everything it compiles.

Each rule agrees with its formula to a few ulp where that formula is accurate, and
is finite and accurate where it is not. Vars are never rewritten, so wrt stays wrt.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.ir import Node, collector_paused
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.rewrite import is_filled, rewrite_nodes, rule_table


def plus_one(node: Node) -> Node | None:
    """x when node is 1 + x or x + 1 (with x of node's type), else None."""
    if node.op is not ew.add:
        return None
    x, y = node.inputs
    if is_filled(x, 1) and y.type == node.type:
        return y
    if is_filled(y, 1) and x.type == node.type:
        return x
    return None


def _negated(node: Node) -> Node | None:
    """x when node is -x, else None."""
    return node.inputs[0] if node.op is ew.neg else None


def log_one_plus(node: Node) -> Node | None:
    """log(1 + x) -> log1p(x)"""
    x = plus_one(node.inputs[0])
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
    """log(sigmoid(x)) -> -softplus(-x), log(sigmoid(-x)) -> -softplus(x)"""
    s = node.inputs[0]
    if s.op is not ew.sigmoid:
        return None
    x = s.inputs[0]
    inner = _negated(x)
    return ew.neg(ew.softplus(inner if inner is not None else ew.neg(x)))


def log1p_exp(node: Node) -> Node | None:
    """log1p(exp(x)) -> softplus(x)"""
    e = node.inputs[0]
    return ew.softplus(e.inputs[0]) if e.op is ew.exp else None


def one_minus_sigmoid(node: Node) -> Node | None:
    """1 - sigmoid(x) -> sigmoid(-x)   (0 from x = 37 on, where sigmoid(-x) is not)"""
    one, s = node.inputs
    if s.op is not ew.sigmoid or not is_filled(one, 1) or s.type != node.type:
        return None
    x = s.inputs[0]
    inner = _negated(x)
    return ew.sigmoid(inner if inner is not None else ew.neg(x))


def _has_stable_log(node: Node) -> bool:
    """True for sigmoid(x), exp(x), sum(exp(x)), and products and quotients of those: their log is a sum
    of stable terms (log(exp(z) / sum(exp(z))) is a softmax written by hand: z - logsumexp(z))."""
    if node.op in (ew.sigmoid, ew.exp):
        return True
    if node.op is rd.sum_:
        return node.inputs[0].op is ew.exp
    if node.op in (ew.mul, ew.div):
        return all(_has_stable_log(i) for i in node.inputs)
    return False


def log_product(node: Node) -> Node | None:
    """log(a * b) -> log(a) + log(b), log(a / b) -> log(a) - log(b)   (a, b sigmoids, exps, sums of exps)"""
    p = node.inputs[0]
    if p.op not in (ew.mul, ew.div) or not _has_stable_log(p):
        return None
    a, b = p.inputs
    combine = ew.add if p.op is ew.mul else ew.sub
    result = combine(ew.log(a), ew.log(b))
    return result if result.type == node.type else None


def sigmoid_by_hand(node: Node) -> Node | None:
    """1 / (1 + exp(-x)) -> sigmoid(x), exp(x) / (1 + exp(x)) -> sigmoid(x)"""
    top, bottom = node.inputs
    e = plus_one(bottom)
    if e is None or e.op is not ew.exp:
        return None
    if is_filled(top, 1):
        x = _negated(e.inputs[0])
        result = ew.sigmoid(x) if x is not None else None
    else:
        result = ew.sigmoid(e.inputs[0]) if top is e else None
    return result if result is not None and result.type == node.type else None


RULES = rule_table(
    ("log", log_one_plus),
    ("log", log_sum_exp),
    ("log", log_exp),
    ("log", log_sigmoid),
    ("log", log_product),
    ("log1p", log1p_exp),
    ("sub", exp_minus_one),
    ("sub", one_minus_sigmoid),
    ("div", sigmoid_by_hand),
)


@collector_paused()  # a walk over the whole forward graph, as vjp_graph's is
def canonicalize(outputs: Sequence[Node]) -> list[Node]:
    """The outputs with the stable forms of this module's rules, to a fixpoint (the same nodes when none applies)."""
    return rewrite_nodes(outputs, RULES)
