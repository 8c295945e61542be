"""Measure the accuracy of graphc's vectorized math kernels: the table in vecmath.py's docstring.

Usage: python benchmarks/vecmath_accuracy.py [name ...]

Each kernel runs in a JIT-compiled loop (as graphc's LLVM backend inlines it) over more
than 10^6 float64 points: uniform over the function's interesting range, uniform on
[-3, 3], log-uniform magnitudes of both signs over the whole float64 range, [-1, 1] and
the domain's own interval where it has one, plus edge values (zeros of both signs,
infinities, NaN, subnormals, thresholds). Functions of two operands take independent
pairs, nearly equal pairs and log-uniform pairs. Columns:

- vs NumPy: the largest distance in ulps (ordered bit patterns) from NumPy's float64
  result (the C library's for erf and erfc, which NumPy lacks);
- vs exact: the largest error in ulps of the exact value, from an 80-bit long double
  reference (NumPy's long double functions), or mpmath at 40 digits on 50,000 of the
  points for erf and erfc (there in ulps of the correctly rounded value, so whole ulps);
- f32: the largest distance of the float32 kernel from the float64 reference rounded to
  float32, over 300,000 points.
logaddexp leaves out the points where max + log1p(e^-|x-y|) cancels (|result| < half the
larger of |max| and ln2), where NumPy and the kernel are accurate to a few ulps of the
operands only; that error is the last line.
"""

from __future__ import annotations

import ctypes
import math
import sys
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from graphc.backends.llvm.vecmath import MATH_FUNCTIONS, TRIG_MAX_ARG, arity, math_function

N = 350_000  # per sampling family: 3 to 5 families per function
PTR = ir.PointerType()
I64 = ir.IntType(64)
TYPES = {np.float64: ir.DoubleType(), np.float32: ir.FloatType()}
RANGES = {"exp": 760.0, "expm1": 760.0, "exp2": 1100.0, "sinh": 720.0, "cosh": 720.0, "sigmoid": 800.0,
          "softplus": 800.0, "tanh": 25.0, "sin": 1e5, "cos": 1e5, "tan": 1e5, "erf": 7.0, "erfc": 30.0}  # fmt: skip
INTERVALS = {"log": (0.0, 2.0), "log1p": (-1.0, 1.0), "log2": (0.0, 2.0), "log10": (0.0, 2.0), "arcsin": (-1.0, 1.0),
             "arccos": (-1.0, 1.0), "arctanh": (-1.0, 1.0), "arccosh": (1.0, 3.0), "arcsinh": (-2.0, 2.0),
             "erf": (-1.0, 1.0), "erfc": (-1.0, 1.0)}  # fmt: skip
EDGES = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0**-1074, 2.0**-1022, 2.0**-54, 2.0**-26, 2.0**28,
         709.782712893384, -745.1332191019412, 710.4758600739439, 26.55, 27.2, 5.93, 1024.0, -1075.0,
         np.finfo(np.float64).max]  # fmt: skip
LIBM = ("erf", "erfc")


def build(names: list[str], dtype: type) -> tuple[llvm.ExecutionEngine, llvm.ModuleRef]:
    """One module with loop_<name>(src..., dst, n) per function, optimized at O3 for the host."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3
    )
    module = ir.Module(name="accuracy")
    module.triple = llvm.get_process_triple()
    fp = TYPES[dtype]
    for name in names:
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * (arity(name) + 1) + [I64]), f"loop_{name}")
        *sources, dst, n = fn.args
        entry, body, done = (fn.append_basic_block(b) for b in ("entry", "body", "done"))
        b = ir.IRBuilder(entry)
        b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), body, done)
        b.position_at_end(body)
        i = b.phi(I64)
        xs = [b.load(b.gep(s, [i], source_etype=fp), typ=fp) for s in sources]
        b.store(b.call(math_function(module, name, fp), xs), b.gep(dst, [i], source_etype=fp))
        following = b.add(i, ir.Constant(I64, 1))
        i.add_incoming(ir.Constant(I64, 0), entry)
        i.add_incoming(following, body)
        b.cbranch(b.icmp_signed("<", following, n), body, done)
        b.position_at_end(done)
        b.ret_void()
    ref = llvm.parse_assembly(str(module))
    builder = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    builder.getModulePassManager().run(ref, builder)
    engine = llvm.create_mcjit_compiler(ref, tm)
    engine.finalize_object()
    return engine, ref


def run(engine: llvm.ExecutionEngine, name: str, *operands: np.ndarray) -> np.ndarray:
    arrays = [np.ascontiguousarray(a) for a in operands]
    out = np.empty_like(arrays[0])
    kind = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (len(arrays) + 1)), ctypes.c_int64)
    kind(engine.get_function_address(f"loop_{name}"))(*(a.ctypes.data for a in arrays), out.ctypes.data, out.size)
    return out


def unary_points(name: str, n: int, dtype: type = np.float64) -> np.ndarray:
    rng = np.random.default_rng(sum(map(ord, name)))
    tiny = np.finfo(dtype).smallest_subnormal
    magnitudes = np.exp2(rng.uniform(np.log2(tiny), np.finfo(dtype).maxexp, n))
    width = RANGES.get(name, 1e3)
    parts = [rng.uniform(-width, width, n), rng.uniform(-3.0, 3.0, n), magnitudes * rng.choice([-1.0, 1.0], n)]
    if name in INTERVALS:
        parts += [rng.uniform(*INTERVALS[name], n), magnitudes]
    with np.errstate(over="ignore"):
        x = np.concatenate([*parts, np.array(EDGES)]).astype(dtype)
    if name in ("sin", "cos", "tan"):
        x = x[~(np.abs(x) > TRIG_MAX_ARG)]
    return x


def binary_points(name: str, n: int, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, name)))
    tiny = np.finfo(dtype).smallest_subnormal

    def magnitudes() -> np.ndarray:
        return np.exp2(rng.uniform(np.log2(tiny), np.finfo(dtype).maxexp, n)) * rng.choice([-1.0, 1.0], n)

    x = np.concatenate([rng.uniform(-3.0, 3.0, n), rng.normal(0.0, 300.0, n), magnitudes(), magnitudes()])
    with np.errstate(over="ignore"):
        near = x[2 * n : 3 * n] * (1.0 + rng.normal(0.0, 1e-3, n))
    y = np.concatenate([rng.uniform(-3.0, 3.0, n), rng.normal(0.0, 300.0, n), near, magnitudes()])
    grid_x, grid_y = np.meshgrid(EDGES, EDGES)
    with np.errstate(over="ignore"):
        return (np.concatenate([x, grid_x.ravel()]).astype(dtype), np.concatenate([y, grid_y.ravel()]).astype(dtype))


def numpy_value(name: str, *operands: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            (x,) = operands
            return np.where(x < 0, np.exp(x) / (1 + np.exp(x)), 1 / (1 + np.exp(-x)))
        if name == "softplus":
            return np.logaddexp(np.zeros((), operands[0].dtype), operands[0])
        if name in LIBM:
            return np.asarray(np.frompyfunc(getattr(math, name), 1, 1)(operands[0]), dtype=operands[0].dtype)
        return getattr(np, name)(*operands)


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between ordered bit patterns (NaN to NaN is 0)."""
    bits, unsigned = (np.int64, np.uint64) if a.dtype == np.float64 else (np.int32, np.uint32)
    ia, ib = (np.where(i < 0, np.iinfo(bits).min - i, i) for i in (a.view(bits), b.view(bits)))
    with np.errstate(over="ignore"):
        diff = (ia - ib).view(unsigned)
        d = np.minimum(diff, -diff).astype(np.float64)
    d[np.isnan(a) & np.isnan(b)] = 0.0
    d[np.isnan(a) ^ np.isnan(b)] = np.inf
    return d


def exact_error(name: str, got: np.ndarray, *operands: np.ndarray) -> float:
    """The largest error in ulps of the exact value (long double, or mpmath for erf/erfc on a subsample)."""
    finite = np.isfinite(got)
    if name in LIBM:
        import mpmath

        mpmath.mp.dps = 40
        near = finite & (np.abs(operands[0]) < 30.0)  # erf is +-1 and erfc 0 or 2 beyond (checked exactly)
        pick = np.random.default_rng(0).choice(np.flatnonzero(near), 50_000, replace=False)
        exact = np.array([float(getattr(mpmath, name)(float(v))) for v in operands[0][pick]])
        spacing = np.spacing(np.abs(exact))
        return float(np.max(np.abs(got[pick] - exact) / spacing))
    long = [o.astype(np.longdouble) for o in operands]
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            (x,) = long
            exact = np.where(x < 0, np.exp(x) / (1 + np.exp(x)), 1 / (1 + np.exp(-x)))
        elif name == "softplus":
            exact = np.logaddexp(np.zeros((), np.longdouble), long[0])
        else:
            exact = getattr(np, name)(*long)
        keep = finite & np.isfinite(exact) & (np.abs(exact) >= np.finfo(np.float64).tiny)
        spacing = np.spacing(np.abs(exact[keep]).astype(np.float64)).astype(np.longdouble)
        return float(np.max(np.abs(got[keep].astype(np.longdouble) - exact[keep]) / spacing, initial=0.0))


def cancelling(x: np.ndarray, y: np.ndarray, result: np.ndarray) -> np.ndarray:
    top = np.maximum(x, y)
    return np.abs(result) < 0.5 * np.maximum(np.abs(top), np.log(2.0))


def measure(name: str, engine64: llvm.ExecutionEngine, engine32: llvm.ExecutionEngine) -> tuple[int, int, float, int]:
    operands = binary_points(name, N) if arity(name) == 2 else (unary_points(name, N),)
    got, expected = run(engine64, name, *operands), numpy_value(name, *operands)
    keep = np.ones(got.shape, bool)
    if name == "logaddexp":
        keep = ~cancelling(*operands, expected)
    vs_numpy = int(ulps(got, expected)[keep].max())
    vs_exact = exact_error(name, got[keep], *(o[keep] for o in operands))
    small = binary_points(name, 75_000, np.float32) if arity(name) == 2 else (unary_points(name, 60_000, np.float32),)
    with np.errstate(over="ignore"):
        rounded = numpy_value(name, *(o.astype(np.float64) for o in small)).astype(np.float32)
    f32 = int(ulps(run(engine32, name, *small), rounded).max())
    return int(keep.sum()), vs_numpy, vs_exact, f32


def main(names: list[str]) -> None:
    engine64, _ = build(names, np.float64)
    engine32, _ = build(names, np.float32)
    print(f"{'function':10} {'points':>9} {'vs NumPy':>9} {'vs exact':>9} {'f32':>4}")
    for name in names:
        points, vs_numpy, vs_exact, f32 = measure(name, engine64, engine32)
        print(f"{name:10} {points:>9} {vs_numpy:>9} {vs_exact:>9.2f} {f32:>4}", flush=True)
    if "logaddexp" in names:
        x, y = binary_points("logaddexp", N)
        rng = np.random.default_rng(3)
        x = np.concatenate([x, rng.uniform(-0.7, 0.0, N)])
        y = np.concatenate([y, np.log(-np.expm1(x[-N:])) + rng.normal(0.0, 1e-3, N)])
        got, expected = run(engine64, "logaddexp", x, y), numpy_value("logaddexp", x, y)
        band = cancelling(x, y, expected) & np.isfinite(expected) & np.isfinite(x) & np.isfinite(y)
        scale = np.spacing(np.maximum(np.abs(np.maximum(x[band], y[band])), np.log(2.0)))
        error = np.max(np.abs(got[band] - expected[band]) / scale)
        print(f"logaddexp where it cancels ({band.sum()} points): within {error:.2f} ulp of the operands of NumPy")


if __name__ == "__main__":
    main(sys.argv[1:] or list(MATH_FUNCTIONS))
