"""The scheduler: names, last uses, buffer plan, determinism, long chains; and run_program."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends.interpreter import evaluate_graph, run_program
from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.ops.source import const, var
from graphc.schedule import Program, identifier, input_names, schedule
from graphc.tensor import Tensor


def graph_of(inputs: list[gc.Tensor], outputs: list[gc.Tensor]) -> Graph:
    return Graph([t.node for t in outputs], [t.node for t in inputs])


def example() -> tuple[gc.Tensor, gc.Tensor, Graph]:
    x = gc.var("x", (3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    return x, s, graph_of([x, s], [f])


def test_names_are_deterministic_and_in_order() -> None:
    _, _, graph = example()
    program = schedule(graph)
    assert [i.name for i in program.inputs] == ["x", "s"]
    assert list(program.constants) == ["c0"]
    assert [step.name for step in program.steps] == [f"v{k}" for k in range(len(program.steps))]
    assert [step.op for step in program.steps] == ["mul", "tanh", "pow", "sum", "mul", "log1p", "add"]
    assert program.outputs == ("v6",)
    assert str(schedule(graph)) == str(program)


def test_golden_listing() -> None:
    _, _, graph = example()
    assert str(schedule(graph)) == "\n".join(
        [
            "program(x: f64[3], s: f64[]) {",
            "  c0 = const 2. : f64[]",
            "  v0 = mul(x, s) : f64[3]  # frees x",
            "  v1 = tanh(v0) : f64[3]  # frees v0",
            "  v2 = pow(v1, c0) : f64[3]  # reuses v0; frees c0, v1",
            "  v3 = sum(v2, axis=(0,), keepdims=False) : f64[]  # frees v2",
            "  v4 = mul(s, s) : f64[]  # frees s",
            "  v5 = log1p(v4) : f64[]  # frees v4",
            "  v6 = add(v3, v5) : f64[]  # frees v3, v5",
            "  return v6",
            "}",
        ]
    )


def test_last_uses_are_exact() -> None:
    """Each non-output name is freed exactly once, at the last step that reads it."""
    _, _, graph = example()
    program = schedule(graph)
    last: dict[str, int] = {}
    for k, step in enumerate(program.steps):
        for arg in step.args:
            last[arg] = k
    freed = {name: k for k, step in enumerate(program.steps) for name in step.frees}
    assert freed == {name: k for name, k in last.items() if name not in program.outputs}


def test_outputs_may_repeat_and_be_inputs_or_constants() -> None:
    x = gc.var("x", (2,))
    c = gc.const(np.array([1.0, 2.0]))
    y = x + c
    program = schedule(graph_of([x], [y, y, x, c]))
    assert program.outputs == ("v0", "v0", "x", "c0")
    assert program.steps[0].frees == ()  # all of its arguments are outputs
    values = run_program(program, [np.array([3.0, 4.0])])
    assert [v.tolist() for v in values] == [[4.0, 6.0], [4.0, 6.0], [3.0, 4.0], [1.0, 2.0]]


def test_input_names_are_sanitized_and_deduplicated() -> None:
    names = ["x", "x", "my var", "lambda", "2d", "v0", "np", "rt", "c12", "x_1", "ﬁ", "fi"]
    nodes = [gc.var(n).node for n in names]
    assert input_names(nodes) == [
        "x", "x_1", "my_var", "lambda_1", "_2d", "v0_1", "np_1", "rt_1", "c12_1", "x_1_1", "fi", "fi_1",
    ]  # fmt: skip
    assert all(identifier(n).isidentifier() for n in names)


def test_unused_inputs_are_kept_and_missing_vars_raise() -> None:
    x = gc.var("x", (2,))
    unused = gc.var("unused")
    y = gc.var("y", (2,))
    program = schedule(graph_of([x, unused], [x * 2.0]))
    assert [i.name for i in program.inputs] == ["x", "unused"]
    with pytest.raises(gc.GraphError, match="'y'"):
        schedule(graph_of([x], [x + y]))


def test_an_internal_node_as_input_cuts_its_ancestors() -> None:
    x = gc.var("x", (2,))
    h = gc.exp(x)
    graph = Graph([gc.tanh(h).node], [h.node])
    program = schedule(graph)
    assert [step.op for step in program.steps] == ["tanh"]
    assert program.inputs[0].name == "arg"


def test_buffer_plan_reuses_only_dead_buffers_of_the_same_type() -> None:
    x = gc.var("x", (4,))
    a = gc.exp(x)
    b = gc.sin(a)  # a dies here
    c = gc.cos(b)  # may take a's buffer; b dies here
    d = gc.tanh(c)  # may take b's buffer
    program = schedule(graph_of([x], [d]))
    assert [step.reuse for step in program.steps] == [None, None, "v0", "v1"]
    for step in program.steps:
        assert step.reuse is None or program.types[step.reuse] == step.type


def test_buffer_plan_respects_views_and_outputs() -> None:
    x = gc.var("x", (2, 3))
    a = gc.exp(x)
    t = a.T  # a view of a: a's buffer lives while t does
    b = gc.sin(t)  # t dies here, so a's buffer dies here
    c = gc.cos(b)
    program = schedule(graph_of([x], [c, a.reshape(6)]))
    assert all(step.reuse != "v0" for step in program.steps)  # a is viewed by an output


def test_reuse_never_names_a_live_value() -> None:
    x = gc.var("x", (3,))
    h = x
    for k in range(20):
        h = gc.tanh(h) * (k + 1.0) + h
    program = schedule(graph_of([x], [h]))
    live: set[str] = {"x", *program.constants}
    for step in program.steps:
        assert step.reuse is None or step.reuse not in live
        live.add(step.name)
        live -= set(step.frees)


def test_run_program_matches_evaluate_graph() -> None:
    x, s, graph = example()
    args = [np.array([0.1, -2.0, 3.0]), np.float64(0.7)]
    expected = evaluate_graph(graph, {x.node: args[0], s.node: args[1]})
    assert run_program(schedule(graph), args)[0].tobytes() == expected[0].tobytes()
    with pytest.raises(TypeError, match="x, s"):
        run_program(schedule(graph), args[:1])


def long_chain(n: int) -> tuple[Node, Node]:
    """x -> sin -> mul(., 0.5) -> sin -> ... : n nodes after x, built from primitives (fast)."""
    x = var("x", (2,), np.dtype("float64"))
    half = const(np.asarray(0.5))
    h = x
    for _ in range(n // 2):
        h = ew.mul(ew.sin(h), half)
    return x, h


def test_a_100000_node_chain_schedules_and_runs() -> None:
    x, h = long_chain(100_000)
    program = schedule(Graph([h], [x]))
    assert isinstance(program, Program)
    assert len(program.steps) == 100_000
    (value,) = run_program(program, [np.array([1.0, -1.0])])
    assert value.shape == (2,)
    assert np.all(np.abs(value) < 1e-10)


@pytest.mark.slow
def test_a_100000_node_chain_compiles_and_runs() -> None:
    x, h = long_chain(100_000)
    fn = gc.compile([Tensor(x)], Tensor(h))
    assert fn(np.array([1.0, -1.0])).shape == (2,)
