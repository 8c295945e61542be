"""Loops: the types, the reference semantics and the body surgery of `scan` and `fixed_point`.

(`cond` and `while_loop` are families too: their types and semantics are in
ops/control_flow.py, whose `run_control` runs them given their bodies as functions.)

Imports errors, shapes, ir and ops.base/ops.source. The two primitives' Op records are made
one level up, in graphc.recurrence: their derivative rules are graph transforms of the body
by the autodiff engine, which sits above ops. Everything below that level lives here —
types, NumPy semantics, how sibling nodes share one run of a loop, how a traced body is
closed over its free values — so backends and passes depend on this module only.

The IR has single-output nodes, so a loop is a *family* of siblings: one node per result,
identical but for the `output` attribute. Backends run a family's loop once per call and
hand each sibling its result (`family_key`, `run_family`).

    scan(init.., xs.., closures..; body, n_carry, n_xs, length, reverse, checkpoint, output)
        body: (carry.., x_t.., closure..) -> (carry.., y_t..)
        output [0, nc): the final carries; [nc, nc+ny): the y_t stacked along a new leading
        (loop) axis; [nc+ny, 2nc+ny): the saved carries — the carry entering step t for
        t = 0, k, 2k, .. (k = checkpoint), stacked — which the reverse pass (BPTT) reads.
        `reverse` visits t = length-1 .. 0; stacks stay indexed by t.

    fixed_point(z0.., closures..; body, n_z, tol, max_iter, output[, role])
        body: (z.., closure..) -> (z..); iterates z <- body(z) until the max-norm of the
        update over every component, max |z_new - z|, is <= tol, and returns that z_new.
        After max_iter evaluations of the body, or a NaN residual, it raises ConvergenceError.
        `role` ("adjoint" or "tangent") marks the loops derivative rules build, for the message.

A body's inputs are *body params*: vars with uid BODY_UID named by role (carry0, x0, k0,
z0), so equal loops build equal bodies and intern to one family, and printouts are
deterministic. Rules build bodies from temporary params (TEMP_UID) and close them with
`close_over`, which also hoists every loop-invariant computation out of the body.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from graphc.errors import ConvergenceError, DTypeError, GraphError, ShapeError
from graphc.ir import Graph, Node, derived_from, toposort
from graphc.ops.control_flow import CONTROL_OPS, run_control
from graphc.ops.source import var_op
from graphc.shapes import Dim, DimLike, TensorType, is_float

LOOP_OPS = ("scan", "fixed_point", *CONTROL_OPS)  # every op whose nodes come in families of siblings
BODY_UID = -2
TEMP_UID = -3

RunBody = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
"""A loop body as a function: its outputs' values for its inputs' values."""


class Body(Protocol):
    """What counting a body's carries, xs and closures reads: a Graph, a Signature, a scheduled Program."""

    @property
    def inputs(self) -> Sequence[object]: ...

    @property
    def outputs(self) -> Sequence[object]: ...


@dataclass(frozen=True)
class Signature:
    """The types a loop body takes and returns (what the reference semantics allocates from)."""

    inputs: tuple[TensorType, ...]
    outputs: tuple[TensorType, ...]


def signature(body: Graph) -> Signature:
    return Signature(tuple(p.type for p in body.inputs), tuple(o.type for o in body.outputs))


def body_param(name: str, type_: TensorType) -> Node:
    """The input of a body standing for one value the loop feeds it each iteration or once."""
    return var_op(name=name, shape=type_.shape, dtype=type_.dtype, uid=BODY_UID)


def temp_param(name: str, type_: TensorType) -> Node:
    """A placeholder for building a body; `close_over` replaces every one of them."""
    return var_op(name=name, shape=type_.shape, dtype=type_.dtype, uid=TEMP_UID)


def is_loop(node: Node) -> bool:
    return node.op.name in LOOP_OPS


def int_attr(node: Node, name: str) -> int:
    """An int attribute of a loop node (n_carry, n_xs, n_z, checkpoint, output)."""
    value = node.attr(name)
    assert isinstance(value, int)
    return value


def length_attr(node: Node) -> DimLike:
    """A scan's length: an int, or a named dimension (its size comes with each call)."""
    value = node.attr("length")
    assert isinstance(value, (int, Dim))
    return value


def body_of(node: Node) -> Graph:
    body = node.attr("body")
    assert isinstance(body, Graph)
    return body


# --- body surgery ---------------------------------------------------------------------------


def substitute(outputs: Sequence[Node], mapping: Mapping[Node, Node]) -> list[Node]:
    """The outputs rebuilt with every node of `mapping` replaced by its image, all at once."""
    done: dict[Node, Node] = dict(mapping)
    for root in outputs:
        stack: list[tuple[Node, int]] = [(root, 0)]
        while stack:
            node, i = stack[-1]
            if node in done:
                stack.pop()
                continue
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                stack.append((node.inputs[i], 0))
                continue
            stack.pop()
            inputs = [done[c] for c in node.inputs]
            if all(a is b for a, b in zip(inputs, node.inputs, strict=True)):
                done[node] = node
                continue
            with derived_from(node):
                done[node] = Node.make(node.op, inputs, node.params)
    return [done[o] for o in outputs]


def _hoisted(order: list[Node], outputs: Sequence[Node], variant: set[Node]) -> list[Node]:
    """The maximal nodes that do not depend on `variant` but reach a var: what the body closes over."""
    dep: set[Node] = set()
    free: set[Node] = set()
    for node in order:
        if node in variant:
            dep.add(node)
        elif node.op is var_op or any(i in free for i in node.inputs):
            free.add(node)
        if any(i in dep for i in node.inputs):
            dep.add(node)
    wanted = {i for node in order if node in dep for i in node.inputs}
    wanted.update(outputs)
    return [n for n in order if n in wanted and n not in dep and n in free]


def close_over(
    outputs: Sequence[Node],
    variant: Sequence[Node],
    names: Sequence[str],
    fixed: Mapping[Node, Node] | None = None,
    droppable: Sequence[Node] = (),
) -> tuple[Graph, list[Node], list[Node]]:
    """A body computing `outputs` from `variant` (what changes each iteration) and its closures.

    Every maximal computation that does not depend on `variant` but reaches a var is hoisted
    out: it becomes a closure param, its value computed once outside the loop with the
    `fixed` nodes replaced by their outer values (a traced step's closed-over Tensors, the
    forward loop's closures in a derivative). Constant-only computations stay inside.
    Returns the body (inputs: the kept variant params named `names`, then closures k0, k1..),
    the variant nodes kept (those in `droppable` that the body does not use are dropped),
    and the closures' outer values, one per closure param.
    """
    fixed = fixed or {}
    order = toposort(outputs)
    hoisted = _hoisted(order, outputs, set(variant))
    outer_of = dict(zip(hoisted, substitute(hoisted, fixed) if fixed else hoisted, strict=True))
    closures = list(dict.fromkeys(outer_of.values()))
    closure_params = {c: body_param(f"k{i}", c.type) for i, c in enumerate(closures)}
    params = [body_param(name, v.type) for v, name in zip(variant, names, strict=True)]
    mapping = dict(zip(variant, params, strict=True))
    mapping.update({h: closure_params[outer_of[h]] for h in hoisted})
    body_outputs = substitute(outputs, mapping)
    used = set(toposort(body_outputs))
    drop = set(droppable)
    kept = [(v, p) for v, p in zip(variant, params, strict=True) if v not in drop or p in used]
    inputs = [p for _, p in kept] + list(closure_params.values())
    return Graph(body_outputs, inputs), [v for v, _ in kept], closures


def sibling(node: Node, output: int) -> Node:
    """The node of the same family computing result `output`."""
    return Node.make(node.op, node.inputs, {**node.params, "output": output})


def family_key(node: Node) -> tuple[object, ...]:
    """What siblings share: op, inputs and every attribute but `output`."""
    return (node.op, node.inputs, tuple(kv for kv in node.attrs if kv[0] != "output"))


# --- types ----------------------------------------------------------------------------------


def _check_type(k: int, given: TensorType, expected: TensorType) -> None:
    if given.dtype != expected.dtype:
        raise DTypeError(f"input {k} is {given}, the body expects {expected}")
    if given.shape != expected.shape:
        raise ShapeError(f"input {k} is {given}, the body expects {expected}")


def _check_carries(body: Graph, n: int, what: str) -> None:
    for m in range(n):
        if body.outputs[m].type != body.inputs[m].type:
            raise GraphError(f"the body returns {what} {m} as {body.outputs[m].type}, it takes {body.inputs[m].type}")


def scan_counts(body: Body, n_carry: int, n_xs: int) -> tuple[int, int, int, int]:
    """(carries, xs, closures, per-step outputs) of a scan body."""
    return n_carry, n_xs, len(body.inputs) - n_carry - n_xs, len(body.outputs) - n_carry


def saved_count(length: DimLike, checkpoint: int) -> DimLike:
    """How many carries a scan saves: one every `checkpoint` steps, the first included.

    Over a named length only checkpoint=1 has a count that is a dimension (ceil(T/k) is not).
    """
    if isinstance(length, Dim):
        if checkpoint != 1:
            raise ShapeError(f"checkpoint={checkpoint} needs a known length; this scan runs {length} steps (named)")
        return length
    return math.ceil(length / checkpoint)


def scan_output_type(body: Graph, n_carry: int, length: DimLike, checkpoint: int, output: int) -> TensorType:
    ny = len(body.outputs) - n_carry
    if output < n_carry:
        return body.inputs[output].type
    if output < n_carry + ny:
        y = body.outputs[output].type
        return TensorType((length, *y.shape), y.dtype)
    carry = body.inputs[output - n_carry - ny].type
    return TensorType((saved_count(length, checkpoint), *carry.shape), carry.dtype)


def scan_infer(
    *types: TensorType,
    body: Graph,
    n_carry: int,
    n_xs: int,
    length: DimLike,
    reverse: bool,
    checkpoint: int,
    output: int,
) -> TensorType:
    nc, nx, nk, ny = scan_counts(body, n_carry, n_xs)
    if min(nc, nx, nk, ny) < 0 or len(types) != len(body.inputs):
        raise GraphError(f"a body of {len(body.inputs)} inputs cannot take {nc} carries, {nx} xs, {len(types)} inputs")
    if (not isinstance(length, Dim) and length < 0) or checkpoint < 1:
        raise GraphError(f"length must be >= 0 and checkpoint >= 1, got {length} and {checkpoint}")
    saved_count(length, checkpoint)  # a named length takes checkpoint=1 only
    for k, (given, p) in enumerate(zip(types, body.inputs, strict=True)):
        stacked = nc <= k < nc + nx
        _check_type(k, given, TensorType((length, *p.shape), p.dtype) if stacked else p.type)
    _check_carries(body, nc, "carry")
    if not 0 <= output < 2 * nc + ny:
        raise GraphError(f"a scan with {nc} carries and {ny} outputs per step has no result {output}")
    return scan_output_type(body, nc, length, checkpoint, output)


def fixed_point_infer(
    *types: TensorType, body: Graph, n_z: int, tol: float, max_iter: int, output: int, role: str = ""
) -> TensorType:
    if len(types) != len(body.inputs) or len(body.outputs) != n_z or not 0 <= output < n_z:
        raise GraphError(f"a body of {len(body.inputs)} inputs and {len(body.outputs)} outputs, {n_z} iterates")
    if not (tol >= 0 and math.isfinite(tol)) or max_iter < 1:
        raise GraphError(f"tol must be finite and >= 0 and max_iter >= 1, got {tol} and {max_iter}")
    for k, (given, p) in enumerate(zip(types, body.inputs, strict=True)):
        _check_type(k, given, p.type)
    for m in range(n_z):
        if not is_float(body.inputs[m].dtype):
            raise DTypeError(f"iterate {m} must be a float, got {body.inputs[m].type}")
    _check_carries(body, n_z, "iterate")
    return body.inputs[output].type


# --- reference semantics --------------------------------------------------------------------


def run_graph(graph: Graph, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs by each op's reference eval; sibling loop nodes share one run."""
    values: dict[Node, np.ndarray] = dict(zip(graph.inputs, args, strict=True))
    shared: dict[tuple[object, ...], list[np.ndarray]] = {}
    for node in graph.nodes:
        if node in values:
            continue
        inputs = [values[i] for i in node.inputs]
        if is_loop(node):
            key = family_key(node)
            if key not in shared:
                shared[key] = run_loop(node.op.name, inputs, **node.params)
            values[node] = shared[key][int_attr(node, "output")]
        else:
            values[node] = np.asarray(node.op.eval(*inputs, **node.params))  # type: ignore[attr-defined]
    return [values[o] for o in graph.outputs]


def run_loop(op: str, args: Sequence[np.ndarray], **attrs: Hashable) -> list[np.ndarray]:
    """Every result of one loop or cond whose bodies are Graphs (among `attrs`, the node's), run node by node."""
    graphs = {key: value for key, value in attrs.items() if isinstance(value, Graph)}
    rest = {key: value for key, value in attrs.items() if key not in graphs}
    if op in CONTROL_OPS:
        return run_control(op, args, {key: functools.partial(run_graph, g) for key, g in graphs.items()}, **rest)
    body = graphs["body"]
    return run_family(op, args, functools.partial(run_graph, body), signature(body), **rest)


def run_family(
    op: str, args: Sequence[np.ndarray], run_body: RunBody, body: Signature, **attrs: Hashable
) -> list[np.ndarray]:
    """Every result of one loop (indexed by `output`), its body run by `run_body`."""
    attrs.pop("output", None)
    if op == "scan":
        return run_scan(args, run_body, body=body, **attrs)  # type: ignore[arg-type]
    return run_fixed_point(args, run_body, **attrs)  # type: ignore[arg-type]


def run_scan(
    args: Sequence[np.ndarray],
    run_body: RunBody,
    *,
    body: Signature,
    n_carry: int,
    n_xs: int,
    length: int,
    reverse: bool,
    checkpoint: int,
) -> list[np.ndarray]:
    nc, nx, _, _ = scan_counts(body, n_carry, n_xs)
    carries = [np.asarray(a) for a in args[:nc]]
    xs = args[nc : nc + nx]
    closures = list(args[nc + nx :])
    ys = [np.empty((length, *o.shape), o.dtype) for o in body.outputs[nc:]]
    saved = [np.empty((saved_count(length, checkpoint), *c.shape), c.dtype) for c in body.inputs[:nc]]
    for t in range(length - 1, -1, -1) if reverse else range(length):
        if t % checkpoint == 0:
            for stack, carry in zip(saved, carries, strict=True):
                stack[t // checkpoint] = carry
        outs = run_body([*carries, *(x[t] for x in xs), *closures])
        carries = outs[:nc]
        for stack, y in zip(ys, outs[nc:], strict=True):
            stack[t] = y
    return [*(np.array(c, copy=True) for c in carries), *ys, *saved]


def residual(new: Sequence[np.ndarray], old: Sequence[np.ndarray]) -> float:
    """max |new - old| over every element of every component (0 for empty ones); NaN propagates."""
    r = 0.0
    for a, b in zip(new, old, strict=True):
        diff = np.abs(np.subtract(a, b))
        if not diff.size:
            continue
        largest = float(np.max(diff))
        if largest != largest:
            return largest
        r = max(r, largest)
    return r


_ROLES = {
    "adjoint": "while solving the adjoint (gradient) fixed point w = (dg/dz)^T w + v of a fixed_point, the iteration",
    "tangent": "while solving the tangent (forward-mode) fixed point dz = (dg/dz) dz + (dg/dp) t of a fixed_point, "
    "the iteration",
}


def not_converged(iterations: int, r: float, tol: float, max_iter: int, role: str = "") -> ConvergenceError:
    """The error of a fixed_point (or of the adjoint/tangent loop its derivative built) that did not converge."""
    if r != r:
        what = f"diverged: the residual max|z_new - z| is NaN after {iterations} iterations"
    else:
        what = f"did not converge in {iterations} iterations: final residual max|z_new - z| = {r:.6g} > tol = {tol:g}"
    return ConvergenceError(f"{_ROLES.get(role, 'fixed_point')} {what} (max_iter={max_iter})")


def run_fixed_point(
    args: Sequence[np.ndarray], run_body: RunBody, *, n_z: int, tol: float, max_iter: int, role: str = ""
) -> list[np.ndarray]:
    z = [np.asarray(a) for a in args[:n_z]]
    closures = list(args[n_z:])
    r = math.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        new = run_body([*z, *closures])
        r = residual(new, z)
        z = new
        if r <= tol:
            return [np.array(v, copy=True) for v in z]
        if r != r:
            break
    raise not_converged(it, r, tol, max_iter, role)


def scan_eval(*args: np.ndarray, output: int, **attrs: Hashable) -> np.ndarray:
    return run_loop("scan", args, **attrs)[output]


def fixed_point_eval(*args: np.ndarray, output: int, **attrs: Hashable) -> np.ndarray:
    return run_loop("fixed_point", args, **attrs)[output]


def cond_eval(*args: np.ndarray, output: int, **attrs: Hashable) -> np.ndarray:
    return run_loop("cond", args, **attrs)[output]


def while_eval(*args: np.ndarray, output: int, **attrs: Hashable) -> np.ndarray:
    return run_loop("while_loop", args, **attrs)[output]


__all__ = [
    "BODY_UID",
    "LOOP_OPS",
    "TEMP_UID",
    "body_of",
    "body_param",
    "close_over",
    "cond_eval",
    "family_key",
    "fixed_point_eval",
    "fixed_point_infer",
    "int_attr",
    "is_loop",
    "length_attr",
    "not_converged",
    "residual",
    "run_family",
    "run_graph",
    "run_loop",
    "run_scan",
    "saved_count",
    "scan_counts",
    "scan_eval",
    "scan_infer",
    "scan_output_type",
    "sibling",
    "signature",
    "substitute",
    "temp_param",
    "while_eval",
]  # fmt: skip
