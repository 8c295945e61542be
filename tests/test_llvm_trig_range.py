"""sin, cos and tan of compiled functions over the whole double (and float) range.

The vectorized functions are fast for |x| <= 2^50 (vecmath.TRIG_MAX_ARG); a kernel that
meets a larger argument flags it, and the call is run again on an `exact` build, made
the first time it is needed, that takes the C library's function for those arguments.
Results match NumPy within the ulp budget of test_llvm_backend (4 in float64, 2 in
float32; measured: 0 and 1 beyond 2^50), and calls that never meet a huge argument
neither build nor run anything else.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import graphc as gc
from graphc.backends.llvm.vecmath import TRIG_MAX_ARG

RNG = np.random.default_rng(3)
FUNCTIONS = {"sin": (gc.sin, np.sin), "cos": (gc.cos, np.cos), "tan": (gc.tan, np.tan)}
MAX_ULP = {np.dtype("float64"): 4, np.dtype("float32"): 2}


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place (NaN == NaN)."""
    kind = np.int64 if a.dtype == np.float64 else np.int32
    sign = np.int64(1) << (63 if a.dtype == np.float64 else 31)
    ia, ib = (np.asarray(v).view(kind).astype(np.int64) for v in (a, b))
    ia = np.where(ia < 0, -(ia + sign), ia)
    ib = np.where(ib < 0, -(ib + sign), ib)
    return np.where(np.isnan(a) & np.isnan(b), 0, np.abs(ia - ib))


def whole_range(dtype: np.dtype, n: int) -> np.ndarray:
    """Log-uniform magnitudes from 2^40 to the largest finite value, both signs, and the edges."""
    top = np.log2(np.finfo(dtype).max)
    magnitudes = np.exp2(RNG.uniform(40.0, top, n))
    edges = [TRIG_MAX_ARG, np.nextafter(TRIG_MAX_ARG, np.inf), np.nextafter(TRIG_MAX_ARG, 0), np.finfo(dtype).max,
             2.0**60, 2.0**100, 1e22, 1e200 if dtype == np.float64 else 1e30, np.inf, np.nan]  # fmt: skip
    values = np.concatenate([magnitudes, edges])
    with np.errstate(over="ignore"):
        values = (values * RNG.choice([-1.0, 1.0], values.size)).astype(dtype)
    return values


@pytest.mark.parametrize("dtype", [np.dtype("float64"), np.dtype("float32")], ids=str)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_huge_arguments_match_numpy(name: str, dtype: np.dtype) -> None:
    function, reference = FUNCTIONS[name]
    values = whole_range(dtype, 20_000)
    x = gc.var("x", values.shape, dtype=dtype)
    fn = gc.compile([x], function(x), cache=False)
    with np.errstate(invalid="ignore"):
        want = reference(values)
    got = fn(values)
    assert got.dtype == dtype
    assert ulps(got, want).max() <= MAX_ULP[dtype]
    assert np.isnan(got).sum() == np.isnan(want).sum()


def test_normal_arguments_keep_the_fast_results_and_build_nothing_more() -> None:
    x = gc.var("x", (6,))
    fn = gc.compile([x], gc.sin(x) * gc.cos(x) + gc.tan(x), cache=False)
    recovery = fn._built.function.__globals__["recover"]
    normal = np.array([0.5, -3.0, 1e6, 2.0**49, -(2.0**50), 1e-300])
    fast = fn(normal)
    assert recovery.exact is None  # no huge argument yet: nothing else was compiled
    mixed = normal.copy()
    mixed[2] = 1e300
    got = fn(mixed)
    assert recovery.exact is not None
    keep = np.arange(6) != 2
    assert got[keep].tobytes() == fast[keep].tobytes()  # the rerun gives the fast path's bits where it applies
    with np.errstate(invalid="ignore"):
        want = np.sin(1e300) * np.cos(1e300) + np.tan(1e300)
    assert ulps(got[2:3], np.array([want]))[0] <= 4
    assert fn(normal).tobytes() == fast.tobytes()


def test_huge_arguments_inside_reductions_loops_gradients_and_threads() -> None:
    n = 1 << 19  # enough work to split the loop across two threads
    x = gc.var("x", (n,))
    loss = gc.sum(gc.sin(x) ** 2.0 + gc.cos(3.0 * x))
    fn = gc.compile([x], [loss, gc.grad(loss, x)], cache=False)
    values = RNG.uniform(-10, 10, n)
    values[::4097] = RNG.choice([1e17, -3e250, 2.0**80], values[::4097].size)
    got_loss, got_grad = fn(values)
    expected = gc.compile([x], [loss, gc.grad(loss, x)], backend="numpy", cache=False)(values)
    np.testing.assert_allclose(got_loss, expected[0], rtol=1e-12)
    np.testing.assert_allclose(got_grad, expected[1], rtol=1e-12, atol=1e-12)
    h0 = gc.var("h0", (3,))
    xs = gc.var("xs", (4, 3))
    _, ys = gc.scan(lambda h, x_t: (gc.sin(h + x_t), gc.tan(h * x_t)), h0, xs)
    step_values = np.array([1.0, 1e20, -2.0]), np.full((4, 3), 1e200)
    got = gc.compile([h0, xs], ys, cache=False)(*step_values)
    want = gc.compile([h0, xs], ys, backend="numpy", cache=False)(*step_values)
    assert ulps(got, want).max() <= 4


def test_the_fast_kernel_stays_vectorized() -> None:
    x = gc.var("x", (4096,))
    fn = gc.compile([x], gc.sin(x) + gc.cos(x), cache=False)
    text = fn.llvm_ir.optimized
    assert "<4 x double>" in text or "<8 x double>" in text
    assert "@sin(" not in text and "@cos(" not in text  # no library call on the fast build
