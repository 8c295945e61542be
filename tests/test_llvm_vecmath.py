"""graphc.backends.llvm.vecmath: accuracy, special values and vectorization.

Every function runs in a JIT-compiled loop `dst[i] = f(src[i])` (or `f(x[i], y[i])`),
optimized at O3 for the host, over a few hundred thousand points each, and is compared
with NumPy (the C library for erf and erfc) in ulps (the distance between ordered bit
patterns). A slow test does the same on over 10^6 points per function.
"""

from __future__ import annotations

import ctypes
import math

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from graphc.backends.llvm.vecmath import MATH_FUNCTIONS, TRIG_MAX_ARG, arity, math_function
from graphc.ops import OPS

F64 = ir.DoubleType()
F32 = ir.FloatType()
I64 = ir.IntType(64)
PTR = ir.PointerType()
LOOP = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
LOOP2 = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
FloatType = type[np.floating]
FLOAT_TYPES: dict[FloatType, ir.Type] = {np.float64: F64, np.float32: F32}

MAX_ULP: dict[FloatType, int] = {np.float64: 4, np.float32: 1}
TRIG = ("sin", "cos", "tan")
UNARY = [name for name in MATH_FUNCTIONS if arity(name) == 1]
BINARY = [name for name in MATH_FUNCTIONS if arity(name) == 2]
LIBM = ("erf", "erfc")  # NumPy has none: the C library's (scipy.special.erfc is off by up to 500 ulp for large x)


# ------------------------------------------------------------------ JIT helpers


def loop_name(name: str, dtype: FloatType) -> str:
    return f"loop_{name}_{np.dtype(dtype).name}"


def build_loop(module: ir.Module, name: str, dtype: FloatType) -> None:
    """loop(src..., dst, n): dst[i] = name(src[i]) (or name(x[i], y[i])) for i < n."""
    fptype = FLOAT_TYPES[dtype]
    operands = arity(name)
    signature = ir.FunctionType(ir.VoidType(), [PTR] * (operands + 1) + [I64])
    fn = ir.Function(module, signature, loop_name(name, dtype))
    *sources, dst, n = fn.args
    entry, body, done = (fn.append_basic_block(b) for b in ("entry", "body", "done"))
    builder = ir.IRBuilder(entry)
    builder.cbranch(builder.icmp_signed(">", n, ir.Constant(I64, 0)), body, done)
    builder.position_at_end(body)
    i = builder.phi(I64)
    xs = [builder.load(builder.gep(src, [i], source_etype=fptype), typ=fptype) for src in sources]
    y = builder.call(math_function(module, name, fptype), xs)
    builder.store(y, builder.gep(dst, [i], source_etype=fptype))
    next_i = builder.add(i, ir.Constant(I64, 1))
    i.add_incoming(ir.Constant(I64, 0), entry)
    i.add_incoming(next_i, body)
    builder.cbranch(builder.icmp_signed("<", next_i, n), body, done)
    builder.position_at_end(done)
    builder.ret_void()


def host_target_machine() -> llvm.TargetMachine:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    return target.create_target_machine(cpu=cpu, features=features, opt=3)


def optimize(module: ir.Module, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    ref = llvm.parse_assembly(str(module))
    ref.verify()
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    pass_builder = llvm.create_pass_builder(tm, options)
    pass_builder.getModulePassManager().run(ref, pass_builder)
    return ref


class Loops:
    """Every math function in a loop over float64 and float32, compiled once."""

    def __init__(self) -> None:
        tm = host_target_machine()
        module = ir.Module(name="vecmath_test")
        module.triple = llvm.get_process_triple()
        for dtype in FLOAT_TYPES:
            for name in MATH_FUNCTIONS:
                build_loop(module, name, dtype)
        self.module = optimize(module, tm)
        self.engine = llvm.create_mcjit_compiler(self.module, tm)
        self.engine.finalize_object()

    def __call__(self, name: str, x: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x)
        y = np.empty_like(x)
        address = self.engine.get_function_address(loop_name(name, x.dtype.type))
        if other is None:
            LOOP(address)(x.ctypes.data, y.ctypes.data, x.size)
            return y
        other = np.ascontiguousarray(np.broadcast_to(other, x.shape), dtype=x.dtype)
        LOOP2(address)(x.ctypes.data, other.ctypes.data, y.ctypes.data, x.size)
        return y

    def optimized_ir(self, name: str, dtype: FloatType) -> str:
        return str(self.module.get_function(loop_name(name, dtype)))


@pytest.fixture(scope="module")
def loops() -> Loops:
    return Loops()


# ------------------------------------------------------------------ references


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """NumPy's value in x's precision; float32 is rounded from float64."""
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            y = sigmoid_reference(x64)
        elif name == "softplus":
            y = np.logaddexp(0.0, x64)
        elif name in LIBM:
            y = np.frompyfunc(getattr(math, name), 1, 1)(x64).astype(np.float64)
        else:
            y = getattr(np, name)(x64)
        return y.astype(x.dtype)


def reference2(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy's value of a function of two operands in x's precision (float32 rounded from float64)."""
    with np.errstate(all="ignore"):
        return getattr(np, name)(x.astype(np.float64), y.astype(np.float64)).astype(x.dtype)


def sigmoid_reference(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) in long double (NumPy has no sigmoid), rounded to float64."""
    xl = x.astype(np.longdouble)
    e = np.exp(-np.abs(xl))
    return np.where(xl < 0, e / (1 + e), 1 / (1 + e)).astype(np.float64)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ulps between a and b (±0 equal; NaN to NaN is 0, NaN to a number is huge)."""
    bits = np.int64 if a.dtype == np.float64 else np.int32
    ia, ib = ordered(a.view(bits)), ordered(b.view(bits))
    unsigned = np.uint64 if bits is np.int64 else np.uint32
    diff = (ia - ib).view(unsigned)
    dist = np.minimum(diff, -diff).astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    dist[nan_a & nan_b] = 0.0
    dist[nan_a ^ nan_b] = np.inf
    return dist


def ordered(i: np.ndarray) -> np.ndarray:
    """Bit patterns mapped to integers that increase with the float value."""
    return np.where(i < 0, np.iinfo(i.dtype).min - i, i)


def assert_close(name: str, x: np.ndarray, y: np.ndarray, expected: np.ndarray) -> None:
    dist = ulp_distance(y, expected)
    worst = int(np.argmax(dist))
    assert dist[worst] <= MAX_ULP[x.dtype.type], (
        f"{name}({x[worst]!r}) = {y[worst]!r}, NumPy {expected[worst]!r}: {dist[worst]} ulp"
    )


# ------------------------------------------------------------------ inputs

RANGES = {
    "exp": 760.0,
    "expm1": 760.0,
    "sinh": 720.0,
    "cosh": 720.0,
    "sigmoid": 800.0,
    "softplus": 800.0,
    "tanh": 25.0,
    "sin": 1e5,
    "cos": 1e5,
    "tan": 1e5,
    "exp2": 1100.0,
    "erf": 7.0,
    "erfc": 30.0,
    "arcsin": 1.1,
    "arccos": 1.1,
    "arctanh": 1.1,
}
UNIT = ("log", "log1p", "arcsin", "arccos", "arctanh", "erf", "erfc", "arcsinh")  # also sampled on [-1, 1]


def random_inputs(name: str, dtype: FloatType, n: int) -> np.ndarray:
    """Uniform over the interesting range, near zero, and log-uniform magnitudes."""
    rng = np.random.default_rng(sum(map(ord, name)))
    finfo = np.finfo(dtype)
    width = RANGES.get(name, 1e3)
    magnitudes = np.exp2(rng.uniform(np.log2(finfo.smallest_subnormal), finfo.maxexp, n))
    parts = [
        rng.uniform(-width, width, n),
        rng.uniform(-3.0, 3.0, n),
        magnitudes * rng.choice([-1.0, 1.0], n),
    ]
    if name in UNIT:
        parts += [rng.uniform(-1.0, 1.0, n), magnitudes]
    if name == "arccosh":
        parts += [rng.uniform(1.0, 3.0, n), 1.0 + magnitudes]
    if name in TRIG:
        parts += [quarter_turns(rng, n, 2**20), rng.uniform(-1e6, 1e6, n)]
    x: np.ndarray = np.concatenate(parts).astype(dtype)
    return x[np.isfinite(x)]


def quarter_turns(rng: np.random.Generator, n: int, most: int) -> np.ndarray:
    """Doubles nearest to multiples of pi/2, and their neighbours."""
    x = rng.integers(-most, most, n // 3).astype(np.float64) * (np.pi / 2)
    return np.concatenate([x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)])


def around(values: list[float], dtype: FloatType, steps: int = 4) -> np.ndarray:
    """Each value and its `steps` neighbours on either side, in dtype."""
    x: np.ndarray = np.array(values, dtype=dtype)
    out = [x]
    up, down = x, x
    with np.errstate(over="ignore"):
        for _ in range(steps):
            up = np.nextafter(up, dtype(np.inf))
            down = np.nextafter(down, dtype(-np.inf))
            out += [up, down]
    return np.concatenate(out)


SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0]
THRESHOLDS_F64 = [
    709.782712893384,  # exp overflows above
    -745.1332191019412,  # exp underflows to 0 below
    -708.3964185322641,  # exp becomes subnormal
    710.4758600739439,  # sinh, cosh overflow
    -710.4758600739439,
    2.0**-1074,
    -(2.0**-1074),
    2.0**-1022,
    -(2.0**-1022),
    2.0**-54,
    2.0**-26,
    0.55,
    20.0,
    0.4142135623730950,
    2.414213562373095,
    26.641747557046327,  # erfc: scipy's underflow to 0 above
    27.2,
    5.93,  # erf rounds to 1
    2.0**28,
    1023.0,  # exp2 overflows above 1024, underflows to 0 below -1075
    1024.0,
    -1074.0,
    -1075.0,
    -1022.0,
    np.finfo(np.float64).max,
    -np.finfo(np.float64).max,
]
THRESHOLDS_F32 = [88.72284, -103.27893, -87.33655, 89.41599, -89.41599, 1e-45, -1e-45]


def edge_inputs(dtype: FloatType) -> np.ndarray:
    quarter = [k * np.pi / 2 for k in range(-8, 9)]
    thresholds = THRESHOLDS_F64 if dtype is np.float64 else THRESHOLDS_F32
    return np.concatenate([np.array(SPECIALS, dtype), around(thresholds + quarter, dtype)])


def in_trig_range(name: str, x: np.ndarray) -> np.ndarray:
    if name not in TRIG:
        return np.ones(x.shape, bool)
    return np.abs(x.astype(np.float64)) <= TRIG_MAX_ARG


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", UNARY)
def test_float64_within_4_ulp_of_numpy(loops: Loops, name: str) -> None:
    x = random_inputs(name, np.float64, 200_000)
    x = x[in_trig_range(name, x)]
    assert_close(name, x, loops(name, x), reference(name, x))


@pytest.mark.parametrize("name", UNARY)
def test_float32_within_1_ulp_of_rounded_float64(loops: Loops, name: str) -> None:
    x = random_inputs(name, np.float32, 30_000)
    x = x[in_trig_range(name, x)]
    assert_close(name, x, loops(name, x), reference(name, x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", UNARY)
def test_edge_values_match_numpy(loops: Loops, name: str, dtype: FloatType) -> None:
    """Zeros (with sign), infinities, NaN and over/underflow agree exactly."""
    x = edge_inputs(dtype)
    x = x[in_trig_range(name, x)]
    y, expected = loops(name, x), reference(name, x)
    exact = ~np.isfinite(expected) | (expected == 0) | ~np.isfinite(y) | (y == 0)
    same_bits = ulp_distance(y, expected) == 0
    same_sign = np.signbit(y) == np.signbit(expected)
    wrong = exact & ~(same_bits & (same_sign | np.isnan(y)))
    assert not wrong.any(), list(zip(x[wrong], y[wrong], expected[wrong], strict=True))
    assert_close(name, x, y, expected)


def sign_preserving() -> list[str]:
    """The functions whose NumPy reference maps -0 to -0 and 0 to 0 (expm1, log1p, tanh, sin, ...)."""
    zeros = np.array([-0.0, 0.0])
    return [name for name in UNARY if np.signbit(reference(name, zeros)).tolist() == [True, False]]


def test_sign_preserving_functions_are_found() -> None:
    expected = {"expm1", "log1p", "tanh", "sin", "tan", "sinh", "arctan", "arcsin", "arcsinh", "arctanh", "erf"}
    assert expected <= set(sign_preserving())


@pytest.mark.parametrize("name", sign_preserving())
def test_negative_zero_is_kept(loops: Loops, name: str) -> None:
    y = loops(name, np.array([-0.0, 0.0]))
    assert y.tolist() == [0.0, 0.0]
    assert np.signbit(y).tolist() == [True, False]


def test_exp_overflow_and_underflow_thresholds(loops: Loops) -> None:
    big = np.nextafter(709.782712893384, np.inf)
    tiny = -745.1332191019412
    y = loops("exp", np.array([709.782712893384, big, np.nextafter(tiny, 0.0), tiny]))
    assert np.isfinite(y[0]) and y[1] == np.inf
    assert y[2] == 2.0**-1074 and y[3] == 0.0


@pytest.mark.parametrize("name", TRIG)
def test_trig_within_4_ulp_up_to_max_arg(loops: Loops, name: str) -> None:
    rng = np.random.default_rng(7)
    magnitudes = np.exp2(rng.uniform(20.0, np.log2(TRIG_MAX_ARG), 100_000))
    x = np.concatenate([magnitudes * rng.choice([-1.0, 1.0], 100_000), quarter_turns(rng, 100_000, 2**49)])
    assert_close(name, x, loops(name, x), reference(name, x))


@pytest.mark.parametrize("name", TRIG)
def test_trig_beyond_range_is_nan(loops: Loops, name: str) -> None:
    x = np.array([TRIG_MAX_ARG * 2, -1e300, 1e20])
    assert np.isnan(loops(name, x)).all()


# ------------------------------------------------------------------ functions of two operands


def random_pairs(name: str, dtype: FloatType, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform pairs, log-uniform magnitudes of both signs (independent, and close to each other)."""
    rng = np.random.default_rng(sum(map(ord, name)))
    finfo = np.finfo(dtype)

    def magnitudes() -> np.ndarray:
        logs = rng.uniform(np.log2(finfo.smallest_subnormal), finfo.maxexp, n)
        return np.exp2(logs) * rng.choice([-1.0, 1.0], n)

    x = np.concatenate([rng.uniform(-3.0, 3.0, n), rng.normal(0.0, 300.0, n), magnitudes(), magnitudes()])
    near = x[2 * n : 3 * n] * (1.0 + rng.normal(0.0, 1e-3, n))
    y = np.concatenate([rng.uniform(-3.0, 3.0, n), rng.normal(0.0, 300.0, n), near, magnitudes()])
    with np.errstate(over="ignore"):
        x, y = x.astype(dtype), y.astype(dtype)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def cancels(name: str, x: np.ndarray, y: np.ndarray, result: np.ndarray) -> np.ndarray:
    """Where logaddexp's max + log1p(e^-|x-y|) cancels: |result| below half the larger of |max| and ln2.

    NumPy computes the same sum, so both it and the kernel are accurate there only to a
    few ulps of the operands, not of the result (tested separately).
    """
    if name != "logaddexp":
        return np.zeros(x.shape, bool)
    top = np.maximum(x, y).astype(np.float64)
    return np.abs(result.astype(np.float64)) < 0.5 * np.maximum(np.abs(top), np.log(2.0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", BINARY)
def test_binary_functions_within_4_ulp_of_numpy(loops: Loops, name: str, dtype: FloatType) -> None:
    """float64 within 4 ulp of NumPy; float32 within 1 ulp of NumPy's float64 rounded."""
    x, y = random_pairs(name, dtype, 100_000 if dtype is np.float64 else 20_000)
    expected = reference2(name, x, y)
    keep = ~cancels(name, x, y, expected)
    assert_close(name, x[keep], loops(name, x, y)[keep], expected[keep])


def test_logaddexp_near_cancellation_is_accurate_to_the_operands(loops: Loops) -> None:
    """Where the sum cancels, the kernel and NumPy agree to 4 ulp of the larger operand (or of ln2)."""
    x, y = random_pairs("logaddexp", np.float64, 100_000)
    rng = np.random.default_rng(3)
    x = np.concatenate([x, rng.uniform(-0.7, 0.0, 100_000)])
    y = np.concatenate([y, np.log(-np.expm1(x[-100_000:])) + rng.normal(0.0, 1e-3, 100_000)])
    expected = reference2("logaddexp", x, y)
    band = cancels("logaddexp", x, y, expected)
    assert band.sum() > 50_000
    scale = np.spacing(np.maximum(np.abs(np.maximum(x, y)), np.log(2.0)))
    error = np.abs(loops("logaddexp", x, y) - expected)[band] / scale[band]
    assert error.max() <= 4, error.max()


SPECIAL_OPERANDS = [0.0, -0.0, 1.0, -1.0, 0.5, -2.0, 1e-310, -1e-310, 1e300, -1e300, 700.0, -700.0, np.inf, -np.inf,
                    np.nan]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", BINARY)
def test_binary_edge_values_match_numpy(loops: Loops, name: str, dtype: FloatType) -> None:
    """Every pair of zeros (with sign), infinities, NaN, subnormals and huge values agrees exactly where
    NumPy's result is 0, infinite or NaN, and to 4 ulp elsewhere."""
    with np.errstate(over="ignore"):
        grid = np.array(SPECIAL_OPERANDS, dtype)
    x, y = (a.ravel() for a in np.meshgrid(grid, grid))
    got, expected = loops(name, x, y), reference2(name, x, y)
    exact = ~np.isfinite(expected) | (expected == 0) | ~np.isfinite(got) | (got == 0)
    same = (ulp_distance(got, expected) == 0) & ((np.signbit(got) == np.signbit(expected)) | np.isnan(got))
    wrong = exact & ~same
    assert not wrong.any(), list(zip(x[wrong], y[wrong], got[wrong], expected[wrong], strict=True))
    assert_close(name, x, got, expected)


def test_arctan2_quadrants_and_signed_zeros(loops: Loops) -> None:
    """C99's table: atan2(+-0, +0) = +-0, atan2(+-0, -0) = +-pi, atan2(+-inf, +-inf) = +-pi/4, +-3pi/4."""
    zeros_and_infinities = [0.0, -0.0, np.inf, -np.inf, 1.0, -1.0]
    x, y = (a.ravel() for a in np.meshgrid(zeros_and_infinities, zeros_and_infinities))
    got = loops("arctan2", y, x)
    assert got.tobytes() == np.arctan2(y, x).tobytes()


def test_special_thresholds(loops: Loops) -> None:
    """exp2 is exact at integers and over/underflows where NumPy does; erfc's subnormal tail and its
    underflow to 0 agree with the C library's; hypot(inf, NaN) is inf."""
    k = np.arange(-1080.0, 1030.0)
    with np.errstate(over="ignore"):
        assert loops("exp2", k).tobytes() == np.exp2(k).tobytes()
    x = np.array([26.5, 26.6, 26.9, 27.2, 27.22, 27.23, 27.3, 40.0])
    expected = reference("erfc", x)
    assert (expected[1:5] > 0).all() and (expected[5:] == 0).all()
    assert ulp_distance(loops("erfc", x), expected).max() <= 1
    assert (
        loops("hypot", np.array([np.inf, np.nan, -np.inf]), np.array([np.nan, -np.inf, 1.0])).tolist() == [np.inf] * 3
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", MATH_FUNCTIONS)
def test_float64_within_4_ulp_on_a_million_points(loops: Loops, name: str) -> None:
    """The accuracy claim of vecmath's table: over 10^6 points per function, edge values included."""
    if arity(name) == 2:
        x, y = random_pairs(name, np.float64, 300_000)
        expected = reference2(name, x, y)
        keep = ~cancels(name, x, y, expected)
        assert keep.sum() >= 1_000_000
        assert_close(name, x[keep], loops(name, x, y)[keep], expected[keep])
        return
    x = np.concatenate([random_inputs(name, np.float64, 350_000), edge_inputs(np.float64)])
    x = x[in_trig_range(name, x)]
    assert x.size >= 1_000_000
    assert_close(name, x, loops(name, x), reference(name, x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", MATH_FUNCTIONS)
def test_loop_is_vectorized_without_calls(loops: Loops, name: str, dtype: FloatType) -> None:
    text = loops.optimized_ir(name, dtype)
    element = "double" if dtype is np.float64 else "float"
    assert any(f"<{lanes} x {element}>" in text for lanes in (2, 4, 8, 16)), text
    calls = [line for line in text.splitlines() if " call " in line]
    assert all("@llvm." in line for line in calls), calls


# ------------------------------------------------------------------ interface


def test_math_function_is_defined_once_per_module() -> None:
    module = ir.Module()
    first = math_function(module, "exp", F64)
    assert math_function(module, "exp", F64) is first
    assert first.name == "graphc.exp.f64"
    assert first.linkage == "internal"
    assert "alwaysinline" in first.attributes
    assert math_function(module, "exp", F32).name == "graphc.exp.f32"


def test_every_function_has_a_straight_line_body() -> None:
    module = ir.Module()
    for name in MATH_FUNCTIONS:
        fn = math_function(module, name, F64)
        assert len(fn.blocks) == 1
        assert "br " not in str(fn)


def test_unknown_name_or_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown math function"):
        math_function(ir.Module(), "lgamma", F64)
    with pytest.raises(TypeError, match="double or float"):
        math_function(ir.Module(), "exp", ir.IntType(32))


def test_every_transcendental_op_has_a_kernel_and_no_other() -> None:
    """The op records' cost class and the kernels agree: forgetting either side fails here."""
    transcendental = {op.name for op in OPS.values() if op.transcendental}
    assert set(MATH_FUNCTIONS) == transcendental
