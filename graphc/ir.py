"""The IR: immutable interned nodes, graphs, toposort and the canonical text form.

Imports errors and shapes only. An op is anything with a `name`, an `infer`
function and a `kind` (graphc.ops.base.Op is the one in use); this module
never looks at the math.
"""

from __future__ import annotations

import contextlib
import gc as _collector
import threading
import weakref
import zlib
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np

from graphc.errors import GraphError, Location, located, user_location
from graphc.shapes import Shape, TensorType

Attrs = tuple[tuple[str, Hashable], ...]


class HasNode(Protocol):
    """Anything that wraps one Node in `.node` (a Tensor): graphs and most functions take it for a Node."""

    @property
    def node(self) -> Node: ...


class OpLike(Protocol):
    @property
    def name(self) -> str: ...

    def infer(self, *types: TensorType, **attrs: Hashable) -> TensorType: ...


class ConstValue:
    """A constant array as an attribute: hashed and compared by (dtype, shape, bytes)."""

    __slots__ = ("_hash", "_key", "array")

    def __init__(self, array: np.ndarray) -> None:
        array = np.array(array, copy=True, order="C")
        array.setflags(write=False)
        self.array = array
        self._key = (array.dtype.str, array.shape, array.tobytes())
        self._hash = hash(self._key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConstValue) and self._key == other._key

    def __repr__(self) -> str:
        return format_array(self.array)


def format_array(array: np.ndarray) -> str:
    """A short deterministic spelling of a constant for the text form."""
    if array.size <= 8:
        text = np.array2string(array, separator=", ", threshold=8, floatmode="unique")
        return " ".join(text.split())
    # crc32, not hash(): str/bytes hashes change with PYTHONHASHSEED, and printouts must not
    digest = zlib.crc32(array.tobytes(), zlib.crc32(f"{array.dtype.str}{array.shape}".encode()))
    return f"<{array.size} values #{digest:08x}>"


class _InternTable:
    """(id of the op, sorted attrs, ids of the inputs...) -> the one live node of that structure, held weakly.

    A key names its op and inputs by id() rather than holding them: a live node keeps them
    alive (node.op, node.inputs), so the ids in a live entry are never reused, and a dead
    entry holds nothing up (a key of nodes would keep a dead node's inputs alive until its
    entry went). A key of ints is also one the cyclic collector stops tracking, so a big
    graph costs each full collection fewer objects. Dead entries are swept when the table
    doubles, so making a node is one plain weak reference: one with a callback per entry,
    which removed it at once, cost three times as much, and a WeakValueDictionary more
    again. Graphs make nodes by the hundred thousand.
    """

    __slots__ = ("_limit", "_refs")

    def __init__(self) -> None:
        self._refs: dict[tuple, weakref.ref[Node]] = {}
        self._limit = 1 << 14

    def get(self, key: tuple) -> Node | None:
        ref = self._refs.get(key)
        return None if ref is None else ref()

    def __setitem__(self, key: tuple, node: Node) -> None:
        self._refs[key] = weakref.ref(node)
        if len(self._refs) > self._limit:
            self._sweep()

    def _sweep(self) -> None:
        """Drop the entries of dead nodes; the next sweep comes when the live ones have doubled."""
        self._refs = {key: ref for key, ref in self._refs.items() if ref() is not None}
        self._limit = max(1 << 14, 2 * len(self._refs))

    def __len__(self) -> int:
        """The live nodes (sweeps first: for tests and statistics)."""
        self._sweep()
        return len(self._refs)

    def values(self) -> list[Node]:
        """The live nodes."""
        return [node for node in (ref() for ref in list(self._refs.values())) if node is not None]


_INTERNED = _InternTable()
_DERIVED_FROM: list[tuple[Location | None, Node | None, Node | None]] = []  # (loc, origin, differentiates)


class derived_from:  # lower case: it reads as a function, `with derived_from(node):`
    """Nodes first built inside this block record `node` as their origin and location.

    `derivative`: they belong to the derivative of `node` (autodiff), so they record it as
    the node they differentiate; otherwise (a rewrite) they inherit what `node` differentiates.
    A class rather than a generator: the optimizer enters one per rule offered, and a
    generator-based context manager cost it a fifth of its time.
    """

    __slots__ = ("_entry",)

    def __init__(self, node: Node, derivative: bool = False) -> None:
        self._entry = (node.loc, node, node if derivative else node.differentiates)

    def __enter__(self) -> None:
        _DERIVED_FROM.append(self._entry)

    def __exit__(self, *exc: object) -> None:
        _DERIVED_FROM.pop()


@contextlib.contextmanager
def same_provenance(node: Node) -> Iterator[None]:
    """Nodes first built inside this block take `node`'s own provenance: a copy of it (specialization)."""
    _DERIVED_FROM.append((node.loc, node.origin, node.differentiates))
    try:
        yield
    finally:
        _DERIVED_FROM.pop()


class Node:
    """One value of the graph: op(inputs; attrs) with a static type.

    Built only through Node.make, which interns: equal structure is the same
    object, so `is` compares nodes. Provenance (`loc`, `origin`) is recorded when a
    node is first built and is not part of its identity.
    """

    __slots__ = ("__weakref__", "attrs", "differentiates", "inputs", "loc", "op", "origin", "settled", "type")

    op: OpLike
    inputs: tuple[Node, ...]
    attrs: Attrs
    type: TensorType
    loc: Location | None
    origin: Node | None
    differentiates: Node | None  # for a node of a derivative: the forward node it belongs to
    settled: int  # the optimizer's memo, not part of identity: bit k set = a fixpoint of rule table k (rewrite.Settled)

    def __init__(self) -> None:
        raise TypeError("nodes are built with Node.make(op, inputs, attrs)")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Node is immutable")

    @staticmethod
    def make(
        op: OpLike, inputs: Sequence[Node], attrs: Mapping[str, Hashable], known: TensorType | None = None
    ) -> Node:
        """The interned node op(inputs; attrs); infers its type or raises at the user's line.

        `known`: the type, when the caller has it from a node of the same op and attrs on
        inputs of the same types (a rewrite's rebuild, a fused body): inference is skipped.
        """
        inputs = tuple(inputs)
        frozen = tuple(sorted(attrs.items())) if attrs else ()
        key = (id(op), frozen, *map(id, inputs))
        node = _INTERNED.get(key)
        if node is not None:
            return node
        try:
            type_ = known if known is not None else _infer(op, inputs, attrs)
        except GraphError as exc:
            raise _located(exc, op, inputs) from None
        return Node._new(op, key, inputs, type_)

    def remake(self, inputs: tuple[Node, ...]) -> Node:
        """This node's op and attrs on `inputs` of the same types (a rewrite's rebuild): no inference, no sorting."""
        key = (id(self.op), self.attrs, *map(id, inputs))
        node = _INTERNED.get(key)
        if node is not None:
            return node
        return Node._new(self.op, key, inputs, self.type)

    @staticmethod
    def _new(op: OpLike, key: tuple, inputs: tuple[Node, ...], type_: TensorType) -> Node:
        """A new node of `op` for the intern key (op id, sorted attrs, input ids...), recording where it was built."""
        frozen = key[1]
        node = object.__new__(Node)
        loc, origin, differentiates = _DERIVED_FROM[-1] if _DERIVED_FROM else (user_location(), None, None)
        put = object.__setattr__  # Node's own __setattr__ refuses: nodes are immutable once made
        put(node, "op", op)
        put(node, "inputs", inputs)
        put(node, "attrs", frozen)
        put(node, "type", type_)
        put(node, "loc", loc)
        put(node, "origin", origin)
        put(node, "differentiates", differentiates)
        put(node, "settled", 0)
        _INTERNED[key] = node
        return node

    @property
    def shape(self) -> Shape:
        return self.type.shape

    @property
    def dtype(self) -> np.dtype:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def params(self) -> dict[str, Hashable]:
        """The attributes as keyword arguments for the op's functions."""
        return dict(self.attrs)

    def attr(self, name: str) -> Hashable:
        for key, value in self.attrs:
            if key == name:
                return value
        raise KeyError(f"{self.op.name} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<Node {self.op.name} {self.type}>"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("nodes cannot be pickled; print the graph or compile it")


_TYPES: dict[tuple, tuple[tuple[TensorType, ...], TensorType]] = {}  # (op, ids of input types...) -> (them, type)
_SHARED_TYPES: dict[TensorType, TensorType] = {}  # one object per type inferred here, so the types of results recur
_MAX_TYPES = 1 << 12


def _infer(op: OpLike, inputs: tuple[Node, ...], attrs: Mapping[str, Hashable]) -> TensorType:
    """op.infer on the inputs' types; remembered for ops without attributes (elementwise: the same few types recur).

    Keyed by the ids of the type objects (hashing a TensorType costs more than inferring
    from a memo should), which an entry holds, so they are not reused while it lives; a
    type inferred here is one shared object per equal type, so a chain of results hits
    the same entry. Only a type that
    inference returned is remembered, so an error is raised each time; the table is
    emptied when it grows past _MAX_TYPES.
    """
    types = tuple([i.type for i in inputs])
    if attrs:
        return op.infer(*types, **attrs)
    key = (op, *map(id, types))
    known = _TYPES.get(key)
    if known is not None:
        return known[1]
    type_ = op.infer(*types)
    if len(_TYPES) >= _MAX_TYPES:
        _TYPES.clear()
        _SHARED_TYPES.clear()
    type_ = _SHARED_TYPES.setdefault(type_, type_)
    _TYPES[key] = (types, type_)
    return type_


def _located(exc: GraphError, op: OpLike, inputs: tuple[Node, ...]) -> GraphError:
    """The same error class, its message naming the op, the operand types and the user's line."""
    operands = ", ".join(str(i.type) for i in inputs)
    loc = _DERIVED_FROM[-1][0] if _DERIVED_FROM else user_location()
    return located(exc, f"{op.name}({operands})", loc)


_pause_lock = threading.Lock()
_pause_depth = 0
_pause_resume = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (also a decorator); as it was after.

    Graph work (differentiation, optimization, scheduling, code generation) makes hundreds
    of thousands of long-lived objects and no cycles that matter: each full collection
    would scan every live node again, so a big graph's compile slowed down superlinearly.
    Nested and concurrent blocks share one pause: the collector resumes when the last one
    ends, and only if it was on when the first began. Garbage made meanwhile is collected
    at the next collection after that.
    """
    global _pause_depth, _pause_resume
    with _pause_lock:
        if _pause_depth == 0:
            _pause_resume = _collector.isenabled()
            _collector.disable()
        _pause_depth += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pause_depth -= 1
            if _pause_depth == 0 and _pause_resume:
                _collector.enable()


def live_nodes() -> list[Node]:
    """Every node alive now (the intern table's), in no particular order: for tests and memo statistics."""
    return _INTERNED.values()


def toposort(outputs: Sequence[Node]) -> list[Node]:
    """Every node the outputs reach, inputs before users, in a deterministic order.

    Iterative depth-first post-order: a 10^5-node chain needs no recursion.
    """
    order: list[Node] = []
    done: set[int] = set()
    for root in outputs:
        if id(root) in done:
            continue
        stack: list[tuple[Node, int]] = [(root, 0)]
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                child = node.inputs[i]
                if id(child) not in done:
                    stack.append((child, 0))
                continue
            stack.pop()
            if id(node) not in done:
                done.add(id(node))
                order.append(node)
    return order


def users(nodes: Sequence[Node]) -> dict[Node, list[Node]]:
    """For each node, the nodes among `nodes` that use it (in order, once per use)."""
    table: dict[Node, list[Node]] = {n: [] for n in nodes}
    for node in nodes:
        for child in node.inputs:
            table.setdefault(child, []).append(node)
    return table


class Graph:
    """A computation: input nodes (vars) and output nodes; its nodes are what the outputs reach.

    When `inputs` is omitted they are the vars the outputs reach, in toposort order.
    Graphs compare and hash by the identity of their inputs and outputs, so a graph
    can be an attribute (the body of a fused region or a loop).
    """

    __slots__ = ("_nodes", "inputs", "outputs")

    def __init__(self, outputs: Sequence[Node | HasNode], inputs: Sequence[Node | HasNode] | None = None) -> None:
        self.outputs = tuple(as_node(o) for o in outputs)
        self._nodes: list[Node] | None = None
        if inputs is None:
            inputs = [n for n in self.nodes if n.op.name == "var"]
        self.inputs = tuple(as_node(i) for i in inputs)

    @property
    def nodes(self) -> list[Node]:
        if self._nodes is None:
            self._nodes = toposort(self.outputs)
        return self._nodes

    def __hash__(self) -> int:
        return hash((self.inputs, self.outputs))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return self.inputs == other.inputs and self.outputs == other.outputs

    def __len__(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        return "\n".join(format_graph(self))

    def __repr__(self) -> str:
        return f"<Graph {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.outputs)} outputs>"


class GraphRebuilder:
    """Rebuilds graphs node by node with `node` (each input already rebuilt), memoized across bodies.

    A subclass defines `node(node) -> Node`, reading its rebuilt inputs from `self.nodes`
    and rebuilding any body with `self.graph`; a graph whose nodes all come back as they
    were is returned itself.
    """

    def __init__(self) -> None:
        self.nodes: dict[Node, Node] = {}
        self.graphs: dict[Graph, Graph] = {}

    def graph(self, graph: Graph) -> Graph:
        done = self.graphs.get(graph)
        if done is None:
            for node in toposort([*graph.outputs, *graph.inputs]):
                if node not in self.nodes:
                    self.nodes[node] = self.node(node)
            outputs = [self.nodes[o] for o in graph.outputs]
            inputs = [self.nodes[i] for i in graph.inputs]
            same = all(a is b for a, b in zip([*outputs, *inputs], [*graph.outputs, *graph.inputs], strict=True))
            done = graph if same else Graph(outputs, inputs)
            self.graphs[graph] = done
        return done

    def node(self, node: Node) -> Node:
        raise NotImplementedError


def as_node(value: object) -> Node:
    """A Node from a Node or anything that wraps one in `.node` (a Tensor)."""
    node = getattr(value, "node", value)
    if not isinstance(node, Node):
        raise TypeError(f"expected a Tensor or Node, got {type(value).__name__}")
    return node


def _input_names(inputs: Sequence[Node]) -> dict[Node, str]:
    names: dict[Node, str] = {}
    taken: set[str] = set()
    for node in inputs:
        base = str(node.attr("name")) if node.op.name == "var" else "in"
        name = base
        k = 1
        while name in taken:
            name = f"{base}.{k}"
            k += 1
        taken.add(name)
        names[node] = "%" + name
    return names


def _format_attr(value: object) -> str:
    if isinstance(value, np.dtype):
        return str(value)
    if isinstance(value, Graph):
        return f"<graph {len(value.nodes)} nodes>"
    return repr(value)


def ssa_names(graph: Graph) -> dict[Node, str]:
    """The names the text form gives: `%x` for inputs (by var name), `%x?` for unlisted vars, `%0, %1, ...`."""
    names = _input_names(graph.inputs)
    counter = 0
    for node in graph.nodes:
        if node in names:
            continue
        if node.op.name == "var":
            names[node] = f"%{node.attr('name')}?"  # a var the graph does not list as input
            continue
        names[node] = f"%{counter}"
        counter += 1
    return names


def format_graph(graph: Graph, indent: str = "") -> list[str]:
    """The canonical text form: a header, one SSA line per node with its type, a return."""
    names = ssa_names(graph)
    header = ", ".join(f"{names[n]}: {n.type}" for n in graph.inputs)
    lines = [f"{indent}graph({header}) {{"]
    listed = set(graph.inputs)
    for node in graph.nodes:
        if node in listed or node.op.name == "var":
            continue
        args = [names[i] for i in node.inputs]
        bodies = []
        for key, value in node.attrs:
            if key == "name":
                continue
            if isinstance(value, Graph):
                bodies.append(value)
            if key == "value":
                args.append(repr(value))
            else:
                args.append(f"{key}={_format_attr(value)}")
        lines.append(f"{indent}  {names[node]} = {node.op.name}({', '.join(args)}) : {node.type}")
        for body in bodies:
            lines.extend(format_graph(body, indent + "    "))
    results = ", ".join(names[n] for n in graph.outputs)
    lines.append(f"{indent}  return {results}")
    lines.append(f"{indent}}}")
    return lines
