"""gc.show, gc.to_dot, gc.to_networkx and render: what they draw and what they accept."""

from __future__ import annotations

import itertools
import random
import re
import shutil
from xml.etree import ElementTree

import numpy as np
import pytest

import graphc as gc
from graphc import layered, viz
from graphc.ir import Graph, Node
from graphc.shapes import TensorType


def api_example() -> gc.Tensor:
    """f(x, s) of API.md §1."""
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    return gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)


class FakeCompiled:
    """Stands in for a compiled function: anything with a `.graph` that is a Graph."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph


class RegionOp:
    """An op that holds a graph in its attrs, as the optimizer's fused regions do.

    Not a registered graphc Op (backend coverage tests must not see it): ir.Node needs
    only a `name` and an `infer`.
    """

    name = "test_viz_region"

    def infer(self, *types: TensorType, body: Graph) -> TensorType:
        return body.outputs[0].type


region_op = RegionOp()


def fused_example() -> Node:
    a = gc.var("a", shape=(2,))
    b = gc.var("b", shape=(2,))
    body = Graph([(gc.exp(a) * b).node], [a.node, b.node])
    y = gc.var("y", shape=(2,))
    return Node.make(region_op, [y.node, (y * 2.0).node], {"body": body})


# ---------------------------------------------------------------- show


def test_show_is_the_canonical_text_form() -> None:
    f = api_example()
    assert gc.show(f) == str(Graph([f]))
    assert gc.show([f, f * 2.0]) == str(Graph([f, f * 2.0]))
    assert "log1p(" in gc.show(f)


def test_every_function_accepts_tensor_list_tuple_graph_and_compiled() -> None:
    f = api_example()
    graph = Graph([f])
    forms = [f, [f], (f,), graph, FakeCompiled(graph), f.node]
    for inspect in (gc.show, gc.to_dot):
        results = [inspect(form) for form in forms]
        assert all(r == results[0] for r in results)
    sizes = [gc.to_networkx(form).number_of_nodes() for form in forms]
    assert sizes == [len(graph)] * len(forms)


def test_uninspectable_values_raise_type_error() -> None:
    with pytest.raises(TypeError, match="cannot inspect int"):
        gc.show(3)


def test_show_accepts_the_real_compiled_function() -> None:
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    fn = gc.compile([x, s], gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s), backend="numpy")
    assert gc.show(fn) == str(fn.graph)
    assert gc.to_dot(fn) == gc.to_dot(fn.graph)


# ---------------------------------------------------------------- DOT


def test_dot_has_one_node_per_graph_node_and_names_each_op() -> None:
    f = api_example()
    dot = gc.to_dot(f)
    assert dot.startswith("digraph graphc {")
    assert dot.rstrip().endswith("}")
    for node in Graph([f]).nodes:
        if node.op.name not in ("var", "const"):
            assert f'"{node.op.name}\\n{node.type}' in dot
    declared = re.findall(r"^  (n\d+) \[label=", dot, flags=re.MULTILINE)
    assert len(declared) == len(Graph([f]))
    assert '"x\\nf64[3]"' in dot and '"s\\nf64[]"' in dot


def test_dot_edges_carry_the_operand_index() -> None:
    x = gc.var("x", shape=(3,))
    dot = gc.to_dot(x * x)
    assert 'n0 -> n1 [label="0"];' in dot
    assert 'n0 -> n1 [label="1"];' in dot
    y = gc.var("y", shape=(3,))
    dot = gc.to_dot(x - y)
    assert 'n0 -> n2 [label="0"];' in dot
    assert 'n1 -> n2 [label="1"];' in dot


def test_dot_styles_vars_and_consts_apart_from_ops() -> None:
    x = gc.var("x", shape=(3,))
    lines = gc.to_dot(x + 1.0).splitlines()
    var_line = next(line for line in lines if line.startswith('  n0 [label="x'))
    const_line = next(line for line in lines if '"1.\\nf64[]"' in line)
    add_line = next(line for line in lines if '"add\\n' in line)
    assert "ellipse" in var_line
    assert "dashed" in const_line
    assert "ellipse" not in add_line and "dashed" not in add_line


def test_dot_is_deterministic_and_independent_of_build_history() -> None:
    first = gc.to_dot(api_example())
    gc.var("unrelated", shape=(7,))  # new vars elsewhere change nothing
    second = gc.to_dot(api_example())
    assert first == second
    assert gc.to_dot(api_example()) == second


def test_dot_escapes_quotes_in_names() -> None:
    x = gc.var('say "hi"', shape=())
    assert r"say \"hi\"" in gc.to_dot(x * 2.0)


def test_dot_draws_a_graph_attribute_as_a_cluster() -> None:
    node = fused_example()
    dot = gc.to_dot(Graph([node]))
    assert "subgraph cluster_n" in dot
    assert "exp\\nf64[2]" in dot  # the body is drawn, not just named
    assert '"test_viz_region body"' in dot
    assert dot == gc.to_dot(Graph([node]))


def test_dot_lists_unreached_inputs() -> None:
    x = gc.var("x", shape=(2,))
    unused = gc.var("unused", shape=())
    dot = gc.to_dot(Graph([(x * 2.0).node], [x.node, unused.node]))
    assert '"unused\\nf64[]"' in dot


# ---------------------------------------------------------------- networkx


def test_networkx_node_attributes() -> None:
    f = api_example()
    g = gc.to_networkx(f)
    nodes = Graph([f]).nodes
    assert g.number_of_nodes() == len(nodes)
    ops = [data["op"] for _, data in g.nodes(data=True)]
    assert sorted(ops) == sorted(n.op.name for n in nodes)
    names = {data["name"]: data for _, data in g.nodes(data=True) if data["op"] == "var"}
    assert names["x"]["shape"] == (3,) and names["x"]["dtype"] == "float64"
    assert names["s"]["shape"] == ()
    total = next(data for _, data in g.nodes(data=True) if data["op"] == "sum")
    assert total["attrs"] == {"axis": (0,), "keepdims": False}
    const = next(data for _, data in g.nodes(data=True) if data["op"] == "const")
    assert const["value"] == 2.0
    (out,) = g.graph["outputs"]
    assert g.nodes[out]["op"] == "add"


def test_networkx_mul_x_x_has_two_edges_with_indices() -> None:
    x = gc.var("x", shape=(3,))
    g = gc.to_networkx(x * x)
    edges = sorted(g.edges(keys=True, data="index"))
    assert edges == [(0, 1, 0, 0), (0, 1, 1, 1)]
    assert g.number_of_edges(0, 1) == 2


def test_networkx_matches_the_graph_structure() -> None:
    f = api_example()
    g = gc.to_networkx(f)
    graph = Graph([f])
    assert g.number_of_edges() == sum(len(n.inputs) for n in graph.nodes)
    assert [g.nodes[i]["name"] for i in g.graph["inputs"]] == ["x", "s"]
    import networkx

    assert networkx.is_directed_acyclic_graph(g)


def test_networkx_nests_bodies() -> None:
    node = fused_example()
    g = gc.to_networkx(Graph([node]))
    region = next(data for _, data in g.nodes(data=True) if data["op"] == "test_viz_region")
    body = region["bodies"]["body"]
    assert sorted(data["op"] for _, data in body.nodes(data=True)) == ["exp", "mul", "var", "var"]
    assert "body" not in region["attrs"]


# ---------------------------------------------------------------- render


def test_render_without_dot_names_the_missing_program(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(viz.shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="Graphviz program `dot`"):
        viz.render(api_example(), tmp_path / "f.svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz `dot` program is not installed")
def test_render_writes_svg_and_png(tmp_path) -> None:
    f = api_example()
    svg = viz.render(f, tmp_path / "f.svg")
    assert "<svg" in svg.read_text()
    png = viz.render(f, tmp_path / "f.png", format="png")
    assert png.read_bytes().startswith(b"\x89PNG")
    node = fused_example()
    assert "<svg" in viz.render(Graph([node]), tmp_path / "fused.svg").read_text()


# ---------------------------------------------------------------- the layered layout and SVG


def random_dag(count: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    edges = []
    for b in range(1, count):
        for _ in range(rng.randint(1, 3)):
            edges.append((rng.randrange(max(0, b - 12), b), b))
    return edges


@pytest.mark.parametrize("count", [0, 1, 2, 50, 400])
def test_layout_puts_every_edge_downwards_and_no_boxes_on_top_of_each_other(count: int) -> None:
    edges = random_dag(count, seed=count)
    sizes = [(30.0 + 7 * (k % 5), 34.0) for k in range(count)]
    drawing = layered.layout(sizes, edges)
    assert len(drawing.x) == len(drawing.layer) >= count
    for (a, b), route in zip(edges, drawing.routes, strict=True):
        chain = [a, *route, b]
        assert all(drawing.layer[p] + 1 == drawing.layer[q] for p, q in itertools.pairwise(chain)) or not route
        assert drawing.layer[a] < drawing.layer[b]
    for items in drawing.layers:
        for p, q in itertools.pairwise(items):  # left to right, at least H_GAP apart
            gap = drawing.x[q] - drawing.x[p] - (drawing.widths[p] + drawing.widths[q]) / 2
            assert gap >= layered.H_GAP - 1e-6
    assert sorted(i for items in drawing.layers for i in items) == list(range(len(drawing.x)))
    assert all(x - w / 2 >= 0 for x, w in zip(drawing.x, drawing.widths, strict=True))
    assert layered.layout(sizes, edges) == drawing  # deterministic


def test_layout_places_a_source_just_above_its_first_user() -> None:
    # a chain 1 -> 2 -> 3 -> 4, and a constant 0 that only 4 uses: layer 2, right above 4
    assert layered.layer_of(5, [(1, 2), (2, 3), (3, 4), (0, 4)]) == [2, 0, 1, 2, 3]
    assert layered.layer_of(3, [(0, 2), (1, 2)]) == [0, 0, 1]
    assert layered.layer_of(2, []) == [0, 0]


def test_layout_rejects_edges_that_go_upwards() -> None:
    with pytest.raises(ValueError, match="lower to a higher"):
        layered.layout([(10.0, 10.0)] * 2, [(1, 0)])


@pytest.mark.parametrize("seed", range(30))
def test_nearest_ordered_is_the_least_squares_solution(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    desired = rng.normal(0, 20, n).tolist()
    gaps = rng.uniform(0, 15, n - 1).tolist()
    x = layered.nearest_ordered(desired, gaps)
    assert all(b - a >= g - 1e-9 for a, b, g in zip(x, x[1:], gaps, strict=False))
    cost = sum((a - d) ** 2 for a, d in zip(x, desired, strict=True))
    optimize = pytest.importorskip("scipy.optimize")
    constraints = [{"type": "ineq", "fun": lambda v, k=k: v[k + 1] - v[k] - gaps[k]} for k in range(n - 1)]
    start = np.cumsum([0.0, *gaps]) + min(desired)
    best = optimize.minimize(lambda v: np.sum((v - desired) ** 2), start, constraints=constraints, method="SLSQP")
    assert cost <= best.fun + 1e-6 * (1 + best.fun)  # as good as a general solver, which it beats by being exact


def test_to_svg_draws_every_node_once_and_each_body_inside_its_node() -> None:
    f = api_example()
    svg = viz.to_svg(f)
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    boxes = [g for g in root.iter(f"{ns}g") if g.get("class", "").startswith("node")]
    assert len(boxes) == len(Graph([f]).nodes)
    titles = [g.find(f"{ns}title").text for g in boxes]
    assert any(t.startswith("%") and "= tanh : f64[3]" in t for t in titles)
    assert any("test_viz.py:" in t for t in titles)  # the user's line is in the tooltip
    region = fused_example()
    svg = viz.to_svg(region)
    root = ElementTree.fromstring(svg)
    holders = [g for g in root.iter(f"{ns}g") if g.get("class") == "node body"]
    assert len(holders) == 1
    inner = [g for g in holders[0].iter(f"{ns}g") if g.get("class", "").startswith("node")]
    assert len(inner) == 1 + len(region.attr("body").nodes)  # the holder and its body's nodes


def test_to_svg_escapes_names_and_is_deterministic() -> None:
    v = gc.var('<b>&"x"', shape=(2,))
    y = gc.exp(v)
    svg = viz.to_svg(y)
    ElementTree.fromstring(svg)  # well-formed
    assert "&lt;b&gt;&amp;&quot;x&quot;" in svg
    assert viz.to_svg(y) == svg
