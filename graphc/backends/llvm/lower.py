"""Plan -> llvmlite ir.Module with ONE native entry point, `graphc_entry`.

Imports llvmlite and the backend's codegen, emitters, kernels, layout and plan. The entry
takes one PyArrayObject pointer per argument (`arguments` gives the order: inputs, the
constant blob, outputs, the workspace), reads each array's data pointer from the
object (offset DATA_OFFSET, checked by runtime.py), and calls one kernel function per
kernel of the plan, in order (a huge plan's calls go into glue functions of bounded
size, `_build_parts`, in a glue module of their own that is code-generated at O0, so code
generation stays linear). Kernels of equal structure share
one function (a model that repeats a step K times compiles a handful of functions, not
K). A kernel with a lot of work (kernels.work >= PARALLEL_WORK) is split into pieces
along its split axis, one per thread (`threads`, gc.compile's option): native threads (pthread_create) run
the other pieces while the calling thread runs the first. A reduction to one point is
always cut in two halves, run on two threads or one after the other on one, and its
halves combined first-op-second: its result does not depend on the thread count (nor
does any other kernel's, whose pieces compute disjoint points).

The entry returns 0, the error site (plan.errors) that failed, MISALIGNED when an input's
data pointer is not a multiple of its item size (the wrapper copies and calls again), or
RERUN_EXACT when a kernel met a sin/cos/tan argument beyond the fast range (the wrapper
calls the `exact` build, which takes the C library's functions for those arguments).
A rerun starts from scratch: a program only reads inputs and constants before writing.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from graphc.backends.llvm import layout as L
from graphc.backends.llvm import pyentry
from graphc.backends.llvm.codegen import EMIT, Body, split_axis
from graphc.backends.llvm.emitters import (
    F64,
    I1,
    I32,
    I64,
    PTR,
    STATUS_FAILED,
    STATUS_RANGE,
    combine,
    load,
    memory_type,
    store,
)
from graphc.backends.llvm.jit import GLUE
from graphc.backends.llvm.kernels import (
    Branch,
    Check,
    Gather,
    Gemm,
    Kernel,
    Lapack,
    Loop,
    Map,
    Reduce,
    Scatter,
    checks_range,
    layouts,
    nested,
    work,
)
from graphc.backends.llvm.layout import Buffer, Layout
from graphc.backends.llvm.loops import counted_loop, i64
from graphc.backends.llvm.planner import ERROR_SLOT, Plan

ENTRY = "graphc_entry"
DATA_OFFSET = 16  # bytes from a PyArrayObject* to its `data` pointer (after PyObject_HEAD)
GIL_WORK = 1 << 16  # a call with this much work releases the GIL (about 50 µs or more)
PARALLEL_WORK = 1 << 20  # kernels.work units: a split starts threads per call (~40-60 us); pays from ~100 us
"""Measured on a quiet 2-core EPYC (1 << 18 units took ~30 us of vectorized tanh, not the 250 us once assumed):
at 1 << 18 a split lost up to 1.9x below ~3 * 2**18 units (x*2+1 at 2**17 elements, tanh at 2**14, W1's bias+tanh
loop) and won from ~5 * 2**18 (0.56-0.89x at 2**15-2**20 elements of tanh, exp+sin)."""
HUGE_GLUE = 2048  # instructions: an entry larger than this is compiled without optimization (unoptimized)
PART_GLUE = 256  # kernel calls plus their pointers: the glue of a huge plan is cut into functions of this size
ALIGN_PART = 128  # inputs whose alignment one glue part checks (8 instructions each)
OBJECTS = "graphc_objects"  # a huge plan's glue: i32 (ptr objects), the argument objects as an array
PART = "graphc_part"  # a huge plan's glue functions: graphc_part0, graphc_part1, ...
PTHREAD = ("pthread_create", "pthread_join")
F64_DTYPE = np.dtype("float64")
MISALIGNED = -1  # the entry's status: an input's data is not aligned to its item size
RERUN_EXACT = -2  # the entry's status: a sin/cos/tan argument needs the exact build
UNBOUNDED_COUNT = 1000  # the iterations an unbounded while_loop is taken to run, for total_work

Started = tuple[ir.Value, ir.Value, ir.Value]
"""A started piece: its thread handle's slot, its context (arguments, range, status) and pthread_create's result."""
Pointer = tuple[Buffer, int, tuple[tuple[int, int, int], ...]]
"""A buffer, a byte offset into it, and (depth, every, bytes) terms that move it with loop counters."""


def arguments(plan: Plan) -> list[str]:
    """The entry's parameters in order: 'input:k', 'constants', 'output:k', 'workspace'."""
    names = [f"input:{k}" for k in range(len(plan.inputs))]
    if plan.constant_bytes:
        names.append("constants")
    names += [f"output:{k}" for k in range(len(plan.outputs))]
    if plan.workspace_bytes:
        names.append("workspace")
    return names


@functools.cache
def threads_available() -> bool:
    """Whether this process has pthread_create/pthread_join; if so they are registered for JIT code."""
    try:
        process = ctypes.CDLL(None)
        symbols = {name: ctypes.cast(getattr(process, name), ctypes.c_void_p).value for name in PTHREAD}
    except (OSError, AttributeError, TypeError):
        return False
    for name, address in symbols.items():
        llvm.add_symbol(name, address)
    return True


def pointer_of(layout: Layout) -> Pointer:
    """Where element 0 of a layout is: its buffer, byte offset and moving byte offsets."""
    size = layout.dtype.itemsize
    moving = tuple((depth, every, step * size) for depth, every, step in layout.dynamic)
    return layout.buffer, layout.offset * size, moving


def signature(kernel: Kernel) -> tuple[Kernel, list[Pointer]]:
    """The kernel with its layouts re-based on pointer parameters, and what each parameter points to.

    Equal (buffer, offset) pairs share a parameter; take, scatter_add and checks get the error slot last.
    """
    numbers: dict[Pointer, int] = {}  # each distinct pointer's parameter, in order of first use (a dict: a
    # kernel of a big straight-line graph has thousands, and a list's index() made this quadratic)

    def rebase(layout: Layout) -> Layout:
        number = numbers.setdefault(pointer_of(layout), len(numbers))
        param = Buffer(L.PARAM, number, layout.dtype)
        return replace(layout, buffer=param, offset=0, dynamic=())

    fields: dict[str, object] = {}
    for name, value in vars(kernel).items():
        if isinstance(value, Layout):
            fields[name] = rebase(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Layout):
            fields[name] = tuple(rebase(v) for v in value)
    pointers = list(numbers)
    if isinstance(kernel, (Gather, Scatter, Check)):
        pointers.append((Buffer(L.WORK, ERROR_SLOT, layouts(kernel)[-1].dtype), 0, ()))
        fields["site"] = 1
    elif isinstance(kernel, (Map, Reduce, Lapack)) and kernel.site:
        fields["site"] = 1
    return replace(kernel, **fields), pointers  # type: ignore[arg-type]


def total_work(plan: Plan) -> int:
    """A rough count of the work of a whole call (kernels.work, plus m*n*k per matrix product)."""
    total = 0
    for kernel in plan.kernels:
        if isinstance(kernel, Gemm):
            total += math.prod(kernel.out.shape) * kernel.a.shape[-1]
        elif isinstance(kernel, Lapack):  # n^3 per matrix (n^2 per right-hand side once factored)
            n = kernel.pivots.shape[-1] - 1
            total += math.prod(kernel.pivots.shape[:-1]) * n * n * (n if kernel.a is not None else 1)
        elif isinstance(kernel, Loop):
            count = kernel.count if kernel.count >= 0 else UNBOUNDED_COUNT
            total += count * total_work(replace(plan, kernels=nested(kernel)))
        elif isinstance(kernel, Branch):
            total += total_work(replace(plan, kernels=nested(kernel)))
        elif isinstance(kernel, (Map, Reduce)):
            total += work(kernel)
        else:
            total += math.prod(layouts(kernel)[0].shape)
    return total


class Lowering:
    """Builds the module: kernel functions on demand, thread trampolines, the entry."""

    def __init__(self, plan: Plan, fastcall: bool = False, exact: bool = False, threads: int = 1) -> None:
        self.fastcall = fastcall
        self.exact = exact
        self.threads = threads
        self.plan = plan
        self.module = ir.Module(name="graphc")
        self.functions: dict[Kernel, ir.Function] = {}
        self.trampolines: dict[str, ir.Function] = {}
        self.parts = 0
        self.argument_numbers: dict[str, int] = {}
        self.signatures: dict[int, tuple[Kernel, list[Pointer]]] = {}  # signature() by id of a plan's kernel
        self.glue: ir.Module | None = None  # a huge plan's glue module (_build_parts); None for a single entry

    def signature(self, kernel: Kernel) -> tuple[Kernel, list[Pointer]]:
        """signature(kernel), computed once per kernel of the plan."""
        found = self.signatures.get(id(kernel))
        if found is None:
            found = self.signatures[id(kernel)] = signature(kernel)
        return found

    def kernel_function(self, kernel: Kernel, params: int) -> ir.Function:
        fn = self.functions.get(kernel)
        if fn is not None:
            return fn
        signature_ = ir.FunctionType(I32, [PTR] * params + [I64, I64])
        fn = ir.Function(self.module, signature_, f"kernel{len(self.functions)}")
        fn.linkage = "" if self.glue is not None else "internal"  # the glue module calls it: exported
        fn.attributes.add("noinline")
        fn.attributes.add("nounwind")
        for arg in fn.args[:params]:
            arg.add_attribute("noalias")
        EMIT[type(kernel)](Body(fn, params, self.status_bits(kernel) != 0, self.exact), kernel)  # type: ignore[operator]
        self.functions[kernel] = fn
        return fn

    def status_bits(self, kernel: Kernel) -> int:
        """The status bits a kernel's function may return (0: it cannot fail)."""
        bits = 0
        if isinstance(kernel, (Gather, Scatter, Check)) or (isinstance(kernel, (Map, Reduce, Lapack)) and kernel.site):
            bits |= STATUS_FAILED
        if checks_range(kernel) and not self.exact:
            bits |= STATUS_RANGE
        return bits

    def trampoline(self, kernel_fn: ir.Function, params: int) -> ir.Function:
        """`ptr name.thread(ptr ctx)`: ctx = [params..., lo, hi, status] as i64s; runs the kernel."""
        name = f"{kernel_fn.name}.thread"
        if name in self.trampolines:
            return self.trampolines[name]
        fn = ir.Function(self.module, ir.FunctionType(PTR, [PTR]), name)
        fn.linkage = "" if self.glue is not None else "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        (ctx,) = fn.args
        slots = [b.load(b.gep(ctx, [i64(i)], source_etype=I64), typ=I64) for i in range(params + 2)]
        pointers = [b.inttoptr(s, PTR) for s in slots[:params]]
        status = b.call(kernel_fn, [*pointers, slots[params], slots[params + 1]])
        b.store(b.zext(status, I64), b.gep(ctx, [i64(params + 2)], source_etype=I64))
        b.ret(ir.Constant(PTR, None))
        self.trampolines[name] = fn
        return fn

    def build(self) -> ir.Module:
        names = arguments(self.plan)
        sizes = [glue(kernel, self.signatures) for kernel in self.plan.kernels]
        if glue_floor(self.plan, len(names), sizes) > HUGE_GLUE:
            return self._build_parts(names, sizes)
        entry = ir.Function(self.module, ir.FunctionType(I32, [PTR] * len(names)), ENTRY)
        entry.attributes.add("nounwind")
        b = ir.IRBuilder(entry.append_basic_block("entry"))
        data = {}
        for name, arg in zip(names, entry.args, strict=True):
            address = b.gep(arg, [i64(DATA_OFFSET)], source_etype=ir.IntType(8))
            data[name] = b.load(address, typ=PTR, name=name.replace(":", ""))
        self._check_alignment(b, data)
        caller = Caller(self, b, data)
        for kernel in self.plan.kernels:
            caller.call(kernel)
        b.ret(ir.Constant(I32, 0))
        if self.fastcall:
            pyentry.add_fastcall(self.module, entry, total_work(self.plan) >= GIL_WORK)
        if instructions(entry) > HUGE_GLUE:
            for fn in (entry, self.module.globals.get(pyentry.CALL)):
                unoptimized(fn)
        return self.module

    def _build_parts(self, names: list[str], sizes: Sequence[Glue]) -> ir.Module:
        """A huge plan's glue as functions of bounded size, in a module of their own (`self.glue`).

        `graphc_objects(ptr objects)` takes the argument objects as an array (the fastcall
        wrapper passes its own); it calls `graphc_part{j}(objects)` in order, each of which
        reads the data pointers it needs and calls kernels with at most PART_GLUE calls
        and pointers together (glue_runs), returning 0 or the status the entry returns. The
        alignment checks are parts of their own, run first. ENTRY stores its parameters
        into an array and calls `graphc_objects`. The glue module (ENTRY, graphc_objects and
        the parts) is never optimized and is code-generated at O0 (jit.compile_text): straight-line
        glue gains nothing from O3, whose code generation of it costs most of a huge build.
        The kernels it calls are exported from the kernel module (`self.module`), which keeps
        the fastcall wrapper (optnone).
        """
        glue = self.glue = ir.Module(name="graphc_glue")
        objects_fn = ir.Function(glue, ir.FunctionType(I32, [PTR]), OBJECTS)
        objects_fn.attributes.add("nounwind")
        parts = [self._alignment_part(names, chunk) for chunk in _aligned_chunks(self.plan)]
        parts += [self._kernel_part(names, run) for run in glue_runs(self.plan.kernels, sizes)]
        b = ir.IRBuilder(objects_fn.append_basic_block("entry"))
        for part in parts:
            status = b.call(part, objects_fn.args)
            with b.if_then(b.icmp_unsigned("!=", status, ir.Constant(I32, 0)), likely=False):
                b.ret(status)
        b.ret(ir.Constant(I32, 0))
        for fn in [*self.functions.values(), *self.trampolines.values()]:
            ir.Function(glue, fn.function_type, fn.name)  # a declaration: the kernel module defines it
        entry = ir.Function(glue, ir.FunctionType(I32, [PTR] * len(names)), ENTRY)
        entry.attributes.add("nounwind")
        b = ir.IRBuilder(entry.append_basic_block("entry"))
        array = b.alloca(PTR, size=i64(len(names)), name="objects")
        for k, arg in enumerate(entry.args):
            b.store(arg, b.gep(array, [i64(k)], source_etype=PTR))
        b.ret(b.call(objects_fn, [array]))
        if self.fastcall:
            objects = ir.Function(self.module, objects_fn.function_type, OBJECTS)  # defined by the glue module
            pyentry.add_fastcall(self.module, objects, total_work(self.plan) >= GIL_WORK, by_array=True)
        for fn in (self.module.globals.get(pyentry.CALL), objects_fn, entry, *parts):
            unoptimized(fn)  # marked as well: optimizing the glue module's text (llvm_ir) would leave it so
        return self.module

    def _part(self, names: list[str]) -> tuple[ir.Function, ir.IRBuilder, PartData]:
        """A new glue part `i32 (ptr objects)`: its builder in the body block, and its data pointers."""
        assert self.glue is not None
        fn = ir.Function(self.glue, ir.FunctionType(I32, [PTR]), f"{PART}{self.parts}")
        self.parts += 1
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        loads = fn.append_basic_block("data")
        body = fn.append_basic_block("body")
        b = ir.IRBuilder(body)
        return fn, b, PartData(ir.IRBuilder(loads), fn.args[0], self.numbers(names))

    def numbers(self, names: list[str]) -> dict[str, int]:
        """Each argument's position in the objects array (made once: a huge plan has hundreds of parts)."""
        if len(self.argument_numbers) != len(names):
            self.argument_numbers = {name: k for k, name in enumerate(names)}
        return self.argument_numbers

    def _kernel_part(self, names: list[str], kernels: Sequence[Kernel]) -> ir.Function:
        fn, b, data = self._part(names)
        caller = Caller(self, b, data)
        for kernel in kernels:
            caller.call(kernel)
        b.ret(ir.Constant(I32, 0))
        data.finish(fn.blocks[1])
        return fn

    def _alignment_part(self, names: list[str], inputs: Sequence[int]) -> ir.Function:
        fn, b, data = self._part(names)
        misaligned: ir.Value = ir.Constant(I1, 0)
        for k in inputs:
            itemsize = self.plan.inputs[k].dtype.itemsize
            low_bits = b.and_(b.ptrtoint(data[f"input:{k}"], I64), i64(itemsize - 1))
            misaligned = b.or_(misaligned, b.icmp_unsigned("!=", low_bits, i64(0)))
        b.ret(b.select(misaligned, ir.Constant(I32, MISALIGNED), ir.Constant(I32, 0)))
        data.finish(fn.blocks[1])
        return fn

    def _check_alignment(self, b: ir.IRBuilder, data: dict[str, ir.Value]) -> None:
        """Return MISALIGNED unless every input's data pointer is a multiple of its item size."""
        misaligned: ir.Value | None = None
        for k, t in enumerate(self.plan.inputs):
            if t.dtype.itemsize == 1:
                continue
            low_bits = b.and_(b.ptrtoint(data[f"input:{k}"], I64), i64(t.dtype.itemsize - 1))
            bad = b.icmp_unsigned("!=", low_bits, i64(0))
            misaligned = bad if misaligned is None else b.or_(misaligned, bad)
        if misaligned is not None:
            with b.if_then(misaligned, likely=False):
                b.ret(ir.Constant(I32, MISALIGNED))


class Caller:
    """Emits the entry's calls: pointers for each kernel, threads when worth it, status checks."""

    def __init__(self, lowering: Lowering, b: ir.IRBuilder, data: Mapping[str, ir.Value]) -> None:
        self.lowering = lowering
        self.b = b
        self.data = data
        self.counters: dict[int, ir.Value] = {}  # the counter of each enclosing loop, by depth

    def address(self, pointer: Pointer) -> ir.Value:
        buffer, offset, moving = pointer
        if buffer.place == L.INPUT:
            base = self.data[f"input:{buffer.index}"]
        elif buffer.place == L.OUTPUT:
            base = self.data[f"output:{buffer.index}"]
        elif buffer.place == L.CONST:
            base, offset = self.data["constants"], offset + buffer.index
        elif buffer.place == L.WORK:
            base, offset = self.data["workspace"], offset + buffer.index
        else:  # never guess: a pointer into the wrong buffer is a silent wrong answer
            raise AssertionError(f"no address for a {buffer.place} buffer")
        total: ir.Value = i64(offset)
        for depth, every, step in moving:
            t = self.counters[depth]
            count = t if every == 1 else self.b.sdiv(t, i64(every))
            total = self.b.add(total, self.b.mul(count, i64(step)))
        if isinstance(total, ir.Constant) and offset == 0:
            return base
        return self.b.gep(base, [total], inbounds=True, source_etype=ir.IntType(8))

    def call(self, kernel: Kernel) -> None:
        if isinstance(kernel, Loop):
            self._loop(kernel)
            return
        if isinstance(kernel, Branch):
            self._branch(kernel)
            return
        shape_kernel, pointers = self.lowering.signature(kernel)
        fn = self.lowering.kernel_function(shape_kernel, len(pointers))
        args = [self.address(p) for p in pointers]
        axis = split_axis(kernel)
        extent = kernel.shape[axis] if axis is not None else 0  # type: ignore[union-attr]
        parts = self._parts(kernel, axis, extent)
        if parts == 1:
            status = self.b.call(fn, [*args, i64(0), i64(extent)])
        elif _to_point(kernel):
            status = self._split_to_point(fn, kernel, args, extent)  # type: ignore[arg-type]
        else:
            status = self._split(fn, [args] * parts, pieces(extent, parts))
        self._check_status(kernel, status)

    def _parts(self, kernel: Kernel, axis: int | None, extent: int) -> int:
        """How many pieces a kernel's split axis is cut into: 1 unless it has the work to share.

        Two for a reduction to one point whatever the thread count (so that its result
        does not depend on it); otherwise one per thread, at most one per index.
        """
        if axis is None or extent < 2 or work(kernel) < PARALLEL_WORK or not threads_available():
            return 1
        if _to_point(kernel):
            return 2
        return min(self.lowering.threads, extent)

    def _check_status(self, kernel: Kernel, status: ir.Value) -> None:
        """Leave the entry with the kernel's error site, or RERUN_EXACT, when its status says so."""
        b = self.b
        bits = self.lowering.status_bits(kernel)
        if not bits:
            return
        with b.if_then(b.icmp_unsigned("!=", status, ir.Constant(I32, 0)), likely=False):
            if bits == STATUS_RANGE:
                b.ret(ir.Constant(I32, RERUN_EXACT))
                return
            if bits == STATUS_FAILED:
                b.ret(ir.Constant(I32, kernel.site))  # type: ignore[union-attr]
                return
            failed = b.icmp_unsigned("!=", b.and_(status, ir.Constant(I32, STATUS_FAILED)), ir.Constant(I32, 0))
            b.ret(b.select(failed, ir.Constant(I32, kernel.site), ir.Constant(I32, RERUN_EXACT)))  # type: ignore[union-attr]

    def _branch(self, k: Branch) -> None:
        """cond: if the predicate holds, the `then` kernels, else the `otherwise` ones."""
        taken = load(self.b, self.address(pointer_of(k.pred)), k.pred.dtype)
        with self.b.if_else(taken) as (then, otherwise):
            with then:
                for kernel in k.then:
                    self.call(kernel)
            with otherwise:
                for kernel in k.otherwise:
                    self.call(kernel)

    def _while(self, k: Loop) -> None:
        """while_loop: test (count < max_iter, then the condition's kernels and predicate), run the body, repeat."""
        b = self.b
        fn = b.function
        start = b.block
        test, check, run, done = (
            fn.append_basic_block(f"while{k.depth}.{n}") for n in ("test", "check", "run", "done")
        )
        b.branch(test)
        b.position_at_end(test)
        count = b.phi(I64, name=f"n{k.depth}")
        count.add_incoming(i64(0), start)
        self.counters[k.depth] = count
        if k.count >= 0:
            b.cbranch(b.icmp_signed("<", count, i64(k.count)), check, done)
        else:
            b.branch(check)
        b.position_at_end(check)
        for kernel in k.condition:
            self.call(kernel)
        assert k.predicate is not None
        go = load(b, self.address(pointer_of(k.predicate)), k.predicate.dtype)
        b.cbranch(go, run, done)
        b.position_at_end(run)
        for kernel in k.body:
            self.call(kernel)
        count.add_incoming(b.add(count, i64(1)), b.block)
        b.branch(test)
        b.position_at_end(done)

    def _loop(self, k: Loop) -> None:
        """A scan: a counted loop over t calling the body's kernels (guarded ones every k-th t)."""
        if k.kind == "fixed_point":
            self._fixed_point(k)
            return
        if k.kind == "while_loop":
            self._while(k)
            return
        b = self.b

        def iteration(i: ir.Value) -> None:
            self.counters[k.depth] = b.sub(i64(k.count - 1), i) if k.reverse else i
            for kernel, guard in zip(k.body, k.guards, strict=True):
                if guard == 1:
                    self.call(kernel)
                    continue
                due = b.icmp_signed("==", b.srem(self.counters[k.depth], i64(guard)), i64(0))
                with b.if_then(due):
                    self.call(kernel)

        counted_loop(b, i64(0), i64(k.count), iteration, f"t{k.depth}")

    def _fixed_point(self, k: Loop) -> None:
        """Iterate the body until the residual is <= tol; NaN or max_iter store (it, r) and fail."""
        b = self.b
        fn = b.function
        start = b.block
        loop, more, again, fail, done = (
            fn.append_basic_block(f"fp{k.depth}.{n}") for n in ("loop", "more", "again", "fail", "done")
        )
        b.branch(loop)
        b.position_at_end(loop)
        iteration = b.phi(I64, name=f"it{k.depth}")
        iteration.add_incoming(i64(1), start)
        self.counters[k.depth] = b.sub(iteration, i64(1))
        for kernel in k.body:
            self.call(kernel)
        residual = self._residual(k)
        b.cbranch(b.fcmp_ordered("<=", residual, ir.Constant(F64, k.tol)), done, more)
        b.position_at_end(more)
        finite = b.fcmp_ordered("ord", residual, residual)
        b.cbranch(b.and_(finite, b.icmp_signed("<", iteration, i64(k.count))), again, fail)
        b.position_at_end(again)
        iteration.add_incoming(b.add(iteration, i64(1)), again)
        b.branch(loop)
        b.position_at_end(fail)
        workspace = self.data["workspace"]
        b.store(iteration, workspace)
        b.store(residual, b.gep(workspace, [i64(8)], source_etype=ir.IntType(8)))
        b.ret(ir.Constant(I32, k.site))
        b.position_at_end(done)

    def _residual(self, k: Loop) -> ir.Value:
        """The largest residual of the components as a double (NaN propagates)."""
        total: ir.Value = ir.Constant(F64, float("-inf"))
        for slot in k.residuals:
            value = load(self.b, self.address(pointer_of(slot)), slot.dtype)
            if slot.dtype != F64_DTYPE:
                value = self.b.fpext(value, F64)
            total = combine(self.b, "max", total, value, F64_DTYPE)
        return total

    def _alloca(self, etype: ir.Type, count: int, name: str) -> ir.Value:
        """A stack slot at the top of the entry block (so it is not re-allocated in a loop)."""
        here = self.b.block
        self.b.position_at_start(self.b.function.entry_basic_block)
        slot = self.b.alloca(etype, size=i64(count), name=name)
        self.b.position_at_end(here)
        return slot

    def _split(self, fn: ir.Function, argsets: list[list[ir.Value]], bounds: list[tuple[int, int]]) -> ir.Value:
        """Run piece 0 here and every other piece on a new thread (or here, when none starts or
        there is one thread); the pieces' statuses or-ed together."""
        b = self.b
        if self.lowering.threads == 1:
            statuses = [b.call(fn, [*args, i64(lo), i64(hi)]) for args, (lo, hi) in zip(argsets, bounds, strict=True)]
            return functools.reduce(b.or_, statuses)
        others = list(zip(argsets[1:], bounds[1:], strict=True))
        started = [self._start(fn, args, lo, hi) for args, (lo, hi) in others]
        status = b.call(fn, [*argsets[0], i64(bounds[0][0]), i64(bounds[0][1])])
        for handle, (args, (lo, hi)) in zip(started, others, strict=True):
            status = b.or_(status, self._join(fn, handle, args, lo, hi))
        return status

    def _start(self, fn: ir.Function, args: list[ir.Value], lo: int, hi: int) -> Started:
        """Start a thread running fn(args, lo, hi): (its handle slot, its context, pthread_create's result)."""
        b = self.b
        params = len(args)
        ctx = self._alloca(I64, params + 3, "ctx")
        thread = self._alloca(I64, 1, "thread")
        for i, pointer in enumerate(args):
            b.store(b.ptrtoint(pointer, I64), b.gep(ctx, [i64(i)], source_etype=I64))
        b.store(i64(lo), b.gep(ctx, [i64(params)], source_etype=I64))
        b.store(i64(hi), b.gep(ctx, [i64(params + 1)], source_etype=I64))
        create, _ = _pthread(b.function.module)
        trampoline = self.lowering.trampoline(fn, params)
        return thread, ctx, b.call(create, [thread, ir.Constant(PTR, None), trampoline, ctx])

    def _join(self, fn: ir.Function, handle: Started, args: list[ir.Value], lo: int, hi: int) -> ir.Value:
        """The status of a piece: joined from its thread, or computed here when the thread did not start."""
        b = self.b
        thread, ctx, started = handle
        params = len(args)
        _, join = _pthread(b.function.module)
        with b.if_else(b.icmp_signed("==", started, ir.Constant(I32, 0))) as (joined, alone):
            with joined:
                b.call(join, [b.load(thread, typ=I64), ir.Constant(PTR, None)])
                theirs_joined = b.trunc(b.load(b.gep(ctx, [i64(params + 2)], source_etype=I64), typ=I64), I32)
                block_joined = b.block
            with alone:
                theirs_alone = b.call(fn, [*args, i64(lo), i64(hi)])
                block_alone = b.block
        theirs = b.phi(I32)
        theirs.add_incoming(theirs_joined, block_joined)
        theirs.add_incoming(theirs_alone, block_alone)
        return theirs

    def _split_to_point(self, fn: ir.Function, kernel: Reduce, args: list[ir.Value], extent: int) -> ir.Value:
        """A reduction to one point: each half into its own partial result, then first op second."""
        b = self.b
        dtype = kernel.out.dtype
        _, pointers = self.lowering.signature(kernel)
        position = pointers.index(pointer_of(kernel.out))
        partials = self._alloca(memory_type(dtype), 2, "partials")
        second_slot = b.gep(partials, [i64(1)], source_etype=memory_type(dtype))
        first = list(args)
        second = list(args)
        first[position] = partials
        second[position] = second_slot
        status = self._split(fn, [first, second], pieces(extent, 2))
        total = combine(b, kernel.kind, load(b, partials, dtype), load(b, second_slot, dtype), dtype)
        store(b, total, args[position], dtype)
        return status


class PartData(Mapping[str, ir.Value]):
    """The data pointers of one glue part, loaded from the objects array on first use.

    The loads go to the part's first block, which dominates every use (a first use may be
    inside a loop or a branch); `finish` ends that block with a jump to the body.
    """

    def __init__(self, b: ir.IRBuilder, objects: ir.Value, numbers: dict[str, int]) -> None:
        self.b = b
        self.objects = objects
        self.numbers = numbers
        self.loaded: dict[str, ir.Value] = {}

    def __getitem__(self, name: str) -> ir.Value:
        value = self.loaded.get(name)
        if value is None:
            b = self.b
            b.position_at_end(b.block)  # _alloca may have put stack slots at the block's start
            slot = b.gep(self.objects, [i64(self.numbers[name])], source_etype=PTR)
            address = b.gep(b.load(slot, typ=PTR), [i64(DATA_OFFSET)], source_etype=ir.IntType(8))
            value = self.loaded[name] = b.load(address, typ=PTR, name=name.replace(":", ""))
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.numbers)

    def __len__(self) -> int:
        return len(self.numbers)

    def finish(self, body: ir.Block) -> None:
        self.b.position_at_end(self.b.block)
        self.b.branch(body)


Glue = tuple[int, int]
"""A kernel call's glue: at least how many entry instructions it takes, and its calls plus pointers."""


def glue(kernel: Kernel, signatures: dict[int, tuple[Kernel, list[Pointer]]]) -> Glue:
    """A kernel's Glue, loop and branch bodies included (signatures: memo of signature() by id)."""
    inner = nested(kernel)
    if inner or isinstance(kernel, (Loop, Branch)):
        sizes = [glue(k, signatures) for k in inner]
        return 1 + sum(floor for floor, _ in sizes), 1 + sum(weight for _, weight in sizes)
    found = signatures.get(id(kernel))
    if found is None:
        found = signatures[id(kernel)] = signature(kernel)
    pointers = found[1]
    return 1 + sum(1 for pointer in pointers if _offset_in_base(pointer) or pointer[2]), 1 + len(pointers)


def _offset_in_base(pointer: Pointer) -> int:
    """The byte offset of a pointer from its base argument's data (Caller.address's constant part)."""
    buffer, offset, _ = pointer
    return offset + buffer.index if buffer.place in (L.WORK, L.CONST) else offset


def glue_floor(plan: Plan, arguments: int, sizes: Sequence[Glue]) -> int:
    """A lower bound of the instructions of the single entry function `plan` would get.

    Two per argument (its data pointer), three per input whose alignment is checked, and
    each kernel's (`sizes`: glue of plan.kernels) call and address computations. A plan
    above HUGE_GLUE gets bounded glue parts instead, so every plan that the single entry
    would have compiled with optimization still gets it.
    """
    aligned = sum(1 for t in plan.inputs if t.dtype.itemsize > 1)
    return 2 * arguments + 3 * aligned + sum(floor for floor, _ in sizes)


def glue_runs(kernels: Sequence[Kernel], sizes: Sequence[Glue]) -> list[list[Kernel]]:
    """The top-level kernels in consecutive runs of at most PART_GLUE calls and pointers each.

    A single kernel (or loop) above the bound is a run of its own: a loop is never cut.
    """
    runs: list[list[Kernel]] = [[]]
    total = 0
    for kernel, (_, weight) in zip(kernels, sizes, strict=True):
        if runs[-1] and total + weight > PART_GLUE:
            runs.append([])
            total = 0
        runs[-1].append(kernel)
        total += weight
    return [run for run in runs if run]


def _aligned_chunks(plan: Plan) -> list[list[int]]:
    """The inputs whose alignment is checked (item size above 1), ALIGN_PART to a chunk."""
    checked = [k for k, t in enumerate(plan.inputs) if t.dtype.itemsize > 1]
    return [checked[j : j + ALIGN_PART] for j in range(0, len(checked), ALIGN_PART)]


def pieces(extent: int, parts: int) -> list[tuple[int, int]]:
    """[0, extent) cut into `parts` ranges as even as can be, the larger ones first ((extent + 1) // 2 for two)."""
    cuts = [(j * extent + parts - 1) // parts for j in range(parts)] + [extent]
    return list(itertools.pairwise(cuts))


def _to_point(kernel: Kernel) -> bool:
    """A reduction whose result is one point (its halves need partial results)."""
    return isinstance(kernel, Reduce) and not any(kernel.out.strides)


def instructions(fn: ir.Function) -> int:
    """The number of instructions in a function's body."""
    return sum(len(block.instructions) for block in fn.blocks)


def unoptimized(fn: ir.Function | None) -> None:
    """Mark a glue function (the entry, its fastcall wrapper) to be compiled without optimization.

    A huge entry (thousands of kernel calls and pointers) is straight-line glue: LLVM's O3
    pipeline and code generation grow faster than linearly on it (2,000 scalar inputs:
    most of a 20 s compile) for nothing, since the work is in the kernels, which stay at O3.
    """
    if isinstance(fn, ir.Function):
        fn.attributes.add("noinline")
        fn.attributes.add("optnone")


def _pthread(module: ir.Module) -> tuple[ir.Function, ir.Function]:
    create = module.globals.get("pthread_create")
    if create is None:
        create = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]), "pthread_create")
    join = module.globals.get("pthread_join")
    if join is None:
        join = ir.Function(module, ir.FunctionType(I32, [I64, PTR]), "pthread_join")
    return create, join


def lower(plan: Plan, fastcall: bool = False, exact: bool = False, threads: int = 1) -> str:
    """The IR text of a plan: kernel functions, the entry point ENTRY and (fastcall) pyentry.CALL.

    A huge plan's glue module follows the kernel module after jit.GLUE (its own module,
    compiled without optimization). `exact` is the build for huge sin/cos/tan arguments
    (see the module docstring); `threads`: how many threads a kernel with enough work is
    shared among.
    """
    lowering = Lowering(plan, fastcall, exact, threads)
    kernels = str(lowering.build())
    return kernels if lowering.glue is None else kernels + GLUE + str(lowering.glue)
