"""The `fixed_point` primitive: its Op record and derivative rules by implicit differentiation.

Imports errors, shapes, ir, ops and the autodiff engines. At the fixed point z* = g(z*, p):

Reverse mode (Almeida-Pineda recurrent backpropagation). For the cotangent v of z*,

    w  = (dg/dz)^T w + v          solved by iterating, as a fixed_point node of its own
    p̄  = (dg/dp)^T w              one pullback of g at (z*, p)

The adjoint iteration's body is the engine's VJP of g with respect to z; everything in it
that does not depend on w (g's own values at z*) is hoisted out of the loop, so each
iteration costs one Jacobian-transpose product. Nothing is stored per iteration: memory
does not depend on how many iterations either loop takes.

Forward mode. For the tangent t of a parameter, dz = (dg/dz) dz + (dg/dp) t, again a
fixed_point (its constant term hoisted out). Both use the forward's tol and max_iter and
converge when the forward iteration converges linearly (spectral radius of dg/dz < 1).

z0 gets no derivative: the fixed point does not depend on where the iteration started,
so its cotangent and tangent contributions are zero.
"""

from __future__ import annotations

from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.vjp import vjp_graph
from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.ops.base import Kind, Op
from graphc.ops.loops import (
    close_over,
    fixed_point_eval,
    fixed_point_infer,
    int_attr,
    sibling,
    substitute,
    temp_param,
)
from graphc.recurrence.scan_rules import active, batched, zeros


def _parts(node: Node) -> tuple[Graph, int, tuple[Node, ...], tuple[Node, ...], tuple[Node, ...]]:
    """(body, n_z, the body's z params, its other params, the node's values for those)."""
    body = node.attr("body")
    assert isinstance(body, Graph)
    nz = int_attr(node, "n_z")
    return body, nz, body.inputs[:nz], body.inputs[nz:], node.inputs[nz:]


def make_fixed_point(init: list[Node], closures: list[Node], body: Graph, like: Node, role: str) -> Node:
    """The fixed_point node of result 0 with `like`'s tol and max_iter; `role` names it in errors."""
    return fixed_point(
        *init,
        *closures,
        body=body,
        n_z=len(init),
        tol=like.attr("tol"),
        max_iter=like.attr("max_iter"),
        output=0,
        role=role,
    )


def adjoint(node: Node, ct: Node) -> list[Node | None]:
    """The cotangent of each parameter of `node`'s fixed point for the cotangent `ct` of `node`."""
    body, nz, zp, pp, params = _parts(node)
    o = int_attr(node, "output")
    batch = ct.shape[: ct.ndim - node.ndim]
    zstar = [sibling(node, m) for m in range(nz)]
    w = [temp_param(f"w{m}", batched(batch, z.type)) for m, z in enumerate(zp)]
    v = temp_param("v", ct.type)
    pulled = vjp_graph(list(body.outputs), list(zp), w, nb=len(batch))
    new_w = [g if g is not None else zeros(wm.type) for g, wm in zip(pulled, w, strict=True)]
    new_w[o] = ew.add(new_w[o], v)
    at_fixed_point = dict(zip(zp, zstar, strict=True)) | dict(zip(pp, params, strict=True))
    adjoint_body, _, closures = close_over(new_w, w, [f"z{m}" for m in range(nz)], fixed=at_fixed_point | {v: ct})
    init = [ct if m == o else zeros(wm.type) for m, wm in enumerate(w)]
    solved = make_fixed_point(init, closures, adjoint_body, node, "adjoint")
    wanted = [i for i, p in enumerate(params) if active(p)]
    grads = vjp_graph(list(body.outputs), [pp[i] for i in wanted], w, nb=len(batch))
    present = [(i, g) for i, g in zip(wanted, grads, strict=True) if g is not None]
    at_solution = at_fixed_point | {wm: sibling(solved, m) for m, wm in enumerate(w)}
    values = substitute([g for _, g in present], at_solution)
    results: list[Node | None] = [None] * len(params)
    for (i, _), value in zip(present, values, strict=True):
        results[i] = value
    return [None] * nz + results


def _fixed_point_vjp(ct: Node, out: Node, *inputs: Node, index: int, **attrs: object) -> Node | None:
    if index < int_attr(out, "n_z"):
        return None  # z0: the fixed point does not depend on it
    return adjoint(out, ct)[index]


def tangent(node: Node, index: int, t: Node) -> Node:
    """The fixed_point node (result 0) solving dz = (dg/dz) dz + (dg/dp) t for the tangent t of input `index`."""
    body, nz, zp, pp, params = _parts(node)
    batch = t.shape[: t.ndim - node.inputs[index].ndim]
    zstar = [sibling(node, m) for m in range(nz)]
    dz = [temp_param(f"dz{m}", batched(batch, z.type)) for m, z in enumerate(zp)]
    dp = temp_param("dp", t.type)
    pushed = jvp_graph(list(body.outputs), [*zp, pp[index - nz]], [*dz, dp], nb=len(batch))
    new_dz = [g if g is not None else zeros(d.type) for g, d in zip(pushed, dz, strict=True)]
    fixed = dict(zip(zp, zstar, strict=True)) | dict(zip(pp, params, strict=True)) | {dp: t}
    tangent_body, _, closures = close_over(new_dz, dz, [f"z{m}" for m in range(nz)], fixed=fixed)
    return make_fixed_point([zeros(d.type) for d in dz], closures, tangent_body, node, "tangent")


def _fixed_point_jvp(t: Node, out: Node, *inputs: Node, index: int, **attrs: object) -> Node | None:
    nz = int_attr(out, "n_z")
    if index < nz:
        return None
    return sibling(tangent(out, index, t), int_attr(out, "output"))


fixed_point = Op(
    "fixed_point",
    fixed_point_infer,
    fixed_point_eval,
    vjp=(_fixed_point_vjp,),
    jvp=(_fixed_point_jvp,),
    kind=Kind.OPAQUE,
    variadic=True,
)
"""fixed_point(z0.., closures..; body, n_z, tol, max_iter, output): see ops/loops.py."""

__all__ = ["adjoint", "fixed_point", "make_fixed_point", "tangent"]
