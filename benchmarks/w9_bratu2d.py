"""W9: the sparse Jacobian of the 2-D Bratu residual on a 300 x 300 grid (90,000 unknowns, 5-point stencil).

r = (U[i-1,j] + U[i+1,j] + U[i,j-1] + U[i,j+1] - 4 U[i,j]) / h^2 + lam exp(U[i,j]), zero
boundary, h = 1 / (N + 1), lam = 1. The Jacobian (90,000 x 90,000, 448,800 stored
entries) is the 5-point Laplacian plus lam exp(u) on the diagonal; dense it would take
65 GB, so JAX, PyTorch and PyTensor (whose Jacobians are dense) cannot run it. The
baseline ("NumPy") is the hand-written CSR matrix with its pattern and constant
off-diagonal values made once (csr_array constructor per call); "NumPy CSR, template"
builds the same matrix from a template, as graphc does (see W5). scipy's
approx_derivative with the pattern (grouped columns, 2-point differences) and CasADi's
sparse SX Jacobian are the peers. graphc computes gc.sparse_jacobian: the pattern found
from the graph, a coloring, one compressed JVP and the values recovered by a gather
pushed down to the constant Laplacian and lam exp(u). Verification compares J minus the
Laplacian (1/h^2 ~ 9e4), as sparse matrices.
Run alone: `python -m benchmarks.w9_bratu2d [--quick]`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse

import graphc as gc
from benchmarks import checks, harness, peers
from benchmarks.harness import Case, GraphcBuild, Impl
from benchmarks.w5_bratu import csr_maker

SIZES = {"tiny": 12, "quick": 300, "full": 300}
LAM = 1.0
FD_RTOL = 1e-5
NOTE = "gc.sparse_jacobian, CSR out"


def residual(u: np.ndarray) -> np.ndarray:
    """The residual of the flattened grid u (N*N,)."""
    n = round(float(np.sqrt(u.size)))
    p = np.pad(u.reshape(n, n), 1)
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * p[1:-1, 1:-1]
    return (lap * float((n + 1) ** 2) + LAM * np.exp(u.reshape(n, n))).reshape(-1)


def laplacian(n: int) -> scipy.sparse.csr_array:
    """The 5-point Laplacian / h^2 on the n x n grid (row-major unknowns), as CSR: the Jacobian's pattern."""
    ones = np.ones(n)
    second = scipy.sparse.diags_array([ones[1:], -2.0 * ones, ones[1:]], offsets=[-1, 0, 1])
    lap = scipy.sparse.kronsum(second, second, format="csr") * float((n + 1) ** 2)
    result = scipy.sparse.csr_array(lap)
    result.sort_indices()
    return result


class NumpyCSR:
    """The hand CSR Jacobian: pattern and Laplacian values made once, the diagonal written per call."""

    def __init__(self, n: int) -> None:
        lap = laplacian(n)
        self.shape, self.indices, self.indptr = lap.shape, lap.indices, lap.indptr
        self.template = lap.data.copy()
        rows = np.repeat(np.arange(n * n), np.diff(lap.indptr))
        self.diagonal = np.flatnonzero(lap.indices == rows)
        self.base = -4.0 * (n + 1) ** 2

    def values(self, u: np.ndarray) -> np.ndarray:
        data = self.template.copy()
        data[self.diagonal] = self.base + LAM * np.exp(u.reshape(-1))
        return data

    def __call__(self, u: np.ndarray) -> scipy.sparse.csr_array:
        return scipy.sparse.csr_array((self.values(u), self.indices, self.indptr), shape=self.shape)


class NumpyCSRTemplate(NumpyCSR):
    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.make = csr_maker(self.shape, self.indices, self.indptr)

    def __call__(self, u: np.ndarray) -> scipy.sparse.csr_array:
        return self.make(self.values(u))


def finite_differences(u: np.ndarray, sparsity: scipy.sparse.csr_array) -> Any:
    """scipy's sparse 2-point differences with the known pattern."""
    from scipy.optimize._numdiff import approx_derivative

    return approx_derivative(residual, u.reshape(-1), method="2-point", sparsity=sparsity)


def graphc_build(n: int) -> GraphcBuild:
    u = gc.var("u", (n, n))
    zero_row, zero_col = np.zeros((1, n)), np.zeros((n + 2, 1))
    p = gc.concatenate([zero_col, gc.concatenate([zero_row, u, zero_row], axis=0), zero_col], axis=1)
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * u
    f = lap * float((n + 1) ** 2) + LAM * gc.exp(u)
    return GraphcBuild([u], f, [gc.sparse_jacobian(f, u)], with_value=False)  # type: ignore[list-item]


def casadi_setup(n: int, u: np.ndarray) -> Callable[[], Callable[[], object]]:
    """CasADi's sparse SX Jacobian of the same residual; the result is a DM."""

    def setup() -> Callable[[], object]:
        ca = peers.load("casadi")
        x = ca.SX.sym("u", n * n)
        grid = ca.reshape(x, n, n)  # column-major in CasADi: the transpose of the row-major grid, same stencil
        p = ca.SX.zeros(n + 2, n + 2)
        p[1:-1, 1:-1] = grid
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * grid
        r = ca.reshape(lap * float((n + 1) ** 2) + LAM * ca.exp(grid), n * n, 1)
        fn = ca.Function("jacobian", [x], [ca.jacobian(r, x)])
        flat = u.reshape(-1)
        return lambda: fn(flat)

    return setup


def cases(options: harness.Options) -> list[Case]:
    n = SIZES[options.scale]
    grid = np.linspace(0.0, 1.0, n + 2)[1:-1]
    u = 0.5 * np.outer(np.sin(np.pi * grid), np.sin(np.pi * grid))
    expected = NumpyCSR(n)(u)
    lap = laplacian(n)
    view = partial(np.subtract, lap)  # 1/h^2 ~ 9e4 would hide errors in the lam exp(u) diagonal
    checks.verify(finite_differences(u, lap), (expected,), FD_RTOL, view)
    checks.verify(NumpyCSRTemplate(n)(u), (expected,), 1e-15, view)
    impls = [
        Impl(harness.NUMPY, lambda: partial(NumpyCSR(n), u), note="hand CSR, cached pattern, csr_array constructor"),
        Impl("NumPy CSR, template", lambda: partial(NumpyCSRTemplate(n), u), note="csr_array from a template"),
        Impl(
            "scipy approx_derivative",
            lambda: lambda: finite_differences(u, lap),
            rtol=FD_RTOL,
            note=f"sparsity=pattern, 2-point, rtol {FD_RTOL:g}",
        ),
        *harness.graphc_impls(lambda: graphc_build(n), [u], note=NOTE),
        Impl(peers.CASADI, casadi_setup(n, u), note="SX jacobian, DM result", requires="casadi"),
    ]
    result = Case("W9", f"2-D Bratu {n}x{n}", (expected,), impls, rtol=1e-9, view=view)
    result.notes.append("W9: dense Jacobians (JAX, PyTorch, PyTensor) would need 65 GB: not run")
    return [result]


if __name__ == "__main__":
    from graphc.cli import main

    sys.exit(main(["bench", "--only", "W9", *sys.argv[1:]]))
