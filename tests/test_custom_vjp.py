"""Derivative control: gc.stop_gradient, @gc.custom_vjp and @gc.custom_jvp.

Each rule is checked against central finite differences (float64) and, where the rule
deliberately differs from the primal's own derivative (safe_norm at 0), against the
analytic value it defines; both modes, batched Jacobians, Hessians and grad-of-grad;
compiled on both backends against gc.evaluate; bad rules fail when the function is
applied, naming what is wrong and the user's line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.autodiff.custom import custom, stop_gradient_op
from graphc.ir import toposort
from graphc.testing import check_grad

RNG = np.random.default_rng(3)
HERE = Path(__file__).name


@gc.custom_vjp
def safe_norm(x):
    return gc.sqrt(gc.sum(x * x))


@safe_norm.defvjp
def _safe_norm_vjp(ct, out, x):
    return [ct * gc.where(out > 0, x / out, 0.0)]


@gc.custom_vjp
def scaled_softplus(x, s):
    """s * log(1 + exp(x)), with its derivative written out: two arguments, one a vector, one a scalar."""
    return s * gc.log1p(gc.exp(x))


@scaled_softplus.defvjp
def _scaled_softplus_vjp(ct, out, x, s):
    return [ct * s * gc.sigmoid(x), gc.sum(ct * gc.softplus(x))]


@gc.custom_jvp
def softplus_jvp(x):
    return gc.log1p(gc.exp(x))


@softplus_jvp.defjvp
def _softplus_jvp_rule(tangents, out, x):
    (t,) = tangents
    return t * gc.sigmoid(x)


def _all_ops(tensors: list[gc.Tensor]) -> set[str]:
    return {n.op.name for n in toposort([t.node for t in tensors])}


# --- custom_vjp ------------------------------------------------------------------------------------


def test_safe_norm_is_zero_at_the_origin_and_exact_elsewhere():
    x = gc.var("x", shape=(3,))
    n = safe_norm(x)
    g = gc.grad(n, x)
    with np.errstate(invalid="ignore"):
        value, grad = gc.evaluate([n, g], {x: np.zeros(3)})
    assert value == 0.0 and grad.tolist() == [0.0, 0.0, 0.0]  # the plain sqrt(sum(x*x)) gives NaN here
    xv = np.array([3.0, 4.0, 12.0])
    np.testing.assert_allclose(gc.evaluate(g, {x: xv}), xv / 13.0, rtol=1e-15)
    check_grad(n, x, {x: xv})
    plain = gc.grad(gc.sqrt(gc.sum(x * x)), x)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(gc.evaluate(plain, {x: np.zeros(3)})).all()


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compiled_functions_inline_the_body(backend: str):
    x = gc.var("x", shape=(4,))
    s = gc.var("s")
    f = gc.sum(scaled_softplus(x, s) ** 2) + safe_norm(x)
    gx, gs = gc.grad(f, [x, s])
    fn = gc.compile([x, s], [f, gx, gs], backend=backend)
    assert "custom" not in {n.op.name for n in fn.graph.nodes}
    for xv in (RNG.normal(size=4), np.zeros(4), np.array([40.0, -40.0, 0.0, 1e-300])):
        with np.errstate(all="ignore"):
            expected = gc.evaluate([f, gx, gs], {x: xv, s: 0.7})
            got = fn(xv, 0.7)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)
    check_grad(f, [x, s], {x: RNG.normal(size=4), s: np.array(0.7)})


def test_every_mode_and_order_against_finite_differences():
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    F = scaled_softplus(x, s) * safe_norm(x)  # a vector output: Jacobians batch the rule
    xv, sv = RNG.normal(size=3), np.array(1.3)
    values = {x: xv, s: sv}
    check_grad(F, [x, s], values)
    J_rev = gc.evaluate(gc.jacobian(F, x, mode="rev"), values)
    J_fwd = gc.evaluate(gc.jacobian(F, x, mode="fwd"), values)  # the vjp rule transposed
    eps = 1e-6
    numeric = np.empty((3, 3))
    for j in range(3):
        up, down = xv.copy(), xv.copy()
        up[j] += eps
        down[j] -= eps
        numeric[:, j] = (gc.evaluate(F, {x: up, s: sv}) - gc.evaluate(F, {x: down, s: sv})) / (2 * eps)
    np.testing.assert_allclose(J_rev, numeric, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(J_fwd, J_rev, rtol=1e-14, atol=1e-15)
    t = RNG.normal(size=3)
    np.testing.assert_allclose(gc.evaluate(gc.jvp(F, x, t), values), J_rev @ t, rtol=1e-13)
    f = gc.sum(F)
    H = gc.evaluate(gc.hessian(f, x), values)  # forward over reverse: the rule's own graph is differentiated
    g = gc.grad(f, x)
    check_grad(g, x, values)  # reverse over reverse
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-14)
    rows = [gc.evaluate(g, {x: xv + eps * e, s: sv}) - gc.evaluate(g, {x: xv - eps * e, s: sv}) for e in np.eye(3)]
    numeric_h = np.stack(rows) / (2 * eps)
    np.testing.assert_allclose(H, numeric_h, rtol=1e-6, atol=1e-8)


def test_numbers_broadcast_to_the_argument():
    @gc.custom_vjp
    def f(x):
        return gc.sum(x)

    f.defvjp(lambda ct, out, x: [2.0])  # a number stands for a constant of x's type
    x = gc.var("x", shape=(3,))
    np.testing.assert_array_equal(gc.evaluate(gc.grad(f(x), x), {x: np.zeros(3)}), [2.0, 2.0, 2.0])


def test_rule_arguments_none_numbers_and_keywords():
    @gc.custom_vjp
    def affine(x, y, k, *, power):
        return x**power + y * k

    @affine.defvjp
    def _(ct, out, x, y, k, *, power):
        return [ct * power * x ** (power - 1), None, None]  # y's derivative deliberately dropped

    x = gc.var("x", shape=(2,))
    y = gc.var("y", shape=(2,))
    out = affine(x, y, 3.0, power=3)
    gx, gy = gc.grad(gc.sum(out), [x, y])
    xv, yv = np.array([1.5, -2.0]), np.array([0.25, 4.0])
    np.testing.assert_array_equal(gc.evaluate(out, {x: xv, y: yv}), xv**3 + 3 * yv)
    np.testing.assert_allclose(gc.evaluate(gx, {x: xv, y: yv}), 3 * xv**2, rtol=1e-15)
    np.testing.assert_array_equal(gc.evaluate(gy, {x: xv, y: yv}), [0.0, 0.0])
    assert gc.evaluate(gc.jvp(out, y, np.ones(2)), {x: xv, y: yv}).tolist() == [0.0, 0.0]


def test_int_arguments_take_no_cotangent():
    @gc.custom_vjp
    def pick(x, i):
        return gc.take(x, i)

    @pick.defvjp
    def _(ct, out, x, i):
        return [gc.Tensor(gc.grad(gc.sum(gc.take(x, i) * ct), x).node), None]

    x = gc.var("x", shape=(4,))
    i = gc.var("i", shape=(2,), dtype="int64")
    g = gc.grad(gc.sum(pick(x, i) ** 2), x)
    xv = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(gc.evaluate(g, {x: xv, i: np.array([3, 3])}), [0, 0, 0, 16.0])


def test_named_dimensions_pass_through():
    x = gc.var("x", shape=("batch", 3))
    norms = safe_norm(x)  # the sum over every element: a scalar
    rows = gc.sum(scaled_softplus(x, 2.0), axis=1)
    assert norms.shape == () and str(rows.node.type) == "f64[batch]"
    g = gc.grad(norms + gc.sum(rows), x)
    fn = gc.compile(x, g, backend="numpy")
    for n in (0, 1, 5):
        xv = RNG.normal(size=(n, 3))
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(fn(xv), gc.evaluate(g, {x: xv}), rtol=1e-14)


@pytest.mark.parametrize(
    ("rule", "error", "match"),
    [
        (lambda ct, out, x: ct * x, TypeError, "must return a list of 1 cotangents"),
        (lambda ct, out, x: [ct, ct], TypeError, "list of 1 cotangents.*got list of 2"),
        (lambda ct, out, x: [gc.sum(x)], gc.ShapeError, r"cotangent of argument 0 .* is f64\[\], expected f64\[3\]"),
        (lambda ct, out, x: [gc.const(np.ones(2)) * ct], gc.ShapeError, r"argument 0 .*f64\[2\], expected f64\[3\]"),
        (lambda ct, out, x: [np.ones(2)], gc.ShapeError, r"argument 0 .*f64\[2\], expected f64\[3\]"),
        (lambda ct, out, x: [(ct * x).astype("float32")], gc.DTypeError, r"f32\[3\], expected f64\[3\]"),
        (lambda ct, out, x: [ct * OUTSIDE], gc.GraphError, "uses the Tensor 'outside'"),
    ],
    ids=["not_a_list", "too_many", "scalar_for_a_vector", "wrong_shape", "wrong_array", "wrong_dtype", "closure"],
)  # fmt: skip
def test_bad_rules_fail_when_applied(rule, error, match):
    @gc.custom_vjp
    def f(x):
        return gc.sum(x * x)

    f.defvjp(rule)
    x = gc.var("x", shape=(3,))
    with pytest.raises(error, match=match) as info:
        f(x)  # marker:apply
    assert HERE in str(info.value) or error is TypeError


OUTSIDE = gc.var("outside", shape=(3,))


def test_the_function_must_take_what_it_uses():
    @gc.custom_vjp
    def closes_over(x):
        return gc.sum(x * OUTSIDE)

    closes_over.defvjp(lambda ct, out, x: [ct * OUTSIDE])
    with pytest.raises(gc.GraphError, match=r"uses the Tensor 'outside'.*pass every Tensor"):
        closes_over(gc.var("x", shape=(3,)))

    @gc.custom_vjp
    def no_rule(x):
        return x

    with pytest.raises(TypeError, match=r"no derivative rule: define it with @no_rule.defvjp"):
        no_rule(gc.var("x"))

    @gc.custom_vjp
    def two(x):
        return x, x

    two.defvjp(lambda ct, out, x: [ct])
    with pytest.raises(TypeError, match="must return one Tensor"):
        two(gc.var("x"))
    with pytest.raises(TypeError, match="decorates a function"):
        gc.custom_vjp(3)

    @gc.custom_vjp
    def cast(x, i):
        return gc.sum(x)

    cast.defvjp(lambda ct, out, x, i: [ct + 0.0 * x, ct])
    with pytest.raises(gc.DTypeError, match=r"cotangent for argument 1.*use None"):
        cast(gc.var("x", shape=(2,)), gc.var("i", dtype="int64"))


def test_a_rule_that_is_not_linear_cannot_be_transposed():
    @gc.custom_vjp
    def f(x):
        return x * 2.0

    f.defvjp(lambda ct, out, x: [ct * ct])
    x = gc.var("x", shape=(2,))
    g = gc.grad(gc.sum(f(x)), x)  # reverse mode applies the rule as it is
    np.testing.assert_array_equal(gc.evaluate(g, {x: np.ones(2)}), [1.0, 1.0])
    with pytest.raises(gc.DifferentiationError, match="not linear in its cotangent"):
        gc.jvp(f(x), x, np.ones(2))  # forward mode needs its transpose


# --- custom_jvp ------------------------------------------------------------------------------------


def test_custom_jvp_both_modes():
    x = gc.var("x", shape=(3,))
    y = softplus_jvp(x)
    xv = np.array([-50.0, 0.5, 40.0])
    t = RNG.normal(size=3)
    sig = 1 / (1 + np.exp(-xv))
    np.testing.assert_allclose(gc.evaluate(gc.jvp(y, x, t), {x: xv}), t * sig, rtol=1e-15)
    np.testing.assert_allclose(gc.evaluate(gc.grad(gc.sum(y), x), {x: xv}), sig, rtol=1e-15)  # transposed
    np.testing.assert_allclose(gc.evaluate(gc.jacobian(y, x, mode="rev"), {x: xv}), np.diag(sig), rtol=1e-15)
    np.testing.assert_allclose(gc.evaluate(gc.jacobian(y, x, mode="fwd"), {x: xv}), np.diag(sig), rtol=1e-15)
    check_grad(gc.sum(y * y), x, {x: RNG.normal(size=3)})
    H = gc.evaluate(gc.hessian(gc.sum(y), x), {x: xv})
    np.testing.assert_allclose(H, np.diag(sig * (1 - sig)), rtol=1e-13, atol=1e-300)
    fn = gc.compile(x, [y, gc.grad(gc.sum(y), x)], backend="llvm")
    np.testing.assert_allclose(fn(xv)[1], sig, rtol=1e-15)


def test_custom_jvp_rule_is_checked():
    @gc.custom_jvp
    def f(x, i):
        return x * 2.0

    f.defjvp(lambda ts, out, x, i: ts[0][:1])
    with pytest.raises(gc.ShapeError, match=r"tangent from the jvp rule of f is f64\[1\], expected f64\[3\]"):
        f(gc.var("x", shape=(3,)), gc.var("i", dtype="int64"))
    seen = []
    f.defjvp(lambda ts, out, x, i: seen.append(ts) or ts[0] * 2.0)
    f(gc.var("x", shape=(3,)), gc.var("i", dtype="int64"))
    assert seen[0][1] is None and isinstance(seen[0][0], gc.Tensor)  # no tangent for the int argument


# --- stop_gradient ---------------------------------------------------------------------------------


def test_stop_gradient_in_every_mode():
    x = gc.var("x", shape=(3,))
    f = gc.sum(gc.stop_gradient(x * x) * x)  # d/dx = x*x, not 3x^2
    xv = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(gc.evaluate(f, {x: xv}), np.sum(xv**3))
    np.testing.assert_array_equal(gc.evaluate(gc.grad(f, x), {x: xv}), xv * xv)
    np.testing.assert_array_equal(gc.evaluate(gc.jvp(f, x, np.ones(3)), {x: xv}), np.sum(xv * xv))
    np.testing.assert_array_equal(gc.evaluate(gc.jacobian(gc.stop_gradient(x), x), {x: xv}), np.zeros((3, 3)))
    # the gradient is stop_gradient(x*x): constant, so the Hessian is 0 (as jax.hessian says)
    np.testing.assert_array_equal(gc.evaluate(gc.hessian(f, x), {x: xv}), np.zeros((3, 3)))
    g = gc.grad(gc.sum(gc.stop_gradient(x)), x, disconnected="raise")  # connected, with a zero derivative
    np.testing.assert_array_equal(gc.evaluate(g, {x: xv}), np.zeros(3))


def test_stop_gradient_survives_the_optimizer_and_costs_nothing_compiled():
    x = gc.var("x", shape=(3,))
    f = gc.sum(x - gc.stop_gradient(x)) + gc.sum(gc.stop_gradient(x) * x)
    (optimized,) = gc.optimize([f], fuse=False)
    assert "stop_gradient" in _all_ops([optimized])
    xv = np.array([0.5, 1.5, -2.0])
    np.testing.assert_array_equal(gc.evaluate(gc.grad(optimized, x), {x: xv}), 1.0 + xv)
    (fused_f,) = gc.optimize([f])
    assert "stop_gradient" in _all_ops([fused_f])
    for backend in ("numpy", "llvm"):
        fn = gc.compile(x, [f, gc.grad(f, x)], backend=backend)
        assert all(n.op is not stop_gradient_op for n in fn.graph.nodes)
        value, grad = fn(xv)
        assert value == np.sum(xv * xv) and grad.tolist() == (1.0 + xv).tolist()
    ints = gc.var("i", shape=(2,), dtype="int64")
    np.testing.assert_array_equal(gc.evaluate(gc.stop_gradient(ints) + 1, {ints: [1, 2]}), [2, 3])


def test_inside_a_scan_step():
    W = gc.var("W")
    xs = gc.var("xs", shape=(4,))

    def step(h, x):
        h = gc.stop_gradient(h) * W + x  # truncated backpropagation: one step
        return h, h

    h_T, _ = gc.scan(step, gc.const(1.0), xs)
    g = gc.grad(h_T, W)
    xv = np.array([0.1, 0.2, 0.3, 0.4])
    h = 1.0
    for x in xv[:-1]:
        h = h * 0.5 + x
    np.testing.assert_allclose(gc.evaluate(g, {W: 0.5, xs: xv}), h, rtol=1e-15)
    fn = gc.compile([W, xs], g, backend="numpy")
    np.testing.assert_allclose(fn(0.5, xv), h, rtol=1e-15)


def test_custom_nodes_print_their_body_and_rule():
    x = gc.var("x", shape=(2,))
    text = gc.show(safe_norm(x))
    assert "custom(%x, body=<graph" in text and "graph(%ct: f64[], %out: f64[], %a0: f64[2])" in text
    assert custom.transient and stop_gradient_op.transient
