"""Planning rules for `scan`, `fixed_point`, `while_loop` (one Loop kernel per family) and `cond` (a Branch).

Imports graphc.ops.loops, graphc.schedule and the backend's kernels and layout (the
Planner only for types; plan.py lists plan_loop among its rules). A loop's siblings (one step per
result) share one run: the first sibling plans the whole loop, the others pick their
result. The step's nested Program (the loop body, scheduled) is planned by a nested
Planner whose inputs are the current carries, x[t] (a layout that moves with t) and the
closures, and whose outputs are the next carries and y[t]. Carries are double-buffered:
the body writes the next ones, a copy at the end of each iteration makes them current.
Every buffer of a loop is fresh (never reused by the enclosing buffer plan), so results
can be read in place by later steps. A carry is copied into its saved stack (for a
gradient's reverse loop) each step only when a sibling reads that stack. A cond plans both branch Programs into the same
fresh result buffers, as the two sides of one Branch kernel; a while_loop's condition
Program runs before each iteration and leaves a bool.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from graphc.backends.llvm.kernels import Branch, Instr, Loop
from graphc.backends.llvm.layout import Layout
from graphc.ops.loops import saved_count, scan_counts
from graphc.schedule import Program, Step, loop_family
from graphc.shapes import fixed, fixed_size

if TYPE_CHECKING:
    from collections.abc import Callable

    from graphc.backends.llvm.planner import Planner

BOOL = np.dtype("bool")


def plan_loop(p: Planner, step: Step) -> None:
    """The step's result: the loop is planned at the first sibling; outputs get a copy of their own."""
    key = loop_family(step)
    if key not in p.families:
        args = [p.layouts[a] for a in step.args]
        p.families[key] = _PLANS[step.op](p, step, args)
    result = p.families[key][step.int_attr("output")]
    if step.name in p.direct:
        p.copy(result, p.dest(step))
    else:
        p.layouts[step.name] = result


def at_step(stack: Layout, depth: int, every: int = 1) -> Layout:
    """stack[t // every] for the counter t of the loop at `depth`."""
    moving = ((depth, every, stack.strides[0]),) if stack.shape[0] > 0 else ()
    return replace(stack, shape=stack.shape[1:], strides=stack.strides[1:], dynamic=stack.dynamic + moving)


def _body(step: Step) -> Program:
    assert step.body is not None
    return step.body


def _plan_scan(p: Planner, step: Step, args: list[Layout]) -> list[Layout]:
    body = _body(step)
    nc, nx, _, _ = scan_counts(body, step.int_attr("n_carry"), step.int_attr("n_xs"))
    length, checkpoint = step.int_attr("length"), step.int_attr("checkpoint")
    depth = p.depth + 1
    carry_types = body.input_types[:nc]
    carries = [p.fresh(fixed(t.shape), t.dtype) for t in carry_types]
    following = [p.fresh(fixed(t.shape), t.dtype) for t in carry_types]
    ys = [p.fresh((length, *fixed(t.shape)), t.dtype) for t in body.output_types[nc:]]
    kept = _saved_wanted(p, step, nc + len(ys))
    count = fixed_size(saved_count(length, checkpoint))
    saved = [p.fresh((count if m in kept else 0, *fixed(t.shape)), t.dtype) for m, t in enumerate(carry_types)]
    for init, carry in zip(args[:nc], carries, strict=True):
        p.copy(init, carry)
    if length == 0:
        return [*carries, *ys, *saved]
    x_t = [at_step(x, depth) for x in args[nc : nc + nx]]
    inputs = [*carries, *x_t, *args[nc + nx :]]
    outputs = [*following, *(at_step(y, depth) for y in ys)]
    inner = p.nested(body, inputs, outputs)
    for m in sorted(kept):
        inner.copy(carries[m], at_step(saved[m], depth, checkpoint))
    saves = len(inner.kernels)
    inner.walk()
    for new, carry in zip(following, carries, strict=True):
        inner.copy(new, carry)
    guards = [checkpoint] * saves + [1] * (len(inner.kernels) - saves)
    p.kernels.append(Loop("scan", length, bool(step.attr("reverse")), depth, tuple(inner.kernels), tuple(guards)))
    return [*carries, *ys, *saved]


def _saved_wanted(p: Planner, step: Step, first: int) -> set[int]:
    """The carries whose saved stack some sibling of the scan reads (results `first`, `first` + 1, ...).

    A stack nobody reads is neither allocated nor written: a primal scan saves nothing per step.
    """
    family = loop_family(step)
    outputs = {s.int_attr("output") for s in p.program.steps if s.op == step.op and loop_family(s) == family}
    return {o - first for o in outputs if o >= first}


def _plan_fixed_point(p: Planner, step: Step, args: list[Layout]) -> list[Layout]:
    body = _body(step)
    nz = step.int_attr("n_z")
    tol, max_iter = float(step.attr("tol")), step.int_attr("max_iter")  # type: ignore[arg-type]
    depth = p.depth + 1
    types = body.input_types[:nz]
    current = [p.fresh(fixed(t.shape), t.dtype) for t in types]
    following = [p.fresh(fixed(t.shape), t.dtype) for t in types]
    for start, z in zip(args[:nz], current, strict=True):
        p.copy(start, z)
    inner = p.nested(body, [*current, *args[nz:]], following)
    inner.walk()
    residuals = []
    for new, old, t in zip(following, current, types, strict=True):
        slot = inner.fresh((), t.dtype)
        instrs = [Instr("load", (0,), t.dtype), Instr("load", (1,), t.dtype), Instr("sub", (0, 1), t.dtype),
                  Instr("abs", (2,), t.dtype)]  # fmt: skip
        inner.add_reduce(fixed(t.shape), [new, old], instrs, "max", tuple(range(t.ndim)), False, slot)
        residuals.append(slot)
    for new, z in zip(following, current, strict=True):
        inner.copy(new, z)
    site = p.site("ConvergenceError", str(step.params.get("role", "")), tol, max_iter)
    loop = Loop(
        "fixed_point",
        max_iter,
        False,
        depth,
        tuple(inner.kernels),
        (1,) * len(inner.kernels),
        tuple(residuals),
        tol,
        site,
    )
    p.kernels.append(loop)
    return current


def _plan_cond(p: Planner, step: Step, args: list[Layout]) -> list[Layout]:
    """A Branch: each branch Program planned into the same fresh result buffers; only one side runs."""
    true_body, false_body = step.nested("true_body"), step.nested("false_body")
    results = [p.fresh(fixed(t.shape), t.dtype) for t in true_body.output_types]
    sides = [tuple(p.nested(body, args[1:], results, deeper=False).walk()) for body in (true_body, false_body)]
    p.kernels.append(Branch(args[0], sides[0], sides[1]))
    return results


def _plan_while(p: Planner, step: Step, args: list[Layout]) -> list[Layout]:
    """A while Loop: the condition's kernels leave a bool, the body writes the next carries (double-buffered)."""
    cond_body, body = step.nested("cond_body"), _body(step)
    nc = step.int_attr("n_carry")
    depth = p.depth + 1
    types = body.input_types[:nc]
    current = [p.fresh(fixed(t.shape), t.dtype) for t in types]
    following = [p.fresh(fixed(t.shape), t.dtype) for t in types]
    for init, carry in zip(args[:nc], current, strict=True):
        p.copy(init, carry)
    predicate = p.fresh((), BOOL)
    test = p.nested(cond_body, [*current, *args[nc:]], [predicate])
    inner = p.nested(body, [*current, *args[nc:]], following)
    inner.walk()
    for new, carry in zip(following, current, strict=True):
        inner.copy(new, carry)
    max_iter = step.attr("max_iter")
    count = -1 if max_iter is None else int(max_iter)  # type: ignore[call-overload]
    guards = (1,) * len(inner.kernels)
    condition = tuple(test.walk())
    loop = Loop(
        "while_loop", count, False, depth, tuple(inner.kernels), guards, condition=condition, predicate=predicate
    )
    p.kernels.append(loop)
    return current


_PLANS: dict[str, Callable[[Planner, Step, list[Layout]], list[Layout]]] = {
    "scan": _plan_scan,
    "fixed_point": _plan_fixed_point,
    "cond": _plan_cond,
    "while_loop": _plan_while,
}


__all__ = ["at_step", "plan_loop"]
