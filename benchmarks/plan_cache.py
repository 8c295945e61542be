"""The graph-level compile cache: time to first result in a fresh process, cold and warm, against JAX.

Run: PYTHONPATH=. python benchmarks/plan_cache.py [--w8 1000] [--inputs 2000] [--rounds 3] [--no-jax]

Each measurement is a fresh Python process (imports paid before the clock starts), so
"warm" is what a second run of a script sees: the cache a previous process filled.
Cases: `w8 K` is W8 (K steps `x = sin(x) * 1.0001 + 0.1 * x` on a length-1000 vector,
value and gradient); `inputs N` is f = sum_i sin(x_i) * x_i over N scalar vars, value
and gradient. Per round, in alternation: graphc cold (a new empty cache folder), graphc
warm (the folder the cold run filled), JAX (jit(value_and_grad), first call). Stages:
build (the forward graph), grad (gc.grad), compile (gc.compile), call (the first call,
blocking). Every process checks its value against a float64 NumPy reference before
reporting. On a shared machine compare within one round; the table gives medians over
rounds and the load average at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

GRAPHC = r"""
import json, sys, time
import numpy as np
import graphc as gc
import graphc.backends.llvm.runtime, graphc.backends.llvm.entries  # imports: not part of first result
case, size, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
T = time.perf_counter
t0 = T()
if case == "w8":
    x0 = gc.var("x", (1000,)); x = x0
    for _ in range(size):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    f = gc.sum(x); wrt = x0
    args = [np.linspace(-1.0, 1.0, 1000)]
else:
    xs = [gc.var(f"x{i}", ()) for i in range(size)]
    f = sum(gc.sin(v) * v for v in xs); wrt = xs
    args = list(np.linspace(-1.0, 1.0, size))
t1 = T()
g = gc.grad(f, wrt)
t2 = T()
inputs = [x0] if case == "w8" else xs
fn = gc.compile(inputs, [f, g] if case == "w8" else [f, *g], cache_dir=folder)
t3 = T()
out = fn(*args)
t4 = T()
value = float(out[0])
print(json.dumps({"build": t1 - t0, "grad": t2 - t1, "compile": t3 - t2, "call": t4 - t3, "value": value,
                  "hit": type(fn._built).__name__ == "CachedFunction"}))
"""

JAX = r"""
import json, sys, time
import numpy as np
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
case, size = sys.argv[1], int(sys.argv[2])
T = time.perf_counter
t0 = T()
if case == "w8":
    def f(x):
        for _ in range(size):
            x = jnp.sin(x) * 1.0001 + 0.1 * x
        return jnp.sum(x)
    args = (jnp.asarray(np.linspace(-1.0, 1.0, 1000)),)
else:
    def f(x):
        return jnp.sum(jnp.sin(x) * x)  # one vector: JAX's natural form (N scalar args is slower for it)
    args = (jnp.asarray(np.linspace(-1.0, 1.0, size)),)
fn = jax.jit(jax.value_and_grad(f))
value, grad = fn(*args)
jax.block_until_ready(grad)
t1 = T()
print(json.dumps({"first": t1 - t0, "value": float(value)}))
"""


def reference(case: str, size: int) -> float:
    import numpy as np

    if case == "w8":
        x = np.linspace(-1.0, 1.0, 1000)
        for _ in range(size):
            x = np.sin(x) * 1.0001 + 0.1 * x
        return float(np.sum(x))
    x = np.linspace(-1.0, 1.0, size)
    return float(np.sum(np.sin(x) * x))


def run(script: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(case: str, size: int, rounds: int, jax: bool) -> None:
    want = reference(case, size)
    rows: dict[str, list[dict]] = {"cold": [], "warm": [], "jax": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            cache = os.path.join(folder, "cache")
            for name in ("cold", "warm"):
                result = run(GRAPHC, case, str(size), cache)
                assert abs(result["value"] - want) <= 1e-9 * max(1.0, abs(want)), (name, result["value"], want)
                assert result["hit"] == (name == "warm"), (name, result)
                rows[name].append(result)
        if jax:
            result = run(JAX, case, str(size))
            assert abs(result["value"] - want) <= 1e-9 * max(1.0, abs(want)), ("jax", result["value"], want)
            rows["jax"].append(result)
    print(f"\n{case} {size}: medians of {rounds} rounds, load average {os.getloadavg()[0]:.1f} at the end")
    print("| system | build s | grad s | compile s | first call s | first result s | beyond build+grad s |")
    print("|---|---|---|---|---|---|---|")
    for name in ("cold", "warm"):
        stages = {k: statistics.median(r[k] for r in rows[name]) for k in ("build", "grad", "compile", "call")}
        total = statistics.median(sum(r[k] for k in ("build", "grad", "compile", "call")) for r in rows[name])
        beyond = statistics.median(r["compile"] + r["call"] for r in rows[name])
        print(f"| graphc llvm {name} | {stages['build']:.3f} | {stages['grad']:.3f} | {stages['compile']:.3f} | "
              f"{stages['call']:.3f} | {total:.3f} | {beyond:.3f} |")  # fmt: skip
    if rows["jax"]:
        first = statistics.median(r["first"] for r in rows["jax"])
        print(f"| JAX | — | — | — | — | {first:.3f} | — |")
        for name in ("cold", "warm"):
            ratios = [sum(r[k] for k in ("build", "grad", "compile", "call")) / j["first"]
                      for r, j in zip(rows[name], rows["jax"], strict=True)]  # fmt: skip
            print(f"graphc {name} / JAX per round: {', '.join(f'{x:.3f}' for x in ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--w8", type=int, nargs="*", default=[1000])
    parser.add_argument("--inputs", type=int, nargs="*", default=[2000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-jax", action="store_true")
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    for k in args.w8:
        measure("w8", k, args.rounds, not args.no_jax)
    for n in args.inputs:
        measure("inputs", n, args.rounds, not args.no_jax)


if __name__ == "__main__":
    main()
