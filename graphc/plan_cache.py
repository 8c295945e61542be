"""The graph-level compile cache's key: a structural hash of the *unoptimized* graph and the options.

Imports errors, ir and autodiff.custom (lower_transient), and reads graphc's own source
files for their digest. A compile whose key is found skips optimize, schedule, plan,
lower and LLVM: the entry (written by the backend, graphc.backends.llvm.entries) holds
what the Python wrapper needs and names the object code. So the key must change whenever
anything that could change the compiled function changes:

- every node the outputs reach (and every input), bodies included, in toposort order:
  its op, its inputs (by position in that order), every attribute (floats and constants
  by their exact bytes: -0.0 and 0.0, NaN payloads differ), its dtype and shape;
- where each node was built (file and line, and what a derivative's node differentiates):
  error messages and check_finite's reports name them. Not for constants: they never
  raise, and an interned constant keeps the line that first built it, so the same program
  could otherwise key differently as earlier constants are freed or not;
- the inputs in order (with their names), the outputs in order;
- the options (backend, optimize, fast_math, check_finite, threads, one output or a
  list), a digest of graphc's own source (its optimizer, scheduler and backends), the
  Python and NumPy versions (the optimizer folds constants with NumPy);
- the host CPU, llvmlite and LLVM versions are added by the backend's ObjectCache.key.

Vars are numbered by their order in the walk, as gc.save numbers them, so the same
program built again in another process has the same key (an interned node that some
earlier line built first and that is still alive keeps that line: a key can then differ
between two runs of one program, a miss, never a false hit). An attribute of a kind the key
does not know (a Python function, say) gives no key: that graph is compiled without
this cache, never looked up under a key that could be shared.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from graphc.autodiff.custom import lower_transient
from graphc.errors import Location
from graphc.ir import ConstValue, Graph, Node
from graphc.shapes import TensorType

FORMAT = "graphc plan cache v1"
_PLAIN = (int, float, str, bool, type(None))  # exact in marshal: floats as their 8 bytes


class _Unkeyable(Exception):
    """A graph the key does not cover (named sizes, a var missing from the inputs, an unknown attribute)."""


class _Transient(Exception):
    """A custom or stop_gradient node: key the graph as it compiles, with them lowered."""


TRANSIENT = ("custom", "stop_gradient")


@functools.cache
def source_digest() -> str:
    """A digest of every graphc source file: a changed optimizer or backend never reuses a stale plan."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class _Encoder:
    """Spells one graph's nodes as exact records: references by position, vars renumbered in order.

    A record is a tuple of str, int, float, bool, None and tuples; the digest hashes the
    records' marshal form (version 2: no back-references, so the bytes depend only on the
    values; floats as their 8 bytes, so -0.0 and NaN payloads stay apart). `top`: the
    compiled graph itself, whose vars must all be among its inputs (a body's are its own).
    """

    def __init__(self, graph: Graph, bodies: dict[Graph, str], top: bool = False) -> None:
        order = list(graph.nodes)
        seen = {id(n) for n in order}
        order += [n for n in graph.inputs if id(n) not in seen]  # unused inputs still count
        self.order = order
        self.index = {id(node): i for i, node in enumerate(order)}
        self.given = {id(n) for n in graph.inputs} if top else None
        self.uids: dict[int, int] = {}
        self.bodies = bodies  # body graph -> its digest, shared by every graph of one key
        self.types: dict[tuple, tuple] = {}  # (shape, dtype) -> its record

    def value(self, value: object) -> object:
        """One attribute value as an exact record: equal records mean equal values of the same kind."""
        kind = type(value)
        if kind in _PLAIN:
            return value
        if kind is tuple:
            return tuple([self.value(v) for v in value])  # type: ignore[attr-defined]
        if isinstance(value, np.dtype):
            return ("dtype", value.str)
        if isinstance(value, np.generic):
            return ("np", value.dtype.str, value.tobytes())
        if isinstance(value, ConstValue):
            array = value.array
            return (
                "const",
                array.dtype.str,
                array.shape,
                hashlib.sha256(np.ascontiguousarray(array).tobytes()).digest(),
            )
        if isinstance(value, Graph):
            return ("graph", body_digest(value, self.bodies))
        raise _Unkeyable(kind.__name__)  # a Dim (named sizes: compiled per size), a function, ...

    def records(self) -> list[tuple]:
        """One record per node: op, input positions, attributes, dtype and shape, where it was built.

        One loop with the lookups inline (a call per node would cost as much as the rest).
        """
        index, types, given = self.index, self.types, self.given
        position = index.__getitem__
        records = []
        for node in self.order:
            op = node.op.name
            if op in TRANSIENT:
                raise _Transient(op)
            if op == "var" and given is not None and id(node) not in given:
                raise _Unkeyable("a var missing from the inputs")  # compile's own check says which
            attrs = tuple([(k, self._attr(node, op, k, v)) for k, v in node.attrs]) if node.attrs else ()
            t = node.type
            spelled = types.get((t.shape, t.dtype))
            if spelled is None:
                spelled = self._type(t)
            loc, d = node.loc, node.differentiates
            if op == "const":  # interned, so its line is whichever built it first; it never raises
                place: tuple = ()
            elif d is None:
                place = () if loc is None else (loc.file, loc.line)
            else:
                place = (*_loc(loc), d.op.name, *_loc(d.loc))
            records.append((op, tuple(map(position, map(id, node.inputs))), attrs, spelled, place))
        return records

    def _attr(self, node: Node, op: str, key: str, value: object) -> object:
        if op == "var" and key == "uid" and type(value) is int and value >= 0:
            return self.uids.setdefault(id(node), len(self.uids))
        return self.value(value)

    def _type(self, t: TensorType) -> tuple:
        if not all(type(d) is int for d in t.shape):
            raise _Unkeyable("named sizes")
        spelled = self.types[(t.shape, t.dtype)] = (t.dtype.str, tuple(t.shape))
        return spelled

    def digest(self, graph: Graph) -> str:
        """The graph's digest: every node's record, then its inputs and outputs by position."""
        index = self.index
        records = self.records()
        records.append((tuple(index[id(n)] for n in graph.inputs), tuple(index[id(n)] for n in graph.outputs)))
        return hashlib.sha256(marshal.dumps(records, 2)).hexdigest()


def _loc(loc: Location | None) -> tuple:
    return () if loc is None else (loc.file, loc.line)


def body_digest(graph: Graph, bodies: dict[Graph, str]) -> str:
    """The digest of a loop's or branch's body (computed once per body graph)."""
    done = bodies.get(graph)
    if done is None:
        done = bodies[graph] = _Encoder(graph, bodies).digest(graph)
    return done


def graph_key(graph: Graph, options: Mapping[str, object]) -> str | None:
    """The hex key of this graph (inputs and outputs in order) compiled with these options; None if unkeyable.

    `options`: every compile option that changes the function (str, int, bool, float or
    None values). None for a graph with named sizes (compiled per size), a var missing
    from its inputs (compile raises) or an attribute the key cannot spell. A graph with
    custom or stop_gradient nodes is keyed as it compiles: with them lowered. O(nodes):
    one line per node, in the graph's own toposort order.
    """
    try:
        return _key(graph, options)
    except _Transient:
        pass
    except _Unkeyable:
        return None
    try:
        return _key(lower_transient(graph), options)
    except (_Unkeyable, _Transient):
        return None


def _key(graph: Graph, options: Mapping[str, object]) -> str:
    encoder = _Encoder(graph, {}, top=True)
    spelled = [(name, encoder.value(options[name])) for name in sorted(options)]
    head = (FORMAT, source_digest(), sys.version, np.__version__, tuple(spelled), encoder.digest(graph))
    return hashlib.sha256(marshal.dumps(head, 2)).hexdigest()  # type: ignore[arg-type]
