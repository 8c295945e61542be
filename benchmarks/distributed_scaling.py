"""graphc.distributed.map_reduce: scaling from one worker to two, and the overhead of one call.

Scaling: the W1 network (X 200,000 x 64, W1 64x128, W2 128x10) loss and its four gradients,
averaged over row chunks held on a LocalCluster of worker processes (1 thread each, BLAS
and OpenMP limited to 1 thread), with one worker and with two. Both clusters run side by
side and their calls alternate, so load from other processes hits both alike; the table
gives medians and the ratio. Overhead: the same network on 8 chunks of 16 rows, where the
compiled function itself takes microseconds: what a map_reduce call costs in scheduling,
scattering the parameters and gathering the result.

Every result is verified first against the hand-written NumPy forward and backward pass
of graphc/bench/w1_mlp.py on all rows. Run: `python -m benchmarks.distributed_scaling
[--quick] [--backend numpy|llvm] [--reps N]`. docs/performance.md holds the latest figures.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
import typing
from collections.abc import Callable

import numpy as np

import graphc as gc
from graphc import distributed as gd
from graphc.bench import checks, harness
from graphc.bench.w1_mlp import graphc_build, make_inputs, numpy_forward_backward

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
D, HIDDEN, CLASSES = 64, 128, 10


def cluster(workers: int) -> object:
    """A client of a new LocalCluster: `workers` processes, one thread each, BLAS on one thread."""
    from distributed import Client, LocalCluster

    local = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", env=ONE_THREAD,
        silence_logs=40,
    )  # fmt: skip
    return Client(local)


def chunk_function(rows: int, backend: str) -> gc.compile:  # type: ignore[valid-type]
    """The W1 loss and gradients for a chunk of `rows` rows, inputs ordered (W1, b1, W2, b2, X, y).

    Compiled for one thread, like the workers' copies (one thread each): the thread count
    does not travel to the workers, and here it keeps the one-process row on one core.
    """
    build = graphc_build(rows, D, HIDDEN, CLASSES)
    x, y, *params = build.inputs
    return gc.compile([*params, x, y], [build.f, *build.derivatives], backend=backend, threads=1)


def on_cluster(client: object, inputs: list[np.ndarray], chunk_rows: int) -> list[object]:
    """X and y as dask arrays of `chunk_rows`-row chunks on the client's workers, chunk i's X and y on worker i % n.

    Placed, not rebalanced: client.rebalance evens out bytes, not chunks (it left 6 of 8
    X chunks on one worker, or the y chunks apart from their X), and map_reduce would then
    move chunks during every call.
    """
    import dask.array as da
    from distributed import wait

    workers = sorted(client.scheduler_info()["workers"])  # type: ignore[attr-defined]
    x, y = inputs[:2]
    pieces = []
    for i, start in enumerate(range(0, x.shape[0], chunk_rows)):
        rows = slice(start, start + chunk_rows)
        here = [da.from_array(x[rows], chunks=x[rows].shape), da.from_array(y[rows], chunks=y[rows].shape)]
        pieces.append(client.persist(here, workers=[workers[i % len(workers)]]))  # type: ignore[attr-defined]
    arrays = [da.concatenate([piece[k] for piece in pieces]) for k in range(2)]
    persisted = client.persist(arrays)  # type: ignore[attr-defined]  # aliases of the pieces, where they are
    wait(persisted)
    return persisted


def verified_call(client: object, fn: object, inputs: list[np.ndarray], data: list[object]) -> Callable[[], object]:
    """A zero-argument map_reduce call, run once and checked against the hand NumPy result."""

    def call() -> object:
        return gd.map_reduce(fn, inputs[2:], data, reduce="mean", client=client)  # type: ignore[arg-type]

    checks.verify(tuple(call()), tuple(numpy_forward_backward(*inputs)), rtol=1e-10)  # type: ignore[arg-type]
    return call


def seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


MAP_REDUCE = "map_reduce"
HAND = "hand NumPy"
DIRECT = "graphc, no map_reduce"


def label(what: str, workers: int) -> str:
    return f"{what}, {workers} worker{'s' if workers > 1 else ''}"


class Timing(typing.NamedTuple):
    median: float
    best: float


def alternate(calls: dict[str, Callable[[], object]], reps: int) -> dict[str, Timing]:
    """The median and the best time of each call, the calls taking turns."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            samples[name].append(seconds(call))
    return {name: Timing(statistics.median(times), min(times)) for name, times in samples.items()}


_SHARES: dict[tuple[object, ...], tuple[Callable[..., object], list[np.ndarray]]] = {}


def _share_inputs(rows: int, backend: str | None) -> tuple[Callable[..., object], list[np.ndarray]]:
    """On a worker: the inputs of one chunk and what runs it (hand NumPy, or graphc for `backend`), made once."""
    key = (rows, backend)
    if key not in _SHARES:
        inputs = make_inputs(rows, D, HIDDEN, CLASSES)
        if backend is None:
            _SHARES[key] = (numpy_forward_backward, inputs)
        else:
            _SHARES[key] = (chunk_function(rows, backend), [*inputs[2:], *inputs[:2]])
    return _SHARES[key]


def share(rows: int, chunks: int, backend: str | None) -> None:
    """On a worker: `chunks` chunks of `rows` rows by hand NumPy (backend None) or by graphc, no dask tasks.

    The inputs (and graphc's compiled function) are made on the first call and kept, so
    only the arithmetic is timed.
    """
    run, inputs = _share_inputs(rows, backend)
    for _ in range(chunks):
        run(*inputs)


def scaling(clients: dict[int, object], rows: int, chunk_rows: int, backend: str, reps: int) -> dict[str, Timing]:
    """map_reduce on each cluster, one compiled call on all rows here, and the machine's own scaling.

    "hand NumPy, N workers" runs the same arithmetic, split the same way, on the workers
    without graphc or map_reduce (client.run): what this machine gives N processes right now.
    "graphc, no map_reduce, N workers" runs graphc's compiled chunk function the same way:
    the ceiling for map_reduce itself (the same code, no tasks, no transfers).
    """
    inputs = make_inputs(rows, D, HIDDEN, CLASSES)
    fn = chunk_function(chunk_rows, backend)
    calls: dict[str, Callable[[], object]] = {}
    chunks = rows // chunk_rows
    for workers, client in clients.items():
        data = on_cluster(client, inputs, chunk_rows)
        calls[label(MAP_REDUCE, workers)] = verified_call(client, fn, inputs, data)
        for what, system in ((HAND, None), (DIRECT, backend)):
            work = functools.partial(share, chunk_rows, chunks // workers, system)
            client.run(work)  # type: ignore[attr-defined]  # inputs made (and graphc compiled) before timing
            calls[label(what, workers)] = functools.partial(client.run, work)  # type: ignore[attr-defined]
    whole = chunk_function(rows, backend)
    ordered = [*inputs[2:], *inputs[:2]]
    checks.verify(tuple(whole(*ordered)), tuple(numpy_forward_backward(*inputs)), rtol=1e-10)  # type: ignore[arg-type]
    calls["one call on all rows, no dask"] = lambda: whole(*ordered)
    return alternate(calls, reps)


def overhead(client: object, backend: str, reps: int) -> dict[str, Timing]:
    chunk_rows, chunks = 16, 8
    inputs = make_inputs(chunk_rows * chunks, D, HIDDEN, CLASSES)
    fn = chunk_function(chunk_rows, backend)
    call = verified_call(client, fn, inputs, on_cluster(client, inputs, chunk_rows))
    local = [*inputs[2:], inputs[0][:chunk_rows], inputs[1][:chunk_rows]]
    return alternate({"map_reduce, 8 chunks of 16 rows": call, "one local call of a chunk": lambda: fn(*local)}, reps)


def report(times: dict[str, Timing]) -> None:
    for name, t in times.items():
        print(f"  {name:36s} median {t.median * 1e3:9.2f} ms   best {t.best * 1e3:9.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, fewer repetitions")
    parser.add_argument("--backend", choices=("numpy", "llvm"), default="numpy")
    parser.add_argument("--reps", type=int, default=None, help="timed calls per system (default 9, quick 3)")
    args = parser.parse_args()
    rows, reps = (20_000, args.reps or 3) if args.quick else (200_000, args.reps or 9)
    clients = {1: cluster(1), 2: cluster(2)}
    notes: list[str] = []
    try:
        with harness.limit_threads(1, notes):  # this process's BLAS, for the one-process row
            times = scaling(clients, rows, rows // 8, args.backend, reps)
        print("; ".join(notes))
        print(f"W1 loss+grads over {rows} rows in 8 chunks, backend={args.backend}, {reps} runs:")
        report(times)
        for what in (MAP_REDUCE, HAND, DIRECT):
            one, two = times[label(what, 1)], times[label(what, 2)]
            print(f"  {what}: 2 over 1 = {one.median / two.median:.2f}x (medians), {one.best / two.best:.2f}x (best)")
        print("overhead of one call on 2 workers:")
        report(overhead(clients[2], args.backend, max(reps, 15)))
    finally:
        for client in clients.values():
            client.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
