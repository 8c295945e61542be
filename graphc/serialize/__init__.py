"""gc.save / gc.load / gc.dumps / gc.loads: graphs as versioned JSON documents (docs/format.md).

Imports errors, shapes, ir, ops, recurrence (so that every op is registered), passes and
tensor. A document is one flat table of nodes in dependency order; a Graph attribute (the
body of a fused region or a loop) refers to table entries by index, so a body shared by
sibling nodes is written once. Loading is safe for untrusted files: see serialize.read.
The JSON Schema of the format is graphc/schema/graph-v1.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphc.recurrence  # noqa: F401 (registers scan and fixed_point in OPS)
from graphc.serialize.fields import FORMAT, VERSION
from graphc.serialize.read import Outputs, check_limits, read_document
from graphc.serialize.write import document
from graphc.tensor import Tensor

MAX_NODES = 1_000_000
MAX_ELEMENTS = 2**31
MAX_DEPTH = 32

__all__ = ["FORMAT", "MAX_DEPTH", "MAX_ELEMENTS", "MAX_NODES", "VERSION", "dumps", "load", "loads", "save"]


def dumps(inputs: object, outputs: object, *, provenance: bool = False) -> str:
    """The JSON document of the graph from `inputs` (vars) to `outputs`, constants inline.

    `outputs` may be one Tensor (gc.loads then gives one) or a list. provenance=True also
    writes each node's file:line. The text is deterministic: user vars are numbered in order.
    """
    text, _ = document(inputs, outputs, provenance, None, None, "gc.dumps")
    return text


def save(
    path: str | Path, inputs: object, outputs: object, *, provenance: bool = False, npz_threshold: int | None = None
) -> None:  # fmt: skip
    """Write the graph to `path` as JSON (see dumps).

    With `npz_threshold`, constants of at least that many bytes go to a sidecar file beside
    it (`model.graphc.json` -> `model.graphc.npz`, NumPy's format, no pickles) that gc.load reads.
    """
    path = Path(path)
    sidecar = path.with_suffix(".npz")
    text, arrays = document(inputs, outputs, provenance, npz_threshold, sidecar.name if npz_threshold else None)
    if arrays:
        np.savez(sidecar, allow_pickle=False, **arrays)
    path.write_text(text, encoding="utf-8")


def loads(
    text: str | bytes, *, max_nodes: int = MAX_NODES, max_elements: int = MAX_ELEMENTS, max_depth: int = MAX_DEPTH
) -> tuple[list[Tensor], Outputs]:  # fmt: skip
    """(inputs, outputs) of a document from gc.dumps; GraphFormatError for anything malformed.

    Limits: at most `max_nodes` table entries, every tensor at most `max_elements` elements,
    bodies nested at most `max_depth` deep. User vars come back as new vars (as gc.var makes).
    """
    return read_document(text, None, check_limits(max_nodes, max_elements, max_depth))


def load(
    path: str | Path, *, max_nodes: int = MAX_NODES, max_elements: int = MAX_ELEMENTS, max_depth: int = MAX_DEPTH
) -> tuple[list[Tensor], Outputs]:  # fmt: skip
    """(inputs, outputs) of a file written by gc.save (and its sidecar .npz); see loads."""
    path = Path(path)
    return read_document(path.read_bytes(), path.parent, check_limits(max_nodes, max_elements, max_depth))
