"""The rewrite engine: apply a table of small named rules to every node, to a fixpoint.

Imports errors, shapes, ir, ops. A rule is a function `rule(node) -> Node | None`
whose docstring is the rewrite it performs (`log(1 + x) -> log1p(x)`). The
engine rebuilds each node on its rewritten inputs (interning makes equal
structure one node, so common subexpressions merge for free), offers it to the
rules registered for its op (then to those under EVERY_OP, offered to any node), and
checks every replacement keeps the node's type.
`is_filled`, the predicate rules use most (a constant that is 1 everywhere?), lives
here too.

One walk in topological order reaches the fixpoint: a node is offered to the rules once
its inputs are rewritten, and a replacement is walked the same way before it counts
(the nodes a rule builds may match rules too), so the work is linear in the nodes
visited and built, and the walk's stack only ever holds nodes that rules built.

A pass with a fixed table keeps a `Settled` memo: the nodes known to be fixpoints of its
table. A rule sees only the node and what it uses, which never change (nodes are
immutable and interned), so a fixpoint stays one: the next walk, in a later round or a
later compile, passes over it without offering it to the rules, and a graph whose
outputs are all settled is returned at once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from graphc.ir import Graph, Node, derived_from, live_nodes, toposort
from graphc.ops.source import const_value

Rule = Callable[[Node], Node | None]
RuleTable = Mapping[str, Sequence[Rule]]

EVERY_OP = "*"
"""The key of a rule table whose rules are offered to every node, after its op's own."""

MAX_STEPS_PER_NODE = 32


class RewriteError(AssertionError):
    """A rule broke its contract (changed the node's type, or never settled): a graphc bug."""


@dataclass(frozen=True)
class Firing:
    """One rule that fired: its name, the node it rewrote and the replacement it gave."""

    rule: str
    before: Node
    after: Node


_RECORDERS: list[list[Firing]] = []


@contextlib.contextmanager
def recording() -> Iterator[list[Firing]]:
    """Inside this block every rule that fires is appended, in order, to the list it yields.

    Off unless asked for: outside such a block the engine records nothing (one empty-list
    test per firing). The explorer uses it to name the rule behind each rewritten node.
    """
    firings: list[Firing] = []
    _RECORDERS.append(firings)
    try:
        yield firings
    finally:
        _RECORDERS.pop()


def rebuild(node: Node, inputs: Sequence[Node]) -> Node:
    """`node` on new inputs (the same object when nothing changed)."""
    if all(a is b for a, b in zip(inputs, node.inputs, strict=True)):
        return node
    return Node.make(node.op, inputs, node.params)


def _first_rewrite(node: Node, rules: Sequence[Rule]) -> Node | None:
    """The replacement the first applicable rule gives, type-checked; None when no rule applies."""
    if not rules:
        return None
    with derived_from(node):
        for rule in rules:
            new = rule(node)
            if new is None or new is node:
                continue
            if new.type != node.type:
                raise RewriteError(f"rule {rule.__name__} changed {node.type} into {new.type}")
            if _RECORDERS:
                _RECORDERS[-1].append(Firing(rule.__name__, node, new))
            return new
    return None


class Settled:
    """The nodes known to be fixpoints of one rule table.

    Only for a table whose rules never change: a rule added later could fire on a settled node.
    Each memo owns one bit of every node's `settled` field (a bit is never reused, so a
    discarded memo's marks mean nothing to a new one); the marks go with their nodes. A
    weak set of nodes did the same at several times the cost per lookup, which the
    optimizer pays per node and per pass.
    """

    __slots__ = ("bit",)
    _next_bit = 0

    def __init__(self) -> None:
        self.bit = 1 << Settled._next_bit
        Settled._next_bit += 1

    def __contains__(self, node: Node) -> bool:
        return bool(node.settled & self.bit)

    def add(self, node: Node) -> None:
        object.__setattr__(node, "settled", node.settled | self.bit)  # Node refuses plain assignment

    def __len__(self) -> int:
        return sum(1 for node in live_nodes() if node.settled & self.bit)


class _Frame:
    """A node being rewritten: its current form, the next input to visit, the forms so far, the rule steps."""

    __slots__ = ("forms", "next", "node", "steps")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.next = 0
        self.forms = [node]
        self.steps = 0

    def restart(self, form: Node) -> None:
        """Walk `form`, the replacement a rule gave, in place of the current node."""
        self.steps += 1
        if self.steps > MAX_STEPS_PER_NODE:
            raise RewriteError(f"rules for {form.op.name} did not settle after {MAX_STEPS_PER_NODE} steps")
        self.node = form
        self.next = 0
        self.forms.append(form)


def _settle(frame: _Frame, table: _RulesByOp, done: dict[Node, Node]) -> Node | None:
    """The fixpoint of the frame's node (its inputs are rewritten), or None after a restart on a replacement."""
    node = frame.node
    inputs = tuple(map(done.__getitem__, node.inputs))
    rebuilt = node
    if inputs != node.inputs:  # nodes compare by identity
        with derived_from(node):  # the rebuilt node carries the user's line over; the inputs' types are kept
            rebuilt = node.remake(inputs)
        frame.forms.append(rebuilt)
        if rebuilt in done:
            return done[rebuilt]
    new = _first_rewrite(rebuilt, table[rebuilt.op.name])
    if new is None:
        return rebuilt
    if new in done:
        return done[new]
    frame.restart(new)
    return None


def _rules(table: RuleTable, op_name: str) -> Sequence[Rule]:
    """The rules offered to a node of this op: its own, then those for every op."""
    every = table.get(EVERY_OP)
    if every is None:
        return table.get(op_name, ())
    return [*table.get(op_name, ()), *every]


class _RulesByOp(dict[str, Sequence[Rule]]):
    """op name -> the rules offered to its nodes (_rules), worked out once per op and walk."""

    def __init__(self, table: RuleTable) -> None:
        super().__init__()
        self.table = table

    def __missing__(self, op_name: str) -> Sequence[Rule]:
        rules = tuple(_rules(self.table, op_name))
        self[op_name] = rules
        return rules


def _enter(node: Node, active: set[Node]) -> None:
    """Mark `node` as being walked; meeting it again before it settles means the rules loop."""
    if node in active:
        raise RewriteError(f"rewriting {node.op.name} leads back to itself: the rules never settle")
    active.add(node)


def _finish(frame: _Frame, result: Node, done: dict[Node, Node], settled: Settled | None) -> None:
    """Record `result` as the fixpoint of every form the frame's node took."""
    for form in frame.forms:
        done[form] = result
    done[result] = result
    if settled is not None:
        settled.add(result)


def _walk(frame: _Frame, table: _RulesByOp, done: dict[Node, Node], settled: Settled | None) -> None:
    """Walk the replacement a rule gave for the frame's node, and what it uses, into `done` (node -> its
    fixpoint), depth first, without recursion."""
    stack = [frame]
    active = {frame.forms[0]}  # the forms of the nodes on the stack
    _enter(frame.node, active)
    while stack:
        frame = stack[-1]
        inputs = frame.node.inputs
        if frame.next < len(inputs):
            child = inputs[frame.next]
            frame.next += 1
            if child in done:
                continue
            if settled is not None and child in settled:
                done[child] = child
                continue
            _enter(child, active)
            stack.append(_Frame(child))
            continue
        result = _settle(frame, table, done)
        if result is None:
            _enter(frame.node, active)  # a replacement, to be walked
            continue
        stack.pop()
        active.difference_update(frame.forms)
        _finish(frame, result, done, settled)


def _rewrite_in_order(order: Sequence[Node], rules: RuleTable, settled: Settled | None) -> dict[Node, Node]:
    """Each node of `order` (inputs before users) -> its fixpoint; a walk goes deeper only into new nodes.

    Every node's inputs are done before it (the order is topological), so a node is
    settled in place, and walked only when a rule gives a replacement (the nodes a rule
    builds are new, and walked before they count). A settled node is its own fixpoint.
    """
    table = _RulesByOp(rules)
    done: dict[Node, Node] = {}
    bit = 0 if settled is None else settled.bit
    for node in order:
        if node in done:
            continue
        if node.settled & bit:
            done[node] = node
            continue
        if _inputs_kept(node, done):  # the common case, settled in place without a frame
            new = _first_rewrite(node, table[node.op.name])
            if new is None:
                done[node] = node
                if bit:
                    object.__setattr__(node, "settled", node.settled | bit)  # Node refuses plain assignment
                continue
            frame = _Frame(node)
            if new in done:
                _finish(frame, done[new], done, settled)
                continue
            frame.restart(new)
            _walk(frame, table, done, settled)
            continue
        frame = _Frame(node)
        result = _settle(frame, table, done)
        if result is None:
            _walk(frame, table, done, settled)
            continue
        _finish(frame, result, done, settled)
    return done


def _inputs_kept(node: Node, done: dict[Node, Node]) -> bool:
    """Whether every input of `node` is its own fixpoint (so `node` needs no rebuilding)."""
    for child in node.inputs:  # noqa: SIM110 (a loop: all() over a generator costs twice as much, per node and pass)
        if done[child] is not child:
            return False
    return True


def rewrite_nodes(outputs: Sequence[Node], table: RuleTable, settled: Settled | None = None) -> list[Node]:
    """The outputs with every node rewritten bottom-up, until no rule applies anywhere.

    `settled`: the memo of fixpoints of `table`, read and extended (see the module docstring).
    """
    if settled is not None and all(o in settled for o in outputs):
        return list(outputs)
    done = _rewrite_in_order(toposort(outputs), table, settled)
    return [done[o] for o in outputs]


def rewrite(graph: Graph, table: RuleTable, settled: Settled | None = None) -> Graph:
    """The graph with `table` applied to a fixpoint; the same object when nothing changed.

    `settled`: the memo of fixpoints of `table`, read and extended (see the module docstring).
    """
    if settled is not None and all(o in settled for o in graph.outputs):
        return graph
    done = _rewrite_in_order(graph.nodes, table, settled)
    outputs = [done[o] for o in graph.outputs]
    if all(a is b for a, b in zip(outputs, graph.outputs, strict=True)):
        return graph
    return Graph(outputs, graph.inputs)


def rule_table(*rules: tuple[str, Rule]) -> dict[str, list[Rule]]:
    """A table {op name: [rules in order]} from (op name, rule) pairs."""
    table: dict[str, list[Rule]] = {}
    for op_name, rule in rules:
        table.setdefault(op_name, []).append(rule)
    return table


def is_filled(node: Node, value: float) -> bool:
    """True when `node` is a (broadcast or reshaped) constant that is `value` everywhere, sign of zero included."""
    while node.op.name in ("broadcast_to", "reshape"):
        node = node.inputs[0]
    array = const_value(node)
    if array is None or array.size == 0:
        return False
    if array.size == 1:  # the common case, in Python scalars: NumPy's per-call cost dominated the optimizer
        item = array.item()
        if item != value:
            return False
        return value != 0 or array.dtype.kind != "f" or math.copysign(1.0, item) == math.copysign(1.0, value)
    target = np.asarray(value, dtype=array.dtype)
    if target != value:
        return False  # `value` has no spelling in this dtype (0.5 in int64 would read as 0)
    same = array == target
    if value == 0:
        same &= np.signbit(array) == np.signbit(target)
    return bool(np.all(same))
