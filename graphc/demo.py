"""The `graphc demo` tour: define, inspect, differentiate, optimize, compile, check, time, train.

May import everything (it sits beside cli, at the top of the import order). The tour is a
sequence of small step functions sharing one `Tour` record; each prints what it did and
clears `tour.ok` when a check fails. `run` runs them all; cli.py's `demo` command calls it.
tqdm is optional: without it the training step draws a plain text progress bar.
"""

from __future__ import annotations

import functools
import shutil
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, cast

import numpy as np

import graphc as gc
from graphc.compile import CompiledFunction
from graphc.passes import Report, run_pipeline
from graphc.testing import check_grad
from graphc.viz import Inspectable, render

AGREE_RTOL = 1e-12
TIMING_SIZE = 200_000
SPIRAL_POINTS = 150  # per arm
SPIRAL_HIDDEN = 32
SPIRAL_STEPS = 400
SPIRAL_RATE = 0.02
SPIRAL_TARGET = 0.95  # test accuracy the tour requires


@dataclass
class Tour:
    """What the demo steps build and check, step by step."""

    x: gc.Tensor
    s: gc.Tensor
    f: gc.Tensor
    feed: dict[gc.Tensor, np.ndarray]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    grads: list[gc.Tensor] = field(default_factory=list)
    gradient_values: dict[str, list[np.ndarray]] = field(default_factory=dict)
    optimized: gc.Graph | None = None
    backends: list[str] = field(default_factory=lambda: ["numpy"])
    svg_dir: Path | None = None
    ok: bool = True


def define(svg_dir: str | Path | None = None) -> Tour:
    """f(x, s) = sum(tanh(x * s) ** 2) + log1p(s * s), as in API.md §1."""
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    feed = {x: np.array([1.0, 2.0, 3.0]), s: np.array(0.5)}
    return Tour(x=x, s=s, f=f, feed=feed, svg_dir=None if svg_dir is None else Path(svg_dir))


def heading(text: str) -> None:
    print(f"\n== {text}")


def verdict(tour: Tour, passed: bool, what: str) -> None:
    """Print `what` with ok/FAILED and fold the result into tour.ok."""
    tour.ok = tour.ok and passed
    print(f"{what}: {'ok' if passed else 'FAILED'}")


# --- 1-3: define, show, evaluate ----------------------------------------------------------


def step_define(tour: Tour) -> None:
    heading("1. define: symbols and an expression")
    print('x = gc.var("x", shape=(3,))')
    print('s = gc.var("s")')
    print("f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)")
    print(f"f is {tour.f!r}")


def step_show(tour: Tour) -> None:
    heading("2. inspect: gc.show(f), one SSA line per node")
    print(gc.show(tour.f))


def step_evaluate(tour: Tour) -> None:
    heading("3. evaluate with the NumPy reference: gc.evaluate(f, {x: ..., s: ...})")
    tour.values["reference"] = np.asarray(gc.evaluate(tour.f, tour.feed))
    print(f"x = {tour.feed[tour.x].tolist()}, s = {tour.feed[tour.s].item()}")
    print(f"gc.evaluate                  f = {tour.values['reference'].item()!r}")


# --- 4-5: differentiate, optimize -----------------------------------------------------------


def step_gradient(tour: Tour) -> None:
    heading("4. differentiate: gx, gs = gc.grad(f, [x, s]) builds new graph nodes")
    tour.grads = list(gc.grad(tour.f, [tour.x, tour.s]))
    raw = gc.Graph([tour.f, *tour.grads])
    print(f"the forward graph has {len(gc.Graph([tour.f]).nodes)} nodes; with the gradient, {len(raw.nodes)}:")
    print(gc.show(raw))
    reference = gc.evaluate(tour.grads, tour.feed)
    tour.gradient_values["reference"] = [np.asarray(g) for g in reference]
    print(f"gc.evaluate                  df/dx = {np.round(reference[0], 6).tolist()}, df/ds = {reference[1]:.6f}")


def step_optimize(tour: Tour) -> None:
    heading("5. optimize: run_pipeline(graph) -> (optimized graph, per-pass report)")
    optimized, report = run_pipeline(gc.Graph([tour.f, *tour.grads]))
    tour.optimized = optimized
    print(report)
    print(explain(report))
    print("the optimized graph (fused regions print their body graphs):")
    print(gc.show(optimized))


def explain(report: Report) -> str:
    """One line saying which passes changed the node count."""
    changed = list(dict.fromkeys(r.name for r in report if r.changed))
    if not changed:
        return "no pass changed the graph"
    return (
        f"passes that changed the graph: {', '.join(changed)} "
        "(fn.report holds this table; fn.report.format(per_round=True) lists every run)"
    )


# --- 6-8: compile, agree, finite differences --------------------------------------------------


def compile_or_skip(inputs: list[gc.Tensor], outputs: list[gc.Tensor], backend: str) -> CompiledFunction | None:
    """gc.compile, or None (with a printed note) when the backend is not built yet."""
    try:
        return gc.compile(inputs, outputs, backend=backend)
    except NotImplementedError as missing:
        print(f"note: backend={backend!r} is not available ({missing}); skipping it")
        return None


def step_compile(tour: Tour) -> None:
    heading("6. compile: fn = gc.compile([x, s], [f, gx, gs], backend=...) on each backend")
    tour.backends = []
    for backend in ("numpy", "llvm"):
        fn = compile_or_skip([tour.x, tour.s], [tour.f, *tour.grads], backend)
        if fn is None:
            continue
        tour.backends.append(backend)
        fval, *gvals = fn(tour.feed[tour.x], tour.feed[tour.s])
        tour.values[backend] = np.asarray(fval)
        tour.gradient_values[backend] = [np.asarray(g) for g in gvals]
        print(f"{fn!r}")
        print(f'gc.compile(backend="{backend}"){" " * (6 - len(backend))} f = {tour.values[backend].item()!r}')


def step_agree(tour: Tour) -> None:
    def close(a: np.ndarray, b: np.ndarray) -> bool:
        return bool(np.allclose(a, b, rtol=AGREE_RTOL, atol=0.0))

    reference = tour.values["reference"]
    agree = all(close(v, reference) for v in tour.values.values())
    ref_grads = tour.gradient_values.get("reference", [])
    for grads in tour.gradient_values.values():
        agree = agree and all(close(g, r) for g, r in zip(grads, ref_grads, strict=True))
    tour.ok = tour.ok and agree
    word = "agree" if agree else "DISAGREE"
    print(f"{' and '.join(tour.values)} {word} (values and gradients, rtol={AGREE_RTOL:g})")


def step_finite_differences(tour: Tour) -> None:
    heading("7. check: graphc.testing.check_grad(f, [x, s], values) against central differences")
    try:
        worst = check_grad(tour.f, [tour.x, tour.s], tour.feed)
    except AssertionError as failure:
        verdict(tour, False, f"finite differences disagree: {failure}")
        return
    verdict(tour, True, f"largest |graphc - finite differences| = {worst:.2e}")


# --- 9: timing ----------------------------------------------------------------------------------


def numpy_value_and_grad(x: np.ndarray, s: float) -> tuple[float, np.ndarray, float]:
    """f, df/dx and df/ds written by hand in NumPy: what graphc is timed against."""
    t = np.tanh(x * s)
    f = np.sum(t * t) + np.log1p(s * s)
    dt = 2.0 * t * (1.0 - t * t)
    return f, dt * s, np.dot(dt, x) + 2.0 * s / (1.0 + s * s)


def best_time(call: Callable[[], object], budget: float = 0.25) -> float:
    """Seconds per call: the best of five runs of a loop sized to take about budget/5 each."""
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(budget / 5 / once))
    return min(timeit.repeat(call, number=number, repeat=5)) / number


def step_time(tour: Tour) -> None:
    n = TIMING_SIZE
    heading(f"8. time: f and its gradient for x of shape ({n},), against hand-written NumPy")
    x = gc.var("x", shape=(n,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    outputs = [f, *gc.grad(f, [x, s])]
    xv = np.random.default_rng(0).standard_normal(n)
    expected: tuple[float | np.ndarray, ...] = numpy_value_and_grad(xv, 0.5)
    base = best_time(lambda: numpy_value_and_grad(xv, 0.5))
    print(f"{'implementation':<26} {'time per call':>14} {'vs NumPy':>9}")
    print(f"{'NumPy, by hand':<26} {base * 1e3:>11.3f} ms {1.0:>8.2f}x")
    for backend in tour.backends:
        fn = compile_or_skip([x, s], outputs, backend)
        if fn is None:
            continue
        got: tuple[np.ndarray, ...] = tuple(fn(xv, 0.5))
        same = all(np.allclose(g, e, rtol=1e-9, atol=1e-12) for g, e in zip(got, expected, strict=True))
        tour.ok = tour.ok and same
        seconds = best_time(functools.partial(fn, xv, 0.5))
        label = f'graphc backend="{backend}"' + ("" if same else " (WRONG)")
        print(f"{label:<26} {seconds * 1e3:>11.3f} ms {base / seconds:>8.2f}x")
    print("(best of 5; 'vs NumPy' above 1 means faster than NumPy)")


# --- 10: training ---------------------------------------------------------------------------------


def two_spirals(per_arm: int, rng: np.random.Generator, noise: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals of 1.5 turns in [-1, 1]^2: points (2*per_arm, 2) and labels 0/1."""
    turns = 1.5
    t = np.sqrt(rng.uniform(0.0, 1.0, per_arm)) * turns * 2 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (turns * 2 * np.pi)
    points = np.concatenate([arm, -arm]) + rng.normal(0.0, noise, (2 * per_arm, 2))
    labels = np.repeat(np.array([0, 1], dtype=np.int64), per_arm)
    return points, labels


@dataclass
class MLP:
    """A two-hidden-layer tanh network as graphc symbols: its parameters, loss and prediction."""

    params: list[gc.Tensor]
    loss: gc.Tensor
    predict: gc.Tensor


def build_mlp(points: gc.Tensor, labels: gc.Tensor, hidden: int) -> MLP:
    sizes = [(points.shape[1], hidden), (hidden, hidden), (hidden, 2)]
    params: list[gc.Tensor] = []
    h = points
    for i, (fan_in, fan_out) in enumerate(sizes, start=1):
        w = gc.var(f"W{i}", shape=(fan_in, fan_out))
        b = gc.var(f"b{i}", shape=(fan_out,))
        params += [w, b]
        h = h @ w + b
        if i < len(sizes):
            h = gc.tanh(h)
    loss = -gc.mean(gc.sum(gc.log_softmax(h) * gc.one_hot(labels, 2), axis=-1))
    return MLP(params=params, loss=loss, predict=gc.argmax(h, axis=-1))


def initial_values(params: list[gc.Tensor], rng: np.random.Generator) -> list[np.ndarray]:
    """Weights ~ N(0, 1/fan_in) (wider in the first layer, so tanh can carve the spirals), zero biases."""
    values = []
    for p in params:
        if p.ndim == 1:
            values.append(np.zeros(p.shape))
            continue
        scale = 3.0 if p.name == "W1" else 1.0 / np.sqrt(p.shape[0])
        values.append(rng.normal(0.0, scale, p.shape))
    return values


class Adam:
    """Adam written in NumPy: the compiled function gives the gradients, this takes the steps."""

    def __init__(self, values: list[np.ndarray], rate: float, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.rate, self.beta1, self.beta2, self.steps = rate, beta1, beta2, 0
        self.m = [np.zeros_like(v) for v in values]
        self.v = [np.zeros_like(v) for v in values]

    def step(self, values: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.steps += 1
        c1 = 1 - self.beta1**self.steps
        c2 = 1 - self.beta2**self.steps
        for value, g, m, v in zip(values, grads, self.m, self.v, strict=True):
            m += (1 - self.beta1) * (g - m)
            v += (1 - self.beta2) * (g * g - v)
            value -= self.rate * (m / c1) / (np.sqrt(v / c2) + 1e-8)


class PlainBar:
    """A text progress bar with the part of tqdm's interface the tour uses (when tqdm is missing)."""

    def __init__(self, total: int, desc: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.desc, self.stream, self.width = total, desc, stream, width
        self.done, self.postfix, self.shown = 0, "", -1

    def update(self, n: int = 1) -> None:
        self.done += n
        tick = self.done * 20 // self.total  # redraw at most 20 times
        if tick != self.shown:
            self.shown = tick
            self._draw("\r" if self.stream.isatty() else "\n")

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, start: str) -> None:
        filled = self.done * self.width // self.total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"{start}{self.desc}: [{bar}] {self.done}/{self.total} {self.postfix}".rstrip())
        self.stream.flush()


def progress_bar(total: int, desc: str) -> PlainBar:
    """A tqdm bar when tqdm is installed, else a PlainBar (the core package does not need tqdm)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainBar(total, desc)
    return tqdm(total=total, desc=desc, leave=True)


def compile_training(net: MLP, points: gc.Tensor, labels: gc.Tensor, backend: str) -> tuple[CompiledFunction, ...]:
    """(loss and gradients, prediction) compiled on `backend`, or on numpy where it cannot compile them."""
    outputs = [net.loss, *gc.grad(net.loss, net.params)]
    loss_and_grads = compile_or_skip([points, labels, *net.params], outputs, backend)
    predict = compile_or_skip([points, *net.params], [net.predict], backend)
    if loss_and_grads is None or predict is None:
        return compile_training(net, points, labels, "numpy")
    return loss_and_grads, predict


@dataclass
class Trained:
    """What training gives back: the losses, the test accuracy, and the prediction function with its values."""

    first: float
    last: float
    accuracy: float
    predict: CompiledFunction
    values: list[np.ndarray]
    test_x: np.ndarray


def train_spirals(backend: str, steps: int = SPIRAL_STEPS, seed: int = 0) -> Trained:
    """Train the MLP on two spirals (the number of points is the named dimension `n`)."""
    rng = np.random.default_rng(seed)
    train_x, train_y = two_spirals(SPIRAL_POINTS, rng)
    test_x, test_y = two_spirals(SPIRAL_POINTS // 2, rng)
    points = gc.var("points", shape=("n", 2))
    labels = gc.var("labels", shape=("n",), dtype="int64")
    net = build_mlp(points, labels, SPIRAL_HIDDEN)
    loss_and_grads, predict = compile_training(net, points, labels, backend)
    values = initial_values(net.params, rng)
    adam = Adam(values, SPIRAL_RATE)
    bar = progress_bar(steps, "training")
    losses = []
    for _ in range(steps):
        loss, *grads = loss_and_grads(train_x, train_y, *values)
        adam.step(values, grads)
        losses.append(float(loss))
        bar.set_postfix_str(f"loss {losses[-1]:.4f}", refresh=False)
        bar.update(1)
    bar.close()
    (predicted,) = predict(test_x, *values)
    accuracy = float(np.mean(predicted == test_y))
    return Trained(losses[0], losses[-1], accuracy, predict, values, test_x)


def step_two_sizes(tour: Tour, trained: Trained) -> None:
    """One compiled prediction function at two batch sizes: each size is compiled once, results agree."""
    predict, values = trained.predict, trained.values
    few = trained.test_x[:7]
    (all_points,) = cast(tuple[np.ndarray], predict(trained.test_x, *values))
    (seven,) = cast(tuple[np.ndarray], predict(few, *values))
    sizes = " and ".join(str(s["n"]) for s in predict.specializations)
    print(f"predict {predict.signature}: called at n = {sizes}, one compiled function")
    verdict(tour, bool(np.array_equal(seven, all_points[:7])), "the same predictions at both batch sizes")


def step_train(tour: Tour) -> None:
    backend = tour.backends[-1]
    heading(f"9. train: a 2-{SPIRAL_HIDDEN}-{SPIRAL_HIDDEN}-2 tanh MLP on two spirals, Adam in NumPy")
    print(f"{2 * SPIRAL_POINTS} generated points, full batch, {SPIRAL_STEPS} steps, backend={backend!r}")
    print('the batch is a named dimension: points = gc.var("points", shape=("n", 2))')
    start = time.perf_counter()
    trained = train_spirals(backend)
    print(f"cross-entropy {trained.first:.4f} -> {trained.last:.4f} in {time.perf_counter() - start:.1f} s")
    verdict(tour, trained.accuracy >= SPIRAL_TARGET, f"test accuracy on fresh spiral points: {trained.accuracy:.1%}")
    step_two_sizes(tour, trained)


# --- 11: pictures -------------------------------------------------------------------------------------


def write_picture(graph: Inspectable, folder: Path, stem: str) -> Path:
    """folder/stem.svg drawn by Graphviz, or folder/stem.dot when `dot` is not installed."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("dot") is not None:
        return render(graph, folder / f"{stem}.svg", format="svg")
    path = folder / f"{stem}.dot"
    path.write_text(gc.to_dot(graph))
    return path


def step_pictures(tour: Tour) -> None:
    heading("10. pictures: gc.to_dot, drawn with Graphviz")
    if tour.svg_dir is None:
        print("run `graphc demo --svg out/` to write the graphs of f, its gradient and the optimized graph")
        return
    if shutil.which("dot") is None:
        print("note: the Graphviz program `dot` is not on PATH, so the graphs are written as .dot text;")
        print("      install Graphviz (e.g. `apt-get install graphviz`) for SVG, or render the .dot files elsewhere")
    graphs = {
        "f": gc.Graph([tour.f]),
        "gradient": gc.Graph([tour.f, *tour.grads]),
        "optimized": tour.optimized or gc.Graph([tour.f]),
    }
    for stem, graph in graphs.items():
        print(f"wrote {write_picture(graph, tour.svg_dir, stem)}")


DEMO_STEPS: tuple[Callable[[Tour], None], ...] = (
    step_define,
    step_show,
    step_evaluate,
    step_gradient,
    step_optimize,
    step_compile,
    step_agree,
    step_finite_differences,
    step_time,
    step_train,
    step_pictures,
)


def run(svg_dir: str | Path | None = None) -> int:
    """Run the whole tour; 0 when every check passed."""
    start = time.perf_counter()
    tour = define(svg_dir)
    for step in DEMO_STEPS:
        step(tour)
    print(f"\n{'all checks passed' if tour.ok else 'SOME CHECKS FAILED'} in {time.perf_counter() - start:.1f} s")
    return 0 if tour.ok else 1
