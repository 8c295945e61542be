"""Program -> Plan: one planning rule per op, and `plan`, which runs the Planner with them.

Imports numpy, graphc.ops, graphc.schedule and the llvm backend's layout, kernels, planner
and recurrence (never llvmlite, never a Graph: a fused region is its step's nested
Program, planned as one per-point expression). Views are layouts (no kernel); a reshape
that strides cannot express copies first. Loops are planned by recurrence.py.
"""

from __future__ import annotations

import numpy as np

from graphc.backends.llvm import layout as L
from graphc.backends.llvm.kernels import Accumulate, ArgReduce, Gather, Gemm, Scatter
from graphc.backends.llvm.layout import Layout, Shape, matrix_order
from graphc.backends.llvm.planner import Expr, Plan, Planner, Rule, reduce_out
from graphc.backends.llvm.recurrence import plan_loop
from graphc.ops import OPS, Kind
from graphc.schedule import Program, Step
from graphc.shapes import BOOL, reduced_shape

ELEMENTWISE = frozenset(
    name for name, op in OPS.items() if op.kind in (Kind.ELEMENTWISE, Kind.BROADCAST) and name != "broadcast_to"
)


# --- one rule per op ------------------------------------------------------------------------------


def _plan_elementwise(p: Planner, step: Step) -> None:
    shape = step.type.shape
    operands = [L.broadcast(p.layouts[a], shape) for a in step.args]
    expr = Expr()
    loads = [expr.load(i, o.dtype) for i, o in enumerate(operands)]
    expr.add(step.op, loads, step.type.dtype, step.attrs)
    p.add_map(shape, operands, expr.instrs, p.dest(step))


def body_instrs(body: Program, shape: Shape, expr: Expr, skip_root: bool) -> int:
    """Append the body's per-point instructions (its inputs are operands 0, 1, ...); the value's index."""
    if body.constants:
        raise NotImplementedError("the llvm backend cannot lower constants inside a fused region")
    values = {given.name: expr.load(i, given.type.dtype) for i, given in enumerate(body.inputs)}
    root = body.outputs[0]
    for step in body.steps:
        if skip_root and step.name == root:
            continue
        if step.op == "broadcast_to":
            values[step.name] = values[step.args[0]]
            continue
        if step.op not in ELEMENTWISE or step.type.shape != shape:
            raise NotImplementedError(f"the llvm backend cannot lower {step.op} {step.type} inside a fused region")
        values[step.name] = expr.add(step.op, [values[a] for a in step.args], step.type.dtype, step.attrs)
    return values[_root(body).args[0] if skip_root else root]


def _root(body: Program) -> Step:
    root = body.step(body.outputs[0])
    assert root is not None
    return root


def _plan_fused(p: Planner, step: Step) -> None:
    body = step.body
    assert body is not None
    root = _root(body)
    reducing = root.kind is Kind.REDUCE
    shape = body.types[root.args[0]].shape if reducing else root.type.shape
    operands = [L.broadcast(p.layouts[a], shape) for a in step.args]
    expr = Expr()
    value = body_instrs(body, shape, expr, skip_root=reducing)
    if not reducing:
        p.add_map(shape, operands, expr.instrs, p.dest(step))
        return
    axes, keepdims = _reduce_attrs(root.params)
    _reduction(p, root.op, shape, operands, expr, value, axes, keepdims, p.dest(step))


def _plan_reduce(p: Planner, step: Step) -> None:
    source = p.layouts[step.args[0]]
    expr = Expr()
    value = expr.load(0, source.dtype)
    axes, keepdims = _reduce_attrs(step.params)
    _reduction(p, step.op, source.shape, [source], expr, value, axes, keepdims, p.dest(step))


def _reduce_attrs(attrs: dict) -> tuple[tuple[int, ...], bool]:
    """(axis, keepdims) of a reduction node (axis is always a tuple of ints there)."""
    axes = attrs["axis"]
    assert isinstance(axes, tuple)
    return axes, bool(attrs["keepdims"])


def _reduction(
    p: Planner,
    kind: str,
    shape: Shape,
    operands: list[Layout],
    expr: Expr,
    value: int,
    axes: tuple[int, ...],
    keepdims: bool,
    dest: Layout,
) -> None:
    if kind != "logsumexp":
        expr.instrs = expr.instrs[: value + 1]
        p.add_reduce(shape, operands, expr.instrs, kind, axes, keepdims, dest)
        return
    _logsumexp(p, shape, operands, expr, value, axes, keepdims, dest)


def _fixed_max(expr: Expr, operand: int, dtype: np.dtype) -> int:
    """where(isfinite(m), m, 0): the shift of logsumexp."""
    m = expr.load(operand, dtype)
    finite = expr.add("isfinite", [m], BOOL)
    return expr.add("where", [finite, m, expr.const(0.0, dtype)], dtype)


def _logsumexp(
    p: Planner,
    shape: Shape,
    operands: list[Layout],
    expr: Expr,
    value: int,
    axes: tuple[int, ...],
    keepdims: bool,
    dest: Layout,
) -> None:
    """m = max(x); s = sum(exp(x - fix(m))); out = log(s) + fix(m), fix(m) = m where finite, else 0."""
    dtype = dest.dtype
    kept = reduced_shape(shape, axes, True)
    m = p.fresh(kept, dtype)
    s = p.fresh(kept, dtype)
    p.add_reduce(shape, operands, expr.instrs[: value + 1], "max", axes, True, m)
    shifted = Expr()
    shifted.instrs = list(expr.instrs[: value + 1])
    fixed = _fixed_max(shifted, len(operands), dtype)
    diff = shifted.add("sub", [value, fixed], dtype)
    shifted.add("exp", [diff], dtype)
    p.add_reduce(shape, [*operands, L.broadcast(m, shape)], shifted.instrs, "sum", axes, True, s)
    final = Expr()
    logged = final.add("log", [final.load(0, dtype)], dtype)
    final.add("add", [logged, _fixed_max(final, 1, dtype)], dtype)
    views = [L.reshaped(s, dest.shape), L.reshaped(m, dest.shape)]
    p.add_map(dest.shape, views, final.instrs, dest)  # type: ignore[arg-type]


def _plan_arg_reduce(p: Planner, step: Step) -> None:
    source = p.layouts[step.args[0]]
    axis = step.attr("axis")
    keepdims = bool(step.attr("keepdims"))
    axes = tuple(range(len(source.shape))) if axis is None else (int(axis),)  # type: ignore[call-overload]
    dest = p.dest(step)
    out = reduce_out(dest, source.shape, axes, keepdims)
    p.kernels.append(ArgReduce(step.op, source, out, frozenset(axes)))


def _plan_reshape(p: Planner, step: Step) -> None:
    source = p.layouts[step.args[0]]
    shape = step.type.shape
    view = L.reshaped(source, shape)
    if view is None:
        copy = p.fresh(source.shape, source.dtype)
        p.copy(source, copy)
        view = L.reshaped(copy, shape)
    p.layouts[step.name] = view  # type: ignore[assignment]


def _plan_view(p: Planner, step: Step) -> None:
    source = p.layouts[step.args[0]]
    attrs = step.params
    if step.op == "transpose":
        p.layouts[step.name] = L.transposed(source, attrs["axes"])  # type: ignore[arg-type]
    elif step.op == "broadcast_to":
        p.layouts[step.name] = L.broadcast(source, step.type.shape)
    else:
        p.layouts[step.name] = L.sliced(source, attrs["index"])  # type: ignore[arg-type]


def _plan_unslice(p: Planner, step: Step) -> None:
    dest = p.dest(step)
    p.fill(0, dest)
    p.copy(p.layouts[step.args[0]], L.sliced(dest, step.attr("index")))  # type: ignore[arg-type]


def _plan_concatenate(p: Planner, step: Step) -> None:
    dest = p.dest(step)
    axis = step.int_attr("axis")
    start = 0
    for name in step.args:
        source = p.layouts[name]
        stop = start + source.shape[axis]
        region = ((start, stop, 1), *((0, n, 1) for n in dest.shape[axis + 1 :]))
        p.copy(source, L.sliced(dest, region))
        start = stop


def _index_site(p: Planner, step: Step, axis: int, size: int) -> int:
    message = f"index {{index}} is out of bounds for axis {axis} with size {size} in {step.op}{step.where}"
    return p.site("IndexError", message)


def _plan_take(p: Planner, step: Step) -> None:
    source, indices = (p.layouts[a] for a in step.args)
    axis = step.int_attr("axis")
    dest = p.dest(step)
    if dest.size == 0:
        return
    p.kernels.append(Gather(source, indices, axis, dest, _index_site(p, step, axis, source.shape[axis])))


def _plan_scatter(p: Planner, step: Step) -> None:
    values, indices = (p.layouts[a] for a in step.args)
    axis = step.int_attr("axis")
    size = step.int_attr("size")
    dest = p.dest(step)
    p.fill(0, dest)
    if values.size == 0:
        return
    p.kernels.append(Scatter(values, indices, axis, dest, _index_site(p, step, axis, size)))


def _plan_accumulate(p: Planner, step: Step) -> None:
    """cumsum / cumprod: one sequential pass along the axis into the step's own buffer."""
    dest = p.dest(step)
    if dest.size == 0:
        return
    kind = "sum" if step.op == "cumsum" else "prod"
    axis = step.int_attr("axis")
    p.kernels.append(Accumulate(kind, p.layouts[step.args[0]], dest, axis, bool(step.attr("reverse"))))


def _gemm_operand(p: Planner, layout: Layout, shape: Shape) -> Layout:
    """`layout` broadcast to batch + its matrix shape, copied first if gemm cannot read it."""
    if matrix_order(layout) is None:
        copy = p.fresh(layout.shape, layout.dtype)
        p.copy(layout, copy)
        layout = copy
    return L.broadcast(layout, shape)


def _plan_matmul(p: Planner, step: Step) -> None:
    a, b = (p.layouts[name] for name in step.args)
    dest = p.dest(step)
    batch = dest.shape[:-2]
    if dest.size == 0:
        return
    if a.shape[-1] == 0:
        p.fill(0.0, dest)
        return
    a = _gemm_operand(p, a, batch + a.shape[-2:])
    b = _gemm_operand(p, b, batch + b.shape[-2:])
    p.kernels.append(Gemm(a, b, dest))


PLANNERS: dict[str, Rule] = {
    **{name: _plan_elementwise for name in sorted(ELEMENTWISE)},
    "fused": _plan_fused,
    "sum": _plan_reduce,
    "prod": _plan_reduce,
    "max": _plan_reduce,
    "min": _plan_reduce,
    "logsumexp": _plan_reduce,
    "argmax": _plan_arg_reduce,
    "argmin": _plan_arg_reduce,
    "reshape": _plan_reshape,
    "transpose": _plan_view,
    "broadcast_to": _plan_view,
    "slice": _plan_view,
    "unslice": _plan_unslice,
    "concatenate": _plan_concatenate,
    "take": _plan_take,
    "scatter_add": _plan_scatter,
    "cumsum": _plan_accumulate,
    "cumprod": _plan_accumulate,
    "matmul": _plan_matmul,
    "scan": plan_loop,
    "fixed_point": plan_loop,
}


def plan(program: Program, check_finite: bool = False) -> Plan:
    """The Plan of a Program; NotImplementedError naming any op without a rule."""
    return Planner(program, PLANNERS, check_finite=check_finite).run()
