"""Fused regions in the NumPy source backend: one generated function per body, writing into buffers.

Imports shapes, schedule and the interpreter (numpy_source imports this module and hands
it its `spell`). A `fused` step is a call of its body's function, `v3 = fused_0(x, v2, s0, r0)`:

- The body is the step's nested Program. Every value is written into a scratch buffer
  with `out=` (ufuncs and reductions) or `np.copyto` (where, astype, the runtime helpers),
  so no op allocates a temporary (the helpers still do). The scratch buffers are the body
  Program's buffer plan, which the schedule makes in place (a value whose last use is an
  op lends its buffer to that op's result, except to `where`). The root is written into `out`.
- `out` is a result buffer when the value stays inside the call (the Program's buffer plan
  over those fused steps, `schedule.plan_buffers`), and a fresh `np.empty` when it leaves
  the function (an output, or viewed by one): results never alias across calls.
- The scratch and result buffers form one set, allocated on first use and reused: a call
  takes a set from the function's pool and returns it before it returns, so concurrent
  calls (threads) never share one. A call that raises drops its set.
- Results equal the interpreter's bit for bit: the same NumPy functions on the same values.
  Layouts matter too (a reduction adds in memory order): buffers are C-ordered, and so is
  every value the reference computes from operands whose arrays of two or more axes are all
  C-contiguous. A body called with any other operand runs the reference (the interpreter
  on the body Program) instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from graphc.backends.interpreter import run_program
from graphc.schedule import VIEW_OPS, Program, Step, buffer_slots, in_body_buffer, plan_buffers
from graphc.shapes import TensorType

Spell = Callable[[Step], str]

# Non-ufunc calls whose `out=` means what it means for a ufunc.
_REDUCTIONS_WITH_OUT = ("np.sum", "np.prod", "np.max", "np.min")


def _writes_out(text: str) -> bool:
    """Whether the spelled call takes `out=`: a NumPy ufunc or one of the reductions above."""
    head = text.split("(", 1)[0]
    if head in _REDUCTIONS_WITH_OUT:
        return True
    return head.startswith("np.") and isinstance(getattr(np, head[3:], None), np.ufunc)


def spell_into(step: Step, out: str, spell: Spell, scalar_condition: bool = False) -> list[str]:
    """Statements that write the step's value into the buffer `out` (`scalar_condition`: a 0-d where condition)."""
    if step.op == "where":
        condition, x, y = step.args
        if scalar_condition:
            return [f"np.copyto({out}, {x} if {condition} else {y})"]  # one pass, not two
        return [f"np.copyto({out}, {y})", f"np.copyto({out}, {x}, where={condition})"]
    if step.op == "astype":
        return [f"np.copyto({out}, {step.args[0]}, casting='unsafe')"]  # the cast astype makes
    text = spell(step)
    if _writes_out(text):
        return [f"{text[:-1]}, out={out})"]
    return [f"np.copyto({out}, {text})"]


# --- one body --------------------------------------------------------------------------------


def scratch_of(body: Program) -> tuple[dict[str, int], list[TensorType]]:
    """The body's scratch buffers: each value's buffer by the body's plan, and their types."""
    return buffer_slots(body, functools.partial(in_body_buffer, body))


def render_body(function: str, reference: str, body: Program, names_of: list[str], spell: Spell) -> list[str]:
    """The source of one body's function: its params, its scratch buffers (`names_of` each), then `out`."""
    if body.constants:
        raise NotImplementedError("the numpy backend does not render constants inside a fused body")
    of, _ = scratch_of(body)
    root = body.outputs[0]
    params = [given.name for given in body.inputs]
    wide = [given.name for given in body.inputs if given.type.ndim >= 2]
    lines = [f"def {function}({', '.join([*params, *names_of, 'out'])}):"]
    if wide:
        contiguous = " and ".join(f"{name}.flags.c_contiguous" for name in wide)
        lines += [f"    if not ({contiguous}):", f"        return {reference}({', '.join(params)})"]
    local = {name: name for name in params}
    views = 0
    for step in body.steps:
        renamed = replace(step, args=tuple(local[a] for a in step.args))
        if step.op in VIEW_OPS and step.name != root:
            local[step.name] = f"b{views}"
            views += 1
            lines.append(f"    {local[step.name]} = {spell(renamed)}  # {step.type}")
            continue
        local[step.name] = "out" if step.name == root else names_of[of[step.name]]
        scalar = step.op == "where" and body.types[step.args[0]].ndim == 0
        statements = spell_into(renamed, local[step.name], spell, scalar)
        lines += [f"    {s}" for s in statements[:-1]] + [f"    {statements[-1]}  # {step.type}"]
    lines.append("    return out")
    return lines


def _reference(body: Program, *args: np.ndarray) -> np.ndarray:
    """The body's value by the reference interpreter (operands of any layout)."""
    (value,) = run_program(body, args)
    return value


# --- the program's plan --------------------------------------------------------------------


def _stays(program: Program, step: Step) -> bool:
    """A fused step whose value stays inside the call: it may live in a result buffer of the set."""
    return step.op == "fused" and step.name not in program.escaping


def result_slots(program: Program) -> tuple[dict[str, int], list[TensorType]]:
    """Result buffers for the fused steps whose values stay inside the call: step name -> slot.

    The Program's buffer plan over those steps: a slot is offered to a step only once every
    name viewing its last value has had its last use before that step, so a step never
    writes over its own arguments.
    """
    planned = functools.partial(_stays, program)
    return buffer_slots(plan_buffers(program, planned), planned)


class Namer:
    """Fresh names for generated globals and locals, avoiding the inputs' and every name given out."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)

    def fresh(self, base: str) -> str:
        name = base
        k = 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


def _allocate(types: tuple[TensorType, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.empty(t.shape, t.dtype) for t in types)


@dataclass(frozen=True)
class FusedPlan:
    """How a program's fused steps run: body functions, one buffer set, each step's `out`.

    `pool`, `allocate` (module globals), `held` and `result` (locals) are generated names.
    """

    functions: dict[Program, tuple[str, str, list[str]]]  # body -> function, reference, its scratch buffers
    buffers: list[tuple[str, TensorType]]  # the set: scratch first, then results
    results: dict[str, str]  # step name -> its result buffer; absent: a fresh array
    lines: list[str]  # the body functions' source
    pool: str
    allocate: str
    held: str
    result: str

    def call(self, step: Step) -> str:
        """The right-hand side of a fused step: its body function on its arguments, buffers and `out`."""
        assert step.body is not None
        function, _, scratch = self.functions[step.body]
        out = self.results.get(step.name)
        if out is None:
            out = f"np.empty({step.type.shape!r}, np.{step.type.dtype.name})"
        return f"{function}({', '.join([*step.args, *scratch, out])})"

    def header_lines(self) -> list[str]:
        """Comments naming the buffers, then the body functions."""
        if not self.buffers:
            return self.lines
        listed = ", ".join(f"{name}: {t}" for name, t in self.buffers)
        return [f"# buffers, allocated once per concurrent call and reused: {listed}", *self.lines]

    def acquire_lines(self) -> list[str]:
        if not self.buffers:
            return []
        targets = ", ".join(name for name, _ in self.buffers)
        if len(self.buffers) == 1:
            targets += ","
        return [
            f"    {self.held} = {self.pool}.pop() if {self.pool} else {self.allocate}()",
            f"    {targets} = {self.held}",
        ]

    def return_lines(self, value: str) -> list[str]:
        """Return `value`, giving the buffer set back to the pool first (after every copy is made)."""
        if not self.buffers:
            return [f"    return {value}"]
        return [f"    {self.result} = {value}", f"    {self.pool}.append({self.held})", f"    return {self.result}"]

    def namespace(self) -> dict[str, object]:
        """The globals the source refers to: the pool, its allocator, each body's reference."""
        table: dict[str, object] = {
            self.pool: [],
            self.allocate: functools.partial(_allocate, tuple(t for _, t in self.buffers)),
        }
        for body, (_, reference, _) in self.functions.items():
            table[reference] = functools.partial(_reference, body)
        return table


def _scratch_names(
    scratches: list[list[TensorType]], namer: Namer
) -> tuple[list[list[str]], dict[tuple[TensorType, int], str]]:
    """Global names for scratch buffers: the j-th buffer of a type is one buffer, shared by every body."""
    shared: dict[tuple[TensorType, int], str] = {}
    per_body = []
    for types in scratches:
        seen: dict[TensorType, int] = {}
        names = []
        for type_ in types:
            key = (type_, seen.get(type_, 0))
            seen[type_] = key[1] + 1
            if key not in shared:
                shared[key] = namer.fresh(f"s{len(shared)}")
            names.append(shared[key])
        per_body.append(names)
    return per_body, shared


def plan(program: Program, spell: Spell, taken: set[str]) -> FusedPlan | None:
    """The plan for the program's fused steps (None when it has none); `taken`: names in use."""
    bodies = [step.body for step in program.steps if step.op == "fused" and step.body is not None]
    if not bodies:
        return None
    bodies = list(dict.fromkeys(bodies))
    namer = Namer(taken)
    per_body, shared = _scratch_names([scratch_of(body)[1] for body in bodies], namer)
    slot_of, result_types = result_slots(program)
    result_names = [namer.fresh(f"r{k}") for k in range(len(result_types))]
    functions: dict[Program, tuple[str, str, list[str]]] = {}
    lines: list[str] = []
    for k, (body, names) in enumerate(zip(bodies, per_body, strict=True)):
        function = namer.fresh(f"fused_{k}")
        reference = namer.fresh(f"fused_{k}_reference")
        functions[body] = (function, reference, names)
        lines += [*render_body(function, reference, body, names, spell), ""]
    buffers = [(name, type_) for (type_, _), name in shared.items()]
    buffers += list(zip(result_names, result_types, strict=True))
    results = {step: result_names[slot] for step, slot in slot_of.items()}
    return FusedPlan(
        functions,
        buffers,
        results,
        lines,
        namer.fresh("pool"),
        namer.fresh("allocate"),
        namer.fresh("held"),
        namer.fresh("result"),
    )
