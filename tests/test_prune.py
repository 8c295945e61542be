"""passes/prune.py: every rule with a golden text test and a bit-exact value test on special floats.

The frontend never builds identity shape ops itself, so the cases build them with the
primitives directly, as autodiff and other rewrites do.
"""

from __future__ import annotations

import numpy as np
import pytest
from rules_harness import RuleCases, check_special_values

import graphc as gc
from graphc.ir import Graph
from graphc.ops import elementwise as ew
from graphc.ops import shape as sh
from graphc.passes.prune import RULES, prune

CASES = RuleCases(RULES, prune)
case = CASES.case()


def t(node: object) -> gc.Tensor:
    return gc.Tensor(node)  # type: ignore[arg-type]


@case
def transpose_identity(n):
    """
    graph(%x: f64[3,3]) {
      %0 = exp(%x) : f64[3,3]
      %1 = transpose(%x, axes=(1, 0)) : f64[3,3]
      return %0, %1
    }
    """
    x = gc.var("x", shape=(n, n))
    return [gc.exp(t(sh.transpose(x.node, axes=(0, 1)))), x.T]  # x.T has x's type, yet stays


@case
def reshape_identity(n):
    """
    graph(%x: f64[2,3]) {
      %0 = exp(%x) : f64[2,3]
      %1 = reshape(%x, shape=(3, 2)) : f64[3,2]
      return %0, %1
    }
    """
    x = gc.var("x", shape=(2, n))
    return [gc.exp(t(sh.reshape(x.node, shape=(2, n)))), x.reshape(n, 2)]


@case
def broadcast_identity(n):
    """
    graph(%x: f64[3]) {
      %0 = exp(%x) : f64[3]
      %1 = broadcast_to(%x, shape=(2, 3)) : f64[2,3]
      return %0, %1
    }
    """
    x = gc.var("x", shape=(n,))
    return [gc.exp(t(sh.broadcast_to(x.node, shape=(n,)))), gc.broadcast_to(x, (2, n))]


@case
def astype_identity(n):
    """
    graph(%x: f64[3], %y: f32[3]) {
      %0 = exp(%x) : f64[3]
      return %0, %y
    }
    """
    x = gc.var("x", shape=(n,))
    y = gc.var("y", shape=(n,), dtype="float32")
    return [gc.exp(t(ew.astype(x.node, dtype=np.dtype("float64")))), t(ew.astype(y.node, dtype=np.dtype("float32")))]


@case
def slice_identity(n):
    """
    graph(%x: f64[2,3]) {
      %0 = exp(%x) : f64[2,3]
      %1 = slice(%x, index=((0, 2, 1), (1, 3, 1))) : f64[2,2]
      %2 = slice(%x, index=((0, 2, 1), (2, -1, -1))) : f64[2,3]
      return %0, %x, %1, %2
    }
    """
    x = gc.var("x", shape=(2, n))
    whole = t(sh.slice_(x.node, index=((0, n, 1),)))
    everything = t(sh.slice_(x.node, index=((0, 2, 1), (0, n, 1))))
    return [gc.exp(whole), everything, x[:, 1:], x[:, ::-1]]  # the last two stay (x[:, ::-1] has x's type)


def test_every_rule_has_a_case():
    CASES.check_coverage()


@pytest.mark.parametrize("name", CASES.names)
def test_golden(name: str):
    CASES.check_golden(name)


@pytest.mark.parametrize("name", CASES.names)
def test_values_on_special_floats(name: str):
    check_special_values(CASES, name)


@pytest.mark.parametrize("name", CASES.names)
def test_idempotent(name: str):
    CASES.check_idempotent(name)


def test_unreachable_nodes_are_gone():
    """Dead code never reaches a Graph: only what the outputs reach is a node."""
    x = gc.var("x", shape=(3,))
    gc.exp(x) * 2.0  # built, never used
    graph = prune(Graph([gc.sin(x)]))
    assert [n.op.name for n in graph.nodes] == ["var", "sin"]


def test_nothing_to_prune_is_the_same_graph():
    x = gc.var("x", shape=(2, 3))
    graph = Graph([x.T, x.reshape(3, 2), x[1:]])
    assert prune(graph) is graph
