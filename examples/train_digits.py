"""Static backpropagation for character recognition: an MLP on scikit-learn's 8x8 digits.

graphc builds the loss of a 64-128-10 tanh network over a *named* batch dimension
(`shape=("batch", 64)`), differentiates it with respect to a dict of parameters (gc.grad
gives a dict of gradients, as more graph nodes), optimizes and compiles loss-and-gradients
into one function that takes any batch size: the ragged last minibatch of an epoch and the
whole test set go through the same compiled functions, each new size compiled once.
The training loop around it is plain NumPy: shuffled minibatches, SGD with momentum and a
cosine-decaying learning rate.
The digits ship with scikit-learn (no download). Writes a loss/accuracy plot (matplotlib).

    python examples/train_digits.py                    # 30 epochs, plot to train_digits.png
    python examples/train_digits.py --epochs 5 --backend numpy --plot out/digits.png
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_backend_flag, compile_with_fallback, count, pick_backend, require

import graphc as gc

BATCH = 32
HIDDEN = 128


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=count, default=30, help="passes over the training set (default 30)")
    add_backend_flag(parser)
    parser.add_argument("--plot", metavar="PATH", default="train_digits.png", help="where to write the PNG plot")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot (and matplotlib)")
    parser.add_argument("--rate", type=float, default=0.05, help="initial SGD learning rate (default 0.05)")
    parser.add_argument("--momentum", type=float, default=0.9, help="momentum coefficient (default 0.9)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, the weights and the shuffles")
    return parser.parse_args()


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1797 digits, pixels scaled to [0, 1]; a stratified 80/20 train/test split."""
    datasets = require("sklearn.datasets", "scikit-learn", "the bundled 8x8 digits data set")
    selection = require("sklearn.model_selection", "scikit-learn", "the train/test split")
    digits = datasets.load_digits()
    pixels = digits.data / 16.0
    return selection.train_test_split(
        pixels, digits.target.astype(np.int64), test_size=0.2, random_state=seed, stratify=digits.target
    )


@dataclass
class Network:
    """The symbols of the model: inputs, parameters, and the loss and prediction built from them."""

    images: gc.Tensor
    labels: gc.Tensor
    params: dict[str, gc.Tensor]
    loss: gc.Tensor


def logits_of(images: gc.Tensor, params: dict[str, gc.Tensor]) -> gc.Tensor:
    hidden = gc.tanh(images @ params["W1"] + params["b1"])
    return hidden @ params["W2"] + params["b2"]


def build_network() -> Network:
    """Mean cross-entropy of a 64-HIDDEN-10 network over a batch of any size (the named dimension `batch`)."""
    images = gc.var("images", shape=("batch", 64))
    labels = gc.var("labels", shape=("batch",), dtype="int64")
    params = {
        "W1": gc.var("W1", shape=(64, HIDDEN)),
        "b1": gc.var("b1", shape=(HIDDEN,)),
        "W2": gc.var("W2", shape=(HIDDEN, 10)),
        "b2": gc.var("b2", shape=(10,)),
    }
    log_p = gc.log_softmax(logits_of(images, params), axis=-1)
    loss = -gc.mean(gc.sum(log_p * gc.one_hot(labels, 10), axis=-1))
    return Network(images, labels, params, loss)


def initial_values(params: dict[str, gc.Tensor], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Glorot-scaled normal weights, zero biases."""
    values = {}
    for name, p in sorted(params.items()):
        if p.ndim == 1:
            values[name] = np.zeros(p.shape)
        else:
            values[name] = rng.normal(0.0, np.sqrt(2.0 / sum(p.shape)), p.shape)
    return values


@dataclass
class History:
    loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    accuracy: list[float] = field(default_factory=list)  # test accuracy per epoch


def plot(history: History, path: Path) -> None:
    matplotlib = require("matplotlib", "matplotlib", "the loss/accuracy plot; or pass --no-plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history.loss) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    left.plot(epochs, history.loss, marker=".")
    left.set(xlabel="epoch", ylabel="training cross-entropy", yscale="log", title="loss")
    right.plot(epochs, np.array(history.accuracy) * 100, marker=".", color="tab:green")
    right.set(xlabel="epoch", ylabel="test accuracy (%)", title="accuracy")
    right.axhline(96, color="gray", linestyle=":", linewidth=1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def train_epoch(
    step_fn: Any, values: dict[str, np.ndarray], velocity: dict[str, np.ndarray],
    data: tuple[np.ndarray, np.ndarray], rate: float, momentum: float, rng: np.random.Generator,
) -> float:  # fmt: skip
    """One pass over shuffled minibatches with SGD + momentum (in place); the mean training loss per image.

    Every image is used: the last minibatch is smaller (the batch dimension is named, so
    the compiled function takes it as it is).
    """
    images, labels = data
    order = rng.permutation(len(images))
    total = 0.0
    for start in range(0, len(images), BATCH):
        rows = order[start : start + BATCH]
        loss, grads = step_fn(images[rows], labels[rows], values)
        for name, g in grads.items():
            velocity[name] *= momentum
            velocity[name] -= rate * g
            values[name] += velocity[name]
        total += float(loss) * len(rows)
    return total / len(images)


def main() -> None:
    args = parse_args()
    tqdm = require("tqdm", "tqdm", "the progress bar").tqdm
    train_x, test_x, train_y, test_y = load_data(args.seed)
    backend = pick_backend(args.backend)
    rng = np.random.default_rng(args.seed)

    start = time.perf_counter()
    net = build_network()
    gradients = gc.grad(net.loss, net.params)  # a dict of gradients, like net.params
    step_fn = compile_with_fallback([net.images, net.labels, net.params], [net.loss, gradients], backend)
    predictions = gc.argmax(logits_of(net.images, net.params), axis=-1)
    predict = compile_with_fallback([net.images, net.params], predictions, backend)
    built = time.perf_counter() - start
    print(f"optimized loss+gradients and prediction ({step_fn.backend} backend) in {built:.2f} s; "
          "each batch size is compiled on its first call")  # fmt: skip
    print(f"  {step_fn.signature}")
    ragged = len(train_x) % BATCH
    print(f"{len(train_x)} training images ({len(train_x) // BATCH} batches of {BATCH}"
          f"{f' and one of {ragged}' if ragged else ''}), {len(test_x)} test images, hidden {HIDDEN}")  # fmt: skip

    values = initial_values(net.params, rng)
    velocity = {name: np.zeros_like(v) for name, v in values.items()}
    initial_loss = float(step_fn(train_x[:BATCH], train_y[:BATCH], values)[0])
    print(f"initial loss {initial_loss:.4f} (chance: ln 10 = {np.log(10):.4f})")

    history = History()
    bar = tqdm(range(args.epochs), desc="training", unit="epoch")
    for epoch in bar:
        rate = args.rate * 0.5 * (1 + np.cos(np.pi * epoch / args.epochs))  # cosine decay to 0
        history.loss.append(train_epoch(step_fn, values, velocity, (train_x, train_y), rate, args.momentum, rng))
        history.accuracy.append(float(np.mean(predict(test_x, values) == test_y)))
        bar.set_postfix(loss=f"{history.loss[-1]:.4f}", test_acc=f"{history.accuracy[-1]:.2%}")
        bar.write(f"epoch {epoch + 1:3d}  loss {history.loss[-1]:.4f}  test accuracy {history.accuracy[-1]:.2%}")
    bar.close()

    seconds = time.perf_counter() - start
    accuracy = history.accuracy[-1] if history.accuracy else float(np.mean(predict(test_x, values) == test_y))
    print(f"final test accuracy {accuracy:.2%} after {args.epochs} epochs in {seconds:.1f} s")
    sizes = ", ".join(str(s["batch"]) for s in step_fn.specializations + predict.specializations)
    print(f"batch sizes compiled (each once): {sizes}")
    if args.no_plot:
        return
    if not history.loss:
        print("no plot: nothing was trained (--epochs 0)")
        return
    plot(history, Path(args.plot))
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
