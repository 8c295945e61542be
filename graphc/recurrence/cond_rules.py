"""The `cond` primitive: its Op record and derivative rules, conds over the branches' derivatives.

Imports errors, shapes, ir, ops and the autodiff engines. The derivative of a cond is the
derivative of the branch it took, so both rules are conds again, on the same predicate:

    reverse:  args_bar = cond(pred, (df/dargs)^T ct, (dg/dargs)^T ct)      f, g the branches
    forward:  results_dot = cond(pred, (df/dargs) t, (dg/dargs) t)

Each derivative branch is the engine's VJP (JVP) of that branch's body, so it recomputes
the forward values it needs inside the branch: nothing of the branch not taken ever runs,
and nothing is stored between the forward and the backward cond. The predicate has no
derivative (it is a bool). A branch whose derivative is zero returns zeros, so both
derivative branches have the same types.
"""

from __future__ import annotations

from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.vjp import vjp_graph
from graphc.ir import Graph, Node
from graphc.ops import sparsity
from graphc.ops.base import Kind, Op
from graphc.ops.control_flow import cond_infer
from graphc.ops.loops import body_param, cond_eval, int_attr, sibling
from graphc.recurrence.scan_rules import active, batched, or_zeros
from graphc.shapes import is_float


def branches(node: Node) -> tuple[Graph, Graph]:
    """(true_body, false_body) of a cond node."""
    true_body, false_body = node.attr("true_body"), node.attr("false_body")
    assert isinstance(true_body, Graph) and isinstance(false_body, Graph)
    return true_body, false_body


def make_cond(pred: Node, args: list[Node], true_body: Graph, false_body: Graph) -> Node:
    """The cond node of result 0 (siblings: `sibling(node, i)`)."""
    return cond(pred, *args, true_body=true_body, false_body=false_body, output=0)


def _extra_param(body: Graph, node: Node) -> Node:
    """A new body input standing for `node` (a cotangent or tangent), named after the last input."""
    return body_param(f"a{len(body.inputs)}", node.type)


def pullback(node: Node, ct: Node) -> list[Node | None]:
    """The cotangent of each input of `node`'s cond (pred first: None) for the cotangent `ct` of `node`."""
    args = list(node.inputs[1:])
    o = int_attr(node, "output")
    nb = ct.ndim - node.ndim
    batch = ct.shape[:nb]
    wanted = [i for i, a in enumerate(args) if active(a)]
    grads = {}
    for body in branches(node):
        param = _extra_param(body, ct)
        pulled = vjp_graph([body.outputs[o]], [body.inputs[i] for i in wanted], [param], nb=nb)
        grads[body] = (param, pulled)
    present = [q for q, i in enumerate(wanted) if any(pulled[q] is not None for _, pulled in grads.values())]
    if not present:
        return [None] * len(node.inputs)
    bodies = []
    for body, (param, pulled) in grads.items():
        outputs = [or_zeros(pulled[q], batched(batch, args[wanted[q]].type)) for q in present]
        bodies.append(Graph(outputs, [*body.inputs, param]))
    back = make_cond(node.inputs[0], [*args, ct], bodies[0], bodies[-1])
    results: list[Node | None] = [None] * len(node.inputs)
    for k, q in enumerate(present):
        results[1 + wanted[q]] = sibling(back, k)
    return results


def _cond_vjp(ct: Node, out: Node, *inputs: Node, index: int, **attrs: object) -> Node | None:
    if index == 0:
        return None  # the predicate: a bool
    return pullback(out, ct)[index]


def pushforward(node: Node, index: int, t: Node) -> Node | None:
    """The tangent of `node` for the tangent `t` of input `index` (>= 1), or None where it is zero."""
    o = int_attr(node, "output")
    nb = t.ndim - node.inputs[index].ndim
    batch = t.shape[:nb]
    pushed = {}
    for body in branches(node):
        param = _extra_param(body, t)
        pushed[body] = (param, jvp_graph(list(body.outputs), [body.inputs[index - 1]], [param], nb=nb))
    outs = branches(node)[0].outputs
    floats = [m for m, out in enumerate(outs) if is_float(out.dtype)]
    if o not in floats or all(tangents[o] is None for _, tangents in pushed.values()):
        return None
    bodies = []
    for body, (param, tangents) in pushed.items():
        outputs = [or_zeros(tangents[m], batched(batch, outs[m].type)) for m in floats]
        bodies.append(Graph(outputs, [*body.inputs, param]))
    forward = make_cond(node.inputs[0], [*node.inputs[1:], t], bodies[0], bodies[-1])
    return sibling(forward, floats.index(o))


def _cond_jvp(t: Node, out: Node, *inputs: Node, index: int, **attrs: object) -> Node | None:
    if index == 0:
        return None
    return pushforward(out, index, t)


cond = Op(
    "cond", cond_infer, cond_eval, vjp=(_cond_vjp,), jvp=(_cond_jvp,), kind=Kind.OPAQUE, variadic=True,
    sparsity=sparsity.branches,
)  # fmt: skip
"""cond(pred, args..; true_body, false_body, output): see ops/control_flow.py."""

__all__ = ["branches", "cond", "make_cond", "pullback", "pushforward"]
