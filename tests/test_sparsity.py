"""Sparsity (API.md §6): patterns, coloring, sparse Jacobians and Hessians, CSR results.

Exact patterns for each op family; patterns never missing an entry that finite
differences see (over every op case of test_autodiff); sparse == dense to rounding on
random graphs (hypothesis) built from every op; coloring validity and optimality on
banded and arrowhead patterns, the star property for Hessians; compiled CSR results on
both backends; bad arguments.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
import scipy.sparse.linalg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.autodiff import coloring
from graphc.autodiff.sparse import star_positions
from graphc.ops import OPS, Op, accepts, elementwise_ops
from graphc.ops import shape as sh
from graphc.ops import structure as structure_ops
from graphc.shapes import TensorType, is_float

THIS_FILE = os.path.basename(__file__)


def here() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def dense_pattern(f: gc.Tensor, x: gc.Tensor) -> np.ndarray:
    p = gc.jacobian_sparsity(f, x)
    assert isinstance(p, scipy.sparse.csr_array) and p.dtype == np.bool_ and p.has_canonical_format
    assert p.shape == (f.size, x.size)
    return p.toarray()


def positions(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape)


def reads(out_index: np.ndarray, n: int) -> np.ndarray:
    """The pattern of an output that reads input element out_index[k] (-1: none) at element k."""
    flat = np.asarray(out_index).reshape(-1)
    p = np.zeros((flat.size, n), dtype=bool)
    rows = np.flatnonzero(flat >= 0)
    p[rows, flat[rows]] = True
    return p


# --- exact patterns, op family by op family ----------------------------------------------------------------

X = gc.var("x", (3, 4))
V = gc.var("v", (5,))
P12 = positions((3, 4))


def _tridiagonal(n: int) -> np.ndarray:
    return np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1


EXACT: dict[str, tuple[Callable[[], gc.Tensor], gc.Tensor, Callable[[], np.ndarray]]] = {
    "elementwise": (lambda: gc.exp(X) * gc.sin(X) + 2.0, X, lambda: np.eye(12, dtype=bool)),
    "broadcast-row": (lambda: gc.tanh(X) * gc.sum(X, axis=0), X, lambda: reads(P12, 12) | (
        np.equal.outer(P12 % 4, np.arange(12) % 4).reshape(12, 12))),
    "broadcast_to": (lambda: gc.broadcast_to(V, (2, 5)), V, lambda: reads(np.tile(np.arange(5), 2), 5)),
    "transpose": (lambda: X.T * 1.5, X, lambda: reads(P12.T, 12)),
    "reshape": (lambda: X.reshape(2, 6) - 1.0, X, lambda: np.eye(12, dtype=bool)),
    "slice-step": (lambda: X[::-1, 1::2], X, lambda: reads(P12[::-1, 1::2], 12)),
    "int-index": (lambda: X[1], X, lambda: reads(P12[1], 12)),
    "concatenate": (lambda: gc.concatenate([V[:2], np.zeros(3), V[::-1]]), V,
                    lambda: reads(np.r_[0, 1, -1, -1, -1, 4, 3, 2, 1, 0], 5)),
    "stencil": (lambda: (lambda p: p[:-2] - 2 * p[1:-1] + p[2:])(gc.concatenate([np.zeros(1), V, np.zeros(1)])), V,
                lambda: _tridiagonal(5)),
    "take-constant": (lambda: gc.take(V, [4, 0, -1, 2]), V, lambda: reads([4, 0, 4, 2], 5)),
    "take-2d-axis1": (lambda: gc.take(X, [[2, 0]], axis=1), X, lambda: reads(P12[:, [[2, 0]]], 12)),
    "sum-axis": (lambda: gc.sum(X, axis=1), X, lambda: np.equal.outer(np.arange(3), np.arange(12) // 4)),
    "mean-all": (lambda: gc.mean(X), X, lambda: np.ones((1, 12), dtype=bool)),
    "max-keepdims": (lambda: gc.max(X, axis=0, keepdims=True), X,
                     lambda: np.equal.outer(np.arange(4), np.arange(12) % 4)),
    "logsumexp": (lambda: gc.logsumexp(X, axis=-1), X, lambda: np.equal.outer(np.arange(3), np.arange(12) // 4)),
    "matmul-const-zeros": (lambda: np.array([[1.0, 0, 0, 2, 0], [0, 0, 3, 0, 0]]) @ V, V,
                           lambda: np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0]], dtype=bool)),
    "matmul-var-const": (lambda: X @ np.array([[1.0], [0.0], [0.0], [2.0]]), X,
                         lambda: np.array([[j in (4 * i, 4 * i + 3) for j in range(12)] for i in range(3)])),
    "matmul-two-vars": (lambda: X @ gc.var("w", (4, 2)), X,
                        lambda: np.repeat(np.equal.outer(np.arange(3), np.arange(12) // 4), 2, axis=0)),
    "mul-const-zeros": (lambda: V * np.array([1.0, 0.0, -0.0, 2.0, 0.0]), V,
                        lambda: np.diag([True, False, False, True, False])),
    "where-const": (lambda: gc.where(np.array([True, False, True, False, False]), gc.exp(V), V[::-1] * 2.0), V,
                    lambda: reads([0, 3, 2, 1, 0], 5)),
    "where-compare": (lambda: gc.where(V > 0, V, 0.0), V, lambda: np.eye(5, dtype=bool)),
    "comparison-floor-sign": (lambda: gc.floor(V) + gc.sign(V) * 3.0 + gc.where(V > 0, 1.0, 2.0), V,
                              lambda: np.zeros((5, 5), dtype=bool)),
    "prod": (lambda: gc.prod(X, axis=0), X, lambda: np.equal.outer(np.arange(4), np.arange(12) % 4)),
    "cumsum": (lambda: gc.cumsum(X, axis=1), X, lambda: np.equal.outer(np.arange(12) // 4, np.arange(12) // 4)
               & np.greater_equal.outer(np.arange(12) % 4, np.arange(12) % 4)),
    "cumprod-flipped": (lambda: gc.cumprod(V[::-1])[::-1], V, lambda: np.less_equal.outer(np.arange(5), np.arange(5))),
    "cumsum-reverse": (lambda: gc.Tensor(OPS["cumsum"](V.node, axis=0, reverse=True)), V,
                       lambda: np.less_equal.outer(np.arange(5), np.arange(5))),
    "scalar-var": (lambda: gc.exp(gc.var("s") * 0 + V), V, lambda: np.eye(5, dtype=bool)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_pattern(name: str) -> None:
    build, x, expected = EXACT[name]
    f = build()
    np.testing.assert_array_equal(dense_pattern(f, x), expected())


def test_exact_pattern_of_scatter_add_and_index_add_with_constant_and_variable_indices() -> None:
    v = gc.var("v", (4,))
    idx = gc.const(np.array([2, 0, 2, -1]))
    scattered = gc.Tensor(sh.scatter_add(v.node, idx.node, axis=0, size=3))
    np.testing.assert_array_equal(dense_pattern(scattered, v), [[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]])
    base = gc.var("b", (3,))
    added = gc.Tensor(structure_ops.index_add(base.node, v.node, idx.node, axis=0))
    np.testing.assert_array_equal(dense_pattern(added, base), np.eye(3, dtype=bool))
    np.testing.assert_array_equal(dense_pattern(added, v), [[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]])
    k = gc.var("k", (4,), dtype="int64")  # indices known only at call time: conservative along the axis
    unknown = gc.Tensor(sh.scatter_add(v.node, k.node, axis=0, size=3))
    np.testing.assert_array_equal(dense_pattern(unknown, v), np.ones((3, 4), dtype=bool))
    np.testing.assert_array_equal(dense_pattern(gc.take(v, k), v), np.ones((4, 4), dtype=bool))
    m = gc.var("m", (2, 3))
    np.testing.assert_array_equal(dense_pattern(gc.take(m, k[:2], axis=1), m),
                                  np.repeat(np.equal.outer(np.arange(2), np.arange(6) // 3), 2, axis=0))  # fmt: skip


def test_exact_pattern_of_diag_and_unslice() -> None:
    v = gc.var("v", (3,))
    d = gc.Tensor(structure_ops.diag(v.node))
    np.testing.assert_array_equal(dense_pattern(d, v), reads([0, -1, -1, -1, 1, -1, -1, -1, 2], 3))
    u = gc.Tensor(sh.unslice(v.node, index=((1, 7, 2),), shape=(7,)))
    np.testing.assert_array_equal(dense_pattern(u, v), reads([-1, 0, -1, 1, -1, 2, -1], 3))


def test_loops_are_conservative() -> None:
    v = gc.var("v", (4,))
    _, ys = gc.scan(lambda c, x: (c + x, c * x), gc.const(0.0), v)
    assert dense_pattern(ys, v).all()


def test_cond_pattern_is_the_union_of_its_branches() -> None:
    """P7: a cond was dense; its pattern is both branches' patterns (the predicate carries none)."""
    v, w = gc.var("v", (4,)), gc.var("w", (3,))
    elementwise = gc.cond(gc.sum(v) > 0, lambda a: a * a, gc.exp, v)
    np.testing.assert_array_equal(dense_pattern(elementwise, v), np.eye(4, dtype=bool))
    first, total = gc.cond(
        gc.sum(v * w[0]) > 0, lambda a, b: (a[:3] * b, gc.sum(a)), lambda a, b: (b[::-1] * 2.0, a[0] + 0.0), v, w
    )
    np.testing.assert_array_equal(dense_pattern(first, v), np.eye(3, 4, dtype=bool))
    np.testing.assert_array_equal(dense_pattern(first, w), np.eye(3, dtype=bool) | np.eye(3, dtype=bool)[::-1])
    np.testing.assert_array_equal(dense_pattern(total, v), np.ones((1, 4), dtype=bool))
    assert not dense_pattern(total, w).any()
    nested = gc.cond(v[0] > 0, lambda a: gc.cond(a[1] > 0, gc.sin, lambda b: gc.roll(b, 1), a), gc.cos, v)
    np.testing.assert_array_equal(
        dense_pattern(nested, v), np.eye(4, dtype=bool) | np.roll(np.eye(4, dtype=bool), 1, 0)
    )
    big = gc.var("big", (20000,))  # was 4 * 10**8 entries (3.5 GB)
    assert gc.jacobian_sparsity(gc.cond(gc.sum(big) > 0, lambda a: a * a, gc.exp, big), big).nnz == 20000
    outputs = [
        gc.sparse_jacobian(f, x, mode=mode).to_dense() for f, x in ((first, w), (nested, v)) for mode in ("fwd", "rev")
    ]
    wants = [gc.jacobian(f, x) for f, x in ((first, w), (nested, v)) for _ in range(2)]
    for point in (np.array([1.0, 2.0, -0.5, 0.3]), np.array([-1.0, -2.0, 0.5, 0.3]), np.array([1.0, -2.0, 0.5, 0.3])):
        feed = {v: point, w: np.array([0.5, -1.5, 2.0])}
        want = gc.evaluate(wants, feed)
        results = [gc.evaluate(outputs, feed)]
        results += [gc.compile([v, w], outputs, backend=b)(point, feed[w]) for b in ("numpy", "llvm")]
        for got in results:
            for g, e in zip(got, want, strict=True):
                np.testing.assert_allclose(g, e, rtol=1e-15, atol=0)


def test_patterns_over_the_size_limit_are_refused_before_allocation() -> None:
    """P7: a dense pattern of n x n entries is refused (GraphError naming the function, the node, the user's line)."""
    import tracemalloc

    n = 2**15  # n * n = 2**30 entries > 2**28
    x = gc.var("x", (n,))
    loop = gc.while_loop(lambda y: gc.max(y) > 1.0, lambda y: 0.5 * y, x, max_iter=60)
    square = gc.sum(x) ** 2
    cases = [(gc.jacobian_sparsity, loop, "while_loop"), (gc.sparse_jacobian, gc.sum(x) * x, "mul"),
             (gc.sparse_hessian, square, "broadcast_to"), (gc.hessian_sparsity, square, "broadcast_to")]  # fmt: skip
    tracemalloc.start()
    try:
        for function, f, op in cases:
            with pytest.raises(gc.GraphError) as info:
                line = here() + 1
                function(f, x)
            message = str(info.value)
            assert function.__name__ in message and op in message and "2**28" in message, message
            assert f"{THIS_FILE}:{line}" in message, message
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**28  # nothing of the size of the pattern (over 1 GB) was allocated


def test_pattern_of_the_wrt_itself_and_of_an_independent_output() -> None:
    v = gc.var("v", (3,))
    np.testing.assert_array_equal(dense_pattern(v * 1.0, v), np.eye(3, dtype=bool))
    assert not dense_pattern(gc.exp(gc.var("other", (2,))), v).any()


# --- never missing an entry that finite differences see --------------------------------------------------

from test_autodiff import CASES, numeric_jacobian  # noqa: E402  (the op cases, defined there)

FIRST_CASE_PER_FUNCTION = list({c.id.split("-")[0]: c for c in reversed(CASES)}.values())


def _check_covers_differences(c: object) -> None:
    out, xs, values = c.build()  # type: ignore[attr-defined]
    for x in xs:
        pattern = dense_pattern(out, x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            numeric = numeric_jacobian(out, x, values).reshape(out.size, x.size)
        seen = np.abs(numeric) > 1e-6
        missing = np.argwhere(seen & ~pattern)
        assert missing.size == 0, (c.id, x, missing)  # type: ignore[attr-defined]


@pytest.mark.parametrize("c", FIRST_CASE_PER_FUNCTION, ids=lambda c: c.id)
def test_pattern_covers_finite_differences(c: object) -> None:
    _check_covers_differences(c)


@pytest.mark.slow
@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_pattern_covers_finite_differences_every_case(c: object) -> None:
    _check_covers_differences(c)


# --- sparse == dense on random graphs built from every op ---------------------------------------------------

A = gc.var("a", (3, 4))
B = gc.var("b", (4,))
S = gc.var("s")
GRAPH_VARS = [A, B, S]


def _positive(t: gc.Tensor) -> gc.Tensor:
    return t * t + 0.5


def _unary(op_name: str) -> Callable[[gc.Tensor], gc.Tensor]:
    """The op on tanh(x), moved into its domain: bounded values, finite derivatives."""
    op = OPS[op_name]
    lo = op.domain[0].lo

    def apply(x: gc.Tensor) -> gc.Tensor:
        t = gc.tanh(x)
        if lo > -np.inf:
            t = _positive(t) + lo
        return gc.Tensor(op(t.node))

    return apply


def _binary(op_name: str) -> Callable[[gc.Tensor, gc.Tensor], gc.Tensor]:
    op = OPS[op_name]

    def apply(x: gc.Tensor, y: gc.Tensor) -> gc.Tensor:
        tx, ty = gc.tanh(x), gc.tanh(y)
        if op_name == "pow":
            tx = _positive(tx)
        if op_name == "div":
            ty = _positive(ty)
        a, b = np.broadcast_arrays(np.empty(tx.shape), np.empty(ty.shape))
        return gc.Tensor(op(gc.broadcast_to(tx, a.shape).node, gc.broadcast_to(ty, b.shape).node))

    return apply


F64 = np.dtype("float64")


def float_valued(op: Op) -> bool:
    """Whether the elementwise record takes float operands and gives a float."""
    types = [TensorType((), F64)] * len(op.domain)
    return accepts(op, *(t.dtype for t in types)) and is_float(op.infer(*types).dtype)


FLOAT_UNARY = [op.name for op in elementwise_ops(1) if float_valued(op)]
FLOAT_BINARY = [op.name for op in elementwise_ops(2) if float_valued(op)]
I2 = gc.const(np.array([2, 0, 2]))


def _vector(t: gc.Tensor) -> gc.Tensor:
    """t flattened, lengthened (with sin of itself) to at least 6 elements."""
    v = t.reshape(-1)
    while v.size < 6:
        v = gc.concatenate([v, gc.sin(v)])
    return v


WELL = gc.const(np.array([[3.0, 1.0, 0.0], [0.5, 4.0, 1.0], [0.0, 1.0, 5.0]]))  # well conditioned
KERNEL = gc.const(np.array([[[[1.0, -2.0], [0.5, 3.0]]]]))


def _matrix(t: gc.Tensor) -> gc.Tensor:
    """A 2x2 matrix from t, with 3 added on the diagonal (far from singular for the values drawn)."""
    return gc.reshape(_vector(t)[:4], (2, 2)) + gc.const(3.0 * np.eye(2))


def _spread_out(v: gc.Tensor) -> gc.Tensor:
    """v at the odd positions of a vector of zeros (unslice)."""
    return gc.Tensor(sh.unslice(v.node, index=((1, 2 * v.size, 2),), shape=(2 * v.size + 1,)))


STRUCTURAL: dict[str, Callable[[gc.Tensor], gc.Tensor]] = {
    "where": lambda t: gc.where(t > 0.1, t * 2.0, gc.sin(t)),
    "astype": lambda t: gc.astype(gc.astype(t, "float32"), "float64"),
    "reshape": lambda t: t.reshape(-1),
    "transpose": lambda t: gc.transpose(t),
    "broadcast_to": lambda t: gc.broadcast_to(t, (2, *t.shape)),
    "slice": lambda t: _vector(t)[::-2],
    "unslice": lambda t: _spread_out(_vector(t)),
    "concatenate": lambda t: gc.concatenate([_vector(t), np.ones(2), _vector(t)[:1] * 3.0]),
    "take": lambda t: gc.take(_vector(t), np.array([0, -1, 0])),
    "scatter_add": lambda t: gc.Tensor(sh.scatter_add(_vector(t)[:3].node, I2.node, axis=0, size=4)),
    "sum": lambda t: gc.sum(t, axis=0) if t.ndim else t * 1.0,
    "prod": lambda t: gc.prod(gc.tanh(t) + 2.0, axis=-1) if t.ndim else t * 2.0,
    "cumsum": lambda t: gc.cumsum(t, axis=0) if t.ndim else t * 1.5,
    "cumprod": lambda t: gc.cumprod(gc.tanh(t) + 2.0, axis=-1) if t.ndim else t * 0.5,
    "max": lambda t: gc.max(t, axis=0) if t.ndim else t,
    "min": lambda t: gc.min(t) * 2.0,
    "logsumexp": lambda t: gc.logsumexp(t, axis=-1) if t.ndim else t,
    "matmul": lambda t: gc.tanh(_vector(t)[:6]) @ np.array([1.0, 0.0, 2.0, 0.0, 0.0, -1.0]),
    "matmul-var": lambda t: _vector(t)[:3] @ gc.tanh(gc.reshape(_vector(t)[-6:], (3, 2))),
    "solve": lambda t: gc.linalg.solve(WELL, _vector(t)[:3]),
    "inv": lambda t: gc.linalg.inv(_matrix(t)),
    "slogdet": lambda t: gc.linalg.slogdet(_matrix(t))[1],
    "cholesky": lambda t: gc.linalg.cholesky(_matrix(t) @ gc.transpose(_matrix(t))).reshape(-1),
    "im2col": lambda t: gc.nn.conv2d(gc.reshape(_vector(t)[:6], (1, 1, 2, 3)), KERNEL).reshape(-1),
    "col2im": lambda t: gc.Tensor(OPS["col2im"](gc.reshape(_vector(t)[:4], (1, 2, 1, 1, 1, 2)).node, dilation=(1, 1),
                                                kernel=(2, 1), padding=((0, 0), (0, 0)), size=(2, 2), stride=(1, 1))),
    "cond": lambda t: gc.cond(gc.sum(t) > 0.0, lambda a: a * 2.0, gc.sin, t),
    "diag": lambda t: gc.Tensor(structure_ops.diag(_vector(t).node)),
    "index_add": lambda t: gc.Tensor(structure_ops.index_add(_vector(t).node, gc.sin(_vector(t)[:3]).node,
                                                             I2.node, axis=0)),
}  # fmt: skip
NOT_DRAWN = {
    "var": "a source", "const": "a source", "fused": "built by the optimizer, after differentiation",
    "argmax": "int result", "argmin": "int result", "scan": "test_loops_are_conservative",
    "fixed_point": "a loop: conservative like scan", "while_loop": "a loop: conservative like scan",
    "iota": "int result", "sort": "int result (an internal op of gc.random.permutation)",
    "dim": "an int source (a named dimension's size)",
    "stop_gradient": "no derivative: dense dependence is conservative (test_derivative_control_patterns)",
    "custom": "a user's rule: dense dependence, conservative (test_derivative_control_patterns)",
}  # fmt: skip
BOOL_OPS = {op.name for op in elementwise_ops() if op.name not in FLOAT_UNARY + FLOAT_BINARY}


def test_every_op_is_drawn_or_excused() -> None:
    structural = {name.split("-")[0] for name in STRUCTURAL}
    drawn = set(FLOAT_UNARY) | set(FLOAT_BINARY) | structural | BOOL_OPS
    assert sorted(set(OPS) - drawn - set(NOT_DRAWN)) == []
    assert "where" in structural  # comparisons (BOOL_OPS) appear as its conditions


@st.composite
def sparse_graphs(draw: st.DrawFn) -> tuple[gc.Tensor, gc.Tensor]:
    pool = list(GRAPH_VARS)
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["unary", "binary", "structural"]))
        x = draw(st.sampled_from(pool))
        if kind == "unary":
            pool.append(_unary(draw(st.sampled_from(FLOAT_UNARY)))(x))
        elif kind == "binary":
            partners = [t for t in pool if _fits(x.shape, t.shape)]
            pool.append(_binary(draw(st.sampled_from(FLOAT_BINARY)))(x, draw(st.sampled_from(partners))))
        else:
            pool.append(STRUCTURAL[draw(st.sampled_from(sorted(STRUCTURAL)))](x))
    return pool[-1], draw(st.sampled_from(GRAPH_VARS))


def _fits(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


FEED = {A: np.linspace(-1.2, 1.3, 12).reshape(3, 4), B: np.array([0.3, -0.7, 1.1, 0.05]), S: np.array(0.4)}


@settings(max_examples=120, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(sparse_graphs())
def test_sparse_equals_dense_on_random_graphs(graph: tuple[gc.Tensor, gc.Tensor]) -> None:
    f, x = graph
    dense = np.asarray(gc.evaluate(gc.jacobian(f, x), FEED)).reshape(f.size, x.size)
    pattern = dense_pattern(f, x)
    assert not np.any((dense != 0) & ~pattern), "the pattern misses an entry autodiff computes"
    for mode in ("fwd", "rev"):
        sparse = gc.sparse_jacobian(f, x, mode=mode)
        got = np.asarray(gc.evaluate(sparse.to_dense(), FEED))
        np.testing.assert_allclose(got, dense, rtol=1e-10, atol=1e-12)
    if f.shape == () and f.dtype == np.float64:
        h = gc.sparse_hessian(f, x)
        want = np.asarray(gc.evaluate(gc.hessian(f, x), FEED)).reshape(x.size, x.size)
        np.testing.assert_allclose(np.asarray(gc.evaluate(h.to_dense(), FEED)), want, rtol=1e-9, atol=1e-11)


# --- coloring ------------------------------------------------------------------------------------------


def banded(n: int, k: int) -> scipy.sparse.csr_array:
    """The pattern with 2k + 1 diagonals."""
    offsets = [d for d in range(-k, k + 1) if abs(d) < n]
    diagonals = [np.ones(n - abs(d), dtype=bool) for d in offsets]
    return scipy.sparse.csr_array(scipy.sparse.diags_array(diagonals, offsets=offsets, shape=(n, n), dtype=bool))


def arrowhead(n: int) -> scipy.sparse.csr_array:
    a = np.eye(n, dtype=bool)
    a[0, :] = a[:, 0] = True
    return scipy.sparse.csr_array(a)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 500])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_banded_column_coloring_is_optimal(n: int, k: int) -> None:
    p = banded(n, k)
    colors = coloring.color_columns(p)
    assert coloring.is_column_coloring(p, colors)
    assert coloring.count(colors) == min(n, 2 * k + 1)  # 2k + 1 columns meet in a middle row


def test_arrowhead_coloring() -> None:
    """Unidirectional compression cannot do better than n (a dense row and column); the star coloring takes 2."""
    p = arrowhead(30)
    assert coloring.count(coloring.color_columns(p)) == 30
    star = coloring.star_coloring(p)
    assert star is not None and coloring.count(star) == 2 and coloring.is_star_coloring(p, star)


def test_large_patterns_are_colored_by_the_pattern_greedy() -> None:
    """A tridiagonal 10^5 x 10^5 pattern (beyond networkx's size here): 3 colors, valid."""
    p = banded(100_000, 1)
    colors = coloring.color_columns(p)
    assert coloring.count(colors) == 3
    assert np.all(colors[np.arange(100_000 - 2)] != colors[np.arange(2, 100_000)])
    assert np.all(colors[:-1] != colors[1:])


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0.02, 0.5), st.integers(0, 2**16))
def test_random_column_colorings_are_valid(m: int, n: int, density: float, seed: int) -> None:
    p = scipy.sparse.random_array((m, n), density=density, format="csr", rng=seed).astype(bool)
    colors = coloring.color_columns(p)
    assert colors.shape == (n,) and coloring.is_column_coloring(p, colors)
    greedy = coloring.greedy_columns(p, np.arange(n))
    assert coloring.is_column_coloring(p, greedy)


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(st.integers(1, 25), st.floats(0.02, 0.4), st.integers(0, 2**16))
def test_random_star_colorings_have_the_star_property(n: int, density: float, seed: int) -> None:
    a = scipy.sparse.random_array((n, n), density=density, format="csr", rng=seed).astype(bool)
    p = scipy.sparse.csr_array(a + a.T + scipy.sparse.eye_array(n, dtype=bool))
    star = coloring.star_coloring(p)
    assert star is not None and coloring.is_star_coloring(p, star)
    # every entry is read directly from B = H @ S: check the recovery positions on a random symmetric H
    h = scipy.sparse.csr_array(p, dtype=float)
    h.data = np.random.default_rng(seed).standard_normal(h.nnz)
    h = (h + h.T).tocsr()
    h.sort_indices()
    seed_matrix = np.zeros((n, coloring.count(star)))
    seed_matrix[np.arange(n), star] = 1.0
    compressed = (h @ seed_matrix).T.reshape(-1)
    np.testing.assert_allclose(compressed[star_positions(p, star)], h.data, rtol=1e-12, atol=1e-12)


def test_the_star_check_catches_a_two_colored_path() -> None:
    p = banded(4, 1)
    assert not coloring.is_star_coloring(p, np.array([0, 1, 0, 1]))
    assert coloring.is_star_coloring(p, np.array([0, 1, 0, 2]))
    assert not coloring.is_column_coloring(p, np.array([0, 1, 0, 1]))


def rosenbrock(x: gc.Tensor) -> gc.Tensor:
    return gc.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("n", [2, 3, 10, 100])
def test_rosenbrock_hessian_takes_at_most_three_colors(n: int) -> None:
    x = gc.var("x", (n,))
    h = gc.sparse_hessian(rosenbrock(x), x)
    assert h.colors <= 3
    np.testing.assert_array_equal(gc.hessian_sparsity(rosenbrock(x), x).toarray(), banded(n, 1).toarray())
    xv = np.random.default_rng(n).uniform(-1.5, 1.5, n)
    fn = gc.compile([x], h, backend="numpy")
    np.testing.assert_allclose(fn(xv).toarray(), scipy.optimize.rosen_hess(xv), rtol=1e-12, atol=1e-9)


# --- compiled sparse results -------------------------------------------------------------------------------


def bratu(n: int) -> tuple[gc.Tensor, gc.Tensor]:
    u = gc.var("u", (n,))
    p = gc.concatenate([np.zeros(1), u, np.zeros(1)])
    return (p[:-2] - 2.0 * p[1:-1] + p[2:]) * float((n + 1) ** 2) + gc.exp(u), u


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compiled_sparse_jacobian_is_a_csr_array_equal_to_the_dense_one(backend: str) -> None:
    f, u = bratu(40)
    j = gc.sparse_jacobian(f, u)
    assert (j.colors, j.mode, j.nnz, j.shape) == (3, "fwd", 3 * 40 - 2, (40, 40))
    fn = gc.compile([u], [f, j, j.values * 2.0, gc.jacobian(f, u)], backend=backend)
    uv = np.sin(np.linspace(0, 3, 40))
    fv, jv, doubled, dense = fn(uv)
    assert isinstance(jv, scipy.sparse.csr_array) and jv.has_canonical_format and jv.dtype == np.float64
    np.testing.assert_allclose(jv.toarray(), dense, rtol=1e-13)
    np.testing.assert_array_equal(doubled, 2.0 * jv.data)
    np.testing.assert_allclose(jv @ np.ones(40), dense @ np.ones(40), rtol=1e-13)
    np.testing.assert_allclose(scipy.sparse.linalg.spsolve(jv.tocsc(), fv), np.linalg.solve(dense, fv), rtol=1e-8)
    again = fn(uv)[1]
    assert again.data is not jv.data and np.array_equal(again.data, jv.data)
    assert not jv.indices.flags.writeable  # shared by every call: read-only
    assert "3 colors (forward, compression 13.3x)" in str(fn.report)


def test_single_sparse_output_and_the_values_in_arithmetic() -> None:
    f, u = bratu(6)
    j = gc.sparse_jacobian(f, u)
    fn = gc.compile([u], j, backend="numpy")
    uv = np.linspace(0.1, 0.6, 6)
    got = fn(uv)
    np.testing.assert_allclose(got.toarray(), gc.evaluate(j.to_dense(), {u: uv}))
    total = gc.compile([u], gc.sum(j.values**2), backend="numpy")(uv)
    np.testing.assert_allclose(total, np.sum(got.data**2))


def test_reverse_mode_is_chosen_when_rows_need_fewer_colors() -> None:
    """f_i = x_i * sum(x): every column meets row... a dense column pattern; here a dense row: rows compress."""
    x = gc.var("x", (8,))
    f = gc.concatenate([gc.sum(x * x)[None], x[1:] * 2.0])  # row 0 dense, then a shifted diagonal
    j = gc.sparse_jacobian(f, x)
    assert j.mode == "rev" and j.colors == 2
    assert gc.sparse_jacobian(f, x, mode="fwd").colors == 8
    xv = np.linspace(-1, 1, 8)
    want = gc.evaluate(gc.jacobian(f, x), {x: xv})
    for mode in ("auto", "fwd", "rev"):
        got = gc.evaluate(gc.sparse_jacobian(f, x, mode=mode).to_dense(), {x: xv})
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_shapes_dtypes_and_empty_patterns() -> None:
    x = gc.var("x", (2, 3), dtype="float32")
    f = gc.tanh(x).T * 2.0
    j = gc.sparse_jacobian(f, x)
    assert j.shape == (6, 6) and j.dtype == np.float32 and j.nnz == 6
    xv = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    got = gc.compile([x], j, backend="numpy")(xv)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.toarray(), gc.evaluate(gc.jacobian(f, x), {x: xv}).reshape(6, 6), rtol=1e-6)
    y = gc.var("y", (4,))
    none = gc.sparse_jacobian(gc.exp(gc.var("z", (3,))), y)
    assert none.nnz == 0 and none.shape == (3, 4)
    z = gc.var("z2", (3,))
    empty = gc.compile([y, z], none, backend="numpy")(np.ones(4), np.ones(3))
    assert empty.shape == (3, 4) and empty.nnz == 0
    s = gc.var("s")
    scalar = gc.sparse_jacobian(gc.sin(s) * s, s)
    assert scalar.shape == (1, 1)
    np.testing.assert_allclose(gc.evaluate(scalar.values, {s: 0.3}), [np.cos(0.3) * 0.3 + np.sin(0.3)])


def test_a_large_sparse_jacobian_builds_nothing_quadratic() -> None:
    """n = 20,000: a dense Jacobian would be 3.2 GB; the sparse graph holds nothing of n^2 size."""
    n = 20_000
    f, u = bratu(n)
    j = gc.sparse_jacobian(f, u)
    assert j.colors == 3
    nodes = gc.Graph([j.values]).nodes
    assert max(node.type.size for node in nodes) < 4 * n
    fn = gc.compile([u], j, backend="numpy")
    uv = np.full(n, 0.1)
    got = fn(uv)
    np.testing.assert_allclose(got.diagonal(), -2.0 * (n + 1) ** 2 + np.exp(uv), rtol=1e-14)
    np.testing.assert_array_equal(got.diagonal(1), np.full(n - 1, float((n + 1) ** 2)))


# --- bad arguments -------------------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors_at_the_users_line() -> None:
    x = gc.var("x", (3,))
    k = gc.var("k", (3,), dtype="int64")
    f = gc.exp(x)
    cases: list[tuple[Callable[[], object], type[Exception], str]] = [
        (lambda: gc.sparse_jacobian(f, x * 2.0), gc.GraphError, "must be a var"),
        (lambda: gc.jacobian_sparsity(f, k), gc.GraphError, "dtype is int64"),
        (lambda: gc.sparse_jacobian(k * 2, x), gc.GraphError, "needs a float function"),
        (lambda: gc.sparse_hessian(f, x), gc.GraphError, "needs a float scalar"),
        (lambda: gc.hessian_sparsity(gc.sum(f), x + 1.0), gc.GraphError, "must be a var"),
    ]
    for call, kind, text in cases:
        with pytest.raises(kind, match=text) as info:
            call()
        assert f"{THIS_FILE}:" in str(info.value), str(info.value)  # the line of the call, in this file
    for call in (
        lambda: gc.sparse_jacobian([f], x),
        lambda: gc.sparse_jacobian(f, [x]),
        lambda: gc.sparse_hessian(3.0, x),
    ):
        with pytest.raises(TypeError, match="must be one"):
            call()
    with pytest.raises(ValueError, match="mode must be"):
        gc.sparse_jacobian(f, x, mode="sideways")
    with pytest.raises(gc.GraphError, match="needs a float scalar") as info:
        gc.sparse_hessian(f, x)
    assert f"{THIS_FILE}:{here() - 1}" in str(info.value)


def test_derivative_control_patterns() -> None:
    """stop_gradient and custom_vjp nodes get a conservative (dense) pattern; the sparse values stay exact."""

    @gc.custom_vjp
    def clipped(t: gc.Tensor) -> gc.Tensor:
        return gc.sin(t)

    clipped.defvjp(lambda ct, out, t: [ct * gc.cos(t)])
    x = gc.var("x", (4,))
    f = clipped(x) * 2.0 + gc.stop_gradient(x) * x
    pattern = gc.jacobian_sparsity(f, x).toarray()
    assert pattern.shape == (4, 4) and pattern.diagonal().all()
    xv = np.linspace(-1.0, 1.0, 4)
    dense = gc.compile([x], gc.jacobian(f, x), backend="numpy")(xv)
    np.testing.assert_allclose(np.diag(dense), 2 * np.cos(xv) + xv, rtol=1e-15)
    for backend in ("numpy", "llvm"):
        got = gc.compile([x], gc.sparse_jacobian(f, x), backend=backend)(xv)
        np.testing.assert_array_equal(got.toarray(), dense)


# --- known limits at non-finite values (strict xfails: a fix makes them pass) ---------------------------


@pytest.mark.xfail(
    strict=True, reason="known limit (docs/jacobians.md): compression spreads 0 * inf = NaN across a color"
)
@pytest.mark.parametrize(
    ("mode", "build", "value"),
    [
        ("fwd", lambda a, x: gc.const(a) @ gc.exp(x), [1.0, 2.0, 3.0, 800.0, 5.0, 6.0]),
        ("rev", lambda a, x: gc.tanh(gc.const(a) @ x), [1.0, 2.0, 3.0, np.inf, 5.0, 6.0]),
    ],
)
def test_sparse_jacobian_keeps_finite_entries_finite_beside_an_overflow(
    mode: str, build: Callable[[np.ndarray, gc.Tensor], gc.Tensor], value: list[float]
) -> None:
    """Every stored entry of a sparse Jacobian equals the dense Jacobian's entry."""
    n = 6
    a = np.diag(np.full(n, 2.0)) + np.diag(np.ones(n - 1), 1) + np.diag(np.ones(n - 1), -1)
    x = gc.var("x", (n,))
    f = build(a, x)
    dense = gc.evaluate(gc.jacobian(f, x), {x: np.array(value)})
    sparse = gc.compile([x], gc.sparse_jacobian(f, x, mode=mode), backend="numpy")(np.array(value)).toarray()
    pattern = a != 0
    np.testing.assert_allclose(sparse[pattern], dense[pattern], rtol=1e-15)


@pytest.mark.xfail(strict=True, reason="known limit (docs/jacobians.md): reverse mode meets 0 * inf on an exact entry")
def test_reverse_jacobian_entry_through_concatenate_is_exact_beside_an_infinity() -> None:
    """d(2 x_1)/dx_1 is 2 whatever exp(x_1) is; forward mode gives it."""
    x = gc.var("x", (5,))
    f = gc.concatenate([x * 2.0, gc.exp(x[:2])])
    value = {x: np.array([1.0, np.inf, -np.inf, np.nan, 1e300])}
    assert gc.evaluate(gc.jacobian(f, x, mode="fwd"), value)[1, 1] == 2.0
    assert gc.evaluate(gc.jacobian(f, x, mode="rev"), value)[1, 1] == 2.0
