"""Jacobians with several wrt, nested Hessians and value_and_grad (API.md §6): forms, values, errors.

A list of wrt gives a list, a tuple a tuple, a single Tensor a single Tensor (never iterated
into its elements); every block is checked against central differences; bad arguments
raise GraphError naming this file's line.
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import graphc as gc

THIS_FILE = os.path.basename(__file__)
EPS = 1e-6


def here() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


X = gc.var("x", (3,))
Y = gc.var("y", (2, 2))
S = gc.var("s")
FEED = {X: np.array([0.3, -0.8, 1.1]), Y: np.array([[0.5, -0.2], [0.9, 1.4]]), S: np.array(0.7)}


def function() -> gc.Tensor:
    """A vector function of all three vars: (4,)."""
    m = gc.reshape(Y, (4,))
    return gc.tanh(gc.concatenate([X, S[None]]) * m) + gc.sum(X * X) * gc.sin(m) * S


def scalar() -> gc.Tensor:
    return gc.sum(function() ** 2) + gc.prod(X) * S


def numeric_jacobian(f: gc.Tensor, x: gc.Tensor) -> np.ndarray:
    base = FEED[x]
    out = np.zeros(f.shape + base.shape)
    for i in np.ndindex(base.shape):
        e = np.zeros(base.shape)
        e[i] = EPS
        up = gc.evaluate(f, {**FEED, x: base + e})
        down = gc.evaluate(f, {**FEED, x: base - e})
        out[(Ellipsis, *i)] = (np.asarray(up) - np.asarray(down)) / (2 * EPS)
    return out


@pytest.mark.parametrize("mode", ["auto", "rev", "fwd"])
def test_jacobian_with_a_list_and_a_tuple_of_wrt(mode: str) -> None:
    f = function()
    jx, jy, js = gc.jacobian(f, [X, Y, S], mode=mode)
    assert (jx.shape, jy.shape, js.shape) == ((4, 3), (4, 2, 2), (4,))
    for j, w in ((jx, X), (jy, Y), (js, S)):
        np.testing.assert_allclose(gc.evaluate(j, FEED), numeric_jacobian(f, w), rtol=1e-6, atol=1e-8)
    as_tuple = gc.jacobian(f, (X, S), mode=mode)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    single = gc.jacobian(f, X, mode=mode)
    assert isinstance(single, gc.Tensor) and single.shape == (4, 3)  # one Tensor, never iterated


def test_jacobian_of_a_list_of_functions() -> None:
    f, g = function(), gc.exp(X)
    table = gc.jacobian([f, g], [X, Y])
    assert isinstance(table, list) and [len(row) for row in table] == [2, 2]
    assert table[1][1].shape == (3, 2, 2)
    np.testing.assert_array_equal(gc.evaluate(table[1][1], FEED), 0.0)  # g does not depend on y
    np.testing.assert_allclose(gc.evaluate(table[1][0], FEED), np.diag(np.exp(FEED[X])), rtol=1e-15)


def test_nested_hessian_blocks_against_differences_of_the_gradient() -> None:
    f = scalar()
    h = gc.hessian(f, [X, Y, S])
    assert isinstance(h, list) and all(isinstance(row, list) and len(row) == 3 for row in h)
    wrt = [X, Y, S]
    grads = gc.grad(f, wrt)
    for i, xi in enumerate(wrt):
        for j, xj in enumerate(wrt):
            assert h[i][j].shape == xi.shape + xj.shape
            numeric = numeric_jacobian(grads[i], xj)
            np.testing.assert_allclose(gc.evaluate(h[i][j], FEED), numeric, rtol=1e-5, atol=1e-7)
    hxy = np.asarray(gc.evaluate(h[0][1], FEED))
    hyx = np.asarray(gc.evaluate(h[1][0], FEED))
    np.testing.assert_allclose(hxy, np.moveaxis(hyx, -1, 0), rtol=1e-12, atol=1e-13)  # symmetric blocks
    single = gc.hessian(f, Y)
    assert isinstance(single, gc.Tensor) and single.shape == (2, 2, 2, 2)


def test_hessian_compiles_on_both_backends() -> None:
    f = scalar()
    h = gc.hessian(f, [X, S])
    outputs = [h[0][0], h[0][1], h[1][1]]
    expected = gc.evaluate(outputs, FEED)
    for backend in ("numpy", "llvm"):
        got = gc.compile([X, Y, S], outputs, backend=backend)(FEED[X], FEED[Y], FEED[S])
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-13)


def test_value_and_grad_mirrors_the_form_of_wrt() -> None:
    f = scalar()
    value, grads = gc.value_and_grad(f, [X, Y])
    assert value is f and isinstance(grads, list) and len(grads) == 2
    value, grads = gc.value_and_grad(f, (X, S))
    assert isinstance(grads, tuple)
    value, gx = gc.value_and_grad(f, X)
    assert isinstance(gx, gc.Tensor) and gx.shape == (3,)
    fn = gc.compile([X, Y, S], [value, gx], backend="numpy")
    fv, gv = fn(FEED[X], FEED[Y], FEED[S])
    np.testing.assert_allclose(fv, gc.evaluate(f, FEED))
    np.testing.assert_allclose(gv, numeric_jacobian(f, X), rtol=1e-6, atol=1e-8)


def test_bad_arguments_name_the_users_line() -> None:
    k = gc.var("k", (3,), dtype="int64")
    f = function()
    with pytest.raises(gc.GraphError, match="must be a var") as info:
        gc.jacobian(f, [X, X * 2.0])
    assert f"{THIS_FILE}:{here() - 1}" in str(info.value)
    with pytest.raises(gc.GraphError, match="dtype is int64") as info:
        gc.jacobian(f, [X, k])
    assert f"{THIS_FILE}:{here() - 1}" in str(info.value)
    with pytest.raises(gc.GraphError, match="needs a float scalar") as info:
        gc.hessian(f, [X, Y])
    assert f"{THIS_FILE}:{here() - 1}" in str(info.value)
    with pytest.raises(gc.GraphError, match="needs a float scalar") as info:
        gc.value_and_grad(f, X)
    assert f"{THIS_FILE}:{here() - 1}" in str(info.value)
    tree = gc.jacobian(f, {"x": X})  # a dict of wrt is a parameter tree: the Jacobians come keyed alike
    assert isinstance(tree, dict) and set(tree) == {"x"} and tree["x"].shape == f.shape + X.shape
    with pytest.raises(TypeError, match="must be a Tensor"):
        gc.jacobian(f, {"x": FEED[X]})
    with pytest.raises(TypeError, match=r"x\[1\] must be a Tensor"):
        gc.hessian(scalar(), [X, FEED[X]])
