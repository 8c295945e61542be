"""The `graphc` command: `demo` (a guided tour of the API), `inspect` (a graph's artifacts), `bench`.

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
import runpy
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import graphc as gc
from graphc import demo
from graphc.compile import CompiledFunction

INSPECT_FORMATS = ("text", "dot", "source", "llvm", "report", "html")


def run_demo(args: argparse.Namespace) -> int:
    return demo.run(svg_dir=args.svg)


class InspectError(Exception):
    """A `graphc inspect` request that cannot be met: the message says why (exit status 2)."""


def _load(spec: str) -> object:
    """`script.py:expr`: run the user's script (not as __main__) and evaluate expr in its namespace."""
    script, sep, expr = spec.partition(".py:")
    if not sep or not expr.strip():
        raise InspectError(f"--file wants SCRIPT.py:EXPR (say model.py:loss), got {spec!r}")
    path = Path(script + ".py")
    if not path.is_file():
        raise InspectError(f"--file: no such script {str(path)!r}")
    namespace = runpy.run_path(str(path), run_name="__graphc_inspect__")
    try:
        return eval(expr, namespace)  # the user's own expression over the user's own script
    except Exception as e:
        raise InspectError(f"--file: evaluating {expr!r} in {path} raised {type(e).__name__}: {e}") from None


def _target(args: argparse.Namespace) -> object:
    """What to inspect: the expression --file names, or the demo's f(x, s)."""
    if args.file is None:
        return demo.define().f
    target = _load(args.file)
    if isinstance(target, (gc.Tensor, gc.Graph, CompiledFunction)):
        return target
    if isinstance(target, (list, tuple)) and target and all(isinstance(t, gc.Tensor) for t in target):
        return list(target)
    what = type(target).__name__
    raise InspectError(
        f"--file: {args.file} is a {what}; expected a Tensor, a list of Tensors, a Graph or a compiled function"
    )


def _compiled(target: object, backend: str) -> CompiledFunction:
    """A function compiled with `backend`: the target itself when it is one, else its graph compiled."""
    if isinstance(target, CompiledFunction):
        if target.backend == backend:
            return target
        outputs = target.outputs[0] if target.single else list(target.outputs)
        return gc.compile(list(target.inputs), outputs, backend, target.optimized, target.fast_math)
    graph = gc.viz.as_graph(target)
    outputs_ = [gc.Tensor(n) for n in graph.outputs]
    single = isinstance(target, gc.Tensor)
    return gc.compile([gc.Tensor(n) for n in graph.inputs], outputs_[0] if single else outputs_, backend)


def _artifact(args: argparse.Namespace, target: object) -> str:
    """The text `graphc inspect` prints for the chosen format."""
    fmt = args.format
    if fmt == "text":
        return gc.show(target) + "\n"
    if fmt == "dot":
        return gc.to_dot(target)
    if fmt == "html":
        path = gc.explore(target, args.output or "graph.html")
        return f"wrote {path} (open it in a browser; it needs no network)\n"
    if fmt == "report":
        fn = target if isinstance(target, CompiledFunction) else _compiled(target, "numpy")
        return fn.report.format(per_round=args.per_round) + "\n"
    fn = _compiled(target, "numpy" if fmt == "source" else "llvm")
    return (fn.source if fmt == "source" else str(fn.llvm_ir)) + "\n"


def run_inspect(args: argparse.Namespace) -> int:
    try:
        text = _artifact(args, _target(args))
    except InspectError as e:
        print(f"graphc inspect: {e}", file=sys.stderr)
        return 2
    except Exception:  # the user's script failed: its own traceback is the useful message
        traceback.print_exc()
        print("graphc inspect: the script given with --file raised the error above", file=sys.stderr)
        return 1
    if args.output and args.format != "html":
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
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


def _add_inspect(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    inspect = commands.add_parser(
        "inspect",
        help="print a graph's text, DOT, generated source, LLVM IR or optimizer report, or write the explorer",
        description="Show one artifact of a graph: of the demo's f(x, s), or of the Tensor, list of Tensors, "
        "Graph or compiled function that an expression names in your script (--file model.py:loss). "
        "The script runs with __name__ set to '__graphc_inspect__', so its `if __name__ == \"__main__\"` "
        "block does not.",
    )
    inspect.add_argument(
        "--format",
        choices=INSPECT_FORMATS,
        default="text",
        help="text: gc.show; dot: gc.to_dot; source: the numpy backend's Python; llvm: the LLVM IR; "
        "report: the optimizer report; html: the explorer (gc.explore), written to --output",
    )
    inspect.add_argument("--file", metavar="SCRIPT.py:EXPR", help="inspect what EXPR names after running SCRIPT.py")
    inspect.add_argument(
        "--output", metavar="PATH", help="write to PATH instead of printing (html: default graph.html)"
    )
    inspect.add_argument("--per-round", action="store_true", help="report: one line per pass run, round by round")
    inspect.set_defaults(run=run_inspect)


def _add_bench(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = commands.add_parser(
        "bench",
        help="run the benchmark suite W1-W8, W10 (benchmarks/): verify every system, then time it",
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
    _add_inspect(commands)
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
