"""Inspection: a graph as text, as Graphviz DOT, as a networkx graph, or rendered to SVG/PNG.

Imports errors, shapes, ir, ops and tensor (and the standard library). networkx is
imported inside `to_networkx`; rendering runs the Graphviz `dot` program when it is
installed. Every function accepts a Tensor, a list or tuple of Tensors, a Graph, or
anything with a `.graph` that is a Graph (a compiled function). Everything prints
deterministically: nodes are numbered in the graph's toposort order.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from graphc.ir import ConstValue, Graph, Node, format_array

if TYPE_CHECKING:
    import networkx

_ATTR_TEXT_LIMIT = 40
_HIDDEN_ATTRS = {"var": ("name", "shape", "dtype", "uid"), "const": ("value",)}


def as_graph(x: object) -> Graph:
    """The Graph to inspect: from a Graph, a compiled function, a Tensor or a list of Tensors."""
    if isinstance(x, Graph):
        return x
    graph = getattr(x, "graph", None)
    if isinstance(graph, Graph):
        return graph
    if isinstance(x, (list, tuple)):
        return Graph(list(x))
    if isinstance(x, Node) or isinstance(getattr(x, "node", None), Node):
        return Graph([x])  # type: ignore[list-item]
    raise TypeError(
        f"cannot inspect {type(x).__name__}: expected a Tensor, a list of Tensors, a Graph or a compiled function"
    )


def show(x: object) -> str:
    """gc.show: the canonical text form, one SSA line per node with its type (str of the Graph)."""
    return str(as_graph(x))


def _numbered(graph: Graph) -> list[Node]:
    """The graph's inputs (reachable or not), then its other nodes, in toposort order."""
    listed = set(graph.inputs)
    return list(graph.inputs) + [n for n in graph.nodes if n not in listed]


def _short(value: object) -> str:
    if isinstance(value, np.dtype):
        text = str(value)
    elif isinstance(value, ConstValue):
        text = format_array(value.array)
    else:
        text = repr(value)
    if len(text) > _ATTR_TEXT_LIMIT:
        return text[: _ATTR_TEXT_LIMIT - 3] + "..."
    return text


def _attr_lines(node: Node) -> list[str]:
    """`key=value` for each attribute worth showing on a node (bodies are drawn, not spelled)."""
    hidden = _HIDDEN_ATTRS.get(node.op.name, ())
    return [f"{key}={_short(value)}" for key, value in node.attrs if key not in hidden and not isinstance(value, Graph)]


def _label(node: Node) -> str:
    if node.op.name == "var":
        head = str(node.attr("name"))
    elif node.op.name == "const":
        head = _short(node.attr("value"))
    else:
        head = node.op.name
    return "\n".join([head, str(node.type), *_attr_lines(node)])


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become centered line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def _style(node: Node) -> str:
    if node.op.name == "var":
        return 'shape=ellipse, style=filled, fillcolor="#cfe2ff"'
    if node.op.name == "const":
        return 'shape=box, style="filled,dashed", fillcolor="#eeeeee", fontsize=10'
    return 'shape=box, style="rounded"'


def _graph_bodies(node: Node) -> list[tuple[str, Graph]]:
    return [(key, value) for key, value in node.attrs if isinstance(value, Graph)]


def _dot_body(graph: Graph, prefix: str, indent: str) -> list[str]:
    """DOT statements for one graph: its nodes, operand edges, nested bodies, output markers."""
    nodes = _numbered(graph)
    ids = {node: f"{prefix}{k}" for k, node in enumerate(nodes)}
    lines = [f"{indent}{ids[n]} [label={_quote(_label(n))}, {_style(n)}];" for n in nodes]
    for node in nodes:
        for i, operand in enumerate(node.inputs):
            lines.append(f'{indent}{ids[operand]} -> {ids[node]} [label="{i}"];')
        for key, body in _graph_bodies(node):
            lines.extend(_dot_cluster(body, f"{ids[node]}_{key}", ids[node], f"{node.op.name} {key}", indent))
    for k, output in enumerate(graph.outputs):
        lines.append(f'{indent}{prefix}out{k} [label="out {k}", shape=plaintext];')
        lines.append(f"{indent}{ids[output]} -> {prefix}out{k} [style=bold];")
    return lines


def _dot_cluster(body: Graph, name: str, owner: str, title: str, indent: str) -> list[str]:
    """A body graph (a fused region, a loop) as `subgraph cluster_*`, its outputs feeding `owner`."""
    lines = [
        f"{indent}subgraph cluster_{name} {{",
        f"{indent}  label={_quote(title)};",
        f'{indent}  style="rounded,dashed";',
    ]
    lines.extend(_dot_body(body, f"{name}_", indent + "  "))
    lines.append(f"{indent}}}")
    for k in range(len(body.outputs)):
        lines.append(f'{indent}{name}_out{k} -> {owner} [style=dashed, arrowhead=none, label="{k}"];')
    return lines


def to_dot(x: object) -> str:
    """gc.to_dot: Graphviz DOT source; one node per graph node, edges labelled by operand index."""
    lines = [
        "digraph graphc {",
        '  graph [fontname="Helvetica", fontsize=11];',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    lines.extend(_dot_body(as_graph(x), "n", "  "))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_data(node: Node) -> dict[str, object]:
    hidden = _HIDDEN_ATTRS.get(node.op.name, ())
    data: dict[str, object] = {
        "op": node.op.name,
        "shape": node.shape,
        "dtype": str(node.dtype),
        "type": str(node.type),
        "attrs": {key: value for key, value in node.attrs if key not in hidden and not isinstance(value, Graph)},
    }
    if node.op.name == "var":
        data["name"] = str(node.attr("name"))
    if node.op.name == "const":
        data["value"] = np.array(node.attr("value").array)  # type: ignore[attr-defined]
    bodies = _graph_bodies(node)
    if bodies:
        data["bodies"] = {key: _networkx_graph(body) for key, body in bodies}
    return data


def _networkx_graph(graph: Graph) -> networkx.MultiDiGraph:
    import networkx

    nodes = _numbered(graph)
    ids = {node: k for k, node in enumerate(nodes)}
    result = networkx.MultiDiGraph(
        inputs=[ids[n] for n in graph.inputs],
        outputs=[ids[n] for n in graph.outputs],
    )
    for node in nodes:
        result.add_node(ids[node], **_node_data(node))
    for node in nodes:
        for i, operand in enumerate(node.inputs):
            result.add_edge(ids[operand], ids[node], key=i, index=i)
    return result


def to_networkx(x: object) -> networkx.MultiDiGraph:
    """gc.to_networkx: a MultiDiGraph whose nodes are numbered in toposort order.

    Node attributes: `op`, `shape`, `dtype` (a string), `type`, `attrs`, `name` for
    vars, `value` for consts, and `bodies` (nested MultiDiGraphs) for nodes that hold
    graphs. Each operand is one edge with attribute `index` (its position; also the
    edge key), so mul(x, x) has two edges. Graph attributes `inputs` and `outputs`
    list node ids.
    """
    return _networkx_graph(as_graph(x))


def render(x: object, path: str | Path, format: str = "svg") -> Path:
    """Draw the graph to `path` with the Graphviz `dot` program (format: svg, png, pdf, ...)."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "rendering needs the Graphviz program `dot`, which is not on PATH; install Graphviz "
            "(e.g. `apt-get install graphviz`) or use gc.to_dot(...) and render the DOT source elsewhere"
        )
    path = Path(path)
    command = [dot, f"-T{format}", "-o", str(path)]
    done = subprocess.run(command, input=to_dot(x), text=True, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
    return path
