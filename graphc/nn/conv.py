"""gc.nn.conv2d: a 2-D convolution (cross-correlation) as torch.nn.functional.conv2d, built as im2col + one matmul.

Imports errors, shapes, ops and tensor. The graph of conv2d(x, w) is

    cols = im2col(x)                        (C, kh, kw, N, Ho, Wo)
    out  = reshape(w, (O, K)) @ reshape(cols, (K, N*Ho*Wo))    K = C/groups * kh * kw
    out  = transpose(reshape(out, (O, N, Ho, Wo)), (1, 0, 2, 3))

(with `groups` > 1 the matmul is batched over the groups), so its derivatives are those
of matmul and im2col (graphc/ops/nn.py): the weight gradient is one gemm against the
same columns, the input gradient one gemm followed by col2im. The argument helpers here
(int-or-pair, padding) serve pool.py too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.errors import ShapeError, located, user_location
from graphc.ops import nn as ops_nn
from graphc.ops.nn import Padding, Pair
from graphc.tensor import Tensor, as_tensor, building, matmul, promote, reshape, to_float, transpose

IntOrPair = int | Sequence[int]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def pair(value: object, name: str, op: str) -> Pair:
    """An int or a pair of ints as (height, width); a located TypeError for anything else."""
    if _is_int(value):
        return int(value), int(value)  # type: ignore[call-overload]
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise located(TypeError(f"{name} must be an int or a pair of ints, got {value!r}"), op, user_location())


def padding_of(value: object, kernel: Pair, stride: Pair, dilation: Pair, op: str) -> Padding:
    """((top, bottom), (left, right)) from an int, a pair, or torch's "valid" and "same" (stride 1 only)."""
    if value == "valid":
        return (0, 0), (0, 0)
    if value == "same":
        if stride != (1, 1):
            raise located(ValueError(f"padding='same' needs stride 1, got stride {stride}"), op, user_location())
        total = [dilation[a] * (kernel[a] - 1) for a in (0, 1)]
        return (total[0] // 2, total[0] - total[0] // 2), (total[1] // 2, total[1] - total[1] // 2)
    if isinstance(value, str):
        raise located(
            ValueError(f"padding must be 'valid', 'same', an int or a pair, got {value!r}"), op, user_location()
        )
    top, left = pair(value, "padding", op)
    return (top, top), (left, left)


def batched(x: Tensor) -> tuple[Tensor, bool]:
    """x as (N, C, H, W), and whether it was an unbatched (C, H, W) image."""
    if x.ndim == 3:
        return reshape(x, (1, *x.shape)), True
    if x.ndim != 4:
        raise ShapeError(f"expects the input as (N, C, H, W) or (C, H, W), got {x.shape}")
    return x, False


def windows(x: Tensor, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, fill: float) -> Tensor:
    """im2col of x (N, C, H, W): (C, kh, kw, N, Ho, Wo); a window that does not fit is the caller's ShapeError."""
    ops_nn.out_size(x.shape[-2:], kernel, stride, padding, dilation)  # type: ignore[arg-type]
    node = ops_nn.im2col(x.node, kernel=kernel, stride=stride, padding=padding, dilation=dilation, fill=float(fill))
    return Tensor(node)


def _check_channels(x: Tensor, w: Tensor, groups: int) -> None:
    if w.ndim != 4:
        raise ShapeError(f"expects the weight as (out_channels, in_channels / groups, kh, kw), got {w.shape}")
    out_channels, group_channels = w.shape[:2]
    if out_channels % groups:
        raise ShapeError(f"out_channels {out_channels} (weight {w.shape}) is not divisible by groups={groups}")
    if x.shape[1] != group_channels * groups:
        raise ShapeError(
            f"input {x.shape} has {x.shape[1]} channels, the weight {w.shape} with groups={groups} "
            f"expects {group_channels * groups}"
        )


def _groups(groups: object) -> int:
    if not _is_int(groups) or int(groups) < 1:  # type: ignore[call-overload]
        raise located(TypeError(f"groups must be a positive int, got {groups!r}"), "conv2d", user_location())
    return int(groups)  # type: ignore[call-overload]


def _gemm(w: Tensor, cols: Tensor, groups: int) -> Tensor:
    """(O, N*Ho*Wo) = w as (O, K) @ cols as (K, N*Ho*Wo), one product per group."""
    out_channels = w.shape[0]
    k = w.shape[1] * w.shape[2] * w.shape[3]
    columns = cols.shape[3] * cols.shape[4] * cols.shape[5]
    if groups == 1:
        return matmul(reshape(w, (out_channels, k)), reshape(cols, (k, columns)))
    per_group = reshape(w, (groups, out_channels // groups, k)) @ reshape(cols, (groups, k, columns))
    return reshape(per_group, (out_channels, columns))


def conv2d(
    x: object, w: object, stride: IntOrPair = 1, padding: IntOrPair | str = 0, dilation: IntOrPair = 1,
    groups: int = 1, *, bias: object = None,
) -> Tensor:  # fmt: skip
    """2-D cross-correlation of x (N, C, H, W) or (C, H, W) with w (O, C / groups, kh, kw), as torch's conv2d.

    `stride`, `dilation`: an int or a (height, width) pair; `padding`: an int, a pair,
    "valid" (none) or "same" (stride 1; an even kernel pads one more at the bottom and
    right, as torch does), zeros on both sides. `bias` (O,) is keyword-only. Operands
    promote as NumPy's (ints become float64). Output (N, O, Ho, Wo) with
    Ho = (H + 2 * padding - dilation * (kh - 1) - 1) // stride + 1.
    """
    groups = _groups(groups)
    strides, dilations = pair(stride, "stride", "conv2d"), pair(dilation, "dilation", "conv2d")
    operands = (x, w) if bias is None else (x, w, bias)
    with building("conv2d", *operands):
        promoted = [to_float(t) for t in promote(*operands)]
        image, unbatched = batched(promoted[0])
        weight = promoted[1]
        _check_channels(image, weight, groups)
        kernel = (weight.shape[2], weight.shape[3])
        pads = padding_of(padding, kernel, strides, dilations, "conv2d")
        cols = windows(image, kernel, strides, pads, dilations, 0.0)
        n, ho, wo = cols.shape[3:]
        out = transpose(reshape(_gemm(weight, cols, groups), (weight.shape[0], n, ho, wo)), (1, 0, 2, 3))
        if bias is not None:
            out = out + _bias(promoted[2], weight.shape[0])
        return reshape(out, out.shape[1:]) if unbatched else out


def _bias(b: Tensor, out_channels: int) -> Tensor:
    if b.shape != (out_channels,):
        raise ShapeError(f"expects the bias as ({out_channels},), got {b.shape}")
    return reshape(as_tensor(b), (1, out_channels, 1, 1))


__all__ = ["conv2d"]
