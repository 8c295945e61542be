"""Graph -> Program: a straight-line, linear A-normal form that every backend renders.

Imports errors, shapes and ir. A Program names every value once: inputs after their
vars (sanitized to identifiers, deduplicated), constants `c0, c1, ...`, step results
`v0, v1, ...`, in a deterministic order. Each step records the names whose last use
it is, and a buffer plan says which dead buffer of the same type a step may overwrite.
Renderers never walk graphs: they read Programs.
"""

from __future__ import annotations

import functools
import keyword
import re
import unicodedata
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from graphc.errors import GraphError, where
from graphc.ir import ConstValue, Graph, Node, format_array
from graphc.shapes import TensorType

# Ops whose result may share memory with their first argument (NumPy returns views).
VIEW_OPS = frozenset({"reshape", "transpose", "broadcast_to", "slice"})

# Free names that rendered code may use; no input is ever given one of them.
RESERVED = frozenset({"np", "rt"})
_GENERATED = re.compile(r"[vc]\d+")


@dataclass(frozen=True)
class Input:
    """An argument of the program: its name and the var node it feeds."""

    name: str
    node: Node

    @property
    def type(self) -> TensorType:
        return self.node.type


@dataclass(frozen=True)
class Step:
    """`name = node.op(*args; node.attrs)`; `frees` are the names used here for the last time.

    `reuse` is the buffer plan: the name of a buffer of the same type, dead before this
    step, that the result may be written into (None: allocate). A backend that honors it
    must keep that buffer alive past its last use.
    """

    name: str
    node: Node
    args: tuple[str, ...]
    frees: tuple[str, ...]
    reuse: str | None = None

    @property
    def op(self) -> str:
        return self.node.op.name

    @property
    def attrs(self) -> dict[str, Hashable]:
        return self.node.params

    @property
    def type(self) -> TensorType:
        return self.node.type


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

    def __str__(self) -> str:
        return "\n".join(format_program(self))


def format_program(program: Program) -> list[str]:
    """A readable listing: one line per constant and step, with last uses and reuse."""
    header = ", ".join(f"{i.name}: {i.type}" for i in program.inputs)
    lines = [f"program({header}) {{"]
    for name, array in program.constants.items():
        lines.append(f"  {name} = const {format_array(array)} : {program.types[name]}")
    for step in program.steps:
        attrs = "".join(f", {k}={v!r}" for k, v in step.node.attrs)
        line = f"  {step.name} = {step.op}({', '.join(step.args)}{attrs}) : {step.type}"
        notes = []
        if step.reuse is not None:
            notes.append(f"reuses {step.reuse}")
        if step.frees:
            notes.append(f"frees {', '.join(step.frees)}")
        if notes:
            line += "  # " + "; ".join(notes)
        lines.append(line)
    lines.append(f"  return {', '.join(program.outputs)}")
    lines.append("}")
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


def schedule(graph: Graph) -> Program:
    """The graph as a Program: steps in toposort order, named, with last uses and a buffer plan.

    Raises GraphError when the outputs reach a var that is not among graph.inputs.
    """
    nodes = _needed(graph)
    _check_inputs(graph, nodes)
    _check_lowered(nodes)
    names, constants = _name_values(graph, nodes)
    given = set(graph.inputs)
    computed = [n for n in nodes if n not in given and n.op.name != "const"]
    pairs = [(names[n], tuple(names[i] for i in n.inputs)) for n in computed]
    outputs = tuple(names[n] for n in graph.outputs)
    frees = _last_uses(pairs, outputs)
    steps = tuple(
        Step(name, node, args, tuple(sorted(frees.get(k, []), key=_name_order)))
        for k, (node, (name, args)) in enumerate(zip(computed, pairs, strict=True))
    )
    program = Program(
        inputs=tuple(Input(names[n], n) for n in graph.inputs),
        constants=constants,
        steps=steps,
        outputs=outputs,
        types={names[n]: n.type for n in [*graph.inputs, *nodes]},
    )
    return plan_buffers(program)


def _check_lowered(nodes: list[Node]) -> None:
    """Programs hold fixed-shape primitives: named sizes and transient ops (stop_gradient, custom, dim) are gone."""
    for node in nodes:
        if getattr(node.op, "transient", False) or not node.type.static:
            raise GraphError(
                f"cannot schedule {node.op.name} ({node.type}): gc.compile specializes named dimensions and "
                "removes stop_gradient and custom nodes first"
            )


def _name_order(name: str) -> tuple[int, str, int]:
    """Sort key: inputs, then constants, then steps, each in numeric order."""
    if _GENERATED.fullmatch(name):
        return (1 if name[0] == "c" else 2, name[0], int(name[1:]))
    return (0, name, 0)


# --- buffer plan ----------------------------------------------------------------------------


def _buffer_deaths(program: Program) -> dict[int, list[str]]:
    """For each step index, the step-result buffers that are dead after it.

    A buffer dies when every name viewing it has had its last use; buffers that an
    output views, and the memory of inputs and constants, never die.
    """
    kept = {program.base(name) for name in program.outputs}
    death: dict[str, int] = {}
    for index, step in enumerate(program.steps):
        for name in step.frees:
            base = program.base(name)
            if program.step(base) is not None and base not in kept:
                death[base] = max(death.get(base, index), index)
    deaths: dict[int, list[str]] = {}
    for base, index in death.items():
        deaths.setdefault(index, []).append(base)
    return deaths


def plan_buffers(program: Program) -> Program:
    """The program with `reuse` set: each allocating step takes the oldest dead buffer of its type.

    `reuse` names the dead value that last occupied the buffer. Only buffers dead before
    the step are offered, so a step never overwrites its own arguments. 0-d values (often
    NumPy scalars) are not planned.
    """
    deaths = _buffer_deaths(program)
    free: dict[TensorType, list[str]] = {}
    steps = []
    for index, step in enumerate(program.steps):
        reuse = None
        pool = free.get(step.type, [])
        if step.op not in VIEW_OPS and step.type.ndim > 0 and pool:
            reuse = pool.pop(0)
        steps.append(Step(step.name, step.node, step.args, step.frees, reuse))
        for base in deaths.get(index, []):
            if program.types[base].ndim > 0:
                free.setdefault(program.types[base], []).append(base)
    return Program(program.inputs, program.constants, tuple(steps), program.outputs, program.types)
