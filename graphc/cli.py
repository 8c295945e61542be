"""The `graphc` command: `demo` (a guided tour of the API), `inspect` (the demo graph's artifacts), `bench`.

May import everything (it sits at the top of the import order). The tour itself lives in
graphc/demo.py, one small function per step.

`bench` runs the benchmark suite, which lives in the repository's top-level
`benchmarks/` folder, not in the package: it is a set of runnable scripts whose imports
(scipy; JAX, PyTorch, PyTensor and matplotlib when installed) are no dependencies of
graphc, and timing code has no place in the installed library. The command finds the
folder beside the package directory (the repository root of a checkout or an editable
install) and puts that root on sys.path; an installed wheel has no suite, and the
command says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import graphc as gc
from graphc import demo


def run_demo(args: argparse.Namespace) -> int:
    return demo.run(svg_dir=args.svg)


def run_inspect(args: argparse.Namespace) -> int:
    tour = demo.define()
    if args.format == "text":
        print(gc.show(tour.f))
    elif args.format == "dot":
        print(gc.to_dot(tour.f), end="")
    else:
        fn = gc.compile([tour.x, tour.s], tour.f, backend="numpy")
        print(getattr(fn, args.format))
    return 0


def _suite_root() -> Path | None:
    """The repository root holding benchmarks/harness.py beside this package, or None (an installed wheel)."""
    root = Path(__file__).resolve().parents[1]
    if (root / "benchmarks" / "harness.py").is_file():
        return root
    return None


def _names(values: list[str] | None) -> tuple[str, ...]:
    """`--only W1 --only W3,W5` -> ("W1", "W3", "W5")."""
    return tuple(name.strip() for value in values or [] for name in value.split(",") if name.strip())


def run_bench(args: argparse.Namespace) -> int:
    root = _suite_root()
    if root is None:
        print("graphc bench: the benchmark suite lives in the repository's benchmarks/ folder, which this "
              "installation lacks; run it from a checkout (pip install -e .)", file=sys.stderr)  # fmt: skip
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from benchmarks import harness, report
    except ImportError as e:  # the suite needs scipy: the test and bench extras have it
        print(f"graphc bench: cannot load the suite ({e}); pip install -e '.[bench]'", file=sys.stderr)
        return 2

    scale = "tiny" if args.tiny else "quick" if args.quick else "full"
    try:
        only = tuple(w.upper() for w in _names(args.only))
        options = harness.Options(scale=scale, only=only, systems=_names(args.systems), threads=args.threads)
    except ValueError as e:
        print(f"graphc bench: {e}", file=sys.stderr)
        return 2
    return report.bench(options, json_path=args.json, plot_path=args.plot)


def _add_bench(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = commands.add_parser(
        "bench",
        help="run the benchmark suite W1-W8 (benchmarks/): verify every system, then time it",
        description="Run the benchmark suite: each workload is verified against hand-written NumPy (and scipy) "
        "before it is timed. Prints a markdown report; exit status 1 if any result was wrong.",
    )
    size = bench.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="few repetitions and W8 up to K=1000 (about a minute)")
    size.add_argument(
        "--tiny", action="store_true", help="test sizes: checks that everything runs; timings mean nothing"
    )
    bench.add_argument("--only", action="append", metavar="W3", help="only these workloads (repeat, or W1,W3)")
    bench.add_argument(
        "--systems", action="append", metavar="NAME", help="only systems whose name contains one of these (graphc, JAX)"
    )
    bench.add_argument(
        "--threads", type=int, metavar="N", help="limit BLAS/OpenMP and PyTorch to N threads (needs threadpoolctl)"
    )
    bench.add_argument("--json", metavar="OUT.json", help="write every result to this JSON file")
    bench.add_argument("--plot", metavar="OUT.png", help="plot the ratios and W8's scaling (needs matplotlib)")
    bench.set_defaults(run=run_bench)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="graphc", description="graphc: a static computation-graph compiler.")
    top.add_argument("--version", action="version", version=f"graphc {gc.__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    tour = commands.add_parser(
        "demo", help="a 30-second tour: define, differentiate, optimize, compile, check, time, train"
    )
    tour.add_argument(
        "--svg", metavar="DIR", default=None, help="also draw the graphs to DIR (.svg with Graphviz, else .dot)"
    )
    tour.set_defaults(run=run_demo)
    inspect = commands.add_parser("inspect", help="print an artifact of the demo function")
    inspect.add_argument(
        "--format",
        choices=("text", "dot", "source", "report"),
        default="text",
        help="text: gc.show; dot: gc.to_dot; source, report: of the numpy-compiled function",
    )
    inspect.set_defaults(run=run_inspect)
    _add_bench(commands)
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
