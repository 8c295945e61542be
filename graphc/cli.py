"""The `graphc` command: `demo` (a guided tour of the API), `inspect` (the demo graph's artifacts).

May import everything (it sits at the top of the import order). The tour is a
sequence of small step functions sharing one `Tour` record; later steps (gradient,
optimizer report, training) slot into DEMO_STEPS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

import graphc as gc

AGREE_RTOL = 1e-12


@dataclass
class Tour:
    """What the demo steps build and check, step by step."""

    x: gc.Tensor
    s: gc.Tensor
    f: gc.Tensor
    feed: dict[gc.Tensor, np.ndarray]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    ok: bool = True


def define() -> Tour:
    """f(x, s) = sum(tanh(x * s) ** 2) + log1p(s * s), as in API.md §1."""
    x = gc.var("x", shape=(3,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    feed = {x: np.array([1.0, 2.0, 3.0]), s: np.array(0.5)}
    return Tour(x=x, s=s, f=f, feed=feed)


def heading(text: str) -> None:
    print(f"\n== {text}")


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


def step_compile(tour: Tour) -> None:
    heading('4. compile: gc.compile([x, s], f, backend="numpy")')
    fn = gc.compile([tour.x, tour.s], tour.f, backend="numpy")
    tour.values["numpy"] = np.asarray(fn(tour.feed[tour.x], tour.feed[tour.s]))
    print(f'gc.compile(backend="numpy")  f = {tour.values["numpy"].item()!r}')


def step_agree(tour: Tour) -> None:
    reference = tour.values["reference"]
    agree = all(np.allclose(v, reference, rtol=AGREE_RTOL, atol=0.0) for v in tour.values.values())
    tour.ok = tour.ok and agree
    verdict = "agree" if agree else "DISAGREE"
    print(f"{' and '.join(tour.values)} {verdict} (rtol={AGREE_RTOL:g})")


DEMO_STEPS: tuple[Callable[[Tour], None], ...] = (
    step_define,
    step_show,
    step_evaluate,
    step_compile,
    step_agree,
)


def run_demo(_args: argparse.Namespace) -> int:
    tour = define()
    for step in DEMO_STEPS:
        step(tour)
    return 0 if tour.ok else 1


def run_inspect(args: argparse.Namespace) -> int:
    tour = define()
    if args.format == "text":
        print(gc.show(tour.f))
    elif args.format == "dot":
        print(gc.to_dot(tour.f), end="")
    else:
        fn = gc.compile([tour.x, tour.s], tour.f, backend="numpy")
        print(getattr(fn, args.format))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="graphc", description="graphc: a static computation-graph compiler.")
    top.add_argument("--version", action="version", version=f"graphc {gc.__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="a guided tour: define, inspect, evaluate and compile a function")
    demo.set_defaults(run=run_demo)
    inspect = commands.add_parser("inspect", help="print an artifact of the demo function")
    inspect.add_argument(
        "--format",
        choices=("text", "dot", "source", "report"),
        default="text",
        help="text: gc.show; dot: gc.to_dot; source, report: of the numpy-compiled function",
    )
    inspect.set_defaults(run=run_inspect)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `graphc` command with `argv` (default: sys.argv[1:]); returns the exit code."""
    top = parser()
    args = top.parse_args(argv)
    if args.command is None:
        top.print_help()
        return 0
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
