"""The IR: interned immutable nodes, constants by bytes, toposort, the text form, the weak table."""

from __future__ import annotations

import gc as pygc
import inspect
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from paramids import stable_repr

import graphc as gc
from graphc import ir
from graphc.errors import Location
from graphc.ir import ConstValue, Graph, Node, toposort
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.ops.source import const, var

REPO = Path(__file__).resolve().parents[1]
F64 = np.dtype("float64")


def lineno() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


# --- interning --------------------------------------------------------------------------------------


def test_equal_structure_is_the_same_object() -> None:
    x = var("x", (3,), F64)
    y = var("y", (3,), F64)
    assert ew.add(x, y) is ew.add(x, y)
    assert ew.exp(ew.add(x, y)) is ew.exp(ew.add(x, y))
    assert ew.add(x, y) is not ew.add(y, x)
    assert ew.sub(x, y) is not ew.sub(y, x)
    assert ew.add(x, y) is not ew.mul(x, y)


def test_attrs_are_part_of_identity_and_their_order_is_not() -> None:
    x = var("x", (2, 3), F64)
    assert rd.sum_(x, axis=(0,), keepdims=False) is rd.sum_(x, keepdims=False, axis=(0,))
    assert rd.sum_(x, axis=(0,), keepdims=False) is not rd.sum_(x, axis=(0,), keepdims=True)
    assert rd.sum_(x, axis=(0,), keepdims=False) is not rd.sum_(x, axis=(1,), keepdims=False)
    assert sh.transpose(x, axes=(1, 0)) is sh.transpose(x, axes=(1, 0))


def test_frontend_builds_intern() -> None:
    x = gc.var("x", (3,))
    assert (gc.tanh(x * 2.0) + 1).node is (gc.tanh(x * 2.0) + 1).node
    assert gc.sum(x, axis=-1).node is gc.sum(x, axis=0).node
    assert x[1:].node is x[1:3].node
    assert x[1:].node is not x[:2].node


def test_vars_are_distinct_per_call() -> None:
    a = var("x", (3,), F64)
    b = var("x", (3,), F64)
    assert a is not b
    assert ew.add(a, a) is not ew.add(b, b)
    assert gc.var("x").node is not gc.var("x").node


@pytest.mark.parametrize(
    ("left", "right"),
    [(0.0, -0.0), (1.0, 1), (1.0, np.float32(1.0)), (1.0, [1.0]), (True, 1), (np.zeros((2, 3)), np.zeros((3, 2))),
     (np.zeros(6), np.zeros((2, 3))), (np.nan, -np.nan), (1.0, 1.0 + 2**-52)],
    ids=stable_repr,
)  # fmt: skip
def test_consts_differ_by_dtype_shape_or_bytes(left: object, right: object) -> None:
    assert gc.const(left).node is not gc.const(right).node
    assert ConstValue(np.asarray(left)) != ConstValue(np.asarray(right))


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, np.nan, np.inf, 1, True, [1.5, np.nan], np.arange(12.0).reshape(3, 4), np.float32(np.nan)],
    ids=stable_repr,
)
def test_equal_consts_intern(value: object) -> None:
    """Constants compare by bytes, so a NaN constant equals itself and interns."""
    copy = np.array(value, copy=True)
    assert gc.const(value).node is gc.const(copy).node
    assert ConstValue(np.asarray(value)) == ConstValue(copy)
    assert hash(ConstValue(np.asarray(value))) == hash(ConstValue(copy))


def test_const_layout_does_not_matter() -> None:
    a = np.arange(6.0).reshape(2, 3)
    assert gc.const(np.asfortranarray(a)).node is gc.const(a).node
    assert gc.const(a.T).node is gc.const(np.ascontiguousarray(a.T)).node


def test_adding_zero_and_negative_zero_are_different_nodes() -> None:
    """x + 0.0 is not x for x = -0.0, x + -0.0 is: a simplifier must be able to tell them apart."""
    x = gc.var("x")
    assert (x + 0.0).node is not (x + -0.0).node
    assert gc.evaluate(x + 0.0, {x: -0.0}).tobytes() != gc.evaluate(x + -0.0, {x: -0.0}).tobytes()


def test_const_arrays_are_read_only() -> None:
    c = const(np.array([1.0, 2.0]))
    value = c.attr("value")
    assert isinstance(value, ConstValue)
    with pytest.raises(ValueError):
        value.array[0] = 3.0


# --- immutability, provenance -------------------------------------------------------------------------


def test_nodes_are_immutable() -> None:
    node = ew.exp(var("x", (2,), F64))
    for name in ("op", "inputs", "attrs", "type", "loc", "origin", "anything"):
        with pytest.raises(AttributeError):
            setattr(node, name, None)
    assert isinstance(node.inputs, tuple)
    assert isinstance(node.attrs, tuple)


def test_nodes_are_built_only_by_make() -> None:
    with pytest.raises(TypeError):
        Node()
    with pytest.raises(TypeError):
        pickle.dumps(var("x", (), F64))


def test_node_properties() -> None:
    x = var("x", (2, 3), np.dtype("float32"))
    s = rd.sum_(x, axis=(1,), keepdims=True)
    assert s.shape == (2, 1)
    assert s.dtype == np.dtype("float32")
    assert s.ndim == 2
    assert s.params == {"axis": (1,), "keepdims": True}
    assert s.attr("axis") == (1,)
    with pytest.raises(KeyError):
        s.attr("dtype")
    assert repr(s) == "<Node sum f32[2,1]>"


def test_provenance_is_the_first_build() -> None:
    x = gc.var("x", (3,))
    first = lineno() + 1
    y = gc.exp(x)
    z = gc.exp(x)  # the same node: its location is still the first line
    assert z.node is y.node
    assert y.node.loc == Location(__file__, first)


def test_derived_from_carries_origin_and_location() -> None:
    x = gc.var("x", (3,))
    y = gc.sin(x)
    with ir.derived_from(y.node):
        d = ew.cos(x.node)
    assert d.origin is y.node
    assert d.loc == y.node.loc


# --- toposort, Graph -----------------------------------------------------------------------------------


def test_toposort_diamond_order() -> None:
    x = var("x", (), F64)
    a = ew.exp(x)
    b = ew.sin(x)
    c = ew.add(a, b)
    d = ew.mul(c, a)
    assert toposort([d]) == [x, a, b, c, d]
    assert toposort([b, d]) == [x, b, a, c, d]
    assert toposort([d, d, c]) == [x, a, b, c, d]


def test_toposort_inputs_before_users_and_once() -> None:
    x = gc.var("x", (3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s) + gc.max(x * s)
    order = toposort([f.node])
    assert len(order) == len(set(map(id, order)))
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for child in node.inputs:
            assert position[id(child)] < position[id(node)]
    assert order[-1] is f.node
    assert [toposort([f.node]) for _ in range(3)] == [order] * 3


def test_graph_inputs_outputs_and_equality() -> None:
    x = gc.var("x", (3,))
    s = gc.var("s")
    f = gc.sum(x * s)
    g = Graph([f])
    assert g.inputs == (x.node, s.node)  # the vars, in toposort order
    assert Graph([f], [s, x]).inputs == (s.node, x.node)
    assert g.outputs == (f.node,)
    assert len(g) == len(g.nodes) == 4
    assert Graph([f]) == g
    assert hash(Graph([f])) == hash(g)
    assert Graph([f], [s, x]) != g
    assert Graph([f.node]) == g
    with pytest.raises(TypeError):
        Graph([1.0])


CHAIN = 100_000


def test_long_chain_builds_prints_and_evaluates_without_recursion() -> None:
    """A 10^5-node chain: every walk (toposort, printing, evaluation, freeing) is iterative."""
    x = var("x", (), F64)
    one = const(np.float64(1.0))
    node = x
    for _ in range(CHAIN):
        node = ew.add(node, one)
    graph = Graph([node])
    assert len(graph.nodes) == CHAIN + 2
    text = str(graph)
    lines = text.splitlines()
    assert len(lines) == CHAIN + 4
    assert lines[0] == "graph(%x: f64[]) {"
    assert lines[-3] == f"  %{CHAIN} = add(%{CHAIN - 1}, %0) : f64[]"
    assert gc.evaluate(node, {x: 0.5}) == CHAIN + 0.5
    del node, graph
    pygc.collect()


def test_long_shared_chain_is_linear() -> None:
    """Each node uses its predecessor twice: a walk without a visited set would take 2^n steps."""
    x = gc.var("x")
    node = x.node
    for _ in range(20_000):
        node = ew.maximum(node, node)
    assert len(toposort([node])) == 20_001
    assert gc.evaluate(node, {x: 3.0}) == 3.0


def test_long_frontend_chain() -> None:
    x = gc.var("x", (2,))
    y = x
    for _ in range(5_000):
        y = -gc.sin(y)
    want = np.array([0.3, -0.2])
    for _ in range(5_000):
        want = -np.sin(want)
    np.testing.assert_array_equal(gc.evaluate(y, {x: [0.3, -0.2]}), want)


# --- the canonical text form --------------------------------------------------------------------------

GOLDEN = """\
graph(%x: f64[2,3], %s: f64[], %x.1: f32[3]) {
  %0 = mul(%x, %s) : f64[2,3]
  %1 = tanh(%0) : f64[2,3]
  %2 = slice(%1, index=((0, 2, 1), (2, -1, -1))) : f64[2,3]
  %3 = const(2.) : f64[]
  %4 = pow(%2, %3) : f64[2,3]
  %5 = sum(%4, axis=(1,), keepdims=False) : f64[2]
  %6 = mul(%s, %s) : f64[]
  %7 = log1p(%6) : f64[]
  %8 = add(%5, %7) : f64[2]
  %9 = take(%x.1, %i?, axis=0) : f32[2]
  %10 = const([0., 1.]) : f32[2]
  %11 = mul(%9, %10) : f32[2]
  %12 = const(<10 values #f1c50b80>) : f32[10]
  %13 = sum(%12, axis=(0,), keepdims=False) : f32[]
  %14 = add(%11, %13) : f32[2]
  return %8, %14, %8
}"""


def golden_graph() -> Graph:
    x = gc.var("x", (2, 3))
    s = gc.var("s")
    x2 = gc.var("x", (3,), "float32")  # the same name again: printed as %x.1
    i = gc.var("i", (2,), "int64")  # reached but not listed: printed as %i?
    h = gc.tanh(x * s)[:, ::-1]
    f = gc.sum(h**2, axis=-1) + gc.log1p(s * s)
    g = gc.take(x2, i) * np.arange(10, dtype=np.float32)[:2] + gc.const(np.arange(10.0, dtype=np.float32)).sum()
    return Graph([f, g, f], [x, s, x2])


def test_text_form_golden() -> None:
    assert str(golden_graph()) == GOLDEN


def test_text_form_of_the_api_example() -> None:
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    assert str(Graph([f])) == (
        "graph(%x: f64[3], %s: f64[]) {\n"
        "  %0 = mul(%x, %s) : f64[3]\n"
        "  %1 = tanh(%0) : f64[3]\n"
        "  %2 = const(2.) : f64[]\n"
        "  %3 = pow(%1, %2) : f64[3]\n"
        "  %4 = sum(%3, axis=(0,), keepdims=False) : f64[]\n"
        "  %5 = mul(%s, %s) : f64[]\n"
        "  %6 = log1p(%5) : f64[]\n"
        "  %7 = add(%4, %6) : f64[]\n"
        "  return %7\n"
        "}"
    )


def test_text_form_of_special_constants() -> None:
    x = gc.var("x")
    values = [np.nan, -0.0, np.inf, 0.1, 1e-300, True, 7]
    text = str(Graph([x + v for v in values[:5]] + [gc.const(v) for v in values[5:]]))
    for spelled in (
        "const(nan) : f64[]",
        "const(-0.) : f64[]",
        "const(inf) : f64[]",
        "const(0.1) : f64[]",
        "const(1.e-300) : f64[]",
        "const(True) : bool[]",
        "const(7) : i64[]",
    ):
        assert spelled in text


def test_text_form_is_the_same_in_every_process() -> None:
    """No hash() of str/bytes (randomized per process) may reach the printout: PYTHONHASHSEED must not matter."""
    script = "import tests.test_ir as t; print(t.golden_graph())"
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=60
        )
        outputs.add(done.stdout)
    assert outputs == {GOLDEN + "\n"}


# --- the weak intern table -------------------------------------------------------------------------------


def test_unreferenced_nodes_are_freed() -> None:
    pygc.collect()
    before = len(ir._INTERNED)
    x = var("x", (4,), F64)
    node = x
    for k in range(1_000):
        node = ew.mul(ew.add(node, const(np.float64(k))), node)
    grown = len(ir._INTERNED)
    assert grown >= before + 2_000
    del x, node
    pygc.collect()
    assert len(ir._INTERNED) <= before + 10


def test_a_live_node_keeps_its_inputs() -> None:
    x = var("x", (2,), F64)
    y = ew.exp(ew.sin(ew.add(x, const(np.array([1.0, 2.0])))))
    pygc.collect()
    live = {id(n) for n in list(ir._INTERNED.values())}
    assert all(id(n) in live for n in toposort([y]))
    assert ew.sin(ew.add(x, const(np.array([1.0, 2.0])))) is y.inputs[0]
    np.testing.assert_array_equal(gc.evaluate(y, {x: [0.0, 1.0]}), np.exp(np.sin([1.0, 3.0])))


def test_collector_paused_restores_the_collectors_state_after_nesting_and_errors():
    collector = pygc

    from graphc.ir import collector_paused

    assert collector.isenabled()
    with collector_paused():
        assert not collector.isenabled()
        with collector_paused():
            assert not collector.isenabled()
        assert not collector.isenabled()  # the inner block's end does not resume it
    assert collector.isenabled()
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("user error inside")
    assert collector.isenabled()
    collector.disable()
    try:
        with collector_paused():
            pass
        assert not collector.isenabled()  # off before: stays off
    finally:
        collector.enable()


def test_compile_and_grad_leave_the_collector_on():
    collector = pygc

    x = gc.var("x", shape=(3,))
    g = gc.grad(gc.sum(gc.sin(x) * x), x)
    assert collector.isenabled()
    fn = gc.compile([x], g, backend="numpy")
    assert collector.isenabled()
    np.testing.assert_allclose(fn(np.arange(3.0)), np.cos(np.arange(3.0)) * np.arange(3.0) + np.sin(np.arange(3.0)))
    with pytest.raises(gc.GraphError):
        gc.compile([], g)  # x missing from inputs: the error leaves it on too
    assert collector.isenabled()
