"""merge.Liveness: which stored workspace places a later kernel may still read, found once per program."""

from __future__ import annotations

import random

import numpy as np

import graphc as gc
from graphc.backends.llvm import layout as L
from graphc.backends.llvm.kernels import Instr, Kernel, Loop, Map, Reduce, Scatter, Sort
from graphc.backends.llvm.layout import Buffer, Layout, contiguous
from graphc.backends.llvm.merge import Liveness, _place, _touched, merge

F64 = np.dtype("float64")


def buf(place: str, index: int) -> Buffer:
    return Buffer(place, index, F64)


def at(place: str, index: int, shape: tuple[int, ...] = (4,), offset: int = 0) -> Layout:
    return contiguous(buf(place, index), shape, offset)


def copy_map(out: Layout, *operands: Layout) -> Map:
    """out = sum of the operands (or a constant when there are none), pointwise."""
    instrs = [Instr("load", (k,), F64) for k in range(len(operands))]
    if not operands:
        instrs.append(Instr("const", (), F64, (("value", 1.0),)))
    for k in range(1, len(operands)):
        instrs.append(Instr("add", (len(instrs) - 1, k), F64))
    instrs.append(Instr("copy", (len(instrs) - 1,), F64))
    return Map(out.shape, tuple(operands), tuple(instrs), out)


def reference_live_after(kernels: list[Kernel], start: int, stores: list[tuple[int, Layout]]) -> set:
    """The specification, as a scan from `start` for each group (what merge.py did before Liveness).

    A stored workspace place is live when the first later kernel touching it does anything
    but write all of it as its main output (layouts() lists that last) without reading it.
    """
    live = {_place(out) for _, out in stores if out.buffer.place != L.WORK}
    pending = {_place(out): out for _, out in stores if out.buffer.place == L.WORK}
    for kernel in kernels[start:]:
        touched = _touched(kernel)
        out = getattr(kernel, "out", None)
        rmw = isinstance(kernel, (Scatter, Sort)) or (isinstance(kernel, Reduce) and not kernel.inner)
        for layout in touched:
            place = _place(layout)
            if place not in pending:
                continue
            only_written = [j for j, other in enumerate(touched) if _place(other) == place] == [len(touched) - 1]
            if isinstance(out, Layout) and only_written and not rmw and layout == pending[place]:
                del pending[place]  # overwritten: dead
            else:
                live.add(place)
                del pending[place]
    return live


W0, W1, W2 = at(L.WORK, 0), at(L.WORK, 64), at(L.WORK, 128)
X, Y = at(L.INPUT, 0), at(L.OUTPUT, 0)


def test_a_place_nothing_touches_again_is_dead_and_one_read_later_is_live():
    kernels = [copy_map(W0, X), copy_map(W1, X), copy_map(Y, W1)]
    liveness = Liveness(kernels)
    assert liveness.live_after(2, [(0, W0), (0, W1)]) == {_place(W1)}
    assert liveness.live_after(3, [(0, W0), (0, W1)]) == set()


def test_inputs_and_outputs_are_always_live():
    kernels = [copy_map(Y, X)]
    assert Liveness(kernels).live_after(1, [(0, Y), (0, X)]) == {_place(Y), _place(X)}


def test_a_reused_buffer_overwritten_exactly_is_dead_partly_or_after_a_read_is_live():
    half = at(L.WORK, 0, (2,))
    kernels = [
        copy_map(W0, X),  # 0
        copy_map(W0, X),  # 1: overwrites all of W0 before any read
        copy_map(Y, W0),  # 2: reads it
        copy_map(half, X),  # 3: overwrites half of W0's place: the rest may still be read
        copy_map(W0, W0, X),  # 4: in place: reads W0 while it overwrites it
    ]
    liveness = Liveness(kernels)
    assert liveness.live_after(1, [(0, W0)]) == set()
    assert liveness.live_after(2, [(0, W0)]) == {_place(W0)}
    assert liveness.live_after(3, [(0, W0)]) == {_place(W0)}
    assert liveness.live_after(4, [(0, W0)]) == {_place(W0)}
    assert liveness.live_after(4, [(0, W0), (0, W1)]) == {_place(W0)}


def test_a_scatter_a_sort_and_an_outer_reduction_read_the_output_they_update():
    index = at(L.WORK, 512, (2,))
    scatter = Scatter(at(L.INPUT, 1, (2,)), index, 0, W0, 1)
    sort = Sort(W0)
    outer = Reduce(
        (3, 4),
        (at(L.INPUT, 2, (3, 4)),),
        (Instr("load", (0,), F64),),
        Layout(buf(L.WORK, 0), (3, 4), (0, 1)),
        frozenset({0}),
        "sum",
    )
    for kernel in (scatter, sort, outer):
        kernels = [copy_map(W0, X), copy_map(W1, X), kernel]
        assert Liveness(kernels).live_after(2, [(0, W0), (0, W1)]) == {_place(W0)}, type(kernel).__name__
    # an inner reduction writes every point without reading it
    inner = Reduce(
        (4, 3),
        (at(L.INPUT, 2, (4, 3)),),
        (Instr("load", (0,), F64),),
        Layout(buf(L.WORK, 0), (4, 3), (1, 0)),
        frozenset({1}),
        "sum",
    )
    assert Liveness([copy_map(W0, X), inner]).live_after(1, [(0, Layout(buf(L.WORK, 0), (4, 3), (1, 0)))]) == set()


def test_a_place_stored_twice_is_judged_by_its_last_layout():
    other = at(L.WORK, 0, (2, 2))  # the same place as W0, another layout
    kernels = [copy_map(W0, X), copy_map(other, X), copy_map(W0, X)]
    liveness = Liveness(kernels)
    assert liveness.live_after(2, [(0, other), (1, W0)]) == set()  # W0 exactly overwritten next
    assert liveness.live_after(2, [(0, W0), (1, other)]) == {_place(W0)}  # a 2x2 store, a (4,) overwrite


def test_a_loop_body_or_a_reduction_touching_the_place_keeps_it_live():
    body = (copy_map(Y, W1),)
    loop = Loop("scan", 3, False, 1, body, (1,))
    point = Layout(buf(L.OUTPUT, 1), (4,), (0,))
    total = Reduce((4,), (W2,), (Instr("load", (0,), F64), Instr("copy", (0,), F64)), point, frozenset({0}), "sum")
    kernels = [copy_map(W1, X), loop, total]
    liveness = Liveness(kernels)
    assert liveness.live_after(1, [(0, W1), (0, W2)]) == {_place(W1), _place(W2)}
    assert liveness.live_after(2, [(0, W1), (0, W2)]) == {_place(W2)}


def test_liveness_agrees_with_the_per_group_scan_on_random_programs():
    rng = random.Random(0)
    places = [at(L.WORK, 64 * k) for k in range(5)] + [at(L.WORK, 0, (2,)), at(L.WORK, 64, (2,), offset=2)]
    sources = [X, *places]
    for _ in range(200):
        kernels: list[Kernel] = []
        for _ in range(rng.randint(0, 12)):
            out = rng.choice([*places, Y])
            reads = rng.sample(sources, rng.randint(0, 3))
            reads = [r if r.shape == out.shape else contiguous(r.buffer, out.shape, r.offset) for r in reads]
            if rng.random() < 0.2:
                reads.append(out)  # in place: the very object it writes
            kind = rng.random()
            if kind < 0.1:
                kernels.append(Scatter(X, at(L.WORK, 512), 0, out, 1))
            elif kind < 0.15:
                kernels.append(Sort(out))
            else:
                kernels.append(copy_map(out, *reads))
        liveness = Liveness(kernels)
        for start in range(len(kernels) + 1):
            stores = [(0, rng.choice([*places, Y])) for _ in range(rng.randint(1, 4))]
            assert liveness.live_after(start, stores) == reference_live_after(kernels, start, stores)


def test_merge_drops_a_dead_temporary_and_keeps_a_live_one():
    # W0 = x, W1 = W0 + x and y = W1 merge; W0 is read later only in the second program
    first = [copy_map(W0, X), copy_map(W1, W0, X), copy_map(Y, W1)]
    second = [*first, copy_map(at(L.OUTPUT, 1, (2,)), at(L.WORK, 0, (2,)))]  # another shape: not merged
    merged = merge(first)
    assert len(merged) == 1 and merged[0].out == Y and not merged[0].extra_outs  # W0 and W1 never stored
    merged = merge(second)
    assert len(merged) == 2 and W0 in merged[0].extra_outs


def test_a_zero_fill_merged_before_a_scatter_is_kept():
    """A regression: the fill a scatter adds into was dropped as 'overwritten' when it merged with a map."""
    x, w = gc.var("x", (6,)), gc.var("w", (6,))
    a = gc.sin(x) * w
    loss = gc.sum(gc.take(a * x, gc.const(np.array([0, 0, 3, 5, 5, 2]))) ** 2)
    (g,) = gc.grad(loss, [x])
    outs = [gc.exp(w) * g, a * 2.0]
    fn = gc.compile([x, w], outs, cache=False)
    assert any(isinstance(k, Scatter) for k in fn._built.plan.kernels)
    rng = np.random.default_rng(0)
    for _ in range(3):
        xv, wv = rng.normal(size=6), rng.normal(size=6)
        for got, want in zip(fn(xv, wv), gc.evaluate(outs, {x: xv, w: wv}), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
