"""fuse: group elementwise/broadcast regions, plus a trailing reduction, into one `fused` node each.

Imports errors, shapes, ir, ops and rewrite. Guarantee: bit-identical results — a fused
node's body holds the region's nodes unchanged, and evaluating it runs the same op evals
on the same values in the same order. Running it twice changes nothing
(`fuse(fuse(g)) is fuse(g)`): fused nodes are OPAQUE, so they never join a region, and a
node left alone once is left alone again.

The region rules, chosen so that a region is one loop nest computing each of its values
once per point of one iteration shape:
- Members are ELEMENTWISE or BROADCAST nodes (broadcast_to included) and at most one
  REDUCE (sum, prod, max, min, logsumexp), which can only be the region's root: a
  reduction ends a region, it never feeds one.
- A region has exactly one output, its root. Every other member has all its users inside
  the region and is not a graph output (nor a graph input); a node that fails this ends
  its own region.
- Every member other than a reducing root has the region's shape (the root's shape, or a
  reducing root's operand shape). Smaller operands that NumPy broadcasts are region inputs
  and form regions of their own; so broadcast_to only ever enters a region as a member
  whose operand is a region input, never as a root of more than itself.
- A region of one node stays as it is. Region inputs (vars, constants, other regions,
  matmul and other OPAQUE results) become the fused node's inputs, each once, in order
  of first use.

Regions are found in one pass over the reverse toposort: users come before the nodes
they use, so a node joins the region of its users when they all share one.

Loop and branch bodies (a node's Graph-valued attributes: scan, fixed_point, while_loop,
cond) are fused by the same rules, each body once, so that the siblings of one loop keep
sharing one body; a loop node itself stays OPAQUE and never joins a region.
"""

from __future__ import annotations

from collections.abc import Callable

from graphc.ir import Graph, Node, derived_from, users
from graphc.ops.base import Kind
from graphc.ops.control import fused, param
from graphc.rewrite import rebuild
from graphc.shapes import Shape

FUSIBLE = (Kind.ELEMENTWISE, Kind.BROADCAST)


def region_shape(root: Node) -> Shape:
    """The iteration shape of the region rooted at `root`."""
    if root.op.kind is Kind.REDUCE:  # type: ignore[attr-defined]
        return root.inputs[0].shape
    return root.shape


def _joined_root(node: Node, used_by: list[Node], root_of: dict[Node, Node]) -> Node | None:
    """The root of the one region holding every user of `node` if `node` may join it, else None."""
    if not used_by:
        return None
    root = root_of.get(used_by[0])
    if root is None:
        return None
    for user in used_by:  # a loop: any() over a generator cost a tenth of fuse
        if root_of.get(user) is not root:
            return None
    if node.shape != region_shape(root):
        return None
    return root


def regions(graph: Graph) -> dict[Node, Node]:
    """For every node that belongs to a region (of any size), the root of its region."""
    nodes = graph.nodes
    table = users(nodes)
    given = {id(n) for n in graph.inputs}
    outputs = {id(n) for n in graph.outputs}
    root_of: dict[Node, Node] = {}
    for node in reversed(nodes):
        kind = node.op.kind  # type: ignore[attr-defined]
        if id(node) in given:
            continue
        if kind is Kind.REDUCE:
            root_of[node] = node
        elif kind in FUSIBLE:
            root = None if id(node) in outputs else _joined_root(node, table[node], root_of)
            root_of[node] = node if root is None else root
    return root_of


def _members(graph: Graph, root_of: dict[Node, Node]) -> dict[Node, list[Node]]:
    """Each region root's members in toposort order (root last), for regions of two nodes or more."""
    members: dict[Node, list[Node]] = {}
    for node in graph.nodes:
        root = root_of.get(node)
        if root is not None:
            members.setdefault(root, []).append(node)
    return {root: group for root, group in members.items() if len(group) > 1}


def fused_node(group: list[Node], outer: dict[Node, Node]) -> Node:
    """One `fused` node for a region (members in toposort order, root last).

    `outer` maps each region input to its node in the new graph; the body's parameters
    stand for those nodes in order of first use, and every body node records the member
    it copies as its origin.
    """
    inside: dict[Node, Node] = {}
    params: dict[Node, Node] = {}
    for member in group:
        with derived_from(member):  # not the user's line: looking for it walks the stack
            args = []
            for operand in member.inputs:
                copy = inside.get(operand)
                args.append(_param_for(outer[operand], params) if copy is None else copy)
            inside[member] = member.remake(tuple(args))  # the arguments have the operands' types: its own is kept
    root = group[-1]
    body = Graph([inside[root]], list(params.values()))
    with derived_from(root):
        return fused(*params, body=body)


def _param_for(source: Node, params: dict[Node, Node]) -> Node:
    """The body parameter standing for the region input `source` (the next one, when it is new)."""
    found = params.get(source)
    if found is None:
        found = params[source] = param(len(params), source.type)
    return found


def _with_bodies(node: Node, inputs: list[Node], transform: Callable[[Graph], Graph], done: dict[Graph, Graph]) -> Node:
    """`node` on `inputs` with each Graph-valued attribute (a loop or branch body) transformed once per body."""
    bodies = {}
    for key, value in node.attrs:
        if isinstance(value, Graph):
            if value not in done:
                done[value] = transform(value)
            if done[value] is not value:
                bodies[key] = done[value]
    if not bodies:
        return rebuild(node, inputs)
    with derived_from(node):
        return Node.make(node.op, inputs, {**node.params, **bodies})


def _has_bodies(graph: Graph) -> bool:
    """Whether a node of the graph other than a fused region holds a body Graph (a loop's, a branch's)."""
    return any(isinstance(v, Graph) for n in graph.nodes if n.op is not fused for _, v in n.attrs)


def fuse(graph: Graph) -> Graph:
    """One fused node per region of two or more nodes, in loop and branch bodies too; the same graph when none."""
    groups = _members(graph, regions(graph))
    if not groups and not _has_bodies(graph):
        return graph
    interior = {id(n) for group in groups.values() for n in group[:-1]}
    mapping: dict[Node, Node] = {}
    fused_bodies: dict[Graph, Graph] = {}
    for node in graph.nodes:
        if id(node) in interior:
            continue
        if node in groups:
            mapping[node] = fused_node(groups[node], mapping)
        elif node.op is fused:
            mapping[node] = rebuild(node, [mapping[i] for i in node.inputs])
        else:
            mapping[node] = _with_bodies(node, [mapping[i] for i in node.inputs], fuse, fused_bodies)
    outputs = [mapping[o] for o in graph.outputs]
    if all(a is b for a, b in zip(outputs, graph.outputs, strict=True)):
        return graph
    return Graph(outputs, graph.inputs)


def inline(body: Graph, args: list[Node]) -> Node:
    """The body's output rebuilt on `args` in place of its parameters (interning finds existing nodes)."""
    values: dict[Node, Node] = dict(zip(body.inputs, args, strict=True))
    for node in body.nodes:
        if node not in values:
            with derived_from(node):
                values[node] = Node.make(node.op, [values[i] for i in node.inputs], node.params)
    return values[body.outputs[0]]


def unfuse(graph: Graph) -> Graph:
    """Every fused node replaced by its body's nodes, in loop bodies too: the inverse of fuse (same outputs).

    For inspection, tests, and differentiating a graph that was already optimized.
    """
    mapping: dict[Node, Node] = {}
    unfused_bodies: dict[Graph, Graph] = {}
    for node in graph.nodes:
        args = [mapping[i] for i in node.inputs]
        if node.op is fused:
            body = node.attr("body")
            assert isinstance(body, Graph)
            mapping[node] = inline(body, args)
        else:
            mapping[node] = _with_bodies(node, args, unfuse, unfused_bodies)
    outputs = [mapping[o] for o in graph.outputs]
    if all(a is b for a, b in zip(outputs, graph.outputs, strict=True)):
        return graph
    return Graph(outputs, graph.inputs)
