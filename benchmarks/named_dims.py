"""Named dimensions against fixed shapes, in one run: steady-state time, call overhead, compile time.

Run: PYTHONPATH=. python benchmarks/named_dims.py [--quick] [--backend llvm|numpy]

- W1 (MLP loss + 4 gradients, batch 256) and W3 (the elementwise chain, N = 10^7; 10^6
  with --quick) compiled with a fixed shape and with a named batch (`("batch", 64)`),
  both verified against the hand NumPy versions of graphc/bench/w1_mlp.py and
  w3_elementwise.py first; then timed interleaved (one call of each in turn, so load on
  the machine hits both alike), median of the rounds. Target: named / fixed <= 1.05.
- Call overhead: f(x) = 2x on 10 elements, fixed (10,) vs named ("n",): the best of
  many timeit batches, interleaved. Target: <= 1.2.
- Compile: gc.compile of the fixed W1 (cache off: a real LLVM compile) against the first
  call of the named function at a size it has not seen (specialize + schedule + build,
  cache off). Target: <= 1.0. The same size again compiles nothing (counted with
  fn.specializations).
"""

from __future__ import annotations

import argparse
import gc as python_gc
import statistics
import time
import timeit
from collections.abc import Callable

import numpy as np

import graphc as gc
from graphc.bench import w1_mlp, w3_elementwise


def w1(batch: object, sizes: tuple[int, int, int]) -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    d, hidden, classes = sizes
    x, y = gc.var("X", (batch, d)), gc.var("y", (batch,), dtype="int64")
    w1_, b1 = gc.var("W1", (d, hidden)), gc.var("b1", (hidden,))
    w2, b2 = gc.var("W2", (hidden, classes)), gc.var("b2", (classes,))
    logits = gc.tanh(x @ w1_ + b1) @ w2 + b2
    loss = -gc.mean(gc.sum(gc.one_hot(y, classes) * gc.log_softmax(logits), axis=1))
    return [x, y, w1_, b1, w2, b2], [loss, *gc.grad(loss, [w1_, b1, w2, b2])]


def w3(n: object) -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    x, y = gc.var("x", (n,)), gc.var("y", (n,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-x * x) + gc.log1p(y * y))
    return [x, y], [f, gc.grad(f, x)]


def verify(got: tuple, expected: tuple, what: str) -> None:
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12, err_msg=what)


def interleaved(fns: list[Callable[[], object]], rounds: int) -> list[float]:
    """Median seconds per call of each function, the calls taking turns."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def steady(name: str, fixed: Callable, named: Callable, args: list[np.ndarray], rounds: int) -> tuple[float, float]:
    for _ in range(3):
        fixed(*args)
        named(*args)
    t_fixed, t_named = interleaved([lambda: fixed(*args), lambda: named(*args)], rounds)
    print(f"{name:<28} fixed {t_fixed * 1e3:9.3f} ms   named {t_named * 1e3:9.3f} ms   ratio {t_named / t_fixed:5.3f}")
    return t_fixed, t_named


def call_overhead(backend: str, batches: int = 25) -> float:
    x = gc.var("x", shape=(10,))
    n = gc.var("x", shape=("n",))
    fixed = gc.compile(x, 2 * x, backend=backend)
    named = gc.compile(n, 2 * n, backend=backend)
    v = np.arange(10.0)
    assert np.array_equal(fixed(v), named(v)) and np.array_equal(named(v), 2 * v)
    best = [np.inf, np.inf]
    for _ in range(batches):
        for k, fn in enumerate((fixed, named)):
            best[k] = min(best[k], timeit.timeit(lambda fn=fn: fn(v), number=20000) / 20000)
    ratio = best[1] / best[0]
    label = "call f(x)=2x, 10 elements"
    print(f"{label:<28} fixed {best[0] * 1e6:9.3f} us   named {best[1] * 1e6:9.3f} us   ratio {ratio:5.3f}")
    return ratio


def compile_times(backend: str, sizes: tuple[int, int, int], repeat: int = 3) -> float:
    """Best of `repeat`: gc.compile of fixed W1 vs the first call of named W1 at a new size (both uncached)."""
    d, hidden, classes = sizes
    args = w1_mlp.make_inputs(256, d, hidden, classes)
    fixed_times, first_call_times = [], []
    for k in range(repeat):
        python_gc.collect()
        inputs, outputs = w1(256, sizes)
        start = time.perf_counter()
        gc.compile(inputs, outputs, backend=backend, cache=False)
        fixed_times.append(time.perf_counter() - start)
        inputs, outputs = w1("batch", sizes)
        named = gc.compile(inputs, outputs, backend=backend, cache=False)
        named(*w1_mlp.make_inputs(8 + k, d, hidden, classes))  # another size first: the new one is not the first
        python_gc.collect()
        start = time.perf_counter()
        named(*args)
        first_call_times.append(time.perf_counter() - start)
        before = len(named.specializations)
        named(*args)
        assert len(named.specializations) == before, "the same size compiled again"
    fixed_t, first_t = min(fixed_times), min(first_call_times)
    print(f"{'compile W1 / first new size':<28} fixed {fixed_t * 1e3:9.1f} ms   named {first_t * 1e3:9.1f} ms   "
          f"ratio {first_t / fixed_t:5.3f}   (same size again: no compile)")  # fmt: skip
    return first_t / fixed_t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="W3 at 10^6 and fewer rounds")
    parser.add_argument("--backend", default="llvm", choices=["llvm", "numpy"])
    args = parser.parse_args()
    block = np.ones(4 << 20)  # warm the allocator (BENCHMARKS.md)
    del block
    sizes = (64, 128, 10)
    w1_args = w1_mlp.make_inputs(256, *sizes)
    expected = w1_mlp.numpy_forward_backward(*w1_args)
    fixed = gc.compile(*w1(256, sizes), backend=args.backend)
    named = gc.compile(*w1("batch", sizes), backend=args.backend)
    verify(fixed(*w1_args), expected, "W1 fixed")
    verify(named(*w1_args), expected, "W1 named")
    ratios = {"W1": steady("W1 MLP batch 256", fixed, named, w1_args, 60 if args.quick else 300)}

    n = 10**6 if args.quick else 10**7
    rng = np.random.default_rng(2)
    w3_args = [rng.standard_normal(n), rng.standard_normal(n)]
    expected3 = w3_elementwise.numpy_value_grad(*w3_args)
    fixed3 = gc.compile(*w3(n), backend=args.backend)
    named3 = gc.compile(*w3("n"), backend=args.backend)
    verify(fixed3(*w3_args), expected3, "W3 fixed")
    verify(named3(*w3_args), expected3, "W3 named")
    ratios["W3"] = steady(f"W3 chain N={n:.0e}", fixed3, named3, w3_args, 10 if args.quick else 25)
    overhead = call_overhead(args.backend)
    compile_ratio = compile_times(args.backend, sizes)
    print()
    for name, (a, b) in ratios.items():
        print(f"{name}: named/fixed {b / a:.3f} (target <= 1.05)")
    print(f"call overhead: {overhead:.3f} (target <= 1.2); first call at a new size / fixed compile: "
          f"{compile_ratio:.3f} (target <= 1.0)")  # fmt: skip


if __name__ == "__main__":
    main()
