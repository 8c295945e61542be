"""The llvm backend's wrapper and machinery: argument checks, fresh results, IR, views, threads, cache, memory."""

from __future__ import annotations

import ctypes
import gc as pygc
import itertools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from paramids import stable_repr

import graphc as gc
from graphc.backends.llvm import lower, pyentry, runtime
from graphc.backends.llvm.kernels import Map, Reduce

REPO = Path(__file__).resolve().parents[1]
X = np.array([1.0, 2.0, 3.0])


def llvm(inputs: object, outputs: object, **options: object) -> gc.compile:
    options.setdefault("cache", False)
    return gc.compile(inputs, outputs, backend="llvm", **options)


# --- calls ----------------------------------------------------------------------------------------------


def test_outputs_single_tuple_and_none(model) -> None:
    x, s, f = model
    one = llvm([x, s], f)(X, 0.5)
    assert isinstance(one, np.ndarray)
    assert (one.shape, one.dtype) == ((), np.float64)
    np.testing.assert_allclose(one, gc.evaluate(f, {x: X, s: 0.5}), rtol=1e-15)
    listed = llvm([x, s], [f])(X, 0.5)
    assert isinstance(listed, tuple)
    assert len(listed) == 1
    assert llvm([x], [])(X) == ()


def test_argument_count_keywords_and_names(model) -> None:
    x, s, f = model
    fn = llvm([x, s], f)
    with pytest.raises(TypeError, match=r"2 arguments \(x: f64\[3\], s: f64\[\]\)"):
        fn(X)
    with pytest.raises(TypeError, match="no input named 'y'"):
        fn(X, y=0.5)
    assert fn(x=X, s=0.5) == fn(X, 0.5)


def test_wrong_shapes_and_zero_d_arrays_name_the_input(model) -> None:
    x, s, f = model
    fn = llvm([x, s], f)
    with pytest.raises(ValueError, match=r"'x'.*\(3,\).*\(4,\)"):
        fn(np.zeros(4), 0.5)
    with pytest.raises(ValueError, match=r"'s'.*\(\).*\(1,\)"):
        fn(X, np.zeros(1))
    with pytest.raises(ValueError, match="'x'"):
        fn(np.array(1.0), 0.5)  # a 0-d array is not a vector
    assert fn(X, np.array(0.5)) == fn(X, 0.5)  # a 0-d array is a scalar


def test_dtypes_follow_the_numpy_backend_rules() -> None:
    x = gc.var("x", (2,))
    w = gc.var("w", (2,), dtype="float32")
    n = gc.var("n", (), dtype="int64")
    b = gc.var("b", (), dtype="bool")
    fn = llvm([x, w, n, b], [x + 1, w * 2, n + 1, gc.logical_not(b) if hasattr(gc, "logical_not") else b])
    good = [
        (np.ones(2, np.float32), [1.0, 2.0], 1, True),
        (np.ones(2, np.int64), np.ones(2, np.float16), np.int32(3), np.bool_(False)),
        ((True, 2.5), (1, 2**40), 2**40, np.array(True)),
        (np.ones(2, ">f8"), np.ones(2, np.float32), 7, 1 > 0),
    ]
    for args in good:
        results = fn(*args)
        assert [r.dtype for r in results] == [np.float64, np.float32, np.int64, np.bool_]
        assert results[0].tolist() == (np.asarray(args[0], np.float64) + 1).tolist()
    bad = [
        ("w", (X[:2], np.ones(2), 1, True)),
        ("n", (X[:2], np.ones(2, np.float32), 1.5, True)),
        ("n", (X[:2], np.ones(2, np.float32), 2**70, True)),
        ("b", (X[:2], np.ones(2, np.float32), 1, 1)),
        ("x", (np.ones(2, complex), np.ones(2, np.float32), 1, True)),
        ("x", (None, np.ones(2, np.float32), 1, True)),
        ("x", ([[1.0], [2.0, 3.0]], np.ones(2, np.float32), 1, True)),
    ]
    for name, args in bad:
        with pytest.raises(TypeError, match=f"'{name}'"):
            fn(*args)


@pytest.mark.parametrize("junk", [{}, object(), "ab", b"ab", np.float64, [None, None]], ids=stable_repr)
def test_malformed_arguments_raise_cleanly(model, junk: object) -> None:
    x, s, f = model
    fn = llvm([x, s], f)
    with pytest.raises((TypeError, ValueError)):
        fn(junk, 0.5)
    with pytest.raises((TypeError, ValueError)):
        fn(X, junk)


def test_non_contiguous_read_only_unaligned_and_fortran_inputs() -> None:
    m = gc.var("m", (3, 4))
    v = gc.var("v", (4,))
    fn = llvm([m, v], [m * v, m.T @ m, gc.sum(m, axis=0)])
    matrix = np.arange(12.0).reshape(3, 4) / 7
    vector = np.arange(4.0) - 1.5
    expected = fn(matrix.copy(), vector.copy())
    frozen = matrix.copy()
    frozen.setflags(write=False)
    raw = np.zeros(12 * 8 + 1, np.uint8)
    unaligned = np.ndarray((3, 4), np.float64, buffer=raw, offset=1)
    unaligned[...] = matrix
    for args in [
        (np.asfortranarray(matrix), vector),
        (np.repeat(matrix, 2, axis=1)[:, ::2], np.repeat(vector, 3)[::3]),
        (frozen, vector),
        (unaligned, vector),
    ]:
        for g, e in zip(fn(*args), expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-14)


def test_results_are_fresh_and_never_alias() -> None:
    x = gc.var("x", (2, 3))
    s = gc.var("s")
    c = gc.const(np.arange(3.0))
    y = gc.exp(x)
    outputs = [x, x, c, c, y, y, y.reshape(6), y.T, y[0], gc.broadcast_to(s, (2, 2)), s, x[1], c + 0.0]
    fn = llvm([x, s], outputs)
    arg = np.ones((2, 3))
    scalar = np.asarray(2.0)
    results = fn(arg, scalar)
    expected = gc.evaluate(outputs, {x: arg, s: scalar})
    for r, e in zip(results, expected, strict=True):
        np.testing.assert_allclose(r, e, rtol=1e-15)
    for a, b in itertools.combinations([*results, arg, scalar], 2):
        assert not np.shares_memory(a, b)
    for r in results:
        assert r.flags.writeable and r.flags.c_contiguous
        r[...] = -1.0
    again = fn(arg, scalar)
    assert again[2].tolist() == [0.0, 1.0, 2.0]  # the constant was not overwritten
    assert not np.shares_memory(again[4], results[4])  # a new call, new arrays


def test_empty_arrays() -> None:
    x = gc.var("x", (0, 3))
    fn = llvm([x], [x * 2, gc.sum(x, axis=0), gc.sum(x, axis=1), gc.max(x, axis=1), x.T @ x])
    results = fn(np.zeros((0, 3)))
    assert [r.shape for r in results] == [(0, 3), (3,), (0,), (0,), (3, 3)]
    assert results[1].tolist() == [0.0] * 3
    assert results[4].tolist() == [[0.0] * 3] * 3


def test_calls_from_several_python_threads_at_once() -> None:
    x = gc.var("x", (1000,))
    fn = llvm([x], [gc.sum(gc.tanh(x) * x), gc.exp(x)])
    inputs = [np.linspace(-1, 1, 1000) * k for k in range(8)]
    expected = [fn(v) for v in inputs]
    failures = []

    def work(k: int) -> None:
        for _ in range(200):
            got = fn(inputs[k])
            if not all(np.array_equal(g, e) for g, e in zip(got, expected[k], strict=True)):
                failures.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_concurrent_callers_then_idle_keep_a_bounded_number_of_workspaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """8 threads calling at once, then nobody: the pool keeps at most POOL_LIMIT (< 8) workspaces.

    A workspace this large comes from the shared arena (tests/test_arena.py); SHARED_FROM
    raised past it takes the function's own pool, which this test is about.
    """
    monkeypatch.setattr(runtime, "SHARED_FROM", 1 << 62)
    n = 1 << 20
    x = gc.var("x", (n,))
    y = gc.tanh(x) * gc.exp(-x)
    fn = llvm([x], [gc.sum(y * gc.sin(y)), y * 2.0, gc.grad(gc.sum(y * y), x)])  # temporaries: a workspace
    namespace = fn._built.function.__globals__
    pool = namespace["pool"]
    assert fn._built.plan.workspace_bytes >= n * 8
    made = []
    allocate = namespace["workspace"]
    namespace["workspace"] = lambda: made.append(1) or allocate()
    value = np.linspace(-1, 1, n)
    expected = fn(value)
    start = threading.Barrier(8)
    failures = []

    def work() -> None:
        start.wait()
        for _ in range(3):
            got = fn(value)
            if not all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True)):
                failures.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(made) > runtime.POOL_LIMIT, "the calls did not overlap: nothing was tested"
    assert runtime.POOL_LIMIT < 8
    assert len(pool) <= runtime.POOL_LIMIT


def test_the_native_builtin_keeps_its_method_definition_alive() -> None:
    """CPython reads the PyMethodDef while freeing the builtin: it owns it (`self`), as bytes the GC never clears."""
    x = gc.var("x", (3,))
    fn = llvm([x], x * 2.0)
    if not pyentry.available():
        pytest.skip("no CPython C API: the entry is a ctypes function")
    entry = fn._built.function.__globals__["entry"]
    definition = entry.__self__
    assert isinstance(definition, bytes) and len(definition) == ctypes.sizeof(pyentry.PyMethodDef)
    assert not pygc.is_tracked(definition)  # the garbage collector can never clear it before the builtin
    del fn
    pygc.collect()
    for _ in range(10):  # namespaces freed through the garbage collector, as the test suite does
        g = llvm([x], x * 3.0)
        g(np.ones(3))
        del g
    pygc.collect()


# --- what the code looks like ------------------------------------------------------------------------------


def test_llvm_ir_shows_both_listings_deterministically() -> None:
    x = gc.var("x", (1000,))
    y = gc.var("y", (1000,))
    fn = llvm([x, y], gc.exp(x) * y + 1.0)
    text = fn.llvm_ir
    assert "; ---- optimized ----" in text and "; ---- unoptimized ----" in text
    assert 'define i32 @"graphc_entry"' in text.unoptimized
    assert "<4 x double>" in text.optimized or "<8 x double>" in text.optimized  # the loop is vectorized
    assert llvm([x, y], gc.exp(x) * y + 1.0).llvm_ir.unoptimized == text.unoptimized
    with pytest.raises(AttributeError, match="llvm"):
        _ = gc.compile([x, y], x + y, backend="numpy").llvm_ir


def test_views_read_through_strides_without_copies() -> None:
    a = gc.var("a", (50, 40))
    b = gc.var("b", (40,))
    outputs = [a.T * 2.0, gc.broadcast_to(b, (50, 40)) + a, a[::-3, 1::2] - 1.0, a.reshape(40, 50) * 3.0]
    fn = llvm([a, b], outputs, optimize=False)
    kernels = fn._built.plan.kernels
    assert len(kernels) == len(outputs)  # one loop nest per result, no copy of any view
    assert all(isinstance(k, Map) for k in kernels)
    assert any(0 in layout.strides for k in kernels for layout in k.operands)  # broadcast: stride 0
    values = [np.random.default_rng(0).normal(size=(50, 40)), np.arange(40.0)]
    for g, e in zip(fn(*values), gc.evaluate(outputs, dict(zip([a, b], values, strict=True))), strict=True):
        assert g.tobytes() == e.tobytes()


def test_large_regions_run_on_two_threads_and_small_ones_on_one() -> None:
    n = 1 << 20
    x = gc.var("x", (n,))
    y = gc.var("y", (3,))
    big = llvm([x], [gc.tanh(x) * 2.0, gc.sum(gc.exp(-x * x))])
    small = llvm([y], [gc.tanh(y) * 2.0, gc.sum(gc.exp(-y * y))])
    assert "pthread_create" in big.llvm_ir.unoptimized or not lower.threads_available()
    assert "pthread_create" not in small.llvm_ir.unoptimized
    if pyentry.available():  # a long call lets other Python threads run; a short one keeps the GIL
        assert "PyEval_SaveThread" in big.llvm_ir.unoptimized
        assert "PyEval_SaveThread" not in small.llvm_ir.unoptimized
    value = np.random.default_rng(1).normal(size=n)
    got = big(value)
    np.testing.assert_allclose(got[0], np.tanh(value) * 2.0, rtol=1e-15)
    np.testing.assert_allclose(got[1], np.sum(np.exp(-value * value)), rtol=1e-12)
    kernels = big._built.plan.kernels
    assert any(isinstance(k, Reduce) and k.lanes > 1 for k in kernels)


# --- cache -------------------------------------------------------------------------------------------------

PROGRAM = textwrap.dedent(
    """
    import sys
    import numpy as np
    import graphc as gc
    x = gc.var("x", (300, 8))
    w = gc.var("w", (8, 4))
    f = gc.sum(gc.tanh(x @ w) ** 2)
    fn = gc.compile([x, w], [f, gc.grad(f, w)], backend="llvm", cache_dir=sys.argv[1])
    v, g = fn(np.linspace(-1, 1, 2400).reshape(300, 8), np.ones((8, 4)) / 8)
    print(fn._built.cache_hit, repr(float(v)), repr(float(g.sum())))
    """
)


def run_program(cache_dir: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(cache_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return done.stdout.split()


def test_a_second_process_hits_the_cache_and_a_damaged_entry_is_rebuilt(cache_dir: Path) -> None:
    first = run_program(cache_dir)
    assert first[0] == "False"
    entries = list(cache_dir.glob("*.o"))
    assert len(entries) == 1
    second = run_program(cache_dir)
    assert second == ["True", *first[1:]]
    entries[0].write_bytes(entries[0].read_bytes()[:-10] + b"0123456789")  # damaged in place
    third = run_program(cache_dir)
    assert third == ["False", *first[1:]]
    assert run_program(cache_dir)[0] == "True"  # rebuilt and stored again


def test_cache_location_and_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = gc.var("x", (5,))
    off = tmp_path / "off"
    gc.compile([x], x * 3.0, backend="llvm", cache=False, cache_dir=off)
    assert not off.exists()
    chosen = tmp_path / "chosen"
    fn = gc.compile([x], x * 3.0, backend="llvm", cache_dir=chosen)
    assert len(list(chosen.glob("*.o"))) == 1
    assert gc.compile([x], x * 3.0, backend="llvm", cache_dir=chosen)._built.cache_hit
    env = tmp_path / "env"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(env))
    gc.compile([x], x * 4.0, backend="llvm")
    assert len(list(env.glob("*.o"))) == 1
    assert fn(np.ones(5)).tolist() == [3.0] * 5


# --- memory ------------------------------------------------------------------------------------------------


def resident_bytes() -> int:
    """This process's resident set size (Linux), else the peak from getrusage."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_ten_thousand_calls_do_not_grow_memory() -> None:
    x = gc.var("x", (100,))
    i = gc.var("i", (5,), dtype="int64")
    f = gc.sum(gc.take(gc.tanh(x), i, axis=0) ** 2)
    fn = llvm([x, i], [f, gc.grad(f, x)])
    value, index = np.linspace(-1, 1, 100), np.array([1, 5, -1, 0, 7])
    for _ in range(1000):
        fn(value, index)
    before = resident_bytes()
    for _ in range(10_000):
        fn(value, index)
    with pytest.raises(IndexError):
        for _ in range(100):
            fn(value, np.array([0, 0, 0, 0, 100]))
    assert resident_bytes() - before < 8 * 2**20


def test_two_hundred_compiles_do_not_grow_memory() -> None:
    """200 cache-miss compiles: under 10 MiB (each leaked ~0.1 MB when llvmlite's pass manager was never freed)."""
    x = gc.var("x", (16,))

    def compile_once(k: int) -> None:
        fn = llvm([x], [gc.exp(x) * float(k % 7), gc.sum(x * x)])
        fn(np.ones(16))

    for k in range(20):
        compile_once(k)
    pygc.collect()
    before = resident_bytes()
    for k in range(200):
        compile_once(k)
    pygc.collect()
    assert resident_bytes() - before < 10 * 2**20


def test_inputs_named_like_the_wrapper_internals() -> None:
    names = ["w", "empty", "entry", "pool", "status", "r0", "ndarray", "prepare", "fail", "workspace", "float64"]
    inputs = [gc.var(name, (2,)) for name in names]
    total = inputs[0]
    for k, v in enumerate(inputs[1:], start=2):
        total = total + float(k) * v
    fn = llvm(inputs, [gc.exp(total), total * 2.0])
    values = [np.full(2, 0.01 * k) for k in range(len(names))]
    expected = sum((k + 1) * 0.01 * k for k in range(len(names)))
    got = fn(*values)
    np.testing.assert_allclose(got[1], [2 * expected] * 2, rtol=1e-14)
