"""passes/simplify.py: every rule with a golden text test and a bit-exact value test on special floats.

The value tests run the graph before and after the pass with gc.evaluate on inputs
that pair every special float (NaN, ±inf, ±0.0, 5e-324, 1e-300, 1e300, ...) with
every other: results must agree bit for bit (NaN where NaN, the sign of zeros and
of every other non-NaN result included), except for `sum_broadcast`, a documented
reassociation that may move a few ulp.
"""

from __future__ import annotations

import numpy as np
import pytest
from rules_harness import RuleCases, check_special_values

import graphc as gc
from graphc.passes.simplify import RULES, simplify


def v(name: str, n: int, dtype: str = "float64") -> gc.Tensor:
    return gc.var(name, shape=(n,), dtype=dtype)


CASES = RuleCases(RULES, simplify)
case = CASES.case()


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

INEXACT = frozenset({"sum_broadcast"})  # documented reassociation (module docstring)


def test_every_rule_has_a_case():
    CASES.check_coverage()


@pytest.mark.parametrize("name", CASES.names)
def test_golden(name: str):
    CASES.check_golden(name)


@pytest.mark.parametrize("name", CASES.names)
def test_values_on_special_floats(name: str):
    check_special_values(CASES, name, INEXACT)


@pytest.mark.parametrize("name", CASES.names)
def test_idempotent(name: str):
    CASES.check_idempotent(name)
