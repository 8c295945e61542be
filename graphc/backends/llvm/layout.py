"""Static memory layouts: where each element of a Program value lives, and views as new layouts.

Imports numpy only. A Layout says that element (i0, ..., ik) of a value is element
`offset + i0*s0 + ... + ik*sk` of its Buffer (strides in elements, possibly 0 or
negative). Transposes, broadcasts, slices with steps and most reshapes are new layouts
of the same buffer, so they cost no copy. `coalesce` merges the axes of a loop nest
that every layout walks contiguously, as NumPy's iterator does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

Shape = tuple[int, ...]

INPUT = "input"  # an argument of the compiled function: index = its position
CONST = "const"  # the constant blob: index = byte offset
OUTPUT = "output"  # a fresh result array: index = its position among the outputs
WORK = "work"  # the workspace: index = byte offset
PARAM = "param"  # a kernel's pointer parameter (kernels are compiled once per structure)


@dataclass(frozen=True)
class Buffer:
    """A block of memory of one dtype.

    `value` is the one value of a one-element constant: elementwise code may use it
    instead of reading memory, but the buffer has memory all the same, so every kernel
    (gathers, scatters, BLAS calls, ...) can also read it through an address.
    """

    place: str
    index: int
    dtype: np.dtype
    value: bool | int | float | None = None


@dataclass(frozen=True)
class Layout:
    """Element (i0, ..., ik) is element `offset + sum(i * stride)` of `buffer`.

    Inside a loop (scan, fixed_point) the offset may move with the iteration: each
    (depth, every, step) of `dynamic` adds (t // every) * step, t the counter of the
    loop at that nesting depth.
    """

    buffer: Buffer
    shape: Shape
    strides: Shape
    offset: int = 0
    dynamic: tuple[tuple[int, int, int], ...] = ()

    @property
    def dtype(self) -> np.dtype:
        return self.buffer.dtype

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def contiguous_strides(shape: Sequence[int]) -> Shape:
    """C-order strides in elements."""
    strides = []
    step = 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def contiguous(buffer: Buffer, shape: Shape, offset: int = 0) -> Layout:
    return Layout(buffer, shape, contiguous_strides(shape), offset)


# --- views ---------------------------------------------------------------------------------------


def restrided(layout: Layout, shape: Shape, strides: Shape) -> Layout:
    """The layout with another shape and strides (dataclasses.replace, without its cost on a hot path)."""
    return Layout(layout.buffer, shape, strides, layout.offset, layout.dynamic)


def transposed(layout: Layout, axes: Sequence[int]) -> Layout:
    shape = tuple(layout.shape[a] for a in axes)
    strides = tuple(layout.strides[a] for a in axes)
    return replace(layout, shape=shape, strides=strides)


def broadcast(layout: Layout, shape: Shape) -> Layout:
    """The layout seen at `shape` (right-aligned, NumPy's rules): stride 0 on repeated axes."""
    lead = len(shape) - len(layout.shape)
    strides = [0] * lead
    for n, m, s in zip(layout.shape, shape[lead:], layout.strides, strict=True):
        strides.append(s if n == m else 0)
    return restrided(layout, tuple(shape), tuple(strides))


def sliced(layout: Layout, index: Sequence[tuple[int, int, int]]) -> Layout:
    """`value[..., start:stop:step, ...]` on the trailing axes (bounds normalized as slice.indices gives)."""
    lead = len(layout.shape) - len(index)
    shape = list(layout.shape)
    strides = list(layout.strides)
    offset = layout.offset
    for k, (start, stop, step) in enumerate(index, start=lead):
        length = len(range(start, stop, step))
        if length:
            offset += start * strides[k]
        shape[k] = length
        strides[k] *= step
    return replace(layout, shape=tuple(shape), strides=tuple(strides), offset=offset)


def reshaped(layout: Layout, shape: Shape) -> Layout | None:
    """The same elements in C order at `shape` without a copy, or None when strides cannot say it.

    NumPy's `_attempt_nocopy_reshape`: old and new axes (those longer than 1) are matched
    in groups of equal product; each group of old axes must be contiguous among themselves.
    Axes of length 1 get stride 0 (they are only ever indexed at 0).
    """
    if math.prod(shape) == 0:
        return contiguous(layout.buffer, shape, layout.offset)
    old = [(n, s) for n, s in zip(layout.shape, layout.strides, strict=True) if n != 1]
    new = [n for n in shape if n != 1]
    found = _group_strides(old, new)
    if found is None:
        return None
    it = iter(found)
    strides = tuple(next(it) if n != 1 else 0 for n in shape)
    return replace(layout, shape=shape, strides=strides)


def _group_strides(old: list[tuple[int, int]], new: list[int]) -> list[int] | None:
    """Strides for the new axes (all longer than 1); None if a group of old axes is not contiguous."""
    strides: list[int] = []
    i = len(old) - 1
    j = len(new) - 1
    while i >= 0 and j >= 0:
        group_old = [old[i]]
        group_new = [new[j]]
        p_old, p_new = old[i][0], new[j]
        while p_old != p_new:
            if p_old < p_new:
                i -= 1
                group_old.append(old[i])
                p_old *= old[i][0]
            else:
                j -= 1
                group_new.append(new[j])
                p_new *= new[j]
        for (n_inner, s_inner), (_, s_outer) in itertools.pairwise(group_old):
            if s_outer != s_inner * n_inner:
                return None
        stride = group_old[0][1]
        for n in group_new:
            strides.append(stride)
            stride *= n
        i -= 1
        j -= 1
    return strides[::-1]


# --- loop nests ---------------------------------------------------------------------------------------


def coalesce(
    shape: Shape, strides: Sequence[Shape], reduced: frozenset[int] = frozenset()
) -> tuple[Shape, list[Shape], frozenset[int]]:
    """Drop axes of length 1 and merge neighbours that every stride list walks as one axis.

    Returns the new shape, the new stride lists and the new reduced axes; a reduced axis
    only merges with a reduced neighbour.
    """
    keep = [a for a, n in enumerate(shape) if n != 1]
    if any(n == 0 for n in shape):
        keep = list(range(len(shape)))
    axes: list[list[int]] = []
    for a in keep:
        if axes and _mergeable(axes[-1][-1], a, shape, strides, reduced):
            axes[-1].append(a)
        else:
            axes.append([a])
    new_shape = tuple(math.prod(shape[a] for a in group) for group in axes)
    new_strides = [tuple(s[group[-1]] for group in axes) for s in strides]
    new_reduced = frozenset(k for k, group in enumerate(axes) if group[0] in reduced)
    return new_shape, new_strides, new_reduced


def _mergeable(a: int, b: int, shape: Shape, strides: Sequence[Shape], reduced: frozenset[int]) -> bool:
    if (a in reduced) != (b in reduced) or 0 in (shape[a], shape[b]):
        return False
    return all(s[a] == s[b] * shape[b] for s in strides)


def byte_size(shape: Shape, dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def as_scalar(array: np.ndarray) -> bool | int | float:
    """The one value of a one-element array as a Python scalar of its kind."""
    return array.reshape(-1)[0].item()


def matrix_order(layout: Layout) -> tuple[bool, int] | None:
    """(transposed, leading dimension) of the last two axes for gemm, or None if they need a copy."""
    rows, cols = layout.shape[-2:]
    s_rows, s_cols = layout.strides[-2:]
    if cols == 1:
        s_cols = 1
    if rows == 1 and s_cols != 1:
        s_rows = 1
    elif rows == 1:
        s_rows = max(cols, 1)
    if s_cols == 1 and s_rows >= max(1, cols):
        return False, s_rows
    if s_rows == 1 and s_cols >= max(1, rows):
        return True, s_cols
    return None
