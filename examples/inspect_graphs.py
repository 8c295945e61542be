"""Look inside graphc: a function's graph, its raw gradient graph, the optimized (fused) graph,
the optimizer's per-pass report, the generated NumPy source and the LLVM IR.

The function, f(x, w) = log(sum(exp(w * x))) + sum(log(1 + x * x)), is written the naive
way on purpose: the optimizer's stability pass turns log(sum(exp(.))) into a max-shifted
logsumexp and log(1 + .) into log1p, and the fusion pass groups elementwise chains into
`fused` nodes (drawn as dashed clusters). Everything is written to --out:

    f.svg, gradient.svg, optimized.svg   the three graphs (Graphviz; .dot text without it)
    report.txt                           fn.report: nodes before/after and time per pass
    numpy_source.py                      fn.source: the generated Python
    llvm_ir.ll                           fn.llvm_ir, when the llvm backend is available

    python examples/inspect_graphs.py --out graphs/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import graphviz_note, llvm_available, write_graph

import graphc as gc


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", metavar="DIR", default="graphs", help="folder for the pictures and texts")
    parser.add_argument("--format", choices=("svg", "png"), default="svg", help="picture format (default svg)")
    parser.add_argument("--quiet", action="store_true", help="write the files without printing them")
    return parser.parse_args()


def write_text(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path


def section(title: str, text: str, quiet: bool) -> None:
    if not quiet:
        print(f"\n== {title}\n{text.rstrip()}")


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    note = graphviz_note()
    if note:
        print(note)

    x = gc.var("x", shape=(4,))
    w = gc.var("w")
    f = gc.log(gc.sum(gc.exp(w * x))) + gc.sum(gc.log(1.0 + x * x))
    gx, gw = gc.grad(f, [x, w])
    fn = gc.compile([x, w], [f, gx, gw], backend="numpy")

    written = [
        write_graph(f, out, "f", args.format),
        write_graph([f, gx, gw], out, "gradient", args.format),
        write_graph(fn.graph, out, "optimized", args.format),
        write_text(out, "report.txt", str(fn.report)),
        write_text(out, "numpy_source.py", fn.source),
    ]
    section("the graph of f: gc.show(f)", gc.show(f), args.quiet)
    section("f with its raw gradient: gc.show([f, gx, gw])", gc.show([f, gx, gw]), args.quiet)
    section("the optimizer's report: fn.report", str(fn.report), args.quiet)
    section("the optimized graph that was compiled: gc.show(fn.graph)", gc.show(fn.graph), args.quiet)
    section("the generated NumPy source: fn.source", fn.source, args.quiet)

    if llvm_available():
        native = gc.compile([x, w], [f, gx, gw], backend="llvm")
        written.append(write_text(out, "llvm_ir.ll", native.llvm_ir))
        lines = native.llvm_ir.splitlines()
        more = f"\n... ({len(lines) - 60} more lines in {out / 'llvm_ir.ll'})" if len(lines) > 60 else ""
        section("the LLVM IR: fn.llvm_ir (first 60 lines)", "\n".join(lines[:60]) + more, args.quiet)
    else:
        print("\nnote: the llvm backend is not available in this installation, so there is no LLVM IR to show")

    print("\nwrote:")
    for path in written:
        print(f"  {path}")


if __name__ == "__main__":
    main()
