"""The optimizer: the default pipeline (data), run_pipeline with a per-pass report, gc.optimize.

Imports everything below passes (errors, shapes, ir, ops, tensor, rewrite). Each
pass is a pure Graph -> Graph function in its own module whose docstring states
its guarantee; running a pass twice changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from graphc.ir import Graph
from graphc.passes.fastmath import fastmath
from graphc.passes.fold import fold
from graphc.passes.fuse import fuse
from graphc.passes.loops import loops
from graphc.passes.prune import prune
from graphc.passes.simplify import simplify
from graphc.passes.stability import stability

PassFn = Callable[[Graph], Graph]

DEFAULT_PIPELINE: tuple[PassFn, ...] = (stability, simplify, fold, prune, loops, fuse)
FAST_MATH_PIPELINE: tuple[PassFn, ...] = (stability, fastmath, simplify, fold, prune, loops, fuse)
FINAL_PASSES: tuple[PassFn, ...] = (fuse,)
"""Passes that prepare the graph for the backends: they run once, after the rounds of the other
passes reach a fixpoint. Rewrite rules cannot see into a fused body, so fusing in an early
round would hide patterns (`log(x + 1)`) from the next round's rules."""
MAX_ROUNDS = 8


@dataclass(frozen=True)
class PassRecord:
    """What one pass did: its name, node counts before and after, and its time."""

    name: str
    nodes_before: int
    nodes_after: int
    seconds: float
    graph: str | None = None


@dataclass
class Report:
    """The per-pass table of one optimizer run; printable."""

    records: list[PassRecord] = field(default_factory=list)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __str__(self) -> str:
        if not self.records:
            return "optimizer: no passes ran (optimize=False)"
        lines = [f"{'pass':<12} {'nodes':>15} {'time':>10}"]
        for r in self.records:
            lines.append(f"{r.name:<12} {r.nodes_before:>6} -> {r.nodes_after:<6} {r.seconds * 1e3:>8.2f}ms")
        total = sum(r.seconds for r in self.records)
        first, last = self.records[0].nodes_before, self.records[-1].nodes_after
        lines.append(f"{'total':<12} {first:>6} -> {last:<6} {total * 1e3:>8.2f}ms")
        return "\n".join(lines)


def run_pipeline(
    graph: Graph, passes: Sequence[PassFn] = DEFAULT_PIPELINE, *, keep_graphs: bool = False, verbose: bool = False
) -> tuple[Graph, Report]:
    """Run `passes` in order, in rounds, until a whole round changes nothing; then FINAL_PASSES once.

    The report has one record per pass (summed over rounds) and, when kept, the
    graph text after its last application; `verbose` prints each pass's graph.
    """
    totals: dict[str, list] = {}
    rounds = [p for p in passes if p not in FINAL_PASSES]
    last_output: dict[PassFn, Graph] = {}
    for _ in range(MAX_ROUNDS):
        start_graph = graph
        for p in rounds:
            if last_output.get(p) is graph:
                continue  # the pass's own output: p(p(g)) is p(g), so running it again changes nothing
            graph = _run_pass(p, graph, totals, keep_graphs or verbose, verbose)
            last_output[p] = graph
        if graph is start_graph:
            break
    for p in passes:
        if p in FINAL_PASSES:
            graph = _run_pass(p, graph, totals, keep_graphs or verbose, verbose)
    report = Report([PassRecord(name, b, a, s, t) for name, (b, a, s, t) in totals.items()])
    return graph, report


def _run_pass(p: PassFn, graph: Graph, totals: dict[str, list], keep: bool, verbose: bool) -> Graph:
    """Apply one pass and add its node counts and time to `totals` (one entry per pass name)."""
    before = len(graph.nodes)
    start = time.perf_counter()
    graph = p(graph)
    seconds = time.perf_counter() - start
    text = str(graph) if keep else None
    if verbose:
        print(f"--- after {p.__name__} ---\n{text}")
    entry = totals.setdefault(p.__name__, [before, 0, 0.0, None])
    entry[1:] = [len(graph.nodes), entry[2] + seconds, text]
    return graph


def pipeline_for(fast_math: bool = False) -> tuple[PassFn, ...]:
    return FAST_MATH_PIPELINE if fast_math else DEFAULT_PIPELINE


def optimize(outputs: object, *, fast_math: bool = False, fuse: bool = True, verbose: bool = False) -> object:
    """gc.optimize: the optimized outputs as Tensors (one Tensor in, one Tensor out).

    With fuse=True (what gc.compile runs) the result holds `fused` regions, which
    have no derivative rules; pass fuse=False to keep the result differentiable.
    """
    from graphc.tensor import Tensor

    single = isinstance(outputs, Tensor)
    tensors = [outputs] if single else list(outputs)  # type: ignore[call-overload]
    passes = [p for p in pipeline_for(fast_math) if fuse or p not in FINAL_PASSES]
    graph, _ = run_pipeline(Graph(tensors), passes, verbose=verbose)
    results = [Tensor(n) for n in graph.outputs]
    return results[0] if single else results


__all__ = [
    "DEFAULT_PIPELINE", "FAST_MATH_PIPELINE", "FINAL_PASSES", "PassRecord", "Report", "fastmath", "fold", "fuse", "loops",
    "optimize", "pipeline_for", "prune", "run_pipeline", "simplify", "stability",
]  # fmt: skip
