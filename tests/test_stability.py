"""passes/stability.py: every rule's golden text; agreement with the naive graph (1e-12 relative) on
ordinary inputs; finite, accurate results where the naive graph overflows, underflows or cancels.
Also the promises of API.md §3 for the whole optimizer (log-sum-exp and its gradient at 1000, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import rules_harness
from rules_harness import RuleCases

import graphc as gc
from graphc.autodiff.vjp import vjp_graph
from graphc.ir import Graph
from graphc.passes.stability import RULES, stability


@dataclass(frozen=True)
class Case(rules_harness.Case):
    ordinary: tuple[float, float]  # a range of inputs where the naive graph is accurate
    hard: tuple[float, float, float]  # 3 inputs where it is not (every var gets them)
    exact: Callable[[np.ndarray], np.ndarray]  # the true first output at `hard`


CASES = RuleCases(RULES, stability, Case)


def case(ordinary: tuple[float, float], hard: tuple[float, float, float], exact: Callable) -> Callable:
    """Register the case of the rule named like the function; its docstring is the golden text."""
    return CASES.case(ordinary=ordinary, hard=hard, exact=exact)


def v(name: str, n: int) -> gc.Tensor:
    return gc.var(name, shape=(n,))


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-softplus(-x))


def engine_grad(f: gc.Tensor, x: gc.Tensor) -> gc.Tensor:
    """The gradient as the engine builds it from f as written (gc.grad rewrites f into its stable form first).

    These are the shapes the gradient-side rules must recognize: a formula reaches the
    engine unrewritten in a loop body's derivative or a derivative rule's own output.
    """
    (g,) = vjp_graph([f.node], [x.node], [gc.const(np.ones((), f.dtype)).node])
    assert g is not None
    return gc.Tensor(g)


@case(ordinary=(-0.5, 3.0), hard=(1e-20, -1e-20, 1e-300), exact=np.log1p)
def log_one_plus(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = log1p(%x) : f64[3]
      %1 = log1p(%y) : f64[3]
      return %0, %1
    }
    """
    return [gc.log(1.0 + v("x", n)), gc.log(v("y", n) + 1.0)]


@case(ordinary=(0.5, 3.0), hard=(1e-10, -1e-10, 5e-324), exact=np.expm1)
def exp_minus_one(n):
    """
    graph(%x: f64[3]) {
      %0 = expm1(%x) : f64[3]
      return %0
    }
    """
    return [gc.exp(v("x", n)) - 1.0]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 1000.0, 1000.0), exact=lambda x: 1000 + np.log(3))
def log_sum_exp(n):
    """
    graph(%x: f64[3], %y: f64[2,3]) {
      %0 = logsumexp(%x, axis=(0,), keepdims=False) : f64[]
      %1 = logsumexp(%y, axis=(1,), keepdims=True) : f64[2,1]
      return %0, %1
    }
    """
    x2 = gc.var("y", shape=(2, n))
    return [gc.log(gc.sum(gc.exp(v("x", n)))), gc.log(gc.sum(gc.exp(x2), axis=1, keepdims=True))]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, -1000.0, 0.5), exact=lambda x: x)
def log_exp(n):
    """
    graph(%x: f64[3]) {
      return %x
    }
    """
    return [gc.log(gc.exp(v("x", n)))]


@case(ordinary=(-3.0, 3.0), hard=(-1000.0, -800.0, 1.0), exact=lambda x: -softplus(-x))
def log_sigmoid(n):
    """
    graph(%x: f64[3]) {
      %0 = neg(%x) : f64[3]
      %1 = softplus(%0) : f64[3]
      %2 = neg(%1) : f64[3]
      return %2
    }
    """
    return [gc.log(gc.sigmoid(v("x", n)))]


@case(ordinary=(-3.0, 3.0), hard=(40.0, 800.0, -1.0), exact=lambda x: sigmoid(-x))
def one_minus_sigmoid(n):
    """
    graph(%x: f64[3]) {
      %0 = neg(%x) : f64[3]
      %1 = sigmoid(%0) : f64[3]
      %2 = softplus(%x) : f64[3]
      %3 = neg(%2) : f64[3]
      %4 = sigmoid(%x) : f64[3]
      return %1, %3, %4
    }
    """
    x = v("x", n)
    return [1.0 - gc.sigmoid(x), gc.log(1.0 - gc.sigmoid(x)), 1.0 - gc.sigmoid(-x)]


@case(ordinary=(-3.0, 3.0), hard=(-1000.0, -400.0, 1.0), exact=lambda x: -2 * softplus(-x))
def log_product(n):
    """
    graph(%x: f64[3], %y: f64[3]) {
      %0 = neg(%x) : f64[3]
      %1 = softplus(%0) : f64[3]
      %2 = neg(%1) : f64[3]
      %3 = neg(%y) : f64[3]
      %4 = softplus(%3) : f64[3]
      %5 = neg(%4) : f64[3]
      %6 = add(%2, %5) : f64[3]
      %7 = softplus(%x) : f64[3]
      %8 = neg(%7) : f64[3]
      %9 = add(%2, %8) : f64[3]
      %10 = sub(%2, %y) : f64[3]
      %11 = sigmoid(%x) : f64[3]
      %12 = const(1.) : f64[]
      %13 = mul(%y, %y) : f64[3]
      %14 = add(%12, %13) : f64[3]
      %15 = mul(%11, %14) : f64[3]
      %16 = log(%15) : f64[3]
      return %6, %9, %10, %16
    }
    """
    x = v("x", n)
    y = v("y", n)
    p = gc.sigmoid(x)
    return [gc.log(p * gc.sigmoid(y)), gc.log(p * (1.0 - p)), gc.log(p / gc.exp(y)), gc.log(p * (1.0 + y * y))]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 800.0, -1.0), exact=sigmoid)
def sigmoid_by_hand(n):
    """
    graph(%x: f64[3]) {
      %0 = sigmoid(%x) : f64[3]
      %1 = const(2.) : f64[]
      %2 = const(1.) : f64[]
      %3 = neg(%x) : f64[3]
      %4 = exp(%3) : f64[3]
      %5 = add(%2, %4) : f64[3]
      %6 = div(%1, %5) : f64[3]
      return %0, %0, %6
    }
    """
    x = v("x", n)
    return [gc.exp(x) / (1.0 + gc.exp(x)), 1.0 / (1.0 + gc.exp(-x)), 2.0 / (1.0 + gc.exp(-x))]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 800.0, -1.0), exact=softplus)
def log1p_exp(n):
    """
    graph(%x: f64[3]) {
      %0 = softplus(%x) : f64[3]
      return %0
    }
    """
    return [gc.log1p(gc.exp(v("x", n)))]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 1000.0, 1000.0), exact=lambda x: x * 0 + 1 / 3)
def softmax_cotangent(n):
    """
    graph(%x: f64[3], %c: f64[3], %s: f64[3,3]) {
      %0 = const(1.) : f64[]
      %1 = reshape(%0, shape=(1,)) : f64[1]
      %2 = broadcast_to(%1, shape=(3,)) : f64[3]
      %3 = logsumexp(%x, axis=(0,), keepdims=True) : f64[1]
      %4 = sub(%x, %3) : f64[3]
      %5 = exp(%4) : f64[3]
      %6 = mul(%2, %5) : f64[3]
      %7 = exp(%s) : f64[3,3]
      %8 = sum(%7, axis=(1,), keepdims=False) : f64[3]
      %9 = div(%c, %8) : f64[3]
      %10 = mul(%9, %7) : f64[3,3]
      return %6, %10
    }
    """
    x = v("x", n)
    s = gc.var("s", shape=(n, n))
    c = v("c", n)
    # c / sum(exp(s), axis=1) broadcasts along the last axis, pairing row sums with columns:
    # not a softmax cotangent, and it must stay as written.
    return [engine_grad(gc.log(gc.sum(gc.exp(x))), x), (c / gc.sum(gc.exp(s), axis=1)) * gc.exp(s)]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, -1000.0, 0.0), exact=lambda x: x * 0 + 1)
def cancel_exp(n):
    """
    graph(%y: f64[3]) {
      %0 = const(1.) : f64[]
      %1 = reshape(%0, shape=(1,)) : f64[1]
      %2 = broadcast_to(%1, shape=(3,)) : f64[3]
      return %2
    }
    """
    y = v("y", n)
    return [engine_grad(gc.sum(gc.log(gc.exp(y))), y)]


@case(ordinary=(-3.0, 3.0), hard=(-1000.0, -800.0, 0.0), exact=lambda x: np.exp(-softplus(x)))
def cancel_sigmoid(n):
    """
    graph(%x: f64[3]) {
      %0 = const(1.) : f64[]
      %1 = reshape(%0, shape=(1,)) : f64[1]
      %2 = broadcast_to(%1, shape=(3,)) : f64[3]
      %3 = neg(%x) : f64[3]
      %4 = sigmoid(%3) : f64[3]
      %5 = mul(%2, %4) : f64[3]
      return %5
    }
    """
    x = v("x", n)
    return [engine_grad(gc.sum(gc.log(gc.sigmoid(x))), x)]


@case(ordinary=(-3.0, 3.0), hard=(1000.0, 800.0, -1.0), exact=lambda x: sigmoid(x))
def cancel_one_plus_exp(n):
    """
    graph(%x: f64[3]) {
      %0 = const(1.) : f64[]
      %1 = reshape(%0, shape=(1,)) : f64[1]
      %2 = broadcast_to(%1, shape=(3,)) : f64[3]
      %3 = sigmoid(%x) : f64[3]
      %4 = mul(%2, %3) : f64[3]
      return %4
    }
    """
    x = v("x", n)
    return [engine_grad(gc.sum(gc.log(1.0 + gc.exp(x))), x)]


def run(outputs: object, feed: dict) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return gc.evaluate(list(outputs), feed)  # type: ignore[call-overload]


def test_every_rule_has_a_case():
    CASES.check_coverage()


@pytest.mark.parametrize("name", CASES.names)
def test_golden(name: str):
    CASES.check_golden(name)


@pytest.mark.parametrize("name", CASES.names)
def test_agrees_on_ordinary_inputs(name: str):
    c = CASES[name]
    graph = Graph(c.build(16))
    rng = np.random.default_rng(7)
    feed = {x: rng.uniform(*c.ordinary, x.shape) for x in graph.inputs}
    for got, want in zip(run(stability(graph).outputs, feed), run(graph.outputs, feed), strict=True):
        assert np.all(np.isfinite(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", CASES.names)
def test_accurate_where_naive_is_not(name: str):
    c = CASES[name]
    graph = Graph(c.build(3))
    feed = {x: np.resize(np.array(c.hard), x.shape) for x in graph.inputs}
    naive = run(graph.outputs, feed)[0]
    got = run(stability(graph).outputs, feed)[0]
    want = c.exact(np.array(c.hard))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)  # exp(x - lse(x)): lse's last bit at 1000 is 1e-13
    assert not np.allclose(naive, want, rtol=1e-12, atol=0)  # the rewrite was needed


@pytest.mark.parametrize("name", CASES.names)
def test_idempotent(name: str):
    CASES.check_idempotent(name)


# --- API.md §3: what the whole optimizer promises ----------------------------------------


def test_logsumexp_and_its_gradient_at_1000():
    x = gc.var("x", shape=(2,))
    f = gc.log(gc.sum(gc.exp(x)))
    g = gc.grad(f, x)
    feed = {x: np.array([1000.0, 1000.0])}
    naive = run([f, engine_grad(f, x)], feed)
    assert naive[0] == np.inf and np.all(np.isnan(naive[1]))
    value, grad = run(gc.optimize([f, g]), feed)
    assert value == 1000 + np.log(2)
    np.testing.assert_allclose(grad, [0.5, 0.5], rtol=1e-13, atol=0)  # exp(x - lse): lse's ulp at 1000 is 1e-13
    # gc.grad differentiates the stable form, so its graph is finite before any optimization too
    np.testing.assert_allclose(run([g], feed)[0], [0.5, 0.5], rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    ("build", "x", "want"),
    [
        (lambda x: gc.log(1 + x), [1e-20], [1e-20]),
        (lambda x: gc.log(gc.sigmoid(x)), [-1000.0], [-1000.0]),
        (lambda x: gc.log(gc.softmax(x)), [1000.0, -1000.0], [0.0, -2000.0]),
        (lambda x: gc.exp(x) - 1, [1e-10], [np.expm1(1e-10)]),
        (lambda x: engine_grad(gc.sum(gc.log(gc.softmax(x))), x), [1000.0, -1000.0], [-1.0, 1.0]),
    ],
    ids=["log1p", "log_sigmoid", "log_softmax", "expm1", "grad_log_softmax"],
)
def test_optimize_is_accurate(build: Callable, x: list[float], want: list[float]):
    var = gc.var("x", shape=(len(x),))
    out = build(var)
    feed = {var: np.array(x)}
    got = run(gc.optimize([out]), feed)[0]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    naive = run([out], feed)[0]
    assert not np.allclose(naive, want, rtol=1e-12, atol=0)


def _grad_rows(axis: int) -> Callable:
    def build(x: gc.Tensor) -> gc.Tensor:
        return engine_grad(gc.sum(gc.log(gc.sum(gc.exp(x), axis=axis))), x)

    return build


def _identity_seeded_rows(f: gc.Tensor, x: gc.Tensor) -> gc.Tensor:
    """The batched reverse-mode Jacobian seeded with a dense identity constant (a hand-made batched gradient;
    gc.jacobian seeds structure instead and differentiates the canonical logsumexp, see the test below)."""
    eye = gc.const(np.eye(f.size)).node
    (rows,) = vjp_graph([f.node], [x.node], [eye], nb=1)
    assert rows is not None
    return gc.Tensor(rows)


@pytest.mark.parametrize(
    ("build", "rewritten"),
    [
        (_grad_rows(0), True),
        (_grad_rows(1), True),
        (lambda x: _identity_seeded_rows(gc.log(gc.sum(gc.exp(x), axis=1)), x), True),
        (lambda x: (x[:, :1] / gc.sum(gc.exp(x), axis=1, keepdims=True)) * gc.exp(x), True),
        (lambda x: engine_grad(gc.sum(gc.exp(x) / gc.sum(gc.exp(x), axis=1, keepdims=True)), x), False),
        (lambda x: (x[0] / gc.sum(gc.exp(x), axis=0)) * gc.exp(x), False),  # lines up, but not recognized
        (lambda x: (x[:, 0] / gc.sum(gc.exp(x), axis=1)) * gc.exp(x), False),  # pairs row sums with columns
    ],
    ids=["grad_axis0", "grad_axis1", "jacobian", "keepdims", "grad_softmax", "columns", "misaligned"],
)
def test_softmax_cotangent_only_where_sums_line_up(build: Callable, rewritten: bool):
    x = gc.var("x", shape=(3, 3))
    out = build(x)
    result = stability(Graph([out]))
    assert any(n.op.name == "logsumexp" for n in result.nodes) == rewritten
    feed = {x: np.random.default_rng(3).uniform(-3, 3, (3, 3))}
    np.testing.assert_allclose(run(result.outputs, feed)[0], run([out], feed)[0], rtol=1e-12)


def test_the_structured_jacobian_of_log_sum_exp_is_finite_where_exp_overflows():
    """gc.jacobian canonicalizes log(sum(exp(x))) to logsumexp before differentiating: softmax rows at x = 1000."""
    x = gc.var("x", shape=(3, 3))
    j = gc.jacobian(gc.log(gc.sum(gc.exp(x), axis=1)), x)
    v = np.full((3, 3), 1000.0)
    v[0, 0] = 1001.0
    first = np.exp([1.0, 0.0, 0.0]) / np.sum(np.exp([1.0, 0.0, 0.0]))
    for backend in ("numpy", "llvm"):
        got = gc.compile([x], j, backend=backend)(v)
        np.testing.assert_allclose(got[0, 0], first, rtol=1e-12)  # lse near 1000: its ulp is 1e-13
        np.testing.assert_allclose(got[1, 1], np.full(3, 1 / 3), rtol=1e-12)
        assert np.all(got[0, 1:] == 0) and np.all(got[1, [0, 2]] == 0)


# --- issue 11.3: textbook gradients, value and gradient, both backends -------------------

Z = np.array([-1000.0, -800.0, -40.0, -37.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 37.0, 40.0, 800.0, 1000.0])
LABELS = np.resize(np.array([0.0, 1.0, 0.3]), Z.shape)


def bce_from_probabilities(z: gc.Tensor, y: gc.Tensor) -> gc.Tensor:
    p = gc.sigmoid(z)
    return -gc.sum(y * gc.log(p) + (1 - y) * gc.log(1 - p))


def bce_reference(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The loss, its gradient sigmoid(z) - y = (1 - y) sigmoid(z) - y sigmoid(-z), and that gradient's scale."""
    value = float(np.sum(y * softplus(-z) + (1 - y) * softplus(z)))
    terms = ((1 - y) * sigmoid(z), y * sigmoid(-z))
    return value, terms[0] - terms[1], terms[0] + terms[1]


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
@pytest.mark.parametrize("optimize", [True, False])
def test_bce_from_probabilities(backend: str, optimize: bool):
    """-sum(y log p + (1-y) log(1-p)), p = sigmoid(z): the gradient was NaN from z = 37 on."""
    z = gc.var("z", shape=Z.shape)
    y = gc.var("y", shape=Z.shape)
    loss = bce_from_probabilities(z, y)
    fn = gc.compile([z, y], [loss, gc.grad(loss, z)], backend=backend, optimize=optimize)
    value, g = fn(Z, LABELS)
    want_value, want_g, scale = bce_reference(Z, LABELS)
    if optimize:  # the loss as written overflows; the optimizer's stability pass rewrites it
        np.testing.assert_allclose(value, want_value, rtol=1e-12)
    assert np.all(np.isfinite(g))  # gc.grad differentiated the stable form: no optimizer needed
    # sigmoid(z) - y cancels where sigmoid(z) is near y: relative to the terms' size
    assert np.all(np.abs(g - want_g) <= 1e-12 * scale)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
@pytest.mark.parametrize(
    "build",
    [
        lambda x: gc.log(1 + gc.exp(x)),
        lambda x: gc.log(gc.exp(x) + 1.0),
        lambda x: gc.log1p(gc.exp(x)),
        lambda x: -gc.log(gc.sigmoid(-x)),
        lambda x: -gc.log(1 - gc.sigmoid(x)),
        lambda x: -gc.log(1 - 1 / (1 + gc.exp(-x))),
    ],
    ids=["log_1_plus_exp", "log_exp_plus_1", "log1p_exp", "log_sigmoid", "log_1_minus_sigmoid", "by_hand"],
)
def test_softplus_spellings(backend: str, build: Callable):
    """softplus written six ways: value softplus(x), gradient sigmoid(x), finite and accurate for |x| <= 1000."""
    x = gc.var("x", shape=Z.shape)
    f = gc.sum(build(x))
    fn = gc.compile([x], [f, gc.grad(f, x)], backend=backend)
    value, g = fn(Z)
    np.testing.assert_allclose(value, np.sum(softplus(Z)), rtol=1e-12)
    np.testing.assert_allclose(g, sigmoid(Z), rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_log_of_sigmoid_products_and_quotients(backend: str):
    """log(sigmoid(a) sigmoid(b)), log(p (1 - p)), log(sigmoid(a) / sigmoid(b)): sums of softplus terms."""
    a = gc.var("a", shape=Z.shape)
    b = gc.var("b", shape=Z.shape)
    p = gc.sigmoid(a)
    outs = [gc.log(p * gc.sigmoid(b)), gc.log(p * (1 - p)), gc.log(p / gc.sigmoid(b))]
    fs = [gc.sum(o) for o in outs]
    grads = [gc.grad(f, [a, b]) for f in fs]
    fn = gc.compile([a, b], [*fs, *(g for pair in grads for g in pair)], backend=backend)
    bv = Z[::-1].copy()
    got = fn(Z, bv)
    want_values = [
        -softplus(-Z) - softplus(-bv),
        -softplus(-Z) - softplus(Z),
        -softplus(-Z) + softplus(-bv),
    ]
    want_grads = [
        (sigmoid(-Z), sigmoid(-bv)),
        (-np.tanh(Z / 2), np.zeros_like(bv)),  # sigmoid(-z) - sigmoid(z)
        (sigmoid(-Z), -sigmoid(-bv)),
    ]
    for i in range(3):
        np.testing.assert_allclose(got[i], np.sum(want_values[i]), rtol=1e-12)
        ga, gb = got[3 + 2 * i], got[4 + 2 * i]
        # the second is a difference of two sigmoids: accurate relative to them (their sum is 1), not to it
        atol = 1e-12 if i == 1 else 1e-300
        np.testing.assert_allclose(ga, want_grads[i][0], rtol=1e-12, atol=atol)
        np.testing.assert_allclose(gb, want_grads[i][1], rtol=1e-12, atol=1e-300)


def test_gradient_is_taken_of_the_stable_form():
    """gc.grad canonicalizes first: the graph it returns is finite before any optimization."""
    z = gc.var("z", shape=Z.shape)
    y = gc.var("y", shape=Z.shape)
    loss = bce_from_probabilities(z, y)
    raw = gc.evaluate(engine_grad(loss, z), {z: Z, y: LABELS})
    assert np.isnan(raw).any()  # what the engine gives for the formula as written
    g = gc.evaluate(gc.grad(loss, z), {z: Z, y: LABELS})
    _, want_g, scale = bce_reference(Z, LABELS)
    assert np.all(np.abs(g - want_g) <= 1e-12 * scale)
    ops = {n.op.name for n in Graph([gc.grad(loss, z)]).nodes}
    assert "softplus" not in ops and "sigmoid" in ops  # d softplus = sigmoid; no 1 / (1 - sigmoid)
    (t,) = gc.jvp([loss], [z], [np.ones(Z.shape)])
    assert np.isfinite(gc.evaluate(t, {z: Z, y: LABELS}))
    jac = gc.evaluate(gc.jacobian(gc.log(1 - gc.sigmoid(z)), z, mode="fwd"), {z: Z})
    np.testing.assert_allclose(np.diag(jac), -sigmoid(Z), rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_bce_inside_a_scan_step(backend: str):
    """Loop bodies are canonicalized when traced: the BPTT gradient of a per-step BCE is finite too."""
    zs = gc.var("zs", shape=(4, 3))
    y = np.array([0.0, 1.0, 0.3])

    def step(total, z_t):
        return total + bce_from_probabilities(z_t, gc.const(y)), z_t

    total, _ = gc.scan(step, gc.const(0.0), zs)
    fn = gc.compile([zs], [total, gc.grad(total, zs)], backend=backend)
    zv = np.array([[40.0, -40.0, 800.0], [-800.0, 1.0, -1.0], [1000.0, 1000.0, -1000.0], [0.0, 37.0, -37.0]])
    value, g = fn(zv)
    want_value, want_g, scale = bce_reference(zv, np.broadcast_to(y, zv.shape))
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    assert np.all(np.abs(g - want_g) <= 1e-12 * scale)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_float32_textbook_gradients(backend: str):
    """float32: the same forms, finite everywhere and accurate to float32's rounding."""
    z32 = Z.astype(np.float32)
    z = gc.var("z", shape=Z.shape, dtype="float32")
    y = gc.var("y", shape=Z.shape, dtype="float32")
    loss = bce_from_probabilities(z, y)
    soft = gc.sum(gc.log(1 + gc.exp(z)))
    fn = gc.compile([z, y], [loss, gc.grad(loss, z), soft, gc.grad(soft, z)], backend=backend)
    value, g, soft_value, soft_g = fn(z32, LABELS.astype(np.float32))
    want_value, want_g, scale = bce_reference(Z, LABELS)
    assert value.dtype == np.float32 and g.dtype == np.float32
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    assert np.all(np.abs(g - want_g) <= 1e-6 * scale)
    np.testing.assert_allclose(soft_value, np.sum(softplus(Z)), rtol=1e-6)
    np.testing.assert_allclose(soft_g, sigmoid(Z), rtol=1e-6, atol=1e-38)
