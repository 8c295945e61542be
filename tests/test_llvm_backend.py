"""The llvm backend against the reference evaluator: every op on shapes, broadcasts, views and dtypes.

Elementwise ops must match bit for bit, except the transcendental functions (vecmath's
documented bounds: 4 ulp in float64; float32 is compared at 2 ulp since NumPy's own
float32 functions are not correctly rounded either) and float `pow` (the C library's
pow against NumPy's, 2 ulp). Reductions follow their own documented accumulation order
(codegen.py), so float sums and products are compared to rounding; max/min, integer
and bool reductions, shape ops and gathers are exact.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

import graphc as gc
from graphc.backends.llvm.emitters import EMITTERS
from graphc.backends.llvm.kernels import MAX_COST, TRANSCENDENTAL, Reduce, computed_cost
from graphc.backends.llvm.plan import ELEMENTWISE, PLANNERS
from graphc.ir import Node
from graphc.ops import OPS, accepts, elementwise_ops
from graphc.ops import elementwise as ew
from graphc.ops import linalg as la
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.ops import structure as st
from graphc.ops.source import const, var

TRANSIENT = {name for name, op in OPS.items() if op.transient}  # replaced before scheduling (ops/base.py)

F64 = np.dtype("float64")
F32 = np.dtype("float32")
I64 = np.dtype("int64")
BOOL = np.dtype("bool")
FLOATS = (F64, F32)
RNG = np.random.default_rng(5)
SPECIAL = np.array(
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        2.5,
        -2.5,
        1e-300,
        -1e-310,
        700.0,
        -700.0,
        1e300,
        -1e300,
        3e5,
        np.inf,
        -np.inf,
        np.nan,
    ]
)
MAX_ULP = {F64: 4, F32: 2}


def llvm(inputs: list, outputs: object, optimize: bool = False) -> gc.compile:
    return gc.compile(inputs, outputs, backend="llvm", optimize=optimize, cache=False)


def sample(shape: tuple[int, ...], dtype: np.dtype, special: bool = True) -> np.ndarray:
    """Normal values mixed with signed zeros, subnormals, huge values, infinities and NaN."""
    if dtype == BOOL:
        return RNG.random(shape) < 0.5
    if dtype == I64:
        return RNG.integers(-5, 6, shape)
    values = RNG.normal(scale=3.0, size=shape)
    if special:
        values = np.where(RNG.random(shape) < 0.4, RNG.choice(SPECIAL, size=shape), values)
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between floats of one dtype (NaN == NaN)."""
    kind = np.int64 if a.dtype == F64 else np.int32
    ia = a.view(kind).astype(np.int64)
    ib = b.view(kind).astype(np.int64)
    sign = np.int64(1) << (63 if a.dtype == F64 else 31)
    ia = np.where(ia < 0, -(ia + sign), ia)
    ib = np.where(ib < 0, -(ib + sign), ib)
    distance = np.abs(ia - ib)
    return np.where(np.isnan(a) & np.isnan(b), 0, distance)


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    assert isinstance(got, np.ndarray)
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    assert got.tobytes() == expected.tobytes(), (got, expected)


def assert_ulps(got: np.ndarray, expected: np.ndarray, limit: int) -> None:
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    worst = int(ulps(got, expected).max(initial=0))
    assert worst <= limit, (worst, got, expected)


def assert_close(got: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=0)


def run_both(inputs: list[Node], outputs: list[Node], values: list[np.ndarray]) -> tuple[list, list]:
    fn = llvm(inputs, outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = gc.evaluate(outputs, dict(zip(inputs, values, strict=True)))
        got = fn(*values)
    return list(got), expected


# --- coverage ------------------------------------------------------------------------------------------


def test_every_op_has_a_lowering() -> None:
    missing = sorted(set(OPS) - {"var", "const"} - TRANSIENT - set(PLANNERS))
    assert missing == [], f"the llvm backend has no planning rule for {missing}"
    assert set(PLANNERS) <= set(OPS)
    assert sorted(ELEMENTWISE - set(EMITTERS)) == []


# --- elementwise ops ----------------------------------------------------------------------------------------

UNARY_FLOAT = [op.name for op in elementwise_ops(1) if accepts(op, F64)]
TRIG = {"sin", "cos", "tan"}


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("name", UNARY_FLOAT)
def test_unary_float_ops(name: str, dtype: np.dtype) -> None:
    x = var("x", (4, 37), dtype)
    value = sample((4, 37), dtype)
    if name in TRIG:
        value = np.where(np.abs(value) < 1e6, value, 0.5).astype(dtype)  # vecmath's accurate range
    got, expected = run_both([x], [OPS[name](x)], [value])
    if name in TRANSCENDENTAL:
        assert_ulps(got[0], expected[0], MAX_ULP[dtype])
    else:
        assert_same(got[0], expected[0])


@pytest.mark.parametrize("name", ["abs", "sign", "neg", "floor", "round"])
def test_unary_integer_ops(name: str) -> None:
    x = var("x", (17,), I64)
    value = np.array([0, 1, -1, 7, -8, 2**62, -(2**63), 2**63 - 1, 3, -3, 5, 6, -7, 100, -100, 12, 13])
    got, expected = run_both([x], [OPS[name](x)], [value])
    assert_same(got[0], expected[0])


# every binary record that takes ints as well as floats (div and pow: below)
BINARY = [op.name for op in elementwise_ops(2) if accepts(op, F64, F64) and accepts(op, I64, I64) and op.name != "pow"]
# (shape of x, shape of y, how x is viewed): broadcasting both ways, a transpose, a stepped slice
LAYOUTS = {
    "same": ((3, 5), (3, 5), None),
    "row": ((3, 5), (5,), None),
    "column": ((3, 5), (3, 1), None),
    "scalar": ((3, 5), (), None),
    "outer": ((3, 1), (1, 5), None),
    "transposed": ((5, 3), (3, 5), "T"),
    "stepped": ((7, 11), (4, 3), "step"),
}


def viewed(x: Node, how: str | None) -> Node:
    if how == "T":
        return sh.transpose(x, axes=(1, 0))
    if how == "step":
        return sh.slice_(x, index=((6, -1, -2), (1, 11, 4)))
    return x


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", [F64, F32, I64], ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_ops(name: str, dtype: np.dtype, layout: str) -> None:
    x_shape, y_shape, how = LAYOUTS[layout]
    x, y = var("x", x_shape, dtype), var("y", y_shape, dtype)
    values = [sample(x_shape, dtype), sample(y_shape, dtype)]
    got, expected = run_both([x, y], [OPS[name](viewed(x, how), y)], values)
    assert_same(got[0], expected[0])


# every binary record that takes floats only (div, arctan2, hypot, logaddexp)
FLOAT_BINARY = [op.name for op in elementwise_ops(2) if accepts(op, F64, F64) and not accepts(op, I64, I64)]


def operand_scale(name: str, values: list[np.ndarray], expected: np.ndarray) -> np.ndarray:
    """The magnitude whose ulps bound an error: the result's; for logaddexp at least half its larger operand
    (or of ln2), as max + log1p(...) cancels there in NumPy and vecmath alike."""
    scale = np.abs(expected.astype(np.float64))
    if name == "logaddexp":
        top = np.abs(np.maximum(*values).astype(np.float64))
        scale = np.maximum(scale, 0.5 * np.maximum(np.where(np.isfinite(top), top, 0.0), np.log(2.0)))
    return scale


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("name", FLOAT_BINARY)
def test_binary_float_ops(name: str, dtype: np.dtype) -> None:
    x, y = var("x", (4, 37), dtype), var("y", (37,), dtype)
    values = [sample((4, 37), dtype), sample((37,), dtype)]
    got, expected = run_both([x, y], [OPS[name](x, y)], values)
    if name not in TRANSCENDENTAL:
        assert_same(got[0], expected[0])
        return
    exact = ~np.isfinite(expected[0]) | (expected[0] == 0)
    assert_ulps(got[0][exact], expected[0][exact], 0)  # infinities, NaN (of either sign) and signed zeros
    scale = operand_scale(name, np.broadcast_arrays(*values), expected[0])
    with np.errstate(invalid="ignore"):
        error = np.abs(got[0] - expected[0]).astype(np.float64)[~exact] / np.spacing(scale.astype(dtype))[~exact]
    assert error.max(initial=0) <= MAX_ULP[dtype], (error.max(), got[0], expected[0])


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_division_and_float_power(dtype: np.dtype) -> None:
    x, y = var("x", (6, 9), dtype), var("y", (9,), dtype)
    values = [sample((6, 9), dtype), sample((9,), dtype)]
    got, expected = run_both([x, y], [ew.div(x, y), ew.power(ew.abs_(x), y)], values)
    assert_same(got[0], expected[0])
    assert_ulps(got[1], expected[1], 2)


def test_integer_power_and_its_negative_exponent_error() -> None:
    x, y = var("x", (8,), I64), var("y", (8,), I64)
    base = np.array([2, -3, 0, 7, -1, 5, 3, 2])
    exponent = np.array([10, 3, 0, 0, 63, 1, 40, 63])
    got, expected = run_both([x, y], [ew.power(x, y)], [base, exponent])
    assert_same(got[0], expected[0])
    fn = llvm([x, y], ew.power(x, y))
    with pytest.raises(ValueError, match="negative integer powers"):
        fn(base, exponent - 1)


@pytest.mark.parametrize("name", ["logical_and", "logical_or", "equal", "not_equal", "less", "add", "mul",
                                  "maximum", "minimum"])  # fmt: skip
def test_bool_ops(name: str) -> None:
    x, y = var("x", (4, 6), BOOL), var("y", (6,), BOOL)
    got, expected = run_both([x, y], [OPS[name](x, y)], [sample((4, 6), BOOL), sample((6,), BOOL)])
    assert_same(got[0], expected[0])


@pytest.mark.parametrize("dtype", [F64, F32, I64, BOOL], ids=str)
def test_where_and_logical_not(dtype: np.dtype) -> None:
    c, x, y = var("c", (3, 1), BOOL), var("x", (4,), dtype), var("y", (3, 4), dtype)
    values = [sample((3, 1), BOOL), sample((4,), dtype), sample((3, 4), dtype)]
    got, expected = run_both([c, x, y], [ew.where(c, x, y), ew.logical_not(c)], values)
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e)


@pytest.mark.parametrize("target", [F64, F32, I64, BOOL], ids=str)
@pytest.mark.parametrize("source", [F64, F32, I64, BOOL], ids=str)
def test_casts(source: np.dtype, target: np.dtype) -> None:
    x = var("x", (40,), source)
    value = sample((40,), source)
    if source.kind == "f":
        value = np.concatenate(
            [value[:20], np.array([2.0**63, -(2.0**63), 2.0**62, 1e19, 0.7, -0.7] * 3 + [8, 9], dtype=source)]
        )
    got, expected = run_both([x], [ew.astype(x, dtype=target)], [value])
    assert_same(got[0], expected[0])


# --- reductions ------------------------------------------------------------------------------------------------

AXES = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("dtype", [F64, F32, I64], ids=str)
@pytest.mark.parametrize("name", ["sum", "prod", "max", "min"])
def test_reductions(name: str, dtype: np.dtype, axis: tuple[int, ...], keepdims: bool) -> None:
    x = var("x", (3, 4, 37), dtype)
    value = sample((3, 4, 37), dtype, special=name in ("max", "min"))
    if name == "prod" and dtype.kind == "f":
        value = (1 + value / 100).astype(dtype)
    got, expected = run_both([x], [OPS[name](x, axis=axis, keepdims=keepdims)], [value])
    if dtype.kind == "f" and name in ("sum", "prod"):
        rtol = 1e-13 if dtype == F64 else 2e-5
        np.testing.assert_allclose(got[0], expected[0], rtol=rtol, atol=rtol * float(np.abs(value).max()))
    else:
        assert_same(got[0], expected[0])


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min"])
def test_bool_reductions(name: str) -> None:
    x = var("x", (5, 40), BOOL)
    value = sample((5, 40), BOOL)
    value[2] = True
    value[3] = False
    got, expected = run_both(
        [x], [OPS[name](x, axis=(1,), keepdims=False), OPS[name](x, axis=(0, 1), keepdims=True)], [value]
    )
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e)


@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000, 100_003])
def test_long_sums_and_signed_zero(n: int) -> None:
    x = var("x", (n,), F64)
    m = var("m", (2, n), F64)
    values = [RNG.normal(size=n), RNG.normal(size=(2, n))]
    outputs = [rd.sum_(x, axis=(0,), keepdims=False), rd.sum_(m, axis=(1,), keepdims=False),
               rd.sum_(sh.transpose(m, axes=(1, 0)), axis=(0,), keepdims=False),
               rd.max_(x, axis=(0,), keepdims=False)]  # fmt: skip
    got, expected = run_both([x, m], outputs, values)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12 * np.sqrt(n))
    zeros = np.full(n, -0.0)
    got, expected = run_both([x], [rd.sum_(x, axis=(0,), keepdims=False)], [zeros])
    assert_same(got[0], expected[0])


def test_max_and_min_propagate_nan_and_argmax_finds_the_first() -> None:
    x = var("x", (3, 50), F64)
    value = RNG.normal(size=(3, 50))
    value[0, 17] = np.nan
    value[1, 3] = value[1, 40] = 9.0
    value[2, 5] = value[2, 6] = np.nan
    outputs = [OPS[name](x, axis=axis, keepdims=False) for name in ("max", "min") for axis in [(1,), (0, 1)]]
    outputs += [
        OPS[name](x, axis=axis, keepdims=kd)
        for name in ("argmax", "argmin")
        for axis in (None, 0, 1)
        for kd in (False, True)
    ]
    got, expected = run_both([x], outputs, [value])
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e)


@pytest.mark.parametrize("dtype", [I64, BOOL, F32], ids=str)
def test_argmax_argmin_other_dtypes(dtype: np.dtype) -> None:
    x = var("x", (4, 7), dtype)
    outputs = [OPS[name](x, axis=axis, keepdims=False) for name in ("argmax", "argmin") for axis in (None, 0, 1)]
    got, expected = run_both([x], outputs, [sample((4, 7), dtype)])
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e)


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("axis", [(0,), (1,), (0, 1)], ids=str)
def test_logsumexp(dtype: np.dtype, axis: tuple[int, ...]) -> None:
    x = var("x", (5, 40), dtype)
    value = sample((5, 40), dtype, special=False)
    value[1] = -np.inf
    value[2, 3] = np.inf
    value[3, :4] = 1000.0
    outputs = [rd.logsumexp(x, axis=axis, keepdims=kd) for kd in (False, True)]
    got, expected = run_both([x], outputs, [value])
    eps = np.finfo(dtype).eps  # max + log(sum of exp(x - max)): the log's error is a few ulp of 1, absolute
    for g, e in zip(got, expected, strict=True):
        assert (g.dtype, g.shape) == (e.dtype, e.shape)
        np.testing.assert_allclose(g, e, rtol=1e-14 if dtype == F64 else 1e-6, atol=4 * eps)


# --- shape ops and views ---------------------------------------------------------------------------------------

A = var("a", (4, 6), F64)
I = var("i", (2, 3), I64)  # noqa: E741
SHAPE_CASES: dict[str, Callable[[], Node]] = {
    "reshape": lambda: sh.reshape(A, shape=(3, 8)),
    "reshape_of_transpose": lambda: sh.reshape(sh.transpose(A, axes=(1, 0)), shape=(24,)),
    "reshape_of_step": lambda: ew.neg(sh.reshape(sh.slice_(A, index=((0, 4, 2), (0, 6, 1))), shape=(3, 4))),
    "transpose": lambda: sh.transpose(A, axes=(1, 0)),
    "transpose_used": lambda: ew.mul(sh.transpose(A, axes=(1, 0)), sh.transpose(A, axes=(1, 0))),
    "broadcast_to": lambda: sh.broadcast_to(sh.reshape(A, shape=(4, 1, 6)), shape=(2, 4, 3, 6)),
    "slice": lambda: sh.slice_(A, index=((3, -1, -2), (1, 6, 2))),
    "slice_empty": lambda: sh.slice_(A, index=((2, 2, 1),)),
    "unslice": lambda: sh.unslice(A, index=((1, 9, 2), (5, -1, -1)), shape=(10, 7)),
    "concatenate": lambda: sh.concatenate(A, sh.slice_(A, index=((0, 2, 1), (0, 6, 1))), A, axis=0),
    "concatenate_1": lambda: sh.concatenate(sh.transpose(A, axes=(1, 0)), sh.transpose(A, axes=(1, 0)), axis=1),
    "take": lambda: sh.take(A, I, axis=1),
    "take_0": lambda: sh.take(A, I, axis=0),
    "scatter_add": lambda: sh.scatter_add(sh.take(A, I, axis=1), I, axis=1, size=7),
    "scatter_add_scalar_index": lambda: sh.scatter_add(A, const(np.array(-2)), axis=1, size=5),
    "take_constant_scalar_index": lambda: ew.add(
        sh.take(A, const(np.array(2)), axis=1), sh.take(const(np.array([1.5])), const(np.array([0, -1, 0, 0])), axis=0)
    ),
    "diag": lambda: st.diag(A),
    "diag_of_transpose": lambda: st.diag(sh.transpose(A, axes=(1, 0))),
    "index_add": lambda: st.index_add(A, sh.take(A, I, axis=1), I, axis=1),
    "index_add_scalar_index": lambda: st.index_add(
        A, sh.slice_(A, index=((0, 4, 1), (1, 2, 1))), const(np.array([3])), axis=1
    ),
}


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_shape_ops(case: str) -> None:
    out = SHAPE_CASES[case]()
    got, expected = run_both([A, I], [out], [sample((4, 6), F64), np.array([[0, -1, 3], [3, -4, 2]])])
    assert_same(got[0], expected[0])


def test_out_of_range_indices_raise_index_error() -> None:
    for make in (lambda: sh.take(A, I, axis=1), lambda: sh.scatter_add(A, sh.reshape(I, shape=(6,)), axis=1, size=3)):
        fn = llvm([A, I], make())
        for bad in ([[0, 6, 1], [0, 0, 0]], [[0, 0, 0], [0, -7, 0]]):
            with pytest.raises(IndexError, match="out of bounds for axis 1"):
                fn(sample((4, 6), F64), np.array(bad))


MATMUL_CASES = {
    "plain": ((5, 7), (7, 3), None, None),
    "a_transposed": ((7, 5), (7, 3), "T", None),
    "b_transposed": ((5, 7), (3, 7), None, "T"),
    "stepped": ((10, 7), (7, 6), "rows", "cols"),
    "batched": ((2, 3, 5, 7), (3, 7, 4), None, None),
    "broadcast_batch": ((2, 1, 5, 7), (3, 7, 4), None, None),
    "vector_like": ((1, 7), (7, 1), None, None),
    "empty_inner": ((5, 0), (0, 3), None, None),
}


def _matrix_view(x: Node, how: str | None) -> Node:
    if how == "T":
        return la.swap_last(x)
    if how == "rows":
        return sh.slice_(x, index=((0, 10, 2), (0, 7, 1)))
    if how == "cols":
        return sh.slice_(x, index=((0, 7, 1), (0, 6, 2)))
    return x


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("case", sorted(MATMUL_CASES))
def test_matmul(case: str, dtype: np.dtype) -> None:
    a_shape, b_shape, a_how, b_how = MATMUL_CASES[case]
    a, b = var("a", a_shape, dtype), var("b", b_shape, dtype)
    out = la.matmul(_matrix_view(a, a_how), _matrix_view(b, b_how))
    got, expected = run_both([a, b], [out], [sample(a_shape, dtype, False), sample(b_shape, dtype, False)])
    assert_close(got[0], expected[0], 1e-13 if dtype == F64 else 1e-5)


def test_constants_of_every_size() -> None:
    x = var("x", (3, 4), F64)
    table = np.arange(12.0).reshape(3, 4)
    outputs = [ew.add(x, gc.const(2.5).node), ew.mul(x, gc.const(table).node), gc.const(table).node,
               ew.add(x, gc.const(np.array([[7.0]])).node)]  # fmt: skip
    got, expected = run_both([x], outputs, [sample((3, 4), F64)])
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e)


# --- whole models ----------------------------------------------------------------------------------------------


def mlp() -> tuple[list[gc.Tensor], list[gc.Tensor], list[np.ndarray]]:
    X = gc.var("X", (64, 16))
    labels = gc.var("labels", (64,), dtype="int64")
    W1, b1 = gc.var("W1", (16, 32)), gc.var("b1", (32,))
    W2, b2 = gc.var("W2", (32, 10)), gc.var("b2", (10,))
    logits = gc.tanh(X @ W1 + b1) @ W2 + b2
    loss = -gc.mean(gc.sum(gc.log_softmax(logits) * gc.one_hot(labels, 10), axis=1))
    params = [W1, b1, W2, b2]
    values = [RNG.normal(size=(64, 16)), RNG.integers(0, 10, 64), RNG.normal(size=(16, 32)) / 4,
              RNG.normal(size=32), RNG.normal(size=(32, 10)) / 4, RNG.normal(size=10)]  # fmt: skip
    return [X, labels, *params], [loss, *gc.grad(loss, params)], values


@pytest.mark.parametrize("optimize", [False, True])
def test_mlp_loss_and_gradients_match_the_numpy_backend(optimize: bool) -> None:
    inputs, outputs, values = mlp()
    got = llvm(inputs, outputs, optimize=optimize)(*values)
    expected = gc.compile(inputs, outputs, backend="numpy", optimize=optimize)(*values)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


def test_fused_regions_and_their_neighbours_merge_into_one_loop_nest() -> None:
    x, y = gc.var("x", (1000,)), gc.var("y", (1000,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-(x**2)) + gc.log1p(y * y))
    fn = llvm([x, y], [f, gc.grad(f, x)], optimize=True)
    assert [s for s in fn.program.steps if s.op == "fused"]
    # W3: the fused regions and the steps between them share one iteration space: one loop nest
    # reads x and y once, stores the gradient and accumulates the sum; no temporary is stored
    (kernel,) = fn._built.plan.kernels
    assert isinstance(kernel, Reduce)
    assert [layout.buffer.place for layout in kernel.extra_outs] == ["output"]
    values = [RNG.normal(size=1000), RNG.normal(size=1000)]
    expected = gc.evaluate([f, gc.grad(f, x)], dict(zip([x, y], values, strict=True)))
    for g, e in zip(fn(*values), expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


def test_long_fused_chains_are_cut_into_small_shared_kernels() -> None:
    """W8's shape: K sin steps; the fused gradient body is cut into chunks that share native functions."""
    x = gc.var("x", (300,))
    y = x
    for _ in range(60):
        y = gc.sin(y) * 1.0001 + 0.1 * y
    f = gc.sum(y)
    outputs = [f, gc.grad(f, x)]
    fn = llvm([x], outputs, optimize=True)
    kernels = fn._built.plan.kernels
    assert all(computed_cost(k.instrs) <= MAX_COST for k in kernels)
    assert fn.llvm_ir.unoptimized.count('define internal i32 @"kernel') < 12
    value = np.linspace(-1, 2, 300)  # not symmetric: the sum does not cancel
    for g, e in zip(fn(value), gc.evaluate(outputs, {x: value}), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12)


def test_merging_never_reads_a_value_at_another_point() -> None:
    """b = a.T + a needs a at (j, i) while computing (i, j): the loops of a and b stay apart."""
    x = gc.var("x", (40, 40))
    a = gc.exp(x)
    outputs = [a.T + a, gc.sum(a * 2.0, axis=1)]
    fn = llvm([x], outputs, optimize=True)
    assert len(fn._built.plan.kernels) >= 2
    value = RNG.normal(size=(40, 40))
    for g, e in zip(fn(value), gc.evaluate(outputs, {x: value}), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-13)
