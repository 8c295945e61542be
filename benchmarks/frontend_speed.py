"""Build and grad cost per node: microseconds per user-level op (build) and per new node (grad).

Run: PYTHONPATH=. python benchmarks/frontend_speed.py [--chain 10000 40000] [--w8 1000] [--gc-off] [--repeat 3]

`chain K` is K W8 steps `x = sin(x) * 1.0001 + 0.1 * x` on one scalar (4 user-level ops
per step), `w8 K` the same on a length-1000 vector. build is the user's loop; grad is
gc.grad of the result (a sum for w8). Reported: wall and CPU seconds, µs per user op
(build) and µs per node grad made, best of `--repeat` runs, with Python's collector on
as a user has it unless `--gc-off`. Each run checks that the gradient graph has the
expected size and that the chain's value matches a NumPy loop before it counts.
"""

from __future__ import annotations

import argparse
import gc as python_gc
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

import graphc as gc
from graphc.ir import Graph

T = TypeVar("T")


def chain(k: int, n: int | None) -> tuple[gc.Tensor, gc.Tensor]:
    """K W8 steps on one var (a scalar when n is None, else a length-n vector)."""
    x0 = gc.var("x", () if n is None else (n,))
    x = x0
    for _ in range(k):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    return x0, x if n is None else gc.sum(x)


def reference(k: int, x: float) -> float:
    for _ in range(k):
        x = np.sin(x) * 1.0001 + 0.1 * x
    return float(x)


def timed(work: Callable[[], T]) -> tuple[T, float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - start, time.process_time() - start_cpu


def once(k: int, n: int | None) -> tuple[tuple[float, float], tuple[float, float], int]:
    """One build and one grad: their (wall, cpu) seconds and the nodes grad made (the value checked first)."""
    python_gc.collect()
    (x0, y), build_wall, build_cpu = timed(lambda: chain(k, n))
    before = len(Graph([y]).nodes)
    grads, grad_wall, grad_cpu = timed(lambda: gc.grad(y, [x0]))
    g = grads[0]
    made = len(Graph([y, g]).nodes) - before
    if n is None and k <= 20000:  # the reference evaluator recurses no deeper than this comfortably
        got = gc.evaluate([y], {x0: np.float64(0.3)})[0]
        np.testing.assert_allclose(got, reference(k, 0.3), rtol=1e-12)
    return (build_wall, build_cpu), (grad_wall, grad_cpu), made


def run(label: str, k: int, n: int | None, repeat: int) -> None:
    """Best-of-`repeat` build and grad times for one case, checked, printed as one row."""
    runs = [once(k, n) for _ in range(repeat)]
    b = min(r[0] for r in runs)
    d = min(r[1] for r in runs)
    made = runs[0][2]
    ops = 4 * k
    print(
        f"{label:<12} build {b[0]:6.3f}s ({b[1]:6.3f} cpu) {1e6 * b[0] / ops:6.2f} us/op   "
        f"grad {d[0]:6.3f}s ({d[1]:6.3f} cpu) {made:>7} nodes {1e6 * d[0] / made:6.2f} us/node",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chain", type=int, nargs="*", default=[10000, 40000])
    parser.add_argument("--w8", type=int, nargs="*", default=[1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gc-off", action="store_true", help="disable Python's cyclic collector throughout")
    args = parser.parse_args(argv)
    if args.gc_off:
        python_gc.disable()
    for k in args.chain:
        run(f"chain {k}", k, None, args.repeat)
    for k in args.w8:
        run(f"w8 {k}", k, 1000, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
