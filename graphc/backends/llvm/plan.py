"""Program -> Plan: one planning rule per op, and `plan`, which runs the Planner with them.

Imports numpy, graphc.ops, graphc.schedule and the llvm backend's layout, kernels, planner,
recurrence and windows (never llvmlite, never a Graph: a fused region is its
step's nested Program, planned as one per-point expression). Views are layouts (no
kernel); a reshape that strides cannot express copies first. Loops, cond and while_loop
are planned by recurrence.py, conv windows by windows.py; lapack.py emits the linear
algebra kernels planned here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from graphc.backends.llvm import layout as L
from graphc.backends.llvm.kernels import Accumulate, ArgReduce, Gather, Gemm, Instr, Lapack, Map, Scatter, Sort
from graphc.backends.llvm.layout import Layout, Shape, matrix_order
from graphc.backends.llvm.padded import plan_padded
from graphc.backends.llvm.planner import Expr, Plan, Planner, Rule, reduce_out
from graphc.backends.llvm.recurrence import plan_loop
from graphc.backends.llvm.windows import plan_col2im, plan_im2col
from graphc.ops import OPS, Kind
from graphc.schedule import Program, Step
from graphc.shapes import BOOL, FLOAT64, INT64, fixed, reduced_shape

ELEMENTWISE = frozenset(
    name for name, op in OPS.items() if op.kind in (Kind.ELEMENTWISE, Kind.BROADCAST) and name != "broadcast_to"
)


# --- one rule per op ------------------------------------------------------------------------------


def _plan_elementwise(p: Planner, step: Step) -> None:
    """One Map, or one per box when an operand is an unslice or concatenate that need not be stored (padded.py)."""
    shape = fixed(step.type.shape)
    operands = [L.broadcast(p.layouts[a], shape) for a in step.args]
    expr = Expr()
    loads = [expr.load(i, o.dtype) for i, o in enumerate(operands)]
    expr.add(step.op, loads, step.type.dtype, step.attrs)
    if not plan_padded(p, step, expr.instrs):
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
    shape = fixed(body.types[root.args[0]].shape if reducing else root.type.shape)
    operands = [L.broadcast(p.layouts[a], shape) for a in step.args]
    expr = Expr()
    value = body_instrs(body, shape, expr, skip_root=reducing)
    if not reducing:
        if not plan_padded(p, step, expr.instrs):
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
    kept = fixed(reduced_shape(shape, axes, True))
    m = p.fresh(kept, dtype)
    s = p.fresh(kept, dtype)
    p.add_reduce(shape, operands, expr.instrs[: value + 1], "max", axes, True, m)
    shifted = Expr()
    shifted.instrs = list(expr.instrs[: value + 1])
    shift = _fixed_max(shifted, len(operands), dtype)
    diff = shifted.add("sub", [value, shift], dtype)
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
    shape = fixed(step.type.shape)
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
        p.layouts[step.name] = L.broadcast(source, fixed(step.type.shape))
    else:
        p.layouts[step.name] = L.sliced(source, attrs["index"])  # type: ignore[arg-type]


def _plan_unslice(p: Planner, step: Step) -> None:
    dest = p.dest(step)
    p.fill(0, dest)
    p.copy(p.layouts[step.args[0]], L.sliced(dest, step.attr("index")))  # type: ignore[arg-type]


def diagonal_view(layout: Layout) -> Layout:
    """The diagonal of the last two (square) axes: one axis whose stride steps one row and one column."""
    *lead, n, _ = layout.shape
    strides = layout.strides
    return replace(layout, shape=(*lead, n), strides=(*strides[:-2], strides[-2] + strides[-1]))


def _plan_diag(p: Planner, step: Step) -> None:
    """diag(v): zeros, then v copied onto the diagonal view."""
    dest = p.dest(step)
    p.fill(0, dest)
    p.copy(p.layouts[step.args[0]], diagonal_view(dest))


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


def _plan_index_add(p: Planner, step: Step) -> None:
    """index_add(base, updates, indices): base copied, then updates scattered onto it (as scatter_add's kernel).

    When the base was just computed by the last kernel and dies here, that kernel writes
    straight into the result instead (no copy): a Jacobian's dense part and its diagonal.
    """
    base = p.layouts[step.args[0]]
    updates, indices = (p.layouts[a] for a in step.args[1:])
    axis = step.int_attr("axis")
    dest = p.dest(step)
    if not _retarget_last_kernel(p, step, base, dest):
        p.copy(base, dest)
    if updates.size == 0:
        return
    p.kernels.append(Scatter(updates, indices, axis, dest, _index_site(p, step, axis, base.shape[axis])))


def _retarget_last_kernel(p: Planner, step: Step, base: Layout, dest: Layout) -> bool:
    """Make the last kernel write `dest` instead of `base`, when it computed all of base, contiguously, and the
    base's buffer dies at this step; True when it did."""
    if not p.kernels or not isinstance(p.kernels[-1], Map):
        return False
    kernel = p.kernels[-1]
    contiguous = base.strides == L.contiguous_strides(base.shape) and dest.strides == L.contiguous_strides(dest.shape)
    out = kernel.out
    whole = out.buffer == base.buffer and out.offset == base.offset and out.size == base.size and not base.dynamic
    if not (contiguous and whole and not kernel.extra_outs and _dies_at(p.program, step)):
        return False
    p.kernels[-1] = replace(kernel, out=replace(out, buffer=dest.buffer, offset=dest.offset))
    return True


def _dies_at(program: Program, step: Step) -> bool:
    """Whether the buffer of the step's first argument (a computed value) is used by no later step and no output."""
    root = program.base(step.args[0])
    if program.step(root) is None or root in {program.base(name) for name in program.outputs}:
        return False
    later = program.steps[program.steps.index(step) + 1 :]
    return all(program.base(arg) != root for s in later for arg in s.args)


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


LINALG_MESSAGES = {"solve": "Singular matrix", "inv": "Singular matrix", "cholesky": "Matrix is not positive definite"}
LU_USERS = ("solve", "inv", "slogdet")  # steps that may share one LU factorization of their matrix


# --- linear algebra (lapack.py emits the kernels) ------------------------------------------------


def _plan_linalg(p: Planner, step: Step) -> None:
    """A Lapack kernel over the stack (batch axes broadcast); nothing for an empty result."""
    a = p.layouts[step.args[0]]
    n = a.shape[-1]
    dest = p.dest(step)
    batch = dest.shape[:-1] if step.op == "slogdet" else dest.shape[:-2]
    if step.op == "slogdet" and n == 0:  # the empty product: sign 1, log|det| 0
        p.fill(1.0, L.sliced(dest, ((0, 1, 1),)))
        p.fill(0.0, L.sliced(dest, ((1, 2, 1),)))
        return
    if dest.size == 0:
        return
    rhs = p.layouts[step.args[1]] if step.op == "solve" else None
    rhs = None if rhs is None else L.broadcast(rhs, batch + rhs.shape[-2:])
    columns = n if step.op == "inv" else (0 if rhs is None else rhs.shape[-1])
    work = p.fresh((n * columns,), FLOAT64) if columns else None
    shared = _shared_factors(p, step)
    if shared is None:
        stack: Layout | None = L.broadcast(a, (*batch, n, n))
        factors = L.broadcast(p.fresh((n * n,), FLOAT64), (*batch, n * n))
        pivots = L.broadcast(p.fresh((n + 1,), INT64), (*batch, n + 1))
    else:
        stack = None
        factors, pivots = (L.broadcast(f, (*batch, f.shape[-1])) for f in shared)
    flags = {key: bool(step.params.get(key, False)) for key in ("transposed", "upper")}
    site = _site(p, step)
    p.kernels.append(Lapack(step.op, stack, rhs, dest, factors, pivots, work, **flags, site=site))


def _site(p: Planner, step: Step) -> int:
    """The error site of a singular (not positive-definite) matrix; 0 for slogdet, which cannot fail."""
    if step.op not in LINALG_MESSAGES:
        return 0
    message = f"{LINALG_MESSAGES[step.op]} in {step.op}{step.where}"
    return p.site("LinAlgError", message.replace("{", "{{").replace("}", "}}"))


def _shared_factors(p: Planner, step: Step) -> tuple[Layout, Layout] | None:
    """(factors, pivots) of the step's matrix when several top-level steps factor it; the first plans them."""
    name = step.args[0]
    if step.op not in LU_USERS or p.depth > 0:
        return None
    if sum(1 for s in p.program.steps if s.op in LU_USERS and s.args[0] == name) < 2:
        return None
    if name not in p.factors:
        a = p.layouts[name]
        n = a.shape[-1]
        factors = p.fresh((*a.shape[:-2], n * n), FLOAT64)
        pivots = p.fresh((*a.shape[:-2], n + 1), INT64)
        p.kernels.append(Lapack("lu", a, None, factors, factors, pivots, None))
        p.factors[name] = (factors, pivots)
    return p.factors[name]


def _plan_iota(p: Planner, step: Step) -> None:
    """Each element's flat C-order index, computed in the loop (the `index` instruction)."""
    p.add_map(fixed(step.type.shape), [], [Instr("index", (), step.type.dtype)], p.dest(step))


def _plan_sort(p: Planner, step: Step) -> None:
    """A contiguous copy sorted in place, row by row."""
    dest = p.dest(step)
    p.copy(p.layouts[step.args[0]], dest)
    if dest.size:
        p.kernels.append(Sort(dest))


def _plan_window(p: Planner, step: Step) -> None:
    (plan_im2col if step.op == "im2col" else plan_col2im)(p, step)


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
    "diag": _plan_diag,
    "index_add": _plan_index_add,
    "matmul": _plan_matmul,
    "im2col": _plan_window,
    "col2im": _plan_window,
    "solve": _plan_linalg,
    "inv": _plan_linalg,
    "slogdet": _plan_linalg,
    "cholesky": _plan_linalg,
    "scan": plan_loop,
    "fixed_point": plan_loop,
    "cond": plan_loop,
    "while_loop": plan_loop,
    "iota": _plan_iota,
    "sort": _plan_sort,
}


def plan(program: Program, check_finite: bool = False) -> Plan:
    """The Plan of a Program; NotImplementedError naming any op without a rule."""
    return Planner(program, PLANNERS, check_finite=check_finite).run()
