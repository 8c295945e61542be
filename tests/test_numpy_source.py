"""The NumPy source backend: spelling coverage, golden source, every op against the interpreter, tracebacks."""

from __future__ import annotations

import inspect
import linecache
import traceback
from collections.abc import Callable

import numpy as np
import pytest

import graphc as gc
from graphc.backends.interpreter import run_program
from graphc.backends.numpy_source import HELPERS, SPELLINGS, build, numpy_reference, render, spell
from graphc.ir import Graph, Node
from graphc.ops import OPS, accepts, elementwise_ops, nn
from graphc.ops import cumulative as cu
from graphc.ops import elementwise as ew
from graphc.ops import linalg as la
from graphc.ops import random as rops
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.ops import structure as st
from graphc.ops.source import const, var
from graphc.passes.fuse import fuse
from graphc.schedule import make_step, schedule

TRANSIENT = {name for name, op in OPS.items() if op.transient}  # replaced before scheduling (ops/base.py)

F64 = np.dtype("float64")
F32 = np.dtype("float32")
I64 = np.dtype("int64")
BOOL = np.dtype("bool")
RNG = np.random.default_rng(0)


SPELLED = sorted(set(SPELLINGS) | {name for name in OPS if numpy_reference(name) is not None})


def test_every_op_has_a_spelling() -> None:
    """Each op is spelled from its record's NumPy function or from the table: one of the two, never both."""
    missing = sorted(set(OPS) - {"var", "const"} - TRANSIENT - set(SPELLED))
    assert missing == []
    assert set(SPELLINGS) <= set(OPS)
    assert set(HELPERS) <= set(SPELLINGS)
    assert [name for name in SPELLINGS if numpy_reference(name) is not None] == []


def test_a_record_spelling_is_its_numpy_function() -> None:
    x, y = inputs(((2, 3), F64), ((3,), F64))
    for node, text in [(ew.sub(x, y), "np.subtract(a, b)"), (ew.exp(x), "np.exp(a)"), (ew.abs_(x), "np.abs(a)")]:
        assert spell(make_step(node, "v", ("a", "b")[: len(node.inputs)])) == text


# --- every op against the interpreter ------------------------------------------------------


def value(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype == BOOL:
        return RNG.random(shape) < 0.5
    if dtype == I64:
        return RNG.integers(-3, 4, shape).astype(I64)
    return RNG.normal(size=shape).astype(dtype)


def inputs(*specs: tuple[tuple[int, ...], np.dtype]) -> list[Node]:
    return [var(f"a{k}", shape, dtype) for k, (shape, dtype) in enumerate(specs)]


def unary(op: Callable[..., Node], dtype: np.dtype = F64, shape: tuple[int, ...] = (2, 3)) -> Callable:
    def make() -> tuple[list[Node], Node]:
        (a,) = inputs((shape, dtype))
        return [a], op(a)

    return make


def binary(op: Callable[..., Node], dtype: np.dtype = F64) -> Callable:
    def make() -> tuple[list[Node], Node]:
        a, b = inputs(((2, 3), dtype), ((3,), dtype))
        return [a, b], op(a, b)

    return make


def with_inputs(*specs: tuple[tuple[int, ...], np.dtype]) -> Callable:
    def wrap(body: Callable[..., Node]) -> Callable:
        def make() -> tuple[list[Node], Node]:
            nodes = inputs(*specs)
            return nodes, body(*nodes)

        return make

    return wrap


SLICE = ((2, -1, -1), (0, 3, 2))
INDICES = np.array([[0, 2], [2, 2]])  # repeated indices: scatter_add must accumulate
# every elementwise record that takes float operands (the bool-only logical ops have their own entries)
BINARY = [op.name for op in elementwise_ops(2) if accepts(op, F64, F64)]
UNARY = [op.name for op in elementwise_ops(1) if accepts(op, F64)]
INTEGER = [op.name for op in elementwise_ops(2) if not accepts(op, F64, F64) and accepts(op, I64, I64)]

EXAMPLES: dict[str, Callable[[], tuple[list[Node], Node]]] = {
    **{name: binary(OPS[name]) for name in BINARY},
    **{name: unary(OPS[name]) for name in UNARY},
    "logical_and": binary(ew.logical_and, BOOL),
    "logical_or": binary(ew.logical_or, BOOL),
    "logical_not": unary(ew.logical_not, BOOL),
    "where": with_inputs(((2, 1), BOOL), ((3,), F64), ((2, 3), F64))(ew.where),
    "astype": unary(lambda a: ew.astype(a, dtype=F32)),
    "reshape": unary(lambda a: sh.reshape(a, shape=(3, 2))),
    "transpose": unary(lambda a: sh.transpose(a, axes=(1, 0))),
    "broadcast_to": unary(lambda a: sh.broadcast_to(a, shape=(4, 2, 3))),
    "slice": unary(lambda a: sh.slice_(a, index=SLICE), shape=(3, 4)),
    "unslice": unary(lambda a: sh.unslice(a, index=SLICE, shape=(3, 4)), shape=(5, 3, 2)),
    "concatenate": with_inputs(((2, 3), F64), ((2, 1), F64))(lambda a, b: sh.concatenate(a, b, a, axis=1)),
    "take": unary(lambda a: sh.take(a, const(np.array([[0, -1], [2, 1]])), axis=1)),
    "scatter_add": unary(lambda g: sh.scatter_add(g, const(INDICES), axis=1, size=3), shape=(4, 2, 2)),
    "diag": unary(st.diag),
    "index_add": with_inputs(((4, 3), F64), ((4, 2, 2), F64))(lambda b, u: st.index_add(b, u, const(INDICES), axis=1)),
    "matmul": with_inputs(((5, 2, 3), F64), ((3, 4), F64))(la.matmul),
    "solve": with_inputs(((2, 3, 3), F64), ((3, 2), F64))(lambda a, b: la.solve(a, b, transposed=True)),
    "inv": unary(la.inv, shape=(2, 3, 3)),
    "slogdet": unary(la.slogdet, dtype=F32, shape=(3, 3)),
    "cholesky": unary(lambda a: la.cholesky(ew.add(la.matmul(a, la.swap_last(a)), const(3 * np.eye(3))), upper=False),
                      shape=(2, 3, 3)),
    "sum": unary(lambda a: rd.sum_(a, axis=(1,), keepdims=True), dtype=F32),
    "prod": unary(lambda a: rd.prod(a, axis=(0, 1), keepdims=False), dtype=I64),
    "max": unary(lambda a: rd.max_(a, axis=(0,), keepdims=False)),
    "min": unary(lambda a: rd.min_(a, axis=(0, 1), keepdims=True), dtype=I64),
    "logsumexp": unary(lambda a: rd.logsumexp(a, axis=(1,), keepdims=False)),
    "argmax": unary(lambda a: rd.argmax(a, axis=1, keepdims=False)),
    "argmin": unary(lambda a: rd.argmin(a, axis=None, keepdims=True)),
    "cumsum": unary(lambda a: cu.cumsum(a, axis=1, reverse=True), dtype=I64),
    "cumprod": unary(lambda a: cu.cumprod(a, axis=0, reverse=False), dtype=F32),
    "im2col": unary(lambda a: nn.im2col(a, kernel=(2, 2), stride=(1, 2), padding=((1, 0), (1, 1)), dilation=(1, 1),
                                        fill=-np.inf), shape=(2, 1, 3, 4)),
    "col2im": unary(lambda c: nn.col2im(c, kernel=(2, 1), stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(2, 1),
                                        size=(3, 2)), shape=(2, 2, 1, 1, 1, 2)),
    "fused": unary(lambda a: fuse(Graph([ew.exp(ew.mul(a, a))])).outputs[0]),
    "scan": unary(lambda a: gc.scan(lambda c, x: (gc.tanh(c * x), c), gc.Tensor(a)[0], gc.Tensor(a))[1].node),
    "fixed_point": unary(lambda a: gc.fixed_point(lambda z: 0.5 * gc.cos(z) + gc.Tensor(a), gc.Tensor(a)).node),
    "iota": with_inputs()(lambda: rops.iota(shape=(2, 3))),
    "sort": unary(rops.sort, dtype=I64),
    **{name: binary(OPS[name], I64) for name in INTEGER},  # bitwise ops and shifts: int64 operands
    "cond": unary(lambda a: gc.cond(gc.sum(gc.Tensor(a)) > 0, gc.sin, lambda u: 2.0 * u, gc.Tensor(a)).node),
    "while_loop": unary(lambda a: gc.while_loop(lambda c: gc.max(c) < 10.0, lambda c: c * 2.0 + 0.5,
                                                gc.Tensor(a), max_iter=7).node),
}  # fmt: skip


def test_every_spelled_op_has_an_example() -> None:
    assert sorted(set(SPELLED) - set(EXAMPLES)) == []


def same_bits(got: np.ndarray, expected: np.ndarray) -> bool:
    return (
        isinstance(got, np.ndarray)
        and got.dtype == expected.dtype
        and got.shape == expected.shape
        and got.tobytes() == expected.tobytes()
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_op_equals_the_interpreter_bit_for_bit(name: str) -> None:
    nodes, out = EXAMPLES[name]()
    assert out.op.name == name
    graph = Graph([out], nodes)
    program = schedule(graph)
    args = [value(n.shape, n.dtype) for n in nodes]
    (expected,) = run_program(program, args)
    (got,) = build(program).function(*args)
    assert same_bits(got, expected), (name, got, expected)


@pytest.mark.parametrize("name", sorted(set(UNARY) - {"neg", "abs", "sign", "round", "floor"}))
def test_each_unary_op_on_a_0d_float32_value(name: str) -> None:
    """NumPy 2 returns scalars from ufuncs on 0-d arrays: results must still be 0-d arrays of the dtype."""
    (a,) = inputs(((), F32))
    program = schedule(Graph([OPS[name](a)], [a]))
    arg = np.asarray(0.25, dtype=F32)
    (expected,) = run_program(program, [arg])
    (got,) = build(program).function(arg)
    assert same_bits(got, expected)


# --- the source ---------------------------------------------------------------------------------


def test_golden_source() -> None:
    x = gc.var("x", (3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    program = schedule(Graph([f.node, x[::2].node], [x.node, s.node]))
    assert render(program) == "\n".join(
        [
            "# generated by graphc's numpy backend",
            "# c0: f64[] = 2.",
            "def graphc_fn(x, s):",
            "    if type(x) is not rt.ndarray or x.dtype is not rt.float64 or x.shape != (3,):",
            "        x = rt.coerce(x, 'x', (3,), rt.float64)",
            "    if type(s) is not rt.ndarray or s.dtype is not rt.float64 or s.shape != ():",
            "        s = rt.coerce(s, 's', (), rt.float64)",
            "    v0 = np.multiply(x, s)  # f64[3]",
            "    v1 = np.tanh(v0)  # f64[3]",
            "    del v0",
            "    v2 = rt.pow(v1, c0)  # f64[3]",
            "    del v1",
            "    v3 = np.sum(v2, axis=(0,), keepdims=False, dtype=np.float64)  # f64[]",
            "    del v2",
            "    v4 = np.multiply(s, s)  # f64[]",
            "    v5 = np.log1p(v4)  # f64[]",
            "    del v4",
            "    v6 = np.add(v3, v5)  # f64[]",
            "    del v3, v5",
            "    v7 = x[..., 0:3:2]  # f64[2]",
            "    return (np.array(v6), v7.copy())",
            "",
        ]
    )


def test_single_output_returns_the_value_itself() -> None:
    x = gc.var("x", (2,))
    program = schedule(Graph([gc.exp(x).node], [x.node]))
    assert render(program, single=True).endswith("    return v0\n")
    assert render(program).endswith("    return (v0,)\n")
    with pytest.raises(ValueError, match="exactly one"):
        render(schedule(Graph([x.node, x.node], [x.node])), single=True)


def test_filenames_are_unique_and_registered_with_linecache() -> None:
    x = gc.var("x", (2,))
    program = schedule(Graph([gc.exp(x).node], [x.node]))
    first, second = build(program), build(program)
    assert first.filename != second.filename
    assert first.filename.startswith("<graphc-numpy-")
    assert "".join(linecache.getlines(first.filename)) == first.source
    linecache.checkcache()
    assert "".join(linecache.getlines(second.filename)) == second.source


def test_a_traceback_shows_the_generated_line() -> None:
    table = gc.var("table", (3, 2))
    labels = gc.var("labels", (2,), dtype="int64")
    fn = gc.compile([table, labels], gc.take(table, labels, axis=0), backend="numpy")
    built = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
    with pytest.raises(IndexError) as info:
        fn(np.zeros((3, 2)), np.array([0, 7]))
    text = "".join(traceback.format_exception(info.value))
    assert f'File "{fn.filename}"' in text
    assert f"v0 = rt.take(table, labels, 0, ' (built at {__file__}:{built})')  # f64[2,2]" in text
    assert f"in take (built at {__file__}:{built})" in str(info.value)  # the user's line, as the llvm backend says
