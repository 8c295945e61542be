"""W6: the Hessian of the Rosenbrock function, N = 100 (tiny: 10): dense, and sparse (CSR).

The expected output is scipy's `rosen_hess`. The Hessian is tridiagonal.
Dense case: the hand NumPy version writes the three diagonals into a zeroed array (as
rosen_hess does with np.diag); its out= variant writes them into one array made once,
whose zeros stay; graphc's gc.hessian (forward over reverse, the seed a structured
identity); JAX jit(hessian), PyTorch torch.func.hessian (eager), PyTensor a vectorized
Jacobian of its gradient.
Sparse case: the baseline ("NumPy") computes the three diagonals and writes them into
the data of a CSR array whose pattern is made once (csr_array constructor per call);
"NumPy CSR, template" builds the result as graphc does (see W5); graphc's
gc.sparse_hessian (3 colors, one compressed JVP of the gradient, CSR out); CasADi its
sparse SX Hessian (a DM result).
Run alone: `python -m benchmarks.w6_hessian [--quick]`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse

import graphc as gc
from benchmarks import checks, harness, peers
from benchmarks.harness import Case, GraphcBuild, Impl
from benchmarks.w2_rosenbrock import rosenbrock
from benchmarks.w5_bratu import csr_maker

SIZES = {"tiny": 10, "quick": 100, "full": 100}
NOTE = "gc.hessian: dense N x N result"
SPARSE_NOTE = "gc.sparse_hessian: 3 colors, CSR out"


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


def graphc_sparse_build(n: int) -> GraphcBuild:
    x = gc.var("x", (n,))
    f = rosenbrock(x)
    return GraphcBuild([x], f, [gc.sparse_hessian(f, x)], with_value=False)  # type: ignore[list-item]


class NumpyCSR:
    """The tridiagonal Hessian's values written into the data of a CSR array whose pattern is made once."""

    def __init__(self, n: int) -> None:
        ones = np.ones(n)
        layout = scipy.sparse.csr_array(
            scipy.sparse.diags_array([ones[1:], 2 * ones, 3 * ones[1:]], offsets=[-1, 0, 1])
        )
        self.shape, self.indices, self.indptr = layout.shape, layout.indices, layout.indptr
        self.lower, self.diagonal, self.upper = (np.flatnonzero(layout.data == k) for k in (1.0, 2.0, 3.0))

    def values(self, x: np.ndarray) -> np.ndarray:
        diagonal, off = _diagonals(x)
        data = np.empty(len(self.indices))
        data[self.diagonal] = diagonal
        data[self.lower] = off
        data[self.upper] = off
        return data

    def __call__(self, x: np.ndarray) -> scipy.sparse.csr_array:
        return scipy.sparse.csr_array((self.values(x), self.indices, self.indptr), shape=self.shape)


class NumpyCSRTemplate(NumpyCSR):
    """The same values into a csr_array made from a checked template, as graphc's compiled function does."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.make = csr_maker(self.shape, self.indices, self.indptr)

    def __call__(self, x: np.ndarray) -> scipy.sparse.csr_array:
        return self.make(self.values(x))


def casadi_setup(n: int, x: np.ndarray) -> Callable[[], Callable[[], object]]:
    def setup() -> Callable[[], object]:
        ca = peers.load("casadi")
        v = ca.SX.sym("x", n)
        f = ca.sum1(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1.0 - v[:-1]) ** 2)
        hessian, _ = ca.hessian(f, v)
        fn = ca.Function("hessian", [v], [hessian])
        return lambda: fn(x)

    return setup


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
    n = SIZES[options.scale]
    x = np.random.default_rng(6).uniform(-1.5, 1.5, n)
    expected = scipy.optimize.rosen_hess(x)
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_hessian(x)),
        Impl(harness.NUMPY_OUT, lambda: partial(NumpyPreallocated(n), x), note="array made once; returns it"),
        Impl("scipy rosen_hess", lambda: lambda: scipy.optimize.rosen_hess(x)),
        *harness.graphc_impls(lambda: graphc_build(n), [x], note=NOTE),
        Impl(peers.JAX, peers.jax_setup(jax_fn, [x]), note="jit(hessian)", requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, [x]), note="torch.func.hessian", requires="torch"),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build, [x]), note="jacobian of grad", requires="pytensor"),
    ]
    sparse_expected = scipy.sparse.csr_array(expected)
    checks.verify(NumpyCSR(n)(x), (sparse_expected,), 1e-13)
    sparse_impls = [
        Impl(harness.NUMPY, lambda: partial(NumpyCSR(n), x), note="CSR, cached pattern, csr_array constructor"),
        Impl("NumPy CSR, template", lambda: partial(NumpyCSRTemplate(n), x), note="csr_array from a template"),
        *harness.graphc_impls(lambda: graphc_sparse_build(n), [x], note=SPARSE_NOTE),
        Impl(peers.CASADI, casadi_setup(n, x), note="SX hessian, DM result", requires="casadi"),
    ]
    return [
        Case("W6", f"Rosenbrock Hessian N={n}", (expected,), impls),
        Case("W6", f"Rosenbrock Hessian N={n}, sparse", (sparse_expected,), sparse_impls),
    ]


if __name__ == "__main__":
    from graphc.cli import main

    sys.exit(main(["bench", "--only", "W6", *sys.argv[1:]]))
