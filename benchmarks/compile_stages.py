"""Where compile time goes: per-stage seconds of gc.compile on graphs that grow, to find superlinear stages.

Run: PYTHONPATH=. python benchmarks/compile_stages.py [--inputs 1000 2000] [--chain 10000] [--w8 1000]
     [--backend numpy llvm] [--gc-off]

Cases: `inputs N` is f = sum_i sin(x_i) * x_i over N scalar vars, value and gradient;
`chain K` is K W8 steps `x = sin(x) * 1.0001 + 0.1 * x` on one scalar, value and gradient;
`w8 K` is W8 itself (K steps on a length-1000 vector). Stages: build (the forward graph),
grad (gc.grad), optimize (run_pipeline, with the pass that took longest), schedule, and
each asked-for backend's build (codegen and compile, cache off). Times are wall seconds
of this process, one run each, with this process's CPU seconds in parentheses (less
moved by other load, and what LLVM's code generation costs is in them too): on a shared
machine compare stages and sizes within one run, never absolute times across runs. Each
compiled function is called once and its value checked against the reference evaluator first.
"""

from __future__ import annotations

import argparse
import gc as python_gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import graphc as gc
from graphc.compile import _build
from graphc.ir import Graph
from graphc.passes import run_pipeline
from graphc.schedule import schedule


@dataclass
class Stages:
    """The seconds of each stage of one compile, in order."""

    label: str
    nodes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def timed(self, stage: str, work: Callable[[], object]) -> object:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = work()
        self.seconds[stage] = time.perf_counter() - start
        self.cpu[stage] = time.process_time() - start_cpu
        return result


def scalar_inputs(n: int) -> tuple[list[gc.Tensor], gc.Tensor]:
    """N scalar vars and f = sum_i sin(x_i) * x_i (a chain of adds, as a Python loop builds it)."""
    xs = [gc.var(f"x{i}") for i in range(n)]
    f = gc.sin(xs[0]) * xs[0]
    for x in xs[1:]:
        f = f + gc.sin(x) * x
    return xs, f


def scalar_chain(k: int) -> tuple[list[gc.Tensor], gc.Tensor]:
    """One scalar var and K W8 steps on it."""
    x0 = gc.var("x")
    x = x0
    for _ in range(k):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    return [x0], x


def w8(k: int) -> tuple[list[gc.Tensor], gc.Tensor]:
    """W8: K steps on a length-1000 vector, f = sum(x_K)."""
    x0 = gc.var("x", (1000,))
    x = x0
    for _ in range(k):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    return [x0], gc.sum(x)


def measure(label: str, make: Callable[[], tuple[list[gc.Tensor], gc.Tensor]], backends: list[str]) -> Stages:
    """Time each stage of compiling [f, *grad f] for the graph `make` builds; check one call per backend."""
    stages = Stages(label)
    xs, f = stages.timed("build", make)  # type: ignore[misc]
    grads = stages.timed("grad", lambda: gc.grad(f, xs))
    outputs = [f.node, *(g.node for g in grads)]  # type: ignore[attr-defined]
    graph = Graph(outputs, [x.node for x in xs])
    stages.nodes = len(graph.nodes)
    optimized, report = stages.timed("optimize", lambda: run_pipeline(graph))  # type: ignore[misc]
    slowest = max(report.records, key=lambda r: r.seconds)
    stages.notes.append(f"slowest pass {slowest.name} {slowest.seconds:.3f}s")
    program = stages.timed("schedule", lambda: schedule(optimized))
    rng = np.random.default_rng(0)
    args = [rng.uniform(-1, 1, x.shape) for x in xs]
    want = gc.evaluate(outputs, dict(zip([x.node for x in xs], args, strict=True)))
    threads = {"threads": gc.get_num_threads()} if hasattr(gc, "get_num_threads") else {}  # older checkouts: 2
    for backend in backends:
        built = stages.timed(backend, lambda b=backend: _build(program, b, False, False, None, False, **threads))
        got = built.function(*args)  # type: ignore[attr-defined]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-300)
    return stages


def print_row(stages: Stages) -> None:
    cells = " ".join(f"{name} {seconds:7.3f} ({stages.cpu[name]:.3f})" for name, seconds in stages.seconds.items())
    print(f"{stages.label:<14} {stages.nodes:>8} nodes  {cells}  ({'; '.join(stages.notes)})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--inputs", type=int, nargs="*", default=[1000, 2000])
    parser.add_argument("--chain", type=int, nargs="*", default=[10000])
    parser.add_argument("--w8", type=int, nargs="*", default=[1000])
    parser.add_argument("--backend", nargs="*", default=["numpy"], choices=["numpy", "llvm"])
    parser.add_argument("--gc-off", action="store_true", help="disable Python's cyclic collector throughout")
    args = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    if args.gc_off:
        python_gc.disable()
    cases: list[tuple[str, Callable[[], tuple[list[gc.Tensor], gc.Tensor]]]] = []
    cases += [(f"inputs {n}", lambda n=n: scalar_inputs(n)) for n in args.inputs]
    cases += [(f"chain {k}", lambda k=k: scalar_chain(k)) for k in args.chain]
    cases += [(f"w8 {k}", lambda k=k: w8(k)) for k in args.w8]
    for label, make in cases:
        print_row(measure(label, make, args.backend))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
