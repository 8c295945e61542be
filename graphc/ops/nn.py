"""Sliding windows for convolutional nets: im2col (the patches under every window) and col2im (its adjoint).

Imports errors, shapes, ir and ops.base. gc.nn builds conv2d as im2col followed by one
matmul (im2col + gemm), and max/avg pooling as a max/sum over the window axes of
im2col, so every derivative comes from these two linear maps and the rules of matmul,
reshape, transpose and the reductions.

Both ops act on the trailing axes and let leading axes pass through, as slice does, so
rules stay correct when autodiff adds batch axes to a cotangent or tangent:

    im2col: x (..., N, C, H, W)  ->  cols (..., C, kh, kw, N, Ho, Wo)
    cols[..., c, i, j, n, a, b] = xp[..., n, c, a*sh + i*dh, b*sw + j*dw]

where xp is x padded by `padding` ((top, bottom), (left, right)) with the value `fill`
(0.0 for convolutions, -inf for max pooling) and Ho = (H + top + bottom - dh*(kh-1) - 1)
// sh + 1 (Wo alike). The layout puts the contracted axes (C, kh, kw) first and the
columns (N, Ho, Wo) last, so a convolution is one gemm of (O, C*kh*kw) by
(C*kh*kw, N*Ho*Wo). col2im sums every column entry back onto the pixel it came from
(in (i, j) order, starting from +0.0) and drops the padding: it is the transpose of
im2col for any `fill`, so it is im2col's vjp, and im2col (with fill 0) is col2im's.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.ir import Node
from graphc.ops.base import Op
from graphc.shapes import TensorType, fixed_size, is_float

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]  # ((top, bottom), (left, right))


def window_count(n: int, k: int, s: int, pad: Pair, d: int) -> int:
    """How many windows of `k` taps `d` apart, `s` apart, fit along an axis of `n` padded by `pad`."""
    return (n + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def _check_window(kernel: Pair, stride: Pair, padding: Padding, dilation: Pair) -> None:
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ShapeError(f"kernel {kernel}, stride {stride} and dilation {dilation} must be positive")
    if min(padding[0] + padding[1]) < 0:
        raise ShapeError(f"padding {padding} must be non-negative")


def out_size(size: Pair, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair) -> Pair:
    """(Ho, Wo) for an image of `size`; ShapeError when a window does not fit."""
    _check_window(kernel, stride, padding, dilation)
    out = tuple(window_count(size[a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    if min(out) < 1:
        span = tuple(dilation[a] * (kernel[a] - 1) + 1 for a in (0, 1))
        raise ShapeError(f"the window {span} does not fit the padded input {size} padded by {padding}")
    return out  # type: ignore[return-value]


def _im2col_infer(
    x: TensorType, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, fill: float
) -> TensorType:  # fmt: skip
    if not is_float(x.dtype):
        raise DTypeError(f"expects a floating-point operand, got {x.dtype}")
    if x.ndim < 4:
        raise ShapeError(f"expects (..., N, C, H, W), got {x.shape}")
    *lead, n, c, h, w = x.shape
    ho, wo = out_size((fixed_size(h), fixed_size(w)), kernel, stride, padding, dilation)
    return TensorType((*lead, c, *kernel, n, ho, wo), x.dtype)


def _col2im_infer(
    cols: TensorType, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, size: Pair
) -> TensorType:  # fmt: skip
    if not is_float(cols.dtype):
        raise DTypeError(f"expects a floating-point operand, got {cols.dtype}")
    if cols.ndim < 6:
        raise ShapeError(f"expects (..., C, kh, kw, N, Ho, Wo), got {cols.shape}")
    *lead, c, kh, kw, n, ho, wo = cols.shape
    expected = (*kernel, *out_size(size, kernel, stride, padding, dilation))
    if (kh, kw, ho, wo) != expected:
        raise ShapeError(f"columns {cols.shape} do not fit image {size} (kh, kw, Ho, Wo should be {expected})")
    return TensorType((*lead, n, c, *size), cols.dtype)


def _padded(x: np.ndarray, padding: Padding, fill: float) -> np.ndarray:
    if padding == ((0, 0), (0, 0)):
        return x
    pads = [(0, 0)] * (x.ndim - 2) + [padding[0], padding[1]]
    return np.pad(x, pads, constant_values=np.asarray(fill, dtype=x.dtype))


def _im2col_eval(
    x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, fill: float
) -> np.ndarray:  # fmt: skip
    """The windows of the padded image as a strided view, then one copy in (C, kh, kw, N, Ho, Wo) order."""
    x = np.asarray(x)
    span = tuple(dilation[a] * (kernel[a] - 1) + 1 for a in (0, 1))
    windows = np.lib.stride_tricks.sliding_window_view(_padded(x, padding, fill), span, axis=(-2, -1))
    windows = windows[..., :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]
    lead = x.ndim - 4  # windows: (..., N, C, Ho, Wo, kh, kw)
    order = (*range(lead), lead + 1, lead + 4, lead + 5, lead, lead + 2, lead + 3)
    return np.ascontiguousarray(np.transpose(windows, order))


def _col2im_eval(
    cols: np.ndarray, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, size: Pair
) -> np.ndarray:  # fmt: skip
    """Each window tap (i, j) in turn adds its columns onto the padded image; the padding is dropped."""
    cols = np.asarray(cols)
    *lead, c, kh, kw, n, ho, wo = cols.shape
    (top, bottom), (left, right) = padding
    out = np.zeros((*lead, n, c, size[0] + top + bottom, size[1] + left + right), dtype=cols.dtype)
    for i in range(kh):
        rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (ho - 1) + 1, stride[0])
        for j in range(kw):
            columns = slice(j * dilation[1], j * dilation[1] + stride[1] * (wo - 1) + 1, stride[1])
            out[..., rows, columns] += np.swapaxes(cols[..., i, j, :, :, :], -4, -3)
    return np.ascontiguousarray(out[..., top : top + size[0], left : left + size[1]])


def _im2col_vjp(
    ct: Node, out: Node, x: Node, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, fill: float
) -> Node:  # fmt: skip
    """d cols / d x is the window map whatever the fill: its transpose is col2im."""
    return col2im(ct, kernel=kernel, stride=stride, padding=padding, dilation=dilation, size=x.shape[-2:])


def _im2col_jvp(
    t: Node, out: Node, x: Node, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, fill: float
) -> Node:  # fmt: skip
    """The padding is constant: its tangent is 0."""
    return im2col(t, kernel=kernel, stride=stride, padding=padding, dilation=dilation, fill=0.0)


def _col2im_vjp(
    ct: Node, out: Node, cols: Node, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, size: Pair
) -> Node:  # fmt: skip
    return im2col(ct, kernel=kernel, stride=stride, padding=padding, dilation=dilation, fill=0.0)


def _col2im_jvp(
    t: Node, out: Node, cols: Node, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, size: Pair
) -> Node:  # fmt: skip
    return col2im(t, kernel=kernel, stride=stride, padding=padding, dilation=dilation, size=size)


im2col = Op("im2col", _im2col_infer, _im2col_eval, vjp=(_im2col_vjp,), jvp=(_im2col_jvp,))
col2im = Op("col2im", _col2im_infer, _col2im_eval, vjp=(_col2im_vjp,), jvp=(_col2im_jvp,))

__all__ = ["Padding", "Pair", "col2im", "im2col", "out_size", "window_count"]
