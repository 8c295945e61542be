"""Time graphc's vectorized exp, log1p and tanh against NumPy, single thread.

Usage: python benchmarks/vecmath_speed.py

Each kernel runs in a JIT-compiled loop `y[i] = f(x[i])` over 10^7 float64, once
targeting the host as LLVM tunes it by default (on AVX-512 CPUs that prefers 256-bit
vectors) and once with 512-bit vectors allowed. Settings: the whole array, data
streamed from memory; the same with the output shifted 512 bytes against the input's
page offset (fresh NumPy arrays share one offset, which slows long-latency loops on
some CPUs); and 4096-element chunks repeated to the same total, data in L1 cache: the
arithmetic alone. Outputs are preallocated for both sides (`out=`).
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from graphc.backends.llvm.vecmath import math_function

N = 10**7
CHUNK = 4096
SETTINGS = (  # (label, elements per call, output offset in elements)
    ("memory", N, 0),
    ("memory, y +512 B", N, 64),
    ("L1 cache", CHUNK, 0),
)
REPEATS = 9
CASES = {  # name: (NumPy ufunc, input range)
    "exp": (np.exp, (-20.0, 20.0)),
    "log1p": (np.log1p, (-0.9, 20.0)),
    "tanh": (np.tanh, (-10.0, 10.0)),
}
F64 = ir.DoubleType()
I64 = ir.IntType(64)
PTR = ir.PointerType()
LOOP = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
Kernel = Callable[[np.ndarray, np.ndarray], Callable[[], None]]


def build_loop(module: ir.Module, name: str) -> None:
    """loop_<name>(src, dst, n): dst[i] = name(src[i])."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64]), name)
    src, dst, n = fn.args
    entry, body, done = (fn.append_basic_block(b) for b in ("entry", "body", "done"))
    builder = ir.IRBuilder(entry)
    builder.cbranch(builder.icmp_signed(">", n, ir.Constant(I64, 0)), body, done)
    builder.position_at_end(body)
    i = builder.phi(I64)
    x = builder.load(builder.gep(src, [i], source_etype=F64), typ=F64)
    y = builder.call(math_function(module, name, F64), [x])
    builder.store(y, builder.gep(dst, [i], source_etype=F64))
    next_i = builder.add(i, ir.Constant(I64, 1))
    i.add_incoming(ir.Constant(I64, 0), entry)
    i.add_incoming(next_i, body)
    builder.cbranch(builder.icmp_signed("<", next_i, n), body, done)
    builder.position_at_end(done)
    builder.ret_void()


def compile_loops(wide: bool) -> tuple[llvm.ExecutionEngine, dict[str, Kernel]]:
    """The loops, optimized at O3 for the host; `wide` allows 512-bit vectors."""
    features = llvm.get_host_cpu_features().flatten()
    if wide:
        features += ",-prefer-256-bit"
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=features, opt=3)
    module = ir.Module(name="vecmath_speed")
    module.triple = llvm.get_process_triple()
    for name in CASES:
        build_loop(module, name)
    ref = llvm.parse_assembly(str(module))
    pass_builder = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    pass_builder.getModulePassManager().run(ref, pass_builder)
    engine = llvm.create_mcjit_compiler(ref, tm)
    engine.finalize_object()
    return engine, {name: _kernel(engine, name) for name in CASES}


def _kernel(engine: llvm.ExecutionEngine, name: str) -> Kernel:
    """A maker of y = name(x) calls with the pointers taken out of the timing."""
    loop = LOOP(engine.get_function_address(name))

    def bind(x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
        src, dst, n = x.ctypes.data, y.ctypes.data, x.size
        return lambda: loop(src, dst, n)

    return bind


def numpy_kernel(ufunc: np.ufunc) -> Kernel:
    def bind(x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
        return lambda: ufunc(x, out=y)

    return bind


def best_ms(kernel: Kernel, x: np.ndarray, y: np.ndarray) -> float:
    """Best of REPEATS over N elements, in calls of x.size each."""
    run = kernel(x, y)
    calls = range(N // x.size)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in calls:
            run()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    has_avx512 = "+avx512f" in llvm.get_host_cpu_features().flatten()
    compiled = {"llvm": compile_loops(wide=False)}  # the engines own the code
    if has_avx512:
        compiled["llvm 512-bit"] = compile_loops(wide=True)
    variants = {label: kernels for label, (_, kernels) in compiled.items()}
    rng = np.random.default_rng(0)
    print(f"ms per 10^7 float64 on {llvm.get_host_cpu_name()}, single thread")
    print(f"{'':24s}" + "".join(f"{label:>14s}" for label in ["numpy", *variants]))
    for name, (ufunc, (lo, hi)) in CASES.items():
        x = rng.uniform(lo, hi, N)
        for where, size, shift in SETTINGS:
            xs = x[:size].copy()
            ys = np.empty(size + shift)[shift:]
            times = [best_ms(numpy_kernel(ufunc), xs, ys)]
            times += [best_ms(kernels[name], xs, ys) for kernels in variants.values()]
            label = f"{name} ({where})"
            print(f"{label:24s}" + "".join(f"{t:14.1f}" for t in times))


if __name__ == "__main__":
    main()
