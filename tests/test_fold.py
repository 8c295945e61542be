"""passes/fold.py: all-constant subgraphs become one constant, bit for bit what gc.evaluate computes;
big broadcasts of small constants and run-time errors are left to run time.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.ir import Graph
from graphc.passes.fold import MAX_FOLD_ELEMENTS, fold

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e-300, 1e300, -1e300, 1.0, -2.5, 0.5])


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal values, NaN where NaN, and the same sign bit on every non-NaN element (zeros included)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True), f"{got} != {want}"
    if got.dtype.kind == "f":
        numbers = ~np.isnan(want)
        assert np.array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))


def run(outputs: object, feed: dict | None = None) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return gc.evaluate(list(outputs), feed or {})  # type: ignore[call-overload]


def test_golden_constant_subgraph_becomes_one_constant():
    x = gc.var("x", shape=(2,))
    c = gc.exp(gc.const([0.0, 1.0])) * 2.0 - gc.sum(gc.const([[1.0, 2.0], [3.0, 4.0]]), axis=0)
    graph = fold(Graph([x * c]))
    assert (
        str(graph)
        == """
graph(%x: f64[2]) {
  %0 = const([-2. , -0.5634363430819098]) : f64[2]
  %1 = mul(%x, %0) : f64[2]
  return %1
}""".strip()
    )


def test_every_constant_output_is_one_node():
    a = gc.const(SPECIALS)
    outs = [gc.log(a) + gc.sqrt(a), gc.maximum(a, -a) * a, gc.where(a > 0, a, 1 / a), gc.max(a.reshape(3, 4), axis=1)]
    graph = fold(Graph(outs))
    assert [n.op.name for n in graph.nodes] == ["const"] * 4


@pytest.mark.parametrize(
    "build",
    [
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a - b,
        lambda a, b: a + b,
        lambda a, b: a**b,
        lambda a, b: gc.exp(a) - 1,
        lambda a, b: gc.log(1 + a),
        lambda a, b: gc.tanh(a) * gc.sigmoid(b) + gc.softplus(a),
        lambda a, b: gc.where(a < b, gc.maximum(a, b), gc.minimum(a, b)),
        lambda a, b: (a.astype("float32") * b.astype("float32")).astype("float64"),
        lambda a, b: gc.sum(a.reshape(12, 12), axis=1) + gc.prod(b.reshape(12, 12), axis=0),
        lambda a, b: gc.logsumexp(a.reshape(12, 12), axis=0) - gc.max(b.reshape(12, 12), axis=1),
        lambda a, b: gc.matmul(a.reshape(12, 12), b.reshape(12, 12)),
        lambda a, b: gc.concatenate([a[::-1], b[::2]]),
    ],
)
def test_bit_identical_to_evaluation(build: object):
    """Every pair of special floats, folded versus evaluated at run time."""
    a = np.repeat(SPECIALS, len(SPECIALS))
    b = np.tile(SPECIALS, len(SPECIALS))
    folded_out = build(gc.const(a), gc.const(b))  # type: ignore[operator]
    xa, xb = gc.var("a", shape=a.shape), gc.var("b", shape=b.shape)
    run_time_out = build(xa, xb)  # type: ignore[operator]
    graph = fold(Graph([folded_out]))
    assert [n.op.name for n in graph.nodes] == ["const"]
    (want,) = run([run_time_out], {xa: a, xb: b})
    (got,) = run(graph.outputs)
    assert_same_bits(got, want)


def test_big_broadcasts_stay():
    small = gc.broadcast_to(gc.const(1.5), (MAX_FOLD_ELEMENTS,)) * 2.0
    big = gc.broadcast_to(gc.const(1.5), (MAX_FOLD_ELEMENTS + 1,))
    bigger = gc.exp(big) * 2.0
    graph = fold(Graph([small, big, bigger]))
    ops = [n.op.name for n in graph.nodes]
    assert ops == ["const", "const", "broadcast_to", "exp", "const", "mul"]
    assert graph.nodes[0].shape == (MAX_FOLD_ELEMENTS,)  # small: folded to one constant
    for got, want in zip(run(graph.outputs), run([small, big, bigger]), strict=True):
        assert_same_bits(got, want)


def test_big_values_that_do_not_grow_are_folded():
    big = gc.const(np.linspace(-1, 1, 2 * MAX_FOLD_ELEMENTS))
    graph = fold(Graph([gc.exp(big) * 2.0]))
    assert [n.op.name for n in graph.nodes] == ["const"]


def test_errors_stay_at_run_time():
    """An out-of-range index or an int to a negative power raises when run, not when optimized."""
    bad_take = gc.take(gc.const([1.0, 2.0]), gc.const([5]), 0)
    bad_power = gc.const(np.array([2])) ** gc.const(np.array([-1]))
    for out, error in ((bad_take, IndexError), (bad_power, ValueError)):
        graph = fold(Graph([out]))
        assert graph.nodes[-1].op is out.node.op
        with pytest.raises(error):
            gc.evaluate(gc.optimize(out), {})


def test_nothing_to_fold_is_the_same_graph():
    x = gc.var("x", shape=(3,))
    graph = Graph([gc.exp(x) * 2.0 + x, gc.broadcast_to(gc.const(1.0), (MAX_FOLD_ELEMENTS, 2))])
    assert fold(graph) is graph


def test_idempotent():
    x = gc.var("x", shape=(3,))
    once = fold(Graph([x * (gc.exp(gc.const(2.0)) + 1.0), gc.broadcast_to(gc.const(1.0), (5000,)) * 3.0]))
    assert fold(once) is once
