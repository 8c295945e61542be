"""passes/simplify.py: every rule with a golden text test and a bit-exact value test on special floats.

The value tests run the graph before and after the pass with gc.evaluate on inputs
that pair every special float (NaN, ±inf, ±0.0, 5e-324, 1e-300, 1e300, ...) with
every other: results must agree bit for bit (NaN where NaN, the sign of zeros and
of every other non-NaN result included), except for `sum_broadcast`, a documented
reassociation that may move a few ulp.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import graphc as gc
from graphc.ir import Graph
from graphc.passes.simplify import RULES, simplify

SPECIALS = np.array([
    np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1e-300, 1e300, -1e300,
    1.0, -1.0, 0.5, 2.0, -3.25, 1e-20, 1000.0, -1000.0,
])  # fmt: skip
N = len(SPECIALS) ** 2  # every ordered pair of specials


def special_feed(graph: Graph) -> dict:
    """Values for the graph's vars: float vars take the columns of all pairs of SPECIALS (tiled to size)."""
    pairs = np.array(list(itertools.product(SPECIALS, repeat=2))).T
    columns = [pairs[0], pairs[1], np.random.default_rng(0).permutation(pairs[0])]
    feed = {}
    floats = 0
    for v in graph.inputs:
        if v.dtype.kind == "f":
            with np.errstate(over="ignore"):
                values = np.resize(columns[floats % 3], v.shape).astype(v.dtype)
            floats += 1
        elif v.dtype.kind == "b":
            values = np.resize([True, False, False], v.shape)
        else:
            values = np.resize(np.array([0, 1, -1, 2, 7, -3], v.dtype), v.shape)
        feed[v] = values
    return feed


def run(graph: Graph, feed: dict) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return gc.evaluate(list(graph.outputs), feed)


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal values, NaN where NaN, and the same sign bit on every non-NaN element (zeros included)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True), f"{got} != {want}"
    if got.dtype.kind == "f":
        numbers = ~np.isnan(want)
        assert np.array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))


def assert_within_ulp(got: np.ndarray, want: np.ndarray, ulp: int = 4) -> None:
    """Bit-equal where the reference is not finite, within `ulp` units in the last place elsewhere."""
    assert got.dtype == want.dtype and got.shape == want.shape
    finite = np.isfinite(want)
    assert_same_bits(got[~finite], want[~finite])
    tolerance = ulp * np.spacing(np.maximum(np.abs(got[finite]), np.abs(want[finite])))
    assert np.all(np.abs(got[finite] - want[finite]) <= tolerance)


@dataclass(frozen=True)
class Case:
    build: Callable[[int], list[gc.Tensor]]  # vectors of length n -> the outputs
    golden: str  # str(Graph(simplify(graph))) for n = 3


def v(name: str, n: int, dtype: str = "float64") -> gc.Tensor:
    return gc.var(name, shape=(n,), dtype=dtype)


CASES: dict[str, Case] = {}


def case(build: Callable[[int], list[gc.Tensor]]) -> Callable[[int], list[gc.Tensor]]:
    """Register the case of the rule named like `build`; its docstring is the golden text."""
    CASES[build.__name__] = Case(build, inspect.cleandoc(build.__doc__ or ""))
    return build


@case
def mul_one(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      return %x, %y
    }
    """
    return [v("x", n) * 1.0, 1.0 * v("y", n)]


@case
def mul_minus_one(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = neg(%x) : f64[3]
      %1 = neg(%y) : f64[3]
      return %0, %1
    }
    """
    return [v("x", n) * -1.0, -1.0 * v("y", n)]


@case
def mul_neg_neg(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = mul(%x, %y) : f64[3]
      return %0
    }
    """
    return [-v("x", n) * -v("y", n)]


@case
def mul_neg(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = mul(%x, %y) : f64[3]
      %1 = neg(%0) : f64[3]
      %2 = sub(%1, %0) : f64[3]
      return %2
    }
    """
    x, y = v("x", n), v("y", n)
    return [gc.add(-x * y, x * -y)]


@case
def neg_add(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = sub(%y, %x) : f64[3]
      return %0
    }
    """
    x, y = v("x", n), v("y", n)
    return [gc.add(-x, y)]


@case
def where_constant(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = add(%x, %y) : f64[3]
      return %0
    }
    """
    x, y = v("x", n), v("y", n)
    return [gc.where(True, x, y) + gc.where(np.zeros(n, dtype=bool), x, y)]


@case
def add_minus_zero(n):
    """
    graph(%x: f64[3], %y: f64[3], %z: f64[3]) {
      %0 = const(0.) : f64[]
      %1 = add(%z, %0) : f64[3]
      return %x, %y, %1
    }
    """
    z = v("z", n)
    return [v("x", n) + -0.0, -0.0 + v("y", n), z + 0.0]  # z + 0.0 stays: -0.0 + 0.0 is +0.0


@case
def add_neg(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = sub(%x, %y) : f64[3]
      return %0
    }
    """
    return [v("x", n) + -v("y", n)]


@case
def sub_zero(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = const(-0.) : f64[]
      %1 = sub(%y, %0) : f64[3]
      return %x, %1
    }
    """
    return [v("x", n) - 0.0, v("y", n) - -0.0]  # y - (-0.0) stays: -0.0 - -0.0 is +0.0


@case
def sub_neg(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = add(%x, %y) : f64[3]
      return %0
    }
    """
    return [v("x", n) - -v("y", n)]


@case
def div_one(n):
    """
    graph(%x: f64[3]) {
      return %x
    }
    """
    return [v("x", n) / 1.0]


@case
def neg_neg(n):
    """
    graph(%x: f64[3]) {
      return %x
    }
    """
    return [gc.negative(-v("x", n))]


@case
def pow_two(n):
    """
    graph(%x: f64[3], %k: i64[3]) {
      %0 = mul(%x, %x) : f64[3]
      %1 = mul(%k, %k) : i64[3]
      return %0, %1
    }
    """
    return [v("x", n) ** 2.0, v("k", n, "int64") ** 2]


@case
def pow_half(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = sqrt(%x) : f64[3]
      %1 = sqrt(%y) : f64[3]
      return %0, %1
    }
    """
    # A scalar 0.5 and an array of 0.5s alike: pow is sqrt there (NaN at -inf, -0.0 at -0.0).
    return [v("x", n) ** 0.5, v("y", n) ** gc.const(np.full(n, 0.5))]


@case
def pow_one(n):
    """
    graph(%x: f64[3]) {
      return %x
    }
    """
    return [v("x", n) ** 1.0]


@case
def where_same(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      return %x
    }
    """
    x = v("x", n)
    return [gc.where(x > v("y", n), x, x)]


@case
def transpose_transpose(n):
    """
    graph(%x: f64[2,3,5]) {
      %0 = transpose(%x, axes=(1, 0, 2)) : f64[3,2,5]
      %1 = transpose(%x, axes=(0, 1, 2)) : f64[2,3,5]
      return %0, %1
    }
    """
    x = gc.var("x", shape=(2, n, 5))
    return [x.transpose(1, 2, 0).transpose(0, 2, 1), x.T.T]


@case
def reshape_reshape(n):
    """
    graph(%x: f64[6]) {
      %0 = reshape(%x, shape=(3, 2)) : f64[3,2]
      return %0
    }
    """
    return [v("x", 2 * n).reshape(2, n).reshape(n, 2)]


@case
def broadcast_broadcast(n):
    """
    graph(%x: f64[3]) {
      %0 = broadcast_to(%x, shape=(2, 3, 3)) : f64[2,3,3]
      return %0
    }
    """
    return [gc.broadcast_to(gc.broadcast_to(v("x", n), (3, n)), (2, 3, n))]


@case
def astype_roundtrip(n):
    """
    graph(%x: f32[3], %y: f64[3]) {
      %0 = astype(%y, dtype=float32) : f32[3]
      %1 = astype(%0, dtype=float64) : f64[3]
      return %x, %1
    }
    """
    narrow = v("x", n, "float32")
    wide = v("y", n)
    return [narrow.astype("float64").astype("float32"), wide.astype("float32").astype("float64")]


@case
def sum_broadcast(n):
    """
    graph(%x: f64[3], %y: f64[3,1]) {
      %0 = const(3.) : f64[]
      %1 = mul(%x, %0) : f64[3]
      %2 = reshape(%y, shape=(1, 3, 1)) : f64[1,3,1]
      %3 = const(8.) : f64[]
      %4 = mul(%2, %3) : f64[1,3,1]
      return %1, %4
    }
    """
    x = v("x", n)
    y = gc.var("y", shape=(n, 1))
    kept = gc.sum(gc.broadcast_to(y, (2, n, 4)), axis=(0, 2), keepdims=True)
    return [gc.sum(gc.broadcast_to(x, (3, n)), axis=0), kept]


# --- the tests ---------------------------------------------------------------------------

RULE_NAMES = sorted({rule.__name__ for rules in RULES.values() for rule in rules})
INEXACT = {"sum_broadcast"}  # documented reassociation (module docstring)


def test_every_rule_has_a_case():
    assert sorted(CASES) == RULE_NAMES
    for rules in RULES.values():
        for rule in rules:
            assert "->" in (rule.__doc__ or ""), f"{rule.__name__}'s docstring must state its rule"


@pytest.mark.parametrize("name", RULE_NAMES)
def test_golden(name: str):
    graph = Graph(CASES[name].build(3))
    result = simplify(graph)
    assert result is not graph
    assert str(result) == CASES[name].golden


@pytest.mark.parametrize("name", RULE_NAMES)
def test_values_on_special_floats(name: str):
    graph = Graph(CASES[name].build(N))
    result = simplify(graph)
    assert result is not graph
    feed = special_feed(graph)
    compare = assert_within_ulp if name in INEXACT else assert_same_bits
    for got, want in zip(run(result, feed), run(graph, feed), strict=True):
        compare(got, want)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_idempotent(name: str):
    once = simplify(Graph(CASES[name].build(3)))
    assert simplify(once) is once
