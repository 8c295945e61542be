"""rewrite.py: the engine's contract — types are kept, rules run bottom-up to a fixpoint, equal
structure merges (CSE), an unchanged graph is the same object, runaway rules are caught.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.passes.simplify import RULES as SIMPLIFY_RULES
from graphc.passes.simplify import mul_minus_one, neg_neg
from graphc.rewrite import (
    EVERY_OP,
    MAX_STEPS_PER_NODE,
    RewriteError,
    Settled,
    rebuild,
    rewrite,
    rewrite_nodes,
    rule_table,
)


def exp_to_float32(node: Node) -> Node | None:
    """exp(x) -> astype(exp(x), float32)   (breaks the contract: the dtype changes)"""
    return ew.astype(node, dtype=np.dtype("float32"))


def sum_keepdims(node: Node) -> Node | None:
    """sum(x, keepdims=False) -> sum(x, keepdims=True)   (breaks the contract: the shape changes)"""
    if node.attr("keepdims"):
        return None
    return rd.sum_(node.inputs[0], axis=node.attr("axis"), keepdims=True)


def commute(node: Node) -> Node | None:
    """a * b -> b * a   (never settles)"""
    x, y = node.inputs
    return ew.mul(y, x)


def grow(node: Node) -> Node | None:
    """-x -> -(-(-x))   (never settles: every step makes a new node)"""
    return ew.neg(ew.neg(node))


@pytest.mark.parametrize(("op", "rule"), [("exp", exp_to_float32), ("sum", sum_keepdims)])
def test_a_rule_that_changes_the_type_raises(op: str, rule: object):
    x = gc.var("x", shape=(3,))
    graph = Graph([gc.sum(gc.exp(x))])
    with pytest.raises(RewriteError, match=rule.__name__):  # type: ignore[attr-defined]
        rewrite(graph, rule_table((op, rule)))  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", [commute, grow])
def test_a_rule_that_never_settles_raises(rule: object):
    x, y = gc.var("x", shape=(3,)), gc.var("y", shape=(3,))
    op = "mul" if rule is commute else "neg"
    with pytest.raises(RewriteError):
        rewrite(Graph([-(x * y)]), rule_table((op, rule)))  # type: ignore[arg-type]


def test_rewrite_error_is_an_assertion_error():
    assert issubclass(RewriteError, AssertionError)  # a broken rule is a graphc bug, not a user error
    assert MAX_STEPS_PER_NODE >= 8


def test_equal_structure_merges():
    """exp(x) * 1 and exp(x) become one node; so do -(-x) + ... and x + ...: CSE for free."""
    x = gc.var("x", shape=(3,))
    a = gc.sin(gc.exp(x) * 1.0)
    b = gc.sin(gc.exp(x))
    c = gc.negative(-x) + gc.exp(x)
    d = x + gc.exp(x)
    graph = Graph([a, b, c, d])
    assert len(graph.nodes) == 10  # x, exp, 1.0, mul, 2 sins, 2 negs, 2 adds
    result = rewrite(graph, SIMPLIFY_RULES)
    assert result.outputs[0] is result.outputs[1] is b.node
    assert result.outputs[2] is result.outputs[3] is d.node
    assert [n.op.name for n in result.nodes] == ["var", "exp", "sin", "add"]


def test_unchanged_graph_is_the_same_object():
    x = gc.var("x", shape=(3,))
    graph = Graph([gc.exp(x) * 2.0])
    assert rewrite(graph, {}) is graph
    assert rewrite(graph, rule_table(("mul", lambda node: None))) is graph
    assert rewrite(graph, rule_table(("mul", lambda node: node))) is graph
    assert rewrite(graph, SIMPLIFY_RULES) is graph


def test_rebuild_keeps_the_node_when_inputs_are_the_same():
    x, y = gc.var("x", shape=(3,)), gc.var("y", shape=(3,))
    node = (x * y).node
    assert rebuild(node, list(node.inputs)) is node
    assert rebuild(node, [y.node, x.node]) is (y * x).node


def test_rules_run_bottom_up_to_a_fixpoint():
    """Each replacement is offered to the rules again, and nodes a rule creates are rewritten too."""
    x = gc.var("x", shape=(3,))
    table = rule_table(("mul", mul_minus_one), ("neg", neg_neg))
    out = ((x * -1.0) * -1.0) * -1.0
    assert rewrite_nodes([out.node], table) == [(-x).node]
    assert rewrite_nodes([(out * -1.0).node], table) == [x.node]


def test_rule_table_keeps_order():
    table = rule_table(("mul", commute), ("neg", grow), ("mul", mul_minus_one))
    assert table == {"mul": [commute, mul_minus_one], "neg": [grow]}


def test_graph_inputs_survive_a_rewrite():
    """A var the rewritten outputs no longer reach is still an input of the graph."""
    from graphc.passes.fastmath import RULES as FASTMATH_RULES

    x, y = gc.var("x", shape=(3,)), gc.var("y", shape=(3,))
    graph = Graph([x * 0.0 + y])
    result = rewrite(graph, FASTMATH_RULES)
    assert result.inputs == graph.inputs
    assert result.outputs == (y.node,)


def test_replacements_point_back_to_the_rewritten_node():
    """Provenance: a node a rule builds records the node it replaces and the user's line."""
    from graphc.passes.stability import RULES as STABILITY_RULES

    x = gc.var("x", shape=(3,))
    log = gc.log(1.0 + x)
    (new,) = rewrite_nodes([log.node], STABILITY_RULES)
    assert new.op is ew.log1p
    assert new.origin is log.node
    assert new.loc == log.node.loc and new.loc is not None and new.loc.file == __file__


def test_deep_chains_need_no_recursion():
    x = gc.var("x", shape=(2,))
    y = x
    for _ in range(3000):
        y = gc.negative(-gc.sin(y) * 1.0)
    out = rewrite_nodes([y.node], SIMPLIFY_RULES)[0]
    assert len(Graph([out]).nodes) == 3001


def test_rebuilt_nodes_keep_the_users_line():
    """sin(x * 1.0) becomes sin(x), a new node: it records the sin it replaces and that sin's line."""
    x = gc.var("x", shape=(3,))
    sin = gc.sin(x * 1.0)
    (new,) = rewrite_nodes([sin.node], SIMPLIFY_RULES)  # another line than the one that built sin
    assert new.op is ew.sin and new.inputs == (x.node,)
    assert new.origin is sin.node
    assert new.loc == sin.node.loc


def test_each_node_is_offered_to_the_rules_once():
    """One walk reaches the fixpoint: rewriting 100 x * 1.0 under 100 sins calls a sin rule 100 times."""
    calls = []

    def watch(node: Node) -> Node | None:
        """sin(x) -> sin(x)   (records the call, rewrites nothing)"""
        calls.append(node)
        return None

    x = gc.var("x", shape=(3,))
    y = x
    for _ in range(100):
        y = gc.sin(y * 1.0)
    table = {**SIMPLIFY_RULES, "sin": [watch]}
    (out,) = rewrite_nodes([y.node], table)
    assert len(Graph([out]).nodes) == 101
    assert len(calls) == 100 and len(set(calls)) == 100
    assert set(calls) == {n for n in Graph([out]).nodes if n.op is ew.sin}


def test_rules_for_every_op_come_after_the_ops_own() -> None:
    seen: list[str] = []

    def note(node: Node) -> Node | None:
        seen.append(node.op.name)
        return None

    def exp_to_expm1_plus_one(node: Node) -> Node | None:
        """exp(x) -> expm1(x) + 1"""
        return ew.add(ew.expm1(node.inputs[0]), gc.const(np.float64(1.0)).node)

    x = gc.var("x", (3,))
    graph = Graph([gc.tanh(gc.exp(x)).node])
    table = rule_table((EVERY_OP, note), ("exp", exp_to_expm1_plus_one))
    result = rewrite(graph, table)
    assert [n.op.name for n in result.nodes] == ["var", "expm1", "const", "add", "tanh"]
    assert "exp" not in seen  # exp's own rule fired first, so the rule for every op never saw it
    assert {"expm1", "add", "tanh"} <= set(seen)


def _watched_sin_table(calls: list[Node]) -> dict:
    def watch(node: Node) -> Node | None:
        """sin(x) -> sin(x)   (records the call, rewrites nothing)"""
        calls.append(node)
        return None

    return {**SIMPLIFY_RULES, "sin": [watch]}


def test_a_settled_graph_is_not_walked_again():
    """With a Settled memo, a second rewrite of the result offers nothing to the rules and returns it as is."""
    calls: list[Node] = []
    table, settled = _watched_sin_table(calls), Settled()
    x = gc.var("x", shape=(3,))
    y = x
    for _ in range(50):
        y = gc.sin(y * 1.0)
    first = rewrite(Graph([y.node]), table, settled)
    assert len(calls) == 50 and len(settled) >= 51
    again = Graph(list(first.outputs), first.inputs)  # another Graph object on the same nodes
    assert rewrite(again, table, settled) is again
    assert rewrite_nodes(list(first.outputs), table, settled) == list(first.outputs)
    assert len(calls) == 50


def test_a_settled_memo_walks_only_the_new_nodes():
    """After a change under a settled subgraph's users, only the new nodes meet the rules, and the
    result is the one a walk without the memo gives."""
    calls: list[Node] = []
    table, settled = _watched_sin_table(calls), Settled()
    x, z = gc.var("x", shape=(3,)), gc.var("z", shape=(3,))
    base = x
    for _ in range(20):
        base = gc.sin(base)
    rewrite(Graph([base.node]), table, settled)
    assert len(calls) == 20
    top = gc.sin(gc.sin(base * 1.0) + z)
    calls.clear()
    with_memo = rewrite(Graph([top.node]), table, settled)
    assert len(calls) == 2  # the two sins above `base`; the 20 below it are settled
    calls.clear()
    without = rewrite(Graph([top.node]), table)
    assert len(calls) == 22
    assert with_memo.outputs == without.outputs
    assert str(with_memo) == str(without)


def test_a_settled_memo_lets_go_of_dead_nodes():
    import gc as python_gc

    settled = Settled()
    x = gc.var("x", shape=(2,))
    nodes = [gc.sin(x * float(k)).node for k in range(3000)]
    for node in nodes:
        settled.add(node)
    keep = nodes[0]
    assert len(settled) == 3000 and keep in settled
    del nodes, node
    python_gc.collect()
    assert len(settled) == 1 and keep in settled
    fresh = gc.cos(x).node
    assert fresh not in settled  # a new node at a dead node's address is not mistaken for it
