"""ODE: RK4 over s steps in one gc.scan, the primal state and the gradient of its last entry (GradBench `ode`).

GradBench's `ode` (from cmpad's `an_ode`): y_0' = x_0, y_i' = x_i y_{i-1} for i > 0, from
y(0) = 0 to t = 2 by s classic Runge-Kutta steps of h = 2 / s. The primal is the final
state y (n,); the gradient is d y_{n-1} / dx (n,). The right-hand side is elementwise
apart from the shift y_{i-1} (a slice and a concatenation), so each step is four cheap
passes over the state: the shape where per-step overhead and unfused bodies show.
Sizes n = 10^3, 10^4, 10^5 and s = 1, 10, 100 (quick: n = 10^3, 10^5 and s = 10, 100;
tiny: n = 5, s = 3); x is uniform in [0.5, 1.5] (seeded).

Baselines: the loop in NumPy, and its gradient by hand in reverse mode (the states
stored forward, the stages recomputed and transposed backward), checked against central
differences. JAX runs lax.fori_loop under jit (jax.grad for the gradient). graphc
builds the step once in gc.scan. Run alone: `graphc bench --only ODE [--quick]`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

import graphc as gc
from graphc.bench import checks, harness, peers
from graphc.bench.harness import Case, GraphcBuild, Impl

T_FINAL = 2.0
SIZES = {
    "tiny": ((5,), (3,)),
    "quick": ((1_000, 100_000), (10, 100)),
    "full": ((1_000, 10_000, 100_000), (1, 10, 100)),
}
"""scale -> (the state sizes n, the step counts s)."""


def make_input(n: int) -> np.ndarray:
    return np.random.default_rng(5).uniform(0.5, 1.5, n)


# --- NumPy: the loop, and its gradient by hand in reverse mode ------------------------------------


def _shift(y: np.ndarray) -> np.ndarray:
    """[1, y_0, ..., y_{n-2}]: the factor x_i multiplies in y_i' (1 for i = 0)."""
    return np.concatenate([np.ones(1), y[:-1]])


def _shift_t(u: np.ndarray) -> np.ndarray:
    """The transpose of _shift on its y part: [u_1, ..., u_{n-1}, 0]."""
    return np.concatenate([u[1:], np.zeros(1)])


def _stages(x: np.ndarray, y: np.ndarray, h: float) -> tuple[np.ndarray, ...]:
    """The stage states y1 = y, y2, y3, y4 and the slopes k1..k4 of one RK4 step."""
    k1 = x * _shift(y)
    y2 = y + (h / 2) * k1
    k2 = x * _shift(y2)
    y3 = y + (h / 2) * k2
    k3 = x * _shift(y3)
    y4 = y + h * k3
    k4 = x * _shift(y4)
    return y, y2, y3, y4, k1, k2, k3, k4


def numpy_primal(x: np.ndarray, s: int) -> np.ndarray:
    """The final state after s RK4 steps from 0."""
    h = T_FINAL / s
    y = np.zeros_like(x)
    for _ in range(s):
        *_, k1, k2, k3, k4 = _stages(x, y, h)
        y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


def numpy_gradient(x: np.ndarray, s: int) -> np.ndarray:
    """d y_{n-1} / dx: the states stored forward, each step's stages recomputed and transposed backward."""
    h = T_FINAL / s
    ys = [np.zeros_like(x)]
    for _ in range(s):
        *_, k1, k2, k3, k4 = _stages(x, ys[-1], h)
        ys.append(ys[-1] + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4))
    xbar = np.zeros_like(x)
    ybar = np.zeros_like(x)
    ybar[-1] = 1.0
    for t in range(s - 1, -1, -1):
        y1, y2, y3, y4, *_ = _stages(x, ys[t], h)
        k1b, k2b, k3b, k4b = (h / 6) * ybar, (h / 3) * ybar, (h / 3) * ybar, (h / 6) * ybar
        xbar += k4b * _shift(y4)
        y4b = _shift_t(x * k4b)
        k3b = k3b + h * y4b
        xbar += k3b * _shift(y3)
        y3b = _shift_t(x * k3b)
        k2b = k2b + (h / 2) * y3b
        xbar += k2b * _shift(y2)
        y2b = _shift_t(x * k2b)
        k1b = k1b + (h / 2) * y2b
        xbar += k1b * _shift(y1)
        ybar = ybar + y4b + y3b + y2b + _shift_t(x * k1b)
    return xbar


# --- graphc and JAX ----------------------------------------------------------------------------------


def graphc_final_state(x: gc.Tensor, s: int) -> gc.Tensor:
    """The final state: one gc.scan of s RK4 steps, the right-hand side traced once."""
    h = T_FINAL / s
    one = gc.const(np.ones(1))

    def rhs(y: gc.Tensor) -> gc.Tensor:
        return x * gc.concatenate([one, y[:-1]])

    def step(y: gc.Tensor, _: None) -> tuple[gc.Tensor, None]:
        k1 = rhs(y)
        k2 = rhs(y + (h / 2) * k1)
        k3 = rhs(y + (h / 2) * k2)
        k4 = rhs(y + h * k3)
        return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4), None

    y, _ = gc.scan(step, gc.const(np.zeros(x.shape)), None, length=s)
    return y


def graphc_build(n: int, s: int, gradient: bool) -> GraphcBuild:
    x = gc.var("x", (n,))
    y = graphc_final_state(x, s)
    if gradient:
        return GraphcBuild([x], y, [gc.grad(y[-1], x)], with_value=False)
    return GraphcBuild([x], y, [])


def jax_fn(s: int, gradient: bool) -> Any:
    """The same loop as lax.fori_loop (jax.grad of its last entry for the gradient)."""

    def make(jax: Any) -> Any:
        jnp = jax.numpy
        h = T_FINAL / s

        def primal(x: Any) -> Any:
            def rhs(y: Any) -> Any:
                return x * jnp.concatenate([jnp.ones(1), y[:-1]])

            def body(_: Any, y: Any) -> Any:
                k1 = rhs(y)
                k2 = rhs(y + (h / 2) * k1)
                k3 = rhs(y + (h / 2) * k2)
                k4 = rhs(y + h * k3)
                return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)

            return jax.lax.fori_loop(0, s, body, jnp.zeros_like(x))

        if gradient:
            return jax.grad(lambda x: primal(x)[-1])
        return primal

    return make


def cases(options: harness.Options) -> list[Case]:
    sizes, steps = SIZES[options.scale]
    result = []
    for n in sizes:
        x = make_input(n)
        for s in steps:
            primal = numpy_primal(x, s)
            grad = numpy_gradient(x, s)
            checks.check_directional(lambda v, s=s: float(numpy_primal(v, s)[-1]), [x], [grad])
            for gradient, expected in ((False, primal), (True, grad)):
                what = "gradient" if gradient else "primal"
                reference = numpy_gradient if gradient else numpy_primal
                impls = [
                    Impl(harness.NUMPY, partial(partial, reference, x, s)),
                    *harness.graphc_impls(options, partial(graphc_build, n, s, gradient), [x], note="gc.scan"),
                    Impl(peers.JAX, peers.jax_setup(jax_fn(s, gradient), [x]), note="lax.fori_loop", requires="jax"),
                ]
                label = f"RK4 {what}, n={harness.size_label(n)} s={s}"
                result.append(Case("ODE", label, (expected,), impls, rtol=1e-10))
    return result
