"""The `while_loop` primitive: its Op record and derivative rules.

Imports errors, shapes, ir, ops, the autodiff engines and the scan and cond rules.

Forward mode needs nothing stored: the tangent loop is a while_loop carrying (c, dc),
its body the step and the engine's JVP of the step, its condition the original one on c.
It works for unbounded loops too.

Reverse mode needs the carries of every iteration, in reverse order, and the number of
iterations is only known at run time. With `max_iter = N` the loop equals N *guarded
steps*

    c <- cond(cond_fn(c), body_fn, identity)(c)

(once cond_fn is False the carry stops changing, so it stays False), and that is a scan of
fixed length N whose gradient graphc already has: BPTT over the guarded steps, where the
steps after the loop stopped take the identity branch and pass the cotangent through.
The scan stores every k-th carry and recomputes each segment of k steps from it
(`checkpoint = k`, default ceil(sqrt(N))): memory N/k + k carries instead of N, for one
extra forward evaluation of each step — k = sqrt(N) minimizes N/k + k. Cost: the gradient
re-runs the loop (as the scan) and walks all N guarded steps both ways, so a tight
max_iter matters; steps past the end only evaluate cond_fn and copy the carry.

Without max_iter, reverse mode raises DifferentiationError: an unbounded loop's
iterations can neither be stored in memory fixed at build time nor recomputed.
"""

from __future__ import annotations

import math

from graphc.autodiff.jvp import jvp_graph
from graphc.errors import DifferentiationError
from graphc.ir import Graph, Node
from graphc.ops.base import Kind, Op
from graphc.ops.control_flow import while_infer
from graphc.ops.loops import close_over, int_attr, sibling, temp_param, while_eval
from graphc.recurrence.cond_rules import make_cond
from graphc.recurrence.scan_rules import batched, make_scan, or_zeros, pullback, zeros
from graphc.shapes import is_float


def default_checkpoint(max_iter: int | None) -> int:
    """ceil(sqrt(max_iter)): stored carries N/k plus recomputed ones k are fewest at k = sqrt(N)."""
    if not max_iter:
        return 1
    return max(1, math.isqrt(max_iter - 1) + 1)


def bodies(node: Node) -> tuple[Graph, Graph]:
    """(cond_body, body) of a while_loop node."""
    cond_body, body = node.attr("cond_body"), node.attr("body")
    assert isinstance(cond_body, Graph) and isinstance(body, Graph)
    return cond_body, body


def make_while(
    init: list[Node], closures: list[Node], cond_body: Graph, body: Graph, like: Node
) -> Node:  # fmt: skip
    """The while_loop node of result 0 with `like`'s max_iter and checkpoint."""
    return while_loop(*init, *closures, cond_body=cond_body, body=body, n_carry=len(init),
                      max_iter=like.attr("max_iter"), checkpoint=like.attr("checkpoint"), output=0)  # fmt: skip


def split_body(graph: Graph) -> tuple[Graph, Graph]:
    """A graph of outputs (pred, carry..) as (cond_body, body), both on the graph's inputs."""
    return Graph(graph.outputs[:1], graph.inputs), Graph(graph.outputs[1:], graph.inputs)


# --- forward mode -------------------------------------------------------------------------------


def pushforward(node: Node, index: int, t: Node) -> Node:
    """The while_loop (result 0) carrying (c, dc) for the tangent `t` of input `index`."""
    cond_body, body = bodies(node)
    nc = int_attr(node, "n_carry")
    cp, kp = body.inputs[:nc], body.inputs[nc:]
    nb = t.ndim - node.inputs[index].ndim
    batch = t.shape[:nb]
    fc = [m for m in range(nc) if is_float(cp[m].dtype)]
    dc = [temp_param(f"dc{m}", batched(batch, cp[m].type)) for m in fc]
    wrt, tangents = [cp[m] for m in fc], list(dc)
    fixed: dict[Node, Node] = dict(zip(kp, node.inputs[nc:], strict=True))
    if index >= nc:
        dk = temp_param("dk", t.type)
        wrt.append(kp[index - nc])
        tangents.append(dk)
        fixed[dk] = t
    pushed = jvp_graph(list(body.outputs), wrt, tangents, nb=nb)
    d_carries = [or_zeros(pushed[m], d.type) for m, d in zip(fc, dc, strict=True)]
    names = [f"carry{i}" for i in range(nc + len(fc))]
    graph, _, closures = close_over(
        [cond_body.outputs[0], *body.outputs, *d_carries], [*cp, *dc], names, fixed=fixed
    )  # fmt: skip
    init = list(node.inputs[:nc]) + [t if m == index else zeros(d.type) for m, d in zip(fc, dc, strict=True)]
    return make_while(init, closures, *split_body(graph), node)


def _while_jvp(t: Node, out: Node, *inputs: Node, index: int, **attrs: object) -> Node | None:
    nc = int_attr(out, "n_carry")
    o = int_attr(out, "output")
    fc = [m for m in range(nc) if is_float(out.inputs[m].dtype)]
    if o not in fc:
        return None
    return sibling(pushforward(out, index, t), nc + fc.index(o))


# --- reverse mode -------------------------------------------------------------------------------


def guarded_scan(node: Node) -> Node:
    """The scan (result 0) of max_iter guarded steps c <- cond(cond_fn(c), body_fn, identity)(c)."""
    cond_body, body = bodies(node)
    nc = int_attr(node, "n_carry")
    max_iter = node.attr("max_iter")
    assert isinstance(max_iter, int)
    params = list(body.inputs)
    identity = Graph(params[:nc], params)
    step = make_cond(cond_body.outputs[0], params, body, identity)
    guarded = Graph([sibling(step, m) for m in range(nc)], params)
    init, closures = list(node.inputs[:nc]), list(node.inputs[nc:])
    return make_scan(init, [], closures, guarded, length=max_iter, checkpoint=int_attr(node, "checkpoint"))


UNBOUNDED = (
    "reverse-mode differentiation of a while_loop needs max_iter: the iterations of an unbounded loop can "
    "neither be stored nor recomputed, since their number is only known at run time. Pass "
    "max_iter=N (the gradient then recomputes the loop from checkpoints), or use forward mode "
    "(gc.jvp, gc.jacobian(..., mode='fwd'))"
)


def _while_vjp(ct: Node, out: Node, *inputs: Node, index: int, **attrs: object) -> Node | None:
    if out.attr("max_iter") is None:
        raise DifferentiationError(UNBOUNDED)
    scan = guarded_scan(out)
    return pullback(sibling(scan, int_attr(out, "output")), ct)[index]


while_loop = Op("while_loop", while_infer, while_eval, vjp=(_while_vjp,), jvp=(_while_jvp,), kind=Kind.OPAQUE,
                variadic=True)  # fmt: skip
"""while_loop(init.., closures..; cond_body, body, n_carry, max_iter, checkpoint, output): see ops/control_flow.py."""

__all__ = ["UNBOUNDED", "bodies", "default_checkpoint", "guarded_scan", "make_while", "split_body", "while_loop"]
