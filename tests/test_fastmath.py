"""passes/fastmath.py (opt-in): every rule's golden text, its agreement on ordinary inputs, and an
input where it changes a NaN/inf/-0.0 result, which is why none of them is in the default pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import rules_harness
from rules_harness import RuleCases
from rules_harness import evaluate as run

import graphc as gc
from graphc.ir import Graph
from graphc.passes import DEFAULT_PIPELINE, FAST_MATH_PIPELINE, pipeline_for
from graphc.passes.fastmath import RULES, fastmath


@dataclass(frozen=True)
class Case(rules_harness.Case):
    special: float  # an input (every var) where the rewrite changes the result
    naive: float  # the IEEE result there
    fast: float  # the rewritten result there


CASES = RuleCases(RULES, fastmath, Case)
case = CASES.case


def v(name: str, n: int, dtype: str = "float64") -> gc.Tensor:
    return gc.var(name, shape=(n,), dtype=dtype)


@case(special=np.inf, naive=np.nan, fast=0.0)
def mul_zero(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = const(0.) : f64[]
      %1 = broadcast_to(%0, shape=(3,)) : f64[3]
      return %1, %1
    }
    """
    return [v("x", n) * 0.0, 0.0 * v("y", n)]


@case(special=-0.0, naive=0.0, fast=-0.0)
def add_zero(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      return %x, %y
    }
    """
    return [v("x", n) + 0.0, 0.0 + v("y", n)]


@case(special=np.inf, naive=np.nan, fast=0.0)
def sub_self(n):
    """
    graph(%x: f64[3]) {
      %0 = const(0.) : f64[]
      %1 = broadcast_to(%0, shape=(3,)) : f64[3]
      return %1
    }
    """
    x = v("x", n)
    return [x - x]


@case(special=0.0, naive=np.nan, fast=1.0)
def div_self(n):
    """
    graph(%x: f64[3]) {
      %0 = const(1.) : f64[]
      %1 = broadcast_to(%0, shape=(3,)) : f64[3]
      return %1
    }
    """
    x = v("x", n)
    return [x / x]


@case(special=-1.0, naive=np.nan, fast=-1.0)
def exp_log(n):
    """
    graph(%x: f64[3]) {
      return %x
    }
    """
    return [gc.exp(gc.log(v("x", n)))]


def feed_all(graph: Graph, value: float | np.ndarray) -> dict:
    """`value` for every float var, 3 for every int var."""
    return {x: np.resize(value if x.dtype.kind == "f" else 3, x.shape).astype(x.dtype) for x in graph.inputs}


def test_every_rule_has_a_case():
    CASES.check_coverage()


@pytest.mark.parametrize("name", CASES.names)
def test_golden(name: str):
    CASES.check_golden(name)


@pytest.mark.parametrize("name", CASES.names)
def test_agrees_on_ordinary_inputs(name: str):
    """Finite, positive, no overflow anywhere: the identities hold (to an ulp: exp(log x), x ** 0.5)."""
    graph = Graph(CASES[name].build(64))
    values = np.random.default_rng(1).uniform(0.25, 4.0, 64)
    feed = feed_all(graph, values)
    for got, want in zip(run(fastmath(graph), feed), run(graph, feed), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_max_ulp(got, want, maxulp=2)


@pytest.mark.parametrize("name", CASES.names)
def test_changes_a_special_result(name: str):
    c = CASES[name]
    graph = Graph(c.build(3))
    feed = feed_all(graph, c.special)
    naive = run(graph, feed)[0]
    fast = run(fastmath(graph), feed)[0]
    for got, want in ((naive, c.naive), (fast, c.fast)):
        np.testing.assert_array_equal(got, np.full(3, want))
        assert np.all(np.signbit(got) == np.signbit(want)) or np.isnan(want)
    assert not np.array_equal(np.signbit(naive), np.signbit(fast)) or not np.array_equal(naive, fast, equal_nan=True)


@pytest.mark.parametrize("name", CASES.names)
def test_idempotent(name: str):
    CASES.check_idempotent(name)


def test_fastmath_is_opt_in():
    assert fastmath not in DEFAULT_PIPELINE
    assert pipeline_for() == DEFAULT_PIPELINE
    assert fastmath in FAST_MATH_PIPELINE and pipeline_for(fast_math=True) == FAST_MATH_PIPELINE


def test_default_optimize_keeps_ieee_results():
    """x * 0 at x = inf is NaN, x - x at inf is NaN, -0.0 + 0.0 is +0.0: by default, still so."""
    x = gc.var("x", shape=(3,))
    outs = [x * 0.0, x - x, x + 0.0, x / x]
    feed = {x: np.array([np.inf, -0.0, np.nan])}
    with np.errstate(all="ignore"):
        want = gc.evaluate(outs, feed)
        got = gc.evaluate(gc.optimize(outs), feed)
        fast = gc.evaluate(gc.optimize(outs, fast_math=True), feed)
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
        assert np.array_equal(np.signbit(a[~np.isnan(b)]), np.signbit(b[~np.isnan(b)]))
    np.testing.assert_array_equal(fast[0], [0.0, 0.0, 0.0])  # inf * 0 and NaN * 0 said 0
    np.testing.assert_array_equal(fast[1], [0.0, 0.0, 0.0])
    assert np.signbit(fast[2][1])  # -0.0 + 0.0 said -0.0
    np.testing.assert_array_equal(fast[3], [1.0, 1.0, 1.0])
