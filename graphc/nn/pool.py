"""gc.nn.max_pool2d and gc.nn.avg_pool2d, as torch.nn.functional's: a max or a mean over the window axes of im2col.

Imports errors, ops, tensor and graphc.nn.conv (the argument helpers). The windows
(C, kh, kw, N, Ho, Wo) are reduced over (kh, kw), so the derivatives are those of the
max and sum reductions followed by col2im. Max pooling pads with -inf; at ties the
gradient is split evenly among the tied elements of a window (graphc's max reduction;
PyTorch gives it all to the first maximum). Average pooling pads with zeros.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.nn.conv import IntOrPair, batched, pair, windows
from graphc.ops.nn import Padding, Pair
from graphc.tensor import Tensor, building, const, reduction, reshape, to_float, transpose


def _pool_window(
    op: str, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair, dilation: IntOrPair = 1
) -> tuple[Pair, Pair, Padding, Pair]:  # fmt: skip
    """kernel, stride (the kernel's when None), symmetric padding and dilation as pairs."""
    kernel = pair(kernel_size, "kernel_size", op)
    strides = kernel if stride is None else pair(stride, "stride", op)
    top, left = pair(padding, "padding", op)
    return kernel, strides, ((top, top), (left, left)), pair(dilation, "dilation", op)


def _check_half(padding: Padding, span: Pair) -> None:
    """torch's rule: each side pads at most half the (effective) kernel, so every window meets the input."""
    pads = (padding[0][0], padding[1][0])
    if any(2 * pads[a] > span[a] for a in (0, 1)):
        raise ShapeError(f"padding {pads} should be at most half of the effective kernel size {span}")


def _pooled(x: object, kind: str, window: tuple[Pair, Pair, Padding, Pair], fill: float) -> Tensor:
    """The max or sum over each window of x (N, C, H, W) or (C, H, W), as (N, C, Ho, Wo) or (C, Ho, Wo)."""
    kernel, strides, padding, dilation = window
    image, unbatched = batched(to_float(x))
    _check_half(padding, (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1))
    cols = windows(image, kernel, strides, padding, dilation, fill)
    out = transpose(reduction(kind, cols, (1, 2), False), (1, 0, 2, 3))
    return reshape(out, out.shape[1:]) if unbatched else out


def max_pool2d(
    x: object, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> Tensor:  # fmt: skip
    """The maximum over each kh x kw window (padding with -inf), as torch.nn.functional.max_pool2d.

    `stride` defaults to `kernel_size`; padding at most half the effective kernel. The
    gradient at ties is split evenly among the tied maxima (PyTorch takes the first).
    """
    window = _pool_window("max_pool2d", kernel_size, stride, padding, dilation)
    with building("max_pool2d", x):
        return _pooled(x, "max", window, -np.inf)


def _in_bounds(n: int, k: int, s: int, pad: int, count: int) -> np.ndarray:
    """How many taps of each of `count` windows along an axis of `n` fall inside it (not in the padding)."""
    starts = np.arange(count) * s - pad
    return np.minimum(starts + k, n) - np.maximum(starts, 0)


def avg_pool2d(
    x: object, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
    *, count_include_pad: bool = True,
) -> Tensor:  # fmt: skip
    """The mean over each kh x kw window (zero padding), as torch.nn.functional.avg_pool2d.

    `stride` defaults to `kernel_size`; padding at most half the kernel. With
    `count_include_pad=False` a window near the border averages only its taps inside the image.
    """
    window = _pool_window("avg_pool2d", kernel_size, stride, padding)
    with building("avg_pool2d", x):
        total = _pooled(x, "sum", window, 0.0)
        kernel, strides, padding_pairs, _ = window
        if count_include_pad:
            return total / const(np.asarray(kernel[0] * kernel[1], dtype=total.dtype))
        size = to_float(x).shape[-2:]
        counts = [_in_bounds(size[a], kernel[a], strides[a], padding_pairs[a][0], total.shape[-2 + a]) for a in (0, 1)]
        return total / const(np.multiply.outer(counts[0], counts[1]).astype(total.dtype))


__all__ = ["avg_pool2d", "max_pool2d"]
