"""Shape primitives: reshape, transpose, broadcast_to, slice/unslice, concatenate, take/scatter_add.

Every op acts on the trailing axes its attributes describe and lets leading axes
pass through where that is natural (slice, unslice), so derivative rules stay
correct when the autodiff engine adds leading batch axes to a cotangent.
"""

from __future__ import annotations

import types

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.ir import Node
from graphc.ops import sparsity as sp
from graphc.ops.base import Kind, Op
from graphc.shapes import (
    INT64,
    Dim,
    DimLike,
    Shape,
    TensorType,
    as_shape,
    fixed,
    format_shape,
    resolve_reshape,
    sliced_length,
)

Index = tuple[tuple[DimLike, DimLike, int], ...]  # (start, stop, step) per trailing axis, as slice.indices gives


def batch_of(ct: Node, out: Node) -> Shape:
    """The leading batch axes of a cotangent or tangent of `out`."""
    return ct.shape[: ct.ndim - out.ndim]


# --- reshape ----------------------------------------------------------------------


def _reshape_infer(x: TensorType, *, shape: Shape) -> TensorType:
    if resolve_reshape(x.shape, shape) != shape:
        raise ShapeError(f"cannot reshape {x.shape} into {shape}")
    return TensorType(shape, x.dtype)


reshape: Op = Op(
    "reshape", _reshape_infer, lambda x, *, shape: np.reshape(x, shape),
    vjp=(lambda ct, out, x, *, shape: reshape(ct, shape=batch_of(ct, out) + x.shape),),
    jvp=(lambda t, out, x, *, shape: reshape(t, shape=batch_of(t, x) + shape),),
    sparsity=sp.same,
)  # fmt: skip

# --- transpose --------------------------------------------------------------------


def _transpose_infer(x: TensorType, *, axes: tuple[int, ...]) -> TensorType:
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"axes {axes} are not a permutation of the {x.ndim} axes of {x.shape}")
    return TensorType(tuple(x.shape[a] for a in axes), x.dtype)


def batched_axes(axes: tuple[int, ...], nb: int) -> tuple[int, ...]:
    return tuple(range(nb)) + tuple(a + nb for a in axes)


def _transpose_vjp(ct: Node, out: Node, x: Node, *, axes: tuple[int, ...]) -> Node:
    inverse = tuple(int(i) for i in np.argsort(axes))
    return transpose(ct, axes=batched_axes(inverse, ct.ndim - out.ndim))


transpose: Op = Op(
    "transpose", _transpose_infer, lambda x, *, axes: np.transpose(x, axes),
    vjp=(_transpose_vjp,),
    jvp=(lambda t, out, x, *, axes: transpose(t, axes=batched_axes(axes, t.ndim - x.ndim)),),
    sparsity=sp.permuted,
)  # fmt: skip

# --- broadcast_to -----------------------------------------------------------------


def _broadcast_infer(x: TensorType, *, shape: Shape) -> TensorType:
    shape = as_shape(shape)
    ok = len(shape) >= x.ndim and all(a in (1, b) for a, b in zip(x.shape[::-1], shape[::-1], strict=False))
    if not ok:
        raise ShapeError(f"cannot broadcast {x.shape} to {shape}")
    return TensorType(shape, x.dtype)


def _broadcast_jvp(t: Node, out: Node, x: Node, *, shape: tuple[int, ...]) -> Node:
    """The tangent broadcast like x; new axes go between the batch axes and x's axes."""
    batch = batch_of(t, x)
    padded = batch + (1,) * (len(shape) - x.ndim) + x.shape
    if t.shape != padded:
        t = reshape(t, shape=padded)
    return broadcast_to(t, shape=batch + shape)


broadcast_to = Op(
    "broadcast_to", _broadcast_infer, lambda x, *, shape: np.broadcast_to(x, shape),
    vjp=(lambda ct, out, x, *, shape: ct,),  # the engine sums the broadcast axes back
    jvp=(_broadcast_jvp,), kind=Kind.BROADCAST, sparsity=sp.broadcast,
)  # fmt: skip

# --- slice / unslice ----------------------------------------------------------------


def _index_valid(shape: tuple[DimLike, ...], index: Index) -> tuple[DimLike, ...]:
    """The leading (unsliced) axes; ShapeError for bounds outside the axis (checked once sizes are known)."""
    if len(index) > len(shape):
        raise ShapeError(f"too many indices ({len(index)}) for shape {format_shape(shape)}")
    lead = shape[: len(shape) - len(index)]
    dims = shape[len(shape) - len(index) :]
    for n, (start, stop, step) in zip(dims, index, strict=True):
        if step == 0:
            raise ShapeError(f"slice ({start}, {stop}, {step}) has step 0")
        if isinstance(n, Dim) or isinstance(start, Dim) or isinstance(stop, Dim):
            if step not in (1, -1):
                raise ShapeError(f"a slice of the named axis {n} takes a step of 1 or -1, not {step}")
            continue  # the bounds are checked when the call binds the sizes
        r = range(start, stop, step)
        if len(r) and not (0 <= r[0] < n and 0 <= r[-1] < n):
            raise ShapeError(f"slice {_slice_text(start, stop, step)} does not fit an axis of length {n}")
    return lead


def _slice_text(start: DimLike, stop: DimLike, step: int) -> str:
    return f"{start}:{stop}" + ("" if step == 1 else f":{step}")


def as_slices(index: Index) -> tuple[types.EllipsisType | slice, ...]:
    """NumPy subscripts for the trailing axes (stop -1 with a negative step means 'to the start')."""
    slices = tuple(slice(a, None if (b < 0 and c < 0) else b, c) for a, b, c in index)
    return (Ellipsis, *slices)


def _slice_infer(x: TensorType, *, index: Index) -> TensorType:
    lead = _index_valid(x.shape, index)
    return TensorType(lead + tuple(sliced_length(*i) for i in index), x.dtype)


def _unslice_infer(x: TensorType, *, index: Index, shape: Shape) -> TensorType:
    lead = x.shape[: x.ndim - len(shape)]
    if x.ndim < len(shape) or _slice_infer(TensorType(shape, x.dtype), index=index).shape != x.shape[len(lead) :]:
        raise ShapeError(f"{format_shape(x.shape)} does not fit slice {index} of shape {format_shape(shape)}")
    return TensorType(lead + shape, x.dtype)


def _unslice_eval(x: np.ndarray, *, index: Index, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x)
    out = np.zeros(x.shape[: x.ndim - len(shape)] + shape, dtype=x.dtype)
    out[as_slices(index)] = x
    return out


def _slice_pattern(patterns: sp.Patterns, out: Node, x: Node, *, index: Index) -> sp.Pattern | None:
    """out element k reads the element of x the slice puts there."""
    return sp.gather(sp.positions(fixed(x.shape))[as_slices(index)].reshape(-1), patterns[0])


def _unslice_pattern(
    patterns: sp.Patterns, out: Node, x: Node, *, index: Index, shape: tuple[int, ...]
) -> sp.Pattern | None:
    """The slice reads x; every other element is a constant zero."""
    where = np.full(out.shape, -1, dtype=np.int64)
    where[as_slices(index)] = sp.positions(fixed(x.shape))
    return sp.gather(where.reshape(-1), patterns[0])


slice_: Op = Op(
    "slice", _slice_infer, lambda x, *, index: np.asarray(x)[as_slices(index)],
    vjp=(lambda ct, out, x, *, index: unslice(ct, index=index, shape=x.shape),),
    jvp=(lambda t, out, x, *, index: slice_(t, index=index),),
    sparsity=_slice_pattern,
)  # fmt: skip
unslice: Op = Op(
    "unslice", _unslice_infer, _unslice_eval,
    vjp=(lambda ct, out, x, *, index, shape: slice_(ct, index=index),),
    jvp=(lambda t, out, x, *, index, shape: unslice(t, index=index, shape=shape),),
    sparsity=_unslice_pattern,
)  # fmt: skip

# --- concatenate --------------------------------------------------------------------


def _concat_infer(*xs: TensorType, axis: int) -> TensorType:
    if not xs:
        raise ShapeError("needs at least one array to concatenate")
    first = xs[0]
    for x in xs:
        if x.dtype != first.dtype:
            raise DTypeError(f"operands must share one dtype, got {x.dtype} and {first.dtype}")
        pairs = enumerate(zip(x.shape, first.shape, strict=True)) if x.ndim == first.ndim else None
        same = pairs is not None and all(a == b for i, (a, b) in pairs if i != axis)
        if not same:
            raise ShapeError(f"all dimensions but axis {axis} must match, got {first.shape} and {x.shape}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return TensorType(tuple(shape), first.dtype)


def concat_region(out: Node, inputs: tuple[Node, ...], index: int, axis: int) -> Index:
    """The slice of `out` along `axis` that input `index` fills (trailing axes from `axis`)."""
    start = sum(x.shape[axis] for x in inputs[:index])
    stop = start + inputs[index].shape[axis]
    rest = tuple((0, n, 1) for n in out.shape[axis + 1 :])
    return ((start, stop, 1), *rest)


def _concat_vjp(ct: Node, out: Node, *xs: Node, axis: int, index: int) -> Node:
    return slice_(ct, index=concat_region(out, xs, index, axis))


def _concat_jvp(t: Node, out: Node, *xs: Node, axis: int, index: int) -> Node:
    region = concat_region(out, xs, index, axis)
    return unslice(t, index=region, shape=out.shape[axis:])


concatenate = Op(
    "concatenate", _concat_infer, lambda *xs, axis: np.concatenate(xs, axis=axis),
    vjp=(_concat_vjp,), jvp=(_concat_jvp,), variadic=True, sparsity=sp.concatenated,
)  # fmt: skip

# --- take / scatter_add ---------------------------------------------------------------


def _take_infer(a: TensorType, indices: TensorType, *, axis: int) -> TensorType:
    if indices.dtype != INT64:
        raise DTypeError(f"indices must be int64, got {indices.dtype}")
    if not 0 <= axis < a.ndim:
        raise ShapeError(f"axis {axis} is out of bounds for {a.shape}")
    return TensorType(a.shape[:axis] + indices.shape + a.shape[axis + 1 :], a.dtype)


def _scatter_infer(g: TensorType, indices: TensorType, *, axis: int, size: DimLike) -> TensorType:
    end = axis + indices.ndim
    if indices.dtype != INT64 or g.shape[axis:end] != indices.shape:
        raise ShapeError(f"cannot scatter {g.shape} by indices {indices.shape} at axis {axis}")
    return TensorType((*g.shape[:axis], size, *g.shape[end:]), g.dtype)


def _scatter_eval(g: np.ndarray, indices: np.ndarray, *, axis: int, size: int) -> np.ndarray:
    g = np.asarray(g)
    indices = np.asarray(indices)
    out = np.zeros((*g.shape[:axis], size, *g.shape[axis + indices.ndim :]), dtype=g.dtype)
    moved = np.moveaxis(out, axis, 0)
    values = np.moveaxis(g.reshape((*g.shape[:axis], -1, *g.shape[axis + indices.ndim :])), axis, 0)
    np.add.at(moved, indices.reshape(-1), values)
    return out


def _take_eval(a: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    return np.take(a, indices, axis=axis)


take: Op = Op(
    "take", _take_infer, _take_eval,
    vjp=(lambda ct, out, a, i, *, axis: scatter_add(ct, i, axis=axis + ct.ndim - out.ndim, size=a.shape[axis]), None),
    jvp=(lambda t, out, a, i, *, axis: take(t, i, axis=axis + t.ndim - a.ndim), None),
    sparsity=sp.taken,
)  # fmt: skip
scatter_add: Op = Op(
    "scatter_add", _scatter_infer, _scatter_eval,
    vjp=(lambda ct, out, g, i, *, axis, size: take(ct, i, axis=axis + ct.ndim - out.ndim), None),
    jvp=(lambda t, out, g, i, *, axis, size: scatter_add(t, i, axis=axis + t.ndim - g.ndim, size=size), None),
    sparsity=sp.scatter_pattern,
)  # fmt: skip
