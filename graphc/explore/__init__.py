"""gc.explore: write one self-contained HTML file showing a graph pass by pass; Jupyter's view of fn.

Imports ir, viz, passes, schedule and this package's modules (model: the data; code:
which generated lines each node became; page: the HTML). It sits beside compile (which
calls it for `fn.explore`) and never imports it: a compiled function is recognised by
what it has (`program`, `backend`, `outputs`). See docs/explore.md.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Protocol

from graphc.explore import code, model, page
from graphc.ir import Graph
from graphc.passes import Report
from graphc.schedule import Program, named_nodes
from graphc.viz import Inspectable, as_graph, repr_html


class Compiled(Protocol):
    """What the explorer reads of a compiled function (graphc.compile.CompiledFunction)."""

    backend: str
    fast_math: bool
    optimized: bool

    @property
    def graph(self) -> Graph: ...

    @property
    def report(self) -> Report: ...

    @property
    def program(self) -> Program: ...

    @property
    def source(self) -> str: ...

    @property
    def signature(self) -> str: ...


def compiled(target: object) -> Compiled | None:
    """`target` as a compiled function, or None when it is not one."""
    needed = ("graph", "program", "backend", "outputs", "inputs", "report")
    return target if all(hasattr(target, name) for name in needed) else None  # type: ignore[return-value]


LLVM_TEXT_LIMIT = 4_000_000  # characters of LLVM IR embedded at most (a note says when cut)
INLINE_CODE_LINES = 300  # lines of code a compiled function shows in Jupyter (the rest: fn.source / fn.llvm_ir)


def _code(fn: Compiled, m: model.Model) -> dict[str, object]:
    """The compiled function's code and, per node id, its line ranges (and kernels, for llvm)."""
    nodes = named_nodes(fn.graph)
    if fn.backend == "numpy":
        text = fn.source
        lines = code.numpy_lines(text, fn.program, nodes)
        entry: dict[str, object] = {"label": "fn.source (numpy backend)", "granularity": "step"}
    else:
        text = fn.llvm_ir.optimized  # type: ignore[attr-defined]
        kernels = code.llvm_kernels(nodes, fn._built.plan)  # type: ignore[attr-defined]
        lines = code.llvm_lines(text, kernels)
        entry = {"label": "fn.llvm_ir.optimized (llvm backend)", "granularity": "kernel function"}
        entry["kernels"] = {str(m.node(n)): names for n, names in kernels.items()}
    if len(text) > LLVM_TEXT_LIMIT:
        text = text[:LLVM_TEXT_LIMIT] + "\n; ... cut here: the explorer embeds at most 4,000,000 characters"
    entry["text"] = text
    entry["lines"] = {str(m.node(n)): ranges for n, ranges in lines.items()}
    return entry


def build_data(target: Inspectable, *, fast_math: bool = False, optimize: bool = True) -> dict[str, object]:
    """The explorer's data for Tensors, a Graph or a compiled function (see model.py)."""
    fn = compiled(target)
    if fn is not None:
        graph = Graph([t.node for t in fn.outputs], [t.node for t in fn.inputs])  # type: ignore[attr-defined]
        stages = model.optimizer_stages(graph, fn.fast_math, fn.optimized)
        if stages[-1].graph != fn.graph:  # cannot happen (the pipeline is deterministic); say so if it does
            stages.append(model.Stage("compiled", fn.graph))
    else:
        stages = model.optimizer_stages(as_graph(target), fast_math, optimize)
    m = model.build(stages)
    data: dict[str, object] = {"nodes": m.nodes, "layouts": m.layouts, "stages": m.stages}
    data["start"] = len(m.stages) - 1
    if fn is not None:
        data["code"] = _code(fn, m)
    return data


def explore(
    target: Inspectable,
    path: str | Path = "graph.html",
    *,
    fast_math: bool = False,
    optimize: bool = True,
    title: str | None = None,
) -> Path:
    """gc.explore: write the graph of `target`, after every optimizer pass, to one HTML file.

    `target` is a Tensor, a list of Tensors, a Graph or a compiled function (then the code
    it runs is shown too, each node's lines highlighted). The file needs no network. Returns
    the path written.
    """
    data = build_data(target, fast_math=fast_math, optimize=optimize)
    stages = data["stages"]
    assert isinstance(stages, list)
    first, last = stages[0]["nodes"], stages[-1]["nodes"]
    summary = f"{first} nodes before optimization, {last} after; {len(stages) - 1} pass runs"
    fn = compiled(target)
    if fn is not None:
        summary += f"; {fn.backend} backend, {len(fn.program.steps)} steps"
    path = Path(path)
    path.write_text(page.page(data, title or "graphc explorer", summary), encoding="utf-8")
    return path


def compiled_html(fn: Compiled) -> str:
    """Jupyter's view of a compiled function: its signature, the optimizer report, its graph, its code."""
    facts = f"<b>compiled function</b> {html.escape(fn.signature)} &middot; {fn.backend} backend"
    report = f"<details><summary>optimizer report</summary><pre>{html.escape(str(fn.report))}</pre></details>"
    text = fn.source if fn.backend == "numpy" else fn.llvm_ir.optimized  # type: ignore[attr-defined]
    label = "fn.source" if fn.backend == "numpy" else "fn.llvm_ir"
    lines = text.splitlines()
    if len(lines) > INLINE_CODE_LINES:
        text = "\n".join(lines[:INLINE_CODE_LINES]) + f"\n... {len(lines) - INLINE_CODE_LINES} more lines in {label}"
    source = f"<details><summary>{label}</summary><pre>{html.escape(text)}</pre></details>"
    return f"<div><p>{facts}</p>{report}{repr_html(fn.graph)}{source}</div>"


__all__ = ["build_data", "compiled", "compiled_html", "explore"]
