"""einsum and tensordot (API.md §9): contractions lowered to transposes, reshapes and matmul.

Imports errors, shapes, ops and tensor (graphc.functions re-exports both). Operands are
contracted left to right, two at a time: labels shared and still needed (by the output or
a later operand) are batch axes, shared labels no longer needed are contracted, and the
pair becomes one matmul of (batch, M, K) by (batch, K, N) reshapes. Without a shared label
to contract the pair is a broadcast product, and a batch of dot products (M = N = 1) a
broadcast product and a sum, which fuse into one loop. Labels only one operand has and nothing
later needs are summed out first; a label repeated within an operand takes its diagonal
(a reshape and a stepped slice). Integer operands skip matmul (graphc's is float-only):
broadcast product and sum, and bools combine with `and` and `any`, as NumPy's einsum does.
Results equal NumPy's to rounding (matmul sums in its own order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from graphc.errors import ShapeError
from graphc.ops import elementwise as ew
from graphc.ops import reduce as rd
from graphc.shapes import BOOL, Dim, is_float
from graphc.tensor import Tensor, building, getitem, matmul, promote, reshape, transpose

Labels = tuple[int, ...]
Term = tuple[Tensor, Labels]  # an operand and the label of each of its axes
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ELLIPSIS = 1000  # labels the ellipsis stands for: 1000, 1001, ... (letters are their code points, below 128)


def einsum(subscripts: str, *operands: object, optimize: object = False) -> Tensor:
    """Einstein summation, as numpy.einsum: `gc.einsum("ij,jk->ik", a, b)`.

    Supported subscripts: every explicit ('ij,jk->ik', 'ii->i', 'ij->') and implicit form
    ('ij,jk': the labels that appear once, in alphabetical order, uppercase first), the
    ellipsis ('...ij,...jk->...ik', broadcast as NumPy broadcasts), labels repeated within an
    operand (a diagonal: 'ii', 'iij->ij'), size-1 axes broadcast against a label's size, and
    any number of operands (contracted left to right; `optimize` is accepted and ignored).
    Labels are the 52 ASCII letters. Anything else raises ValueError naming the problem.
    """
    with building("einsum", subscripts, *operands):
        if not isinstance(subscripts, str):
            raise TypeError(f"einsum takes the subscripts as a string first, not {subscripts!r}")
        if not operands:
            raise ValueError("einsum needs at least one operand")
        tensors = promote(*operands)
        inputs, output = _parse(subscripts, [t.ndim for t in tensors])
        return contract(tensors, inputs, output)


def tensordot(a: object, b: object, axes: int | Sequence[object] = 2) -> Tensor:
    """Sum of products over the given axes, as numpy.tensordot: the last `axes` of a with the first of b,
    or the axes of a and of b given as a pair of sequences (or of ints)."""
    with building("tensordot", a, b):
        x, y = promote(a, b)
        a_axes, b_axes = _tensordot_axes(axes, x.ndim, y.ndim)
        labels_a = tuple(range(x.ndim))
        labels_b = [x.ndim + k for k in range(y.ndim)]
        for i, j in zip(a_axes, b_axes, strict=True):
            if x.shape[i] != y.shape[j]:
                raise ShapeError(f"shape-mismatch for sum: axis {i} of {x.shape} and axis {j} of {y.shape}")
            labels_b[j] = labels_a[i]
        free = tuple(lab for lab in labels_a if lab not in labels_b) + tuple(lab for lab in labels_b if lab >= x.ndim)
        return contract([x, y], [labels_a, tuple(labels_b)], free)


def _tensordot_axes(axes: object, ndim_a: int, ndim_b: int) -> tuple[list[int], list[int]]:
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > min(ndim_a, ndim_b):
            raise ShapeError(f"tensordot axes={n} does not fit operands of {ndim_a} and {ndim_b} dimensions")
        return list(range(ndim_a - n, ndim_a)), list(range(n))
    try:
        a_axes, b_axes = axes  # type: ignore[misc]
    except (TypeError, ValueError):  # not a pair
        raise ValueError(f"tensordot axes must be an int or a pair of sequences, not {axes!r}") from None
    a_list: list[object] = [a_axes] if isinstance(a_axes, (int, np.integer)) else list(a_axes)  # type: ignore[has-type]
    b_list: list[object] = [b_axes] if isinstance(b_axes, (int, np.integer)) else list(b_axes)  # type: ignore[has-type]
    if len(a_list) != len(b_list):
        raise ValueError("shape-mismatch for sum: tensordot needs as many axes of a as of b")
    return [_axis(i, ndim_a) for i in a_list], [_axis(j, ndim_b) for j in b_list]


def _axis(i: object, ndim: int) -> int:
    if not isinstance(i, (int, np.integer)) or not -ndim <= int(i) < ndim:
        raise ShapeError(f"axis {i!r} is out of bounds for an array of dimension {ndim}")
    return int(i) % ndim


# --- subscripts ---------------------------------------------------------------------------------------


def _parse(subscripts: str, ndims: list[int]) -> tuple[list[Labels], Labels]:
    """Each operand's labels (the ellipsis expanded, right-aligned) and the output's."""
    text = subscripts.replace(" ", "")
    explicit = "->" in text
    inputs_text, output_text = text.split("->", 1) if explicit else (text, "")
    parts = inputs_text.split(",")
    if len(parts) != len(ndims):
        raise ValueError(f"einsum: {len(parts)} operand subscripts in {subscripts!r} for {len(ndims)} operands")
    spans = [_ellipsis_span(part, ndim) for part, ndim in zip(parts, ndims, strict=True)]
    width = max(spans, default=0)
    inputs = [_labels(part, width, span) for part, span in zip(parts, spans, strict=True)]
    if explicit:
        if width and "..." not in output_text and any(spans):
            raise ValueError(
                "output has more dimensions than subscripts given in einstein sum, "
                "but no '...' ellipsis provided to broadcast the extra dimensions."
            )
        output = _labels(output_text, width, width)
    else:
        counts: dict[int, int] = {}
        for labels in inputs:
            for lab in labels:
                counts[lab] = counts.get(lab, 0) + 1
        once = sorted(lab for lab, c in counts.items() if c == 1 and lab < _ELLIPSIS)
        output = tuple(range(_ELLIPSIS, _ELLIPSIS + width)) + tuple(once)
    _check_output(output, inputs)
    return inputs, output


def _ellipsis_span(part: str, ndim: int) -> int:
    """How many axes the operand's '...' stands for (0 without one); checks the label count."""
    letters = part.replace("...", "")
    bad = [c for c in letters if c not in _LETTERS]
    if bad or part.count("...") > 1:
        raise ValueError(f"invalid subscript {part!r}: labels are ASCII letters, with at most one '...'")
    if "..." not in part:
        if len(letters) != ndim:
            raise ValueError(
                f"einsum: subscript {part!r} has {len(letters)} labels for an operand of {ndim} dimensions"
            )
        return 0
    if len(letters) > ndim:
        raise ValueError(f"einsum: subscript {part!r} has more labels than the operand's {ndim} dimensions")
    return ndim - len(letters)


def _labels(part: str, width: int, span: int) -> Labels:
    """The labels of one subscript: letters by code point, the ellipsis as its last `span` of `width` labels."""
    if "..." not in part:
        return tuple(ord(c) for c in part)
    before, after = part.split("...")
    dots = tuple(range(_ELLIPSIS + width - span, _ELLIPSIS + width))
    return tuple(ord(c) for c in before) + dots + tuple(ord(c) for c in after)


def _check_output(output: Labels, inputs: list[Labels]) -> None:
    seen = {lab for labels in inputs for lab in labels}
    for lab in output:
        if lab < _ELLIPSIS and output.count(lab) > 1:
            raise ValueError(f"einsum: output subscript {chr(lab)!r} appears more than once")
        if lab not in seen and lab < _ELLIPSIS:
            raise ValueError(f"einsum: output subscript {chr(lab)!r} does not appear in the input subscripts")


# --- contraction -----------------------------------------------------------------------------------------


def contract(tensors: list[Tensor], inputs: list[Labels], output: Labels) -> Tensor:
    """The einsum of Tensors (one dtype) with integer labels: diagonals, early sums, then pairs left to right."""
    sizes = _sizes(tensors, inputs)
    terms = [_diagonal(t, labels) for t, labels in zip(tensors, inputs, strict=True)]
    for k in range(len(terms)):
        needed = set(output).union(*(labels for j, (_, labels) in enumerate(terms) if j != k))
        terms[k] = _sum_out(*terms[k], needed)
    acc, acc_labels = terms[0]
    for k in range(1, len(terms)):
        needed = set(output).union(*(labels for _, labels in terms[k + 1 :]))
        acc, acc_labels = _pair((acc, acc_labels), terms[k], needed, sizes)
    acc, acc_labels = _sum_out(acc, acc_labels, set(output))
    return _arranged(acc, acc_labels, output)


def _sizes(tensors: list[Tensor], inputs: list[Labels]) -> dict[int, int | Dim]:
    """Each label's size: equal across operands, or 1 where an operand broadcasts it (a named size only
    meets itself or 1, as in broadcasting)."""
    sizes: dict[int, int | Dim] = {}
    for t, labels in zip(tensors, inputs, strict=True):
        for lab, n in zip(labels, t.shape, strict=True):
            known = sizes.get(lab, 1)
            if n == known or _is_one(n):
                sizes[lab] = known
            elif _is_one(known):
                sizes[lab] = n
            else:
                name = chr(lab) if lab < _ELLIPSIS else "..."
                raise ShapeError(
                    f"einsum: subscript {name!r} has sizes {known} and {n} in operands {[t.shape for t in tensors]}"
                )
    return sizes


def _is_one(n: int | Dim) -> bool:
    return isinstance(n, int) and n == 1


def _diagonal(t: Tensor, labels: Labels) -> tuple[Tensor, Labels]:
    """t with every repeated label reduced to its diagonal (the label then appears once, last)."""
    while len(set(labels)) < len(labels):
        lab = next(lab for lab in labels if labels.count(lab) > 1)
        first, second = [i for i, x in enumerate(labels) if x == lab][:2]
        n = t.shape[first]
        if t.shape[second] != n:
            raise ShapeError(f"einsum: a repeated subscript needs equal dimensions, got {n} and {t.shape[second]}")
        rest = [i for i in range(t.ndim) if i not in (first, second)]
        perm = [*rest, first, second]
        moved = transpose(t, perm) if perm != list(range(t.ndim)) else t
        flat = reshape(moved, (*tuple(t.shape[i] for i in rest), n * n))
        t = getitem(flat, (Ellipsis, slice(0, n * n, n + 1)))
        labels = (*tuple(labels[i] for i in rest), lab)
    return t, labels


def _sum_out(t: Tensor, labels: Labels, needed: set[int]) -> tuple[Tensor, Labels]:
    """t summed over the labels nothing needs (a bool sum is `any`, as NumPy's add on bools)."""
    axes = tuple(i for i, lab in enumerate(labels) if lab not in needed)
    if not axes:
        return t, labels
    kept = tuple(lab for i, lab in enumerate(labels) if i not in axes)
    return Tensor(rd.sum_(t.node, axis=axes, keepdims=False)), kept


def _arranged(t: Tensor, labels: Labels, order: Sequence[int]) -> Tensor:
    """t with its axes in the order of `order` (labels t lacks become length-1 axes)."""
    present = [lab for lab in order if lab in labels]
    perm = [labels.index(lab) for lab in present]
    if perm != list(range(len(perm))):
        t = transpose(t, perm)
    shape = tuple(t.shape[present.index(lab)] if lab in labels else 1 for lab in order)
    return reshape(t, shape)


def _pair(
    a: tuple[Tensor, Labels], b: tuple[Tensor, Labels], needed: set[int], sizes: dict[int, int | Dim]
) -> tuple[Tensor, Labels]:
    """The product of two terms summed over their shared labels that nothing later needs."""
    (x, xl), (y, yl) = a, b
    shared = [lab for lab in xl if lab in yl]
    batch = [lab for lab in shared if lab in needed]
    summed = [lab for lab in shared if lab not in needed]
    x_only = [lab for lab in xl if lab not in yl]
    y_only = [lab for lab in yl if lab not in xl]
    if summed and is_float(x.dtype) and not _dots(x, xl, y, yl, x_only, y_only):
        return _matmul_pair(x, xl, y, yl, batch, summed, x_only, y_only), (*batch, *x_only, *y_only)
    order = [*batch, *x_only, *y_only, *summed]
    product = _multiply(_arranged(x, xl, order), _arranged(y, yl, order))
    result, labels = _sum_out(product, tuple(order), set(order) - set(summed))
    return result, labels


def _dots(x: Tensor, xl: Labels, y: Tensor, yl: Labels, x_only: list[int], y_only: list[int]) -> bool:
    """Whether the pair is a batch of dot products (M = N = 1): one fused multiply-and-sum beats many 1x1 gemms."""
    rows = math.prod(x.shape[xl.index(lab)] for lab in x_only)
    cols = math.prod(y.shape[yl.index(lab)] for lab in y_only)
    return rows == 1 and cols == 1


def _multiply(x: Tensor, y: Tensor) -> Tensor:
    if x.dtype == BOOL:
        return Tensor(ew.logical_and(x.node, y.node))
    return x * y


def _squeezed(t: Tensor, labels: Labels, lab: int) -> Term:
    """t without its length-1 axis `lab`."""
    shape = tuple(n for n, other in zip(t.shape, labels, strict=True) if other != lab)
    return reshape(t, shape), tuple(other for other in labels if other != lab)


def _matmul_pair(
    x: Tensor, xl: Labels, y: Tensor, yl: Labels, batch: list[int], summed: list[int], x_only: list[int],
    y_only: list[int],
) -> Tensor:  # fmt: skip
    """(batch, M, K) @ (batch, K, N) reshapes; a contracted label of size 1 on one side is summed out of the other."""
    for lab in list(summed):
        x_size, y_size = x.shape[xl.index(lab)], y.shape[yl.index(lab)]
        if x_size == y_size:
            continue
        if x_size == 1:
            y, yl = _sum_out(y, yl, set(yl) - {lab})
            x, xl = (
                reshape(x, tuple(n for i, n in enumerate(x.shape) if xl[i] != lab)),
                tuple(v for v in xl if v != lab),
            )
        else:
            x, xl = _sum_out(x, xl, set(xl) - {lab})
            y, yl = (
                reshape(y, tuple(n for i, n in enumerate(y.shape) if yl[i] != lab)),
                tuple(v for v in yl if v != lab),
            )
        summed.remove(lab)
    if not summed:
        order = [*batch, *x_only, *y_only]
        return _multiply(_arranged(x, xl, order), _arranged(y, yl, order))
    x_batch = tuple(x.shape[xl.index(lab)] for lab in batch)
    y_batch = tuple(y.shape[yl.index(lab)] for lab in batch)
    x_free = tuple(x.shape[xl.index(lab)] for lab in x_only)
    y_free = tuple(y.shape[yl.index(lab)] for lab in y_only)
    depth = math.prod(x.shape[xl.index(lab)] for lab in summed)
    left = reshape(_arranged(x, xl, [*batch, *x_only, *summed]), (*x_batch, math.prod(x_free), depth))
    right = reshape(_arranged(y, yl, [*batch, *summed, *y_only]), (*y_batch, depth, math.prod(y_free)))
    product = matmul(left, right)
    return reshape(product, product.shape[:-2] + x_free + y_free)


__all__ = ["contract", "einsum", "tensordot"]
