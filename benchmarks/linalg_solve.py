"""LA: a linear solve and its gradient, `f = ½‖A⁻¹b‖²`, n = 100 (tiny: 8).

Outputs f, df/dA = -A⁻ᵀx xᵀ and df/db = A⁻ᵀx with x = A⁻¹b. Two hand-written baselines:
NumPy (np.linalg.solve twice: x, then A⁻ᵀx, two LU factorizations) and scipy (one
lu_factor, then lu_solve for x and lu_solve(trans=1) for A⁻ᵀx), checked against central
differences. The target (issue 15): graphc's llvm backend within 1.3x of the hand
version. JAX uses jit(value_and_grad); PyTorch eager autograd.
Run alone: `python -m benchmarks.linalg_solve [--quick]`.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import scipy.linalg

import graphc as gc
from benchmarks import checks, harness, peers
from benchmarks.harness import Case, GraphcBuild, Impl

SIZES = {"tiny": 8, "quick": 100, "full": 100}


def value(a: np.ndarray, b: np.ndarray) -> float:
    x = np.linalg.solve(a, b)
    return 0.5 * float(x @ x)


def numpy_value_grad(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    x = np.linalg.solve(a, b)
    gb = np.linalg.solve(a.T, x)
    return 0.5 * float(x @ x), -np.outer(gb, x), gb


def scipy_value_grad(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    lu = scipy.linalg.lu_factor(a, check_finite=False)
    x = scipy.linalg.lu_solve(lu, b, check_finite=False)
    gb = scipy.linalg.lu_solve(lu, x, trans=1, check_finite=False)
    return 0.5 * float(x @ x), -np.outer(gb, x), gb


def graphc_build(n: int) -> GraphcBuild:
    a, b = gc.var("A", (n, n)), gc.var("b", (n,))
    x = gc.linalg.solve(a, b)
    f = 0.5 * gc.sum(x * x)
    return GraphcBuild([a, b], f, list(gc.grad(f, [a, b])))


def jax_fn(jax: Any) -> Any:
    def f(a: Any, b: Any) -> Any:
        x = jax.numpy.linalg.solve(a, b)
        return 0.5 * jax.numpy.sum(x * x)

    value_and_grad = jax.value_and_grad(f, argnums=(0, 1))
    return lambda a, b: (lambda out: (out[0], *out[1]))(value_and_grad(a, b))


def torch_fn(torch: Any, a: Any, b: Any) -> tuple[Any, Any, Any]:
    x = torch.linalg.solve(a, b)
    f = 0.5 * torch.sum(x * x)
    ga, gb = torch.autograd.grad(f, [a, b])
    return f.detach(), ga, gb


def cases(options: harness.Options) -> list[Case]:
    n = SIZES[options.scale]
    rng = np.random.default_rng(15)
    a = rng.standard_normal((n, n)) + np.sqrt(n) * np.eye(n)
    b = rng.standard_normal(n)
    expected = numpy_value_grad(a, b)
    checks.check_directional(value, [a, b], expected[1:])
    checks.verify(scipy_value_grad(a, b), expected, rtol=1e-12)
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_value_grad(a, b), note="np.linalg.solve twice"),
        Impl("scipy lu_factor", lambda: lambda: scipy_value_grad(a, b), note="one LU, two lu_solve"),
        *harness.graphc_impls(lambda: graphc_build(n), [a, b]),
        Impl(peers.JAX, peers.jax_setup(jax_fn, [a, b]), note="jit(value_and_grad)", requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, [a, b], [True, True]), requires="torch"),
    ]
    return [Case("LA", f"solve + gradient n={n}", expected, impls)]


if __name__ == "__main__":
    from graphc.cli import main

    sys.exit(main(["bench", "--only", "LA", *sys.argv[1:]]))
