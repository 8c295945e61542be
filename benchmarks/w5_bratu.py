"""W5: the Jacobian of the 1-D Bratu residual `(u[i-1] - 2u[i] + u[i+1]) / h^2 + lam exp(u[i])`, zero boundary.

n = 2000 (tiny: 50), lam = 1, h = 1 / (n + 1). The Jacobian is tridiagonal: 1/h^2 off
the diagonal, -2/h^2 + lam exp(u) on it. The baseline ("NumPy") is the hand-written
scipy CSR matrix with its pattern (and constant off-diagonals) made once, built per call
with scipy's csr_array constructor; "NumPy CSR, template" builds the same matrix the
way graphc's compiled function does (a prebuilt template's attributes with fresh data:
scipy's constructor re-checks the index arrays on every call). graphc computes
gc.sparse_jacobian: pattern from the graph, 3 colors, one compressed JVP, and the
values recovered by a gather that the recovery pushes down to the constant Laplacian
and lam exp(u) (autodiff/recovery.py), so its compiled function is exp plus an
index_add into the constant values. "graphc llvm dense" is gc.jacobian (the n x n
result, as JAX's jacfwd, torch.func.jacfwd and PyTensor give). CasADi: its sparse SX
Jacobian, the result a DM (not converted to scipy). Verification compares J minus the
Laplacian part (whose 1/h^2 ~ 4e6 would hide errors in lam exp(u)), as sparse matrices.
scipy's sparse finite differences (approx_derivative with the tridiagonal sparsity, 3
colors) check the hand version and are timed too, at their own tolerance.
Run alone: `python -m benchmarks.w5_bratu [--quick]`.
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

SIZES = {"tiny": 50, "quick": 2000, "full": 2000}
LAM = 1.0
FD_RTOL = 1e-4
NOTE = "gc.sparse_jacobian: 3 colors, CSR out"


def residual(u: np.ndarray, h2: float) -> np.ndarray:
    p = np.concatenate(([0.0], u, [0.0]))
    return (p[:-2] - 2.0 * u + p[2:]) / h2 + LAM * np.exp(u)


def pattern(n: int) -> scipy.sparse.csr_array:
    """The tridiagonal Laplacian part, 1/h^2 (1, -2, 1), as CSR: the Jacobian's pattern."""
    h2 = (1.0 / (n + 1)) ** 2
    ones = np.ones(n)
    return scipy.sparse.csr_array(scipy.sparse.diags_array([ones[1:], -2.0 * ones, ones[1:]], offsets=[-1, 0, 1]) / h2)


class NumpyCSR:
    """The Jacobian as a scipy CSR array: pattern and off-diagonal values made once, the diagonal per call."""

    def __init__(self, n: int) -> None:
        laplacian = pattern(n)
        self.shape = laplacian.shape
        self.indices, self.indptr = laplacian.indices, laplacian.indptr
        self.template = laplacian.data.copy()
        rows = np.repeat(np.arange(n), np.diff(laplacian.indptr))
        self.diagonal = np.flatnonzero(laplacian.indices == rows)
        self.base = -2.0 * (n + 1) ** 2

    def values(self, u: np.ndarray) -> np.ndarray:
        data = self.template.copy()
        data[self.diagonal] = self.base + LAM * np.exp(u)
        return data

    def __call__(self, u: np.ndarray) -> scipy.sparse.csr_array:
        return scipy.sparse.csr_array((self.values(u), self.indices, self.indptr), shape=self.shape)


class NumpyCSRTemplate(NumpyCSR):
    """The same values into a csr_array made from a checked template (no per-call index checks), as graphc does."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.make = csr_maker(self.shape, self.indices, self.indptr)

    def __call__(self, u: np.ndarray) -> scipy.sparse.csr_array:
        return self.make(self.values(u))


def csr_maker(
    shape: tuple[int, int], indices: np.ndarray, indptr: np.ndarray
) -> Callable[[np.ndarray], scipy.sparse.csr_array]:
    """data -> csr_array with these (shared) index arrays: a template's attributes copied, the data replaced."""
    template = scipy.sparse.csr_array((np.zeros(len(indices)), indices, indptr), shape=shape)
    _ = template.has_canonical_format
    fields = dict(vars(template))

    def make(data: np.ndarray) -> scipy.sparse.csr_array:
        result = scipy.sparse.csr_array.__new__(scipy.sparse.csr_array)
        result.__dict__.update(fields)
        result.data = data
        return result

    return make


def numpy_dense(u: np.ndarray) -> np.ndarray:
    n = len(u)
    inverse_h2 = float((n + 1) ** 2)
    jac = np.zeros((n, n))
    jac.flat[:: n + 1] = -2.0 * inverse_h2 + LAM * np.exp(u)
    jac.flat[1 :: n + 1] = inverse_h2
    jac.flat[n :: n + 1] = inverse_h2
    return jac


def finite_differences(u: np.ndarray) -> Any:
    """scipy's sparse 3-point differences: 3 colors, so 6 residual evaluations."""
    from scipy.optimize._numdiff import approx_derivative

    h2 = (1.0 / (len(u) + 1)) ** 2
    return approx_derivative(lambda v: residual(v, h2), u, method="3-point", sparsity=pattern(len(u)))


def bratu_graph(n: int) -> tuple[gc.Tensor, gc.Tensor]:
    u = gc.var("u", (n,))
    h = 1.0 / (n + 1)
    p = gc.concatenate([np.zeros(1), u, np.zeros(1)])
    return u, (p[:-2] - 2.0 * p[1:-1] + p[2:]) / (h * h) + LAM * gc.exp(u)


def graphc_build(n: int) -> GraphcBuild:
    u, f = bratu_graph(n)
    return GraphcBuild([u], f, [gc.sparse_jacobian(f, u)], with_value=False)  # type: ignore[list-item]


def graphc_dense_build(n: int) -> GraphcBuild:
    u, f = bratu_graph(n)
    return GraphcBuild([u], f, [gc.jacobian(f, u)], with_value=False)


def casadi_setup(n: int, u: np.ndarray) -> Callable[[], Callable[[], object]]:
    """CasADi's sparse Jacobian of the residual (SX), as a Function called on u; the result is a DM."""

    def setup() -> Callable[[], object]:
        ca = peers.load("casadi")
        x = ca.SX.sym("u", n)
        p = ca.vertcat(0, x, 0)
        r = (p[0:n] - 2 * x + p[2 : n + 2]) * float((n + 1) ** 2) + LAM * ca.exp(x)
        fn = ca.Function("jacobian", [x], [ca.jacobian(r, x)])
        return lambda: fn(u)

    return setup


def jax_fn(jax: Any) -> Any:
    jnp = jax.numpy

    def f(u: Any) -> Any:
        p = jnp.concatenate([jnp.zeros(1), u, jnp.zeros(1)])
        return (p[:-2] - 2.0 * u + p[2:]) * (u.shape[0] + 1) ** 2 + LAM * jnp.exp(u)

    return jax.jacfwd(f)


def torch_fn(torch: Any, u: Any) -> Any:
    def f(v: Any) -> Any:
        p = torch.nn.functional.pad(v, (1, 1))
        return (p[:-2] - 2.0 * v + p[2:]) * (v.shape[0] + 1) ** 2 + LAM * torch.exp(v)

    return torch.func.jacfwd(f)(u)


def pytensor_build(pytensor: Any) -> tuple[list[Any], list[Any]]:
    pt = pytensor.tensor
    u = pt.dvector("u")
    p = pt.concatenate([pt.zeros(1), u, pt.zeros(1)])
    f = (p[:-2] - 2.0 * u + p[2:]) * (u.shape[0] + 1) ** 2 + LAM * pt.exp(u)
    return [u], [pytensor.gradient.jacobian(f, u, vectorize=True)]


def cases(options: harness.Options) -> list[Case]:
    n = SIZES[options.scale]
    u = 0.5 * np.sin(np.pi * np.linspace(0.0, 1.0, n + 2)[1:-1])
    expected = NumpyCSR(n)(u)
    laplacian = pattern(n)
    view = partial(np.subtract, laplacian)  # 1/h^2 ~ 4e6 would hide errors in the lam exp(u) diagonal
    checks.verify(finite_differences(u), (expected,), FD_RTOL, view)
    checks.verify(numpy_dense(u), (expected,), 1e-7, view)
    checks.verify(NumpyCSRTemplate(n)(u), (expected,), 1e-15, view)
    impls = [
        Impl(harness.NUMPY, lambda: partial(NumpyCSR(n), u), note="scipy CSR, cached pattern, csr_array constructor"),
        Impl("NumPy CSR, template", lambda: partial(NumpyCSRTemplate(n), u), note="csr_array from a template"),
        Impl("NumPy dense", lambda: lambda: numpy_dense(u), note="dense n x n"),
        Impl(
            "scipy sparse FD",
            lambda: lambda: finite_differences(u),
            rtol=FD_RTOL,
            note=f"3-point differences, rtol {FD_RTOL:g}",
        ),
        *harness.graphc_impls(lambda: graphc_build(n), [u], note=NOTE),
        harness.graphc_impl("llvm", lambda: graphc_dense_build(n), [u], "gc.jacobian, dense", "graphc llvm dense"),
        Impl(peers.CASADI, casadi_setup(n, u), note="SX jacobian, DM result", requires="casadi"),
        Impl(peers.JAX, peers.jax_setup(jax_fn, [u]), note="jit(jacfwd), dense", requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, [u]), note="torch.func.jacfwd, dense", requires="torch"),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build, [u]), note="vectorized, dense", requires="pytensor"),
    ]
    # rtol: one rounding of a diagonal entry (~8e6, ulp 2e-9) is 1e-9 of the view's max (~1.6)
    return [Case("W5", f"Bratu n={n}", (expected,), impls, rtol=1e-7, view=view)]


if __name__ == "__main__":
    from graphc.cli import main

    sys.exit(main(["bench", "--only", "W5", *sys.argv[1:]]))
