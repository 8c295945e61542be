"""Reading a document: the node table in order, each field checked, each node re-interned.

Imports errors, shapes, ir, ops, passes.fuse (the rules a `fused` body keeps), tensor and
serialize.fields. Nothing named by the document is imported, evaluated or unpickled:
ops come from graphc.ops.OPS, node references point to earlier entries only (a document
is acyclic by construction), sizes are bounded by the limits, and a node's own `infer`
judges its operands and attrs, its failures reported as GraphFormatError with the path.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zipfile
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np

from graphc.errors import GraphFormatError, Location, user_location
from graphc.ir import ConstValue, Graph, Node
from graphc.ops import OPS, Kind, Op
from graphc.ops.control import fused
from graphc.ops.source import var, var_op
from graphc.passes.fuse import FUSIBLE, region_shape
from graphc.serialize.fields import (
    ANY,
    FORMAT,
    MAX_NAME,
    NO,
    VERSION,
    attr_spec,
    dim_terms,
    dimension,
    dtype_named,
    fail,
    fit,
    hint_text,
    integer,
    json_list,
    json_object,
    parse,
    short,
    tagged_float,
)  # fmt: skip
from graphc.shapes import Dim, format_shape
from graphc.tensor import Tensor

_MAX_VALUE_NESTING = 8
_SIDECAR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}\.npz")
_TOP_KEYS = ("format", "version", "inputs", "outputs", "nodes")
_NODE_KEYS = ("op", "inputs", "attrs", "dtype", "shape")

Outputs = Tensor | list[Tensor]


class _Sidecar:
    """The .npz file a document keeps its large constants in, read without pickles."""

    def __init__(self, file: Path | None) -> None:
        self.file = file

    def read(self, key: object, dtype: np.dtype, shape: tuple[int, ...], path: str) -> np.ndarray:
        if self.file is None:
            fail(path, "this constant is in a sidecar file: read the document with gc.load(path) beside it")
        if not isinstance(key, str) or not re.fullmatch(r"c[0-9]{1,9}", key):
            fail(path, f"a sidecar key is 'c' and a number, got {short(key)}")
        nbytes = math.prod(shape) * dtype.itemsize
        try:
            with zipfile.ZipFile(self.file) as archive, archive.open(f"{key}.npy") as fp:
                version = np.lib.format.read_magic(fp)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else None
                if version == (2, 0):
                    read_header = np.lib.format.read_array_header_2_0
                if read_header is None:
                    fail(path, f"{key}.npy has an unsupported .npy version {version}")
                found, fortran, stored = read_header(fp)
                data = fp.read(nbytes)
        except GraphFormatError:
            raise
        except Exception as exc:  # zipfile and the .npy header reader raise many kinds
            fail(path, f"cannot read {key} from {self.file.name}: {exc}")
        if tuple(found) != shape or stored.hasobject or stored.newbyteorder("=") != dtype or len(data) != nbytes:
            fail(path, f"{key} in {self.file.name} is {stored}{list(found)}, the document says {dtype}{list(shape)}")
        return np.frombuffer(data, stored).reshape(shape, order="F" if fortran else "C").astype(dtype)


class _Reader:
    """Builds the nodes of one document's table in order, checking each field."""

    def __init__(self, limits: dict[str, int], sidecar: _Sidecar) -> None:
        self.max_nodes = limits["max_nodes"]
        self.max_elements = limits["max_elements"]
        self.max_depth = limits["max_depth"]
        self.sidecar = sidecar
        self.nodes: list[Node] = []
        self.depth: list[int] = []
        self.vars: dict[tuple[object, ...], Node] = {}
        self.bodies: dict[tuple[tuple[Node, ...], tuple[Node, ...]], list[Node]] = {}
        self.budget = 0  # node visits left for walking bodies: set from the table's length
        self.site = user_location()
        self.nesting = 0  # the body depth of the node being read

    def ref(self, raw: object, path: str) -> Node:
        """The node an index refers to: only nodes earlier in the table, so no cycle can be written."""
        if type(raw) is not int or not 0 <= raw < len(self.nodes):
            fail(path, f"{short(raw)} is not the index of an earlier node (0 to {len(self.nodes) - 1})")
        k = raw
        self.nesting = max(self.nesting, self.depth[k])
        return self.nodes[k]

    def shape(self, raw: object, path: str) -> tuple[int, ...]:
        dims = tuple(integer(n, f"{path}[{k}]", 0) for k, n in enumerate(json_list(raw, path, 64)))
        self.check_size(dims, path)
        return dims

    def check_size(self, shape: tuple[object, ...], path: str) -> None:
        """At most 64 dimensions, and the fixed ones within max_elements (named ones are bound by the call)."""
        if len(shape) > 64:
            fail(path, f"{len(shape)} dimensions; NumPy allows 64")
        if any(not isinstance(n, Dim) and (type(n) is not int or n < 0) for n in shape):
            fail(path, f"a dimension is an int >= 0 or a named dimension, got {short(shape)}")
        sizes = [n for n in shape if type(n) is int]
        if any(n > self.max_elements for n in sizes) or math.prod(sizes) > self.max_elements:
            fail(path, f"shape {format_shape(shape)} is larger than max_elements={self.max_elements}")

    def value(self, raw: object, path: str, depth: int = 0) -> Hashable:
        """An attribute value from its encoding (docs/format.md, "Values")."""
        if raw is None or isinstance(raw, (bool, str)):
            return raw
        if type(raw) is int:
            return integer(raw, path)
        if isinstance(raw, float):
            return raw if math.isfinite(raw) else fail(path, f"number {raw} out of range")
        if isinstance(raw, list):
            if depth >= _MAX_VALUE_NESTING:
                fail(path, f"values nest at most {_MAX_VALUE_NESTING} lists deep")
            return tuple(self.value(v, f"{path}[{k}]", depth + 1) for k, v in enumerate(raw))
        if not isinstance(raw, dict) or len(raw) != 1:
            fail(path, "a tagged value is an object with one key: float, dtype, array, graph or dim")
        ((tag, body),) = raw.items()
        readers: dict[str, Callable[[object, str], Hashable]] = {
            "float": tagged_float, "dtype": dtype_named, "array": self.array, "graph": self.graph, "dim": dim_terms,
        }  # fmt: skip
        if tag not in readers:
            fail(path, f"unknown tag {short(tag)}; expected float, dtype, array, graph or dim")
        return readers[tag](body, f"{path}.{tag}")

    def array(self, raw: object, path: str) -> ConstValue:
        record = json_object(raw, path, ("dtype", "shape"), ("base64", "npz"))
        dtype = dtype_named(record["dtype"], f"{path}.dtype")
        shape = self.shape(record["shape"], f"{path}.shape")
        if ("base64" in record) == ("npz" in record):
            fail(path, "an array has exactly one of 'base64' and 'npz'")
        if "npz" in record:
            array = self.sidecar.read(record["npz"], dtype, shape, f"{path}.npz")
        else:
            array = _base64_array(record["base64"], dtype, shape, f"{path}.base64")
        if dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
            fail(path, "a bool array holds bytes other than 0 and 1")
        return ConstValue(array)

    def graph(self, raw: object, path: str) -> Graph:
        record = json_object(raw, path, ("inputs", "outputs"))
        outer = self.nesting
        self.nesting = 0
        inputs = [
            self.ref(r, f"{path}.inputs[{k}]")
            for k, r in enumerate(json_list(record["inputs"], f"{path}.inputs", self.max_nodes))
        ]
        outputs = [
            self.ref(r, f"{path}.outputs[{k}]")
            for k, r in enumerate(json_list(record["outputs"], f"{path}.outputs", self.max_nodes))
        ]
        self.nesting = max(outer, self.nesting + 1)
        if self.nesting > self.max_depth:
            fail(path, f"bodies nest deeper than max_depth={self.max_depth}")
        if any(n.op is not var_op for n in inputs) or len(set(inputs)) != len(inputs):
            fail(f"{path}.inputs", "a body's inputs are distinct vars")
        body = Graph(outputs, inputs)
        self.check_closed(body, path)
        return body

    def members(self, body: Graph, path: str) -> list[Node]:
        """The nodes a body reaches, walked once per distinct body within a budget linear in the table.

        Without the budget, many distinct bodies over one long chain would cost quadratic time.
        """
        key = (body.inputs, body.outputs)
        found = self.bodies.get(key)
        if found is not None:
            return found
        seen: set[Node] = set()
        stack = list(body.outputs)
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            self.budget -= 1
            if self.budget < 0:
                fail(path, "the bodies overlap far more than any graph graphc writes")
            stack.extend(node.inputs)
        self.bodies[key] = list(seen)
        return self.bodies[key]

    def check_closed(self, body: Graph, path: str) -> None:
        """Every var a body uses is one of its inputs."""
        allowed = set(body.inputs)
        for node in self.members(body, path):
            if node.op is var_op and node not in allowed:
                fail(path, f"the body uses var {short(node.attr('name'))}, which is not among its inputs")

    def attrs(self, op: Op, raw: object, path: str) -> dict[str, Hashable]:
        if not isinstance(raw, dict):
            fail(path, f"expected an object, got {type(raw).__name__}")
        spec = attr_spec(op)
        for key in sorted(spec.required - raw.keys()):
            fail(path, f"{op.name} needs attribute {key!r}")
        attrs = {}
        for key, encoded in raw.items():
            where = f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"
            if not spec.open and key not in spec.hints:
                fail(where, f"{op.name} has no attribute {short(key)}")
            hint = spec.hints.get(key, ANY)
            value = fit(self.value(encoded, where), hint)
            if value is NO:
                fail(where, f"{op.name}'s {key} must be {hint_text(hint)}, got {short(encoded)}")
            attrs[key] = value
        return attrs

    def var(self, attrs: dict[str, Hashable], path: str) -> Node:
        """A body parameter as written; a user var (uid >= 0) as a fresh var, one per distinct record."""
        name = attrs.get("name")
        if not isinstance(name, str) or not name.isprintable() or len(name) > MAX_NAME:
            fail(f"{path}.attrs.name", f"a var name is printable text of at most {MAX_NAME} characters")
        key = tuple(sorted(attrs.items()))
        uid = attrs.get("uid")
        if isinstance(uid, int) and uid < 0:
            return self.make(var_op, [], attrs, path)
        if key not in self.vars:
            try:
                self.vars[key] = var(name, attrs["shape"], attrs["dtype"])  # type: ignore[arg-type]
            except Exception as exc:  # attrs whose annotations were unreadable: the op decides
                fail(path, f"var rejects its attributes: {exc}")
        return self.vars[key]

    def make(self, op: Op, inputs: list[Node], attrs: dict[str, Hashable], path: str) -> Node:
        try:
            return op(*inputs, **attrs)
        except Exception as exc:  # infer is written for the frontend's calls: any failure is the file's
            reason = str(exc).partition("\n  at ")[0]  # drop the gc.load caller's line: not the file's
            raise GraphFormatError(f"{op.name} rejects its operands or attributes: {reason}", path) from exc

    def node(self, raw: object, path: str) -> Node:
        record = json_object(raw, path, _NODE_KEYS, ("loc",))
        name = record["op"]
        op = OPS.get(name) if isinstance(name, str) else None
        if op is None:
            fail(f"{path}.op", f"unknown op {short(name)}")
        self.nesting = 0
        refs = json_list(record["inputs"], f"{path}.inputs", self.max_nodes)  # x * x: more refs than nodes
        inputs = [self.ref(r, f"{path}.inputs[{k}]") for k, r in enumerate(refs)]
        spec = attr_spec(op)
        if len(inputs) < spec.min_inputs or (spec.max_inputs is not None and len(inputs) > spec.max_inputs):
            fail(f"{path}.inputs", f"{op.name} cannot take {len(inputs)} operands")
        attrs = self.attrs(op, record["attrs"], f"{path}.attrs")
        node = self.var(attrs, path) if op is var_op else self.make(op, inputs, attrs, path)
        dtype = dtype_named(record["dtype"], f"{path}.dtype")
        raw_shape = json_list(record["shape"], f"{path}.shape", 64)
        shape = tuple(dimension(n, f"{path}.shape[{k}]") for k, n in enumerate(raw_shape))
        if node.dtype != dtype or node.shape != shape:
            fail(path, f"the document says {dtype}{list(shape)}, {op.name} infers {node.type}")
        self.check_size(node.shape, f"{path}.shape")
        if op is fused:
            self.check_region(node, f"{path}.attrs.body")
        if "loc" in record:
            self.relocate(node, record["loc"], f"{path}.loc")
        return node

    def check_region(self, node: Node, path: str) -> None:
        """A fused body keeps the fusion rules (passes/fuse.py) that backends rely on."""
        body = node.attr("body")
        assert isinstance(body, Graph)
        root = body.outputs[0]
        if root.op is var_op:
            fail(path, "a fused body computes its output")
        shape = region_shape(root)
        for member in self.members(body, path):
            kind = member.op.kind  # type: ignore[attr-defined]
            ok = member.op is var_op or (member is root and kind is Kind.REDUCE)
            if not ok and (kind not in FUSIBLE or member.shape != shape):
                fail(path, f"a fused body holds elementwise nodes of shape {shape} and a final reduction, not {member}")

    def relocate(self, node: Node, raw: object, path: str) -> None:
        """A node this load built gets the file:line the document recorded (provenance, not identity)."""
        items = json_list(raw, path, 2)
        file = items[0] if len(items) == 2 else None
        if not isinstance(file, str) or not file.isprintable() or len(file) > 4096:
            fail(path, "a location is [file, line]: printable text and an integer")
        line = integer(items[1], f"{path}[1]", 0)
        if node.loc == self.site and node.origin is None:
            object.__setattr__(node, "loc", Location(file, line))

    def read(self, records: list[object]) -> None:
        self.budget = 16 * len(records) + 1024
        for i, raw in enumerate(records):
            node = self.node(raw, f"$.nodes[{i}]")
            self.nodes.append(node)
            self.depth.append(self.nesting)


def _base64_array(raw: object, dtype: np.dtype, shape: tuple[int, ...], path: str) -> np.ndarray:
    nbytes = math.prod(shape) * dtype.itemsize
    if not isinstance(raw, str) or len(raw) != 4 * math.ceil(nbytes / 3):
        fail(path, f"expected base64 text of {nbytes} bytes")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        fail(path, f"not base64: {exc}")
    if len(data) != nbytes:
        fail(path, f"expected {nbytes} bytes, got {len(data)}")
    return np.frombuffer(data, dtype.newbyteorder("<")).reshape(shape).astype(dtype)


def check_limits(max_nodes: int, max_elements: int, max_depth: int) -> dict[str, int]:
    limits = {"max_nodes": max_nodes, "max_elements": max_elements, "max_depth": max_depth}
    for key, value in limits.items():
        if type(value) is not int or value < 1:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    return limits


def _header(doc: object) -> dict[str, object]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        fail("$", f'not a graphc graph: expected an object with "format": {json.dumps(FORMAT)}')
    version = doc.get("version")
    if type(version) is int and version > VERSION:
        fail("$.version", f"written by a newer graphc (format version {version}); this graphc reads version {VERSION}")
    if version != VERSION or type(version) is not int:
        fail("$.version", f"expected format version {VERSION}, got {short(version)}")
    return json_object(doc, "$", _TOP_KEYS, ("constants_file",))


def _sidecar(doc: dict[str, object], directory: Path | None) -> _Sidecar:
    name = doc.get("constants_file")
    if name is None:
        return _Sidecar(None)
    if not isinstance(name, str) or not _SIDECAR_NAME.fullmatch(name) or name.startswith("."):
        fail("$.constants_file", "a sidecar is a plain file name ending in .npz, beside the document")
    return _Sidecar(None if directory is None else directory / name)


def read_document(text: str | bytes, directory: Path | None, limits: dict[str, int]) -> tuple[list[Tensor], Outputs]:
    doc = _header(parse(text))
    records = json_list(doc["nodes"], "$.nodes", limits["max_nodes"])
    reader = _Reader(limits, _sidecar(doc, directory))
    reader.read(records)
    inputs = [reader.ref(r, f"$.inputs[{k}]") for k, r in enumerate(json_list(doc["inputs"], "$.inputs", len(records)))]
    if any(n.op is not var_op for n in inputs) or len(set(inputs)) != len(inputs):
        fail("$.inputs", "the inputs are distinct vars")
    raw_outputs = doc["outputs"]
    if type(raw_outputs) is int:
        return [Tensor(n) for n in inputs], Tensor(reader.ref(raw_outputs, "$.outputs"))
    refs = json_list(raw_outputs, "$.outputs", limits["max_nodes"])
    outputs = [Tensor(reader.ref(r, f"$.outputs[{k}]")) for k, r in enumerate(refs)]
    return [Tensor(n) for n in inputs], outputs
