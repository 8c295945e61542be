"""passes/stability.py: every rule's golden text; agreement with the naive graph (1e-12 relative) on
ordinary inputs; finite, accurate results where the naive graph overflows, underflows or cancels.
Also the promises of API.md §3 for the whole optimizer (log-sum-exp and its gradient at 1000, ...).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import graphc as gc
from graphc.ir import Graph
from graphc.passes.stability import RULES, stability


@dataclass(frozen=True)
class Case:
    build: Callable[[int], list[gc.Tensor]]  # vectors of length n -> the outputs
    golden: str  # str(Graph(stability(graph))) for n = 3
    ordinary: tuple[float, float]  # a range of inputs where the naive graph is accurate
    hard: tuple[float, float, float]  # 3 inputs where it is not (every var gets them)
    exact: Callable[[np.ndarray], np.ndarray]  # the true first output at `hard`


CASES: dict[str, Case] = {}


def case(ordinary: tuple[float, float], hard: tuple[float, float, float], exact: Callable) -> Callable:
    """Register the case of the rule named like the function; its docstring is the golden text."""

    def register(build: Callable[[int], list[gc.Tensor]]) -> Callable[[int], list[gc.Tensor]]:
        CASES[build.__name__] = Case(build, inspect.cleandoc(build.__doc__ or ""), ordinary, hard, exact)
        return build

    return register


def v(name: str, n: int) -> gc.Tensor:
    return gc.var(name, shape=(n,))


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


@case(ordinary=(-0.5, 3.0), hard=(1e-20, -1e-20, 1e-300), exact=np.log1p)
def log_one_plus(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = log1p(%x) : f64[3]
      %1 = log1p(%y) : f64[3]
      return %0, %1
    }
    """
    return [gc.log(1.0 + v("x", n)), gc.log(v("y", n) + 1.0)]


@case(ordinary=(0.5, 3.0), hard=(1e-10, -1e-10, 5e-324), exact=np.expm1)
def exp_minus_one(n):
    """
    graph(%x: f64[3]) {
      %0 = expm1(%x) : f64[3]
      return %0
    }
    """
    return [gc.exp(v("x", n)) - 1.0]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 1000.0, 1000.0), exact=lambda x: 1000 + np.log(3))
def log_sum_exp(n):
    """
    graph(%x: f64[3], %y: f64[2,3]) {
      %0 = logsumexp(%x, axis=(0,), keepdims=False) : f64[]
      %1 = logsumexp(%y, axis=(1,), keepdims=True) : f64[2,1]
      return %0, %1
    }
    """
    x2 = gc.var("y", shape=(2, n))
    return [gc.log(gc.sum(gc.exp(v("x", n)))), gc.log(gc.sum(gc.exp(x2), axis=1, keepdims=True))]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, -1000.0, 0.5), exact=lambda x: x)
def log_exp(n):
    """
    graph(%x: f64[3]) {
      return %x
    }
    """
    return [gc.log(gc.exp(v("x", n)))]


@case(ordinary=(-3.0, 3.0), hard=(-1000.0, -800.0, 1.0), exact=lambda x: -softplus(-x))
def log_sigmoid(n):
    """
    graph(%x: f64[3]) {
      %0 = neg(%x) : f64[3]
      %1 = softplus(%0) : f64[3]
      %2 = neg(%1) : f64[3]
      return %2
    }
    """
    return [gc.log(gc.sigmoid(v("x", n)))]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 40.0, -1.0), exact=lambda x: -softplus(x))
def log_one_minus_sigmoid(n):
    """
    graph(%x: f64[3]) {
      %0 = softplus(%x) : f64[3]
      %1 = neg(%0) : f64[3]
      return %1
    }
    """
    return [gc.log(1.0 - gc.sigmoid(v("x", n)))]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 800.0, -1.0), exact=softplus)
def log1p_exp(n):
    """
    graph(%x: f64[3]) {
      %0 = softplus(%x) : f64[3]
      return %0
    }
    """
    return [gc.log1p(gc.exp(v("x", n)))]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 1000.0, 1000.0), exact=lambda x: x * 0 + 1 / 3)
def softmax_cotangent(n):
    """
    graph(%x: f64[3], %c: f64[3], %s: f64[3,3]) {
      %0 = const(1.) : f64[]
      %1 = reshape(%0, shape=(1,)) : f64[1]
      %2 = broadcast_to(%1, shape=(3,)) : f64[3]
      %3 = logsumexp(%x, axis=(0,), keepdims=True) : f64[1]
      %4 = sub(%x, %3) : f64[3]
      %5 = exp(%4) : f64[3]
      %6 = mul(%2, %5) : f64[3]
      %7 = exp(%s) : f64[3,3]
      %8 = sum(%7, axis=(1,), keepdims=False) : f64[3]
      %9 = div(%c, %8) : f64[3]
      %10 = mul(%9, %7) : f64[3,3]
      return %6, %10
    }
    """
    x = v("x", n)
    s = gc.var("s", shape=(n, n))
    c = v("c", n)
    # c / sum(exp(s), axis=1) broadcasts along the last axis, pairing row sums with columns:
    # not a softmax cotangent, and it must stay as written.
    return [gc.grad(gc.log(gc.sum(gc.exp(x))), x), (c / gc.sum(gc.exp(s), axis=1)) * gc.exp(s)]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, -1000.0, 0.0), exact=lambda x: x * 0 + 1)
def cancel_exp(n):
    """
    graph(%y: f64[3]) {
      %0 = const(1.) : f64[]
      %1 = reshape(%0, shape=(1,)) : f64[1]
      %2 = broadcast_to(%1, shape=(3,)) : f64[3]
      return %2
    }
    """
    y = v("y", n)
    return [gc.grad(gc.sum(gc.log(gc.exp(y))), y)]


@case(ordinary=(-3.0, 3.0), hard=(-1000.0, -800.0, 0.0), exact=lambda x: np.exp(-softplus(x)))
def cancel_sigmoid(n):
    """
    graph(%x: f64[3]) {
      %0 = const(1.) : f64[]
      %1 = reshape(%0, shape=(1,)) : f64[1]
      %2 = broadcast_to(%1, shape=(3,)) : f64[3]
      %3 = sigmoid(%x) : f64[3]
      %4 = sub(%0, %3) : f64[3]
      %5 = mul(%2, %4) : f64[3]
      return %5
    }
    """
    x = v("x", n)
    return [gc.grad(gc.sum(gc.log(gc.sigmoid(x))), x)]


RULE_NAMES = sorted({rule.__name__ for rules in RULES.values() for rule in rules})


def run(outputs: object, feed: dict) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return gc.evaluate(list(outputs), feed)  # type: ignore[call-overload]


def test_every_rule_has_a_case():
    assert sorted(CASES) == RULE_NAMES
    for rules in RULES.values():
        for rule in rules:
            assert "->" in (rule.__doc__ or ""), f"{rule.__name__}'s docstring must state its rule"


@pytest.mark.parametrize("name", RULE_NAMES)
def test_golden(name: str):
    graph = Graph(CASES[name].build(3))
    result = stability(graph)
    assert result is not graph
    assert str(result) == CASES[name].golden


@pytest.mark.parametrize("name", RULE_NAMES)
def test_agrees_on_ordinary_inputs(name: str):
    c = CASES[name]
    graph = Graph(c.build(16))
    rng = np.random.default_rng(7)
    feed = {x: rng.uniform(*c.ordinary, x.shape) for x in graph.inputs}
    for got, want in zip(run(stability(graph).outputs, feed), run(graph.outputs, feed), strict=True):
        assert np.all(np.isfinite(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_accurate_where_naive_is_not(name: str):
    c = CASES[name]
    graph = Graph(c.build(3))
    feed = {x: np.resize(np.array(c.hard), x.shape) for x in graph.inputs}
    naive = run(graph.outputs, feed)[0]
    got = run(stability(graph).outputs, feed)[0]
    want = c.exact(np.array(c.hard))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)  # exp(x - lse(x)): lse's last bit at 1000 is 1e-13
    assert not np.allclose(naive, want, rtol=1e-12, atol=0)  # the rewrite was needed


@pytest.mark.parametrize("name", RULE_NAMES)
def test_idempotent(name: str):
    once = stability(Graph(CASES[name].build(3)))
    assert stability(once) is once


# --- API.md §3: what the whole optimizer promises ----------------------------------------


def test_logsumexp_and_its_gradient_at_1000():
    x = gc.var("x", shape=(2,))
    f = gc.log(gc.sum(gc.exp(x)))
    g = gc.grad(f, x)
    feed = {x: np.array([1000.0, 1000.0])}
    naive = run([f, g], feed)
    assert naive[0] == np.inf and np.all(np.isnan(naive[1]))
    value, grad = run(gc.optimize([f, g]), feed)
    assert value == 1000 + np.log(2)
    np.testing.assert_allclose(grad, [0.5, 0.5], rtol=1e-13, atol=0)  # exp(x - lse): lse's ulp at 1000 is 1e-13


@pytest.mark.parametrize(
    ("build", "x", "want"),
    [
        (lambda x: gc.log(1 + x), [1e-20], [1e-20]),
        (lambda x: gc.log(gc.sigmoid(x)), [-1000.0], [-1000.0]),
        (lambda x: gc.log(gc.softmax(x)), [1000.0, -1000.0], [0.0, -2000.0]),
        (lambda x: gc.exp(x) - 1, [1e-10], [np.expm1(1e-10)]),
        (lambda x: gc.grad(gc.sum(gc.log(gc.softmax(x))), x), [1000.0, -1000.0], [-1.0, 1.0]),
    ],
    ids=["log1p", "log_sigmoid", "log_softmax", "expm1", "grad_log_softmax"],
)
def test_optimize_is_accurate(build: Callable, x: list[float], want: list[float]):
    var = gc.var("x", shape=(len(x),))
    out = build(var)
    feed = {var: np.array(x)}
    got = run(gc.optimize([out]), feed)[0]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    naive = run([out], feed)[0]
    assert not np.allclose(naive, want, rtol=1e-12, atol=0)


def _grad_rows(axis: int) -> Callable:
    def build(x: gc.Tensor) -> gc.Tensor:
        return gc.grad(gc.sum(gc.log(gc.sum(gc.exp(x), axis=axis))), x)

    return build


@pytest.mark.parametrize(
    ("build", "rewritten"),
    [
        (_grad_rows(0), True),
        (_grad_rows(1), True),
        (lambda x: gc.jacobian(gc.log(gc.sum(gc.exp(x), axis=1)), x), True),  # a batched cotangent
        (lambda x: (x[:, :1] / gc.sum(gc.exp(x), axis=1, keepdims=True)) * gc.exp(x), True),
        (lambda x: gc.grad(gc.sum(gc.exp(x) / gc.sum(gc.exp(x), axis=1, keepdims=True)), x), False),
        (lambda x: (x[0] / gc.sum(gc.exp(x), axis=0)) * gc.exp(x), False),  # lines up, but not recognized
        (lambda x: (x[:, 0] / gc.sum(gc.exp(x), axis=1)) * gc.exp(x), False),  # pairs row sums with columns
    ],
    ids=["grad_axis0", "grad_axis1", "jacobian", "keepdims", "grad_softmax", "columns", "misaligned"],
)
def test_softmax_cotangent_only_where_sums_line_up(build: Callable, rewritten: bool):
    x = gc.var("x", shape=(3, 3))
    out = build(x)
    result = stability(Graph([out]))
    assert any(n.op.name == "logsumexp" for n in result.nodes) == rewritten
    feed = {x: np.random.default_rng(3).uniform(-3, 3, (3, 3))}
    np.testing.assert_allclose(run(result.outputs, feed)[0], run([out], feed)[0], rtol=1e-12)
