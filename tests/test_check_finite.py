"""gc.compile(..., check_finite=True) on both backends (API.md section 10).

The first step whose result holds a NaN or an infinity raises FloatingPointError naming
the op, the step's line of `fn.program`, and the user's file:line that built it — for a
node of a derivative, the forward node it differentiates. With check_finite off the
generated code is exactly the code compiled without the option.
"""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import graphc as gc

BACKENDS = ["numpy", "llvm"]
THIS_FILE = __file__


def line_of(marker: str) -> int:
    """The line of this file holding `marker` (a comment next to the build under test)."""
    for number, text in enumerate(inspect.getsource(inspect.getmodule(line_of)).splitlines(), start=1):
        if marker in text and "line_of(" not in text:
            return number
    raise AssertionError(marker)


def checked(inputs: list, outputs: object, backend: str, **options: object) -> gc.CompiledFunction:
    return gc.compile(inputs, outputs, backend=backend, check_finite=True, cache=False, **options)


def call_expecting_error(fn: gc.CompiledFunction, *args: object) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError) as info:
            fn(*args)
    return str(info.value)


def program_line(fn: gc.CompiledFunction, op: str) -> str:
    """The program listing's line of the (first) step of this op, without the reuse/frees notes."""
    for line in str(fn.program).splitlines():
        if f"= {op}(" in line:
            return line.strip().split("  #")[0]
    raise AssertionError(op)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_forward_op_names_itself_its_line_and_where_it_was_built(backend: str) -> None:
    x = gc.var("x", (3,))
    y = gc.log(x)  # MARK-log
    fn = checked([x], gc.sum(y * 2.0), backend)
    assert fn(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 * np.log(6.0))
    for bad, value in [(0.0, "-inf"), (-1.0, "nan"), (np.inf, "inf")]:
        text = call_expecting_error(fn, np.array([1.0, bad, 3.0]))
        assert text.startswith(f"check_finite: the result of log is {value} at flat index 1")
        assert program_line(fn, "log") in text
        assert f"{THIS_FILE}:{line_of('MARK-log')}" in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gradient_node_names_the_forward_node_it_differentiates(backend: str) -> None:
    x = gc.var("x", (3,))
    f = gc.sum(gc.sqrt(x))  # MARK-sqrt
    fn = checked([x], [f, gc.grad(f, x)], backend)
    text = call_expecting_error(fn, np.array([4.0, 0.0, 1.0]))  # sqrt(0) = 0 is fine; 1 / (2 sqrt 0) is not
    assert re.match(r"check_finite: the result of \w+ is inf at flat index 1, in the derivative of sqrt", text)
    assert f"the sqrt it differentiates was built at {THIS_FILE}:{line_of('MARK-sqrt')}" in text


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_infinite_input_is_caught_at_the_first_step_that_reads_it(backend: str, dtype: str) -> None:
    x = gc.var("x", (2, 2), dtype=dtype)
    scaled = x * 3.0  # MARK-mul
    out = gc.exp(scaled) - gc.exp(scaled)  # inf - inf would be NaN later: the first bad step is reported
    fn = checked([x], out, backend)
    assert fn(np.zeros((2, 2), dtype)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    text = call_expecting_error(fn, np.array([[0.0, 1.0], [-np.inf, 0.0]], dtype))
    assert text.startswith("check_finite: the result of mul is -inf at flat index 2")
    assert f"{THIS_FILE}:{line_of('MARK-mul')}" in text
    overflow = call_expecting_error(fn, np.array([[0.0, 1.0], [400.0, 0.0]], dtype))
    assert overflow.startswith("check_finite: the result of exp is inf at flat index 2")


@pytest.mark.parametrize("backend", BACKENDS)
def test_steps_inside_loop_bodies_are_checked_at_every_iteration(backend: str) -> None:
    h0 = gc.var("h0", (2,))
    xs = gc.var("xs", (4, 2))

    def step(h: gc.Tensor, x_t: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = gc.log(h + x_t)  # MARK-body
        return h, h

    h_t, _ = gc.scan(step, h0, xs)
    fn = checked([h0, xs], h_t, backend)
    ok = fn(np.array([2.0, 3.0]), np.ones((4, 2)))
    assert np.isfinite(ok).all()
    text = call_expecting_error(fn, np.array([2.0, 3.0]), np.array([[0.0, 0], [0, 0], [-5, 0], [0, 0]]))
    assert text.startswith("check_finite: the result of log is nan at flat index 0")
    assert f"{THIS_FILE}:{line_of('MARK-body')}" in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_masked_intermediate_is_still_a_step_that_is_checked(backend: str) -> None:
    """where(x > 0, log(x), 0) computes log(x) everywhere: its NaN is reported, as jax's debug_nans does."""
    x = gc.var("x", (2,))
    fn = checked([x], gc.where(x > 0, gc.log(x), 0.0), backend)
    assert "result of log is nan" in call_expecting_error(fn, np.array([1.0, -1.0]))
    unchecked = gc.compile([x], gc.where(x > 0, gc.log(x), 0.0), backend=backend, cache=False)
    with np.errstate(invalid="ignore"):
        assert unchecked(np.array([1.0, -1.0])).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_are_unchanged_when_everything_is_finite(backend: str) -> None:
    x = gc.var("x", (50,))
    i = gc.var("i", (3,), dtype="int64")
    loss = gc.sum(gc.tanh(x) ** 2 * gc.exp(-x * x)) + gc.sum(gc.take(gc.softmax(x), i))
    outputs = [loss, gc.grad(loss, x), gc.argmax(x)]
    values = np.linspace(-2, 2, 50), np.array([0, 7, -1])
    got = checked([x, i], outputs, backend)(*values)
    plain = gc.compile([x, i], outputs, backend=backend, cache=False)(*values)
    for g, p in zip(got, plain, strict=True):
        assert g.dtype == p.dtype
        np.testing.assert_allclose(g, p, rtol=1e-13)  # fused or not: the same up to reassociation


def test_off_generates_exactly_the_code_compiled_without_the_option() -> None:
    x = gc.var("x", (8,))
    f = gc.sum(gc.log1p(x * x) * gc.sin(x))
    outputs = [f, gc.grad(f, x)]
    for backend in BACKENDS:
        default = gc.compile([x], outputs, backend=backend, cache=False)
        off = gc.compile([x], outputs, backend=backend, cache=False, check_finite=False)
        on = checked([x], outputs, backend)
        assert off.source == default.source
        assert str(off.program) == str(default.program)
        if backend == "llvm":  # the checks are native: the wrapper is the same, the IR is not
            assert off.llvm_ir == default.llvm_ir
            assert "not_finite" in on.llvm_ir.unoptimized
            assert "not_finite" not in default.llvm_ir.unoptimized
        else:
            assert on.source != default.source
            assert "rt.all_finite" in on.source and "all_finite" not in default.source
