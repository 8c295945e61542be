"""rewrite.py's walk where bugs live: nodes settled in place next to rewritten ones, shared subgraphs,
diamonds, a replacement that is an existing node (earlier or later in the order), firings recorded once,
and random graphs against a naive recursive fixpoint (the definition the walk implements).
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.passes.fold import RULES as FOLD_RULES
from graphc.passes.simplify import RULES as SIMPLIFY_RULES
from graphc.rewrite import EVERY_OP, RuleTable, Settled, rebuild, recording, rewrite, rule_table


def sin_to_cos(node: Node) -> Node | None:
    """sin(x) -> cos(x)"""
    return ew.cos(node.inputs[0])


def mul_two_to_add(node: Node) -> Node | None:
    """x * 2 -> x + x"""
    x, y = node.inputs
    value = y.attr("value").array if y.op.name == "const" else None  # type: ignore[union-attr]
    return ew.add(x, x) if value is not None and value.size == 1 and value.item() == 2.0 else None


def _naive(node: Node, table: RuleTable, memo: dict[Node, Node]) -> Node:
    """The fixpoint by definition: inputs first, then the first rule that applies, its result again."""
    if node in memo:
        return memo[node]
    rebuilt = rebuild(node, [_naive(i, table, memo) for i in node.inputs])
    result = rebuilt
    for rule in [*table.get(rebuilt.op.name, ()), *table.get(EVERY_OP, ())]:
        new = rule(rebuilt)
        if new is not None and new is not rebuilt:
            result = _naive(new, table, memo)
            break
    memo[node] = memo[rebuilt] = result
    return result


def _naive_outputs(graph: Graph, table: RuleTable) -> list[Node]:
    memo: dict[Node, Node] = {}
    return [_naive(o, table, memo) for o in graph.outputs]


def test_a_replacement_that_exists_later_in_the_order_is_shared():
    """sin(x) -> cos(x) while cos(x) is another output's operand, met later: both outputs use one cos(x)."""
    x = gc.var("x", (3,))
    graph = Graph([(gc.sin(x) + 1.0).node, (gc.cos(x) * 2.0).node])
    table = rule_table(("sin", sin_to_cos), ("mul", mul_two_to_add))
    for settled in (None, Settled()):
        first, second = rewrite(graph, table, settled).outputs
        cos = ew.cos(x.node)
        assert first is (gc.Tensor(cos) + 1.0).node
        assert second is ew.add(cos, cos)
        assert first.inputs[0] is second.inputs[0] is second.inputs[1]


def test_a_replacement_that_is_an_earlier_node_and_users_settled_in_place():
    """-(-x) -> x where x is already done: the node's users (kept in place) are rebuilt on x."""
    x = gc.var("x", (2,))
    twice = gc.negative(gc.negative(x))
    graph = Graph([x.node, gc.exp(twice).node, (twice * twice).node, gc.sin(x).node])
    for settled in (None, Settled()):
        out = rewrite(graph, SIMPLIFY_RULES, settled).outputs
        assert out[0] is x.node
        assert out[1] is ew.exp(x.node)
        assert out[2] is ew.mul(x.node, x.node)  # a diamond: both operands are the rewritten node
        assert out[3] is graph.outputs[3]  # untouched: the same object


def test_shared_subgraphs_across_outputs_are_rewritten_once():
    x, y = gc.var("x", (2,)), gc.var("y", (2,))
    shared = (x * 1.0) + y
    outs = [gc.exp(shared), gc.sin(shared) * shared, shared]
    with recording() as firings:
        result = rewrite(Graph([o.node for o in outs]), SIMPLIFY_RULES, Settled())
    assert [f.rule for f in firings] == ["mul_one"]  # x * 1.0 fired once, although three outputs reach it
    core = ew.add(x.node, y.node)
    assert result.outputs[2] is core
    assert result.outputs[0] is ew.exp(core)
    assert result.outputs[1] is ew.mul(ew.sin(core), core)


def test_each_firing_is_recorded_once_when_the_inputs_are_unchanged():
    x = gc.var("x", (2,))
    graph = Graph([gc.negative(gc.negative(x)).node, (x * 1.0).node, gc.sin(x).node])
    with recording() as firings:
        out = rewrite(graph, SIMPLIFY_RULES).outputs
    assert sorted(f.rule for f in firings) == ["mul_one", "neg_neg"]
    assert out[0] is out[1] is x.node


def _random_graph(rng: np.random.Generator, size: int) -> Graph:
    """A random DAG over two vars and a few constants, built from ops simplify and fold rewrite."""
    x, y = gc.var("x", (2,)), gc.var("y", (2,))
    pool = [x, y, gc.const(1.0), gc.const(2.0), gc.const(-1.0), gc.const(0.0)]
    for _ in range(size):
        a, b = (pool[int(k)] for k in rng.integers(0, len(pool), 2))
        choice = int(rng.integers(0, 6))
        if choice == 0:
            pool.append(-a)
        elif choice == 1:
            pool.append(a * b)
        elif choice == 2:
            pool.append(a + b)
        elif choice == 3:
            pool.append(a - b)
        elif choice == 4:
            pool.append(gc.sin(a))
        else:
            pool.append(a / b)
    picks = rng.integers(6, len(pool), 4)
    return Graph([pool[int(k)].node for k in picks], [x.node, y.node])


@pytest.mark.parametrize("table", [SIMPLIFY_RULES, FOLD_RULES], ids=["simplify", "fold"])
def test_random_graphs_reach_the_naive_fixpoint(table: RuleTable):
    """The walk (with and without a memo, and again over a graph sharing its nodes) equals the definition."""
    rng = np.random.default_rng(16)
    settled = Settled()
    for _ in range(25):
        graph = _random_graph(rng, 30)
        want = _naive_outputs(graph, table)
        assert list(rewrite(graph, table).outputs) == want
        assert list(rewrite(graph, table, settled).outputs) == want
        shared = Graph([*graph.outputs, (gc.Tensor(graph.outputs[0]) * 1.0).node], graph.inputs)
        assert list(rewrite(shared, table, settled).outputs) == _naive_outputs(shared, table)
