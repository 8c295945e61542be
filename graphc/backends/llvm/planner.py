"""The Planner: walks a Program, giving every value a layout in the workspace and emitting kernels.

Imports numpy, graphc.schedule, graphc.backends.finite and the llvm backend's layout,
kernels, chunks and merge (never llvmlite, never a Graph). The planner follows the
Program's buffer plan: a step that may reuse a dead buffer writes into that buffer's
workspace slot; a step computing an output writes straight into the fresh output array.
How each op is planned is a rule of a table the Planner is given (plan.PLANNERS); a loop
body is planned by a nested Planner with the same table. `Planner.run` ends with merge.py,
which joins consecutive kernels over one iteration space, and returns the Plan, which
records the step(s) each of its kernels came from (`Plan.sources`: what explore maps code
back to the graph with).
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from graphc.backends import finite
from graphc.backends.llvm import layout as L
from graphc.backends.llvm.chunks import split_long
from graphc.backends.llvm.kernels import LANES, Check, Instr, Kernel, Map, Reduce, layouts, nested
from graphc.backends.llvm.layout import Buffer, Layout, Shape
from graphc.backends.llvm.merge import merge_runs
from graphc.schedule import VIEW_OPS, Program, Step
from graphc.shapes import BOOL, TensorType, fixed

ALIGN = 64  # bytes: every buffer of the workspace and the constant blob starts on a cache line
ERROR_SLOT = 0  # workspace bytes 0..15: a failed take/scatter_add index, a fixed_point (count, residual),
# or the (position, value) of a non-finite element that check_finite found

Rule = Callable[["Planner", Step], None]
"""How one op is planned: give the step's value a layout, append the kernels that compute it."""


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
    sources: tuple[tuple[str, ...], ...] = ()  # per kernel: the steps it computes (names in the Program)

    def key(self) -> str:
        """Everything the native code depends on, as deterministic text (constant values are data).

        repr spells every NaN `nan`, while the code keeps the payload of a NaN it holds as an
        immediate (two graphs once shared one object cache entry that way, and the second ran
        the first's NaN): when the text has a NaN, the bits of every NaN in the kernels, in
        order, follow it.
        """
        text = repr((self.inputs, self.outputs, self.kernels, self.constant_bytes, self.workspace_bytes))
        if "nan" not in text:
            return text
        found: list[str] = []
        _nan_bits(self.kernels, found)
        return text + "\nnan payloads " + ",".join(found)


def _nan_bits(value: object, found: list[str]) -> None:
    """Append the bits of every NaN float inside `value` (dataclasses, tuples, lists), in order."""
    if isinstance(value, float):
        if value != value:
            found.append(struct.pack("<d", value).hex())
    elif isinstance(value, (tuple, list)):
        for item in value:
            _nan_bits(item, found)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _nan_bits(getattr(value, f.name), found)


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
    """Walks a Program once with one rule per op (`rules`), giving every name a layout and appending kernels.

    A loop body is planned by a nested Planner: same rules and Memory, its inputs and
    outputs given as layouts of the enclosing program, `depth` one more than the enclosing
    one. `check_finite` adds a Check kernel after every float step (finite.py).
    """

    def __init__(
        self,
        program: Program,
        rules: Mapping[str, Rule],
        memory: Memory | None = None,
        inputs: Sequence[Layout] | None = None,
        outputs: Sequence[Layout] | None = None,
        depth: int = 0,
        check_finite: bool = False,
    ) -> None:
        self.program = program
        self.rules = rules
        self.check_finite = check_finite
        self.memory = memory or Memory()
        self.depth = depth
        self.layouts: dict[str, Layout] = {}
        self.kernels: list[Kernel] = []
        self.owners: list[str | None] = []  # per kernel: the step that planned it (None: an output's copy)
        self.slots: dict[str, int] = {}
        self.families: dict[object, list[Layout]] = {}
        self.factors: dict[str, tuple[Layout, Layout]] = {}  # LU factors shared by one matrix's steps (lapack.py)
        self.direct = direct_outputs(program)
        if inputs is None:
            inputs = [
                L.contiguous(Buffer(L.INPUT, k, i.type.dtype), fixed(i.type.shape))
                for k, i in enumerate(program.inputs)
            ]
        if outputs is None:
            types = [program.types[name] for name in program.outputs]
            outputs = [L.contiguous(Buffer(L.OUTPUT, k, t.dtype), fixed(t.shape)) for k, t in enumerate(types)]
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    # --- memory ---------------------------------------------------------------------------------

    def fresh(self, shape: Shape, dtype: np.dtype) -> Layout:
        """A new workspace buffer for a temporary of the backend's own (never reused)."""
        return L.contiguous(Buffer(L.WORK, self.memory.allocate(L.byte_size(shape, dtype)), dtype), shape)

    def dest(self, step: Step) -> Layout:
        """Where a step's result goes (its output array, the slot it may reuse, or a new slot); recorded."""
        shape, dtype = fixed(step.type.shape), step.type.dtype
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

    def site(self, exception: str, message: str, tol: float = 0.0, max_iter: int = 0) -> int:
        """A new error site (see ErrorSite); its number, which the native code returns as status."""
        return self.memory.site(ErrorSite(exception, message, tol, max_iter))

    def nested(
        self, program: Program, inputs: Sequence[Layout], outputs: Sequence[Layout], deeper: bool = True
    ) -> Planner:
        """The planner of a body: this program's memory; one loop deeper unless `deeper` is False (a cond's branch)."""
        depth = self.depth + 1 if deeper else self.depth
        return Planner(program, self.rules, self.memory, inputs, outputs, depth, self.check_finite)

    # --- kernels --------------------------------------------------------------------------------

    def add_map(
        self,
        shape: Shape,
        operands: Sequence[Layout],
        instrs: Sequence[Instr],
        out: Layout,
        extra: Sequence[tuple[int, Layout]] = (),
    ) -> None:
        """out = the per-point value over `shape` (and each extra (instruction, layout) stored too)."""
        if math.prod(shape) == 0:
            return
        operands, instrs = split_long(self.fresh, self.add_map, shape, operands, instrs)
        operands, instrs = _fold_operands(operands, instrs)
        layouts = [*operands, *(layout for _, layout in extra), out]
        new_shape, strides, _ = L.coalesce(shape, [layout.strides for layout in layouts])
        layouts = [_restrided(layout, new_shape, s) for layout, s in zip(layouts, strides, strict=True)]
        n = len(operands)
        extra_values = tuple(value for value, _ in extra)
        kernel = Map(
            new_shape,
            tuple(layouts[:n]),
            instrs,
            layouts[-1],
            self._power_site(instrs),
            extra_values,
            tuple(layouts[n:-1]),
        )
        self.kernels.append(kernel)

    def copy(self, source: Layout, out: Layout) -> None:
        self.add_map(out.shape, [L.broadcast(source, out.shape)], [Instr("load", (0,), source.dtype)], out)

    def fill(self, value: bool | int | float, out: Layout) -> None:
        self.add_map(out.shape, [], [Instr("const", (), out.dtype, (("value", value),))], out)

    def add_reduce(
        self,
        shape: Shape,
        operands: Sequence[Layout],
        instrs: Sequence[Instr],
        kind: str,
        axes: Sequence[int],
        keepdims: bool,
        dest: Layout,
    ) -> None:
        """dest = reduction of the per-point value over `axes` of `shape`."""
        if math.prod(shape) == 0:
            self.fill(identity(kind, dest.dtype), dest)
            return
        operands, instrs = split_long(self.fresh, self.add_map, shape, operands, instrs)
        operands, instrs = _fold_operands(operands, instrs)
        out = reduce_out(dest, shape, axes, keepdims)
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
            rule = self.rules.get(step.op)
            if rule is None:
                raise NotImplementedError(f"the llvm backend cannot lower op {step.op!r}")
            rule(self, step)
            if self.check_finite and finite.checked(step):
                self.kernels.append(
                    Check(self.layouts[step.name], self.site("FloatingPointError", finite.message(step)))
                )
            self._own(step.name)
        for k, name in enumerate(program.outputs):
            if self.direct.get(name) != k:
                self.copy(self.layouts[name], self.outputs[k])
        self._own(None)
        return self.kernels

    def _own(self, name: str | None) -> None:
        """Record `name` as the owner of the kernels appended since the last call."""
        self.owners += [name] * (len(self.kernels) - len(self.owners))

    def run(self) -> Plan:
        """The plan; no constant blob when every constant read was folded into the code."""
        runs = merge_runs(self.walk())
        kernels = [kernel for kernel, _ in runs]
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
            sources=tuple(self._sources(positions) for _, positions in runs),
        )

    def _sources(self, positions: range) -> tuple[str, ...]:
        """The steps that planned the kernels at `positions`, each once, in order."""
        return tuple(dict.fromkeys(name for name in (self.owners[k] for k in positions) if name is not None))


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
    return L.restrided(layout, shape, strides)


def reduce_out(dest: Layout, shape: Shape, axes: Sequence[int], keepdims: bool) -> Layout:
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
                instr = Instr("load", (index[instr.args[0]],), instr.dtype, instr.attrs)
        folded.append(instr)
    return tuple(kept), tuple(folded)
