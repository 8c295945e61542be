"""How gc.optimize's time grows with the graph: chains of the W8 step and their gradients.

Run: PYTHONPATH=. python benchmarks/optimizer_scaling.py [--steps 100 1000 10000] [--repeat 3]

Each chain repeats `x = sin(x) * 1.0001 + 0.1 * x` (the W8 step) `steps` times on a
vector `x`; its gradient (gc.grad of sum(x_final)) roughly doubles the node count.
The optimizer should run in time linear in the node count: the last column, time per
node, should stay flat as the chains grow.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import graphc as gc
from graphc.ir import Graph
from graphc.passes import optimize, run_pipeline


def w8_chain(steps: int) -> tuple[gc.Tensor, gc.Tensor]:
    """The input var and the result of `steps` W8 steps."""
    x0 = gc.var("x", shape=(4,))
    x = x0
    for _ in range(steps):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    return x0, x


def best_of(repeat: int, fn: object) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def measure(steps: int, repeat: int) -> list[tuple[str, int, int, float]]:
    """(label, nodes before, nodes after, seconds) for the chain and for chain + gradient."""
    x0, x = w8_chain(steps)
    grad = gc.grad(gc.sum(x), x0)
    rows = []
    for label, outputs in (("chain", [x]), ("chain+grad", [x, grad])):
        before = len(Graph(outputs).nodes)
        after = len(Graph(optimize(outputs)).nodes)  # type: ignore[arg-type]
        seconds = best_of(repeat, lambda outputs=outputs: optimize(outputs))
        rows.append((f"{label} {steps}", before, after, seconds))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="print the per-pass report of the largest run")
    args = parser.parse_args(argv)
    sys.setrecursionlimit(10_000)  # nothing here should recurse; a deep recursion fails loudly instead
    print(f"{'graph':<20} {'nodes':>8} {'-> after':>9} {'optimize':>11} {'per node':>10}")
    for steps in args.steps:
        for label, before, after, seconds in measure(steps, args.repeat):
            print(f"{label:<20} {before:>8} {after:>9} {seconds * 1e3:>9.1f}ms {seconds / before * 1e6:>8.2f}us")
    if args.report:
        x0, x = w8_chain(max(args.steps))
        _, report = run_pipeline(Graph([x, gc.grad(gc.sum(x), x0)]))
        print(report)
    np.seterr(all="warn")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
