"""API.md §1: every function, operator and method against the same NumPy call.

Each case builds a graph from vars shaped and typed like NumPy arrays, runs it with
the reference evaluator gc.evaluate, and compares with NumPy (or scipy.special for
the ML functions): the result's dtype must be NumPy's, its shape NumPy's, and its
values bit-exact (NaN where NumPy has NaN, the sign of zeros included) unless a
tolerance in ulps is stated.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from paramids import stable_repr

import graphc as gc
from graphc.ops import Op, accepts, elementwise_ops
from graphc.shapes import TensorType, is_float

F64, F32, I64, BOOL = (np.dtype(d) for d in ("float64", "float32", "int64", "bool"))
SHAPES = [(), (3,), (2, 3), (2, 1, 4)]
OPS_BY_PUBLIC = {op.public.name: op for op in elementwise_ops() if op.public is not None}
RNG = np.random.default_rng(20240601)


# --- helpers ----------------------------------------------------------------------


def data(shape: tuple[int, ...], dtype: np.dtype, low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """Deterministic sample values of a shape and dtype (ints in [low, high], bools mixed)."""
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return RNG.random(shape) < 0.5
    if dtype == I64:
        return RNG.integers(int(low), int(high) + 1, size=shape).astype(I64)
    return RNG.uniform(low, high, size=shape).astype(dtype)


def run(build, *arrays: np.ndarray) -> np.ndarray:
    """build(*vars) evaluated with vars of the arrays' shapes and dtypes fed those arrays."""
    arrays = tuple(np.asarray(a) for a in arrays)
    xs = [gc.var(f"a{i}", a.shape, a.dtype) for i, a in enumerate(arrays)]
    with np.errstate(all="ignore"):
        return gc.evaluate(build(*xs), dict(zip(xs, arrays, strict=True)))


def numpy(fn, *arrays: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(fn(*arrays))


def assert_same(got: np.ndarray, want: np.ndarray, ulps: int = 0, rtol: float = 0.0) -> None:
    """Same dtype and shape; equal values (NaN == NaN, 0.0 != -0.0), or within `ulps` or `rtol`."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype, f"dtype {got.dtype}, NumPy gives {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape}, NumPy gives {want.shape}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
        return
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN positions differ")
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    if rtol:
        np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=0)
    elif ulps == 0:
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg="signs of zeros differ")
    else:
        np.testing.assert_array_max_ulp(got[finite], want[finite], maxulp=ulps, dtype=want.dtype)


def edge_values(dtype: np.dtype) -> np.ndarray:
    """0, -0, negatives, large, tiny, subnormal, inf, nan in `dtype`."""
    info = np.finfo(dtype)
    values = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-3, -1e-3, 88.0, -88.0, 700.0, -700.0, 1e30, -1e30,
              float(info.tiny), float(info.smallest_subnormal), -float(info.tiny), float(info.max),
              np.inf, -np.inf, np.nan]  # fmt: skip
    with np.errstate(over="ignore"):
        return np.array(values, dtype=dtype)


# --- the names of API.md §1 ----------------------------------------------------------------

API_FUNCTIONS = [
    "exp", "log", "log1p", "expm1", "sqrt", "square", "abs", "sign", "floor", "round", "sin", "cos", "tan",
    "tanh", "sinh", "cosh", "arctan", "maximum", "minimum", "where", "clip", "power", "sum", "mean", "max",
    "min", "prod", "matmul", "dot", "transpose", "reshape", "broadcast_to", "expand_dims", "squeeze",
    "concatenate", "stack", "equal", "sigmoid", "relu", "softplus", "logsumexp", "softmax", "log_softmax",
    "one_hot", "take", "var", "const", "evaluate", "astype",
]  # fmt: skip


@pytest.mark.parametrize("name", API_FUNCTIONS)
def test_api_function_exists(name: str) -> None:
    assert callable(getattr(gc, name))
    assert name in gc.__all__


def test_api_methods_exist() -> None:
    x = gc.var("x", (2, 3))
    for method in ("sum", "mean", "max", "reshape", "astype"):
        assert callable(getattr(x, method))
    for operator in ("add", "sub", "mul", "truediv", "pow", "matmul", "neg", "lt", "le", "gt", "ge", "getitem"):
        assert getattr(gc.Tensor, f"__{operator}__") is not getattr(object, f"__{operator}__", None)


# --- unary elementwise ----------------------------------------------------------------


def float_result(op: Op, *dtypes: np.dtype) -> bool:
    return is_float(op.infer(*(TensorType((), d) for d in dtypes)).dtype)


# the records of NumPy's float functions (exp, log, ...): int and bool operands computed in float64
FLOAT_UNARY = [
    op.public.name
    for op in elementwise_ops(1)
    if op.public is not None and op.public.floats and op.numpy is not None and float_result(op, F64)
]
# the other unary records with a NumPy reference, plus the composites
NUMERIC_UNARY = [
    op.public.name for op in elementwise_ops(1) if op.public is not None and not op.public.floats and op.numpy
] + ["square", "round"]


@pytest.mark.parametrize("name", FLOAT_UNARY)
@pytest.mark.parametrize("dtype", [F64, F32])
def test_float_unary_edge_values(name: str, dtype: np.dtype) -> None:
    x = edge_values(dtype)
    assert_same(run(getattr(gc, name), x), numpy(getattr(np, name), x))


@pytest.mark.parametrize("name", FLOAT_UNARY)
@pytest.mark.parametrize("shape", SHAPES)
def test_float_unary_shapes(name: str, shape: tuple[int, ...]) -> None:
    x = data(shape, F64, 0.1, 2.0)
    assert_same(run(getattr(gc, name), x), numpy(getattr(np, name), x))


@pytest.mark.parametrize("name", FLOAT_UNARY)
def test_float_unary_of_int_is_float64(name: str) -> None:
    x = np.array([0, 1, 2, 7, -3], dtype=I64)
    got = run(getattr(gc, name), x)
    assert got.dtype == F64
    assert_same(got, numpy(getattr(np, name), x))


@pytest.mark.parametrize("name", NUMERIC_UNARY)
@pytest.mark.parametrize("dtype", [F64, F32, I64])
def test_numeric_unary(name: str, dtype: np.dtype) -> None:
    if dtype == I64:
        x = np.array([0, 1, -1, 5, -7, 2**31], dtype=I64)
    else:
        x = np.concatenate([edge_values(dtype), np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999], dtype=dtype)])
    assert_same(run(getattr(gc, name), x), numpy(getattr(np, name), x))


BOOL_UNARY = [n for n in NUMERIC_UNARY if n not in ("square", "round")]


@pytest.mark.parametrize("name", [n for n in BOOL_UNARY if accepts(OPS_BY_PUBLIC[n], BOOL)])
def test_bool_unary_keeps_bool(name: str) -> None:
    x = np.array([True, False, True])
    assert_same(run(getattr(gc, name), x), numpy(getattr(np, name), x))


@pytest.mark.parametrize("name", [n for n in BOOL_UNARY if not accepts(OPS_BY_PUBLIC[n], BOOL)])
def test_bool_unary_rejected(name: str) -> None:
    with pytest.raises(gc.DTypeError):
        getattr(gc, name)(gc.var("b", (3,), "bool"))


@pytest.mark.parametrize("dtype", [F64, F32, I64])
def test_unary_operators(dtype: np.dtype) -> None:
    x = data((2, 3), dtype)
    assert_same(run(lambda a: -a, x), -x)
    assert_same(run(lambda a: +a, x), +x)
    assert_same(run(abs, x), np.abs(x))


@pytest.mark.parametrize("dtype", [F64, F32])
def test_sigmoid(dtype: np.dtype) -> None:
    x = edge_values(dtype)
    assert_same(run(gc.sigmoid, x), scipy.special.expit(x), ulps=2)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_softplus(dtype: np.dtype) -> None:
    x = edge_values(dtype)
    want = numpy(np.logaddexp, np.zeros((), dtype), x)
    assert_same(run(gc.softplus, x), want, ulps=2)
    assert run(gc.softplus, np.array([-1000.0, 1000.0])).tolist() == [0.0, 1000.0]


@pytest.mark.parametrize("dtype", [F64, F32])
def test_relu(dtype: np.dtype) -> None:
    x = edge_values(dtype)
    assert_same(run(gc.relu, x), numpy(np.maximum, x, np.zeros((), dtype)))


# --- binary elementwise -------------------------------------------------------------------

BROADCAST_PAIRS = [
    ((), ()), ((3,), ()), ((), (3,)), ((2, 3), (3,)), ((3,), (2, 3)), ((2, 3), (2, 1)),
    ((2, 1, 4), (3, 1)), ((3, 1), (2, 1, 4)), ((1,), (2, 3)), ((2, 1), (1, 3)),
]  # fmt: skip


def numpy_power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """np.power with NumPy's `x ** 0.5` rule (sqrt) wherever the exponent is 0.5, whatever its layout.

    NumPy itself takes sqrt for a scalar 0.5 but C's pow for an array of 0.5s (+inf at -inf,
    +0.0 at -0.0); graphc's pow is sqrt there for every layout.
    """
    x, y = np.broadcast_arrays(x, y)
    return np.where(y == 0.5, np.sqrt(x), np.power(x, y)) if x.dtype.kind == "f" else np.power(x, y)


REFERENCES = {"power": numpy_power}  # records whose eval is not one NumPy function

OPERATORS = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b, "power": lambda a, b: a**b, "less": lambda a, b: a < b,
    "less_equal": lambda a, b: a <= b, "greater": lambda a, b: a > b, "greater_equal": lambda a, b: a >= b,
}  # fmt: skip
# every binary record with a public function: (graphc's function, NumPy's, the Python operator if any)
ARITH = {
    op.public.name: (
        getattr(gc, op.public.name),
        REFERENCES.get(op.public.name) or getattr(np, str(op.numpy)),
        OPERATORS.get(op.public.name),
    )
    for op in elementwise_ops(2)
    if op.public is not None
}
INTEGER_ONLY = {op.public.name for op in elementwise_ops(2) if op.public is not None and not accepts(op, F64, F64)}


@pytest.mark.parametrize("name", ARITH)
@pytest.mark.parametrize(("xshape", "yshape"), BROADCAST_PAIRS)
def test_binary_broadcasting(name: str, xshape: tuple[int, ...], yshape: tuple[int, ...]) -> None:
    function, reference, operator = ARITH[name]
    dtype = F64 if name not in INTEGER_ONLY else I64  # the bitwise ops and shifts take ints
    x = data(xshape, dtype, 0.5, 3.0)
    y = data(yshape, dtype, -2.0, 2.0)
    want = numpy(reference, x, y)
    assert_same(run(function, x, y), want)
    if operator is not None:
        assert_same(run(operator, x, y), want)


DTYPE_PAIRS = [(F64, F64), (F32, F32), (F32, F64), (F64, F32), (I64, I64), (I64, F32), (F32, I64),
               (I64, F64), (BOOL, BOOL), (BOOL, I64), (I64, BOOL), (BOOL, F32)]  # fmt: skip


@pytest.mark.parametrize("name", ARITH)
@pytest.mark.parametrize(("xdtype", "ydtype"), DTYPE_PAIRS)
def test_binary_dtype_promotion(name: str, xdtype: np.dtype, ydtype: np.dtype) -> None:
    function, reference, _ = ARITH[name]
    x = data((2, 3), xdtype, 1, 4)
    y = data((3,), ydtype, 1, 3)
    try:
        want = numpy(reference, x, y)
    except TypeError:  # NumPy has no loop (bool - bool, ...): graphc must refuse at build time
        with pytest.raises(gc.DTypeError):
            function(gc.var("x", x.shape, x.dtype), gc.var("y", y.shape, y.dtype))
        return
    if want.dtype.kind in "iu" and want.dtype != I64:  # NumPy's int8 for bool ** bool: no graphc dtype
        pytest.skip(f"NumPy gives {want.dtype}")
    if want.dtype == np.float16:  # NumPy's float16 for float functions of bools (arctan2): graphc's is float64
        assert run(function, x, y).dtype == F64
        return
    assert_same(run(function, x, y), want)


@pytest.mark.parametrize("name", ARITH)
@pytest.mark.parametrize("dtype", [F64, F32])
def test_binary_edge_values(name: str, dtype: np.dtype) -> None:
    """Every pair of edge values (NaN in maximum/minimum and comparisons, 0/0, inf - inf, ...)."""
    function, reference, _ = ARITH[name]
    if name in INTEGER_ONLY:  # int64 edge values, shift amounts outside [0, 63] included
        if dtype != F64:
            pytest.skip("integer operands only")
        values = np.array([0, 1, -1, 2, 31, 32, 63, 64, 65, -64, 2**62, 2**63 - 1, -(2**63)], dtype=I64)
    else:
        values = edge_values(dtype)
    x, y = values[:, None], values[None, :]
    assert_same(run(function, x, y), numpy(reference, x, y))


def test_maximum_minimum_propagate_nan_from_either_side() -> None:
    x = np.array([np.nan, 1.0, np.nan, -0.0])
    y = np.array([1.0, np.nan, np.nan, 0.0])
    for function in (gc.maximum, gc.minimum):
        got = run(function, x, y)
        assert np.isnan(got[:3]).all()
        assert_same(got, numpy(getattr(np, function.__name__), x, y))


@pytest.mark.parametrize(("xdtype", "ydtype"), [(I64, I64), (BOOL, BOOL), (I64, BOOL)])
def test_integer_division_is_true_division(xdtype: np.dtype, ydtype: np.dtype) -> None:
    x = np.array([7, -7, 1, 0]).astype(xdtype)
    y = np.array([2, 2, 3, 1]).astype(ydtype)
    got = run(gc.divide, x, y)
    assert got.dtype == F64
    assert_same(got, x / y)


@pytest.mark.parametrize("exponent", [2, 0.5, -1, 1, 0, 3, -0.5, 2.0, -2, 1.5])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_power_by_python_scalar(exponent: float, dtype: np.dtype) -> None:
    """x ** p against NumPy's operator (which may special-case 2, 0.5, -1): -0.0, -inf and NaN included."""
    x = edge_values(dtype)
    assert_same(run(lambda a: a**exponent, x), numpy(lambda a: a**exponent, x))
    assert_same(run(lambda a: gc.power(a, exponent), x), numpy(np.power, x, exponent))
    assert_same(run(lambda a: exponent**a, x), numpy(lambda a: exponent**a, x))


def test_integer_power_matches_numpy() -> None:
    x = np.array([2, -3, 0, 5], dtype=I64)
    y = np.array([3, 2, 0, 1], dtype=I64)
    assert_same(run(lambda a, b: a**b, x, y), x**y)
    assert_same(run(lambda a: a**2, x), x**2)
    assert_same(run(lambda a: 2**a, y), 2**y)


SCALARS = [2, -3, 2.5, True, np.float32(1.5), np.float64(2.5), np.int64(2), np.array(2.5), np.array(1.5, np.float32),
           [1.0, 2.0, 3.0]]  # fmt: skip


@pytest.mark.parametrize("dtype", [F64, F32, I64, BOOL])
@pytest.mark.parametrize("scalar", SCALARS, ids=stable_repr)
@pytest.mark.parametrize("op", ["add", "mul", "truediv", "lt", "maximum"])
def test_scalar_promotion_follows_nep50(dtype: np.dtype, scalar: object, op: str) -> None:
    """A Python scalar is weak (float32 tensor + 2.5 stays float32); NumPy scalars and arrays are not."""
    x = data((3,), dtype, 1, 4)
    operations = {
        "add": (lambda a: a + scalar, lambda a: scalar + a),
        "mul": (lambda a: a * scalar, lambda a: scalar * a),
        "truediv": (lambda a: a / scalar, lambda a: scalar / a),
        "lt": (lambda a: a < scalar, lambda a: scalar < a),
        "maximum": (lambda a: gc.maximum(a, scalar), lambda a: gc.maximum(scalar, a)),
    }
    references = {
        "add": (lambda a: np.add(a, scalar), lambda a: np.add(scalar, a)),
        "mul": (lambda a: np.multiply(a, scalar), lambda a: np.multiply(scalar, a)),
        "truediv": (lambda a: np.true_divide(a, scalar), lambda a: np.true_divide(scalar, a)),
        "lt": (lambda a: np.less(a, scalar), lambda a: np.less(scalar, a)),
        "maximum": (lambda a: np.maximum(a, scalar), lambda a: np.maximum(scalar, a)),
    }  # fmt: skip
    for build, reference in zip(operations[op], references[op], strict=True):
        assert_same(run(build, x), numpy(reference, x))


def test_nep50_spot_checks() -> None:
    """The promotions the API singles out, spelled out."""
    x32 = gc.var("x32", (3,), "float32")
    x64 = gc.var("x64", (3,), "float64")
    i = gc.var("i", (3,), "int64")
    b = gc.var("b", (3,), "bool")
    assert (x32 + 1.5).dtype == F32
    assert (x32 * 2).dtype == F32
    assert (2.0 - x32).dtype == F32
    assert (x32 + x64).dtype == F64
    assert (x32 + np.float64(1.5)).dtype == F64
    assert (i + 1).dtype == I64
    assert (i + 1.5).dtype == F64
    assert (i + x32).dtype == F64
    assert (b + 1).dtype == I64
    assert (b + True).dtype == BOOL
    assert gc.sum(b).dtype == I64
    assert gc.log(i).dtype == F64
    assert gc.mean(i).dtype == F64
    assert (x32 < 3).dtype == BOOL


@settings(max_examples=60, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
    name=st.sampled_from(["add", "subtract", "multiply", "divide", "maximum", "greater_equal"]),
    dtypes=st.sampled_from([(F64, F64), (F32, F32), (F32, F64), (I64, F32)]),
    seed=st.integers(0, 2**16),
)
def test_binary_random_broadcasting(shapes, name: str, dtypes: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xshape, yshape = shapes.input_shapes
    x = rng.normal(size=xshape).astype(dtypes[0]) if dtypes[0] != I64 else rng.integers(-3, 4, xshape)
    y = rng.normal(size=yshape).astype(dtypes[1])
    function, reference, _ = ARITH[name]
    assert_same(run(function, x, y), numpy(reference, x, y))


# --- where, clip ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cshape", "xshape", "yshape"),
    [((3,), (3,), (3,)), ((3, 1), (4,), ()), ((), (2, 3), (3,)), ((2, 1, 4), (3, 1), (1,))],
)
def test_where_broadcasts(cshape, xshape, yshape) -> None:
    c = data(cshape, BOOL)
    x = data(xshape, F64)
    y = data(yshape, F64)
    assert_same(run(gc.where, c, x, y), np.where(c, x, y))


@pytest.mark.parametrize(
    ("x", "y"), [(1, 2.5), (1, 2), (np.float32(1), 2.5), (True, 2), (2.5, np.nan)], ids=stable_repr
)
def test_where_scalar_branches(x: object, y: object) -> None:
    c = np.array([True, False, True])
    assert_same(run(lambda cond: gc.where(cond, x, y), c), np.where(c, x, y))


@pytest.mark.parametrize("dtype", [F32, I64, BOOL])
def test_where_mixed_dtypes(dtype: np.dtype) -> None:
    c = np.array([True, False, True])
    x = data((3,), dtype)
    y = data((3,), F64)
    assert_same(run(gc.where, c, x, y), np.where(c, x, y))
    assert_same(run(lambda cond, a: gc.where(cond, a, 0.5), c, x), np.where(c, x, 0.5))


@pytest.mark.parametrize("dtype", [I64, F64])
def test_where_condition_nonzero(dtype: np.dtype) -> None:
    c = np.array([0, 1, -2, 0]).astype(dtype)
    if dtype == F64:
        c[3] = np.nan  # NaN is nonzero: True
    x = np.arange(4.0)
    assert_same(run(lambda cond, a: gc.where(cond, a, -a), c, x), np.where(c, x, -x))


@pytest.mark.parametrize(
    ("low", "high"),
    [(0.5, 1.5), (-1.0, None), (None, 0.0), (2.0, 1.0), (np.array([0.0, 1.0, -1.0]), 2.0), (np.float32(0), 1)],
    ids=stable_repr,
)
@pytest.mark.parametrize("dtype", [F64, F32, I64])
def test_clip(low: object, high: object, dtype: np.dtype) -> None:
    x = data((2, 3), dtype, -3, 3)
    if dtype != I64:
        x[0, 0] = np.nan
    assert_same(run(lambda a: gc.clip(a, low, high), x), numpy(np.clip, x, low, high))


def test_clip_with_tensor_bounds() -> None:
    x = data((2, 3), F64)
    lo = data((3,), F64, -1, 0)
    hi = data((2, 1), F64, 0, 1)
    assert_same(run(gc.clip, x, lo, hi), np.clip(x, lo, hi))


def test_clip_without_bounds_is_an_error() -> None:
    with pytest.raises(ValueError, match="clip"):
        gc.clip(gc.var("x", (3,)), None, None)


# --- reductions ----------------------------------------------------------------------------------

AXES = [None, 0, 1, -1, -3, (0, 2), (-1, 0), (2, 1, 0), ()]
REDUCTIONS = ["sum", "mean", "max", "min", "prod"]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", AXES, ids=stable_repr)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [F64, F32, I64, BOOL])
def test_reductions(name: str, axis: object, keepdims: bool, dtype: np.dtype) -> None:
    x = data((2, 3, 4), dtype, -3, 3)
    want = numpy(lambda a: getattr(np, name)(a, axis=axis, keepdims=keepdims), x)
    got = run(lambda a: getattr(gc, name)(a, axis=axis, keepdims=keepdims), x)
    assert_same(got, want, ulps=2 if name == "mean" else 0)
    method = run(lambda a: getattr(a, name)(axis, keepdims), x)
    assert_same(method, want, ulps=2 if name == "mean" else 0)


@settings(max_examples=100, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3),
    name=st.sampled_from(REDUCTIONS),
    keepdims=st.booleans(),
    data_=st.data(),
)
def test_random_reductions(shape: tuple[int, ...], name: str, keepdims: bool, data_) -> None:
    ndim = len(shape)
    axes = (
        data_.draw(st.lists(st.integers(-ndim, ndim - 1), unique_by=lambda a: a % ndim, max_size=ndim)) if ndim else []
    )
    axis = data_.draw(st.sampled_from([None, tuple(axes)] + ([axes[0]] if axes else [])))
    x = data(shape, F64)
    want = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    got = run(lambda a: getattr(gc, name)(a, axis=axis, keepdims=keepdims), x)
    assert_same(got, want, ulps=2 if name == "mean" else 0)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_reductions_default_axis(name: str, shape: tuple[int, ...]) -> None:
    x = data(shape, F64)
    assert_same(run(getattr(gc, name), x), numpy(getattr(np, name), x), ulps=2 if name == "mean" else 0)


@pytest.mark.parametrize("name", ["max", "min", "sum", "prod", "mean"])
def test_reductions_with_nan_and_inf(name: str) -> None:
    x = np.array([[1.0, np.nan, 3.0], [np.inf, -np.inf, 0.0], [-0.0, -0.0, -0.0]])
    assert_same(run(lambda a: getattr(gc, name)(a, axis=1), x), numpy(lambda a: getattr(np, name)(a, axis=1), x))


def test_sum_over_empty_axis() -> None:
    x = np.zeros((0, 3))
    assert_same(run(lambda a: gc.sum(a, axis=0), x), np.sum(x, axis=0))
    assert_same(run(lambda a: gc.prod(a, axis=0), x), np.prod(x, axis=0))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, -2])
@pytest.mark.parametrize("keepdims", [False, True])
def test_argmax_argmin(name: str, axis: int | None, keepdims: bool) -> None:
    x = np.array([[3.0, 1.0, 3.0, -2.0], [0.0, 0.0, -5.0, 7.0], [1.0, np.nan, 2.0, 9.0]])
    want = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    assert_same(run(lambda a: getattr(gc, name)(a, axis=axis, keepdims=keepdims), x), want)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", [F32, I64, BOOL])
def test_argmax_argmin_dtypes(name: str, dtype: np.dtype) -> None:
    x = data((3, 5), dtype)
    assert_same(run(lambda a: getattr(gc, name)(a, axis=0), x), getattr(np, name)(x, axis=0))


# --- logsumexp, softmax, log_softmax, one_hot ---------------------------------------------------


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1), (-1, -3)], ids=stable_repr)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_logsumexp_matches_scipy(axis: object, keepdims: bool, dtype: np.dtype) -> None:
    """To 4 ulps of the largest term: a result near 0 (max + log(sum) cancelling) has no relative accuracy."""
    x = np.random.default_rng(7).uniform(-50, 50, size=(2, 3, 4)).astype(dtype)
    got = run(lambda a: gc.logsumexp(a, axis=axis, keepdims=keepdims), x)
    want = scipy.special.logsumexp(x, axis=axis, keepdims=keepdims)
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    scale = np.max(np.abs(x)) * np.finfo(dtype).eps
    np.testing.assert_array_less(np.abs(got.astype(np.float64) - want), 4 * scale)
    near_zero = np.random.default_rng(8).uniform(-2, 0, size=(3, 4)).astype(dtype)
    near_zero[:, 0] = 0.0  # a maximum of 0 and a sum of exps barely over 1: a result near 0
    got = run(lambda a: gc.logsumexp(a, axis=-1), near_zero)
    want = scipy.special.logsumexp(near_zero, axis=-1)
    np.testing.assert_allclose(got, want, rtol=0, atol=8 * np.finfo(dtype).eps)


@pytest.mark.parametrize(
    "values",
    [[1000.0, 1000.0], [-1000.0, -1000.0], [1e308, 1e308], [-np.inf, -np.inf], [np.inf, 1.0], [np.inf, -np.inf],
     [np.nan, 1.0], [0.0], [-745.0, -745.0, 0.0]],
    ids=stable_repr,
)  # fmt: skip
def test_logsumexp_extreme_values(values: list[float]) -> None:
    x = np.array(values)
    want = scipy.special.logsumexp(x)
    assert_same(run(gc.logsumexp, x), np.asarray(want), ulps=2)


def test_logsumexp_at_1000_is_finite() -> None:
    got = run(gc.logsumexp, np.array([1000.0, 1000.0]))
    assert np.isfinite(got)
    assert got == pytest.approx(1000.0 + np.log(2.0), rel=1e-15)


def test_logsumexp_of_int_is_float64() -> None:
    x = np.array([[1, 2, 3], [4, 5, 6]])
    assert_same(run(lambda a: gc.logsumexp(a, axis=1), x), scipy.special.logsumexp(x, axis=1), ulps=2)


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, -2])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_softmax_matches_scipy(function: str, axis: int | None, dtype: np.dtype) -> None:
    x = data((3, 4), dtype, -20, 20)
    if axis is None:
        got = run(getattr(gc, function), x)
        want = getattr(scipy.special, function)(x, axis=-1)  # graphc's default is the last axis (jax.nn)
    else:
        got = run(lambda a: getattr(gc, function)(a, axis=axis), x)
        want = getattr(scipy.special, function)(x, axis=axis)
    # exp(x - logsumexp(x)) carries |x - lse| ulps of the shift's rounding: 64 ulps for |x| <= 20
    assert_same(got, want, rtol=64 * float(np.finfo(dtype).eps))


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(5,), (2, 1, 4), (3, 2)])
def test_softmax_shapes(function: str, shape: tuple[int, ...]) -> None:
    x = data(shape, F64)
    want = getattr(scipy.special, function)(x, axis=-1)
    assert_same(run(getattr(gc, function), x), want, rtol=64 * float(np.finfo(F64).eps))


def test_softmax_is_stable_at_large_inputs() -> None:
    x = np.array([[1000.0, 1000.0], [-1000.0, 0.0], [0.0, -np.inf], [1e308, 1e308]])
    assert_same(run(gc.softmax, x), np.array([[0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]))
    log = run(gc.log_softmax, x)
    np.testing.assert_allclose(log[:2], [[-np.log(2), -np.log(2)], [-1000.0, 0.0]], rtol=1e-15)
    assert log[2].tolist() == [0.0, -np.inf]


def test_softmax_float32_large_equal_logits() -> None:
    """Shifting by logsumexp (rounded at 1e6 to a multiple of 1/16) would give 0.5028 each."""
    x = np.array([1e6, 1e6], dtype=F32)
    assert_same(run(gc.softmax, x), np.array([0.5, 0.5], dtype=F32))
    assert_same(run(gc.log_softmax, x), np.full(2, -np.log(2), dtype=F32), ulps=1)


def test_softmax_rows_sum_to_one() -> None:
    x = data((4, 7), F64, -30, 30)
    np.testing.assert_allclose(run(gc.softmax, x).sum(axis=-1), np.ones(4), rtol=1e-14)


@pytest.mark.parametrize("shape", [(), (4,), (2, 3)])
@pytest.mark.parametrize("n", [1, 5])
def test_one_hot(shape: tuple[int, ...], n: int) -> None:
    idx = RNG.integers(0, n, size=shape)
    got = run(lambda i: gc.one_hot(i, n), idx)
    assert_same(got, np.eye(n)[idx])


def test_one_hot_out_of_range_rows_are_zero() -> None:
    """As jax.nn.one_hot: an index outside [0, n) (negative too) encodes as all zeros."""
    idx = np.array([0, -1, 3, 4, 2])
    got = run(lambda i: gc.one_hot(i, 4), idx)
    want = np.zeros((5, 4))
    want[0, 0] = want[2, 3] = want[4, 2] = 1.0
    assert_same(got, want)


def test_one_hot_of_constant_indices() -> None:
    assert_same(gc.evaluate(gc.one_hot([2, 0], 3), {}), np.eye(3)[[2, 0]])


# --- shape functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", [(6, 4), (-1,), (4, -1), (2, -1, 2), (24,), (1, 2, 3, 4, 1), (2, 3, 4)], ids=stable_repr
)
def test_reshape(target: tuple[int, ...]) -> None:
    x = data((2, 3, 4), F64)
    want = x.reshape(target)
    assert_same(run(lambda a: gc.reshape(a, target), x), want)
    assert_same(run(lambda a: a.reshape(target), x), want)
    assert_same(run(lambda a: a.reshape(*target), x), want)


def test_reshape_scalar_and_int_target() -> None:
    assert_same(run(lambda a: a.reshape(1, 1), np.array(2.0)), np.array(2.0).reshape(1, 1))
    x = data((2, 3), I64)
    assert_same(run(lambda a: a.reshape(6), x), x.reshape(6))
    assert run(lambda a: gc.reshape(a, ()), np.array([[3.0]])).shape == ()


@pytest.mark.parametrize("axes", [None, (0, 1, 2), (2, 0, 1), (-1, 0, -2), (1, 0, 2)], ids=stable_repr)
def test_transpose(axes: object) -> None:
    x = data((2, 3, 4), F32)
    assert_same(run(lambda a: gc.transpose(a, axes), x), np.transpose(x, axes))


@pytest.mark.parametrize("shape", SHAPES)
def test_T_and_transpose_method(shape: tuple[int, ...]) -> None:
    x = data(shape, F64)
    assert_same(run(lambda a: a.T, x), x.T)
    assert_same(run(lambda a: a.transpose(), x), x.transpose())
    if len(shape) == 3:
        assert_same(run(lambda a: a.transpose(1, 2, 0), x), x.transpose(1, 2, 0))
        assert_same(run(lambda a: a.transpose((2, 0, 1)), x), x.transpose((2, 0, 1)))


@pytest.mark.parametrize(
    ("shape", "target"), [((), (2, 3)), ((3,), (2, 3)), ((2, 1), (2, 5)), ((1, 3), (4, 2, 3)), ((3,), (3,))]
)
def test_broadcast_to(shape: tuple[int, ...], target: tuple[int, ...]) -> None:
    x = data(shape, F64)
    assert_same(run(lambda a: gc.broadcast_to(a, target), x), np.broadcast_to(x, target))


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3, (0, 1), (0, -1), (-1, -2)], ids=stable_repr)
def test_expand_dims(axis: object) -> None:
    x = data((2, 3), F64)
    assert_same(run(lambda a: gc.expand_dims(a, axis), x), np.expand_dims(x, axis))


@pytest.mark.parametrize("axis", [None, 0, 2, -1, (0, 2), (-1, 0)], ids=stable_repr)
def test_squeeze(axis: object) -> None:
    x = data((1, 3, 1, 1), F64)
    assert_same(run(lambda a: gc.squeeze(a, axis), x), np.squeeze(x, axis))
    assert_same(run(lambda a: a.squeeze(axis), x), np.squeeze(x, axis))


def test_squeeze_non_unit_axis_is_a_shape_error() -> None:
    with pytest.raises(gc.ShapeError, match="squeeze"):
        gc.squeeze(gc.var("x", (1, 3)), 1)


@pytest.mark.parametrize(
    ("shapes", "axis"),
    [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 2)], 1), ([(2, 3), (2, 5)], -1), ([(2, 1, 4), (2, 3, 4)], -2),
     ([(2, 3), (3,)], None), ([(4,)], 0), ([(2, 3), (2, 3)], -2)],
)  # fmt: skip
def test_concatenate(shapes: list[tuple[int, ...]], axis: int | None) -> None:
    arrays = [data(s, F64) for s in shapes]
    assert_same(run(lambda *xs: gc.concatenate(list(xs), axis=axis), *arrays), np.concatenate(arrays, axis=axis))


@pytest.mark.parametrize("dtypes", [(F32, F64), (I64, F32), (BOOL, I64), (F32, F32)])
def test_concatenate_promotes(dtypes: tuple[np.dtype, np.dtype]) -> None:
    arrays = [data((2, 2), d) for d in dtypes]
    assert_same(run(lambda *xs: gc.concatenate(xs), *arrays), np.concatenate(arrays))


def test_concatenate_with_arrays_and_scalars_lifted() -> None:
    x = data((2,), F32)
    assert_same(run(lambda a: gc.concatenate([a, np.ones(3, np.float32)]), x), np.concatenate([x, np.ones(3, "f4")]))


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
@pytest.mark.parametrize("axis", [0, -1, 1])
def test_stack(shape: tuple[int, ...], axis: int) -> None:
    if axis == 1 and not shape:
        pytest.skip("axis 1 is out of range for stacking 0-d arrays")
    arrays = [data(shape, F64) for _ in range(3)]
    assert_same(run(lambda *xs: gc.stack(list(xs), axis=axis), *arrays), np.stack(arrays, axis=axis))


def test_stack_promotes_and_rejects_mismatched_shapes() -> None:
    x, y = data((3,), F32), data((3,), I64)
    assert_same(run(lambda a, b: gc.stack([a, b]), x, y), np.stack([x, y]))
    with pytest.raises(gc.ShapeError, match="stack"):
        gc.stack([gc.var("a", (3,)), gc.var("b", (2,))])


# --- indexing ------------------------------------------------------------------------------------

KEYS = [
    0, -1, 1, slice(None), slice(1, None), slice(None, None, -1), slice(None, None, 2),
    (0, 1), (-1, -1, -1), (slice(None), 0), (Ellipsis, 0), (Ellipsis, -1), (0, Ellipsis),
    (None,), (None, Ellipsis, None), (Ellipsis, None), (slice(None), None, 1),
    (slice(None), slice(None, None, -2)), (slice(None), slice(-1, None, -1), slice(3, 0, -2)),
    (slice(-2, None), slice(-100, 100, 2)), (slice(5, 1),), (slice(1, 1),), (slice(None), slice(2, -5, -1)),
    (Ellipsis, slice(None, None, 3)), (1, None, slice(None, None, -1), None), Ellipsis, (),
    (0, 2, 3), (np.int64(1),), (slice(np.int64(1), None),),
]  # fmt: skip


@pytest.mark.parametrize("key", KEYS, ids=stable_repr)
def test_static_indexing(key: object) -> None:
    x = data((2, 3, 4), F64)
    assert_same(run(lambda a: a[key], x), x[key])


@pytest.mark.parametrize("key", [(), Ellipsis, None, (None, None)], ids=stable_repr)
def test_indexing_a_scalar(key: object) -> None:
    x = np.array(5.0)
    assert_same(run(lambda a: a[key], x), x[key])


@settings(max_examples=150, deadline=None)
@given(data_=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
def test_random_basic_indexing(data_, shape: tuple[int, ...]) -> None:
    key = data_.draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    assert_same(run(lambda a: a[key], x), x[key])


def test_iteration_and_len() -> None:
    x = data((3, 2), F64)
    rows = run(lambda a: gc.stack(list(a)), x)
    assert_same(rows, x)
    assert len(gc.var("x", (3, 2))) == 3


# --- matmul, dot --------------------------------------------------------------------------------


def assert_product_close(got: np.ndarray, want: np.ndarray, bound: np.ndarray, k: int) -> None:
    """Same dtype and shape; |got - want| <= eps * bound for bound = k * (|x| @ |y|) (any summation order)."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.dtype == want.dtype, f"dtype {got.dtype}, NumPy gives {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape}, NumPy gives {want.shape}"
    eps = float(np.finfo(want.dtype).eps)
    assert np.all(np.abs(got - want) <= eps * k * np.asarray(bound)), (got, want)


MATMUL_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)), ((5, 2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (5, 3, 4)), ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((1, 3), (3, 1)), ((2, 0), (0, 3)),
]  # fmt: skip


@pytest.mark.parametrize(("xshape", "yshape"), MATMUL_SHAPES)
@pytest.mark.parametrize("dtypes", [(F64, F64), (F32, F32), (F32, F64)])
def test_matmul(xshape, yshape, dtypes) -> None:
    x, y = data(xshape, dtypes[0]), data(yshape, dtypes[1])
    want = np.matmul(x, y)
    bound = np.matmul(np.abs(x), np.abs(y))
    k = xshape[-1] + 1
    assert_product_close(run(gc.matmul, x, y), want, bound, k)
    assert_product_close(run(lambda a, b: a @ b, x, y), want, bound, k)


def test_matmul_with_arrays_on_either_side() -> None:
    x = data((2, 3), F64)
    w = data((3, 4), F64)
    bound = np.abs(x) @ np.abs(w)
    assert_product_close(run(lambda a: a @ w, x), x @ w, bound, 4)
    assert_product_close(run(lambda b: x @ b, w), x @ w, bound, 4)


@pytest.mark.parametrize(
    ("xshape", "yshape"),
    [((), (3,)), ((2, 3), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
     ((2, 3, 4), (5, 4, 6)), ((4,), (5, 4, 6)), ((2, 3, 4), (4,)), ((2, 3, 4), (4, 2))],
)  # fmt: skip
def test_dot(xshape, yshape) -> None:
    x, y = data(xshape, F64), data(yshape, F64)
    bound = np.dot(np.abs(x), np.abs(y))
    assert_product_close(run(gc.dot, x, y), np.asarray(np.dot(x, y)), bound, 5)


@pytest.mark.parametrize(
    ("xshape", "yshape"), [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (4,)), ((5, 2, 3), (4, 3, 2)), ((), (3,))]
)
def test_matmul_shape_errors(xshape, yshape) -> None:
    """The message names the caller's shapes (not the 2-D views that 1-D operands become)."""
    x, y = gc.var("x", xshape), gc.var("y", yshape)
    with pytest.raises(gc.ShapeError, match="matmul") as info:
        x @ y
    assert str(x.node.type) in str(info.value)
    assert str(y.node.type) in str(info.value)
    with pytest.raises(gc.ShapeError, match="matmul"):
        gc.matmul(x, y)


def test_dot_shape_error() -> None:
    with pytest.raises(gc.ShapeError, match="dot"):
        gc.dot(gc.var("x", (2, 3)), gc.var("y", (4, 4, 2)))


# --- take ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("indices", "axis"),
    [([0, 2, 1], 0), ([-1, 0, -4], 0), ([[0, 1], [1, 0]], 1), (2, 1), (-1, -1), ([5, -12, 0], None),
     ([[3, 2], [1, 0]], 0), ([], 0), (np.array([1, -2]), -1)],
)  # fmt: skip
def test_take(indices: object, axis: int | None) -> None:
    x = data((4, 3), F64)
    want = np.take(x, indices, axis=axis)
    assert_same(run(lambda a: gc.take(a, indices, axis=axis), x), want)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_take_with_var_indices(axis: int) -> None:
    """Embedding lookups: indices come in at call time, negative ones count from the end."""
    x = data((3, 4, 2), F32)
    idx = np.array([[0, -1], [1, -2]])
    want = np.take(x, idx, axis=axis)
    assert_same(run(lambda a, i: gc.take(a, i, axis=axis), x, idx), want)


@pytest.mark.parametrize("bad", [3, -4, 100])
def test_take_out_of_range_raises_index_error_at_call_time(bad: int) -> None:
    x = gc.var("x", (3,))
    i = gc.var("i", (2,), "int64")
    y = gc.take(x, i, axis=0)  # builds: the indices are not known yet
    assert y.shape == (2,)
    with pytest.raises(IndexError):
        gc.evaluate(y, {x: np.zeros(3), i: np.array([0, bad])})


def test_take_out_of_range_constant_index_raises_index_error() -> None:
    x = gc.var("x", (3,))
    with pytest.raises(IndexError):
        gc.evaluate(gc.take(x, [0, 3], axis=0), {x: np.zeros(3)})


def test_take_rejects_float_indices() -> None:
    with pytest.raises(gc.DTypeError, match="take"):
        gc.take(gc.var("x", (3,)), gc.var("i", (2,)), axis=0)


# --- astype --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [F64, F32, I64, BOOL])
@pytest.mark.parametrize("target", [F64, F32, I64, BOOL])
def test_astype(source: np.dtype, target: np.dtype) -> None:
    x = data((2, 3), source, -3, 3)
    if source.kind == "f":
        x[0, :] = [0.5, -1.7, 2.5]
    assert_same(run(lambda a: a.astype(target), x), x.astype(target))
    assert_same(run(lambda a: gc.astype(a, target.name), x), x.astype(target))
