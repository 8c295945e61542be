"""The workspace arena (graphc.backends.arena) and the compiled functions that share it."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from forks import assert_child_succeeds

import graphc as gc
from graphc.backends import arena
from graphc.backends.llvm import runtime

PAGE = arena._PAGE


@pytest.fixture(autouse=True)
def keep_the_limit() -> Iterator[None]:
    """Every test leaves the process's limit as it found it."""
    limit = gc.get_workspace_limit()
    yield
    gc.set_workspace_limit(limit)


@pytest.fixture
def private_arena(monkeypatch: pytest.MonkeyPatch) -> arena.Arena:
    """An arena of this test's own: functions compiled during the test take their workspaces there."""
    mine = arena.Arena(limit=1 << 40)
    monkeypatch.setattr(runtime, "ARENA", mine)
    monkeypatch.setattr(arena, "ARENA", mine)  # what gc.release_workspaces and gc.workspace_stats read
    return mine


def workload(n: int) -> tuple[gc.Tensor, list[gc.Tensor]]:
    """A value, an elementwise result and a gradient of an n-vector: temporaries, so a workspace."""
    x = gc.var("x", (n,))
    y = gc.tanh(x) * gc.exp(-x)
    return x, [gc.sum(y * gc.sin(y)), y * 2.0, gc.grad(gc.sum(y * y), x)]


def llvm(inputs: list[gc.Tensor], outputs: list[gc.Tensor]) -> gc.compile:
    return gc.compile(inputs, outputs, backend="llvm")


def expected_of(x: gc.Tensor, outputs: list[gc.Tensor], value: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(r) for r in gc.evaluate(outputs, {x: value})]


def assert_close(got: tuple[np.ndarray, ...], expected: list[np.ndarray]) -> None:
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-300)


def poison(a: arena.Arena, sizes: tuple[int, ...]) -> None:
    """Fill idle blocks of these sizes with NaN bytes (0xFF): a call must not read what it did not write."""
    blocks = [a.take(n) for n in sizes]
    for block in blocks:
        block[:] = 0xFF
    for block in reversed(blocks):
        a.give(block)


# --- the arena alone -----------------------------------------------------------------------------------------


def test_size_classes_fit_round_to_pages_and_waste_at_most_a_quarter() -> None:
    sizes = [0, 1, PAGE - 1, PAGE, PAGE + 1, 5 * PAGE + 3, 1 << 20, (1 << 20) + 1, 3 * (1 << 30) + 7]
    classes = [arena.size_class(n) for n in sizes]
    for n, c in zip(sizes, classes, strict=True):
        assert c >= max(n, 1) and c % PAGE == 0
        assert c <= max(PAGE, 1.25 * n + PAGE)
    assert classes == sorted(classes)
    assert arena.size_class(1 << 20) == 1 << 20
    assert arena.size_class((1 << 20) + 1) == (1 << 20) + (1 << 18)


def test_take_the_smallest_fit_and_a_miss_supersedes_the_smaller_idle_blocks() -> None:
    a = arena.Arena(limit=1 << 40)
    small, large = a.take(10 * PAGE), a.take(100 * PAGE)
    assert (a.hits, a.misses, a.in_use_blocks) == (0, 2, 2)
    a.give(large)
    a.give(small)
    assert a.stats().idle_blocks == 2 and a.in_use_bytes == 0
    again = a.take(5 * PAGE)
    assert again is small  # the smallest idle block that fits, not the large one
    a.give(again)
    assert a.take(50 * PAGE) is large
    a.give(large)
    bigger = a.take(200 * PAGE)  # nothing idle fits: a new block, and the smaller idle ones are freed
    assert a.stats().idle_blocks == 0 and a.misses == 3
    a.give(bigger)
    assert a.take(PAGE) is bigger  # one block serves every size up to the largest
    a.give(bigger)
    stats = a.stats()
    assert (stats.idle_blocks, stats.idle_bytes, stats.in_use_blocks, stats.hits) == (1, bigger.nbytes, 0, 3)
    assert stats.peak_bytes == bigger.nbytes  # the superseded blocks were freed before the new one was mapped


def test_the_limit_frees_idle_blocks_smallest_first() -> None:
    a = arena.Arena(limit=1 << 40)
    blocks = [a.take(k * PAGE) for k in (1, 2, 3)]
    for block in blocks:
        a.give(block)
    a.set_limit(3 * PAGE + 1)  # room for the largest only
    assert a.stats().idle_blocks == 1 and a.take(PAGE) is blocks[2]
    a.set_limit(0)
    a.give(blocks[2])  # limit 0: freed as it comes back
    assert (a.idle_bytes, a.stats().idle_blocks, a.in_use_blocks) == (0, 0, 0)
    a.set_limit(1 << 40)
    one = a.take(PAGE)
    a.give(one)
    a.release()
    assert a.stats().idle_blocks == 0 and a.limit == 1 << 40


def test_a_workspace_the_system_cannot_map_is_a_memory_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(arena.mmap, "mmap", refuse)
    a = arena.Arena(limit=1 << 40)
    with pytest.raises(MemoryError, match="workspace of 8,192 bytes"):
        a.take(2 * PAGE)
    assert (a.in_use_blocks, a.idle_bytes, a.misses) == (0, 0, 1)


def test_a_reentrant_take_while_the_lock_is_held_does_not_deadlock() -> None:
    """A finalizer or signal handler may call a compiled function in the middle of a take or give."""
    a = arena.Arena(limit=1 << 40)
    with a._lock:
        block = a.take(PAGE)
        a.give(block)
    assert a.take(PAGE) is block


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_a_free_lock_while_a_thread_holds_it() -> None:
    """A thread holds the arena's lock while the main thread forks: the child must not deadlock taking a block."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with arena.ARENA._lock:
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running: the point here
            pid = os.fork()
        if pid == 0:  # the child: take and give a block, then leave without running pytest's teardown
            block = arena.ARENA.take(PAGE)
            arena.ARENA.give(block)
            os._exit(0 if arena.ARENA.in_use_blocks == 0 else 1)
    finally:
        done.set()
        holder.join()
    assert_child_succeeds(pid, 30, "the forked child deadlocked on the arena's lock")


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (True, TypeError), (1.5, TypeError), ("1", TypeError), (None, TypeError)],
)
def test_set_workspace_limit_rejects_what_is_not_a_count_of_bytes(value: object, error: type[Exception]) -> None:
    before = gc.get_workspace_limit()
    with pytest.raises(error, match=r"gc\.set_workspace_limit"):
        gc.set_workspace_limit(value)  # type: ignore[arg-type]
    assert gc.get_workspace_limit() == before
    gc.set_workspace_limit(np.int64(12345))
    assert gc.get_workspace_limit() == 12345 and type(gc.get_workspace_limit()) is int


def test_an_int_that_lies_about_its_sign_is_still_refused() -> None:
    class Liar(int):
        def __lt__(self, other: object) -> bool:
            return False

    with pytest.raises(ValueError, match="-5"):
        gc.set_workspace_limit(Liar(-5))


def test_public_names() -> None:
    assert {"set_workspace_limit", "get_workspace_limit", "workspace_stats", "release_workspaces"} <= set(gc.__all__)
    assert gc.get_workspace_limit() > 0
    stats = gc.workspace_stats()
    assert isinstance(stats, gc.WorkspaceStats) and stats.limit == gc.get_workspace_limit()


# --- compiled functions -------------------------------------------------------------------------------------


def test_a_large_workspace_comes_from_the_arena_and_results_are_bit_identical_to_the_pool(
    private_arena: arena.Arena, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, outputs = workload(1 << 16)
    shared = llvm([x], outputs)
    assert shared._built.plan.workspace_bytes >= runtime.SHARED_FROM
    assert "take(" in shared.source and "give(w)" in shared.source and "pool" not in shared.source
    monkeypatch.setattr(runtime, "SHARED_FROM", 1 << 62)
    pooled = llvm([x], outputs)
    assert "pool.pop()" in pooled.source
    value = np.linspace(-2.0, 3.0, 1 << 16)
    reference = pooled(value)
    assert_close(reference, expected_of(x, outputs, value))
    poison(private_arena, (shared._built.plan.workspace_bytes,))
    for _ in range(2):
        got = shared(value)
        assert all(np.array_equal(g, r) for g, r in zip(got, reference, strict=True))
    stats = private_arena.stats()
    assert (stats.in_use_blocks, stats.idle_blocks, stats.hits, stats.misses) == (0, 1, 2, 1)  # poison missed


@pytest.mark.parametrize("n", [0, 1, 7, 3000])
def test_every_size_through_the_arena_after_garbage(
    n: int, private_arena: arena.Arena, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SHARED_FROM = 1: every workspace comes from the arena, over blocks full of NaN bytes."""
    monkeypatch.setattr(runtime, "SHARED_FROM", 1)
    x, outputs = workload(n)
    fn = llvm([x], outputs)
    value = np.linspace(-2.0, 3.0, n)
    expected = expected_of(x, outputs, value)
    if fn._built.plan.workspace_bytes:
        assert "take(" in fn.source
        poison(private_arena, (fn._built.plan.workspace_bytes,))
    first = fn(value)
    assert_close(first, expected)
    assert all(np.array_equal(a, b) for a, b in zip(fn(value), first, strict=True))
    assert private_arena.in_use_blocks == 0


def test_results_never_alias_the_arena_and_outlive_release(private_arena: arena.Arena) -> None:
    x, outputs = workload(1 << 16)
    fn = llvm([x], outputs)
    value = np.linspace(-1.0, 1.0, 1 << 16)
    first = fn(value)
    kept = [r.copy() for r in first]
    block = private_arena._idle[0]
    assert not any(np.shares_memory(r, block) for r in first)
    fn(value * 3.0)  # the next call reuses the block; the earlier results stay as they were
    assert all(np.array_equal(r, k) for r, k in zip(first, kept, strict=True))
    fn.release()
    assert private_arena.stats().idle_blocks == 0
    assert all(np.array_equal(r, k) for r, k in zip(first, kept, strict=True))
    again = fn(value)  # released, then called again: a fresh block, the same results
    assert all(np.array_equal(r, k) for r, k in zip(again, kept, strict=True))


def test_limit_zero_and_a_workspace_beyond_the_limit_still_work(private_arena: arena.Arena) -> None:
    x, outputs = workload(1 << 16)
    fn = llvm([x], outputs)
    value = np.linspace(-1.0, 1.0, 1 << 16)
    reference = fn(value)
    for limit in (0, PAGE):  # always free; and a limit smaller than this function's workspace
        private_arena.set_limit(limit)
        misses = private_arena.misses
        for _ in range(2):
            got = fn(value)
            assert all(np.array_equal(g, r) for g, r in zip(got, reference, strict=True))
            stats = private_arena.stats()
            assert (stats.idle_bytes, stats.in_use_blocks) == (0, 0)
        assert private_arena.misses == misses + 2  # nothing was kept between the calls


def test_live_functions_share_one_block_instead_of_each_pinning_theirs(private_arena: arena.Arena) -> None:
    """Four functions with workspaces of different sizes, called in turn: the arena holds one block."""
    functions = []
    for k, n in enumerate((1 << 15, 1 << 17, 1 << 16, 3 << 15)):
        x, outputs = workload(n)
        fn = llvm([x], outputs[: k % 2 + 2])
        functions.append((fn, np.linspace(-1.0, 1.0, n)))
    largest = max(fn._built.plan.workspace_bytes for fn, _ in functions)
    assert min(fn._built.plan.workspace_bytes for fn, _ in functions) < largest // 2
    for _ in range(2):
        for fn, value in functions:
            fn(value)
    stats = private_arena.stats()
    assert stats.idle_blocks == 1 and stats.idle_bytes == arena.size_class(largest)
    assert stats.peak_bytes <= 2 * arena.size_class(largest)  # one block, and the one it superseded
    assert stats.hits >= 6


def test_an_error_gives_the_block_back(private_arena: arena.Arena, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "SHARED_FROM", 1)
    a = gc.var("a", (50,))
    i = gc.var("i", (3,), dtype="int64")
    fn = llvm([a, i], [gc.take(gc.exp(a) * 2.0, i), gc.sum(gc.tanh(a))])
    assert "take(" in fn.source
    value = np.linspace(0.0, 1.0, 50)
    with pytest.raises(IndexError):
        fn(value, np.array([0, 99, 1]))
    assert private_arena.in_use_blocks == 0 and private_arena.stats().idle_blocks == 1
    got = fn(value, np.array([0, -1, 1]))
    np.testing.assert_allclose(got[0], np.exp(value)[[0, -1, 1]] * 2.0, rtol=1e-14)


def test_a_misaligned_argument_calls_again_while_holding_its_block(private_arena: arena.Arena) -> None:
    """The MISALIGNED path re-enters the wrapper inside the call: it must take a second block, not share one."""
    x, outputs = workload(1 << 16)
    fn = llvm([x], outputs)
    value = np.linspace(-1.0, 1.0, 1 << 16)
    raw = np.zeros(value.nbytes + 8, np.uint8)
    misaligned = np.ndarray(value.shape, np.float64, buffer=raw, offset=1)
    misaligned[:] = value
    held = record_blocks(fn)
    got = fn(misaligned)
    assert all(np.array_equal(g, r) for g, r in zip(got, fn(value), strict=True))
    assert held.most == 2 and private_arena.in_use_blocks == 0


class Recorder:
    """Wraps a function's take/give: fails if a block is handed out while a call holds it."""

    def __init__(self, take: Callable[[int], np.ndarray], give: Callable[[np.ndarray], None]) -> None:
        self._take, self._give = take, give
        self.live: set[int] = set()
        self.lock = threading.Lock()
        self.most = 0
        self.shared = 0

    def take(self, nbytes: int) -> np.ndarray:
        block = self._take(nbytes)
        with self.lock:
            self.shared += id(block) in self.live
            self.live.add(id(block))
            self.most = max(self.most, len(self.live))
        return block

    def give(self, block: np.ndarray) -> None:
        with self.lock:
            self.live.discard(id(block))
        self._give(block)


def record_blocks(*functions: gc.compile) -> Recorder:
    """One recorder around the arena calls of these functions' wrappers."""
    namespace = functions[0]._built.function.__globals__
    recorder = Recorder(namespace["take"], namespace["give"])
    for fn in functions:
        fn._built.function.__globals__.update(take=recorder.take, give=recorder.give)
    return recorder


def test_threads_calling_two_functions_and_the_same_one_never_share_a_block(private_arena: arena.Arena) -> None:
    n = 1 << 18  # enough work that the native call releases the GIL, so calls overlap
    x, outputs = workload(n)
    first = llvm([x], outputs)
    second = llvm([x], [outputs[0] * 3.0, gc.cos(outputs[2])])
    values = [np.linspace(-1.0, 1.0, n) * (k + 1) for k in range(4)]
    expected = {(fn, k): fn(values[k]) for fn in (first, second) for k in range(4)}
    recorder = record_blocks(first, second)
    start = threading.Barrier(6)
    failures = []

    def work(which: int) -> None:
        fn = (first, second)[which % 2]
        start.wait()
        for k in [0, 1, 2, 3, 0, 1]:
            got = fn(values[k])
            if not all(np.array_equal(g, e) for g, e in zip(got, expected[fn, k], strict=True)):
                failures.append((which, k))

    threads = [threading.Thread(target=work, args=(which,)) for which in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert recorder.shared == 0
    assert recorder.most >= 2, "the calls did not overlap: nothing was tested"
    stats = private_arena.stats()
    assert stats.in_use_blocks == 0 and stats.idle_blocks <= 6


def test_release_on_every_backend_and_on_named_dimensions(private_arena: arena.Arena) -> None:
    x, outputs = workload(1 << 12)
    value = np.linspace(-1.0, 1.0, 1 << 12)
    expected = expected_of(x, outputs, value)
    numpy_fn = gc.compile([x], outputs, backend="numpy")
    first = numpy_fn(value)
    assert numpy_fn._built.pool  # the fused regions' buffer set is kept between calls
    numpy_fn.release()
    assert numpy_fn._built.pool == []
    assert_close(numpy_fn(value), expected)
    assert all(np.array_equal(a, b) for a, b in zip(numpy_fn(value), first, strict=True))
    xs = gc.var("x", ("n",))
    ys = gc.tanh(xs) * gc.exp(-xs)
    named = gc.compile([xs], [gc.sum(ys * gc.sin(ys)), ys * 2.0, gc.grad(gc.sum(ys * ys), xs)], backend="llvm")
    named(value)
    named.release()
    assert private_arena.stats().idle_blocks == 0
    assert_close(named(value), expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_childs_writes_into_an_inherited_block_stay_in_the_child() -> None:
    """Blocks are private mappings: a child writing into an idle block it inherited leaves the parent's bytes alone."""
    private_arena = arena.Arena(1 << 30)
    block = private_arena.take(PAGE)
    block[:] = 7
    private_arena.give(block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytest may run threads: fork is the point here
        pid = os.fork()
    if pid == 0:  # the child: overwrite the inherited block, then leave without pytest's teardown
        taken = private_arena.take(PAGE)
        taken[:] = 9
        os._exit(0 if taken is block else 1)
    assert_child_succeeds(pid, 30, "the forked child hung")
    assert (block == 7).all()
