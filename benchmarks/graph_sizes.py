"""Graph sizes of the reference workloads W1-W8 (BENCHMARKS.md): nodes of f and of [f, derivative].

Run: PYTHONPATH=. python benchmarks/graph_sizes.py

Counts are taken before optimization: len(gc.Graph([f, *derivatives]).nodes). The
ratio of the two is the cheap-gradient constant of reverse mode (a small constant,
independent of the sizes). W7 is unrolled over its T steps in Python and W8 is K
repeated steps, until gc.scan exists. Each derivative is first checked against a
reference on a small instance, so the table describes graphs that compute the right thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import scipy.optimize

import graphc as gc

Row = tuple[str, str, gc.Tensor, list[gc.Tensor]]


def mlp(n: int = 256, d: int = 64, hidden: int = 128, classes: int = 10) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """W1: tanh(X @ W1 + b1) @ W2 + b2, mean softmax cross-entropy; grads of W1, b1, W2, b2."""
    x = gc.var("X", (n, d))
    w1, b1 = gc.var("W1", (d, hidden)), gc.var("b1", (hidden,))
    w2, b2 = gc.var("W2", (hidden, classes)), gc.var("b2", (classes,))
    labels = gc.const(np.arange(n) % classes)
    logits = gc.tanh(x @ w1 + b1) @ w2 + b2
    loss = -gc.mean(gc.sum(gc.one_hot(labels, classes) * gc.log_softmax(logits), axis=1))
    return loss, gc.grad(loss, [w1, b1, w2, b2])


def rosenbrock(x: gc.Tensor) -> gc.Tensor:
    return gc.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen(n: int) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """W2: Rosenbrock value and gradient."""
    x = gc.var("x", (n,))
    f = rosenbrock(x)
    return f, [gc.grad(f, x)]


def chain(n: int = 10**7) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """W3: sum(tanh(x*y)*exp(-x^2) + log1p(y*y)), d/dx only."""
    x, y = gc.var("x", (n,)), gc.var("y", (n,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-(x * x)) + gc.log1p(y * y))
    return f, [gc.grad(f, x)]


def dense_jacobian(n: int = 100) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """W4: the Jacobian of tanh(A @ x + b) * x."""
    x, a, b = gc.var("x", (n,)), gc.var("A", (n, n)), gc.var("b", (n,))
    f = gc.tanh(a @ x + b) * x
    return f, [gc.jacobian(f, x)]


def bratu(n: int = 2000, lam: float = 1.0) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """W5: the 1-D Bratu residual (u[i-1] - 2u[i] + u[i+1]) / h^2 + lam exp(u[i]), zero boundary."""
    u = gc.var("u", (n,))
    h = 1.0 / (n + 1)
    p = gc.concatenate([np.zeros(1), u, np.zeros(1)])
    f = (p[:-2] - 2.0 * p[1:-1] + p[2:]) / (h * h) + lam * gc.exp(u)
    return f, [gc.jacobian(f, u)]


def rosen_hessian(n: int = 100) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """W6: the Rosenbrock Hessian (forward over reverse)."""
    x = gc.var("x", (n,))
    f = rosenbrock(x)
    return f, [gc.hessian(f, x)]


def rnn(steps: int = 50, batch: int = 32, hidden: int = 64, inputs: int = 16) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """W7: h = tanh(h @ W + x_t @ U + b) unrolled over the steps, loss mean(h_T^2); grads of W, U, b."""
    w, u, b = gc.var("W", (hidden, hidden)), gc.var("U", (inputs, hidden)), gc.var("b", (hidden,))
    xs = gc.var("xs", (steps, batch, inputs))
    h = gc.const(np.zeros((batch, hidden)))
    for t in range(steps):
        h = gc.tanh(h @ w + xs[t] @ u + b)
    loss = gc.mean(h * h)
    return loss, gc.grad(loss, [w, u, b])


def repeated(k: int, n: int = 1000) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """W8: K steps x = sin(x) * 1.0001 + 0.1 * x, f = sum(x_K); its gradient."""
    x0 = gc.var("x", (n,))
    x = x0
    for _ in range(k):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    f = gc.sum(x)
    return f, [gc.grad(f, x0)]


WORKLOADS: list[tuple[str, str, Callable[[], tuple[gc.Tensor, list[gc.Tensor]]]]] = [
    ("W1", "MLP loss + 4 grads", mlp),
    ("W2", "Rosenbrock N=10, grad", lambda: rosen(10)),
    ("W2", "Rosenbrock N=10^6, grad", lambda: rosen(10**6)),
    ("W3", "elementwise chain N=10^7, d/dx", chain),
    ("W4", "tanh(A@x+b)*x n=100, Jacobian", dense_jacobian),
    ("W5", "Bratu n=2000, Jacobian (dense)", bratu),
    ("W6", "Rosenbrock N=100, Hessian", rosen_hessian),
    ("W7", "RNN T=50 unrolled, 3 grads", rnn),
    ("W8", "K=10 steps, grad", lambda: repeated(10)),
    ("W8", "K=100 steps, grad", lambda: repeated(100)),
    ("W8", "K=1000 steps, grad", lambda: repeated(1000)),
    ("W8", "K=10000 steps, grad", lambda: repeated(10000)),
]


def check_small_instances() -> None:
    """The derivatives of the table's graphs, on small sizes, against references."""
    x = gc.var("x", (10,))
    v = np.linspace(-1.5, 1.5, 10)
    f = rosenbrock(x)
    g, h = gc.evaluate([gc.grad(f, x), gc.hessian(f, x)], {x: v})
    np.testing.assert_allclose(g, scipy.optimize.rosen_der(v), rtol=1e-12)
    np.testing.assert_allclose(h, scipy.optimize.rosen_hess(v), rtol=1e-12)
    f, (jac,) = bratu(6, 2.0)
    u = np.linspace(0.1, 0.6, 6)
    h2 = (1.0 / 7) ** 2
    want = (np.diag(np.full(6, -2.0)) + np.eye(6, k=1) + np.eye(6, k=-1)) / h2 + np.diag(2.0 * np.exp(u))
    np.testing.assert_allclose(gc.evaluate(jac, {_var(jac, "u"): u}), want, rtol=1e-12)


def _var(t: gc.Tensor, name: str) -> gc.Tensor:
    """The var called `name` that `t` reaches."""
    graph = gc.Graph([t])
    (node,) = [n for n in graph.inputs if n.attr("name") == name]
    return gc.Tensor(node)


def measure() -> list[tuple[str, str, int, int, float, float]]:
    rows = []
    for wid, what, build in WORKLOADS:
        start = time.perf_counter()
        f, derivatives = build()
        seconds = time.perf_counter() - start
        n_f = len(gc.Graph([f]).nodes)
        n_all = len(gc.Graph([f, *derivatives]).nodes)
        rows.append((wid, what, n_f, n_all, n_all / n_f, seconds))
    return rows


def table(rows: list[tuple[str, str, int, int, float, float]]) -> str:
    lines = [
        "| id | workload, derivative | nodes f | nodes [f, derivative] | ratio | build + differentiate |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for wid, what, n_f, n_all, ratio, seconds in rows:
        lines.append(f"| {wid} | {what} | {n_f} | {n_all} | {ratio:.2f} | {seconds * 1e3:.0f} ms |")
    return "\n".join(lines)


def main() -> None:
    check_small_instances()
    print(table(measure()))


if __name__ == "__main__":
    main()
