"""prune: remove what computes nothing — identity shape ops and casts, unreachable nodes.

Guarantee: bit-identical results. Unreachable nodes (outputs not asked for, dead
code) disappear because a Graph holds only what its outputs reach; this pass
removes the identity reshapes, transposes, broadcasts and casts that
differentiation and other rewrites leave behind.
"""

from __future__ import annotations

from graphc.ir import Graph, Node
from graphc.rewrite import Settled, rewrite, rule_table


def transpose_identity(node: Node) -> Node | None:
    """transpose(x, (0, 1, ..)) -> x"""
    (x,) = node.inputs
    return x if node.attr("axes") == tuple(range(x.ndim)) else None


def reshape_identity(node: Node) -> Node | None:
    """reshape(x, x.shape) -> x"""
    (x,) = node.inputs
    return x if x.shape == node.shape else None


def broadcast_identity(node: Node) -> Node | None:
    """broadcast_to(x, x.shape) -> x"""
    (x,) = node.inputs
    return x if x.shape == node.shape else None


def astype_identity(node: Node) -> Node | None:
    """astype(x: T, T) -> x"""
    (x,) = node.inputs
    return x if x.dtype == node.dtype else None


def slice_identity(node: Node) -> Node | None:
    """x[0:n:1, ...] -> x"""
    (x,) = node.inputs
    index = node.attr("index")
    assert isinstance(index, tuple)
    dims = x.shape[x.ndim - len(index) :]
    whole = all(bounds == (0, n, 1) for bounds, n in zip(index, dims, strict=True))
    return x if whole else None


RULES = rule_table(
    ("transpose", transpose_identity),
    ("reshape", reshape_identity),
    ("broadcast_to", broadcast_identity),
    ("astype", astype_identity),
    ("slice", slice_identity),
)


_SETTLED = Settled()  # the fixpoints of RULES met so far (graphc.rewrite: a walk passes over them)


def prune(graph: Graph) -> Graph:
    """Remove identity shape ops and casts (dead code is already gone)."""
    return rewrite(graph, RULES, _SETTLED)
