"""API.md §9 (items 1-2): the new elementwise, construction and shape functions.

Values against NumPy (scipy.special, the C library or mpmath where NumPy has no such
function), special values included; derivatives (VJP, JVP and the batched Jacobian, which
runs every rule with a leading batch axis) against central differences in float64; and
both backends against the reference evaluator on the same graphs, batched into one
compiled function per group. The elementwise records are also covered by the generic,
registry-driven tests (test_functions, test_autodiff, test_higher_order, test_numpy_source,
test_llvm_backend, test_llvm_vecmath); this file adds what those cannot know.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
import scipy.special

import graphc as gc
from graphc.testing import check_grad

F64, F32, I64, BOOL = (np.dtype(d) for d in ("float64", "float32", "int64", "bool"))
RNG = np.random.default_rng(15)
EPS = 1e-6


def evaluate(outputs: object, feed: dict) -> object:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return gc.evaluate(outputs, feed)


def same(got: object, want: object) -> None:
    """Same dtype, shape and bits (NaN positions, signs of zeros)."""
    got, want = np.asarray(got), np.asarray(want)
    assert (got.dtype, got.shape) == (want.dtype, want.shape), (got.dtype, got.shape, want.dtype, want.shape)
    if want.dtype.kind == "f":
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
        np.testing.assert_array_equal(np.signbit(got[got == 0]), np.signbit(want[want == 0]))
    else:
        np.testing.assert_array_equal(got, want)


def backends_agree(
    inputs: list[gc.Tensor], outputs: list[gc.Tensor], values: list[np.ndarray], ulps: int = 0, rtol: float = 0.0
) -> None:
    """Both compiled backends against gc.evaluate: the NumPy backend bit for bit, LLVM within `ulps` or `rtol`."""
    expected = evaluate(outputs, dict(zip(inputs, values, strict=True)))
    for backend in ("numpy", "llvm"):
        fn = gc.compile(inputs, outputs, backend=backend)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            got = fn(*values)
        for g, e in zip(got, expected, strict=True):
            if backend == "numpy" or (ulps == 0 and rtol == 0.0) or np.asarray(e).dtype.kind != "f":
                same(g, e)
            elif rtol:
                np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * np.abs(e).max(initial=0.0))
            else:
                finite = np.isfinite(e)
                same(np.asarray(g)[~finite], np.asarray(e)[~finite])
                np.testing.assert_array_max_ulp(np.asarray(g)[finite], np.asarray(e)[finite], maxulp=ulps)


# --- derivatives: VJP, JVP and the batched Jacobian against central differences ------------------------


def numeric_jacobian(out: gc.Tensor, x: gc.Tensor, feed: dict) -> np.ndarray:
    base = np.asarray(feed[x], np.float64)
    jac = np.zeros(out.shape + base.shape)
    for i in np.ndindex(base.shape):
        up, down = base.copy(), base.copy()
        up[i] += EPS
        down[i] -= EPS
        diff = np.asarray(evaluate(out, {**feed, x: up})) - np.asarray(evaluate(out, {**feed, x: down}))
        jac[(Ellipsis, *i)] = diff / (2 * EPS)
    return jac


def check_derivatives(fn: Callable[..., gc.Tensor], *values: np.ndarray, rtol: float = 1e-5) -> None:
    """VJP (check_grad), JVP and jacobian(mode='rev' and 'fwd') of fn at the values, against differences."""
    xs = [gc.var(f"x{i}", np.shape(v)) for i, v in enumerate(values)]
    feed = {x: np.asarray(v, np.float64) for x, v in zip(xs, values, strict=True)}
    out = fn(*xs)
    check_grad(out, xs, feed, rtol=rtol, atol=1e-7)
    for x in xs:
        expected = numeric_jacobian(out, x, feed)
        t = RNG.standard_normal(x.shape)
        jvp = gc.jvp([out], [x], [t])[0]
        np.testing.assert_allclose(evaluate(jvp, feed), np.tensordot(expected, t, t.ndim), rtol=rtol, atol=1e-7)
        for mode in ("rev", "fwd"):
            np.testing.assert_allclose(evaluate(gc.jacobian(out, x, mode=mode), feed), expected, rtol=rtol, atol=1e-7)


# --- elementwise: what the generic tests cannot know ------------------------------------------------------

ERF_POINTS = np.array(
    [
        0.0,
        -0.0,
        1e-310,
        -1e-300,
        1e-8,
        0.3,
        -0.49,
        0.5,
        0.51,
        -0.8,
        1.0,
        2.5,
        -3.0,
        5.9,
        6.0,
        10.0,
        -10.0,
        26.0,
        26.6,
        27.0,
        27.3,
        40.0,
        -40.0,
        np.inf,
        -np.inf,
        np.nan,
    ]
)


@pytest.mark.parametrize("name", ["erf", "erfc"])
def test_erf_values_against_mpmath_scipy_and_the_c_library(name: str) -> None:
    """Exactly the C library's in gc.evaluate; the LLVM kernel within 2 ulp of mpmath's exact value, and of
    scipy's except erfc's tail, where scipy is off by up to ~500 ulp (and flushes its subnormals to 0)."""
    x = gc.var("x", ERF_POINTS.shape)
    got = evaluate(getattr(gc, name)(x), {x: ERF_POINTS})
    same(got, np.array([getattr(math, name)(v) for v in ERF_POINTS]))
    llvm = gc.compile([x], getattr(gc, name)(x), backend="llvm")(ERF_POINTS)
    mpmath.mp.dps = 40
    finite = np.isfinite(ERF_POINTS)
    exact = np.array([float(getattr(mpmath, name)(v)) for v in ERF_POINTS[finite]])
    np.testing.assert_array_max_ulp(llvm[finite], exact, maxulp=2)
    same(llvm[~finite], got[~finite])
    small = finite & (np.abs(ERF_POINTS) < 5)
    np.testing.assert_array_max_ulp(llvm[small], getattr(scipy.special, name)(ERF_POINTS[small]), maxulp=4)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_erf_float32_and_special_values(dtype: np.dtype) -> None:
    x = gc.var("x", (6,), dtype)
    value = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 0.5], dtype)
    for name, want in (("erf", [0.0, -0.0, 1.0, -1.0, np.nan]), ("erfc", [1.0, 1.0, 0.0, 2.0, np.nan])):
        fn = gc.compile([x], getattr(gc, name)(x), backend="llvm")
        got = fn(value)
        assert got.dtype == dtype
        same(got[:5], np.array(want, dtype))
        same(evaluate(getattr(gc, name)(x), {x: value})[:5], np.array(want, dtype))


DIVMOD_INTS = (
    np.array([7, -7, 7, -7, 0, 5, -(2**63), -(2**63), 2**63 - 1, 3, -3, 0]),
    np.array([2, 2, -2, -2, 3, 0, -1, 1, -1, 0, 5, 0]),
)
DIVMOD_FLOATS = (
    np.array([7.5, -7.5, 7.5, -7.5, 0.0, -0.0, 1.0, -1.0, 1.0, np.inf, np.nan, 5.0, 1e308, 5e-324, 3.0, -0.0]),
    np.array([2.0, 2.0, -2.0, -2.0, 3.0, 3.0, 0.0, np.inf, -np.inf, 2.0, 1.0, np.nan, 1e-308, 3.0, -0.0, -1.0]),
)


@pytest.mark.parametrize("values", [DIVMOD_INTS, DIVMOD_FLOATS], ids=["int64", "float64"])
def test_mod_and_floor_divide_as_numpy_on_both_backends(values: tuple[np.ndarray, np.ndarray]) -> None:
    """Negative operands, division by zero (0 for ints, inf/NaN for floats), INT64_MIN // -1, infinities:
    NumPy's values bit for bit, in float32 as well."""
    for cast in (None, F32) if values[0].dtype == F64 else (None,):
        with np.errstate(over="ignore"):
            a, b = (v if cast is None else v.astype(cast) for v in values)
        x, y = gc.var("x", a.shape, a.dtype), gc.var("y", b.shape, b.dtype)
        outputs = [gc.mod(x, y), gc.floor_divide(x, y), np.mod(x, 3), np.remainder(-5, y)]
        with np.errstate(all="ignore"):
            want = [np.mod(a, b), np.floor_divide(a, b), np.mod(a, a.dtype.type(3)), np.remainder(-5, b)]
        for got, expected in zip(evaluate(outputs, {x: a, y: b}), want, strict=True):
            same(got, expected)
        backends_agree([x, y], outputs, [a, b])


def test_division_by_zero_warns_as_numpy() -> None:
    """gc.evaluate and the NumPy backend run NumPy's own floor_divide: the same RuntimeWarning."""
    x, y = gc.var("x", (2,), "int64"), gc.var("y", (2,), "int64")
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        gc.evaluate(gc.floor_divide(x, y), {x: np.array([1, 2]), y: np.array([0, 1])})
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        gc.compile([x, y], gc.mod(x, y), backend="numpy")(np.array([1, 2]), np.array([0, 1]))


def test_arctan2_hypot_logaddexp_special_values_on_both_backends() -> None:
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-310, 1e308])
    a, b = (v.ravel() for v in np.meshgrid(special, special))
    x, y = gc.var("x", a.shape), gc.var("y", b.shape)
    outputs = [gc.arctan2(x, y), gc.hypot(x, y), gc.logaddexp(x, y)]
    with np.errstate(all="ignore"):
        want = [np.arctan2(a, b), np.hypot(a, b), np.logaddexp(a, b)]
    for got, expected in zip(evaluate(outputs, {x: a, y: b}), want, strict=True):
        same(got, expected)
    backends_agree([x, y], outputs, [a, b], ulps=2)


def test_elementwise_derivatives_at_infinities_and_kinks() -> None:
    """No NaN from a branch not taken: limits at +-inf, hypot's subgradient 0 at the origin (to 2nd order),
    logaddexp's 1/2 for two equal infinities, arctan2 NaN at the origin (as JAX and PyTorch)."""
    x, y = gc.var("x"), gc.var("y")
    for f, at, want in [
        (gc.erf, math.inf, 0.0),
        (gc.erf, -math.inf, 0.0),
        (gc.erfc, 40.0, 0.0),
        (gc.arcsinh, math.inf, 0.0),
        (gc.arccosh, math.inf, 0.0),
        (gc.exp2, -math.inf, 0.0),
        (gc.arcsinh, 1e300, 1e-300),
    ]:
        g = gc.grad(f(x), x)
        assert evaluate(g, {x: at}) == pytest.approx(want, abs=1e-310), f.__name__
        assert evaluate(gc.grad(g, x), {x: at}) == 0.0, f.__name__
    h = gc.hypot(x, y)
    assert evaluate(gc.grad(h, [x, y]), {x: 0.0, y: 0.0}) == [0.0, 0.0]
    assert evaluate(gc.hessian(h, x), {x: 0.0, y: 0.0}) == 0.0
    assert evaluate(gc.grad(h, [x, y]), {x: math.inf, y: 1.0}) == [1.0, 0.0]
    s = gc.logaddexp(x, y)
    assert evaluate(gc.grad(s, [x, y]), {x: math.inf, y: math.inf}) == [0.5, 0.5]
    assert evaluate(gc.grad(s, [x, y]), {x: math.inf, y: -math.inf}) == [1.0, 0.0]
    assert np.isnan(evaluate(gc.grad(gc.arctan2(y, x), x), {x: 0.0, y: 0.0}))


def test_arctan2_derivative_is_zero_where_an_operand_is_infinite() -> None:
    """P3: d arctan2(y, x) = (x dy - y dx) / (x^2 + y^2) tends to 0 as |x| or |y| -> inf (was inf/inf = NaN);
    a NaN operand still gives NaN, the origin NaN; evaluate and both backends, one graph, first and second order."""
    inf, nan = math.inf, math.nan
    y_values = np.array([inf, -inf, 1.0, 1.0, inf, -inf, 0.0, -0.0, inf, nan, 0.0, 3.0])
    x_values = np.array([1.0, 2.0, inf, -inf, inf, -inf, inf, -inf, nan, inf, 0.0, -4.0])
    y, x = gc.var("y", y_values.shape), gc.var("x", x_values.shape)
    dy, dx = gc.grad(gc.sum(gc.arctan2(y, x)), [y, x])
    outputs = [dy, dx, gc.grad(gc.sum(dy), y), gc.grad(gc.sum(dx), y)]
    got = evaluate(outputs, {y: y_values, x: x_values})
    limit = np.where(np.isnan(y_values + x_values), nan, 0.0)
    limit[-2:] = [nan, 0.0]  # the origin; (3, -4) below
    for value in got:
        np.testing.assert_array_equal(np.abs(value[:-1]), np.abs(limit[:-1]))
    assert got[0][-1] == pytest.approx(-4 / 25, rel=1e-15) and got[1][-1] == pytest.approx(-3 / 25, rel=1e-15)
    backends_agree([y, x], outputs, [y_values, x_values])


@pytest.mark.parametrize("dtype", [F64, F32])
def test_new_float_functions_keep_float32(dtype: np.dtype) -> None:
    x = gc.var("x", (3,), dtype)
    for name in ["arcsin", "arccos", "arcsinh", "arccosh", "arctanh", "log10", "exp2", "erf", "erfc"]:
        out = getattr(gc, name)(x)
        assert out.dtype == dtype and gc.grad(gc.sum(out), x).dtype == dtype
    for name in ["arctan2", "hypot", "logaddexp", "mod", "floor_divide"]:
        assert getattr(gc, name)(x, x).dtype == dtype
    assert gc.arctan2(gc.var("i", (2,), "int64"), 1).dtype == F64


def test_numpy_dispatch_of_the_new_ufuncs() -> None:
    x = gc.var("x", (3,))
    for ufunc in (
        np.arcsin,
        np.arccosh,
        np.log10,
        np.exp2,
        np.arctan2,
        np.hypot,
        np.logaddexp,
        np.mod,
        np.floor_divide,
    ):
        out = ufunc(x) if ufunc.nin == 1 else ufunc(x, 2.0)
        assert isinstance(out, gc.Tensor)
    assert np.var(x).node.op.name == "div" and np.std(x, ddof=1).node.op.name == "sqrt"


# --- construction -------------------------------------------------------------------------------------------


def test_constructors_match_numpy() -> None:
    cases = [
        (gc.zeros((2, 3)), np.zeros((2, 3))), (gc.zeros(4, "int64"), np.zeros(4, np.int64)),
        (gc.ones((0, 2)), np.ones((0, 2))), (gc.ones((), "bool"), np.ones((), bool)),
        (gc.full((2, 2), 7), np.full((2, 2), 7)), (gc.full(3, -0.0), np.full(3, -0.0)),
        (gc.full((2, 3), [1.0, 2.0, 3.0]), np.full((2, 3), [1.0, 2.0, 3.0])),
        (gc.full((2,), 1.5, "float32"), np.full((2,), 1.5, np.float32)),
        (gc.eye(3), np.eye(3)), (gc.eye(2, 4, k=1, dtype="int64"), np.eye(2, 4, k=1, dtype=np.int64)),
        (gc.eye(3, k=-5), np.eye(3, k=-5)), (gc.arange(5), np.arange(5)), (gc.arange(1.0, 2.0, 0.25),
        np.arange(1.0, 2.0, 0.25)), (gc.arange(3, dtype="float32"), np.arange(3, dtype=np.float32)),
        (gc.arange(5, 1, -2), np.arange(5, 1, -2)), (gc.linspace(0, 1, 7), np.linspace(0, 1, 7)),
        (gc.linspace(2, 3, 4, endpoint=False), np.linspace(2, 3, 4, endpoint=False)),
        (gc.linspace(0, 1, 1), np.linspace(0, 1, 1)), (gc.linspace(0, 1, 0), np.linspace(0, 1, 0)),
        (gc.linspace([0.0, 1.0], 5.0, 3, axis=1), np.linspace([0.0, 1.0], 5.0, 3, axis=1)),
        (gc.linspace(0, 10, 4, dtype="int64"), np.linspace(0, 10, 4, dtype=np.int64)),
        (gc.zeros_like(np.ones((2, 3), np.float32)), np.zeros((2, 3), np.float32)),
        (gc.ones_like(gc.var("v", (3,), "int64")), np.ones(3, np.int64)),
        (gc.ones_like(gc.var("v", (3,)), shape=(2,), dtype="bool"), np.ones(2, bool)),
        (gc.full_like(gc.var("v", (2,)), 9), np.full(2, 9.0)),
    ]  # fmt: skip
    for built, want in cases:
        same(evaluate(built, {}), want)
    step = gc.linspace(0.0, 1.0, 5, retstep=True)[1]
    same(evaluate(step, {}), np.asarray(np.linspace(0.0, 1.0, 5, retstep=True)[1]))


def test_symbolic_linspace_and_full_are_differentiable() -> None:
    """Tensor start/stop: NumPy's values bit for bit (stop exact at the end) and derivatives by differences."""
    a, b = gc.var("a", (2,)), gc.var("b")
    for kwargs in ({}, {"endpoint": False}, {"axis": 1}, {"num": 1}):
        got = evaluate(gc.linspace(a, b, **{"num": 6, **kwargs}), {a: np.array([0.1, -3.0]), b: 2.7})
        same(got, np.linspace(np.array([0.1, -3.0]), 2.7, **{"num": 6, **kwargs}))
    check_derivatives(lambda s, e: gc.linspace(s, e, 5) ** 2, np.array([0.3, -1.0]), np.array(2.0))
    check_derivatives(lambda v: gc.full((2, 3), v) * np.arange(6.0).reshape(2, 3), np.array([1.5, -2.0, 0.5]))


def test_construction_errors() -> None:
    with pytest.raises(gc.ShapeError, match="dimensions must be ints >= 0"):
        gc.zeros((2, -1))
    with pytest.raises(gc.DTypeError, match="unsupported dtype"):
        gc.ones(3, dtype="complex128")
    with pytest.raises(TypeError, match="static numbers"):
        gc.arange(gc.var("n"))
    with pytest.raises(TypeError, match="static numbers"):
        gc.eye(gc.var("n", (), "int64"))
    with pytest.raises(gc.ShapeError, match="must be non-negative"):
        gc.linspace(0, 1, -1)


# --- rearrangements: values against NumPy, both backends -------------------------------------------------------

SHAPES = [(0,), (1,), (5,), (3, 4), (2, 0, 3), (2, 3, 4)]


def pad_pairs(ndim: int) -> list[tuple[int, int]]:
    return [(1, 0), (0, 2)] + [(0, 0)] * (ndim - 2)


def value_pairs(ndim: int) -> list[tuple[float, float]]:
    return [(1.0, 2.0), (3.0, 4.0)] + [(0.0, 0.0)] * (ndim - 2)


def rearrangements(ndim: int) -> list[tuple[str, Callable, Callable]]:
    """(name, graphc build, NumPy reference) for arrays of `ndim` axes."""
    cases = [
        ("flip", gc.flip, np.flip), ("flip0", lambda a: gc.flip(a, 0), lambda a: np.flip(a, 0)),
        ("flip-1", lambda a: gc.flip(a, -1), lambda a: np.flip(a, -1)),
        ("roll", lambda a: gc.roll(a, 7), lambda a: np.roll(a, 7)),
        ("roll-axis", lambda a: gc.roll(a, -2, axis=-1), lambda a: np.roll(a, -2, axis=-1)),
        ("tile", lambda a: gc.tile(a, 2), lambda a: np.tile(a, 2)),
        ("tile3", lambda a: gc.tile(a, (2, 1, 3)), lambda a: np.tile(a, (2, 1, 3))),
        ("tile0", lambda a: gc.tile(a, (0, 2)), lambda a: np.tile(a, (0, 2))),
        ("repeat", lambda a: gc.repeat(a, 3), lambda a: np.repeat(a, 3)),
        ("repeat-axis", lambda a: gc.repeat(a, 2, axis=-1), lambda a: np.repeat(a, 2, axis=-1)),
        ("cumsum", gc.cumsum, np.cumsum), ("cumsum-axis", lambda a: gc.cumsum(a, -1), lambda a: np.cumsum(a, -1)),
        ("cumprod", gc.cumprod, np.cumprod),
        ("cumprod-axis0", lambda a: gc.cumprod(a, axis=0), lambda a: np.cumprod(a, axis=0)),
        ("diff", gc.diff, np.diff), ("diff2", lambda a: gc.diff(a, 2, axis=0), lambda a: np.diff(a, 2, axis=0)),
        ("diff-pre", lambda a: gc.diff(a, prepend=1.5, append=-2.0), lambda a: np.diff(a, prepend=1.5, append=-2.0)),
        ("pad", lambda a: gc.pad(a, 2), lambda a: np.pad(a, 2)),
        ("pad-values", lambda a: gc.pad(a, (1, 2), constant_values=(-1.5, 4)),
         lambda a: np.pad(a, (1, 2), constant_values=(-1.5, 4))),
    ]  # fmt: skip
    for mode in ("edge", "reflect", "symmetric", "wrap"):
        cases.append(
            (f"pad-{mode}", lambda a, m=mode: gc.pad(a, (3, 5), mode=m), lambda a, m=mode: np.pad(a, (3, 5), mode=m))
        )
    if ndim >= 2:
        cases += [
            ("roll-two", lambda a: gc.roll(a, (1, -3), axis=(0, 1)), lambda a: np.roll(a, (1, -3), axis=(0, 1))),
            ("repeat-list", lambda a: gc.repeat(a, [1, 0, 2][: a.shape[0]] + [1] * (a.shape[0] - 3), axis=0),
             lambda a: np.repeat(a, [1, 0, 2][: a.shape[0]] + [1] * (a.shape[0] - 3), axis=0)),
            ("pad-pairs", lambda a: gc.pad(a, pad_pairs(a.ndim), constant_values=value_pairs(a.ndim)),
             lambda a: np.pad(a, pad_pairs(a.ndim), constant_values=value_pairs(a.ndim))),
            ("triu", gc.triu, np.triu), ("tril-1", lambda a: gc.tril(a, -1), lambda a: np.tril(a, -1)),
            ("triu2", lambda a: gc.triu(a, 2), lambda a: np.triu(a, 2)),
        ]  # fmt: skip
    if ndim == 1:
        cases += [("triu", gc.triu, np.triu), ("tril", gc.tril, np.tril), ("outer", lambda a: gc.outer(a, a[::-1]),
                  lambda a: np.outer(a, a[::-1]))]  # fmt: skip
    return cases


def numpy_can(reference: Callable, value: np.ndarray) -> bool:
    try:
        with np.errstate(all="ignore"):
            reference(value)
    except (ValueError, IndexError):
        return False
    return True


@pytest.mark.parametrize("dtype", [F64, F32, I64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_rearrangements_match_numpy_on_both_backends(shape: tuple[int, ...], dtype: np.dtype) -> None:
    value = (RNG.integers(-4, 5, shape) if dtype == I64 else RNG.normal(size=shape)).astype(dtype)
    if dtype != I64 and value.size:
        value.flat[0] = -0.0
        value.flat[-1] = 0.0 if value.size > 2 else value.flat[-1]
    x = gc.var("x", shape, dtype)
    built, wanted = [], []
    for name, build, reference in rearrangements(len(shape)):
        if not numpy_can(reference, value):
            with pytest.raises((ValueError, gc.GraphError, IndexError)):
                build(x)
            continue
        built.append(build(x))
        wanted.append((name, reference(value)))
    got = evaluate(built, {x: value})
    for g, (name, want) in zip(got, wanted, strict=True):
        try:
            same(g, want)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    backends_agree([x], built, [value])


def test_bool_arrays() -> None:
    value = np.array([[True, False, True], [False, False, True]])
    x = gc.var("b", value.shape, "bool")
    pairs = [(gc.flip(x), np.flip(value)), (gc.diff(x), np.diff(value)), (gc.cumsum(x), np.cumsum(value)),
             (gc.pad(x, 1), np.pad(value, 1)), (gc.tile(x, 2), np.tile(value, 2)), (gc.triu(x), np.triu(value)),
             (gc.outer(x[0], x[1]), np.outer(value[0], value[1]))]  # fmt: skip
    for built, want in pairs:
        same(evaluate(built, {x: value}), want)


def test_cumulative_dtypes_and_axis_none() -> None:
    x = gc.var("x", (2, 3), "int64")
    value = np.array([[1, -2, 3], [4, 5, -6]])
    same(evaluate(gc.cumsum(x, dtype="float32"), {x: value}), np.cumsum(value, dtype=np.float32))
    same(evaluate(gc.cumprod(x, axis=1), {x: value}), np.cumprod(value, axis=1))
    with pytest.raises(gc.ShapeError, match="out of bounds"):
        gc.cumsum(x, axis=2)


def test_rearrangement_errors_name_the_function() -> None:
    x = gc.var("x", (3, 4))
    with pytest.raises(NotImplementedError, match="pad mode 'median' is not supported"):
        gc.pad(x, 1, mode="median")
    with pytest.raises(ValueError, match="negative"):
        gc.pad(x, -1)
    with pytest.raises(ValueError, match="non-negative"):
        gc.repeat(x, -1)
    with pytest.raises(gc.ShapeError, match=r"repeat\(f64\[3,4\]"):
        gc.repeat(x, [1, 2], axis=0)
    with pytest.raises(ValueError, match="order must be non-negative"):
        gc.diff(x, -1)
    with pytest.raises(gc.ShapeError, match="axis 2 is out of bounds"):
        gc.flip(x, 2)
    with pytest.raises(gc.ShapeError, match="at least one dimension"):
        gc.triu(gc.var("s"))
    for build in (lambda n: gc.roll(x, n), lambda n: gc.tile(x, n), lambda n: gc.repeat(x, n), lambda n: gc.pad(x, n)):
        with pytest.raises(TypeError, match="static numbers"):
            build(gc.var("n", (), "int64"))


# --- derivatives of the composites and primitives ---------------------------------------------------------------

DERIVATIVE_CASES: dict[str, tuple[Callable, tuple[np.ndarray, ...]]] = {
    "flip": (lambda a: gc.flip(a, 1) * np.arange(12.0).reshape(3, 4), (RNG.normal(size=(3, 4)),)),
    "roll": (lambda a: gc.roll(a, (1, -1), axis=(0, 1)) ** 2, (RNG.normal(size=(3, 4)),)),
    "tile": (lambda a: gc.tile(a, (2, 3)) ** 2, (RNG.normal(size=(2, 2)),)),
    "repeat": (lambda a: gc.repeat(a, 3, axis=0) ** 3, (RNG.normal(size=(2, 3)),)),
    "repeat-list": (lambda a: gc.repeat(a, [2, 0, 1]) ** 2, (RNG.normal(size=3),)),
    "pad-constant": (lambda a: gc.pad(a, ((1, 2), (0, 1)), constant_values=3.0) ** 2, (RNG.normal(size=(2, 3)),)),
    "pad-reflect": (lambda a: gc.pad(a, 4, mode="reflect") ** 2, (RNG.normal(size=(3,)),)),
    "pad-edge": (lambda a: gc.pad(a, (2, 1), mode="edge") ** 2, (RNG.normal(size=(2, 2)),)),
    "pad-tensor-value": (lambda a, c: gc.pad(a, 1, constant_values=c) * gc.pad(a, 1),
                         (RNG.normal(size=(3,)), np.array(0.7))),
    "diff": (lambda a: gc.diff(a, 2) ** 2, (RNG.normal(size=(2, 5)),)),
    "cumsum": (lambda a: gc.cumsum(a, axis=1) ** 2, (RNG.normal(size=(3, 4)),)),
    "cumsum-flat": (lambda a: gc.cumsum(a * a), (RNG.normal(size=(2, 3)),)),
    "cumprod": (lambda a: gc.cumprod(a, axis=0), (RNG.normal(size=(4, 3)),)),
    "cumprod-one-zero": (gc.cumprod, (np.array([1.5, -0.5, 0.0, 2.0, 0.7]),)),
    "cumprod-two-zeros": (gc.cumprod, (np.array([0.0, 1.5, 0.0, 2.0, -1.2]),)),
    "cumprod-zeros-rows": (lambda a: gc.cumprod(a, axis=1),
                           (np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 0.5], [2.0, 1.0, 0.0]]),)),
    "triu": (lambda a: gc.triu(a, 1) ** 2, (RNG.normal(size=(3, 3)),)),
    "tril": (lambda a: gc.tril(a) * a, (RNG.normal(size=(2, 3, 3)),)),
    "outer": (lambda a, b: gc.outer(a, b) ** 2, (RNG.normal(size=3), RNG.normal(size=(2, 2)))),
    "variance": (lambda a: gc.variance(a, axis=1), (RNG.normal(size=(3, 4)),)),
    "std-ddof": (lambda a: gc.std(a, axis=0, ddof=1, keepdims=True), (RNG.normal(size=(3, 4)),)),
    "var-method": (lambda a: a.var(), (RNG.normal(size=(2, 3)),)),
    "einsum-matmul": (lambda a, b: gc.einsum("ij,jk->ik", a, b), (RNG.normal(size=(2, 3)), RNG.normal(size=(3, 2)))),
    "einsum-batch": (lambda a, b: gc.einsum("bij,bjk", a, b), (RNG.normal(size=(2, 2, 3)), RNG.normal(size=(2, 3, 2)))),
    "einsum-trace": (lambda a: gc.einsum("ii", a), (RNG.normal(size=(3, 3)),)),
    "einsum-three": (lambda a, b, c: gc.einsum("i,ij,j->", a, b, c),
                     (RNG.normal(size=3), RNG.normal(size=(3, 2)), RNG.normal(size=2))),
    "einsum-ellipsis": (lambda a, b: gc.einsum("...i,...i->...", a, b), (RNG.normal(size=(2, 3)), RNG.normal(size=3))),
    "tensordot": (lambda a, b: gc.tensordot(a, b, axes=([0, 2], [1, 0])),
                  (RNG.normal(size=(2, 3, 4)), RNG.normal(size=(4, 2, 3)))),
}  # fmt: skip


@pytest.mark.parametrize("name", DERIVATIVE_CASES)
def test_derivatives_against_finite_differences(name: str) -> None:
    fn, values = DERIVATIVE_CASES[name]
    check_derivatives(fn, *values)


@pytest.mark.parametrize(
    "v", [[1.5, 0.0, 2.0, -0.7], [0.0, 1.5, 0.0, 2.0], [0.5, -1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 3.0]]
)
def test_cumprod_hessian_with_zeros(v: list[float]) -> None:
    """The second derivative of sum(cumprod(x) * w) where x has zeros, against differences of the exact gradient."""
    x = gc.var("x", (4,))
    w = np.array([0.3, -1.2, 0.8, 2.0])
    f = gc.sum(gc.cumprod(x) * w)
    g = gc.grad(f, x)
    h = evaluate(gc.hessian(f, x), {x: np.array(v)})
    numeric = numeric_jacobian(g, x, {x: np.array(v)})
    np.testing.assert_allclose(h, numeric, rtol=1e-5, atol=1e-6)
    assert np.isfinite(h).all()


def test_cumsum_cumprod_derivatives_on_both_backends() -> None:
    """The gradient graphs (reverse cumsum, the zero-aware cumprod rule) compiled by both backends."""
    x = gc.var("x", (3, 5))
    value = np.array([[1.5, 0.0, 2.0, -0.7, 1.1], [0.0, 0.0, 0.5, 2.0, 1.0], [0.3, -1.0, 2.0, 0.4, 0.0]])
    outputs = [gc.grad(gc.sum(gc.cumprod(x, axis=1) * gc.cumsum(x, axis=0)), x),
               gc.jvp([gc.cumprod(x, axis=1)], [x], [np.ones((3, 5))])[0]]  # fmt: skip
    backends_agree([x], outputs, [value], rtol=1e-13)


# --- variance and std -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F64, F32, I64])
def test_variance_and_std_match_numpy(dtype: np.dtype) -> None:
    value = (RNG.integers(-5, 6, (3, 4, 2)) if dtype == I64 else RNG.normal(size=(3, 4, 2))).astype(dtype)
    x = gc.var("x", value.shape, dtype)
    kwargs = [{}, {"axis": 1}, {"axis": (0, 2), "keepdims": True}, {"ddof": 1}, {"axis": -1, "ddof": 2},
              {"ddof": 24}, {"dtype": "float32", "axis": 0}]  # fmt: skip
    built = [f(x, **k) for k in kwargs for f in (gc.variance, gc.std)]
    built += [x.var(axis=0), x.std(ddof=1), np.var(x, axis=1), np.std(x)]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        wanted = [f(value, **k) for k in kwargs for f in (np.var, np.std)]
        wanted += [value.var(axis=0), value.std(ddof=1), np.var(value, axis=1), np.std(value)]
    for got, want in zip(evaluate(built, {x: value}), wanted, strict=True):
        want = np.asarray(want)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6 if want.dtype == F32 else 1e-15)
    backends_agree([x], built, [value], rtol=1e-5 if dtype == F32 else 1e-12)


def test_variance_names() -> None:
    """gc.var still makes symbols; variance is gc.variance and Tensor.var."""
    assert gc.var("v", (2,)).name == "v"
    assert "variance" in gc.__all__ and "std" in gc.__all__
    x = gc.var("x", (2, 3))
    assert x.var(axis=1).shape == (2,) and x.std(keepdims=True).shape == (1, 1)


# --- einsum and tensordot -----------------------------------------------------------------------------------------

EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("ij->ji", [(2, 3)]), ("ij->", [(2, 3)]),
    ("ij", [(2, 3)]), ("ji", [(2, 3)]), ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("iij->ij", [(2, 2, 3)]),
    ("i,i->", [(4,), (4,)]), ("i,j->ij", [(3,), (2,)]), ("i,i->i", [(3,), (1,)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("bij,jk->bik", [(2, 2, 3), (3, 4)]), ("ijk,ikj->i", [(2, 3, 4), (2, 4, 3)]), ("ij,ij->i", [(2, 3), (2, 1)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]), ("...i,...i", [(2, 3), (3,)]), ("i...->...", [(2, 3, 4)]),
    ("...,...", [(3,), (2, 3)]), ("i,ij,j->", [(3,), (3, 2), (2,)]), ("abc,cd,db->a", [(2, 3, 4), (4, 5), (5, 3)]),
    ("Ba", [(2, 3)]), ("aB", [(2, 3)]), ("ij,jk->ik", [(2, 0), (0, 3)]), ("", [()]), (",->", [(), ()]),
    ("ij,kl->ijkl", [(2, 1), (1, 2)]), ("ijj->i", [(2, 3, 3)]),
]  # fmt: skip


@pytest.mark.parametrize("dtype", [F64, F32, I64, BOOL])
def test_einsum_matches_numpy(dtype: np.dtype) -> None:
    """Every form of the docstring, float results to rounding, int and bool ones exactly; both backends."""
    inputs, built, wanted = [], [], []
    for k, (subscripts, shapes) in enumerate(EINSUM):
        values = [
            RNG.integers(0, 2, s).astype(dtype)
            if dtype == BOOL
            else RNG.integers(-3, 4, s).astype(dtype)
            if dtype == I64
            else RNG.normal(size=s).astype(dtype)
            for s in shapes
        ]
        xs = [gc.var(f"e{k}_{i}", s, dtype) for i, s in enumerate(shapes)]
        built.append(gc.einsum(subscripts, *xs))
        wanted.append(np.einsum(subscripts, *values))
        inputs += list(zip(xs, values, strict=True))
    feed = dict(inputs)
    for (subscripts, _), got, want in zip(EINSUM, evaluate(built, feed), wanted, strict=True):
        want = np.asarray(want)
        assert (got.dtype, got.shape) == (want.dtype, want.shape), subscripts
        rtol = {F64: 1e-13, F32: 1e-5}.get(dtype, 0)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=subscripts)
    backends_agree([x for x, _ in inputs], built, [v for _, v in inputs], rtol=1e-5 if dtype == F32 else 1e-12)


def test_einsum_lowers_to_matmul() -> None:
    a, b = gc.var("a", (8, 3, 5)), gc.var("b", (5, 3, 4))
    ops = {n.op.name for n in gc.Graph([gc.einsum("ikj,jkl->ikl", a, b).node], [a.node, b.node]).nodes}
    assert "matmul" in ops and "mul" not in ops


def test_einsum_errors() -> None:
    a = gc.var("a", (2, 3))
    problems = [
        (("ij,jk", a), ValueError, "2 operand subscripts .* for 1 operands"),
        (("ijk", a), ValueError, "3 labels for an operand of 2 dimensions"),
        (("i1", a), ValueError, "labels are ASCII letters"),
        (("ij->k", a), ValueError, "'k' does not appear"),
        (("ij->ii", a), ValueError, "appears more than once"),
        (("ij,ij", a, gc.var("b", (3, 2))), gc.ShapeError, "sizes 2 and 3"),
        (("...i->i", gc.var("c", (2, 2, 3))), ValueError, "no '...' ellipsis"),
        (("ii", a), gc.ShapeError, "subscript 'i' has sizes 2 and 3"),
        (("ii", gc.var("d", (1, 3))), gc.ShapeError, "repeated subscript needs equal dimensions"),
        ((3, a), TypeError, "subscripts as a string"),
    ]
    for args, error, message in problems:
        with pytest.raises(error, match=message):
            gc.einsum(*args)
    with pytest.raises(gc.ShapeError, match="shape-mismatch"):
        gc.tensordot(a, gc.var("b", (2, 3)), axes=1)


@pytest.mark.parametrize("axes", [0, 1, 2, ([1], [0]), (1, 0), ([0, 1], [1, 0]), ([], [])], ids=str)
def test_tensordot_matches_numpy(axes: object) -> None:
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=(3, 2))
    if axes == 2:
        b = RNG.normal(size=(2, 3))
    x, y = gc.var("x", a.shape), gc.var("y", b.shape)
    np.testing.assert_allclose(evaluate(gc.tensordot(x, y, axes), {x: a, y: b}), np.tensordot(a, b, axes), rtol=1e-13)


# --- bad arguments: messages name the function, the argument and the user's line (P4, P9) ---------------------

_x, _M, _s = gc.var("x", (3,)), gc.var("M", (2, 3)), gc.var("s")
_KEY = gc.random.key(0)


def _sparse() -> object:
    return gc.sparse_jacobian(_x * _x, _x)


BAD_CALLS: list[tuple[str, Callable[[], object], type[Exception], tuple[str, ...]]] = [
    ("sum-where", lambda: np.sum(_x, where=np.array([True, False, True])), TypeError, ("np.sum", "where=", "gc.where")),
    ("sum-initial", lambda: np.sum(_x, initial=5.0), TypeError, ("np.sum", "initial=")),
    ("sum-dtype", lambda: np.sum(_x, dtype=np.int64), TypeError, ("np.sum", "dtype=", "astype")),
    ("uniform-shape", lambda: gc.random.uniform(_KEY, gc.var("n", (), "int64")), TypeError,
     ("uniform", "shape must be a tuple of ints", "Tensor(n")),
    ("sparse-matmul", lambda: _sparse() @ _x, TypeError, ("SparseTensor", "@", ".values", "csr_array")),
    ("matmul-sparse", lambda: _x @ _sparse(), TypeError, ("SparseTensor", ".values")),
    ("sparse-add", lambda: _sparse() + 1.0, TypeError, ("SparseTensor", "+", ".values")),
    ("rsub-sparse", lambda: np.ones(3) - _sparse(), TypeError, ("SparseTensor", "-", ".values")),
    ("neg-sparse", lambda: -_sparse(), TypeError, ("SparseTensor", "unary -")),
    ("pad-edge-empty", lambda: gc.pad(gc.var("e", (0,)), 2, mode="edge"), ValueError, ("pad(f64[0], 2)", "'edge'")),
    ("einsum-output", lambda: gc.einsum("ij->k", _M), ValueError, ("einsum('ij->k', f64[2,3])", "'k'")),
    ("einsum-operands", lambda: gc.einsum("ij", _M, _M), ValueError, ("einsum('ij', f64[2,3], f64[2,3])",)),
    ("einsum-labels", lambda: gc.einsum("ijk", _M), ValueError, ("einsum('ijk', f64[2,3])", "3 labels")),
    ("pad-negative", lambda: gc.pad(_x, -1), ValueError, ("pad(f64[3], -1)", "pad_width", "-1")),
    ("pad-broadcast", lambda: gc.pad(_x, ((1, 1), (1, 1))), ValueError, ("pad(f64[3]", "((1, 1), (1, 1))")),
    ("pad-mode", lambda: gc.pad(_x, 1, mode="foo"), NotImplementedError, ("pad(f64[3], 1)", "'foo'")),
    ("repeat-negative", lambda: gc.repeat(_x, -1), ValueError, ("repeat(f64[3], -1)", "-1")),
    ("diff-negative", lambda: gc.diff(_x, n=-1), ValueError, ("diff(f64[3])", "order", "-1")),
    ("eye-negative", lambda: gc.eye(-1), ValueError, ("eye(-1)", "negative")),
    ("norm-2", lambda: gc.linalg.norm(_M, 2), NotImplementedError, ("norm(f64[2,3])", "ord=2")),
    ("split-tensor", lambda: gc.random.split(_KEY, gc.const(2)), ValueError, ("split(i64[2], i64[])", "num")),
    ("permutation-negative", lambda: gc.random.permutation(_KEY, -1), ValueError, ("permutation(i64[2], -1)",)),
    ("cond-not-callable", lambda: gc.cond(_s > 0, 1.0, 2.0), TypeError, ("cond(bool[])", "true_fn", "1.0")),
    ("cond-arity", lambda: gc.cond(_s > 0, lambda v, w: v, lambda v: v, _s), TypeError,
     ("cond(bool[], f64[])", "true_fn(v, w)", "1 operands")),
    ("dumps-input", lambda: gc.dumps([_x * 2], _x), TypeError, ("gc.dumps", "input 0", "mul")),
    ("dumps-missing-var", lambda: gc.dumps([], _x * 2), ValueError, ("gc.dumps", "missing from inputs", "'x'")),
    ("dumps-sparse", lambda: gc.dumps([_x], _sparse()), TypeError, ("gc.dumps", "SparseTensor", ".values")),
    ("explore-sparse", lambda: gc.explore(_sparse(), "never-written.html"), TypeError, ("SparseTensor", ".values")),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "names"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_name_the_function_the_argument_and_the_line(
    call: Callable[[], object], error: type[Exception], names: tuple[str, ...]
) -> None:
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for name in names:
        assert name in message, (name, message)
    assert f"{__file__}:" in message, message
