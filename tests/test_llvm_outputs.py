"""Large llvm results over recycled blocks (backends/llvm/outputs.py), and W3-shaped kernels at the edges of splitting.

A leased result must be an ordinary array whose memory no later call can touch while
any array or view over it is alive; dropped, its block serves the next call. The W3
chain (tanh, exp, log1p, a sum and a gradient in one merged kernel) is checked against
gc.evaluate at sizes around the thread split and the lease threshold, at 1 and 2 threads.
"""

from __future__ import annotations

import gc as pygc
import os
import threading
import warnings

import numpy as np
import pytest
from forks import assert_child_succeeds

import graphc as gc
from graphc.backends.arena import size_class
from graphc.backends.llvm import lower, outputs

LEASE_N = outputs.LEASED_FROM // 8  # float64 elements of the smallest leased output
W3_COST = 74  # kernels.cost of W3's merged kernel: work = n * cost decides the split


def w3(n: int) -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    x, y = gc.var("x", (n,)), gc.var("y", (n,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-(x * x)) + gc.log1p(y * y))
    return [x, y], [f, gc.grad(f, x)]


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-2.0, 2.0, n), rng.uniform(-2.0, 2.0, n)


def split_from() -> int:
    """The smallest W3 size whose kernel is split across threads."""
    return -(-lower.PARALLEL_WORK // W3_COST)


@pytest.fixture(scope="module")
def doubler() -> gc.compile:
    """x -> (2x, x + 1): two leased outputs of LEASE_N + 3 elements."""
    x = gc.var("x", (LEASE_N + 3,))
    return gc.compile([x], [x * 2.0, x + 1.0], backend="llvm", cache=False)


@pytest.mark.parametrize("threads", [1, 2])
def test_w3_kernel_at_split_and_lease_edges_matches_evaluate(threads: int) -> None:
    """Sizes 0, 1, odd, just below/at/above the split, and a leased gradient; value and d/dx against gc.evaluate.

    The gradient cancels (e((1 - t^2) y - 2 x t)): an absolute 1e-14 on terms of order one.
    """
    edge = split_from()
    for n in (0, 1, 7, edge - 1, edge, edge + 1, LEASE_N + 1):
        inputs, outs = w3(n)
        fn = gc.compile(inputs, outs, backend="llvm", cache=False, threads=threads)
        x, y = data(n, seed=n)
        x[:3] = [0.0, -0.0, 25.0][: min(n, 3)]  # +-0 and a saturated tanh at the front
        value, grad = fn(x, y)
        ref_value, ref_grad = (gc.evaluate(o, {inputs[0]: x, inputs[1]: y}) for o in outs)
        np.testing.assert_allclose(value, ref_value, rtol=1e-12, atol=1e-12, err_msg=f"n={n}")
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-13, atol=1e-14, err_msg=f"n={n}")
        assert grad.shape == (n,) and grad.flags.c_contiguous and grad.flags.writeable
        assert (grad.base is not None) == outputs.leased((n,), np.dtype(np.float64))


def test_w3_nan_and_inf_pass_through_a_leased_result() -> None:
    inputs, outs = w3(LEASE_N + 1)
    fn = gc.compile(inputs, outs, backend="llvm", cache=False)
    x, y = data(LEASE_N + 1, seed=1)
    x[[5, 9]] = [np.nan, np.inf]
    y[7] = -np.inf
    value, grad = fn(x, y)
    with np.errstate(invalid="ignore"):  # the reference's NumPy warns on inf * 0
        ref = gc.evaluate(outs[1], {inputs[0]: x, inputs[1]: y})
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(ref))
    assert np.isnan(value)


def test_a_dropped_result_is_reused_and_a_held_one_is_not(doubler) -> None:
    x = np.arange(LEASE_N + 3, dtype=np.float64)
    first, _ = doubler(x)
    address = first.ctypes.data
    del first, _
    again, other = doubler(x)
    assert address in (again.ctypes.data, other.ctypes.data)  # a block a dropped result left
    held = [again, other]
    third, fourth = doubler(x + 1.0)
    addresses = {a.ctypes.data for a in (*held, third, fourth)}
    assert len(addresses) == 4  # results alive at once never share memory
    np.testing.assert_array_equal(held[0], 2.0 * x)
    np.testing.assert_array_equal(held[1], x + 1.0)
    np.testing.assert_array_equal(third, 2.0 * (x + 1.0))


def test_a_view_keeps_its_block_from_the_next_call(doubler) -> None:
    x = np.arange(LEASE_N + 3, dtype=np.float64)
    doubled, plus = doubler(x)
    tail = doubled[-5:]
    column = plus.reshape(-1, 1)[:4, 0]
    del doubled, plus
    pygc.collect()
    for _ in range(3):  # blocks of dropped results come back; these views' must not
        a, b = doubler(-x)
        a[:] = np.nan
        b[:] = np.nan
        del a, b
    np.testing.assert_array_equal(tail, 2.0 * x[-5:])
    np.testing.assert_array_equal(column, x[:4] + 1.0)


def test_results_are_ordinary_arrays(doubler) -> None:
    x = np.linspace(-1.0, 1.0, LEASE_N + 3)
    doubled, _ = doubler(x)
    assert type(doubled) is np.ndarray and doubled.dtype == np.float64
    assert doubled.ctypes.data % 64 == 0
    doubled[0] = 42.0  # writable
    copied = np.copy(doubled)
    import pickle

    np.testing.assert_array_equal(pickle.loads(pickle.dumps(doubled)), copied)
    assert not doubled.flags.owndata


def test_workspace_limit_zero_keeps_no_idle_block(doubler) -> None:
    before = gc.get_workspace_limit()
    outputs.POOL.release()
    try:
        gc.set_workspace_limit(0)
        result = doubler(np.ones(LEASE_N + 3))
        del result
        assert outputs.POOL.idle_bytes == 0
    finally:
        gc.set_workspace_limit(before)
    result = doubler(np.ones(LEASE_N + 3))
    del result
    assert 0 < outputs.POOL.idle_bytes <= outputs.KEEP * 2 * size_class(outputs.LEASED_FROM + 24)
    outputs.POOL.release()
    assert outputs.POOL.idle_bytes == 0


def test_concurrent_python_threads_get_their_own_results(doubler) -> None:
    """Four threads call one function (and two threads counts compiled for W3) at once; every result is its own."""
    inputs, outs = w3(LEASE_N + 1)
    fns = [gc.compile(inputs, outs, backend="llvm", cache=False, threads=t) for t in (1, 2)]
    x, y = data(LEASE_N + 1, seed=2)
    ref_grad = fns[0](x, y)[1].copy()
    xd = np.arange(LEASE_N + 3, dtype=np.float64)
    errors: list[str] = []

    def work(k: int) -> None:
        for r in range(6):
            scale = float(k * 10 + r)
            d, p = doubler(xd + scale)
            g = fns[k % 2](x, y)[1]
            if not (np.array_equal(d, 2.0 * (xd + scale)) and np.array_equal(p, xd + scale + 1.0)):
                errors.append(f"doubler thread {k} round {r}")
            if not np.array_equal(g, ref_grad):
                errors.append(f"w3 thread {k} round {r}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_computes_with_inherited_and_new_blocks(doubler) -> None:
    """A child forked while a result is alive and a block idle: its calls are right, the parent's result unchanged."""
    x = np.arange(LEASE_N + 3, dtype=np.float64)
    held, idle = doubler(x)
    del idle
    inputs, outs = w3(split_from() + 5)
    fn = gc.compile(inputs, outs, backend="llvm", cache=False, threads=2)
    xs, ys = data(split_from() + 5, seed=3)
    expected = fn(xs, ys)[1].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytest's threads: fork is the point here
        pid = os.fork()
    if pid == 0:  # the child: leave without pytest's teardown
        ok = True
        for _ in range(3):
            a, b = doubler(x + 1.0)
            ok &= bool(np.array_equal(a, 2.0 * (x + 1.0)) and np.array_equal(b, x + 2.0))
            ok &= bool(np.array_equal(fn(xs, ys)[1], expected))
            held[:] = -1.0  # the child's copy of the page only
        os._exit(0 if ok else 1)
    assert_child_succeeds(pid, 60, "the forked child hung")
    np.testing.assert_array_equal(held, 2.0 * x)


def test_set_num_threads_between_compiles_keeps_results() -> None:
    """Functions compiled under different gc.set_num_threads counts give bit-identical W3 results."""
    before = gc.get_num_threads()
    n = split_from() + 3
    x, y = data(n, seed=4)
    results = []
    try:
        for count in (1, 2, 3):
            gc.set_num_threads(count)
            inputs, outs = w3(n)
            fn = gc.compile(inputs, outs, backend="llvm", cache=False)
            assert fn.threads == count
            results.append(fn(x, y))
    finally:
        gc.set_num_threads(before)
    for value, grad in results[1:]:
        assert value == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])


def test_release_workspaces_and_a_lower_limit_free_idle_result_blocks(doubler) -> None:
    before = gc.get_workspace_limit()
    held, _ = doubler(np.ones(LEASE_N + 3))  # a live result: never freed, never handed out
    for _ in range(2):
        doubler(np.ones(LEASE_N + 3))  # dropped at once: its block goes idle
    assert outputs.POOL.idle_bytes > 0
    gc.release_workspaces()
    assert outputs.POOL.idle_bytes == 0
    doubler(np.ones(LEASE_N + 3))
    assert outputs.POOL.idle_bytes > 0
    try:
        gc.set_workspace_limit(outputs.POOL.idle_bytes - 1)  # below what is idle: trimmed now, not at the next call
        assert outputs.POOL.idle_bytes + gc.workspace_stats().idle_bytes <= gc.get_workspace_limit()
    finally:
        gc.set_workspace_limit(before)
    np.testing.assert_array_equal(held, np.full(LEASE_N + 3, 2.0))
