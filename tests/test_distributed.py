"""graphc.distributed.map_reduce on a LocalCluster of worker processes, against single-process results.

One cluster (2 worker processes, 1 thread each) serves the whole module: starting one costs
seconds. The test that restarts a worker runs last. The distributed_training example runs
against the same cluster through its --scheduler option.
"""

from __future__ import annotations

import importlib
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
from graphc import distributed as gd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ROWS, FEATURES, HIDDEN, CLASSES = 600, 5, 7, 3


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    )  # fmt: skip
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def mlp(rows: int | str) -> tuple[list[gc.Tensor], list[gc.Tensor], gc.Tensor]:
    """(params, [X, Y], mean cross-entropy over `rows` rows, or a named dimension) of a small tanh MLP."""
    X, Y = gc.var("X", (rows, FEATURES)), gc.var("Y", (rows,), "int64")
    W1, b1, W2 = gc.var("W1", (FEATURES, HIDDEN)), gc.var("b1", (HIDDEN,)), gc.var("W2", (HIDDEN, CLASSES))
    logits = gc.tanh(X @ W1 + b1) @ W2
    loss = -gc.mean(gc.sum(gc.log_softmax(logits, axis=-1) * gc.one_hot(Y, CLASSES), axis=-1))
    return [W1, b1, W2], [X, Y], loss


def loss_and_grads(rows: int | str, backend: str = "numpy") -> gc.compile:  # type: ignore[valid-type]
    params, data, loss = mlp(rows)
    return gc.compile([*params, *data], [loss, *gc.grad(loss, params)], backend=backend)


@pytest.fixture(scope="module")
def data() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(FEATURES, HIDDEN)), rng.normal(size=HIDDEN), rng.normal(size=(HIDDEN, CLASSES))]
    return params, rng.normal(size=(ROWS, FEATURES)), rng.integers(0, CLASSES, ROWS)


def reference(data: tuple[list[np.ndarray], np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """The full-data loss and gradients, in one process."""
    params, X, Y = data
    return list(loss_and_grads(ROWS)(*params, X, Y))  # type: ignore[operator]


def assert_close(got: object, want: list[np.ndarray], rtol: float = 1e-12) -> None:
    assert isinstance(got, tuple) and len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-14)


# --- results ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_the_mean_over_chunks_is_the_full_data_result(client, data, backend: str) -> None:
    params, X, Y = data
    fn = loss_and_grads(100, backend)
    chunked = [da.from_array(X, chunks=(100, FEATURES)), da.from_array(Y, chunks=100)]
    got = gd.map_reduce(fn, params, chunked, reduce="mean", client=client)
    assert_close(got, reference(data))


def test_sum_adds_the_chunks_results(client, data) -> None:
    params, X, Y = data
    fn = loss_and_grads(150)
    got = gd.map_reduce(fn, params, [da.from_array(X, chunks=(150, 5)), da.from_array(Y, chunks=150)], client=client)
    assert_close(got, [r * 4 for r in reference(data)])


def test_a_single_output_comes_back_single(client) -> None:
    x = gc.var("x", (10, 2))
    fn = gc.compile([x], gc.sum(x, axis=0), backend="numpy")
    values = np.arange(40.0).reshape(20, 2)
    got = gd.map_reduce(fn, [], da.from_array(values, chunks=(10, 2)), client=client)
    assert isinstance(got, np.ndarray) and got.tolist() == values.sum(axis=0).tolist()


def test_arrays_are_rechunked_to_the_compiled_rows_and_numpy_arrays_work(client, data) -> None:
    params, X, Y = data
    fn = loss_and_grads(50)
    odd = [da.from_array(X, chunks=((250, 350), (2, 3))), Y]  # other chunks, a NumPy array
    assert_close(gd.map_reduce(fn, params, odd, reduce="mean", client=client), reference(data))


def test_a_builder_handles_chunks_of_several_sizes(client, data) -> None:
    params, X, Y = data
    built: list[int] = []

    def build(rows: int) -> gc.compile:  # type: ignore[valid-type]
        built.append(rows)
        return loss_and_grads(rows)

    chunked = [da.from_array(X, chunks=(250, 5)), da.from_array(Y, chunks=250)]  # 250, 250, 100
    got = gd.map_reduce(build, params, chunked, reduce="mean", client=client)
    assert_close(got, reference(data))
    assert sorted(built) == [100, 250]


def test_persisted_arrays_are_used_where_they_are(client, data) -> None:
    params, X, Y = data
    Xd, Yd = client.persist([da.from_array(X, chunks=(200, 5)), da.from_array(Y, chunks=200)])
    got = gd.map_reduce(loss_and_grads(200), params, [Xd, Yd], reduce="mean", client=client)
    assert_close(got, reference(data))


def test_float32_and_the_default_client(client) -> None:
    x = gc.var("x", (4, 3), "float32")
    fn = gc.compile([x], [gc.mean(x * x, axis=0)], backend="numpy")
    values = np.random.default_rng(2).normal(size=(12, 3)).astype(np.float32)
    (got,) = gd.map_reduce(fn, [], [da.from_array(values, chunks=(4, 3))], reduce="mean")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.mean(values * values, axis=0), rtol=1e-6)


def test_large_broadcast_arguments_are_scattered_first(client) -> None:
    n = 400  # a 400 x 400 float64 parameter: more than SCATTER_BYTES
    assert n * n * 8 >= gd.SCATTER_BYTES
    x, W = gc.var("x", (10, n)), gc.var("W", (n, n))
    fn = gc.compile([W, x], gc.sum(x @ W, axis=0), backend="numpy")
    rng = np.random.default_rng(5)
    Wv, xv = rng.normal(size=(n, n)), rng.normal(size=(40, n))
    got = gd.map_reduce(fn, Wv, da.from_array(xv, chunks=(10, n)), client=client)
    np.testing.assert_allclose(got, (xv @ Wv).sum(axis=0), rtol=1e-12, atol=1e-10)  # sums cancel


# --- named dimensions: ragged chunks as they are ---------------------------------------------------

RAGGED = (300, 300, 250, 150)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_a_named_batch_takes_ragged_chunks_without_rechunking(client, data, backend: str) -> None:
    """One payload for every chunk size; each worker specializes it per size, in memory and (llvm) on disk."""
    params, _, _ = data
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(sum(RAGGED), FEATURES)), rng.integers(0, CLASSES, sum(RAGGED))
    chunked = [da.from_array(X, chunks=(RAGGED, FEATURES)), da.from_array(Y, chunks=(RAGGED,))]
    fn = loss_and_grads("batch", backend)
    client.run(lambda: gd._COMPILED.clear())
    got = gd.map_reduce(fn, params, chunked, reduce="mean", client=client)
    assert_close(got, list(loss_and_grads(sum(RAGGED))(*params, X, Y)))  # a fixed-shape call on all rows
    bounds = np.cumsum((0, *RAGGED))
    per_chunk = [fn(*params, X[a:b], Y[a:b]) for a, b in itertools.pairwise(bounds)]
    assert_close(gd.map_reduce(fn, params, chunked, client=client), [sum(r) for r in zip(*per_chunk, strict=True)])
    digest = gd.payload_of(fn).digest
    held = client.run(lambda: {d: [s["batch"] for s in f.specializations] for d, f in gd._COMPILED.items()})
    assert all(list(functions) == [digest] for functions in held.values())  # one function per worker: no builder
    sizes = [functions[digest] for functions in held.values()]
    assert all(len(set(each)) == len(each) for each in sizes)  # a size is compiled once per worker
    assert sorted({n for each in sizes for n in each}) == [150, 250, 300]
    if backend == "llvm":  # a worker that compiles the function again finds each size in its disk cache
        client.run(lambda: gd._COMPILED.clear())
        assert_close(gd.map_reduce(fn, params, chunked, reduce="mean", client=client), list(got))  # type: ignore[arg-type]
        hits = client.run(
            lambda: [f.specialize(**s)._built.cache_hit for f in gd._COMPILED.values() for s in f.specializations]
        )  # fmt: skip
        assert all(found and all(found) for found in hits.values())


def test_named_functions_take_numpy_arrays_and_named_trailing_axes(client) -> None:
    x, w = gc.var("x", ("n", "k")), gc.var("w", ("k",))
    fn = gc.compile([w, x], [gc.sum(x * w, axis=0), gc.mean(x)], backend="numpy")
    rng = np.random.default_rng(8)
    wv, xv = rng.normal(size=3), rng.normal(size=(7, 3))
    total, mean = gd.map_reduce(fn, [wv], xv, reduce="mean", client=client)  # a NumPy array: one chunk
    np.testing.assert_allclose(total, (xv * wv).sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(mean, xv.mean(), rtol=1e-14)
    with pytest.raises(ValueError, match=r"chunk of 7 rows.*dimension k"):  # k is 3 in w, 4 in x
        gd.map_reduce(fn, [wv], rng.normal(size=(7, 4)), client=client)


def test_a_named_batch_that_is_also_a_parameter_dimension_is_refused_per_chunk_size(client) -> None:
    x, w = gc.var("x", ("n", 2)), gc.var("w", ("n",))  # a parameter as long as the chunk: one size only
    fn = gc.compile([w, x], gc.sum(x * w[:, None]), backend="numpy")
    values = np.ones((10, 2))
    assert float(gd.map_reduce(fn, [np.ones(5)], da.from_array(values, chunks=5), client=client)) == 20.0
    with pytest.raises(ValueError, match=r"cannot take a chunk of 4 rows.*dimension n"):
        gd.map_reduce(fn, [np.ones(3)], da.from_array(values, chunks=((3, 3, 4), 2)), client=client)
    X, Y = gc.var("X", ("a", 2)), gc.var("Y", ("b",))
    with pytest.raises(ValueError, match="different row counts"):
        gd.map_reduce(gc.compile([X, Y], gc.sum(X) + gc.sum(Y), backend="numpy"), [], [values, values[:, 0]])


# --- the graph travels as text, once per worker ----------------------------------------------------


def test_workers_compile_the_text_once(client, data) -> None:
    params, X, Y = data
    fn = loss_and_grads(120)
    chunked = [da.from_array(X, chunks=(120, 5)), da.from_array(Y, chunks=120)]
    first = gd.map_reduce(fn, params, chunked, reduce="mean", client=client)
    before = client.run(lambda: sorted(gd._COMPILED))
    again = gd.map_reduce(fn, params, chunked, reduce="mean", client=client)
    assert client.run(lambda: sorted(gd._COMPILED)) == before
    digest = gd.payload_of(fn).digest
    assert all(digest in digests for digests in before.values())
    assert_close(again, list(first))  # type: ignore[arg-type]
    payload = gd.payload_of(fn)
    assert gc.dumps(*gc.loads(payload.text)) == payload.text  # plain gc.dumps text, nothing native
    assert (payload.backend, payload.optimize, payload.fast_math, payload.check_finite) == ("numpy", True, False, False)


def test_each_worker_is_given_the_payload_once_and_a_worker_without_it_fetches_it(client, data, monkeypatch) -> None:
    params, X, Y = data
    fn = loss_and_grads(300)
    chunked = [da.from_array(X, chunks=(300, 5)), da.from_array(Y, chunks=300)]
    first = gd.map_reduce(fn, params, chunked, reduce="mean", client=client)
    digest = gd.payload_of(fn).digest
    assert all(digest in held for held in client.run(lambda: list(gd._HELD)).values())
    assert gd._SHIPPED[(str(client.id), digest)].workers == set(client.scheduler_info()["workers"])
    run, installs = client.run, []

    def spy(function, *args, **kwargs):  # type: ignore[no-untyped-def]
        installs.extend([function] if function is gd.install else [])
        return run(function, *args, **kwargs)

    monkeypatch.setattr(client, "run", spy)
    assert_close(gd.map_reduce(fn, params, chunked, reduce="mean", client=client), list(first))  # type: ignore[arg-type]
    assert installs == []  # given once: the second call sends no payload
    monkeypatch.undo()
    client.run(lambda: (gd._HELD.clear(), gd._COMPILED.clear()))  # like a worker that joined after it was given
    assert_close(gd.map_reduce(fn, params, chunked, reduce="mean", client=client), list(first))  # type: ignore[arg-type]
    assert any(digest in held for held in client.run(lambda: list(gd._HELD)).values())  # fetched from the scheduler


def test_the_scheduler_keeps_copies_of_the_latest_payloads_only(client, data, monkeypatch) -> None:
    """Past _KEEP payloads a client process forgets the oldest and removes its copy from the scheduler."""
    monkeypatch.setattr(gd, "_KEEP", 2)
    ours = lambda: sorted(n for n in client.list_datasets() if str(client.id) in n)  # noqa: E731
    before = ours()
    x = gc.var("x", (10, 3))
    fns = [gc.compile([x], gc.sum(x * float(k), axis=0), backend="numpy") for k in range(4)]
    values = np.arange(120.0).reshape(40, 3)
    for k, fn in enumerate(fns):
        result = gd.map_reduce(fn, [], [da.from_array(values, chunks=(10, 3))], client=client)
        np.testing.assert_allclose(result, values.sum(axis=0) * k)
    names = [f"graphc-payload-{gd.payload_of(fn).digest}-{client.id}" for fn in fns]
    now = ours()
    assert set(names[2:]) <= set(now) and not set(names[:2]) & set(now)
    assert len(now) <= len(before) + 2
    result = gd.map_reduce(fns[0], [], [da.from_array(values, chunks=(10, 3))], client=client)  # shipped again
    np.testing.assert_allclose(result, np.zeros(3))
    assert names[0] in ours() and names[2] not in ours()


def test_workers_compile_for_their_own_thread_count(client) -> None:
    """A worker of one thread runs single-threaded code, whatever gc.get_num_threads says in its process."""
    from graphc import compile_options

    client.run(lambda: (gc.set_num_threads(3), gd._COMPILED.clear()))
    try:
        x = gc.var("x", (1000, 8))
        fn = gc.compile([x], gc.sum(gc.tanh(x) * gc.tanh(x), axis=0), backend="llvm")
        values = np.random.default_rng(11).normal(size=(4000, 8))
        got = gd.map_reduce(fn, [], da.from_array(values, chunks=(1000, 8)), client=client)
        np.testing.assert_allclose(got, (np.tanh(values) ** 2).sum(axis=0), rtol=1e-12)
        threads = [t for each in client.run(lambda: [f.threads for f in gd._COMPILED.values()]).values() for t in each]
        assert threads and set(threads) == {1}
        assert client.submit(gd.worker_threads, pure=False).result() == 1
        assert client.run(gc.get_num_threads) == dict.fromkeys(client.scheduler_info()["workers"], 3)
    finally:
        client.run(lambda: (compile_options._NUM_THREADS.clear(), gd._COMPILED.clear()))
    assert gd.worker_threads() is None  # outside a worker: gc.compile's own default


def test_a_warm_call_moves_nothing_between_workers(client, data) -> None:
    """Chunks placed on both workers: each runs its own, the client adds the two sums; no transfers."""
    params, X, Y = data
    workers = sorted(client.scheduler_info()["workers"])
    pieces = [
        client.persist([da.from_array(X[a : a + 150], chunks=(150, 5)), da.from_array(Y[a : a + 150], chunks=150)],
                       workers=[workers[i % 2]])
        for i, a in enumerate(range(0, ROWS, 150))
    ]  # fmt: skip
    chunked = client.persist([da.concatenate([p[k] for p in pieces]) for k in range(2)])
    fn = loss_and_grads(150)
    first = gd.map_reduce(fn, params, chunked, reduce="mean", client=client)
    client.run(lambda dask_worker: dask_worker.transfer_incoming_log.clear())
    for _ in range(2):
        assert_close(gd.map_reduce(fn, params, chunked, reduce="mean", client=client), list(first))  # type: ignore[arg-type]
    moved = client.run(lambda dask_worker: [list(t["keys"]) for t in dask_worker.transfer_incoming_log])
    assert moved == {w: [] for w in workers}
    assert_close(first, reference(data))


def test_more_parts_than_fan_in_are_summed_by_tasks_first(client, monkeypatch) -> None:
    sizes = tuple(range(1, 12))  # 11 chunk sizes, one function each: at least 11 worker tasks
    assert len(sizes) > gd.FAN_IN
    values = np.random.default_rng(12).normal(size=(sum(sizes), 3))

    def build(rows: int) -> gc.compile:  # type: ignore[valid-type]
        x = gc.var("x", (rows, 3))
        return gc.compile([x], gc.sum(x, axis=0), backend="numpy")

    submit, combined = client.submit, []

    def spy(function, *args, **kwargs):  # type: ignore[no-untyped-def]
        combined.extend([len(args)] if function is gd.combine else [])
        return submit(function, *args, **kwargs)

    monkeypatch.setattr(client, "submit", spy)
    got = gd.map_reduce(build, [], da.from_array(values, chunks=(sizes, 3)), client=client)
    np.testing.assert_allclose(got, values.sum(axis=0), rtol=1e-13)
    assert combined and all(n <= gd.FAN_IN for n in combined) and sum(combined) >= len(sizes)


def test_compile_options_travel_with_the_function() -> None:
    x = gc.var("x", (4,))
    fn = gc.compile([x], gc.sum(x * 0.0), backend="numpy", fast_math=True, optimize=True)
    payload = gd.payload_of(fn)
    assert payload.fast_math and payload.optimize and not payload.check_finite
    assert payload.digest != gd.payload_of(gc.compile([x], gc.sum(x * 0.0), backend="numpy")).digest
    checked = gd.payload_of(gc.compile([x], gc.sum(gc.log(x)), backend="numpy", check_finite=True))
    assert checked.check_finite and not checked.fast_math


def test_check_finite_runs_on_the_workers(client) -> None:
    x = gc.var("x", (2,))
    fn = gc.compile([x], gc.sum(gc.log(x)), backend="numpy", check_finite=True)
    with pytest.raises(FloatingPointError, match="log"):
        gd.map_reduce(fn, [], [da.from_array(np.array([1.0, 2.0, -1.0, 3.0]), chunks=2)], client=client)


# --- bad calls -------------------------------------------------------------------------------------


def test_bad_calls_name_the_problem(client, data) -> None:
    params, X, Y = data
    fn = loss_and_grads(100)
    chunked = [da.from_array(X, chunks=(100, 5)), da.from_array(Y, chunks=100)]
    with pytest.raises(ValueError, match="reduce"):
        gd.map_reduce(fn, params, chunked, reduce="max", client=client)
    with pytest.raises(TypeError, match="takes 5 inputs"):
        gd.map_reduce(fn, params[:2], chunked, client=client)
    with pytest.raises(ValueError, match=r"'W2'.*shape"):
        gd.map_reduce(fn, [params[0], params[1], params[2].T], chunked, client=client)
    with pytest.raises(ValueError, match=r"'X'.*shape"):
        gd.map_reduce(fn, params, [da.from_array(X[:, :4], chunks=(100, 4)), chunked[1]], client=client)
    with pytest.raises(ValueError, match="share a first axis"):
        gd.map_reduce(fn, params, [chunked[0], chunked[1][:500]], client=client)
    with pytest.raises(ValueError, match="not a multiple of the 100 rows"):
        gd.map_reduce(fn, params, [chunked[0][:550], chunked[1][:550]], client=client)
    with pytest.raises(ValueError, match="no rows"):
        gd.map_reduce(fn, params, [chunked[0][:0], chunked[1][:0]], client=client)
    with pytest.raises(TypeError, match="compiled function or a builder"):
        gd.map_reduce("loss", params, chunked, client=client)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="returned a int"):
        gd.map_reduce(lambda rows: rows, params, chunked, client=client)  # type: ignore[arg-type, return-value]


def test_errors_on_the_workers_reach_the_caller(client) -> None:
    A = gc.var("A", (2, 2))
    z = gc.fixed_point(lambda z, A: gc.sum(A, axis=0) * z + 1.0, gc.const(np.zeros(2)), A, max_iter=5)
    fn = gc.compile([A], [z], backend="numpy")
    diverging = da.from_array(np.full((4, 2), 3.0), chunks=(2, 2))
    with pytest.raises(gc.ConvergenceError, match="did not converge"):
        gd.map_reduce(fn, [], [diverging], client=client)


def test_without_a_client_the_message_says_how_to_get_one() -> None:
    code = (
        "import numpy as np, graphc as gc\n"
        "from graphc import distributed as gd\n"
        "x = gc.var('x', (2,))\n"
        "try:\n"
        "    gd.map_reduce(gc.compile([x], gc.sum(x), backend='numpy'), [], [np.zeros(4)])\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    assert "needs a dask.distributed client" in done.stdout


# --- the example, against this cluster -------------------------------------------------------------


def test_the_distributed_training_example(client, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "distributed_training.py"), "--fast",
         "--backend", "numpy", "--scheduler", client.scheduler.address],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matches the single-process gradient" in done.stdout
    losses = [float(line.split()[-1]) for line in done.stdout.splitlines() if line.startswith("loss")]
    assert len(losses) >= 2 and losses[-1] < 0.8 * losses[0]


def test_the_scaling_benchmark_verifies_before_it_times(client) -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    distributed_scaling = importlib.import_module("benchmarks.distributed_scaling")  # first-party, outside graphc

    times = distributed_scaling.scaling({2: client}, 800, 100, "numpy", reps=1)
    systems = ("map_reduce", "hand NumPy", "graphc, no map_reduce")
    assert set(times) == {f"{s}, 2 workers" for s in systems} | {"one call on all rows, no dask"}
    assert all(0 < t.best <= t.median for t in times.values())
    assert len(distributed_scaling.overhead(client, "numpy", reps=1)) == 2


# --- a worker restarted mid-run (last: it disturbs the cluster) ------------------------------------


def test_a_worker_restarted_mid_run_still_gives_the_right_answer(client) -> None:
    rows, chunks = 500, 48
    X = gc.var("X", (rows, 64))
    W = gc.var("W", (64, 64))
    h = X
    for _ in range(6):
        h = gc.tanh(h @ W)
    fn = gc.compile([W, X], gc.sum(h * h), backend="numpy")
    Wv = np.random.default_rng(3).normal(size=(64, 64)) / 8
    Xd = da.random.default_rng(4).normal(size=(rows * chunks, 64), chunks=(rows, 64))  # made on the workers
    Xv = Xd.compute()
    want = sum(float(fn(Wv, Xv[k * rows : (k + 1) * rows])) for k in range(chunks))  # type: ignore[arg-type]
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = gd.map_reduce(fn, [Wv], [Xd], client=client)
        except Exception as exc:  # reported below
            result["error"] = exc

    caller = threading.Thread(target=run)
    caller.start()
    deadline = time.monotonic() + 60
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert caller.is_alive(), "map_reduce finished before a worker could be restarted: give it more work"
    victim = sorted(client.scheduler_info()["workers"])[0]
    client.restart_workers([victim])
    caller.join(timeout=240)
    assert not caller.is_alive()
    if "error" in result:  # allowed only as a clear error that says what happened
        message = str(result["error"])
        assert "worker" in message.lower() or "lost" in message.lower(), message
    else:
        np.testing.assert_allclose(result["value"], want, rtol=1e-12)
    client.wait_for_workers(2, timeout=60)
