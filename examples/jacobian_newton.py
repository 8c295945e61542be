"""Jacobians and Hessians as compiled graphs: Newton's method, twice.

1. Minimize the n-dimensional Rosenbrock function with Newton's method: gc.grad and
   gc.hessian build the gradient and the Hessian as graphs; one compiled function returns
   f, its gradient and its Hessian; NumPy solves H p = -g (shifting H by mu*I where it is not
   positive definite) and a backtracking line search picks the step length.
2. Solve a nonlinear system F(x) = 0 of three equations in three unknowns (Burden & Faires'
   classic, root (1/2, 0, -pi/6)) with Newton's method on gc.jacobian(F, x).

Each iteration prints the objective or the residual norm: watch the digits double once
Newton's quadratic convergence sets in.

    python examples/jacobian_newton.py
    python examples/jacobian_newton.py --dim 10 --backend numpy
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import add_backend_flag, compile_with_fallback, pick_backend

import graphc as gc


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=2, help="Rosenbrock dimension n >= 2 (default 2)")
    add_backend_flag(parser)
    parser.add_argument("--tol", type=float, default=1e-10, help="stop when the gradient/residual norm is below this")
    parser.add_argument("--max-iter", type=int, default=100, help="iteration limit for each problem (default 100)")
    return parser.parse_args()


# --- 1. Rosenbrock, with the compiled Hessian ------------------------------------------------


def rosenbrock(x: gc.Tensor) -> gc.Tensor:
    """sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2: minimum 0 at x = (1, ..., 1)."""
    head = x[:-1]
    tail = x[1:]
    return gc.sum(100.0 * (tail - head**2) ** 2 + (1.0 - head) ** 2)


def backtrack(f_of: object, x: np.ndarray, f: float, g: np.ndarray, p: np.ndarray) -> float:
    """The first t in 1, 1/2, 1/4, ... with sufficient decrease (Armijo, c = 1e-4)."""
    t = 1.0
    while t > 1e-12 and f_of(x + t * p) > f + 1e-4 * t * float(g @ p):  # type: ignore[operator]
        t *= 0.5
    return t


def newton_direction(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve (H + mu I) p = -g with the smallest mu in 0, 1e-3, 1e-2, ... that makes H + mu I positive definite."""
    scale = max(float(np.abs(np.diag(h)).max()), 1.0)
    mu = 0.0
    while True:
        try:
            lower = np.linalg.cholesky(h + mu * np.eye(len(g)))
        except np.linalg.LinAlgError:
            mu = max(10.0 * mu, 1e-3 * scale)
            continue
        return -np.linalg.solve(lower.T, np.linalg.solve(lower, g))


def newton_minimize(dim: int, backend: str, tol: float, max_iter: int) -> bool:
    x = gc.var("x", shape=(dim,))
    f = rosenbrock(x)
    start = time.perf_counter()
    f_grad_hess = compile_with_fallback([x], [f, gc.grad(f, x), gc.hessian(f, x)], backend)
    f_only = compile_with_fallback([x], f, backend)
    seconds = time.perf_counter() - start
    print(f"compiled f, grad f and the {dim}x{dim} Hessian ({f_grad_hess.backend}) in {seconds:.2f} s")

    point = np.full(dim, -1.2)
    point[1::2] = 1.0  # the classic start (-1.2, 1, -1.2, 1, ...)
    print(f"{'iter':>4} {'f(x)':>12} {'|grad f|':>10} {'step':>6}")
    for it in range(max_iter + 1):
        value, g, h = f_grad_hess(point)
        value = float(value)
        gnorm = float(np.linalg.norm(g))
        if gnorm < tol:
            print(f"{it:>4} {value:>12.4e} {gnorm:>10.2e}")
            where = "the global minimum" if value < 1e-12 else "a local minimum (Rosenbrock has one for n >= 4)"
            shown = np.array2string(point, precision=8, threshold=8)
            print(f"converged to {where} in {it} Newton iterations: x = {shown}")
            return True
        p = newton_direction(h, g)
        t = backtrack(lambda z: float(f_only(z)), point, value, g, p)
        print(f"{it:>4} {value:>12.4e} {gnorm:>10.2e} {t:>6.3g}")
        point = point + t * p
    print(f"no convergence in {max_iter} iterations")
    return False


# --- 2. A nonlinear system, with the compiled Jacobian ------------------------------------------


def system(x: gc.Tensor) -> gc.Tensor:
    """F(x) = 0 for Burden & Faires, Numerical Analysis, example 10.2: root (0.5, 0, -pi/6)."""
    x0, x1, x2 = x[0], x[1], x[2]
    return gc.stack(
        [
            3.0 * x0 - gc.cos(x1 * x2) - 0.5,
            x0**2 - 81.0 * (x1 + 0.1) ** 2 + gc.sin(x2) + 1.06,
            gc.exp(-x0 * x1) + 20.0 * x2 + (10.0 * np.pi - 3.0) / 3.0,
        ]
    )


def newton_solve(backend: str, tol: float, max_iter: int) -> bool:
    x = gc.var("x", shape=(3,))
    residual = system(x)
    jac = gc.jacobian(residual, x)
    print(f"gc.jacobian(F, x) is a {jac.shape} graph of {len(gc.Graph([residual, jac]).nodes)} nodes with F")
    f_and_jac = compile_with_fallback([x], [residual, jac], backend)
    point = np.array([0.1, 0.1, -0.1])
    print(f"{'iter':>4} {'|F(x)|':>10}  x")
    for it in range(max_iter + 1):
        r, j = f_and_jac(point)
        norm = float(np.linalg.norm(r))
        print(f"{it:>4} {norm:>10.2e}  {np.array2string(point, precision=10)}")
        if norm < tol:
            error = np.abs(point - [0.5, 0.0, -np.pi / 6]).max()
            print(f"converged in {it} Newton iterations; distance to the known root {error:.1e}")
            return True
        point = point - np.linalg.solve(j, r)
    print(f"no convergence in {max_iter} iterations")
    return False


def main() -> int:
    args = parse_args()
    if args.dim < 2:
        raise SystemExit("error: --dim must be at least 2")
    backend = pick_backend(args.backend)
    print(f"== 1. Newton's method on the {args.dim}-dimensional Rosenbrock function, Hessian by gc.hessian")
    ok = newton_minimize(args.dim, backend, args.tol, args.max_iter)
    print("\n== 2. Newton's method on a 3x3 nonlinear system, Jacobian by gc.jacobian")
    ok = newton_solve(backend, args.tol, args.max_iter) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
