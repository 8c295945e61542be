"""W3: the elementwise chain `sum(tanh(x*y) * exp(-x^2) + log1p(y*y))`, value and d/dx (y is not differentiated).

N = 10^7 (tiny: 10^4). With t = tanh(x y), e = exp(-x^2): df/dx = e ((1 - t^2) y - 2 x t).
The hand NumPy version is checked against central differences. The memory-traffic
bound counts 24 bytes per element: read x and y, write the gradient; everything else
can stay in registers when the chain is fused into one loop.
Run alone: `graphc bench --only W3 [--quick]`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

import graphc as gc
from graphc.bench import checks, harness, peers
from graphc.bench.harness import Case, GraphcBuild, Impl

SIZES = {"tiny": 10**4, "quick": 10**7, "full": 10**7}


def value(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.tanh(x * y) * np.exp(-x * x) + np.log1p(y * y)))


def numpy_value_grad(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    t = np.tanh(x * y)
    e = np.exp(-x * x)
    f = np.sum(t * e + np.log1p(y * y))
    return f, e * ((1.0 - t * t) * y - 2.0 * x * t)


class NumpyPreallocated:
    """The same with four buffers made once and every ufunc writing into one (out=); returns the gradient buffer."""

    def __init__(self, n: int) -> None:
        self.t, self.e, self.w, self.g = (np.empty(n) for _ in range(4))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        t, e, w, g = self.t, self.e, self.w, self.g
        np.multiply(x, y, out=t)
        np.tanh(t, out=t)
        np.multiply(x, x, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)
        np.multiply(y, y, out=w)
        np.log1p(w, out=w)
        f = w.sum() + t @ e
        np.multiply(t, t, out=w)
        np.subtract(1.0, w, out=w)
        np.multiply(w, y, out=w)
        np.multiply(x, t, out=g)
        g *= 2.0
        np.subtract(w, g, out=g)
        np.multiply(g, e, out=g)
        return f, g


def graphc_build(n: int) -> GraphcBuild:
    x, y = gc.var("x", (n,)), gc.var("y", (n,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-(x * x)) + gc.log1p(y * y))
    return GraphcBuild([x, y], f, [gc.grad(f, x)])


def jax_fn(jax: Any) -> Any:
    jnp = jax.numpy

    def f(x: Any, y: Any) -> Any:
        return jnp.sum(jnp.tanh(x * y) * jnp.exp(-(x * x)) + jnp.log1p(y * y))

    return jax.value_and_grad(f)


def torch_fn(torch: Any, x: Any, y: Any) -> tuple[Any, Any]:
    f = torch.sum(torch.tanh(x * y) * torch.exp(-(x * x)) + torch.log1p(y * y))
    (g,) = torch.autograd.grad(f, [x])
    return f.detach(), g


def pytensor_build(pytensor: Any) -> tuple[list[Any], list[Any]]:
    pt = pytensor.tensor
    x, y = pt.dvector("x"), pt.dvector("y")
    f = pt.sum(pt.tanh(x * y) * pt.exp(-(x * x)) + pt.log1p(y * y))
    return [x, y], [f, pytensor.grad(f, x)]


def cases(options: harness.Options) -> list[Case]:
    n = SIZES[options.scale]
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-2.0, 2.0, n), rng.uniform(-2.0, 2.0, n)
    expected = numpy_value_grad(x, y)
    small = slice(0, 1000)  # central differences need not see all 10^7 terms
    checks.check_directional(lambda v: value(v, y[small]), [x[small]], [expected[1][small]])
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_value_grad(x, y)),
        Impl(harness.NUMPY_OUT, lambda: partial(NumpyPreallocated(n), x, y), note="buffers made once; returns them"),
        *harness.graphc_impls(options, lambda: graphc_build(n), [x, y]),
        Impl(peers.JAX, peers.jax_setup(jax_fn, [x, y]), requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, [x, y], [True, False]), requires="torch"),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build, [x, y]), requires="pytensor"),
    ]
    result = Case("W3", f"chain N={harness.size_label(n)}", expected, impls)
    result.traffic_bytes = 24 * n
    result.traffic_note = "read x and y (16N), write d/dx (8N)"
    return [result]
