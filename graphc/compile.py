"""gc.compile: the graph of the outputs -> (optimizer) -> schedule -> backend -> a CompiledFunction.

Imports errors, shapes, ir, ops, tensor, autodiff (trees, custom rules), schedule and backends
(the llvm backend, and with it llvmlite, only when backend="llvm" is asked for). Argument
checks run inside the generated code (a fast path for arrays of the exact dtype and shape);
the wrapper here only binds keyword arguments and reports a wrong number of arguments.

Inputs and outputs may be trees (nested dicts, lists, tuples of Tensors, autodiff/trees.py):
the call takes and returns the same structure. A graph with named dimensions is optimized
once; each set of sizes a call binds is then specialized (ops/dims.py), scheduled and built
once, and kept in a table keyed by the sizes, read straight from the arguments' `.shape`
by a small generated dispatcher (llvm object code is also cached on disk, per size).

Also gc.evaluate: the graph (specialized to the sizes fed, stop_gradient and custom nodes
lowered) -> schedule -> the reference interpreter.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import linecache
import threading
import types
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from graphc.autodiff.custom import lower_transient
from graphc.autodiff.sparse import SparseTensor
from graphc.autodiff.trees import Form, Tree, flatten_like, is_tensor, tree_flatten
from graphc.backends import numpy_source
from graphc.backends.arena import release_workspaces
from graphc.backends.interpreter import run_program
from graphc.compile_options import Progress, check_flag, check_threads, get_num_threads, reporter
from graphc.errors import GraphError, where
from graphc.ir import Graph, Node, as_node, collector_paused
from graphc.ops.dims import bind, check_bound, graph_names, specialize
from graphc.passes import FINAL_PASSES, Report, pipeline_for, run_pipeline
from graphc.plan_cache import graph_key
from graphc.schedule import Program, describe_vars, input_names, missing_vars, schedule
from graphc.shapes import Dim
from graphc.tensor import Tensor
from graphc.viz import repr_html, repr_svg

if TYPE_CHECKING:
    from graphc.backends.llvm.runtime import LLVMFunction

    Built = numpy_source.NumpyFunction | LLVMFunction

BACKENDS = ("numpy", "llvm")


class CompiledFunction:
    """A compiled graph: call it with one array per input (positionally or by var name), or trees of them.

    With named dimensions (`gc.var("X", shape=("batch", 64))`) the function takes any sizes:
    each new set of sizes is specialized and compiled once (`fn.specializations` lists them),
    and the code of one size is `fn.specialize(batch=32)`, a fixed-shape CompiledFunction.
    """

    def __init__(
        self,
        *,
        inputs: tuple[Tensor, ...],
        outputs: tuple[Tensor, ...],
        single: bool,
        graph: Graph | None,
        program: Program | None,
        built: Built | None,
        report: Report | None,
        backend: str,
        fast_math: bool = False,
        optimized: bool = True,
        input_form: Form | None = None,
        output_form: Form | None = None,
        per_size: PerSize | None = None,
        sparse: dict[int, SparseTensor] | None = None,
        check_finite: bool = False,
        threads: int = 1,
        cold: Cold | None = None,
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.single = single
        self._graph = graph
        self._report = report
        self._cold = cold  # from the graph-level cache: graph, program and report are made on first use
        self.backend = backend
        self.fast_math = fast_math
        self.optimized = optimized
        self.input_form = input_form or Form(list, tuple(Form(None) for _ in inputs))
        self.output_form = output_form or (Form(None) if single else Form(list, tuple(Form(None) for _ in outputs)))
        self._program = program
        self.check_finite = check_finite  # with fast_math/optimized: what recompiles it elsewhere (distributed)
        self.threads = threads  # the llvm backend's thread count, fixed in its machine code
        self._built = built
        self._per_size = per_size
        self.sparse = sparse or {}
        self._arity = len(inputs)
        self._positions = _keyword_positions([t.node for t in inputs])
        self._trees = not (self.input_form.flat and self.output_form.flat)  # flat: the entry's own arguments
        if per_size is not None:
            self._entry: Callable[..., object] = per_size.dispatch
        else:
            assert built is not None
            self._entry = built.function
            if self.sparse:  # a named function's specializations convert their own sparse outputs
                self._entry = _with_csr(built.function, self.sparse, single)

    def __call__(self, *args: Tree, **kwargs: Tree) -> Tree:
        """The outputs for these inputs: one array, or a tuple of arrays when outputs was a list.

        Arguments are arrays (anything np.asarray takes), or trees of them when the inputs
        were trees; the results come in the structure of the outputs (Tree: typed Any).
        """
        if self._trees:
            return self._call_tree(args, kwargs)
        if kwargs or len(args) != self._arity:
            args = self._bind(args, kwargs)
        return self._entry(*args)

    def _call_bound(self, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        """A call with keywords or a wrong number of arguments (the generated `__call__` of named functions)."""
        return self._entry(*self._bind(args, kwargs))

    def _call_tree(self, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        """A call whose inputs or outputs are trees: flatten the arguments, run, rebuild the results."""
        form = self.input_form
        if form.flat:
            leaves = self._bind(args, kwargs) if kwargs or len(args) != self._arity else args
        else:
            if kwargs:
                raise TypeError(
                    f"a compiled function of tree inputs takes its arguments positionally {self._parameters()}"
                )
            spread = form.kind in (list, tuple)
            expected = len(form.children) if spread else 1
            if len(args) != expected:
                noun = "argument" if expected == 1 else "arguments"
                raise TypeError(
                    f"the compiled function expects {expected} {noun} {self._parameters()}, got {len(args)}"
                )
            tree = list(args) if spread else args[0]
            leaves = tuple(flatten_like(tree, form, "the compiled function", "args", "the inputs", arrays=True))
        results = self._entry(*leaves)
        flat = [results] if self.single else list(results)  # type: ignore[call-overload]
        out = self.output_form.unflatten(flat)
        return tuple(out) if self.output_form.kind is list else out  # a top-level list returns a tuple

    # --- what was compiled ------------------------------------------------------------------

    @property
    def named(self) -> tuple[str, ...]:
        """The named dimensions the inputs bind at each call (empty for a fixed-shape function)."""
        return () if self._per_size is None else self._per_size.names

    def _fixed(self, what: str) -> Built:
        if self._built is None:
            names = ", ".join(f"{n}=..." for n in self.named)
            raise AttributeError(
                f"fn.{what}: this function has named dimensions ({', '.join(self.named)}), so its code is made "
                f"per size: fn.specialize({names}).{what}"
            )
        return self._built

    @property
    def graph(self) -> Graph:
        """The optimized graph that was compiled (after a graph-level cache hit: optimized on first use)."""
        if self._graph is None:
            assert self._cold is not None
            self._graph = self._cold().graph
        return self._graph

    @property
    def report(self) -> Report:
        """The optimizer's per-pass report (after a graph-level cache hit: made on first use)."""
        if self._report is None:
            assert self._cold is not None
            self._report = self._cold().report
        return self._report

    @property
    def program(self) -> Program:
        """The scheduled Program (fixed-shape functions; see `specialize` for named ones)."""
        self._fixed("program")
        if self._program is None:
            assert self._cold is not None
            self._program = self._cold().program
        return self._program

    @property
    def source(self) -> str:
        """The generated Python source (the llvm backend's: its argument-checking wrapper)."""
        return self._fixed("source").source

    @property
    def filename(self) -> str:
        return self._fixed("filename").filename

    @property
    def llvm_ir(self) -> str:
        """The LLVM IR, optimized then unoptimized (`.optimized`, `.unoptimized` apart)."""
        if self.backend != "llvm":
            raise AttributeError(f"fn.llvm_ir exists only for backend='llvm'; this function uses {self.backend!r}")
        return self._fixed("llvm_ir").llvm_ir  # type: ignore[union-attr]

    def specialize(self, **sizes: int) -> CompiledFunction:
        """The fixed-shape function this one runs for these sizes of its named dimensions (compiled once)."""
        if self._per_size is None:
            if sizes:
                raise TypeError(f"this function has no named dimensions; got {', '.join(sizes)}")
            return self
        return self._per_size.function(sizes)

    @property
    def specializations(self) -> tuple[dict[str, int], ...]:
        """The sizes compiled so far, in the order the calls asked for them ({} for a fixed-shape function)."""
        if self._per_size is None:
            return ()
        return tuple(dict(s) for s in self._per_size.compiled)

    @property
    def signature(self) -> str:
        """'(x: f64[3], s: f64[]) -> (f64[], f64[3])' in the order of the inputs and outputs; names show."""
        form = self.output_form
        top = form.kind in (list, tuple)  # the call returns a tuple for either
        results = _render_form(Form(list, form.children) if top else form, [str(t.node.type) for t in self.outputs])
        if top:
            results = f"({results[1:-1]})"
        return f"{self._parameters()} -> {results}"

    def _parameters(self) -> str:
        labels = [f"{_label(t.node)}: {t.node.type}" for t in self.inputs]
        text = _render_form(self.input_form, labels)
        if self.input_form.kind in (list, tuple):
            return "(" + text[1:-1].rstrip(",") + ")"
        return f"({text})"

    def __repr__(self) -> str:
        if self._per_size is not None:
            done = len(self._per_size.compiled)
            return f"<CompiledFunction {self.signature}, {self.backend} backend, {done} sizes compiled>"
        steps = getattr(self._built, "steps", None) if self._program is None else None
        count = len(self.program.steps) if steps is None else steps  # a cache hit knows its count
        return f"<CompiledFunction {self.signature}, {self.backend} backend, {count} steps>"

    def release(self) -> None:
        """Free the workspace memory this function keeps between calls; it still works (the next call allocates).

        Large workspaces (the llvm backend's, from 256 KiB) live in an arena every compiled
        function shares and belong to no function between calls: this frees the arena's idle
        blocks as well (gc.release_workspaces), so other functions' next calls map fresh ones.
        Arrays the function returned are never workspace memory and stay valid.
        """
        built = [self._built] if self._per_size is None else [f._built for f in list(self._per_size.functions.values())]
        for one in built:
            if one is not None:
                one.release()
        release_workspaces()

    def explore(self, path: str | Path = "graph.html") -> Path:
        """Write the explorer (gc.explore) for this function: every optimizer pass, and each node's code lines."""
        from graphc.explore import explore

        return explore(self, path)

    def _repr_html_(self) -> str:
        if self._per_size is not None:
            return repr_html(self.graph)
        from graphc.explore import compiled_html

        return compiled_html(self)

    def _repr_svg_(self) -> str | None:
        return repr_svg(self.graph)

    def _bind(self, args: tuple[object, ...], kwargs: dict[str, object]) -> tuple[object, ...]:
        """Positional and keyword arguments as one tuple in input order; TypeError naming the inputs."""
        if len(args) > self._arity:
            raise TypeError(f"{self._expects()}, got {len(args)}")
        given: dict[int, object] = dict(enumerate(args))
        for key, value in kwargs.items():
            i = self._positions.get(key)
            if i is None:
                raise TypeError(f"{self._expects()}; there is no input named {key!r}")
            if i in given:
                raise TypeError(f"the compiled function got two values for input {key!r}")
            given[i] = value
        missing = [_label(t.node) for i, t in enumerate(self.inputs) if i not in given]
        if missing:
            count = len(args) + len(kwargs)
            raise TypeError(f"{self._expects()}, got {count}: missing {', '.join(map(repr, missing))}")
        return tuple(given[i] for i in range(self._arity))

    def _expects(self) -> str:
        noun = "argument" if self._arity == 1 else "arguments"
        return f"the compiled function expects {self._arity} {noun} {self._parameters()}"


def _with_csr(function: Callable[..., object], sparse: dict[int, SparseTensor], single: bool) -> Callable[..., object]:
    """The entry with the values of each sparse output made into a scipy.sparse.csr_array."""
    makers = {k: csr_maker(t) for k, t in sparse.items()}
    if single:
        make = makers[0]
        return lambda *args: make(function(*args))  # type: ignore[arg-type]

    def entry(*args: object) -> tuple[object, ...]:
        results = list(function(*args))  # type: ignore[call-overload]
        for k, make_k in makers.items():
            results[k] = make_k(results[k])
        return tuple(results)

    return entry


def csr_maker(tensor: SparseTensor) -> Callable[[np.ndarray], Any]:
    """values -> scipy.sparse.csr_array with the tensor's (shared, read-only) indices and indptr, built cheaply.

    scipy's constructor checks the index arrays on every call (O(nnz)); here a template is
    built and checked once and each result is a copy of its attributes with fresh values.
    The maker is checked against the constructor once; if scipy's internals ever differ,
    every call uses the constructor.
    """
    from scipy.sparse import csr_array

    def construct(values: np.ndarray) -> Any:
        return csr_array((values, tensor.indices, tensor.indptr), shape=tensor.shape)

    template = construct(np.zeros(tensor.nnz, dtype=tensor.dtype))
    _ = template.has_canonical_format  # computed once, kept in the attributes every result copies
    fields = dict(vars(template))
    kind: Any = type(template)

    def make(values: np.ndarray) -> Any:
        result = kind.__new__(kind)
        result.__dict__.update(fields)
        result.data = values
        return result

    probe = np.arange(1, tensor.nnz + 1, dtype=tensor.dtype)
    if not _same_csr(make(probe), construct(probe.copy())):
        return construct
    return make


def _same_csr(a: object, b: object) -> bool:
    try:
        return bool(abs(a - b).max() == 0) and a.shape == b.shape and a.has_canonical_format  # type: ignore[operator, attr-defined]
    except Exception:
        return False


def _label(node: Node) -> str:
    return str(node.attr("name"))


def _render_form(form: Form, leaves: Sequence[str]) -> str:
    """A tree's structure with its leaves written in: `[x: f64[3], {'W': W: f64[3,3]}]`."""
    items = iter(leaves)

    def render(f: Form) -> str:
        if f.kind is None:
            return next(items)
        inner = [render(c) for c in f.children]
        if f.kind is dict:
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(f.keys, inner, strict=True)) + "}"
        if f.kind is tuple:
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        return "[" + ", ".join(inner) + "]"

    return render(form)


def _keyword_positions(inputs: Sequence[Node]) -> dict[str, int]:
    """Keyword -> argument position: each input's program name, and its var name when unique."""
    positions = {name: i for i, name in enumerate(input_names(inputs))}
    labels = [_label(node) for node in inputs]
    counts = Counter(labels)
    for i, label in enumerate(labels):
        if counts[label] == 1:
            positions.setdefault(label, i)
    return positions


# --- named dimensions: one fixed-shape function per size --------------------------------------

_DISPATCH_FILES = itertools.count()


class PerSize:
    """The fixed-shape functions of a graph with named dimensions, one per set of sizes, made on demand.

    `dispatch` is a generated function that reads the sizes from its arguments' `.shape`
    (every named axis of every input), looks them up in `table` and calls that size's
    function; anything else (a new size, a list, a disagreement) takes `slow`, which
    coerces the arguments, binds the names (ValueError naming a disagreement), compiles
    the size once and calls it.
    """

    def __init__(self, graph: Graph, inputs: Sequence[Node], build: Callable[[Graph], CompiledFunction]) -> None:
        self.graph = graph
        self.inputs = tuple(inputs)
        self.names = graph_names(Graph(graph.outputs, self.inputs))
        self.axes = [(i, k) for i, node in enumerate(inputs) for k, n in enumerate(node.shape) if isinstance(n, Dim)]
        self.table: dict[object, Callable[..., object]] = {}
        self.functions: dict[object, CompiledFunction] = {}
        self.compiled: list[dict[str, int]] = []
        self._build = build
        self._lock = threading.Lock()
        self.dispatch, self.call = self._dispatcher()

    def _dispatcher(self) -> tuple[Callable[..., object], Callable[..., object]]:
        """The generated dispatch as a function of the arguments, and as a `__call__` (one call frame less)."""
        n = len(self.inputs)
        params = ", ".join(f"a{i}" for i in range(n))
        key = ", ".join(f"a{i}.shape[{k}]" for i, k in self.axes)
        arg_key = ", ".join(f"args[{i}].shape[{k}]" for i, k in self.axes)
        labels = ", ".join(repr(_label(node)) for node in self.inputs)  # repr: a newline in a name ends no comment
        source = (
            "# generated by graphc: the dispatch on the sizes of the named dimensions\n"
            f"def graphc_dispatch({params}):  # {labels}\n"
            "    try:\n"
            f"        entry = table[{key}]\n"
            "    except Exception:  # a new size, a disagreement, or not an array: the checked path\n"
            f"        return slow({params})\n"
            f"    return entry({params})\n"
            "\n"
            "def graphc_call(self, *args, **kwargs):\n"
            f"    if kwargs or len(args) != {n}:\n"
            "        return self._call_bound(args, kwargs)\n"
            "    try:\n"
            f"        entry = table[{arg_key}]\n"
            "    except Exception:\n"
            "        return slow(*args)\n"
            "    return entry(*args)\n"
        )
        filename = f"<graphc-dispatch-{next(_DISPATCH_FILES)}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        namespace: dict[str, object] = {"table": self.table, "slow": self.slow}
        exec(builtins.compile(source, filename, "exec"), namespace)
        function = namespace["graphc_dispatch"]
        weakref.finalize(function, linecache.cache.pop, filename, None)
        return function, namespace["graphc_call"]  # type: ignore[return-value]

    def key(self, sizes: Mapping[str, int]) -> object:
        """What `dispatch` reads for these sizes: each named axis's size (the size alone for one axis)."""
        values = tuple(self.inputs[i].shape[k].evaluate(sizes) for i, k in self.axes)  # type: ignore[union-attr]
        return values[0] if len(values) == 1 else values

    def slow(self, *args: object) -> object:
        """Coerce the arguments, bind the sizes, compile them if new, and call."""
        arrays = [
            numpy_source.input_array(value, str(node.attr("name")), node.dtype)
            for value, node in zip(args, self.inputs, strict=True)
        ]
        sizes = bind(self.inputs, [a.shape for a in arrays])
        return self.function(sizes)._entry(*arrays)

    def function(self, sizes: Mapping[str, int]) -> CompiledFunction:
        """The fixed-shape function for these sizes, compiled on first use."""
        _check_sizes(sizes, self.names)
        key = self.key(sizes)
        fn = self.functions.get(key)
        if fn is not None:
            return fn
        with self._lock:
            fn = self.functions.get(key)
            if fn is None:
                fn = self._build(specialize(self.graph, sizes))
                self.functions[key] = fn
                self.compiled.append({name: sizes[name] for name in self.names})
                self.table[key] = fn._entry
        return fn


def _check_sizes(sizes: Mapping[str, int], names: Sequence[str]) -> None:
    """Sizes for exactly these names, each an int >= 0."""
    if set(sizes) != set(names):
        raise TypeError(f"sizes for {', '.join(names)} are needed, got {', '.join(sizes) or 'none'}")
    for name, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"the size of {name} must be an int >= 0, got {size!r}")


# --- compile -------------------------------------------------------------------------------


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(map(repr, BACKENDS))}")


def _is_leaf(value: object) -> bool:
    return is_tensor(value) or isinstance(value, Node)


def _as_inputs(inputs: object) -> tuple[tuple[Tensor, ...], Form]:
    """The input vars (a Tensor, or a list, tuple or dict of them, nested) flattened, and their form; no var twice."""
    if not _is_leaf(inputs) and type(inputs) not in (list, tuple, dict):
        inputs = list(inputs)  # type: ignore[call-overload]
    leaves, form = tree_flatten(inputs, _is_leaf, "gc.compile", "inputs", "a var made with gc.var")
    tensors = tuple(Tensor(_node(item)) for item in leaves)
    for t, path in zip(tensors, form.paths("inputs"), strict=True):
        if t.node.op.name != "var":
            raise TypeError(f"gc.compile: {path} must be a var made with gc.var, got a {t.node.op.name} node")
    _check_distinct(tensors)
    return tensors, form


def _node(item: object) -> Node:
    return item if isinstance(item, Node) else item.node  # type: ignore[attr-defined]


def _check_distinct(tensors: tuple[Tensor, ...]) -> None:
    """No var twice, and no two vars of one name: the call binds arguments by position and by name."""
    first: dict[str, int] = {}
    for i, t in enumerate(tensors):
        name = _label(t.node)
        j = first.setdefault(name, i)
        if j == i:
            continue
        other = tensors[j].node
        if other is t.node:
            raise ValueError(f"gc.compile: the input var {name!r} is listed twice (inputs {j} and {i}); list it once")
        raise ValueError(
            f"gc.compile: inputs {j} and {i} are two different vars both named {name!r} "
            f"({other.type}{where(other.loc)}; {t.node.type}{where(t.node.loc)}): give them distinct names"
        )


def _as_outputs(outputs: object) -> tuple[tuple[Tensor, ...], Form, dict[int, SparseTensor]]:
    """The outputs (a Tensor or SparseTensor, or a list, tuple or dict of them, nested) flattened, their form,
    and the sparse ones by position: a SparseTensor stands for its values (the call makes them a csr_array)."""
    leaves, form = tree_flatten(outputs, _is_output_leaf, "gc.compile", "outputs", "a Tensor")
    sparse = {k: item for k, item in enumerate(leaves) if isinstance(item, SparseTensor)}
    values = [item.values if isinstance(item, SparseTensor) else item for item in leaves]
    return tuple(Tensor(_node(item)) for item in values), form, sparse


def _is_output_leaf(value: object) -> bool:
    return _is_leaf(value) or isinstance(value, SparseTensor)


def _optimize(graph: Graph, optimize: bool, fast_math: bool, fuse: bool = True) -> tuple[Graph, Report]:
    """The graph to compile and the optimizer's per-pass report (empty when optimize=False)."""
    if not optimize:
        return graph, Report()
    passes = tuple(p for p in pipeline_for(fast_math) if fuse or p not in FINAL_PASSES)
    return run_pipeline(graph, passes)


def _build(
    program: Program,
    backend: str,
    single: bool,
    cache: bool,
    cache_dir: str | Path | None,
    check_finite: bool,
    threads: int = 1,
) -> Built:
    if backend == "llvm":
        from graphc.backends.llvm.runtime import build as build_llvm

        if check_finite:
            return build_llvm(
                program, single=single, cache=cache, cache_dir=cache_dir, check_finite=True, threads=threads
            )
        return build_llvm(program, single=single, cache=cache, cache_dir=cache_dir, threads=threads)
    if check_finite:
        return numpy_source.build(program, single=single, check_finite=True)
    return numpy_source.build(program, single=single)


@collector_paused()
def compile(  # the API's name: shadows the builtin inside graphc only
    inputs: Sequence[Tensor] | Tensor | dict,
    outputs: Sequence[Tensor | SparseTensor] | Tensor | SparseTensor | dict,
    backend: str = "llvm",
    optimize: bool = True,
    fast_math: bool = False,
    *,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    check_finite: bool = False,
    threads: int | None = None,
    progress: bool | Progress | None = None,
) -> CompiledFunction:
    """A function of `inputs` (vars) computing `outputs`: one Tensor -> one array, a list -> a tuple.

    Inputs and outputs may be trees (nested dicts, lists, tuples): the call then takes the
    inputs' structure (a top-level list or tuple spreads into positional arguments) and
    returns the outputs' (dict keys in sorted order). Every var the outputs depend on must
    be among the inputs; unused inputs are allowed. Named dimensions of the inputs
    (`gc.var("X", shape=("batch", 64))`) are bound at each call; the graph is optimized
    once and compiled once per set of sizes. A SparseTensor output (gc.sparse_jacobian,
    gc.sparse_hessian) is returned as a scipy.sparse.csr_array (scipy required then);
    fn.report says how it was compressed. backend="llvm" keeps compiled machine code in
    an on-disk cache: `cache_dir`, else $GRAPHC_CACHE_DIR, else ~/.cache/graphc;
    `cache=False` neither reads nor writes it. Two levels: machine code keyed by the
    optimized program, and (fixed shapes) what the call needs keyed by a structural hash
    of the graph as given (each node's op, attributes, constants' exact bytes, type and
    the line that built it; inputs and outputs in order), every option above, graphc's
    source, the CPU and LLVM: a later process compiling the same graph skips optimizer,
    schedule and LLVM (its fn.program, fn.graph, fn.report and fn.llvm_ir are made on
    first use, as a cold compile makes them). The cache is used only if its directory is
    yours and no one else can write it (created 0700; otherwise a warning, and no cache);
    `cache_dir=""` is a ValueError. `check_finite=True` checks every step's result
    (compiled without fusion, so every node is a step, loop bodies included): the first NaN
    or infinity raises FloatingPointError naming the op, its line in `fn.program` and where
    it was built (for a derivative's node, the forward node it differentiates). Off,
    nothing is added. `threads`: how many threads (llvm backend) share each kernel with
    enough work; None takes gc.get_num_threads() (gc.set_num_threads, else the cores this
    process may use). Results are the same for every count. `progress`: None prints one
    line per stage on stderr once a compile has taken over 2 s (quiet otherwise); False
    never prints; True prints every stage; a callable is called as progress(stage, done,
    total) when each stage starts ("optimize", "schedule", then the backend's name; `done`
    of `total` stages are done) and as progress("done", total, total) at the end. With
    named dimensions the compile is the one stage "optimize"; each size's own build, at
    its first call, reports nothing. A graph-level cache hit is the one stage "cache".
    Memory: the llvm backend's scratch workspaces of 256 KiB or more come from an arena
    every compiled function shares, taken for a call and given back when it returns
    (gc.set_workspace_limit bounds what stays idle; gc.workspace_stats, fn.release);
    results are fresh arrays, never workspace memory. Python's cyclic garbage collector is
    paused while a compile runs (as it is while gc.grad and the other transforms build a
    derivative) and resumed after, if it was on: its full collections would scan a big
    graph's every node again and again.
    """
    _check_backend(backend)
    optimize, fast_math, cache, check_finite = (
        check_flag(value, name, "gc.compile")
        for value, name in (
            (optimize, "optimize"),
            (fast_math, "fast_math"),
            (cache, "cache"),
            (check_finite, "check_finite"),
        )
    )
    threads = get_num_threads() if threads is None else check_threads(threads, "gc.compile")
    input_tensors, input_form = _as_inputs(inputs)
    output_tensors, output_form, sparse = _as_outputs(outputs)
    graph = Graph([t.node for t in output_tensors], [t.node for t in input_tensors])
    single = output_form.single
    options = {"inputs": input_tensors, "outputs": output_tensors, "single": single,
               "backend": backend, "fast_math": fast_math, "optimized": optimize,
               "input_form": input_form, "output_form": output_form, "sparse": sparse,
               "check_finite": check_finite, "threads": threads}  # fmt: skip

    def optimized_graph() -> tuple[Graph, Report]:
        optimized, report = _optimize(lower_transient(graph), optimize, fast_math, fuse=not check_finite)
        report.notes.extend(f"output {k}: sparse {t.summary()}" for k, t in sparse.items())
        return optimized, report

    @collector_paused()  # also a named size's build at its first call, and a cache hit's cold build
    def build(fixed: Graph, report: Report, specialized: bool = False, quiet: bool = False) -> CompiledFunction:
        if not (specialized or quiet):
            progress_of.begin("schedule", 1, 3)
        program = schedule(fixed)
        if not (specialized or quiet):
            progress_of.begin(backend, 2, 3)
        built = _build(program, backend, single, cache, cache_dir, check_finite, threads)
        kwargs = dict(options)
        if specialized:  # the function of one size: its own (fixed-shape) inputs, the optimized outputs
            kwargs["inputs"] = tuple(Tensor(n) for n in fixed.inputs)
            kwargs["outputs"] = tuple(Tensor(n) for n in fixed.outputs)
        return CompiledFunction(graph=fixed, program=program, built=built, report=report, **kwargs)  # type: ignore[arg-type]

    progress_of = reporter(progress, f"{len(input_tensors)} inputs -> {len(output_tensors)} outputs ({backend})")
    key = _plan_key(graph, backend, cache, cache_dir, optimize, fast_math, check_finite, threads, single)
    cold = Cold(lambda: build(*optimized_graph(), quiet=True), cache_dir)
    hit = _from_plan_cache(key, cache_dir, options, cold) if key is not None else None
    if hit is not None:  # the graph-level cache: no checks to repeat (the key covers them), one stage
        progress_of.begin("cache", 0, 1)
        progress_of.finish()
        return hit
    try:
        named = bool(graph_names(graph))
        progress_of.begin("optimize", 0, 1 if named else 3)
        missing = missing_vars(graph)
        if missing:
            raise GraphError(f"gc.compile: the outputs depend on vars missing from inputs: {describe_vars(missing)}")
        if named:
            check_bound(graph, graph.inputs)
        optimized, report = optimized_graph()
        if not named:
            fn = build(optimized, report)
            if key is not None:
                _store_plan(key, cache_dir, fn)
    finally:
        progress_of.close()
    progress_of.finish()
    if not named:
        return fn
    per_size = PerSize(optimized, graph.inputs, functools.partial(build, report=report, specialized=True))
    cls = _class_for(per_size, input_form, output_form)
    return cls(graph=optimized, program=None, built=None, per_size=per_size, report=report, **options)  # type: ignore[arg-type]


# --- the graph-level cache (llvm backend) ---------------------------------------------------------


class Cold:
    """The cold compile of a function that came from the graph-level cache: made once, on first need."""

    def __init__(self, make: Callable[[], CompiledFunction], cache_dir: str | Path | None) -> None:
        self._make = make
        self.cache_dir = cache_dir
        self._done: CompiledFunction | None = None
        self._lock = threading.Lock()

    def __call__(self) -> CompiledFunction:
        with self._lock:
            if self._done is None:
                self._done = self._make()
            return self._done

    def built(self) -> LLVMFunction:
        """The cold function's own build (its plan, its IR)."""
        return self()._built  # type: ignore[return-value]

    def exact(self) -> LLVMFunction:
        """The exact variant (the C library's sin/cos/tan for huge arguments), built from the cold plan."""
        from graphc.backends.llvm.runtime import build as build_llvm

        fn = self()
        built = self.built()
        return build_llvm(
            fn.program, single=fn.single, cache_dir=self.cache_dir, exact=True, p=built.plan, threads=fn.threads
        )


def _plan_key(
    graph: Graph, backend: str, cache: bool, cache_dir: str | Path | None, optimize: bool, fast_math: bool,
    check_finite: bool, threads: int, single: bool,
) -> str | None:  # fmt: skip
    """The graph-level cache's entry name for this compile, or None when it is not used (see plan_cache)."""
    if backend != "llvm" or not cache:
        return None
    from graphc.backends.llvm import entries

    options = {"backend": backend, "optimize": optimize, "fast_math": fast_math, "check_finite": check_finite,
               "threads": threads, "single": single, "environment": entries.environment()}  # fmt: skip
    structural = graph_key(graph, options)
    return None if structural is None else entries.store(cache_dir).key(structural)


def _from_plan_cache(
    key: str, cache_dir: str | Path | None, options: dict[str, Any], cold: Cold
) -> CompiledFunction | None:
    """The function the graph-level cache holds under `key`, or None (a miss, or an unusable entry)."""
    from graphc.backends.llvm import entries
    from graphc.backends.llvm.cache import ObjectCache

    data = entries.store(cache_dir).load(key)
    if data is None:
        return None
    built = entries.load(
        data, ObjectCache(cache_dir), single=options["single"], threads=options["threads"], rebuild=cold.exact,
        cold=cold.built,
    )  # fmt: skip
    if built is None:
        return None
    return CompiledFunction(graph=None, program=None, built=built, report=None, cold=cold, **options)  # type: ignore[arg-type]


def _store_plan(key: str, cache_dir: str | Path | None, fn: CompiledFunction) -> None:
    """Write the graph-level cache's entry for a function just compiled cold (nothing when it cannot be made)."""
    from graphc.backends.llvm import entries

    program = fn.program
    data = entries.encode(fn._built, program.inputs, len(program.steps))  # type: ignore[arg-type]
    if data is not None:
        entries.store(cache_dir).store(key, data)


def _class_for(per_size: PerSize, input_form: Form, output_form: Form) -> type[CompiledFunction]:
    """CompiledFunction, or for flat calls a subclass whose `__call__` is the generated dispatch (one frame less)."""
    if not (input_form.flat and output_form.flat):
        return CompiledFunction
    namespace = {"__call__": per_size.call, "__module__": __name__}
    return types.new_class("CompiledFunction", (CompiledFunction,), exec_body=lambda ns: ns.update(namespace))


@overload
def evaluate(outputs: Tensor, feed: Mapping[Tensor, object]) -> np.ndarray: ...
@overload
def evaluate(outputs: Sequence[Tensor], feed: Mapping[Tensor, object]) -> list[np.ndarray]: ...
@overload
def evaluate(outputs: object, feed: Mapping[Tensor, object]) -> Any: ...
def evaluate(outputs: object, feed: Mapping[Tensor, object]) -> Any:
    """gc.evaluate: the reference values of `outputs` for `feed` {var: value}.

    `outputs` is what gc.compile takes: one Tensor (one array back), a list or tuple of them
    (a list back), or a tree of them (nested lists, tuples, dicts: the same structure back,
    as gc.hessian's blocks or a dict of gradients); a SparseTensor comes back as a
    scipy.sparse.csr_array. The graph is scheduled and run step by step with each op's
    NumPy `eval` (the reference interpreter), every value checked against its type. Every
    var the outputs reach needs a value; the results are fresh arrays. Named dimensions
    take their sizes from the values fed (inputs that share a name must agree).
    """
    leaves, form = tree_flatten(outputs, _is_evaluated, "gc.evaluate", "outputs", "a Tensor")
    nodes = [as_node(item.values if isinstance(item, SparseTensor) else item) for item in leaves]
    table: dict[Node, object] = {as_node(k): v for k, v in feed.items()}
    graph = Graph(nodes)
    if graph_names(graph):
        graph, table = _specialized(graph, table)
    graph = lower_transient(graph)
    needed = missing_vars(Graph(graph.outputs, []))
    for node in needed:
        if node not in table:
            raise ValueError(f"no value given for input {node.attr('name')!r}")
    values = run_program(schedule(Graph(graph.outputs, needed)), [table[n] for n in needed])
    results: list[object] = [np.array(v, copy=True) for v in values]
    for k, item in enumerate(leaves):
        if isinstance(item, SparseTensor):
            results[k] = csr_maker(item)(results[k])  # type: ignore[arg-type]
    if form.kind in (list, tuple):  # a top-level list or tuple gives a list, nested structure kept
        return list(form.unflatten(results))
    return form.unflatten(results)


def _is_evaluated(value: object) -> bool:
    return is_tensor(value) or isinstance(value, (Node, SparseTensor))


def _specialized(graph: Graph, table: dict[Node, object]) -> tuple[Graph, dict[Node, object]]:
    """The graph specialized to the sizes the fed values bind, and the feed keyed by its vars."""
    fed = [node for node in table if node.op.name == "var"]
    arrays = [np.asarray(table[node]) for node in fed]
    check_bound(graph, fed)
    sizes = bind(fed, [a.shape for a in arrays])
    fixed = specialize(Graph(graph.outputs, fed), sizes)
    return Graph(fixed.outputs), dict(zip(fixed.inputs, arrays, strict=True))
