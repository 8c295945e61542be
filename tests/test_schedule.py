"""The scheduler: names, last uses, buffer plans, nested Programs, determinism, long chains; and run_program."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

import graphc as gc
from graphc.backends.interpreter import run_program
from graphc.ir import Graph, Node
from graphc.ops import elementwise as ew
from graphc.ops.loops import run_graph
from graphc.ops.source import const, var
from graphc.schedule import (
    Program,
    buffer_slots,
    identifier,
    input_names,
    loop_family,
    named_nodes,
    plan_buffers,
    schedule,
)
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
        "x",
        "x_1",
        "my_var",
        "lambda_1",
        "_2d",
        "v0_1",
        "np_1",
        "rt_1",
        "c12_1",
        "x_1_1",
        "fi",
        "fi_1",
    ]
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


def test_run_program_matches_the_graph_run_node_by_node() -> None:
    _, _, graph = example()
    args = [np.array([0.1, -2.0, 3.0]), np.float64(0.7)]
    expected = run_graph(graph, args)
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


# --- nested Programs: fused regions and loop bodies -----------------------------------------------


def fused_example() -> tuple[Program, Graph]:
    x, y = gc.var("x", (4,)), gc.var("y", (4,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-(x * x)) + gc.log1p(y * y))
    graph = Graph([t.node for t in gc.optimize([f, gc.grad(f, x)], fuse=True)], [x.node, y.node])
    return schedule(graph), graph


def test_every_fused_step_holds_its_body_as_a_program_planned_in_place() -> None:
    program, _ = fused_example()
    fused = [step for step in program.steps if step.op == "fused"]
    assert fused
    for step in fused:
        body = step.body
        assert isinstance(body, Program) and step.params == {}
        assert body.input_types == tuple(program.types[a] for a in step.args)
        assert body.output_types == (step.type,)
        live = {given.name for given in body.inputs}
        for inner in body.steps:  # in place: a buffer freed by this very step may be taken, never a live one
            assert inner.reuse is None or (inner.reuse not in live or inner.reuse in inner.frees)
            assert inner.reuse is None or inner.reuse in inner.args or inner.reuse not in live
            live.add(inner.name)
            live -= set(inner.frees)
    chained = [inner for step in fused for inner in step.body.steps if inner.reuse in inner.frees]  # type: ignore[union-attr]
    assert chained  # the W3 chain writes over its dying operands


def test_a_loops_siblings_share_one_body_program() -> None:
    W = gc.var("W", (3, 3))
    xs = gc.var("xs", (5, 3))
    h0 = gc.var("h0", (3,))
    h, hs = gc.scan(lambda h, x_t: (gc.tanh(h @ W + x_t), h), h0, xs)
    program = schedule(graph_of([W, xs, h0], [h, hs]))
    loops = [step for step in program.steps if step.op == "scan"]
    assert len(loops) == 2 and loops[0].body is loops[1].body is not None
    assert loop_family(loops[0]) == loop_family(loops[1])
    assert sorted(step.int_attr("output") for step in loops) == [0, 1]
    body = loops[0].body
    assert {"matmul", "add", "tanh"} <= {step.op for step in body.steps}
    assert body.input_types[0] == h0.node.type and body.output_types[0] == h0.node.type
    listing = str(program)
    assert listing.count("program(") == 2  # the body is listed once, under the first sibling
    assert "body=" not in listing


def _values(obj: object) -> list[object]:
    return [getattr(obj, f.name) for f in fields(obj)]  # type: ignore[arg-type]


def test_programs_hold_no_nodes_or_graphs() -> None:
    """What a backend reads: names, types, attributes, op records, provenance, nested Programs."""
    program, _ = fused_example()
    W = gc.var("W", (2, 2))
    z = gc.fixed_point(lambda z: gc.tanh(z @ W) * 0.5, gc.var("z0", (2,)))
    p0 = gc.var("p", (), dtype="bool")
    chosen = gc.cond(p0, lambda v: gc.exp(v) @ W, lambda v: -v, z)
    counted = gc.while_loop(lambda v: gc.sum(v) < 10.0, lambda v: v * 2.0, z, max_iter=8)
    programs = [program, schedule(Graph([z.node, chosen.node, counted.node]))]
    seen = 0
    while programs:
        p = programs.pop()
        for item in [*p.inputs, *p.steps]:
            for value in [*_values(item), *(v for _, v in getattr(item, "attrs", ()))]:
                assert not isinstance(value, (Node, Graph)), (item, value)
            programs += [body for _, body in getattr(item, "bodies", ())]
            seen += 1
    assert seen > 20


def test_cond_and_while_steps_hold_each_body_as_a_program() -> None:
    """A cond's branches and a while_loop's condition and body are nested Programs, by attribute name."""
    x, p = gc.var("x", (3,)), gc.var("p", (), dtype="bool")
    a, b = gc.cond(p, lambda v: (gc.exp(v), gc.sum(v)), lambda v: (-v, gc.max(v)), x)
    w = gc.while_loop(lambda v: gc.sum(v) < 100.0, lambda v: v * 2.0 + 1.0, x, max_iter=20)
    program = schedule(graph_of([x, p], [a, b, w]))
    conds = [step for step in program.steps if step.op == "cond"]
    (loop,) = [step for step in program.steps if step.op == "while_loop"]
    assert len(conds) == 2 and conds[0].bodies == conds[1].bodies  # siblings share their Programs
    assert [key for key, _ in conds[0].bodies] == ["false_body", "true_body"] and conds[0].body is None
    assert {s.op for s in conds[0].nested("true_body").steps} >= {"exp", "sum"}
    assert {s.op for s in conds[0].nested("false_body").steps} >= {"neg", "max"}
    assert [key for key, _ in loop.bodies] == ["body", "cond_body"] and loop.body is loop.nested("body")
    assert loop.nested("cond_body").output_types[0].dtype == np.dtype(bool)
    assert loop_family(conds[0]) == loop_family(conds[1]) != loop_family(loop)
    with pytest.raises(KeyError, match="cond has no body 'body'"):
        conds[0].nested("body")
    listing = str(program)
    assert "# true_body:" in listing and "# false_body:" in listing and "# cond_body:" in listing
    assert listing.count("program(") == 5 and "<graph" not in listing
    args = [np.array([0.5, -1.0, 2.0]), np.array(True)]
    for flag in (True, False):
        args[1] = np.array(flag)
        got = run_program(program, args)
        want = run_graph(graph_of([x, p], [a, b, w]), args)
        assert all(np.array_equal(g, e) for g, e in zip(got, want, strict=True))


def test_in_place_planning_reads_each_point_before_writing_it() -> None:
    x, c = gc.var("x", (4,)), gc.var("c", (4,), dtype="bool")
    a = gc.exp(x)
    b = gc.sin(a)  # a dies here: in place, b may take a's buffer
    d = gc.where(c, b, gc.cos(b))  # b dies here, but where is rendered in two passes: not in place
    e = gc.tanh(d * d)
    program = plan_buffers(schedule(graph_of([x, c], [e])), in_place=True)
    by_op = {step.op: step for step in program.steps}
    assert by_op["sin"].reuse == by_op["exp"].name
    assert by_op["where"].reuse not in by_op["where"].args
    live = {"x", "c"}
    for step in program.steps:
        assert step.reuse is None or step.reuse not in live or (step.reuse in step.frees and step.op != "where")
        live = (live | {step.name}) - set(step.frees)
    plain = schedule(graph_of([x, c], [e]))
    assert all(step.reuse not in step.args for step in plain.steps)


def test_a_planned_filter_offers_only_planned_buffers() -> None:
    x = gc.var("x", (4,))
    h = x
    for _ in range(6):
        h = gc.tanh(gc.exp(h))
    graph = graph_of([x], [h])
    only_tanh = plan_buffers(schedule(graph), planned=lambda step: step.op == "tanh")
    reused = [step for step in only_tanh.steps if step.reuse is not None]
    assert reused and all(step.op == "tanh" and only_tanh.step(step.reuse).op == "tanh" for step in reused)  # type: ignore[union-attr]
    slots, types = buffer_slots(only_tanh, lambda step: step.op == "tanh")
    assert len(slots) == 6 and types == [x.node.type]  # each tanh is dead before the next: one buffer


def test_named_nodes_are_the_schedules_names() -> None:
    x, s, graph = example()
    program = schedule(graph)
    nodes = named_nodes(graph)
    assert nodes["x"] is x.node and nodes["s"] is s.node
    for step in program.steps:
        node = nodes[step.name]
        assert node.op is step.record and node.type == step.type and node.loc == step.loc
        assert [nodes[a] for a in step.args] == list(node.inputs)


def test_fixed_narrows_shapes_and_refuses_named_dimensions() -> None:
    """What backends read shapes through: ints pass as a tuple of ints; a named dimension is a located ShapeError."""
    from graphc.shapes import Dim, fixed, fixed_size

    assert fixed((2, np.int64(3), 0)) == (2, 3, 0) and all(type(n) is int for n in fixed((np.int64(3),)))
    assert fixed(()) == () and fixed_size(7) == 7
    batch = Dim.named("batch")
    with pytest.raises(gc.ShapeError, match=r"\(batch,3\)|batch.*named"):
        fixed((batch, 3))
    with pytest.raises(gc.ShapeError, match="batch"):
        fixed_size(batch * 2)
    x = gc.var("x", ("batch", 3))
    with pytest.raises(gc.GraphError, match="specializes named dimensions"):
        schedule(graph_of([x], [gc.tanh(x)]))
