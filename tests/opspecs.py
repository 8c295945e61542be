"""The specs of the generated differential suite: for each op in OPS, the families of cases that exercise it.

Imports tests/opcases.py (forms, roles, families). A spec says which public function
(or primitive, for ops without one) is applied, which dtypes it takes and what each input
position accepts; shapes that must agree (matmul, take, scan, ...) get a small function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
from opcases import (
    BOOL,
    CONDITION,
    EVERY,
    EXPONENT,
    F64,
    FLOATS,
    HUGE,
    I64,
    MATRIX,
    NUMERIC,
    SPD,
    TAME_X,
    VARS,
    Case,
    Elementwise,
    Explicit,
    Form,
    N,
    Operand,
    Positional,
    Reduction,
    Refusal,
    Role,
    Unary,
    X,
    forms_for,
    short_name,
)

import graphc as gc
from graphc.ops import OPS
from graphc.ops import random as rops

# --- the specs: one per op ---------------------------------------------------------------------------


def node(x: Operand) -> gc.ir.Node:
    """The graph node of an operand (Python scalars and arrays become constants)."""
    return x.node if isinstance(x, gc.Tensor) else gc.const(x).node


def primitive(name: str, **attrs: object) -> Callable[..., gc.Tensor]:
    """An op without a public function, applied to the operands' nodes."""
    return lambda *xs: gc.Tensor(OPS[name](*(node(x) for x in xs), **attrs))


def _reshape_targets(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [(-1,), (1, -1), (*shape, 1)]


def _transpose_axes(shape: tuple[int, ...]) -> list[tuple[int, ...] | None]:
    return [None, (1, 0)] if len(shape) == 2 else [None]


def _broadcast_targets(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    widened = tuple(3 if n == 1 else n for n in shape)
    return [(2, *shape)] + ([widened] if widened != shape else [])


def _slice_keys(shape: tuple[int, ...]) -> list[object]:
    if not shape:
        return []
    return [slice(1, None), slice(None, None, -1), slice(0, 0), (Ellipsis, slice(None, None, 2))]


def _unslice_regions(shape: tuple[int, ...]) -> list[tuple[tuple[tuple[int, int, int], ...], tuple[int, ...]]]:
    """(index, shape) pairs that place an operand of `shape` in a longer last axis: offset 1, or every other."""
    if not shape:
        return []
    b = shape[-1]
    return [(((1, 1 + b, 1),), (b + 2,)), (((0, 2 * b, 2),), (2 * b,))]


def _image(x: Operand, ndim: int) -> gc.Tensor:
    """The operand as an image batch of `ndim` axes: its elements along the last one."""
    t = gc.as_tensor(x)
    return gc.reshape(t, (1,) * (ndim - 1) + (t.size,))


def _im2col_windows(shape: tuple[int, ...]) -> list[tuple]:
    """(kernel, stride, padding, dilation, fill): taps 2 apart padded both sides; max pooling's -inf padding."""
    return [((1, 2), (1, 1), ((0, 0), (1, 1)), (1, 2), 0.0), ((1, 1), (1, 2), ((1, 1), (1, 1)), (1, 1), -np.inf)]


def _im2col(x: Operand, window: tuple) -> gc.Tensor:
    kernel, stride, padding, dilation, fill = window
    return primitive("im2col", kernel=kernel, stride=stride, padding=padding, dilation=dilation, fill=fill)(
        _image(x, 4)
    )


def _col2im_windows(shape: tuple[int, ...]) -> list[tuple]:
    """(kernel, stride, padding, dilation, size) whose n columns come from an image 2n - 1 wide, cropped by 1."""
    n = int(np.prod(shape, dtype=np.int64))
    return [((1, 1), (1, 2), ((0, 0), (0, 1)), (1, 1), (1, 2 * n - 1))]


def _col2im(x: Operand, window: tuple) -> gc.Tensor:
    kernel, stride, padding, dilation, size = window
    return primitive("col2im", kernel=kernel, stride=stride, padding=padding, dilation=dilation, size=size)(
        _image(x, 6)
    )


def _arg_choices(shape: tuple[int, ...]) -> list[tuple[int | None, bool]]:
    """Every axis (and None), keepdims both ways for the last one only."""
    axes: list[int | None] = [None, *range(len(shape))]
    return [(axis, False) for axis in axes] + [(axes[-1], True)]


def _cumulative_axes(shape: tuple[int, ...]) -> list[int | None]:
    """None (the flattened operand) and every axis."""
    return [None, *range(len(shape))]


def _matmul_shapes(position: int, form: Form) -> tuple[Form, ...]:
    """The var partner that contracts with the form (a scalar gets (n,), which matmul refuses)."""
    s = form.shape if form.kind != "py" else ()
    if position == 0:
        partner = Form("var", (s[-1], 3) if s else (N,))
        return form, partner
    k = s[0] if len(s) == 1 else (s[-2] if s else N)
    return Form("var", (3, k)), form


def _solve_shapes(position: int, form: Form) -> tuple[Form, ...]:
    """The var partner: a right-hand side (n, 2) for a matrix form, a square matrix for a right-hand side form."""
    s = form.shape if form.kind != "py" else ()
    if position == 0:
        return form, Form("var", (s[-1] if s else N, 2))
    k = s[0] if len(s) == 1 else (s[-2] if s else N)
    return Form("var", (k, k)), form


def _alone(position: int, form: Form) -> tuple[Form, ...]:
    return (form,)


def _slogdet(a: Operand) -> tuple[gc.Tensor, gc.Tensor]:
    """(logabsdet, sign): the vjp of a case is taken of its first result, and only logabsdet has one."""
    sign, logabsdet = gc.linalg.slogdet(a)
    return logabsdet, sign


STACKS = ((0, 3, 3), (1, 3, 3), (2, 4, 4), (0, 0), (3, 0, 0))


def _stack_rows(fn: Callable[..., object], role: Role, tag: str = "") -> Callable[[str], list[tuple]]:
    """Stacks of matrices (none, one, several; empty matrices), and a 3x3 var with special values."""
    forms = tuple(Form("var", s) for s in STACKS)
    rows = [(f"stack{tag}", (form,), (role,), dtype, fn) for dtype in FLOATS for form in forms]
    return lambda sweep: [*rows, (f"specials{tag}", (Form("var", (3, 3)),), (X,), F64, fn)]


def _solve_rows(sweep: str) -> list[tuple]:
    """Right-hand sides against stacks: one vector for all, broadcast batch axes, empty stacks and systems."""
    pairs = [((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 1)), ((3, 3), (4, 3, 2)), ((2, 1, 3, 3), (4, 3, 2)),
             ((0, 3, 3), (3,)), ((0, 0), (0, 2)), ((3, 3), (3, 0))]  # fmt: skip
    rows = [("stack", (Form("var", sa), Form("var", sb)), (MATRIX, X), dtype, gc.linalg.solve)
            for dtype in FLOATS for sa, sb in pairs]  # fmt: skip
    return [*rows, ("specials", (Form("var", (3, 3)), Form("var", (3,))), (X, X), F64, gc.linalg.solve)]


def _cholesky_upper(a: Operand) -> gc.Tensor:
    """The upper factor, from the upper triangle."""
    return gc.linalg.cholesky(a, upper=True)


def _concat_shapes(position: int, form: Form) -> tuple[Form, ...]:
    """Two var partners with the form's shape but 2 along axis 0 (a 0-d form is refused)."""
    s = form.shape if form.kind != "py" else ()
    partner = Form("var", (2, *s[1:]) if s else (N,))
    return tuple(form if i == position else partner for i in range(3))


def _scatter_shapes(position: int, form: Form) -> tuple[Form, ...]:
    """g's leading axes are the indices' shape: g (s) takes indices s[:1]; indices (t) take g t + (3,)."""
    s = form.shape if form.kind != "py" else ()
    if position == 0:
        return form, Form("var", s[:1])
    return Form("var", (*s, 3)), form


def _index_add_shapes(position: int, form: Form) -> tuple[Form, ...]:
    """base (s) takes 3 updates of s[1:] (none when its axis is not N long: the indices address N); updates (u)
    go into a base (N,) + u[1:] at u[:1] indices; indices (t) put updates of shape t into a base (N,)."""
    s = form.shape if form.kind != "py" else ()
    if position == 0:
        k = 3 if s[:1] == (N,) else 0
        return form, Form("var", (k, *s[1:])), Form("var", (k,))
    if position == 1:
        return Form("var", (N, *s[1:])), form, Form("var", s[:1])
    return Form("var", (N,)), Form("var", s), form


def _scan_shapes(position: int, form: Form) -> tuple[Form, ...] | None:
    """init and xs agree: xs = (n,) + init's shape; a form used as xs needs a leading (loop) axis."""
    s = form.shape if form.kind != "py" else ()
    if position == 0:
        return form, Form("var", (N, *s))
    if not s:
        return None
    return Form("var", s[1:]), form


def _same_shapes(position: int, form: Form) -> tuple[Form, ...]:
    s = form.shape if form.kind != "py" else ()
    partner = Form("var", s)
    return (form, partner) if position == 0 else (partner, form)


def _step(h: gc.Tensor, x: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
    return h * 0.5 + gc.tanh(x), h * x


def _scan(init: Operand, xs: Operand) -> tuple[gc.Tensor, gc.Tensor]:
    return gc.scan(_step, init, xs)


def _fixed_point(z0: Operand, p: Operand) -> gc.Tensor:
    return gc.fixed_point(lambda z, q: 0.5 * gc.tanh(z) + q, z0, p)


def _take_rows(sweep: str) -> list[tuple]:
    """take with each form as the array (axis 0, or None for a 0-d one) and as the indices, in range and out."""
    rows: list[tuple] = []
    for dtype in EVERY:
        for form in forms_for(dtype, EVERY, sweep):
            shape = form.shape if form.kind != "py" else ()
            axis, bound = (0, shape[0]) if shape else (None, 1)
            rows.append((f"axis={axis}@0", (form, Form("var", (N,))), (X, Role("index", bound)), dtype,
                         lambda a, i, axis=axis: gc.take(a, i, axis=axis)))  # fmt: skip
            for axis, shape in ((0, (N, 3)), (1, (3, N))):
                rows.append((f"axis={axis}@1", (Form("var", shape), form), (X, Role("index")), dtype,
                             lambda a, i, axis=axis: gc.take(a, i, axis=axis)))  # fmt: skip
    for form in (Form("py"), Form("const", (N,)), Form("var", (N,))):  # the gradient of a loss: a uniform cotangent
        rows.append(("sum-grad@1", (Form("var", (N, 3)), form), (X, Role("index")), F64,
                     lambda a, i: gc.grad(gc.sum(gc.take(a, i, axis=0)), a)))  # fmt: skip
    for form in (Form("py"), Form("const", (1,)), Form("var", (1,)), Form("var", (N,))):
        rows.append(("outside@1", (Form("var", (N, 3)), form), (X, Role("outside")), F64,
                     lambda a, i: gc.take(a, i, axis=0)))  # fmt: skip
    return rows


def _huge_rows(fn: Callable[[Operand], gc.Tensor]) -> Callable[[str], list[tuple]]:
    """Arguments past 2**50 (NumPy reduces them exactly), as a constant and as a var."""
    forms = (Form("const", (len(HUGE),)), Form("var", (len(HUGE),)))
    return lambda sweep: [("huge", (form,), (Role("huge"),), dtype, fn) for dtype in FLOATS for form in forms]


@gc.custom_vjp
def _custom_square(x: gc.Tensor) -> gc.Tensor:
    """x * x with its derivative given as a custom rule (a `custom` node; gc.compile inlines its body)."""
    return x * x


@_custom_square.defvjp
def _custom_square_vjp(ct: gc.Tensor, out: gc.Tensor, x: gc.Tensor) -> list[gc.Tensor]:
    return [ct * (x + x)]


def _source_rows(sweep: str) -> list[tuple]:
    return [("", (form,), (X,), dtype, gc.const) for dtype in EVERY for form in forms_for(dtype, EVERY, sweep)
            if form.kind != "var"]  # fmt: skip


def _var_rows(sweep: str) -> list[tuple]:
    return [("", (form,), (X,), dtype, lambda v: v) for dtype in EVERY for form in VARS]


def _cond(x: Operand, y: Operand) -> gc.Tensor:
    """Both branches over both operands; the predicate reads x (an empty x takes the false branch)."""
    return gc.cond(gc.sum(x) > 0.0, lambda a, b: gc.tanh(a) * b, lambda a, b: a - b * 2.0, x, y)


def _while_loop(z0: Operand, p: Operand) -> gc.Tensor:
    """Three iterations of z <- tanh(z) / 2 + p, counted in an int carry (max_iter allows reverse mode)."""
    step = lambda c: (0.5 * gc.tanh(c[0]) + p, c[1] + 1)  # noqa: E731
    return gc.while_loop(lambda c: c[1] < 3, step, (z0, gc.const(0)), max_iter=5)[0]


def _with_iota(x: Operand) -> gc.Tensor:
    """x plus each element's flat index (iota has no operands of its own)."""
    t = gc.as_tensor(x)
    return t + gc.Tensor(rops.iota(shape=t.shape))


def _sort(x: Operand) -> gc.Tensor:
    return gc.Tensor(rops.sort(node(x)))


def _fixed_point_nan_rows(sweep: str) -> list[tuple]:
    """A NaN parameter: the iteration's residual is NaN, which every backend reports (ConvergenceError)."""
    return [("nan", (Form("var", (N,)), Form("var", (N,))), (FINITE, Role("nan")), F64, _fixed_point)]


FINITE = Role("finite")
TRIG_UNARY = ("sin", "cos", "tan")


def _from_records() -> dict[str, list]:
    """Ops whose record names a public function: every form in each position, for every dtype it may take."""
    specs: dict[str, list] = {}
    for name, op in OPS.items():
        if op.public is None:
            continue
        fn = getattr(gc, op.public.name)
        if op.public.arity == 1:
            specs[name] = [Elementwise(fn, (X,), (*FLOATS, I64) if op.public.floats else NUMERIC)]
        else:
            specs[name] = [Elementwise(fn, (X,) * op.public.arity, EVERY)]  # refusals judge the dtypes
    return specs


def _specs() -> dict[str, list]:
    """Every op in OPS: the families of cases that exercise it (records with a public function need none)."""
    specs = _from_records()
    for name in TRIG_UNARY:
        fn = getattr(gc, name)
        specs[name] = [Elementwise(fn, (Role("trig"),), (*FLOATS, I64)), Explicit(_huge_rows(fn))]
    specs["round"] = [Elementwise(gc.round, (X,), NUMERIC)]
    specs["div"] = [Elementwise(gc.divide, (X, X), NUMERIC)]
    specs["pow"] = [Elementwise(gc.power, (X, EXPONENT), NUMERIC)]
    specs["logical_and"] = [Elementwise(gc.multiply, (X, X), (BOOL,))]  # bool * bool is logical_and
    specs["logical_or"] = [Elementwise(gc.add, (X, X), (BOOL,))]
    specs["logical_not"] = [Elementwise(primitive("logical_not"), (X,), (BOOL,))]
    specs["where"] = [Elementwise(gc.where, (CONDITION, X, X), EVERY)]
    specs["astype"] = [Elementwise(lambda x, t=t: gc.astype(x, t), (X,), EVERY, short_name(t)) for t in EVERY]
    for name in ("sum", "prod", "max", "min"):
        specs[name] = [Reduction(getattr(gc, name), EVERY)]
    specs["logsumexp"] = [Reduction(gc.logsumexp, (*FLOATS, I64))]
    for name in ("argmax", "argmin"):
        fn = getattr(gc, name)
        specs[name] = [Unary(lambda x, c, fn=fn: fn(x, axis=c[0], keepdims=c[1]), _arg_choices, EVERY)]
    specs["cumsum"] = [Unary(lambda x, axis: gc.cumsum(x, axis=axis), _cumulative_axes, EVERY)]
    specs["cumprod"] = [Unary(lambda x, axis: gc.cumprod(x, axis=axis), _cumulative_axes, EVERY)]
    specs["reshape"] = [Unary(gc.reshape, _reshape_targets)]
    specs["transpose"] = [Unary(gc.transpose, _transpose_axes)]
    specs["broadcast_to"] = [Unary(gc.broadcast_to, _broadcast_targets)]
    specs["slice"] = [Unary(lambda x, key: gc.as_tensor(x)[key], _slice_keys)]
    specs["unslice"] = [Unary(lambda x, r: primitive("unslice", index=r[0], shape=r[1])(x), _unslice_regions)]
    specs["concatenate"] = [Positional(lambda *xs: gc.concatenate(list(xs), axis=0), (X, X, X), _concat_shapes,
                                       EVERY)]  # fmt: skip
    specs["take"] = [Explicit(_take_rows)]
    specs["scatter_add"] = [Positional(primitive("scatter_add", axis=0, size=N), (X, Role("index")), _scatter_shapes,
                                       NUMERIC)]  # fmt: skip
    specs["diag"] = [Unary(lambda x, _: primitive("diag")(x), lambda shape: [None], EVERY)]
    specs["index_add"] = [Positional(primitive("index_add", axis=0), (X, X, Role("index")), _index_add_shapes,
                                     NUMERIC)]  # fmt: skip
    specs["matmul"] = [Positional(gc.matmul, (TAME_X, TAME_X), _matmul_shapes)]
    specs["im2col"] = [Unary(_im2col, _im2col_windows, FLOATS)]
    specs["col2im"] = [Unary(_col2im, _col2im_windows, FLOATS)]
    specs["solve"] = [Positional(gc.linalg.solve, (MATRIX, X), _solve_shapes), Explicit(_solve_rows)]
    specs["inv"] = [Positional(gc.linalg.inv, (MATRIX,), _alone), Explicit(_stack_rows(gc.linalg.inv, MATRIX))]
    specs["slogdet"] = [Positional(_slogdet, (MATRIX,), _alone), Explicit(_stack_rows(_slogdet, MATRIX))]
    specs["cholesky"] = [Positional(gc.linalg.cholesky, (SPD,), _alone), Explicit(_stack_rows(gc.linalg.cholesky, SPD)),
                         Explicit(_stack_rows(_cholesky_upper, SPD, "-upper"))]  # fmt: skip
    specs["const"] = [Explicit(_source_rows)]
    specs["var"] = [Explicit(_var_rows)]
    specs["fused"] = [Elementwise(lambda x, c: gc.exp(gc.multiply(x, c)) - c * gc.tanh(x), (X, X))]  # by optimize
    specs["stop_gradient"] = [Elementwise(gc.stop_gradient, (X,), EVERY)]  # a zero derivative; compile removes it
    specs["custom"] = [Elementwise(_custom_square, (X,), FLOATS)]
    specs["dim"] = []  # only in graphs with named dimensions, replaced when a call binds them: test_named_dims.py
    specs["scan"] = [Positional(_scan, (X, X), _scan_shapes)]
    specs["fixed_point"] = [Positional(_fixed_point, (FINITE, FINITE), _same_shapes), Explicit(_fixed_point_nan_rows)]
    specs["cond"] = [Positional(_cond, (X, X), _same_shapes)]
    specs["while_loop"] = [Positional(_while_loop, (FINITE, FINITE), _same_shapes)]
    for name in ("bitwise_and", "bitwise_or", "bitwise_xor"):  # integer-only records: ints first, floats refused
        specs[name] = [Elementwise(getattr(gc, name), (X, X), (I64, BOOL, F64))]
    for name in ("left_shift", "right_shift"):
        specs[name] = [Elementwise(getattr(gc, name), (X, X), (I64, F64))]
    specs["iota"] = [Elementwise(_with_iota, (X,), NUMERIC)]
    specs["sort"] = [Elementwise(_sort, (X,), (I64, F64))]
    return specs


SPECS = _specs()


def generate(sweep: str = "default") -> tuple[list[Case], list[Refusal]]:
    """Every case of every spec, in a deterministic order; ids are unique."""
    cases: list[Case] = []
    refusals: list[Refusal] = []
    for op in sorted(SPECS):
        for family in SPECS[op]:
            for made in family.cases(op, sweep):
                (cases if isinstance(made, Case) else refusals).append(made)  # type: ignore[arg-type]
    counts = Counter([c.id for c in cases] + [r.id for r in refusals])
    duplicated = sorted(i for i, k in counts.items() if k > 1)
    assert not duplicated, f"case ids must be unique: {duplicated[:5]}"
    return cases, refusals
