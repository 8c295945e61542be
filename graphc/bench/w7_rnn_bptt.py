"""W7: a vanilla RNN `h = tanh(h @ W + x_t @ U + b)` from h = 0, loss mean(h_T^2), gradients in W, U, b (BPTT).

T = 50, batch 32, hidden 64, input 16 (tiny: 4, 3, 5, 2). graphc uses gc.scan when it
exists and works; otherwise the step is unrolled in Python (T copies in the graph) and
the run's notes say so. The hand NumPy version runs the forward loop storing every h,
the backward loop storing every pre-activation gradient, then forms the weight
gradients with one matmul each; it is checked against central differences. JAX uses
lax.scan under jit(value_and_grad), PyTorch an eager Python loop, PyTensor scan.
Run alone: `graphc bench --only W7 [--quick]`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

import graphc as gc
from graphc.bench import checks, harness, peers
from graphc.bench.harness import Case, GraphcBuild, Impl

SIZES = {"tiny": (4, 3, 5, 2), "quick": (50, 32, 64, 16), "full": (50, 32, 64, 16)}


def make_inputs(steps: int, batch: int, hidden: int, inputs: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        rng.standard_normal((steps, batch, inputs)),
        rng.standard_normal((hidden, hidden)) / np.sqrt(hidden),
        rng.standard_normal((inputs, hidden)) / np.sqrt(inputs),
        0.1 * rng.standard_normal(hidden),
    ]


def numpy_forward(xs: np.ndarray, w: np.ndarray, u: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All hidden states h_0 = 0, ..., h_T, with x_t @ U + b for every t done as one matmul."""
    steps, batch, n_in = xs.shape
    drive = (xs.reshape(-1, n_in) @ u + b).reshape(steps, batch, -1)
    hs = np.zeros((steps + 1, batch, w.shape[0]))
    for t in range(steps):
        hs[t + 1] = np.tanh(hs[t] @ w + drive[t])
    return hs


def loss_value(xs: np.ndarray, w: np.ndarray, u: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(numpy_forward(xs, w, u, b)[-1] ** 2))


def numpy_forward_backward(xs, w, u, b):  # type: ignore[no-untyped-def]
    """Loss and the gradients in W, U, b: a backward loop over the stored states, then one matmul each."""
    hs = numpy_forward(xs, w, u, b)
    steps, batch, n_in = xs.shape
    hidden = w.shape[0]
    dh = 2.0 * hs[-1] / hs[-1].size
    das = np.empty((steps, batch, hidden))
    for t in range(steps - 1, -1, -1):
        das[t] = dh * (1.0 - hs[t + 1] ** 2)
        dh = das[t] @ w.T
    flat = das.reshape(-1, hidden)
    gw = hs[:-1].reshape(-1, hidden).T @ flat
    gu = xs.reshape(-1, n_in).T @ flat
    return np.mean(hs[-1] ** 2), gw, gu, flat.sum(axis=0)


def graphc_build(steps: int, batch: int, hidden: int, n_in: int, use_scan: bool) -> GraphcBuild:
    xs = gc.var("xs", (steps, batch, n_in))
    w, u, b = gc.var("W", (hidden, hidden)), gc.var("U", (n_in, hidden)), gc.var("b", (hidden,))
    h = gc.const(np.zeros((batch, hidden)))
    if use_scan:

        def step(carry: gc.Tensor, x_t: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
            new = gc.tanh(carry @ w + x_t @ u + b)
            return new, new

        h, _ = gc.scan(step, h, xs)
    else:
        for t in range(steps):
            h = gc.tanh(h @ w + xs[t] @ u + b)
    loss = gc.mean(h * h)
    return GraphcBuild([xs, w, u, b], loss, gc.grad(loss, [w, u, b]))


@cache
def scan_status(backend: str) -> tuple[bool, str]:
    """(use gc.scan?, the note): scan is used when it exists, compiles with `backend` and matches hand NumPy."""
    if not hasattr(gc, "scan"):
        return False, "gc.scan does not exist yet: the RNN is unrolled in Python (T copies of the step)"
    if harness.unavailable("llvm" if backend == "llvm" else None) is not None:
        return False, "the backend is not available"
    sizes = SIZES["tiny"]
    inputs = make_inputs(*sizes)
    try:
        scanned = graphc_build(*sizes, use_scan=True)
        fn = gc.compile(scanned.inputs, scanned.outputs, backend=backend, cache=False)
        checks.verify(fn(*inputs), tuple(numpy_forward_backward(*inputs)), 1e-9)
    except Exception as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return False, f"gc.scan does not work here yet ({type(e).__name__}: {why}): unrolled in Python"
    return True, "gc.scan: one loop, BPTT as a reverse loop"


def graphc_impl(
    options: harness.Options, backend: str, sizes: tuple[int, int, int, int], inputs: list[np.ndarray]
) -> Impl:
    use_scan, note = scan_status(backend)
    return harness.graphc_impl(options, backend, lambda: graphc_build(*sizes, use_scan=use_scan), inputs, note=note)


def jax_fn(jax: Any) -> Any:
    jnp = jax.numpy

    def loss(w: Any, u: Any, b: Any, xs: Any) -> Any:
        def step(h: Any, x_t: Any) -> tuple[Any, None]:
            return jnp.tanh(h @ w + x_t @ u + b), None

        h, _ = jax.lax.scan(step, jnp.zeros((xs.shape[1], w.shape[0])), xs)
        return jnp.mean(h * h)

    value_and_grad = jax.value_and_grad(loss, argnums=(0, 1, 2))

    def f(xs: Any, w: Any, u: Any, b: Any) -> Any:
        value, grads = value_and_grad(w, u, b, xs)
        return (value, *grads)

    return f


def torch_fn(torch: Any, xs: Any, w: Any, u: Any, b: Any) -> tuple[Any, ...]:
    h = torch.zeros((xs.shape[1], w.shape[0]), dtype=xs.dtype)
    for x_t in xs:
        h = torch.tanh(h @ w + x_t @ u + b)
    loss = torch.mean(h * h)
    return (loss.detach(), *torch.autograd.grad(loss, [w, u, b]))


def pytensor_build(pytensor: Any) -> tuple[list[Any], list[Any]]:
    pt = pytensor.tensor
    xs, w, u, b = pt.tensor3("xs", dtype="float64"), pt.dmatrix("W"), pt.dmatrix("U"), pt.dvector("b")
    h0 = pt.zeros((xs.shape[1], w.shape[0]))
    hs = pytensor.scan(lambda x_t, h: pt.tanh(h @ w + x_t @ u + b), sequences=xs, outputs_info=h0, return_updates=False)
    loss = pt.mean(hs[-1] ** 2)
    return [xs, w, u, b], [loss, *pytensor.grad(loss, [w, u, b])]


def cases(options: harness.Options) -> list[Case]:
    sizes = SIZES[options.scale]
    inputs = make_inputs(*sizes)
    expected = numpy_forward_backward(*inputs)
    checks.check_directional(lambda *p: loss_value(inputs[0], *p), inputs[1:], expected[1:])
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_forward_backward(*inputs)),
        graphc_impl(options, "numpy", sizes, inputs),
        graphc_impl(options, "llvm", sizes, inputs),
        Impl(peers.JAX, peers.jax_setup(jax_fn, inputs), note="lax.scan", requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, inputs, [False, True, True, True]), requires="torch"),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build, inputs), note="scan", requires="pytensor"),
    ]
    steps, batch, hidden, n_in = sizes
    result = Case("W7", f"RNN T={steps} B={batch} H={hidden} I={n_in}", tuple(expected), impls)
    for backend in ("numpy", "llvm"):
        if harness.unavailable("llvm" if backend == "llvm" else None) is None:
            result.notes.append(f"W7, graphc {backend}: {scan_status(backend)[1]}")
    return [result]
