"""scan and fixed_point in the llvm backend: one native loop per family, against the reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends.llvm.kernels import Loop

RNG = np.random.default_rng(11)


def llvm(inputs: list, outputs: list, **options: object) -> gc.compile:
    return gc.compile(inputs, outputs, backend="llvm", cache=False, **options)


def assert_matches(fn: gc.compile, outputs: list, feed: dict, rtol: float = 1e-12) -> None:
    got = fn(*(feed[v] for v in fn.inputs))
    for g, e in zip(got, gc.evaluate(outputs, feed), strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=1e-14)


def rnn(steps: int = 7, reverse: bool = False, checkpoint: int = 1) -> tuple[list, list, dict]:
    xs, W, U, b = gc.var("xs", (steps, 4, 3)), gc.var("W", (5, 5)), gc.var("U", (3, 5)), gc.var("b", (5,))
    h0 = gc.var("h0", (4, 5))

    def step(h: gc.Tensor, x_t: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = gc.tanh(h @ W + x_t @ U + b)
        return h, gc.sum(h, axis=1)

    h_t, ys = gc.scan(step, h0, xs, reverse=reverse, checkpoint=checkpoint)
    loss = gc.mean(h_t**2) + gc.sum(gc.sin(ys))
    inputs = [xs, W, U, b, h0]
    values = [RNG.normal(size=(steps, 4, 3)), RNG.normal(size=(5, 5)) / 3, RNG.normal(size=(3, 5)),
              RNG.normal(size=5), RNG.normal(size=(4, 5))]  # fmt: skip
    return inputs, [loss, h_t, ys, *gc.grad(loss, [W, U, b, h0, xs])], dict(zip(inputs, values, strict=True))


@pytest.mark.parametrize(("reverse", "checkpoint"), [(False, 1), (True, 1), (False, 3), (False, 7)])
def test_rnn_values_and_gradients(reverse: bool, checkpoint: bool) -> None:
    inputs, outputs, feed = rnn(reverse=reverse, checkpoint=checkpoint)
    for optimize in (False, True):
        fn = llvm(inputs, outputs, optimize=optimize)
        assert any(isinstance(k, Loop) for k in fn._built.plan.kernels)
        assert_matches(fn, outputs, feed)


def test_siblings_share_one_native_loop() -> None:
    inputs, outputs, feed = rnn()
    fn = llvm(inputs, outputs[1:3], optimize=False)
    assert sum(isinstance(k, Loop) for k in fn._built.plan.kernels) == 1
    assert_matches(fn, outputs[1:3], feed)


def test_nested_scans_zero_length_and_several_carries() -> None:
    w = gc.var("w", (2, 2))
    x0 = gc.var("x0", (2,))

    def outer(x: gc.Tensor, _: None) -> tuple[gc.Tensor, gc.Tensor]:
        inner, _ = gc.scan(lambda y, __: (gc.tanh(y @ w + x), None), x, None, length=3)
        return inner * 0.5, gc.sum(inner)

    x_t, ys = gc.scan(outer, x0, None, length=3)
    (a, n), counts = gc.scan(lambda c, _: ((c[0] * 2.0, c[1] + 1.0), c[1]), (x0, gc.const(0.0)), None, length=4)
    empty, none = gc.scan(lambda c, _: (c + 1.0, c), x0, None, length=0)
    outputs = [x_t, ys, a, n, counts, empty, none, *gc.grad(gc.sum(x_t**2) + gc.sum(ys), [w, x0])]
    assert_matches(llvm([w, x0], outputs), outputs, {w: RNG.normal(size=(2, 2)), x0: RNG.normal(size=2)})


def test_fixed_point_value_gradient_and_float32() -> None:
    P = gc.var("P", (4, 4))
    u = gc.var("u", (4,))
    z = gc.fixed_point(lambda z, p: gc.tanh(p @ z + u), gc.const(np.zeros(4)), P)
    f = gc.sum(z**2)
    outputs = [z, f, *gc.grad(f, [P, u])]
    feed = {P: RNG.normal(size=(4, 4)) / 4, u: RNG.normal(size=4)}
    assert_matches(llvm([P, u], outputs), outputs, feed, rtol=1e-9)
    q = gc.var("q", (3,), dtype="float32")
    half = gc.fixed_point(lambda z, p: 0.5 * z + p, gc.const(np.zeros(3, np.float32)), q, tol=1e-6)
    assert_matches(llvm([q], [half]), [half], {q: np.array([1.0, -2.0, 0.5], np.float32)}, rtol=1e-5)


def test_fixed_point_failures_raise_like_the_numpy_backend() -> None:
    P = gc.var("P", (4, 4))
    z = gc.fixed_point(lambda z, p: p @ z + 1.0, gc.const(np.zeros(4)), P, max_iter=50)
    messages = []
    for backend in ("numpy", "llvm"):
        fn = gc.compile([P], z, backend=backend, cache=False) if backend == "llvm" else gc.compile([P], z)
        for value in (-np.eye(4), np.full((4, 4), np.nan)):  # z oscillates between 0 and 1; NaN
            with pytest.raises(gc.ConvergenceError) as info:
                fn(value)
            messages.append(str(info.value))
    assert messages[:2] == messages[2:]
    assert "50 iterations" in messages[2]
