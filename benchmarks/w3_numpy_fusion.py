"""W3 on the NumPy backend: optimize off vs on (fusion) vs hand-written NumPy, in one run.

Run: PYTHONPATH=. python benchmarks/w3_numpy_fusion.py [--n 10000000] [--repeats 7]

W3 (BENCHMARKS.md): sum(tanh(x*y)*exp(-x**2) + log1p(y*y)) and its derivative in x,
float64. Variants, all returning fresh arrays (a result never aliases another call's):
  hand           NumPy as a careful engineer writes it, temporaries allocated per op
  hand prealloc  the same with out= into buffers allocated once (the output is fresh)
  optimize off   gc.compile(..., backend="numpy", optimize=False)
  rewrites only  the default pipeline without fuse (to separate fusion from the rewrites)
  optimize on    gc.compile(..., backend="numpy"): rewrites, then fusion
Results are checked first: every variant against hand NumPy (to rounding), and the fused
function against the interpreter running its own program (bit for bit). Timings are
medians of --repeats calls per variant, variants interleaved round by round, after one
warm-up call each; a 32 MiB block is allocated and freed first (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import graphc as gc
from graphc.backends import numpy_source
from graphc.backends.interpreter import run_program
from graphc.ir import Graph
from graphc.passes import DEFAULT_PIPELINE, fuse, run_pipeline
from graphc.schedule import schedule

Fn = Callable[[np.ndarray, np.ndarray], tuple[object, np.ndarray]]


def hand(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    t = np.tanh(x * y)
    e = np.exp(-(x * x))
    te = t * e
    value = np.sum(te + np.log1p(y * y))
    grad = e * y * (1.0 - t * t) - 2.0 * x * te
    return value, grad


def hand_prealloc(n: int) -> Fn:
    """Hand NumPy with four buffers allocated once; 17 ufunc passes, the gradient fresh."""
    t, e, a, b = (np.empty(n) for _ in range(4))

    def run(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        np.multiply(x, y, out=a)
        np.tanh(a, out=t)
        np.multiply(x, x, out=a)
        np.negative(a, out=a)
        np.exp(a, out=e)
        np.multiply(t, e, out=b)  # tanh * exp
        np.multiply(y, y, out=a)
        np.log1p(a, out=a)
        np.add(b, a, out=a)
        value = np.sum(a)
        grad = np.empty(n)
        np.multiply(t, t, out=a)
        np.subtract(1.0, a, out=a)
        np.multiply(a, y, out=a)
        np.multiply(a, e, out=a)
        np.multiply(x, 2.0, out=t)
        np.multiply(t, b, out=t)
        np.subtract(a, t, out=grad)
        return value, grad

    return run


def w3_graph(n: int) -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    x, y = gc.var("x", (n,)), gc.var("y", (n,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-(x**2)) + gc.log1p(y * y))
    return [x, y], [f, gc.grad(f, x)]


def rewrites_only(inputs: list[gc.Tensor], outputs: list[gc.Tensor]) -> Fn:
    """The default pipeline less fuse, rendered by the NumPy backend."""
    passes = tuple(p for p in DEFAULT_PIPELINE if p is not fuse)
    graph, _ = run_pipeline(Graph(outputs, inputs), passes)
    return numpy_source.build(schedule(graph)).function  # type: ignore[return-value]


def check(variants: dict[str, Fn], fused: gc.compile, x: np.ndarray, y: np.ndarray) -> None:  # type: ignore[valid-type]
    want_value, want_grad = hand(x, y)
    for name, fn in variants.items():
        value, grad = fn(x, y)
        assert np.allclose(value, want_value, rtol=1e-9), (name, value, want_value)
        assert np.allclose(grad, want_grad, rtol=1e-9, atol=1e-12), name
    got = fused(x, y)  # type: ignore[operator]
    reference = run_program(fused.program, [x, y])  # type: ignore[attr-defined]
    assert all(g.tobytes() == r.tobytes() for g, r in zip(got, reference, strict=True)), "fused != interpreter"
    again = fused(x, y)  # type: ignore[operator]
    assert again[1] is not got[1] and not np.shares_memory(again[1], got[1])


def timings(variants: dict[str, Fn], x: np.ndarray, y: np.ndarray, repeats: int) -> dict[str, list[float]]:
    for fn in variants.values():
        fn(x, y)  # warm-up: first-touch of buffers, caches
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn(x, y)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**7)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    block = np.ones(32 * 2**20 // 8)  # warm the allocator (BENCHMARKS.md)
    del block
    inputs, outputs = w3_graph(args.n)
    fused = gc.compile(inputs, outputs, backend="numpy")
    variants: dict[str, Fn] = {
        "hand": hand,
        "hand prealloc": hand_prealloc(args.n),
        "optimize off": gc.compile(inputs, outputs, backend="numpy", optimize=False),  # type: ignore[dict-item]
        "rewrites only": rewrites_only(inputs, outputs),
        "optimize on": fused,  # type: ignore[dict-item]
    }
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=args.n), rng.normal(size=args.n)
    check(variants, fused, x, y)
    times = timings(variants, x, y, args.repeats)
    base = statistics.median(times["hand prealloc"])
    print(f"W3, N = {args.n}, float64, median of {args.repeats} (numpy {np.__version__})")
    print(f"{'variant':<16} {'median':>10} {'min':>10} {'/ hand prealloc':>16}")
    for name, ts in times.items():
        median = statistics.median(ts)
        print(f"{name:<16} {median * 1e3:>8.1f}ms {min(ts) * 1e3:>8.1f}ms {median / base:>15.2f}x")


if __name__ == "__main__":
    main()
