"""graphc.distributed: a compiled function over the chunks of dask arrays, on a dask.distributed cluster.

Imports shapes, ops.dims, compile and serialize; dask and distributed are imported inside the
functions that use them. Workers never receive native code or pickled graphs: a
function travels as its gc.dumps text with its compile options (a `Payload`), given
to each worker once (client.run, the first time a call finds the worker), and each worker
compiles it on first use with its own compile cache (then keeps it, least recently used
first out), for as many threads as the worker has (a worker of one thread runs
single-threaded code: two workers must not each spread a kernel over both cores). A task
names the payload by its digest only; a worker that was not given it (one that joined or
restarted during a call) fetches it from the copy published on the scheduler. Each worker
gets one task per call that runs every chunk it holds (an even share at most) and sums
them; the client gathers the workers' sums and adds them (a tree of tasks first when there
are more than FAN_IN). The broadcast arguments reach each worker once per call: inside its
task, or scattered first when they are large (SCATTER_BYTES).

Why not a broadcast scatter of the payload: dask's active memory manager drops extra
replicas of a key that no task is waiting for (ReduceReplicas, every 2 s), so a payload
broadcast once was fetched again by one of the workers before most calls, delaying its
task.

Chunk sizes. A function whose chunked inputs have a named leading dimension
(`gc.var("X", ("batch", 64))`, API §7) takes the chunks as they are, ragged ones
included: one payload serves every chunk size, and each worker's compiled function
specializes itself per size (once per size in the worker's memory; with the llvm
backend also in the worker's on-disk cache). A fixed-shape function takes chunks of the
rows its chunked inputs were compiled for: the arrays are rechunked to that many rows
(the row count must be a multiple); with a builder `rows -> CompiledFunction` instead,
the arrays keep their chunks and one function is built (on the client) and compiled (on
each worker) per distinct chunk size.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from graphc.compile import CompiledFunction
from graphc.compile import compile as compile_graph
from graphc.compile_options import usable_cores
from graphc.ops.dims import bind
from graphc.serialize import dumps, loads
from graphc.shapes import Dim, Shape, format_shape

if TYPE_CHECKING:
    import dask.array
    from distributed import Client, Future

REDUCTIONS = ("sum", "mean")
FAN_IN = 8  # partial results combined per task of the reduction tree
SCATTER_BYTES = 1 << 20  # broadcast arguments this large are scattered before the tasks, not sent with them
_KEEP = 16  # compiled functions a worker keeps; payload futures a client process keeps

Builder = Callable[[int], CompiledFunction]


@dataclass(frozen=True)
class Payload:
    """What a worker needs to compile a function: the graph's text and the compile options."""

    digest: str
    text: str
    backend: str
    optimize: bool
    fast_math: bool
    check_finite: bool

    def __dask_tokenize__(self) -> str:
        return self.digest


@dataclass(frozen=True)
class Ref:
    """A payload as a task names it: its digest, and the name of the scheduler's copy for workers that lack it."""

    digest: str
    name: str

    def __dask_tokenize__(self) -> str:
        return self.digest


_PAYLOADS: weakref.WeakKeyDictionary[CompiledFunction, Payload] = weakref.WeakKeyDictionary()


def payload_of(fn: CompiledFunction) -> Payload:
    """The function's pre-optimization graph as gc.dumps text, with its backend and options (made once)."""
    payload = _PAYLOADS.get(fn)
    if payload is None:
        payload = _PAYLOADS[fn] = _payload(fn)
    return payload


def _payload(fn: CompiledFunction) -> Payload:
    text = dumps(list(fn.inputs), fn.outputs[0] if fn.single else list(fn.outputs))
    options = (fn.backend, fn.optimized, fn.fast_math, fn.check_finite)
    key = f"{options}\n{text}"
    return Payload(hashlib.sha256(key.encode()).hexdigest(), text, *options)


# --- on the workers ------------------------------------------------------------------------------

_HELD: OrderedDict[str, Payload] = OrderedDict()  # payloads given to this worker, by digest
_COMPILED: OrderedDict[str, CompiledFunction] = OrderedDict()
_COMPILING = threading.Lock()


def install(payload: Payload) -> None:
    """Keep the payload on this worker (run on each worker by the client, once)."""
    with _COMPILING:
        _HELD[payload.digest] = payload
        _HELD.move_to_end(payload.digest)
        while len(_HELD) > _KEEP:
            _HELD.popitem(last=False)


def resolve(ref: Ref) -> Payload:
    """The payload a task names: held on this worker, else fetched once from the cluster's copy."""
    with _COMPILING:
        payload = _HELD.get(ref.digest)
    if payload is None:
        from distributed import get_client

        payload = get_client().get_dataset(ref.name)
        if not isinstance(payload, Payload) or payload.digest != ref.digest:
            raise RuntimeError(f"the cluster's copy of graphc payload {ref.digest[:12]} is not that payload")
        install(payload)
    return payload


def worker_threads() -> int | None:
    """The threads of the dask worker running this (at most the usable cores), None outside a worker.

    A compiled function on a worker shares its kernels among that many threads: a worker of
    one thread (one core's share) gets single-threaded code, not gc.get_num_threads().
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return max(1, min(int(worker.state.nthreads), usable_cores()))


def compiled(ref: Ref) -> CompiledFunction:
    """The payload's function, compiled once per worker process (for the worker's threads: see worker_threads)."""
    payload = resolve(ref)
    with _COMPILING:
        fn = _COMPILED.get(payload.digest)
        if fn is None:
            inputs, outputs = loads(payload.text)
            fn = compile_graph(
                inputs, outputs, backend=payload.backend, optimize=payload.optimize, fast_math=payload.fast_math,
                check_finite=payload.check_finite, threads=worker_threads(),
            )  # fmt: skip
            _COMPILED[payload.digest] = fn
        _COMPILED.move_to_end(payload.digest)
        while len(_COMPILED) > _KEEP:
            _COMPILED.popitem(last=False)
    return fn


def apply_chunk(payload: Ref, weight: int | None, *args: npt.ArrayLike) -> list[np.ndarray]:
    """The function's outputs on one chunk, each times `weight` (its rows) when given."""
    fn = compiled(payload)
    result = fn(*args)
    outputs = [np.asarray(o) for o in ([result] if fn.single else result)]
    if weight is None:
        return outputs
    return [np.asarray(np.multiply(o, weight)) for o in outputs]


def apply_chunks(
    payload: Ref, weights: tuple[int, ...] | None, n_shared: int, width: int, *args: npt.ArrayLike
) -> list[np.ndarray]:
    """The summed outputs of several chunks (`width` arrays each, after `n_shared` broadcast arguments).

    `weights`: each chunk's rows (reduce="mean"), or None (reduce="sum").
    """
    shared, blocks = args[:n_shared], args[n_shared:]
    starts = range(0, len(blocks), width)
    each = weights if weights is not None else (None,) * len(starts)
    parts = [apply_chunk(payload, w, *shared, *blocks[i : i + width]) for w, i in zip(each, starts, strict=True)]
    return combine(*parts)


def combine(*parts: list[np.ndarray]) -> list[np.ndarray]:
    """The elementwise sum of partial results, output by output, in the order given."""
    total = [np.array(o, copy=True) for o in parts[0]]
    for part in parts[1:]:
        total = [np.asarray(np.add(t, o)) for t, o in zip(total, part, strict=True)]
    return total


# --- on the client -------------------------------------------------------------------------------


@dataclass
class Shipped:
    """A payload as one client shipped it: the scheduler's copy's name and the workers given it."""

    client: weakref.ref[Client]
    name: str
    workers: set[str]


_SHIPPED: OrderedDict[tuple[str, str], Shipped] = OrderedDict()  # by (client id, digest), latest last


def _client(client: Client | None) -> Client:
    if client is not None:
        return client
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        raise ValueError(
            "graphc.distributed.map_reduce needs a dask.distributed client: pass client=, "
            "or create one first (distributed.Client() or Client(scheduler_address))"
        ) from None


def ship(client: Client, payload: Payload, workers: Sequence[str]) -> Ref:
    """The payload given to each of `workers` that does not have it yet; the Ref that tasks carry.

    One copy is published on the scheduler once per client (a dataset named for the payload
    and the client), for workers that join later: they fetch it on first use. Each worker is
    given the payload once, directly (client.run). A client process keeps this for its
    _KEEP latest payloads: an older one's copy is removed from the scheduler (its workers
    keep theirs; a task naming it again ships it again).
    """
    key = (str(client.id), payload.digest)
    shipped = _SHIPPED.get(key)
    if shipped is None:
        name = f"graphc-payload-{payload.digest}-{client.id}"
        client.publish_dataset(override=True, **{name: payload})
        shipped = _SHIPPED[key] = Shipped(weakref.ref(client), name, set())
    missing = sorted(set(workers) - shipped.workers)
    if missing:
        client.run(install, payload, workers=missing)
        shipped.workers.update(missing)
    _SHIPPED.move_to_end(key)
    while len(_SHIPPED) > _KEEP:
        _unpublish(_SHIPPED.popitem(last=False)[1])
    return Ref(payload.digest, shipped.name)


def _unpublish(shipped: Shipped) -> None:
    """The scheduler's copy removed, if its client is still connected (a closed one's scheduler may be gone)."""
    client = shipped.client()
    if client is None or client.status != "running":
        return
    client.unpublish_dataset(shipped.name)  # a name already gone is no error


def _as_list(values: object) -> list[object]:
    """A list or tuple as a list; anything else (an array) as one argument."""
    if isinstance(values, (list, tuple)):
        return list(values)
    return [values]


def _leading_rows(fn: CompiledFunction, first: int) -> int | None:
    """The rows the chunked inputs were compiled for (None for a named leading dimension)."""
    chunked = fn.inputs[first:]
    if any(t.ndim == 0 for t in chunked):
        raise ValueError(f"every chunked input of the function needs a leading (row) axis: {fn.signature}")
    rows = {t.shape[0] for t in chunked}
    if len(rows) != 1:
        raise ValueError(f"the chunked inputs of the function have different row counts: {fn.signature}")
    (n,) = rows
    return n if isinstance(n, int) else None


def _check_arity(fn: CompiledFunction, n_broadcast: int, n_chunked: int) -> None:
    if len(fn.inputs) != n_broadcast + n_chunked:
        raise TypeError(
            f"the function takes {len(fn.inputs)} inputs {fn.signature}; got {n_broadcast} broadcast "
            f"and {n_chunked} chunked arguments (broadcast first, then chunked)"
        )


def _fits(shape: tuple[int, ...], declared: Shape) -> bool:
    """Whether an array of `shape` can be an input declared `declared`: same rank and fixed sizes (names bind)."""
    if len(shape) != len(declared):
        return False
    return all(isinstance(n, Dim) or n == got for n, got in zip(declared, shape, strict=True))


def _check_shapes(fn: CompiledFunction, broadcast: list[np.ndarray], chunked: list[dask.array.Array]) -> None:
    """Broadcast arguments of the inputs' shapes; chunked ones with the inputs' trailing shape."""
    for k, (value, t) in enumerate(zip(broadcast, fn.inputs, strict=False)):
        if not _fits(value.shape, t.shape):
            raise ValueError(
                f"broadcast argument {k} ({t.name!r}) has shape {value.shape}, expected {format_shape(t.shape)}"
            )
    for k, (array, t) in enumerate(zip(chunked, fn.inputs[len(broadcast) :], strict=True)):
        if not _fits(array.shape[1:], t.shape[1:]):
            trailing = format_shape(t.shape[1:])
            raise ValueError(f"chunked argument {k} ({t.name!r}) has shape {array.shape}: expected (rows, *{trailing})")


def _check_sizes(fn: CompiledFunction, broadcast: list[np.ndarray], arrays: list[dask.array.Array]) -> None:
    """A function with named dimensions binds them alike for every chunk size (ValueError naming a disagreement)."""
    for rows in sorted(set(arrays[0].chunks[0])):
        shapes = [b.shape for b in broadcast] + [(rows, *a.shape[1:]) for a in arrays]
        try:
            bind([t.node for t in fn.inputs], shapes)
        except ValueError as exc:
            raise ValueError(f"the function cannot take a chunk of {rows} rows: {exc}") from None


def _as_dask(values: list[object]) -> list[dask.array.Array]:
    """Dask arrays with one length along the first axis (NumPy arrays become one-chunk dask arrays)."""
    import dask.array as da

    arrays = [v if isinstance(v, da.Array) else da.asarray(v) for v in values]
    if not arrays:
        raise ValueError("map_reduce needs at least one chunked argument")
    lengths = {a.shape[0] if a.ndim else None for a in arrays}
    if None in lengths or len(lengths) != 1:
        raise ValueError(f"the chunked arguments must share a first axis, got shapes {[a.shape for a in arrays]}")
    return arrays


def _chunked(arrays: list[dask.array.Array], rows: int | None) -> list[dask.array.Array]:
    """The arrays chunked alike along the first axis (`rows` each, or as the first array), whole along the rest."""
    n = arrays[0].shape[0]
    if rows is not None and (rows == 0 or n % rows):
        raise ValueError(
            f"the chunked arguments have {n} rows, not a multiple of the {rows} rows the function was compiled "
            "for: compile it for a chunk size that divides the rows, or pass a builder rows -> CompiledFunction"
        )
    first = (rows,) * (n // rows) if rows is not None else arrays[0].chunks[0]
    out = []
    for a in arrays:
        chunks = (first, *((size,) for size in a.shape[1:]))
        out.append(a if a.chunks == chunks else a.rechunk(chunks))
    return out


def _functions(
    fn: CompiledFunction | Builder, broadcast: list[np.ndarray], arrays: list[dask.array.Array]
) -> tuple[dict[int, CompiledFunction], list[dask.array.Array]]:  # fmt: skip
    """The function for each chunk size, and the arrays chunked to suit them."""
    if isinstance(fn, CompiledFunction):
        _check_arity(fn, len(broadcast), len(arrays))
        arrays = _chunked(arrays, _leading_rows(fn, len(broadcast)))
        _check_shapes(fn, broadcast, arrays)
        if fn.named:
            _check_sizes(fn, broadcast, arrays)
        return dict.fromkeys(arrays[0].chunks[0], fn), arrays
    if not callable(fn):
        raise TypeError(f"map_reduce needs a compiled function or a builder rows -> function, got {type(fn).__name__}")
    arrays = _chunked(arrays, None)
    functions = {}
    for rows in sorted(set(arrays[0].chunks[0])):
        built = fn(rows)
        if not isinstance(built, CompiledFunction):
            raise TypeError(f"the builder returned a {type(built).__name__} for {rows} rows, not a compiled function")
        _check_arity(built, len(broadcast), len(arrays))
        if _leading_rows(built, len(broadcast)) not in (rows, None):
            raise ValueError(f"the builder's function for {rows} rows takes chunks of another size: {built.signature}")
        _check_shapes(built, broadcast, arrays)
        functions[rows] = built
    return functions, arrays


def _held(array: dask.array.Array) -> list[Future] | None:
    """The futures of a persisted array's chunks, in order; None when some chunk is not held."""
    from dask.core import flatten
    from distributed import futures_of

    held = {f.key: f for f in futures_of(array)}
    keys = list(flatten(array.__dask_keys__()))
    if not all(k in held for k in keys):
        return None
    return [held[k] for k in keys]


def _blocks(client: Client, arrays: list[dask.array.Array]) -> list[list[Future]]:
    """For each chunk along the first axis, the futures of that chunk of every array.

    Chunks of a persisted array are used where they are; any other array is computed on the cluster.
    """
    columns: list[list[Future] | None] = [_held(a) for a in arrays]
    lazy = [k for k, column in enumerate(columns) if column is None]
    if lazy:
        delayed = [list(arrays[k].to_delayed().ravel()) for k in lazy]
        futures = client.compute([d for column in delayed for d in column])
        n = len(delayed[0])
        for i, k in enumerate(lazy):
            columns[k] = futures[i * n : (i + 1) * n]
    return [list(row) for row in zip(*columns, strict=True)]


def _owners(client: Client, workers: list[str], blocks: list[list[Future]]) -> list[str | None]:
    """For each chunk, the worker to run it: one holding it, at most an even share of chunks each.

    One task per worker then runs all of its chunks, instead of one task per chunk: a task
    costs a round trip to the scheduler, which dominates when chunks are small.
    """
    if not workers:
        return [None] * len(blocks)
    who = client.who_has([row[0] for row in blocks])
    share = -(-len(blocks) // len(workers))
    load = dict.fromkeys(workers, 0)
    owners: list[str | None] = []
    for row in blocks:
        holders = [w for w in sorted(who.get(row[0].key, ())) if load.get(w, share) < share]
        owner = holders[0] if holders else min(workers, key=load.__getitem__)
        load[owner] += 1
        owners.append(owner)
    return owners


def _shared(client: Client, broadcast: list[np.ndarray]) -> list[np.ndarray] | list[Future]:
    """The broadcast arguments as the worker tasks will receive them, sent once to each worker.

    Small ones travel inside the one task each worker gets (a scatter would cost another
    round trip); from SCATTER_BYTES on they are scattered to every worker first.
    """
    if sum(b.nbytes for b in broadcast) < SCATTER_BYTES:
        return broadcast
    # hash=False: a new key per call; equal data under one key races with the release of the last call's
    return client.scatter(broadcast, broadcast=True, hash=False)


def _reduced(client: Client, parts: list[Future]) -> list[np.ndarray]:
    """The sum of all parts: tasks summing FAN_IN at a time while there are more, then here.

    The last sum is the client's: gathering a few parts costs one round trip, where a task
    on a worker would cost another (its scheduling and a transfer of the other parts).
    """
    while len(parts) > FAN_IN:
        parts = [client.submit(combine, *parts[i : i + FAN_IN], pure=False) for i in range(0, len(parts), FAN_IN)]
    return combine(*client.gather(parts))


def map_reduce(
    fn: CompiledFunction | Builder,
    broadcast_args: Sequence[object] | object,
    chunked_args: Sequence[object] | object,
    reduce: str = "sum",
    client: Client | None = None,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """fn's outputs over matching first-axis chunks of `chunked_args`, summed (or averaged) across chunks.

    `fn`'s inputs are the broadcast arguments (parameters: sent once per call to every
    worker) followed by the chunked ones (dask arrays, or NumPy arrays). reduce="mean"
    weights each chunk's outputs by its rows, so a per-chunk mean loss and its gradients
    average to the full-data ones. Chunk sizes: see the module docstring. Returns what fn
    returns (one array, or a tuple). `client` defaults to the current dask client.
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduce!r}")
    broadcast = [np.asarray(b) for b in _as_list(broadcast_args)]
    arrays = _as_dask(_as_list(chunked_args))
    rows = arrays[0].shape[0]
    if rows == 0:
        raise ValueError("the chunked arguments have no rows")
    functions, arrays = _functions(fn, broadcast, arrays)
    client = _client(client)
    workers = sorted(client.scheduler_info()["workers"])
    digests = {n: payload_of(f).digest for n, f in functions.items()}
    shipped = {payload_of(f).digest: ship(client, payload_of(f), workers) for f in functions.values()}
    shared = _shared(client, broadcast)
    blocks = _blocks(client, arrays)
    groups: dict[tuple[str | None, str], tuple[list[int], list[Future]]] = {}
    for n, owner, row in zip(arrays[0].chunks[0], _owners(client, workers, blocks), blocks, strict=True):
        sizes, args = groups.setdefault((owner, digests[n]), ([], []))  # a named function: one task per worker
        sizes.append(n)
        args.extend(row)
    parts = []
    for (owner, digest), (sizes, args) in groups.items():
        weights = tuple(sizes) if reduce == "mean" else None
        task = (apply_chunks, shipped[digest], weights, len(shared), len(arrays), *shared, *args)
        on = None if owner is None else [owner]
        parts.append(client.submit(*task, pure=False, workers=on, allow_other_workers=owner is not None))
    outputs = _reduced(client, parts)
    if reduce == "mean":
        outputs = [np.asarray(o / rows) for o in outputs]
    single = next(iter(functions.values())).single
    return outputs[0] if single else tuple(outputs)
