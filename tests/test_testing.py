"""graphc.testing: check_grad passes on right derivatives and fails, with a useful message, on wrong ones.

Wrong derivatives come from copies of real ops whose rules are replaced (the copy is
not registered in OPS and builds its own nodes, so nothing else sees it) and from
points where the documented subgradient is not what finite differences see.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import numpy as np
import pytest

import graphc as gc
from graphc.ir import Node
from graphc.ops import OPS
from graphc.ops import elementwise as ew
from graphc.ops.base import Op
from graphc.ops.source import scalar
from graphc.testing import check_grad, numeric_vjp


def with_rules(op: Op, vjp: tuple | None = None, jvp: tuple | None = None) -> Op:
    """An unregistered copy of `op` with other derivative rules (its eval and infer unchanged)."""
    wrong = copy.copy(op)
    if vjp is not None:
        object.__setattr__(wrong, "vjp", vjp)
    if jvp is not None:
        object.__setattr__(wrong, "jvp", jvp)
    return wrong


def apply(op: Op, *args: gc.Tensor) -> gc.Tensor:
    return gc.Tensor(Node.make(op, [a.node for a in args], {}))


# sin whose derivative is taken as sin instead of cos
WRONG_SIN = with_rules(ew.sin, vjp=(lambda ct, out, x: ew.mul(ct, ew.sin(x)),))
# mul whose rule for y is right and for x is scaled by 1.001
SLIGHTLY_WRONG_MUL = with_rules(
    ew.mul, vjp=(lambda ct, out, x, y: ew.mul(ew.mul(ct, y), scalar(1.001, y)), ew.mul.vjp[1])
)
# mul whose rule for y forgets x
WRONG_MUL_Y = with_rules(ew.mul, vjp=(ew.mul.vjp[0], lambda ct, out, x, y: ct))


def test_the_copies_are_not_registered() -> None:
    assert OPS["sin"] is ew.sin and OPS["mul"] is ew.mul
    assert ew.sin.vjp[0] is not WRONG_SIN.vjp[0]
    x = gc.var("x", (2,))
    assert apply(WRONG_SIN, x).node is not gc.sin(x).node


@pytest.mark.parametrize(
    "build",
    [
        lambda x, y: gc.sum(gc.sin(x) * y),
        lambda x, y: gc.tanh(x) @ gc.exp(y),
        lambda x, y: gc.log_softmax(x * y[0]),
        lambda x, y: apply(WRONG_SIN, x) * 0.0 + x * y,  # a wrong rule on a path multiplied by 0 is harmless
    ],
    ids=["scalar", "matmul-vector", "vector-output", "zero-path"],
)
def test_passes_on_correct_derivatives(build: Callable) -> None:
    x = gc.var("x", (3,))
    y = gc.var("y", (3,))
    values = {x: np.array([0.2, -0.9, 1.4]), y: np.array([1.1, 0.3, -0.6])}
    worst = check_grad(build(x, y), [x, y], values)
    assert 0.0 <= worst < 1e-7


def test_single_input_and_output_forms() -> None:
    x = gc.var("x")
    assert check_grad(gc.sin(x) * x, x, {x: 0.7}) < 1e-8


def test_fails_on_a_wrong_rule_naming_the_input_and_the_values() -> None:
    x = gc.var("x", (3,))
    values = {x: np.array([0.2, -0.9, 1.4])}
    with pytest.raises(AssertionError) as exc:
        check_grad(gc.sum(apply(WRONG_SIN, x)), x, values)
    message = str(exc.value)
    assert "x" in message and "finite differences" in message, message
    # it reports the worst element: |sin - cos| is largest at -0.9 (index 1)
    assert re.search(r"index \((np\.int64\()?1\)?,\)", message), message
    numbers = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", message)]
    ct = np.random.default_rng(0).standard_normal(())  # check_grad's cotangent for a scalar output
    assert any(abs(v - ct * np.sin(-0.9)) < 1e-9 for v in numbers), (message, ct)
    assert any(abs(v - ct * np.cos(-0.9)) < 1e-6 for v in numbers), (message, ct)


def test_names_the_input_whose_derivative_is_wrong() -> None:
    x = gc.var("x", (2, 2))
    y = gc.var("y", (2, 2))
    values = {x: np.array([[1.0, 2.0], [3.0, 4.0]]), y: np.array([[0.5, -1.0], [2.0, 0.25]])}
    f = gc.sum(apply(WRONG_MUL_Y, x, y))
    check_grad(f, x, values)  # the rule for x is right
    with pytest.raises(AssertionError, match=r"d/d\W*y"):
        check_grad(f, [x, y], values)


def test_tolerances() -> None:
    x = gc.var("x", (3,))
    y = gc.var("y", (3,))
    values = {x: np.array([0.2, -0.9, 1.4]), y: np.array([1.1, 0.3, -0.6])}
    f = gc.sum(apply(SLIGHTLY_WRONG_MUL, x, y))
    with pytest.raises(AssertionError):
        check_grad(f, [x, y], values)
    ct = abs(float(np.random.default_rng(0).standard_normal(())))  # check_grad's cotangent
    assert check_grad(f, [x, y], values, rtol=1e-2) == pytest.approx(0.001 * 1.1 * ct, rel=1e-4)


def test_non_scalar_outputs_are_checked_through_random_cotangents() -> None:
    x = gc.var("x", (2, 3))
    values = {x: np.linspace(-1.0, 1.0, 6).reshape(2, 3)}
    for seed in range(3):
        with pytest.raises(AssertionError):
            check_grad(apply(WRONG_SIN, x), x, values, seed=seed)
    check_grad(gc.sin(x), x, values, seed=1)


def test_documented_subgradients_are_not_finite_differences() -> None:
    """At a jump or a kink the documented convention differs from what central differences see."""
    x = gc.var("x", (3,))
    with pytest.raises(AssertionError):
        check_grad(gc.sum(gc.floor(x)), x, {x: np.array([0.5, 1.0, 2.5])})  # jump at 1.0
    with pytest.raises(AssertionError):
        check_grad(gc.sum(gc.relu(x)), x, {x: np.array([0.5, 0.0, -1.0])})  # relu'(0) = 0, differences 1/2
    check_grad(gc.sum(gc.abs(x)), x, {x: np.array([0.5, 0.0, -1.0])})  # abs'(0) = 0 = symmetric difference


def test_numeric_vjp() -> None:
    x = gc.var("x", (3,))
    s = gc.var("s")
    outs = [x * x * s, gc.sum(x) * s]
    values = {x: np.array([1.0, -2.0, 0.5]), s: np.array(3.0)}
    cts = [np.array([1.0, 0.5, -1.0]), np.array(2.0)]
    gx, gs = numeric_vjp(outs, [x, s], values, cts)
    np.testing.assert_allclose(gx, cts[0] * 2 * values[x] * 3.0 + 2.0 * 3.0, rtol=1e-8, atol=1e-8)
    assert gs == pytest.approx(float(np.sum(cts[0] * values[x] ** 2)) + 2.0 * values[x].sum(), rel=1e-8)


def test_missing_value_is_an_error() -> None:
    x = gc.var("x", (2,))
    y = gc.var("y", (2,))
    with pytest.raises(ValueError, match="y"):
        check_grad(gc.sum(x * y), x, {x: np.ones(2)})
