"""W6: the dense Hessian of the Rosenbrock function, N = 100 (tiny: 10).

The expected output is scipy's `rosen_hess`. The Hessian is tridiagonal; graphc has no
sparse Hessian yet, so every system here computes the dense N x N result. The hand
NumPy version writes the three diagonals into a zeroed array (as rosen_hess does with
np.diag); its out= variant writes them into one array made once, whose zeros stay.
JAX uses jit(hessian), PyTorch torch.func.hessian (eager), PyTensor a vectorized
Jacobian of its gradient.
Run alone: `graphc bench --only W6 [--quick]`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

import graphc as gc
from graphc.bench import harness, peers
from graphc.bench.harness import Case, GraphcBuild, Impl
from graphc.bench.w2_rosenbrock import rosenbrock

SIZES = {"tiny": 10, "quick": 100, "full": 100}
NOTE = "graphc has no sparse Hessian yet: dense N x N result"


def _diagonals(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal and the off-diagonal of the Rosenbrock Hessian."""
    diagonal = np.empty_like(x)
    diagonal[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    diagonal[-1] = 0.0
    diagonal[1:] += 200.0
    return diagonal, -400.0 * x[:-1]


def numpy_hessian(x: np.ndarray) -> np.ndarray:
    n = len(x)
    diagonal, off = _diagonals(x)
    hess = np.zeros((n, n))
    hess.flat[:: n + 1] = diagonal
    hess.flat[1 :: n + 1] = off
    hess.flat[n :: n + 1] = off
    return hess


class NumpyPreallocated:
    """The same into one array made (and zeroed) once; returns it, overwritten by the next call."""

    def __init__(self, n: int) -> None:
        self.hess = np.zeros((n, n))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        diagonal, off = _diagonals(x)
        self.hess.flat[:: n + 1] = diagonal
        self.hess.flat[1 :: n + 1] = off
        self.hess.flat[n :: n + 1] = off
        return self.hess


def graphc_build(n: int) -> GraphcBuild:
    x = gc.var("x", (n,))
    f = rosenbrock(x)
    return GraphcBuild([x], f, [gc.hessian(f, x)], with_value=False)


def _rosen(np_like: Any, x: Any) -> Any:
    return np_like.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def jax_fn(jax: Any) -> Any:
    return jax.hessian(partial(_rosen, jax.numpy))


def torch_fn(torch: Any, x: Any) -> Any:
    return torch.func.hessian(partial(_rosen, torch))(x)


def pytensor_build(pytensor: Any) -> tuple[list[Any], list[Any]]:
    x = pytensor.tensor.dvector("x")
    g = pytensor.grad(_rosen(pytensor.tensor, x), x)
    return [x], [pytensor.gradient.jacobian(g, x, vectorize=True)]


def cases(options: harness.Options) -> list[Case]:
    import scipy.optimize  # the reference (the bench extra)

    n = SIZES[options.scale]
    x = np.random.default_rng(6).uniform(-1.5, 1.5, n)
    expected = scipy.optimize.rosen_hess(x)
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_hessian(x)),
        Impl(harness.NUMPY_OUT, lambda: partial(NumpyPreallocated(n), x), note="array made once; returns it"),
        Impl("scipy rosen_hess", lambda: lambda: scipy.optimize.rosen_hess(x)),
        *harness.graphc_impls(options, lambda: graphc_build(n), [x], note=NOTE),
        Impl(peers.JAX, peers.jax_setup(jax_fn, [x]), note="jit(hessian)", requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, [x]), note="torch.func.hessian", requires="torch"),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build, [x]), note="jacobian of grad", requires="pytensor"),
    ]
    return [Case("W6", f"Rosenbrock Hessian N={n}", (expected,), impls)]
