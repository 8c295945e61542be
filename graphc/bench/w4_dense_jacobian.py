"""W4: the dense Jacobian of `tanh(A @ x + b) * x`, n = m = 100 (tiny: 8).

With t = tanh(A x + b): J = diag(t) + diag(x (1 - t^2)) A. The hand NumPy version is
checked against central differences. JAX uses jit(jacrev); PyTorch torch.func.jacrev
(eager); PyTensor its vectorized jacobian.
Run alone: `graphc bench --only W4 [--quick]`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

import graphc as gc
from graphc.bench import checks, harness, peers
from graphc.bench.harness import Case, GraphcBuild, Impl

SIZES = {"tiny": 8, "quick": 100, "full": 100}


def function(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.tanh(a @ x + b) * x


def numpy_jacobian(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    t = np.tanh(a @ x + b)
    jac = a * (x * (1.0 - t * t))[:, None]
    jac.flat[:: len(x) + 1] += t
    return jac


class NumpyPreallocated:
    """The same into a Jacobian buffer made once (returned, and overwritten by the next call)."""

    def __init__(self, n: int) -> None:
        self.jac = np.empty((n, n))

    def __call__(self, x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t = np.tanh(a @ x + b)
        np.multiply(a, (x * (1.0 - t * t))[:, None], out=self.jac)
        self.jac.flat[:: len(x) + 1] += t
        return self.jac


def graphc_build(n: int) -> GraphcBuild:
    x, a, b = gc.var("x", (n,)), gc.var("A", (n, n)), gc.var("b", (n,))
    f = gc.tanh(a @ x + b) * x
    return GraphcBuild([x, a, b], f, [gc.jacobian(f, x)], with_value=False)


def jax_fn(jax: Any) -> Any:
    def f(x: Any, a: Any, b: Any) -> Any:
        return jax.numpy.tanh(a @ x + b) * x

    return jax.jacrev(f)


def torch_fn(torch: Any, x: Any, a: Any, b: Any) -> Any:
    return torch.func.jacrev(lambda v: torch.tanh(a @ v + b) * v)(x)


def pytensor_build(pytensor: Any) -> tuple[list[Any], list[Any]]:
    pt = pytensor.tensor
    x, a, b = pt.dvector("x"), pt.dmatrix("A"), pt.dvector("b")
    f = pt.tanh(a @ x + b) * x
    return [x, a, b], [pytensor.gradient.jacobian(f, x, vectorize=True)]


def cases(options: harness.Options) -> list[Case]:
    n = SIZES[options.scale]
    rng = np.random.default_rng(4)
    x, a, b = rng.standard_normal(n), rng.standard_normal((n, n)) / np.sqrt(n), 0.1 * rng.standard_normal(n)
    expected = numpy_jacobian(x, a, b)
    checks.check_jacobian(lambda v: function(v, a, b), x, expected)
    inputs = [x, a, b]
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_jacobian(x, a, b)),
        Impl(harness.NUMPY_OUT, lambda: partial(NumpyPreallocated(n), x, a, b), note="buffer made once; returns it"),
        *harness.graphc_impls(options, lambda: graphc_build(n), inputs),
        Impl(peers.JAX, peers.jax_setup(jax_fn, inputs), note="jit(jacrev)", requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, inputs), note="torch.func.jacrev", requires="torch"),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build, inputs), note="vectorized", requires="pytensor"),
    ]
    return [Case("W4", f"Jacobian n={n}", (expected,), impls)]
