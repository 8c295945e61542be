"""The body of one kernel function per kernel kind, in LLVM IR through llvmlite's IRBuilder.

Imports llvmlite and the backend's blas, emitters, kernels, layout, loops and plan. Every
kernel function has the signature `i32 (ptr noalias p0, ..., i64 lo, i64 hi)`: one pointer
per distinct buffer it touches (already at the layout's offset), the range of its
split axis (the loop that two threads may share), and a status result: 0, or the bits
STATUS_FAILED (a take/scatter index or an integer power exponent is bad) and
STATUS_RANGE (a sin/cos/tan argument beyond the fast range, emitters.py). Layouts in the kernel name
their pointer as Buffer(PARAM, k).

Accumulation order of reductions (sum, prod, max, min), documented here once:
- last axis reduced, at least LANES long: every output point keeps LANES partial
  results; lane l accumulates, in increasing order, the points whose last-axis index
  is congruent to l modulo LANES (counting from the start of the thread's range), over
  the outer reduced axes in C order; the lanes are then combined by a halving tree
  ((l, l + LANES/2) pairs, then again). The lane loop has no loop-carried dependence, so
  LLVM vectorizes it without reassociating anything itself.
- last axis reduced, shorter: one accumulator, points in C order.
- last axis kept: the output holds the identity and is updated in place, the reduced
  points reaching it in C order (the vectorized loop runs across output points).
- split across two threads (lower.py): each thread reduces its half of the split
  axis; for a reduction to one point the two partial results are combined
  first-half-op-second-half.
NumPy instead sums float arrays pairwise in blocks of 8 unrolled partial sums, so sums
agree with NumPy to rounding (relative differences of order n * 1e-16 at worst), not
bit for bit; max and min are exact (NaN propagates); integer and bool reductions are exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from llvmlite import ir

from graphc.backends.llvm import blas
from graphc.backends.llvm.emitters import (
    EMITTERS,
    I1,
    I32,
    I64,
    Scalar,
    combine,
    constant,
    load,
    memory_type,
    store,
    value_type,
)
from graphc.backends.llvm.kernels import (
    Accumulate,
    ArgReduce,
    Check,
    Gather,
    Gemm,
    Instr,
    Kernel,
    Lapack,
    Map,
    Reduce,
    Scatter,
    Sort,
)
from graphc.backends.llvm.lapack import emit_lapack
from graphc.backends.llvm.layout import Layout, contiguous_strides
from graphc.backends.llvm.loops import counted_loop, element, full_bounds, i64, linear, nest
from graphc.backends.llvm.plan import identity, matrix_order
from graphc.backends.llvm.sort import emit_sort

Bounds = list[tuple[ir.Value, ir.Value]]


def split_axis(kernel: Kernel) -> int | None:
    """The loop axis whose range [lo, hi) a kernel function takes (None: not splittable)."""
    if isinstance(kernel, Map):
        return 0 if kernel.shape else None
    if isinstance(kernel, Reduce):
        kept = [a for a in range(len(kernel.shape)) if a not in kernel.axes]
        return kept[0] if kept else min(kernel.axes)
    return None


class Body:
    """One kernel function being emitted: its builder, pointers, range and status slot."""

    def __init__(self, fn: ir.Function, params: int, error: bool, exact: bool = False) -> None:
        self.fn = fn
        self.exact = exact
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.params = list(fn.args[:params])
        self.lo, self.hi = fn.args[params], fn.args[params + 1]
        self.error = None
        if error:
            self.error = self.b.alloca(I32, name="status")
            self.b.store(ir.Constant(I32, 0), self.error)

    def pointer(self, layout: Layout, indices: Sequence[ir.Value]) -> ir.Value:
        offset = linear(self.b, indices, layout.strides)
        return element(self.b, self.params[layout.buffer.index], memory_type(layout.dtype), offset)

    def read(self, layout: Layout, indices: Sequence[ir.Value]) -> ir.Value:
        return load(self.b, self.pointer(layout, indices), layout.dtype)

    def write(self, value: ir.Value, layout: Layout, indices: Sequence[ir.Value]) -> None:
        store(self.b, value, self.pointer(layout, indices), layout.dtype)

    def bounds(self, shape: Sequence[int], axis: int | None) -> Bounds:
        bounds = full_bounds(shape)
        if axis is not None:
            bounds[axis] = (self.lo, self.hi)
        return bounds

    def evaluate(
        self, instrs: Sequence[Instr], operands: Sequence[Layout], indices: Sequence[ir.Value], shape: Sequence[int]
    ) -> ir.Value:  # fmt: skip
        """The kernel's per-point value at `indices` of its iteration `shape`."""
        return self.evaluate_all(instrs, operands, indices, shape)[-1]

    def evaluate_all(
        self, instrs: Sequence[Instr], operands: Sequence[Layout], indices: Sequence[ir.Value], shape: Sequence[int]
    ) -> list[ir.Value]:
        """Every instruction's value at `indices` (`index`: the point's flat C-order position in `shape`)."""
        values: list[ir.Value] = []
        scalar = Scalar(self.b, self.error, self.exact)
        for instr in instrs:
            if instr.op == "load":
                values.append(self.read(operands[instr.args[0]], indices))
            elif instr.op == "index":
                values.append(linear(self.b, indices, contiguous_strides(shape)))
            elif instr.op == "const":
                values.append(constant(instr.attr("value"), instr.dtype))  # type: ignore[arg-type]
            elif instr.op == "copy":
                values.append(values[instr.args[0]])
            else:
                args = [values[a] for a in instr.args]
                types = [instrs[a].dtype for a in instr.args]
                values.append(EMITTERS[instr.op](scalar, args, types, instr.dtype, dict(instr.attrs)))
        scalar.flush()
        return values

    def finish(self) -> None:
        status = self.b.load(self.error, typ=I32) if self.error is not None else ir.Constant(I32, 0)
        self.b.ret(status)


# --- Map ------------------------------------------------------------------------------------------------


def emit_map(body: Body, k: Map) -> None:
    def point(indices: list[ir.Value]) -> None:
        values = body.evaluate_all(k.instrs, k.operands, indices, k.shape)
        for value, out in zip(k.extra_values, k.extra_outs, strict=True):
            body.write(values[value], out, indices)
        body.write(values[-1], k.out, indices)

    nest(body.b, body.bounds(k.shape, split_axis(k)), point)
    body.finish()


# --- Reduce -----------------------------------------------------------------------------------------------


def emit_reduce(body: Body, k: Reduce) -> None:
    if k.inner:
        _emit_inner_reduce(body, k)
    else:
        _emit_outer_reduce(body, k)
    body.finish()


def _emit_outer_reduce(body: Body, k: Reduce) -> None:
    """The last axis is kept: out[kept] = op(out[kept], value) in C order, vectorized across outputs."""
    b = body.b
    dtype = k.out.dtype

    def point(indices: list[ir.Value]) -> None:
        address = body.pointer(k.out, indices)
        value = body.evaluate(k.instrs, k.operands, indices, k.shape)
        store(b, combine(b, k.kind, load(b, address, dtype), value, dtype), address, dtype)

    nest(b, body.bounds(k.shape, split_axis(k)), point)


def _emit_inner_reduce(body: Body, k: Reduce) -> None:
    """The last axis is reduced: LANES (or one) partial results per output point, then a halving tree."""
    b = body.b
    dtype = k.out.dtype
    etype = memory_type(dtype)
    lanes = b.alloca(etype, size=i64(k.lanes), name="lanes")
    kept = [a for a in range(len(k.shape)) if a not in k.axes]
    reduced = sorted(k.axes)
    split = split_axis(k)
    bounds = body.bounds(k.shape, split)
    start = constant(identity(k.kind, dtype), dtype)

    def output_point(kept_indices: list[ir.Value]) -> None:
        for lane in range(k.lanes):
            store(b, start, element(b, lanes, etype, i64(lane)), dtype)

        def reduced_point(outer: list[ir.Value]) -> None:
            indices: dict[int, ir.Value] = dict(zip(kept, kept_indices, strict=True))
            indices.update(zip(reduced[:-1], outer, strict=True))
            _accumulate_inner(body, k, lanes, indices, bounds[reduced[-1]])

        nest(b, [bounds[a] for a in reduced[:-1]], reduced_point, name="r")
        values = [load(b, element(b, lanes, etype, i64(lane)), dtype) for lane in range(k.lanes)]
        while len(values) > 1:
            half = len(values) // 2
            values = [combine(b, k.kind, values[i], values[i + half], dtype) for i in range(half)]
        body.write(values[0], k.out, _ordered(kept_indices, kept, len(k.shape)))

    nest(b, [bounds[a] for a in kept], output_point, name="o")


def _ordered(values: list[ir.Value], axes: list[int], ndim: int) -> list[ir.Value]:
    """Indices for every axis: the given ones at `axes`, 0 elsewhere (reduced axes have stride 0 in out)."""
    full = [i64(0)] * ndim
    for axis, value in zip(axes, values, strict=True):
        full[axis] = value
    return full


def _accumulate_inner(body: Body, k: Reduce, lanes: ir.Value, fixed: dict[int, ir.Value],
                      bounds: tuple[ir.Value, ir.Value]) -> None:  # fmt: skip
    """lanes[l] = op(lanes[l], value) along the last axis: full blocks of LANES, then the tail."""
    b = body.b
    dtype = k.out.dtype
    etype = memory_type(dtype)
    last = len(k.shape) - 1
    lo, hi = bounds

    def add(lane: ir.Value, j: ir.Value) -> None:
        indices = [fixed.get(a, j) for a in range(last)] + [j]
        values = body.evaluate_all(k.instrs, k.operands, indices, k.shape)
        for extra, out in zip(k.extra_values, k.extra_outs, strict=True):
            body.write(values[extra], out, indices)
        value = values[-1]
        slot = element(b, lanes, etype, lane)
        store(b, combine(b, k.kind, load(b, slot, dtype), value, dtype), slot, dtype)

    if k.lanes == 1:
        counted_loop(b, lo, hi, lambda j: add(i64(0), j), "j")
        return
    width = i64(k.lanes)
    blocks = b.sdiv(b.sub(hi, lo), width)

    def block(n: ir.Value) -> None:
        base = b.add(lo, b.mul(n, width))
        counted_loop(b, i64(0), width, lambda lane: add(lane, b.add(base, lane)), "lane")

    counted_loop(b, i64(0), blocks, block, "block")
    tail = b.add(lo, b.mul(blocks, width))
    counted_loop(b, i64(0), b.sub(hi, tail), lambda lane: add(lane, b.add(tail, lane)), "tail")


# --- ArgReduce -----------------------------------------------------------------------------------------------


def _better(b: ir.IRBuilder, kind: str, x: ir.Value, best: ir.Value, dtype: np.dtype) -> ir.Value:
    """Whether x replaces the best so far: strictly more extreme, or the first NaN."""
    op = ">" if kind == "argmax" else "<"
    if dtype.kind == "i":
        return b.icmp_signed(op, x, best)
    if dtype.kind == "b":
        return b.icmp_unsigned(op, x, best)
    best_is_number = b.fcmp_ordered("ord", best, best)
    return b.and_(best_is_number, b.or_(b.fcmp_ordered(op, x, best), b.fcmp_unordered("uno", x, x)))


def emit_arg_reduce(body: Body, k: ArgReduce) -> None:
    b = body.b
    shape = k.operand.shape
    dtype = k.operand.dtype
    best = b.alloca(value_type(dtype), name="best")
    best_at = b.alloca(I64, name="best_at")
    kept = [a for a in range(len(shape)) if a not in k.axes]
    reduced = sorted(k.axes)
    flat = contiguous_strides([shape[a] for a in reduced])

    def output_point(kept_indices: list[ir.Value]) -> None:
        b.store(body.read(k.operand, _ordered(kept_indices, kept, len(shape))), best)
        b.store(i64(0), best_at)

        def candidate(red_indices: list[ir.Value]) -> None:
            indices = _ordered(kept_indices + red_indices, kept + reduced, len(shape))
            x = body.read(k.operand, indices)
            old = b.load(best, typ=value_type(dtype))
            better = _better(b, k.kind, x, old, dtype)
            b.store(b.select(better, x, old), best)
            position = linear(b, red_indices, flat)
            b.store(b.select(better, position, b.load(best_at, typ=I64)), best_at)

        nest(b, full_bounds([shape[a] for a in reduced]), candidate, name="r")
        body.write(b.load(best_at, typ=I64), k.out, _ordered(kept_indices, kept, len(shape)))

    nest(b, full_bounds([shape[a] for a in kept]), output_point, name="o")
    body.finish()


# --- Gemm -------------------------------------------------------------------------------------------------------


def emit_gemm(body: Body, k: Gemm) -> None:
    b = body.b
    dtype = k.out.dtype
    gemm = blas.declare_gemm(b.module, dtype)
    m, n = k.out.shape[-2:]
    depth = k.a.shape[-1]
    a_trans, lda = matrix_order(k.a)  # type: ignore[misc]
    b_trans, ldb = matrix_order(k.b)  # type: ignore[misc]
    enum = ir.IntType(32)
    real = value_type(dtype)
    batch = k.out.shape[:-2]

    def product(indices: list[ir.Value]) -> None:
        full = [*indices, i64(0), i64(0)]
        arguments = [
            ir.Constant(enum, blas.ROW_MAJOR),
            ir.Constant(enum, blas.TRANS if a_trans else blas.NO_TRANS),
            ir.Constant(enum, blas.TRANS if b_trans else blas.NO_TRANS),
            i64(m), i64(n), i64(depth),
            ir.Constant(real, 1.0), body.pointer(k.a, full), i64(lda),
            body.pointer(k.b, full), i64(ldb),
            ir.Constant(real, 0.0), body.pointer(k.out, full), i64(max(n, 1)),
        ]  # fmt: skip
        b.call(gemm, arguments)

    nest(b, full_bounds(batch), product, name="batch")
    body.finish()


# --- Gather / Scatter -------------------------------------------------------------------------------------------


def _checked_index(body: Body, indices: Layout, at: list[ir.Value], size: int) -> ir.Value:
    """indices[at] made non-negative, or a jump to the failure exit (which records the raw index)."""
    b = body.b
    raw = body.read(indices, at)
    fixed = b.select(b.icmp_signed("<", raw, i64(0)), b.add(raw, i64(size)), raw)
    bad = b.icmp_unsigned(">=", fixed, i64(size))
    fail = body.fn.append_basic_block("bad_index")
    good = body.fn.append_basic_block("index_ok")
    b.cbranch(bad, fail, good)
    b.position_at_end(fail)
    slot = body.params[-1]
    b.store(raw, slot)
    b.ret(ir.Constant(I32, 1))
    b.position_at_end(good)
    return fixed


def emit_gather(body: Body, k: Gather) -> None:
    source, axis = k.operand, k.axis
    count = len(k.indices.shape)
    size = source.shape[axis]

    def point(indices: list[ir.Value]) -> None:
        fixed = _checked_index(body, k.indices, indices[axis : axis + count], size)
        at = [*indices[:axis], fixed, *indices[axis + count :]]
        body.write(body.read(source, at), k.out, indices)

    nest(body.b, full_bounds(k.out.shape), point)
    body.finish()


def emit_scatter(body: Body, k: Scatter) -> None:
    b = body.b
    axis = k.axis
    count = len(k.indices.shape)
    dtype = k.out.dtype

    def point(indices: list[ir.Value]) -> None:
        fixed = _checked_index(body, k.indices, indices[axis : axis + count], k.out.shape[axis])
        address = body.pointer(k.out, [*indices[:axis], fixed, *indices[axis + count :]])
        total = combine(b, "sum", load(b, address, dtype), body.read(k.values, indices), dtype)
        store(b, total, address, dtype)

    nest(b, full_bounds(k.values.shape), point)
    body.finish()


# --- Check -------------------------------------------------------------------------------------------------------


def emit_check(body: Body, k: Check) -> None:
    """The first non-finite element (C order): its position and value go to the error slot, status 1."""
    b = body.b
    shape = k.operand.shape
    flat = contiguous_strides(shape)

    def point(indices: list[ir.Value]) -> None:
        value = body.read(k.operand, indices)
        magnitude = b.call(_fabs(b.module, value.type), [value])
        finite = b.fcmp_ordered("<", magnitude, ir.Constant(value.type, float("inf")))
        bad = body.fn.append_basic_block("not_finite")
        good = body.fn.append_basic_block("finite")
        b.cbranch(finite, good, bad)
        b.position_at_end(bad)
        slot = body.params[-1]
        b.store(linear(b, indices, flat), slot)
        wide = value if value.type == ir.DoubleType() else b.fpext(value, ir.DoubleType())
        b.store(wide, b.gep(slot, [i64(8)], source_etype=ir.IntType(8)))
        b.ret(ir.Constant(I32, 1))
        b.position_at_end(good)

    nest(b, full_bounds(shape), point)
    body.finish()


def _fabs(module: ir.Module, fptype: ir.Type) -> ir.Function:
    name = "llvm.fabs.f64" if fptype == ir.DoubleType() else "llvm.fabs.f32"
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, ir.FunctionType(fptype, [fptype]), name)


# --- Accumulate -------------------------------------------------------------------------------------------------


def emit_accumulate(body: Body, k: Accumulate) -> None:
    """Loops: the axes before `axis`; then `axis` in accumulation order; the axes after it innermost (a row of
    running values updated together, so it vectorizes). The first element is copied (NumPy's accumulate
    starts from it, keeping -0.0); each later one is combined with its predecessor's result."""
    b = body.b
    shape = k.out.shape
    axis = k.axis
    n = shape[axis]
    start = i64(n - 1 if k.reverse else 0)
    step = i64(1 if k.reverse else -1)

    def row(before: list[ir.Value]) -> None:
        def copy(after: list[ir.Value]) -> None:
            indices = [*before, start, *after]
            body.write(body.read(k.operand, indices), k.out, indices)

        def along(i: ir.Value) -> None:
            position = b.sub(i64(n - 1), i) if k.reverse else i
            previous = b.add(position, step)

            def point(after: list[ir.Value]) -> None:
                indices = [*before, position, *after]
                prior = body.read(k.out, [*before, previous, *after])
                value = combine(b, k.kind, prior, body.read(k.operand, indices), k.out.dtype)
                body.write(value, k.out, indices)

            nest(b, full_bounds(shape[axis + 1 :]), point, name="a")

        nest(b, full_bounds(shape[axis + 1 :]), copy, name="f")
        counted_loop(b, i64(1), i64(n), along, "acc")

    nest(b, full_bounds(shape[:axis]), row, name="o")
    body.finish()


EMIT = {
    Map: emit_map,
    Reduce: emit_reduce,
    ArgReduce: emit_arg_reduce,
    Gemm: emit_gemm,
    Lapack: emit_lapack,
    Gather: emit_gather,
    Scatter: emit_scatter,
    Check: emit_check,
    Accumulate: emit_accumulate,
    Sort: emit_sort,
}

__all__ = ["EMIT", "I1", "Body", "split_axis"]
