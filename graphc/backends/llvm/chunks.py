"""Cutting a long per-point body into chunks: each chunk a kernel that stores what later chunks read.

Imports the backend's kernels and layout; the planner hands it how to get a buffer and
add a kernel. Keeps every native function small, so compile time grows linearly with the
graph: a long fused chain (W8's K steps) becomes a few kernels, often of one shared structure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from graphc.backends.llvm.kernels import MAX_COST, Instr, computed_cost, cost
from graphc.backends.llvm.layout import Layout, Shape

Fresh = Callable[[Shape, np.dtype], Layout]
"""A new workspace buffer of this shape and dtype (Planner.fresh)."""
AddMap = Callable[[Shape, Sequence[Layout], Sequence[Instr], Layout, Sequence[tuple[int, Layout]]], None]
"""Append a Map kernel: shape, operands, instructions, out, extra stores (Planner.add_map)."""


def split_long(
    fresh: Fresh, add_map: AddMap, shape: Shape, operands: Sequence[Layout], instrs: Sequence[Instr]
) -> tuple[list[Layout], list[Instr]]:
    """Cut a loop body costlier than MAX_COST into chunks; each chunk stores what later ones need.

    Keeps every native function small, so compile time grows linearly with the graph (a
    long fused chain becomes several kernels, often of one shared structure). The last
    chunk is returned for the caller to finish; the others become Map kernels here.
    """
    if computed_cost(instrs) <= MAX_COST:
        return list(operands), list(instrs)
    chunks = _chunks(instrs)
    chunk_of = {i: c for c, members in enumerate(chunks) for i in members}
    needed = {
        a
        for c, members in enumerate(chunks)
        for i in members
        for a in instrs[i].args
        if instrs[i].op != "load" and chunk_of.get(a, c) < c
    }
    temps = {a: fresh(shape, instrs[a].dtype) for a in sorted(needed)}  # fresh: safe at any depth
    for c, members in enumerate(chunks):
        local_operands, local, position = _chunk_instrs(operands, instrs, members, c, chunk_of, temps)
        if c == len(chunks) - 1:
            return local_operands, local
        stored = [i for i in members if i in temps]
        if not stored:
            continue
        last = stored[-1]
        body = [*local, Instr("copy", (position[last],), instrs[last].dtype)]
        extra = [(position[i], temps[i]) for i in stored[:-1]]
        add_map(shape, local_operands, body, temps[last], extra)
    raise AssertionError("unreachable: the last chunk returns")


def _chunks(instrs: Sequence[Instr]) -> list[list[int]]:
    """The computed instructions in order, grouped into runs costing at most MAX_COST each."""
    chunks: list[list[int]] = [[]]
    total = 0
    for i, instr in enumerate(instrs):
        if instr.op in ("load", "const"):
            continue
        weight = cost((instr,))
        if chunks[-1] and total + weight > MAX_COST:
            chunks.append([])
            total = 0
        chunks[-1].append(i)
        total += weight
    return chunks


def _chunk_instrs(
    operands: Sequence[Layout],
    instrs: Sequence[Instr],
    members: list[int],
    chunk: int,
    chunk_of: dict[int, int],
    temps: dict[int, Layout],
) -> tuple[list[Layout], list[Instr], dict[int, int]]:
    """One chunk as its own body (loads of operands and earlier chunks' temps, then its members).

    Also returns where each original instruction landed in the chunk's list.
    """
    local_operands: list[Layout] = []
    slots: dict[int, int] = {}  # original operand index (or -1 - instr for a temp) -> local operand
    local: list[Instr] = []
    mapping: dict[int, int] = {}

    def operand(key: int, layout: Layout) -> int:
        if key not in slots:
            slots[key] = len(local_operands)
            local_operands.append(layout)
        return slots[key]

    def ref(a: int) -> int:
        if a in mapping:
            return mapping[a]
        source = instrs[a]
        if source.op == "load":
            local.append(Instr("load", (operand(source.args[0], operands[source.args[0]]),), source.dtype))
        elif source.op == "const":
            local.append(source)
        else:
            assert chunk_of[a] < chunk
            local.append(Instr("load", (operand(-1 - a, temps[a]),), source.dtype))
        mapping[a] = len(local) - 1
        return mapping[a]

    for i in members:
        instr = instrs[i]
        args = instr.args if instr.op == "load" else tuple(ref(a) for a in instr.args)
        local.append(Instr(instr.op, args, instr.dtype, instr.attrs))
        mapping[i] = len(local) - 1
    return local_operands, local, mapping
