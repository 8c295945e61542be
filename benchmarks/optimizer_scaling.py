"""How gc.optimize's time grows with the graph: chains of the W8 step, alone and with their gradient.

Run: PYTHONPATH=. python benchmarks/optimizer_scaling.py [--nodes 1000 10000 100000] [--repeat 3]

A chain repeats `x = sin(x) * 1.0001 + 0.1 * x` (the W8 step, four nodes) until it has
about `nodes` nodes; "+grad" adds gc.grad(sum(x), x0), which about doubles the graph.
The optimizer is linear in the node count when the last column, time per node, stays
flat as the chains grow. Times are CPU seconds of this process (other load on the
machine does not count), the best of `--repeat` cold runs, each on the graph built anew
after a full garbage collection (the same nodes again would meet the passes' Settled
memos and time a warm second compile); `--gc-off` disables Python's cyclic collector while timing, whose full
collections scan every live object and so cost more per node as the graph grows.
"""

from __future__ import annotations

import argparse
import functools
import gc as python_gc
import time
from collections.abc import Callable

import graphc as gc
from graphc.ir import Graph
from graphc.passes import run_pipeline


def w8_chain(steps: int) -> tuple[gc.Tensor, gc.Tensor]:
    """The input var and the result of `steps` W8 steps."""
    x0 = gc.var("x", shape=(4,))
    x = x0
    for _ in range(steps):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    return x0, x


def best_time(make: Callable[[], Graph], repeat: int, gc_off: bool) -> tuple[float, int, int]:
    """The best of `repeat` CPU timings of the default pipeline, each on a graph `make` builds anew.

    Also the node counts before and after. A graph is built afresh (and the last one let go of)
    for every run: on the same nodes again, the passes' Settled memos would pass over
    everything, and the run would time a warm second compile instead of a first one.
    """
    times = []
    nodes = after = 0
    for _ in range(repeat):
        python_gc.collect()  # the last run's nodes die here: the new graph's nodes are new
        graph = make()
        if gc_off:
            python_gc.disable()
        start = time.process_time()
        optimized, _ = run_pipeline(graph)
        times.append(time.process_time() - start)
        python_gc.enable()
        nodes, after = len(graph.nodes), len(optimized.nodes)
        del graph, optimized
    return min(times), nodes, after


def _chain_graph(steps: int, with_grad: bool) -> Graph:
    x0, x = w8_chain(steps)
    return Graph([x, gc.grad(gc.sum(x), x0)] if with_grad else [x])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gc-off", action="store_true", help="disable the cyclic garbage collector while timing")
    parser.add_argument("--report", action="store_true", help="print the per-pass report of the largest graph")
    args = parser.parse_args(argv)
    print(f"{'graph':<12} {'steps':>7} {'nodes':>8} {'after':>7} {'optimize':>11} {'per node':>10}")
    for target in args.nodes:
        steps = max(1, target // 4)
        for label, with_grad in (("chain", False), ("chain+grad", True)):
            make = functools.partial(_chain_graph, steps, with_grad)
            seconds, nodes, after = best_time(make, args.repeat, args.gc_off)
            per_node = seconds / nodes * 1e6
            print(f"{label:<12} {target // 4:>7} {nodes:>8} {after:>7} {seconds * 1e3:>9.1f}ms {per_node:>8.2f}us")
    if args.report and args.nodes:
        print(run_pipeline(_chain_graph(max(1, args.nodes[-1] // 4), True))[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
