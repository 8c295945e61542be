"""Planning rules for the sliding-window primitives `im2col` and `col2im` (graphc/ops/nn.py), as strided copies.

Imports the backend's kernels, layout and plan. Every window tap is a strided view of the
(padded) image, so no new kernel kind is needed:
- im2col: the image is copied into a workspace buffer filled with `fill` where padding
  is asked for; then one copy from the view (..., C, kh, kw, N, Ho, Wo) of the padded
  image, whose strides walk the taps and the windows, into the result.
- col2im: the padded image starts at 0; each tap (i, j) in turn adds its columns onto
  the pixels it read, one in-place elementwise kernel per tap (the order of
  ops/nn.py's eval, so results agree bit for bit); the padding is then cropped away.
Convolution is then im2col + one BLAS gemm (gc.nn.conv2d's graph); benchmarks/conv_lowering.py
measures that against a direct loop nest.
"""

from __future__ import annotations

from dataclasses import replace

from graphc.backends.llvm import layout as L
from graphc.backends.llvm.kernels import Instr
from graphc.backends.llvm.layout import Layout
from graphc.backends.llvm.plan import Planner
from graphc.ops.nn import Padding, Pair
from graphc.schedule import Step

NO_PADDING = ((0, 0), (0, 0))


def _window_attrs(step: Step) -> tuple[Pair, Pair, Padding, Pair]:
    attrs = step.attrs
    return attrs["kernel"], attrs["stride"], attrs["padding"], attrs["dilation"]  # type: ignore[return-value]


def _interior(padded: Layout, padding: Padding, size: tuple[int, ...]) -> Layout:
    """The unpadded image inside the padded one."""
    (top, _), (left, _) = padding
    return L.sliced(padded, ((top, top + size[0], 1), (left, left + size[1], 1)))


def _padded_shape(shape: tuple[int, ...], padding: Padding) -> tuple[int, ...]:
    (top, bottom), (left, right) = padding
    return (*shape[:-2], shape[-2] + top + bottom, shape[-1] + left + right)


def _windows(image: Layout, kernel: Pair, stride: Pair, dilation: Pair, out: tuple[int, ...]) -> Layout:
    """The padded image (..., N, C, Hp, Wp) seen as its columns (..., C, kh, kw, N, Ho, Wo) of shape `out`."""
    *lead, s_n, s_c, s_h, s_w = image.strides
    strides = (*lead, s_c, dilation[0] * s_h, dilation[1] * s_w, s_n, stride[0] * s_h, stride[1] * s_w)
    return replace(image, shape=out, strides=tuple(strides))


def plan_im2col(p: Planner, step: Step) -> None:
    """Pad into the workspace when asked (fill, then the image), then copy the strided windows."""
    kernel, stride, padding, dilation = _window_attrs(step)
    image = p.layouts[step.args[0]]
    dest = p.dest(step)
    if dest.size == 0:
        return
    if padding != NO_PADDING:
        padded = p.fresh(_padded_shape(image.shape, padding), image.dtype)
        p.fill(float(step.attrs["fill"]), padded)  # type: ignore[arg-type]
        p.copy(image, _interior(padded, padding, image.shape[-2:]))
        image = padded
    p.copy(_windows(image, kernel, stride, dilation, dest.shape), dest)


def _tap(cols: Layout, i: int, j: int) -> Layout:
    """Tap (i, j) of the columns (..., C, kh, kw, N, Ho, Wo) as (..., N, C, Ho, Wo)."""
    *lead, s_c, s_i, s_j, s_n, s_a, s_b = cols.strides
    *lead_shape, c, _, _, n, ho, wo = cols.shape
    offset = cols.offset + i * s_i + j * s_j
    return replace(cols, shape=(*lead_shape, n, c, ho, wo), strides=(*lead, s_n, s_c, s_a, s_b), offset=offset)


def plan_col2im(p: Planner, step: Step) -> None:
    """Zero the padded image, add every tap's columns in place in (i, j) order, crop the padding."""
    kernel, stride, padding, dilation = _window_attrs(step)
    cols = p.layouts[step.args[0]]
    dest = p.dest(step)
    image = dest if padding == NO_PADDING else p.fresh(_padded_shape(dest.shape, padding), dest.dtype)
    p.fill(0.0, image)
    if cols.size == 0:
        return
    ho, wo = cols.shape[-2:]
    dtype = dest.dtype
    add = (Instr("load", (0,), dtype), Instr("load", (1,), dtype), Instr("add", (0, 1), dtype))
    for i in range(kernel[0]):
        rows = (i * dilation[0], i * dilation[0] + stride[0] * (ho - 1) + 1, stride[0])
        for j in range(kernel[1]):
            columns = (j * dilation[1], j * dilation[1] + stride[1] * (wo - 1) + 1, stride[1])
            pixels = L.sliced(image, (rows, columns))
            p.add_map(pixels.shape, [pixels, _tap(cols, i, j)], add, pixels)
    if image is not dest:
        p.copy(_interior(image, padding, dest.shape[-2:]), dest)


__all__ = ["plan_col2im", "plan_im2col"]
