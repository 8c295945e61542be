"""The harness: for every system of every case, time to first result, verification, then steady state.

A workload module returns `Case`s; a case holds the inputs' expected outputs and one
`Impl` per system. `Impl.setup` does everything a user does before the first result
(convert inputs, build the graph, differentiate, optimize, compile) and returns a
zero-argument `run`. The harness times setup plus the first `run()` (time to first
result), checks that first result against the case's expected outputs, and only a
system that passes is timed in steady state. A wrong result is reported as WRONG with
its error and never timed; an exception is reported as an error. Nothing is retried.

Imports numpy, graphc and the suite's own modules; the peers only through peers.py.
"""

from __future__ import annotations

import contextlib
import functools
import gc as pygc
import importlib
import multiprocessing
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from multiprocessing.connection import Connection

import numpy as np

import graphc as gc
from graphc.bench import WORKLOADS, bandwidth, peers
from graphc.bench.bandwidth import Bandwidth
from graphc.bench.checks import VerificationError, verify
from graphc.compile import CompiledFunction

Outputs = tuple[object, ...]
Run = Callable[[], object]

NUMPY = "NumPy"
NUMPY_OUT = "NumPy out="
GRAPHC_NUMPY = "graphc numpy"
GRAPHC_LLVM = "graphc llvm"
JAX = peers.JAX
TORCH = peers.TORCH
PYTENSOR = peers.PYTENSOR
BASELINE = NUMPY
"""The hand-written NumPy forward+backward: the ratio column's denominator."""

ALLOCATOR_WARMUP_BYTES = 32 * 2**20


# --- options -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """How long to time one system in steady state."""

    seconds: float  # stop taking samples after this long (once min_samples are in)
    min_samples: int
    max_samples: int
    batch_s: float  # calls per sample are chosen so that one sample takes at least this long
    first_cap_s: float  # a scaling series skips a size whose extrapolated first result exceeds this


BUDGETS = {
    "tiny": Budget(seconds=0.0, min_samples=1, max_samples=1, batch_s=0.0, first_cap_s=5.0),
    "quick": Budget(seconds=0.15, min_samples=3, max_samples=25, batch_s=0.002, first_cap_s=3.0),
    "full": Budget(seconds=1.5, min_samples=7, max_samples=200, batch_s=0.02, first_cap_s=60.0),
}


@dataclass(frozen=True)
class Options:
    """scale: "tiny" (test sizes), "quick" (about a minute) or "full"; only: workload ids; systems: name filters.

    threads: limit the thread pools of NumPy's BLAS (and any OpenMP runtime, through
    threadpoolctl) and PyTorch; JAX's XLA pool cannot be changed once JAX is imported.
    """

    scale: str = "full"
    only: tuple[str, ...] = ()
    systems: tuple[str, ...] = ()
    threads: int | None = None  # BLAS/OpenMP and PyTorch threads; None leaves every library's default
    cache_dir: str | None = None  # the LLVM backend's compile cache for this run (run_suite makes an empty one)

    def __post_init__(self) -> None:
        if self.scale not in BUDGETS:
            raise ValueError(f"scale must be one of {', '.join(BUDGETS)}, got {self.scale!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        unknown = [w for w in self.only if w not in WORKLOADS]
        if unknown:
            raise ValueError(f"unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")

    @property
    def budget(self) -> Budget:
        return BUDGETS[self.scale]

    def wants(self, system: str) -> bool:
        """Whether `system` is selected: every filter is a case-insensitive substring of system names."""
        if not self.systems:
            return True
        return any(token.lower() in system.lower() for token in self.systems)


# --- cases and systems ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Impl:
    """One system's way to compute a case: setup() returns the zero-argument call that is timed."""

    system: str
    setup: Callable[[], Run]
    note: str = ""
    requires: str | None = None  # "jax", "torch", "pytensor" or "llvm": skipped with a note when absent
    rtol: float | None = None  # a looser tolerance, for an approximate method (finite differences)
    warm_cache: bool = False  # also time a second first result, with the compile cache now warm
    isolate: bool = False  # measure in a forked child, killed past the run's cap (a compile that may not end)


@dataclass
class Case:
    """One sized instance of a workload and the systems that compute it."""

    workload: str
    label: str
    expected: Outputs
    impls: list[Impl]
    rtol: float = 1e-9
    traffic_bytes: int | None = None  # bytes that must move: the memory-traffic bound's numerator
    traffic_note: str = ""
    size: float | None = None  # the size along a scaling series (W8's K), for extrapolating
    view: Callable[[np.ndarray], np.ndarray] | None = None  # what verification compares, when not the outputs
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GraphcBuild:
    """A graphc function as a workload builds it: the vars, f, and the derivatives to compile."""

    inputs: list[gc.Tensor]
    f: gc.Tensor
    derivatives: list[gc.Tensor]
    with_value: bool = True  # compile [f, *derivatives]; False: the derivatives alone (Jacobians)

    @property
    def outputs(self) -> list[gc.Tensor]:
        return [self.f, *self.derivatives] if self.with_value else list(self.derivatives)


class CompiledRun:
    """A graphc compiled function bound to its inputs; remembers the graph sizes."""

    def __init__(self, built: GraphcBuild, fn: CompiledFunction, inputs: Sequence[np.ndarray]) -> None:
        self.fn = fn
        self.inputs = tuple(inputs)
        self.built = built

    @functools.cached_property
    def graph_sizes(self) -> dict[str, int]:
        """Node counts, read after the first result is timed (a graph-level cache hit makes its report then)."""
        records = list(self.fn.report)
        outputs = self.built.outputs
        nodes_in = records[0].nodes_before if records else len(gc.Graph([t.node for t in outputs]).nodes)
        return {
            "nodes f": len(gc.Graph([self.built.f.node]).nodes),
            "nodes compiled": nodes_in,
            "nodes optimized": len(self.fn.graph.nodes),
        }

    def __call__(self) -> object:
        return self.fn(*self.inputs)


def _graphc_setup(
    build: Callable[[], GraphcBuild], inputs: Sequence[np.ndarray], backend: str, cache_dir: str | None
) -> Run:
    built = build()
    if backend == "llvm":
        fn = gc.compile(built.inputs, built.outputs, backend=backend, cache_dir=cache_dir)
    else:
        fn = gc.compile(built.inputs, built.outputs, backend=backend)
    return CompiledRun(built, fn, inputs)


def graphc_impl(
    options: Options,
    backend: str,
    build: Callable[[], GraphcBuild],
    inputs: Sequence[np.ndarray],
    note: str = "",
    system: str | None = None,
) -> Impl:
    """graphc with one backend: setup = build + differentiate + optimize + compile (into options.cache_dir).

    `system` names the row when it is not the backend's usual one (a second graphc row of a case).
    """
    setup = functools.partial(_graphc_setup, build, inputs, backend, options.cache_dir)
    if backend == "numpy":
        return Impl(system or GRAPHC_NUMPY, setup, note=note)
    return Impl(system or GRAPHC_LLVM, setup, note=note, requires="llvm", warm_cache=True)


def graphc_impls(
    options: Options, build: Callable[[], GraphcBuild], inputs: Sequence[np.ndarray], note: str = ""
) -> list[Impl]:
    """graphc with the numpy and with the llvm backend."""
    return [graphc_impl(options, backend, build, inputs, note) for backend in ("numpy", "llvm")]


def scipy_sparse() -> types.ModuleType:
    """scipy.sparse, imported on first use (the references' CSR arrays; the bench extra installs scipy)."""
    import scipy.sparse

    return scipy.sparse


@cache
def llvm_unavailable() -> str | None:
    """None when gc.compile(backend="llvm") works here; else why not (probed once per process)."""
    x = gc.var("x", (4,))
    try:
        fn = gc.compile([x], [gc.sum(x * x), gc.grad(gc.sum(x * x), x)], backend="llvm", cache=False)
        fn(np.arange(4.0))
    except NotImplementedError as e:
        return f"not built yet ({e})"
    except Exception as e:
        return f"does not work here ({type(e).__name__}: {e})"
    return None


def unavailable(requirement: str | None) -> str | None:
    """None when the requirement is met; else a note saying why the system is skipped."""
    if requirement is None:
        return None
    if requirement == "llvm":
        return llvm_unavailable()
    return peers.unavailable(requirement)


def size_label(n: int) -> str:
    """10^k for a power of ten from 1000 on, else the number with thousands separators."""
    k = round(np.log10(n)) if n > 0 else 0
    if n >= 1000 and 10**k == n:
        return f"10^{k}"
    return f"{n:,}"


# --- timing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Steady-state seconds per call: median and spread over samples of `number` calls each."""

    median: float
    p25: float
    p75: float
    minimum: float
    samples: int
    number: int


def _batch(run: Run, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        run()
    return time.perf_counter() - start


def _one_two_five() -> Iterator[int]:
    """1, 2, 5, 10, 20, 50, ...: the calls per sample tried while warming up, as timeit does."""
    decade = 1
    while True:
        for step in (1, 2, 5):
            yield step * decade
        decade *= 10


def time_steady(run: Run, budget: Budget) -> Timing:
    """Warm up while choosing calls per sample (1, 2, 5, 10, ...), then sample within the budget.

    Samples are taken until `budget.seconds` have passed and at least `min_samples` are in.
    """
    was_enabled = pygc.isenabled()
    pygc.disable()
    try:
        for number in _one_two_five():
            seconds = _batch(run, number)
            if seconds >= budget.batch_s or number >= 10**6:
                break
        # A call slower than a batch was warm already (the first result ran it): keep that sample.
        samples = [seconds] if number == 1 else []
        deadline = time.perf_counter() + budget.seconds
        while len(samples) < budget.max_samples:
            if len(samples) >= budget.min_samples and time.perf_counter() > deadline:
                break
            samples.append(_batch(run, number) / number)
    finally:
        if was_enabled:
            pygc.enable()
    p25, median, p75 = np.percentile(samples, [25, 50, 75])
    return Timing(float(median), float(p25), float(p75), min(samples), len(samples), number)


def first_result(impl: Impl) -> tuple[float, Run, object]:
    """Seconds from nothing to the first result (setup plus one call), the run, and that result."""
    pygc.collect()
    start = time.perf_counter()
    run = impl.setup()
    out = run()
    return time.perf_counter() - start, run, out


# --- running -------------------------------------------------------------------------------------


@dataclass
class Result:
    """What happened to one system on one case."""

    workload: str
    case: str
    system: str
    status: str  # "ok", "wrong", "error", "timeout", "skipped" (by the first-result cap), "absent" (not installed)
    note: str = ""
    first_s: float | None = None
    first_warm_s: float | None = None
    steady: Timing | None = None
    error: float | None = None  # the verified normwise relative error
    graph_sizes: dict[str, int] | None = None
    timed_out_s: float | None = None  # status "timeout": killed after this long without a result


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def measure(case: Case, impl: Impl, budget: Budget) -> Result:
    """First result, verification, and (only when verified) the warm-cache first result and steady state."""
    result = Result(case.workload, case.label, impl.system, "ok", impl.note)
    try:
        result.first_s, run, out = first_result(impl)
        result.error = verify(out, case.expected, impl.rtol or case.rtol, case.view)
    except VerificationError as e:
        result.status, result.note = "wrong", f"WRONG, not timed: {e}"
        return result
    except Exception as e:
        result.status, result.note = "error", _first_line(e)
        return result
    result.graph_sizes = getattr(run, "graph_sizes", None)
    if impl.warm_cache:
        result.first_warm_s = first_result(impl)[0]
    result.steady = time_steady(run, budget)
    return result


History = dict[tuple[str, str], tuple[float, float | None]]
"""(workload, system) -> (the last size of a scaling series, its first-result seconds or None if it failed)."""


ISOLATION_SLACK_S = 10.0
"""An isolated measurement may take the first-result cap plus this (verification and steady state)."""


def _measure_in_child(case: Case, impl: Impl, budget: Budget, sender: Connection) -> None:
    sender.send(measure(case, impl, budget))
    sender.close()


def measure_isolated(case: Case, impl: Impl, budget: Budget, slack_s: float = ISOLATION_SLACK_S) -> Result:
    """measure() in a forked child; past cap + slack seconds the child is killed and the row says so.

    Fork, so the case's closures and arrays need no pickling; only graphc systems are
    isolated (a fork of a process running JAX's or PyTorch's thread pools can hang).
    """
    timeout = budget.first_cap_s + slack_s
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_measure_in_child, args=(case, impl, budget, sender), daemon=True)
    with warnings.catch_warnings():  # JAX warns about any fork; the child never touches JAX
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        child.start()
    sender.close()
    if receiver.poll(timeout):
        result: Result = receiver.recv()
    else:
        child.kill()
        note = f"timed out: no result within {timeout:g} s (killed; the cap is {budget.first_cap_s:g} s)"
        result = Result(case.workload, case.label, impl.system, "timeout", note, timed_out_s=timeout)
    child.join()
    return result


def _too_slow(case: Case, impl: Impl, history: History, cap: float) -> str | None:
    """In a scaling series: why to skip this size (the last first result, scaled linearly, exceeds cap)."""
    last = history.get((case.workload, impl.system))
    if case.size is None or last is None:
        return None
    size, seconds = last
    if seconds is None:
        return f"skipped: no result at the smaller size {size:g}"
    predicted = seconds * case.size / size
    if predicted <= cap:
        return None
    return f"skipped: at least {predicted:.0f} s expected (linear from {seconds:.1f} s at {size:g}) > {cap:g} s cap"


def run_case(case: Case, options: Options, history: History) -> list[Result]:
    """Every selected system of one case, in the case's order."""
    results = []
    for impl in case.impls:
        if not options.wants(impl.system):
            continue
        absent = unavailable(impl.requires)
        if absent is not None:
            results.append(Result(case.workload, case.label, impl.system, "absent", absent))
            continue
        too_slow = _too_slow(case, impl, history, options.budget.first_cap_s)
        if too_slow is not None:
            results.append(Result(case.workload, case.label, impl.system, "skipped", too_slow))
            continue
        measured = measure_isolated if impl.isolate else measure
        result = measured(case, impl, options.budget)
        if case.size is not None:
            seconds = result.first_s if result.status == "ok" else None
            history[(case.workload, impl.system)] = (case.size, seconds)
        results.append(result)
    return results


def warm_allocator() -> None:
    """Allocate, touch and free one ~32 MiB block: a fresh process's first large frees skew later timings."""
    block = np.ones(ALLOCATOR_WARMUP_BYTES // 8)
    block.sum()
    del block


@contextlib.contextmanager
def fresh_compile_cache(options: Options) -> Iterator[Options]:
    """The options with an empty folder as the LLVM backend's compile cache, for this run (removed after).

    First results are then cold; an Impl with warm_cache=True times a second one against
    the cache the first one filled.
    """
    with tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as folder:
        yield replace(options, cache_dir=folder)


def limit_threads(threads: int | None, notes: list[str]) -> contextlib.AbstractContextManager[object]:
    """Limit BLAS/OpenMP (threadpoolctl) and PyTorch to `threads` for the run; notes say what was limited."""
    if threads is None:
        notes.append(f"threads: library defaults ({blas_threads()})")
        return contextlib.nullcontext()
    if peers.unavailable("torch") is None:
        peers.load("torch").set_num_threads(threads)
    try:
        import threadpoolctl
    except ImportError:
        notes.append(f"threads: PyTorch limited to {threads}; BLAS not limited (threadpoolctl is not installed)")
        return contextlib.nullcontext()
    notes.append(f"threads: BLAS/OpenMP and PyTorch limited to {threads}; JAX keeps its own pool")
    return threadpoolctl.threadpool_limits(limits=threads)


def blas_threads() -> str:
    """The BLAS libraries loaded and their thread counts (through threadpoolctl, when installed)."""
    try:
        import threadpoolctl
    except ImportError:
        return "BLAS threads unknown: threadpoolctl is not installed"
    pools = threadpoolctl.threadpool_info()
    return "; ".join(f"{p['internal_api']} {p.get('version') or ''}: {p['num_threads']} threads" for p in pools)


@dataclass
class CaseRecord:
    """A case as the report sees it: its notes and, for a bandwidth-bound case, the memory-traffic bound."""

    workload: str
    case: str
    notes: list[str]
    traffic_bytes: int | None = None
    traffic_note: str = ""
    bandwidth_gbps: float | None = None
    bound_s: float | None = None


@dataclass
class SuiteRun:
    """Everything one run measured: the cases (with their bounds), the results, bandwidth and notes."""

    options: Options
    cases: list[CaseRecord] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    bandwidth: Bandwidth | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _initialize_backends(notes: list[str]) -> None:
    """Compile one small function per backend, so one-time imports and JIT start-up stay out of first results."""
    start = time.perf_counter()
    x = gc.var("x", (4,))
    gc.compile([x], gc.sum(x), backend="numpy")(np.zeros(4))
    notes.append(f"graphc numpy: one-time start-up {time.perf_counter() - start:.2f} s (not in first results)")
    start = time.perf_counter()
    why = llvm_unavailable()
    if why is None:
        notes.append(f"graphc llvm: one-time start-up {time.perf_counter() - start:.2f} s (not in first results)")
    else:
        notes.append(f"graphc llvm: skipped everywhere, the backend {why}")


def _case_record(case: Case, measured: Bandwidth) -> CaseRecord:
    record = CaseRecord(case.workload, case.label, list(case.notes))
    if case.traffic_bytes is not None:
        gbps = measured.for_bytes(case.traffic_bytes)
        record.traffic_bytes, record.traffic_note, record.bandwidth_gbps = case.traffic_bytes, case.traffic_note, gbps
        record.bound_s = case.traffic_bytes / (gbps * 1e9)
    return record


def selected_workloads(options: Options) -> list[str]:
    return [w for w in WORKLOADS if not options.only or w in options.only]


def run_suite(options: Options, progress: Callable[[str], None] | None = None) -> SuiteRun:
    """Run the selected workloads; `progress` gets one line per case as it finishes."""
    start = time.perf_counter()
    suite = SuiteRun(options)
    warm_allocator()
    with fresh_compile_cache(options) as options, contextlib.ExitStack() as limits:
        _initialize_backends(suite.notes)
        suite.notes.extend(peers.notes(options.wants))
        limits.enter_context(limit_threads(options.threads, suite.notes))
        suite.bandwidth = measured = bandwidth.measure(options.scale)
        history: History = {}
        for wid in selected_workloads(options):
            module = importlib.import_module(f"graphc.bench.{WORKLOADS[wid]}")
            for case in module.cases(options):
                suite.cases.append(_case_record(case, measured))
                suite.results.extend(run_case(case, options, history))
                if progress is not None:
                    progress(f"{case.workload} {case.label}: done ({time.perf_counter() - start:.0f} s)")
                pygc.collect()
    suite.seconds = time.perf_counter() - start
    return suite


def failures(suite: SuiteRun) -> list[Result]:
    """Results that make the run fail: any wrong result, and any error of hand NumPy or graphc numpy."""
    required = (NUMPY, NUMPY_OUT, GRAPHC_NUMPY)
    return [r for r in suite.results if r.status == "wrong" or (r.status == "error" and r.system in required)]
