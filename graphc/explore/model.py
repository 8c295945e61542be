"""What the explorer shows, as plain data: every node once, a laid-out graph per optimizer stage.

Imports ir, layered, passes and viz. A stage is the graph after one pass run (the first is
the graph before optimization); each stage refers to a layout — items (its nodes, then
the dummies of long edges) with x and layer, and its edges with their dummy chains.
Bodies of fused regions and loops have layouts of their own, which the page draws inside
their node when it is expanded. Nodes are numbered once for the whole file, so one id
means one node (interning makes a node that survives a pass the same object).

A stage also says what its pass changed: nodes it removed, and for each node it added
whether a rewrite rule produced it (and which, from which node), a region became a fused
node, or the node was rebuilt because its inputs were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from graphc.ir import Graph, Node
from graphc.layered import layout
from graphc.passes import PassRecord, pipeline_for, run_pipeline
from graphc.viz import attr_lines, box_size, graph_bodies, label_lines, numbered

BOX_HEIGHT = box_size(("", ""))[1]
ORIGIN_DEPTH = 12  # how far an origin chain is followed (rewrites of rewrites of a gradient node)

Json = dict[str, object]


@dataclass
class Stage:
    """The graph after one pass run (or before the first), and the run's record."""

    name: str
    graph: Graph
    record: PassRecord | None = None


def optimizer_stages(graph: Graph, fast_math: bool = False, optimize: bool = True) -> list[Stage]:
    """The graph before optimization, then after every pass run of the default pipeline."""
    stages = [Stage("input", graph)]
    if not optimize:
        return stages
    _, report = run_pipeline(graph, pipeline_for(fast_math), record=True)
    for r in report:
        assert r.result is not None
        stages.append(Stage(r.name, r.result, r))
    return stages


@dataclass
class Model:
    """The node table, the layouts, and the stages that refer to them (see the module docstring)."""

    nodes: list[Json] = field(default_factory=list)
    layouts: list[Json] = field(default_factory=list)
    stages: list[Json] = field(default_factory=list)
    ids: dict[Node, int] = field(default_factory=dict)
    body_layouts: dict[Graph, int] = field(default_factory=dict)  # body -> its layout index (equal bodies: one)

    def node(self, node: Node) -> int:
        """The id of `node`, adding it (its bodies and its origin chain too) the first time."""
        found = self.ids.get(node)
        if found is not None and not self.nodes[found].get("detached"):
            return found
        if found is None:
            found = len(self.nodes)
            self.ids[node] = found
            self.nodes.append({})
        entry = self.nodes[found]  # new, or known so far only as an origin: described in full now
        entry.clear()
        entry.update(self._describe(node))
        return found

    def _describe(self, node: Node) -> Json:
        head, type_ = label_lines(node)
        entry: Json = {"op": node.op.name, "head": head, "type": type_, "w": round(box_size((head, type_))[0])}
        attrs = attr_lines(node)
        if attrs:
            entry["attrs"] = attrs
        if node.loc is not None:
            entry["loc"] = str(node.loc)
        entry["inputs"] = [self.node(i) for i in node.inputs]
        bodies = graph_bodies(node)
        if bodies:
            entry["bodies"] = [[key, self.body(body)] for key, body in bodies]
        if node.origin is not None:
            entry["origin"] = self._origin(node.origin)
        return entry

    def _origin(self, node: Node) -> int:
        """An origin's id: a node kept for its provenance only (its op, type, location, own origin)."""
        found = self.ids.get(node)
        if found is not None:
            return found
        chain = [node]
        while chain[-1].origin is not None and len(chain) < ORIGIN_DEPTH and chain[-1].origin not in self.ids:
            chain.append(chain[-1].origin)
        for link in reversed(chain):
            head, type_ = label_lines(link)
            entry: Json = {"op": link.op.name, "head": head, "type": type_, "detached": True}
            if link.loc is not None:
                entry["loc"] = str(link.loc)
            if link.origin is not None and link.origin in self.ids:
                entry["origin"] = self.ids[link.origin]
            self.ids[link] = len(self.nodes)
            self.nodes.append(entry)
        return self.ids[node]

    def body(self, body: Graph) -> int:
        """The layout index of a body graph (laid out once however many nodes hold it)."""
        found = self.body_layouts.get(body)
        if found is None:
            found = self.layout(body)
            self.body_layouts[body] = found
        return found

    def layout(self, graph: Graph) -> int:
        """Lay out one graph; its index in `layouts`."""
        nodes = numbered(graph)
        items = [self.node(n) for n in nodes]
        position = {n: k for k, n in enumerate(nodes)}
        sizes = [(float(self.nodes[i]["w"]), BOX_HEIGHT) for i in items]  # type: ignore[arg-type]
        edges = [(position[i], position[n]) for n in nodes for i in n.inputs]
        operand = [j for n in nodes for j in range(len(n.inputs))]
        drawing = layout(sizes, edges)
        self.layouts.append(
            {
                "items": items,
                "x": [round(v, 1) for v in drawing.x],
                "layer": list(drawing.layer),
                "edges": [[a, b, j, *route] for (a, b), j, route in zip(edges, operand, drawing.routes, strict=True)],
                "outputs": [position[o] for o in graph.outputs],
                "inputs": [position[i] for i in graph.inputs],
            }
        )
        return len(self.layouts) - 1


def _changes(before: Graph, after: Graph, record: PassRecord | None, model: Model) -> Json:
    """What a pass run changed: per added node [kind, rule, replaced node id]; removed node ids; and for
    removed nodes a rule rewrote, [rule, the node it became] (often a node that existed already)."""
    old = set(before.nodes)
    new = set(after.nodes)
    by_result = {f.after: f for f in record.firings} if record is not None else {}
    by_source = {f.before: f for f in record.firings} if record is not None else {}
    added: dict[str, list[object]] = {}
    for node in after.nodes:
        if node in old:
            continue
        firing = by_result.get(node) or (by_source.get(node.origin) if node.origin is not None else None)
        replaced = _replaced(node, old)
        source = model.node(replaced) if replaced is not None else None
        if firing is not None:
            added[str(model.node(node))] = ["rewritten", firing.rule, source]
        elif node.op.name == "fused":
            added[str(model.node(node))] = ["fused", "fuse", source]
        elif record is not None and record.name == "fold" and node.op.name == "const":
            added[str(model.node(node))] = ["rewritten", "fold_constant", source]
        else:
            added[str(model.node(node))] = ["rebuilt", "", source]
    removed = [model.node(n) for n in before.nodes if n not in new]
    rules: dict[str, list[object]] = {}  # removed node -> [rule, the node it became]
    for f in record.firings if record is not None else ():
        if f.before in old and f.before not in new:
            rules[str(model.node(f.before))] = [f.rule, model.node(f.after)]
    return {"added": added, "removed": removed, "rules": rules}


def _replaced(node: Node, old: set[Node]) -> Node | None:
    """The node of the previous stage that `node` stands in for: the first of its origins there."""
    link = node.origin
    for _ in range(ORIGIN_DEPTH):
        if link is None or link in old:
            return link
        link = link.origin
    return None


def build(stages: Sequence[Stage]) -> Model:
    """The model of a sequence of stages: a layout per distinct graph, the changes of each run."""
    model = Model()
    layouts: dict[Graph, int] = {}
    previous: Graph | None = None
    for stage in stages:
        graph = stage.graph
        if graph not in layouts:
            layouts[graph] = model.layout(graph)
        entry: Json = {"name": stage.name, "layout": layouts[graph], "nodes": len(graph.nodes)}
        record = stage.record
        if record is not None:
            entry.update(round=record.round, final=record.final, ms=round(record.seconds * 1e3, 3))
            entry["changed"] = record.changed
        if previous is not None and graph is not previous:
            entry["changes"] = _changes(previous, graph, record, model)
        model.stages.append(entry)
        previous = graph
    return model
