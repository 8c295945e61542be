"""The reference interpreter: runs a Program step by step with each op's NumPy `eval`.

Imports errors, shapes, ops and schedule. Every backend is tested against it. A fused
step runs its body Program here step by step, so every body value is checked too; a loop
runs its body Program under the loop's reference semantics (graphc.ops.loops), once per
family of sibling steps. `gc.evaluate` (graphc.compile) schedules a graph and runs it here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from graphc.ops.control_flow import CONTROL_OPS, run_control
from graphc.ops.loops import LOOP_OPS, Signature, run_family
from graphc.schedule import Input, Program, Step, loop_family

Shared = dict[tuple[object, ...], list[np.ndarray]]


class EvaluationError(AssertionError):
    """An op's eval produced a value that disagrees with its inferred type (a graphc bug)."""


def feed_value(given: Input, value: object) -> np.ndarray:
    """`value` as an array of the input's dtype and shape; ValueError/TypeError naming its var."""
    array = np.asarray(value)
    if array.shape != given.type.shape:
        raise ValueError(f"input {given.label!r}: expected shape {given.type.shape}, got {array.shape}")
    if array.dtype != given.type.dtype:
        if not np.can_cast(array.dtype, given.type.dtype, "same_kind"):
            raise TypeError(f"input {given.label!r}: expected {given.type.dtype}, got {array.dtype}")
        array = array.astype(given.type.dtype)
    return array


def run_step(step: Step, args: Sequence[np.ndarray], shared: Shared) -> np.ndarray:
    """One step's NumPy reference value, checked against its static type.

    Sibling loop steps share one run of their loop through `shared`.
    """
    if step.op == "fused":
        assert step.body is not None
        (value,) = _run(step.body, args)
    elif step.op in LOOP_OPS:
        value = _loop_result(step, args, shared)
    else:
        try:
            value = np.asarray(step.record.eval(*args, **step.params))
        except (IndexError, np.linalg.LinAlgError) as exc:  # an index out of range (take), a singular matrix
            raise type(exc)(f"{exc} in {step.op}{step.where}") from None  # name the op and the user's line
    if value.shape != step.type.shape or value.dtype != step.type.dtype:
        raise EvaluationError(f"{step.op} produced {value.dtype}{list(value.shape)}, its type says {step.type}")
    return value


def _loop_result(step: Step, args: Sequence[np.ndarray], shared: Shared) -> np.ndarray:
    """The step's result of its loop (or cond), running it the first time one of its siblings asks."""
    key = loop_family(step)
    if key not in shared:
        shared[key] = _run_loop(step, args)
    return shared[key][step.int_attr("output")]


def _run_loop(step: Step, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every result of the step's loop or cond, its body Programs run here."""
    if step.op in CONTROL_OPS:
        bodies = {key: functools.partial(_run, body) for key, body in step.bodies}
        return run_control(step.op, args, bodies, **step.params)
    body = step.body
    assert body is not None
    signature = Signature(body.input_types, body.output_types)
    return run_family(step.op, args, functools.partial(_run, body), signature, **step.params)


def _run(program: Program, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    values: dict[str, np.ndarray] = dict(program.constants)
    values.update(zip((given.name for given in program.inputs), args, strict=True))
    shared: Shared = {}
    for step in program.steps:
        values[step.name] = run_step(step, [values[a] for a in step.args], shared)
        for name in step.frees:
            del values[name]
    return [values[name] for name in program.outputs]


def run_program(program: Program, args: Sequence[object]) -> list[np.ndarray]:
    """The values of program.outputs for one argument per input, each step run with op.eval.

    The results may alias the arguments, the constants and each other.
    """
    if len(args) != len(program.inputs):
        expected = ", ".join(i.name for i in program.inputs)
        raise TypeError(f"the program takes {len(program.inputs)} arguments ({expected}), got {len(args)}")
    return _run(program, [feed_value(given, value) for given, value in zip(program.inputs, args, strict=True)])
