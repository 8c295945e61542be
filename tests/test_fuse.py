"""passes/fuse.py and ops/control.py, and fused regions in the NumPy backend (backends/numpy_fused.py).

Golden text of fused graphs; the region rules; idempotence and the inverse (`unfuse`);
evaluate(fuse(g)) == evaluate(g) bit for bit on special floats; the compiled NumPy backend
with fusion against the interpreter bit for bit (C- and non-C-ordered operands, buffers
reused across calls, threads); random graphs with hypothesis.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.backends.interpreter import run_program
from graphc.backends.numpy_source import build, render
from graphc.ir import Graph, Node
from graphc.ops import OPS, Kind
from graphc.ops.control import fused, is_param, param
from graphc.ops.loops import run_graph
from graphc.passes import DEFAULT_PIPELINE, FAST_MATH_PIPELINE, run_pipeline
from graphc.passes.fuse import fuse, region_shape, unfuse
from graphc.schedule import schedule

SPECIALS = np.array(
    [
        np.nan,
        np.inf,
        -np.inf,
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        1e-300,
        1e300,
        -1e300,
        1.0,
        -1.0,
        0.5,
        -3.25,
        700.0,
        2.0,
    ]
)


def same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """The same dtype, shape and bytes (the signs of zeros included), NaN for NaN.

    The sign and payload of a NaN computed from two NaNs (nan + -nan) are not specified by
    IEEE 754, and NumPy's 0-d and array loops pick different operands; so a NaN matches any NaN.
    """
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    if got.tobytes() == want.tobytes():
        return True
    if got.dtype.kind != "f":
        return False
    nan = np.isnan(want)
    return bool(np.array_equal(np.isnan(got), nan)) and got[~nan].tobytes() == want[~nan].tobytes()


def special_feed(graph: Graph, shift: int = 0) -> dict[Node, np.ndarray]:
    """SPECIALS tiled over every var, each var rolled differently, so pairs of specials meet."""
    feed = {}
    for k, v in enumerate(graph.inputs):
        values = np.resize(np.roll(SPECIALS, 3 * k + shift), v.shape)
        with np.errstate(over="ignore"):
            feed[v] = values.astype(v.dtype) if v.dtype.kind == "f" else (values > 0).astype(v.dtype)
    return feed


def evaluate_all(graph: Graph, feed: dict[Node, np.ndarray]) -> list[np.ndarray]:
    """The graph's values node by node (the ops' reference semantics, no schedule)."""
    with np.errstate(all="ignore"):
        return run_graph(graph, [feed[v] for v in graph.inputs])


def fused_nodes(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op is fused]


def w3(n: int = 3) -> Graph:
    x, y = gc.var("x", (n,)), gc.var("y", (n,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-(x**2)) + gc.log1p(y * y))
    return Graph([f, gc.grad(f, x)], [x, y])


# --- golden text ------------------------------------------------------------------------------

GOLDEN_SMALL = """\
graph(%x: f64[3], %y: f64[2,3]) {
  %0 = const(1.) : f64[]
  %1 = fused(%x, %y, %0, body=<graph 7 nodes>) : f64[2]
    graph(%p0: f64[3], %p1: f64[2,3], %p2: f64[]) {
      %0 = mul(%p0, %p1) : f64[2,3]
      %1 = exp(%0) : f64[2,3]
      %2 = add(%1, %p2) : f64[2,3]
      %3 = sum(%2, axis=(1,), keepdims=False) : f64[2]
      return %3
    }
  return %1
}"""

GOLDEN_W3 = """\
graph(%x: f64[3], %y: f64[3]) {
  %0 = fused(%x, %y, body=<graph 4 nodes>) : f64[3]
    graph(%p0: f64[3], %p1: f64[3]) {
      %0 = mul(%p0, %p1) : f64[3]
      %1 = tanh(%0) : f64[3]
      return %1
    }
  %1 = fused(%x, body=<graph 4 nodes>) : f64[3]
    graph(%p0: f64[3]) {
      %0 = mul(%p0, %p0) : f64[3]
      %1 = neg(%0) : f64[3]
      %2 = exp(%1) : f64[3]
      return %2
    }
  %2 = mul(%0, %1) : f64[3]
  %3 = fused(%y, %2, body=<graph 6 nodes>) : f64[]
    graph(%p0: f64[3], %p1: f64[3]) {
      %0 = mul(%p0, %p0) : f64[3]
      %1 = log1p(%0) : f64[3]
      %2 = add(%p1, %1) : f64[3]
      %3 = sum(%2, axis=(0,), keepdims=False) : f64[]
      return %3
    }
  %4 = const(1.) : f64[]
  %5 = const(2.) : f64[]
  %6 = fused(%0, %4, %1, %y, %5, %x, %2, body=<graph 14 nodes>) : f64[3]
    graph(%p0: f64[3], %p1: f64[], %p2: f64[3], %p3: f64[3], %p4: f64[], %p5: f64[3], %p6: f64[3]) {
      %0 = mul(%p0, %p0) : f64[3]
      %1 = sub(%p1, %0) : f64[3]
      %2 = mul(%p2, %1) : f64[3]
      %3 = mul(%2, %p3) : f64[3]
      %4 = mul(%p4, %p5) : f64[3]
      %5 = mul(%p6, %4) : f64[3]
      %6 = sub(%3, %5) : f64[3]
      return %6
    }
  return %3, %6
}"""


def test_golden_text_of_a_small_fused_graph() -> None:
    x, y = gc.var("x", (3,)), gc.var("y", (2, 3))
    f = gc.sum(gc.exp(x * y) + 1.0, axis=1)
    assert str(fuse(Graph([f]))) == GOLDEN_SMALL


def test_golden_text_of_w3_value_and_gradient() -> None:
    """Shared values (tanh(x*y), exp(-x**2), their product) end regions: each region has one output."""
    graph, _ = run_pipeline(w3(), DEFAULT_PIPELINE)
    assert str(graph) == GOLDEN_W3


# --- the region rules ---------------------------------------------------------------------------


def ops_of(node: Node) -> list[str]:
    body = node.attr("body")
    assert isinstance(body, Graph)
    return [n.op.name for n in body.nodes if not is_param(n)]


def test_a_region_of_one_node_stays_unfused_and_the_graph_is_returned() -> None:
    x = gc.var("x", (3,))
    graph = Graph([gc.exp(x), gc.sum(x)])
    assert fuse(graph) is graph


def test_a_value_used_outside_its_region_is_the_root_of_its_own() -> None:
    x = gc.var("x", (3,))
    shared = gc.exp(x * x)
    graph = fuse(Graph([gc.tanh(shared + 1.0), gc.sin(shared * 2.0)]))
    first, second, third = fused_nodes(graph)
    assert ops_of(first) == ["mul", "exp"]
    assert ops_of(second) == ["add", "tanh"] and second.inputs[0] is first
    assert ops_of(third) == ["mul", "sin"] and third.inputs[0] is first


def test_a_graph_output_ends_its_region_even_when_used_inside_one() -> None:
    x = gc.var("x", (3,))
    inner = gc.exp(x * x)
    graph = fuse(Graph([gc.tanh(inner) + 1.0, inner]))
    first, second = fused_nodes(graph)
    assert graph.outputs == (second, first)
    assert ops_of(first) == ["mul", "exp"] and ops_of(second) == ["tanh", "add"]


def test_a_reduction_trails_a_region_and_never_feeds_one() -> None:
    x = gc.var("x", (2, 3))
    s = gc.max(gc.exp(x) * 2.0, axis=1, keepdims=True)
    graph = fuse(Graph([gc.log(s + 1.0)]))
    first, second = fused_nodes(graph)
    assert ops_of(first) == ["exp", "mul", "max"] and first.shape == (2, 1)
    assert ops_of(second) == ["add", "log"] and second.inputs[0] is first
    assert region_shape(first.attr("body").outputs[0]) == (2, 3)  # type: ignore[union-attr]


@pytest.mark.parametrize("reduce", [gc.sum, gc.max, gc.min, gc.prod, gc.logsumexp])
def test_every_reduction_trails(reduce: object) -> None:
    x = gc.var("x", (2, 3))
    graph = fuse(Graph([reduce(gc.tanh(x) * x, axis=0)]))  # type: ignore[operator]
    (node,) = fused_nodes(graph)
    assert ops_of(node)[-1] == graph.outputs[0].attr("body").outputs[0].op.name  # type: ignore[union-attr]
    assert graph.outputs[0] is node


def test_two_reductions_of_one_value_each_stand_alone() -> None:
    x = gc.var("x", (2, 3))
    e = gc.exp(x) * x
    graph = fuse(Graph([gc.sum(e), gc.max(e)]))
    (node,) = fused_nodes(graph)
    assert ops_of(node) == ["exp", "mul"]
    assert [o.op.name for o in graph.outputs] == ["sum", "max"]


def test_matmul_and_other_opaque_ops_break_regions() -> None:
    x, w = gc.var("x", (3, 4)), gc.var("w", (4, 2))
    h = gc.tanh(gc.exp(x) * 2.0) @ w
    graph = fuse(Graph([gc.sigmoid(h) * h, gc.argmax(gc.sin(x) + 1.0, axis=1)]))
    names = [n.op.name for n in graph.nodes if n.op.kind is not Kind.SOURCE]
    assert names == ["fused", "matmul", "fused", "fused", "argmax"]
    first, _, second, third, _ = (n for n in graph.nodes if n.op.kind is not Kind.SOURCE)
    assert ops_of(first) == ["exp", "mul", "tanh"]
    assert ops_of(second) == ["sigmoid", "mul"]
    assert ops_of(third) == ["sin", "add"]


def test_smaller_operands_are_region_inputs() -> None:
    """exp(b) of shape (3,) feeds a (2, 3) region as an input: a region computes each value once per point."""
    a, b = gc.var("a", (2, 3)), gc.var("b", (3,))
    graph = fuse(Graph([gc.tanh(a * gc.exp(gc.sin(b)))]))
    first, second = fused_nodes(graph)
    assert ops_of(first) == ["sin", "exp"] and first.shape == (3,)
    assert ops_of(second) == ["mul", "tanh"] and second.inputs == (a.node, first)


def test_broadcast_to_joins_as_a_member_of_its_users_region() -> None:
    a, b = gc.var("a", (2, 3)), gc.var("b", (3,))
    graph = fuse(Graph([gc.exp(a + gc.broadcast_to(b, (2, 3)))]))
    (node,) = fused_nodes(graph)
    assert ops_of(node) == ["broadcast_to", "add", "exp"]
    assert node.inputs == (a.node, b.node) or node.inputs == (b.node, a.node)


def test_inputs_are_listed_once_in_order_of_first_use() -> None:
    x, y = gc.var("x", (3,)), gc.var("y", (3,))
    graph = fuse(Graph([gc.exp(y * x) + x * y * x]))
    (node,) = fused_nodes(graph)
    assert node.inputs == (y.node, x.node)
    body = node.attr("body")
    assert isinstance(body, Graph)
    assert body.inputs == (param(0, y.node.type), param(1, x.node.type))


def test_regions_are_invariant_on_w3() -> None:
    graph, _ = run_pipeline(w3(5))
    for node in fused_nodes(graph):
        check_region(node)


def check_region(node: Node) -> None:
    """A fused body: elementwise/broadcast members of the region's shape, a reduction only as the root."""
    body = node.attr("body")
    assert isinstance(body, Graph)
    root = body.outputs[0]
    members = [n for n in body.nodes if n not in body.inputs and n.op.kind is not Kind.SOURCE]
    assert len(members) >= 2 and members[-1] is root
    for member in members:
        if member is not root:
            assert member.op.kind in (Kind.ELEMENTWISE, Kind.BROADCAST), member
            assert member.shape == region_shape(root)
    assert root.op.kind in (Kind.ELEMENTWISE, Kind.BROADCAST, Kind.REDUCE)
    assert all(is_param(p) for p in body.inputs)
    assert [p.type for p in body.inputs] == [i.type for i in node.inputs]


# --- idempotence, the inverse, the pipeline -----------------------------------------------------


def sample_graphs() -> list[Graph]:
    x, w = gc.var("x", (3,)), gc.var("w", (2, 3))
    loss = gc.sum(gc.log_softmax(w @ x)) + gc.sum(gc.sigmoid(w) * gc.exp(x))
    chain = x
    for _ in range(10):
        chain = gc.sin(chain) * 1.0001 + 0.1 * chain
    return [
        w3(),
        Graph([loss, *gc.grad(loss, [x, w])]),
        Graph([chain, gc.grad(gc.sum(chain), x)]),
        Graph([gc.hessian(gc.sum(gc.tanh(x) ** 2.0), x)]),
    ]


@pytest.mark.parametrize("index", range(4))
def test_fuse_is_idempotent_and_unfuse_is_its_inverse(index: int) -> None:
    graph = sample_graphs()[index]
    for g in (graph, run_pipeline(graph)[0]):
        once = fuse(g)
        assert fuse(once) is once
        assert unfuse(once).outputs == unfuse(g).outputs
        assert unfuse(g) is g or g.nodes != unfuse(g).nodes


def test_fusing_twice_builds_the_same_nodes() -> None:
    """Parameters are deterministic: equal regions intern to one fused node, and text does not drift."""
    graph = sample_graphs()[1]
    assert fuse(graph).outputs == fuse(Graph(list(graph.outputs), graph.inputs)).outputs


def test_fuse_runs_last_and_once_in_both_pipelines() -> None:
    assert DEFAULT_PIPELINE[-1] is fuse and FAST_MATH_PIPELINE[-1] is fuse
    _, report = run_pipeline(w3())
    assert [r.name for r in report][-1] == "fuse"


def test_rewrites_of_later_rounds_see_through_what_fusion_would_hide() -> None:
    """simplify makes log(x + 1) only after stability ran; fusing in round one would hide it."""
    x = gc.var("x", (3,))
    result, _ = run_pipeline(Graph([gc.log(x + gc.const(1.0) * 1.0) * 2.0]))
    (node,) = fused_nodes(result)
    assert ops_of(node) == ["log1p", "mul"]


def test_deep_chains_fuse_without_recursion() -> None:
    x = gc.var("x", (2,))
    y = x
    for _ in range(2500):
        y = gc.sin(y) * 1.0001 + 0.1 * y
    graph = fuse(Graph([y]))
    (node,) = fused_nodes(graph)
    assert len(node.attr("body").nodes) > 10_000  # type: ignore[union-attr]
    feed = {x.node: np.array([0.5, -2.0])}
    assert same_bits(evaluate_all(graph, feed)[0], evaluate_all(Graph([y]), feed)[0])


# --- the fused op ---------------------------------------------------------------------------------


def test_fused_is_registered_opaque_and_has_no_derivative_rules() -> None:
    assert OPS["fused"] is fused and fused.kind is Kind.OPAQUE
    assert fused.vjp_rule(0) is None and fused.jvp_rule(0) is None


def test_differentiating_a_fused_node_raises_naming_the_op() -> None:
    x = gc.var("x", (3,))
    (node,) = fused_nodes(fuse(Graph([gc.exp(x) * x])))
    with pytest.raises(gc.DifferentiationError, match="fused"):
        gc.grad(gc.sum(gc.Tensor(node)), x)


def test_fused_checks_its_inputs_against_the_body() -> None:
    x = gc.var("x", (3,))
    (node,) = fused_nodes(fuse(Graph([gc.exp(x) * x])))
    body = node.attr("body")
    with pytest.raises(gc.ShapeError):
        fused(gc.var("y", (4,)).node, body=body)
    with pytest.raises(gc.DTypeError):
        fused(gc.var("y", (3,), dtype="float32").node, body=body)
    with pytest.raises(gc.GraphError):
        fused(x.node, x.node, body=body)


def test_fused_eval_runs_the_body_with_the_reference_evals() -> None:
    x = gc.var("x", (4,))
    (node,) = fused_nodes(fuse(Graph([gc.tanh(x) * 3.0])))
    value = np.array([0.5, -1.0, np.nan, -0.0])
    want = np.tanh(value) * np.float64(3.0)
    assert same_bits(fused.eval(value, np.asarray(3.0), body=node.attr("body")), want)


def test_to_dot_draws_a_fused_body_as_a_cluster() -> None:
    dot = gc.to_dot(fuse(w3()))
    assert dot.count("subgraph cluster_") == 4
    assert 'label="fused body"' in dot and 'label="tanh\\nf64[3]"' in dot


# --- bit for bit: evaluate(fuse(g)) == evaluate(g) ----------------------------------------------


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("shift", range(4))
def test_fused_graphs_evaluate_bit_for_bit(index: int, shift: int) -> None:
    graph = sample_graphs()[index]
    for g in (graph, run_pipeline(graph, DEFAULT_PIPELINE[:-1])[0]):
        feed = special_feed(g, shift)
        wants = evaluate_all(g, feed)
        gots = evaluate_all(fuse(g), feed)
        assert all(same_bits(a, b) for a, b in zip(gots, wants, strict=True))
        with np.errstate(all="ignore"):
            public = gc.evaluate([gc.Tensor(o) for o in fuse(g).outputs], feed)
        assert all(same_bits(a, b) for a, b in zip(public, wants, strict=True))  # type: ignore[arg-type]


# --- the NumPy backend ----------------------------------------------------------------------------


def compile_fused(graph: Graph) -> tuple[object, object]:
    """(the program of fuse(graph), the built numpy function)."""
    program = schedule(fuse(graph))
    return program, build(program).function


def assert_backend_matches(graph: Graph, feeds: list[dict[Node, np.ndarray]]) -> None:
    program, function = compile_fused(graph)
    for feed in feeds:
        args = [feed[v] for v in graph.inputs]
        with np.errstate(all="ignore"):
            want = run_program(program, args)  # type: ignore[arg-type]
            got = function(*args)  # type: ignore[operator]
            again = function(*args)  # type: ignore[operator]
        for g, a, w in zip(got, again, want, strict=True):
            assert same_bits(g, w) and same_bits(a, w)
            assert not np.shares_memory(g, a)


@pytest.mark.parametrize("index", range(4))
def test_compiled_fused_graphs_equal_the_interpreter(index: int) -> None:
    graph = run_pipeline(sample_graphs()[index], DEFAULT_PIPELINE[:-1])[0]
    assert_backend_matches(graph, [special_feed(graph, shift) for shift in range(3)])


def test_the_source_shows_body_lines_writing_into_buffers() -> None:
    source = render(schedule(run_pipeline(w3(5))[0]))
    assert "def fused_0(p0, p1, s0, out):" in source
    assert "    np.multiply(p0, p1, out=s0)  # f64[5]\n    np.tanh(s0, out=out)  # f64[5]\n    return out" in source
    assert "np.sum(s0, axis=(0,), keepdims=False, dtype=np.float64, out=out)  # f64[]" in source
    assert "    held = pool.pop() if pool else allocate()" in source
    assert "    v0 = fused_0(x, y, s0, r0)  # f64[5]" in source
    assert "np.empty((5,), np.float64))  # f64[5]" in source  # the gradient leaves the call: a fresh array
    assert source.rstrip().endswith("pool.append(held)\n    return result")


def test_a_0d_condition_picks_an_operand_in_the_source() -> None:
    c, a = gc.var("c", (), "bool"), gc.var("a", (5,))
    graph = Graph([gc.sin(gc.where(c, a * 2.0, gc.exp(a)))], [c, a])
    source = render(schedule(run_pipeline(graph)[0]))
    assert "    np.copyto(s2, s0 if p2 else s1)  # f64[5]" in source


def test_gc_compile_fuses_and_matches_the_interpreter() -> None:
    graph = w3(1000)
    fn = gc.compile(list(graph.inputs), list(graph.outputs), backend="numpy")
    assert "fused_0" in fn.source and any(n.op is fused for n in fn.graph.nodes)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=1000), rng.normal(size=1000)
    got = fn(x, y)
    want = run_program(fn.program, [x, y])
    assert all(same_bits(g, w) for g, w in zip(got, want, strict=True))  # type: ignore[arg-type]
    later = fn(x * 2, y)
    assert not np.shares_memory(later[1], got[1]) and same_bits(fn(x, y)[1], got[1])  # type: ignore[index]


def test_names_never_clash_with_inputs() -> None:
    """Inputs named like the generated names (s0, r0, pool, fused_0, held, result) keep their meaning."""
    names = ["s0", "r0", "pool", "fused_0", "held", "result", "allocate", "out"]
    xs = [gc.var(name, (3,)) for name in names]
    total = xs[0]
    for x in xs[1:]:
        total = gc.exp(total) * x
    outs = [gc.sum(total * 2.0), gc.tanh(total) + 1.0]
    fn = gc.compile(xs, outs, backend="numpy")
    args = [np.linspace(-1, 1, 3) * (k + 1) / 8 for k in range(len(xs))]
    want = run_program(fn.program, args)
    assert all(same_bits(g, w) for g, w in zip(fn(*args), want, strict=True))  # type: ignore[arg-type]
    assert "def fused_0_1(" in fn.source and "s0_1" in fn.source


def test_non_c_ordered_operands_reduce_in_the_reference_order() -> None:
    """exp(w.T) is F-ordered in the reference; its sum adds in that order: so must the compiled one."""
    w = gc.var("w", (64, 48))
    v = gc.var("v", (48, 64))
    t = gc.exp(w.T * 0.25)
    outs = [gc.sum(t), gc.sum(t * 2.0, axis=1), gc.sum(gc.tanh(v) * v), t * v]
    graph = Graph(outs, [w, v])
    rng = np.random.default_rng(2)
    wv, vv = rng.normal(size=(64, 48)), rng.normal(size=(48, 64))
    feeds = [{w.node: wv, v.node: vv}, {w.node: np.asfortranarray(wv), v.node: np.asfortranarray(vv)}]
    assert_backend_matches(graph, feeds)
    program, _ = compile_fused(graph)
    assert "flags.c_contiguous" in render(program)  # type: ignore[arg-type]


def test_concurrent_calls_never_share_buffers() -> None:
    x, y = gc.var("x", (20_000,)), gc.var("y", (20_000,))
    out = gc.sum(gc.tanh(x * y) * gc.exp(-x), axis=0) + gc.sum(gc.sin(x) * y)
    fn = gc.compile([x, y], out, backend="numpy")
    rng = np.random.default_rng(3)
    inputs = [(rng.normal(size=20_000), rng.normal(size=20_000)) for _ in range(8)]
    wants = [fn(a, b) for a, b in inputs]
    failures: list[int] = []

    def work(k: int) -> None:
        for _ in range(30):
            if not same_bits(fn(*inputs[k]), wants[k]):
                failures.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@pytest.mark.parametrize("op", ["astype", "where", "sigmoid", "relu", "logsumexp", "broadcast_to", "isnan"])
def test_each_special_spelling_equals_the_interpreter(op: str) -> None:
    a, b = gc.var("a", (2, 3)), gc.var("b", (3,))
    c = gc.var("c", (2, 1), dtype="bool")
    body = {
        "astype": lambda: (gc.exp(a) * 2.0).astype("float32").astype("int64") * 3,
        "where": lambda: gc.where(c, gc.exp(a), -a) * 2.0,
        "sigmoid": lambda: gc.sigmoid(a * 2.0) + 1.0,
        "relu": lambda: gc.relu(a - 0.5) * a,
        "logsumexp": lambda: gc.logsumexp(gc.exp(a) * a, axis=1),
        "broadcast_to": lambda: gc.sum(gc.broadcast_to(b, (2, 3)) * a + 1.0, axis=0),
        "isnan": lambda: gc.where(gc.isnan(a * 0.0), a, a * 2.0) + 1.0,
    }[op]()
    graph = Graph([body], [a, b, c])
    assert any(op in ops_of(n) for n in fused_nodes(fuse(graph))) or op == "isnan"
    assert_backend_matches(graph, [special_feed(graph, shift) for shift in range(4)])


# --- random graphs ----------------------------------------------------------------------------------

SHAPES = [(), (3,), (2, 3), (2, 1), (4, 3)]
UNARY = [gc.exp, gc.log, gc.log1p, gc.sqrt, gc.sin, gc.tanh, gc.sigmoid, gc.abs, gc.negative, gc.relu, gc.floor]
BINARY = [gc.add, gc.subtract, gc.multiply, gc.divide, gc.maximum, gc.minimum, gc.power]
CONSTS = [0.0, -0.0, 1.0, 2.0, 0.5, np.inf, np.nan]


def broadcastable(a: gc.Tensor, b: gc.Tensor) -> bool:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        return False
    return True


def _step(draw: st.DrawFn, a: gc.Tensor, b: gc.Tensor) -> gc.Tensor:
    kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "const", "reduce", "shape", "where", "mm"]))
    if kind == "unary":
        return draw(st.sampled_from(UNARY))(a)
    if kind == "binary":
        return draw(st.sampled_from(BINARY))(a, b if broadcastable(a, b) else gc.sum(b))
    if kind == "const":
        return draw(st.sampled_from(BINARY))(a, draw(st.sampled_from(CONSTS)))
    if kind == "reduce":
        axis = draw(st.sampled_from([None, *range(a.ndim)]))
        reduce = draw(st.sampled_from([gc.sum, gc.max, gc.min, gc.prod, gc.logsumexp]))
        return reduce(a, axis=axis, keepdims=draw(st.booleans()))
    if kind == "shape":
        return draw(st.sampled_from([lambda t: t.T, lambda t: gc.broadcast_to(t, (2, *t.shape)), lambda t: t[None]]))(a)
    if kind == "where":
        return gc.where(a > b, a, b) if broadcastable(a, b) else gc.where(gc.isnan(a), a, -a)
    if a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.T.shape[0]:
        return a @ b.T
    return (a.astype("float32") * 2.0).astype("float64")


@st.composite
def random_graphs(draw: st.DrawFn) -> Graph:
    """1-10 random steps over 2-3 vars; 1-3 outputs (shared values), sometimes a gradient."""
    xs = [gc.var(f"x{i}", draw(st.sampled_from(SHAPES))) for i in range(draw(st.integers(2, 3)))]
    pool = list(xs)
    for _ in range(draw(st.integers(1, 10))):
        pool.append(_step(draw, draw(st.sampled_from(pool)), draw(st.sampled_from(pool))))
    outputs = [pool[-1], *draw(st.lists(st.sampled_from(pool), max_size=2))]
    if draw(st.booleans()):
        outputs.append(gc.grad(gc.sum(pool[-1]), draw(st.sampled_from(xs))))
    return Graph(outputs, xs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs(), shift=st.integers(0, len(SPECIALS) - 1))
def test_random_graphs_fuse_bit_for_bit(graph: Graph, shift: int) -> None:
    once = fuse(graph)
    assert fuse(once) is once
    assert unfuse(once).outputs == graph.outputs
    for node in fused_nodes(once):
        check_region(node)
    feed = special_feed(graph, shift)
    wants = evaluate_all(graph, feed)
    assert all(same_bits(a, b) for a, b in zip(evaluate_all(once, feed), wants, strict=True))
    assert_backend_matches(graph, [feed])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs(), seed=st.integers(0, 2**16), fortran=st.booleans())
def test_random_graphs_compiled_after_the_pipeline_equal_the_interpreter(
    graph: Graph, seed: int, fortran: bool
) -> None:
    optimized, _ = run_pipeline(graph)
    rng = np.random.default_rng(seed)
    feed = {v: rng.normal(size=v.shape) for v in graph.inputs}
    if fortran:
        feed = {v: np.asfortranarray(a) if a.ndim >= 2 else a for v, a in feed.items()}
    program = schedule(optimized)
    args = [feed[v] for v in graph.inputs]
    with np.errstate(all="ignore"):
        want = run_program(program, args)
        got = build(program).function(*args)
    assert all(same_bits(g, w) for g, w in zip(got, want, strict=True))  # type: ignore[call-overload]
