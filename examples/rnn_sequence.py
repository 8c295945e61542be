"""Recurrent backpropagation: an RNN with gc.scan, and an equilibrium model with gc.fixed_point.

1. gc.scan: an Elman RNN reads sine waves of random frequency and phase and predicts each
   next value. `gc.scan(step, h0, xs)` traces `step` once into a single loop node;
   gc.grad differentiates it by backpropagation through time (a reverse loop over the
   stored hidden states). The loss must fall well below the "repeat the last value"
   baseline, which it can only do by inferring each wave's frequency from its past.
2. gc.fixed_point: an equilibrium layer z* = tanh(z* W + x U + b) (W scaled to be a
   contraction) fitted to y = sin(3x). The gradient comes from implicit differentiation
   (Almeida-Pineda): it solves the adjoint fixed-point equation instead of unrolling the
   solver, so memory does not grow with the number of iterations.

Adam, written in NumPy, takes the steps; the loss prints as training goes. Needs NumPy
and graphc only (matplotlib for --plot).

    python examples/rnn_sequence.py
    python examples/rnn_sequence.py --iters 100 --backend numpy --plot rnn.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import add_backend_flag, compile_with_fallback, count, pick_backend, require

import graphc as gc
from graphc.testing import check_grad

STEPS = 40  # sequence length
BATCH = 32
HIDDEN = 24
WARMUP = 5  # steps before the loss counts: the RNN needs a few values to see the frequency


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=count, default=400, help="Adam steps for the RNN (default 400)")
    parser.add_argument(
        "--fp-iters", type=count, default=300, help="Adam steps for the equilibrium model (default 300)"
    )
    add_backend_flag(parser)
    parser.add_argument("--plot", metavar="PATH", default=None, help="also plot both loss curves (PNG)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args()


class Adam:
    def __init__(self, values: list[np.ndarray], rate: float) -> None:
        self.rate = rate
        self.t = 0
        self.m = [np.zeros_like(v) for v in values]
        self.v = [np.zeros_like(v) for v in values]

    def step(self, values: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.t += 1
        for value, g, m, v in zip(values, grads, self.m, self.v, strict=True):
            m += 0.1 * (g - m)
            v += 0.001 * (g * g - v)
            value -= self.rate * (m / (1 - 0.9**self.t)) / (np.sqrt(v / (1 - 0.999**self.t)) + 1e-8)


def init(params: list[gc.Tensor], rng: np.random.Generator) -> list[np.ndarray]:
    """Weights ~ N(0, 1/fan_in); biases zero."""
    return [rng.normal(0, 1 / np.sqrt(p.shape[0]), p.shape) if p.ndim == 2 else np.zeros(p.shape) for p in params]


# --- 1. gc.scan ---------------------------------------------------------------------------------


def sine_batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (STEPS, BATCH, 1) and targets (the next values) of sine waves with random frequency and phase."""
    omega = rng.uniform(0.15, 0.6, BATCH)
    phase = rng.uniform(0, 2 * np.pi, BATCH)
    t = np.arange(STEPS + 1)[:, None]
    waves = np.sin(omega * t + phase)[:, :, None]
    return waves[:-1], waves[1:]


def build_rnn() -> tuple[list[gc.Tensor], gc.Tensor, gc.Tensor, gc.Tensor]:
    """(params, xs, targets, loss) of an Elman RNN read out linearly at every step."""
    xs = gc.var("xs", shape=(STEPS, BATCH, 1))
    targets = gc.var("targets", shape=(STEPS, BATCH, 1))
    W = gc.var("W", shape=(HIDDEN, HIDDEN))
    U = gc.var("U", shape=(1, HIDDEN))
    b = gc.var("b", shape=(HIDDEN,))
    V = gc.var("V", shape=(HIDDEN, 1))
    c = gc.var("c", shape=(1,))

    def step(h: gc.Tensor, x_t: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = gc.tanh(h @ W + x_t @ U + b)
        return h, h @ V + c  # (new carry, this step's prediction)

    h0 = gc.const(np.zeros((BATCH, HIDDEN)))
    _, predictions = gc.scan(step, h0, xs)
    loss = gc.mean((predictions[WARMUP:] - targets[WARMUP:]) ** 2)
    return [W, U, b, V, c], xs, targets, loss


def train_rnn(backend: str, iters: int, rng: np.random.Generator) -> list[float]:
    params, xs, targets, loss = build_rnn()
    start = time.perf_counter()
    step_fn = compile_with_fallback([xs, targets, *params], [loss, *gc.grad(loss, params)], backend)
    print(f"compiled the scan loop and its BPTT gradient ({step_fn.backend}) in {time.perf_counter() - start:.2f} s")
    values = init(params, rng)
    values[0] *= 0.5  # a gentle recurrence to start from
    adam = Adam(values, rate=0.01)
    test_x, test_y = sine_batch(np.random.default_rng(12345))
    baseline = float(np.mean((test_x[WARMUP:] - test_y[WARMUP:]) ** 2))
    print(f"baseline (predict the last value): mean squared error {baseline:.5f}")
    losses = []
    for it in range(iters):
        batch_x, batch_y = sine_batch(rng)
        value, *grads = step_fn(batch_x, batch_y, *values)
        adam.step(values, grads)
        losses.append(float(value))
        if it % max(1, iters // 8) == 0 or it == iters - 1:
            print(f"step {it:4d}  loss {losses[-1]:.5f}")
    test_loss = float(step_fn(test_x, test_y, *values)[0])
    print(f"held-out loss {test_loss:.5f} vs baseline {baseline:.5f} ({baseline / test_loss:.1f}x lower)")
    return losses


# --- 2. gc.fixed_point ------------------------------------------------------------------------------


def build_equilibrium(points: int, hidden: int) -> tuple[list[gc.Tensor], gc.Tensor, gc.Tensor, gc.Tensor]:
    """(params, x, y, loss): z* = tanh(z* W + x U + b), prediction z* V + c, mean squared error."""
    x = gc.var("x", shape=(points, 1))
    y = gc.var("y", shape=(points, 1))
    A = gc.var("A", shape=(hidden, hidden))
    U = gc.var("U", shape=(1, hidden))
    b = gc.var("b", shape=(hidden,))
    V = gc.var("V", shape=(hidden, 1))
    c = gc.var("c", shape=(1,))
    W = 0.9 * gc.tanh(A) / hidden  # every row sums to < 0.9 in absolute value: a contraction
    drive = x @ U + b  # computed once, outside the iteration
    z0 = gc.const(np.zeros((points, hidden)))
    z = gc.fixed_point(lambda z, W, drive: gc.tanh(z @ W + drive), z0, W, drive, tol=1e-10, max_iter=500)
    loss = gc.mean((z @ V + c - y) ** 2)
    return [A, U, b, V, c], x, y, loss


def check_implicit_gradient(rng: np.random.Generator) -> None:
    """The implicit-differentiation gradient against central finite differences, on a small instance."""
    params, x, y, loss = build_equilibrium(points=6, hidden=4)
    feed = {x: rng.uniform(-1, 1, (6, 1)), y: rng.uniform(-1, 1, (6, 1))}
    feed.update(zip(params, init(params, rng), strict=True))
    worst = check_grad(loss, params, feed, rtol=1e-5, atol=1e-7)
    print(f"graphc.testing.check_grad: implicit gradient vs finite differences, largest difference {worst:.1e}")


def train_equilibrium(backend: str, iters: int, rng: np.random.Generator) -> list[float]:
    check_implicit_gradient(rng)
    xv = np.linspace(-1, 1, 64)[:, None]
    yv = np.sin(3 * xv)
    params, x, y, loss = build_equilibrium(len(xv), hidden=16)
    step_fn = compile_with_fallback([x, y, *params], [loss, *gc.grad(loss, params)], backend)
    values = init(params, rng)
    values[1] *= 3.0  # spread the input weights so tanh units cover [-1, 1]
    adam = Adam(values, rate=0.02)
    losses = []
    for it in range(iters):
        value, *grads = step_fn(xv, yv, *values)
        adam.step(values, grads)
        losses.append(float(value))
        if it % max(1, iters // 6) == 0 or it == iters - 1:
            print(f"step {it:4d}  loss {losses[-1]:.5f}")
    if not losses:
        print(f"equilibrium model: not trained (--fp-iters 0); variance of y {yv.var():.3f}")
        return losses
    print(f"equilibrium model: mean squared error {losses[0]:.5f} -> {losses[-1]:.5f} (variance of y {yv.var():.3f})")
    return losses


def plot(rnn: list[float], fixed: list[float], path: Path) -> None:
    matplotlib = require("matplotlib", "matplotlib", "the --plot picture")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    left.plot(rnn)
    left.set(xlabel="Adam step", ylabel="mean squared error", title="gc.scan RNN (BPTT)")
    right.plot(fixed, color="tab:orange")
    right.set(xlabel="Adam step", title="gc.fixed_point (implicit)")
    for axes, losses in ((left, rnn), (right, fixed)):
        if losses:  # a log axis of nothing has no limits
            axes.set_yscale("log")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    args = parse_args()
    if args.plot:
        require("matplotlib", "matplotlib", "the --plot picture")
    backend = pick_backend(args.backend)
    rng = np.random.default_rng(args.seed)
    print("== 1. gc.scan: predict the next value of a sine wave, trained by backpropagation through time")
    rnn = train_rnn(backend, args.iters, rng)
    print("\n== 2. gc.fixed_point: an equilibrium layer, trained by implicit differentiation")
    fixed = train_equilibrium(backend, args.fp_iters, rng)
    if args.plot:
        plot(rnn, fixed, Path(args.plot))


if __name__ == "__main__":
    main()
