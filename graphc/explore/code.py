"""Which lines of a compiled function's code each node of its graph became.

Imports ir and schedule; for the llvm backend, that backend's plan, merge and lower
modules (only when a function compiled by it is explored). Granularity:
- numpy: one line of the generated function per step (`v3 = np.tanh(v2)  # f64[3]`); a
  fused region or a loop adds the lines of the helper function(s) its line calls
  (`fused_0`, a loop's driver and body functions).
- llvm: one native function per kernel. The program is planned again step by step, so each
  kernel is known by the step(s) that made it, and kernels that the backend merges into
  one loop nest map to every step they came from. A step gets the lines of each kernel
  function it runs in (from `define` to its closing brace of the optimized IR) and the
  entry's lines that call them. Views (reshape, transpose, a stepped slice) are layouts
  without code, and get no lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from graphc.ir import Node
from graphc.schedule import Program

Ranges = list[tuple[int, int]]  # 1-based, inclusive line ranges

_DEF = re.compile(r"^(?:def (\w+)\(|define [^@]*@([\w.]+)\()")
_ASSIGN = re.compile(r"^\s+([\w, ]+?) = ")
_CALL = re.compile(r"\b(\w+)\(")


def function_spans(lines: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each top-level `def name(` (Python) or `define ... @name(` (LLVM IR): its first and last line."""
    spans: dict[str, tuple[int, int]] = {}
    starts = [(k, m.group(1) or m.group(2)) for k, line in enumerate(lines) if (m := _DEF.match(line))]
    for (start, name), (end, _) in zip(starts, [*starts[1:], (len(lines), "")], strict=True):
        closing = [k for k in range(start, end) if lines[k] == "}"]  # LLVM IR: the function's closing brace
        last = closing[0] if closing else end - 1
        while last > start and not lines[last].strip():
            last -= 1
        spans[name] = (start + 1, last + 1)
    return spans


def _helpers(line: str, spans: dict[str, tuple[int, int]], lines: Sequence[str], seen: set[str]) -> Ranges:
    """The spans of the generated functions a line calls, and of those they call in turn."""
    ranges: Ranges = []
    for name in _CALL.findall(line):
        if name in spans and name not in seen:
            seen.add(name)
            start, end = spans[name]
            ranges.append((start, end))
            for inner in lines[start:end]:
                ranges += _helpers(inner, spans, lines, seen)
    return ranges


def numpy_lines(source: str, program: Program, function_name: str = "graphc_fn") -> dict[Node, Ranges]:
    """Node -> the lines of the numpy backend's source that compute it."""
    lines = source.splitlines()
    spans = function_spans(lines)
    if function_name not in spans:
        return {}
    start, end = spans[function_name]
    found: dict[Node, Ranges] = {}
    for k in range(start, end):
        match = _ASSIGN.match(lines[k])
        if match is None:
            continue
        steps = [program.step(name.strip()) for name in match.group(1).split(",")]
        nodes = [step.node for step in steps if step is not None]
        if not nodes:
            continue
        ranges = [(k + 1, k + 1), *_helpers(lines[k].split("=", 1)[1], spans, lines, {function_name})]
        for node in nodes:
            found.setdefault(node, []).extend(ranges)
    return found


def _step_kernels(program: Program) -> tuple[list[object], list[Node | None]]:
    """The kernels the llvm planner makes, before merging, and the node of the step that made each."""
    from graphc.backends.llvm.plan import PLANNERS, Planner

    planner = Planner(program)
    owners: list[Node | None] = []
    for given, layout in zip(program.inputs, planner.inputs, strict=True):
        planner.layouts[given.name] = layout
    for name, array in program.constants.items():
        planner.layouts[name] = planner.memory.constant(array)
    for step in program.steps:
        before = len(planner.kernels)
        PLANNERS[step.op](planner, step)
        owners += [step.node] * (len(planner.kernels) - before)
    for k, name in enumerate(program.outputs):
        if planner.direct.get(name) != k:
            before = len(planner.kernels)
            planner.copy(planner.layouts[name], planner.outputs[k])
            owners += [None] * (len(planner.kernels) - before)
    return list(planner.kernels), owners


def _groups(kernels: Sequence[object]) -> list[range]:
    """Runs of consecutive kernels that the backend's merge joins into one (it is greedy, left to right)."""
    from graphc.backends.llvm.merge import merge

    groups = []
    start = 0
    while start < len(kernels):
        end = start + 1
        while end < len(kernels) and len(merge(kernels[start : end + 1], drop_dead=False)) == 1:  # type: ignore[arg-type]
            end += 1
        groups.append(range(start, end))
        start = end
    return groups


def _kernel_names(plan: object) -> list[list[str]]:
    """For each kernel of the plan, the native functions it calls (a loop: those of its body)."""
    from graphc.backends.llvm import pyentry
    from graphc.backends.llvm.kernels import Branch, Loop, nested
    from graphc.backends.llvm.lower import Lowering, signature

    lowering = Lowering(plan, pyentry.available())  # type: ignore[arg-type]
    lowering.build()

    def names(kernel: object) -> list[str]:
        if isinstance(kernel, (Loop, Branch)):
            return [name for inner in nested(kernel) for name in names(inner)]
        return [lowering.functions[signature(kernel)[0]].name]  # type: ignore[arg-type]

    return [names(k) for k in plan.kernels]  # type: ignore[attr-defined]


def llvm_kernels(program: Program, plan: object) -> dict[Node, list[str]] | None:
    """Node -> the native kernel functions its step runs in; None when the planning cannot be matched."""
    kernels, owners = _step_kernels(program)
    groups = _groups(kernels)
    names = _kernel_names(plan)
    if len(groups) != len(names):
        return None
    found: dict[Node, list[str]] = {}
    for group, functions in zip(groups, names, strict=True):
        for k in group:
            node = owners[k]
            if node is None:
                continue
            known = found.setdefault(node, [])
            known += [f for f in functions if f not in known]
    return found


def llvm_lines(ir_text: str, kernels: dict[Node, list[str]]) -> dict[Node, Ranges]:
    """Node -> the IR lines of its kernel functions, and the entry's lines that call them."""
    lines = ir_text.splitlines()
    spans = function_spans(lines)
    calls: dict[str, list[int]] = {}
    for name, (start, end) in spans.items():
        if name.startswith("kernel"):
            continue
        for k in range(start - 1, end):
            for callee in re.findall(r"@([\w.]+)\(", lines[k]):
                if callee in spans and callee != name:
                    calls.setdefault(callee, []).append(k + 1)
    found: dict[Node, Ranges] = {}
    for node, functions in kernels.items():
        ranges: Ranges = []
        for f in functions:
            ranges += [(k, k) for k in calls.get(f, [])]
            if f in spans:
                ranges.append(spans[f])
        found[node] = sorted(set(ranges))
    return found
