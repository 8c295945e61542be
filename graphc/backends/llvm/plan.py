"""Program -> Plan: every value's layout, the workspace and constant blob, and the kernels in order.

Imports numpy, graphc.ops, graphc.schedule and the llvm backend's layout/kernels (never
llvmlite). The planner follows the Program's buffer plan: a step that may reuse a dead
buffer writes into that buffer's workspace slot; a step computing an output writes
straight into the fresh output array. Views are layouts (no kernel); a reshape that
strides cannot express copies first. Each op has one planning rule in PLANNERS (loops:
recurrence.py; linear algebra: lapack.py). Finally merge.py joins consecutive kernels over one iteration space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from graphc.backends import finite
from graphc.backends.llvm import layout as L
from graphc.backends.llvm.chunks import split_long
from graphc.backends.llvm.kernels import (
    LANES,
    Accumulate,
    ArgReduce,
    Check,
    Gather,
    Gemm,
    Instr,
    Kernel,
    Map,
    Reduce,
    Scatter,
    Sort,
    layouts,
    nested,
)
from graphc.backends.llvm.lapack import plan_linalg
from graphc.backends.llvm.layout import Buffer, Layout, Shape
from graphc.backends.llvm.merge import merge
from graphc.errors import where
from graphc.ir import Graph
from graphc.ops import OPS, Kind
from graphc.schedule import VIEW_OPS, Program, Step
from graphc.shapes import BOOL, TensorType, reduced_shape

ELEMENTWISE = frozenset(
    name for name, op in OPS.items() if op.kind in (Kind.ELEMENTWISE, Kind.BROADCAST) and name != "broadcast_to"
)
ALIGN = 64  # bytes: every buffer of the workspace and the constant blob starts on a cache line
ERROR_SLOT = 0  # workspace bytes 0..15: a failed take/scatter_add index, a fixed_point (count, residual),
# or the (position, value) of a non-finite element that check_finite found


@dataclass(frozen=True)
class ErrorSite:
    """What a nonzero status from the native code means: an exception class name and a message.

    The message may contain `{index}`, the offending value the native code left in the error
    slot. A ConvergenceError is worded by graphc.ops.loops.not_converged from the iteration
    count and residual the native code left there, `tol` and `max_iter`; its message is the
    loop's role ("", "adjoint", "tangent").
    """

    exception: str
    message: str
    tol: float = 0.0
    max_iter: int = 0


@dataclass(frozen=True, eq=False)
class Plan:
    """What the native entry point does, and what the Python wrapper must hand it."""

    inputs: tuple[TensorType, ...]
    outputs: tuple[TensorType, ...]
    kernels: tuple[Kernel, ...]
    constants: tuple[tuple[int, np.ndarray], ...]  # (byte offset in the blob, array)
    constant_bytes: int
    workspace_bytes: int
    errors: tuple[ErrorSite, ...]  # site k is errors[k - 1]

    def key(self) -> str:
        """Everything the native code depends on, as deterministic text (constant values are data)."""
        return repr((self.inputs, self.outputs, self.kernels, self.constant_bytes, self.workspace_bytes))


class Expr:
    """A list of Instrs under construction; each method returns the new instruction's index."""

    def __init__(self) -> None:
        self.instrs: list[Instr] = []

    def add(self, op: str, args: Sequence[int], dtype: np.dtype, attrs: tuple = ()) -> int:
        self.instrs.append(Instr(op, tuple(args), dtype, attrs))
        return len(self.instrs) - 1

    def load(self, operand: int, dtype: np.dtype) -> int:
        return self.add("load", (operand,), dtype)

    def const(self, value: bool | int | float, dtype: np.dtype) -> int:
        return self.add("const", (), dtype, (("value", value),))


def identity(kind: str, dtype: np.dtype) -> bool | int | float:
    """The starting value of a reduction (a float sum starts at +0.0, as NumPy's: a sum of -0.0s is +0.0)."""
    if dtype == BOOL:
        return kind in ("prod", "min")
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        return {"sum": 0, "prod": 1, "max": int(info.min), "min": int(info.max)}[kind]
    return {"sum": 0.0, "prod": 1.0, "max": -math.inf, "min": math.inf}[kind]


class Memory:
    """What every planner of one program shares: the workspace, the constant blob, the error sites."""

    def __init__(self) -> None:
        self.workspace = ALIGN  # the first cache line holds the error slot
        self.constants: list[tuple[int, np.ndarray]] = []
        self.constant_bytes = 0
        self.errors: list[ErrorSite] = []

    def allocate(self, nbytes: int) -> int:
        offset = self.workspace
        self.workspace += -(-max(nbytes, 1) // ALIGN) * ALIGN
        return offset

    def constant(self, array: np.ndarray) -> Layout:
        """The constant's place in the blob; a one-element constant also carries its value."""
        offset = self.constant_bytes
        self.constants.append((offset, array))
        self.constant_bytes += -(-max(array.nbytes, 1) // ALIGN) * ALIGN
        value = L.as_scalar(array) if array.size == 1 else None
        return L.contiguous(Buffer(L.CONST, offset, array.dtype, value), array.shape)

    def site(self, error: ErrorSite) -> int:
        self.errors.append(error)
        return len(self.errors)


class Planner:
    """Walks a Program once, giving every name a layout and appending kernels.

    A loop body is planned by a nested Planner: same Memory, its inputs and outputs
    given as layouts of the enclosing program, `depth` one more than the enclosing one.
    `check_finite` adds a Check kernel after every float step (finite.py).
    """

    def __init__(
        self, program: Program, memory: Memory | None = None, inputs: Sequence[Layout] | None = None,
        outputs: Sequence[Layout] | None = None, depth: int = 0, check_finite: bool = False,
    ) -> None:  # fmt: skip
        self.program = program
        self.check_finite = check_finite
        self.memory = memory or Memory()
        self.depth = depth
        self.layouts: dict[str, Layout] = {}
        self.kernels: list[Kernel] = []
        self.slots: dict[str, int] = {}
        self.families: dict[object, list[Layout]] = {}
        self.factors: dict[str, tuple[Layout, Layout]] = {}  # LU factors shared by one matrix's steps (lapack.py)
        self.direct = direct_outputs(program)
        if inputs is None:
            inputs = [
                L.contiguous(Buffer(L.INPUT, k, i.type.dtype), i.type.shape) for k, i in enumerate(program.inputs)
            ]
        if outputs is None:
            types = [program.types[name] for name in program.outputs]
            outputs = [L.contiguous(Buffer(L.OUTPUT, k, t.dtype), t.shape) for k, t in enumerate(types)]
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    # --- memory ---------------------------------------------------------------------------------

    def fresh(self, shape: Shape, dtype: np.dtype) -> Layout:
        """A new workspace buffer for a temporary of the backend's own (never reused)."""
        return L.contiguous(Buffer(L.WORK, self.memory.allocate(L.byte_size(shape, dtype)), dtype), shape)

    def dest(self, step: Step) -> Layout:
        """Where a step's result goes (its output array, the slot it may reuse, or a new slot); recorded."""
        shape, dtype = step.type.shape, step.type.dtype
        if step.name in self.direct:
            layout = self.outputs[self.direct[step.name]]
        else:
            offset = self.slots.get(step.reuse) if step.reuse is not None else None
            if offset is None:
                offset = self.memory.allocate(L.byte_size(shape, dtype))
            self.slots[step.name] = offset
            layout = L.contiguous(Buffer(L.WORK, offset, dtype), shape)
        self.layouts[step.name] = layout
        return layout

    def site(self, exception: str, message: str) -> int:
        return self.memory.site(ErrorSite(exception, message))

    # --- kernels --------------------------------------------------------------------------------

    def add_map(
        self, shape: Shape, operands: Sequence[Layout], instrs: Sequence[Instr], out: Layout,
        extra: Sequence[tuple[int, Layout]] = (),
    ) -> None:  # fmt: skip
        """out = the per-point value over `shape` (and each extra (instruction, layout) stored too)."""
        if math.prod(shape) == 0:
            return
        operands, instrs = split_long(self, shape, operands, instrs)
        operands, instrs = _fold_operands(operands, instrs)
        layouts = [*operands, *(layout for _, layout in extra), out]
        new_shape, strides, _ = L.coalesce(shape, [layout.strides for layout in layouts])
        layouts = [_restrided(layout, new_shape, s) for layout, s in zip(layouts, strides, strict=True)]
        n = len(operands)
        extra_values = tuple(value for value, _ in extra)
        kernel = Map(new_shape, tuple(layouts[:n]), instrs, layouts[-1], self._power_site(instrs),
                     extra_values, tuple(layouts[n:-1]))  # fmt: skip
        self.kernels.append(kernel)

    def copy(self, source: Layout, out: Layout) -> None:
        self.add_map(out.shape, [L.broadcast(source, out.shape)], [Instr("load", (0,), source.dtype)], out)

    def fill(self, value: bool | int | float, out: Layout) -> None:
        self.add_map(out.shape, [], [Instr("const", (), out.dtype, (("value", value),))], out)

    def add_reduce(
        self, shape: Shape, operands: Sequence[Layout], instrs: Sequence[Instr], kind: str,
        axes: Sequence[int], keepdims: bool, dest: Layout,
    ) -> None:  # fmt: skip
        """dest = reduction of the per-point value over `axes` of `shape`."""
        if math.prod(shape) == 0:
            self.fill(identity(kind, dest.dtype), dest)
            return
        operands, instrs = split_long(self, shape, operands, instrs)
        operands, instrs = _fold_operands(operands, instrs)
        out = _reduce_out(dest, shape, axes, keepdims)
        new_shape, strides, reduced = L.coalesce(shape, [o.strides for o in (*operands, out)], frozenset(axes))
        operands = tuple(_restrided(o, new_shape, s) for o, s in zip(operands, strides, strict=False))
        out = _restrided(out, new_shape, strides[-1])
        site = self._power_site(instrs)
        if not reduced:  # every reduced axis has length 1
            if kind == "sum":
                instrs = _plus_zero(instrs)
            self.kernels.append(Map(new_shape, operands, instrs, out, site))
            return
        kernel = Reduce(new_shape, operands, instrs, out, reduced, kind, site=site)
        if kernel.inner and new_shape[-1] >= LANES:
            kernel = replace(kernel, lanes=LANES)
        if not kernel.inner:
            self.fill(identity(kind, dest.dtype), dest)
        self.kernels.append(kernel)

    def _power_site(self, instrs: Sequence[Instr]) -> int:
        if any(i.op == "pow" and i.dtype.kind != "f" for i in instrs):
            return self.site("ValueError", "Integers to negative integer powers are not allowed.")
        return 0

    # --- the program ----------------------------------------------------------------------------

    def walk(self) -> list[Kernel]:
        """Plan every step and the outputs' copies; the kernels in order."""
        program = self.program
        for given, layout in zip(program.inputs, self.inputs, strict=True):
            self.layouts[given.name] = layout
        for name, array in program.constants.items():
            self.layouts[name] = self.memory.constant(array)
        for step in program.steps:
            planner = PLANNERS.get(step.op)
            if planner is None:
                raise NotImplementedError(f"the llvm backend cannot lower op {step.op!r}")
            planner(self, step)
            if self.check_finite and finite.checked(step):
                self.kernels.append(
                    Check(self.layouts[step.name], self.site("FloatingPointError", finite.message(step)))
                )
        for k, name in enumerate(program.outputs):
            if self.direct.get(name) != k:
                self.copy(self.layouts[name], self.outputs[k])
        return self.kernels

    def run(self) -> Plan:
        """The plan; no constant blob when every constant read was folded into the code."""
        kernels = merge(self.walk())
        memory = self.memory
        blob = _reads_constants(kernels)
        return Plan(
            inputs=tuple(given.type for given in self.program.inputs),
            outputs=tuple(self.program.types[name] for name in self.program.outputs),
            kernels=tuple(kernels),
            constants=tuple(memory.constants) if blob else (),
            constant_bytes=memory.constant_bytes if blob else 0,
            workspace_bytes=memory.workspace if memory.workspace > ALIGN or memory.errors else 0,
            errors=tuple(memory.errors),
        )


def _reads_constants(kernels: Sequence[Kernel]) -> bool:
    """Whether a kernel (loop bodies included) reads the constant blob through an address."""
    for kernel in kernels:
        if _reads_constants(nested(kernel)):
            return True
        if any(layout.buffer.place == L.CONST for layout in layouts(kernel)):
            return True
    return False


def direct_outputs(program: Program) -> dict[str, int]:
    """Outputs a step can write in place: computed (not a view), listed first at that position."""
    direct: dict[str, int] = {}
    for k, name in enumerate(program.outputs):
        step = program.step(name)
        if step is None or step.op in VIEW_OPS or name in direct:
            continue
        direct[name] = k
    return direct


def _restrided(layout: Layout, shape: Shape, strides: Shape) -> Layout:
    return replace(layout, shape=shape, strides=strides)


def _reduce_out(dest: Layout, shape: Shape, axes: Sequence[int], keepdims: bool) -> Layout:
    """`dest` seen at the iteration shape: its own strides on kept axes, 0 on reduced ones."""
    strides = []
    k = 0
    for a in range(len(shape)):
        if a in axes:
            strides.append(0)
            k += 1 if keepdims else 0
            continue
        strides.append(dest.strides[k])
        k += 1
    return replace(dest, shape=shape, strides=tuple(strides))


def _plus_zero(instrs: Sequence[Instr]) -> tuple[Instr, ...]:
    """value + 0: a sum of one element is that element, except that -0.0 becomes +0.0 (as in NumPy)."""
    dtype = instrs[-1].dtype
    zero = Instr("const", (), dtype, (("value", identity("sum", dtype)),))
    last = len(instrs) - 1
    return (*instrs, zero, Instr("add", (last, last + 1), dtype))


def _fold_operands(operands: Sequence[Layout], instrs: Sequence[Instr]) -> tuple[tuple[Layout, ...], tuple[Instr, ...]]:
    """Loads of one-element constants become `const` instructions; equal operands are read once, unread ones dropped."""
    read = {instr.args[0] for instr in instrs if instr.op == "load"}
    position: dict[Layout, int] = {}
    index: dict[int, int] = {}
    for i, layout in enumerate(operands):
        if layout.buffer.value is not None or i not in read:
            continue
        index[i] = position.setdefault(layout, len(position))
    kept = list(position)
    folded = []
    for instr in instrs:
        if instr.op == "load":
            source = operands[instr.args[0]]
            if source.buffer.value is not None:
                instr = Instr("const", (), instr.dtype, (("value", source.buffer.value),))
            else:
                instr = replace(instr, args=(index[instr.args[0]],))
        folded.append(instr)
    return tuple(kept), tuple(folded)


# --- one rule per op ------------------------------------------------------------------------------


def _plan_elementwise(p: Planner, step: Step) -> None:
    shape = step.type.shape
    operands = [L.broadcast(p.layouts[a], shape) for a in step.args]
    expr = Expr()
    loads = [expr.load(i, o.dtype) for i, o in enumerate(operands)]
    expr.add(step.op, loads, step.type.dtype, step.node.attrs)
    p.add_map(shape, operands, expr.instrs, p.dest(step))


def body_instrs(body: Graph, shape: Shape, expr: Expr, skip_root: bool) -> int:
    """Append the body's per-point instructions (params are operands 0, 1, ...); the value's index."""
    values = {param: expr.load(i, param.dtype) for i, param in enumerate(body.inputs)}
    root = body.outputs[0]
    for node in body.nodes:
        if node in values or (skip_root and node is root):
            continue
        name = node.op.name
        if name == "broadcast_to":
            values[node] = values[node.inputs[0]]
            continue
        if name not in ELEMENTWISE or node.shape != shape:
            raise NotImplementedError(f"the llvm backend cannot lower {name} {node.type} inside a fused region")
        values[node] = expr.add(name, [values[i] for i in node.inputs], node.dtype, node.attrs)
    return values[root.inputs[0] if skip_root else root]


def _plan_fused(p: Planner, step: Step) -> None:
    body = step.node.attr("body")
    assert isinstance(body, Graph)
    root = body.outputs[0]
    reducing = root.op.kind is Kind.REDUCE  # type: ignore[attr-defined]
    shape = root.inputs[0].shape if reducing else root.shape
    operands = [L.broadcast(p.layouts[a], shape) for a in step.args]
    expr = Expr()
    value = body_instrs(body, shape, expr, skip_root=reducing)
    if not reducing:
        p.add_map(shape, operands, expr.instrs, p.dest(step))
        return
    axes, keepdims = _reduce_attrs(root.params)
    _reduction(p, root.op.name, shape, operands, expr, value, axes, keepdims, p.dest(step))


def _plan_reduce(p: Planner, step: Step) -> None:
    source = p.layouts[step.args[0]]
    expr = Expr()
    value = expr.load(0, source.dtype)
    axes, keepdims = _reduce_attrs(step.attrs)
    _reduction(p, step.op, source.shape, [source], expr, value, axes, keepdims, p.dest(step))


def _reduce_attrs(attrs: dict) -> tuple[tuple[int, ...], bool]:
    """(axis, keepdims) of a reduction node (axis is always a tuple of ints there)."""
    axes = attrs["axis"]
    assert isinstance(axes, tuple)
    return axes, bool(attrs["keepdims"])


def _reduction(
    p: Planner, kind: str, shape: Shape, operands: list[Layout], expr: Expr, value: int,
    axes: tuple[int, ...], keepdims: bool, dest: Layout,
) -> None:  # fmt: skip
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
    p: Planner, shape: Shape, operands: list[Layout], expr: Expr, value: int,
    axes: tuple[int, ...], keepdims: bool, dest: Layout,
) -> None:  # fmt: skip
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
    axis = step.attrs["axis"]
    keepdims = bool(step.attrs["keepdims"])
    axes = tuple(range(len(source.shape))) if axis is None else (int(axis),)  # type: ignore[call-overload]
    dest = p.dest(step)
    out = _reduce_out(dest, source.shape, axes, keepdims)
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
    attrs = step.attrs
    if step.op == "transpose":
        p.layouts[step.name] = L.transposed(source, attrs["axes"])  # type: ignore[arg-type]
    elif step.op == "broadcast_to":
        p.layouts[step.name] = L.broadcast(source, step.type.shape)
    else:
        p.layouts[step.name] = L.sliced(source, attrs["index"])  # type: ignore[arg-type]


def _plan_unslice(p: Planner, step: Step) -> None:
    dest = p.dest(step)
    p.fill(0, dest)
    p.copy(p.layouts[step.args[0]], L.sliced(dest, step.attrs["index"]))  # type: ignore[arg-type]


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
    axis = int(step.attrs["axis"])  # type: ignore[call-overload]
    start = 0
    for name in step.args:
        source = p.layouts[name]
        stop = start + source.shape[axis]
        region = ((start, stop, 1), *((0, n, 1) for n in dest.shape[axis + 1 :]))
        p.copy(source, L.sliced(dest, region))
        start = stop


def _index_site(p: Planner, step: Step, axis: int, size: int) -> int:
    message = f"index {{index}} is out of bounds for axis {axis} with size {size} in {step.op}{where(step.node.loc)}"
    return p.site("IndexError", message)


def _plan_take(p: Planner, step: Step) -> None:
    source, indices = (p.layouts[a] for a in step.args)
    axis = int(step.attrs["axis"])  # type: ignore[call-overload]
    dest = p.dest(step)
    if dest.size == 0:
        return
    p.kernels.append(Gather(source, indices, axis, dest, _index_site(p, step, axis, source.shape[axis])))


def _plan_scatter(p: Planner, step: Step) -> None:
    values, indices = (p.layouts[a] for a in step.args)
    axis = int(step.attrs["axis"])  # type: ignore[call-overload]
    size = int(step.attrs["size"])  # type: ignore[call-overload]
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
    axis = int(step.attrs["axis"])  # type: ignore[call-overload]
    p.kernels.append(Accumulate(kind, p.layouts[step.args[0]], dest, axis, bool(step.attrs["reverse"])))


def _plan_index_add(p: Planner, step: Step) -> None:
    """index_add(base, updates, indices): base copied, then updates scattered onto it (as scatter_add's kernel).

    When the base was just computed by the last kernel and dies here, that kernel writes
    straight into the result instead (no copy): a Jacobian's dense part and its diagonal.
    """
    base = p.layouts[step.args[0]]
    updates, indices = (p.layouts[a] for a in step.args[1:])
    axis = int(step.attrs["axis"])  # type: ignore[call-overload]
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


def matrix_order(layout: Layout) -> tuple[bool, int] | None:
    """(transposed, leading dimension) of the last two axes for gemm, or None if they need a copy."""
    rows, cols = layout.shape[-2:]
    s_rows, s_cols = layout.strides[-2:]
    if cols == 1:
        s_cols = 1
    if rows == 1 and s_cols != 1:
        s_rows = 1
    elif rows == 1:
        s_rows = max(cols, 1)
    if s_cols == 1 and s_rows >= max(1, cols):
        return False, s_rows
    if s_rows == 1 and s_cols >= max(1, rows):
        return True, s_cols
    return None


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


def _plan_iota(p: Planner, step: Step) -> None:
    """Each element's flat C-order index, computed in the loop (the `index` instruction)."""
    p.add_map(step.type.shape, [], [Instr("index", (), step.type.dtype)], p.dest(step))


def _plan_sort(p: Planner, step: Step) -> None:
    """A contiguous copy sorted in place, row by row."""
    dest = p.dest(step)
    p.copy(p.layouts[step.args[0]], dest)
    if dest.size:
        p.kernels.append(Sort(dest))


def _plan_loop(p: Planner, step: Step) -> None:
    from graphc.backends.llvm.recurrence import plan_loop

    plan_loop(p, step)


def _plan_window(p: Planner, step: Step) -> None:
    from graphc.backends.llvm.windows import plan_col2im, plan_im2col

    (plan_im2col if step.op == "im2col" else plan_col2im)(p, step)


Rule = Callable[[Planner, Step], None]

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
    "solve": plan_linalg,
    "inv": plan_linalg,
    "slogdet": plan_linalg,
    "cholesky": plan_linalg,
    "scan": _plan_loop,
    "fixed_point": _plan_loop,
    "cond": _plan_loop,
    "while_loop": _plan_loop,
    "iota": _plan_iota,
    "sort": _plan_sort,
}


def plan(program: Program, check_finite: bool = False) -> Plan:
    """The Plan of a Program; NotImplementedError naming any op without a rule."""
    return Planner(program, check_finite=check_finite).run()
