"""Elementwise steps over zero-padded (unslice) or concatenated operands as one pass: each output element written once.

Imports numpy and the llvm backend's layout, kernels and planner, and graphc.schedule and
graphc.shapes (never llvmlite, never a Graph). A gradient that reads shifted slices of one
array (Rosenbrock's `x[1:]`, `x[:-1]`) sums zero-padded cotangents: `add(unslice(a),
unslice(b))`, or a fused region of adds for three terms or more; a shifted right-hand side
(the ODE workload's `x * concatenate([1], y[:-1])`) multiplies a concatenation. Planned
step by step, each unslice fills a whole buffer with zeros and copies its operand in (a
concatenate copies each piece), and the elementwise step reads every buffer back. Here
those kernels are dropped and the step is planned as one Map per box of the output: the
boxes cut every trailing axis at each operand's piece bounds, so that in each box an
operand is the piece covering it (its unslice's source or one concatenated operand, read
in place, shifted) or zero (an unslice's padding). A source that an earlier 1-D Map stored
is recomputed from that Map's operands, shifted alike (_Body), so that it need not be
stored at all: Rosenbrock's gradient reads x and writes the gradient, nothing else.

Each output element is the same instructions on the same values as before (a zero where
an operand was padding: `-0.0 + 0.0` stays `+0.0`), so results are bit-identical, except
which NaN comes out where both operands of an add are NaN (LLVM may commute an add; IEEE
754 leaves the choice open). An operand qualifies when the step is its only reader (no
view of it either), it is not an output, it has the step's shape (an unslice: unit
steps), its kernels are among the last WINDOW, and its sources can still be read, or
recomputed, as they were when it was planned; otherwise it keeps its buffer.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from graphc.backends.llvm import layout as L
from graphc.backends.llvm.kernels import Instr, Kernel, Map, Reduce, layouts, nested
from graphc.backends.llvm.layout import Layout
from graphc.backends.llvm.planner import Planner, identity
from graphc.schedule import VIEW_OPS, Program, Step
from graphc.shapes import fixed

INLINE_DEPTH = 6  # how many Maps deep a shifted read is recomputed instead of loaded
MAX_INLINED = 200  # instructions per box beyond which reads are loads
WINDOW = 64  # how many of the last kernels are searched for a value's producer
MAX_BOXES = 64  # more boxes than this (many padded operands over many axes): plan the padding as it is
Box = tuple[tuple[int, int], ...]  # (lo, hi) per trailing axis
Place = tuple[str, int]  # (buffer place, index): one block of memory
_SOLE: weakref.WeakKeyDictionary[Program, frozenset[str]] = weakref.WeakKeyDictionary()


def plan_padded(p: Planner, step: Step, instrs: Sequence[Instr]) -> bool:
    """Plan `step` box by box if an argument is a padding that can be skipped; whether it did.

    `instrs` is the step's per-point value (elementwise, of the step's shape), `load k`
    reading `step.args[k]`.
    """
    if p.check_finite:
        return False
    padded = _padded_operands(p, step)
    while padded:
        boxes = _boxes(fixed(step.type.shape), [index for entry in padded.values() for _, index in entry.pieces])
        if boxes is None:
            return False
        try:
            maps = [_box_map(p, step, instrs, box, padded) for box in boxes]
        except _Stale as stale:
            del padded[stale.name]  # its source was overwritten: keep its padded copy
            continue
        if _overwrites_read(p, step, maps):
            return False
        for first, stop in sorted((entry.kernels for entry in padded.values()), reverse=True):
            del p.kernels[first:stop], p.owners[first:stop]
        dest = p.dest(step)
        for box_shape, operands, body, region in maps:
            p.add_map(box_shape, operands, body, L.sliced(dest, region))
        return True
    return False


Index = tuple[tuple[int, int, int], ...]  # (start, stop, step) over trailing axes


@dataclass(frozen=True)
class _Padded:
    """An unslice or concatenate argument: its pieces, its kernels (a range of p.kernels), what was written since.

    A piece is a source and the index of the output it fills; an unslice has one piece
    (zero elsewhere), a concatenate one per operand (they tile the output).
    """

    pieces: tuple[tuple[Layout, Index], ...]
    kernels: tuple[int, int]
    stale: frozenset[Place]


def _pieces(p: Planner, producer: Step) -> tuple[tuple[Layout, Index], ...] | None:
    """The (source, index) pieces of an unslice (unit steps) or a concatenate; None for other steps."""
    if producer.op == "unslice":
        index: Index = producer.attr("index")  # type: ignore[assignment]
        if any(s != 1 for _, _, s in index):
            return None
        return ((p.layouts[producer.args[0]], index),)
    if producer.op != "concatenate":
        return None
    shape = fixed(producer.type.shape)
    axis = producer.int_attr("axis")
    pieces = []
    start = 0
    for name in producer.args:
        source = p.layouts[name]
        stop = start + source.shape[axis]
        pieces.append((source, ((start, stop, 1), *((0, n, 1) for n in shape[axis + 1 :]))))
        start = stop
    return tuple(pieces)


def _padded_operands(p: Planner, step: Step) -> dict[str, _Padded]:
    """The arguments that are unslices (unit steps) or concatenates of the step's shape, dying here, planned lately."""
    shape = fixed(step.type.shape)
    found: dict[str, _Padded] = {}
    frees = frozenset(step.frees)  # a fused region may read (and free) thousands: no tuple scan per argument
    for name in dict.fromkeys(step.args):
        producer = p.program.step(name)
        if producer is None or name not in frees or name in p.direct:
            continue
        if name not in _sole_use(p.program):  # another step or a view reads the padded copy too
            continue
        pieces = _pieces(p, producer)
        if pieces is None or fixed(producer.type.shape) != shape:
            continue
        kernels = _owned(p, name)
        if kernels is None:
            continue
        stale = frozenset(w for k in p.kernels[kernels[0] :] for w in _writes(k))
        found[name] = _Padded(pieces, kernels, stale)
    return found


def _owned(p: Planner, name: str) -> tuple[int, int] | None:
    """The range of kernels `name`'s step planned, if it lies within the last WINDOW (an empty one counts)."""
    stop = len(p.owners)
    for k in range(stop - 1, max(stop - WINDOW, 0) - 1, -1):
        if p.owners[k] == name:
            first = k
            while first > 0 and p.owners[first - 1] == name:
                first -= 1
            return first, k + 1
    step = p.program.step(name)
    return (stop, stop) if step is not None and math.prod(fixed(step.type.shape)) == 0 else None


def _writes(kernel: Kernel) -> set[Place]:
    """The memory a kernel writes (every layout it touches, for kernels other than Map and Reduce)."""
    if isinstance(kernel, (Map, Reduce)) and not nested(kernel):
        return {_place(out) for out in (kernel.out, *kernel.extra_outs)}
    return {_place(layout) for layout in layouts(kernel)} | {ANYWHERE}


ANYWHERE: Place = ("?", -1)  # written by a kernel whose writes are not worked out: every load is stale


def _sole_use(program: Program) -> frozenset[str]:
    """The names exactly one step reads, and no view (whose memory no other name can reach)."""
    found = _SOLE.get(program)
    if found is None:
        count: dict[str, int] = {}
        viewed = set()
        for step in program.steps:
            for name in set(step.args):
                count[name] = count.get(name, 0) + 1
            if step.op in VIEW_OPS:
                viewed.add(step.args[0])
        found = frozenset(name for name, n in count.items() if n == 1 and name not in viewed)
        _SOLE[program] = found
    return found


def _place(layout: Layout) -> Place:
    return layout.buffer.place, layout.buffer.index


def _dest_place(p: Planner, step: Step) -> Place | None:
    """Where p.dest(step) will put the result, if in memory that exists already."""
    if step.name in p.direct:
        return L.OUTPUT, p.direct[step.name]
    if step.reuse is not None and step.reuse in p.slots:
        return L.WORK, p.slots[step.reuse]
    return None


def _overwrites_read(p: Planner, step: Step, maps: list[_BoxMap]) -> bool:
    """Whether the result's memory is read by a box at other points than the box writes."""
    place = _dest_place(p, step)
    if place is None:
        return False
    return any(_place(operand) == place for _, operands, _, _ in maps for operand in operands)


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


def _covers(index: Index, box: Box) -> bool:
    offset = len(box) - len(index)
    return all(start <= lo and hi <= stop for (start, stop, _), (lo, hi) in zip(index, box[offset:], strict=True))


def _source_view(source: Layout, index: Index, box: Box) -> Layout:
    """The part of the unslice's source that lands on `box` (axes the index leaves whole are cut too)."""
    starts = [0] * (len(box) - len(index)) + [start for start, _, _ in index]
    return L.sliced(source, [(lo - start, hi - start, 1) for start, (lo, hi) in zip(starts, box, strict=True)])


_BoxMap = tuple[
    tuple[int, ...], list[Layout], list[Instr], list[tuple[int, int, int]]
]  # shape, operands, instrs, region


def _box_map(p: Planner, step: Step, instrs: Sequence[Instr], box: Box, padded: dict[str, _Padded]) -> _BoxMap:
    """The step's value over `box`: each padded argument read from the piece covering it (or recomputed) or zero."""
    shape = fixed(step.type.shape)
    lead = len(shape) - len(box)
    region = [(lo, hi, 1) for lo, hi in box]
    body = _Body(p.kernels)
    mapped: list[int] = []
    for instr in instrs:
        if instr.op != "load":
            mapped.append(body.add(replace(instr, args=tuple(mapped[a] for a in instr.args))))
            continue
        name = step.args[instr.args[0]]
        entry = padded.get(name)
        if entry is None:
            view = L.sliced(L.broadcast(p.layouts[name], shape), region)
            mapped.append(body.value(view, instr.dtype, name, len(p.kernels), frozenset()))
            continue
        covering = [(source, index) for source, index in entry.pieces if _covers(index, box)]
        if covering:  # boxes are cut at every piece's bounds: a piece covers the box or misses it
            view = _source_view(*covering[0], box)
            mapped.append(body.value(view, instr.dtype, name, entry.kernels[0], entry.stale))
        else:  # an unslice's padding
            mapped.append(body.add(Instr("const", (), instr.dtype, (("value", identity("sum", instr.dtype)),))))
    box_shape = (*shape[:lead], *(hi - lo for lo, hi in box))
    return box_shape, body.operands, body.instrs, region


class _Stale(Exception):
    """An argument's value can be neither loaded (its memory was overwritten since) nor recomputed."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Body:
    """A box's per-point instructions under construction.

    A shifted read of a value that an earlier Map stored is that Map's instructions on its
    operands shifted alike, recursively, so the value need not be stored nor read back.
    A recomputation only loads memory nothing overwrote since the Map read it (else the
    read stays a load of the stored value, if that is still there).
    """

    def __init__(self, kernels: list[Kernel]) -> None:
        self.kernels = kernels
        self.operands: list[Layout] = []
        self.instrs: list[Instr] = []

    def add(self, instr: Instr) -> int:
        self.instrs.append(instr)
        return len(self.instrs) - 1

    def value(self, view: Layout, dtype: np.dtype, name: str, limit: int, stale: frozenset[Place]) -> int:
        """The instruction that gives `view`'s element at each point (_Stale(name) when none can).

        `view` holds the value it had when kernel `limit` was about to run; `stale` is the
        memory written since.
        """
        operands, instrs = len(self.operands), len(self.instrs)
        try:
            return self._value(view, dtype, INLINE_DEPTH, limit, stale)
        except _Stale:
            del self.operands[operands:], self.instrs[instrs:]
        if _place(view) in stale or ANYWHERE in stale:
            raise _Stale(name)
        return self._load(view, dtype)

    def _load(self, view: Layout, dtype: np.dtype) -> int:
        self.operands.append(view)
        return self.add(Instr("load", (len(self.operands) - 1,), dtype))

    def _value(self, view: Layout, dtype: np.dtype, depth: int, limit: int, stale: frozenset[Place]) -> int:
        found = _producer(self.kernels, limit, view) if depth and len(self.instrs) < MAX_INLINED else None
        if found is None:
            if _place(view) in stale or ANYWHERE in stale:
                raise _Stale("")
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
