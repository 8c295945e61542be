"""gc.while_loop: values on every executor (zero iterations, stopping early, reaching max_iter), typing
errors, forward mode for any loop, reverse mode by checkpointed recomputation against finite differences
(checkpoints give identical gradients), the refusal of reverse mode through an unbounded loop, nesting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.recurrence.while_rules import default_checkpoint
from graphc.testing import check_grad

BACKENDS = ["numpy", "llvm"]


def compiled_agree(inputs: list[gc.Tensor], outputs: list[gc.Tensor], feeds: list[list[object]]) -> None:
    """Both backends, optimized or not, give gc.evaluate's values (numpy: bit for bit; llvm: to 4 ulp)."""
    for backend in BACKENDS:
        for optimize in (False, True):
            fn = gc.compile(inputs, outputs, backend=backend, optimize=optimize)
            for args in feeds:
                expected = gc.evaluate(outputs, dict(zip(inputs, args, strict=True)))
                got = fn(*args)
                for g, e in zip(got, expected, strict=True):
                    assert g.dtype == e.dtype and g.shape == e.shape
                    if backend == "numpy" or e.dtype.kind != "f":
                        assert g.tobytes() == e.tobytes(), (backend, optimize, g, e)
                    else:
                        np.testing.assert_allclose(g, e, rtol=4 * np.finfo(e.dtype).eps, atol=1e-300)


def line_of(marker: str) -> int:
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    return 1 + next(i for i, text in enumerate(lines) if marker in text and "line_of" not in text)


def growth(max_iter: int | None = 50, checkpoint: int | None = None) -> tuple[list[gc.Tensor], gc.Tensor, gc.Tensor]:
    """v <- v * a + 1 while |v|^2 < limit: (x, a, limit), the final v and the iteration count."""
    x, a, limit = gc.var("x", (3,)), gc.var("a"), gc.var("limit")

    def keep_going(c: tuple[gc.Tensor, gc.Tensor]) -> gc.Tensor:
        return gc.sum(c[0] * c[0]) < limit

    def step(c: tuple[gc.Tensor, gc.Tensor]) -> tuple[gc.Tensor, gc.Tensor]:
        return c[0] * a + gc.sin(c[0]) * 0.1 + 1.0, c[1] + 1

    v, count = gc.while_loop(keep_going, step, (x, gc.const(0)), max_iter=max_iter, checkpoint=checkpoint)
    return [x, a, limit], v, count


def growth_reference(xv: np.ndarray, av: float, limit: float, max_iter: int | None) -> tuple[np.ndarray, int]:
    count = 0
    while (max_iter is None or count < max_iter) and (xv * xv).sum() < limit:
        xv = xv * av + np.sin(xv) * 0.1 + 1.0
        count += 1
    return xv, count


CASES = [  # (limit, max_iter): stops early, zero iterations, stops at max_iter, max_iter=0, unbounded
    (100.0, 50), (-1.0, 50), (1e9, 4), (100.0, 0), (100.0, None),
]  # fmt: skip


@pytest.mark.parametrize(("limit", "max_iter"), CASES)
def test_values_on_every_executor(limit: float, max_iter: int | None) -> None:
    (x, a, lim), v, count = growth(max_iter)
    xv = np.array([0.1, -0.2, 0.3])
    want_v, want_count = growth_reference(xv, 1.5, limit, max_iter)
    got_v, got_count = gc.evaluate([v, count], {x: xv, a: 1.5, lim: limit})
    np.testing.assert_allclose(got_v, want_v, rtol=1e-15)
    assert got_count == want_count
    if limit == 1e9:
        assert want_count == max_iter  # the bound stopped it, without an error
    compiled_agree([x, a, lim], [v, count], [[xv, 1.5, limit]])


def test_zero_iterations_return_a_fresh_copy_of_init() -> None:
    x = gc.var("x", (2,))
    y = gc.while_loop(lambda c: gc.sum(c) > 10.0, lambda c: c * 2.0, x)
    xv = np.array([1.0, 2.0])
    for backend in BACKENDS:
        got = gc.compile([x], y, backend=backend)(xv)
        assert got.tolist() == [1.0, 2.0] and not np.shares_memory(got, xv)


def test_default_checkpoint_is_the_square_root_of_max_iter() -> None:
    assert [default_checkpoint(n) for n in (None, 0, 1, 2, 4, 5, 50, 100, 101)] == [1, 1, 1, 2, 2, 3, 8, 10, 11]


# --- typing and arguments --------------------------------------------------------------------------


def test_bad_loops_are_refused_at_the_users_line() -> None:
    x = gc.var("x", (3,))
    with pytest.raises(gc.GraphError, match="bool scalar") as info:
        gc.while_loop(lambda c: c > 0.0, lambda c: c - 1.0, x)  # a bool vector
    assert f"test_while.py:{line_of('# a bool vector')}" in str(info.value)
    with pytest.raises(gc.DTypeError, match="carry 0 is returned as f32"):
        gc.while_loop(lambda c: gc.sum(c) > 0.0, lambda c: c.astype("float32"), x)
    with pytest.raises(gc.ShapeError, match="carry 0 is returned as f64"):
        gc.while_loop(lambda c: gc.sum(c) > 0.0, lambda c: gc.sum(c), x)
    with pytest.raises(gc.GraphError, match="structure"):
        gc.while_loop(lambda c: gc.sum(c) > 0.0, lambda c: (c, c), x)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_iter"):
            gc.while_loop(lambda c: gc.sum(c) > 0.0, lambda c: c, x, max_iter=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="checkpoint"):
        gc.while_loop(lambda c: gc.sum(c) > 0.0, lambda c: c, x, max_iter=3, checkpoint=0)
    with pytest.raises(ValueError, match="at least one"):
        gc.while_loop(lambda c: True, lambda c: c, ())


# --- derivatives ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "max_iter"), [(100.0, 50), (1e9, 6), (-1.0, 50), (100.0, 0)])
def test_reverse_mode_against_finite_differences(limit: float, max_iter: int) -> None:
    """Stopped by the condition, by max_iter, after zero iterations, and with max_iter = 0."""
    (x, a, lim), v, _ = growth(max_iter)
    loss = gc.sum(v * v) * 1e-3
    values = {x: np.array([0.1, -0.2, 0.3]), a: 1.3, lim: limit}
    check_grad(loss, [x, a], values)
    compiled_agree([x, a, lim], gc.grad(loss, [x, a]), [[values[x], 1.3, limit]])


def test_checkpoints_give_identical_gradients() -> None:
    results = []
    for k in (1, 3, None, 50):
        (x, a, lim), v, _ = growth(50, checkpoint=k)
        grads = gc.grad(gc.sum(v), [x, a])
        results.append(gc.evaluate(grads, {x: np.array([0.1, -0.2, 0.3]), a: 1.3, lim: 100.0}))
    for other in results[1:]:
        assert all(g.tobytes() == h.tobytes() for g, h in zip(results[0], other, strict=True))


def test_forward_mode_works_without_a_bound() -> None:
    (x, a, lim), v, _ = growth(None)
    values = {x: np.array([0.1, -0.2, 0.3]), a: 1.3, lim: 100.0}
    (t,) = gc.jvp([v], [a], [gc.const(1.0)])
    eps = 1e-6
    numeric = (gc.evaluate(v, {**values, a: 1.3 + eps}) - gc.evaluate(v, {**values, a: 1.3 - eps})) / (2 * eps)
    np.testing.assert_allclose(gc.evaluate(t, values), numeric, rtol=1e-6)
    J = gc.jacobian(v, x, mode="fwd")
    numeric_J = np.stack([
        (gc.evaluate(v, {**values, x: values[x] + eps * e}) - gc.evaluate(v, {**values, x: values[x] - eps * e}))
        / (2 * eps) for e in np.eye(3)
    ], axis=1)  # fmt: skip
    np.testing.assert_allclose(gc.evaluate(J, values), numeric_J, rtol=1e-6)
    compiled_agree([x, a, lim], [t, J], [[values[x], 1.3, 100.0]])


def test_reverse_mode_through_an_unbounded_loop_says_why() -> None:
    (_, a, _), v, _ = growth(None)  # growth() builds the loop
    with pytest.raises(gc.DifferentiationError, match="needs max_iter") as info:
        gc.grad(gc.sum(v), a)
    message = str(info.value)
    assert "while_loop" in message and "unbounded" in message and "forward mode" in message
    assert f"test_while.py:{line_of('v, count = gc.while_loop(')}" in message


def test_second_order_through_a_bounded_loop() -> None:
    (x, a, lim), v, _ = growth(30)
    loss = gc.sum(v * v) * 1e-3
    values = {x: np.array([0.1, -0.2, 0.3]), a: 1.3, lim: 100.0}
    H = gc.hessian(loss, a)
    g = gc.grad(loss, a)
    eps = 1e-5
    numeric = (gc.evaluate(g, {**values, a: 1.3 + eps}) - gc.evaluate(g, {**values, a: 1.3 - eps})) / (2 * eps)
    assert gc.evaluate(H, values) == pytest.approx(numeric, rel=1e-6)


def test_nested_loops_and_a_loop_in_a_cond() -> None:
    """Newton's square root inside a loop over k, and inside a cond; gradients through all of it."""
    s, y0 = gc.var("s"), gc.var("y0")

    def newton_sqrt(v: gc.Tensor) -> gc.Tensor:
        y = gc.while_loop(lambda y: gc.abs(y * y - v) > 1e-12 * v, lambda y: 0.5 * (y + v / y), v, max_iter=60)
        return y

    def outer(c: tuple[gc.Tensor, gc.Tensor]) -> tuple[gc.Tensor, gc.Tensor]:
        return newton_sqrt(c[0] + 1.0), c[1] + 1

    total, k = gc.while_loop(lambda c: c[1] < 3, outer, (s, gc.const(0)), max_iter=5)
    guarded = gc.cond(y0 > 0.0, newton_sqrt, lambda v: -v, s)
    values = {s: 2.0, y0: 1.0}
    want = np.sqrt(np.sqrt(np.sqrt(3.0) + 1) + 1)
    assert gc.evaluate(total, values) == pytest.approx(want, rel=1e-14) and gc.evaluate(k, values) == 3
    assert gc.evaluate(guarded, values) == pytest.approx(np.sqrt(2.0), rel=1e-15)
    check_grad([total, guarded], [s], values)
    compiled_agree([s, y0], [total, guarded, gc.grad(total + guarded, s)], [[2.0, 1.0], [2.0, -1.0]])


# --- work hoisted out of the body -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
def test_hoisted_work_does_not_run_when_the_loop_runs_zero_times() -> None:
    """What does not depend on the carry is computed once, before the loop, and only if the loop runs at all."""
    A, s = gc.var("A", (2, 2)), gc.var("s")
    inverse = gc.while_loop(lambda c: c < 0.0, lambda c: c + gc.sum(gc.linalg.inv(A)), s, max_iter=5)
    bounded = gc.while_loop(lambda c: c > 0.0, lambda c: c + gc.sum(gc.linalg.inv(A)), s, max_iter=0)
    logged = gc.while_loop(lambda c: c < 0.0, lambda c: c + gc.log(gc.sum(A)), s)
    singular, negative = np.zeros((2, 2)), -np.ones((2, 2))
    assert gc.evaluate(inverse, {A: singular, s: 1.0}) == 1.0  # the guard idiom: inv runs only when c < 0
    for backend in BACKENDS:
        assert gc.compile([A, s], inverse, backend=backend)(singular, 1.0) == 1.0
        assert gc.compile([A, s], bounded, backend=backend)(singular, 1.0) == 1.0  # max_iter=0: no body runs
        assert gc.compile([A, s], logged, backend=backend, check_finite=True)(negative, 1.0) == 1.0
        with pytest.raises(np.linalg.LinAlgError, match="inv"):  # once the loop runs, the error is raised
            gc.compile([A, s], inverse, backend=backend)(singular, -1.0)
        with pytest.raises(FloatingPointError, match="log"):
            gc.compile([A, s], logged, backend=backend, check_finite=True)(negative, -1.0)


def test_hoisted_work_keeps_values_and_gradients() -> None:
    A, s = gc.var("A", (2, 2)), gc.var("s")
    w = gc.while_loop(lambda c: c < 3.0, lambda c: c + gc.sum(gc.linalg.inv(A)) * c, s, max_iter=50)
    assert "cond" in {n.op.name for n in gc.Graph([w.node]).nodes}  # the hoisted inverse sits in the taken branch
    a = np.array([[2.0, 0.5], [0.1, 3.0]])
    total, steps = 0.5, 0
    while total < 3.0 and steps < 50:
        total, steps = total + np.linalg.inv(a).sum() * total, steps + 1
    assert gc.evaluate(w, {A: a, s: 0.5}) == pytest.approx(total, rel=1e-15)
    compiled_agree([A, s], [w, *gc.grad(w, [A, s])], [[a, 0.5], [a, 4.0]])
    check_grad(w, [A, s], {A: a, s: 0.5})


def test_a_loop_without_hoisted_work_is_not_guarded() -> None:
    """Closing over vars alone hoists nothing: the loop node is the result, as before."""
    x, a = gc.var("x"), gc.var("a")
    w = gc.while_loop(lambda c: c < 10.0, lambda c: c * a + 1.0, x, max_iter=20)
    assert w.node.op.name == "while_loop" and "cond" not in {n.op.name for n in gc.Graph([w.node]).nodes}
