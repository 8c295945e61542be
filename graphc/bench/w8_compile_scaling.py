"""W8: compile-time scaling: K steps `x = sin(x) * 1.0001 + 0.1 * x` on a length-1000 vector, f = sum(x_K), gradient.

K = 10, 100, 1000, 10000 (quick: up to 1000; tiny: 3, 10). The number that matters is
the time to first result (build + differentiate + optimize + compile + first call),
which should grow linearly in K: the report fits the log-log slope between sizes and
flags a system whose slope exceeds 1.2 as superlinear. Every system sees the K steps
as K copies (a Python loop, unrolled when traced), since graph size is what is under
test. A system whose first result, extrapolated linearly from the previous K, would
exceed the run's cap is skipped at the larger K (noted); graphc is measured in a forked
child that is killed past the cap, since a superlinear compile can outrun any
extrapolation. The hand NumPy version keeps
every x_k for the backward product, g = prod_k (1.0001 cos(x_k) + 0.1), and is checked
against central differences at K = 10: the factors are about 0.8 near the iteration's
fixed point, so for large K the gradient is below what differences resolve (at
K = 10000 it underflows to zero, in every system).
Run alone: `graphc bench --only W8 [--quick]`.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

import numpy as np

import graphc as gc
from graphc.bench import checks, harness, peers
from graphc.bench.harness import Case, GraphcBuild, Impl

STEPS = {"tiny": (3, 10), "quick": (10, 100, 1000), "full": (10, 100, 1000, 10000)}
LENGTH = {"tiny": 50, "quick": 1000, "full": 1000}
SUPERLINEAR_SLOPE = 1.2
CHECK_STEPS = 10


def numpy_value(x: np.ndarray, k: int) -> float:
    for _ in range(k):
        x = np.sin(x) * 1.0001 + 0.1 * x
    return float(np.sum(x))


def numpy_value_grad(x: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    states = [x]
    for _ in range(k):
        x = np.sin(x) * 1.0001 + 0.1 * x
        states.append(x)
    g = np.ones_like(x)
    for state in reversed(states[:-1]):
        g *= np.cos(state) * 1.0001 + 0.1
    return np.sum(x), g


def graphc_build(k: int, n: int) -> GraphcBuild:
    x0 = gc.var("x", (n,))
    x = x0
    for _ in range(k):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    f = gc.sum(x)
    return GraphcBuild([x0], f, [gc.grad(f, x0)])


def _steps(np_like: Any, x: Any, k: int) -> Any:
    for _ in range(k):
        x = np_like.sin(x) * 1.0001 + 0.1 * x
    return np_like.sum(x)


def jax_fn(k: int) -> Any:
    return lambda jax: jax.value_and_grad(lambda x: _steps(jax.numpy, x, k))


def torch_fn(k: int) -> Any:
    def fn(torch: Any, x: Any) -> tuple[Any, Any]:
        f = _steps(torch, x, k)
        (g,) = torch.autograd.grad(f, [x])
        return f.detach(), g

    return fn


def pytensor_build(k: int) -> Any:
    def build(pytensor: Any) -> tuple[list[Any], list[Any]]:
        x = pytensor.tensor.dvector("x")
        f = _steps(pytensor.tensor, x, k)
        return [x], [f, pytensor.grad(f, x)]

    return build


def case(options: harness.Options, k: int, n: int) -> Case:
    x = np.random.default_rng(8).uniform(-1.0, 1.0, n)
    expected = numpy_value_grad(x, k)
    checked = min(k, CHECK_STEPS)  # the gradient shrinks like 0.8^K: past ~10 steps differences cannot see it
    checks.check_directional(lambda v: numpy_value(v, checked), [x], [numpy_value_grad(x, checked)[1]])
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_value_grad(x, k)),
        *[replace(impl, isolate=True) for impl in harness.graphc_impls(options, lambda: graphc_build(k, n), [x])],
        Impl(peers.JAX, peers.jax_setup(jax_fn(k), [x]), note="jit(value_and_grad), unrolled", requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn(k), [x], [True]), requires="torch"),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build(k), [x]), note="unrolled graph", requires="pytensor"),
    ]
    return Case("W8", f"K={k} steps", expected, impls, size=k)


def cases(options: harness.Options) -> list[Case]:
    n = LENGTH[options.scale]
    return [case(options, k, n) for k in STEPS[options.scale]]


def slopes(points: list[tuple[float, float]]) -> list[float]:
    """The log-log slope between consecutive (K, seconds) points."""
    ordered = sorted(points)
    return [float(np.log(t1 / t0) / np.log(k1 / k0)) for (k0, t0), (k1, t1) in pairwise(ordered)]
