"""Full-batch training on a dataset held as a dask array, on a dask.distributed cluster.

The training set (inputs X and labels Y from a hidden "teacher" network) lives on the
workers as dask arrays chunked by rows; it never passes through this process. graphc
compiles the mean cross-entropy of a tanh MLP and its gradient once, over a named batch
dimension (`gc.var("X", ("batch", features))`), so it takes chunks of any size: the last
chunk may be shorter than the others, and nothing is rechunked. At every step
graphc.distributed.map_reduce sends the parameters to each worker once, runs the
compiled loss and gradient on each chunk where the chunk lives, and averages the results
weighted by rows: the full-batch loss and gradient, which scipy's L-BFGS (or plain
gradient descent, --method gd) turns into a step.

The workers receive the graph as JSON text (gc.dumps) and compile it themselves, with
their own compile cache (a worker compiles each chunk size it meets once): no native
code or pickled graph travels. By default the example
starts a LocalCluster of worker processes on this machine; --scheduler runs the same code
on any dask cluster (only the Client changes). Workers need graphc installed.

    python examples/distributed_training.py
    python examples/distributed_training.py --workers 4 --rows 400000 --chunk-rows 30000
    python examples/distributed_training.py --scheduler tcp://10.0.0.5:8786
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from types import ModuleType

import numpy as np
from _common import add_backend_flag, pick_backend

import graphc as gc


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheduler", help="address of a running dask scheduler (default: start a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    parser.add_argument("--rows", type=int, default=100_000, help="training rows (default 100000)")
    parser.add_argument("--chunk-rows", type=int, default=12_500, help="rows per chunk (the last may be shorter)")
    parser.add_argument("--features", type=int, default=32, help="input features (default 32)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    parser.add_argument("--classes", type=int, default=5, help="classes (default 5)")
    parser.add_argument("--iters", type=int, default=40, help="optimizer iterations (default 40)")
    parser.add_argument("--method", choices=("lbfgs", "gd"), default="lbfgs", help="L-BFGS (scipy) or gradient descent")
    parser.add_argument("--lr", type=float, default=0.5, help="gradient descent step size (default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="a small problem that runs in seconds (for tests)")
    add_backend_flag(parser)
    args = parser.parse_args()
    if args.fast:  # 6 chunks of 600 rows and one of 400
        args.rows, args.chunk_rows, args.features, args.hidden, args.classes, args.iters = 4000, 600, 8, 16, 3, 15
    if args.chunk_rows < 1:
        parser.error(f"--chunk-rows must be positive, got {args.chunk_rows}")
    return args


def require(module: str, why: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        sys.exit(
            f"error: this example needs {module.split('.')[0]} ({why}), which is not installed.\n"
            "install it with: pip install 'dask[distributed]' scipy  (from a checkout: pip install -e '.[distributed]')"
        )


def connect(args: argparse.Namespace) -> object:
    """A dask.distributed Client: to --scheduler, or to a new LocalCluster of worker processes."""
    distributed = require("distributed", "the cluster")
    if args.scheduler:
        return distributed.Client(args.scheduler)
    cluster = distributed.LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )  # fmt: skip
    return distributed.Client(cluster)


def make_data(args: argparse.Namespace, client: object) -> tuple[object, object]:
    """X (rows x features) and the teacher's labels Y, as dask arrays persisted on the workers."""
    da = require("dask.array", "the dataset")
    rng = np.random.default_rng(args.seed + 1)
    teacher_in = rng.normal(size=(args.features, args.hidden)) / np.sqrt(args.features)
    teacher_out = rng.normal(size=(args.hidden, args.classes))
    X = da.random.default_rng(args.seed).normal(size=(args.rows, args.features), chunks=(args.chunk_rows, -1))
    Y = (da.tanh(X @ teacher_in) @ teacher_out).argmax(axis=1).astype(np.int64)
    return client.persist([X, Y])  # type: ignore[attr-defined]


def model(args: argparse.Namespace) -> tuple[list[gc.Tensor], list[gc.Tensor], gc.Tensor, gc.Tensor]:
    """(params, [X, Y], mean cross-entropy, number correct) for a chunk of any number of rows (`batch`)."""
    X, Y = gc.var("X", ("batch", args.features)), gc.var("Y", ("batch",), "int64")
    W1, b1 = gc.var("W1", (args.features, args.hidden)), gc.var("b1", (args.hidden,))
    W2, b2 = gc.var("W2", (args.hidden, args.classes)), gc.var("b2", (args.classes,))
    logits = gc.tanh(X @ W1 + b1) @ W2 + b2
    loss = -gc.mean(gc.sum(gc.log_softmax(logits, axis=-1) * gc.one_hot(Y, args.classes), axis=-1))
    correct = gc.sum(gc.equal(gc.argmax(logits, axis=1), Y).astype("float64"))
    return [W1, b1, W2, b2], [X, Y], loss, correct


def initial(params: list[gc.Tensor], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed + 2)
    return [rng.normal(0.0, 1.0 / np.sqrt(p.shape[0]), p.shape) if p.ndim == 2 else np.zeros(p.shape) for p in params]


def flat(values: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in values])


def unflat(theta: np.ndarray, like: list[gc.Tensor]) -> list[np.ndarray]:
    sizes = np.cumsum([0] + [int(np.prod(p.shape)) for p in like])
    return [theta[a:b].reshape(p.shape) for a, b, p in zip(sizes[:-1], sizes[1:], like, strict=True)]


def check_against_one_process(args: argparse.Namespace, fn: object, data: tuple, values: list) -> None:
    """map_reduce's loss and gradient on the first chunks equal one call of the same function on those rows."""
    from graphc import distributed as gd

    rows = min(args.rows, 3 * args.chunk_rows + args.chunk_rows // 2)  # three chunks and half of one
    X, Y = (a[:rows] for a in data)  # type: ignore[index]
    want = fn(*values, X.compute(), Y.compute())  # type: ignore[operator]
    got = gd.map_reduce(fn, values, [X, Y], reduce="mean")  # type: ignore[arg-type]
    worst = max(float(np.max(np.abs(g - w) / (np.abs(w) + 1e-300))) for g, w in zip(got, want, strict=True))
    if worst > 1e-10:
        sys.exit(f"error: the distributed gradient differs from the single-process one (max relative {worst:.2e})")
    print(f"the distributed loss and gradient on {rows} rows: matches the single-process gradient ({worst:.1e})")


def train(args: argparse.Namespace, fn: object, data: tuple, params: list[gc.Tensor], theta: np.ndarray) -> np.ndarray:
    """theta after --iters steps; prints the full-batch loss at each step."""
    from graphc import distributed as gd

    history: list[float] = []

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        loss, *grads = gd.map_reduce(fn, unflat(theta, params), list(data), reduce="mean")  # type: ignore[arg-type]
        history.append(float(loss))
        print(f"loss {len(history) - 1:4d} {float(loss):.6f}")
        return float(loss), flat(grads)

    if args.method == "gd":
        for _ in range(args.iters):
            _, g = loss_and_grad(theta)
            theta = theta - args.lr * g
        return theta
    optimize = require("scipy.optimize", "L-BFGS; or use --method gd")
    result = optimize.minimize(loss_and_grad, theta, jac=True, method="L-BFGS-B", options={"maxiter": args.iters})
    return result.x


def main() -> None:
    args = parse_args()
    from graphc import distributed as gd

    backend = pick_backend(args.backend)
    client = connect(args)
    data = make_data(args, client)
    params, inputs, loss, correct = model(args)
    fn = gc.compile([*params, *inputs], [loss, *gc.grad(loss, params)], backend=backend)
    accuracy_fn = gc.compile([*params, *inputs], correct, backend=backend)
    workers = len(client.scheduler_info()["workers"])  # type: ignore[attr-defined]
    sizes = sorted(set(data[0].chunks[0]), reverse=True)  # type: ignore[attr-defined]
    print(f"{args.rows} rows in chunks of {', '.join(map(str, sizes))} rows on {workers} workers; backend={backend}")
    values = initial(params, args.seed)
    check_against_one_process(args, fn, data, values)
    start = time.perf_counter()
    theta = train(args, fn, data, params, flat(values))
    elapsed = time.perf_counter() - start
    right = gd.map_reduce(accuracy_fn, unflat(theta, params), list(data), reduce="sum")
    print(f"training accuracy {float(right) / args.rows:.3f}; {elapsed:.2f} s of training")
    client.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
