"""Inspection: a graph as text, as Graphviz DOT, as a networkx graph, as SVG, and Jupyter's views.

Imports errors, shapes, ir, layered (and the standard library). networkx is imported
inside `to_networkx`; `render` and `repr_svg` run the Graphviz `dot` program when it is
installed, while `to_svg` draws with graphc's own layered layout and needs nothing.
Every function accepts a Tensor, a list or tuple of Tensors, a Graph, or anything with a
`.graph` that is a Graph (a compiled function). Everything prints deterministically:
nodes are numbered in the graph's toposort order.

graphc.ir sits below this module and cannot import it, so the Jupyter hooks of Graph
(`_repr_html_`, `_repr_svg_`) are attached here, where the drawing lives (install_reprs,
called once on import).
"""

from __future__ import annotations

import html
import itertools
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

import numpy as np

from graphc import layered
from graphc.errors import located, user_location
from graphc.ir import ConstValue, Graph, HasNode, Node, format_array, ssa_names

if TYPE_CHECKING:
    import networkx


class HasGraph(Protocol):
    """Anything holding the Graph it runs in `.graph` (a compiled function)."""

    @property
    def graph(self) -> Graph: ...


Inspectable: TypeAlias = "HasNode | Sequence[HasNode] | Graph | HasGraph | Node"
"""What the inspection functions draw: a Tensor, a list of Tensors, a Graph or a compiled function."""

_ATTR_TEXT_LIMIT = 40
_HIDDEN_ATTRS = {"var": ("name", "shape", "dtype", "uid"), "const": ("value",)}


def as_graph(x: Inspectable) -> Graph:
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
    if isinstance(getattr(getattr(x, "values", None), "node", None), Node):  # a SparseTensor
        error = TypeError(
            "pass its .values (a Tensor of the stored entries) or .to_dense(), or a function compiled from it"
        )
        raise located(error, f"cannot inspect a {type(x).__name__} itself", user_location())
    raise TypeError(
        f"cannot inspect {type(x).__name__}: expected a Tensor, a list of Tensors, a Graph or a compiled function"
    )


def show(x: Inspectable) -> str:
    """gc.show: the canonical text form, one SSA line per node with its type (str of the Graph)."""
    return str(as_graph(x))


def numbered(graph: Graph) -> list[Node]:
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


def attr_lines(node: Node) -> list[str]:
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
    return "\n".join([head, str(node.type), *attr_lines(node)])


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


def graph_bodies(node: Node) -> list[tuple[str, Graph]]:
    return [(key, value) for key, value in node.attrs if isinstance(value, Graph)]


def _dot_body(graph: Graph, prefix: str, indent: str) -> list[str]:
    """DOT statements for one graph: its nodes, operand edges, nested bodies, output markers."""
    nodes = numbered(graph)
    ids = {node: f"{prefix}{k}" for k, node in enumerate(nodes)}
    lines = [f"{indent}{ids[n]} [label={_quote(_label(n))}, {_style(n)}];" for n in nodes]
    for node in nodes:
        for i, operand in enumerate(node.inputs):
            lines.append(f'{indent}{ids[operand]} -> {ids[node]} [label="{i}"];')
        for key, body in graph_bodies(node):
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


def to_dot(x: Inspectable) -> str:
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
    bodies = graph_bodies(node)
    if bodies:
        data["bodies"] = {key: _networkx_graph(body) for key, body in bodies}
    return data


def _networkx_graph(graph: Graph) -> networkx.MultiDiGraph:
    import networkx

    nodes = numbered(graph)
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


def to_networkx(x: Inspectable) -> networkx.MultiDiGraph:
    """gc.to_networkx: a MultiDiGraph whose nodes are numbered in toposort order.

    Node attributes: `op`, `shape`, `dtype` (a string), `type`, `attrs`, `name` for
    vars, `value` for consts, and `bodies` (nested MultiDiGraphs) for nodes that hold
    graphs. Each operand is one edge with attribute `index` (its position; also the
    edge key), so mul(x, x) has two edges. Graph attributes `inputs` and `outputs`
    list node ids.
    """
    return _networkx_graph(as_graph(x))


def render(x: Inspectable, path: str | Path, format: str = "svg") -> Path:
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


# --- SVG with graphc's own layout ------------------------------------------------------------

CHAR_WIDTH = 6.6  # px per character at the 11px sans-serif labels use (a generous estimate)
LINE_HEIGHT = 14.0
PAD = 8.0
HEADER = 22.0  # the title band of an expanded body
INLINE_LIMIT = 150  # _repr_html_ draws graphs up to this many nodes; bigger ones get a summary
DOT_LIMIT = 400  # _repr_svg_ asks Graphviz only up to this many nodes (dot is slow beyond)
_FILL = {"var": "#cfe2ff", "const": "#eeeeee", "output": "#ffffff"}


def label_lines(node: Node) -> tuple[str, str]:
    """The two lines a box shows: what it is (var name, constant value or op) and its type."""
    if node.op.name == "var":
        head = str(node.attr("name"))
    elif node.op.name == "const":
        head = _short(node.attr("value"))
    else:
        head = node.op.name
        bodies = graph_bodies(node)
        if bodies:
            head += f" \u00b7 {sum(len(b.nodes) for _, b in bodies)} nodes"
    return head, str(node.type)


def box_size(lines: tuple[str, ...]) -> tuple[float, float]:
    """Width and height of a box holding these lines of text."""
    return max(len(line) for line in lines) * CHAR_WIDTH + 2 * PAD, len(lines) * LINE_HEIGHT + PAD


@dataclass
class _Picture:
    """An SVG fragment drawn at the origin, and its size."""

    width: float
    height: float
    parts: list[str]


def _box(node: Node, x: float, y: float, w: float, h: float, title: str) -> list[str]:
    """One node's shape, its two text lines and a tooltip."""
    kind = node.op.name
    fill = _FILL.get(kind, "#ffffff")
    dash = ' stroke-dasharray="4 2"' if kind == "const" else ""
    radius = h / 2 if kind == "var" else 5
    head, type_ = label_lines(node)
    left, top = x - w / 2, y - h / 2
    return [
        f'<g class="node"><title>{html.escape(title)}</title>',
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{radius:.1f}" '
        f'fill="{fill}" stroke="#555"{dash}/>',
        f'<text x="{x:.1f}" y="{top + PAD / 2 + 11:.1f}" text-anchor="middle">{html.escape(head)}</text>',
        f'<text x="{x:.1f}" y="{top + PAD / 2 + 25:.1f}" text-anchor="middle" fill="#666">{html.escape(type_)}</text>',
        "</g>",
    ]


def _edge(points: list[tuple[float, float]], index: int | None) -> list[str]:
    """A smooth path through `points` (top to bottom), with the operand index near its end."""
    path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        mid = (y0 + y1) / 2
        path += f" C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}"
    parts = [f'<path d="{path}" fill="none" stroke="#888" marker-end="url(#arrow)"/>']
    if index is not None:
        x, y = points[-1]
        parts.append(f'<text x="{x + 4:.1f}" y="{y - 4:.1f}" font-size="9" fill="#999">{index}</text>')
    return parts


def port(index: int, count: int, width: float) -> float:
    """Where operand `index` of `count` enters a box of `width`: spread across its top, from its centre."""
    if count < 2:
        return 0.0
    spread = min(width - 2 * PAD, 24.0 * (count - 1))
    return -spread / 2 + spread * index / (count - 1)


def _draw(graph: Graph, shown: set[Graph]) -> _Picture:
    """The graph's boxes and edges laid out in layers; each body is drawn inside its node once."""
    nodes = numbered(graph)
    ids = {node: k for k, node in enumerate(nodes)}
    names = ssa_names(graph)
    inner: dict[int, _Picture] = {}
    sizes = []
    for k, node in enumerate(nodes):
        w, h = box_size(label_lines(node))
        for _, body in graph_bodies(node)[:1]:
            if body not in shown:
                shown.add(body)
                inner[k] = _draw(body, shown)
                w, h = max(w, inner[k].width + 2 * PAD), inner[k].height + HEADER + PAD
        sizes.append((w, h))
    outputs = [len(nodes) + k for k in range(len(graph.outputs))]
    sizes += [box_size((f"out {k}",)) for k in range(len(graph.outputs))]
    edges = [(ids[i], ids[n]) for n in nodes for i in n.inputs]
    indices = [j if len(n.inputs) > 1 else None for n in nodes for j in range(len(n.inputs))]
    ports = [port(j, len(n.inputs), sizes[ids[n]][0]) for n in nodes for j in range(len(n.inputs))]
    edges += [(ids[o], outputs[k]) for k, o in enumerate(graph.outputs)]
    indices += [None] * len(graph.outputs)
    ports += [0.0] * len(graph.outputs)
    drawing = layered.layout(sizes, edges)
    parts: list[str] = []
    for (a, b), route, index, dx in zip(edges, drawing.routes, indices, ports, strict=True):
        points = [(drawing.x[a], drawing.y(a) + sizes[a][1] / 2)]
        points += [(drawing.x[d], drawing.y(d)) for d in route]
        points.append((drawing.x[b] + dx, drawing.y(b) - sizes[b][1] / 2))
        parts += _edge(points, index)
    for k, node in enumerate(nodes):
        x, y, (w, h) = drawing.x[k], drawing.y(k), sizes[k]
        title = f"{names.get(node, node.op.name)} = {node.op.name} : {node.type}"
        if node.loc is not None:
            title += f"\nbuilt at {node.loc}"
        if k in inner:
            parts += _container(node, x, y, w, h, inner[k], title)
        else:
            parts += _box(node, x, y, w, h, title)
    for k, item in enumerate(outputs):
        x, y = drawing.x[item], drawing.y(item)
        parts.append(f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" font-weight="bold">out {k}</text>')
    return _Picture(drawing.width, drawing.total_height, parts)


def _container(node: Node, x: float, y: float, w: float, h: float, body: _Picture, title: str) -> list[str]:
    """A node holding a graph (a fused region, a loop): a dashed frame, a title band, its body inside."""
    left, top = x - w / 2, y - h / 2
    head, type_ = label_lines(node)
    fill = "#fff8e1" if node.op.name == "fused" else "#f3eefc"
    dx, dy = left + (w - body.width) / 2, top + HEADER
    return [
        f'<g class="node body"><title>{html.escape(title)}</title>',
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" fill="{fill}" '
        'stroke="#a08a4a" stroke-dasharray="6 3"/>',
        f'<text x="{left + PAD:.1f}" y="{top + 15:.1f}">{html.escape(head)} : {html.escape(type_)}</text>',
        f'<g transform="translate({dx:.1f},{dy:.1f})">',
        *body.parts,
        "</g></g>",
    ]


def to_svg(x: Inspectable) -> str:
    """The graph as a standalone SVG picture, laid out by graphc itself (no Graphviz needed).

    Bodies of fused regions and loops are drawn inside their node (each body once);
    edges into ops with several operands are labelled with the operand's position.
    """
    picture = _draw(as_graph(x), set())
    w, h = picture.width, picture.height
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.1f} {h:.1f}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>',
        f'<rect width="{w:.1f}" height="{h:.1f}" fill="white"/>',
    ]
    return "\n".join([*head, *picture.parts, "</svg>"]) + "\n"


# --- Jupyter ---------------------------------------------------------------------------------


def summary(x: Inspectable) -> str:
    """One paragraph of facts: node count, inputs, outputs, the most frequent ops."""
    graph = as_graph(x)
    ops = Counter(n.op.name for n in graph.nodes if n.op.name not in ("var", "const"))
    common = ", ".join(f"{name} \u00d7{count}" for name, count in ops.most_common(8))
    inputs = ", ".join(f"{n.attr('name') if n.op.name == 'var' else n.op.name}: {n.type}" for n in graph.inputs)
    outputs = ", ".join(str(n.type) for n in graph.outputs)
    return f"{len(graph.nodes)} nodes; inputs ({inputs}); outputs ({outputs}); ops: {common or 'none'}"


def repr_html(x: Inspectable) -> str:
    """Jupyter's HTML view: the drawing for graphs up to INLINE_LIMIT nodes, else a summary."""
    graph = as_graph(x)
    facts = f'<p style="font-family: monospace">{html.escape(summary(graph))}</p>'
    if len(graph.nodes) > INLINE_LIMIT:
        hint = "too big to draw inline: gc.explore(..., 'graph.html') writes an interactive view"
        return f"<div>{facts}<p><i>{hint}</i></p></div>"
    return f'<div>{facts}<div style="overflow: auto; max-height: 600px">{to_svg(graph)}</div></div>'


def repr_svg(x: Inspectable) -> str | None:
    """Jupyter's SVG view, drawn by Graphviz: None when `dot` is missing or the graph is big."""
    graph = as_graph(x)
    dot = shutil.which("dot")
    if dot is None or len(graph.nodes) > DOT_LIMIT:
        return None
    done = subprocess.run([dot, "-Tsvg"], input=to_dot(graph), text=True, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def install_reprs() -> None:
    """Give Graph its Jupyter views (graphc.ir is below this module and cannot import it)."""
    Graph._repr_html_ = repr_html  # type: ignore[attr-defined]
    Graph._repr_svg_ = repr_svg  # type: ignore[attr-defined]


install_reprs()
