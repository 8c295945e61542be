"""Fused regions inside loop bodies (passes/fuse.py on scan/fixed_point/cond bodies) on both backends.

Each case is compiled twice per backend, once as the default pipeline makes it (bodies
fused) and once from gc.optimize(fuse=False) with optimize=False (nothing fused): the
two must agree bit for bit, and both with gc.evaluate (the numpy backend bit for bit,
llvm within its vector math's few ulp). Sizes n = 0, 1, 5 and steps s = 0, 1, 4; the
gradient of one small case against central differences; gathers (`take`) with
negative, out-of-range, one-element and empty indices feeding fused regions, in a loop
body and outside one.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np
import pytest

import graphc as gc
from graphc.ir import Graph

fuse_module = importlib.import_module("graphc.passes.fuse")
BACKENDS = ("numpy", "llvm")


def compile_both(inputs: list[gc.Tensor], outputs: list[gc.Tensor], backend: str) -> tuple[object, object]:
    """(the default compile: bodies fused, the same graph optimized but nothing fused)."""
    fused = gc.compile(inputs, outputs, backend=backend, cache=False)
    plain = gc.compile(inputs, gc.optimize(outputs, fuse=False), backend=backend, cache=False, optimize=False)
    return fused, plain


def body_ops(fn: object, loop: str) -> list[str]:
    """The ops of the first `loop` node's body in the compiled graph."""
    node = next(n for n in fn.graph.nodes if n.op.name == loop)  # type: ignore[attr-defined]
    body = node.attr("body")
    assert isinstance(body, Graph)
    return [n.op.name for n in body.nodes]


def check_against_reference(
    fused: object, plain: object, args: Sequence[np.ndarray], want: Sequence[np.ndarray], backend: str
) -> None:
    got = fused(*args)  # type: ignore[operator]
    same = plain(*args)  # type: ignore[operator]
    for g, p, w in zip(got, same, want, strict=True):
        np.testing.assert_array_equal(g, p)  # fusing changes no bit
        if backend == "numpy":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300)


def ode_like(n: int, s: int) -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    """A scan whose body is elementwise chains around a shift: carries y, per-step outputs, a gradient."""
    x, y0 = gc.var("x", (n,)), gc.var("y0", (n,))

    def step(y: gc.Tensor, _: None) -> tuple[gc.Tensor, gc.Tensor]:
        k = x * gc.sin(y) - 0.5 * y * y + gc.exp(-gc.abs(y))
        shifted = gc.concatenate([y[:1] * 0.0, (y + 0.25 * k)[:-1]]) if n > 0 else y
        new = y + 0.1 * (k + 2.0 * gc.tanh(shifted))
        return new, gc.sqrt(new * new + 1.0) * x

    y, ys = gc.scan(step, y0, None, length=s)
    loss = gc.sum(y * y) + gc.sum(ys)
    return [x, y0], [y, ys, loss, *gc.grad(loss, [x, y0])]


def ode_reference(n: int, s: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(n * 10 + s)
    args = [rng.uniform(0.5, 1.5, n), rng.uniform(-1.0, 1.0, n)]
    inputs, outputs = ode_like(n, s)
    return args, gc.evaluate(outputs, dict(zip(inputs, args, strict=True)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("n", "s"), [(0, 0), (0, 4), (1, 0), (1, 1), (5, 1), (5, 4)])
def test_scan_body_fused_matches_unfused_and_the_evaluator(backend: str, n: int, s: int) -> None:
    inputs, outputs = ode_like(n, s)
    fused, plain = compile_both(inputs, outputs, backend)
    if s > 0:
        assert "fused" in body_ops(fused, "scan") and "fused" not in body_ops(plain, "scan")
    args, want = ode_reference(n, s)
    check_against_reference(fused, plain, args, want, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_gradient_with_fused_body_matches_central_differences(backend: str) -> None:
    n, s = 3, 4
    inputs, outputs = ode_like(n, s)
    fn = gc.compile(inputs, [outputs[2], outputs[3], outputs[4]], backend=backend, cache=False)
    args, _ = ode_reference(n, s)
    _, gx, gy0 = fn(*args)
    value = gc.compile(inputs, outputs[2], backend="numpy", cache=False)
    for k, grad in enumerate((gx, gy0)):
        numeric = np.zeros(n)
        for j in range(n):
            step = np.zeros(n)
            step[j] = 1e-6
            plus = [a + step if i == k else a for i, a in enumerate(args)]
            minus = [a - step if i == k else a for i, a in enumerate(args)]
            numeric[j] = (value(*plus) - value(*minus)) / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [0, 1, 5])
def test_fixed_point_body_fused_matches_unfused_and_the_evaluator(backend: str, n: int) -> None:
    p, q = gc.var("p", (n,)), gc.var("q", (n,))
    z = gc.fixed_point(lambda z, p, q: 0.3 * gc.cos(z) * q + 0.1 * gc.tanh(z * z) + p, gc.const(np.zeros(n)), p, q)
    loss = gc.sum(z * z)
    outputs = [z, loss, *gc.grad(loss, [p, q])]
    fused, plain = compile_both([p, q], outputs, backend)
    assert "fused" in body_ops(fused, "fixed_point") and "fused" not in body_ops(plain, "fixed_point")
    rng = np.random.default_rng(n)
    args = [rng.uniform(-1.0, 1.0, n), rng.uniform(-1.0, 1.0, n)]
    want = gc.evaluate(outputs, {p: args[0], q: args[1]})
    check_against_reference(fused, plain, args, want, backend)


def test_fuse_of_loop_bodies_is_idempotent_and_unfuse_inverts_it() -> None:
    _, outputs = ode_like(5, 4)
    graph = Graph([t.node for t in gc.optimize(outputs, fuse=False)])
    once = fuse_module.fuse(graph)
    assert once is not graph
    assert fuse_module.fuse(once) is once
    assert fuse_module.unfuse(once).outputs == graph.outputs
    scans = {n.attr("body") for n in once.nodes if n.op.name == "scan"}
    assert len(scans) == len({n.attr("body") for n in graph.nodes if n.op.name == "scan"})  # siblings share a body


def gather_case() -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    """take with computed indices feeding elementwise regions, in a scan body and outside it (valid: -4 <= idx < 5)."""
    x, idx = gc.var("x", (5,)), gc.var("idx", ("k",), dtype="int64")
    outside = gc.exp(gc.take(x, idx)) * 2.0 + 1.0

    def step(c: gc.Tensor, _: None) -> tuple[gc.Tensor, None]:
        return c * 0.5 + gc.sin(gc.take(x, idx)) * gc.take(x, idx - 1), None

    inside, _ = gc.scan(step, gc.take(x, idx) * 0.0, None, length=3)
    return [x, idx], [outside, inside]


@pytest.mark.parametrize("backend", BACKENDS)
def test_gathers_feeding_fused_regions(backend: str) -> None:
    inputs, outputs = gather_case()
    fn = gc.compile(inputs, outputs, backend=backend, cache=False)
    x = np.linspace(-1.0, 1.5, 5)
    for idx in ([-1, 0, 4, -4], [2], [], [0, 0, 3, -2, 1]):
        index = np.array(idx, dtype=np.int64)
        want = gc.evaluate(outputs, {inputs[0]: x, inputs[1]: index})
        got = fn(x, index)
        for g, w in zip(got, want, strict=True):
            assert g.shape == (len(idx),)
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=0.0)
    for bad in ([5], [0, -6], [1, 7, 2]):
        index = np.array(bad, dtype=np.int64)
        with pytest.raises(IndexError, match="out of bounds") as info:
            gc.evaluate(outputs, {inputs[0]: x, inputs[1]: index})
        with pytest.raises(IndexError, match="out of bounds") as compiled:
            fn(x, index)
        assert str(compiled.value).split(" in ")[0] == str(info.value).split(" in ")[0]


def test_llvm_primal_scan_saves_no_carries_and_the_gradient_still_does() -> None:
    n, s = 50, 40
    inputs, outputs = ode_like(n, s)
    primal = gc.compile(inputs, outputs[0], backend="llvm", cache=False)
    gradient = gc.compile(inputs, outputs[3], backend="llvm", cache=False)
    stack = n * s * 8  # one saved carry per step
    assert primal._built.plan.workspace_bytes < stack  # type: ignore[attr-defined]
    assert gradient._built.plan.workspace_bytes >= stack  # type: ignore[attr-defined]
    args, want = ode_reference(n, s)
    np.testing.assert_allclose(primal(*args), want[0], rtol=1e-13)
    np.testing.assert_allclose(gradient(*args), want[3], rtol=1e-12, atol=1e-300)
