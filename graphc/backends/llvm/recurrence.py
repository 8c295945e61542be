"""Planning rules for `scan`, `fixed_point`, `while_loop` (one Loop kernel per family) and `cond` (a Branch).

Imports numpy, graphc.ops.loops, graphc.schedule and the backend's kernels, layout and
plan. A loop's siblings (one node per result) share one run: the first sibling plans
the whole loop, the others pick their result. The body graph is scheduled into its own
Program and planned by a nested Planner whose inputs are the current carries, x[t]
(a layout that moves with t) and the closures, and whose outputs are the next carries
and y[t]. Carries are double-buffered: the body writes the next ones, a copy at the end
of each iteration makes them current. Every buffer of a loop is fresh (never reused by
the enclosing buffer plan), so results can be read in place by later steps. A cond plans
both bodies into the same fresh result buffers, as the two sides of one Branch kernel.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from graphc.backends.llvm.kernels import Branch, Instr, Loop
from graphc.backends.llvm.layout import Layout
from graphc.backends.llvm.plan import ErrorSite, Planner
from graphc.ir import Graph
from graphc.ops.loops import body_of, family_key, int_attr, saved_count, scan_counts
from graphc.schedule import Step, schedule

F64 = np.dtype("float64")
BOOL = np.dtype("bool")


def plan_loop(p: Planner, step: Step) -> None:
    """The step's result: the loop is planned at the first sibling; outputs get a copy of their own."""
    node = step.node
    key = family_key(node)
    if key not in p.families:
        args = [p.layouts[a] for a in step.args]
        plan = {"scan": _plan_scan, "fixed_point": _plan_fixed_point, "cond": _plan_cond, "while_loop": _plan_while}
        p.families[key] = plan[step.op](p, node.params, args)
    result = p.families[key][int_attr(node, "output")]
    if step.name in p.direct:
        p.copy(result, p.dest(step))
    else:
        p.layouts[step.name] = result


def at_step(stack: Layout, depth: int, every: int = 1) -> Layout:
    """stack[t // every] for the counter t of the loop at `depth`."""
    moving = ((depth, every, stack.strides[0]),) if stack.shape[0] > 0 else ()
    return replace(stack, shape=stack.shape[1:], strides=stack.strides[1:], dynamic=stack.dynamic + moving)


def _plan_scan(p: Planner, attrs: dict, args: list[Layout]) -> list[Layout]:
    body = body_of_attrs(attrs)
    nc, nx, _, _ = scan_counts(body, attrs["n_carry"], attrs["n_xs"])
    length, checkpoint = attrs["length"], attrs["checkpoint"]
    depth = p.depth + 1
    carry_types = [param.type for param in body.inputs[:nc]]
    carries = [p.fresh(t.shape, t.dtype) for t in carry_types]
    following = [p.fresh(t.shape, t.dtype) for t in carry_types]
    ys = [p.fresh((length, *o.shape), o.dtype) for o in body.outputs[nc:]]
    saved = [p.fresh((saved_count(length, checkpoint), *t.shape), t.dtype) for t in carry_types]
    for init, carry in zip(args[:nc], carries, strict=True):
        p.copy(init, carry)
    if length == 0:
        return [*carries, *ys, *saved]
    x_t = [at_step(x, depth) for x in args[nc : nc + nx]]
    inputs = [*carries, *x_t, *args[nc + nx :]]
    outputs = [*following, *(at_step(y, depth) for y in ys)]
    inner = Planner(schedule(body), p.memory, inputs, outputs, depth, p.check_finite)
    for carry, stack in zip(carries, saved, strict=True):
        inner.copy(carry, at_step(stack, depth, checkpoint))
    saves = len(inner.kernels)
    inner.walk()
    for new, carry in zip(following, carries, strict=True):
        inner.copy(new, carry)
    guards = [checkpoint] * saves + [1] * (len(inner.kernels) - saves)
    p.kernels.append(Loop("scan", length, bool(attrs["reverse"]), depth, tuple(inner.kernels), tuple(guards)))
    return [*carries, *ys, *saved]


def _plan_fixed_point(p: Planner, attrs: dict, args: list[Layout]) -> list[Layout]:
    body = body_of_attrs(attrs)
    nz = attrs["n_z"]
    depth = p.depth + 1
    types = [param.type for param in body.inputs[:nz]]
    current = [p.fresh(t.shape, t.dtype) for t in types]
    following = [p.fresh(t.shape, t.dtype) for t in types]
    for start, z in zip(args[:nz], current, strict=True):
        p.copy(start, z)
    inner = Planner(schedule(body), p.memory, [*current, *args[nz:]], following, depth, p.check_finite)
    inner.walk()
    residuals = []
    for new, old, t in zip(following, current, types, strict=True):
        slot = inner.fresh((), t.dtype)
        instrs = [Instr("load", (0,), t.dtype), Instr("load", (1,), t.dtype), Instr("sub", (0, 1), t.dtype),
                  Instr("abs", (2,), t.dtype)]  # fmt: skip
        inner.add_reduce(t.shape, [new, old], instrs, "max", tuple(range(len(t.shape))), False, slot)
        residuals.append(slot)
    for new, z in zip(following, current, strict=True):
        inner.copy(new, z)
    error = ErrorSite("ConvergenceError", str(attrs.get("role", "")), float(attrs["tol"]), int(attrs["max_iter"]))
    site = p.memory.site(error)
    loop = Loop("fixed_point", int(attrs["max_iter"]), False, depth, tuple(inner.kernels), (1,) * len(inner.kernels),
                tuple(residuals), float(attrs["tol"]), site)  # fmt: skip
    p.kernels.append(loop)
    return current


def _plan_cond(p: Planner, attrs: dict, args: list[Layout]) -> list[Layout]:
    """A Branch: each body planned into the same fresh result buffers; only one side runs."""
    true_body, false_body = body_of_attrs(attrs, "true_body"), body_of_attrs(attrs, "false_body")
    results = [p.fresh(o.shape, o.dtype) for o in true_body.outputs]
    sides = []
    for body in (true_body, false_body):
        inner = Planner(schedule(body), p.memory, args[1:], results, p.depth, p.check_finite)
        sides.append(tuple(inner.walk()))
    p.kernels.append(Branch(args[0], sides[0], sides[1]))
    return results


def _plan_while(p: Planner, attrs: dict, args: list[Layout]) -> list[Layout]:
    """A while Loop: the condition's kernels leave a bool, the body writes the next carries (double-buffered)."""
    cond_body, body = body_of_attrs(attrs, "cond_body"), body_of_attrs(attrs, "body")
    nc = attrs["n_carry"]
    depth = p.depth + 1
    types = [param.type for param in body.inputs[:nc]]
    current = [p.fresh(t.shape, t.dtype) for t in types]
    following = [p.fresh(t.shape, t.dtype) for t in types]
    for init, carry in zip(args[:nc], current, strict=True):
        p.copy(init, carry)
    predicate = p.fresh((), BOOL)
    test = Planner(schedule(cond_body), p.memory, [*current, *args[nc:]], [predicate], depth, p.check_finite)
    inner = Planner(schedule(body), p.memory, [*current, *args[nc:]], following, depth, p.check_finite)
    inner.walk()
    for new, carry in zip(following, current, strict=True):
        inner.copy(new, carry)
    count = -1 if attrs["max_iter"] is None else int(attrs["max_iter"])
    p.kernels.append(Loop("while_loop", count, False, depth, tuple(inner.kernels), (1,) * len(inner.kernels),
                          condition=tuple(test.walk()), predicate=predicate))  # fmt: skip
    return current


def body_of_attrs(attrs: dict, key: str = "body") -> Graph:
    body = attrs[key]
    assert isinstance(body, Graph)
    return body


__all__ = ["at_step", "body_of", "plan_loop"]
