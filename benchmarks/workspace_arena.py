"""The workspace arena against per-function pools: memory held by idle functions, first calls, steady state.

Each figure is measured for both ways of keeping workspaces, in the same run: "pool" is
the llvm backend as it was before the arena (every function keeps its own workspaces:
runtime.SHARED_FROM raised past every workspace), "arena" is the default. Memory and
first calls run in fresh child processes (pool and arena alternate, `--reps` each);
steady state compiles both variants in one process and alternates their timings.

- memory: four live gradient functions of the GradBench `ba` graph (graphc/bench/ba_bundle.py,
  49 cameras, 7,776 points, 31,843 observations): grad of sum(r²), grad of sum(log1p(r²)),
  value and grad of sum(r²)/2, and the sparse Jacobian, each called once in turn; then
  every result is dropped. VmRSS (from /proc/self/status) after compiling, and after the
  calls with no arrays alive; VmHWM the peak.
- first call: two functions with ~1 GB of workspace (a chain of tanh steps, each shifted by
  the mean of the last, and its gradient, n = 2^23): A is called twice, then B's first
  call and B's second call are timed. With pools, B's first call faults in fresh pages.
- steady: W1 (MLP, quick sizes) and W3 (N = 10^7) loss and gradients, time per call
  (median), arena ÷ pool; one thread (graphc's and BLAS's), as the W1 target is stated.

Every result is verified first (against hand NumPy, or the evaluator; pool and arena
results bit for bit). Run: `python -m benchmarks.workspace_arena [--quick] [--reps N]`.
"""

from __future__ import annotations

import argparse
import gc as pygc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

import graphc as gc
from graphc.backends.llvm import runtime
from graphc.bench import ba_bundle, checks, harness, w1_mlp, w3_elementwise

MODES = ("pool", "arena")


def use(mode: str) -> None:
    """Compile from now on with per-function pools ("pool") or the shared arena ("arena")."""
    if mode == "pool":
        runtime.SHARED_FROM = 1 << 62


def status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes."""
    found = {}
    with open("/proc/self/status") as lines:
        for line in lines:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0]) * 1024
    return found


def close(got: object, want: object, rtol: float, what: str) -> None:
    """`got` matches `want` (max-norm relative error within rtol, every value finite), else VerificationError."""
    try:
        checks.verify((got,), (want,), rtol)
    except checks.VerificationError as error:
        raise checks.VerificationError(f"{what}: {error}") from None


# --- memory: four live ba gradient functions ----------------------------------------------------------------


def ba_functions(prob: ba_bundle.Problem) -> list[tuple[str, gc.compile]]:
    params, r = ba_bundle.graphc_residual(prob)
    squares = gc.sum(r * r)
    cauchy = gc.sum(gc.log1p(r * r))
    return [
        ("grad sum r²", gc.compile([params], gc.grad(squares, params), progress=False)),
        ("grad sum log1p(r²)", gc.compile([params], gc.grad(cauchy, params), progress=False)),
        ("value, grad", gc.compile([params], [0.5 * squares, gc.grad(0.5 * squares, params)], progress=False)),
        ("sparse Jacobian", gc.compile([params], gc.sparse_jacobian(r, params), progress=False)),
    ]


def verify_ba(prob: ba_bundle.Problem, results: list[object]) -> None:
    """Each result against the hand residual and hand Jacobian of ba_bundle (J^T r is the gradient of sum r²/2)."""
    x = prob.params
    r = ba_bundle.residual(x, prob)
    jac = ba_bundle.NumpyJacobian(prob)(x)
    half = jac.T @ r
    cauchy = jac.T @ (2.0 * r / (1.0 + r * r))
    close(results[0], 2.0 * half, 1e-9, "ba grad sum r²")
    close(results[1], cauchy, 1e-9, "ba grad sum log1p(r²)")
    close(results[2][0], 0.5 * np.dot(r, r), 1e-12, "ba value")  # type: ignore[index]
    close(results[2][1], half, 1e-9, "ba value, grad")  # type: ignore[index]
    close(results[3], jac, 1e-10, "ba sparse Jacobian")  # compared as sparse: dense would be 12 GB


def child_memory(mode: str, scale: str) -> dict[str, object]:
    use(mode)
    prob = ba_bundle.problem(*ba_bundle.SIZES[scale])
    functions = ba_functions(prob)
    pygc.collect()
    built = status()["VmRSS"]
    results = [fn(prob.params) for _, fn in functions]
    verify_ba(prob, results)
    del results
    for _, fn in functions:  # each once more: what a solver's loop would do
        fn(prob.params)
    pygc.collect()
    after = status()
    workspaces = {name: fn._built.plan.workspace_bytes for name, fn in functions}
    return {"built": built, "idle": after["VmRSS"], "hwm": after["VmHWM"], "workspaces": workspaces}


# --- first call after another function warmed the arena ------------------------------------------------------


def chain(n: int, slope: float) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """12 steps h = tanh(h (1 + slope k) + mean(h)), sum(h²) and its gradient: ~112 workspace bytes per element."""
    x = gc.var("x", (n,))
    h = x
    for k in range(12):
        h = gc.tanh(h * (1.0 + slope * k) + gc.sum(h) / n)
    f = gc.sum(h * h)
    return x, [f, gc.grad(f, x)]


def child_first_call(mode: str, n: int) -> dict[str, object]:
    use(mode)
    value = np.linspace(-1.0, 1.0, n)
    a_in, a_out = chain(n, 0.1)
    b_in, b_out = chain(n, 0.11)
    a = gc.compile([a_in], a_out, progress=False)
    b = gc.compile([b_in], b_out, progress=False)
    expected = gc.evaluate(b_out, {b_in: value})
    a(value)
    a(value)
    start = time.perf_counter()
    first = b(value)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    second = b(value)
    second_s = time.perf_counter() - start
    close(first[1], expected[1], 1e-9, "chain gradient")
    if not all(np.array_equal(p, q) for p, q in zip(first, second, strict=True)):
        raise checks.VerificationError("the chain's first and second calls differ")
    return {"first": first_s, "second": second_s, "workspace": b._built.plan.workspace_bytes, "hwm": status()["VmHWM"]}


def run_child(kind: str, mode: str, argument: str) -> dict[str, object]:
    command = [sys.executable, "-m", "benchmarks.workspace_arena", "--child", kind, mode, argument]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {kind} {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- steady state ---------------------------------------------------------------------------------------------


def per_call(fn: Callable[[], object], seconds: float = 0.05) -> float:
    """The mean time of enough calls to last about `seconds`."""
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            fn()
        took = time.perf_counter() - start
        if took >= seconds:
            return took / count
        count *= 2


def steady(reps: int) -> list[tuple[str, int, dict[str, float]]]:
    """(workload, workspace bytes, median per variant): pool, arena, and a second pool function (the noise floor).

    The variants' timings alternate, in a rotating order, so load from other processes hits each alike.
    """
    rng = np.random.default_rng(0)
    n3 = w3_elementwise.SIZES["quick"]
    builds = {
        "W1": (w1_mlp.graphc_build(*w1_mlp.SIZES["quick"]), w1_mlp.make_inputs(*w1_mlp.SIZES["quick"])),
        "W3": (w3_elementwise.graphc_build(n3), [rng.uniform(-1, 1, n3), rng.uniform(-1, 1, n3)]),
    }
    rows = []
    for name, (build, inputs) in builds.items():
        functions = {"arena": gc.compile(build.inputs, build.outputs, threads=1)}
        saved = runtime.SHARED_FROM
        use("pool")
        functions["pool"] = gc.compile(build.inputs, build.outputs, threads=1)
        functions["pool again"] = gc.compile(build.inputs, build.outputs, threads=1)
        runtime.SHARED_FROM = saved
        expected = gc.evaluate(build.outputs, dict(zip(build.inputs, inputs, strict=True)))
        results = {variant: fn(*inputs) for variant, fn in functions.items()}
        for g, e in zip(results["arena"], expected, strict=True):
            close(g, e, 1e-10, name)
        if not all(np.array_equal(p, q) for p, q in zip(results["pool"], results["arena"], strict=True)):
            raise checks.VerificationError(f"{name}: the arena's results differ from the pool's")
        times: dict[str, list[float]] = {variant: [] for variant in functions}
        order = list(functions)
        for rep in range(reps):
            for variant in order[rep % 3 :] + order[: rep % 3]:
                fn = functions[variant]
                times[variant].append(per_call(lambda: fn(*inputs)))  # noqa: B023 (called at once)
        workspace = functions["arena"]._built.plan.workspace_bytes
        rows.append((name, workspace, {variant: statistics.median(t) for variant, t in times.items()}))
    return rows


# --- the report -------------------------------------------------------------------------------------------------


def load() -> str:
    with open("/proc/loadavg") as text:
        return " ".join(text.read().split()[:3])


def mib(nbytes: object) -> str:
    return f"{int(nbytes) / 2**20:,.0f} MiB"  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller first-call graph (n = 2^21), fewer repeats")
    parser.add_argument("--reps", type=int, default=3, help="child processes per mode for memory and first call")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, mode, argument = args.child
        result = child_memory(mode, argument) if kind == "memory" else child_first_call(mode, int(argument))
        print(json.dumps(result))
        return
    n = 1 << 21 if args.quick else 1 << 23
    print(f"load average: {load()}")
    memory: dict[str, list[dict[str, object]]] = {m: [] for m in MODES}
    first: dict[str, list[dict[str, object]]] = {m: [] for m in MODES}
    for _ in range(args.reps):
        for mode in MODES:
            memory[mode].append(run_child("memory", mode, "quick"))
            first[mode].append(run_child("first", mode, str(n)))
    print("\nfour live ba gradient functions, results dropped (median of child processes):")
    print(f"  workspaces: {', '.join(f'{k} {mib(v)}' for k, v in memory['arena'][0]['workspaces'].items())}")  # type: ignore[attr-defined]
    for mode in MODES:
        idle = statistics.median(r["idle"] - r["built"] for r in memory[mode])  # type: ignore[operator]
        hwm = statistics.median(r["hwm"] for r in memory[mode])  # type: ignore[type-var]
        rss = statistics.median(r["idle"] for r in memory[mode])  # type: ignore[type-var]
        print(f"  {mode:5}: RSS idle {mib(rss)} (calls added {mib(idle)}), peak {mib(hwm)}")
    print(f"\nfirst call of a new function after another warmed up (workspace {mib(first['arena'][0]['workspace'])}):")
    for mode in MODES:
        one = statistics.median(r["first"] for r in first[mode])  # type: ignore[type-var]
        two = statistics.median(r["second"] for r in first[mode])  # type: ignore[type-var]
        hwm = statistics.median(r["hwm"] for r in first[mode])  # type: ignore[type-var]
        print(f"  {mode:5}: first {one:.3f} s, second {two:.3f} s, first/second {one / two:.2f}, peak RSS {mib(hwm)}")
    print("\nsteady state, one thread, time per call (median):")
    with harness.limit_threads(1, []):
        rows = steady(max(5, 2 * args.reps))
    for name, workspace, medians in rows:
        pool_s, arena_s, again_s = medians["pool"], medians["arena"], medians["pool again"]
        print(f"  {name}: workspace {workspace:,} B, pool {pool_s * 1e6:,.1f} µs, arena {arena_s * 1e6:,.1f} µs, "
              f"arena/pool {arena_s / pool_s:.3f} (pool again/pool {again_s / pool_s:.3f}: the noise)")  # fmt: skip
    print(f"\nload average: {load()}")


if __name__ == "__main__":
    main()
