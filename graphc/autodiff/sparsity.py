"""Jacobian and Hessian sparsity patterns, found from the graph with one rule per op.

Imports shapes, ir, ops (scipy through ops.sparsity, lazily). The pattern of the
differentiation variable is the identity; every node's pattern follows from its inputs'
by the `sparsity` rule on its op's record (ops/sparsity.py `propagate`; ops without one
depend densely on everything their inputs do). Only float values carry dependence, as only
they carry derivatives, and an input whose derivative rule is `zero` (a comparison,
floor, the condition of where) passes none on: the pattern covers every entry that the
Jacobian autodiff builds can make nonzero, and no others that the rules can rule out.

A Hessian's pattern is the Jacobian pattern of the gradient graph, made symmetric.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.ir import Node
from graphc.ops.sparsity import Pattern, empty, identity, propagate
from graphc.shapes import fixed_size


def patterns(outputs: Sequence[Node], x: Node) -> list[Pattern | None]:
    """The pattern of each output with respect to the var x, shape (output.size, x.size); None: no dependence."""
    return propagate(outputs, {x: identity(fixed_size(x.type.size))})


def canonical(p: Pattern) -> Pattern:
    """The pattern as a csr_array of bools with sorted indices and no stored False or duplicate entries."""
    from scipy.sparse import csr_array

    result = csr_array(p, dtype=bool)
    result.sum_duplicates()
    result.eliminate_zeros()
    result.sort_indices()
    return result


def jacobian_pattern(f: Node, x: Node) -> Pattern:
    """The Jacobian pattern of f with respect to x: shape (f.size, x.size)."""
    (found,) = patterns([f], x)
    if found is None:
        return canonical(empty(fixed_size(f.type.size), fixed_size(x.type.size)))
    return canonical(found)


def hessian_pattern(gradient: Node, x: Node) -> Pattern:
    """The pattern of the Hessian whose gradient graph is `gradient`: that graph's Jacobian pattern, made symmetric."""
    p = jacobian_pattern(gradient, x)
    return canonical(p + p.T)


__all__ = ["canonical", "hessian_pattern", "jacobian_pattern", "patterns"]
