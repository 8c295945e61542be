"""The `scan` primitive: its Op record and derivative rules (BPTT as a reverse scan, JVP as a forward scan).

Imports errors, shapes, ir, ops and the autodiff engines. Both rules are loops again —
scan nodes whose bodies are the autodiff engine's graphs of the step's body — so they
have rules of their own: grad-of-grad through a scan works the same way.

Reverse mode (BPTT). For the step (c', y) = f(c, x_t, k) and cotangents a_T of the final
carries, gy_t of the per-step outputs and gs_t of the saved carries, the pullback is the
scan running the other way over t:

    a_t   = (df/dc)^T (a_{t+1}, gy_t) + gs_t           carried (the carry's cotangent)
    acc  += (df/dk)^T (a_{t+1}, gy_t)                  carried (each closure's cotangent)
    gx_t  = (df/dx)^T (a_{t+1}, gy_t)                  stacked (each xs' cotangent)

Its body reads c_t from the forward loop's saved carries (a sibling result of the forward
node) and the step's intermediate values it needs — its *residuals*, tanh's output, say —
from extra per-step outputs of the forward loop (the same loop with a longer body; the
optimizer's loops pass makes the two one), so the reverse pass recomputes nothing: memory
T carries plus T residuals. With checkpoint=k the forward saves every k-th carry and the
pullback is a reverse scan over segments of k steps whose body re-runs the segment
forward (an inner scan storing its k carries and residuals) and then its reverse scan:
memory T/k + k steps' worth, each step computed twice, gradients bit-identical (the same
ops in the same order, accumulators threaded through the segments).

Forward mode. The tangent of input j is pushed through a scan that carries (c, dc): its
body is the step and the engine's JVP of the step. One such scan per input with a tangent.

Each rule call builds the whole pullback (or pushforward) and returns one sibling of it;
the nodes intern, so the calls for the other inputs get the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.vjp import vjp_graph
from graphc.ir import Graph, Node, toposort
from graphc.ops import elementwise as ew
from graphc.ops import shape as sh
from graphc.ops.base import Kind, Op
from graphc.ops.loops import (
    body_of,
    close_over,
    int_attr,
    length_attr,
    saved_count,
    scan_eval,
    scan_infer,
    sibling,
    substitute,
    temp_param,
)
from graphc.ops.source import const
from graphc.shapes import DimLike, Shape, TensorType, is_float


def zeros(type_: TensorType) -> Node:
    """A zero of this type: one scalar constant, broadcast."""
    zero = const(np.zeros((), type_.dtype))
    return zero if type_.shape == () else sh.broadcast_to(zero, shape=type_.shape)


def or_zeros(node: Node | None, type_: TensorType) -> Node:
    """`node`, or a zero of the type where a rule said "contributes zero" (None)."""
    return zeros(type_) if node is None else node


def batched(batch: Shape, type_: TensorType) -> TensorType:
    return TensorType(batch + type_.shape, type_.dtype)


def loop_major(node: Node, nb: int) -> Node:
    """batch + (T,) + s  ->  (T,) + batch + s: the loop axis first, as a scan stacks."""
    if nb == 0:
        return node
    return sh.transpose(node, axes=(nb, *range(nb), *range(nb + 1, node.ndim)))


def batch_major(node: Node, nb: int) -> Node:
    """(T,) + batch + s  ->  batch + (T,) + s: the layout the autodiff engine expects."""
    if nb == 0:
        return node
    return sh.transpose(node, axes=(*range(1, nb + 1), 0, *range(nb + 1, node.ndim)))


def rows(node: Node, start: int, stop: DimLike) -> Node:
    """node[start:stop] along the leading axis."""
    if (start, stop) == (0, node.shape[0]):
        return node
    index = ((start, stop, 1), *((0, n, 1) for n in node.shape[1:]))
    return sh.slice_(node, index=index)


def row(node: Node, t: int) -> Node:
    return sh.reshape(rows(node, t, t + 1), shape=node.shape[1:])


def active(node: Node) -> bool:
    """Whether a loop input can carry a derivative: a float value that is not a constant."""
    return is_float(node.dtype) and node.op.name != "const"


@dataclass(frozen=True)
class Scan:
    """One scan node read through its attributes."""

    node: Node

    @property
    def body(self) -> Graph:
        return body_of(self.node)

    @property
    def length(self) -> DimLike:
        return length_attr(self.node)

    @property
    def reverse(self) -> bool:
        return bool(self.node.attr("reverse"))

    @property
    def checkpoint(self) -> int:
        return int_attr(self.node, "checkpoint")

    @property
    def nc(self) -> int:
        return int_attr(self.node, "n_carry")

    @property
    def nx(self) -> int:
        return int_attr(self.node, "n_xs")

    @property
    def ny(self) -> int:
        return len(self.body.outputs) - self.nc

    @property
    def init(self) -> tuple[Node, ...]:
        return self.node.inputs[: self.nc]

    @property
    def xs(self) -> tuple[Node, ...]:
        return self.node.inputs[self.nc : self.nc + self.nx]

    @property
    def closures(self) -> tuple[Node, ...]:
        return self.node.inputs[self.nc + self.nx :]

    @property
    def carry_params(self) -> tuple[Node, ...]:
        return self.body.inputs[: self.nc]

    @property
    def x_params(self) -> tuple[Node, ...]:
        return self.body.inputs[self.nc : self.nc + self.nx]

    @property
    def closure_params(self) -> tuple[Node, ...]:
        return self.body.inputs[self.nc + self.nx :]

    def saved(self, m: int) -> Node:
        return sibling(self.node, self.nc + self.ny + m)

    def float_carries(self) -> list[int]:
        return [m for m, p in enumerate(self.carry_params) if is_float(p.dtype)]


def make_scan(
    init: list[Node],
    xs: list[Node],
    closures: list[Node],
    body: Graph,
    *,
    length: DimLike,
    reverse: bool = False,
    checkpoint: int = 1,
) -> Node:
    """The scan node of result 0 (siblings: `sibling(node, i)`)."""
    return scan(
        *init,
        *xs,
        *closures,
        body=body,
        n_carry=len(init),
        n_xs=len(xs),
        length=length,
        reverse=reverse,
        checkpoint=checkpoint,
        output=0,
    )


def _names(prefix: str, count: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + count)]


# --- reverse mode -------------------------------------------------------------------------------


@dataclass
class Cotangents:
    """The pullback of a scan: cotangents of its inits, xs (loop axis first) and closures."""

    init: dict[int, Node]
    xs: dict[int, Node]
    closures: dict[int, Node]


VIEWS = ("reshape", "transpose", "broadcast_to", "slice")


def residuals(body: Graph, variant: list[Node], backward: list[Node]) -> list[Node]:
    """The step's values that the reverse body reads: stacked by the forward scan, not recomputed.

    These are the body nodes depending on `variant` (the carry and x params) that a node
    of the backward graph uses; views of them (reshape, transpose, ...) are recomputed
    from what they view instead, and the params themselves come from the saved carries
    and the xs. In body order.
    """
    position = {n: k for k, n in enumerate(body.nodes)}
    dep = set(variant)
    for node in body.nodes:
        if any(i in dep for i in node.inputs):
            dep.add(node)
    read = [o for o in backward if o in dep]
    read += [i for n in toposort(backward) if n not in position for i in n.inputs if i in dep]
    chosen: set[Node] = set()
    while read:
        node = read.pop()
        if node in chosen or node in variant:
            continue
        if node.op.name in VIEWS:
            read += [i for i in node.inputs[:1] if i in dep]
            continue
        chosen.add(node)
    return sorted(chosen, key=position.__getitem__)


def with_outputs(f: Scan, values: list[Node]) -> tuple[Scan, dict[Node, int]]:
    """f, or f with its body extending the per-step outputs by `values`; each value's per-step index."""
    ys = list(f.body.outputs[f.nc :])
    at: dict[Node, int] = {}
    for value in values:
        if value not in ys:
            ys.append(value)
        at[value] = ys.index(value)
    if len(ys) == f.ny:
        return f, at
    body = Graph([*f.body.outputs[: f.nc], *ys], f.body.inputs)
    node = scan(*f.node.inputs, **{**f.node.params, "body": body, "output": 0})
    return Scan(node), at


def reverse_scan(
    f: Scan, carry_cts: dict[int, Node], y_cts: dict[int, Node], saved_cts: dict[int, Node],
    acc_init: dict[int, Node], batch: Shape, want: tuple[list[int], list[int]],
) -> Cotangents:  # fmt: skip
    """The reverse scan over f's per-step saved carries (f.checkpoint must be 1).

    Cotangents carry the leading `batch` axes; `y_cts` and `saved_cts` are loop-major
    ((T,) + batch + shape); `want` = (xs, closures) whose cotangents are built.
    """
    body, nc, nb = f.body, f.nc, len(batch)
    cp, xp, kp = f.carry_params, f.x_params, f.closure_params
    fc, (fx, fk) = f.float_carries(), want
    a = [temp_param(f"a{m}", batched(batch, cp[m].type)) for m in fc]
    acc = [temp_param(f"acc{i}", batched(batch, kp[i].type)) for i in fk]
    gy = {j: temp_param(f"gy{j}", batched(batch, body.outputs[nc + j].type)) for j in sorted(y_cts)}
    gs = {m: temp_param(f"gs{m}", batched(batch, cp[m].type)) for m in sorted(saved_cts)}
    outs = [body.outputs[m] for m in fc] + [body.outputs[nc + j] for j in gy]
    wrt = [cp[m] for m in fc] + [xp[i] for i in fx] + [kp[i] for i in fk]
    grads = vjp_graph(outs, wrt, [*a, *gy.values()], nb=nb)
    new_a = [or_zeros(g, v.type) for g, v in zip(grads[: len(fc)], a, strict=True)]
    new_a = [ew.add(g, gs[m]) if m in gs else g for g, m in zip(new_a, fc, strict=True)]
    g_x = grads[len(fc) : len(fc) + len(fx)]
    g_k = grads[len(fc) + len(fx) :]
    new_acc = [s if g is None else ew.add(s, g) for s, g in zip(acc, g_k, strict=True)]
    dx = [(i, g) for i, g in zip(fx, g_x, strict=True) if g is not None]
    if not (fc or fk or dx):
        return Cotangents({}, {}, {})
    backward = [*new_a, *new_acc, *(g for _, g in dx)]
    stored = residuals(body, [*cp, *xp], backward)
    f, at = with_outputs(f, stored)
    temps = {n: temp_param(f"res{q}", n.type) for q, n in enumerate(stored)}
    backward = substitute(backward, temps)
    slices = [*cp, *xp, *gy.values(), *gs.values(), *temps.values()]
    outer_values = [*map(f.saved, range(nc)), *f.xs, *y_cts.values(), *saved_cts.values()]
    outer_values += [sibling(f.node, nc + at[n]) for n in stored]
    outer = dict(zip(slices, outer_values, strict=True))
    carries = [*a, *acc]
    names = _names("carry", len(carries)) + _names("x", len(slices))
    new_body, kept, closures = close_over(
        backward, [*carries, *slices], names, fixed=dict(zip(kp, f.closures, strict=True)), droppable=slices
    )
    init = [carry_cts.get(m, zeros(v.type)) for m, v in zip(fc, a, strict=True)]
    init += [acc_init.get(i, zeros(v.type)) for i, v in zip(fk, acc, strict=True)]
    xs = [outer[v] for v in kept[len(carries) :]]
    r = make_scan(init, xs, closures, new_body, length=f.length, reverse=not f.reverse)
    n = len(carries)
    return Cotangents(
        {m: sibling(r, q) for q, m in enumerate(fc)},
        {i: sibling(r, n + q) for q, (i, _) in enumerate(dx)},
        {i: sibling(r, len(fc) + q) for q, i in enumerate(fk)},
    )


def checkpointed_reverse(
    f: Scan, carry_cts: dict[int, Node], y_cts: dict[int, Node], saved_cts: dict[int, Node],
    batch: Shape, want: tuple[list[int], list[int]],
) -> Cotangents:  # fmt: skip
    """The pullback of a forward scan that saved every k-th carry: segments recomputed, then reversed."""
    k, length = f.checkpoint, f.length
    assert isinstance(length, int)  # checkpoint > 1 needs a known length (saved_count)
    full, tail = divmod(length, k)
    cts = Cotangents(dict(carry_cts), {}, {})
    parts: dict[int, list[Node]] = {}
    if tail:
        start = [row(f.saved(m), full) for m in range(f.nc)]
        xs = [rows(x, full * k, length) for x in f.xs]
        piece = Scan(make_scan(start, xs, list(f.closures), f.body, length=tail))
        y_tail = {j: rows(ct, full * k, length) for j, ct in y_cts.items()}
        step = reverse_scan(piece, cts.init, y_tail, {}, cts.closures, batch, want)
        cts = Cotangents(step.init, {}, step.closures)
        for m, ct in saved_cts.items():
            cts.init[m] = ew.add(cts.init[m], row(ct, full))
        parts = {i: [g] for i, g in step.xs.items()}
    if full:
        step = _segments(f, full, cts, y_cts, saved_cts, batch, want)
        cts = Cotangents(step.init, {}, step.closures)
        for i, g in step.xs.items():
            parts[i] = [g, *parts.get(i, [])]
    cts.xs = {i: p[0] if len(p) == 1 else sh.concatenate(*p, axis=0) for i, p in sorted(parts.items())}
    return cts


def _segments(
    f: Scan, full: int, cts: Cotangents, y_cts: dict[int, Node], saved_cts: dict[int, Node],
    batch: Shape, want: tuple[list[int], list[int]],
) -> Cotangents:  # fmt: skip
    """The reverse scan over the first `full` segments of k steps; each step re-runs its segment."""
    k = f.checkpoint
    fc, (_, fk) = f.float_carries(), want
    cp, xp, kp = f.carry_params, f.x_params, f.closure_params
    a = {m: temp_param(f"a{m}", batched(batch, cp[m].type)) for m in fc}
    acc = {i: temp_param(f"acc{i}", batched(batch, kp[i].type)) for i in fk}
    start = [temp_param(f"start{m}", p.type) for m, p in enumerate(cp)]
    xs = [temp_param(f"xs{i}", TensorType((k, *p.shape), p.dtype)) for i, p in enumerate(xp)]
    gy = {j: temp_param(f"gy{j}", TensorType((k, *ct.shape[1:]), ct.dtype)) for j, ct in sorted(y_cts.items())}
    gs = {m: temp_param(f"gs{m}", batched(batch, cp[m].type)) for m in sorted(saved_cts)}
    piece = Scan(make_scan(start, xs, list(kp), f.body, length=k))
    step = reverse_scan(piece, dict(a), gy, {}, dict(acc), batch, want)
    new_a = [ew.add(step.init[m], gs[m]) if m in gs else step.init[m] for m in fc]
    dx = sorted(step.xs.items())
    carries = [*a.values(), *acc.values()]
    slices = [*start, *xs, *gy.values(), *gs.values()]
    outer = [*(rows(f.saved(m), 0, full) for m in range(f.nc))]
    outer += [sh.reshape(rows(x, 0, full * k), shape=(full, k, *x.shape[1:])) for x in f.xs]
    outer += [sh.reshape(rows(ct, 0, full * k), shape=(full, k, *ct.shape[1:])) for _, ct in sorted(y_cts.items())]
    outer += [rows(ct, 0, full) for _, ct in sorted(saved_cts.items())]
    names = _names("carry", len(carries)) + _names("x", len(slices))
    new_body, kept, closures = close_over(
        [*new_a, *(step.closures[i] for i in fk), *(g for _, g in dx)],
        [*carries, *slices],
        names,
        fixed=dict(zip(kp, f.closures, strict=True)),
        droppable=slices,
    )
    by_slice = dict(zip(slices, outer, strict=True))
    init = [cts.init.get(m, zeros(a[m].type)) for m in fc] + [cts.closures.get(i, zeros(acc[i].type)) for i in fk]
    r = make_scan(init, [by_slice[v] for v in kept[len(carries) :]], closures, new_body, length=full, reverse=True)
    n = len(carries)
    return Cotangents(
        {m: sibling(r, q) for q, m in enumerate(fc)},
        {i: _flatten_segments(sibling(r, n + q)) for q, (i, _) in enumerate(dx)},
        {i: sibling(r, len(fc) + q) for q, i in enumerate(fk)},
    )


def _flatten_segments(node: Node) -> Node:
    """(segments, k) + s -> (segments * k,) + s"""
    return sh.reshape(node, shape=(node.shape[0] * node.shape[1], *node.shape[2:]))


def pullback(out: Node, ct: Node) -> list[Node | None]:
    """The cotangent of each input of `out`'s scan for the cotangent `ct` of `out`."""
    f = Scan(out)
    o = int_attr(out, "output")
    nb = ct.ndim - out.ndim
    batch = ct.shape[:nb]
    carry_cts: dict[int, Node] = {}
    y_cts: dict[int, Node] = {}
    saved_cts: dict[int, Node] = {}
    if o < f.nc:
        carry_cts[o] = ct
    elif o < f.nc + f.ny:
        y_cts[o - f.nc] = loop_major(ct, nb)
    else:
        saved_cts[o - f.nc - f.ny] = loop_major(ct, nb)
    want = ([i for i, x in enumerate(f.xs) if active(x)], [i for i, c in enumerate(f.closures) if active(c)])
    if f.checkpoint == 1:
        cts = reverse_scan(f, carry_cts, y_cts, saved_cts, {}, batch, want)
    else:
        cts = checkpointed_reverse(f, carry_cts, y_cts, saved_cts, batch, want)
    results: list[Node | None] = [cts.init.get(m) for m in range(f.nc)]
    results += [batch_major(cts.xs[i], nb) if i in cts.xs else None for i in range(f.nx)]
    results += [cts.closures.get(i) for i in range(len(f.closures))]
    return results


def _scan_vjp(ct: Node, out: Node, *inputs: Node, index: int, **attrs: object) -> Node | None:
    return pullback(out, ct)[index]


# --- forward mode -------------------------------------------------------------------------------


def pushforward(f: Scan, j: int, t: Node) -> Scan:
    """The scan carrying (c, dc) for the tangent `t` of input j: the step and its JVP side by side."""
    nc, nx, body = f.nc, f.nx, f.body
    nb = t.ndim - f.node.inputs[j].ndim
    batch = t.shape[:nb]
    cp, xp, kp = f.carry_params, f.x_params, f.closure_params
    fc = f.float_carries()
    dc = [temp_param(f"dc{m}", batched(batch, cp[m].type)) for m in fc]
    wrt, tangents = [cp[m] for m in fc], list(dc)
    fixed = dict(zip(kp, f.closures, strict=True))
    slices, xs = list(xp), list(f.xs)
    if nc <= j < nc + nx:
        dx = temp_param("dx", batched(batch, xp[j - nc].type))
        wrt.append(xp[j - nc])
        tangents.append(dx)
        slices.append(dx)
        xs.append(loop_major(t, nb))
    elif j >= nc + nx:
        dk = temp_param("dk", batched(batch, kp[j - nc - nx].type))
        wrt.append(kp[j - nc - nx])
        tangents.append(dk)
        fixed[dk] = t
    pushed = jvp_graph(list(body.outputs), wrt, tangents, nb=nb)
    d_carries = [or_zeros(pushed[m], d.type) for m, d in zip(fc, dc, strict=True)]
    d_ys = [or_zeros(g, batched(batch, y.type)) for g, y in zip(pushed[nc:], body.outputs[nc:], strict=True)]
    carries = [*cp, *dc]
    names = _names("carry", len(carries)) + _names("x", len(slices))
    new_body, kept, closures = close_over(
        [*body.outputs[:nc], *d_carries, *d_ys], [*carries, *slices], names, fixed=fixed, droppable=slices
    )
    init = list(f.init) + [t if j == m else zeros(d.type) for m, d in zip(fc, dc, strict=True)]
    outer = dict(zip(slices, xs, strict=True))
    xs = [outer[v] for v in kept[len(carries) :]]
    node = make_scan(init, xs, closures, new_body, length=f.length, reverse=f.reverse, checkpoint=f.checkpoint)
    return Scan(node)


def _scan_jvp(t: Node, out: Node, *inputs: Node, index: int, **attrs: object) -> Node | None:
    f = Scan(out)
    o = int_attr(out, "output")
    nb = t.ndim - inputs[index].ndim
    fc = f.float_carries()
    pushed = pushforward(f, index, t)
    if o < f.nc:
        return sibling(pushed.node, f.nc + fc.index(o)) if o in fc else None
    if o < f.nc + f.ny:
        return batch_major(sibling(pushed.node, pushed.nc + o - f.nc), nb)
    m = o - f.nc - f.ny
    if m not in fc:
        return None
    return batch_major(pushed.saved(f.nc + fc.index(m)), nb)


scan = Op("scan", scan_infer, scan_eval, vjp=(_scan_vjp,), jvp=(_scan_jvp,), kind=Kind.OPAQUE, variadic=True)
"""scan(init.., xs.., closures..; body, n_carry, n_xs, length, reverse, checkpoint, output): see ops/loops.py."""

__all__ = ["Scan", "active", "make_scan", "pullback", "pushforward", "saved_count", "scan", "zeros"]
