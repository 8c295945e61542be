"""How the time to a sparse Jacobian grows with n: the 1-D Bratu residual (W5) at n = 10^3, 10^4, 10^5.

For each n: build the residual, gc.sparse_jacobian (pattern, coloring, compressed JVP,
recovery), gc.compile (optimizer, schedule, backend; a fresh on-disk cache for llvm), the
first call (verified against the hand CSR of W5), then the steady call. nnz = 3n - 2; a
dense method's work would grow with n^2 (a 10^5 x 10^5 float64 Jacobian is 80 GB).
Prints a table and the log-log slope of each column against n (1: linear).
Run: `python -m benchmarks.sparse_scaling [--backend numpy|llvm]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import graphc as gc
from benchmarks.w5_bratu import NumpyCSR, bratu_graph

SIZES = (1_000, 10_000, 100_000)


def measure(n: int, backend: str, cache_dir: str) -> dict[str, float]:
    start = time.perf_counter()
    u, f = bratu_graph(n)
    jac = gc.sparse_jacobian(f, u)
    built = time.perf_counter()
    fn = gc.compile([u], jac, backend=backend, cache_dir=cache_dir)
    compiled = time.perf_counter()
    uv = 0.5 * np.sin(np.linspace(0.0, 3.0, n))
    first = fn(uv)
    done = time.perf_counter()
    want = NumpyCSR(n)(uv)
    if abs(first - want).max() > 1e-9 * abs(want).max():
        raise AssertionError(f"n={n}: the sparse Jacobian disagrees with the hand CSR")
    calls = max(1, int(0.2 / max(done - compiled, 1e-6)))
    tick = time.perf_counter()
    for _ in range(calls):
        fn(uv)
    steady = (time.perf_counter() - tick) / calls
    return {
        "nnz": float(jac.nnz),
        "colors": float(jac.colors),
        "build s": built - start,
        "compile s": compiled - built,
        "first result s": done - start,
        "steady s": steady,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="llvm", choices=["numpy", "llvm"])
    args = parser.parse_args()
    x = gc.var("warm", (4,))
    gc.compile([x], gc.sum(x), backend=args.backend)(np.zeros(4))  # one-time start-up out of the numbers
    rows = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for n in SIZES:
            rows[n] = measure(n, args.backend, cache_dir)
    columns = list(rows[SIZES[0]])
    print(f"| n | {' | '.join(columns)} |")
    print("|---:|" + "---:|" * len(columns))
    for n, row in rows.items():
        print(f"| {n:,} | " + " | ".join(f"{row[c]:.3g}" for c in columns) + " |")
    logn = np.log10(np.array(SIZES, dtype=float))
    slopes = {c: np.polyfit(logn, np.log10([rows[n][c] for n in SIZES]), 1)[0] for c in columns if c.endswith(" s")}
    print("log-log slope against n: " + ", ".join(f"{c} {s:.2f}" for c, s in slopes.items()))


if __name__ == "__main__":
    main()
