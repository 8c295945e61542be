"""W2: the Rosenbrock function `sum(100 (x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)`, value and gradient.

Two sizes: N = 10 measures call overhead, N = 10^6 memory bandwidth (tiny: 10 and 1000).
The expected outputs are scipy's `rosen` and `rosen_der`. The memory-traffic bound of
the large size counts 16 bytes per element: read x once, write the gradient once.
Run alone: `graphc bench --only W2 [--quick]`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

import graphc as gc
from graphc.bench import harness, peers
from graphc.bench.harness import Case, GraphcBuild, Impl

SIZES = {"tiny": (10, 1000), "quick": (10, 10**6), "full": (10, 10**6)}


def numpy_value_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
    """With a = x[1:] - x[:-1]^2, b = 1 - x[:-1]: g[:-1] = -400 x[:-1] a - 2 b, g[1:] += 200 a."""
    head = x[:-1]
    a = x[1:] - head * head
    b = 1.0 - head
    g = np.empty_like(x)
    g[:-1] = -400.0 * head * a - 2.0 * b
    g[-1] = 0.0
    g[1:] += 200.0 * a
    return float(100.0 * (a @ a) + b @ b), g


class NumpyPreallocated:
    """The same, every temporary in a buffer made once; returns its gradient buffer (reused by the next call)."""

    def __init__(self, n: int) -> None:
        self.a, self.b, self.g = np.empty(n - 1), np.empty(n - 1), np.empty(n)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b, g = self.a, self.b, self.g
        head, inner = x[:-1], g[:-1]
        np.multiply(head, head, out=a)
        np.subtract(x[1:], a, out=a)
        np.subtract(1.0, head, out=b)
        value = 100.0 * (a @ a) + b @ b
        np.multiply(head, a, out=inner)
        inner *= -400.0
        b *= 2.0
        inner -= b
        g[-1] = 0.0
        a *= 200.0
        g[1:] += a
        return value, g


def rosenbrock(x: gc.Tensor) -> gc.Tensor:
    return gc.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def graphc_build(n: int) -> GraphcBuild:
    x = gc.var("x", (n,))
    f = rosenbrock(x)
    return GraphcBuild([x], f, [gc.grad(f, x)])


def jax_fn(jax: Any) -> Any:
    def rosen(x: Any) -> Any:
        return jax.numpy.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    value_and_grad = jax.value_and_grad(rosen)
    return lambda x: value_and_grad(x)


def torch_fn(torch: Any, x: Any) -> tuple[Any, Any]:
    f = torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    (g,) = torch.autograd.grad(f, [x])
    return f.detach(), g


def pytensor_build(pytensor: Any) -> tuple[list[Any], list[Any]]:
    x = pytensor.tensor.dvector("x")
    f = pytensor.tensor.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return [x], [f, pytensor.grad(f, x)]


def case(options: harness.Options, n: int, large: bool) -> Case:
    import scipy.optimize  # the reference (the bench extra)

    x = np.random.default_rng(2).uniform(-1.5, 1.5, n)
    expected = (scipy.optimize.rosen(x), scipy.optimize.rosen_der(x))
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_value_grad(x)),
        Impl(harness.NUMPY_OUT, lambda: partial(NumpyPreallocated(n), x), note="buffers made once; returns them"),
        Impl("scipy rosen+rosen_der", lambda: lambda: (scipy.optimize.rosen(x), scipy.optimize.rosen_der(x))),
        *harness.graphc_impls(options, lambda: graphc_build(n), [x]),
        Impl(peers.JAX, peers.jax_setup(jax_fn, [x]), requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, [x], [True]), requires="torch"),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build, [x]), requires="pytensor"),
    ]
    result = Case("W2", f"Rosenbrock N={harness.size_label(n)}", expected, impls)
    if large:
        result.traffic_bytes = 16 * n
        result.traffic_note = "read x (8N), write the gradient (8N)"
    return result


def cases(options: harness.Options) -> list[Case]:
    small, large = SIZES[options.scale]
    return [case(options, small, large=False), case(options, large, large=True)]
