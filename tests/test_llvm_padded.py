"""The llvm backend's `add` of zero-padded operands (backends/llvm/padded.py): one pass, bit-identical.

Every case is compared bit for bit with the reference evaluator and with the same program
planned the old way (unslice kernels kept), on values with signed zeros, infinities and
NaN: the sign of a zero sum at the padding's edges is where a one-pass version would differ.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import graphc as gc
from graphc.backends.llvm import layout as L
from graphc.backends.llvm import plan as llvm_plan
from graphc.ops import elementwise as ew
from graphc.ops import shape as sh
from graphc.ops.source import var
from graphc.shapes import FLOAT64, INT64

RNG = np.random.default_rng(16)
SPECIAL = np.array([0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 1e300, 5e-324])


def sample(shape: tuple[int, ...], dtype: str = "float64") -> np.ndarray:
    if dtype == "int64":
        return RNG.integers(-5, 6, shape)
    values = RNG.normal(size=shape)
    return np.where(RNG.random(shape) < 0.5, RNG.choice(SPECIAL, size=shape), values)


def compiled(inputs: list, output: object, padded: bool, optimize: bool = False, **options: object) -> gc.compile:
    """The llvm function, with the one-pass plan of padded adds switched on or off."""
    if padded:
        return gc.compile(inputs, output, backend="llvm", optimize=optimize, cache=False, **options)
    rule = llvm_plan.plan_padded
    llvm_plan.plan_padded = lambda *args: False  # type: ignore[assignment]
    try:
        return gc.compile(inputs, output, backend="llvm", optimize=optimize, cache=False, **options)
    finally:
        llvm_plan.plan_padded = rule


def check(inputs: list, output: object, values: list[np.ndarray], exact: bool = True, **options: object) -> gc.compile:
    """The padded plan equals the old plan bit for bit, and the evaluator (bit for bit unless
    `exact` is False: vecmath's transcendentals are within a few ulp of NumPy's); returns it."""
    fn = compiled(inputs, output, True, **options)
    old = compiled(inputs, output, False, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = gc.evaluate(output, dict(zip(inputs, values, strict=True)))
        got, before = fn(*values), old(*values)
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    assert same_bits(got, before), (got, before)
    if exact:
        assert got.tobytes() == expected.tobytes(), (got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-300, equal_nan=True)
    return fn


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, except which NaN: where both operands of an add are NaN, LLVM may
    commute it and propagate the other one (IEEE 754 leaves it open); NaN stays NaN."""
    if a.dtype.kind != "f":
        return a.tobytes() == b.tobytes()
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b)) and a[~nan].tobytes() == b[~nan].tobytes())


def padded_case(n: int, first: tuple[int, int], second: tuple[int, int], dtype: str = "float64") -> None:
    kind = INT64 if dtype == "int64" else FLOAT64
    a = var("a", (first[1] - first[0],), kind)
    b = var("b", (second[1] - second[0],), kind)
    out = ew.add(
        sh.unslice(a, index=((first[0], first[1], 1),), shape=(n,)),
        sh.unslice(b, index=((second[0], second[1], 1),), shape=(n,)),
    )
    fn = check([a, b], out, [sample(a.shape, dtype), sample(b.shape, dtype)])
    kernels = fn._built.plan.kernels
    assert all(k.out.buffer.place == L.OUTPUT for k in kernels)  # no padded buffer is filled any more
    assert sum(math.prod(k.shape) for k in kernels) <= n  # each output element written once (1-D boxes)


@pytest.mark.parametrize(
    ("n", "first", "second"),
    [
        (8, (0, 7), (1, 8)),  # Rosenbrock's shifted slices: touch both ends, overlap in the middle
        (8, (0, 6), (2, 8)),
        (8, (1, 7), (1, 7)),  # the same slice twice; zeros at both ends
        (8, (0, 2), (5, 7)),  # disjoint, a gap of zeros between them and after
        (8, (3, 3), (0, 8)),  # an empty padded operand
        (1, (0, 1), (0, 0)),
        (1, (0, 0), (1, 1)),  # nothing but padding
        (0, (0, 0), (0, 0)),  # an empty output
        (5, (0, 5), (0, 5)),  # padding of nothing
    ],
)
def test_padded_add_is_one_pass_and_bit_identical(n: int, first: tuple[int, int], second: tuple[int, int]) -> None:
    padded_case(n, first, second)


def test_padded_add_of_integers() -> None:
    padded_case(6, (0, 4), (3, 6), "int64")


def test_padded_add_with_a_full_operand_in_either_position() -> None:
    a, y = var("a", (3, 4), FLOAT64), var("y", (4,), FLOAT64)
    u = sh.unslice(a, index=((1, 4, 1), (0, 4, 1)), shape=(5, 4))
    values = [sample((3, 4)), sample((4,))]
    check([a, y], ew.add(u, y), values)  # y broadcast over the rows
    check([a, y], ew.add(y, u), values)


def test_padded_add_over_trailing_axes_with_a_batch_axis() -> None:
    a, b = var("a", (2, 2, 3), FLOAT64), var("b", (2, 3, 1), FLOAT64)
    out = ew.add(
        sh.unslice(a, index=((1, 3, 1), (0, 3, 1)), shape=(3, 4)),  # both trailing axes
        sh.unslice(b, index=((2, 3, 1),), shape=(3, 4)),  # the last axis only
    )
    check([a, b], out, [sample((2, 2, 3)), sample((2, 3, 1))])


def test_padded_add_falls_back_where_it_must() -> None:
    a, b = var("a", (4,), FLOAT64), var("b", (4,), FLOAT64)
    strided = sh.unslice(a, index=((0, 8, 2),), shape=(8,))
    check([a, b], ew.add(strided, sh.unslice(b, index=((4, 8, 1),), shape=(8,))), [sample((4,)), sample((4,))])
    kept = sh.unslice(a, index=((0, 4, 1),), shape=(8,))  # also an output: its buffer must be written
    fn = compiled([a, b], [kept, ew.add(kept, kept)], True)
    x = sample((4,))
    got = fn(x, sample((4,)))
    assert got[0].tobytes() == np.concatenate([x, np.zeros(4)]).tobytes()
    assert got[1].tobytes() == (got[0] + got[0]).tobytes()
    viewed = sh.unslice(a, index=((2, 6, 1),), shape=(8,))  # a view reads it after the add
    out = [ew.add(viewed, sh.unslice(b, index=((0, 4, 1),), shape=(8,))), sh.slice_(viewed, index=((1, 7, 1),))]
    values = [sample((4,)), sample((4,))]
    fn = compiled([a, b], out, True)
    expected = gc.evaluate(out, dict(zip([a, b], values, strict=True)))
    for got_one, want in zip(fn(*values), expected, strict=True):
        assert got_one.tobytes() == want.tobytes()


@pytest.mark.parametrize("n", [1, 2, 3, 1000])
def test_rosenbrock_gradient_bit_identical(n: int) -> None:
    x = gc.var("x", (n,))
    f = gc.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    value = sample((n,))
    value[:2] = [-0.0, 0.0][: min(n, 2)]
    fn = compiled([x], gc.grad(f, x), True, optimize=True)
    old = compiled([x], gc.grad(f, x), False, optimize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert same_bits(fn(value), old(value))
    finite = RNG.uniform(-1.5, 1.5, n)
    np.testing.assert_allclose(fn(finite), gc.evaluate(gc.grad(f, x), {x: finite}), rtol=1e-14, atol=1e-12)


def chain(n: int) -> tuple[list, object]:
    """exp, neg and sin on x, each value padded into n + 1 (unoptimized: one kernel per step,
    and sin's result reuses exp's buffer, so recomputing neg must not read exp's memory)."""
    x = var("x", (n,), FLOAT64)
    t = ew.neg(ew.exp(x))
    w = ew.sin(t)
    out = ew.add(
        sh.unslice(t, index=((0, n, 1),), shape=(n + 1,)), sh.unslice(w, index=((1, n + 1, 1),), shape=(n + 1,))
    )
    return [x], out


@pytest.mark.parametrize("n", [1, 2, 37])
def test_padded_add_recomputes_shifted_values_from_memory_still_valid(n: int) -> None:
    inputs, out = chain(n)
    fn = check(inputs, out, [sample((n,))], exact=False)
    assert "reuses v0" in str(fn.program)  # sin's result overwrote exp's: the stale case is exercised
    kernels = fn._built.plan.kernels
    assert any(k.out.buffer.place == L.OUTPUT and any(i.op == "sin" for i in k.instrs) for k in kernels)


def test_padded_fused_region_of_three_shifted_terms() -> None:
    """Four padded cotangents summed in one fused region; one source's buffer is reused by a
    later step (recomputing it must not read the new value there)."""
    x = gc.var("x", (41,))
    f = gc.sum(gc.tanh(x[2:] * x[:-2]) + gc.exp(-x[1:-1]) * x[:-2]) + gc.sum(x[1:] ** 2)
    fn = check([x], gc.grad(f, x), [sample((41,))], exact=False, optimize=True)
    assert "reuses v6" in str(fn.program) and "fused(v2, v7, v11, v13)" in str(fn.program)
    assert all(k.out.buffer.place == L.OUTPUT for k in fn._built.plan.kernels[-3:])
    finite = RNG.uniform(-2.0, 2.0, 41)
    np.testing.assert_allclose(fn(finite), gc.evaluate(gc.grad(f, x), {x: finite}), rtol=1e-13, atol=1e-13)


# --- concatenate feeding an elementwise step: each box reads the piece that covers it ------------------


def concat_case(pieces: list[tuple[int, ...]], axis: int, op: object = ew.mul) -> gc.compile:
    """op(concatenate(pieces), y) and op(y, concatenate(...)) checked bit for bit; the first function's kernels."""
    parts = [var(f"p{k}", shape, FLOAT64) for k, shape in enumerate(pieces)]
    joined = sh.concatenate(*parts, axis=axis)
    y = var("y", joined.shape, FLOAT64)
    values = [sample(shape) for shape in (*pieces, joined.shape)]
    fn = check([*parts, y], op(joined, y), values)
    check([*parts, y], op(y, joined), values)
    return fn


@pytest.mark.parametrize(
    ("pieces", "axis"),
    [
        ([(1,), (6,)], 0),  # the ODE right-hand side's [1, y[:-1]]
        ([(3,), (0,), (2,), (1,)], 0),  # an empty piece among them
        ([(1,)], 0),  # one piece of one element
        ([(0,), (0,)], 0),  # an empty output
        ([(2, 3), (2, 1)], 1),  # along the last axis with a leading axis
        ([(1, 3), (2, 3)], 0),  # along the first of two axes
    ],
)
def test_concatenate_operand_is_read_piece_by_piece(pieces: list[tuple[int, ...]], axis: int) -> None:
    fn = concat_case(pieces, axis)
    assert all(k.out.buffer.place == L.OUTPUT for k in fn._built.plan.kernels)  # the joined buffer is never filled


def test_concatenate_in_a_division_and_a_comparison() -> None:
    concat_case([(2,), (5,)], 0, ew.div)  # NaN, inf and signed zeros from each piece, either side
    concat_case([(4,), (3,)], 0, ew.maximum)


def test_concatenate_kept_where_its_buffer_is_needed() -> None:
    a, b = var("a", (2,), FLOAT64), var("b", (3,), FLOAT64)
    joined = sh.concatenate(a, b, axis=0)
    values = [sample((2,)), sample((3,))]
    fn = compiled([a, b], [joined, ew.mul(joined, joined)], True)  # an output too: written in full
    got = fn(*values)
    assert got[0].tobytes() == np.concatenate(values).tobytes()
    with np.errstate(over="ignore", invalid="ignore"):
        assert same_bits(got[1], got[0] * got[0])


@pytest.mark.parametrize(("n", "steps"), [(1, 3), (2, 1), (7, 5), (1000, 10)])
def test_ode_rk4_scan_matches_the_old_plan_and_numpy(n: int, steps: int) -> None:
    """The ODE workload's scan (concatenate([1], y[:-1]) in every stage): primal and gradient bit for bit."""
    from graphc.bench import ode_rk4

    x = gc.var("x", (n,))
    y = ode_rk4.graphc_final_state(x, steps)
    value = ode_rk4.make_input(n)
    for output in (y, gc.grad(y[-1], x)):
        fn = compiled([x], output, True, optimize=True)
        old = compiled([x], output, False, optimize=True)
        assert fn(value).tobytes() == old(value).tobytes()
    np.testing.assert_allclose(
        compiled([x], y, True, optimize=True)(value), ode_rk4.numpy_primal(value, steps), rtol=1e-13
    )
