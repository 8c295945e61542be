"""W1: an MLP's mean softmax cross-entropy `tanh(X @ W1 + b1) @ W2 + b2` and its gradients in W1, b1, W2, b2.

Sizes X 256x64, W1 64x128, W2 128x10 (tiny: 16x8, 8x12, 12x5); the labels are an int64
input. The hand NumPy version is the textbook forward and backward pass, checked
against central differences; every system is then checked against it.
Run alone: `graphc bench --only W1 [--quick]`.
"""

from __future__ import annotations

import numpy as np

import graphc as gc
from graphc.bench import checks, harness, peers
from graphc.bench.harness import Case, GraphcBuild, Impl

SIZES = {"tiny": (16, 8, 12, 5), "quick": (256, 64, 128, 10), "full": (256, 64, 128, 10)}


def make_inputs(n: int, d: int, hidden: int, classes: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [
        rng.standard_normal((n, d)),
        rng.integers(0, classes, n),
        rng.standard_normal((d, hidden)) / np.sqrt(d),
        0.1 * rng.standard_normal(hidden),
        rng.standard_normal((hidden, classes)) / np.sqrt(hidden),
        0.1 * rng.standard_normal(classes),
    ]


def loss_value(x, y, w1, b1, w2, b2) -> float:  # type: ignore[no-untyped-def]
    logits = np.tanh(x @ w1 + b1) @ w2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def numpy_forward_backward(x, y, w1, b1, w2, b2):  # type: ignore[no-untyped-def]
    """Loss and the four gradients, by hand: softmax minus one-hot, back through tanh."""
    n = x.shape[0]
    rows = np.arange(n)
    h = np.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = -(shifted[rows, y] - np.log(s[:, 0])).mean()
    dz = e / s
    dz[rows, y] -= 1.0
    dz /= n
    da = (dz @ w2.T) * (1.0 - h * h)
    return loss, x.T @ da, da.sum(axis=0), h.T @ dz, dz.sum(axis=0)


def graphc_build(n: int, d: int, hidden: int, classes: int) -> GraphcBuild:
    x, y = gc.var("X", (n, d)), gc.var("y", (n,), dtype="int64")
    w1, b1 = gc.var("W1", (d, hidden)), gc.var("b1", (hidden,))
    w2, b2 = gc.var("W2", (hidden, classes)), gc.var("b2", (classes,))
    logits = gc.tanh(x @ w1 + b1) @ w2 + b2
    loss = -gc.mean(gc.sum(gc.one_hot(y, classes) * gc.log_softmax(logits), axis=1))
    return GraphcBuild([x, y, w1, b1, w2, b2], loss, gc.grad(loss, [w1, b1, w2, b2]))


def jax_fn(jax):  # type: ignore[no-untyped-def]
    jnp = jax.numpy

    def loss(w1, b1, w2, b2, x, y):  # type: ignore[no-untyped-def]
        logp = jax.nn.log_softmax(jnp.tanh(x @ w1 + b1) @ w2 + b2)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    value_and_grad = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))

    def f(x, y, w1, b1, w2, b2):  # type: ignore[no-untyped-def]
        value, grads = value_and_grad(w1, b1, w2, b2, x, y)
        return (value, *grads)

    return f


def torch_fn(torch, x, y, w1, b1, w2, b2):  # type: ignore[no-untyped-def]
    loss = torch.nn.functional.cross_entropy(torch.tanh(x @ w1 + b1) @ w2 + b2, y)
    return (loss.detach(), *torch.autograd.grad(loss, [w1, b1, w2, b2]))


def pytensor_build(pytensor):  # type: ignore[no-untyped-def]
    pt = pytensor.tensor
    x, y, w1, b1, w2, b2 = pt.dmatrix("X"), pt.lvector("y"), pt.dmatrix(), pt.dvector(), pt.dmatrix(), pt.dvector()
    logp = pt.special.log_softmax(pt.tanh(x @ w1 + b1) @ w2 + b2, axis=1)
    loss = -logp[pt.arange(y.shape[0]), y].mean()
    return [x, y, w1, b1, w2, b2], [loss, *pytensor.grad(loss, [w1, b1, w2, b2])]


def cases(options: harness.Options) -> list[Case]:
    sizes = SIZES[options.scale]
    inputs = make_inputs(*sizes)
    expected = numpy_forward_backward(*inputs)
    checks.check_directional(lambda *p: loss_value(*inputs[:2], *p), inputs[2:], expected[1:])
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_forward_backward(*inputs)),
        *harness.graphc_impls(options, lambda: graphc_build(*sizes), inputs),
        Impl(peers.JAX, peers.jax_setup(jax_fn, inputs), requires="jax"),
        Impl(
            peers.TORCH, peers.torch_setup(torch_fn, inputs, [False, False, True, True, True, True]), requires="torch"
        ),
        Impl(peers.PYTENSOR, peers.pytensor_setup(pytensor_build, inputs), requires="pytensor"),
    ]
    n, d, hidden, classes = sizes
    return [Case("W1", f"MLP {n}x{d}x{hidden}x{classes}", tuple(expected), impls)]
