"""The graph-level compile cache's key: a structural hash of the *unoptimized* graph and the options.

Imports errors, shapes and ir (and the package's own source files, for their digest). A
compile whose key is found on disk skips optimize, schedule, plan, lower and LLVM: the
entry (written by the backend, graphc.backends.llvm.entries) holds what the Python
wrapper needs and names the object code. So the key must change whenever anything that
could change the compiled function changes:

- every node the outputs reach (and every input), bodies included, in toposort order: its op, its
  inputs (by position in that order), every attribute (floats and constants by their exact
  bytes: -0.0 and 0.0, NaN payloads differ), its dtype and shape;
- where each node was built (file and line, and what a derivative's node differentiates):
  error messages and check_finite's reports name them;
- the inputs in order (with their names), the outputs in order;
- the options (backend, optimize, fast_math, check_finite, threads, one output or a
  list) and a digest of graphc's own source (its optimizer, scheduler and backends);
- the host CPU, llvmlite and LLVM versions are added by the backend's ObjectCache.key.

Vars are numbered by their order in the walk, as gc.save numbers them, so the same
program built again in another process has the same key. An attribute of a kind the key
does not know (a Python function, say) gives no key: that graph is compiled without
this cache, never looked up under a key that could be shared.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from graphc.errors import Location
from graphc.ir import ConstValue, Graph, Node
from graphc.shapes import Dim

FORMAT = "graphc plan cache v1"
_DOUBLE = struct.Struct("<d")


class _Unkeyable(Exception):
    """An attribute the key cannot spell exactly: compile without the graph-level cache."""


@functools.cache
def source_digest() -> str:
    """A digest of every graphc source file: a changed optimizer or backend never reuses a stale plan."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class _Encoder:
    """Spells one graph's nodes as exact text: references by position, vars renumbered in order."""

    def __init__(self, graph: Graph, bodies: dict[Graph, str]) -> None:
        order = list(graph.nodes)
        seen = {id(n) for n in order}
        order += [n for n in graph.inputs if id(n) not in seen]  # unused inputs still count
        self.order = order
        self.index = {id(node): i for i, node in enumerate(order)}
        self.uids: dict[int, int] = {}
        self.bodies = bodies  # body graph -> its digest, shared by every graph of one key

    def value(self, value: object) -> str:
        """One attribute value, exactly: equal text means an equal value of the same kind."""
        kind = type(value)
        if kind is int:
            return f"i{value}"
        if kind is float:
            return "f" + _DOUBLE.pack(value).hex()  # exact: -0.0, NaN payloads apart
        if value is None or kind is bool or kind is str:
            return repr(value)
        if kind is tuple:
            return "(" + ",".join([self.value(v) for v in value]) + ")"  # type: ignore[attr-defined]
        if isinstance(value, Dim):
            return f"dim:{value!r}"
        if isinstance(value, np.dtype):
            return f"dtype:{value.str}"
        if isinstance(value, np.generic):
            return f"np:{value.dtype.str}:{value.tobytes().hex()}"
        if isinstance(value, ConstValue):
            array = value.array
            digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
            return f"const:{array.dtype.str}:{array.shape}:{digest}"
        if isinstance(value, Graph):
            return "graph:" + body_digest(value, self.bodies)
        raise _Unkeyable(kind.__name__)

    def node(self, node: Node) -> str:
        """One line: op, input positions, attributes, dtype and shape, where it was built."""
        attrs = []
        for key, value in node.attrs:
            if key == "uid" and type(value) is int and value >= 0 and node.op.name == "var":
                value = self.uids.setdefault(id(node), len(self.uids))
            attrs.append(f"{key}={self.value(value)}")
        index = self.index
        inputs = ",".join([str(index[id(i)]) for i in node.inputs])
        made = _where(node.loc)
        if node.differentiates is not None:
            made += f" d/{node.differentiates.op.name}@{_where(node.differentiates.loc)}"
        shape = node.type.shape
        spelled = repr(shape) if all(type(d) is int for d in shape) else self.value(tuple(shape))
        return f"{node.op.name}({inputs};{';'.join(attrs)}):{node.type.dtype.str}{spelled}@{made}\n"

    def digest(self, graph: Graph) -> str:
        """The graph's digest: every node's line, then its inputs and outputs by position."""
        index = self.index
        lines = [self.node(n) for n in self.order]
        lines.append(f"inputs {[index[id(n)] for n in graph.inputs]} outputs {[index[id(n)] for n in graph.outputs]}")
        return hashlib.sha256("".join(lines).encode()).hexdigest()


def body_digest(graph: Graph, bodies: dict[Graph, str]) -> str:
    """The digest of a loop's or branch's body (computed once per body graph)."""
    done = bodies.get(graph)
    if done is None:
        done = bodies[graph] = _Encoder(graph, bodies).digest(graph)
    return done


def _where(loc: Location | None) -> str:
    return "-" if loc is None else f"{loc.file}:{loc.line}"


def graph_key(graph: Graph, options: Mapping[str, object]) -> str | None:
    """The hex key of this graph (inputs and outputs in order) compiled with these options; None if unkeyable.

    `options`: every compile option that changes the function (str, int, bool, float or
    None values). O(nodes): one line per node, in the graph's own toposort order.
    """
    bodies: dict[Graph, str] = {}
    encoder = _Encoder(graph, bodies)
    try:
        spelled = [f"option {name}={encoder.value(options[name])}" for name in sorted(options)]
        spelled.append(encoder.digest(graph))
    except _Unkeyable:
        return None
    text = "\n".join([FORMAT, source_digest(), *spelled])
    return hashlib.sha256(text.encode()).hexdigest()
