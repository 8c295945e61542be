"""Fused regions in the NumPy source backend: one generated function per body, writing into buffers.

Imports errors, shapes, ir, ops and schedule (numpy_source imports this module and hands
it its `spell`). A `fused` step is a call of its body's function, `v3 = fused_0(x, v2, s0, r0)`:

- Inside a body every value is written into a scratch buffer with `out=` (ufuncs and
  reductions) or `np.copyto` (where, astype, the runtime helpers), so no op allocates a
  temporary (the helpers still do). A value whose last use is an op lends its buffer to
  that op's result (in place), except to `where`, which writes in two steps. The root is
  written into `out`.
- `out` is a result buffer when the value stays inside the call (planned by liveness over
  the program, like the schedule's buffer plan), and a fresh `np.empty` when it leaves the
  function (an output, or viewed by one): results never alias across calls.
- The scratch and result buffers form one set, allocated on first use and reused: a call
  takes a set from the function's pool and returns it before it returns, so concurrent
  calls (threads) never share one. A call that raises drops its set.
- Results equal the interpreter's bit for bit: the same NumPy functions on the same values.
  Layouts matter too (a reduction adds in memory order): buffers are C-ordered, and so is
  every value the reference computes from operands whose arrays of two or more axes are all
  C-contiguous. A body called with any other operand runs the reference instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from graphc.ir import Graph, Node
from graphc.ops.control import fused, is_param
from graphc.schedule import Program, Step
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


def spell_into(step: Step, out: str, spell: Spell) -> list[str]:
    """Statements that write the step's value into the buffer `out`."""
    if step.op == "where":
        condition, x, y = step.args
        if step.node.inputs[0].ndim == 0:
            return [f"np.copyto({out}, {x} if {condition} else {y})"]  # one pass, not two
        return [f"np.copyto({out}, {y})", f"np.copyto({out}, {x}, where={condition})"]
    if step.op == "astype":
        return [f"np.copyto({out}, {step.args[0]}, casting='unsafe')"]  # the cast astype makes
    text = spell(step)
    if _writes_out(text):
        return [f"{text[:-1]}, out={out})"]
    return [f"np.copyto({out}, {text})"]


# --- scratch buffers inside one body -------------------------------------------------------


@dataclass(frozen=True)
class Scratch:
    """A body's scratch plan: the local buffer of each value (root, params and views have none)."""

    of: dict[Node, int]
    types: list[TensorType]


def _is_view(node: Node, root: Node) -> bool:
    return node.op.name == "broadcast_to" and node is not root


def plan_scratch(body: Graph) -> Scratch:
    """Buffers for the body's values by liveness: each takes the first free buffer of its type."""
    nodes = body.nodes
    root = body.outputs[0]
    last = {operand: k for k, node in enumerate(nodes) for operand in node.inputs}
    scratch = Scratch({}, [])
    free: dict[TensorType, list[int]] = {}
    for k, node in enumerate(nodes):
        dying = [scratch.of[i] for i in dict.fromkeys(node.inputs) if i in scratch.of and last[i] == k]
        in_place = node.op.name != "where"
        if in_place:
            _release(dying, scratch, free)
        if not (is_param(node) or node is root or _is_view(node, root)):
            scratch.of[node] = take(free, scratch.types, node.type)
        if not in_place:
            _release(dying, scratch, free)
    return scratch


def take(free: dict[TensorType, list[int]], types: list[TensorType], type_: TensorType) -> int:
    """The first free buffer of the type, or a new one (appended to `types`)."""
    pool = free.get(type_)
    if pool:
        return pool.pop(0)
    types.append(type_)
    return len(types) - 1


def _release(buffers: list[int], scratch: Scratch, free: dict[TensorType, list[int]]) -> None:
    for index in buffers:
        free.setdefault(scratch.types[index], []).append(index)


def render_body(
    function: str, reference: str, body: Graph, scratch: Scratch, names_of: list[str], spell: Spell
) -> list[str]:
    """The source of one body's function: params p0.., its scratch buffers (`names_of` each), then `out`."""
    root = body.outputs[0]
    names = {p: f"p{i}" for i, p in enumerate(body.inputs)}
    params = list(names.values())
    wide = [names[p] for p in body.inputs if p.ndim >= 2]
    lines = [f"def {function}({', '.join([*params, *names_of, 'out'])}):"]
    if wide:
        contiguous = " and ".join(f"{name}.flags.c_contiguous" for name in wide)
        lines += [f"    if not ({contiguous}):", f"        return {reference}({', '.join(params)})"]
    for node in body.nodes:
        if node in names:
            continue
        args = tuple(names[i] for i in node.inputs)
        if _is_view(node, root):
            names[node] = f"b{len(names) - len(params)}"
            lines.append(f"    {names[node]} = {spell(Step(names[node], node, args, ()))}  # {node.type}")
            continue
        names[node] = "out" if node is root else names_of[scratch.of[node]]
        statements = spell_into(Step(names[node], node, args, ()), names[node], spell)
        lines += [f"    {s}" for s in statements[:-1]] + [f"    {statements[-1]}  # {node.type}"]
    lines.append("    return out")
    return lines


# --- the program's plan --------------------------------------------------------------------


def plan_results(program: Program) -> tuple[dict[str, int], list[TensorType]]:
    """Result buffers for the fused steps whose values stay inside the call: step name -> slot.

    A slot is offered to a step only once every name viewing its last value has had its
    last use before that step, so a step never writes over its own arguments.
    """
    escaping = {program.base(name) for name in program.outputs}
    death: dict[str, int] = {}
    for index, step in enumerate(program.steps):
        for name in step.frees:
            death[program.base(name)] = index
    released: dict[int, list[str]] = {}
    for base, index in death.items():
        released.setdefault(index, []).append(base)
    slot_of: dict[str, int] = {}
    types: list[TensorType] = []
    free: dict[TensorType, list[int]] = {}
    for index, step in enumerate(program.steps):
        if step.op == "fused" and step.name not in escaping:
            slot_of[step.name] = take(free, types, step.type)
        for base in released.get(index, []):
            if base in slot_of:
                free.setdefault(types[slot_of[base]], []).append(slot_of[base])
    return slot_of, types


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

    functions: dict[Graph, tuple[str, str, list[str]]]  # body -> function, reference, its scratch buffers
    buffers: list[tuple[str, TensorType]]  # the set: scratch first, then results
    results: dict[str, str]  # step name -> its result buffer; absent: a fresh array
    lines: list[str]  # the body functions' source
    pool: str
    allocate: str
    held: str
    result: str

    def call(self, step: Step) -> str:
        """The right-hand side of a fused step: its body function on its arguments, buffers and `out`."""
        function, _, scratch = self.functions[step.node.attr("body")]  # type: ignore[index]
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
            table[reference] = functools.partial(fused.eval, body=body)
        return table


def _scratch_names(scratches: list[Scratch], namer: Namer) -> tuple[list[list[str]], dict[tuple[TensorType, int], str]]:
    """Global names for scratch buffers: the j-th buffer of a type is one buffer, shared by every body."""
    shared: dict[tuple[TensorType, int], str] = {}
    per_body = []
    for scratch in scratches:
        seen: dict[TensorType, int] = {}
        names = []
        for type_ in scratch.types:
            key = (type_, seen.get(type_, 0))
            seen[type_] = key[1] + 1
            if key not in shared:
                shared[key] = namer.fresh(f"s{len(shared)}")
            names.append(shared[key])
        per_body.append(names)
    return per_body, shared


def plan(program: Program, spell: Spell, taken: set[str]) -> FusedPlan | None:
    """The plan for the program's fused steps (None when it has none); `taken`: names in use."""
    steps = [step for step in program.steps if step.op == "fused"]
    if not steps:
        return None
    namer = Namer(taken)
    bodies: list[Graph] = list(dict.fromkeys(step.node.attr("body") for step in steps))  # type: ignore[misc]
    scratches = [plan_scratch(body) for body in bodies]
    per_body, shared = _scratch_names(scratches, namer)
    slot_of, result_types = plan_results(program)
    result_names = [namer.fresh(f"r{k}") for k in range(len(result_types))]
    functions: dict[Graph, tuple[str, str, list[str]]] = {}
    lines: list[str] = []
    for k, (body, scratch, names) in enumerate(zip(bodies, scratches, per_body, strict=True)):
        function = namer.fresh(f"fused_{k}")
        reference = namer.fresh(f"fused_{k}_reference")
        functions[body] = (function, reference, names)
        lines += [*render_body(function, reference, body, scratch, names, spell), ""]
    buffers = [(name, type_) for (type_, _), name in shared.items()] + list(
        zip(result_names, result_types, strict=True)
    )
    results = {step: result_names[slot] for step, slot in slot_of.items()}
    return FusedPlan(
        functions, buffers, results, lines,
        namer.fresh("pool"), namer.fresh("allocate"), namer.fresh("held"), namer.fresh("result"),
    )  # fmt: skip
