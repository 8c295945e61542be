"""Constant operands of every kernel kind in every position: one element, a scalar, a Python int, n elements.

The llvm backend once wired a one-element constant (kept only as a value folded into
elementwise code) to workspace offset 0 — the error slot — whenever a gather, a scatter
or another non-elementwise kernel read it: `take(a, 2)` returned row 0 and the gradient
of a take with one label was zero. Every constant now has memory, and a buffer with no
address is an internal error at build time, never a guess. Each case here runs on both
backends, optimized or not, against the reference evaluator, bit for bit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import graphc as gc
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.testing import check_grad

THIS_FILE = __file__.rsplit("/", 1)[-1]
RNG = np.random.default_rng(11)
A = np.arange(12.0).reshape(4, 3) / 4 - 1.0

ONE_ELEMENT = {
    "python int": 2,
    "0-d": np.array(2),
    "(1,)": np.array([2]),
    "(1, 1)": np.array([[2]]),
    "negative": -1,
}


def compiled(inputs: list, outputs: object, backend: str, optimize: bool) -> gc.CompiledFunction:
    return gc.compile(inputs, outputs, backend=backend, optimize=optimize, cache=False)


def reference(outputs: object, inputs: list, values: list) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return gc.evaluate(outputs, dict(zip(inputs, values, strict=True)))


def assert_same(got: object, expected: object) -> None:
    if isinstance(expected, list):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_same(g, e)
        return
    assert isinstance(got, np.ndarray) and isinstance(expected, np.ndarray)
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    assert got.tobytes() == expected.tobytes(), (got, expected)


def assert_close(got: object, expected: object) -> None:
    for g, e in zip(
        got if isinstance(got, tuple) else [got], expected if isinstance(expected, list) else [expected], strict=True
    ):
        assert (g.dtype, g.shape) == (e.dtype, e.shape)
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-15)


def check_everywhere(inputs: list, outputs: object, values: list, exact: bool = True) -> None:
    """Both backends, optimized and not, equal the reference evaluator (bit for bit when `exact`).

    Graphs with transcendental functions (vecmath's few ulps) or stability rewrites are
    compared to rounding instead.
    """
    expected = reference(outputs, inputs, values)
    for backend in ("llvm", "numpy"):
        for optimize in (False, True):
            got = compiled(inputs, outputs, backend, optimize)(*values)
            if exact:
                assert_same(got, expected)
            else:
                assert_close(got, expected)


# --- the examples of the report ------------------------------------------------------------------------


@pytest.mark.parametrize("optimize", [False, True])
def test_take_with_a_one_element_index_reads_that_row(optimize: bool) -> None:
    a = gc.var("a", (4, 3))
    fn = compiled([a], [gc.take(a, 2, axis=0), gc.take(a, np.array([1]), axis=0), gc.take(a, -1)], "llvm", optimize)
    row, rows, last = fn(A)
    assert row.tolist() == A[2].tolist()
    assert rows.tolist() == A[[1]].tolist()
    assert last.tolist() == A.reshape(-1)[-1].tolist()


@pytest.mark.parametrize("optimize", [False, True])
def test_an_out_of_range_constant_index_raises_naming_take_and_the_line(optimize: bool) -> None:
    a = gc.var("a", (4, 3))
    for bad, line_of in [(7, "axis=0"), (-13, "flat")]:
        out = gc.take(a, bad, axis=0) if line_of == "axis=0" else gc.take(a, bad)
        fn = compiled([a], out, "llvm", optimize)
        with pytest.raises(IndexError, match=rf"index {bad} is out of bounds .* in take .*{THIS_FILE}:\d+"):
            fn(A)


@pytest.mark.parametrize("optimize", [False, True])
def test_take_from_a_one_element_constant(optimize: bool) -> None:
    i = gc.var("i", (), dtype="int64")
    fn = compiled(
        [i], [gc.take(gc.const(np.array([5.0])), i), gc.take(gc.const(np.array([[7.5]])), i, axis=1)], "llvm", optimize
    )
    value, column = fn(0)
    assert (value.tolist(), column.tolist()) == (5.0, [7.5])
    assert fn(-1)[0].tolist() == 5.0
    with pytest.raises(IndexError):
        fn(1)


@pytest.mark.parametrize("backend", ["llvm", "numpy"])
def test_cross_entropy_with_a_scalar_label_trains(backend: str) -> None:
    """-take(log_softmax(z), y), y a Python int: the gradient is softmax(z) - one_hot(y), not zero."""
    z = gc.var("z", (5,))
    label = 3
    loss = -gc.take(gc.log_softmax(z), label)
    fn = compiled([z], [loss, gc.grad(loss, z)], backend, True)
    value = np.array([0.3, -1.2, 2.0, 0.1, 0.7])
    got_loss, got_grad = fn(value)
    shifted = value - value.max()
    softmax = np.exp(shifted) / np.exp(shifted).sum()
    assert got_loss == pytest.approx(-np.log(softmax[label]), rel=1e-14)
    np.testing.assert_allclose(got_grad, softmax - np.eye(5)[label], rtol=1e-13, atol=1e-16)
    check_grad(loss, z, {z: value})
    eps = 1e-6
    central = [(fn(value + eps * e)[0] - fn(value - eps * e)[0]) / (2 * eps) for e in np.eye(5)]
    np.testing.assert_allclose(got_grad, central, atol=1e-8)
    for _ in range(50):
        value = value - 0.5 * fn(value)[1]
    assert fn(value)[0] < 0.1 * got_loss


def test_batched_cross_entropy_with_a_one_element_label_array() -> None:
    logits = gc.var("logits", (1, 4))
    labels = np.array([2])
    picked = gc.take(gc.reshape(gc.log_softmax(logits, axis=1), (4,)), labels)
    loss = -gc.sum(picked)
    value = RNG.normal(size=(1, 4))
    check_everywhere([logits], [loss, gc.grad(loss, logits)], [value], exact=False)
    assert np.count_nonzero(gc.compile([logits], gc.grad(loss, logits), cache=False)(value)) == 4


# --- every kernel kind with constant operands ------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ONE_ELEMENT))
def test_gather_with_constant_indices_of_one_element(kind: str) -> None:
    a = gc.var("a", (4, 3))
    index = ONE_ELEMENT[kind]
    outs = [gc.take(a, index, axis=0), gc.take(a, index, axis=1), gc.take(a, index)]
    check_everywhere([a], outs, [A])
    loss = gc.sum(outs[0] * outs[1].sum() + outs[2])
    check_everywhere([a], [loss, gc.grad(loss, a)], [A])


@pytest.mark.parametrize("source", ["(1,)", "0-d take via reshape", "(1, 1)", "(4, 3)"])
def test_gather_from_constant_sources(source: str) -> None:
    i = gc.var("i", (2,), dtype="int64")
    values = {
        "(1,)": np.array([5.0]),
        "0-d take via reshape": np.array(-2.5),
        "(1, 1)": np.array([[3.25]]),
        "(4, 3)": A,
    }[source]
    const = gc.const(values)
    if values.ndim == 0:
        const = gc.reshape(const, (1,))
    axis = 0 if values.ndim < 2 else 1
    index = np.array([0, -1]) if values.size == 1 else np.array([2, 0])
    outs = [gc.take(const, i, axis=axis), gc.take(gc.broadcast_to(const, (4, *const.shape)), i, axis=0)]
    check_everywhere([i], outs, [index])


@pytest.mark.parametrize("kind", list(ONE_ELEMENT))
def test_scatter_with_constant_values_and_indices(kind: str) -> None:
    index = gc.const(np.asarray(ONE_ELEMENT[kind]))
    x = gc.var("x", (3,))
    for values in (gc.const(np.full(index.shape, 1.5)), gc.const(np.array(2.0)).reshape((1,) * index.ndim)):
        out = sh.scatter_add(values.node, index.node, axis=0, size=3)
        check_everywhere([x], [gc.Tensor(out) + x], [np.array([1.0, -2.0, 0.25])])
    ct = gc.var("ct", index.shape)
    out = gc.Tensor(sh.scatter_add(ct.node, index.node, axis=0, size=4))
    check_everywhere([ct], [out], [np.full(index.shape, 0.75)])


@pytest.mark.parametrize("op", ["sum", "prod", "max", "min", "logsumexp", "argmax", "argmin"])
@pytest.mark.parametrize("value", [np.array([4.0]), np.array([[-1.5]]), np.array(3.0), np.array([2.0, -1.0, 5.0])])
def test_reductions_of_constants(op: str, value: np.ndarray) -> None:
    x = gc.var("x", ())
    function: Callable = getattr(gc, op)
    reduced = function(gc.const(value))
    check_everywhere([x], [reduced, x + gc.const(value).sum()], [np.array(0.5)])
    if value.ndim:
        check_everywhere([x], [function(gc.const(value), axis=0)], [np.array(0.5)])


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (3, 1)])
def test_matmul_with_small_constants_on_either_side(shape: tuple[int, int]) -> None:
    m = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    left = gc.var("left", (2, shape[0]))
    right = gc.var("right", (shape[1], 2))
    row = gc.var("row", (1, 2))
    outs = [left @ gc.const(m), gc.const(m) @ right, gc.const(np.array([2.0])) @ row]
    values = [RNG.normal(size=(2, shape[0])), RNG.normal(size=(shape[1], 2)), RNG.normal(size=(1, 2))]
    check_everywhere([left, right, row], outs, values, exact=False)  # BLAS may order sums differently


def test_concatenate_unslice_where_and_views_of_one_element_constants() -> None:
    x = gc.var("x", (3,))
    one = gc.const(np.array([4.0]))
    scalar = gc.const(np.array(-0.0))
    cond = gc.const(np.array([True]))
    outs = [
        gc.concatenate([one, x]),
        gc.concatenate([x, one, one]),
        gc.Tensor(sh.unslice(one.node, index=((1, 2, 1),), shape=(3,))) + x,
        gc.where(cond, x, scalar),
        gc.where(x > 0, scalar, one),
        gc.take(gc.concatenate([one, one]), np.array([1, 0, 1])) * x,
        gc.Tensor(rd.sum_(gc.broadcast_to(one, (3, 1)).node, axis=(0,), keepdims=False)) + x,
    ]
    check_everywhere([x], outs, [np.array([1.0, -2.0, 0.0])])


def test_loops_read_one_element_constants_through_gathers() -> None:
    h0 = gc.var("h0", (3,))
    xs = gc.const(np.array([[1]]))  # one step, one index
    weights = gc.const(np.array([0.5]))

    def step(h: gc.Tensor, x_t: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = h * gc.take(weights, 0) + gc.take(h, x_t).sum()
        return h, gc.take(h, 2)

    h_t, ys = gc.scan(step, h0, xs)
    loss = gc.sum(h_t) + gc.sum(ys)
    check_everywhere([h0], [h_t, ys, loss, gc.grad(loss, h0)], [np.array([1.0, -0.5, 2.0])])
    p = gc.var("p", ())
    z = gc.fixed_point(
        lambda z, p: gc.take(weights, 0) * z + p * gc.take(gc.const(np.array([1.0])), 0), gc.const(np.array(0.0)), p
    )
    check_everywhere([p], [z, gc.grad(z, p)], [np.array(0.25)])
