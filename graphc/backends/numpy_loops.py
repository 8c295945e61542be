"""Loops in the NumPy source backend: a Python loop over the body's generated function.

Imports shapes, ops.loops and schedule (numpy_source imports this module and hands it
its `spell`). A loop family — the sibling `scan` or `fixed_point` steps of one loop — is
one call of a generated driver at the first sibling's place, the others' lines left out:

    v5, v9 = loop_0(h0, xs, W, U, b)  # f64[32,64], f64[50,32,64]

The driver is a plain `for` loop calling the body's function, which is the step's nested
Program (the loop body, scheduled) rendered line by line like the main function (loops inside it become
drivers of their own). A scan driver preallocates the stacks it must return — only the
per-step outputs and saved carries some sibling uses — and copies each step's values in;
a fixed_point driver checks the residual with the same `residual` as the reference, so
both stop at the same iteration and raise the same ConvergenceError. A cond is an `if`
calling one branch Program's function (`Step.nested("true_body")`, ...), a while_loop a
Python loop calling its condition's and its body's functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from graphc.backends import finite
from graphc.ops.control_flow import CONTROL_OPS
from graphc.ops.loops import LOOP_OPS, not_converged, residual, saved_count, scan_counts
from graphc.schedule import Program, Step, loop_family
from graphc.shapes import fixed_size

Spell = Callable[[Step], str]

_DTYPES = {"float64": "np.float64", "float32": "np.float32", "int64": "np.int64", "bool": "np.bool_"}


@dataclass(frozen=True)
class Family:
    """The sibling steps of one loop in a program, in program order.

    `listed`: the outputs (stacks) returned as Python lists of per-step values rather than
    arrays, because only other loops read them, as xs (`list_results`).
    """

    members: tuple[Step, ...]
    listed: frozenset[int] = frozenset()

    @property
    def head(self) -> Step:
        return self.members[0]

    def by_output(self) -> list[Step]:
        return sorted(self.members, key=lambda s: s.int_attr("output"))


def families(program: Program) -> dict[str, Family]:
    """Each loop step's family, by step name."""
    groups: dict[tuple[object, ...], list[Step]] = {}
    for step in program.steps:
        if step.op in LOOP_OPS:
            groups.setdefault(loop_family(step), []).append(step)
    lists = list_results(program)
    table: dict[str, Family] = {}
    for members in groups.values():
        listed = frozenset(s.int_attr("output") for s in members if s.name in lists)
        family = Family(tuple(members), listed)
        table.update({step.name: family for step in members})
    return table


def list_results(program: Program) -> set[str]:
    """The stacked scan results that only other scans read, as xs (indexed by t): no need for an array.

    A scan returns these as lists of its per-step values, which saves copying each step's
    value into a preallocated stack (and allocating it).
    """
    stacks = {s.name for s in program.steps if s.op == "scan" and s.int_attr("output") >= _n_carry(s)}
    fine = stacks - set(program.outputs)
    for step in program.steps:
        for position, arg in enumerate(step.args):
            if arg in fine and not (step.op == "scan" and _n_carry(step) <= position < _n_carry(step) + _n_xs(step)):
                fine.discard(arg)
    return fine


def _n_carry(step: Step) -> int:
    return step.int_attr("n_carry")


def _n_xs(step: Step) -> int:
    return step.int_attr("n_xs")


def _may_alias(program: Program, name: str) -> bool:
    """Whether returning `name` from a body could hand back an argument, a constant or a read-only view."""
    if program.step(program.base(name)) is None:
        return True
    return any(step.op == "broadcast_to" for step in program.view_chain(name))


class LoopPlan:
    """The drivers and body functions of a program's loops, rendered once, named uniquely."""

    def __init__(self, spell: Spell, taken: set[str], check_finite: bool = False) -> None:
        self.spell = spell
        self.check_finite = check_finite
        self.taken = set(taken)
        self.lines: list[str] = []
        self.constants: dict[str, object] = {"loop_residual": residual, "loop_not_converged": not_converged}
        self.taken |= set(self.constants)
        self.bodies: dict[Program, str] = {}
        self.drivers: dict[tuple[object, ...], str] = {}
        self.table: dict[str, Family] = {}  # the main program's families

    def step_lines(self, step: Step) -> list[str]:
        """The lines of a loop step of the main program."""
        return self.call_lines(self.table, step)

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    def prepare(self, program: Program) -> dict[str, Family]:
        """Render a driver for every loop family of `program`; its families by step name."""
        table = families(program)
        for family in dict.fromkeys(table.values()):
            self.driver(family)
        return table

    def call_lines(self, table: dict[str, Family], step: Step, rename: dict[str, str] | None = None) -> list[str]:
        """The line computing the whole family of `step`, or none when it is not the family's first."""
        family = table[step.name]
        if step is not family.head:
            return []
        members = family.by_output()
        targets = ", ".join(s.name for s in members) + ("," if len(members) == 1 else "")
        types = ", ".join(str(s.type) for s in members)
        args = ", ".join((rename or {}).get(a, a) for a in step.args)
        return [f"    {targets} = {self.driver(family)}({args})  # {types}"]

    # --- bodies ------------------------------------------------------------------------------

    def body(self, program: Program) -> str:
        """The name of the function computing the body's outputs as a tuple (rendered on first use)."""
        if program in self.bodies:
            return self.bodies[program]
        name = self.fresh("loop_body")
        table = self.prepare(program)
        rename = {c: self.fresh(f"{name}_{c}") for c in program.constants}
        self.constants.update({rename[c]: value for c, value in program.constants.items()})
        lines = [f"def {name}({', '.join(i.name for i in program.inputs)}):"]
        for step in program.steps:
            if step.op in LOOP_OPS:
                lines += self.call_lines(table, step, rename)
            elif step.op == "fused":
                lines += self.fused_lines(step, rename)
            else:
                renamed = replace(step, args=tuple(rename.get(a, a) for a in step.args))
                lines.append(f"    {step.name} = {self.spell(renamed)}  # {step.type}")
            if self.check_finite:
                lines += finite.check_lines(step)
            dead = [n for n in step.frees if program.step(n) is not None]
            if dead:
                lines.append(f"    del {', '.join(dead)}")
        results = [rename.get(o, o) for o in program.outputs]
        lines.append(f"    return ({', '.join(results)}{',' if len(results) == 1 else ''})")
        self.lines += [*lines, ""]
        self.bodies[program] = name
        return name

    def fused_lines(self, step: Step, rename: dict[str, str]) -> list[str]:
        """A fused region inside a loop body, written out as its body's steps (the same op evals, in order)."""
        body = step.body
        assert body is not None
        names = {i.name: rename.get(a, a) for i, a in zip(body.inputs, step.args, strict=True)}
        for c, value in body.constants.items():
            names[c] = self.fresh(f"{step.name}_{c}")
            self.constants[names[c]] = value
        lines = []
        for inner in body.steps:
            names[inner.name] = self.fresh(f"{step.name}_{inner.name}")
            renamed = replace(inner, name=names[inner.name], args=tuple(names.get(a, a) for a in inner.args))
            lines.append(f"    {names[inner.name]} = {self.spell(renamed)}  # {inner.type}")
        lines.append(f"    {step.name} = {names[body.outputs[0]]}  # {step.type}")
        return lines

    # --- drivers -----------------------------------------------------------------------------

    def driver(self, family: Family) -> str:
        head = family.head
        outputs = tuple(s.int_attr("output") for s in family.by_output())
        bodies = tuple(id(body) for _, body in head.bodies)
        key = (head.op, bodies, loop_family(head)[3], outputs, family.listed)
        if key not in self.drivers:
            if head.op in CONTROL_OPS:
                name, lines = self.control_driver(head, outputs)
            else:
                name, lines = self.loop_driver(family, outputs)
            self.lines += [*lines, ""]
            self.drivers[key] = name
        return self.drivers[key]

    def loop_driver(self, family: Family, outputs: tuple[int, ...]) -> tuple[str, list[str]]:
        """The name and lines of a scan or fixed_point driver (its body rendered first)."""
        head = family.head
        program = head.body
        assert program is not None
        body = self.body(program)
        name = self.fresh("loop")
        if head.op == "scan":
            return name, _scan_driver(name, body, head, outputs, family.listed)
        return name, _fixed_point_driver(name, body, head, outputs)

    def control_driver(self, step: Step, outputs: tuple[int, ...]) -> tuple[str, list[str]]:
        """The name and lines of a cond or while_loop driver (its bodies rendered first): an `if` or a loop."""
        if step.op == "cond":
            true_body, false_body = step.nested("true_body"), step.nested("false_body")
            true_branch = (self.body(true_body), true_body)
            false_branch = (self.body(false_body), false_body)
            name = self.fresh("cond")
            return name, _cond_driver(name, true_branch, false_branch, outputs)
        cond_fn = self.body(step.nested("cond_body"))
        body_fn = self.body(step.nested("body"))
        name = self.fresh("while_loop")
        return name, _while_driver(name, cond_fn, body_fn, step, outputs)


def _branch_lines(function: str, program: Program, args: str, outputs: tuple[int, ...], indent: str) -> list[str]:
    """Call one branch and return the results asked for, copied where they could alias an argument."""
    count = len(program.outputs)
    targets = ", ".join(f"r{o}" for o in range(count)) + ("," if count == 1 else "")
    results = []
    for o in outputs:
        copy = _may_alias(program, program.outputs[o])
        results.append(f"np.array(r{o}, copy=True)" if copy else f"r{o}")
    return [f"{indent}{targets} = {function}({args})", f"{indent}return ({', '.join(results)},)"]


def _cond_driver(
    name: str, true_branch: tuple[str, Program], false_branch: tuple[str, Program], outputs: tuple[int, ...]
) -> list[str]:  # fmt: skip
    """`if pred:` the true body's function, else the false one's: only the taken branch runs."""
    args = ", ".join(i.name for i in true_branch[1].inputs)
    lines = [f"def {name}(pred, {args}):", f'    """cond: {true_branch[0]} if pred else {false_branch[0]}"""']
    lines.append("    if pred:")
    lines += _branch_lines(*true_branch, args, outputs, "        ")
    lines += _branch_lines(*false_branch, args, outputs, "    ")
    return lines


def _while_driver(name: str, cond_fn: str, body_fn: str, step: Step, outputs: tuple[int, ...]) -> list[str]:
    """A Python loop: test the condition, stop at max_iter; the carries returned are always fresh copies."""
    program = step.nested("body")
    nc, max_iter = step.int_attr("n_carry"), step.attr("max_iter")
    nk = len(program.inputs) - nc
    carries = [f"carry{i}" for i in range(nc)]
    args = ", ".join([*carries, *(f"k{i}" for i in range(nk))])
    params = [f"init{i}" for i in range(nc)] + [f"k{i}" for i in range(nk)]
    lines = [f"def {name}({', '.join(params)}):"]
    lines.append(f'    """while_loop: {body_fn} while {cond_fn}, max_iter={max_iter}"""')
    lines += [f"    carry{i} = init{i}" for i in range(nc)]
    lines.append("    while True:" if max_iter is None else f"    for _ in range({max_iter}):")
    lines.append(f"        go, = {cond_fn}({args})")
    lines += ["        if not go:", "            break"]
    lines.append(f"        {', '.join(carries)}{',' if nc == 1 else ''} = {body_fn}({args})")
    lines.append(f"    return ({', '.join(f'np.array(carry{o}, copy=True)' for o in outputs)},)")
    return lines


def _scan_driver(name: str, body: str, step: Step, outputs: tuple[int, ...], listed: frozenset[int]) -> list[str]:
    """The driver of a scan family computing `outputs` (`step`: its first); the stacks in `listed` are lists."""
    program = step.body
    assert program is not None
    nc, nx, nk, ny = scan_counts(program, step.int_attr("n_carry"), step.int_attr("n_xs"))
    length, k = step.int_attr("length"), step.int_attr("checkpoint")
    ys = [o - nc for o in outputs if nc <= o < nc + ny]
    saved = [o - nc - ny for o in outputs if o >= nc + ny]
    args = [f"init{i}" for i in range(nc)] + [f"xs{i}" for i in range(nx)] + [f"k{i}" for i in range(nk)]
    order = f"range({length - 1}, -1, -1)" if step.attr("reverse") else f"range({length})"
    lines = [f"def {name}({', '.join(args)}):", f'    """scan: {length} steps of {body}"""']
    lines += _prologue(program, nc, ny, length, k, outputs, listed)
    lines.append(f"    for t in {order}:")
    at = "t" if k == 1 else f"t // {k}"
    keep = [f"saved{m}[{at}] = {_held(f'carry{m}', program, program.outputs[m], nc + ny + m in listed)}" for m in saved]
    if saved and k > 1:
        lines += [f"        if t % {k} == 0:", *(f"            {line}" for line in keep)]
    else:
        lines += [f"        {line}" for line in keep]
    targets = [f"carry{i}" for i in range(nc)] + [f"y{j}" if j in ys else "_" for j in range(ny)]
    call_args = [f"carry{i}" for i in range(nc)] + [f"xs{i}[t]" for i in range(nx)] + [f"k{i}" for i in range(nk)]
    lines.append(f"        {', '.join(targets)}{',' if len(targets) == 1 else ''} = {body}({', '.join(call_args)})")
    lines += [f"        ys{j}[t] = {_held(f'y{j}', program, program.outputs[nc + j], nc + j in listed)}" for j in ys]
    results = []
    for o in outputs:
        if o < nc:
            copy = length == 0 or _may_alias(program, program.outputs[o])
            results.append(f"np.array(carry{o}, copy=True)" if copy else f"carry{o}")
        else:
            results.append(f"ys{o - nc}" if o < nc + ny else f"saved{o - nc - ny}")
    lines.append(f"    return ({', '.join(results)},)")
    return lines


def _prologue(
    body: Program, nc: int, ny: int, length: int, k: int, outputs: tuple[int, ...], listed: frozenset[int]
) -> list[str]:
    """The carries' first values and the stacks to fill: arrays, or lists holding each step's value."""
    lines = []
    for i in range(nc):
        copy = nc + ny + i in listed  # a saved list would hold the argument itself
        lines.append(f"    carry{i} = np.array(init{i})" if copy else f"    carry{i} = init{i}")
    for o in outputs:
        if o < nc:
            continue
        if o < nc + ny:
            name, count, type_ = f"ys{o - nc}", length, body.output_types[o]
        else:
            name, count, type_ = (
                f"saved{o - nc - ny}",
                fixed_size(saved_count(length, k)),
                body.input_types[o - nc - ny],
            )
        if o in listed:
            lines.append(f"    {name} = [None] * {count}")
        else:
            lines.append(f"    {name} = np.empty({(count, *type_.shape)!r}, {_DTYPES[type_.dtype.name]})")
    return lines


def _held(value: str, program: Program, body_output: str, listed: bool) -> str:
    """What a stack keeps of a step's `value`: itself, or a copy in a list when it could alias an argument."""
    if listed and _may_alias(program, body_output):
        return f"np.array({value})"
    return value


def _fixed_point_driver(name: str, body: str, step: Step, outputs: tuple[int, ...]) -> list[str]:
    program = step.body
    assert program is not None
    nz, tol, max_iter = step.int_attr("n_z"), step.attr("tol"), step.int_attr("max_iter")
    role = step.params.get("role", "")
    nk = len(program.inputs) - nz
    zs = [f"z{i}" for i in range(nz)]
    news = [f"new{i}" for i in range(nz)]
    args = [f"init{i}" for i in range(nz)] + [f"k{i}" for i in range(nk)]
    lines = [f"def {name}({', '.join(args)}):", f'    """fixed_point of {body}: tol={tol!r}, max_iter={max_iter}"""']
    lines += [f"    z{i} = init{i}" for i in range(nz)]
    lines.append(f"    for it in range(1, {max_iter + 1}):")
    lines.append(f"        {', '.join(news)}{',' if nz == 1 else ''} = {body}({', '.join(zs + args[nz:])})")
    lines.append(f"        r = loop_residual(({', '.join(news)},), ({', '.join(zs)},))")
    lines += [f"        z{i} = new{i}" for i in range(nz)]
    results = []
    for o in outputs:
        copy = _may_alias(program, program.outputs[o])
        results.append(f"np.array(z{o}, copy=True)" if copy else f"z{o}")
    lines.append(f"        if r <= {tol!r}:")
    lines.append(f"            return ({', '.join(results)},)")
    lines.append("        if r != r:")
    lines.append("            break")
    lines.append(f"    raise loop_not_converged(it, r, {tol!r}, {max_iter}, {role!r})")
    return lines


def plan(program: Program, spell: Spell, taken: set[str], check_finite: bool = False) -> LoopPlan | None:
    """The loop plan of a program (None when it has no loop); `taken`: names in use."""
    if not any(step.op in LOOP_OPS for step in program.steps):
        return None
    loops = LoopPlan(spell, taken, check_finite)
    loops.table = loops.prepare(program)
    return loops


__all__ = ["Family", "LoopPlan", "families", "plan"]
