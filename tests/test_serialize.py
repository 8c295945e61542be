"""gc.save / gc.load / gc.dumps / gc.loads: round trips of every op, and hostile documents.

Round trips: one case per op in graphc.ops.OPS (a new op without a case fails
test_every_op_has_a_case), loops and fused bodies, optimized graphs (fn.graph) and the
examples' graphs: same text form, the same document when written again, and
bit-identical results on both backends. Hostile documents raise GraphFormatError with a
path into the document, and nothing else (hypothesis fuzzes mutated and random documents).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
import math
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opspecs import generate
from test_named_dims import CASES as NAMED_OP_CASES

import graphc as gc
from graphc.errors import GraphError
from graphc.ir import Graph, Node, as_node, toposort
from graphc.ops import OPS
from graphc.serialize.fields import attr_spec
from graphc.shapes import MAX_DEGREE, MAX_TERMS, dim_names, evaluate_shape

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "graphc" / "schema" / "graph-v1.json"
Case = tuple[list[gc.Tensor], list[gc.Tensor]]


# --- one case per op -------------------------------------------------------------------------------

SIGNATURES: list[tuple[tuple[tuple[int, ...], str], ...]] = [
    (((2, 3), "float64"),),
    (((2, 3), "float64"), ((3,), "float64")),
    (((2, 3), "bool"), ((3,), "bool")),
    (((2, 3), "bool"),),
    (((2, 3), "bool"), ((2, 3), "float64"), ((1, 3), "float64")),
    (((2, 3), "float64"), ((3, 4), "float64")),
]


def auto_case(name: str) -> Case:
    """An op without attrs on the first operand types its infer accepts (vars named after the op)."""
    for signature in SIGNATURES:
        xs = [gc.var(f"{name}_{k}", shape, dtype) for k, (shape, dtype) in enumerate(signature)]
        try:
            node = OPS[name](*(x.node for x in xs))
        except (GraphError, TypeError):
            continue
        return xs, [gc.Tensor(node)]
    raise AssertionError(f"no operand signature fits {name}: give it a case in CASES")


def var_case(p: str = "") -> Case:
    x = gc.var(f"{p}x", (2, 3))
    unused = gc.var(f"{p}unused", (4,), "int64")
    return [x, unused], [x]


def const_case(p: str = "") -> Case:
    x = gc.var(f"{p}x", (3,))
    return [x], [x + gc.const(np.array([1.5, -0.0, np.inf])), gc.const(np.arange(6).reshape(2, 3))]


def fused_case(p: str = "") -> Case:
    x, y = gc.var(f"{p}x", (4, 3)), gc.var(f"{p}y", (3,))
    loss = gc.sum(gc.tanh(x * y) ** 2 + gc.exp(-x))
    return [x, y], gc.optimize([loss, gc.grad(loss, y)])


def dim_case(p: str = "") -> Case:
    """Means over named axes divide by `dim` nodes: a name (batch) and a product (3*batch)."""
    x = gc.var(f"{p}x", ("batch", 3))
    return [x], [gc.mean(x, axis=0), gc.mean(x * x)]


def scan_case(p: str = "") -> Case:
    W, xs, h0 = gc.var(f"{p}W", (3, 3)), gc.var(f"{p}xs", (5, 2, 3)), gc.var(f"{p}h0", (2, 3))

    def step(h: gc.Tensor, x_t: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = gc.tanh(h @ W + x_t)
        return h, gc.sum(h, axis=1)

    h_T, ys = gc.scan(step, h0, xs)
    loss = gc.sum(h_T**2) + gc.sum(ys)
    return [W, xs, h0], [loss, *gc.grad(loss, [W, h0])]


def fixed_point_case(p: str = "") -> Case:
    P, u = gc.var(f"{p}P", (3, 3)), gc.var(f"{p}u", (3,))
    z = gc.fixed_point(lambda z, P, u: gc.tanh(0.3 * (P @ z) + u), gc.const(np.zeros(3)), P, u, tol=1e-12)
    loss = gc.sum(z**2)
    return [P, u], [z, gc.grad(loss, P)]


def gather_case(name: str) -> Case:
    x, idx = gc.var(f"{name}_x", (2, 5)), gc.var(f"{name}_idx", (4,), "int64")
    if name == "take":
        return [x, idx], [gc.take(x, idx, axis=1)]
    g = gc.var(f"{name}_g", (2, 4))
    return [g, idx], [gc.Tensor(OPS["scatter_add"](g.node, idx.node, axis=1, size=5))]


def reduce_case(name: str) -> Case:
    x = gc.var(f"{name}_x", (2, 3, 4))
    functions: dict[str, Callable[..., gc.Tensor]] = {
        "sum": lambda: gc.sum(x, axis=1),
        "prod": lambda: gc.prod(x, axis=(0, 2), keepdims=True),
        "max": lambda: gc.max(x),
        "min": lambda: gc.min(x, axis=-1),
        "logsumexp": lambda: gc.logsumexp(x, axis=(0, 1)),
        "argmax": lambda: gc.argmax(x, axis=2),
        "argmin": lambda: gc.argmin(x),
    }
    return [x], [functions[name]()]


def shape_case(name: str) -> Case:
    x = gc.var(f"{name}_x", (2, 3))
    functions: dict[str, Callable[[], gc.Tensor]] = {
        "astype": lambda: x.astype("float32"),
        "reshape": lambda: x.reshape((3, 2)),
        "transpose": lambda: x.T,
        "broadcast_to": lambda: gc.broadcast_to(x, (4, 2, 3)),
        "slice": lambda: x[1:, ::-2],
        "unslice": lambda: gc.Tensor(OPS["unslice"](x.node, index=((1, 3, 1), (0, 5, 2)), shape=(4, 5))),
        "concatenate": lambda: gc.concatenate([x, x * 2.0, x], axis=0),
    }
    return [x], [functions[name]()]


CASES: dict[str, Callable[[], Case]] = {
    "var": lambda: var_case("var_"),
    "const": lambda: const_case("const_"),
    "dim": lambda: dim_case("dim_"),
    "fused": lambda: fused_case("fused_"),
    "scan": lambda: scan_case("scan_"),
    "fixed_point": lambda: fixed_point_case("fixed_point_"),
    **{name: (lambda name=name: gather_case(name)) for name in ("take", "scatter_add")},
    **{
        name: (lambda name=name: reduce_case(name))
        for name in ("sum", "prod", "max", "min", "logsumexp", "argmax", "argmin")
    },
    **{
        name: (lambda name=name: shape_case(name))
        for name in ("astype", "reshape", "transpose", "broadcast_to", "slice", "unslice", "concatenate")
    },
}


@functools.cache
def generated_cases() -> dict[str, Case]:
    """For each op, the first case of the generated differential suite (tests/opspecs.py) that builds it."""
    cases, _ = generate("default")
    first: dict[str, Case] = {}
    for case in cases:
        if case.op not in first and case.op in ops_in(case.values):
            inputs = case.inputs[: len(case.inputs) - (1 if case.grads else 0)]
            FEEDS.update(zip(inputs, case.feed, strict=False))
            first[case.op] = (inputs, case.values)
    return first


def case_for(name: str) -> Case:
    """The hand-written case, else the generated suite's (every op has a spec there), else one from infer."""
    if name in CASES:
        return CASES[name]()
    generated = generated_cases()
    if name in generated:
        return generated[name]
    assert not attr_spec(OPS[name]).hints, f"{name} takes attrs: give it a case in CASES or tests/opspecs.py"
    return auto_case(name)


def ops_in(outputs: list[gc.Tensor]) -> set[str]:
    """Every op name in the graph of `outputs`, bodies included."""
    found: set[str] = set()
    stack = [o.node for o in outputs]
    seen: set[Node] = set()
    while stack:
        for node in toposort(stack):
            found.add(node.op.name)
        stack = [
            n for node in toposort(stack) for _, v in node.attrs if isinstance(v, Graph) for n in v.outputs
        ]  # fmt: skip
        stack = [n for n in stack if n not in seen]
        seen.update(stack)
    return found


# --- helpers ---------------------------------------------------------------------------------------


def text_of(inputs: list[gc.Tensor], outputs: object) -> str:
    outs = [outputs] if isinstance(outputs, gc.Tensor) else list(outputs)  # type: ignore[call-overload]
    return str(Graph([as_node(o) for o in outs], [as_node(i) for i in inputs]))


NAMED_FEEDS: dict[gc.Tensor, Callable[[dict[str, int]], np.ndarray]] = {}  # named cases' values, by sizes
FEEDS: dict[gc.Tensor, np.ndarray] = {}  # the generated suite's values for its vars (valid indices, SPD matrices...)


SIZE = 3  # the size of a named dimension where a test does not give one


def concrete(shape: tuple[object, ...], sizes: dict[str, int] | None = None) -> tuple[int, ...]:
    """The shape with each named dimension at its size in `sizes` (SIZE for names not there)."""
    given = sizes or {}
    return evaluate_shape(shape, {name: given.get(name, SIZE) for name in dim_names(shape)})  # type: ignore[arg-type]


def values_for(inputs: list[gc.Tensor], seed: int = 0, sizes: dict[str, int] | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    values = []
    for x in inputs:
        shape = concrete(x.shape, sizes)
        if x in FEEDS:
            values.append(FEEDS[x])
        elif x in NAMED_FEEDS and sizes is not None:
            values.append(NAMED_FEEDS[x](sizes))
        elif x.dtype == np.bool_:
            values.append(rng.random(shape) < 0.5)
        elif x.dtype == np.int64:
            values.append(rng.integers(0, 2, shape))
        else:
            values.append(rng.uniform(-1.5, 1.5, shape).astype(x.dtype))
    return values


def same_bits(a: object, b: object) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def round_trip(inputs: list[gc.Tensor], outputs: object) -> tuple[str, list[gc.Tensor], object]:
    """The document, and the graph read back from it; checks the text form and a second write."""
    text = gc.dumps(inputs, outputs)
    inputs2, outputs2 = gc.loads(text)
    assert text_of(inputs2, outputs2) == text_of(inputs, outputs)
    assert gc.dumps(inputs2, outputs2) == text
    return text, inputs2, outputs2


def assert_same_results(inputs: list[gc.Tensor], outputs: list[gc.Tensor], backend: str, **options: object) -> None:
    """The original and the reloaded graph compile to functions with bit-identical results."""
    _, inputs2, outputs2 = round_trip(inputs, outputs)
    args = values_for(inputs)
    want = gc.compile(inputs, outputs, backend=backend, **options)(*args)  # type: ignore[arg-type]
    got = gc.compile(inputs2, outputs2, backend=backend, **options)(*args)  # type: ignore[arg-type]
    for k, (w, g) in enumerate(zip(want, got, strict=True)):  # type: ignore[call-overload]
        assert same_bits(w, g), f"output {k}: {w} != {g}"


# --- round trips -----------------------------------------------------------------------------------


def test_every_op_has_a_case() -> None:
    covered: set[str] = set()
    for name in OPS:
        _, outputs = case_for(name)
        covered |= ops_in(outputs)
    assert covered == set(OPS)


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_op_round_trips_with_identical_results(name: str) -> None:
    inputs, outputs = case_for(name)
    assert name in ops_in(outputs)
    _, inputs2, outputs2 = round_trip(inputs, outputs)
    args = values_for(inputs)
    want = gc.evaluate(outputs, dict(zip(inputs, args, strict=True)))
    got = gc.evaluate(outputs2, dict(zip(inputs2, args, strict=True)))
    assert all(same_bits(w, g) for w, g in zip(want, got, strict=True))
    assert_same_results(inputs, outputs, "numpy")


def test_every_op_on_the_llvm_backend_and_the_same_cache_key(tmp_path: Path) -> None:
    """All cases in one function: bit-identical, and the reloaded graph hits the compile cache."""
    inputs: list[gc.Tensor] = []
    outputs: list[gc.Tensor] = []
    for name in sorted(OPS):
        ins, outs = case_for(name)
        inputs += ins
        outputs += outs
    _, inputs2, outputs2 = round_trip(inputs, outputs)
    first = gc.compile(inputs, outputs, cache_dir=tmp_path)
    second = gc.compile(inputs2, outputs2, cache_dir=tmp_path)
    assert first.named == ("batch",)  # the dim case: compiled per size
    assert str(second.graph) == str(first.graph)
    args = values_for(inputs)
    want = first(*args)  # type: ignore[call-overload]
    assert second.specialize(batch=SIZE)._built.cache_hit  # type: ignore[union-attr]
    for w, g in zip(want, second(*args), strict=True):  # type: ignore[call-overload]
        assert same_bits(w, g)


def test_a_node_may_use_one_operand_twice() -> None:
    x = gc.var("x")
    inputs, y = gc.loads(gc.dumps([x], x * x))  # node 1 refers to node 0 twice
    assert gc.evaluate([y], {inputs[0]: 3.0})[0] == 9.0  # type: ignore[list-item]


def test_a_single_output_comes_back_single_and_inputs_keep_their_order() -> None:
    x, y = gc.var("x", (3,)), gc.var("y", (3,))
    inputs, output = gc.loads(gc.dumps([y, x], gc.sum(x * y)))
    assert isinstance(output, gc.Tensor)
    assert [t.name for t in inputs] == ["y", "x"]
    _, outputs = gc.loads(gc.dumps(x, [gc.sum(x)]))
    assert isinstance(outputs, list)


def test_loaded_vars_are_new_vars_and_documents_do_not_depend_on_how_many_vars_exist() -> None:
    def build() -> Case:
        x = gc.var("x", (2,))
        twin = gc.var("x", (2,))  # the same name twice: two vars
        return [x, twin], [x * twin]

    inputs, outputs = build()
    for _ in range(5):
        gc.var("noise")
    inputs_again, outputs_again = build()
    text = gc.dumps(inputs, outputs)
    assert gc.dumps(inputs_again, outputs_again) == text
    inputs2, outputs2 = gc.loads(text)
    assert inputs2[0].node is not inputs[0].node and inputs2[0].node is not inputs2[1].node
    out = gc.evaluate(outputs2, {inputs2[0]: [1.0, 2.0], inputs2[1]: [3.0, 4.0]})
    assert out[0].tolist() == [3.0, 8.0]


def test_constants_keep_every_bit() -> None:
    specials = np.array([np.nan, -np.nan, -0.0, np.inf, -np.inf, 5e-324, -2.2e-308, 1e300, 1 / 3])
    arrays = [
        specials,
        np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45, 3e38, 1 / 3], dtype=np.float32),
        np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max]),
        np.array([[True, False], [False, True]]),
        np.zeros((0, 3)),
        np.asarray(7.25),
        np.arange(12.0).reshape(3, 4).T,  # not C-contiguous when given
    ]
    outputs = [gc.const(a) for a in arrays]
    _, outputs2 = gc.loads(gc.dumps([], outputs))
    for a, t in zip(arrays, outputs2, strict=True):  # type: ignore[arg-type]
        (value,) = gc.evaluate([t], {})
        assert same_bits(value, np.array(a, order="C"))


def test_float_attrs_round_trip_exactly() -> None:
    for tol in (0.0, 1e-300, 0.1, 5e-324):
        _, outputs = fixed_point_case_with(tol)
        _, outputs2 = gc.loads(gc.dumps([], outputs))
        (fp,) = [n for n in toposort([o.node for o in outputs2]) if n.op.name == "fixed_point"]  # type: ignore[union-attr]
        assert fp.attr("tol") == tol and type(fp.attr("tol")) is float


def fixed_point_case_with(tol: float) -> Case:
    z = gc.fixed_point(lambda z: 0.5 * z, gc.const(np.ones(2)), tol=tol, max_iter=5000)
    return [], [z]


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
@pytest.mark.parametrize("case", [fused_case, scan_case, fixed_point_case])
def test_loops_and_fused_bodies_round_trip(case: Callable[[], Case], backend: str) -> None:
    inputs, outputs = case()
    assert_same_results(inputs, outputs, backend)


@pytest.mark.parametrize("case", [fused_case, scan_case, fixed_point_case])
def test_optimized_graphs_round_trip(case: Callable[[], Case]) -> None:
    """fn.graph written and read back compiles (optimize=False) to the same results as fn."""
    inputs, outputs = case()
    fn = gc.compile(inputs, outputs, backend="numpy")
    _, inputs2, outputs2 = round_trip(list(fn.graph.inputs), list(fn.graph.outputs))  # type: ignore[arg-type]
    assert text_of(inputs2, outputs2) == str(fn.graph)
    again = gc.compile(inputs2, outputs2, backend="numpy", optimize=False)
    args = values_for(inputs)
    for w, g in zip(fn(*args), again(*args), strict=True):  # type: ignore[call-overload]
        assert same_bits(w, g)


def test_shared_bodies_are_written_once() -> None:
    inputs, outputs = scan_case()
    doc = json.loads(gc.dumps(inputs, outputs))
    bodies = [json.dumps(n["attrs"]["body"]) for n in doc["nodes"] if n["op"] == "scan"]
    nodes = [n for n in doc["nodes"] if n["op"] == "scan"]
    assert len(nodes) > len(set(bodies))  # sibling results of one loop refer to one body
    assert len(doc["nodes"]) == len({json.dumps(n, sort_keys=True) for n in doc["nodes"]})


# --- the examples' graphs --------------------------------------------------------------------------


def example(name: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def example_cases(monkeypatch: pytest.MonkeyPatch) -> dict[str, Case]:
    digits = example("train_digits", monkeypatch)
    rnn = example("rnn_sequence", monkeypatch)
    newton = example("jacobian_newton", monkeypatch)
    net = digits.build_network()  # type: ignore[attr-defined]
    net_params = [net.params[k] for k in sorted(net.params)]
    params, xs, targets, loss = rnn.build_rnn()  # type: ignore[attr-defined]
    eq_params, x, y, eq_loss = rnn.build_equilibrium(8, 4)  # type: ignore[attr-defined]
    v = gc.var("v", (5,))
    u = gc.var("u", (3,))
    return {
        "digits": ([net.images, net.labels, *net_params], [net.loss, *gc.grad(net.loss, net_params)]),
        "rnn": ([*params, xs, targets], [loss, *gc.grad(loss, params)]),
        "equilibrium": ([*eq_params, x, y], [eq_loss, *gc.grad(eq_loss, eq_params)]),
        "rosenbrock": ([v], [newton.rosenbrock(v), gc.hessian(newton.rosenbrock(v), v)]),  # type: ignore[attr-defined]
        "newton_system": ([u], [newton.system(u), gc.jacobian(newton.system(u), u)]),  # type: ignore[attr-defined]
    }


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_the_examples_graphs_round_trip(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (inputs, outputs) in example_cases(monkeypatch).items():
        try:
            assert_same_results(inputs, outputs, backend)
        except AssertionError as exc:
            raise AssertionError(f"example graph {name}: {exc}") from exc


# --- named dimensions ------------------------------------------------------------------------------


@gc.custom_vjp
def row_norms(x: gc.Tensor) -> gc.Tensor:
    """The norm of each row, with a rule that is 0 at a zero row (a `custom` node on named shapes)."""
    return gc.sqrt(gc.sum(x * x, axis=-1))


@row_norms.defvjp
def _row_norms_vjp(ct: gc.Tensor, out: gc.Tensor, x: gc.Tensor) -> list[gc.Tensor]:
    return [gc.reshape(ct, (-1, 1)) * gc.where(gc.reshape(out, (-1, 1)) > 0, x / gc.reshape(out, (-1, 1)), 0.0)]


def named_model_case(p: str = "") -> Case:
    """A model with named dimensions wherever the format holds them, and its gradients.

    Var shapes, matmul, a mean (a `dim` node), reshape to a product (4*batch), named slice
    bounds and their gradient's unslice, concatenation (a sum of dims), take over a named
    axis (its gradient: scatter_add of a named size), a scan over a named length, a
    fixed point with a named batch, a custom rule and stop_gradient.
    """
    X, y = gc.var(f"{p}X", ("batch", 4)), gc.var(f"{p}y", ("batch",), "int64")
    seq, idx = gc.var(f"{p}seq", ("T", "batch", 4)), gc.var(f"{p}idx", ("k",), "int64")
    W = gc.var(f"{p}W", (4, 4))
    h = gc.tanh(X @ W)
    loss = -gc.mean(gc.sum(gc.log_softmax(h, axis=-1) * gc.one_hot(y, 4), axis=-1))
    flat = gc.reshape(X, (-1,))
    rolled = gc.concatenate([X[1:], X[:1], X[-2:]], axis=0)
    rows = gc.take(X, idx, axis=0)
    h_T, hs = gc.scan(lambda c, x_t: (gc.tanh(c @ W + x_t), gc.sum(c, axis=-1)), X, seq)
    z = gc.fixed_point(lambda z, X: gc.tanh(0.5 * z + X), X * 0.0, X, tol=1e-13)
    total = (
        loss + gc.sum(flat**2) + gc.sum(rolled * gc.stop_gradient(rolled)) + gc.sum(rows**3)
        + gc.sum(h_T) + gc.mean(hs) + gc.sum(z) + gc.sum(row_norms(X))
    )  # fmt: skip
    return [X, y, seq, idx, W], [total, *gc.grad(total, [X, seq, W]), rolled, hs]


def named_op_cases() -> Case:
    """Every op's case with named dimensions from tests/test_named_dims.py, in one graph."""
    inputs: list[gc.Tensor] = []
    outputs: list[gc.Tensor] = []
    for name, group in NAMED_OP_CASES.items():
        for k, (specs, build, values, _fits) in enumerate(group):
            made = [gc.var(f"{name}{k}_{v}", shape=shape, dtype=dtype) for v, shape, dtype in specs]
            inputs += made
            outputs.append(build(*made))
            given = set(values(NAMED_SIZES[0])) if values is not None else set()
            for t, (v, _, _) in zip(made, specs, strict=True):  # the values the case needs (SPD matrices, indices)
                if v in given:
                    NAMED_FEEDS[t] = lambda sizes, values=values, v=v: values(sizes)[v]
    return inputs, outputs


NAMED_SIZES = (
    {"batch": 3, "T": 2, "k": 5, "a": 3, "b": 4, "c": 2},
    {"batch": 7, "T": 4, "k": 1, "a": 7, "b": 1, "c": 0},
)


def test_named_dimensions_are_written_as_names_or_terms() -> None:
    x = gc.var("x", ("batch", "T", 2))
    flat = gc.reshape(x, (-1, 2))[1:]  # (T*batch-1, 2): a product, then a sum
    doc = json.loads(gc.dumps([x], [flat, gc.mean(x)]))
    var, *_ = doc["nodes"]
    assert var["shape"] == var["attrs"]["shape"] == ["batch", "T", 2]
    assert doc["nodes"][2]["shape"] == [{"dim": [[1, ["T", "batch"]], [-1, []]]}, 2]
    dims = [n["attrs"]["size"] for n in doc["nodes"] if n["op"] == "dim"]
    assert dims == [{"dim": [[2, ["T", "batch"]]]}]
    square = gc.var("s", ("batch", "batch"))
    doc = json.loads(gc.dumps([square], gc.reshape(square, (-1,)) * 1.0))
    assert doc["nodes"][1]["attrs"]["shape"] == [{"dim": [[1, ["batch", "batch"]]]}]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's own warnings (log of negatives and the like)
@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_named_graphs_round_trip_with_the_same_results_at_every_size(backend: str, tmp_path: Path) -> None:
    """One function of every named case: same text, same signature, bit-identical at two sets of sizes."""
    model_inputs, model_outputs = named_model_case("m_")
    op_inputs, op_outputs = named_op_cases()
    inputs, outputs = model_inputs + op_inputs, model_outputs + op_outputs
    text, inputs2, outputs2 = round_trip(inputs, outputs)
    assert '{"dim": ' in text and '"op": "custom"' in text and '"op": "stop_gradient"' in text
    first = gc.compile(inputs, outputs, backend=backend, cache_dir=tmp_path)
    second = gc.compile(inputs2, outputs2, backend=backend, cache_dir=tmp_path)
    assert second.signature == first.signature and str(second.graph) == str(first.graph)
    for sizes in NAMED_SIZES:
        args = values_for(inputs, sizes=sizes)
        want = first(*args)  # type: ignore[call-overload]
        if backend == "llvm":  # the same compile cache key, size by size
            assert second.specialize(**{n: sizes[n] for n in second.named})._built.cache_hit  # type: ignore[union-attr]
        got = second(*args)  # type: ignore[call-overload]
        for k, (w, g) in enumerate(zip(want, got, strict=True)):
            assert same_bits(w, g), f"output {k} at {sizes}: {w} != {g}"
    assert second.specializations == first.specializations


def test_an_optimized_named_graph_round_trips() -> None:
    """fn.graph of a named function (fused bodies on named shapes) compiles to the same results, size by size."""
    inputs, outputs = named_model_case()
    fn = gc.compile(inputs, outputs, backend="numpy")
    _, inputs2, outputs2 = round_trip(list(fn.graph.inputs), list(fn.graph.outputs))  # type: ignore[arg-type]
    assert "fused" in ops_in(outputs2)  # type: ignore[arg-type]
    again = gc.compile(inputs2, outputs2, backend="numpy", optimize=False)
    for sizes in NAMED_SIZES:
        args = values_for(inputs, sizes=sizes)
        for w, g in zip(fn(*args), again(*args), strict=True):  # type: ignore[call-overload]
            assert same_bits(w, g)


# --- files, sidecars, provenance -------------------------------------------------------------------


def test_save_and_load_a_file(tmp_path: Path) -> None:
    inputs, outputs = scan_case()
    path = tmp_path / "model.graphc.json"
    gc.save(path, inputs, outputs)
    assert path.read_text() == gc.dumps(inputs, outputs)
    inputs2, outputs2 = gc.load(path)
    assert text_of(inputs2, outputs2) == text_of(inputs, outputs)
    assert not (tmp_path / "model.graphc.npz").exists()


def test_large_constants_go_to_a_sidecar(tmp_path: Path) -> None:
    x = gc.var("x", (100,))
    big = np.random.default_rng(1).standard_normal(100)
    outputs = [gc.sum(x * big) + 1.0]
    path = tmp_path / "m.graphc.json"
    gc.save(path, [x], outputs, npz_threshold=400)
    doc = json.loads(path.read_text())
    assert doc["constants_file"] == "m.graphc.npz"
    assert str(big[0]) not in path.read_text() and "base64" in path.read_text()  # small constants stay inline
    inputs2, outputs2 = gc.load(path)
    assert text_of(inputs2, outputs2) == text_of([x], outputs)
    with pytest.raises(gc.GraphFormatError, match="sidecar") as info:
        gc.loads(path.read_text())
    assert info.value.path.endswith(".npz")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.unlink(),
        lambda p: p.write_bytes(b"not a zip file"),
        lambda p: np.savez(p, c0=np.zeros(99)),  # another shape
        lambda p: np.savez(p, c0=np.zeros(100, dtype=np.float32)),  # another dtype
        lambda p: np.savez(p, c0=np.array([object()] * 100, dtype=object), allow_pickle=True),  # a pickle
        lambda p: np.savez(p, other=np.zeros(100)),  # no such key
    ],
)
def test_a_tampered_sidecar_is_a_format_error(tamper: Callable[[Path], None], tmp_path: Path) -> None:
    x = gc.var("x", (100,))
    path = tmp_path / "m.graphc.json"
    gc.save(path, [x], [x * np.arange(100.0)], npz_threshold=1)
    tamper(tmp_path / "m.graphc.npz")
    with pytest.raises(gc.GraphFormatError) as info:
        gc.load(path)
    assert info.value.path.startswith("$.nodes[")


def test_provenance_is_saved_on_request_and_restored() -> None:
    x = gc.var("x", (3,))
    y = gc.tanh(x) * 3.0  # this line is recorded
    here = y.node.loc
    assert here is not None and here.file == __file__
    assert '"loc"' not in gc.dumps([x], y)
    text = gc.dumps([x], y, provenance=True)
    doc = json.loads(text)
    assert doc["nodes"][-1]["loc"] == [here.file, here.line]
    del x, y  # the interned nodes go, so loading builds them afresh
    _, y2 = gc.loads(text)
    assert y2.node.loc == here  # type: ignore[union-attr]


def test_bad_arguments_to_save_and_load() -> None:
    x = gc.var("x", (3,))
    with pytest.raises(TypeError, match="must be a var"):
        gc.dumps([x * 2.0], [x])
    with pytest.raises(ValueError, match="listed twice"):
        gc.dumps([x, x], [x])
    with pytest.raises(TypeError, match="Tensor"):
        gc.dumps([x], [np.zeros(3)])
    with pytest.raises(TypeError):
        gc.dumps([x], "x")
    with pytest.raises(TypeError, match="str"):
        gc.loads(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_nodes"):
        gc.loads(gc.dumps([x], x), max_nodes=0)
    with pytest.raises(ValueError, match="max_depth"):
        gc.loads(gc.dumps([x], x), max_depth=True)  # type: ignore[arg-type]


def test_every_document_we_write_validates_against_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    cases = [case_for(name) for name in sorted(OPS)] + list(example_cases(monkeypatch).values())
    cases += [named_model_case(), named_op_cases()]
    for inputs, outputs in cases:
        validator.validate(json.loads(gc.dumps(inputs, outputs, provenance=True)))
    bad = json.loads(gc.dumps(*var_case()))
    bad["nodes"][0]["op"] = "__import__"
    assert not validator.is_valid(bad)


def test_the_schema_admits_every_registered_op_and_refuses_what_is_no_name() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    op = jsonschema.Draft202012Validator({**schema["$defs"]["op"], "$defs": schema["$defs"]})
    assert all(op.is_valid(name) for name in OPS)
    assert not any(op.is_valid(name) for name in ["__import__", "os.system", "", "Add", 3, None])
    assert schema["$defs"]["dtype"]["enum"] == ["float64", "float32", "int64", "bool"]
    dim = jsonschema.Draft202012Validator({**schema["$defs"]["dim"], "$defs": schema["$defs"]})
    assert all(dim.is_valid(d) for d in [0, 7, "batch", "_n2", "批", {"dim": [[2, ["T", "batch"]], [-1, []]]}])
    bad_dims = [-1, "", "1a", "a b", "a-1", "x" * 257, {"dim": []}, {"dim": [[0, ["a"]]]}, {"dim": [[1, ["a"], 3]]}]
    assert not any(dim.is_valid(d) for d in bad_dims)


# --- hostile documents -----------------------------------------------------------------------------


def rich_document() -> dict:
    """A document with vars, constants, a fused body, a scan and reductions (as parsed JSON)."""
    x, W = gc.var("x", (4, 3)), gc.var("W", (3, 3))
    h_T, _ = gc.scan(lambda h, x_t: (gc.tanh(h @ W + x_t), h), gc.const(np.zeros(3)), x)
    loss = gc.sum(gc.exp(x) * 2.0, axis=1)
    outputs = gc.optimize([loss, h_T, gc.argmax(x, axis=0)])
    return json.loads(gc.dumps([x, W], outputs))


def first(doc: dict, op: str) -> int:
    return next(k for k, n in enumerate(doc["nodes"]) if n["op"] == op)


def set_at(doc: dict, path: list[object], value: object) -> dict:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def drop_at(doc: dict, path: list[object]) -> dict:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return doc


def hostile_documents() -> list[tuple[str, object, str]]:
    """(what, document or text, the path the error must point at)."""
    doc = rich_document()
    var, const, scan = first(doc, "var"), first(doc, "const"), first(doc, "scan")
    sum_k, argmax = first(doc, "sum"), first(doc, "argmax")
    n = len(doc["nodes"])
    text = json.dumps(doc)
    node = f"$.nodes[{var}]"
    return [
        ("unknown op", set_at(doc, ["nodes", var, "op"], "no_such_op"), f"{node}.op"),
        ("an import-like op", set_at(doc, ["nodes", var, "op"], "__import__"), f"{node}.op"),
        ("a dotted op", set_at(doc, ["nodes", var, "op"], "os.system"), f"{node}.op"),
        ("op not a string", set_at(doc, ["nodes", var, "op"], ["var"]), f"{node}.op"),
        (
            "huge var",
            set_at(
                set_at(doc, ["nodes", var, "attrs", "shape"], [10**6, 10**6]), ["nodes", var, "shape"], [10**6, 10**6]
            ),
            f"{node}.shape",
        ),
        (
            "huge const",
            set_at(doc, ["nodes", const, "attrs", "value", "array", "shape"], [10**10]),
            f"$.nodes[{const}].attrs.value.array.shape",
        ),
        (
            "short const data",
            set_at(doc, ["nodes", const, "attrs", "value", "array", "shape"], [7]),
            f"$.nodes[{const}].attrs.value.array.base64",
        ),
        ("forward reference", set_at(doc, ["nodes", argmax, "inputs"], [n - 1]), f"$.nodes[{argmax}].inputs[0]"),
        ("self reference", set_at(doc, ["nodes", argmax, "inputs"], [argmax]), f"$.nodes[{argmax}].inputs[0]"),
        ("negative index", set_at(doc, ["nodes", argmax, "inputs"], [-1]), f"$.nodes[{argmax}].inputs[0]"),
        ("bool index", set_at(doc, ["nodes", argmax, "inputs"], [True]), f"$.nodes[{argmax}].inputs[0]"),
        ("index as text", set_at(doc, ["nodes", argmax, "inputs"], ["0"]), f"$.nodes[{argmax}].inputs[0]"),
        ("inputs not a list", set_at(doc, ["nodes", argmax, "inputs"], 0), f"$.nodes[{argmax}].inputs"),
        ("too many operands", set_at(doc, ["nodes", argmax, "inputs"], [0, 0]), f"$.nodes[{argmax}].inputs"),
        ("output out of range", set_at(doc, ["outputs"], [0, n]), "$.outputs[1]"),
        ("input not a var", set_at(doc, ["inputs"], [argmax]), "$.inputs"),
        ("input twice", set_at(doc, ["inputs"], [var, var]), "$.inputs"),
        ("axis as text", set_at(doc, ["nodes", argmax, "attrs", "axis"], "0"), f"$.nodes[{argmax}].attrs.axis"),
        ("keepdims as int", set_at(doc, ["nodes", sum_k, "attrs", "keepdims"], 1), f"$.nodes[{sum_k}].attrs.keepdims"),
        ("axis out of range", set_at(doc, ["nodes", argmax, "attrs", "axis"], 7), f"$.nodes[{argmax}]"),
        ("huge int", set_at(doc, ["nodes", argmax, "attrs", "axis"], 10**30), f"$.nodes[{argmax}].attrs.axis"),
        ("huge float", set_at(doc, ["nodes", argmax, "attrs", "axis"], 1e308), f"$.nodes[{argmax}].attrs.axis"),
        ("missing attr", drop_at(doc, ["nodes", argmax, "attrs", "axis"]), f"$.nodes[{argmax}].attrs"),
        ("unknown attr", set_at(doc, ["nodes", argmax, "attrs", "evil"], 1), f"$.nodes[{argmax}].attrs.evil"),
        ("odd attr name", set_at(doc, ["nodes", argmax, "attrs", "a b"], 1), f'$.nodes[{argmax}].attrs["a b"]'),
        ("missing key", drop_at(doc, ["nodes", argmax, "op"]), f"$.nodes[{argmax}]"),
        ("unknown key", set_at(doc, ["nodes", argmax, "evil"], 1), f"$.nodes[{argmax}]"),
        ("node not an object", set_at(doc, ["nodes", argmax], [1, 2]), f"$.nodes[{argmax}]"),
        ("wrong recorded dtype", set_at(doc, ["nodes", argmax, "dtype"], "float64"), f"$.nodes[{argmax}]"),
        ("wrong recorded shape", set_at(doc, ["nodes", argmax, "shape"], [4]), f"$.nodes[{argmax}]"),
        (
            "unknown dtype",
            set_at(doc, ["nodes", var, "attrs", "dtype"], {"dtype": "object"}),
            f"{node}.attrs.dtype.dtype",
        ),
        ("dtype as plain text", set_at(doc, ["nodes", var, "attrs", "dtype"], "float64"), f"{node}.attrs.dtype"),
        (
            "unknown tag",
            set_at(doc, ["nodes", argmax, "attrs", "axis"], {"pickle": "x"}),
            f"$.nodes[{argmax}].attrs.axis",
        ),
        (
            "two tags",
            set_at(doc, ["nodes", argmax, "attrs", "axis"], {"float": "nan", "dtype": "bool"}),
            f"$.nodes[{argmax}].attrs.axis",
        ),
        (
            "bad tagged float",
            set_at(doc, ["nodes", argmax, "attrs", "axis"], {"float": "1e999"}),
            f"$.nodes[{argmax}].attrs.axis.float",
        ),
        (
            "deeply nested value",
            set_at(doc, ["nodes", argmax, "attrs", "axis"], json.loads("[" * 20 + "]" * 20)),
            f"$.nodes[{argmax}].attrs.axis" + "[0]" * 8,
        ),
        ("newline in a var name", set_at(doc, ["nodes", var, "attrs", "name"], "x\nimport os"), f"{node}.attrs.name"),
        ("long var name", set_at(doc, ["nodes", var, "attrs", "name"], "x" * 1000), f"{node}.attrs.name"),
        (
            "bad base64",
            set_at(doc, ["nodes", const, "attrs", "value", "array", "base64"], "!!!!" * 6),
            f"$.nodes[{const}].attrs.value.array.base64",
        ),
        ("bool bytes", bool_const_document(), "$.nodes[0].attrs.value.array"),
        (
            "open body",
            set_at(doc, ["nodes", scan, "attrs", "body", "graph", "inputs"], []),
            f"$.nodes[{scan}].attrs.body.graph",
        ),
        (
            "body input not a var",
            set_at(doc, ["nodes", scan, "attrs", "body", "graph", "inputs"], [const]),
            f"$.nodes[{scan}].attrs.body.graph.inputs",
        ),
        (
            "graph where an int goes",
            set_at(doc, ["nodes", argmax, "attrs", "axis"], {"graph": {"inputs": [], "outputs": [const]}}),
            f"$.nodes[{argmax}].attrs.axis",
        ),
        ("fused body with an opaque op", *opaque_fused_document()),
        ("sidecar outside the folder", set_at(doc, ["constants_file"], "../secret.npz"), "$.constants_file"),
        ("sidecar at an absolute path", set_at(doc, ["constants_file"], "/etc/x.npz"), "$.constants_file"),
        (
            "sidecar in gc.loads",
            set_at(doc, ["nodes", const, "attrs", "value", "array"], {"dtype": "float64", "shape": [3], "npz": "c0"}),
            f"$.nodes[{const}].attrs.value.array.npz",
        ),
        ("not a graph", set_at(doc, ["format"], "onnx"), "$"),
        ("newer version", set_at(doc, ["version"], 2), "$.version"),
        ("version as text", set_at(doc, ["version"], "1"), "$.version"),
        ("unknown top-level key", set_at(doc, ["evil"], 1), "$"),
        ("a list", [doc], "$"),
        ("a number", 3, "$"),
        ("null", None, "$"),
        ("truncated JSON", text[: len(text) // 2], "$"),
        ("empty text", "", "$"),
        ("deep nesting", "[" * 100_000 + "]" * 100_000, "$"),
        ("NaN literal", text.replace('"axis": 0', '"axis": NaN', 1), "$"),
        ("Infinity literal", text.replace('"axis": 0', '"axis": -Infinity', 1), "$"),
        ("duplicate keys", text.replace('"version": 1', '"version": 1, "version": 1'), "$"),
        ("a 5000-digit integer", text.replace('"axis": 0', '"axis": ' + "9" * 5000, 1), "$"),
        ("bytes that are not UTF-8", b"\xff\xfe" + text.encode(), "$"),
    ]


def named_document() -> dict:
    """A document with named dimensions: a var, a reshape to a product, a slice to a sum, a `dim` node."""
    x = gc.var("x", ("batch", "T", 2))
    flat = gc.reshape(x, (-1, 2))[1:]
    return json.loads(gc.dumps([x], [gc.sum(flat), gc.mean(x)]))


def named_hostile_documents() -> list[tuple[str, object, str]]:
    """Malformed named dimensions (node 0: the var, 1: reshape, 2: slice, 5: dim)."""
    doc = named_document()
    shape, size = "$.nodes[1].shape[0]", "$.nodes[5].attrs.size"
    terms: list[tuple[str, object, str]] = [
        ("no terms", [], ".dim"),
        ("terms not a list", "T*batch", ".dim"),
        ("a term of three items", [[1, ["T", "batch"], 0]], ".dim[0]"),
        ("a term not a list", [{"T": 1}], ".dim[0]"),
        ("a bool coefficient", [[True, ["T", "batch"]]], ".dim[0][0]"),
        ("a float coefficient", [[1.0, ["T", "batch"]]], ".dim[0][0]"),
        ("a huge coefficient", [[2**70, ["T", "batch"]]], ".dim[0][0]"),
        ("names not a list", [[1, "T*batch"]], ".dim[0][1]"),
        ("a name that is no identifier", [[1, ["T", "__import__('os')"]]], ".dim[0][1][1]"),
        ("a name with a newline", [[1, ["T", "batch\nimport os"]]], ".dim[0][1][1]"),
        ("a name too long", [[1, ["T", "b" * 300]]], ".dim[0][1][1]"),
        ("a number as a name", [[1, ["T", 3]]], ".dim[0][1][1]"),
        ("too many terms", [[1, [f"n{k}"]] for k in range(MAX_TERMS + 1)], ".dim"),
        ("too high a degree", [[1, ["T"] * (MAX_DEGREE + 1)]], ".dim[0][1]"),
        ("a zero term", [[1, ["T", "batch"]], [0, []]], ".dim"),
        ("names out of order", [[1, ["batch", "T"]]], ".dim"),
        ("terms out of order", [[-1, []], [1, ["T", "batch"]]], ".dim"),
        ("a repeated term", [[1, ["T", "batch"]], [1, ["T", "batch"]]], ".dim"),
        ("terms that cancel", [[1, ["T"]], [-1, ["T"]], [4, []]], ".dim"),
        ("one name as terms", [[1, ["batch"]]], ".dim"),
    ]
    found = [(f"dim with {what}", set_at(doc, ["nodes", 1, "shape", 0], {"dim": raw}), shape + tail)
             for what, raw, tail in terms]  # fmt: skip
    found += [(f"dim attr with {what}", set_at(doc, ["nodes", 5, "attrs", "size"], {"dim": raw}), size + tail)
              for what, raw, tail in terms[:4]]  # fmt: skip
    where = {"var shape": "$.nodes[0].attrs.shape", "shape": "$.nodes[0].shape", "axis": "$.nodes[3].attrs.axis"}
    return [
        *found,
        ("a var dimension that is no name", set_at(doc, ["nodes", 0, "attrs", "shape"], ["1a", "T", 2]),
         where["var shape"]),
        ("a shape entry that is no name", set_at(doc, ["nodes", 0, "shape"], ["batch", "T T", 2]),
         where["shape"] + "[1]"),
        ("a shape entry of another name", set_at(doc, ["nodes", 0, "shape"], ["batch", "S", 2]), "$.nodes[0]"),
        ("a dim tag with another key", set_at(doc, ["nodes", 5, "attrs", "size"], {"dim": [[2, ["T"]]], "x": 1}), size),
        ("a dim of a known size", set_at(doc, ["nodes", 5, "attrs", "size"], 6), size),
        ("a dim of a name where ints go", set_at(doc, ["nodes", 3, "attrs", "axis"], ["batch"]), where["axis"]),
        ("a reshape that loses elements", set_at(doc, ["nodes", 1, "attrs", "shape"], ["batch", 2]), "$.nodes[1]"),
        ("a recorded shape that disagrees with a named slice",
         set_at(doc, ["nodes", 2, "attrs", "index", 0, 1], {"dim": [[1, ["T", "batch"]], [1, []]]}), "$.nodes[2]"),
    ]  # fmt: skip


def bool_const_document() -> dict:
    doc = json.loads(gc.dumps([], [gc.const(np.array([True, False]))]))
    doc["nodes"][0]["attrs"]["value"]["array"]["base64"] = "AgA="  # bytes 2, 0
    return doc


def opaque_fused_document() -> tuple[dict, str]:
    """A fused node whose body holds a matmul: typed right, but not a region backends can run."""
    a, b = gc.var("a", (2, 2)), gc.var("b", (2, 2))
    doc = json.loads(gc.dumps([a, b], gc.optimize([gc.exp(a) * b])))
    (k,) = [k for k, node in enumerate(doc["nodes"]) if node["op"] == "fused"]
    mul = next(j for j, node in enumerate(doc["nodes"]) if node["op"] == "mul")
    doc["nodes"][mul]["op"] = "matmul"
    return doc, f"$.nodes[{k}].attrs.body"


HOSTILE = hostile_documents() + named_hostile_documents()


def load_any(document: object) -> object:
    if isinstance(document, (str, bytes)):
        return gc.loads(document)
    return gc.loads(json.dumps(document))


@pytest.mark.parametrize(("what", "document", "path"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_document_raises_a_format_error_at_its_path(what: str, document: object, path: str) -> None:
    with pytest.raises(gc.GraphFormatError) as info:
        load_any(document)
    assert info.value.path == path, str(info.value)
    assert str(info.value).startswith(path)


def test_format_errors_are_graph_errors_and_value_errors() -> None:
    assert issubclass(gc.GraphFormatError, gc.GraphError) and issubclass(gc.GraphFormatError, ValueError)


def test_infer_errors_are_wrapped_with_the_op_and_the_path() -> None:
    doc = rich_document()
    doc = set_at(doc, ["nodes", first(doc, "var"), "attrs", "shape"], [4, 5])
    doc = set_at(doc, ["nodes", first(doc, "var"), "shape"], [4, 5])
    with pytest.raises(gc.GraphFormatError, match=r"rejects its operands.*f64\[4,5\]") as info:
        load_any(doc)
    assert info.value.path == f"$.nodes[{first(doc, 'fused')}]"
    assert isinstance(info.value.__cause__, GraphError)
    assert " at " not in str(info.value)  # the line that called gc.loads says nothing about the file


def test_limits() -> None:
    doc = rich_document()
    text = json.dumps(doc)
    gc.loads(text, max_nodes=len(doc["nodes"]), max_elements=12, max_depth=2)  # a fused region in the scan's body
    with pytest.raises(gc.GraphFormatError, match="max_depth"):
        gc.loads(text, max_depth=1)
    with pytest.raises(gc.GraphFormatError) as info:
        gc.loads(text, max_nodes=len(doc["nodes"]) - 1)
    assert info.value.path == "$.nodes"
    with pytest.raises(gc.GraphFormatError) as info:
        gc.loads(text, max_elements=11)
    assert info.value.path.endswith(".shape")
    inputs, outputs = scan_case()
    nested = gc.dumps(inputs, outputs)  # the gradient of a scan: a loop inside a loop's body? no: depth 1
    with pytest.raises(gc.GraphFormatError, match="max_depth"):
        gc.loads(nested_loops_document(), max_depth=1)
    gc.loads(nested, max_depth=1)


def nested_loops_document() -> str:
    x = gc.var("x", (3, 2, 2))

    def outer(c: gc.Tensor, row: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        inner, _ = gc.scan(lambda d, r: (d + gc.sin(r), d), c, row)
        return inner, inner

    final, _ = gc.scan(outer, gc.const(np.zeros(2)), x)
    return gc.dumps([x], final)


def test_many_bodies_over_one_long_chain_fail_fast_instead_of_taking_quadratic_time() -> None:
    n = 3000
    param = {"op": "var", "inputs": [], "attrs": {"dtype": {"dtype": "float64"}, "name": "p", "shape": [],
             "uid": -1}, "dtype": "float64", "shape": []}  # fmt: skip
    nodes = [param] + [{"op": "neg", "inputs": [k], "attrs": {}, "dtype": "float64", "shape": []} for k in range(n)]
    for k in range(n):  # distinct bodies (their input lists differ), each reaching the whole chain
        extra = {**param, "attrs": {**param["attrs"], "name": f"q{k}"}}
        nodes.append(extra)
        body = {"graph": {"inputs": [0, len(nodes) - 1], "outputs": [n]}}
        nodes.append({"op": "fused", "inputs": [0, 0], "attrs": {"body": body}, "dtype": "float64", "shape": []})
    text = json.dumps({"format": "graphc.graph", "version": 1, "inputs": [], "outputs": [n], "nodes": nodes})
    with pytest.raises(gc.GraphFormatError, match="overlap") as info:
        gc.loads(text)
    at = int(info.value.path.split("[")[1].split("]")[0])  # $.nodes[k]...: the body where the budget ran out
    assert n < at < n + 1 + 2 * (n // 10)  # gave up within the first tenth of the bodies: work linear in the table


def test_named_dimensions_that_would_multiply_out_fail_fast() -> None:
    """A product of 40 two-name sums would have 2**40 terms: shape arithmetic stops at MAX_TERMS."""
    sums = [{"dim": [[1, [f"a{k}"]], [1, [f"b{k}"]]]} for k in range(40)]
    x = {"op": "var", "inputs": [], "attrs": {"dtype": {"dtype": "float64"}, "name": "x", "shape": sums, "uid": 0},
         "dtype": "float64", "shape": sums}  # fmt: skip
    flat = {"op": "reshape", "inputs": [0], "attrs": {"shape": [7]}, "dtype": "float64", "shape": [7]}
    text = json.dumps({"format": "graphc.graph", "version": 1, "inputs": [0], "outputs": [1], "nodes": [x, flat]})
    with pytest.raises(gc.GraphFormatError, match="beyond what graphc represents") as info:
        gc.loads(text)  # the bound's own error (at MAX_TERMS), not a product of 2**40 terms worked out
    assert info.value.path == "$.nodes[1]"
    with pytest.raises(gc.ShapeError, match="beyond"):  # the same bound when building in Python
        gc.reshape(gc.var("x", shape=tuple(gc.Dim.named(f"a{k}") + gc.Dim.named(f"b{k}") for k in range(40))), (-1,))


def test_a_long_chain_needs_no_recursion() -> None:
    x = gc.var("x")
    y = x
    for _ in range(3 * sys.getrecursionlimit()):
        y = gc.sin(y)
    _, y2 = gc.loads(gc.dumps([x], y))
    assert len(Graph([y2.node])) == len(Graph([y.node]))  # type: ignore[union-attr]


def test_a_hostile_huge_constant_allocates_nothing_big() -> None:
    doc = json.loads(gc.dumps([], [gc.const(np.zeros(3))]))
    doc["nodes"][0]["attrs"]["value"]["array"]["shape"] = [10**9]
    doc["nodes"][0]["shape"] = [10**9]
    text = json.dumps(doc)
    tracemalloc.start()
    try:
        with pytest.raises(gc.GraphFormatError):
            gc.loads(text, max_elements=2 * 10**9)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


# --- fuzzing ---------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["var", "fused", "scan", "float64", "c0", "nan", "batch", "T", "dim"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["op", "inputs", "attrs", "graph", "array", "float", "dtype", "shape", "body", "x", "dim"]),
        inner, max_size=3),
    max_leaves=12,
)  # fmt: skip
BASES = [
    rich_document(), json.loads(gc.dumps(*fixed_point_case())), json.loads(gc.dumps(*const_case())), named_document(),
    json.loads(gc.dumps(*named_model_case())),
]  # fmt: skip
ALLOWED_AT_CALL_TIME = (ValueError, TypeError, IndexError, FloatingPointError, gc.ConvergenceError)


def locations(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a value inside a parsed JSON document."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += locations(item, (*path, key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            found += locations(item, (*path, k))
    return found


def survives(text: str | bytes) -> None:
    """Loading gives a graph or a GraphFormatError, quickly; a graph it gives can be evaluated."""
    start = time.perf_counter()
    try:
        inputs, outputs = gc.loads(text)
    except gc.GraphFormatError:
        return
    finally:
        assert time.perf_counter() - start < 5.0
    outs = [outputs] if isinstance(outputs, gc.Tensor) else outputs
    shapes = [concrete(t.shape) for t in [*outs, *inputs]]  # named dimensions at SIZE
    if any(n < 0 for shape in shapes for n in shape) or any(math.prod(shape) > 10**6 for shape in shapes):
        return
    with contextlib.suppress(*ALLOWED_AT_CALL_TIME):
        gc.evaluate(outs, dict(zip(inputs, values_for(inputs), strict=True)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_documents(data: st.DataObject) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(BASES)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(locations(doc)[1:]))
        action = data.draw(st.sampled_from(["drop", "replace", "copy"]))
        target = doc
        for key in path[:-1]:
            target = target[key]
        if action == "drop":
            del target[path[-1]]
        elif action == "replace":
            target[path[-1]] = data.draw(JSON)
        else:  # another part of the document moved here
            source = doc
            for key in data.draw(st.sampled_from(locations(doc))):
                source = source[key]
            target[path[-1]] = copy.deepcopy(source)
    survives(json.dumps(doc))


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet='{}[]":,0123456789.-+eE tfnrulasx\\', max_size=200) | st.binary(max_size=100))
def test_fuzz_random_text(text: str | bytes) -> None:
    survives(text)


@settings(max_examples=150, deadline=None)
@given(value=JSON)
def test_fuzz_random_json(value: object) -> None:
    survives(json.dumps(value))
    survives(json.dumps({"format": "graphc.graph", "version": 1, "inputs": [], "outputs": [0], "nodes": [value]}))


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, 10**6), base=st.sampled_from([json.dumps(b) for b in BASES]))
def test_fuzz_truncated_documents(cut: int, base: str) -> None:
    survives(base[: cut % len(base)])
