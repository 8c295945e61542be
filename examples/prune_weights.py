"""Removing weighted links: magnitude pruning of the digits MLP, with the masks as inputs of the compiled graph.

The network of train_digits.py (64-128-10, tanh) computes with W1 * M1 and W2 * M2, where
the masks M1 and M2 are ordinary graph inputs: one compiled loss-and-gradients function
serves every sparsity, and the gradient of a removed weight is exactly 0 (d/dW of W * M
is M times the incoming gradient), so retraining never revives it. After dense training,
each level of the schedule removes the weights of smallest magnitude (in each layer) until
that fraction is gone, measures the test accuracy, retrains the survivors a few epochs and
measures again. Prints a table of sparsity against accuracy and draws it (matplotlib).

    python examples/prune_weights.py                     # 30 dense epochs, levels 50% ... 95%
    python examples/prune_weights.py --epochs 5 --retrain 2 --levels 0.5,0.8 --backend numpy
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import add_backend_flag, compile_with_fallback, count, pick_backend, require
from train_digits import HIDDEN, initial_values, load_data, train_epoch

import graphc as gc


def fractions(text: str) -> list[float]:
    """An argparse type: comma-separated increasing fractions in [0, 1)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions like 0.5,0.8, got {text!r}") from None
    if not all(0.0 <= v < 1.0 for v in values) or values != sorted(values):
        raise argparse.ArgumentTypeError(f"levels must be increasing fractions in [0, 1), got {text!r}")
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=count, default=30, help="dense training epochs (default 30)")
    parser.add_argument("--retrain", type=count, default=10, help="retraining epochs after each pruning (default 10)")
    parser.add_argument("--levels", type=fractions, default=[0.5, 0.7, 0.8, 0.9, 0.95],
                        help="fractions of the weights to remove, in turn (default 0.5,0.7,0.8,0.9,0.95)")  # fmt: skip
    add_backend_flag(parser)
    parser.add_argument("--plot", metavar="PATH", default="prune_weights.png", help="where to write the PNG plot")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot (and matplotlib)")
    parser.add_argument("--rate", type=float, default=0.05, help="initial SGD learning rate (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, the weights and the shuffles")
    return parser.parse_args()


def masked_network() -> tuple[list[gc.Tensor], dict[str, gc.Tensor], dict[str, gc.Tensor], gc.Tensor, gc.Tensor]:
    """(data inputs, masks, parameters, loss, logits): the MLP computing with W1 * M1 and W2 * M2.

    The batch is a named dimension: one compiled function serves the minibatches and the test set.
    """
    images = gc.var("images", shape=("batch", 64))
    labels = gc.var("labels", shape=("batch",), dtype="int64")
    masks = {"W1": gc.var("M1", shape=(64, HIDDEN)), "W2": gc.var("M2", shape=(HIDDEN, 10))}
    params = {"W1": gc.var("W1", shape=(64, HIDDEN)), "b1": gc.var("b1", shape=(HIDDEN,)),
              "W2": gc.var("W2", shape=(HIDDEN, 10)), "b2": gc.var("b2", shape=(10,))}  # fmt: skip
    hidden = gc.tanh(images @ (params["W1"] * masks["W1"]) + params["b1"])
    logits = hidden @ (params["W2"] * masks["W2"]) + params["b2"]
    log_p = gc.log_softmax(logits, axis=-1)
    loss = -gc.mean(gc.sum(log_p * gc.one_hot(labels, 10), axis=-1))
    return [images, labels], masks, params, loss, logits


def magnitude_masks(values: dict[str, np.ndarray], fraction: float) -> dict[str, np.ndarray]:
    """Per weight matrix: 1 for the weights kept, 0 for the `fraction` of smallest magnitude."""
    masks = {}
    for name in ("W1", "W2"):
        w = values[name]
        drop = round(fraction * w.size)
        order = np.argsort(np.abs(w), axis=None, kind="stable")
        mask = np.ones(w.size)
        mask[order[:drop]] = 0.0
        masks[name] = mask.reshape(w.shape)
    return masks


def train(step: object, values: dict[str, np.ndarray], data: tuple[np.ndarray, np.ndarray], epochs: int,
          rate: float, rng: np.random.Generator) -> list[float]:  # fmt: skip
    """SGD with momentum 0.9 and a cosine-decaying rate, from zero velocity; the loss per epoch."""
    velocity = {name: np.zeros_like(v) for name, v in values.items()}
    losses = []
    for epoch in range(epochs):
        epoch_rate = rate * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
        losses.append(train_epoch(step, values, velocity, data, epoch_rate, 0.9, rng))
    return losses


def plot(rows: list[tuple[float, float, float]], dense: float, path: Path) -> None:
    matplotlib = require("matplotlib", "matplotlib", "the sparsity/accuracy plot; or pass --no-plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sparsity = [100 * r[0] for r in rows]
    fig, axes = plt.subplots(figsize=(5, 3.2), dpi=100)
    axes.plot(sparsity, [100 * r[1] for r in rows], marker="o", label="pruned")
    axes.plot(sparsity, [100 * r[2] for r in rows], marker="o", label="pruned + retrained")
    axes.axhline(100 * dense, color="gray", linestyle=":", label="dense")
    axes.axhline(100 * dense - 1, color="gray", linestyle="--", linewidth=0.8, label="dense - 1%")
    axes.set(xlabel="weights removed (%)", ylabel="test accuracy (%)", title="magnitude pruning of the digits MLP")
    axes.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    train_x, test_x, train_y, test_y = load_data(args.seed)
    backend = pick_backend(args.backend)
    rng = np.random.default_rng(args.seed)

    start = time.perf_counter()
    data_in, masks, params, loss, logits = masked_network()
    fn = compile_with_fallback([*data_in, masks, params], [loss, gc.grad(loss, params)], backend)
    predict = compile_with_fallback([data_in[0], masks, params], gc.argmax(logits, axis=-1), backend)
    seconds = time.perf_counter() - start
    print(f"compiled the masked loss+gradients and prediction ({fn.backend} backend) in {seconds:.2f} s")

    mask_values = {name: np.ones(m.shape) for name, m in masks.items()}

    def step(images: np.ndarray, labels: np.ndarray, values: dict[str, np.ndarray]) -> object:
        return fn(images, labels, mask_values, values)

    def accuracy(values: dict[str, np.ndarray]) -> float:
        return float(np.mean(predict(test_x, mask_values, values) == test_y))

    values = initial_values(params, rng)
    losses = train(step, values, (train_x, train_y), args.epochs, args.rate, rng)
    dense = accuracy(values)
    print(f"dense: {args.epochs} epochs, loss {losses[-1] if losses else float('nan'):.4f}, test accuracy {dense:.2%}")

    rows = []
    print(f"{'removed':>8} {'weights kept':>13} {'pruned':>8} {'retrained':>10} {'change':>8}")
    for fraction in args.levels:
        mask_values.update(magnitude_masks(values, fraction))
        values["W1"] *= mask_values["W1"]
        values["W2"] *= mask_values["W2"]
        pruned = accuracy(values)
        retrain_losses = train(step, values, (train_x, train_y), args.retrain, args.rate, rng)
        retrained = accuracy(values)
        kept = int(sum(m.sum() for m in mask_values.values()))
        rows.append((fraction, pruned, retrained))
        first_loss = f" (loss {retrain_losses[0]:.4f} -> {retrain_losses[-1]:.4f})" if retrain_losses else ""
        print(f"{fraction:8.0%} {kept:13d} {pruned:8.2%} {retrained:10.2%} {retrained - dense:+8.2%}{first_loss}")
    print(f"final test accuracy {rows[-1][2] if rows else dense:.2%} in {time.perf_counter() - start:.1f} s")
    if args.no_plot or not rows:
        return
    plot(rows, dense, Path(args.plot))
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
