"""The optimizer: the default pipeline (data), run_pipeline with a per-pass report, gc.optimize.

Imports everything below passes (errors, shapes, ir, ops, tensor, rewrite). Each
pass is a pure Graph -> Graph function in its own module whose docstring states
its guarantee; running a pass twice changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from graphc.ir import Graph
from graphc.passes.fastmath import fastmath
from graphc.passes.fold import fold
from graphc.passes.fuse import fuse
from graphc.passes.loops import loops
from graphc.passes.prune import prune
from graphc.passes.simplify import simplify
from graphc.passes.stability import stability
from graphc.rewrite import Firing, recording
from graphc.tensor import Tensor

PassFn = Callable[[Graph], Graph]

DEFAULT_PIPELINE: tuple[PassFn, ...] = (fold, stability, simplify, prune, loops, fuse)
FAST_MATH_PIPELINE: tuple[PassFn, ...] = (fold, stability, fastmath, simplify, prune, loops, fuse)
"""fold comes first: folding a gradient's seed (ones * c) changes a node near the start of the
backward chain, and so every node after it; folded first, the other passes walk the chain once
instead of once per form (their second round then finds nothing new)."""
FINAL_PASSES: tuple[PassFn, ...] = (fuse,)
"""Passes that prepare the graph for the backends: they run once, after the rounds of the other
passes reach a fixpoint. Rewrite rules cannot see into a fused body, so fusing in an early
round would hide patterns (`log(x + 1)`) from the next round's rules."""
MAX_ROUNDS = 8


@dataclass(frozen=True)
class PassRecord:
    """One run of one pass: its round, the graph's node count before and after, its time.

    `graph` is the text of the result when run_pipeline kept graphs; `result` (the Graph
    itself) and `firings` (the rewrite rules that fired, in order) when it recorded.
    """

    name: str
    round: int
    nodes_before: int
    nodes_after: int
    seconds: float
    graph: str | None = None
    final: bool = False
    changed: bool = False
    result: Graph | None = None
    firings: tuple[Firing, ...] = ()


REPORT_LEGEND = "per pass, over all rounds: runs, runs that changed the graph, net change in node count, total time"


@dataclass
class Report:
    """What one optimizer run did, one record per pass run; printable per pass or per round.

    `str(report)` sums each pass over its runs (its total change in node count, its total
    time); `report.format(per_round=True)` lists every run with the node counts around it.
    Node counts are the nodes the outputs reach (a fused region or a loop counts as one).
    """

    records: list[PassRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines after the table (gc.compile: sparse results' colors)

    def __iter__(self) -> Iterator[PassRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def rounds(self) -> int:
        """How many rounds of the repeating passes ran (the final passes not counted)."""
        return max((r.round for r in self.records if not r.final), default=0)

    def passes(self) -> list[str]:
        """The names of the passes that ran, in the order they first ran."""
        return list(dict.fromkeys(r.name for r in self.records))

    def __str__(self) -> str:
        return self.format()

    def format(self, per_round: bool = False) -> str:
        """The table: one line per pass (summed over its runs), or with per_round=True one per run."""
        if not self.records:
            return "\n".join(["optimizer: no passes ran (optimize=False)", *self.notes])
        lines = _round_lines(self.records) if per_round else _pass_lines(self.records)
        total = sum(r.seconds for r in self.records)
        first, last = self.records[0].nodes_before, self.records[-1].nodes_after
        span = f"{first} -> {last}"
        runs = str(len(self.records))
        if per_round:
            lines.append(f"{'total':<7}{'':<12} {span:>17} {total * 1e3:>9.2f}ms")
        else:
            lines.append(f"{'total':<12} {runs:>4} {'':>7} {span:>10} {total * 1e3:>9.2f}ms")
        return "\n".join([*lines, *self.notes])


def _pass_lines(records: Sequence[PassRecord]) -> list[str]:
    """The legend, the column titles and one line per pass, summed over its runs."""
    lines = [f"# {REPORT_LEGEND}", f"{'pass':<12} {'runs':>4} {'changed':>7} {'nodes':>10} {'time':>11}"]
    for name in dict.fromkeys(r.name for r in records):
        mine = [r for r in records if r.name == name]
        change = sum(r.nodes_after - r.nodes_before for r in mine)
        changed = sum(r.changed for r in mine)
        seconds = sum(r.seconds for r in mine)
        lines.append(f"{name:<12} {len(mine):>4} {changed:>7} {change:>+10d} {seconds * 1e3:>9.2f}ms")
    return lines


def _round_lines(records: Sequence[PassRecord]) -> list[str]:
    """The legend, the column titles and one line per run: its round, its node counts, its time."""
    lines = [
        "# every pass run in order: round, pass, nodes before -> after that run, its time",
        f"{'round':<7}{'pass':<12} {'nodes':>17} {'time':>11}",
    ]
    for r in records:
        where = "final" if r.final else str(r.round)
        span = f"{r.nodes_before} -> {r.nodes_after}"
        lines.append(f"{where:<7}{r.name:<12} {span:>17} {r.seconds * 1e3:>9.2f}ms")
    return lines


def run_pipeline(
    graph: Graph,
    passes: Sequence[PassFn] = DEFAULT_PIPELINE,
    *,
    keep_graphs: bool = False,
    record: bool = False,
    verbose: bool = False,
) -> tuple[Graph, Report]:
    """Run `passes` in order, in rounds, until a whole round changes nothing; then FINAL_PASSES once.

    The report has one record per pass run. A pass is not run again on its own output
    (p(p(g)) is p(g)). keep_graphs=True keeps the text of each run's result; record=True
    keeps each result as a Graph and the rewrite rules that fired; verbose prints each
    run's result.
    """
    runner = _Runner(keep_graphs or verbose, record, verbose)
    repeating = [p for p in passes if p not in FINAL_PASSES]
    last_output: dict[PassFn, Graph] = {}
    for round_ in range(1, MAX_ROUNDS + 1):
        start_graph = graph
        for p in repeating:
            if last_output.get(p) is graph:
                continue  # the pass's own output: p(p(g)) is p(g), so running it again changes nothing
            graph = runner.run(p, graph, round_)
            last_output[p] = graph
        if graph is start_graph:
            break
    final_round = max((r.round for r in runner.records), default=0) + 1
    for p in passes:
        if p in FINAL_PASSES:
            graph = runner.run(p, graph, final_round, final=True)
    return graph, Report(runner.records)


@dataclass
class _Runner:
    """Runs passes one at a time and records each run."""

    keep_text: bool
    record: bool
    verbose: bool
    records: list[PassRecord] = field(default_factory=list)

    def run(self, p: PassFn, graph: Graph, round_: int, final: bool = False) -> Graph:
        before = len(graph.nodes)
        firings: list[Firing] = []
        start = time.perf_counter()
        if self.record:
            with recording() as firings:
                result = p(graph)
        else:
            result = p(graph)
        seconds = time.perf_counter() - start
        text = str(result) if self.keep_text else None
        if self.verbose:
            print(f"--- after {p.__name__} ---\n{text}")
        kept = result if self.record else None
        changed = result is not graph
        after = len(result.nodes)
        record = PassRecord(p.__name__, round_, before, after, seconds, text, final, changed, kept, tuple(firings))
        self.records.append(record)
        return result


def pipeline_for(fast_math: bool = False) -> tuple[PassFn, ...]:
    return FAST_MATH_PIPELINE if fast_math else DEFAULT_PIPELINE


@overload
def optimize(outputs: Tensor, *, fast_math: bool = False, fuse: bool = True, verbose: bool = False) -> Tensor: ...
@overload
def optimize(
    outputs: Sequence[Tensor], *, fast_math: bool = False, fuse: bool = True, verbose: bool = False
) -> list[Tensor]: ...


def optimize(
    outputs: Tensor | Sequence[Tensor], *, fast_math: bool = False, fuse: bool = True, verbose: bool = False
) -> Tensor | list[Tensor]:
    """gc.optimize: the optimized outputs as Tensors (one Tensor in, one Tensor out; a list in, a list out).

    With fuse=True (what gc.compile runs) the result holds `fused` regions, which
    have no derivative rules; pass fuse=False to keep the result differentiable.
    """
    single = isinstance(outputs, Tensor)
    tensors = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    passes = [p for p in pipeline_for(fast_math) if fuse or p not in FINAL_PASSES]
    graph, _ = run_pipeline(Graph(tensors), passes, verbose=verbose)
    results = [Tensor(n) for n in graph.outputs]
    return results[0] if single else results


__all__ = [
    "DEFAULT_PIPELINE", "FAST_MATH_PIPELINE", "FINAL_PASSES", "REPORT_LEGEND", "PassRecord", "Report",
    "fastmath", "fold", "fuse", "loops", "optimize", "pipeline_for", "prune", "run_pipeline", "simplify", "stability",
]  # fmt: skip
