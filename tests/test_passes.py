"""passes/__init__.py: the pipeline, run_pipeline's report, gc.optimize; idempotence of every pass;
random graphs (hypothesis): the optimized graph computes what the graph computes.

Random graphs mix elementwise, broadcasting, reductions and shape ops over 2-3 vars, with
constants that trigger the rules (0, -0.0, 1, -1, 2, inf, NaN), and are run on special floats.
simplify (less its reassociating `sum_broadcast`), fold and prune must agree bit for bit;
the whole pipeline must too unless a stability rewrite or `sum_broadcast` applied, in which
case it must agree to a tolerance on ordinary inputs where every value the original graph
computes is finite and moderate (elsewhere the stability rewrites are meant to differ).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ir import Graph
from graphc.passes import (
    DEFAULT_PIPELINE,
    FINAL_PASSES,
    Report,
    fastmath,
    fold,
    optimize,
    prune,
    run_pipeline,
    simplify,
    stability,
)
from graphc.passes.simplify import RULES as SIMPLIFY_RULES
from graphc.passes.simplify import sum_broadcast
from graphc.rewrite import rewrite

ALL_PASSES = (stability, simplify, fastmath, fold, prune)
EXACT_RULES = {op: [r for r in rules if r is not sum_broadcast] for op, rules in SIMPLIFY_RULES.items()}


def simplify_exact(graph: Graph) -> Graph:
    """simplify without its one reassociation: bit-exact by contract."""
    return rewrite(graph, EXACT_RULES)


EXACT_PIPELINE = (simplify_exact, fold, prune)


def same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal values, NaN where NaN, and the same sign bit on every non-NaN element (zeros included)."""
    if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want, equal_nan=True):
        return False
    numbers = ~np.isnan(want)
    return bool(np.array_equal(np.signbit(got[numbers]), np.signbit(want[numbers])))


def run(outputs: object, feed: dict) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return gc.evaluate(list(outputs), feed)  # type: ignore[call-overload]


def sample_graphs() -> list[list[gc.Tensor]]:
    """A few graphs with work for every default pass, gradients included."""
    x = gc.var("x", shape=(3,))
    w = gc.var("w", shape=(2, 3))
    f = gc.log(gc.sum(gc.exp(w @ x))) + gc.sum(gc.log(1 + x * x) * 1.0)
    loss = gc.sum(gc.log(gc.sigmoid(w @ x))) - gc.sum(gc.log_softmax(w, axis=1)) * gc.const(2.0) ** 2.0
    chain = x
    for _ in range(20):
        chain = gc.sin(chain) * 1.0001 + 0.1 * chain
    return [
        [f, *gc.grad(f, [x, w])],
        [loss, gc.grad(loss, w)],
        [chain, gc.grad(gc.sum(chain), x)],
        [gc.hessian(gc.sum(gc.tanh(x) ** 2.0), x)],
    ]


# --- gc.optimize and run_pipeline --------------------------------------------------------


def test_gc_optimize_is_public():
    """API.md §4 names gc.optimize."""
    assert gc.optimize is optimize


def test_default_pipeline():
    for p in (stability, simplify, fold, prune):
        assert p in DEFAULT_PIPELINE
    assert DEFAULT_PIPELINE.index(stability) < DEFAULT_PIPELINE.index(simplify)  # stability sees log(1 + x)
    assert fastmath not in DEFAULT_PIPELINE
    for p in DEFAULT_PIPELINE:
        assert p.__doc__ and callable(p)


def test_optimize_returns_what_it_was_given():
    x = gc.var("x", shape=(3,))
    one = gc.optimize(x * 1.0)
    assert isinstance(one, gc.Tensor) and one.node is x.node
    many = gc.optimize([x * 1.0, gc.negative(-x)])
    assert isinstance(many, list) and [t.node for t in many] == [x.node, x.node]


@pytest.mark.parametrize("index", range(4))
def test_optimize_is_idempotent_and_shrinks(index: int):
    outs = sample_graphs()[index]
    once = gc.optimize(outs)
    assert str(Graph(gc.optimize(once))) == str(Graph(once))
    assert len(Graph(once).nodes) < len(Graph(outs).nodes)


@pytest.mark.parametrize("p", (*ALL_PASSES, simplify_exact), ids=lambda p: p.__name__)
def test_every_pass_is_idempotent(p: object):
    for outs in sample_graphs():
        once = p(Graph(outs))  # type: ignore[operator]
        assert p(once) is once  # type: ignore[operator]


def test_report_records_each_pass_run():
    outs = sample_graphs()[0]
    graph = Graph(outs)
    result, report = run_pipeline(graph)
    assert isinstance(report, Report)
    records = list(report)
    assert len(report) == len(records) >= len(DEFAULT_PIPELINE)
    assert report.passes() == [p.__name__ for p in DEFAULT_PIPELINE]
    assert records[0].nodes_before == len(graph.nodes)
    assert records[-1].nodes_after == len(result.nodes)
    for before, after in itertools.pairwise(records):  # each run starts from the previous run's result
        assert after.nodes_before == before.nodes_after
        assert after.round >= before.round
    assert all(r.seconds >= 0 and r.graph is None and r.result is None and not r.firings for r in records)
    assert [r.name for r in records if r.final] == ["fuse"] and records[-1].final
    assert [r.name for r in records if r.round == 1] == [p.__name__ for p in DEFAULT_PIPELINE if p not in FINAL_PASSES]
    stability_runs = [r for r in records if r.name == "stability"]
    assert stability_runs[0].changed and stability_runs[0].nodes_after < stability_runs[0].nodes_before
    text = str(report)
    lines = text.splitlines()
    assert lines[0].startswith("# ") and "runs" in lines[0]  # the legend says what the columns mean
    assert lines[1].split() == ["pass", "runs", "changed", "nodes", "time"]
    assert len(lines) == len(DEFAULT_PIPELINE) + 3  # legend, titles, one line per pass, the total
    for p in DEFAULT_PIPELINE:
        (line,) = [line for line in lines if line.startswith(p.__name__ + " ")]
        mine = [r for r in records if r.name == p.__name__]
        _, runs, changed, change = line.split()[:4]
        assert (int(runs), int(changed)) == (len(mine), sum(r.changed for r in mine))
        assert int(change) == sum(r.nodes_after - r.nodes_before for r in mine)
    total = lines[-1].split()
    assert total[:5] == ["total", str(len(records)), str(len(graph.nodes)), "->", str(len(result.nodes))]
    assert str(Graph(gc.optimize(outs))) == str(result)


def test_report_per_round_lists_every_run():
    outs = sample_graphs()[0]
    result, report = run_pipeline(Graph(outs))
    lines = report.format(per_round=True).splitlines()
    assert lines[0].startswith("# ")
    rows = [line.split() for line in lines[2:-1]]
    assert len(rows) == len(report)
    for row, r in zip(rows, report, strict=True):
        assert row == [
            "final" if r.final else str(r.round),
            r.name,
            str(r.nodes_before),
            "->",
            str(r.nodes_after),
            f"{r.seconds * 1e3:.2f}ms",
        ]
    assert lines[-1].split()[:4] == ["total", str(len(Graph(outs).nodes)), "->", str(len(result.nodes))]


def test_report_records_results_and_rules_when_asked():
    x = gc.var("x", shape=(3,))
    graph = Graph([gc.log(1 + x) * 1.0])
    result, report = run_pipeline(graph, record=True)
    assert report.records[-1].result is result
    previous = graph
    for r in report:
        assert isinstance(r.result, Graph) and len(r.result.nodes) == r.nodes_after
        assert r.changed == (r.result is not previous)
        previous = r.result
    fired = [(r.name, f.rule) for r in report for f in r.firings]
    assert fired == [("stability", "log_one_plus"), ("simplify", "mul_one")]
    for r in report:
        for f in r.firings:
            assert f.before.type == f.after.type and f.before is not f.after


def test_report_keeps_graphs():
    outs = sample_graphs()[1]
    result, report = run_pipeline(Graph(outs), keep_graphs=True)
    texts = [r.graph for r in report]
    assert all(isinstance(t, str) and t.startswith("graph(") for t in texts)
    assert texts[-1] == str(result)
    _, stability_only = run_pipeline(Graph(outs), (stability,), keep_graphs=True)
    assert next(iter(stability_only)).graph == str(stability(Graph(outs)))


def test_verbose_prints_each_pass(capsys: pytest.CaptureFixture[str]):
    x = gc.var("x", shape=(3,))
    result, _ = run_pipeline(Graph([gc.log(1 + x) * 1.0]), verbose=True)
    printed = capsys.readouterr().out
    for p in DEFAULT_PIPELINE:
        assert f"--- after {p.__name__} ---" in printed
    assert printed.rstrip().endswith(str(result))


def test_no_passes():
    graph = Graph(sample_graphs()[0])
    result, report = run_pipeline(graph, ())
    assert result is graph and len(report) == 0
    assert "no passes" in str(report)


def test_pipeline_stops_when_a_round_changes_nothing():
    calls = []

    def counting(graph: Graph) -> Graph:
        """Count the calls; change nothing."""
        calls.append(graph)
        return graph

    graph = Graph(sample_graphs()[2])
    result, _ = run_pipeline(graph, (counting,))
    assert result is graph and calls == [graph]
    calls.clear()
    x = gc.var("x", shape=(3,))
    result, _ = run_pipeline(Graph([gc.sin(x * 1.0)]), (simplify, counting))
    assert calls == [result]  # the second round finds each pass's own output: p(p(g)) is p(g), nothing runs


def test_pipeline_runs_rounds_to_a_fixpoint():
    """simplify turns 1.0 * 1.0 into 1.0 after stability ran: a second round makes log(x + 1) log1p(x)."""
    x = gc.var("x", shape=(3,))
    result, _ = run_pipeline(Graph([gc.log(x + gc.const(1.0) * 1.0)]))
    assert str(result) == "graph(%x: f64[3]) {\n  %0 = log1p(%x) : f64[3]\n  return %0\n}"


def test_fast_math_pipeline():
    x = gc.var("x", shape=(3,))
    outs = [x * 0.0 + gc.exp(gc.log(x))]
    assert str(Graph(gc.optimize(outs, fast_math=True))) == "graph(%x: f64[3]) {\n  return %x\n}"
    assert len(Graph(gc.optimize(outs)).nodes) > 1


def test_deep_chains_optimize_without_recursion():
    x = gc.var("x", shape=(2,))
    y = x
    for _ in range(2500):  # 10,000 nodes: a recursive walk would exceed Python's limit
        y = gc.sin(y) * 1.0001 + 0.1 * y
    feed = {x: np.array([0.5, -2.0])}
    assert same_bits(run([gc.optimize(y)], feed)[0], run([y], feed)[0])


# --- random graphs ------------------------------------------------------------------------

SHAPES = [(), (3,), (2, 3), (2, 1)]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e-300, 1e300, -1e300, 1.0, -1.0, 2.0, 0.5, -2.5, 1000.0]
ORDINARY = [k / 4 for k in range(-12, 13)]
CONSTS = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 3.0, np.inf, np.nan]

UNARY = [
    gc.exp, gc.log, gc.log1p, gc.expm1, gc.sqrt, gc.sin, gc.tanh, gc.sigmoid, gc.softplus, gc.abs,
    gc.negative, gc.square, gc.relu,
]  # fmt: skip
BINARY = [gc.add, gc.subtract, gc.multiply, gc.divide, gc.maximum, gc.minimum, gc.power]


def broadcastable(a: gc.Tensor, b: gc.Tensor) -> bool:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        return False
    return True


def _softmax_like(a: gc.Tensor) -> gc.Tensor:
    """(1 / sum(exp(a), last axis)) * exp(a): a softmax where the sums line up, else a broadcast of them."""
    if a.ndim == 0:
        return gc.exp(a) / gc.exp(a)
    s = gc.sum(gc.exp(a), axis=-1)
    if not broadcastable(s, a):
        s = gc.sum(gc.exp(a), axis=-1, keepdims=True)
    return (1.0 / s) * gc.exp(a)


PATTERNS = [  # what the rules look for, and what IEEE arithmetic forbids them to touch
    lambda a: gc.log(1.0 + a),
    lambda a: gc.exp(a) - 1.0,
    lambda a: gc.log(gc.sum(gc.exp(a))),
    lambda a: gc.log(gc.sigmoid(a)),
    lambda a: gc.log(1.0 - gc.sigmoid(a)),
    lambda a: gc.log1p(gc.exp(a)),
    lambda a: gc.log(gc.exp(a)),
    _softmax_like,
    lambda a: gc.negative(-a),
    lambda a: a * -1.0,
    lambda a: -a * -a,
    lambda a: a - -a,
    lambda a: a + -a,
    lambda a: -a + a * 2.0,
    lambda a: -a * 3.0,
    lambda a: gc.where(gc.const(True), a, -a) + gc.where(gc.const(False), a, 2.0 * a),
    lambda a: gc.sum(gc.broadcast_to(a, (3, *a.shape)), axis=0),
    lambda a: a.astype("float32").astype("float64"),
    lambda a: a.T.T if a.ndim == 2 else a[None].reshape(a.shape),
    lambda a: a + 0.0,
    lambda a: 0.0 - a,
    lambda a: a - -0.0,
    lambda a: a * 0.0,
    lambda a: a - a,
    lambda a: a / a,
    lambda a: gc.exp(gc.log(a)),
    lambda a: a**0.5,
    lambda a: a**-1.0,
    lambda a: gc.where(a > 0.0, a, a),
]


KINDS = ["unary", "binary", "const", "const", "reduce", "shape", "where", "pattern", "pattern", "pattern"]


@st.composite
def random_graphs(draw: st.DrawFn) -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    """(vars, outputs) of a random program of 0-7 steps over 2-3 vars, then one of PATTERNS."""
    xs = [gc.var(f"x{i}", shape=draw(st.sampled_from(SHAPES))) for i in range(draw(st.integers(2, 3)))]
    pool = list(xs)
    for _ in range(draw(st.integers(0, 7))):
        a = draw(st.sampled_from(pool))
        b = draw(st.sampled_from(pool))
        kind = draw(st.sampled_from(KINDS))
        if kind == "unary":
            out = draw(st.sampled_from(UNARY))(a)
        elif kind == "binary":
            out = draw(st.sampled_from(BINARY))(a, b if broadcastable(a, b) else gc.sum(b))
        elif kind == "const":
            c = draw(st.sampled_from(CONSTS))
            f = draw(st.sampled_from(BINARY))
            out = f(a, c) if draw(st.booleans()) else f(c, a)
        elif kind == "reduce":
            axis = draw(st.sampled_from([None, *range(a.ndim)]))
            f = draw(st.sampled_from([gc.sum, gc.max, gc.logsumexp, gc.mean, gc.prod]))
            out = f(a, axis=axis, keepdims=draw(st.booleans()))
        elif kind == "shape":
            out = draw(
                st.sampled_from(
                    [
                        lambda t: t.reshape(-1),
                        lambda t: t.T,
                        lambda t: gc.broadcast_to(t, (2, *t.shape)),
                        lambda t: t[None],
                        lambda t: t[..., ::-1] if t.ndim else t,
                        lambda t: t[..., 1:] if t.ndim and t.shape[-1] > 1 else t,
                    ]
                )
            )(a)
        elif kind == "where":
            out = gc.where(a > b, a, b) if broadcastable(a, b) else gc.where(a > 0.0, a, -a)
        else:
            out = draw(st.sampled_from(PATTERNS))(a)
        pool.append(out)
    last = draw(st.sampled_from(xs)) if draw(st.booleans()) else draw(st.sampled_from(pool))
    pool.append(draw(st.sampled_from(PATTERNS))(last))  # always something for the rules
    outputs = [pool[-1]]
    if draw(st.booleans()):
        outputs.append(draw(st.sampled_from(pool[len(xs) :] or pool)))
    if draw(st.booleans()):
        wrt = draw(st.sampled_from(xs))
        outputs.append(gc.grad(gc.sum(pool[-1]), wrt))
    return xs, outputs


def special_feeds(data: st.DataObject, xs: list[gc.Tensor]) -> list[dict]:
    """Every var filled with one special float, for each (the vars get different ones), plus one mixed draw."""
    n = len(SPECIAL)
    feeds = [{x: np.full(x.shape, SPECIAL[(k + 4 * i) % n]) for i, x in enumerate(xs)} for k in range(n)]
    feeds.append({x: draw_values(data, x, SPECIAL) for x in xs})
    return feeds


def draw_values(data: st.DataObject, x: gc.Tensor, values: list[float]) -> np.ndarray:
    return np.array(data.draw(st.lists(st.sampled_from(values), min_size=x.size, max_size=x.size))).reshape(x.shape)


def assert_exact(result: Graph, graph: Graph, feeds: list[dict], wants: list[list[np.ndarray]], name: str) -> None:
    if result is graph:
        return
    for feed, want in zip(feeds, wants, strict=True):
        for got, ref in zip(run(result.outputs, feed), want, strict=True):
            assert same_bits(got, ref), f"{name} changed a result at {list(feed.values())}:\n{graph}\n{got}\n{ref}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_graphs(data: st.DataObject):
    xs, outputs = data.draw(random_graphs())
    graph = Graph(outputs)
    feeds = special_feeds(data, xs)
    wants = [run(graph.outputs, feed) for feed in feeds]

    for p in (*ALL_PASSES, simplify_exact):
        once = p(graph)
        assert p(once) is once, f"{p.__name__} is not idempotent"
    for p in EXACT_PIPELINE:
        assert_exact(p(graph), graph, feeds, wants, p.__name__)
    exact, _ = run_pipeline(graph, EXACT_PIPELINE)
    assert_exact(exact, graph, feeds, wants, "simplify+fold+prune")

    optimized = Graph(gc.optimize(outputs))
    assert str(Graph(gc.optimize(list(optimized.outputs)))) == str(optimized)
    if str(optimized) == str(run_pipeline(graph, EXACT_PIPELINE + FINAL_PASSES)[0]):
        assert_exact(optimized, graph, feeds, wants, "gc.optimize")  # nothing inexact applied
        return
    ordinary = {x: draw_values(data, x, ORDINARY) for x in xs}
    if not moderate(graph, ordinary):
        return  # where the naive graph overflows or cancels (1 - sigmoid(30)), the rewrites are meant to differ
    for got, ref in zip(run(optimized.outputs, ordinary), run(graph.outputs, ordinary), strict=True):
        scale = max(1.0, float(np.max(np.abs(ref), initial=0.0)))
        np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-12 * scale)


def moderate(graph: Graph, feed: dict, bound: float = 20.0) -> bool:
    """True when every float the graph computes is finite and at most `bound` in magnitude.

    Then the naive formulas the stability rewrites replace are accurate to about 1e-8
    (1 - sigmoid(20) keeps 7 digits), so the two graphs must agree to a tolerance.
    """
    values = run([n for n in graph.nodes if n.op.name != "var" and n.dtype.kind == "f"], feed)
    return all(np.all(np.isfinite(v)) and np.all(np.abs(v) <= bound) for v in values)
