"""The reference evaluator: runs a graph node by node with each op's NumPy `eval`.

Imports errors, shapes, ir, ops and schedule. Every backend is tested against it:
`evaluate` (gc.evaluate) and `evaluate_graph` run a graph, `run_program` a scheduled
Program, freeing each value after its last use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graphc.errors import where
from graphc.ir import Graph, Node, as_node
from graphc.ops.control import fused
from graphc.ops.dims import bind, check_bound, graph_names, specialize
from graphc.ops.loops import is_loop, run_shared
from graphc.schedule import Program


class EvaluationError(AssertionError):
    """An op's eval produced a value that disagrees with its inferred type (a graphc bug)."""


def feed_value(node: Node, value: object) -> np.ndarray:
    """`value` as an array of the var's dtype and shape; ValueError/TypeError naming the var."""
    name = node.attr("name")
    array = np.asarray(value)
    if array.shape != node.shape:
        raise ValueError(f"input {name!r}: expected shape {node.shape}, got {array.shape}")
    if array.dtype != node.dtype:
        if not np.can_cast(array.dtype, node.dtype, "same_kind"):
            raise TypeError(f"input {name!r}: expected {node.dtype}, got {array.dtype}")
        array = array.astype(node.dtype)
    return array


def run_node(node: Node, args: Sequence[np.ndarray], shared: dict | None = None) -> np.ndarray:
    """One op's NumPy reference value, checked against the node's static type.

    A fused node runs its body here node by node, so every body value is checked too; so
    do loops (scan, fixed_point), whose sibling nodes share one run through `shared`.
    """
    if node.op is fused:
        body = node.attr("body")
        assert isinstance(body, Graph)
        (value,) = evaluate_graph(body, dict(zip(body.inputs, args, strict=True)))
    elif is_loop(node):
        value = run_shared(node, args, {} if shared is None else shared, _run_body)
    else:
        try:
            value = np.asarray(node.op.eval(*args, **node.params))  # type: ignore[attr-defined]
        except (IndexError, np.linalg.LinAlgError) as exc:  # an index out of range (take), a singular matrix
            raise type(exc)(f"{exc} in {node.op.name}{where(node.loc)}") from None  # name the op and the user's line
    if value.shape != node.shape or value.dtype != node.dtype:
        raise EvaluationError(f"{node.op.name} produced {value.dtype}{list(value.shape)}, its type says {node.type}")
    return value


def _run_body(body: Graph, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return evaluate_graph(body, dict(zip(body.inputs, args, strict=True)))


def evaluate_graph(graph: Graph, feed: Mapping[Node, np.ndarray]) -> list[np.ndarray]:
    """The values of graph.outputs given arrays for its vars (a missing var is an error)."""
    values: dict[Node, np.ndarray] = {}
    shared: dict = {}
    for node in graph.nodes:
        if node.op.name == "var":
            if node not in feed:
                raise ValueError(f"no value given for input {node.attr('name')!r}")
            values[node] = feed_value(node, feed[node])
            continue
        values[node] = run_node(node, [values[i] for i in node.inputs], shared)
    return [values[o] for o in graph.outputs]


def evaluate(outputs: object, feed: Mapping[object, object]) -> np.ndarray | list[np.ndarray]:
    """gc.evaluate: the reference values of `outputs` (one Tensor or a list) for `feed` {var: value}.

    Named dimensions take their sizes from the values fed (inputs that share a name must agree).
    """
    single = not isinstance(outputs, (list, tuple))
    nodes = [as_node(o) for o in ([outputs] if single else outputs)]  # type: ignore[union-attr]
    table = {as_node(k): v for k, v in feed.items()}
    graph = Graph(nodes)
    if graph_names(graph):
        graph, table = _specialized(graph, table)
    results = [np.array(v, copy=True) for v in evaluate_graph(graph, table)]  # type: ignore[arg-type]
    return results[0] if single else results


def _specialized(graph: Graph, table: dict[Node, object]) -> tuple[Graph, dict[Node, object]]:
    """The graph specialized to the sizes the fed values bind, and the feed keyed by its vars."""
    fed = [node for node in table if node.op.name == "var"]
    arrays = [np.asarray(table[node]) for node in fed]
    check_bound(graph, fed)
    sizes = bind(fed, [a.shape for a in arrays])
    fixed = specialize(Graph(graph.outputs, fed), sizes)
    return Graph(fixed.outputs), dict(zip(fixed.inputs, arrays, strict=True))


def run_program(program: Program, args: Sequence[object]) -> list[np.ndarray]:
    """The values of program.outputs for one argument per input, each step run with op.eval.

    The results may alias the arguments, the constants and each other.
    """
    if len(args) != len(program.inputs):
        expected = ", ".join(i.name for i in program.inputs)
        raise TypeError(f"the program takes {len(program.inputs)} arguments ({expected}), got {len(args)}")
    values: dict[str, np.ndarray] = dict(program.constants)
    for given, value in zip(program.inputs, args, strict=True):
        values[given.name] = feed_value(given.node, value)
    shared: dict = {}
    for step in program.steps:
        values[step.name] = run_node(step.node, [values[a] for a in step.args], shared)
        for name in step.frees:
            del values[name]
    return [values[name] for name in program.outputs]
