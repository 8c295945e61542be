"""gc.fixed_point: values, implicit (Almeida-Pineda) gradients against finite differences and against
the same iteration unrolled, forward mode, grad-of-grad, convergence errors, both backends."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import graphc as gc
from graphc.ir import Graph
from graphc.passes.loops import loops
from graphc.testing import check_grad

N = 4
RNG = np.random.default_rng(0)


def problem() -> tuple[gc.Tensor, gc.Tensor, gc.Tensor, gc.Tensor, dict[gc.Tensor, np.ndarray]]:
    """z = tanh(P z + u), a contraction for small P; u is closed over, P passed as a parameter."""
    P, u, z0 = gc.var("P", (N, N)), gc.var("u", (N,)), gc.var("z0", (N,))
    z = gc.fixed_point(lambda z, p: gc.tanh(p @ z + u), z0, P)
    values = {P: RNG.normal(size=(N, N)) * 0.3, u: RNG.normal(size=N), z0: np.zeros(N)}
    return P, u, z0, z, values


def test_value_is_the_fixed_point_in_both_backends() -> None:
    P, u, z0, z, values = problem()
    got = gc.evaluate(z, values)
    np.testing.assert_allclose(got, np.tanh(values[P] @ got + values[u]), atol=1e-10)
    fn = gc.compile([P, u, z0], z, backend="numpy")
    np.testing.assert_array_equal(fn(values[P], values[u], values[z0]), got)
    assert "fixed_point(%z0, %P, %u, body=<graph" in gc.show(z)


def test_gradient_matches_finite_differences() -> None:
    P, u, _, z, values = problem()
    check_grad(gc.sum(z**2) + gc.sum(gc.sin(z)), [P, u], values, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", ["evaluate", "numpy"])
def test_gradient_matches_the_loop_unrolled_300_steps(backend: str) -> None:
    P, u, z0, z, values = problem()
    unrolled = z0
    for _ in range(300):
        unrolled = gc.tanh(P @ unrolled + u)
    implicit = gc.grad(gc.sum(z**2), [P, u, z0])
    explicit = gc.grad(gc.sum(unrolled**2), [P, u])
    if backend == "evaluate":
        got = gc.evaluate(implicit, values)
    else:
        got = gc.compile([P, u, z0], implicit, backend="numpy")(values[P], values[u], values[z0])
    want = gc.evaluate(explicit, values)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(got[2], np.zeros(N))  # z* does not depend on z0


def test_adjoint_is_a_fixed_point_whose_body_holds_only_the_transposed_jacobian_product() -> None:
    _, u, _, z, _ = problem()
    (g,) = gc.grad(gc.sum(z**2), [u])
    adjoint = next(n for n in gc.Graph([g]).nodes if n.op.name == "fixed_point" and n is not z.node)
    body = adjoint.attr("body")
    ops = sorted(n.op.name for n in body.nodes if n.op.name not in ("var", "const"))
    assert ops == ["add", "matmul", "mul", "reshape", "reshape"]  # tanh's slope at z* is hoisted out
    assert adjoint.attr("tol") == 1e-10 and adjoint.attr("max_iter") == 1000


def test_gradient_memory_does_not_grow_with_the_iteration_count() -> None:
    """z = c cos(z) + p converges in ~15 iterations for c = 0.1 and ~1500 for c = 0.99: same peak memory."""
    p, c, z0 = gc.var("p", (2000,)), gc.var("c"), gc.var("z0", (2000,))
    z = gc.fixed_point(lambda z: c * gc.cos(z) + p, z0, tol=1e-12, max_iter=5000)
    fn = gc.compile([p, c, z0], gc.grad(gc.sum(z**2), p), backend="numpy")
    args = [np.linspace(-1, 1, 2000), None, np.zeros(2000)]
    peaks = []
    for contraction in (0.1, 0.99):
        fn(args[0], contraction, args[2])
        tracemalloc.start()
        fn(args[0], contraction, args[2])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + 100_000, peaks  # 1500 stored iterates would be 24 MB


def test_tuple_iterates_and_closures() -> None:
    a, b = gc.var("a", (2,)), gc.var("b", (2,))

    def g(z):  # type: ignore[no-untyped-def]
        x, y = z
        return (0.5 * gc.cos(y) + a, 0.3 * gc.sin(x) * b)

    x, y = gc.fixed_point(g, (gc.const(np.zeros(2)), gc.const(np.zeros(2))))
    values = {a: np.array([0.2, -0.1]), b: np.array([1.0, 0.5])}
    xv, yv = gc.evaluate([x, y], values)
    np.testing.assert_allclose(xv, 0.5 * np.cos(yv) + values[a], atol=1e-10)
    np.testing.assert_allclose(yv, 0.3 * np.sin(xv) * values[b], atol=1e-10)
    check_grad(gc.sum(x * y) + gc.sum(x), [a, b], values, rtol=1e-6, atol=1e-9)


def test_forward_mode_and_grad_of_grad() -> None:
    P, u, _, z, values = problem()
    forward, reverse = gc.evaluate([gc.jacobian(z, u, mode="fwd"), gc.jacobian(z, u, mode="rev")], values)
    np.testing.assert_allclose(forward, reverse, rtol=1e-9, atol=1e-11)
    g_u = gc.grad(gc.sum(z**2), u)
    check_grad(gc.sum(g_u**2), [u, P], values, rtol=1e-5, atol=1e-8)
    hessian = gc.evaluate(gc.hessian(gc.sum(z**2), u), values)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-9)


def test_float32() -> None:
    x = gc.var("x", (3,), dtype="float32")
    z = gc.fixed_point(lambda z: 0.5 * gc.cos(z) + x, gc.const(np.zeros(3, np.float32)), tol=1e-6)
    assert z.dtype == np.float32
    value = gc.evaluate(z, {x: np.ones(3, np.float32)})
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, 0.5 * np.cos(value) + 1, atol=1e-5)


# --- convergence --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["evaluate", "numpy"])
def test_non_convergence_raises_at_call_time_with_count_and_residual(backend: str) -> None:
    z0 = gc.var("z0", (2,))
    z = gc.fixed_point(lambda z: 2.0 * z + 1.0, z0, max_iter=50)  # building and compiling succeed
    run = gc.compile([z0], z, backend="numpy") if backend == "numpy" else (lambda v: gc.evaluate(z, {z0: v}))
    with pytest.raises(
        gc.ConvergenceError, match=r"did not converge in 50 iterations: final residual .* = 5\.6295e\+14"
    ):
        run(np.zeros(2))


@pytest.mark.parametrize("backend", ["evaluate", "numpy"])
def test_max_iter_is_respected(backend: str) -> None:
    """z <- z / 2 from 1: after k evaluations z = residual = 2**-k, so tol = 2**-10 needs exactly 10."""
    z0 = gc.var("z0")
    for max_iter, converges in ((10, True), (9, False)):
        z = gc.fixed_point(lambda z: z * 0.5, z0, tol=2.0**-10, max_iter=max_iter)
        run = gc.compile([z0], z, backend="numpy") if backend == "numpy" else (lambda v, z=z: gc.evaluate(z, {z0: v}))
        if converges:
            assert run(1.0) == 2.0**-10
        else:
            with pytest.raises(gc.ConvergenceError, match=r"in 9 iterations: final residual .* = 0\.00195312"):
                run(1.0)


@pytest.mark.filterwarnings("ignore:invalid value encountered in log")
def test_nan_stops_the_iteration() -> None:
    z0 = gc.var("z0")
    z = gc.fixed_point(lambda z: gc.log(z - 10.0), z0)
    with pytest.raises(gc.ConvergenceError, match="NaN after 1 iterations"):
        gc.evaluate(z, {z0: 1.0})


def test_a_diverging_adjoint_raises_too() -> None:
    """g(z) = 1.5 z - 0.5 c has the fixed point z = c, but |dg/dz| > 1: the adjoint iteration diverges."""
    c = gc.var("c")
    z = gc.fixed_point(lambda z: 1.5 * z - 0.5 * c, c, max_iter=30)  # z0 = c: converges at once
    assert gc.evaluate(z, {c: 2.0}) == 2.0
    with pytest.raises(gc.ConvergenceError, match="30 iterations"):
        gc.evaluate(gc.grad(z, c), {c: 2.0})


def test_bad_arguments_raise() -> None:
    z0 = gc.var("z0", (2,))
    with pytest.raises(ValueError, match="tol"):
        gc.fixed_point(lambda z: z, z0, tol=-1)
    with pytest.raises(ValueError, match="max_iter"):
        gc.fixed_point(lambda z: z, z0, max_iter=0)
    with pytest.raises(gc.DTypeError, match="float"):
        gc.fixed_point(lambda z: z, gc.var("n", (2,), dtype="int64"))
    with pytest.raises(gc.ShapeError, match="iterate 0"):
        gc.fixed_point(lambda z: gc.sum(z), z0)


def test_loops_pass_hoists_and_is_idempotent() -> None:
    P, u, z0, z, values = problem()
    grads = gc.grad(gc.sum(z**2), [P, u])
    once = loops(Graph([g.node for g in grads]))
    assert loops(once) is once
    fn = gc.compile([P, u, z0], grads, backend="numpy")
    for got, want in zip(fn(values[P], values[u], values[z0]), gc.evaluate(grads, values), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_llvm_backend_runs_the_loop() -> None:
    P, u, z0, z, values = problem()
    fn = gc.compile([P, u, z0], z, backend="llvm")
    np.testing.assert_allclose(fn(values[P], values[u], values[z0]), gc.evaluate(z, values), rtol=1e-12)


# --- issue 11.10: tol follows the dtype; derivative loops say what failed ----------------------------------


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_float32_converges_with_the_default_tol(backend: str):
    """tol=None is 1e-5 for float32 (1e-10 could never be reached: float32 rounding moves z by ~1e-7)."""
    p = gc.var("p", (3,), dtype="float32")
    z = gc.fixed_point(lambda z, p: gc.tanh(0.5 * z + p), gc.const(np.zeros(3, np.float32)), p)
    assert z.node.attr("tol") == 1e-5
    g = gc.grad(gc.sum(z), p)
    pv = np.array([0.1, 0.2, 0.3], np.float32)
    zv, gv = gc.compile([p], [z, g], backend=backend)(pv)
    assert zv.dtype == np.float32 and gv.dtype == np.float32
    z64 = gc.fixed_point(lambda z, p: gc.tanh(0.5 * z + p), gc.const(np.zeros(3)), gc.var("q", (3,)))
    assert z64.node.attr("tol") == 1e-10
    ref = np.zeros(3)
    for _ in range(200):
        ref = np.tanh(0.5 * ref + pv.astype(np.float64))
    np.testing.assert_allclose(zv, ref, rtol=0, atol=2e-5)  # |z - z*| <= tol q / (1 - q), q < 1/2 here
    d = 1 - ref**2  # dz/dp = d / (1 - 0.5 d) for z = tanh(0.5 z + p)
    np.testing.assert_allclose(gv, d / (1 - 0.5 * d), rtol=1e-4)


def test_an_explicit_tol_still_wins_and_is_validated():
    z0 = gc.const(np.zeros(2, np.float32))
    assert gc.fixed_point(lambda z: 0.5 * z, z0, tol=1e-3).node.attr("tol") == 1e-3
    for bad, error in [(-1.0, ValueError), (float("nan"), ValueError), ("1e-3", TypeError), (True, TypeError)]:
        with pytest.raises(error, match="tol"):
            gc.fixed_point(lambda z: 0.5 * z, z0, tol=bad)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "evaluate"])
@pytest.mark.parametrize("mode", ["adjoint", "tangent"])
def test_a_derivative_loop_failure_names_the_derivative(backend: str, mode: str):
    """The forward loop converges in one step; the derivative's needs ~35 (max_iter=10): say which failed."""
    a = gc.var("a")
    z = gc.fixed_point(lambda z, a: 0.5 * z + a, gc.const(0.0), a, max_iter=10)
    out = gc.grad(z, a) if mode == "adjoint" else gc.jvp(z, a, 1.0)
    assert gc.evaluate(z, {a: 1e-300}) == 1e-300  # the forward converges (after one step: tol is absolute)
    with pytest.raises(gc.ConvergenceError) as info:
        if backend == "evaluate":
            gc.evaluate(out, {a: 1e-300})
        else:
            gc.compile([a], out, backend=backend)(1e-300)
    wording = "adjoint (gradient) fixed point" if mode == "adjoint" else "tangent (forward-mode) fixed point"
    assert str(info.value).startswith(f"while solving the {wording}")
    assert "did not converge in 10 iterations" in str(info.value)
