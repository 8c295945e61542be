"""`add` of zero-padded operands (unslice results) as one pass: every output element written once.

Imports the llvm backend's layout, kernels and planner, and graphc.schedule and graphc.shapes
(never llvmlite, never a Graph). A gradient that reads shifted slices of one array
(Rosenbrock's `x[1:]`, `x[:-1]`) sums zero-padded cotangents: `add(unslice(a), unslice(b))`.
Planned step by step, each unslice fills a whole buffer with zeros and copies its operand
in, and the add reads both buffers: five passes over the output. Here, when an operand of
an add is an unslice that dies at the add and whose kernels are the last ones planned, those
kernels are dropped and the add is planned as one Map per box of the output: the boxes cut
every trailing axis at each padded operand's slice bounds, so that in each box an operand is
either its unslice's source (read in place, shifted) or zero. Each output element is still
`add(operand0, operand1)` with a zero where the operand was padding, the same instruction
on the same values as before: results are bit-identical (`-0.0 + 0.0` stays `+0.0`).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from graphc.backends.llvm import layout as L
from graphc.backends.llvm.kernels import Instr, Kernel, Map, Reduce, nested
from graphc.backends.llvm.layout import Layout
from graphc.backends.llvm.planner import Planner, identity
from graphc.schedule import VIEW_OPS, Program, Step
from graphc.shapes import fixed

INLINE_DEPTH = 6  # how many Maps deep a shifted read is recomputed instead of loaded
MAX_INLINED = 200  # instructions per box beyond which reads are loads
WINDOW = 64  # how many of the last kernels are searched for a value's producer
MAX_BOXES = 64  # more boxes than this (many padded operands over many axes): plan the padding as it is
Box = tuple[tuple[int, int], ...]  # (lo, hi) per trailing axis
Padded = tuple[Layout, tuple[tuple[int, int, int], ...]]  # the unslice's source, and its index
Place = tuple[str, int]  # (buffer place, index): one block of memory
_VIEWED: weakref.WeakKeyDictionary[Program, frozenset[str]] = weakref.WeakKeyDictionary()


def plan_padded_add(p: Planner, step: Step) -> bool:
    """Plan `step` (an add) box by box if an operand is a padding that can be skipped; whether it did."""
    if p.check_finite or step.op != "add":
        return False
    padded = _padded_operands(p, step)
    if not padded:
        return False
    shape = fixed(step.type.shape)
    boxes = _boxes(shape, [index for _, index in padded.values()])
    if boxes is None or _overwrites_source(p, step, padded):
        return False
    dropped = _tail(p, set(padded))
    del p.kernels[len(p.kernels) - dropped :]
    del p.owners[len(p.owners) - dropped :]
    dest = p.dest(step)
    lead = len(shape) - max(len(index) for _, index in padded.values())
    for box in boxes:
        _plan_box(p, step, shape, lead, box, padded, dest)
    return True


def _padded_operands(p: Planner, step: Step) -> dict[str, Padded]:
    """The operands that are unslices of the output's shape with unit steps, dying here, planned last."""
    shape = fixed(step.type.shape)
    found: dict[str, Padded] = {}
    for name in step.args:
        producer = p.program.step(name)
        if producer is None or producer.op != "unslice" or name not in step.frees or name in p.direct:
            continue
        if name in _viewed(p.program):  # a view may read the padding after the add
            continue
        index: tuple[tuple[int, int, int], ...] = producer.attr("index")  # type: ignore[assignment]
        if fixed(producer.type.shape) != shape or any(s != 1 for _, _, s in index):
            continue
        found[name] = (p.layouts[producer.args[0]], index)
    last = _tail_names(p, set(found))
    return {name: value for name, value in found.items() if name in last}


def _viewed(program: Program) -> frozenset[str]:
    """The names some view step reads (their memory may be read under another name)."""
    found = _VIEWED.get(program)
    if found is None:
        found = frozenset(step.args[0] for step in program.steps if step.op in VIEW_OPS)
        _VIEWED[program] = found
    return found


def _tail_names(p: Planner, names: set[str]) -> set[str]:
    """Which of `names` own kernels at the end of the kernel list (the longest such run)."""
    seen: set[str] = set()
    for owner in reversed(p.owners):
        if owner not in names:
            break
        seen.add(owner)
    return seen


def _tail(p: Planner, names: set[str]) -> int:
    """How many kernels at the end of the list `names` planned."""
    count = 0
    for owner in reversed(p.owners):
        if owner not in names:
            break
        count += 1
    return count


def _place(layout: Layout) -> Place:
    return layout.buffer.place, layout.buffer.index


def _overwrites_source(p: Planner, step: Step, padded: dict[str, Padded]) -> bool:
    """Whether a dropped unslice's buffer or the add's own result shares memory with a source read later."""
    sources = {_place(source) for source, _ in padded.values()}
    written = {_place(p.layouts[name]) for name in padded}
    if step.name in p.direct:
        written.add((L.OUTPUT, p.direct[step.name]))
    elif step.reuse is not None and step.reuse in p.slots:
        written.add((L.WORK, p.slots[step.reuse]))
    return bool(sources & written)


def _boxes(shape: tuple[int, ...], indices: Sequence[tuple[tuple[int, int, int], ...]]) -> list[Box] | None:
    """The output's trailing axes cut at every slice bound, as boxes (None: too many); [] for an empty output."""
    axes = max(len(index) for index in indices)
    trailing = shape[len(shape) - axes :]
    cuts: list[list[int]] = []
    for k, n in enumerate(trailing):
        cut = {0, n}
        for index in indices:
            offset = axes - len(index)
            if k >= offset:
                start, stop, _ = index[k - offset]
                cut.update((start, max(start, stop)))
        cuts.append(sorted(cut))
    count = 1
    for bounds in cuts:
        count *= len(bounds) - 1
    if count > MAX_BOXES:
        return None
    pieces = [list(itertools.pairwise(bounds)) for bounds in cuts]
    return [box for box in itertools.product(*pieces) if all(hi > lo for lo, hi in box)]


def _covers(index: tuple[tuple[int, int, int], ...], box: Box) -> bool:
    offset = len(box) - len(index)
    return all(start <= lo and hi <= stop for (start, stop, _), (lo, hi) in zip(index, box[offset:], strict=True))


def _source_view(source: Layout, index: tuple[tuple[int, int, int], ...], box: Box) -> Layout:
    """The part of the unslice's source that lands on `box` (axes the index leaves whole are cut too)."""
    starts = [0] * (len(box) - len(index)) + [start for start, _, _ in index]
    return L.sliced(source, [(lo - start, hi - start, 1) for start, (lo, hi) in zip(starts, box, strict=True)])


def _plan_box(
    p: Planner,
    step: Step,
    shape: tuple[int, ...],
    lead: int,
    box: Box,
    padded: dict[str, Padded],
    dest: Layout,
) -> None:
    """dest[box] = add(operand0, operand1) with each padded operand read from its source or zero."""
    region = [(lo, hi, 1) for lo, hi in box]
    box_shape = (*shape[:lead], *(hi - lo for lo, hi in box))
    body = _Body(p.kernels)
    values = []
    for name in step.args:
        entry = padded.get(name)
        dtype = p.layouts[name].dtype
        if entry is not None and not _covers(entry[1], box):
            values.append(body.add(Instr("const", (), dtype, (("value", identity("sum", dtype)),))))
            continue
        view = _source_view(*entry, box) if entry is not None else L.sliced(L.broadcast(p.layouts[name], shape), region)
        values.append(body.value(view, dtype))
    body.add(Instr("add", tuple(values), step.type.dtype, step.attrs))
    p.add_map(box_shape, body.operands, body.instrs, L.sliced(dest, region))


class _Stale(Exception):
    """A recomputed value would load memory that was overwritten after the value was computed."""


class _Body:
    """A box's per-point instructions under construction.

    A shifted read of a value that an earlier Map stored is that Map's instructions on its
    operands shifted alike, recursively, so the value need not be stored nor read back.
    A recomputation only loads memory nothing overwrote since the Map read it (else the
    read stays a load of the stored value).
    """

    def __init__(self, kernels: list[Kernel]) -> None:
        self.kernels = kernels
        self.operands: list[Layout] = []
        self.instrs: list[Instr] = []

    def add(self, instr: Instr) -> int:
        self.instrs.append(instr)
        return len(self.instrs) - 1

    def value(self, view: Layout, dtype: np.dtype) -> int:
        """The instruction that gives `view`'s element at each point: recomputed where it can be, else a load."""
        operands, instrs = len(self.operands), len(self.instrs)
        try:
            return self._value(view, dtype, INLINE_DEPTH, len(self.kernels), frozenset())
        except _Stale:
            del self.operands[operands:], self.instrs[instrs:]
            return self._load(view, dtype)

    def _load(self, view: Layout, dtype: np.dtype) -> int:
        self.operands.append(view)
        return self.add(Instr("load", (len(self.operands) - 1,), dtype))

    def _value(self, view: Layout, dtype: np.dtype, depth: int, limit: int, stale: frozenset[Place]) -> int:
        found = _producer(self.kernels, limit, view) if depth and len(self.instrs) < MAX_INLINED else None
        if found is None:
            if _place(view) in stale:
                raise _Stale
            return self._load(view, dtype)
        index, shift, written = found
        kernel = self.kernels[index]
        assert isinstance(kernel, Map)
        stale = stale | written
        mapped: list[int] = []
        for instr in kernel.instrs:
            if instr.op == "load":
                source = L.sliced(kernel.operands[instr.args[0]], [(shift, shift + view.shape[0], 1)])
                mapped.append(self._value(source, instr.dtype, depth - 1, index, stale))
            else:
                mapped.append(self.add(replace(instr, args=tuple(mapped[a] for a in instr.args))))
        return mapped[-1]


def _producer(kernels: list[Kernel], limit: int, view: Layout) -> tuple[int, int, frozenset[Place]] | None:
    """The 1-D Map among kernels[:limit] whose stored value `view` reads at a shift, if it can be recomputed.

    It must be the last kernel before `limit` that wrote that memory, within the last WINDOW:
    (its index, the shift, the memory it and the kernels after it up to `limit` wrote).
    """
    if len(view.shape) != 1 or view.shape[0] == 0:
        return None
    place = _place(view)
    written: set[Place] = set()
    for index in range(limit - 1, max(limit - WINDOW, 0) - 1, -1):
        kernel = kernels[index]
        if not isinstance(kernel, (Map, Reduce)) or nested(kernel):
            return None  # what other kernels write is not worth working out here
        writes = {_place(out) for out in (kernel.out, *kernel.extra_outs)}
        written |= writes
        if place in writes:
            shift = _shift(kernel, view)
            return None if shift is None else (index, shift, frozenset(written))
    return None


def _shift(kernel: Map | Reduce, view: Layout) -> int | None:
    """Where `view` starts in the 1-D Map `kernel`'s output, if it lies inside it at the same stride."""
    if not isinstance(kernel, Map) or kernel.extra_outs or kernel.site or len(kernel.shape) != 1:
        return None
    out = kernel.out
    stride = out.strides[0]
    if stride == 0 or view.strides != (stride,) or (view.offset - out.offset) % stride:
        return None
    shift = (view.offset - out.offset) // stride
    if shift < 0 or shift + view.shape[0] > kernel.shape[0]:
        return None
    return shift
