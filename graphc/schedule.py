"""Graph -> Program: a straight-line, linear A-normal form that every backend renders.

Imports errors, shapes, ir and ops (the op records). A Program names every value once:
inputs after their vars (sanitized to identifiers, deduplicated), constants `c0, c1, ...`,
step results `v0, v1, ...`, in a deterministic order. Each step records the names whose
last use it is, and a buffer plan says which dead buffer of the same type a step may
overwrite. A fused region, a loop's body and each branch of a cond is a nested Program of
its own (`Step.bodies`, by attribute name), scheduled and planned the same way, so
renderers never walk graphs: they read Programs, and a Step carries what they need (op
record, attributes, type, provenance), never a Node.
"""

from __future__ import annotations

import functools
import keyword
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from graphc.errors import GraphError, Location, where
from graphc.ir import ConstValue, Graph, Node, format_array
from graphc.ops.base import Kind, Op
from graphc.shapes import TensorType

# Ops whose result may share memory with their first argument (NumPy returns views).
VIEW_OPS = frozenset({"reshape", "transpose", "broadcast_to", "slice"})

# Ops that hold body Graphs (attributes `body`; cond: `true_body`, `false_body`; while_loop:
# `cond_body`, `body`), each scheduled into a nested Program.
BODY_OPS = frozenset({"fused", "scan", "fixed_point", "cond", "while_loop"})

# In a fused body, ops that may not write over an operand that dies at them: `where` is
# rendered in two passes (y, then x where the condition holds), which would read
# overwritten points.
NOT_IN_PLACE = frozenset({"where"})

# Free names that rendered code may use; no input is ever given one of them.
RESERVED = frozenset({"np", "rt"})
_GENERATED = re.compile(r"[vc]\d+")

Attrs = tuple[tuple[str, Hashable], ...]

Results = np.ndarray | tuple[np.ndarray, ...]
"""What a rendered Program returns: one array (rendered with single=True), or a tuple, one per output."""
Rendered = Callable[..., Results]
"""A Program rendered by a backend: called with one argument per input."""


@dataclass(frozen=True)
class Input:
    """An argument of the program: its name, the name the user gave its var (`label`), its type."""

    name: str
    label: str
    type: TensorType


@dataclass(frozen=True)
class Origin:
    """The forward node a derivative's step belongs to: its op, and where the user built it."""

    op: str
    loc: Location | None


@dataclass(frozen=True)
class Step:
    """`name = op(*args; attrs)`; `frees` are the names used here for the last time.

    `record` is the op's record (kind, cost class, reference eval); `bodies` the nested
    Programs of a fused region, a loop or a cond: (attribute name, its Graph scheduled), in
    the node's attribute order; `body` is the one named "body". `loc` is where
    the user built the node, `differentiates` the forward node a derivative's step
    belongs to (error messages name both).

    `reuse` is the buffer plan: the name of a buffer of the same type, dead before this
    step, that the result may be written into (None: allocate). A backend that honors it
    must keep that buffer alive past its last use.
    """

    name: str
    record: Op
    args: tuple[str, ...]
    attrs: Attrs
    type: TensorType
    frees: tuple[str, ...] = ()
    reuse: str | None = None
    bodies: tuple[tuple[str, Program], ...] = ()
    loc: Location | None = None
    differentiates: Origin | None = None

    @property
    def op(self) -> str:
        return self.record.name

    @property
    def kind(self) -> Kind:
        return self.record.kind

    @property
    def body(self) -> Program | None:
        """The nested Program of the `body` attribute (fused, scan, fixed_point, while_loop), else None."""
        return dict(self.bodies).get("body")

    def nested(self, key: str) -> Program:
        """The nested Program of the Graph attribute `key` (`true_body`, `cond_body`, ...)."""
        for name, program in self.bodies:
            if name == key:
                return program
        raise KeyError(f"{self.op} has no body {key!r}")

    @property
    def params(self) -> dict[str, Hashable]:
        """The attributes as keyword arguments."""
        return dict(self.attrs)

    def attr(self, key: str) -> Hashable:
        for name, value in self.attrs:
            if name == key:
                return value
        raise KeyError(f"{self.op} has no attribute {key!r}")

    def int_attr(self, key: str) -> int:
        """An integer attribute (axis, n_carry, output, ...)."""
        value = self.attr(key)
        assert isinstance(value, int)
        return value

    @property
    def where(self) -> str:
        """' (built at file:line)' for error messages, or ''."""
        return where(self.loc)


@dataclass(frozen=True, eq=False)
class Program:
    """A straight-line program: inputs, constants, steps in order, output names.

    An output name may repeat and may be an input or a constant.
    """

    inputs: tuple[Input, ...]
    constants: Mapping[str, np.ndarray]
    steps: tuple[Step, ...]
    outputs: tuple[str, ...]
    types: Mapping[str, TensorType]

    @functools.cached_property
    def _step_of(self) -> dict[str, Step]:
        return {step.name: step for step in self.steps}

    def step(self, name: str) -> Step | None:
        """The step that computes `name` (None for inputs and constants)."""
        return self._step_of.get(name)

    def base(self, name: str) -> str:
        """The name whose memory `name` may view: follows VIEW_OPS steps to their root."""
        step = self._step_of.get(name)
        while step is not None and step.op in VIEW_OPS:
            name = step.args[0]
            step = self._step_of.get(name)
        return name

    def view_chain(self, name: str) -> list[Step]:
        """The VIEW_OPS steps between `name` and its base, outermost first."""
        chain = []
        step = self._step_of.get(name)
        while step is not None and step.op in VIEW_OPS:
            chain.append(step)
            step = self._step_of.get(step.args[0])
        return chain

    @functools.cached_property
    def escaping(self) -> frozenset[str]:
        """The names whose memory an output may view: their buffers leave the program."""
        return frozenset(self.base(name) for name in self.outputs)

    @property
    def input_types(self) -> tuple[TensorType, ...]:
        return tuple(given.type for given in self.inputs)

    @property
    def output_types(self) -> tuple[TensorType, ...]:
        return tuple(self.types[name] for name in self.outputs)

    def constant_text(self, name: str) -> str:
        """A constant's short deterministic spelling (its values, or a digest when large)."""
        return format_array(self.constants[name])

    def __str__(self) -> str:
        return "\n".join(format_program(self))


def step_text(step: Step) -> str:
    """The step as one line of the listing: `v3 = sum(v2, axis=(0,), keepdims=False) : f64[]`."""
    attrs = "".join(f", {k}={v!r}" for k, v in step.attrs)
    return f"{step.name} = {step.op}({', '.join(step.args)}{attrs}) : {step.type}"


def format_program(program: Program, indent: str = "") -> list[str]:
    """A readable listing: one line per constant and step, with last uses and reuse; bodies nested."""
    header = ", ".join(f"{i.name}: {i.type}" for i in program.inputs)
    lines = [f"{indent}program({header}) {{"]
    for name in program.constants:
        lines.append(f"{indent}  {name} = const {program.constant_text(name)} : {program.types[name]}")
    listed: set[int] = set()
    for step in program.steps:
        line = f"{indent}  {step_text(step)}"
        notes = []
        if step.reuse is not None:
            notes.append(f"reuses {step.reuse}")
        if step.frees:
            notes.append(f"frees {', '.join(step.frees)}")
        if notes:
            line += "  # " + "; ".join(notes)
        lines.append(line)
        for key, body in step.bodies:
            if id(body) in listed:
                continue
            listed.add(id(body))
            if key != "body":
                lines.append(f"{indent}    # {key}:")
            lines += format_program(body, indent + "    ")
    lines.append(f"{indent}  return {', '.join(program.outputs)}")
    lines.append(f"{indent}}}")
    return lines


# --- names -----------------------------------------------------------------------------


def identifier(name: str) -> str:
    """`name` as a Python identifier: NFKC-normalized, invalid characters as '_'."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch if ("a" + ch).isidentifier() else "_" for ch in text)
    if not text.isidentifier():
        text = "_" + text
    return text


def _is_free(name: str, taken: set[str]) -> bool:
    reserved = keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED
    return not reserved and name not in taken and not _GENERATED.fullmatch(name)


def input_names(inputs: Sequence[Node]) -> list[str]:
    """One distinct identifier per input, after its var name ('x', then 'x_1'; 'lambda_1', 'my_var')."""
    taken: set[str] = set()
    names = []
    for node in inputs:
        base = identifier(str(node.attr("name"))) if node.op.name == "var" else "arg"
        name = base
        k = 0
        while not _is_free(name, taken):
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        names.append(name)
    return names


# --- schedule ---------------------------------------------------------------------------


def _needed(graph: Graph) -> list[Node]:
    """The graph's nodes in toposort order, minus those only reachable through an input."""
    given = {id(n) for n in graph.inputs}
    needed = {id(n) for n in graph.outputs}
    order = graph.nodes
    for node in reversed(order):
        if id(node) in needed and id(node) not in given:
            needed.update(id(i) for i in node.inputs)
    return [n for n in order if id(n) in needed]


def missing_vars(graph: Graph) -> list[Node]:
    """The vars the outputs depend on that are not among graph.inputs, in toposort order."""
    given = {id(n) for n in graph.inputs}
    return [n for n in _needed(graph) if n.op.name == "var" and id(n) not in given]


def describe_vars(nodes: Sequence[Node]) -> str:
    """'x' (f64[3]) (built at file:line), ... for error messages."""
    return ", ".join(f"{_label(n)} ({n.type}){where(n.loc)}" for n in nodes)


def _label(node: Node) -> str:
    return repr(node.attr("name")) if node.op.name == "var" else node.op.name


def _check_inputs(graph: Graph, nodes: list[Node]) -> None:
    given = {id(n) for n in graph.inputs}
    if len(given) != len(graph.inputs):
        twice = [n for i, n in enumerate(graph.inputs) if n in graph.inputs[:i]]
        raise GraphError(f"an input is listed twice: {describe_vars(twice)}")
    missing = [n for n in nodes if n.op.name == "var" and id(n) not in given]
    if missing:
        raise GraphError(f"the outputs depend on vars that are not inputs: {describe_vars(missing)}")


def _name_values(graph: Graph, nodes: list[Node]) -> tuple[dict[Node, str], dict[str, np.ndarray]]:
    """Names for inputs, constants (c0, c1, ...) and step results (v0, v1, ...)."""
    names = dict(zip(graph.inputs, input_names(graph.inputs), strict=True))
    constants: dict[str, np.ndarray] = {}
    count = 0
    for node in nodes:
        if node in names:
            continue
        if node.op.name == "const":
            value = node.attr("value")
            assert isinstance(value, ConstValue)
            names[node] = f"c{len(constants)}"
            constants[names[node]] = value.array
            continue
        names[node] = f"v{count}"
        count += 1
    return names, constants


def named_nodes(graph: Graph) -> dict[str, Node]:
    """The node each name of `schedule(graph)` stands for (for tools that map code back to the graph)."""
    names, _ = _name_values(graph, _needed(graph))
    return {name: node for node, name in names.items()}


def _last_uses(steps: list[tuple[str, tuple[str, ...]]], outputs: tuple[str, ...]) -> dict[int, list[str]]:
    """For each step index, the names used there for the last time (outputs never die)."""
    last: dict[str, int] = {}
    for index, (_, args) in enumerate(steps):
        for arg in args:
            last[arg] = index
    for name in outputs:
        last.pop(name, None)
    frees: dict[int, list[str]] = {}
    for name, index in last.items():
        frees.setdefault(index, []).append(name)
    return frees


def make_step(
    node: Node,
    name: str,
    args: Sequence[str],
    frees: Sequence[str] = (),
    bodies: tuple[tuple[str, Program], ...] = (),
) -> Step:
    """The step computing `node` as `name` from the values named `args` (its body Graphs left out)."""
    op = node.op
    assert isinstance(op, Op)
    attrs = node.attrs
    if attrs:  # most nodes have none
        attrs = tuple(kv for kv in attrs if not isinstance(kv[1], Graph))
    origin = getattr(node, "differentiates", None)
    differentiates = None if origin is None else Origin(origin.op.name, origin.loc)
    return Step(name, op, tuple(args), attrs, node.type, tuple(frees), None, bodies, node.loc, differentiates)


def _input(node: Node, name: str) -> Input:
    label = str(node.attr("name")) if node.op.name == "var" else name
    return Input(name, label, node.type)


def schedule(graph: Graph) -> Program:
    """The graph as a Program: steps in toposort order, named, with last uses and a buffer plan.

    The body of a fused region, a loop or a cond becomes the step's nested Program (one
    Program per body Graph, shared by a loop's sibling steps). Raises GraphError when the outputs
    reach a var that is not among graph.inputs.
    """
    return _schedule(graph, {}, fused_body=False)


def _schedule(graph: Graph, bodies: dict[tuple[Graph, bool], Program], fused_body: bool) -> Program:
    nodes = _needed(graph)
    _check_inputs(graph, nodes)
    _check_lowered(nodes)
    names, constants = _name_values(graph, nodes)
    given = set(graph.inputs)
    computed = [n for n in nodes if n not in given and n.op.name != "const"]
    pairs = [(names[n], tuple(names[i] for i in n.inputs)) for n in computed]
    outputs = tuple(names[n] for n in graph.outputs)
    frees = _last_uses(pairs, outputs)
    rank = _ranks([names[n] for n in graph.inputs], constants, pairs)
    steps = tuple(
        make_step(node, name, args, sorted(frees.get(k, ()), key=rank.__getitem__), _bodies(node, bodies))
        for k, (node, (name, args)) in enumerate(zip(computed, pairs, strict=True))
    )
    program = Program(
        inputs=tuple(_input(n, names[n]) for n in graph.inputs),
        constants=constants,
        steps=steps,
        outputs=outputs,
        types={names[n]: n.type for n in [*graph.inputs, *nodes]},
    )
    if fused_body:
        return plan_buffers(program, planned=functools.partial(in_body_buffer, program), in_place=True)
    return plan_buffers(program)


def _bodies(node: Node, bodies: dict[tuple[Graph, bool], Program]) -> tuple[tuple[str, Program], ...]:
    """The nested Programs of a fused region, a loop or a cond, by attribute (scheduled once per body Graph)."""
    if node.op.name not in BODY_OPS:
        return ()
    found = []
    for name, graph in node.attrs:
        if not isinstance(graph, Graph):
            continue
        key = (graph, node.op.name == "fused")
        if key not in bodies:
            bodies[key] = _schedule(graph, bodies, fused_body=key[1])
        found.append((name, bodies[key]))
    return tuple(found)


def in_body_buffer(program: Program, step: Step) -> bool:
    """Whether a step of a fused body has a buffer of its own: every value but views and the result (0-d too)."""
    return step.op not in VIEW_OPS and step.name not in program.escaping


def _check_lowered(nodes: list[Node]) -> None:
    """Programs hold fixed-shape primitives: named sizes and transient ops (stop_gradient, custom, dim) are gone."""
    for node in nodes:
        if getattr(node.op, "transient", False) or not node.type.static:
            raise GraphError(
                f"cannot schedule {node.op.name} ({node.type}): gc.compile specializes named dimensions and "
                "removes stop_gradient and custom nodes first"
            )


def _ranks(
    inputs: list[str], constants: Mapping[str, object], steps: list[tuple[str, tuple[str, ...]]]
) -> dict[str, int]:
    """Each name's place in a step's `frees`: inputs by name, then constants, then steps, each in numeric order.

    Constants and steps are named in order (c0, c1, ...; v0, v1, ...), so their order is the order they were named in.
    """
    order = [*sorted(inputs), *constants, *(name for name, _ in steps)]
    return {name: k for k, name in enumerate(order)}


def loop_family(step: Step) -> tuple[object, ...]:
    """What the sibling steps of one loop or cond share: op, arguments, bodies and every attribute but `output`."""
    bodies = tuple(id(body) for _, body in step.bodies)
    return (step.op, step.args, bodies, tuple(kv for kv in step.attrs if kv[0] != "output"))


# --- buffer plan ----------------------------------------------------------------------------


def allocates(step: Step) -> bool:
    """Whether the default buffer plan places a step: a new array (not a view) and not 0-d (often NumPy scalars)."""
    return step.op not in VIEW_OPS and step.type.ndim > 0


def _buffer_deaths(program: Program, planned: Callable[[Step], bool]) -> dict[int, list[str]]:
    """For each step index, the buffers of planned steps that are dead after it.

    A buffer dies when every name viewing it has had its last use; buffers that an
    output views, and the memory of inputs and constants, never die.
    """
    death: dict[str, int] = {}
    for index, step in enumerate(program.steps):
        for name in step.frees:
            base = program.base(name)
            owner = program.step(base)
            if owner is not None and base not in program.escaping and planned(owner):
                death[base] = max(death.get(base, index), index)
    deaths: dict[int, list[str]] = {}
    for base, index in death.items():
        deaths.setdefault(index, []).append(base)
    return deaths


def _read_directly(program: Program, step: Step, base: str) -> bool:
    """Whether `step` reads buffer `base` itself and through no view: each point before writing it."""
    return base in step.args and all(a == base or program.base(a) != base for a in step.args)


def plan_buffers(program: Program, planned: Callable[[Step], bool] = allocates, in_place: bool = False) -> Program:
    """The program with `reuse` set: each planned step takes the oldest dead buffer of its type.

    `reuse` names the dead value that last occupied the buffer; only the buffers of planned
    steps are offered. Without `in_place` only buffers dead before the step are offered, so
    a step never overwrites its own arguments. With it (fused bodies: elementwise ops of one
    shape) a buffer that dies at the step is offered too, when the step reads it directly
    and its op is not in NOT_IN_PLACE.
    """
    deaths = _buffer_deaths(program, planned)
    free: dict[TensorType, deque[str]] = {}
    steps = []
    for index, step in enumerate(program.steps):
        dying = deaths.get(index, [])
        if in_place and step.op not in NOT_IN_PLACE:
            early = [a for a in dict.fromkeys(step.args) if a in dying and _read_directly(program, step, a)]
            dying = [base for base in dying if base not in early]
            _release(early, program, free)
        pool = free.get(step.type)
        reuse = pool.popleft() if planned(step) and pool else None
        steps.append(step if reuse == step.reuse else _reusing(step, reuse))
        _release(dying, program, free)
    return replace(program, steps=tuple(steps))


def _reusing(step: Step, reuse: str | None) -> Step:
    """`step` with `reuse` set (dataclasses.replace, spelled out: it cost a third of schedule's time)."""
    return Step(
        step.name, step.record, step.args, step.attrs, step.type, step.frees, reuse, step.bodies, step.loc,
        step.differentiates,
    )  # fmt: skip


def _release(bases: list[str], program: Program, free: dict[TensorType, deque[str]]) -> None:
    for base in bases:
        pool = free.get(program.types[base])
        if pool is None:
            pool = free[program.types[base]] = deque()
        pool.append(base)


def buffer_slots(program: Program, planned: Callable[[Step], bool]) -> tuple[dict[str, int], list[TensorType]]:
    """The plan's buffers numbered: each planned step's slot (the slot of the value it reuses, or a new one).

    Also returns the type of each slot.
    """
    slot_of: dict[str, int] = {}
    types: list[TensorType] = []
    for step in program.steps:
        if not planned(step):
            continue
        if step.reuse is not None and step.reuse in slot_of:
            slot_of[step.name] = slot_of[step.reuse]
            continue
        slot_of[step.name] = len(types)
        types.append(step.type)
    return slot_of, types
