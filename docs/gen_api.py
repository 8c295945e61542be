"""Write docs/api.md from graphc's docstrings: `python docs/gen_api.py` (from the repository root).

The sections and their order are the table below; a function made from an op record
(graphc.functions.PUBLIC) that the table does not list joins "Elementwise functions", and
any other public name of `graphc.__all__` the table forgets lands in "Other", so the
reference always covers the whole API. The optimizer section lists every pass with its
guarantee and every rewrite rule by its docstring, which is the rule itself
(`log(1 + x) -> log1p(x)`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import graphc as gc  # noqa: E402
from graphc import functions, passes  # noqa: E402
from graphc.compile import CompiledFunction  # noqa: E402
from graphc.rewrite import EVERY_OP  # noqa: E402

SECTIONS: list[tuple[str, str, list[str]]] = [
    ("Symbols and constants", "Build expressions from symbolic inputs. A dimension is an int or a name "
     "(see [named-dims.md](named-dims.md)).", ["var", "const", "as_tensor", "Tensor", "Dim"]),
    (
        "Elementwise functions",
        "NumPy's names and broadcasting. Comparisons return bool Tensors.",
        [
            "add", "subtract", "multiply", "divide", "negative", "power", "exp", "log", "log1p", "expm1",
            "sqrt", "square", "abs", "sign", "floor", "round", "sin", "cos", "tan", "tanh", "sinh", "cosh",
            "arctan", "maximum", "minimum", "where", "clip", "isfinite", "isnan", "equal", "not_equal",
            "less", "less_equal", "greater", "greater_equal", "astype", "arcsin", "arccos", "arctan2", "arcsinh",
            "arccosh", "arctanh", "log2", "log10", "exp2", "erf", "erfc", "logaddexp", "hypot", "mod",
            "floor_divide",
        ],
    ),
    ("Machine-learning functions", "", ["sigmoid", "relu", "softplus", "logsumexp", "softmax", "log_softmax",
                                        "one_hot", "take"]),
    ("Reductions", "`axis=None` reduces every axis; `keepdims` as in NumPy.",
     ["sum", "mean", "max", "min", "prod", "argmax", "argmin", "variance", "std", "cumsum", "cumprod"]),
    ("Construction", "Constants with NumPy's signatures; `full` and `linspace` also take Tensors. "
     "See [numpy-functions.md](numpy-functions.md).",
     ["zeros", "ones", "full", "eye", "arange", "linspace", "zeros_like", "ones_like", "full_like"]),
    ("Shapes and linear algebra", "", ["reshape", "transpose", "broadcast_to", "expand_dims", "squeeze",
                                       "concatenate", "stack", "pad", "tile", "repeat", "flip", "roll", "diff",
                                       "triu", "tril", "matmul", "dot", "outer", "tensordot", "einsum"]),
    ("Differentiation", "Graph in, graph out: every result is an ordinary Tensor. See [autodiff.md](autodiff.md).",
     ["grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian"]),
    ("Derivative control", "See [named-dims.md](named-dims.md#derivative-control).",
     ["stop_gradient", "custom_vjp", "custom_jvp"]),
    ("Sparsity", "Patterns from the graph, compressed Jacobians and Hessians, CSR results. "
     "See [jacobians.md](jacobians.md).",
     ["jacobian_sparsity", "hessian_sparsity", "sparse_jacobian", "sparse_hessian", "SparseTensor"]),
    ("Recurrence", "Loops as single graph nodes, with recurrent backpropagation.", ["scan", "fixed_point"]),
    ("Control flow", "Branches and loops decided at run time. See [control-flow.md](control-flow.md).",
     ["cond", "while_loop"]),
    ("Random numbers and layers", "Counter-based random numbers inside graphs (`gc.random`) and network layers "
     "(`gc.nn`). See [random.md](random.md).",
     ["random.key", "random.split", "random.uniform", "random.normal", "random.bernoulli", "random.permutation",
      "random.bits", "random.threefry_2x32", "nn.dropout"]),
    ("Convolutional networks: `gc.nn`", "As `torch.nn.functional`'s, built from `im2col` and `matmul`.",
     ["nn.conv2d", "nn.max_pool2d", "nn.avg_pool2d"]),
    ("Evaluation, optimization, compilation", "", ["evaluate", "optimize", "compile",
                                                 "set_num_threads", "get_num_threads"]),
    ("Workspace memory", "Compiled functions share one arena of scratch memory. See "
     "[performance.md](performance.md#memory-the-workspace-arena).",
     ["set_workspace_limit", "get_workspace_limit", "workspace_stats", "release_workspaces", "WorkspaceStats"]),
    ("Inspection", "Each accepts a Tensor, a list of Tensors, a Graph or a compiled function. "
     "See [explore.md](explore.md).", ["show", "to_dot", "to_networkx", "explore", "Graph"]),
    ("Graphs as files", "Versioned JSON, validated on load: see [format.md](format.md).",
     ["save", "load", "dumps", "loads"]),
    ("Errors", "", ["GraphError", "ShapeError", "DTypeError", "DifferentiationError", "ConvergenceError",
                    "GraphFormatError"]),
]  # fmt: skip

EXTRAS = [
    ("graphc.viz", "render"),
    ("graphc.viz", "to_svg"),
    ("graphc.testing", "check_grad"),
    ("graphc.testing", "numeric_vjp"),
    ("graphc.passes", "run_pipeline"),
    ("graphc.passes", "Report"),
    ("graphc.distributed", "map_reduce"),
]


def signature(name: str, obj: object) -> str:
    """`name(a, b=1, *, c=2)`: parameters with their defaults, without annotations."""
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return name
    parts = []
    star_done = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star_done = True
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={show_default(p.default, obj)}")
    return f"{name}({', '.join(parts)})"


LITERALS = (bool, int, float, str, bytes, type(None))


def show_default(value: object, owner: object) -> str:
    """A default as written: the module constant it is (DEFAULT_PIPELINE), a function's name, or its repr.

    Plain values (False, 0, "llvm", None) are always written as themselves: a module constant that
    happens to hold the same object (TYPE_CHECKING is False) is not what the signature says.
    """
    if isinstance(value, LITERALS):
        return repr(value)
    for constant, known in vars(inspect.getmodule(owner)).items():
        if constant.isupper() and known is value:
            return constant
    return getattr(value, "__name__", None) if callable(value) else repr(value)  # type: ignore[return-value]


def entry(qualified: str, obj: object) -> list[str]:
    doc = inspect.getdoc(obj)
    if not doc:
        short = qualified.rsplit(".", 1)[-1]
        doc = f"As `numpy.{short}`." if hasattr(__import__("numpy"), short) else "(no docstring)"
    is_error = inspect.isclass(obj) and issubclass(obj, Exception)
    head = qualified if is_error else signature(qualified, obj)
    return [f"### `{head}`", "", doc, ""]


def members(cls: type, names: list[str]) -> list[str]:
    """A bullet per public attribute or method of `cls` with its summary line."""
    lines = []
    for name in names:
        doc = inspect.getdoc(getattr(cls, name, None)) or ""
        summary = doc.splitlines()[0] if doc else ""
        lines.append(f"- `.{name}`" + (f": {summary}" if summary else ""))
    return [*lines, ""]


def attribute(dotted: str) -> object:
    """gc.<dotted>: a name of graphc, or of one of its namespaces (random.uniform)."""
    obj: object = gc
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def api_sections() -> tuple[list[str], set[str]]:
    lines: list[str] = []
    covered: set[str] = set()
    listed = {name for _, _, names in SECTIONS for name in names}
    for title, intro, names in SECTIONS:
        if title == "Elementwise functions":  # and those made from op records that the table does not list
            names = names + [name for name in functions.PUBLIC if name not in listed]
        lines += [f"## {title}", ""] + ([intro, ""] if intro else [])
        for name in names:
            if name.split(".")[0] not in gc.__all__:
                continue
            covered.add(name.split(".")[0])
            lines += entry(f"gc.{name}", attribute(name))
            if name == "Tensor":
                public = [n for n in dir(gc.Tensor) if not n.startswith("_")]
                lines += ["Attributes and methods:", "", *members(gc.Tensor, public)]
            if name == "compile":
                lines += ["The result, a `CompiledFunction`:", ""]
                shown = ["source", "report", "graph", "signature", "llvm_ir", "explore", "release"]
                lines += members(CompiledFunction, shown)
    return lines, covered


def linalg_section(covered: set[str]) -> list[str]:
    """gc.linalg's functions (numpy.linalg's names), under one heading."""
    covered.add("linalg")
    intro = "numpy.linalg's names and semantics. See [linalg.md](linalg.md)."
    lines = ["## Linear algebra: `gc.linalg`", "", intro, ""]
    for name in gc.linalg.__all__:
        lines += entry(f"gc.linalg.{name}", getattr(gc.linalg, name))
    return lines


def other_section(covered: set[str]) -> list[str]:
    rest = [n for n in gc.__all__ if n not in covered]
    lines = ["## Other", ""] if rest else []
    for name in rest:
        lines += entry(f"gc.{name}", getattr(gc, name))
    return lines


def extras_section() -> list[str]:
    lines = ["## Outside the `gc` namespace", ""]
    for module, name in EXTRAS:
        mod = importlib.import_module(module)
        if hasattr(mod, name):
            lines += entry(f"{module}.{name}", getattr(mod, name))
    return lines


def summary_of(module_doc: str) -> str:
    """A pass module's docstring up to its notes on imports and internals."""
    for cut in ("\n\nImports", "\n\nThe region rules"):
        module_doc = module_doc.split(cut)[0]
    return module_doc


def passes_section() -> list[str]:
    lines = ["## Optimizer passes", "", "The default pipeline, in order: "]
    lines[-1] += ", ".join(f"`{p.__name__}`" for p in passes.DEFAULT_PIPELINE) + "."
    lines += ["`fast_math=True` adds `fastmath`. Each rule's docstring is the rule.", ""]
    pipeline = list(passes.DEFAULT_PIPELINE)
    pipeline += [p for p in passes.FAST_MATH_PIPELINE if p not in pipeline]
    for p in pipeline:
        name = p.__name__
        module = importlib.import_module(p.__module__)
        doc = inspect.getdoc(module) or ""
        lines += [f"### `{name}`", "", summary_of(doc), ""]
        rules = getattr(module, "RULES", {})
        for op_name, table in rules.items():
            for rule in table:
                summary = (inspect.getdoc(rule) or rule.__name__).splitlines()[0]
                where = "every op" if op_name == EVERY_OP else f"`{op_name}`"
                lines.append(f"- on {where} — `{rule.__name__}`: `{summary}`")
        if rules:
            lines.append("")
    return lines


def generate() -> str:
    head = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/gen_api.py`; do not edit by hand.",
        "Everything named `gc.*` is importable as `import graphc as gc`. The ideas behind it are",
        "in [concepts.md](concepts.md); a first session is [getting-started.md](getting-started.md).",
        "",
    ]
    body, covered = api_sections()
    body += linalg_section(covered)
    text = head + body + other_section(covered) + extras_section() + passes_section()
    return "\n".join(text).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Write docs/api.md from graphc's docstrings.")
    parser.add_argument("--out", default=str(REPO / "docs" / "api.md"), help="where to write (default docs/api.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from what would be written")
    args = parser.parse_args()
    text = generate()
    out = Path(args.out)
    if args.check:
        current = out.read_text() if out.exists() else ""
        raise SystemExit(0 if current == text else f"{out} is out of date: run python docs/gen_api.py")
    out.write_text(text)
    print(f"wrote {out} ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
