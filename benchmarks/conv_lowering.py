"""Two LLVM lowerings of W10's convolutions, measured side by side: im2col + BLAS gemm (graphc's) and direct loops.

For each convolution of W10 (batch 64; 1 -> 16 channels on 8x8, 16 -> 32 on 4x4; 3x3,
padding 1; float64) and each of its three products (the forward pass, the input
gradient, the weight gradient) this script times
- graphc: the function gc.compile makes on the llvm backend (im2col or col2im as strided
  copies, one gemm through NumPy's OpenBLAS), and
- direct: a loop nest written here with llvmlite and JIT-compiled by the same LLVM O3
  pipeline (graphc.backends.llvm.jit): the image is copied into a zero-padded buffer,
  then for every (n, o, c, i, j) one scalar weight multiplies a Ho x Wo plane of the
  padded image into the output plane (the innermost loop is contiguous, so LLVM
  vectorizes it and keeps the plane in cache); the input gradient scatters the same way,
  the weight gradient accumulates Wo lanes per tap.
Both are checked against NumPy first; BLAS runs on one thread (threadpoolctl, if installed).
This is the measurement behind graphc's choice of im2col + gemm (docs/performance.md).

    python -m benchmarks.conv_lowering [--repeat 200]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import time
from collections.abc import Callable

import numpy as np
from llvmlite import ir

import graphc as gc
from graphc.backends.llvm.jit import compile_ir
from graphc.backends.llvm.loops import counted_loop, i64

F64 = ir.DoubleType()
PTR = ir.PointerType()
SHAPES = {"conv1 1->16 on 8x8": (64, 1, 8, 8, 16), "conv2 16->32 on 4x4": (64, 16, 4, 4, 32)}  # N, C, H, W, O
K = 3  # 3x3 kernels, padding 1: the output has the input's size


def _at(b: ir.IRBuilder, base: ir.Value, offset: ir.Value) -> ir.Value:
    return b.gep(base, [offset], inbounds=True, source_etype=F64)


def _index(b: ir.IRBuilder, terms: list[tuple[ir.Value, int]]) -> ir.Value:
    """sum(index * stride) as an i64."""
    total: ir.Value = i64(0)
    for value, stride in terms:
        total = b.add(total, b.mul(value, i64(stride)))
    return total


def _loops(b: ir.IRBuilder, sizes: list[int], body: Callable[[list[ir.Value]], None], name: str) -> None:
    def level(depth: int, indices: list[ir.Value]) -> None:
        if depth == len(sizes):
            body(indices)
            return
        counted_loop(b, i64(0), i64(sizes[depth]), lambda i: level(depth + 1, [*indices, i]), f"{name}{depth}")

    level(0, [])


def _zero(b: ir.IRBuilder, base: ir.Value, count: int) -> None:
    _loops(b, [count], lambda ix: b.store(ir.Constant(F64, 0.0), _at(b, base, ix[0])), "z")


def _pad(b: ir.IRBuilder, x: ir.Value, xp: ir.Value, n: int, c: int, h: int, w: int) -> None:
    """xp (n, c, h+2, w+2) = x with a zero border."""
    _zero(b, xp, n * c * (h + 2) * (w + 2))

    def copy(ix: list[ir.Value]) -> None:
        src = _index(b, [(ix[0], c * h * w), (ix[1], h * w), (ix[2], w), (ix[3], 1)])
        dst = _index(b, [(ix[0], c * (h + 2) * (w + 2)), (ix[1], (h + 2) * (w + 2)), (ix[2], w + 2), (ix[3], 1)])
        dst = b.add(dst, i64(w + 3))
        b.store(b.load(_at(b, x, src), typ=F64), _at(b, xp, dst))

    _loops(b, [n, c, h, w], copy, "p")


def direct_module(n: int, c: int, h: int, w: int, o: int) -> ir.Module:
    """forward(x, k, out, xp), input_grad(ct, k, dx, dxp), weight_grad(x, ct, dk, xp), all shapes constant."""
    module = ir.Module(name="direct_conv")
    hp, wp = h + 2, w + 2
    plane, padded_plane = h * w, hp * wp

    def function(name: str) -> tuple[ir.IRBuilder, list[ir.Value]]:
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * 4), name)
        for arg in fn.args:
            arg.add_attribute("noalias")
        return ir.IRBuilder(fn.append_basic_block("entry")), list(fn.args)

    b, (x, k, out, xp) = function("forward")
    _pad(b, x, xp, n, c, h, w)
    _zero(b, out, n * o * plane)

    def forward_tap(ix: list[ir.Value]) -> None:  # n, o, c, i, j: out[n, o] += k[o, c, i, j] * xp[n, c, i:, j:]
        weight = b.load(_at(b, k, _index(b, [(ix[1], c * 9), (ix[2], 9), (ix[3], 3), (ix[4], 1)])), typ=F64)
        out_base = _index(b, [(ix[0], o * plane), (ix[1], plane)])
        in_base = _index(b, [(ix[0], c * padded_plane), (ix[2], padded_plane), (ix[3], wp), (ix[4], 1)])

        def point(p: list[ir.Value]) -> None:
            dst = _at(b, out, b.add(out_base, _index(b, [(p[0], w), (p[1], 1)])))
            src = _at(b, xp, b.add(in_base, _index(b, [(p[0], wp), (p[1], 1)])))
            b.store(b.fadd(b.load(dst, typ=F64), b.fmul(weight, b.load(src, typ=F64))), dst)

        _loops(b, [h, w], point, "f")

    _loops(b, [n, o, c, K, K], forward_tap, "t")
    b.ret_void()

    b, (ct, k, dx, dxp) = function("input_grad")
    _zero(b, dxp, n * c * padded_plane)

    def input_tap(ix: list[ir.Value]) -> None:  # n, c, o, i, j: dxp[n, c, i:, j:] += k[o, c, i, j] * ct[n, o]
        weight = b.load(_at(b, k, _index(b, [(ix[2], c * 9), (ix[1], 9), (ix[3], 3), (ix[4], 1)])), typ=F64)
        ct_base = _index(b, [(ix[0], o * plane), (ix[2], plane)])
        dx_base = _index(b, [(ix[0], c * padded_plane), (ix[1], padded_plane), (ix[3], wp), (ix[4], 1)])

        def point(p: list[ir.Value]) -> None:
            dst = _at(b, dxp, b.add(dx_base, _index(b, [(p[0], wp), (p[1], 1)])))
            src = _at(b, ct, b.add(ct_base, _index(b, [(p[0], w), (p[1], 1)])))
            b.store(b.fadd(b.load(dst, typ=F64), b.fmul(weight, b.load(src, typ=F64))), dst)

        _loops(b, [h, w], point, "g")

    _loops(b, [n, c, o, K, K], input_tap, "u")

    def crop(ix: list[ir.Value]) -> None:
        src = b.add(_index(b, [(ix[0], padded_plane), (ix[1], wp), (ix[2], 1)]), i64(wp + 1))
        b.store(b.load(_at(b, dxp, src), typ=F64), _at(b, dx, _index(b, [(ix[0], plane), (ix[1], w), (ix[2], 1)])))

    _loops(b, [n * c, h, w], crop, "c")
    b.ret_void()

    b, (x, ct, dk, xp) = function("weight_grad")
    _pad(b, x, xp, n, c, h, w)
    _zero(b, dk, o * c * 9)
    lanes = b.alloca(ir.ArrayType(F64, w))

    def weight_tap(ix: list[ir.Value]) -> None:  # n, o, c, i, j: dk[o, c, i, j] += sum(ct[n, o] * xp[n, c, i:, j:])
        _loops(b, [w], lambda q: b.store(ir.Constant(F64, 0.0), b.gep(lanes, [i64(0), q[0]])), "l")
        ct_base = _index(b, [(ix[0], o * plane), (ix[1], plane)])
        in_base = _index(b, [(ix[0], c * padded_plane), (ix[2], padded_plane), (ix[3], wp), (ix[4], 1)])

        def point(p: list[ir.Value]) -> None:
            lane = b.gep(lanes, [i64(0), p[1]])
            a = b.load(_at(b, ct, b.add(ct_base, _index(b, [(p[0], w), (p[1], 1)]))), typ=F64)
            v = b.load(_at(b, xp, b.add(in_base, _index(b, [(p[0], wp), (p[1], 1)]))), typ=F64)
            b.store(b.fadd(b.load(lane, typ=F64), b.fmul(a, v)), lane)

        _loops(b, [h, w], point, "h")
        dst = _at(b, dk, _index(b, [(ix[1], c * 9), (ix[2], 9), (ix[3], 3), (ix[4], 1)]))
        total = b.load(dst, typ=F64)
        for q in range(w):
            total = b.fadd(total, b.load(b.gep(lanes, [i64(0), i64(q)]), typ=F64))
        b.store(total, dst)

    _loops(b, [n, o, c, K, K], weight_tap, "w")
    b.ret_void()
    return module


def _pointer(array: np.ndarray) -> int:
    return array.ctypes.data


def direct_functions(shape: tuple[int, ...]) -> tuple[object, dict[str, Callable[..., np.ndarray]]]:
    """The compiled module (keep it alive) and the three products as NumPy-level calls."""
    n, c, h, w, o = shape
    native = compile_ir(direct_module(*shape))
    kinds = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    raw = {name: kinds(native.address(name)) for name in ("forward", "input_grad", "weight_grad")}
    scratch = np.empty((n, c, h + 2, w + 2))
    out, dx, dk = np.empty((n, o, h, w)), np.empty((n, c, h, w)), np.empty((o, c, K, K))

    def forward(x: np.ndarray, k: np.ndarray) -> np.ndarray:
        raw["forward"](_pointer(x), _pointer(k), _pointer(out), _pointer(scratch))
        return out

    def input_grad(ct: np.ndarray, k: np.ndarray) -> np.ndarray:
        raw["input_grad"](_pointer(ct), _pointer(k), _pointer(dx), _pointer(scratch))
        return dx

    def weight_grad(x: np.ndarray, ct: np.ndarray) -> np.ndarray:
        raw["weight_grad"](_pointer(x), _pointer(ct), _pointer(dk), _pointer(scratch))
        return dk

    return native, {"forward": forward, "input gradient": input_grad, "weight gradient": weight_grad}


def graphc_functions(shape: tuple[int, ...]) -> dict[str, Callable[..., np.ndarray]]:
    """The same three products compiled by gc.compile (llvm): conv2d, and the vjps of conv2d(x, k) . ct."""
    n, c, h, w, o = shape
    x, k, ct = gc.var("x", (n, c, h, w)), gc.var("k", (o, c, K, K)), gc.var("ct", (n, o, h, w))
    y = gc.nn.conv2d(x, k, padding=1)
    forward = gc.compile([x, k], y)
    input_grad = gc.compile([ct, k], gc.vjp([y], [x], [ct])[0])
    weight_grad = gc.compile([x, ct], gc.vjp([y], [k], [ct])[0])
    return {"forward": forward, "input gradient": input_grad, "weight gradient": weight_grad}


def median_us(call: Callable[[], object], repeat: int) -> float:
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return 1e6 * float(np.median(samples))


def one_blas_thread() -> contextlib.AbstractContextManager[object]:
    try:
        import threadpoolctl
    except ImportError:
        print("note: threadpoolctl is not installed; BLAS keeps its own thread count")
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(limits=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=200, help="calls timed per product (default 200)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| convolution | product | im2col + gemm (graphc) | direct loops | direct / gemm |")
    print("|---|---|---:|---:|---:|")
    with one_blas_thread():
        for label, shape in SHAPES.items():
            n, c, h, w, o = shape
            x, k, ct = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, K, K)), rng.normal(size=(n, o, h, w))
            arguments = {"forward": (x, k), "input gradient": (ct, k), "weight gradient": (x, ct)}
            native, direct = direct_functions(shape)
            compiled = graphc_functions(shape)
            for product, args_ in arguments.items():
                want = np.asarray(compiled[product](*args_))
                np.testing.assert_allclose(direct[product](*args_), want, rtol=1e-10, atol=1e-10)
                gemm = median_us(lambda f=compiled[product], a=args_: f(*a), args.repeat)
                loops = median_us(lambda f=direct[product], a=args_: f(*a), args.repeat)
                print(f"| {label} | {product} | {gemm:.0f} µs | {loops:.0f} µs | {loops / gemm:.2f} |")
            del native


if __name__ == "__main__":
    main()
