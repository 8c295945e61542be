"""Merge consecutive elementwise kernels of one iteration space into one loop nest with several outputs.

Imports the backend's kernels and layout. The fusion pass makes one region per single-use
chain; values used twice (a forward value the gradient reads again) end regions, so a
gradient program is often several loops over the same points, each re-reading what the
previous one stored. Here consecutive Map kernels over the same (coalesced) shape, and
at most one Reduce over its innermost axes, become one kernel: a value a later member
reads at the same point is used straight from the register, and a stored temporary that
no later kernel reads is not stored at all (nor one a later member overwrites in place).
Merging is refused whenever it could change a result: a member reading a buffer an
earlier member writes at other points (or a reduction's result), writing a buffer an
earlier member reads or writes at other points, or either kernel able to fail. A merged
body costs at most MAX_COST.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from graphc.backends.llvm import layout as L
from graphc.backends.llvm.kernels import (
    MAX_COST,
    Instr,
    Kernel,
    Loop,
    Map,
    Reduce,
    Scatter,
    Sort,
    computed_cost,
    layouts,
    nested,
)
from graphc.backends.llvm.layout import Layout

Place = tuple[str, int]  # (buffer place, index): one block of memory


def _place(layout: Layout) -> Place:
    return layout.buffer.place, layout.buffer.index


@dataclass
class Group:
    """Kernels being merged: shared operands and instructions, the values stored and where."""

    shape: tuple[int, ...]
    operands: list[Layout] = field(default_factory=list)
    instrs: list[Instr] = field(default_factory=list)
    stores: list[tuple[int, Layout]] = field(default_factory=list)
    reduce: Reduce | None = None
    reduced_value: int = -1
    reads: dict[Place, Layout] = field(default_factory=dict)
    count: int = 0
    cost: int = 0  # computed_cost(instrs), kept as kernels are added
    operand_index: dict[Layout, int] = field(default_factory=dict)  # operands' positions
    stored: dict[Place, tuple[int, Layout]] = field(default_factory=dict)  # the latest value and layout of each place

    def written(self) -> dict[Place, Layout]:
        return {place: out for place, (_, out) in self.stored.items()}

    def accepts(self, k: Kernel) -> bool:
        if not isinstance(k, (Map, Reduce)) or k.site or k.shape != self.shape:
            return False
        if isinstance(k, Reduce) and (self.reduce is not None or not k.inner or k.extra_outs):
            return False
        if isinstance(k, Map) and k.extra_outs:
            return False
        if self.cost + computed_cost(k.instrs) > MAX_COST:
            return False
        stored = self.stored
        reduced = {_place(self.reduce.out)} if self.reduce is not None else set()
        for operand in k.operands:
            place = _place(operand)
            if place in reduced or (place in stored and stored[place][1] != operand):
                return False
        out = k.out
        place = _place(out)
        if place in reduced or (place in stored and stored[place][1] != out):
            return False
        return place not in self.reads or self.reads[place] == out

    def add(self, k: Map | Reduce) -> None:
        stored = self.stored  # the latest value of each place written so far (not by k itself)
        index: dict[int, int] = {}
        for i, instr in enumerate(k.instrs):
            if instr.op == "load":
                operand = k.operands[instr.args[0]]
                place = _place(operand)
                if place in stored:
                    index[i] = stored[place][0]
                    continue
                self.reads.setdefault(place, operand)
                position = self.operand_index.get(operand)
                if position is None:
                    position = self.operand_index[operand] = len(self.operands)
                    self.operands.append(operand)
                instr = Instr("load", (position,), instr.dtype, instr.attrs)
            elif instr.op != "const":
                instr = Instr(instr.op, tuple(index[a] for a in instr.args), instr.dtype, instr.attrs)
            self.instrs.append(instr)
            index[i] = len(self.instrs) - 1
        self.cost += computed_cost(k.instrs)
        value = index[len(k.instrs) - 1]
        if isinstance(k, Reduce):
            self.reduce = k
            self.reduced_value = value
        else:
            self.stores.append((value, k.out))
            stored.pop(_place(k.out), None)  # keep dict order that of the latest stores
            stored[_place(k.out)] = (value, k.out)
        self.count += 1

    def kernel(self, live: set[Place] | None) -> Kernel:
        """The merged kernel; stores to places not in `live` are dropped (None: keep every store)."""
        last = {_place(out): k for k, (_, out) in enumerate(self.stores)}  # a place stored twice: the last wins
        stores = [
            (v, out)
            for k, (v, out) in enumerate(self.stores)
            if last[_place(out)] == k and (live is None or _place(out) in live)
        ]
        instrs = list(self.instrs)
        if self.reduce is not None:
            instrs.append(Instr("copy", (self.reduced_value,), instrs[self.reduced_value].dtype))
            extra_values, extra_outs = _split(stores)
            return replace(
                self.reduce,
                operands=tuple(self.operands),
                instrs=tuple(instrs),
                extra_values=extra_values,
                extra_outs=extra_outs,
            )
        if not stores:
            stores = self.stores[-1:]
        last_value, out = stores[-1]
        instrs.append(Instr("copy", (last_value,), instrs[last_value].dtype))
        extra_values, extra_outs = _split(stores[:-1])
        return Map(self.shape, tuple(self.operands), tuple(instrs), out, 0, extra_values, extra_outs)


def _split(stores: list[tuple[int, Layout]]) -> tuple[tuple[int, ...], tuple[Layout, ...]]:
    return tuple(v for v, _ in stores), tuple(out for _, out in stores)


def _touched(kernel: Kernel) -> list[Layout]:
    """Every layout a kernel touches, loop bodies, loop conditions and both sides of a branch included."""
    return [layout for inner in nested(kernel) for layout in _touched(inner)] + layouts(kernel)


Touch = tuple[int, bool, Layout | None]
"""A kernel touching a place: its position, whether it touches the place other than as its main
output (a read, or another output), and its main output when that is in the place."""


def _overwritten(kernel: Kernel) -> Layout | None:
    """The kernel's main output when it writes every point of it without reading it first (else None).

    A scatter adds into its output, a sort sorts it in place, and a reduction keeping the
    last axis updates the identity already there: each of those reads its output.
    """
    out = getattr(kernel, "out", None)
    if not isinstance(out, Layout) or isinstance(kernel, (Scatter, Sort)):
        return None
    if isinstance(kernel, Reduce) and not kernel.inner:
        return None
    return out


class Liveness:
    """Which kernels touch each place, computed once per program in one pass over the kernels.

    A kernel "only overwrites" a place when its sole touch of it is its main output and it
    writes every point without reading the old values (_overwritten); any other touch,
    an operand equal to the output included, may read it.

    `live_after` answers for a merged group's stores from the first later kernel that touches
    each place (a binary search), so merging a program costs linear time, not a scan to the
    end of the program per group.
    """

    def __init__(self, kernels: Sequence[Kernel]) -> None:
        self.touches: dict[Place, list[Touch]] = {}
        for position, kernel in enumerate(kernels):
            touched = _touched(kernel)
            main = _overwritten(kernel)
            seen: dict[Place, Touch] = {}
            for k, layout in enumerate(touched):
                place = _place(layout)
                _, other, as_out = seen.get(place, (position, False, None))
                if main is not None and k == len(touched) - 1:  # layouts() lists the main output last
                    as_out = main
                else:
                    other = True
                seen[place] = (position, other, as_out)
            for place, touch in seen.items():
                self.touches.setdefault(place, []).append(touch)
        self.positions = {place: [t[0] for t in touches] for place, touches in self.touches.items()}

    def first_touch(self, place: Place, start: int) -> Touch | None:
        """The first kernel at or after `start` that touches `place` (None: none does)."""
        positions = self.positions.get(place)
        if positions is None:
            return None
        at = bisect.bisect_left(positions, start)
        return self.touches[place][at] if at < len(positions) else None

    def live_after(self, start: int, stores: list[tuple[int, Layout]]) -> set[Place]:
        """The stored places some kernel from `start` on may read before fully overwriting them.

        Inputs, outputs and constants are always live; a workspace place is dead once the first
        later kernel touching it only overwrites it (see the class) with exactly the stored
        layout, or when nothing touches it again.
        """
        live = {_place(out) for _, out in stores if out.buffer.place != L.WORK}
        pending = {_place(out): out for _, out in stores if out.buffer.place == L.WORK}
        for place, stored in pending.items():
            touch = self.first_touch(place, start)
            if touch is None:
                continue
            _, other, as_out = touch
            if other or as_out != stored:
                live.add(place)
        return live


def merge(kernels: Sequence[Kernel], drop_dead: bool = True) -> list[Kernel]:
    """The kernels with runs of mergeable elementwise kernels merged (see the module docstring).

    `drop_dead=False` keeps every store (a loop body: a later iteration may read it).
    """
    return [kernel for kernel, _ in merge_runs(kernels, drop_dead)]


def merge_runs(kernels: Sequence[Kernel], drop_dead: bool = True) -> list[tuple[Kernel, range]]:
    """merge's kernels, each with the positions of the kernels it was made from (a run of consecutive ones)."""
    result: list[tuple[Kernel, range]] = []
    liveness = Liveness(kernels) if drop_dead else None
    group: Group | None = None
    for position, kernel in enumerate(kernels):
        if group is not None and group.accepts(kernel):
            group.add(kernel)  # type: ignore[arg-type]
            continue
        if group is not None:
            result.append((_finish(group, kernels, position, liveness), range(position - group.count, position)))
            group = None
        if isinstance(kernel, (Map, Reduce)) and not kernel.site and Group(kernel.shape).accepts(kernel):
            group = Group(kernel.shape)
            group.add(kernel)
            continue
        if isinstance(kernel, Loop):
            kernel = _merge_loop(kernel)
        result.append((kernel, range(position, position + 1)))
    if group is not None:
        end = len(kernels)
        result.append((_finish(group, kernels, end, liveness), range(end - group.count, end)))
    return result


def _merge_loop(loop: Loop) -> Loop:
    """A loop with its body merged run by run (kernels of one guard together), keeping every store."""
    body: list[Kernel] = []
    guards: list[int] = []
    start = 0
    for end in range(1, len(loop.body) + 1):
        if end < len(loop.body) and loop.guards[end] == loop.guards[start]:
            continue
        merged = merge(loop.body[start:end], drop_dead=False)
        body += merged
        guards += [loop.guards[start]] * len(merged)
        start = end
    return replace(loop, body=tuple(body), guards=tuple(guards))


def _finish(group: Group, kernels: Sequence[Kernel], position: int, liveness: Liveness | None) -> Kernel:
    if group.count == 1:
        return kernels[position - 1]
    live = liveness.live_after(position, group.stores) if liveness is not None else None
    return group.kernel(live)


__all__ = ["merge", "merge_runs"]
