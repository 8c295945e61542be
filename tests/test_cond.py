"""gc.cond: values on every executor, only the taken branch running, typing errors at the user's line,
gradients through the taken branch (reverse, forward, Jacobians, second order) against finite differences,
closures, nesting, conds in scans and structures."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.passes.loops import loops
from graphc.testing import check_grad

BACKENDS = ["numpy", "llvm"]
RNG = np.random.default_rng(3)


@pytest.fixture(autouse=True)
def _values_by_test(request: pytest.FixtureRequest) -> None:
    """Each test draws its own values (seeded by its name), whatever ran before it in this process."""
    global RNG
    RNG = np.random.default_rng(zlib.crc32(request.node.name.encode()))


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
                        # llvm reassociates sums: 4 ulp of the result, or of the largest entry where terms cancel
                        eps = np.finfo(e.dtype).eps
                        np.testing.assert_allclose(
                            g, e, rtol=4 * eps, atol=4 * eps * float(np.max(np.abs(e), initial=0))
                        )


def line_of(marker: str) -> int:
    """The line number of this file's line that contains `marker` (the line building the offending node)."""
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    return 1 + next(i for i, text in enumerate(lines) if marker in text and "line_of" not in text)


# --- values ---------------------------------------------------------------------------------------


def test_values_of_both_branches_on_every_executor() -> None:
    p = gc.var("p", (), "bool")
    x, w = gc.var("x", (3,)), gc.var("w", (3,))
    n = gc.var("n", (2,), "int64")
    f32 = gc.var("f", (0,), "float32")
    one = gc.cond(p, lambda a: gc.sin(a) * w, lambda a: a * 2.0, x)
    pair = gc.cond(p, lambda a, b: (b + 1, gc.sum(a)), lambda a, b: (b * 3, gc.max(a)), x, n)
    empty = gc.cond(p, lambda a: a + 1, lambda a: a * 2, f32)
    tree = gc.cond(p, lambda t: [t[0] * 2, (t[1],)], lambda t: [t[0], (t[1] - 1,)], (x, n))
    outputs = [one, *pair, empty, tree[0], tree[1][0]]
    feeds = [[pv, RNG.normal(size=3), RNG.normal(size=3), np.array([4, -5]), np.zeros(0, np.float32)]
             for pv in (True, False)]  # fmt: skip
    compiled_agree([p, x, w, n, f32], outputs, feeds)
    xv, wv, nv = feeds[0][1], feeds[0][2], feeds[0][3]
    got = gc.evaluate(outputs, {p: True, x: xv, w: wv, n: nv, f32: np.zeros(0, np.float32)})
    np.testing.assert_allclose(got[0], np.sin(xv) * wv)
    assert got[1].tolist() == (nv + 1).tolist() and got[2] == pytest.approx(xv.sum())
    got = gc.evaluate(outputs, {p: False, x: xv, w: wv, n: nv, f32: np.zeros(0, np.float32)})
    np.testing.assert_array_equal(got[0], xv * 2.0)
    assert got[1].tolist() == (nv * 3).tolist() and got[2] == xv.max() and got[5].tolist() == (nv - 1).tolist()


def test_a_python_bool_predicate_and_numbers_in_a_branch() -> None:
    x = gc.var("x", (), "float32")
    y = gc.cond(True, lambda a: a * 2, lambda a: 0, x)  # 0 is taken as float32, the other branch's dtype
    assert y.dtype == np.float32
    assert gc.evaluate(y, {x: np.float32(1.5)}) == np.float32(3.0)


def test_the_identity_branch_returns_a_fresh_array() -> None:
    p, x = gc.var("p", (), "bool"), gc.var("x", (4,))
    y = gc.cond(p, lambda a: a, lambda a: -a, x)
    xv = np.arange(4.0)
    for backend in BACKENDS:
        got = gc.compile([p, x], y, backend=backend)(True, xv)
        assert np.array_equal(got, xv) and not np.shares_memory(got, xv)


def test_only_the_taken_branch_runs() -> None:
    """The other branch would raise (an index out of range, a fixed point that diverges) or never stop."""
    p, x = gc.var("p", (), "bool"), gc.var("x", (3,))
    i = gc.var("i", (), "int64")

    def explodes(a: gc.Tensor) -> gc.Tensor:
        endless = gc.while_loop(lambda c: c > -1.0, lambda c: c + 1.0, gc.sum(a))  # never ends
        return gc.take(a, i) + endless

    y = gc.cond(p, lambda a: a * 2.0, lambda a: gc.broadcast_to(explodes(a), (3,)), x)
    for backend in BACKENDS:
        fn = gc.compile([p, x, i], y, backend=backend)
        assert fn(True, np.ones(3), 7).tolist() == [2.0, 2.0, 2.0]
    assert gc.evaluate(y, {p: True, x: np.ones(3), i: 7}).tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(IndexError):
        gc.compile([p, x, i], y, backend="numpy")(False, np.ones(3), 7)


# --- typing ------------------------------------------------------------------------------------


def test_branches_must_agree_and_errors_name_the_users_line() -> None:
    x = gc.var("x", (3,))
    p = gc.var("p", (), "bool")
    with pytest.raises(gc.DTypeError, match=r"result 0 is f64\[3\] in the true branch but f32\[3\]") as info:
        gc.cond(p, lambda a: a, lambda a: a.astype("float32"), x)  # dtype mismatch
    assert f"test_cond.py:{line_of('# dtype mismatch')}" in str(info.value) and "cond(" in str(info.value)
    with pytest.raises(gc.ShapeError, match=r"f64\[3\] in the true branch but f64\[\]"):
        gc.cond(p, lambda a: a, lambda a: gc.sum(a), x)
    with pytest.raises(gc.GraphError, match="different structures"):
        gc.cond(p, lambda a: (a, a), lambda a: a, x)
    with pytest.raises(gc.GraphError, match="bool scalar"):
        gc.cond(gc.var("q", (2,), "bool"), lambda a: a, lambda a: a, x)
    with pytest.raises(gc.GraphError, match="bool scalar"):
        gc.cond(gc.var("q"), lambda a: a, lambda a: a, x)
    with pytest.raises(TypeError, match="bool scalar"):
        gc.cond(object(), lambda a: a, lambda a: a, x)


# --- derivatives ------------------------------------------------------------------------------------


def smooth_cond() -> tuple[list[gc.Tensor], gc.Tensor]:
    """A cond whose branches close over W and u and compute different functions of (x, s)."""
    x, s, W, u = gc.var("x", (3,)), gc.var("s"), gc.var("W", (3, 3)), gc.var("u", (3,))
    p = gc.var("p", (), "bool")

    def left(a: gc.Tensor, b: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        return gc.tanh(W @ a) * b, gc.sum(a * u) ** 2

    def right(a: gc.Tensor, b: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        return gc.exp(-a * b), gc.sum(gc.sin(a)) * b

    y, z = gc.cond(p, left, right, x, s)
    return [p, x, s, W, u], gc.sum(y * y) + z


@pytest.mark.parametrize("taken", [True, False])
def test_gradient_through_the_taken_branch_against_finite_differences(taken: bool) -> None:
    (p, *xs), loss = smooth_cond()
    values = {p: taken, **{v: RNG.normal(size=v.shape) * 0.7 for v in xs}}
    check_grad(loss, xs, values)
    g = gc.grad(loss, xs)
    grads = gc.evaluate(g, values)
    if not taken:  # the false branch reads neither W nor u
        assert not np.any(grads[2]) and not np.any(grads[3])
    compiled_agree([p, *xs], g, [[taken, *(values[v] for v in xs)]])


@pytest.mark.parametrize("taken", [True, False])
def test_forward_mode_jacobians_and_second_order(taken: bool) -> None:
    (p, x, s, W, u), loss = smooth_cond()
    values = {p: taken, x: RNG.normal(size=3), s: 0.4, W: RNG.normal(size=(3, 3)) * 0.5, u: RNG.normal(size=3)}
    gx = gc.grad(loss, x)
    for mode in ("rev", "fwd"):
        J = gc.evaluate(gc.jacobian(gx, x, mode=mode), values)  # a batched cotangent/tangent through the cond
        eps = 1e-6
        numeric = np.stack([
            (gc.evaluate(gx, {**values, x: values[x] + eps * e}) - gc.evaluate(gx, {**values, x: values[x] - eps * e}))
            / (2 * eps) for e in np.eye(3)
        ], axis=1)  # fmt: skip
        np.testing.assert_allclose(J, numeric, rtol=1e-6, atol=1e-7)
    (t,) = gc.jvp([loss], [s], [gc.const(1.0)])
    up = gc.evaluate(loss, {**values, s: 0.4 + 1e-6})
    down = gc.evaluate(loss, {**values, s: 0.4 - 1e-6})
    assert gc.evaluate(t, values) == pytest.approx((up - down) / 2e-6, rel=1e-6)
    H = gc.hessian(loss, s)
    compiled_agree([p, x, s, W, u], [H, gc.grad(loss, s)], [[taken, *(values[v] for v in (x, s, W, u))]])


def test_a_cond_in_a_scan_step_and_nested_conds() -> None:
    """Piecewise dynamics: the branch depends on the carry; an inner cond inside a branch."""
    h0, a = gc.var("h0", (2,)), gc.var("a")

    def step(h: gc.Tensor, _: None) -> tuple[gc.Tensor, gc.Tensor]:
        inner = lambda v: gc.cond(gc.sum(v) < -1.0, lambda w: w * 0.5, lambda w: w * a, v)  # noqa: E731
        h = gc.cond(gc.sum(h) > 0.0, lambda v: gc.tanh(v * a) + 0.3, inner, h)
        return h, gc.sum(h)

    h_t, ys = gc.scan(step, h0, None, length=6)
    loss = gc.sum(h_t**2) + gc.sum(ys)

    def next_h(hv: np.ndarray, av: float) -> np.ndarray:
        if hv.sum() > 0:
            return np.tanh(hv * av) + 0.3
        if hv.sum() < -1:
            return hv * 0.5
        return hv * av

    def reference(hv: np.ndarray, av: float) -> float:
        total = 0.0
        for _ in range(6):
            hv = next_h(hv, av)
            total += hv.sum()
        return float((hv**2).sum() + total)

    for hv in (np.array([0.4, -0.1]), np.array([-0.9, -0.3])):
        values = {h0: hv, a: 0.8}
        assert gc.evaluate(loss, values) == pytest.approx(reference(hv, 0.8), rel=1e-14)
        check_grad(loss, [h0, a], values)
        compiled_agree([h0, a], [loss, *gc.grad(loss, [h0, a])], [[hv, 0.8]])


def test_the_predicate_and_integer_operands_get_no_derivative() -> None:
    x, k = gc.var("x"), gc.var("k", (), "int64")
    y = gc.cond(x > 0.0, lambda a, n: a * n.astype("float64"), lambda a, n: -a, x, k)
    assert gc.evaluate(gc.grad(y, x), {x: 2.0, k: 3}) == 3.0
    assert gc.evaluate(gc.grad(y, x), {x: -2.0, k: 3}) == -1.0
    assert gc.evaluate(gc.grad(gc.cond(x > 0.0, lambda a: 1.0, lambda a: 2.0, x), x), {x: 1.0}) == 0.0


def test_check_finite_sees_only_the_taken_branch_and_the_loops_pass_is_idempotent() -> None:
    p, x = gc.var("p", (), "bool"), gc.var("x", (3,))
    y = gc.cond(p, gc.log, lambda a: a * 2.0, x)
    xv = np.array([-1.0, 2.0, 3.0])
    for backend in BACKENDS:
        fn = gc.compile([p, x], y, backend=backend, check_finite=True)
        assert fn(False, xv).tolist() == [-2.0, 4.0, 6.0]
        with pytest.raises(FloatingPointError, match="log"), np.errstate(invalid="ignore"):
            fn(True, xv)
    graph = gc.Graph([y.node, gc.grad(gc.sum(y), x).node])
    once = loops(graph)
    assert loops(once) is once
