"""STREAM-triad bandwidth `a[i] = b[i] + s * c[i]`, measured in the same run as the workloads.

The memory-traffic bound of a case is the bytes that must move divided by this
bandwidth. The triad is one native loop compiled here with llvmlite (vectorized at
O3 for the host CPU) and run on all cores: ctypes releases the GIL, so one thread per
core runs one contiguous chunk each. Bytes counted per element: 24 (read b and c,
write a), STREAM's convention, which leaves out the write-allocate read of `a`.
Measured at more than one array length, because a working set that fits in the last
level cache moves faster than one that does not; a case is compared with the
measurement whose traffic is closest to its own. When llvmlite cannot build the
kernel, NumPy's `np.add(b, c, out=a)` (STREAM "Add", the same 24 bytes per element)
stands in, single-threaded, and the description says so.

Imports numpy, ctypes and llvmlite (lazily); nothing of graphc.
"""

from __future__ import annotations

import ctypes
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np

BYTES_PER_ELEMENT = 24
LENGTHS = {"tiny": (10**5,), "quick": (10**6, 10**7), "full": (10**6, 10**7, 4 * 10**7)}
REPEATS = {"tiny": 3, "quick": 5, "full": 20}

Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray, float], None]


def _triad_ir() -> str:
    """void triad(double* a, double* b, double* c, double s, i64 n): a[i] = b[i] + s * c[i]."""
    from llvmlite import ir

    f64, i64 = ir.DoubleType(), ir.IntType(64)
    module = ir.Module("triad")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [f64.as_pointer()] * 3 + [f64, i64]), "triad")
    a, b, c, s, n = fn.args
    for pointer in (a, b, c):
        pointer.add_attribute("noalias")
    entry, loop, done = (fn.append_basic_block(name) for name in ("entry", "loop", "done"))
    builder = ir.IRBuilder(entry)
    builder.cbranch(builder.icmp_signed(">", n, i64(0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(i64)
    i.add_incoming(i64(0), entry)
    value = builder.fadd(builder.load(builder.gep(b, [i])), builder.fmul(s, builder.load(builder.gep(c, [i]))))
    builder.store(value, builder.gep(a, [i]))
    following = builder.add(i, i64(1))
    i.add_incoming(following, loop)
    builder.cbranch(builder.icmp_signed("<", following, n), loop, done)
    builder.position_at_end(done)
    builder.ret_void()
    return str(module)


@cache
def _native_triad() -> tuple[object, Callable[..., None]]:
    """The engine (kept alive) and the ctypes function of the compiled triad."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    features = llvm.get_host_cpu_features().flatten()
    machine = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=features, opt=3)
    module = llvm.parse_assembly(_triad_ir())
    module.triple = machine.triple
    module.data_layout = str(machine.target_data)
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.loop_vectorization = True
    builder = llvm.create_pass_builder(machine, options)
    builder.getModulePassManager().run(module, builder)
    engine_machine = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=features, opt=3)
    engine = llvm.create_mcjit_compiler(module, engine_machine)
    engine.finalize_object()
    signature = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 3, ctypes.c_double, ctypes.c_int64)
    return engine, signature(engine.get_function_address("triad"))


def _native_kernel(threads: int) -> Kernel:
    _, triad = _native_triad()
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None

    def kernel(a: np.ndarray, b: np.ndarray, c: np.ndarray, s: float) -> None:
        bounds = np.linspace(0, a.size, threads + 1).astype(int)
        chunks = [(lo, hi) for lo, hi in pairwise(bounds) if hi > lo]

        def one(chunk: tuple[int, int]) -> None:
            lo, hi = chunk
            triad(a[lo:].ctypes.data, b[lo:].ctypes.data, c[lo:].ctypes.data, s, hi - lo)

        if pool is None:
            one(chunks[0])
        else:
            list(pool.map(one, chunks))

    return kernel


def _numpy_add(a: np.ndarray, b: np.ndarray, c: np.ndarray, s: float) -> None:
    np.add(b, c, out=a)


def kernels() -> tuple[str, dict[int, Kernel]]:
    """The kernel's description and a kernel per thread count (1 and all cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        _native_triad()
    except Exception as e:
        return f"NumPy np.add(b, c, out=a) (llvmlite triad failed: {type(e).__name__})", {1: _numpy_add}
    counts = sorted({1, cores})
    return "triad a = b + s*c, llvmlite-compiled, one chunk per thread", {t: _native_kernel(t) for t in counts}


def _best_seconds(kernel: Kernel, n: int, repeats: int) -> float:
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    kernel(a, b, c, 3.0)
    if a[n // 2] != 7.0:
        raise AssertionError("the triad kernel computed a wrong value")
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        kernel(a, b, c, 3.0)
        best = min(best, time.perf_counter() - start)
    return best


@dataclass(frozen=True)
class Measurement:
    n: int
    bytes: int
    threads: int
    gbps: float


@dataclass(frozen=True)
class Bandwidth:
    """The kernel used and its best-of-repeats bandwidth (GB/s, 1e9 bytes) per array length and thread count."""

    kernel: str
    measurements: list[Measurement]
    bytes_per_element: int = BYTES_PER_ELEMENT

    def for_bytes(self, traffic: int) -> float:
        """The best bandwidth (any thread count) at the length whose triad traffic is closest to `traffic`."""
        closest = min({m.bytes for m in self.measurements}, key=lambda b: abs(math.log(b / traffic)))
        return max(m.gbps for m in self.measurements if m.bytes == closest)


def measure(scale: str) -> Bandwidth:
    """The triad at each of the scale's lengths, on one thread and on all cores."""
    description, by_threads = kernels()
    measurements = []
    for n in LENGTHS[scale]:
        for threads, kernel in by_threads.items():
            seconds = _best_seconds(kernel, n, REPEATS[scale])
            gbps = BYTES_PER_ELEMENT * n / seconds / 1e9
            measurements.append(Measurement(n, BYTES_PER_ELEMENT * n, threads, gbps))
    return Bandwidth(description, measurements)
