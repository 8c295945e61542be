"""Named dimensions at call time: the names a graph uses, binding sizes from arguments, specialization.

Imports errors, shapes, ir and ops.base/ops.source. A graph with named dimensions
(`f64[batch,64]`) runs once its sizes are known: `bind` reads them from the arguments'
shapes (ValueError naming the dimension and both sizes when inputs disagree), and
`specialize` rebuilds the graph with those sizes substituted everywhere (types, shape
attributes, slice bounds, loop lengths, bodies) and each `dim` node replaced by a
constant. The result is an ordinary fixed-shape graph, every node re-inferred, so a size
that breaks the graph (a slice past the end, a dimension below zero) fails there,
naming the user's line that built the node.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from graphc.errors import GraphError, ShapeError, where
from graphc.ir import Graph, GraphRebuilder, Node, same_provenance, toposort
from graphc.ops.source import const, dim_op
from graphc.shapes import Dim, DimLike, evaluate_shape, format_shape

Sizes = Mapping[str, int]


# --- the names a graph uses ---------------------------------------------------------------


def _attr_dims(value: object, found: list[Dim]) -> None:
    """The Dims inside an attribute value (tuples nest; bodies are walked by `graph_dims`)."""
    if isinstance(value, Dim):
        found.append(value)
    elif isinstance(value, tuple):
        for item in value:
            _attr_dims(item, found)


def graph_dims(graph: Graph) -> list[Dim]:
    """Every Dim in the graph's types and attributes, bodies included, in a deterministic order."""
    found: list[Dim] = []
    seen: set[Graph] = set()
    stack = [graph]
    while stack:
        g = stack.pop()
        for node in toposort([*g.outputs, *g.inputs]):
            found.extend(n for n in node.shape if isinstance(n, Dim))
            for _, value in node.attrs:
                if isinstance(value, Graph) and value not in seen:
                    seen.add(value)
                    stack.append(value)
                else:
                    _attr_dims(value, found)
    return list(dict.fromkeys(found))


def graph_names(graph: Graph) -> tuple[str, ...]:
    """The dimension names the graph uses, sorted."""
    return tuple(sorted({name for d in graph_dims(graph) for name in d.names}))


def binding_axes(inputs: Sequence[Node]) -> dict[str, tuple[int, int]]:
    """For each name that is a whole dimension of an input, the first (input, axis) where it is."""
    axes: dict[str, tuple[int, int]] = {}
    for i, node in enumerate(inputs):
        for k, n in enumerate(node.shape):
            if isinstance(n, Dim) and n.name is not None:
                axes.setdefault(n.name, (i, k))
    return axes


def check_bound(graph: Graph, inputs: Sequence[Node]) -> dict[str, tuple[int, int]]:
    """The binding axes; GraphError for a name the graph uses that no input's shape gives."""
    axes = binding_axes(inputs)
    unbound = [name for name in graph_names(graph) if name not in axes]
    if unbound:
        listed = ", ".join(f"{node.attr('name')}: {node.type}" for node in inputs)
        raise GraphError(
            f"the dimension{'s' if len(unbound) > 1 else ''} {', '.join(unbound)} "
            f"{'are' if len(unbound) > 1 else 'is'} not a whole dimension of any input ({listed}), "
            "so no call could bind it: give an input that axis by name"
        )
    return axes


# --- binding ----------------------------------------------------------------------------------


def _label(node: Node) -> str:
    return repr(str(node.attr("name")))


def bind(inputs: Sequence[Node], shapes: Sequence[tuple[int, ...]]) -> dict[str, int]:
    """The size of every name, read from the arguments' shapes; ValueError when they disagree.

    Each input's shape must have its var's rank and fixed sizes; a name takes its size
    from the first input that has it as a whole dimension, and every other occurrence
    (a name or an expression such as batch+1) must agree.
    """
    sizes: dict[str, int] = {}
    first: dict[str, tuple[int, int]] = {}
    for i, (node, shape) in enumerate(zip(inputs, shapes, strict=True)):
        declared = node.shape
        if len(shape) != len(declared):
            raise ValueError(f"input {_label(node)}: expected shape {format_shape(declared)}, got {shape}")
        for k, (n, got) in enumerate(zip(declared, shape, strict=True)):
            if isinstance(n, Dim) and n.name is not None and n.name not in sizes:
                sizes[n.name] = got
                first[n.name] = (i, k)
    for node, shape in zip(inputs, shapes, strict=True):
        for k, (n, got) in enumerate(zip(node.shape, shape, strict=True)):
            expected = n.evaluate(sizes) if isinstance(n, Dim) else n
            if expected != got:
                raise ValueError(_disagreement(inputs, first, sizes, node, k, n, got))
    return sizes


def _disagreement(
    inputs: Sequence[Node], first: dict[str, tuple[int, int]], sizes: Sizes, node: Node, axis: int, n: DimLike,
    got: int,
) -> str:  # fmt: skip
    """The message for axis `axis` of `node` having size `got` where `n` was expected."""
    if not isinstance(n, Dim):
        return f"input {_label(node)}: expected shape {format_shape(node.shape)}, got size {got} on axis {axis}"
    bound = "; ".join(
        f"{name}={sizes[name]} from input {_label(inputs[first[name][0]])} (axis {first[name][1]})" for name in n.names
    )
    if n.name is not None:
        return (
            f"input {_label(node)}: dimension {n.name} is {got} (axis {axis}) but {sizes[n.name]} in input "
            f"{_label(inputs[first[n.name][0]])} (axis {first[n.name][1]}): inputs that share a named dimension "
            "must agree on its size"
        )
    return f"input {_label(node)}: dimension {n} on axis {axis} should be {n.evaluate(sizes)} ({bound}), got {got}"


# --- specialization -------------------------------------------------------------------------


class _Specializer(GraphRebuilder):
    """Rebuilds nodes (and bodies) with every named size replaced by its value; memoized."""

    def __init__(self, sizes: Sizes) -> None:
        super().__init__()
        self.sizes = dict(sizes)

    def value(self, value: Hashable) -> Hashable:
        if isinstance(value, Dim):
            return value.evaluate(self.sizes)
        if isinstance(value, Graph):
            return self.graph(value)
        if isinstance(value, tuple):
            items = tuple(self.value(item) for item in value)
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        return value

    def node(self, node: Node) -> Node:
        inputs = [self.nodes[i] for i in node.inputs]
        if node.op is dim_op:
            size = node.attr("size")
            assert isinstance(size, Dim)
            with same_provenance(node):
                return const(np.asarray(size.evaluate(self.sizes), dtype=node.dtype))
        attrs = {key: self.value(value) for key, value in node.attrs}
        same_inputs = all(a is b for a, b in zip(inputs, node.inputs, strict=True))
        if node.type.static and same_inputs and all(attrs[key] is value for key, value in node.attrs):
            return node  # nothing named here: the node itself
        shape = self.shape(node)
        with same_provenance(node):
            new = Node.make(node.op, inputs, attrs)
        if new.shape != shape:  # pragma: no cover - an op whose infer disagrees with substitution
            raise GraphError(f"{node.op.name}: specialized to {new.type}, expected {shape}{where(node.loc)}")
        return new

    def shape(self, node: Node) -> tuple[int, ...]:
        """The node's concrete shape; ValueError when a dimension would be negative."""
        shape = evaluate_shape(node.shape, self.sizes)
        for n, k in zip(node.shape, shape, strict=True):
            if k < 0:
                given = ", ".join(f"{name}={self.sizes[name]}" for name in sorted(n.names))  # type: ignore[union-attr]
                raise ShapeError(
                    f"with {given} the dimension {n} of {node.op.name}'s result {node.type} would be {k}"
                    f"{where(node.loc)}"
                )
        return shape


def specialize(graph: Graph, sizes: Sizes) -> Graph:
    """The graph with every named size replaced by its value: an ordinary fixed-shape graph.

    Nodes without named sizes are kept as they are; rebuilt nodes keep their provenance.
    A size the graph cannot take raises ShapeError (a GraphError, so a ValueError) naming
    the node and the user's line that built it.
    """
    return _Specializer(sizes).graph(graph)


__all__ = ["bind", "binding_axes", "check_bound", "graph_dims", "graph_names", "specialize"]
