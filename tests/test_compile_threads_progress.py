"""gc.compile's threads= and progress= options, and gc.set_num_threads / gc.get_num_threads.

Threads: the count is checked (an int >= 1), defaults to the usable cores, changes the
machine code (and so the cache key), never the results. Progress: a callable hears each
stage, False is silent, None is silent for a short compile and speaks once a compile
runs past the threshold (lowered here through the module constant; nothing is timed).
"""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import pytest

import graphc as gc
from graphc import compile_options as compile_module
from graphc.compile_options import Reporter

BAD_THREADS = [(0, ValueError), (-1, ValueError), (2.5, TypeError), ("2", TypeError), (True, TypeError), (None, None)]
BIG = 1 << 19  # enough work (lower.PARALLEL_WORK) for a kernel to be shared among threads


@pytest.fixture(scope="module")
def shared_kernels() -> tuple[list[gc.Tensor], list[gc.Tensor], list[np.ndarray]]:
    """A map, a reduction to one point, a reduction along an axis and a max: each big enough to split."""
    x, y, m = gc.var("x", (BIG,)), gc.var("y", (BIG,)), gc.var("m", (512, 1024))
    outputs = [gc.sin(x) * y, gc.sum(gc.exp(x) * y), gc.sum(gc.tanh(m), axis=1), gc.max(m)]
    rng = np.random.default_rng(16)
    values = [rng.standard_normal(BIG), rng.standard_normal(BIG), rng.standard_normal((512, 1024))]
    return [x, y, m], outputs, values


def pthread_calls(fn: object) -> int:
    return fn.llvm_ir.unoptimized.count('call i32 @"pthread_create"(')  # type: ignore[attr-defined]


def test_results_are_the_same_bits_for_every_thread_count(shared_kernels, tmp_path):
    inputs, outputs, values = shared_kernels
    want = gc.evaluate(outputs, dict(zip(inputs, values, strict=True)))
    results = {}
    for threads in (1, 2, 3, None):
        fn = gc.compile(inputs, outputs, threads=threads, cache_dir=tmp_path)
        assert fn.threads == (gc.get_num_threads() if threads is None else threads)
        results[threads] = fn(*values)
    for got, expected in zip(results[1], want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    for threads in (2, 3, None):
        for got, first in zip(results[threads], results[1], strict=True):
            assert got.tobytes() == first.tobytes(), f"threads={threads} changed a result"


def test_the_thread_count_is_in_the_machine_code_and_the_cache_key(tmp_path):
    x = gc.var("x", (BIG,))
    built = {t: gc.compile([x], gc.sin(x) * 2.0, threads=t, cache_dir=tmp_path) for t in (1, 3)}
    assert pthread_calls(built[1]) == 0  # one thread: every piece runs on the caller
    assert pthread_calls(built[3]) == 2  # three pieces: two started threads
    assert not built[3]._built.cache_hit  # threads=1's object code is not taken for threads=3
    again = gc.compile([x], gc.sin(x) * 2.0, threads=3, cache_dir=tmp_path)
    assert again._built.cache_hit
    value = np.linspace(-3.0, 3.0, BIG)
    assert again(value).tobytes() == built[1](value).tobytes()  # type: ignore[union-attr]
    np.testing.assert_allclose(again(value), np.sin(value) * 2.0, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize(("bad", "error"), BAD_THREADS[:-1])
@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compile_rejects_a_bad_thread_count(bad, error, backend):
    x = gc.var("x", (3,))
    with pytest.raises(error, match=r"gc.compile: the number of threads must be"):
        gc.compile([x], [x * 2.0], backend=backend, threads=bad)


@pytest.mark.parametrize(("bad", "error"), [*BAD_THREADS[:-1], (None, TypeError)])
def test_set_num_threads_rejects_a_bad_count_and_keeps_the_old_one(bad, error):
    before = gc.get_num_threads()
    with pytest.raises(error, match=r"gc.set_num_threads: the number of threads must be"):
        gc.set_num_threads(bad)
    assert gc.get_num_threads() == before


def test_the_default_is_the_usable_cores_and_set_num_threads_changes_it():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert compile_module.usable_cores() == cores
    saved = list(compile_module._NUM_THREADS)
    try:
        compile_module._NUM_THREADS.clear()
        assert gc.get_num_threads() == cores
        gc.set_num_threads(np.int64(3))
        assert gc.get_num_threads() == 3
        x = gc.var("x", (3,))
        assert gc.compile([x], [x * 2.0], backend="numpy").threads == 3
        assert gc.compile([x], [x * 2.0], backend="numpy", threads=1).threads == 1  # the argument wins
    finally:
        compile_module._NUM_THREADS[:] = saved


# --- progress ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_a_progress_callable_hears_every_stage_then_done(backend, capsys):
    heard: list[tuple[str, int, int]] = []
    x = gc.var("x", (4,))
    fn = gc.compile([x], gc.sum(gc.exp(x)), backend=backend, progress=lambda *a: heard.append(a))
    assert heard == [("optimize", 0, 3), ("schedule", 1, 3), (backend, 2, 3), ("done", 3, 3)]
    assert fn(np.zeros(4)) == 4.0
    assert capsys.readouterr().err == ""  # a callable replaces the stderr lines


def test_progress_none_is_quiet_below_the_threshold_and_false_always(monkeypatch, capsys):
    x = gc.var("x", (4,))
    monkeypatch.setattr(compile_module, "PROGRESS_AFTER_S", 1e9)
    gc.compile([x], [x + 1.0], backend="numpy")
    monkeypatch.setattr(compile_module, "PROGRESS_AFTER_S", 0.0)
    gc.compile([x], [x + 2.0], backend="numpy", progress=False)
    assert capsys.readouterr().err == ""


def test_progress_none_speaks_once_past_the_threshold(monkeypatch, capsys):
    monkeypatch.setattr(compile_module, "PROGRESS_AFTER_S", 0.0)
    x = gc.var("x", (4,))
    gc.compile([x], [x * 3.0], backend="numpy")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[2].split(" (")[0] for line in lines[:-1]] == ["optimize", "schedule", "numpy"]
    assert lines[0].startswith("graphc: compiling 1 inputs -> 1 outputs (numpy): optimize (1/3), ")
    assert lines[-1].startswith("graphc: compiled 1 inputs -> 1 outputs (numpy) in ")


def test_progress_true_speaks_for_every_compile(capsys):
    x = gc.var("x", (4,))
    gc.compile([x], [x * 4.0], backend="numpy", progress=True)
    err = capsys.readouterr().err
    assert err.count("graphc: compiling") == 3 and err.count("graphc: compiled") == 1


def test_the_timer_reports_a_long_stage_while_it_runs():
    """A stage that starts before the threshold and runs past it is reported by the timer."""
    stream = io.StringIO()
    reporter = Reporter(None, 0.01, "a graph", stream)
    reporter.begin("optimize", 0, 3)
    spoke = threading.Event()
    for _ in range(500):  # wait for the timer's line (it fires after 0.01 s)
        if stream.getvalue():
            spoke.set()
            break
        spoke.wait(0.01)
    reporter.finish()
    lines = stream.getvalue().splitlines()
    assert spoke.is_set(), "the timer never reported the running stage"
    assert lines[0].startswith("graphc: compiling a graph: optimize (1/3), ")
    assert lines[-1].startswith("graphc: compiled a graph in ")


def test_a_failed_compile_stops_reporting(capsys):
    heard: list[tuple[str, int, int]] = []
    x, y = gc.var("x", (4,)), gc.var("y", (4,))
    with pytest.raises(gc.GraphError, match="missing from inputs"):
        gc.compile([x], [x * y], backend="numpy", progress=lambda *a: heard.append(a))
    assert heard == [("optimize", 0, 3)]  # no "done"
    with pytest.raises(gc.GraphError):
        gc.compile([x], [x * y], backend="numpy", progress=True)
    err = capsys.readouterr().err
    assert "optimize" in err and "compiled" not in err


@pytest.mark.parametrize("bad", ["yes", 1, 0.5, [print]])
def test_a_bad_progress_value_is_a_type_error(bad):
    x = gc.var("x", (4,))
    with pytest.raises(TypeError, match=r"gc.compile: progress must be None"):
        gc.compile([x], [x * 2.0], backend="numpy", progress=bad)


@pytest.mark.parametrize("flag", ["optimize", "fast_math", "cache", "check_finite"])
@pytest.mark.parametrize("bad", [1, 0, "no", None, 1.0])
def test_a_flag_takes_only_a_bool(flag, bad):
    """check_finite=1 or optimize="no" is refused by name rather than read by its truth."""
    x = gc.var("x", (4,))
    with pytest.raises(TypeError, match=rf"gc.compile: {flag} must be True or False, got {bad!r}"):
        gc.compile([x], [x * 2.0], backend="numpy", **{flag: bad})


@pytest.mark.parametrize("flag", ["optimize", "fast_math", "cache", "check_finite"])
def test_a_numpy_bool_is_a_flag(flag):
    x = gc.var("x", (4,))
    fn = gc.compile([x], x * 2.0, backend="numpy", **{flag: np.True_})
    np.testing.assert_array_equal(fn(np.arange(4.0)), np.arange(4.0) * 2.0)
