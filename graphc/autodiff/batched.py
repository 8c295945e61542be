"""Jacobians as one batched graph: the VJP (or JVP) applied to a whole seed basis at once.

Imports shapes, ir, ops, rewrite and the two engines. The seed basis is structure, not
data: `diag(ones)` seen as (m,) + f.shape (reverse) or (n,) + x.shape (forward)
(autodiff/seeds.py), which the engines carry as a leading batch axis through every
rule, so the graph does not grow with m or n; the structured-seed rules then keep the
derivative diagonal where it is (no n x n identity is built or multiplied by).
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.seeds import identity_seed, restructure
from graphc.autodiff.vjp import vjp_graph
from graphc.ir import Node, toposort
from graphc.ops import shape as sh
from graphc.shapes import Shape, fixed


def _rows_to_jacobian(rows: Node, f: Node, x: Node) -> Node:
    """(m,) + x.shape -> f.shape + x.shape"""
    return _reshaped(rows, f.shape + x.shape)


def _columns_to_jacobian(cols: Node, f: Node, x: Node) -> Node:
    """(n,) + f.shape -> f.shape + x.shape (the batch axis moves last)"""
    flat = _reshaped(cols, (x.type.size, f.type.size))
    return _reshaped(sh.transpose(flat, axes=(1, 0)), f.shape + x.shape)


def _reshaped(node: Node, shape: Shape) -> Node:
    return node if node.shape == shape else sh.reshape(node, shape=shape)


def jacobian_graph(f: Node, x: Node, mode: str) -> Node | None:
    """The node of d f/d x (shape f.shape + x.shape), or None where it is identically zero."""
    return jacobian_graphs([f], [x], mode)[0][0]


def jacobian_graphs(fs: Sequence[Node], xs: Sequence[Node], mode: str) -> list[list[Node | None]]:
    """d f_i / d x_j for every pair (None where identically zero): J[i][j].

    Reverse mode pulls each f's basis back to every x in one batched VJP; forward mode
    pushes each x's basis forward to every f in one batched JVP.
    """
    keep = set(toposort(fs))
    table: list[list[Node | None]] = [[None] * len(xs) for _ in fs]
    if mode == "rev":
        for i, f in enumerate(fs):
            rows = vjp_graph([f], list(xs), [identity_seed(fixed(f.shape), f.dtype)], nb=1)
            for j, (r, x) in enumerate(zip(rows, xs, strict=True)):
                table[i][j] = None if r is None else _rows_to_jacobian(r, f, x)
    else:
        for j, x in enumerate(xs):
            cols = jvp_graph(list(fs), [x], [identity_seed(fixed(x.shape), x.dtype)], nb=1)
            for i, (c, f) in enumerate(zip(cols, fs, strict=True)):
                table[i][j] = None if c is None else _columns_to_jacobian(c, f, x)
    present = [node for row in table for node in row if node is not None]
    done = dict(zip(present, restructure(present, keep), strict=True))
    return [[None if node is None else done[node] for node in row] for row in table]
