"""The benchmark suite (benchmarks/, `graphc bench`): it runs, it verifies, and it rejects wrong results.

Correctness only: no assertion here is about a time. Each workload runs at its tiny
sizes with hand NumPy, scipy and graphc (the peers are skipped to keep this fast; the
slow test runs `graphc bench --quick` with every installed system).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import graphc as gc
from graphc.cli import main

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ sits at the root: `python -m pytest` finds it, plain `pytest` not
    sys.path.insert(0, str(REPO))


def _suite(name: str) -> ModuleType:
    """A module of the repository's benchmarks/ package (first-party, though outside graphc)."""
    return importlib.import_module(f"benchmarks.{name}")


harness, report, bandwidth, checks = (_suite(name) for name in ("harness", "report", "bandwidth", "checks"))
WORKLOADS = importlib.import_module("benchmarks").WORKLOADS
Case, GraphcBuild, Impl = harness.Case, harness.GraphcBuild, harness.Impl
numpy_value_grad, rosenbrock = _suite("w2_rosenbrock").numpy_value_grad, _suite("w2_rosenbrock").rosenbrock
slopes = _suite("w8_compile_scaling").slopes

OURS = ("NumPy", "scipy", "graphc")


def run(workload: str) -> harness.SuiteRun:
    return harness.run_suite(harness.Options(scale="tiny", only=(workload,), systems=OURS))


# --- every workload ------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_workload_runs_and_every_system_is_verified(workload: str) -> None:
    suite = run(workload)
    assert suite.results, "no results"
    assert harness.failures(suite) == []
    by_status = {r.status for r in suite.results}
    assert by_status <= {"ok", "absent"}, [(r.system, r.note) for r in suite.results if r.status != "ok"]
    for case in {r.case for r in suite.results}:
        systems = {r.system for r in suite.results if r.case == case and r.status == "ok"}
        assert {harness.NUMPY, harness.GRAPHC_NUMPY} <= systems
    for r in suite.results:
        if r.status == "ok":
            assert r.error is not None and r.steady is not None and r.first_s is not None


def test_graphc_rows_carry_graph_sizes() -> None:
    suite = run("W2")
    (sizes, *_) = [r.graph_sizes for r in suite.results if r.system == harness.GRAPHC_NUMPY]
    assert sizes is not None
    assert sizes["nodes f"] < sizes["nodes compiled"]
    assert sizes["nodes optimized"] <= sizes["nodes compiled"]


def test_bandwidth_bound_is_reported_for_w2_large_and_w3() -> None:
    suite = harness.run_suite(harness.Options(scale="tiny", only=("W2", "W3"), systems=("NumPy",)))
    bounded = [c for c in suite.cases if c.bound_s is not None]
    assert [c.workload for c in bounded] == ["W2", "W3"]
    assert all(c.bound_s > 0 and c.traffic_note for c in bounded)  # type: ignore[operator]
    rows = report.rows(suite)
    assert all(row.x_bound is not None for row in rows if row.result.case in {c.case for c in bounded})


# --- verification rejects wrong results ----------------------------------------------------------


def _rosen_case(impls: list[harness.Impl]) -> harness.Case:
    x = np.linspace(-1.2, 1.4, 10)
    import scipy.optimize

    return harness.Case("W2", "test", (scipy.optimize.rosen(x), scipy.optimize.rosen_der(x)), impls)


def _off_by_a_little(x: np.ndarray) -> tuple[float, np.ndarray]:
    value, gradient = numpy_value_grad(x)
    return value, gradient * (1.0 + 1e-6)


def test_a_wrong_implementation_is_rejected_and_never_timed() -> None:
    x = np.linspace(-1.2, 1.4, 10)
    case = _rosen_case(
        [Impl("right", lambda: lambda: numpy_value_grad(x)), Impl("wrong", lambda: lambda: _off_by_a_little(x))]
    )
    right, wrong = harness.run_case(case, harness.Options(scale="tiny"), {})
    assert right.status == "ok" and right.steady is not None
    assert wrong.status == "wrong" and wrong.steady is None
    assert "off by" in wrong.note and "not timed" in wrong.note
    suite = harness.SuiteRun(harness.Options(scale="tiny"), results=[right, wrong])
    assert harness.failures(suite) == [wrong]
    assert "WRONG" in report.main_table(suite)


def test_a_wrong_graphc_graph_is_rejected() -> None:
    x = np.linspace(-1.2, 1.4, 10)

    def build() -> harness.GraphcBuild:
        v = gc.var("x", (10,))
        f = rosenbrock(v) * (1.0 + 1e-7)  # not the Rosenbrock function
        return GraphcBuild([v], f, [gc.grad(f, v)])

    case = _rosen_case(harness.graphc_impls(build, [x]))
    (result, *_) = harness.run_case(case, harness.Options(scale="tiny"), {})
    assert result.system == harness.GRAPHC_NUMPY
    assert result.status == "wrong"


@pytest.mark.parametrize(
    ("got", "message"),
    [
        ((1.0,), "1 outputs, expected 2"),
        ((1.0, np.zeros(3)), "shape"),
        ((1.0, np.array([np.nan, 0.0])), "non-finite"),
        ((1.0, np.array([0.0, 1.0 + 1e-6])), "off by"),
    ],
)
def test_verify_names_what_is_wrong(got: tuple[object, ...], message: str) -> None:
    with pytest.raises(checks.VerificationError, match=message):
        checks.verify(got, (1.0, np.array([0.0, 1.0])), rtol=1e-9)


def test_a_failing_system_is_reported_not_raised() -> None:
    def broken() -> harness.Run:
        raise RuntimeError("no such kernel")

    (result,) = harness.run_case(_rosen_case([Impl("broken", broken)]), harness.Options(scale="tiny"), {})
    assert result.status == "error" and "no such kernel" in result.note


def test_an_absent_peer_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "unavailable", lambda requirement: "not importable (test)" if requirement else None)
    x = np.linspace(-1.2, 1.4, 10)
    case = _rosen_case(
        [Impl(harness.NUMPY, lambda: lambda: numpy_value_grad(x)), Impl("JAX", lambda: 1 / 0, requires="jax")]
    )
    numpy, jax = harness.run_case(case, harness.Options(scale="tiny"), {})
    assert numpy.status == "ok"
    assert jax.status == "absent" and "not importable" in jax.note
    suite = harness.SuiteRun(harness.Options(scale="tiny"), results=[numpy, jax])
    assert [row.result.system for row in report.rows(suite)] == [harness.NUMPY]


def test_a_scaling_series_skips_sizes_past_the_cap() -> None:
    x = np.linspace(-1.2, 1.4, 10)
    case = _rosen_case([Impl("slow", lambda: lambda: numpy_value_grad(x))])
    case.size = 1000.0
    history: harness.History = {("W2", "slow"): (10.0, 1.0)}  # 1 s at size 10 -> 100 s at 1000
    (result,) = harness.run_case(case, harness.Options(scale="tiny"), history)
    assert result.status == "skipped" and "cap" in result.note


def test_an_isolated_measurement_that_does_not_end_is_killed() -> None:
    x = np.linspace(-1.2, 1.4, 10)

    def hangs() -> harness.Run:
        time.sleep(60)
        return lambda: numpy_value_grad(x)

    case = _rosen_case([harness.Impl("hangs", hangs, isolate=True)])
    budget = harness.Budget(seconds=0.0, min_samples=1, max_samples=1, batch_s=0.0, first_cap_s=0.2)
    result = harness.measure_isolated(case, case.impls[0], budget, slack_s=0.3)
    assert result.status == "timeout" and "killed" in result.note


def test_an_isolated_measurement_comes_back_verified() -> None:
    x = np.linspace(-1.2, 1.4, 10)
    case = _rosen_case([harness.Impl("right", lambda: lambda: numpy_value_grad(x), isolate=True)])
    (result,) = harness.run_case(case, harness.Options(scale="tiny"), {})
    assert result.status == "ok" and result.steady is not None


# --- pieces --------------------------------------------------------------------------------------


def test_steady_timing_takes_the_samples_it_is_asked_for() -> None:
    budget = harness.Budget(seconds=0.0, min_samples=4, max_samples=4, batch_s=1e-4, first_cap_s=1.0)
    timing = harness.time_steady(lambda: None, budget)
    assert timing.samples == 4 and timing.number >= 1
    assert timing.minimum <= timing.p25 <= timing.median <= timing.p75


def test_triad_kernel_runs_and_reports_bandwidth() -> None:
    measured = bandwidth.measure("tiny")
    assert measured.measurements and all(m.gbps > 0 for m in measured.measurements)
    assert measured.for_bytes(10**6) > 0


def test_slopes_of_a_line_and_a_square() -> None:
    assert slopes([(10.0, 1.0), (100.0, 10.0)]) == pytest.approx([1.0])
    assert slopes([(100.0, 4.0), (10.0, 0.04)]) == pytest.approx([2.0])


def test_options_reject_an_unknown_workload() -> None:
    with pytest.raises(ValueError, match="unknown workload W99"):
        harness.Options(only=("W99",))


# --- the command ---------------------------------------------------------------------------------


def test_graphc_bench_tiny_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--tiny", "--only", "W2,W6", "--systems", "NumPy,graphc", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| W2 | Rosenbrock N=10 | graphc numpy |" in printed
    assert "## Memory-traffic bound" in printed and "## Machine" in printed
    data = json.loads(out.read_text())
    assert {r["workload"] for r in data["results"]} == {"W2", "W6"}
    assert data["machine"]["cpu"] and data["bandwidth"]["measurements"]


def test_graphc_bench_rejects_an_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--tiny", "--only", "W12"]) == 2
    assert "unknown workload" in capsys.readouterr().err


def test_plot_is_written_or_explained(tmp_path: Path) -> None:
    suite = harness.run_suite(harness.Options(scale="tiny", only=("W8",), systems=("graphc numpy",)))
    message = report.plot(suite, str(tmp_path / "bench.png"))
    assert (tmp_path / "bench.png").exists() or "matplotlib is not installed" in message


@pytest.mark.slow
def test_graphc_bench_quick_runs_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    assert main(["bench", "--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {r["workload"] for r in data["results"]} == set(WORKLOADS)
    assert not [r for r in data["results"] if r["status"] == "wrong"]
