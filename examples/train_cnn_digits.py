"""A convolutional net on scikit-learn's 8x8 digits: gc.nn.conv2d and max_pool2d, trained with SGD and momentum.

Two blocks of convolution (3x3, zero padding), ReLU and 2x2 max pooling turn a 1x8x8 image
into 32x2x2 features; one dense layer gives the 10 logits. graphc builds the mean
cross-entropy, differentiates it (the convolutions' gradients are im2col/col2im and
matrix products: print `gc.show(loss)` to see them), optimizes and compiles loss and
gradients into one function. The training loop is plain NumPy: shuffled minibatches,
each image shifted by up to one pixel at random, SGD with momentum, a cosine-decaying rate.
The digits ship with scikit-learn (no download). Writes a loss/accuracy plot (matplotlib).

    python examples/train_cnn_digits.py                # 30 epochs, plot to train_cnn_digits.png
    python examples/train_cnn_digits.py --epochs 3 --backend numpy --plot out/cnn.png
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_backend_flag, compile_with_fallback, count, pick_backend, require
from train_digits import History, load_data

import graphc as gc

BATCH = 64
CHANNELS = (16, 32)  # of the two convolutions


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=count, default=30, help="passes over the training set (default 30)")
    add_backend_flag(parser)
    parser.add_argument("--plot", metavar="PATH", default="train_cnn_digits.png", help="where to write the PNG plot")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot (and matplotlib)")
    parser.add_argument("--rate", type=float, default=0.05, help="initial SGD learning rate (default 0.05)")
    parser.add_argument("--momentum", type=float, default=0.9, help="momentum coefficient (default 0.9)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, the weights and the shuffles")
    return parser.parse_args()


def parameters() -> list[gc.Tensor]:
    """Two 3x3 convolutions with biases, then a dense layer from the 32x2x2 features to 10 logits."""
    first, second = CHANNELS
    return [
        gc.var("K1", shape=(first, 1, 3, 3)),
        gc.var("c1", shape=(first,)),
        gc.var("K2", shape=(second, first, 3, 3)),
        gc.var("c2", shape=(second,)),
        gc.var("W", shape=(second * 4, 10)),
        gc.var("b", shape=(10,)),
    ]


def logits_of(images: gc.Tensor, params: list[gc.Tensor]) -> gc.Tensor:
    """images (N, 1, 8, 8) -> conv-relu-pool -> (N, 16, 4, 4) -> conv-relu-pool -> (N, 32, 2, 2) -> dense."""
    k1, c1, k2, c2, w, b = params
    h = gc.nn.max_pool2d(gc.relu(gc.nn.conv2d(images, k1, padding=1, bias=c1)), 2)
    h = gc.nn.max_pool2d(gc.relu(gc.nn.conv2d(h, k2, padding=1, bias=c2)), 2)
    return gc.reshape(h, (images.shape[0], -1)) @ w + b


@dataclass
class Network:
    images: gc.Tensor
    labels: gc.Tensor
    params: list[gc.Tensor]
    loss: gc.Tensor


def build_network(rows: int) -> Network:
    """Mean cross-entropy over a batch of `rows` images."""
    images = gc.var("images", shape=(rows, 1, 8, 8))
    labels = gc.var("labels", shape=(rows,), dtype="int64")
    params = parameters()
    log_p = gc.log_softmax(logits_of(images, params), axis=-1)
    loss = -gc.mean(gc.sum(log_p * gc.one_hot(labels, 10), axis=-1))
    return Network(images, labels, params, loss)


def initial_values(params: list[gc.Tensor], rng: np.random.Generator) -> list[np.ndarray]:
    """He-scaled normal weights (fan-in: all but the first axis of a kernel, the rows of W), zero biases."""
    values = []
    for p in params:
        if p.ndim == 1:
            values.append(np.zeros(p.shape))
            continue
        fan_in = int(np.prod(p.shape[1:])) if p.ndim == 4 else p.shape[0]
        values.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), p.shape))
    return values


def shifted(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by -1, 0 or 1 pixel along each axis, zeros shifted in (augmentation)."""
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.empty_like(images)
    moves = rng.integers(0, 3, size=(len(images), 2))
    for k, (dy, dx) in enumerate(moves):
        out[k] = padded[k, :, dy : dy + 8, dx : dx + 8]
    return out


def train_epoch(
    step_fn: Any, values: list[np.ndarray], velocity: list[np.ndarray], data: tuple[np.ndarray, np.ndarray],
    rate: float, momentum: float, rng: np.random.Generator,
) -> float:  # fmt: skip
    """One pass over shuffled, shifted minibatches with SGD + momentum (in place); the mean training loss."""
    images, labels = data
    order = rng.permutation(len(images))
    losses = []
    for start in range(0, len(images) - BATCH + 1, BATCH):  # the compiled shapes are static: whole batches
        rows = order[start : start + BATCH]
        loss, *grads = step_fn(shifted(images[rows], rng), labels[rows], *values)
        for value, v, g in zip(values, velocity, grads, strict=True):
            v *= momentum
            v -= rate * g
            value += v
        losses.append(float(loss))
    return float(np.mean(losses))


def plot(history: History, path: Path) -> None:
    matplotlib = require("matplotlib", "matplotlib", "the loss/accuracy plot; or pass --no-plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history.loss) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    left.plot(epochs, history.loss, marker=".")
    left.set(xlabel="epoch", ylabel="training cross-entropy", yscale="log", title="loss")
    right.plot(epochs, np.array(history.accuracy) * 100, marker=".", color="tab:green")
    right.set(xlabel="epoch", ylabel="test accuracy (%)", title="accuracy (CNN)")
    right.axhline(98.5, color="gray", linestyle=":", linewidth=1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    tqdm = require("tqdm", "tqdm", "the progress bar").tqdm
    train_x, test_x, train_y, test_y = (a.reshape(-1, 1, 8, 8) if a.ndim == 2 else a for a in load_data(args.seed))
    backend = pick_backend(args.backend)
    rng = np.random.default_rng(args.seed)

    start = time.perf_counter()
    net = build_network(BATCH)
    gradients = gc.grad(net.loss, net.params)
    step_fn = compile_with_fallback([net.images, net.labels, *net.params], [net.loss, *gradients], backend)
    test_images = gc.var("images", shape=test_x.shape)
    predict = compile_with_fallback(
        [test_images, *net.params], gc.argmax(logits_of(test_images, net.params), axis=-1), backend
    )
    print(f"compiled loss+gradients and prediction ({step_fn.backend} backend) in {time.perf_counter() - start:.2f} s")
    print(f"{len(train_x)} training images, {len(test_x)} test images, batch {BATCH}, channels {CHANNELS}")

    values = initial_values(net.params, rng)
    velocity = [np.zeros_like(v) for v in values]
    initial_loss = float(step_fn(train_x[:BATCH], train_y[:BATCH], *values)[0])
    print(f"initial loss {initial_loss:.4f} (chance: ln 10 = {np.log(10):.4f})")

    history = History()
    bar = tqdm(range(args.epochs), desc="training", unit="epoch")
    for epoch in bar:
        rate = args.rate * 0.5 * (1 + np.cos(np.pi * epoch / args.epochs))  # cosine decay to 0
        history.loss.append(train_epoch(step_fn, values, velocity, (train_x, train_y), rate, args.momentum, rng))
        history.accuracy.append(float(np.mean(predict(test_x, *values) == test_y)))
        bar.set_postfix(loss=f"{history.loss[-1]:.4f}", test_acc=f"{history.accuracy[-1]:.2%}")
        bar.write(f"epoch {epoch + 1:3d}  loss {history.loss[-1]:.4f}  test accuracy {history.accuracy[-1]:.2%}")
    bar.close()

    seconds = time.perf_counter() - start
    accuracy = history.accuracy[-1] if history.accuracy else float(np.mean(predict(test_x, *values) == test_y))
    print(f"final test accuracy {accuracy:.2%} after {args.epochs} epochs in {seconds:.1f} s")
    if args.no_plot:
        return
    if not history.loss:
        print("no plot: nothing was trained (--epochs 0)")
        return
    plot(history, Path(args.plot))
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
