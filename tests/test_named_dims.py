"""Named dimensions: the Dim algebra, every op's shape rule with names, calls at any size, errors.

Every op in OPS has a case below (or a stated reason why not): built on symbolic shapes,
its type evaluated at concrete sizes must be the shape NumPy computes, and the graph
specialized to those sizes must give NumPy's values bit for bit. Compiled functions are
called at sizes 0, 1, 7 and 1000 on both backends against gc.evaluate.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops import OPS, Kind, accepts, elementwise_ops
from graphc.ops import shape as sh
from graphc.ops.dims import bind, graph_names, specialize
from graphc.shapes import BOOL, FLOAT64, INT64, Dim, evaluate_shape, exact_div, resolve_reshape

A, B, C = Dim.named("a"), Dim.named("b"), Dim.named("c")
RNG = np.random.default_rng(0)
HERE = Path(__file__).name


def line_of(marker: str) -> int:
    """The line of this file holding `marker` (a comment on the line that builds something)."""
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text and "line_of" not in text)


# --- the Dim algebra -------------------------------------------------------------------------


def test_canonical_forms_print_and_compare():
    cases = {
        A: "a", A + 1: "a+1", 2 * A: "2*a", A * B: "a*b", A - 1: "a-1", B * A: "a*b", (A + 1) * (A - 1): "a**2-1",
        3 - A: "-a+3", A * B * 64: "64*a*b", A + B + A: "2*a+b",
    }  # fmt: skip
    for dim, text in cases.items():
        assert str(dim) == text
        assert repr(dim) == text  # shapes print as (a, 3)
    assert A + 1 - A == 1 and type(A + 1 - A) is int  # names that cancel give an int
    assert A * 0 == 0 and type(A * 0) is int
    assert (A + 1) * 2 == 2 * A + 2 and hash((A + 1) * 2) == hash(2 * A + 2)
    assert A != 1 and A != 0 and A != B and A != 1  # a Dim is never a constant
    assert str(Dim.named("批")) == "批" and Dim.named("β") * 2 == 2 * Dim.named("β")


def test_exact_division():
    assert exact_div(64 * A, 8) == 8 * A
    assert exact_div(A * B * 64, 8 * A) == 8 * B
    assert exact_div(A * A - 1, A + 1) == A - 1
    assert exact_div(A * B + A, B + 1) == A
    assert exact_div(12, 4) == 3
    for a, b in [(64 * A, 3), (A, B), (A + 1, A), (A * A + 1, A + 1), (A, 0), (7, 2)]:
        assert exact_div(a, b) is None


def test_values_of_a_dim_are_refused_naming_it():
    for use in (int, float, bool, range, lambda d: d < 3, lambda d: d >= 0, np.zeros, lambda d: [0][d]):
        with pytest.raises(gc.ShapeError, match="batch"):
            use(Dim.named("batch") + 1)


@pytest.mark.parametrize("bad", ["", "batch+1", "1a", "a b", "-", 3.5, None, True, -1])
def test_bad_dimension_names_and_sizes(bad):
    with pytest.raises(gc.ShapeError) as info:
        gc.var("x", shape=(bad, 3))  # marker:bad-name
    assert f"{HERE}:{line_of('marker:bad-name')}" in str(info.value)


def test_reshape_resolution():
    assert resolve_reshape((A, 64), (-1,)) == (64 * A,)
    assert resolve_reshape((A, B, 64), (-1, 64)) == (A * B, 64)
    assert resolve_reshape((A * B, 64), ("a", -1, 8)) == (A, 8 * B, 8)
    assert resolve_reshape((A, 6), (-1, 3)) == (2 * A, 3)
    assert resolve_reshape((A, 6), ("a", 2, 3)) == (A, 2, 3)
    for old, new in [((A, 64), (-1, 3)), ((A, 4), (B, -1)), ((A, 4), (4, "a", 2)), ((A,), (-1, -1)), ((A,), (0, -1))]:
        with pytest.raises(gc.ShapeError, match=r"cannot reshape|one unknown"):
            resolve_reshape(old, new)


# --- every op's shape rule with names, against NumPy --------------------------------------------


def _values(shape: tuple[int, ...], dtype: np.dtype, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    if dtype == BOOL:
        return RNG.random(shape) < 0.5
    if dtype == INT64:
        return RNG.integers(-3, 4, size=shape)
    return RNG.uniform(low, high, size=shape).astype(dtype)


Spec = tuple[str, tuple[object, ...], np.dtype]  # name, symbolic shape, dtype


def _dtype_for(op: gc.Tensor, arity: int) -> np.dtype:
    for dtype in (FLOAT64, INT64, BOOL):
        if accepts(op, *([dtype] * arity)):  # type: ignore[arg-type]
            return dtype
    raise AssertionError(f"{op} accepts none of the dtypes")


Values = Callable[[dict[str, int]], dict[str, np.ndarray]]
Fits = Callable[[dict[str, int]], bool]
Case = tuple[list[Spec], Callable[..., gc.Tensor], Values | None, Fits | None]


def _case(
    specs: list[Spec], build: Callable[..., object], values: Values | None = None, fits: Fits | None = None
) -> Case:
    """An op applied to vars of these symbolic shapes; `fits`: the sizes where named slice bounds fit (no clipping)."""
    return specs, build, values, fits  # type: ignore[return-value]


def _rows(k: int) -> Fits:
    return lambda sizes: sizes["a"] >= k


def _node_op(name: str) -> Callable[..., gc.Tensor]:
    return lambda *ts, **attrs: gc.Tensor(OPS[name](*(t.node for t in ts), **attrs))


def _spd(name: str, size: str | None) -> Values:
    """Values for a stack of well-conditioned symmetric positive-definite matrices (`size` of them, or one)."""

    def make(sizes: dict[str, int]) -> dict[str, np.ndarray]:
        lead = () if size is None else (sizes[size],)
        m = RNG.normal(size=(*lead, 3, 3))
        return {name: m @ np.swapaxes(m, -1, -2) + 3 * np.eye(3)}

    return make


def _index_values(n_of: Callable[[dict[str, int]], int], size: str) -> Callable:
    """Index values in range for the gathered axis (n_of(sizes) long), `size` of them."""

    def make(sizes: dict[str, int]) -> dict[str, np.ndarray]:
        n = n_of(sizes)
        count = sizes[size]
        return {"i": RNG.integers(0, max(n, 1), size=count) if n else np.zeros(count, np.int64)}

    return make


SHAPE_CASES: dict[str, list[Case]] = {
    "where": [_case([("c", ("a", 1), BOOL), ("x", ("a", "b"), FLOAT64), ("y", (), FLOAT64)], _node_op("where"))],
    "astype": [_case([("x", ("a", "b"), FLOAT64)], lambda x: gc.Tensor(OPS["astype"](x.node, dtype=INT64)))],
    "reshape": [
        _case([("x", ("a", "b", 2), FLOAT64)], lambda x: x.reshape(-1)),
        _case([("x", ("a", "b", 2), FLOAT64)], lambda x: x.reshape(x.shape[1], x.shape[0], 2)),
        _case([("x", ("a", "b", 2), FLOAT64)], lambda x: x.reshape(-1, 2)),
        _case([("x", ("a", 6), FLOAT64)], lambda x: x.reshape(-1, 3)),
    ],
    "transpose": [_case([("x", ("a", 2, "b"), FLOAT64)], lambda x: x.transpose(2, 0, 1))],
    "broadcast_to": [
        _case([("x", ("b",), FLOAT64), ("y", ("a", "b"), FLOAT64)], lambda x, y: gc.broadcast_to(x, y.shape)),
    ],
    "slice": [
        _case([("x", ("a", 3), FLOAT64)], lambda x: x[1:], fits=_rows(1)),
        _case([("x", ("a", 3), FLOAT64)], lambda x: x[:-1, 1:], fits=_rows(1)),
        _case([("x", ("a", 3), FLOAT64)], lambda x: x[::-1]),
        _case([("x", ("a", 3), FLOAT64)], lambda x: x[-2:], fits=_rows(2)),
        _case([("x", ("a", 3), FLOAT64)], lambda x: x[2:], fits=_rows(2)),
        _case([("x", ("a", 3), FLOAT64)], lambda x: x[1:3], fits=_rows(3)),
        _case([("x", ("a", 3), FLOAT64)], lambda x: x[-1], fits=_rows(1)),
        _case([("x", ("a", 3), FLOAT64)], lambda x: x[:-3:-1], fits=_rows(2)),
    ],
    "unslice": [
        _case([("x", ("a", 3), FLOAT64)],
              lambda x: gc.Tensor(sh.unslice(x[1:].node, index=((1, x.shape[0], 1), (0, 3, 1)), shape=x.shape)),
              fits=_rows(1)),
    ],
    "concatenate": [
        _case([("x", ("a", 2), FLOAT64), ("y", ("b", 2), FLOAT64), ("z", (3, 2), FLOAT64)],
              lambda x, y, z: gc.concatenate([x, y, z, x])),
        _case([("x", (2, "a"), FLOAT64), ("y", (2, "b"), FLOAT64)], lambda x, y: gc.concatenate([x, y], axis=1)),
    ],
    "take": [
        _case([("x", ("a", 3), FLOAT64), ("i", ("b",), INT64)], lambda x, i: gc.take(x, i, axis=0),
              _index_values(lambda s: s["a"], "b")),
        _case([("x", (3, "a"), FLOAT64), ("i", ("b",), INT64)], lambda x, i: gc.take(x, i, axis=1),
              _index_values(lambda s: s["a"], "b")),
    ],
    "scatter_add": [
        _case([("g", ("b", 3), FLOAT64), ("i", ("b",), INT64), ("x", ("a", 3), FLOAT64)],
              lambda g, i, x: gc.Tensor(sh.scatter_add(g.node, i.node, axis=0, size=x.shape[0])),
              _index_values(lambda s: s["a"], "b")),
    ],
    "matmul": [
        _case([("x", ("a", "b"), FLOAT64), ("y", ("b", 4), FLOAT64)], lambda x, y: x @ y),
        _case([("x", ("c", "a", 2), FLOAT64), ("y", (2, "b"), FLOAT64)], lambda x, y: x @ y),
    ],
    "argmax": [
        _case([("x", ("a", "b"), FLOAT64)], lambda x: gc.argmax(x, axis=1)),
        _case([("x", ("a", 3), FLOAT64)], gc.argmax),
    ],
    "argmin": [_case([("x", ("a", "b"), FLOAT64)], lambda x: gc.argmin(x, axis=0, keepdims=True))],
    "cumsum": [
        _case([("x", ("a", "b"), FLOAT64)], lambda x: gc.cumsum(x, axis=0)),
        _case([("x", ("a", 2), FLOAT64)], gc.cumsum),  # flattened: 2*a
    ],
    "cumprod": [_case([("x", ("a", "b"), FLOAT64)], lambda x: gc.cumprod(x, axis=1))],
    "diag": [
        _case([("v", ("a", "b"), FLOAT64)], _node_op("diag")),
        _case([("v", ("a",), FLOAT64)], _node_op("diag")),
    ],
    "index_add": [
        _case([("x", ("a", 3), FLOAT64), ("u", ("b", 3), FLOAT64), ("i", ("b",), INT64)],
              lambda x, u, i: _node_op("index_add")(x, u, i, axis=0), _index_values(lambda s: s["a"], "b")),
    ],
    "solve": [
        _case([("m", ("a", 3, 3), FLOAT64), ("r", ("a", 3, "b"), FLOAT64)], gc.linalg.solve, _spd("m", "a")),
        _case([("m", (3, 3), FLOAT64), ("r", ("b", 3, 2), FLOAT64)], gc.linalg.solve, _spd("m", None)),
    ],
    "inv": [_case([("m", ("a", 3, 3), FLOAT64)], gc.linalg.inv, _spd("m", "a"))],
    "slogdet": [_case([("m", ("a", 3, 3), FLOAT64)], _node_op("slogdet"), _spd("m", "a"))],
    "cholesky": [_case([("m", ("a", 3, 3), FLOAT64)], gc.linalg.cholesky, _spd("m", "a"))],
    "sort": [_case([("x", ("a", "b"), INT64)], _node_op("sort"))],
    "iota": [_case([("x", ("a", 3), FLOAT64)], lambda x: gc.Tensor(OPS["iota"](shape=x.shape)) + x.astype("int64"))],
    "im2col": [
        _case([("x", ("a", 2, 4, 5), FLOAT64)], lambda x: _node_op("im2col")(
            x, kernel=(2, 3), stride=(1, 2), padding=((1, 0), (0, 1)), dilation=(1, 1), fill=0.0)),
    ],
    "col2im": [
        _case([("c", (2, 2, 3, "a", 4, 2), FLOAT64)], lambda c: _node_op("col2im")(
            c, kernel=(2, 3), stride=(1, 2), padding=((1, 0), (0, 1)), dilation=(1, 1), size=(4, 5))),
    ],
}  # fmt: skip

NOT_SHAPE_RULES = {
    "var": "a source: its shape is what the user gives (test_var_shapes)",
    "const": "a constant never has a named size (test_constants_of_named_size_are_refused)",
    "dim": "the size of a name as a value: test_mean_over_a_named_axis",
    "fused": "made by the optimizer from the other ops: test_compiled_at_many_sizes",
    "scan": "a loop: test_scan_over_a_named_length",
    "fixed_point": "a loop: test_fixed_point_with_named_batch",
    "custom": "tests/test_custom_vjp.py builds it on named shapes",
    "stop_gradient": "the identity: test_stop_gradient_keeps_names",
    "cond": "branches as bodies: test_cond_and_while_loop_with_named_batch",
    "while_loop": "a loop: test_cond_and_while_loop_with_named_batch",
}


def _reduction_cases(name: str) -> list[Case]:
    op = _node_op(name)
    return [
        _case([("x", ("a", "b"), FLOAT64)], lambda x: op(x, axis=(0,), keepdims=False)),
        _case([("x", ("a", "b"), FLOAT64)], lambda x: op(x, axis=(1,), keepdims=True)),
        _case([("x", ("a", 3, "b"), FLOAT64)], lambda x: op(x, axis=(0, 2), keepdims=False)),
    ]


def _elementwise_cases(op_name: str) -> list[Case]:
    op = OPS[op_name]
    arity = len(op.domain)
    dtype = _dtype_for(op, arity)  # type: ignore[arg-type]
    build = _node_op(op_name)
    if arity == 1:
        return [_case([("x", ("a", "b"), dtype)], build)]
    return [
        _case([("x", ("a", "b"), dtype), ("y", ("b",), dtype)], build),
        _case([("x", ("a", 1), dtype), ("y", (1, "b"), dtype)], build),
        _case([("x", (), dtype), ("y", ("a", 3), dtype)], build),
    ]


def shape_cases() -> dict[str, list[Case]]:
    cases = dict(SHAPE_CASES)
    for op in OPS.values():
        if op.domain:
            cases[op.name] = _elementwise_cases(op.name)
        elif op.kind is Kind.REDUCE:
            cases[op.name] = _reduction_cases(op.name)
    return cases


CASES = shape_cases()


def test_every_op_has_a_named_shape_case():
    missing = sorted(set(OPS) - set(CASES) - set(NOT_SHAPE_RULES))
    assert missing == [], f"add a case with named dimensions for {missing} to SHAPE_CASES"
    assert set(elementwise_ops()) <= {OPS[name] for name in CASES}


def _build(case: Case) -> tuple[list[gc.Tensor], gc.Tensor]:
    specs, build, _, _ = case
    inputs = [gc.var(name, shape=shape, dtype=dtype) for name, shape, dtype in specs]
    return inputs, build(*inputs)


SIZES = st.fixed_dictionaries({"a": st.integers(0, 5), "b": st.integers(0, 5), "c": st.integers(0, 3)})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log of negative samples and the like: NumPy's NaN
@pytest.mark.parametrize(("name", "k"), [(name, k) for name, cases in CASES.items() for k in range(len(cases))])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=SIZES)
def test_shape_rule_with_names_matches_numpy(name: str, k: int, sizes: dict[str, int]):
    case = CASES[name][k]
    inputs, out = _build(case)
    assert graph_names(gc.Graph([out.node])), f"{name}: the case has no named dimension"
    arrays = {t.name: _values(evaluate_shape(t.shape, sizes), t.dtype) for t in inputs}
    if case[2] is not None:
        arrays.update(case[2](sizes))
    feed = {t: arrays[t.name] for t in inputs}
    if case[3] is not None and not case[3](sizes):  # named bounds are taken as given: the call refuses the size
        with pytest.raises(gc.ShapeError):
            gc.evaluate(out, feed)
        return
    fixed_inputs = [gc.var(t.name, shape=arrays[t.name].shape, dtype=t.dtype) for t in inputs]
    try:
        expected_out = case[1](*fixed_inputs)
        expected = gc.evaluate(expected_out, dict(zip(fixed_inputs, arrays.values(), strict=True)))
    except (ValueError, IndexError) as exc:  # NumPy refuses these sizes (max of nothing, x[2:] of 1 row)
        with pytest.raises((ValueError, IndexError)):
            gc.evaluate(out, feed)
        assert not isinstance(exc, AssertionError)
        return
    assert evaluate_shape(out.shape, sizes) == expected.shape, f"{name}: {out.node.type} at {sizes}"
    assert expected_out.node.type.shape == expected.shape
    got = gc.evaluate(out, feed)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_every_case_compiled_at_two_sizes(backend: str):
    """All op cases in one compiled function (optimized on names, then specialized), against gc.evaluate."""
    inputs: list[gc.Tensor] = []
    outputs: list[gc.Tensor] = []
    cases = []
    for name, group in CASES.items():
        for k, (specs, build, values, _fits) in enumerate(group):
            made = [gc.var(f"{name}{k}_{v}", shape=shape, dtype=dtype) for v, shape, dtype in specs]
            inputs += made
            outputs.append(build(*made))
            cases.append((made, values, [v for v, _, _ in specs]))
    fn = gc.compile(inputs, outputs, backend=backend)
    for sizes in ({"a": 3, "b": 4, "c": 2}, {"a": 7, "b": 1, "c": 0}):
        feed: dict[gc.Tensor, np.ndarray] = {}
        for made, values, names in cases:
            extra = values(sizes) if values is not None else {}
            for t, v in zip(made, names, strict=True):
                feed[t] = extra.get(v, _values(evaluate_shape(t.shape, sizes), t.dtype))
        got = fn(*(feed[t] for t in inputs))
        expected = gc.evaluate(outputs, feed)
        for out, g, e in zip(outputs, got, expected, strict=True):
            assert g.shape == e.shape == evaluate_shape(out.shape, sizes)
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-300, equal_nan=True)


def test_var_shapes():
    x = gc.var("x", shape=("batch", 64))
    assert x.shape == (Dim.named("batch"), 64) and str(x.node.type) == "f64[batch,64]"
    assert gc.var("n", shape="n").shape == (Dim.named("n"),)
    assert gc.var("m", shape=(A * 2 + 1,)).shape == (2 * A + 1,)
    assert x.size == 64 * Dim.named("batch")
    assert "f64[batch,64]" in gc.show(gc.tanh(x))


# --- build-time errors ------------------------------------------------------------------------------


def test_validity_depending_on_a_size_fails_at_build_time():
    x = gc.var("x", shape=("batch", 3))
    y = gc.var("y", shape=(4,))
    builders = {
        "broadcast": lambda: x + gc.var("z", shape=(5, 1)),  # batch against 5
        "matmul": lambda: x.T @ gc.var("w", shape=(4, 2)),  # batch against 4
        "reshape": lambda: x.reshape(-1, 2),  # 3*batch is not a multiple of 2 for every batch
        "reshape_known": lambda: x.reshape(6, -1),
        "concat": lambda: gc.concatenate([x, y[None]], axis=1),
        "len": lambda: len(x),
        "iterate": lambda: list(x),
        "squeeze": lambda: gc.squeeze(x, 0),
        "slice_step": lambda: x[::2],
        "jacobian": lambda: gc.jacobian(gc.sum(x, axis=1), x),
        "hessian": lambda: gc.hessian(gc.sum(x * x), x),
        "one_hot_of_a_name": lambda: gc.one_hot(gc.var("i", shape=(2,), dtype="int64"), x.shape[0]),
    }
    for what, build in builders.items():
        with pytest.raises(gc.ShapeError) as info:
            build()
        message = str(info.value)
        assert "batch" in message, (what, message)
        assert HERE in message, (what, message)  # the user's line
    with pytest.raises(gc.ShapeError, match="batch"):  # NumPy asks the Dim for an int (the traceback has the line)
        np.zeros(x.shape)


def test_jacobian_chooses_the_known_side():
    x = gc.var("x", shape=("batch", 3))
    w = gc.var("w", shape=(3,))
    f = gc.tanh(x @ w)  # f64[batch]
    J = gc.jacobian(f, w)  # auto: forward mode, the basis of w's 3 directions
    assert J.shape == (Dim.named("batch"), 3)
    xv, wv = RNG.normal(size=(5, 3)), RNG.normal(size=3)
    expected = (1 - np.tanh(xv @ wv) ** 2)[:, None] * xv
    np.testing.assert_allclose(gc.evaluate(J, {x: xv, w: wv}), expected, rtol=1e-13)
    with pytest.raises(gc.ShapeError, match=r"mode='rev'.*batch"):
        gc.jacobian(f, w, mode="rev")


def test_constants_of_named_size_are_refused():
    x = gc.var("x", shape=("n",))
    with pytest.raises(gc.ShapeError, match="n"):
        gc.const(np.ones(x.shape))


# --- calls at many sizes ----------------------------------------------------------------------------


def _model() -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    """A small MLP loss with its gradients, a slice difference, a concatenation and reductions over the batch."""
    X = gc.var("X", shape=("batch", 4))
    Y = gc.var("Y", shape=("batch",), dtype="int64")
    W = gc.var("W", shape=(4, 3))
    b = gc.var("b", shape=(3,))
    logits = gc.tanh(X @ W + b)
    loss = -gc.mean(gc.sum(gc.log_softmax(logits) * gc.one_hot(Y, 3), axis=1))
    gW, gb = gc.grad(loss, [W, b])
    diffs = gc.sum((X[1:] - X[:-1]) ** 2, axis=1)
    both = gc.concatenate([X, 2 * X], axis=0)
    stats = [gc.sum(X, axis=0), gc.mean(X, axis=0), gc.prod(X[:, :2], axis=0)]
    return [X, Y, W, b], [loss, gW, gb, diffs, both, *stats]


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compiled_at_many_sizes(backend: str):
    inputs, outputs = _model()
    fn = gc.compile(inputs, outputs, backend=backend)
    W, b = RNG.normal(size=(4, 3)), RNG.normal(size=3)
    first: dict[int, list[np.ndarray]] = {}
    for n in (7, 1, 1000, 7, 1):  # sizes seen earlier never change a result
        X, Y = RNG.normal(size=(n, 4)), RNG.integers(0, 3, size=n)
        got = fn(X, Y, W, b)
        expected = gc.evaluate(outputs, dict(zip(inputs, [X, Y, W, b], strict=True)))
        for g, e in zip(got, expected, strict=True):
            assert g.shape == e.shape
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
        again = fn(X, Y, W, b)
        for g, h in zip(got, again, strict=True):
            np.testing.assert_array_equal(g, h)
        first.setdefault(n, got)
    assert fn.specializations == ({"batch": 7}, {"batch": 1}, {"batch": 1000})


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_empty_batch_gives_numpy_answers(backend: str):
    x = gc.var("x", shape=("batch", 3))
    outputs = [gc.sum(x), gc.mean(x), gc.sum(x, axis=0), gc.mean(x, axis=0), gc.prod(x, axis=0), x * 2.0, gc.exp(x)]
    fn = gc.compile(x, outputs, backend=backend)
    empty = np.zeros((0, 3))
    with np.errstate(all="ignore"):
        got = fn(empty)
        expected = [
            np.sum(empty),
            np.mean(empty),
            np.sum(empty, 0),
            np.mean(empty, 0),
            np.prod(empty, 0),
            empty * 2,
            np.exp(empty),
        ]
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)
    with pytest.raises(ValueError, match=r"zero-size|empty"):
        gc.compile(x, gc.max(x, axis=0), backend=backend)(empty)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_bindings_are_checked(backend: str):
    X = gc.var("X", shape=("batch", "feat"))
    Y = gc.var("Y", shape=("batch",))
    Z = gc.var("Z", shape=("feat", 2))
    fn = gc.compile([X, Y, Z], gc.sum(X @ Z, axis=1) + Y, backend=backend)
    assert fn.signature == "(X: f64[batch,feat], Y: f64[batch], Z: f64[feat,2]) -> f64[batch]"
    assert fn.named == ("batch", "feat")
    np.testing.assert_allclose(fn(np.ones((3, 2)), np.ones(3), np.ones((2, 2))), np.full(3, 5.0))
    with pytest.raises(ValueError, match=r"'Y': dimension batch is 4 \(axis 0\) but 3 in input 'X' \(axis 0\)"):
        fn(np.ones((3, 2)), np.ones(4), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"'Z': dimension feat is 5 \(axis 0\) but 2 in input 'X' \(axis 1\)"):
        fn(np.ones((3, 2)), np.ones(3), np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"'Z': expected shape \((feat|2), 2\), got"):  # checked or fast path
        fn(np.ones((3, 2)), np.ones(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"'X': expected shape \(batch, feat\)"):
        fn(np.ones(3), np.ones(3), np.ones((2, 2)))
    with pytest.raises(TypeError, match="'X'"):
        fn("not an array", np.ones(3), np.ones((2, 2)))
    assert fn([[1.0, 2.0]], [0.5], [[1.0, 0.0], [0.0, 1.0]]).tolist() == [3.5]  # lists bind too
    assert len(fn.specializations) == 2


def test_unbound_names_fail_at_compile_time():
    x = gc.var("x", shape=("n",))
    z = gc.broadcast_to(gc.sum(x), ("m",))  # m is no input's dimension
    with pytest.raises(gc.GraphError, match="m is not a whole dimension of any input"):
        gc.compile(x, z, backend="numpy")
    only_expression = gc.var("e", shape=(2 * Dim.named("k"),))
    with pytest.raises(gc.GraphError, match="k is not"):
        gc.compile(only_expression, only_expression * 2, backend="numpy")


def test_expression_dimensions_of_inputs_are_checked():
    x = gc.var("x", shape=("n",))
    y = gc.var("y", shape=(Dim.named("n") + 1,))
    fn = gc.compile([x, y], y[1:] - x, backend="numpy")
    np.testing.assert_array_equal(fn(np.arange(3.0), np.arange(4.0)), np.ones(3))
    with pytest.raises(ValueError, match=r"'y': dimension n\+1 on axis 0 should be 4 \(n=3 from input 'x'"):
        fn(np.arange(3.0), np.arange(5.0))


def test_a_negative_dimension_names_itself_at_call_time():
    x = gc.var("x", shape=("batch", 2))
    fn = gc.compile(x, x[1:] - x[:-1], backend="numpy")  # marker:diff
    assert fn(np.zeros((1, 2))).shape == (0, 2)
    with pytest.raises(gc.ShapeError) as info:
        fn(np.zeros((0, 2)))
    message = str(info.value)
    assert "batch=0" in message and "batch-1" in message and "-1" in message
    assert f"{HERE}:{line_of('marker:diff')}" in message
    three = gc.compile(x, x[:3], backend="numpy")
    assert three(np.ones((5, 2))).shape == (3, 2)
    with pytest.raises(gc.ShapeError, match=r"slice 0:3 does not fit an axis of length 2"):
        three(np.ones((2, 2)))


def test_same_size_again_compiles_nothing(monkeypatch):
    x = gc.var("x", shape=("n",))
    fn = gc.compile(x, 2 * x, backend="numpy")
    for n in (3, 3, 4, 3, 4, 0, 0):
        np.testing.assert_array_equal(fn(np.arange(float(n))), 2 * np.arange(float(n)))
    assert fn.specializations == ({"n": 3}, {"n": 4}, {"n": 0})
    assert fn.specialize(n=4) is fn.specialize(n=4)
    assert fn.specialize(n=4).signature == "(x: f64[4]) -> f64[4]"
    assert "def graphc_fn(x)" in fn.specialize(n=4).source
    with pytest.raises(AttributeError, match=r"fn.specialize\(n=...\).source"):
        _ = fn.source
    with pytest.raises(TypeError, match="sizes for n"):
        fn.specialize(m=3)
    with pytest.raises(ValueError, match="int >= 0"):
        fn.specialize(n=-1)


def test_fixed_and_named_agree():
    """A named function at size n computes what the fixed-shape function at n does (same optimized graph)."""
    X = gc.var("X", shape=("batch", 5))
    W = gc.var("W", shape=(5, 2))
    f = gc.sum(gc.tanh(X @ W) ** 2) + gc.mean(gc.exp(-X))
    g = gc.grad(f, W)
    Xf = gc.var("X", shape=(9, 5))
    ff = gc.sum(gc.tanh(Xf @ W) ** 2) + gc.mean(gc.exp(-Xf))
    named = gc.compile([X, W], [f, g], backend="llvm")
    fixed = gc.compile([Xf, W], [ff, gc.grad(ff, W)], backend="llvm")
    xv, wv = RNG.normal(size=(9, 5)), RNG.normal(size=(5, 2))
    for a, b in zip(named(xv, wv), fixed(xv, wv), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_evaluate_binds_names():
    x = gc.var("x", shape=("n",))
    y = gc.var("y", shape=("n",))
    np.testing.assert_array_equal(gc.evaluate(x * y, {x: [1.0, 2.0], y: [3.0, 4.0]}), [3.0, 8.0])
    with pytest.raises(ValueError, match="dimension n is 3"):
        gc.evaluate(x * y, {x: [1.0, 2.0], y: [3.0, 4.0, 5.0]})
    z = gc.var("z", shape=("m",))
    with pytest.raises(gc.GraphError, match="m is not"):
        gc.evaluate(x * gc.sum(z), {x: [1.0]})


def test_bind_reads_first_occurrences():
    x = gc.var("x", shape=("a", "b")).node
    y = gc.var("y", shape=("b", A * B)).node
    assert bind([x, y], [(2, 3), (3, 6)]) == {"a": 2, "b": 3}
    with pytest.raises(ValueError, match=r"a\*b on axis 1 should be 6"):
        bind([x, y], [(2, 3), (3, 7)])


def test_specialize_keeps_fixed_nodes_and_provenance():
    x = gc.var("x", shape=("n",))
    w = gc.var("w", shape=(3,))
    fixed_part = gc.exp(w)
    out = gc.sum(x) * fixed_part  # marker:provenance
    graph = specialize(gc.Graph([out.node, fixed_part.node]), {"n": 4})
    assert graph.outputs[1] is fixed_part.node
    assert graph.outputs[0].loc.line == line_of("marker:provenance")
    assert str(graph.outputs[0].type) == "f64[3]"


# --- adversarial names ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_names_that_collide_unicode_and_int_bool_inputs(backend: str):
    X = gc.var("X", shape=("X", 2))  # a dimension named like an input
    idx = gc.var("idx", shape=("批",), dtype="int64")  # a unicode name on an int input
    mask = gc.var("mask", shape=("β", "X"), dtype="bool")
    picked = gc.take(X, idx, axis=0)
    count = gc.sum(mask.astype("int64"), axis=0)
    fn = gc.compile([X, idx, mask], [picked, count, gc.where(mask, 1.0, 0.0) @ X], backend=backend)
    assert fn.signature.startswith("(X: f64[X,2], idx: i64[批], mask: bool[β,X]) ->")
    xv = RNG.normal(size=(4, 2))
    iv = np.array([3, 0, 0, 2, 1])
    mv = RNG.random((3, 4)) < 0.5
    a, b, c = fn(xv, iv, mv)
    np.testing.assert_array_equal(a, xv[iv])
    np.testing.assert_array_equal(b, mv.sum(axis=0))
    np.testing.assert_allclose(c, mv.astype(float) @ xv, rtol=1e-14)
    with pytest.raises(IndexError):
        fn(xv, np.array([4]), mv)
    assert fn.specializations == ({"X": 4, "β": 3, "批": 5}, {"X": 4, "β": 3, "批": 1})


def test_a_var_name_cannot_write_into_the_generated_dispatch(capsys):
    """The dispatcher's comment lists the inputs' names: a newline in a name must not end it."""
    for name in ['x\nprint("injected")', 'x\n    print("injected")']:  # a statement after the def, and in it
        x = gc.var(name, shape=("batch", 2))
        fn = gc.compile({"x": x}, gc.sum(x), backend="numpy")  # a tree input: the call goes through the dispatch
        assert float(fn({"x": np.ones((3, 2))})) == 6.0
        assert "injected" not in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_scan_over_a_named_length(backend: str):
    xs = gc.var("xs", shape=("T", "batch", 3))
    h0 = gc.var("h0", shape=("batch", 2))
    W = gc.var("W", shape=(3, 2))

    def step(h, x):
        h = gc.tanh(h + x @ W)
        return h, gc.sum(h, axis=1)

    h_T, ys = gc.scan(step, h0, xs)
    assert str(ys.node.type) == "f64[T,batch]"
    loss = gc.sum(h_T**2) + gc.sum(ys)
    gW = gc.grad(loss, W)
    fn = gc.compile([xs, h0, W], [loss, gW], backend=backend)
    wv = RNG.normal(size=(3, 2))
    for t, n in [(5, 2), (0, 3), (1, 1), (3, 0)]:
        xv, hv = RNG.normal(size=(t, n, 3)), RNG.normal(size=(n, 2))
        expected = gc.evaluate([loss, gW], {xs: xv, h0: hv, W: wv})
        for g, e in zip(fn(xv, hv, wv), expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)
        h = hv
        for x in xv:
            h = np.tanh(h + x @ wv)
    with pytest.raises(gc.ShapeError, match="checkpoint=2 needs a known length"):
        gc.scan(step, h0, xs, checkpoint=2)
    _, ys_len = gc.scan(lambda c, _: (c + 1.0, c), gc.const(0.0), None, length=xs.shape[0])
    assert str(ys_len.node.type) == "f64[T]"


def test_fixed_point_with_named_batch():
    p = gc.var("p", shape=("batch",))
    z = gc.fixed_point(lambda z, p: 0.5 * gc.cos(z) + p, gc.zeros_like(p) if hasattr(gc, "zeros_like") else p * 0.0, p)
    g = gc.grad(gc.sum(z), p)
    fn = gc.compile(p, [z, g], backend="numpy")
    pv = RNG.uniform(-1, 1, size=6)
    zv, gv = fn(pv)
    np.testing.assert_allclose(zv, 0.5 * np.cos(zv) + pv, atol=1e-9)
    np.testing.assert_allclose(gv, 1 / (1 + 0.5 * np.sin(zv)), rtol=1e-8)
    assert fn(np.zeros(0))[0].shape == (0,)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_cond_and_while_loop_with_named_batch(backend: str):
    x = gc.var("x", shape=("batch", 3))
    picked = gc.cond(gc.sum(x) > 0, lambda t: t * 2.0, lambda t: -t, x)
    halved = gc.while_loop(lambda c: gc.sum(c * c) > 1.0, lambda c: c * 0.5, x * 10.0, max_iter=60)
    loss = gc.sum(picked**2) + gc.sum(halved)
    assert str(picked.node.type) == str(halved.node.type) == "f64[batch,3]"
    fn = gc.compile([x], [picked, halved, gc.grad(loss, x)], backend=backend)
    for n in (4, 1, 0):
        xv = RNG.uniform(-1, 2, size=(n, 3))
        fixed = gc.var("x", shape=(n, 3))
        want = gc.evaluate(
            [gc.cond(gc.sum(fixed) > 0, lambda t: t * 2.0, lambda t: -t, fixed),
             gc.while_loop(lambda c: gc.sum(c * c) > 1.0, lambda c: c * 0.5, fixed * 10.0, max_iter=60)],
            {fixed: xv},
        )  # fmt: skip
        got = fn(xv)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert got[2].shape == (n, 3)


def test_mean_over_a_named_axis():
    x = gc.var("x", shape=("batch", 2))
    m = gc.mean(x, axis=0)
    assert "dim(dtype=float64, size=batch)" in gc.show(m)
    np.testing.assert_array_equal(gc.evaluate(m, {x: [[1.0, 2.0], [3.0, 5.0]]}), [2.0, 3.5])
    m32 = gc.mean(gc.var("y", shape=("n", "k"), dtype="float32"))
    assert "dim(dtype=float32, size=k*n)" in gc.show(m32)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's own warnings for statistics of nothing
def test_composite_functions_with_named_axes():
    """The NumPy-named functions built from primitives, on a named axis, against NumPy at sizes 0, 1 and n."""
    x = gc.var("x", shape=("n", 3))
    v = gc.var("v", shape=("n",))
    functions = {
        "mean": (lambda t: gc.mean(t, axis=0), lambda a: np.mean(a, axis=0)),
        "std": (lambda t: gc.std(t, axis=0, ddof=1), lambda a: np.std(a, axis=0, ddof=1)),
        "variance": (lambda t: t.var(), np.var),
        "softmax": (lambda t: gc.softmax(t, axis=0), lambda a: np.exp(a) / np.exp(a).sum(axis=0)),
        "log_softmax": (lambda t: gc.log_softmax(t, axis=0), lambda a: a - np.log(np.exp(a).sum(axis=0))),
        "tile": (lambda t: gc.tile(t, 2), lambda a: np.tile(a, 2)),
        "repeat": (lambda t: gc.repeat(t, 2, axis=0), lambda a: np.repeat(a, 2, axis=0)),
        "flip": (lambda t: gc.flip(t, 0), lambda a: np.flip(a, 0)),
        "zeros_like": (gc.zeros_like, np.zeros_like),
        "outer": (lambda t: gc.outer(t[:, 0], t[:, 1]), lambda a: np.outer(a[:, 0], a[:, 1])),
        "dot": (lambda t: gc.dot(t, t.T), lambda a: a @ a.T),
    }
    for n in (0, 1, 4):
        xv = RNG.normal(size=(n, 3))
        for name, (ours, numpy) in functions.items():
            got = gc.evaluate(ours(x), {x: xv})
            np.testing.assert_allclose(got, numpy(xv), rtol=1e-13, atol=1e-15, err_msg=name)
    for backend in ("numpy", "llvm"):  # softmax over a named axis of size 0 is empty, as with a fixed 0
        fn = gc.compile(x, [gc.softmax(x, axis=0), gc.log_softmax(x, axis=0)], backend=backend)
        for n in (0, 1, 4):
            xv = RNG.normal(size=(n, 3))
            for got, (_, numpy) in zip(fn(xv), [functions["softmax"], functions["log_softmax"]], strict=True):
                np.testing.assert_allclose(got, numpy(xv), rtol=1e-13, atol=1e-15)
    refused = [lambda: gc.eye(v.shape[0]), lambda: gc.arange(v.shape[0])]  # roll/triu: test_array_functions_...
    for build in refused:
        with pytest.raises(gc.ShapeError, match="named dimension n"):  # a constant or mask of a named size
            build()


def test_stop_gradient_keeps_names():
    x = gc.var("x", shape=("batch", 2))
    assert gc.stop_gradient(x).shape == x.shape


# --- the on-disk cache across processes ----------------------------------------------------------


def test_a_size_compiled_in_one_process_is_a_cache_hit_in_another(tmp_path: Path):
    script = textwrap.dedent(
        f"""
        import numpy as np, graphc as gc
        X = gc.var("X", shape=("batch", 8))
        W = gc.var("W", shape=(8, 3))
        loss = gc.mean(gc.tanh(X @ W) ** 2)
        fn = gc.compile([X, W], [loss, gc.grad(loss, W)], backend="llvm", cache_dir={str(tmp_path)!r})
        value, _ = fn(np.ones((5, 8)), np.full((8, 3), 0.1))
        print(fn.specialize(batch=5)._built.cache_hit, repr(float(value)))
        """
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True) for _ in range(2)
    ]
    (hit1, v1), (hit2, v2) = (r.stdout.split() for r in runs)
    assert (hit1, hit2) == ("False", "True")
    assert v1 == v2
    assert float(v1) == pytest.approx(np.tanh(0.8) ** 2, rel=1e-15)


def test_sparse_jacobians_need_fixed_shapes_and_compile_beside_named_outputs():
    x = gc.var("x", shape=("batch", 3))
    w = gc.var("w", (4,))
    for call in (lambda: gc.sparse_jacobian(gc.sum(x, axis=1) * 2.0, x), lambda: gc.jacobian_sparsity(x * 2.0, x),
                 lambda: gc.sparse_hessian(gc.sum(x * x), x)):  # fmt: skip
        with pytest.raises(gc.ShapeError, match=r"needs fixed shapes: (f|x) has shape \(batch") as info:
            call()
        assert "test_named_dims.py" in str(info.value)
    outputs = {"s": gc.sum(x) * w, "J": gc.sparse_jacobian(gc.sin(w) * 2.0, w)}
    fn = gc.compile({"x": x, "w": w}, outputs, backend="numpy")
    for n in (2, 0):
        got = fn({"x": np.ones((n, 3)), "w": np.arange(4.0)})
        np.testing.assert_array_equal(got["s"], 3.0 * n * np.arange(4.0))
        np.testing.assert_array_equal(got["J"].toarray(), np.diag(2 * np.cos(np.arange(4.0))))


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_array_functions_take_named_sizes(backend: str):
    """einsum, tensordot, roll, constant pad, triu/tril with a named batch: NumPy's results at every size."""
    x, w = gc.var("x", shape=("batch", 3)), gc.var("w", shape=(3, 2))
    a, b = gc.var("a", shape=("batch", 2, 3)), gc.var("b", shape=("batch", 3, 4))
    s = gc.var("s", shape=("n", "n"))
    cases = [
        (gc.einsum("ij,jk->ik", x, w), lambda xv, wv, av, bv, sv: np.einsum("ij,jk->ik", xv, wv)),
        (gc.einsum("bij,bjk->bik", a, b), lambda xv, wv, av, bv, sv: np.einsum("bij,bjk->bik", av, bv)),
        (gc.einsum("ij,ij->i", x, x), lambda xv, wv, av, bv, sv: np.einsum("ij,ij->i", xv, xv)),
        (gc.tensordot(x, w, axes=1), lambda xv, wv, av, bv, sv: np.tensordot(xv, wv, axes=1)),
        (gc.roll(x, 1, axis=1), lambda xv, wv, av, bv, sv: np.roll(xv, 1, axis=1)),
        (gc.roll(x, (-7, 2), axis=(0, 1)), lambda xv, wv, av, bv, sv: np.roll(xv, (-7, 2), axis=(0, 1))),
        (gc.roll(x, 5), lambda xv, wv, av, bv, sv: np.roll(xv, 5)),
        (gc.pad(x, ((0, 0), (1, 1))), lambda xv, wv, av, bv, sv: np.pad(xv, ((0, 0), (1, 1)))),
        (gc.pad(x, ((1, 2), (0, 1)), constant_values=7.0),
         lambda xv, wv, av, bv, sv: np.pad(xv, ((1, 2), (0, 1)), constant_values=7.0)),
        (gc.triu(x), lambda xv, wv, av, bv, sv: np.triu(xv)),
        (gc.tril(x, -1), lambda xv, wv, av, bv, sv: np.tril(xv, -1)),
        (gc.triu(s, 1), lambda xv, wv, av, bv, sv: np.triu(sv, 1)),
        (gc.tril(s), lambda xv, wv, av, bv, sv: np.tril(sv)),
    ]  # fmt: skip
    rolled = gc.roll(x, 2, axis=0)
    outputs = [c[0] for c in cases] + [gc.grad(gc.sum(rolled * gc.const(np.arange(3.0))), x)]
    fn = gc.compile([x, w, a, b, s], outputs, backend=backend)
    for n in (4, 0, 1, 9):
        values = (RNG.normal(size=(n, 3)), RNG.normal(size=(3, 2)), RNG.normal(size=(n, 2, 3)),
                  RNG.normal(size=(n, 3, 4)), RNG.normal(size=(n + 1, n + 1)))  # fmt: skip
        got = fn(*values)
        for k, (_, reference) in enumerate(cases):
            want = reference(*values)
            assert got[k].shape == want.shape, (k, n)
            np.testing.assert_allclose(got[k], want, rtol=1e-14, atol=1e-14, err_msg=f"case {k} at n={n}")
        np.testing.assert_array_equal(got[-1], np.tile(np.arange(3.0), (n, 1)))


def test_functions_refuse_only_the_named_axes_they_act_on():
    x = gc.var("x", shape=("batch", 3))
    for call, pattern in [
        (lambda: gc.random.permutation(gc.random.key(0), x), "permutation of an axis of named size batch"),
        (lambda: gc.diff(x, axis=0), "batch"),
        (lambda: gc.pad(x, ((1, 0), (0, 0)), mode="edge"), "batch"),
    ]:
        with pytest.raises(gc.ShapeError, match=pattern) as info:
            call()
        assert "test_named_dims.py" in str(info.value)
    assert gc.diff(x, axis=1).shape == (gc.Dim.named("batch"), 2)
