"""gc.compile: the graph of the outputs -> (optimizer) -> schedule -> backend -> a CompiledFunction.

Also gc.evaluate: the graph -> schedule -> the reference interpreter. Imports errors,
shapes, ir, tensor, schedule and backends (the llvm backend, and with it llvmlite, only
when backend="llvm" is asked for). Argument checks run inside the
generated code (a fast path for arrays of the exact dtype and shape); the wrapper here
only binds keyword arguments and reports a wrong number of arguments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from graphc.autodiff.sparse import SparseTensor
from graphc.backends import numpy_source
from graphc.backends.interpreter import run_program
from graphc.errors import GraphError, where
from graphc.ir import Graph, Node, as_node
from graphc.passes import FINAL_PASSES, Report, pipeline_for, run_pipeline
from graphc.schedule import Program, Rendered, Results, describe_vars, missing_vars, schedule
from graphc.tensor import Tensor
from graphc.viz import repr_svg

if TYPE_CHECKING:
    from graphc.backends.llvm.runtime import LLVMFunction

    Built = numpy_source.NumpyFunction | LLVMFunction

BACKENDS = ("numpy", "llvm")


class CompiledFunction:
    """A compiled graph: call it with one array per input (positionally or by var name)."""

    def __init__(
        self,
        *,
        inputs: tuple[Tensor, ...],
        outputs: tuple[Tensor, ...],
        single: bool,
        graph: Graph,
        program: Program,
        built: Built,
        report: Report,
        backend: str,
        fast_math: bool = False,
        optimized: bool = True,
        sparse: dict[int, SparseTensor] | None = None,
        check_finite: bool = False,
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.single = single
        self.graph = graph
        self.program = program
        self.source = built.source
        self.filename = built.filename
        self.report = report
        self.backend = backend
        self.fast_math = fast_math
        self.optimized = optimized
        self.check_finite = check_finite  # with fast_math/optimized: what recompiles it elsewhere (distributed)
        self._built = built
        self._entry: Rendered = built.function
        self.sparse = sparse or {}
        if self.sparse:
            # a sparse output comes back as a scipy.sparse.csr_array where Results says ndarray
            self._entry = cast(Rendered, _with_csr(built.function, self.sparse, single))
        self._arity = len(inputs)
        self._positions = _keyword_positions(program)

    def __call__(self, *args: npt.ArrayLike, **kwargs: npt.ArrayLike) -> Results:
        """The outputs for these inputs: one array, or a tuple of arrays when outputs was a list."""
        if kwargs or len(args) != self._arity:
            args = self._bind(args, kwargs)
        return self._entry(*args)

    @property
    def signature(self) -> str:
        """'(x: f64[3], s: f64[]) -> (f64[], f64[3])' in the order of the inputs and outputs."""
        results = ", ".join(str(t.node.type) for t in self.outputs)
        if not self.single:
            results = f"({results})"
        return f"{self._parameters()} -> {results}"

    def _parameters(self) -> str:
        return "(" + ", ".join(f"{_label(t.node)}: {t.node.type}" for t in self.inputs) + ")"

    @property
    def llvm_ir(self) -> str:
        """The LLVM IR, optimized then unoptimized (`.optimized`, `.unoptimized` apart)."""
        if self.backend != "llvm":
            raise AttributeError(f"fn.llvm_ir exists only for backend='llvm'; this function uses {self.backend!r}")
        return self._built.llvm_ir  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"<CompiledFunction {self.signature}, {self.backend} backend, {len(self.program.steps)} steps>"

    def explore(self, path: str | Path = "graph.html") -> Path:
        """Write the explorer (gc.explore) for this function: every optimizer pass, and each node's code lines."""
        from graphc.explore import explore

        return explore(self, path)

    def _repr_html_(self) -> str:
        from graphc.explore import compiled_html

        return compiled_html(self)

    def _repr_svg_(self) -> str | None:
        return repr_svg(self.graph)

    def _bind(self, args: tuple[npt.ArrayLike, ...], kwargs: dict[str, npt.ArrayLike]) -> tuple[npt.ArrayLike, ...]:
        """Positional and keyword arguments as one tuple in input order; TypeError naming the inputs."""
        if len(args) > self._arity:
            raise TypeError(f"{self._expects()}, got {len(args)}")
        given: dict[int, npt.ArrayLike] = dict(enumerate(args))
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


def _keyword_positions(program: Program) -> dict[str, int]:
    """Keyword -> argument position: each input's program name, and its var name when unique."""
    positions = {given.name: i for i, given in enumerate(program.inputs)}
    labels = [given.label for given in program.inputs]
    counts = Counter(labels)
    for i, label in enumerate(labels):
        if counts[label] == 1:
            positions.setdefault(label, i)
    return positions


# --- compile -------------------------------------------------------------------------------


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(map(repr, BACKENDS))}")


def _as_tensor(value: object, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, Node):
        return Tensor(value)
    raise TypeError(f"gc.compile: {what} must be a Tensor, got {type(value).__name__}")


def _as_inputs(inputs: object) -> tuple[Tensor, ...]:
    """The inputs as a tuple of var Tensors (a single Tensor is allowed); no var twice."""
    items = [inputs] if isinstance(inputs, (Tensor, Node)) else list(inputs)  # type: ignore[call-overload]
    tensors = tuple(_as_tensor(item, f"input {i}") for i, item in enumerate(items))
    for i, t in enumerate(tensors):
        if t.node.op.name != "var":
            raise TypeError(f"gc.compile: input {i} must be a var made with gc.var, got a {t.node.op.name} node")
    _check_distinct(tensors)
    return tensors


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


def _as_outputs(outputs: object) -> tuple[bool, tuple[Tensor, ...], dict[int, SparseTensor]]:
    """(single, the outputs as a tuple, the sparse ones by position): one Tensor or SparseTensor, or a list
    or tuple of them; a SparseTensor stands for its values (the call makes them a csr_array)."""
    items = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    sparse = {k: item for k, item in enumerate(items) if isinstance(item, SparseTensor)}
    for k, item in sparse.items():
        items[k] = item.values
    if isinstance(outputs, (list, tuple)):
        return False, tuple(_as_tensor(o, f"output {i}") for i, o in enumerate(items)), sparse
    return True, (_as_tensor(items[0], "the output"),), sparse


def _optimize(graph: Graph, optimize: bool, fast_math: bool, fuse: bool = True) -> tuple[Graph, Report]:
    """The graph to compile and the optimizer's per-pass report (empty when optimize=False)."""
    if not optimize:
        return graph, Report()
    passes = tuple(p for p in pipeline_for(fast_math) if fuse or p not in FINAL_PASSES)
    return run_pipeline(graph, passes)


def _build(
    program: Program, backend: str, single: bool, cache: bool, cache_dir: str | Path | None, check_finite: bool
) -> Built:
    if backend == "llvm":
        from graphc.backends.llvm.runtime import build as build_llvm

        if check_finite:
            return build_llvm(program, single=single, cache=cache, cache_dir=cache_dir, check_finite=True)
        return build_llvm(program, single=single, cache=cache, cache_dir=cache_dir)
    if check_finite:
        return numpy_source.build(program, single=single, check_finite=True)
    return numpy_source.build(program, single=single)


def compile(  # the API's name: shadows the builtin inside graphc only
    inputs: Sequence[Tensor] | Tensor,
    outputs: Sequence[Tensor | SparseTensor] | Tensor | SparseTensor,
    backend: str = "llvm",
    optimize: bool = True,
    fast_math: bool = False,
    *,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    check_finite: bool = False,
) -> CompiledFunction:
    """A function of `inputs` (vars) computing `outputs`: one Tensor -> one array, a list -> a tuple.

    Every var the outputs depend on must be among the inputs; unused inputs are allowed. A
    SparseTensor output (gc.sparse_jacobian, gc.sparse_hessian) is returned as a
    scipy.sparse.csr_array (scipy required then); fn.report says how it was compressed.
    backend="llvm" keeps compiled machine code in an on-disk cache: `cache_dir`, else
    $GRAPHC_CACHE_DIR, else ~/.cache/graphc; `cache=False` neither reads nor writes it.
    The cache is used only if its directory is yours and no one else can write it
    (created 0700; otherwise a warning, and no cache); `cache_dir=""` is a ValueError.
    `check_finite=True` checks every step's result (compiled without fusion, so every
    node is a step, loop bodies included): the first NaN or infinity raises
    FloatingPointError naming the op, its line in `fn.program` and where it was built
    (for a derivative's node, the forward node it differentiates). Off, nothing is added.
    """
    _check_backend(backend)
    input_tensors = _as_inputs(inputs)
    single, output_tensors, sparse = _as_outputs(outputs)
    graph = Graph([t.node for t in output_tensors], [t.node for t in input_tensors])
    missing = missing_vars(graph)
    if missing:
        raise GraphError(f"gc.compile: the outputs depend on vars missing from inputs: {describe_vars(missing)}")
    optimized, report = _optimize(graph, optimize, fast_math, fuse=not check_finite)
    report.notes.extend(f"output {k}: sparse {t.summary()}" for k, t in sparse.items())
    program = schedule(optimized)
    built = _build(program, backend, single, cache, cache_dir, check_finite)
    return CompiledFunction(
        inputs=input_tensors,
        outputs=output_tensors,
        single=single,
        graph=optimized,
        program=program,
        built=built,
        report=report,
        backend=backend,
        fast_math=fast_math,
        optimized=optimize,
        sparse=sparse,
        check_finite=check_finite,
    )


def evaluate(outputs: Tensor | Sequence[Tensor], feed: Mapping[Tensor, npt.ArrayLike]) -> np.ndarray | list[np.ndarray]:
    """gc.evaluate: the reference values of `outputs` (one Tensor or a list) for `feed` {var: value}.

    The graph is scheduled and run step by step with each op's NumPy `eval` (the reference
    interpreter), every value checked against its type. Every var the outputs reach needs
    a value; the results are fresh arrays.
    """
    single = not isinstance(outputs, (list, tuple))
    nodes = [as_node(o) for o in ([outputs] if single else outputs)]
    table = {as_node(k): v for k, v in feed.items()}
    needed = missing_vars(Graph(nodes, []))
    for node in needed:
        if node not in table:
            raise ValueError(f"no value given for input {node.attr('name')!r}")
    values = run_program(schedule(Graph(nodes, needed)), [table[n] for n in needed])
    results = [np.array(v, copy=True) for v in values]
    return results[0] if single else results
