"""W7 in detail: RNN BPTT through gc.scan on the numpy backend vs hand-written NumPy, and the memory
of recurrent backpropagation (scan checkpointing, fixed_point gradients vs iteration count).

W7: h = tanh(h @ W + x_t @ U + b) from h = 0, loss mean(h_T^2), gradients in W, U, b; T = 50,
batch 32, hidden 64, input 16, float64. Two hand-written baselines, both checked against
central differences: the textbook per-step BPTT (store every h, one backward loop) and the
batched one (x_t @ U for all t as one matmul, weight gradients as one matmul each after the
loop). Every system is verified first, then timed in the same run, interleaved (one call of
each in turn), and the medians compared.

Memory: tracemalloc peak of one compiled gradient call — for scan with checkpoint=k, and for
fixed_point gradients of z = c cos(z) + p whose iteration count grows as c -> 1.

Run: `python -m benchmarks.w7_rnn [--quick]` from the repository root.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

import graphc as gc

SIZES = (50, 32, 64, 16)  # T, batch, hidden, input


def make_inputs(steps: int, batch: int, hidden: int, n_in: int, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((steps, batch, n_in)),
        rng.standard_normal((hidden, hidden)) / np.sqrt(hidden),
        rng.standard_normal((n_in, hidden)) / np.sqrt(n_in),
        0.1 * rng.standard_normal(hidden),
    ]


def hand_per_step(xs, w, u, b):  # type: ignore[no-untyped-def]
    """The textbook BPTT: store every h, then one backward loop accumulating the weight gradients."""
    h = np.zeros((xs.shape[1], w.shape[0]))
    hs = [h]
    for x in xs:
        h = np.tanh(h @ w + x @ u + b)
        hs.append(h)
    dh = 2.0 * h / h.size
    gw, gu, gb = np.zeros_like(w), np.zeros_like(u), np.zeros_like(b)
    wt = w.T
    for t in range(len(xs) - 1, -1, -1):
        da = dh * (1.0 - hs[t + 1] ** 2)
        gw += hs[t].T @ da
        gu += xs[t].T @ da
        gb += da.sum(axis=0)
        dh = da @ wt
    return np.mean(h * h), gw, gu, gb


def hand_batched(xs, w, u, b):  # type: ignore[no-untyped-def]
    """BPTT with the time-parallel parts batched: x @ U for every t at once, one matmul per weight gradient."""
    steps, batch, n_in = xs.shape
    hidden = w.shape[0]
    drive = (xs.reshape(-1, n_in) @ u + b).reshape(steps, batch, hidden)
    hs = np.zeros((steps + 1, batch, hidden))
    for t in range(steps):
        hs[t + 1] = np.tanh(hs[t] @ w + drive[t])
    dh = 2.0 * hs[-1] / hs[-1].size
    das = np.empty((steps, batch, hidden))
    wt = w.T
    for t in range(steps - 1, -1, -1):
        das[t] = dh * (1.0 - hs[t + 1] ** 2)
        dh = das[t] @ wt
    flat = das.reshape(-1, hidden)
    return np.mean(hs[-1] ** 2), hs[:-1].reshape(-1, hidden).T @ flat, xs.reshape(-1, n_in).T @ flat, flat.sum(0)


def check_hand(inputs: list[np.ndarray]) -> None:
    """The hand gradients against a central difference along one random direction per weight."""
    rng = np.random.default_rng(0)
    _, *grads = hand_per_step(*inputs)
    for i, g in enumerate(grads, start=1):
        d = rng.standard_normal(inputs[i].shape)
        step = 1e-6
        up = [*inputs[:i], inputs[i] + step * d, *inputs[i + 1 :]]
        down = [*inputs[:i], inputs[i] - step * d, *inputs[i + 1 :]]
        numeric = (hand_per_step(*up)[0] - hand_per_step(*down)[0]) / (2 * step)
        assert abs(numeric - np.sum(g * d)) <= 1e-6 * abs(numeric) + 1e-10, (i, numeric, np.sum(g * d))


def graphc_rnn(steps: int, batch: int, hidden: int, n_in: int, checkpoint: int = 1) -> gc.compile:
    xs = gc.var("xs", (steps, batch, n_in))
    w, u, b = gc.var("W", (hidden, hidden)), gc.var("U", (n_in, hidden)), gc.var("b", (hidden,))

    def step(h: gc.Tensor, x: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = gc.tanh(h @ w + x @ u + b)
        return h, h

    h, _ = gc.scan(step, gc.const(np.zeros((batch, hidden))), xs, checkpoint=checkpoint)
    loss = gc.mean(h * h)
    return gc.compile([xs, w, u, b], [loss, *gc.grad(loss, [w, u, b])], backend="numpy")


def verify(got: object, want: object, rtol: float = 1e-10) -> float:
    worst = 0.0
    for a, e in zip(got, want, strict=True):  # type: ignore[call-overload]
        error = float(np.max(np.abs(np.asarray(a) - e))) / max(float(np.max(np.abs(e))), 1e-300)
        assert error <= rtol, error
        worst = max(worst, error)
    return worst


def interleaved(runs: dict[str, Callable[[], object]], seconds: float) -> dict[str, tuple[float, float]]:
    """(median, minimum) seconds per call of each run, calling them in turn until `seconds` have passed."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or min(len(s) for s in samples.values()) < 20:
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: (float(np.median(s)), min(s)) for name, s in samples.items()}


def peak_bytes(run: Callable[[], object]) -> int:
    run()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bench_w7(seconds: float) -> None:
    block = np.ones(32 * 2**20 // 8)  # warm the allocator (BENCHMARKS.md)
    block.sum()
    del block
    inputs = make_inputs(*SIZES)
    check_hand(inputs)
    expected = hand_per_step(*inputs)
    runs: dict[str, Callable[[], object]] = {
        "NumPy, per-step BPTT": lambda: hand_per_step(*inputs),
        "NumPy, batched BPTT": lambda: hand_batched(*inputs),
    }
    firsts = {}
    for k in (1, 7):
        start = time.perf_counter()
        fn = graphc_rnn(*SIZES, checkpoint=k)
        out = fn(*inputs)
        firsts[k] = time.perf_counter() - start
        verify(out, expected)
        runs[f"graphc numpy, checkpoint={k}"] = lambda fn=fn: fn(*inputs)
    verify(hand_batched(*inputs), expected)
    timings = interleaved(runs, seconds)
    base, batched = timings["NumPy, per-step BPTT"], timings["NumPy, batched BPTT"]
    steps, batch, hidden, n_in = SIZES
    print(f"## W7: RNN BPTT, T={steps} B={batch} H={hidden} I={n_in}, float64 (interleaved, same run)\n")
    print("| system | median | ÷ NumPy per-step | ÷ NumPy batched | minimum | ÷ per-step (min) | first result |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (median, least) in timings.items():
        first = next((f"{firsts[k] * 1e3:.0f} ms" for k in firsts if name.endswith(f"={k}")), "—")
        print(
            f"| {name} | {median * 1e3:.2f} ms | {median / base[0]:.2f} | {median / batched[0]:.2f} "
            f"| {least * 1e3:.2f} ms | {least / base[1]:.2f} | {first} |"
        )


def bench_scan_memory() -> None:
    steps, batch, hidden, n_in = 400, 32, 64, 16
    inputs = make_inputs(steps, batch, hidden, n_in)
    carry = batch * hidden * 8
    print(f"\n## scan gradient memory, T={steps} (one carry = {carry / 1024:.0f} KiB)\n")
    print("| checkpoint | tracemalloc peak of one gradient call | ÷ one carry |")
    print("|---:|---:|---:|")
    for k in (1, 5, 20, 100):
        fn = graphc_rnn(steps, batch, hidden, n_in, checkpoint=k)
        peak = peak_bytes(lambda fn=fn: fn(*inputs))
        print(f"| {k} | {peak / 2**20:.2f} MiB | {peak / carry:.0f} |")


def iterations(c: float, p: np.ndarray, tol: float) -> int:
    z = np.zeros_like(p)
    for it in range(1, 10**6):
        new = c * np.cos(z) + p
        if np.max(np.abs(new - z)) <= tol:
            return it
        z = new
    raise AssertionError("no convergence")


def bench_fixed_point_memory() -> None:
    n, tol = 10_000, 1e-10
    p_var, c_var, z0 = gc.var("p", (n,)), gc.var("c"), gc.var("z0", (n,))
    z = gc.fixed_point(lambda z: c_var * gc.cos(z) + p_var, z0, tol=tol, max_iter=100_000)
    fn = gc.compile([p_var, c_var, z0], gc.grad(gc.sum(z**2), [p_var, c_var]), backend="numpy")
    p = np.linspace(1.0, 1.5, n)
    print(f"\n## fixed_point gradient memory vs iterations: z = c cos(z) + p, n = {n} (one iterate = 78 KiB)\n")
    print("| c | forward iterations | tracemalloc peak of one gradient call | time per call |")
    print("|---:|---:|---:|---:|")
    for c in (0.1, 0.5, 0.9, 0.99, 0.999):
        count = iterations(c, p, tol)
        peak = peak_bytes(lambda c=c: fn(p, c, np.zeros(n)))
        start = time.perf_counter()
        fn(p, c, np.zeros(n))
        print(f"| {c} | {count} | {peak / 2**20:.2f} MiB | {(time.perf_counter() - start) * 1e3:.1f} ms |")
    unrolled = iterations(0.99, p, tol)
    stored = unrolled * n * 8 / 2**20
    print(f"\n(unrolling c = 0.99 for reverse mode would store {unrolled} iterates: {stored:.0f} MiB)")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    bench_w7(seconds=2.0 if quick else 10.0)
    bench_scan_memory()
    bench_fixed_point_memory()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
