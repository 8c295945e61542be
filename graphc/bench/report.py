"""What a run prints and writes: the markdown tables, the machine description, the JSON and the plots.

Ratios are computed here, within one case of one run (the machines are shared and
noisy: only numbers from the same run compare). Imports numpy, the harness and, for
plots, matplotlib (lazily; a clean message when it is missing).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from graphc.bench import harness
from graphc.bench.harness import Result, SuiteRun
from graphc.bench.w8_compile_scaling import SUPERLINEAR_SLOPE, slopes

NO_FIRST_RESULT = ("NumPy", "scipy")  # hand-written code: nothing to build, the first call is just a call
NOTE_WIDTH = 70


# --- the machine ---------------------------------------------------------------------------------


def _cpuinfo(key: str) -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    for line in lines:
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:
        return "unknown"
    configuration = blas.get("openblas configuration", "")
    return f"{blas.get('name')} {blas.get('version')} {configuration}".strip()


THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")


def _blas_threads() -> str:
    """NumPy's BLAS thread pool, and the thread settings in the environment."""
    settings = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if name in os.environ]
    return f"{harness.blas_threads()}; environment: {', '.join(settings) or 'no thread variables set'}"


def machine() -> dict[str, object]:
    """The CPU, cores, memory, NumPy's BLAS and versions, and the load when the run started."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpuinfo("model name"),
        "cpu flags (AVX)": " ".join(f for f in _cpuinfo("flags").split() if f.startswith("avx")),
        "logical cores": os.cpu_count(),
        "usable cores": usable,
        "memory": _memory(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy blas": _blas(),
        "graphc": gc.__version__,
        "BLAS threads": _blas_threads(),
        "load average at start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- numbers -------------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    """3 significant digits in ns, µs, ms or s."""
    if value is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}"


def _median_of(results: Iterable[Result], system: str) -> float | None:
    for r in results:
        if r.system == system and r.steady is not None:
            return r.steady.median
    return None


def _cell(result: Result) -> str:
    if result.status == "ok" and result.steady is not None:
        return seconds(result.steady.median)
    return result.status.upper() if result.status == "wrong" else result.status


def _spread(result: Result) -> str:
    if result.steady is None:
        return ""
    t = result.steady
    return f"±{(t.p75 - t.p25) / 2 / t.median * 100:.0f}%"


def _short(note: str) -> str:
    note = note.replace("|", "/")
    return note if len(note) <= NOTE_WIDTH else note[: NOTE_WIDTH - 1] + "…"


@dataclass(frozen=True)
class Row:
    """One measured result and its ratios within its case: what the table prints and the JSON keeps."""

    result: Result
    x_numpy: float | None
    x_jax: float | None
    x_bound: float | None


def _over(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def rows(suite: SuiteRun) -> list[Row]:
    """One row per result that is not absent (a system not installed), in run order."""
    bounds = {(c.workload, c.case): c.bound_s for c in suite.cases}
    table = []
    for r in suite.results:
        if r.status == "absent":
            continue
        same = [o for o in suite.results if (o.workload, o.case) == (r.workload, r.case)]
        median = r.steady.median if r.steady is not None else None
        numpy, jax = _median_of(same, harness.BASELINE), _median_of(same, harness.JAX)
        table.append(Row(r, _over(median, numpy), _over(median, jax), _over(median, bounds.get((r.workload, r.case)))))
    return table


def main_table(suite: SuiteRun) -> str:
    lines = [
        "| id | case | system | median | spread | ÷ NumPy | ÷ JAX | ÷ bound | first result | warm cache | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows(suite):
        r = row.result
        first = "—" if r.system.startswith(NO_FIRST_RESULT) else seconds(r.first_s)
        cells = [r.workload, r.case, r.system, _cell(r), _spread(r), ratio(row.x_numpy), ratio(row.x_jax)]
        cells += [ratio(row.x_bound), first, seconds(r.first_warm_s), _short(r.note)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bounds_table(suite: SuiteRun) -> str:
    lines = ["| case | bytes that must move | triad bandwidth | bound |", "|---|---|---:|---:|"]
    for c in suite.cases:
        if c.traffic_bytes is None or c.bandwidth_gbps is None:
            continue
        moved = f"{c.traffic_bytes / 1e6:.3g} MB: {c.traffic_note}"
        lines.append(f"| {c.workload} {c.case} | {moved} | {c.bandwidth_gbps:.1f} GB/s | {seconds(c.bound_s)} |")
    return "\n".join(lines)


def sizes_table(suite: SuiteRun) -> str:
    lines = ["| case | nodes f | nodes compiled (f + derivatives) | after optimization |", "|---|---:|---:|---:|"]
    for r in suite.results:
        if r.system == harness.GRAPHC_NUMPY and r.graph_sizes:
            s = r.graph_sizes
            lines.append(f"| {r.workload} {r.case} | {s['nodes f']} | {s['nodes compiled']} | {s['nodes optimized']} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Scaling:
    """W8 for one system: (K, first result) points, the log-log slopes between them, the superlinear flag.

    A size that timed out adds (K, the seconds it ran) as a lower bound: its slope is a
    lower bound too, marked with ≥.
    """

    points: list[tuple[float, float]]
    slopes: list[float]
    superlinear: bool
    timed_out: tuple[float, float] | None = None


def _k(result: Result) -> float:
    return float(result.case.split("=")[1].split()[0])


def scaling(suite: SuiteRun) -> dict[str, Scaling]:
    by_system: dict[str, list[tuple[float, float]]] = {}
    timeouts: dict[str, tuple[float, float]] = {}
    for r in suite.results:
        if r.workload != "W8" or r.system.startswith(NO_FIRST_RESULT):
            continue
        if r.status == "ok" and r.first_s is not None:
            by_system.setdefault(r.system, []).append((_k(r), r.first_s))
        if r.status == "timeout" and r.timed_out_s is not None:
            timeouts.setdefault(r.system, (_k(r), r.timed_out_s))
    summary = {}
    for system, points in by_system.items():
        timed_out = timeouts.get(system)
        s = slopes(points + ([timed_out] if timed_out else []))
        summary[system] = Scaling(sorted(points), s, bool(s) and s[-1] > SUPERLINEAR_SLOPE, timed_out)
    return summary


def scaling_table(suite: SuiteRun) -> str:
    summary = scaling(suite)
    if not summary:
        return ""
    ks = sorted({k for s in summary.values() for k, _ in s.points + ([s.timed_out] if s.timed_out else [])})
    lines = ["| system | " + " | ".join(f"K={k:g}" for k in ks) + " | log-log slopes | |"]
    lines.append("|---|" + "---:|" * len(ks) + "---|---|")
    for system, s in summary.items():
        at = {k: seconds(t) for k, t in s.points}
        if s.timed_out is not None:
            at[s.timed_out[0]] = f"> {seconds(s.timed_out[1])}"
        cells = [at.get(k, "—") for k in ks]
        flag = f"SUPERLINEAR (last slope > {SUPERLINEAR_SLOPE})" if s.superlinear else "linear"
        texts = [f"{x:.2f}" for x in s.slopes]
        if s.timed_out is not None and texts:
            texts[-1] = "≥ " + texts[-1]
        lines.append(f"| {system} | " + " | ".join(cells) + f" | {', '.join(texts)} | {flag} |")
    return "\n".join(lines)


def _bandwidth_notes(suite: SuiteRun) -> list[str]:
    bw = suite.bandwidth
    if bw is None:
        return []
    return [
        f"STREAM triad ({bw.kernel}): n={m.n:.0e}, {m.threads} thread(s): {m.gbps:.1f} GB/s" for m in bw.measurements
    ]


LEGEND = (
    "median: of the samples, each the mean time of enough calls to last a few ms; spread: half the interquartile "
    "range, relative to the median. ÷ NumPy, ÷ JAX: median ÷ that system's median in the same case. ÷ bound: "
    "median ÷ the memory-traffic bound. first result: build + differentiate + optimize + compile + first call "
    "(cold: first time in this process, empty compile cache); warm cache: the same again with the cache filled."
)


BUSY_LOAD = 0.5
"""A one-minute load average above this when the run starts means other work shared the cores."""


def _busy_warning() -> list[str]:
    load = os.getloadavg()[0]
    if load <= BUSY_LOAD:
        return []
    return [f"WARNING: the machine was busy when the run started (load {load:.2f}): timings are noisy", ""]


def text(suite: SuiteRun, info: dict[str, object], warnings: list[str] | None = None) -> str:
    """The whole printed report: machine, notes, the tables."""
    parts = [*(warnings or []), "## Machine", "", *[f"- {k}: {v}" for k, v in info.items()], "", "## Notes", ""]
    parts += [f"- {n}" for n in [*suite.notes, *[n for c in suite.cases for n in c.notes], *_bandwidth_notes(suite)]]
    parts += ["", "## Steady state and first result", "", main_table(suite), "", LEGEND]
    if any(c.bound_s is not None for c in suite.cases):
        parts += ["", "## Memory-traffic bound", "", bounds_table(suite)]
    parts += ["", "## Graph sizes (graphc)", "", sizes_table(suite)]
    w8 = scaling_table(suite)
    if w8:
        parts += ["", "## W8: time to first result against K", "", w8]
    parts += ["", f"Run took {suite.seconds:.0f} s (scale {suite.options.scale})."]
    return "\n".join(parts)


# --- files ---------------------------------------------------------------------------------------


def to_json(suite: SuiteRun, info: dict[str, object]) -> dict[str, object]:
    """Everything, absent systems included, ratios beside each measured result."""
    ratios = {id(row.result): row for row in rows(suite)}
    results = []
    for r in suite.results:
        record = dataclasses.asdict(r)
        row = ratios.get(id(r))
        if row is not None:
            record.update(x_numpy=row.x_numpy, x_jax=row.x_jax, x_bound=row.x_bound)
        results.append(record)
    return {
        "machine": info,
        "options": dataclasses.asdict(suite.options),
        "seconds": suite.seconds,
        "notes": suite.notes,
        "bandwidth": dataclasses.asdict(suite.bandwidth) if suite.bandwidth is not None else None,
        "cases": [dataclasses.asdict(c) for c in suite.cases],
        "results": results,
        "w8_scaling": {system: dataclasses.asdict(s) for system, s in scaling(suite).items()},
    }


def write_json(suite: SuiteRun, info: dict[str, object], path: str) -> None:
    Path(path).write_text(json.dumps(to_json(suite, info), indent=1, default=str) + "\n", encoding="utf-8")


COLORS = {
    harness.NUMPY: "black",
    harness.NUMPY_OUT: "dimgray",
    harness.GRAPHC_NUMPY: "tab:red",
    harness.GRAPHC_LLVM: "darkred",
    harness.JAX: "tab:green",
    harness.TORCH: "tab:orange",
    harness.PYTENSOR: "tab:purple",
}
"""One color per system in both panels; other systems (scipy, NumPy dense) are light gray."""


def _plot_ratios(axes: Any, suite: SuiteRun) -> None:
    table = [row for row in rows(suite) if row.x_numpy is not None and row.result.workload != "W8"]
    labels = [f"{row.result.workload} {row.result.case} · {row.result.system}" for row in table]
    colors = [COLORS.get(row.result.system, "lightgray") for row in table]
    positions = np.arange(len(table))[::-1]
    axes.barh(positions, [row.x_numpy for row in table], color=colors)
    axes.set_yticks(positions, labels, fontsize=6)
    axes.set_xscale("log")
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xlabel("steady-state time ÷ hand NumPy (log scale; left of 1 is faster)")
    axes.set_title("steady state, relative to hand-written NumPy")


def _plot_scaling(axes: Any, suite: SuiteRun) -> None:
    for system, s in scaling(suite).items():
        ks, ts = zip(*s.points, strict=True)
        color = COLORS.get(system, "lightgray")
        axes.loglog(ks, ts, marker="o", label=system, color=color)
        if s.timed_out is not None:  # a lower bound: dashed to the cap, an up-arrow there
            k, t = s.timed_out
            axes.loglog([ks[-1], k], [ts[-1], t], linestyle="--", color=color)
            axes.loglog([k], [t], marker="^", markersize=9, color=color, label=f"{system}: timed out (> {t:g} s)")
        if system == harness.GRAPHC_NUMPY:
            linear = [ts[-1] * k / ks[-1] for k in ks]
            axes.loglog(ks, linear, linestyle=":", color="gray", label=f"slope 1 through graphc numpy at K={ks[-1]:g}")
    axes.set_xlabel("K (steps)")
    axes.set_ylabel("time to first result (s)")
    axes.set_title("W8: time to first result against K (log-log)")
    axes.legend(fontsize=7)


def plot(suite: SuiteRun, path: str) -> str:
    """Draw the ratios and W8's log-log scaling into `path`; returns what happened, in one line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib, or the bench extra)"
    has_scaling = bool(scaling(suite))
    figure, panels = plt.subplots(1, 2 if has_scaling else 1, figsize=(15 if has_scaling else 9, 9), squeeze=False)
    _plot_ratios(panels[0][0], suite)
    if has_scaling:
        _plot_scaling(panels[0][1], suite)
    figure.suptitle(f"graphc bench, scale {suite.options.scale}: red is graphc")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"plot written to {path}"


# --- the command ---------------------------------------------------------------------------------


def bench(options: harness.Options, json_path: str | None = None, plot_path: str | None = None) -> int:
    """Run the suite, print the report, write the JSON and the plot; exit status 1 if anything failed."""
    info = machine()
    warnings = _busy_warning()
    suite = harness.run_suite(options, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(text(suite, info, warnings))
    if json_path:
        write_json(suite, info, json_path)
        print(f"\nJSON written to {json_path}")
    if plot_path:
        print(plot(suite, plot_path))
    bad = harness.failures(suite)
    for r in bad:
        print(f"FAILED: {r.workload} {r.case} {r.system}: {r.note}", file=sys.stderr)
    return 1 if bad else 0
