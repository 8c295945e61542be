"""Jacobians as one batched graph: the VJP (or JVP) applied to a whole seed basis at once.

Imports shapes, ir, ops and the two engines. The seed basis is a single constant
of shape (m,) + f.shape (reverse) or (n,) + x.shape (forward); the engines carry
that leading batch axis through every rule, so the graph does not grow with m or n.
"""

from __future__ import annotations

import math

import numpy as np

from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.vjp import vjp_graph
from graphc.errors import ShapeError
from graphc.ir import Node
from graphc.ops import shape as sh
from graphc.ops.source import const
from graphc.shapes import Shape, format_shape, is_static


def basis(shape: Shape, dtype: np.dtype) -> Node:
    """The identity of R^size as a (size,) + shape constant (the size must be known: no named dimensions)."""
    if not is_static(shape):
        raise ShapeError(f"a seed basis of shape {format_shape(shape)} would have a named number of rows")
    size = math.prod(int(n) for n in shape)
    return const(np.eye(size, dtype=dtype).reshape((size, *shape)))


def jacobian_graph(f: Node, x: Node, mode: str) -> Node | None:
    """The node of d f/d x (shape f.shape + x.shape), or None where it is identically zero."""
    m = f.type.size
    n = x.type.size
    if mode == "rev":
        rows = vjp_graph([f], [x], [basis(f.shape, f.dtype)], nb=1)[0]
        if rows is None:
            return None
        return sh.reshape(rows, shape=f.shape + x.shape) if f.shape != (m,) else rows
    cols = jvp_graph([f], [x], [basis(x.shape, x.dtype)], nb=1)[0]
    if cols is None:
        return None
    flat = sh.reshape(cols, shape=(n, m))
    return sh.reshape(sh.transpose(flat, axes=(1, 0)), shape=f.shape + x.shape)
