"""gc.linalg (API.md §9): solve, inv, det, slogdet, cholesky and norm.

Every executor (gc.evaluate, the numpy backend, the llvm backend) against numpy.linalg on
stacks of 0, 1 and n matrices, empty matrices, broadcast right-hand sides and both float
dtypes: solve, inv, slogdet and cholesky bit for bit (the same LAPACK calls as NumPy's,
float32 computed in float64 as NumPy does), det and norm to rounding (an exp, a sum).
Singular and non-positive-definite matrices raise LinAlgError at call time on every
executor, naming the op and the line that built it; malformed calls raise at build time.
Derivatives: against analytic formulas here (finite differences, the dot-product identity,
batched Jacobians and Hessians of every op are in test_autodiff.py; every operand form on
both backends in the generated differential suite); norm's gradient is 0, not NaN, at 0.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import graphc as gc

THIS_FILE = os.path.basename(__file__)
EXECUTORS = ("evaluate", "numpy", "llvm")
FLOATS = (np.float64, np.float32)


def here() -> int:
    """The caller's line number (errors must name the user's line)."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def run(executor: str, inputs: Sequence[gc.Tensor], outputs: Sequence[gc.Tensor], values: Sequence[object]) -> list:
    """The outputs' values through one executor (compiled functions take the inputs in order)."""
    if executor == "evaluate":
        return list(gc.evaluate(list(outputs), dict(zip(inputs, values, strict=True))))
    return list(gc.compile(list(inputs), list(outputs), backend=executor)(*values))


def well_conditioned(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    return (rng.standard_normal(shape) + shape[-1] * np.eye(shape[-1])).astype(dtype)


def spd(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    x = rng.standard_normal(shape)
    return (x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])).astype(dtype)


def same(got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit: dtype, shape and every value (NaN where NaN)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want, strict=True)


def near(got: np.ndarray, want: np.ndarray, dtype: type) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


# --- values against numpy.linalg -------------------------------------------------------------------

STACKS = [(4, 4), (0, 3, 3), (1, 3, 3), (3, 4, 4), (0, 0), (2, 0, 0), (1, 1)]
SOLVES = [((4, 4), (4,)), ((4, 4), (4, 2)), ((3, 4, 4), (4,)), ((3, 4, 4), (3, 4, 2)), ((4, 4), (2, 4, 3)),
          ((2, 1, 4, 4), (3, 4, 1)), ((0, 3, 3), (3,)), ((0, 0), (0,)), ((4, 4), (4, 0)), ((1, 1), (1,))]  # fmt: skip


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_values_match_numpy_linalg(executor: str, dtype: type) -> None:
    """One function with every op on every stack: bit for bit, det to rounding."""
    rng = np.random.default_rng(7)
    inputs, values, outputs, expected, exact = [], [], [], [], []

    def add(got: gc.Tensor, want: object, bitwise: bool = True) -> None:
        outputs.append(got)
        expected.append(np.asarray(want))
        exact.append(bitwise)

    for k, shape in enumerate(STACKS):
        a, s = gc.var(f"a{k}", shape, dtype), gc.var(f"s{k}", shape, dtype)
        av, sv = well_conditioned(rng, shape, dtype), spd(rng, shape, dtype)
        inputs += [a, s]
        values += [av, sv]
        sign, logabsdet = gc.linalg.slogdet(a)
        add(gc.linalg.inv(a), np.linalg.inv(av))
        add(sign, np.linalg.slogdet(av).sign)
        add(logabsdet, np.linalg.slogdet(av).logabsdet)
        add(gc.linalg.det(a), np.linalg.det(av), bitwise=False)
        add(gc.linalg.cholesky(s), np.linalg.cholesky(sv))
        add(gc.linalg.cholesky(s, upper=True), np.linalg.cholesky(sv, upper=True))
    for k, (sa, sb) in enumerate(SOLVES):
        a, b = gc.var(f"sa{k}", sa, dtype), gc.var(f"sb{k}", sb, dtype)
        av, bv = well_conditioned(rng, sa, dtype), rng.standard_normal(sb).astype(dtype)
        inputs += [a, b]
        values += [av, bv]
        add(gc.linalg.solve(a, b), np.linalg.solve(av, bv))
    got = run(executor, inputs, outputs, values)
    for g, want, bitwise in zip(got, expected, exact, strict=True):
        if bitwise:
            same(g, want)
        else:
            near(g, want, dtype)


def test_dtypes_follow_numpy() -> None:
    """Ints and bools compute in float64, float32 stays float32, float32 with float64 is float64."""
    rng = np.random.default_rng(1)
    ints = np.array([[3, 1], [1, 2]])
    cases = [
        (gc.linalg.inv(ints), np.linalg.inv(ints)),
        (gc.linalg.det(np.eye(2, dtype=bool)), np.linalg.det(np.eye(2, dtype=bool))),
        (gc.linalg.solve(ints, np.array([1, 2])), np.linalg.solve(ints, np.array([1, 2]))),
        (gc.linalg.solve(ints.astype(np.float32), [1.0, 2.0]), np.linalg.solve(ints.astype(np.float32), [1.0, 2.0])),
        (gc.linalg.cholesky(ints.astype(np.float32)), np.linalg.cholesky(ints.astype(np.float32))),
        (gc.linalg.norm(np.arange(5)), np.linalg.norm(np.arange(5))),
        (gc.linalg.norm(rng.standard_normal(3).astype(np.float32), ord=3), None),
    ]  # fmt: skip
    for got, want in cases[:-1]:
        assert got.dtype == np.asarray(want).dtype
        np.testing.assert_allclose(gc.evaluate(got, {}), want, rtol=1e-15)
    assert cases[-1][0].dtype == np.float32


# --- errors ----------------------------------------------------------------------------------------


def _stack_with_singular(n: int = 3) -> np.ndarray:
    stack = well_conditioned(np.random.default_rng(3), (3, n, n))
    stack[1] = np.outer(np.arange(1.0, n + 1), np.arange(1.0, n + 1))  # rank one
    return stack


@pytest.mark.parametrize("executor", EXECUTORS)
def test_singular_and_indefinite_matrices_raise_linalgerror(executor: str) -> None:
    """At call time, naming the op and the line that built it; det and slogdet give 0 and (0, -inf) instead."""
    a = gc.var("a", (3, 3, 3))
    b = gc.var("b", (3,))
    singular, rhs = _stack_with_singular(), np.ones(3)
    indefinite = spd(np.random.default_rng(4), (3, 3, 3))
    indefinite[2, 0, 0] = -1.0
    line = here() + 1
    builds = {"solve": gc.linalg.solve(a, b), "inv": gc.linalg.inv(a), "cholesky": gc.linalg.cholesky(a)}
    for name, out in builds.items():
        value = indefinite if name == "cholesky" else singular
        message = "Matrix is not positive definite" if name == "cholesky" else "Singular matrix"
        inputs, values = ([a, b], [value, rhs]) if name == "solve" else ([a], [value])
        with pytest.raises(np.linalg.LinAlgError, match=rf"{message} in {name} \(built at .*{THIS_FILE}:{line}\)"):
            run(executor, inputs, [out], values)
    sign, logabsdet = gc.linalg.slogdet(a)
    got = run(executor, [a], [sign, logabsdet, gc.linalg.det(a)], [singular])
    assert got[0][1] == 0.0 and got[1][1] == -np.inf and got[2][1] == 0.0
    np.testing.assert_array_equal(got[0], np.linalg.slogdet(singular).sign)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_nan_and_inf_entries_give_what_numpy_gives(executor: str) -> None:
    """LAPACK does not stop at NaN or inf: the results are NumPy's (NaN where it has NaN), not an error."""
    a = gc.var("a", (2, 2))
    b = gc.var("b", (2,))
    outs = [gc.linalg.cholesky(a), gc.linalg.solve(a, b), gc.linalg.inv(a), *gc.linalg.slogdet(a)]
    for bad in (np.nan, np.inf):
        value = np.array([[bad, 0.0], [0.0, 1.0]])
        with np.errstate(all="ignore"):
            got = run(executor, [a, b], outs, [value, np.ones(2)])
            want = [np.linalg.cholesky(value), np.linalg.solve(value, np.ones(2)), np.linalg.inv(value),
                    *np.linalg.slogdet(value)]  # fmt: skip
        for g, w in zip(got, want, strict=True):
            same(g, np.asarray(w))


@pytest.mark.parametrize("executor", ("numpy", "llvm"))
def test_a_constant_singular_matrix_raises_when_called_not_when_compiled(executor: str) -> None:
    x = gc.var("x", (2,))
    fn = gc.compile([x], [gc.linalg.solve(np.ones((2, 2)), x), gc.linalg.inv(np.ones((2, 2)))], backend=executor)
    with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
        fn(np.ones(2))


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_gradient_of_det_at_a_singular_matrix_raises(executor: str) -> None:
    """d det / dA = det(A) A^-T needs the inverse (documented): a singular matrix raises, never NaN."""
    a = gc.var("a", (3, 3))
    with pytest.raises(np.linalg.LinAlgError, match="Singular matrix in inv"):
        run(executor, [a], [gc.grad(gc.linalg.det(a), a)], [_stack_with_singular()[1]])


BAD_BUILDS: list[tuple[str, Callable[[], object], str]] = [
    ("solve", lambda: gc.linalg.solve(gc.var("a", (3, 4)), gc.var("b", (3,))), "square"),
    ("solve", lambda: gc.linalg.solve(gc.var("a", (3,)), gc.var("b", (3,))), "at least 2 axes"),
    (
        "solve",
        lambda: gc.linalg.solve(gc.var("a", (3, 3)), gc.var("b", (4,))),
        r"\(4,\) does not match the matrix \(3, 3\)",
    ),
    ("solve", lambda: gc.linalg.solve(gc.var("a", (3, 3)), gc.var("b", (2, 4, 1))), r"\(2, 4, 1\) does not match"),
    ("solve", lambda: gc.linalg.solve(gc.var("a", (3, 3)), gc.var("b", ())), "0-dimensional"),
    ("solve", lambda: gc.linalg.solve(gc.var("a", (2, 3, 3)), gc.var("b", (3, 3, 1))), "broadcast"),
    ("inv", lambda: gc.linalg.inv(gc.var("a", ())), "0-dimensional"),
    ("inv", lambda: gc.linalg.inv(np.ones((2, 3))), "square"),
    ("det", lambda: gc.linalg.det(gc.var("a", (2, 3, 4))), "square"),
    ("slogdet", lambda: gc.linalg.slogdet(gc.var("a", (5,))), "at least 2 axes"),
    ("cholesky", lambda: gc.linalg.cholesky(gc.var("a", (2, 3)), upper=True), "square"),
    ("norm", lambda: gc.linalg.norm(gc.var("x", (3,)), ord="fro"), "invalid norm order 'fro' for vectors"),
    ("norm", lambda: gc.linalg.norm(gc.var("x", (2, 3)), ord=3), "invalid norm order 3 for matrices"),
    ("norm", lambda: gc.linalg.norm(gc.var("x", (2, 3, 4)), ord=1), "improper number of dimensions"),
    ("norm", lambda: gc.linalg.norm(gc.var("x", (2, 3)), axis=(1, -1)), "duplicate axes"),
    ("norm", lambda: gc.linalg.norm(gc.var("x", (2, 3)), axis=2), "out of bounds"),
    ("norm", lambda: gc.linalg.norm(gc.var("x", (0,)), ord=-np.inf), "zero-size"),
]


@pytest.mark.parametrize(("name", "build", "match"), BAD_BUILDS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_BUILDS)])
def test_malformed_calls_raise_at_build_time(name: str, build: Callable[[], object], match: str) -> None:
    """A ValueError subclass (as numpy.linalg's errors are) naming the function and the caller's line."""
    with pytest.raises(ValueError, match=match) as info:
        build()
    assert isinstance(info.value, gc.GraphError)
    assert f"{name}(" in str(info.value)
    assert THIS_FILE in str(info.value)


def test_matrix_norms_that_need_singular_values_are_not_supported() -> None:
    for ord in (2, -2, "nuc"):
        with pytest.raises(NotImplementedError, match="singular values"):
            gc.linalg.norm(gc.var("x", (2, 3)), ord=ord)


# --- norm -------------------------------------------------------------------------------------------

VECTOR_ORDS = (None, 2, 1, 0, np.inf, -np.inf, 3, 0.5, -1, -2.5)
MATRIX_ORDS = (None, "fro", 1, -1, np.inf, -np.inf)
SPECIALS = np.array([0.0, -0.0, 3.0, -4.0, np.nan, np.inf, -np.inf, 1e300, -1e-310, 2.5])


def _norm_calls() -> list[tuple[tuple[int, ...], dict]]:
    calls: list[tuple[tuple[int, ...], dict]] = [((6,), {"ord": o}) for o in VECTOR_ORDS]
    calls += [((3, 4), {"ord": o}) for o in MATRIX_ORDS]
    calls += [((3, 4), {"ord": o, "axis": (1, 0)}) for o in MATRIX_ORDS[2:]]
    calls += [((2, 3, 4), {"ord": o, "axis": a, "keepdims": k}) for o in (None, 1, np.inf, 3) for a in (0, -1)
              for k in (False, True)]  # fmt: skip
    calls += [((2, 3, 4), {"ord": o, "axis": (0, 2), "keepdims": k}) for o in MATRIX_ORDS for k in (False, True)]
    calls += [((2, 3, 4), {}), ((2, 3, 4), {"keepdims": True}), ((), {}), ((0,), {}), ((0,), {"ord": np.inf}),
              ((0, 3), {"ord": 1}), ((0, 3), {"ord": np.inf}), ((3, 0), {"ord": np.inf}),
              ((0,), {"ord": -1})]  # fmt: skip
    return calls


NORM_CALLS = _norm_calls()


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_norm_matches_numpy(executor: str, dtype: type) -> None:
    """Every order, axis and keepdims form on random values, and vectors of special values (overflowing as NumPy's)."""
    rng = np.random.default_rng(11)
    inputs, values, outputs, expected = [], [], [], []
    for k, (shape, kwargs) in enumerate(NORM_CALLS):
        value = rng.standard_normal(shape).astype(dtype)
        if shape == (6,):  # every vector order also sees signed zeros
            value[:2] = [0.0, -0.0]
        x = gc.var(f"x{k}", shape, dtype)
        inputs.append(x)
        values.append(value)
        outputs.append(gc.linalg.norm(x, **kwargs))
        expected.append(np.linalg.norm(value, **kwargs))
    for k, ord in enumerate(VECTOR_ORDS):
        special = SPECIALS.astype(dtype)
        for part in (special, special[np.isfinite(special)], special[[0, 2, 3, 9]]):
            x = gc.var(f"sp{k}-{part.size}", part.shape, dtype)
            inputs.append(x)
            values.append(part)
            outputs.append(gc.linalg.norm(x, ord=ord))
            with np.errstate(all="ignore"):
                expected.append(np.linalg.norm(part, ord=ord))
    with np.errstate(all="ignore"):
        got = run(executor, inputs, outputs, values)
    for g, want, out in zip(got, expected, outputs, strict=True):
        assert g.shape == np.shape(want) and g.dtype == out.dtype == np.asarray(want).dtype
        np.testing.assert_allclose(g, want, rtol=1e-13 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_norm_gradient_at_zero_is_zero_not_nan(executor: str) -> None:
    """Every order, vectors and matrices, at 0 (and at a vector with one zero entry): finite, 0 where x is 0."""
    x, m = gc.var("x", (4,)), gc.var("m", (2, 3))
    grads = [gc.grad(gc.linalg.norm(x, ord=o), x) for o in VECTOR_ORDS]
    grads += [gc.grad(gc.linalg.norm(m, ord=o), m) for o in MATRIX_ORDS]
    for point in (np.zeros(4), np.array([0.0, 1.5, -2.0, 0.5])):
        with np.errstate(all="ignore"):
            got = run(executor, [x, m], grads, [point, np.zeros((2, 3))])
        for g in got:
            assert np.all(np.isfinite(g)), got
        for g in got[: len(VECTOR_ORDS)]:
            assert g[0] == 0.0
        for g in got[len(VECTOR_ORDS) :]:
            np.testing.assert_array_equal(g, 0.0)


# --- derivatives against analytic formulas, on every executor ------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=["f64", "f32"])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_gradients_match_the_matrix_identities(executor: str, dtype: type) -> None:
    """d logabsdet = A^-T, d det = det A^-T, solve: b_bar = A^-T c, A_bar = -b_bar x^T, inv: -A^-T W A^-T,
    cholesky: sum(log diag L) = logdet(A) / 2 has the lower triangle of A^-1 with its diagonal halved."""
    rng = np.random.default_rng(5)
    av, sv = well_conditioned(rng, (2, 4, 4)), spd(rng, (4, 4))
    bv, cv, wv = rng.standard_normal(4), rng.standard_normal((2, 4)), rng.standard_normal((2, 4, 4))
    a, s, b = gc.var("a", (2, 4, 4), dtype), gc.var("s", (4, 4), dtype), gc.var("b", (4,), dtype)
    c, w = gc.const(cv.astype(dtype)), gc.const(wv.astype(dtype))
    x = gc.linalg.solve(a, b)
    lower = gc.linalg.cholesky(s)
    grads = [
        gc.grad(gc.sum(gc.linalg.slogdet(a).logabsdet), a),
        gc.grad(gc.sum(gc.linalg.det(a)), a),
        *gc.grad(gc.sum(c * x), [a, b]),
        gc.grad(gc.sum(w * gc.linalg.inv(a)), a),
        gc.grad(gc.sum(gc.log(gc.sum(lower * np.eye(4), axis=1))), s),
    ]
    inv_t = np.swapaxes(np.linalg.inv(av), -1, -2)
    xv = np.linalg.solve(av, bv)
    b_bar = np.einsum("kij,kj->ki", inv_t, cv)
    s_inv = np.linalg.inv(sv)
    want = [
        inv_t,
        np.linalg.det(av)[:, None, None] * inv_t,
        -np.einsum("ki,kj->kij", b_bar, xv),
        b_bar.sum(axis=0),
        -inv_t @ wv @ inv_t,
        np.tril(s_inv) - 0.5 * np.diag(np.diag(s_inv)),
    ]
    got = run(executor, [a, s, b], grads, [av.astype(dtype), sv.astype(dtype), bv.astype(dtype)])
    for g, expected in zip(got, want, strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, expected, rtol=1e-11 if dtype == np.float64 else 2e-4, atol=1e-12)


@pytest.mark.parametrize("executor", ("numpy", "llvm"))
def test_compiled_forward_mode_equals_the_reference(executor: str) -> None:
    """gc.jvp through every op (compiled) against the reference evaluator."""
    rng = np.random.default_rng(9)
    a, s, b = gc.var("a", (3, 3)), gc.var("s", (2, 3, 3)), gc.var("b", (3, 2))
    outs = [gc.linalg.solve(a, b), gc.linalg.inv(a), gc.linalg.det(a), gc.linalg.cholesky(s), gc.linalg.norm(a)]
    tangents = [gc.const(rng.standard_normal(v.shape)) for v in (a, s, b)]
    jvps = gc.jvp(outs, [a, s, b], tangents)
    values = [well_conditioned(rng, (3, 3)), spd(rng, (2, 3, 3)), rng.standard_normal((3, 2))]
    want = run("evaluate", [a, s, b], jvps, values)
    got = run(executor, [a, s, b], jvps, values)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13)


def test_cholesky_gradient_is_the_exact_derivative_of_the_lower_triangle() -> None:
    """cholesky reads only the lower triangle: 0 above the diagonal; symmetrized, it is the gradient JAX and
    PyTorch return, and through A = X X^T + I both conventions give the same gradient in X."""
    rng = np.random.default_rng(2)
    s, xm = gc.var("s", (3, 3)), gc.var("xm", (3, 2))
    weights = gc.const(rng.standard_normal((3, 3)))
    f = gc.sum(weights * gc.linalg.cholesky(s))
    g_s = gc.grad(f, s)
    g_x = gc.grad(gc.sum(weights * gc.linalg.cholesky(xm @ xm.T + np.eye(3))), xm)
    sv, xv = spd(rng, (3, 3)), rng.standard_normal((3, 2))
    gs, gx = gc.evaluate(g_s, {s: sv}), gc.evaluate(g_x, {xm: xv})
    assert np.all(np.triu(gs, 1) == 0.0) and np.all(gs[np.tril_indices(3)] != 0.0)
    symmetric = (gs + gs.T) / 2  # the symmetric-input convention
    at = xv @ xv.T + np.eye(3)
    gs_at = gc.evaluate(g_s, {s: at})
    np.testing.assert_allclose(gx, (gs_at + gs_at.T) @ xv, rtol=1e-12)
    np.testing.assert_allclose(symmetric, symmetric.T)


def test_a_solve_and_its_gradient_factor_the_matrix_once() -> None:
    """llvm: one getrf for the matrix, getrs for the solve ('N') and for its gradient ('T'); no gesv."""
    a, b = gc.var("a", (5, 5)), gc.var("b", (5,))
    x = gc.linalg.solve(a, b)
    f = gc.sum(x * x)
    fn = gc.compile([a, b], [f, *gc.grad(f, [a, b])], backend="llvm")
    ir_text = fn.llvm_ir.unoptimized
    calls = {r: len(re.findall(rf'call void @"?\w*d{r}_\w*"?\(', ir_text)) for r in ("getrf", "getrs", "gesv")}
    assert calls == {"getrf": 1, "getrs": 2, "gesv": 0}
    rng = np.random.default_rng(12)
    values = [well_conditioned(rng, (5, 5)), rng.standard_normal(5)]
    for got, want in zip(fn(*values), run("evaluate", [a, b], [f, *gc.grad(f, [a, b])], values), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    with pytest.raises(np.linalg.LinAlgError, match="Singular matrix in solve"):
        fn(np.ones((5, 5)), values[1])


# --- inside loops, across threads, through NumPy's functions ----------------------------------------


@pytest.mark.parametrize("executor", ("numpy", "llvm"))
def test_solve_inside_a_scan_and_its_gradient(executor: str) -> None:
    """A Lapack kernel in a native loop body (and the reverse loop of its gradient)."""
    a, h0 = gc.var("a", (3, 3)), gc.var("h0", (3,))
    final, _ = gc.scan(lambda h, _: (gc.linalg.solve(a, h) + 1.0, gc.sum(h)), h0, None, length=4)
    loss = gc.sum(final * final)
    outs = [final, *gc.grad(loss, [a, h0])]
    values = [well_conditioned(np.random.default_rng(8), (3, 3)), np.array([1.0, -2.0, 0.5])]
    want = run("evaluate", [a, h0], outs, values)
    for g, w in zip(run(executor, [a, h0], outs, values), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    with pytest.raises(np.linalg.LinAlgError, match="Singular matrix in solve"):
        run(executor, [a, h0], outs, [np.ones((3, 3)), values[1]])


def test_concurrent_calls_use_their_own_scratch() -> None:
    """The column-major copies and the shared factors live in the per-call workspace: threads do not share them."""
    a, b = gc.var("a", (8, 30, 30)), gc.var("b", (8, 30, 2))
    fn = gc.compile([a, b], [gc.linalg.solve(a, b), gc.linalg.slogdet(a).logabsdet], backend="llvm")
    rng = np.random.default_rng(6)
    cases = [(well_conditioned(rng, (8, 30, 30)), rng.standard_normal((8, 30, 2))) for _ in range(8)]
    alone = [fn(*args) for args in cases]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: fn(*args), cases * 4))
    for (av, bv), (x, logdet), (x1, logdet1) in zip(cases * 4, results, alone * 4, strict=True):
        for got, want in ((x, x1), (x, np.linalg.solve(av, bv)), (logdet, logdet1), (logdet, np.linalg.slogdet(av)[1])):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)  # a shared scratch would be off by O(1)


def test_numpy_linalg_functions_build_graphc_nodes() -> None:
    """np.linalg.<f>(tensor, ...) is gc.linalg.<f>; numpy.linalg functions graphc lacks say so."""
    a, b = gc.var("a", (3, 3)), gc.var("b", (3,))
    pairs = [
        (np.linalg.solve(a, b), gc.linalg.solve(a, b)),
        (np.linalg.inv(a), gc.linalg.inv(a)),
        (np.linalg.det(a), gc.linalg.det(a)),
        (np.linalg.slogdet(a)[1], gc.linalg.slogdet(a)[1]),
        (np.linalg.cholesky(a, upper=True), gc.linalg.cholesky(a, upper=True)),
        (np.linalg.norm(a, ord=1, axis=0, keepdims=True), gc.linalg.norm(a, ord=1, axis=0, keepdims=True)),
    ]
    for got, want in pairs:
        assert isinstance(got, gc.Tensor) and got.node is want.node
    with pytest.raises(TypeError, match=r"np\.linalg\.eigh is not supported"):
        np.linalg.eigh(a)
