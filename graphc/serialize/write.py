"""Writing a document: the node table in dependency order, each attr in the value encoding.

Imports errors, ir, ops, shapes, serialize.fields and tensor. Output is deterministic: the table order
comes from an iterative walk of inputs and bodies, user vars are numbered 0, 1, ... in
table order, and attrs are written in the node's (sorted) order.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence

import numpy as np

from graphc.errors import located, user_location, where
from graphc.ir import ConstValue, Graph, Node, as_node, toposort
from graphc.ops.source import var_op
from graphc.serialize.fields import FORMAT, VERSION, dim_json
from graphc.shapes import Dim
from graphc.tensor import Tensor


def _as_nodes(values: object, what: str) -> tuple[bool, list[Node]]:
    """(single, nodes) from one Tensor/Node or a sequence of them."""
    if isinstance(values, (Tensor, Node)):
        return True, [as_node(values)]
    if isinstance(getattr(values, "values", None), Tensor):  # a SparseTensor: its format has no sparse leaves
        raise TypeError(
            f"{what} must be Tensors, got a {type(values).__name__}: pass its .values (the stored entries; "
            "its .indices and .indptr are NumPy arrays to keep beside the file) or .to_dense()"
        )
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise TypeError(f"expected a Tensor or a list of Tensors as {what}, got {type(values).__name__}")
    return False, [as_node(v) for v in values]


def _missing_vars(inputs: list[Node], outputs: list[Node]) -> list[Node]:
    """The vars the outputs depend on that are not among the inputs (loop and branch bodies have their own)."""
    given = set(inputs)
    return [n for n in toposort(outputs) if n.op is var_op and n not in given]


def _children(node: Node) -> list[Node]:
    """What must precede `node` in the table: its inputs, then its bodies' inputs and outputs."""
    found = list(node.inputs)
    for _, value in node.attrs:
        if isinstance(value, Graph):
            found.extend(value.inputs)
            found.extend(value.outputs)
    return found


def _table(roots: Sequence[Node]) -> list[Node]:
    """Every node the roots reach through inputs and bodies, dependencies first (iterative)."""
    order: list[Node] = []
    done: set[Node] = set()
    for root in roots:
        stack = [(root, _children(root), 0)]
        while stack:
            node, kids, i = stack[-1]
            if node in done:
                stack.pop()
                continue
            if i < len(kids):
                stack[-1] = (node, kids, i + 1)
                if kids[i] not in done:
                    stack.append((kids[i], _children(kids[i]), 0))
                continue
            stack.pop()
            done.add(node)
            order.append(node)
    return order


def _encode_array(array: np.ndarray, sidecar: dict[str, np.ndarray] | None, threshold: int | None) -> dict:
    record: dict[str, object] = {"dtype": str(array.dtype), "shape": list(array.shape)}
    if sidecar is not None and threshold is not None and array.nbytes >= threshold:
        key = f"c{len(sidecar)}"
        sidecar[key] = array
        record["npz"] = key
        return {"array": record}
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    record["base64"] = base64.b64encode(little.tobytes()).decode("ascii")
    return {"array": record}


class _Writer:
    """Encodes nodes into table records: indices for references, renumbered uids for user vars."""

    def __init__(self, table: list[Node], provenance: bool, threshold: int | None, sidecar: bool) -> None:
        self.index = {node: i for i, node in enumerate(table)}
        self.uids: dict[Node, int] = {}
        self.provenance = provenance
        self.threshold = threshold
        self.sidecar: dict[str, np.ndarray] | None = {} if sidecar else None

    def value(self, value: object, where: str) -> object:
        """One attribute value in the document's encoding (docs/format.md, "Values")."""
        if isinstance(value, np.generic) and not isinstance(value, np.dtype):
            value = value.item()
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, tuple):
            return [self.value(v, where) for v in value]
        if isinstance(value, Dim):
            return dim_json(value)
        if isinstance(value, np.dtype):
            return {"dtype": str(value)}
        if isinstance(value, ConstValue):
            return _encode_array(value.array, self.sidecar, self.threshold)
        if isinstance(value, Graph):
            body = {"inputs": [self.index[n] for n in value.inputs], "outputs": [self.index[n] for n in value.outputs]}
            return {"graph": body}
        raise TypeError(f"gc.save: {where} is a {type(value).__name__}, which the format cannot hold")

    def record(self, node: Node) -> dict[str, object]:
        attrs = {}
        for key, value in node.attrs:
            if node.op is var_op and key == "uid" and isinstance(value, int) and value >= 0:
                value = self.uids.setdefault(node, len(self.uids))
            attrs[key] = self.value(value, f"attribute {key!r} of {node.op.name}")
        record: dict[str, object] = {
            "op": node.op.name,
            "inputs": [self.index[i] for i in node.inputs],
            "attrs": attrs,
            "dtype": str(node.dtype),
            "shape": [dim_json(n) for n in node.shape],
        }
        if self.provenance and node.loc is not None:
            record["loc"] = [node.loc.file, node.loc.line]
        return record


def _checked(inputs: object, outputs: object) -> tuple[list[Node], bool, list[Node]]:
    """(input nodes, single output, output nodes): distinct input vars, among them every var the outputs need."""
    _, input_nodes = _as_nodes(inputs, "inputs")
    single, output_nodes = _as_nodes(outputs, "outputs")
    for k, node in enumerate(input_nodes):
        if node.op is not var_op:
            raise TypeError(f"input {k} must be a var made with gc.var, got a {node.op.name} node{where(node.loc)}")
    if len(set(input_nodes)) != len(input_nodes):
        raise ValueError("an input var is listed twice")
    missing = _missing_vars(input_nodes, output_nodes)
    if missing:
        names = ", ".join(f"{n.attr('name')!r} ({n.type}){where(n.loc)}" for n in missing)
        raise ValueError(f"the outputs depend on vars missing from inputs: {names}")
    return input_nodes, single, output_nodes


def document(
    inputs: object, outputs: object, provenance: bool, threshold: int | None, sidecar: str | None,
    who: str = "gc.save",
) -> tuple[str, dict[str, np.ndarray]]:  # fmt: skip
    """The JSON text and the sidecar's arrays; bad arguments raise naming `who` and the user's line."""
    try:
        input_nodes, single, output_nodes = _checked(inputs, outputs)
    except (TypeError, ValueError) as exc:
        raise located(exc, who, user_location()) from None
    table = _table([*input_nodes, *output_nodes])
    writer = _Writer(table, provenance, threshold, sidecar is not None)
    records = [json.dumps(writer.record(n), allow_nan=False) for n in table]
    out_ids = [writer.index[n] for n in output_nodes]
    head = {
        "format": FORMAT,
        "version": VERSION,
        "inputs": [writer.index[n] for n in input_nodes],
        "outputs": out_ids[0] if single else out_ids,
    }
    arrays = writer.sidecar or {}
    if arrays:
        head["constants_file"] = sidecar
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    body = ",\n".join(f"    {r}" for r in records)
    return "{\n" + "\n".join(lines) + '\n  "nodes": [\n' + body + "\n  ]\n}\n", arrays
