"""Random graphs: the compiled numpy backend equals the reference evaluator bit for bit.

Graphs are drawn over a few vars from elementwise, broadcasting, reduction and shape
ops (the frontend inserts the casts NumPy's promotion implies), on inputs that mix
normal values with signed zeros, huge, tiny, infinite and NaN ones. Derandomized, with
a fixed number of examples, so the run is reproducible and takes a few seconds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.shapes import broadcast_shapes

A = gc.var("a", (3, 4))
B = gc.var("b", (4,))
S = gc.var("s")
H = gc.var("h", (4,), dtype="float32")
K = gc.var("k", (3,), dtype="int64")
VARS = [A, B, S, H, K]
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-300, 700.0, -700.0, np.inf, -np.inf, np.nan])


def values(seed: int) -> dict[gc.Tensor, np.ndarray]:
    """Inputs for a seed: normal values mixed with zeros of both signs, huge, tiny, inf and NaN."""
    rng = np.random.default_rng(seed)
    table = {}
    for v in VARS:
        if v.dtype == np.int64:
            table[v] = rng.integers(-3, 4, v.shape)
            continue
        normal = rng.normal(scale=2.0, size=v.shape)
        special = rng.choice(SPECIAL, size=v.shape)
        table[v] = np.where(rng.random(v.shape) < 0.3, special, normal).astype(v.dtype)
    return table


UNARY: list[Callable[[gc.Tensor], gc.Tensor]] = [
    gc.exp, gc.log, gc.log1p, gc.expm1, gc.sqrt, gc.square, gc.abs, gc.sign, gc.floor, gc.round, gc.sin,
    gc.cos, gc.tan, gc.tanh, gc.sinh, gc.cosh, gc.arctan, gc.sigmoid, gc.relu, gc.softplus, gc.negative,
    lambda x: x.astype("float32"), lambda x: gc.where(x > 0, x, 0.5 * x),
]  # fmt: skip
BINARY: list[Callable[[gc.Tensor, gc.Tensor], gc.Tensor]] = [
    gc.add, gc.subtract, gc.multiply, gc.divide, gc.maximum, gc.minimum,
    lambda x, y: gc.where(x < y, x, y), lambda x, y: gc.power(gc.abs(x), y),
]  # fmt: skip
REDUCTIONS = [gc.sum, gc.mean, gc.max, gc.min, gc.prod, gc.logsumexp]


def is_numeric(t: gc.Tensor) -> bool:
    return t.dtype != np.bool_


@st.composite
def unary_step(draw: st.DrawFn, pool: list[gc.Tensor]) -> gc.Tensor:
    x = draw(st.sampled_from(pool))
    return draw(st.sampled_from(UNARY))(x)


@st.composite
def binary_step(draw: st.DrawFn, pool: list[gc.Tensor]) -> gc.Tensor:
    x = draw(st.sampled_from(pool))
    partners = [t for t in pool if _broadcasts(x.shape, t.shape)]
    y = draw(st.sampled_from(partners)) if partners and draw(st.booleans()) else draw(st.sampled_from([2.0, -1, 0.5]))
    return draw(st.sampled_from(BINARY))(x, y)


def _broadcasts(*shapes: tuple[int, ...]) -> bool:
    try:
        broadcast_shapes(*shapes)
    except gc.ShapeError:
        return False
    return True


@st.composite
def reduce_step(draw: st.DrawFn, pool: list[gc.Tensor]) -> gc.Tensor:
    x = draw(st.sampled_from(pool))
    axis = draw(st.sampled_from([None, *range(-x.ndim, x.ndim)]))
    keepdims = draw(st.booleans())
    return draw(st.sampled_from(REDUCTIONS))(x, axis=axis, keepdims=keepdims)


@st.composite
def shape_step(draw: st.DrawFn, pool: list[gc.Tensor]) -> gc.Tensor:
    x = draw(st.sampled_from(pool))
    if x.ndim == 0:
        return draw(st.sampled_from([lambda t: t.reshape(1), lambda t: gc.broadcast_to(t, (2, 3))]))(x)
    moves = [
        lambda t: t.T,
        lambda t: t.reshape(-1),
        lambda t: t[::-1],
        lambda t: t[..., 1:],
        lambda t: t[0],
        lambda t: gc.expand_dims(t, 0),
        lambda t: gc.broadcast_to(t, (2, *t.shape)),
        lambda t: gc.concatenate([t, t[:1]], axis=0),
        lambda t: gc.take(t, np.array([[1, 0], [-1, 0]]), axis=0),
    ]
    return draw(st.sampled_from(moves))(x)


@st.composite
def graphs(draw: st.DrawFn) -> list[gc.Tensor]:
    pool = list(VARS)
    for _ in range(draw(st.integers(1, 12))):
        step = draw(st.sampled_from([unary_step, binary_step, reduce_step, shape_step]))
        out = draw(step([t for t in pool if is_numeric(t)]))
        pool.append(out)
    extra = draw(st.lists(st.sampled_from(pool), max_size=2))
    return [pool[-1], *extra]


def same_bits(got: np.ndarray, expected: np.ndarray) -> bool:
    if not isinstance(got, np.ndarray) or got.dtype != expected.dtype or got.shape != expected.shape:
        return False
    return got.tobytes() == expected.tobytes()


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(graphs(), st.integers(0, 2**16))
def test_compiled_numpy_equals_the_reference_evaluator(outputs: list[gc.Tensor], seed: int) -> None:
    fn = gc.compile(VARS, outputs, backend="numpy", optimize=False)  # the backend alone; passes are tested apart
    feed = values(seed)
    args = [feed[v] for v in VARS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            expected = gc.evaluate(outputs, feed)
        except (ValueError, ArithmeticError, IndexError) as exc:  # negative integer powers, take out of range
            with pytest.raises(type(exc)):
                fn(*args)
            return
        got = fn(*args)
    for g, e in zip(got, expected, strict=True):
        assert same_bits(g, e), (fn.source, g, e)


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(graphs(), st.integers(0, 2**16))
def test_compiled_gradients_equal_the_reference_evaluator(outputs: list[gc.Tensor], seed: int) -> None:
    """Gradient graphs bring their own ops (unslice, scatter_add, ...) and many more steps."""
    wrt = [A, B, S, H]
    loss = gc.sum(outputs[0].astype("float64"))
    grads = gc.grad(loss, wrt)
    # the backend alone, as above: the stability pass rewrites derivative formulas (sigmoid's out * (1 - out) into
    # out * sigmoid(-x)), which agree to rounding, not bit for bit
    fn = gc.compile(VARS, [loss, *grads], backend="numpy", optimize=False)
    feed = values(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            expected = gc.evaluate([loss, *grads], feed)
        except (ValueError, ArithmeticError, IndexError) as exc:
            with pytest.raises(type(exc)):
                fn(*(feed[v] for v in VARS))
            return
        got = fn(*(feed[v] for v in VARS))
    for g, e in zip(got, expected, strict=True):
        assert same_bits(g, e), (fn.source, g, e)
