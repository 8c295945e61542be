"""The argument forms of gc.grad/vjp/jvp/jacobian/hessian (API.md §2, §6; issue 11.2).

A single Tensor means one (never iterated into its elements) and gives a single result;
a list gives a list and a tuple a tuple. Checked for every function, every Tensor argument
position and each form, against values computed by hand; then adversarial arguments
(a Tensor subclass, an object lying about its class, arrays, generators, dicts, nesting),
each a TypeError naming the function and the argument; and wrt that is not a var.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from unittest import mock

import numpy as np
import pytest

import graphc as gc

X = np.array([0.5, -1.0, 2.0])
Y = np.array(0.75)
FORMS = ("single", "list", "tuple")


def shaped(form: str, items: list) -> object:
    """`items` in the form: the one item itself, a list or a tuple."""
    if form == "single":
        assert len(items) == 1
        return items[0]
    return list(items) if form == "list" else tuple(items)


def check_form(result: object, form: str, n: int) -> list:
    """The result's items after checking it has the form asked for (a single Tensor is not a sequence)."""
    if form == "single":
        assert isinstance(result, gc.Tensor)
        return [result]
    assert type(result) is (list if form == "list" else tuple)
    assert len(result) == n  # type: ignore[arg-type]
    return list(result)  # type: ignore[call-overload]


@pytest.fixture
def xy() -> tuple[gc.Tensor, gc.Tensor]:
    return gc.var("x", shape=(3,)), gc.var("y")


def feed(x: gc.Tensor, y: gc.Tensor) -> dict:
    return {x: X, y: Y}


# f(x, y) = sum(sin(x) * y) (scalar), F(x, y) = x**2 * y (vector)


def scalar_f(x: gc.Tensor, y: gc.Tensor) -> gc.Tensor:
    return gc.sum(gc.sin(x) * y)


def vector_f(x: gc.Tensor, y: gc.Tensor) -> gc.Tensor:
    return x**2 * y


def wrt_cases(x: gc.Tensor, y: gc.Tensor) -> list[tuple[str, list[gc.Tensor]]]:
    return [("single", [x]), ("single", [y]), ("list", [x, y]), ("tuple", [y, x]), ("list", []), ("tuple", [x])]


@pytest.mark.parametrize("case", range(6))
def test_grad_forms(xy, case: int):
    x, y = xy
    form, ws = wrt_cases(x, y)[case]
    got = check_form(gc.grad(scalar_f(x, y), shaped(form, ws) if ws or form != "single" else ws), form, len(ws))
    want = {x: np.cos(X) * Y, y: np.sin(X).sum()}
    for g, w in zip(gc.evaluate(got, feed(x, y)) if got else [], ws, strict=True):
        np.testing.assert_allclose(g, want[w], rtol=1e-14)


@pytest.mark.parametrize(("out_form", "wrt_form"), list(itertools.product(FORMS, FORMS)))
def test_vjp_forms(xy, out_form: str, wrt_form: str):
    """cotangents follow the outputs' form, results the wrt's form."""
    x, y = xy
    outs = [vector_f(x, y)] if out_form == "single" else [vector_f(x, y), gc.sin(x)]
    cts_values = [np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 0.25])][: len(outs)]
    ws = [x] if wrt_form == "single" else [x, y]
    result = gc.vjp(shaped(out_form, outs), shaped(wrt_form, ws), shaped(out_form, cts_values))
    got = gc.evaluate(check_form(result, wrt_form, len(ws)), feed(x, y))
    ct0 = cts_values[0]
    want_x = ct0 * 2 * X * Y
    want_y = np.sum(ct0 * X**2)
    if len(outs) == 2:
        want_x = want_x + cts_values[1] * np.cos(X)
    np.testing.assert_allclose(got[0], want_x, rtol=1e-14)
    if len(ws) == 2:
        np.testing.assert_allclose(got[1], want_y, rtol=1e-14)


@pytest.mark.parametrize(("out_form", "wrt_form"), list(itertools.product(FORMS, FORMS)))
def test_jvp_forms(xy, out_form: str, wrt_form: str):
    """tangents follow the wrt's form, results the outputs' form."""
    x, y = xy
    outs = [vector_f(x, y)] if out_form == "single" else [vector_f(x, y), gc.sin(x)]
    ws = [x] if wrt_form == "single" else [x, y]
    tx = np.array([1.0, -2.0, 0.5])
    ts = [tx, np.array(3.0)][: len(ws)]
    result = gc.jvp(shaped(out_form, outs), shaped(wrt_form, ws), shaped(wrt_form, ts))
    got = gc.evaluate(check_form(result, out_form, len(outs)), feed(x, y))
    want0 = 2 * X * Y * tx + (X**2 * 3.0 if len(ws) == 2 else 0.0)
    np.testing.assert_allclose(got[0], want0, rtol=1e-14)
    if len(outs) == 2:
        np.testing.assert_allclose(got[1], np.cos(X) * tx, rtol=1e-14)


def test_single_tensors_are_not_iterated(xy):
    """The defect of issue 11.2: gc.jvp(g, x, v) and gc.vjp(g, x, ct) iterated the Tensors."""
    x, y = xy
    g = vector_f(x, y)
    v = gc.const(np.array([1.0, 0.0, 0.0]))
    t = gc.jvp(g, x, v)
    assert isinstance(t, gc.Tensor) and t.shape == (3,)
    np.testing.assert_allclose(gc.evaluate(t, feed(x, y)), [2 * X[0] * Y, 0.0, 0.0], rtol=1e-14)
    c = gc.vjp(g, x, np.array([0.0, 1.0, 0.0]))
    assert isinstance(c, gc.Tensor) and c.shape == (3,)
    np.testing.assert_allclose(gc.evaluate(c, feed(x, y)), [0.0, 2 * X[1] * Y, 0.0], rtol=1e-14)
    scalar = gc.vjp(gc.sum(g), y, 2.0)  # a Python number as the one cotangent
    np.testing.assert_allclose(gc.evaluate(scalar, feed(x, y)), 2 * np.sum(X**2), rtol=1e-14)


@pytest.mark.parametrize(("f_form", "x_form"), list(itertools.product(FORMS, FORMS)))
def test_jacobian_forms(xy, f_form: str, x_form: str):
    x, y = xy
    fs = [vector_f(x, y)] if f_form == "single" else [vector_f(x, y), gc.sum(gc.sin(x) * y)]
    xs = [x] if x_form == "single" else [x, y]
    result = gc.jacobian(shaped(f_form, fs), shaped(x_form, xs))
    rows = [result] if f_form == "single" else check_form(result, f_form, len(fs))
    want = {
        (0, 0): np.diag(2 * X * Y), (0, 1): X**2,
        (1, 0): np.cos(X) * Y, (1, 1): np.sum(np.sin(X)),
    }  # fmt: skip
    for i, row in enumerate(rows):
        entries = check_form(row, x_form, len(xs))
        for j, (jac, wrt) in enumerate(zip(entries, xs, strict=True)):
            assert jac.shape == fs[i].shape + wrt.shape
            np.testing.assert_allclose(gc.evaluate(jac, feed(x, y)), want[i, j], rtol=1e-14)


@pytest.mark.parametrize("x_form", FORMS)
def test_hessian_forms(xy, x_form: str):
    """f = sum(sin(x) * y): H_xx = diag(-sin x · y), H_xy = cos x, H_yx = cos x, H_yy = 0."""
    x, y = xy
    xs = [x] if x_form == "single" else [x, y]
    result = gc.hessian(scalar_f(x, y), shaped(x_form, xs))
    want = {(0, 0): np.diag(-np.sin(X) * Y), (0, 1): np.cos(X), (1, 0): np.cos(X), (1, 1): np.array(0.0)}
    if x_form == "single":
        assert isinstance(result, gc.Tensor)
        np.testing.assert_allclose(gc.evaluate(result, feed(x, y)), want[0, 0], rtol=1e-14)
        return
    for i, row in enumerate(check_form(result, x_form, 2)):  # a list of rows, each a list
        for j, h in enumerate(check_form(row, x_form, 2)):
            assert h.shape == xs[i].shape + xs[j].shape
            np.testing.assert_allclose(gc.evaluate(h, feed(x, y)), want[i, j], rtol=1e-14, atol=1e-300)


# --- adversarial arguments -----------------------------------------------------------------


class MyTensor(gc.Tensor):
    """A user's subclass that iterates differently: it must still count as one Tensor."""

    __slots__ = ()

    def __iter__(self):
        raise AssertionError("a single Tensor must never be iterated")


def test_tensor_subclass_is_one_tensor(xy):
    x, y = xy
    sub_x = MyTensor(x.node)
    g = gc.grad(scalar_f(x, y), sub_x)
    assert isinstance(g, gc.Tensor)
    np.testing.assert_allclose(gc.evaluate(g, feed(x, y)), np.cos(X) * Y, rtol=1e-14)
    t = gc.jvp(MyTensor(vector_f(x, y).node), sub_x, np.ones(3))
    assert isinstance(t, gc.Tensor)
    np.testing.assert_allclose(gc.evaluate(t, feed(x, y)), 2 * X * Y, rtol=1e-14)


def lying_tensor(x: gc.Tensor) -> object:
    """An object that claims to be a Tensor (isinstance says yes) but is not one."""
    fake = mock.Mock(spec=gc.Tensor)
    fake.shape = x.shape
    fake.dtype = x.dtype
    assert isinstance(fake, gc.Tensor)
    return fake


def generator(x: gc.Tensor):
    yield x


ADVERSARIES: dict[str, Callable[[gc.Tensor], object]] = {
    "ndarray": lambda x: X,
    "float": lambda x: 1.5,
    "None": lambda x: None,
    "string": lambda x: "x",
    "generator": generator,
    "dict": lambda x: {"x": X},  # a tree (dicts and nesting are parameter trees) holding an array, not a Tensor
    "set": lambda x: {x},
    "nested": lambda x: [[x, X]],
    "list_with_array": lambda x: [x, X],
    "lying": lying_tensor,
    "node": lambda x: x.node,
}


def calls(x: gc.Tensor, y: gc.Tensor) -> dict[str, Callable[[object], object]]:
    """Each public function with one argument position left open."""
    f = scalar_f(x, y)
    F = vector_f(x, y)
    return {
        "grad.f": lambda a: gc.grad(a, x),
        "grad.wrt": lambda a: gc.grad(f, a),
        "vjp.outputs": lambda a: gc.vjp(a, x, np.ones(3)),
        "vjp.wrt": lambda a: gc.vjp(F, a, np.ones(3)),
        "jvp.outputs": lambda a: gc.jvp(a, x, np.ones(3)),
        "jvp.wrt": lambda a: gc.jvp(F, a, np.ones(3)),
        "jacobian.f": lambda a: gc.jacobian(a, x),
        "jacobian.x": lambda a: gc.jacobian(F, a),
        "hessian.f": lambda a: gc.hessian(a, x),
        "hessian.x": lambda a: gc.hessian(f, a),
    }


@pytest.mark.parametrize("adversary", sorted(ADVERSARIES))
@pytest.mark.parametrize(
    "position",
    ["grad.f", "grad.wrt", "vjp.outputs", "vjp.wrt", "jvp.outputs", "jvp.wrt",
     "jacobian.f", "jacobian.x", "hessian.f", "hessian.x"],
)  # fmt: skip
def test_bad_argument_is_a_type_error(xy, position: str, adversary: str):
    x, y = xy
    call = calls(x, y)[position]
    with pytest.raises(TypeError) as exc:
        call(ADVERSARIES[adversary](x))
    message = str(exc.value)
    function, argument = position.split(".")
    assert f"gc.{function}" in message
    assert argument in message
    if adversary == "dict" and not position.endswith(".f"):
        assert f"{argument}['x']" in message  # the path of the bad entry
    if adversary == "nested" and not position.endswith(".f"):
        assert f"{argument}[0][1]" in message
    if adversary == "generator":
        assert "pass a list" in message


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x, y: gc.vjp([vector_f(x, y)], x, np.ones(3)), "list or tuple of 1"),
        (lambda x, y: gc.vjp(vector_f(x, y), x, [np.ones(3)]), "one value"),
        (lambda x, y: gc.vjp([vector_f(x, y), x], x, [np.ones(3)]), "hold 2 values"),
        (lambda x, y: gc.jvp(vector_f(x, y), [x, y], np.ones(3)), "list or tuple of 2"),
        (lambda x, y: gc.jvp(vector_f(x, y), [x, y], (np.ones(3),)), "hold 2 values"),
        (lambda x, y: gc.jvp(vector_f(x, y), x, (v for v in [np.ones(3)])), "one value"),
    ],
    ids=["vjp_list_of_outputs_one_ct", "vjp_single_output_list_ct", "vjp_count",
         "jvp_list_of_wrt_one_t", "jvp_count", "jvp_generator_tangent"],
)  # fmt: skip
def test_seeds_follow_the_form(xy, call: Callable, match: str):
    x, y = xy
    if match == "one value":
        with pytest.raises((TypeError, gc.ShapeError)):
            call(x, y)
        return
    with pytest.raises(TypeError, match=match):
        call(x, y)


@pytest.mark.parametrize("name", ["grad", "vjp", "jvp", "jacobian", "hessian"])
def test_wrt_must_be_a_var(xy, name: str):
    """gc.grad(f, x * 2) used to return zeros silently; now a DifferentiationError naming the wrt's line."""
    x, y = xy
    doubled = x * 2.0
    line = doubled.node.loc.line
    f = gc.sum(gc.sin(doubled) * y)
    call = {
        "grad": lambda: gc.grad(f, doubled),
        "vjp": lambda: gc.vjp(f, [y, doubled], 1.0),
        "jvp": lambda: gc.jvp(f, doubled, np.ones(3)),
        "jacobian": lambda: gc.jacobian(f, doubled),
        "hessian": lambda: gc.hessian(f, doubled),
    }[name]
    with pytest.raises(gc.DifferentiationError) as exc:
        call()
    message = str(exc.value)
    assert f"gc.{name}" in message and "gc.var" in message and "mul" in message
    assert f"test_autodiff_args.py:{line}" in message
    assert ("wrt[1]" in message) == (name == "vjp")
    with pytest.raises(gc.DifferentiationError, match=r"gc\.var"):
        gc.grad(f, gc.const(np.ones(3)))


def test_empty_and_repeated_wrt(xy):
    x, y = xy
    assert gc.grad(scalar_f(x, y), []) == []
    assert gc.grad(scalar_f(x, y), ()) == ()
    gx1, gx2 = gc.grad(scalar_f(x, y), [x, x])
    for g in gc.evaluate([gx1, gx2], feed(x, y)):
        np.testing.assert_allclose(g, np.cos(X) * Y, rtol=1e-14)
