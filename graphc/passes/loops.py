"""loops: see into loop bodies — optimize them, hoist what does not change, drop what nobody uses.

Guarantee: a loop's results are what the rest of the pipeline makes of its body, computed
once per call. The bodies of `cond` and `while_loop` are optimized (optimize_body) and
otherwise kept as they are. For every family of `scan` and `fixed_point` siblings:
- constants fed to the loop as closures move into the body, and the body is optimized by
  fold, stability, simplify, prune and this pass (for loops inside it), to a fixpoint;
- computations in the body that do not depend on what changes from one iteration to the
  next are hoisted out and run once, before the loop (ops.loops.close_over);
- scan families that differ only in extra per-step outputs (a gradient's forward loop
  extended with residuals) become one loop;
- per-step outputs and saved carries that no sibling uses are not produced, carries that
  nothing needs are not carried, inputs the body does not read are dropped.
Running it twice changes nothing (`loops(loops(g)) is loops(g)`).

Imports errors, shapes, ir, ops, rewrite and the other passes (never passes/__init__).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from graphc.ir import Graph, Node, toposort
from graphc.ops.base import OPS
from graphc.ops.control_flow import CONTROL_OPS
from graphc.ops.loops import close_over, family_key, int_attr, is_loop, sibling, substitute
from graphc.passes.fold import fold
from graphc.passes.prune import prune
from graphc.passes.simplify import simplify
from graphc.passes.stability import stability
from graphc.rewrite import rebuild

MAX_ROUNDS = 8


def optimize_body(body: Graph) -> Graph:
    """The body after fold, stability, simplify, prune and loops, in rounds until nothing changes."""
    passes: tuple[Callable[[Graph], Graph], ...] = (fold, stability, simplify, prune, loops)
    for _ in range(MAX_ROUNDS):
        start = body
        for p in passes:
            body = p(body)
        if body is start:
            break
    return body


@dataclass
class Group:
    """Loop families computed as one: the union of what their siblings ask for."""

    head: Node
    members: list[Node] = field(default_factory=list)

    def requests(self) -> list[tuple[str, object]]:
        """For each member: ("carry", m), ("y", the body node) or ("saved", m)."""
        return [_request(node) for node in self.members]


def _counts(node: Node) -> tuple[int, int]:
    if node.op.name == "scan":
        return int_attr(node, "n_carry"), int_attr(node, "n_xs")
    return int_attr(node, "n_z"), 0


def _request(node: Node) -> tuple[str, object]:
    body = node.attr("body")
    assert isinstance(body, Graph)
    nc, _ = _counts(node)
    o = int_attr(node, "output")
    ny = len(body.outputs) - nc
    if o < nc or node.op.name != "scan":
        return ("carry", o)
    if o < nc + ny:
        return ("y", body.outputs[o])
    return ("saved", o - nc - ny)


def _merge_key(node: Node) -> tuple[object, ...]:
    """Scans with this key compute the same carries and differ at most in their per-step outputs."""
    if node.op.name != "scan":
        return family_key(node)
    body = node.attr("body")
    assert isinstance(body, Graph)
    nc, _ = _counts(node)
    attrs = tuple(kv for kv in node.attrs if kv[0] not in ("body", "output"))
    return (node.op, node.inputs, attrs, body.inputs, body.outputs[:nc])


def groups(nodes: Sequence[Node]) -> dict[Node, Group]:
    """Each loop node's group, by the node."""
    table: dict[tuple[object, ...], Group] = {}
    of: dict[Node, Group] = {}
    for node in nodes:
        if is_loop(node) and node.op.name not in CONTROL_OPS:
            group = table.setdefault(_merge_key(node), Group(node))
            group.members.append(node)
            of[node] = group
    return of


def _live_carries(body: Graph, nc: int, wanted: set[int], ys: list[Node]) -> list[int]:
    """The carries to keep: those asked for, and every carry a kept value reads, transitively."""
    params = {p: m for m, p in enumerate(body.inputs[:nc])}
    live = set(wanted)
    frontier = [*ys, *(body.outputs[m] for m in live)]
    while frontier:
        reached = {params[n] for n in toposort(frontier) if n in params} - live
        live |= reached
        frontier = [body.outputs[m] for m in reached]
    return sorted(live)


def _inline_constants(body: Graph, closures: dict[Node, Node]) -> Graph:
    """The body with each closure param whose value is a constant replaced by that constant."""
    constants = {p: v for p, v in closures.items() if v.op.name == "const"}
    if not constants:
        return body
    return Graph(substitute(body.outputs, constants), body.inputs)


def build(group: Group, inputs: list[Node]) -> dict[tuple[str, object], Node]:
    """The group as one new family on `inputs` (the head's inputs, rebuilt): each request's node."""
    head = group.head
    body = head.attr("body")
    assert isinstance(body, Graph)
    nc, nx = _counts(head)
    requests = group.requests()
    ys = list(dict.fromkeys(v for kind, v in requests if isinstance(v, Node)))
    wanted = {v for _, v in requests if isinstance(v, int)}
    live = _live_carries(body, nc, wanted, ys) if head.op.name == "scan" else list(range(nc))
    carry_params = [body.inputs[m] for m in live]
    x_params = list(body.inputs[nc : nc + nx])
    closure_params = body.inputs[nc + nx :]
    closures = dict(zip(closure_params, inputs[nc + nx :], strict=True))
    pruned = Graph([*(body.outputs[m] for m in live), *ys], [*carry_params, *x_params, *closure_params])
    optimized = optimize_body(_inline_constants(pruned, closures))
    names = [f"z{i}" for i in range(nc)] if head.op.name == "fixed_point" else [f"carry{i}" for i in range(len(live))]
    names += [f"x{i}" for i in range(nx)]
    new_body, kept, outer = close_over(
        optimized.outputs, [*carry_params, *x_params], names, fixed=closures, droppable=x_params
    )
    kept_xs = [inputs[nc + x_params.index(p)] for p in kept[len(live) :]]
    attrs = {**head.params, "body": new_body, "output": 0}
    if head.op.name == "scan":
        attrs |= {"n_carry": len(live), "n_xs": len(kept_xs)}
    node = OPS[head.op.name](*[inputs[m] for m in live], *kept_xs, *outer, **attrs)
    result: dict[tuple[str, object], Node] = {("carry", m): sibling(node, q) for q, m in enumerate(live)}
    result |= {("y", y): sibling(node, len(live) + j) for j, y in enumerate(ys)}
    if head.op.name == "scan":
        result |= {("saved", m): sibling(node, len(live) + len(ys) + q) for q, m in enumerate(live)}
    return result


def control(node: Node, inputs: list[Node], optimized: dict[Graph, Graph]) -> Node:
    """A cond or while_loop on `inputs` with each of its bodies optimized (once per body, in `optimized`)."""
    bodies = {}
    for key, body in node.attrs:
        if isinstance(body, Graph):
            if body not in optimized:
                optimized[body] = optimize_body(body)
            bodies[key] = optimized[body]
    return OPS[node.op.name](*inputs, **{**node.params, **bodies})


def loops(graph: Graph) -> Graph:
    """Every loop family optimized inside, merged, pruned; the same graph when nothing changes."""
    nodes = graph.nodes
    if not any(is_loop(node) for node in nodes):
        return graph
    of = groups(nodes)
    built: dict[int, dict[tuple[str, object], Node]] = {}
    mapping: dict[Node, Node] = {}
    optimized: dict[Graph, Graph] = {}
    for node in nodes:
        inputs = [mapping[i] for i in node.inputs]
        if node.op.name in CONTROL_OPS:
            mapping[node] = control(node, inputs, optimized)
            continue
        group = of.get(node)
        if group is None:
            mapping[node] = rebuild(node, inputs)
            continue
        if id(group) not in built:
            built[id(group)] = build(group, inputs)
        mapping[node] = built[id(group)][_request(node)]
    outputs = [mapping[o] for o in graph.outputs]
    if all(a is b for a, b in zip(outputs, graph.outputs, strict=True)):
        return graph
    return Graph(outputs, graph.inputs)


__all__ = ["build", "control", "groups", "loops", "optimize_body"]
