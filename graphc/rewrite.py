"""The rewrite engine: apply a table of small named rules to every node, to a fixpoint.

Imports errors, shapes, ir, ops. A rule is a function `rule(node) -> Node | None`
whose docstring is the rewrite it performs (`log(1 + x) -> log1p(x)`). The
engine rebuilds each node on its rewritten inputs (interning makes equal
structure one node, so common subexpressions merge for free), offers it to the
rules registered for its op, and checks every replacement keeps the node's type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from graphc.ir import Graph, Node, derived_from, toposort

Rule = Callable[[Node], Node | None]
RuleTable = Mapping[str, Sequence[Rule]]

MAX_STEPS_PER_NODE = 32


class RewriteError(AssertionError):
    """A rule broke its contract (changed the node's type, or never settled): a graphc bug."""


def rebuild(node: Node, inputs: Sequence[Node]) -> Node:
    """`node` on new inputs (the same object when nothing changed)."""
    if all(a is b for a, b in zip(inputs, node.inputs, strict=True)):
        return node
    return Node.make(node.op, inputs, node.params)


def _apply_rules(node: Node, table: RuleTable) -> Node:
    for _ in range(MAX_STEPS_PER_NODE):
        for rule in table.get(node.op.name, ()):
            with derived_from(node):
                new = rule(node)
            if new is not None and new is not node:
                if new.type != node.type:
                    raise RewriteError(f"rule {rule.__name__} changed {node.type} into {new.type}")
                node = new
                break
        else:
            return node
    raise RewriteError(f"rules for {node.op.name} did not settle after {MAX_STEPS_PER_NODE} steps")


def rewrite_nodes(outputs: Sequence[Node], table: RuleTable) -> list[Node]:
    """The outputs with every node rewritten bottom-up, until no rule applies anywhere."""
    for _ in range(MAX_STEPS_PER_NODE):
        mapping: dict[Node, Node] = {}
        for node in toposort(outputs):
            new = rebuild(node, [mapping[i] for i in node.inputs])
            mapping[node] = _apply_rules(new, table)
        new_outputs = [mapping[o] for o in outputs]
        if all(a is b for a, b in zip(new_outputs, outputs, strict=True)):
            return new_outputs
        outputs = new_outputs
    raise RewriteError("rewriting did not reach a fixpoint")


def rewrite(graph: Graph, table: RuleTable) -> Graph:
    """The graph with `table` applied to a fixpoint; the same object when nothing changed."""
    outputs = rewrite_nodes(list(graph.outputs), table)
    if all(a is b for a, b in zip(outputs, graph.outputs, strict=True)):
        return graph
    return Graph(outputs, graph.inputs)


def rule_table(*rules: tuple[str, Rule]) -> dict[str, list[Rule]]:
    """A table {op name: [rules in order]} from (op name, rule) pairs."""
    table: dict[str, list[Rule]] = {}
    for op_name, rule in rules:
        table.setdefault(op_name, []).append(rule)
    return table
