"""Loops in LLVM IR: counted loops, strided loop nests, and element addresses of layouts.

Imports llvmlite. A loop is emitted in the guarded, rotated form LLVM's loop passes
expect (`if lo < hi: do { body } while (++i < hi)`), with the induction variable a phi;
the body may add blocks of its own. Addresses are `base + sum(i_k * stride_k)` in
elements, which LLVM's induction-variable passes strength-reduce, so the innermost loop
of a contiguous layout is a unit-stride access the loop vectorizer turns into SIMD.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir

I64 = ir.IntType(64)


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def counted_loop(b: ir.IRBuilder, lo: ir.Value, hi: ir.Value, body: Callable[[ir.Value], None], name: str) -> None:
    """for i in [lo, hi): body(i). The builder is left after the loop."""
    start = b.block
    loop = b.append_basic_block(f"{name}.loop")
    done = b.append_basic_block(f"{name}.done")
    b.cbranch(b.icmp_signed("<", lo, hi), loop, done)
    b.position_at_end(loop)
    i = b.phi(I64, name=name)
    i.add_incoming(lo, start)
    body(i)
    following = b.add(i, i64(1), name=f"{name}.next")
    following.flags.append("nsw")
    i.add_incoming(following, b.block)
    b.cbranch(b.icmp_signed("<", following, hi), loop, done)
    b.position_at_end(done)


def nest(
    b: ir.IRBuilder,
    bounds: Sequence[tuple[ir.Value, ir.Value]],
    body: Callable[[list[ir.Value]], None],
    name: str = "i",
) -> None:
    """Loops over the product of [lo, hi) ranges, the first outermost; body(indices)."""
    indices: list[ir.Value] = []

    def level(depth: int) -> None:
        if depth == len(bounds):
            body(list(indices))
            return

        def inner(i: ir.Value) -> None:
            indices.append(i)
            level(depth + 1)
            indices.pop()

        lo, hi = bounds[depth]
        counted_loop(b, lo, hi, inner, f"{name}{depth}")

    level(0)


def full_bounds(shape: Sequence[int]) -> list[tuple[ir.Value, ir.Value]]:
    return [(i64(0), i64(n)) for n in shape]


def linear(b: ir.IRBuilder, indices: Sequence[ir.Value], strides: Sequence[int]) -> ir.Value:
    """sum(i_k * stride_k) as an i64 (axes with stride 0 add nothing)."""
    total: ir.Value | None = None
    for i, stride in zip(indices, strides, strict=True):
        if stride == 0:
            continue
        term = i if stride == 1 else b.mul(i, i64(stride))
        total = term if total is None else b.add(total, term)
    return i64(0) if total is None else total


def _is_zero(value: ir.Value) -> bool:
    return isinstance(value, ir.Constant) and value.constant == 0


def element(b: ir.IRBuilder, base: ir.Value, etype: ir.Type, offset: ir.Value) -> ir.Value:
    """The address of element `offset` (i64) of an array of `etype` at `base`."""
    if _is_zero(offset):
        return base
    return b.gep(base, [offset], inbounds=True, source_etype=etype)
