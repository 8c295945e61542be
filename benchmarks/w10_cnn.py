"""W10: a small convolutional net's mean cross-entropy and its six gradients, on a batch of 8x8 images.

conv(1 -> 16, 3x3, padding 1) + bias, ReLU, 2x2 max pooling, conv(16 -> 32, 3x3, padding 1)
+ bias, ReLU, 2x2 max pooling, dense 128 -> 10 (examples/train_cnn_digits.py's net), batch
64 (tiny: batch 4, channels 2 and 4). The hand NumPy version is the textbook im2col
forward and backward pass (the windows by sliding_window_view, one matmul per
convolution and per gradient, col2im by nine strided additions), checked against a
central difference; every system is then checked against it. PyTorch runs eagerly
(torch.nn.functional), JAX under jit(value_and_grad) with lax.conv_general_dilated and
reduce_window. The pre-activations are almost surely not tied inside a pooling window,
so the systems' different tie rules do not show.
Run alone: `python -m benchmarks.w10_cnn [--quick]`.
"""

from __future__ import annotations

import sys

import numpy as np

import graphc as gc
from benchmarks import checks, harness, peers
from benchmarks.harness import Case, GraphcBuild, Impl

SIZES = {"tiny": (4, 2, 4), "quick": (64, 16, 32), "full": (64, 16, 32)}  # batch, channels of the two convolutions
CLASSES = 10


def make_inputs(batch: int, first: int, second: int) -> list[np.ndarray]:
    """Images in [0, 1), labels, and He-scaled weights with small biases."""
    rng = np.random.default_rng(10)
    return [
        rng.random((batch, 1, 8, 8)),
        rng.integers(0, CLASSES, batch),
        rng.standard_normal((first, 1, 3, 3)) * np.sqrt(2 / 9),
        0.1 * rng.standard_normal(first),
        rng.standard_normal((second, first, 3, 3)) * np.sqrt(2 / (9 * first)),
        0.1 * rng.standard_normal(second),
        rng.standard_normal((4 * second, CLASSES)) / np.sqrt(4 * second),
        0.1 * rng.standard_normal(CLASSES),
    ]


# --- the hand-written NumPy version -------------------------------------------------------------------


def columns(x: np.ndarray) -> np.ndarray:
    """The 3x3 windows of x (N, C, H, W) zero-padded by 1, as (C*9, N*H*W)."""
    n, c, h, w = x.shape
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), (2, 3))
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(c * 9, n * h * w)


def image_of(cols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """col2im: the (C*9, N*H*W) columns summed back onto x's (N, C, H, W) pixels."""
    n, c, h, w = shape
    taps = cols.reshape(c, 3, 3, n, h, w).transpose(3, 0, 1, 2, 4, 5)
    padded = np.zeros((n, c, h + 2, w + 2))
    for i in range(3):
        for j in range(3):
            padded[:, :, i : i + h, j : j + w] += taps[:, :, i, j]
    return padded[:, :, 1:-1, 1:-1]


def conv_forward(x: np.ndarray, k: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = columns(x)
    out = (k.reshape(k.shape[0], -1) @ cols).reshape(k.shape[0], x.shape[0], *x.shape[2:]).transpose(1, 0, 2, 3)
    return out + c[:, None, None], cols


def conv_backward(dout: np.ndarray, x_shape: tuple[int, ...], k: np.ndarray, cols: np.ndarray) -> tuple:
    flat = dout.transpose(1, 0, 2, 3).reshape(k.shape[0], -1)
    dk = (flat @ cols.T).reshape(k.shape)
    dx = image_of(k.reshape(k.shape[0], -1).T @ flat, x_shape)
    return dx, dk, dout.sum(axis=(0, 2, 3))


def pool_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max pooling and the share of each window's gradient per element (split evenly at ties)."""
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = windows.max(axis=(3, 5))
    hit = windows == out[:, :, :, None, :, None]
    return out, hit / hit.sum(axis=(3, 5), keepdims=True)


def pool_backward(dout: np.ndarray, share: np.ndarray) -> np.ndarray:
    n, c, h, _, w, _ = share.shape
    return (share * dout[:, :, :, None, :, None]).reshape(n, c, 2 * h, 2 * w)


def numpy_forward_backward(x, y, k1, c1, k2, c2, w, b):  # type: ignore[no-untyped-def]
    """The loss and the gradients of k1, c1, k2, c2, w, b."""
    n = x.shape[0]
    z1, cols1 = conv_forward(x, k1, c1)
    a1 = np.maximum(z1, 0.0)
    p1, share1 = pool_forward(a1)
    z2, cols2 = conv_forward(p1, k2, c2)
    a2 = np.maximum(z2, 0.0)
    p2, share2 = pool_forward(a2)
    flat = p2.reshape(n, -1)
    logits = flat @ w + b
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = -(shifted[rows, y] - np.log(s[:, 0])).mean()
    dz = e / s
    dz[rows, y] -= 1.0
    dz /= n
    dw, db = flat.T @ dz, dz.sum(axis=0)
    da2 = pool_backward((dz @ w.T).reshape(p2.shape), share2) * (z2 > 0)
    dp1, dk2, dc2 = conv_backward(da2, p1.shape, k2, cols2)
    da1 = pool_backward(dp1, share1) * (z1 > 0)
    _, dk1, dc1 = conv_backward(da1, x.shape, k1, cols1)
    return loss, dk1, dc1, dk2, dc2, dw, db


def loss_value(*inputs: np.ndarray) -> float:
    return float(numpy_forward_backward(*inputs)[0])


# --- graphc and the peers --------------------------------------------------------------------------


def graphc_build(batch: int, first: int, second: int) -> GraphcBuild:
    x, y = gc.var("x", (batch, 1, 8, 8)), gc.var("y", (batch,), dtype="int64")
    k1, c1 = gc.var("K1", (first, 1, 3, 3)), gc.var("c1", (first,))
    k2, c2 = gc.var("K2", (second, first, 3, 3)), gc.var("c2", (second,))
    w, b = gc.var("W", (4 * second, CLASSES)), gc.var("b", (CLASSES,))
    h = gc.nn.max_pool2d(gc.relu(gc.nn.conv2d(x, k1, padding=1, bias=c1)), 2)
    h = gc.nn.max_pool2d(gc.relu(gc.nn.conv2d(h, k2, padding=1, bias=c2)), 2)
    logits = gc.reshape(h, (batch, -1)) @ w + b
    loss = -gc.mean(gc.sum(gc.one_hot(y, CLASSES) * gc.log_softmax(logits), axis=1))
    params = [k1, c1, k2, c2, w, b]
    return GraphcBuild([x, y, *params], loss, gc.grad(loss, params))


def jax_fn(jax):  # type: ignore[no-untyped-def]
    jnp, lax = jax.numpy, jax.lax

    def block(h, k, c):  # type: ignore[no-untyped-def]
        z = lax.conv_general_dilated(h, k, (1, 1), ((1, 1), (1, 1))) + c[:, None, None]
        return lax.reduce_window(jnp.maximum(z, 0.0), -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss(k1, c1, k2, c2, w, b, x, y):  # type: ignore[no-untyped-def]
        h = block(block(x, k1, c1), k2, c2)
        logp = jax.nn.log_softmax(h.reshape(x.shape[0], -1) @ w + b)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    value_and_grad = jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4, 5))

    def f(x, y, *params):  # type: ignore[no-untyped-def]
        value, grads = value_and_grad(*params, x, y)
        return (value, *grads)

    return f


def torch_fn(torch, x, y, k1, c1, k2, c2, w, b):  # type: ignore[no-untyped-def]
    functional = torch.nn.functional
    h = functional.max_pool2d(torch.relu(functional.conv2d(x, k1, c1, padding=1)), 2)
    h = functional.max_pool2d(torch.relu(functional.conv2d(h, k2, c2, padding=1)), 2)
    loss = functional.cross_entropy(h.reshape(x.shape[0], -1) @ w + b, y)
    return (loss.detach(), *torch.autograd.grad(loss, [k1, c1, k2, c2, w, b]))


def cases(options: harness.Options) -> list[Case]:
    sizes = SIZES[options.scale]
    inputs = make_inputs(*sizes)
    expected = numpy_forward_backward(*inputs)
    checks.check_directional(lambda *p: loss_value(*inputs[:2], *p), inputs[2:], expected[1:])
    impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_forward_backward(*inputs)),
        *harness.graphc_impls(lambda: graphc_build(*sizes), inputs),
        Impl(peers.JAX, peers.jax_setup(jax_fn, inputs), requires="jax"),
        Impl(peers.TORCH, peers.torch_setup(torch_fn, inputs, [False, False, *[True] * 6]), requires="torch"),
    ]
    batch, first, second = sizes
    label = f"CNN batch {batch}, conv 1->{first}->{second} 3x3, pool 2x2, dense {4 * second}->{CLASSES}"
    return [Case("W10", label, tuple(expected), impls)]


if __name__ == "__main__":
    from graphc.cli import main

    sys.exit(main(["bench", "--only", "W10", *sys.argv[1:]]))
