"""Random graphs: the llvm backend agrees with the reference evaluator (and the numpy backend).

The graphs, inputs and settings are test_differential.py's (elementwise, broadcasting,
reduction and shape ops over float64/float32/int64 vars, inputs mixing signed zeros,
huge, tiny, infinite and NaN values). The llvm backend is not bit-exact where it must
not be: transcendental functions are vecmath's approximations and sums have their own
documented order, and random compositions can amplify a last-place difference
(cancellation, a comparison that flips). So values are compared with `agree`:
the same NaN and infinity pattern, and close elsewhere; integer and bool results must be
equal unless the graph rounds a float that differs in the last place.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_differential import VARS, A, B, H, S, graphs, values

import graphc as gc

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
RTOL = {np.dtype("float64"): 1e-9, np.dtype("float32"): 1e-4}


def agree(got: np.ndarray, expected: np.ndarray, rtol: float) -> bool:
    """Equal dtype and shape; floats: same NaN positions, close values (infinities equal)."""
    if not isinstance(got, np.ndarray) or got.dtype != expected.dtype or got.shape != expected.shape:
        return False
    if expected.dtype.kind != "f":
        return bool(np.array_equal(got, expected))
    if not np.array_equal(np.isnan(got), np.isnan(expected)):
        return False
    scale = np.max(np.abs(expected[np.isfinite(expected)]), initial=1.0)
    with np.errstate(invalid="ignore"):
        return bool(np.allclose(got, expected, rtol=rtol, atol=rtol * 1e-6 * scale, equal_nan=True))


def tolerance(outputs: list[gc.Tensor]) -> float:
    """The relative tolerance of the least precise float the outputs are computed through."""
    dtypes = {node.dtype for node in gc.Graph(outputs).nodes}
    return max((RTOL[d] for d in dtypes if d in RTOL), default=RTOL[np.dtype("float64")])


def sensitive(outputs: list[gc.Tensor], feed: dict, expected: list[np.ndarray]) -> bool:
    """Whether the reference itself moves beyond tolerance when the inputs move by one ulp.

    Such outputs (ill-conditioned compositions, ties of comparisons) cannot be compared
    to a backend whose transcendental functions differ in the last place.
    """
    nudged = {v: (np.nextafter(x, np.inf) if x.dtype.kind == "f" else x) for v, x in feed.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            moved = gc.evaluate(outputs, nudged)
        except (ValueError, ArithmeticError, IndexError):
            return True
    rtol = tolerance(outputs)
    return not all(agree(m, e, rtol) for m, e in zip(moved, expected, strict=True))


def check(fn: gc.compile, outputs: list[gc.Tensor], seed: int) -> None:
    feed = values(seed)
    args = [feed[v] for v in VARS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            expected = gc.evaluate(outputs, feed)
        except (ValueError, ArithmeticError, IndexError) as exc:
            with pytest.raises(type(exc)):
                fn(*args)
            return
        got = fn(*args)
    rtol = tolerance(outputs)
    if all(agree(g, e, rtol) for g, e in zip(got, expected, strict=True)):
        return
    assert sensitive(outputs, feed, expected), (str(fn.graph), got, expected)


@settings(SETTINGS, max_examples=150)
@given(graphs(), st.integers(0, 2**16))
def test_random_graphs_match_the_reference(outputs: list[gc.Tensor], seed: int) -> None:
    fn = gc.compile(VARS, outputs, backend="llvm", optimize=False, cache=False)
    check(fn, outputs, seed)


@settings(SETTINGS, max_examples=60)
@given(graphs(), st.integers(0, 2**16))
def test_random_gradients_match_the_reference(outputs: list[gc.Tensor], seed: int) -> None:
    """Optimized gradient graphs: fused regions, unslice, scatter_add, many steps."""
    wrt = [A, B, S, H]
    loss = gc.sum(outputs[0].astype("float64"))
    grads = gc.grad(loss, wrt)
    fn = gc.compile(VARS, [loss, *grads], backend="llvm", cache=False)
    check(fn, [loss, *grads], seed)
