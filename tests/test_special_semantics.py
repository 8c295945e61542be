"""One meaning everywhere: `x ** p` at special values, and reductions over an empty axis.

Every executor — the reference evaluator (op.eval), the constant folder (which calls
op.eval), the NumPy backend and the llvm backend — must give the same bits.

pow: NumPy 2 computes `x ** 0.5` and `np.power(x, 0.5)` by sqrt (NaN at -inf, -0.0 at
-0.0) but an array of 0.5s by C's pow (+inf, +0.0), so NumPy's answer depends on the
exponent's memory layout. graphc's pow is sqrt wherever the exponent is 0.5, whatever
its layout; for every other exponent it is NumPy's (2, -1, 1, 0 included: their fast
paths agree with C's pow bit for bit).

logsumexp over an empty axis is -inf (scipy.special.logsumexp), and the gradient of an
empty input is empty; softmax and log_softmax over an empty axis return an empty
result (as jax.nn and torch do); max and min over an empty axis still refuse at build
time (NumPy raises: they have no identity).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from paramids import stable_repr

pytest.importorskip("llvmlite")

import graphc as gc

SPECIALS = [-np.inf, -0.0, 0.0, np.inf, np.nan, -1.0, 2.0, -8.0, 0.25, 1e-320, 1e300, -1e300, 3.0]
EXPONENTS = [0.5, 2, 2.0, -1, 1, 0, 1 / 3, 3, -0.5, -2, 1.5]
FLOATS = [np.dtype("float64"), np.dtype("float32")]


def quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            return fn(*args)


def specials(dtype: np.dtype) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.array(SPECIALS).astype(dtype)


def assert_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got = np.asarray(got)
    assert (got.dtype, got.shape) == (want.dtype, want.shape), what
    assert got.tobytes() == want.tobytes(), f"{what}: {got} != {want}"


def executors(inputs: list, outputs: object, values: list) -> dict[str, object]:
    """The result of each executor (folding shows up through optimize=True on constant parts)."""
    results = {"evaluate": quiet(gc.evaluate, outputs, dict(zip(inputs, values, strict=True)))}
    for backend in ("numpy", "llvm"):
        for optimize in (False, True):
            fn = gc.compile(inputs, outputs, backend=backend, optimize=optimize, cache=False)
            results[f"{backend} optimize={optimize}"] = quiet(fn, *values)
    return results


# --- pow --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("exponent", EXPONENTS, ids=stable_repr)
def test_power_by_a_scalar_matches_numpys_operator_everywhere(exponent: float, dtype: np.dtype) -> None:
    values = specials(dtype)
    want = quiet(lambda: values**exponent)
    assert_bits(quiet(lambda: np.power(values, exponent)), want, "NumPy's np.power itself")
    x = gc.var("x", values.shape, dtype=dtype)
    for name, got in executors([x], x**exponent, [values]).items():
        assert_bits(got, want, f"x ** {exponent} on {name}")
    folded = gc.optimize(gc.const(values) ** exponent)
    assert folded.node.op.name in ("const", "broadcast_to")  # folded (nothing left to compute)
    assert_bits(quiet(gc.evaluate, folded, {}), want, "the folded constant")
    for name, got in executors([x], gc.const(values) ** exponent + 0 * x, [values]).items():
        assert_bits(got, quiet(lambda: want + 0 * values), f"const ** {exponent} on {name}")


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_power_is_sqrt_for_every_layout_of_the_exponent_one_half(dtype: np.dtype) -> None:
    values = specials(dtype)
    want = quiet(np.sqrt, values)
    assert np.isnan(want[0]) and np.signbit(want[1])  # -inf -> NaN, -0.0 -> -0.0
    x = gc.var("x", values.shape, dtype=dtype)
    p = gc.var("p", values.shape, dtype=dtype)
    s = gc.var("s", (), dtype=dtype)
    half = np.full(values.shape, 0.5, dtype)
    outs = [x ** gc.const(np.asarray(0.5, dtype)), x ** gc.const(half), x**p, x**s, gc.power(x, 0.5)]
    for name, got in executors([x, p, s], outs, [values, half, np.asarray(0.5, dtype)]).items():
        for k, g in enumerate(got):
            assert_bits(g, want, f"layout {k} on {name}")


def test_power_with_mixed_exponents_takes_sqrt_only_where_one_half() -> None:
    x = gc.var("x", (4,))
    p = gc.var("p", (4,))
    values = np.array([-np.inf, -0.0, -np.inf, 4.0])
    exponents = np.array([0.5, 0.5, 2.0, 0.5])
    want = np.array([quiet(np.sqrt, -np.inf), -0.0, np.inf, 2.0])  # sqrt's NaN, sign bit and all
    for name, got in executors([x, p], x**p, [values, exponents]).items():
        assert_bits(got, want, name)


# --- empty axes -------------------------------------------------------------------------------------------


EMPTY_CASES = [((0,), None), ((0,), 0), ((3, 0), 1), ((0, 3), 0), ((2, 0), None), ((0, 3), 1), ((2, 0, 3), (1, 2))]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(("shape", "axis"), EMPTY_CASES, ids=str)
def test_logsumexp_over_no_elements_is_minus_infinity_everywhere(shape: tuple, axis: object, keepdims: bool) -> None:
    values = np.zeros(shape)
    reduced = np.sum(values, axis=axis, keepdims=keepdims).shape
    want = np.full(reduced, -np.inf)  # (0, 3) over axis 1 reduces no empty axis: its result is empty
    x = gc.var("x", shape)
    out = gc.logsumexp(x, axis=axis, keepdims=keepdims)
    for name, got in executors([x], out, [values]).items():
        assert_bits(got, want, name)
    folded = quiet(gc.evaluate, gc.optimize(gc.logsumexp(gc.const(values), axis=axis, keepdims=keepdims)), {})
    assert_bits(folded, want, "folded")
    loss = gc.sum(gc.where(gc.isfinite(out), out, 0.0))
    for name, got in executors([x], gc.grad(loss, x), [values]).items():
        assert_bits(got, np.zeros(shape), f"gradient on {name}")


@pytest.mark.parametrize(("shape", "axis"), [((0,), None), ((3, 0), 1)], ids=str)
def test_logsumexp_over_no_elements_agrees_with_scipy(shape: tuple, axis: object) -> None:
    scipy_special = pytest.importorskip("scipy.special")
    want = np.asarray(quiet(lambda: scipy_special.logsumexp(np.zeros(shape), axis=axis)), np.float64)
    x = gc.var("x", shape)
    for name, got in executors([x], gc.logsumexp(x, axis=axis), [np.zeros(shape)]).items():
        assert_bits(got, want, name)


@pytest.mark.parametrize("function", [gc.softmax, gc.log_softmax])
@pytest.mark.parametrize(("shape", "axis"), [((0,), -1), ((3, 0), 1), ((0, 4), 0), ((2, 0, 3), 1)], ids=str)
def test_softmax_over_an_empty_axis_is_empty(function, shape: tuple, axis: int) -> None:
    x = gc.var("x", shape)
    out = function(x, axis=axis)
    assert out.shape == shape
    for name, got in executors([x], [out, gc.grad(gc.sum(out), x)], [np.zeros(shape)]).items():
        for g in got:
            assert_bits(g, np.zeros(shape), name)


@pytest.mark.parametrize("function", [gc.max, gc.min])
def test_max_and_min_over_an_empty_axis_refuse_at_build_time(function) -> None:
    x = gc.var("x", (3, 0))
    with pytest.raises(gc.ShapeError, match="no identity"):
        function(x, axis=1)
    assert function(x, axis=0).shape == (0,)  # reducing a non-empty axis of an empty array is fine
