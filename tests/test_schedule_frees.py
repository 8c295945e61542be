"""schedule.py: the order of a step's `frees` (inputs by name, then constants, then steps, numerically)
and the buffer plan's oldest-first reuse, on programs with many names of each kind."""

from __future__ import annotations

import re

import numpy as np

import graphc as gc
from graphc.ir import Graph
from graphc.schedule import schedule


def _expected_order(name: str) -> tuple[int, str, int]:
    """The documented order, spelled independently of schedule's ranks."""
    if re.fullmatch(r"[vc]\d+", name):
        return (1 if name[0] == "c" else 2, name[0], int(name[1:]))
    return (0, name, 0)


def test_frees_list_inputs_by_name_then_constants_then_steps_in_numeric_order():
    names = ["zeta", "alpha", "b", "x_1", "a10", "a9"]
    xs = [gc.var(n, (3,)) for n in names]
    terms = [gc.sin(x) * float(k + 2) for k, x in enumerate(xs)]  # 12 steps, 6 constants
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    last = total * xs[0] + xs[5] * xs[3] * 7.0 + sum(xs[1:3], start=gc.const(np.ones(3)))
    program = schedule(Graph([last.node], [x.node for x in xs]))
    freed = [name for step in program.steps for name in step.frees]
    assert sorted(freed) == sorted(set(freed))  # each name dies once
    for step in program.steps:
        assert list(step.frees) == sorted(step.frees, key=_expected_order)
    assert {i.name for i in program.inputs} <= set(freed)
    assert any(len({_expected_order(n)[0] for n in s.frees}) > 1 for s in program.steps)  # mixed kinds exist


def test_the_buffer_plan_reuses_the_oldest_dead_buffer_among_many():
    x = gc.var("x", (4,))
    parts = [gc.sin(x * float(k)) for k in range(40)]  # 40 live buffers of one type
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    tail = gc.exp(total)
    for _ in range(5):
        tail = gc.exp(tail)
    program = schedule(Graph([tail.node]))
    dead: list[str] = []
    for step in program.steps:
        if step.reuse is not None:
            assert step.reuse == dead.pop(0)  # oldest first
        dead += [n for n in step.frees if program.step(n) is not None and program.step(n).type.ndim > 0]
    assert any(step.reuse is not None for step in program.steps)
