"""The llvm backend against the numpy backend and hand-written NumPy: W1, W2, W3, W7, W8, call overhead.

Run: `PYTHONPATH=. python benchmarks/llvm_bench.py [--quick]`. Every case checks its
result first (against the hand-written NumPy and, for W2, scipy), then times each
system in the same run; the table reports medians and the ratio to hand-written NumPy
(below 1: faster). W8 measures time to first result (build + differentiate + optimize
+ compile + first call) with an empty compile cache, then again with the cache warm.
Imports numpy, scipy and graphc only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import graphc as gc


@dataclass
class Row:
    case: str
    system: str
    seconds: float
    note: str = ""


def warm_allocator() -> None:
    """Allocate and free one 32 MiB block: a fresh process's first large frees skew later timings."""
    block = np.ones(4 * 2**20)
    del block


def median_time(fn: Callable[[], object], budget: float) -> float:
    """Median seconds per call over batches sized to take about 1/20 of `budget` each."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(budget / 20 / once))
    samples = []
    deadline = time.perf_counter() + budget
    while len(samples) < 5 or (time.perf_counter() < deadline and len(samples) < 50):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def check(got: object, expected: object, rtol: float) -> None:
    for g, e in zip(got, expected, strict=True):  # type: ignore[call-overload]
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * 1e-3 * float(np.max(np.abs(e))))


def compare(
    case: str, systems: dict[str, Callable[[], object]], expected: object, budget: float, rtol: float = 1e-10
) -> list[Row]:
    rows = []
    for name, fn in systems.items():
        check(fn(), expected, rtol)
        rows.append(Row(case, name, median_time(fn, budget)))
    return rows


def compiled(inputs: list, outputs: list, backend: str, **options: object) -> gc.compile:
    return gc.compile(inputs, outputs, backend=backend, **options)


# --- W1: MLP loss and gradients ---------------------------------------------------------------------


def w1(budget: float) -> list[Row]:
    rng = np.random.default_rng(1)
    X, labels = rng.normal(size=(256, 64)), rng.integers(0, 10, 256)
    W1, b1 = rng.normal(size=(64, 128)) / 8, rng.normal(size=128) / 8
    W2, b2 = rng.normal(size=(128, 10)) / 11, rng.normal(size=10) / 8
    values = [X, labels, W1, b1, W2, b2]

    def numpy_mlp() -> tuple:
        h = np.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(256), labels]))
        dz = p
        dz[np.arange(256), labels] -= 1.0
        dz /= 256
        dh = (dz @ W2.T) * (1 - h * h)
        return loss, X.T @ dh, dh.sum(axis=0), h.T @ dz, dz.sum(axis=0)

    vs = [gc.var("X", (256, 64)), gc.var("labels", (256,), dtype="int64"), gc.var("W1", (64, 128)),
          gc.var("b1", (128,)), gc.var("W2", (128, 10)), gc.var("b2", (10,))]  # fmt: skip
    logits = gc.tanh(vs[0] @ vs[2] + vs[3]) @ vs[4] + vs[5]
    loss = -gc.mean(gc.sum(gc.log_softmax(logits) * gc.one_hot(vs[1], 10), axis=1))
    outputs = [loss, *gc.grad(loss, vs[2:])]
    expected = numpy_mlp()
    systems = {"NumPy (hand)": numpy_mlp}
    for backend in ("numpy", "llvm"):
        fn = compiled(vs, outputs, backend)
        systems[f"graphc {backend}"] = lambda fn=fn: fn(*values)
    return compare("W1 MLP 256x64x128x10", systems, expected, budget)


# --- W2: Rosenbrock ----------------------------------------------------------------------------------------


def numpy_rosen(x: np.ndarray) -> tuple[float, np.ndarray]:
    head = x[:-1]
    a = x[1:] - head * head
    b = 1.0 - head
    g = np.empty_like(x)
    g[:-1] = -400.0 * head * a - 2.0 * b
    g[-1] = 0.0
    g[1:] += 200.0 * a
    return 100.0 * (a @ a) + b @ b, g


def w2(n: int, budget: float) -> list[Row]:
    import scipy.optimize

    x_value = np.random.default_rng(2).uniform(-1.5, 1.5, n)
    expected = (scipy.optimize.rosen(x_value), scipy.optimize.rosen_der(x_value))
    x = gc.var("x", (n,))
    f = gc.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    outputs = [f, gc.grad(f, x)]
    systems = {"NumPy (hand)": lambda: numpy_rosen(x_value)}
    for backend in ("numpy", "llvm"):
        fn = compiled([x], outputs, backend)
        systems[f"graphc {backend}"] = lambda fn=fn: fn(x_value)
    return compare(f"W2 Rosenbrock N={n:g}", systems, expected, budget)


# --- W3: elementwise chain -------------------------------------------------------------------------------------


def w3(n: int, budget: float) -> list[Row]:
    rng = np.random.default_rng(3)
    x_value, y_value = rng.normal(size=n), rng.normal(size=n)

    def numpy_w3() -> tuple:
        t = np.tanh(x_value * y_value)
        e = np.exp(-x_value * x_value)
        value = np.sum(t * e + np.log1p(y_value * y_value))
        grad = (1 - t * t) * y_value * e - 2 * x_value * t * e
        return value, grad

    x, y = gc.var("x", (n,)), gc.var("y", (n,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-(x**2)) + gc.log1p(y * y))
    outputs = [f, gc.grad(f, x)]
    systems = {"NumPy (hand)": numpy_w3}
    for backend in ("numpy", "llvm"):
        fn = compiled([x, y], outputs, backend)
        systems[f"graphc {backend}"] = lambda fn=fn: fn(x_value, y_value)
    return compare(f"W3 elementwise N={n:g}", systems, numpy_w3(), budget, rtol=1e-9)


# --- W7: RNN through scan --------------------------------------------------------------------------------------


def w7(budget: float) -> list[Row]:
    if not hasattr(gc, "scan"):
        return [Row("W7 RNN BPTT", "graphc llvm", float("nan"), "gc.scan does not exist")]
    rng = np.random.default_rng(7)
    T, batch, hidden, features = 50, 32, 64, 16
    xs_value = rng.normal(size=(T, batch, features))
    W_value, U_value = rng.normal(size=(hidden, hidden)) / 10, rng.normal(size=(features, hidden)) / 4
    b_value = rng.normal(size=hidden) / 10
    h0 = np.zeros((batch, hidden))

    def numpy_rnn() -> tuple:
        hs = [h0]
        for t in range(T):
            hs.append(np.tanh(hs[-1] @ W_value + xs_value[t] @ U_value + b_value))
        loss = np.mean(hs[-1] ** 2)
        dh = 2 * hs[-1] / hs[-1].size
        gW, gU, gb = np.zeros_like(W_value), np.zeros_like(U_value), np.zeros_like(b_value)
        for t in range(T - 1, -1, -1):
            da = dh * (1 - hs[t + 1] ** 2)
            gW += hs[t].T @ da
            gU += xs_value[t].T @ da
            gb += da.sum(axis=0)
            dh = da @ W_value.T
        return loss, gW, gU, gb

    xs, W, U, b = (gc.var(n, v.shape) for n, v in [("xs", xs_value), ("W", W_value), ("U", U_value), ("b", b_value)])

    def step(h: gc.Tensor, x_t: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = gc.tanh(h @ W + x_t @ U + b)
        return h, h

    h_T, _ = gc.scan(step, gc.const(h0), xs)
    loss = gc.mean(h_T**2)
    outputs = [loss, *gc.grad(loss, [W, U, b])]
    values = [xs_value, W_value, U_value, b_value]
    systems: dict[str, Callable[[], object]] = {"NumPy (hand)": numpy_rnn}
    rows = []
    for backend in ("numpy", "llvm"):
        try:
            fn = compiled([xs, W, U, b], outputs, backend)
        except NotImplementedError as exc:
            rows.append(Row("W7 RNN BPTT", f"graphc {backend}", float("nan"), str(exc)))
            continue
        systems[f"graphc {backend}"] = lambda fn=fn: fn(*values)
    return compare("W7 RNN BPTT", systems, numpy_rnn(), budget) + rows


# --- W8: compile-time scaling ----------------------------------------------------------------------------------


def w8_first_result(k: int, backend: str, cache_dir: str) -> float:
    start = time.perf_counter()
    x = gc.var("x", (1000,))
    y = x
    for _ in range(k):
        y = gc.sin(y) * 1.0001 + 0.1 * y
    f = gc.sum(y)
    fn = (
        compiled([x], [f, gc.grad(f, x)], backend, cache_dir=cache_dir)
        if backend == "llvm"
        else compiled([x], [f, gc.grad(f, x)], backend)
    )
    fn(np.linspace(-1, 1, 1000))
    return time.perf_counter() - start


def w8(sizes: tuple[int, ...]) -> list[Row]:
    rows = []
    for k in sizes:
        with tempfile.TemporaryDirectory(prefix="graphc-bench-") as cache_dir:
            rows.append(Row(f"W8 first result K={k}", "graphc numpy", w8_first_result(k, "numpy", cache_dir)))
            rows.append(Row(f"W8 first result K={k}", "graphc llvm (cold)", w8_first_result(k, "llvm", cache_dir)))
            rows.append(Row(f"W8 first result K={k}", "graphc llvm (warm)", w8_first_result(k, "llvm", cache_dir)))
    return rows


# --- call overhead -----------------------------------------------------------------------------------------------


def overhead(budget: float) -> list[Row]:
    x = gc.var("x", (10,))
    value = np.arange(10.0)
    systems: dict[str, Callable[[], object]] = {"NumPy (hand)": lambda: (2 * value,)}
    for backend in ("numpy", "llvm"):
        fn = compiled([x], [2 * x], backend)
        systems[f"graphc {backend}"] = lambda fn=fn: fn(value)
    return compare("call overhead f(x)=2x, N=10", systems, (2 * value,), budget)


# --- report -------------------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    lines = ["| case | system | median | vs NumPy (hand) |", "|---|---|---|---|"]
    baseline = {r.case: r.seconds for r in rows if r.system == "NumPy (hand)"}
    for r in rows:
        ratio = f"{r.seconds / baseline[r.case]:.2f}x" if r.case in baseline and r.seconds == r.seconds else ""
        note = f" ({r.note})" if r.note else ""
        lines.append(f"| {r.case} | {r.system}{note} | {_format(r.seconds)} | {ratio} |")
    return "\n".join(lines)


def _format(seconds: float) -> str:
    if seconds != seconds:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing budgets, W8 up to K=100")
    args = parser.parse_args(argv)
    budget = 0.3 if args.quick else 1.5
    warm_allocator()
    rows = overhead(budget)
    rows += w1(budget)
    rows += w2(10, budget)
    rows += w2(10**6, budget)
    rows += w3(10**7, budget * 2)
    rows += w7(budget)
    rows += w8((10, 100) if args.quick else (10, 100, 1000))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
