"""Construction and rearrangement functions of API.md §9, with NumPy's names and semantics.

Imports errors, shapes, ops and tensor (graphc.functions re-exports everything here).
Constructors (zeros, ones, full, eye, arange, linspace and the *_like ones) build constants:
a 0-d constant broadcast to the shape where every element is equal (the graph stays small),
else the NumPy array itself; `full` and `linspace` also take Tensors, and are then
differentiable. Rearrangements are composites of slices, concatenation, gathers,
broadcasts and reshapes, so they differentiate through those primitives' rules: flip,
roll, tile, repeat, pad (constant, edge, reflect, symmetric and wrap modes), diff,
triu/tril (a constant mask and `where`, as NumPy) and outer. cumsum and cumprod are
primitives (graphc/ops/cumulative.py): one sequential pass, as NumPy's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.errors import ShapeError
from graphc.ops import cumulative as cu
from graphc.ops import elementwise as ew
from graphc.ops import random as rops
from graphc.ops import shape as sh
from graphc.ops.source import dim_value
from graphc.shapes import BOOL, FLOAT64, INT64, Dim, Shape, as_dtype, as_shape, is_float, normalize_axes, normalize_axis
from graphc.tensor import (
    DTypeLike,
    Tensor,
    TensorLike,
    arith,
    as_tensor,
    astype,
    building,
    const,
    getitem,
    promote,
    reshape,
    take,
)

Axis = int | Sequence[int] | None

# --- construction ---------------------------------------------------------------------------------


def _filled(shape: int | Sequence[int | Dim], value: TensorLike, dtype: DTypeLike | None) -> Tensor:
    """`value` (a number, an array or a Tensor) broadcast to `shape`, as numpy.full."""
    target = as_shape(shape)
    t = as_tensor(value) if isinstance(value, Tensor) else const(np.asarray(value, dtype=_numpy_dtype(dtype)))
    if dtype is not None:
        t = astype(t, dtype)
    if t.shape == target:
        return t
    return Tensor(sh.broadcast_to(t.node, shape=target))


def _numpy_dtype(dtype: object) -> np.dtype | None:
    return None if dtype is None else as_dtype(dtype)


def zeros(shape: int | Sequence[int], dtype: DTypeLike = float) -> Tensor:
    """A constant of zeros, as numpy.zeros (float64 by default)."""
    with building("zeros", shape):
        return _filled(shape, 0, dtype)


def ones(shape: int | Sequence[int], dtype: DTypeLike = float) -> Tensor:
    """A constant of ones, as numpy.ones (float64 by default)."""
    with building("ones", shape):
        return _filled(shape, 1, dtype)


def full(shape: int | Sequence[int], fill_value: TensorLike, dtype: DTypeLike | None = None) -> Tensor:
    """`fill_value` broadcast to `shape`, as numpy.full; a Tensor fill value gives a differentiable result."""
    with building("full", shape, fill_value):
        return _filled(shape, fill_value, dtype)


def _like(a: TensorLike, dtype: DTypeLike | None, shape: int | Sequence[int] | None) -> tuple[Shape, DTypeLike]:
    t = as_tensor(a)
    return (t.shape if shape is None else as_shape(shape)), (t.dtype if dtype is None else dtype)


def zeros_like(a: TensorLike, dtype: DTypeLike | None = None, shape: int | Sequence[int] | None = None) -> Tensor:
    """Zeros with the shape and dtype of `a` (or those given), as numpy.zeros_like."""
    with building("zeros_like", a):
        target, kind = _like(a, dtype, shape)
        return _filled(target, 0, kind)


def ones_like(a: TensorLike, dtype: DTypeLike | None = None, shape: int | Sequence[int] | None = None) -> Tensor:
    """Ones with the shape and dtype of `a` (or those given), as numpy.ones_like."""
    with building("ones_like", a):
        target, kind = _like(a, dtype, shape)
        return _filled(target, 1, kind)


def full_like(
    a: TensorLike, fill_value: TensorLike, dtype: DTypeLike | None = None, shape: int | Sequence[int] | None = None
) -> Tensor:
    """`fill_value` with the shape of `a` and its dtype (or those given), as numpy.full_like."""
    with building("full_like", a, fill_value):
        target, kind = _like(a, dtype, shape)
        return _filled(target, fill_value, kind)


def _static(name: str, *values: object) -> None:
    for value in values:
        if isinstance(value, Tensor):
            raise TypeError(f"{name} needs static numbers (its shape depends on them), not a Tensor: {value!r}")


def eye(N: int, M: int | None = None, k: int = 0, dtype: DTypeLike = float) -> Tensor:
    """The identity (ones on the k-th diagonal), as numpy.eye: a constant."""
    _static("eye", N, M, k)
    with building("eye", N):
        return const(np.eye(N, M, k, dtype=as_dtype(dtype)))


def arange(
    start: float, stop: float | None = None, step: float | None = None, dtype: DTypeLike | None = None
) -> Tensor:
    """Evenly spaced values in [start, stop), as numpy.arange: a constant (int64 for int arguments)."""
    _static("arange", start, stop, step)
    with building("arange", start, stop, step):
        return const(np.arange(start, stop, step, dtype=_numpy_dtype(dtype)))


def linspace(
    start: TensorLike,
    stop: TensorLike,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: DTypeLike | None = None,
    axis: int = 0,
) -> Tensor | tuple[Tensor, Tensor]:
    """`num` evenly spaced values from start to stop, as numpy.linspace.

    Numbers give a constant (NumPy's own values); Tensor start or stop give NumPy's formula
    start + arange(num) * step with the last value set to stop, differentiable in both.
    """
    _static("linspace", num)
    with building("linspace", start, stop):
        if int(num) < 0:
            raise ShapeError(f"Number of samples, {num}, must be non-negative.")
        if not isinstance(start, Tensor) and not isinstance(stop, Tensor):
            values = np.linspace(start, stop, int(num), endpoint, retstep=True, dtype=_numpy_dtype(dtype), axis=axis)  # type: ignore[call-overload]
            return (const(values[0]), const(values[1])) if retstep else const(values[0])
        return _symbolic_linspace(start, stop, int(num), endpoint, retstep, dtype, axis)


def _symbolic_linspace(
    start: TensorLike, stop: TensorLike, num: int, endpoint: bool, retstep: bool, dtype: DTypeLike | None, axis: int
) -> Tensor | tuple[Tensor, Tensor]:
    """NumPy's formula on Tensors: arange * step + start (arange / div * delta where a step is 0), stop last."""
    first, last = (_to_float(t) for t in promote(start, stop))
    div = num - 1 if endpoint else num
    delta = last - first
    steps = const(np.arange(num, dtype=first.dtype).reshape((-1,) + (1,) * delta.ndim))
    if div > 0:
        divisor = const(np.asarray(div, first.dtype))
        step = delta / divisor
        is_zero = ew.equal(step.node, const(np.zeros((), first.dtype)).node)
        y = Tensor(ew.where(is_zero, (steps / divisor * delta).node, (steps * step).node))
    else:
        step = const(np.asarray(np.nan, first.dtype))
        y = steps * delta
    y = y + first
    if endpoint and num > 1:
        end = reshape(_filled(delta.shape, last, None), (1, *delta.shape))
        y = _concatenate([getitem(y, slice(0, num - 1)), end], 0)
    y = _move_first_axis(y, axis)
    if dtype is not None:
        y = _floored(y, as_dtype(dtype))
    return (y, step) if retstep else y


def _to_float(t: Tensor) -> Tensor:
    return t if is_float(t.dtype) else astype(t, FLOAT64)


def _floored(y: Tensor, dtype: np.dtype) -> Tensor:
    """numpy.linspace's cast: floor first for an integer dtype."""
    if dtype.kind in "iu":
        y = Tensor(ew.floor(y.node))
    return astype(y, dtype)


def _move_first_axis(y: Tensor, axis: int) -> Tensor:
    axis = normalize_axis(axis, y.ndim)
    if axis == 0:
        return y
    order = [*range(1, axis + 1), 0, *range(axis + 1, y.ndim)]
    return Tensor(sh.transpose(y.node, axes=tuple(order)))


def _concatenate(parts: Sequence[Tensor], axis: int) -> Tensor:
    """Join Tensors of one dtype along an existing axis (leaving empty ones out)."""
    kept = [p for p in parts if isinstance(p.shape[axis], Dim) or p.shape[axis] > 0] or list(parts[:1])
    if len(kept) == 1:
        return kept[0]
    return Tensor(sh.concatenate(*(p.node for p in kept), axis=axis))


# --- rearrangements --------------------------------------------------------------------------------


def _along(axis: int, ndim: int, index: slice) -> tuple[slice, ...]:
    """A subscript that applies `index` to `axis` and takes everything else."""
    return tuple(index if a == axis else slice(None) for a in range(ndim))


def flip(m: TensorLike, axis: Axis = None) -> Tensor:
    """The elements in reversed order along `axis` (all axes by default), as numpy.flip."""
    with building("flip", m):
        t = as_tensor(m)
        axes = normalize_axes(axis, t.ndim)
        if not axes:
            return t
        return getitem(t, tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(t.ndim)))


def roll(a: TensorLike, shift: int | Sequence[int], axis: Axis = None) -> Tensor:
    """Elements shifted along `axis` with wrap-around, as numpy.roll (axis None: the flattened array)."""
    _static("roll", shift, axis)
    with building("roll", a, shift):
        t = as_tensor(a)
        if axis is None:
            return reshape(roll(reshape(t, (-1,)), shift, 0), t.shape)
        pairs = np.broadcast(np.asarray(shift), np.asarray(axis))
        if pairs.ndim > 1:
            raise ValueError("'shift' and 'axis' should be scalars or 1D sequences")
        shifts = dict.fromkeys(range(t.ndim), 0)
        for s, ax in pairs:
            shifts[normalize_axis(int(ax), t.ndim)] += int(s)
        for ax, s in shifts.items():
            n = t.shape[ax]
            if s == 0:
                continue
            if isinstance(n, Dim):  # where the shift wraps is known at call time: a gather of (i - s) mod n
                shifted = Tensor(rops.iota(shape=(n,))) - s
                index = Tensor(ew.mod(shifted.node, dim_value(n, INT64)))
                t = take(t, index, ax)
                continue
            if n == 0 or s % n == 0:
                continue
            cut = n - s % n
            t = _concatenate(
                [getitem(t, _along(ax, t.ndim, slice(cut, n))), getitem(t, _along(ax, t.ndim, slice(0, cut)))], ax
            )
        return t


def tile(A: TensorLike, reps: int | Sequence[int]) -> Tensor:
    """A repeated `reps` times along each axis, as numpy.tile (a broadcast, then a reshape)."""
    _static("tile", reps)
    with building("tile", A, reps):
        t = as_tensor(A)
        counts = as_shape(reps)
        ndim = max(t.ndim, len(counts))
        shape = (1,) * (ndim - t.ndim) + t.shape
        counts = (1,) * (ndim - len(counts)) + counts
        interleaved = tuple(n for pair in zip((1,) * ndim, shape, strict=True) for n in pair)
        target = tuple(n for pair in zip(counts, shape, strict=True) for n in pair)
        spread = reshape(t, interleaved)
        if target != interleaved:
            spread = Tensor(sh.broadcast_to(spread.node, shape=target))
        return reshape(spread, tuple(c * n for c, n in zip(counts, shape, strict=True)))


def repeat(a: TensorLike, repeats: int | Sequence[int], axis: int | None = None) -> Tensor:
    """Each element repeated `repeats` times along `axis` (the flattened array by default), as numpy.repeat."""
    _static("repeat", repeats)
    with building("repeat", a, repeats):
        t = as_tensor(a)
        if axis is None:
            t, axis = reshape(t, (-1,)), 0
        ax = normalize_axis(axis, t.ndim)
        counts = np.asarray(repeats)
        if counts.dtype.kind not in "iu" or (counts < 0).any():
            raise ValueError(f"repeats must be non-negative integers, got {repeats!r}")
        n = t.shape[ax]
        if counts.ndim == 0:
            r = int(counts)
            wide = reshape(t, (*t.shape[: ax + 1], 1, *t.shape[ax + 1 :]))
            target = (*t.shape[: ax + 1], r, *t.shape[ax + 1 :])
            if r != 1:
                wide = Tensor(sh.broadcast_to(wide.node, shape=target))
            return reshape(wide, (*t.shape[:ax], n * r, *t.shape[ax + 1 :]))
        if counts.shape != (n,):
            raise ShapeError(f"operands could not be broadcast together with shape ({n},) ({counts.shape})")
        return take(t, np.repeat(np.arange(n, dtype=np.int64), counts), ax)


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _pairs(value: object, ndim: int, name: str) -> np.ndarray:
    """numpy.pad's (before, after) per axis from a number, a pair, or one pair per axis."""
    array = np.asarray(value)
    try:
        return np.broadcast_to(array, (ndim, 2))
    except ValueError:
        raise ValueError(f"{name} {value!r} cannot be broadcast to ({ndim}, 2)") from None


def pad(
    array: TensorLike,
    pad_width: int | Sequence[int] | Sequence[Sequence[int]],
    mode: str = "constant",
    *,
    constant_values: TensorLike = 0,
    reflect_type: str = "even",
) -> Tensor:
    """The array padded along each axis, as numpy.pad, in modes constant, edge, reflect, symmetric and wrap.

    `pad_width` is a number, a (before, after) pair, or one pair per axis; `constant_values`
    likewise. edge/reflect/symmetric/wrap gather the original elements (NumPy's index
    pattern, so any width works); reflect_type='odd' and the statistical modes are not supported.
    """
    _static("pad", pad_width)
    with building("pad", array, pad_width):
        t = as_tensor(array)
        widths = _pairs(pad_width, t.ndim, "pad_width")
        if widths.dtype.kind not in "iu":
            raise TypeError(f"`pad_width` must be of integral type, got {widths.dtype}")
        if (widths < 0).any():
            raise ValueError(f"pad_width must be non-negative, got {pad_width!r}")
        if mode not in _PAD_MODES:
            raise NotImplementedError(f"pad mode {mode!r} is not supported; graphc has {', '.join(_PAD_MODES)}")
        if reflect_type != "even":
            raise NotImplementedError("pad supports reflect_type='even' only")
        if mode == "constant":
            return _pad_constant(t, widths, constant_values)
        for ax, (before, after) in enumerate(widths.tolist()):
            if before or after:
                if t.shape[ax] == 0:
                    raise ValueError(f"can't extend empty axis {ax} in mode {mode!r}; only mode 'constant' can")
                index = np.pad(np.arange(t.shape[ax], dtype=np.int64), (before, after), mode=mode)  # type: ignore[call-overload]
                t = take(t, index, ax)
        return t


def _pad_constant(t: Tensor, widths: np.ndarray, constant_values: TensorLike) -> Tensor:
    """Blocks of the constants joined before and after each axis in turn (later axes fill the corners, as NumPy)."""
    values = (
        constant_values if isinstance(constant_values, Tensor) else _pairs(constant_values, t.ndim, "constant_values")
    )
    for ax, (before, after) in enumerate(widths.tolist()):
        if not (before or after):
            continue
        parts = []
        for width, side in ((before, 0), (after, 1)):
            value = values if isinstance(values, Tensor) else values[ax, side]
            block = (*t.shape[:ax], width, *t.shape[ax + 1 :])
            parts.append(
                _filled(block, value if isinstance(value, Tensor) else np.asarray(value).astype(t.dtype), t.dtype)
            )
        t = _concatenate([parts[0], t, parts[1]], ax)
    return t


def diff(
    a: TensorLike, n: int = 1, axis: int = -1, prepend: TensorLike | None = None, append: TensorLike | None = None
) -> Tensor:
    """The n-th discrete difference along `axis`, as numpy.diff (not_equal for bools); prepend/append first."""
    _static("diff", n)
    with building("diff", a):
        t = as_tensor(a)
        if n < 0:
            raise ValueError(f"order must be non-negative but got {n!r}")
        if t.ndim == 0:
            raise ShapeError("diff requires input that is at least one dimensional")
        ax = normalize_axis(axis, t.ndim)
        if n == 0:
            return t
        extra = [_edge(v, t, ax) for v in (prepend, append)]
        parts = promote(*(p for p in (extra[0], t, extra[1]) if p is not None))
        t = _concatenate(parts, ax)
        for _ in range(n):
            length = t.shape[ax]
            later = getitem(t, _along(ax, t.ndim, slice(1, length)))
            earlier = getitem(t, _along(ax, t.ndim, slice(0, max(length - 1, 0))))
            t = arith("not_equal" if t.dtype == BOOL else "sub", later, earlier)
        return t


def _edge(value: TensorLike | None, t: Tensor, axis: int) -> Tensor | None:
    """prepend/append of diff: a scalar is broadcast to t's shape with length 1 along `axis`."""
    if value is None:
        return None
    v = as_tensor(value)
    if v.ndim == 0:
        return _filled((*t.shape[:axis], 1, *t.shape[axis + 1 :]), v, None)
    return v


def _cumulative(name: str, a: TensorLike, axis: int | None, dtype: DTypeLike | None) -> Tensor:
    with building(name, a):
        t = as_tensor(a)
        if dtype is not None:
            t = astype(t, dtype)
        elif not is_float(t.dtype):
            t = astype(t, INT64)
        if axis is None:
            t, axis = reshape(t, (-1,)), 0
        ax = normalize_axis(axis, t.ndim)
        op = cu.cumsum if name == "cumsum" else cu.cumprod
        return Tensor(op(t.node, axis=ax, reverse=False))


def cumsum(a: TensorLike, axis: int | None = None, dtype: DTypeLike | None = None) -> Tensor:
    """Cumulative sum along `axis` (the flattened array by default), as numpy.cumsum; ints and bools in int64."""
    return _cumulative("cumsum", a, axis, dtype)


def cumprod(a: TensorLike, axis: int | None = None, dtype: DTypeLike | None = None) -> Tensor:
    """Cumulative product, as numpy.cumprod; its derivative is exact where `a` has zeros."""
    return _cumulative("cumprod", a, axis, dtype)


def _triangle(name: str, m: TensorLike, k: int, upper: bool) -> Tensor:
    """where(mask, m, 0) with NumPy's constant mask over the last two axes (a 1-D m is broadcast, as NumPy)."""
    _static(name, k)
    with building(name, m):
        t = as_tensor(m)
        if t.ndim == 0:
            raise ShapeError(f"{name} needs an array of at least one dimension")
        rows, cols = t.shape[-2:] if t.ndim >= 2 else (t.shape[0], t.shape[0])
        if isinstance(rows, Dim) or isinstance(cols, Dim):
            keep = _named_triangle(rows, cols, k, upper)
        else:
            keep = const(~np.tri(rows, cols, k - 1, dtype=bool) if upper else np.tri(rows, cols, k, dtype=bool))
        zero = const(np.zeros((), t.dtype))
        return Tensor(ew.where(keep.node, t.node, zero.node))


def _named_triangle(rows: int | Dim, cols: int | Dim, k: int, upper: bool) -> Tensor:
    """The mask j - i >= k (upper) or j - i <= k (lower) over rows x cols, sizes known at call time."""
    i = reshape(Tensor(rops.iota(shape=(rows,))), (rows, 1))
    j = reshape(Tensor(rops.iota(shape=(cols,))), (1, cols))
    offset = j - i
    return offset >= k if upper else offset <= k


def triu(m: TensorLike, k: int = 0) -> Tensor:
    """The upper triangle of the last two axes (zero below the k-th diagonal), as numpy.triu."""
    return _triangle("triu", m, k, upper=True)


def tril(m: TensorLike, k: int = 0) -> Tensor:
    """The lower triangle of the last two axes (zero above the k-th diagonal), as numpy.tril."""
    return _triangle("tril", m, k, upper=False)


def outer(a: TensorLike, b: TensorLike) -> Tensor:
    """out[i, j] = a.ravel()[i] * b.ravel()[j], as numpy.outer."""
    with building("outer", a, b):
        x, y = promote(a, b)
        column = reshape(x, (-1, 1))
        row = reshape(y, (1, -1))
        if x.dtype == BOOL:
            return Tensor(ew.logical_and(column.node, row.node))
        return column * row


__all__ = [
    "arange", "cumprod", "cumsum", "diff", "eye", "flip", "full", "full_like", "linspace", "ones", "ones_like",
    "outer", "pad", "repeat", "roll", "tile", "tril", "triu", "zeros", "zeros_like",
]  # fmt: skip
