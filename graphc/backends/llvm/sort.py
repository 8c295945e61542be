"""The Sort kernel in LLVM IR: an in-place heapsort of each row of an int64 array.

Imports llvmlite and the backend's loops. Heapsort needs no memory beyond the row and
no external symbol (so cached objects link as they are), and sorts n values in
O(n log n) comparisons whatever their order. Equal int64 values are indistinguishable,
so the result equals numpy.sort's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from llvmlite import ir

from graphc.backends.llvm.loops import counted_loop, element, i64

if TYPE_CHECKING:
    from graphc.backends.llvm.codegen import Body
    from graphc.backends.llvm.kernels import Sort

I64 = ir.IntType(64)
PTR = ir.PointerType()
SIFT = "graphc.sift_down_i64"


def _sift_down(module: ir.Module) -> ir.Function:
    """`void sift(ptr a, i64 root, i64 end)`: move a[root] down the max-heap a[0:end] to its place."""
    found = module.globals.get(SIFT)
    if found is not None:
        return found
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64, I64]), SIFT)
    fn.linkage = "internal"
    a, root, end = fn.args
    entry, loop, check, swap, done = (fn.append_basic_block(n) for n in ("entry", "loop", "check", "swap", "done"))
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    at = b.phi(I64, name="at")
    at.add_incoming(root, entry)
    child = b.add(b.mul(at, i64(2)), i64(1))
    b.cbranch(b.icmp_signed("<", child, end), check, done)
    b.position_at_end(check)
    right = b.add(child, i64(1))
    has_right = b.icmp_signed("<", right, end)
    left_value = b.load(element(b, a, I64, child), typ=I64)
    right_value = b.load(element(b, a, I64, b.select(has_right, right, child)), typ=I64)
    take_right = b.and_(has_right, b.icmp_signed("<", left_value, right_value))
    larger = b.select(take_right, right, child)
    larger_value = b.select(take_right, right_value, left_value)
    here = b.load(element(b, a, I64, at), typ=I64)
    b.cbranch(b.icmp_signed("<", here, larger_value), swap, done)
    b.position_at_end(swap)
    b.store(larger_value, element(b, a, I64, at))
    b.store(here, element(b, a, I64, larger))
    at.add_incoming(larger, swap)
    b.branch(loop)
    b.position_at_end(done)
    b.ret_void()
    return fn


def _heapsort(b: ir.IRBuilder, row: ir.Value, n: int) -> None:
    """Sort row[0:n] in place: build a max-heap, then move its top to the end n - 1 times."""
    sift = _sift_down(b.module)

    def build(i: ir.Value) -> None:
        b.call(sift, [row, b.sub(i64(n // 2 - 1), i), i64(n)])

    def extract(j: ir.Value) -> None:
        end = b.sub(i64(n - 1), j)
        last = element(b, row, I64, end)
        top = b.load(row, typ=I64)
        b.store(b.load(last, typ=I64), row)
        b.store(top, last)
        b.call(sift, [row, i64(0), end])

    counted_loop(b, i64(0), i64(n // 2), build, "heap")
    counted_loop(b, i64(0), i64(n - 1), extract, "pop")


def emit_sort(body: Body, k: Sort) -> None:
    """Each row (the last axis) of k.out, in turn."""
    b = body.b
    n = k.out.shape[-1]
    rows = math.prod(k.out.shape[:-1])
    base = body.params[k.out.buffer.index]
    if n > 1:
        counted_loop(b, i64(0), i64(rows), lambda r: _heapsort(b, element(b, base, I64, b.mul(r, i64(n))), n), "row")
    body.finish()


__all__ = ["emit_sort"]
