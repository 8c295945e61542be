"""Small predicates the rewrite rules share: constants, identity shapes.

Imports ir and rewrite only. `is_filled` lives in graphc.rewrite, where autodiff's
pre-differentiation rules (autodiff/canonical.py) can reach it too.
"""

from __future__ import annotations

from graphc.ir import Node
from graphc.rewrite import is_filled


def keeps_shape(x: Node, node: Node) -> bool:
    """True when replacing `node` by `x` changes neither shape nor dtype (no broadcasting lost)."""
    return x.type == node.type


__all__ = ["is_filled", "keeps_shape"]
