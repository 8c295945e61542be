"""gc.scan and gc.fixed_point: trace the user's step function once into a loop node's body.

Imports errors, shapes, ir, ops, tensor and the two primitives. The step is called once on
fresh symbolic vars; what it returns becomes the body graph. Tensors it closes over
(weights, and anything computed from them outside the step) become explicit inputs of the
loop node, so gradients reach them; computations in the step that do not depend on the
loop's variables are hoisted out and run once, before the loop.

Carries, xs, per-step outputs and iterates may be a Tensor or a (nested) tuple or list of
them; Python numbers and NumPy arrays are lifted to constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from graphc.autodiff.canonical import canonicalize
from graphc.errors import DTypeError, GraphError, ShapeError
from graphc.ir import Node
from graphc.ops.loops import close_over, sibling
from graphc.ops.source import const as const_node
from graphc.ops.source import var as var_node
from graphc.recurrence.fixed_point_rules import fixed_point as fixed_point_op
from graphc.recurrence.scan_rules import make_scan
from graphc.shapes import Dim, DimLike, TensorType, as_dim, is_float
from graphc.tensor import Tensor, as_tensor, building

Tree = Any  # a Tensor, None, or a tuple/list of trees


def flatten(tree: Tree, what: str, dtypes: list[Any] | None = None) -> tuple[list[Node], Tree]:
    """The leaves of a tree of Tensors as nodes, and the tree's shape (leaves lifted to Tensors).

    `dtypes`, when given, is the dtype for each leaf that is not already a Tensor.
    """
    leaves: list[Node] = []

    def walk(item: Tree) -> Tree:
        if isinstance(item, (tuple, list)):
            return type(item)(walk(i) for i in item)
        if item is None:
            return None
        dtype = dtypes[len(leaves)] if dtypes is not None and len(leaves) < len(dtypes) else None
        try:
            leaf = item if isinstance(item, Tensor) else as_tensor(item, dtype)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} must hold Tensors, numbers or arrays, got {type(item).__name__}") from exc
        leaves.append(leaf.node)
        return "leaf"

    return leaves, walk(tree)


def unflatten(shape: Tree, leaves: Iterator[Node]) -> Tree:
    if isinstance(shape, (tuple, list)):
        return type(shape)(unflatten(s, leaves) for s in shape)
    if shape is None:
        return None
    return Tensor(next(leaves))


def _trace_vars(prefix: str, types: list[TensorType]) -> list[Node]:
    return [var_node(f"{prefix}{i}", t.shape, t.dtype) for i, t in enumerate(types)]


def _check_same(what: str, got: list[Node], shape: Tree, expected: list[Node], expected_shape: Tree) -> None:
    """The step returned `got` (a tree `shape`) where `expected` (a tree `expected_shape`) was given."""
    if shape != expected_shape:
        raise GraphError(
            f"the {what} returned has structure {_describe(shape)}, the initial one {_describe(expected_shape)}"
        )
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        if g.dtype != e.dtype:
            raise DTypeError(f"{what} {i} is returned as {g.type} but starts as {e.type}; cast it with .astype")
        if g.shape != e.shape:
            raise ShapeError(f"{what} {i} is returned as {g.type} but starts as {e.type}")


def _describe(shape: Tree) -> str:
    if isinstance(shape, (tuple, list)):
        inner = ", ".join(_describe(s) for s in shape)
        return f"({inner})" if isinstance(shape, tuple) else f"[{inner}]"
    return "Tensor" if shape == "leaf" else "None"


def _length(xs: list[Node], length: object) -> DimLike:
    """The number of steps: xs' common leading length, or `length` (an int >= 0 or a named dimension)."""
    lengths = list(dict.fromkeys(x.shape[0] for x in xs if x.ndim))
    if any(x.ndim == 0 for x in xs):
        raise ShapeError("each of xs needs a leading axis to scan over; got a 0-d Tensor")
    if len(lengths) > 1:
        raise ShapeError(f"xs have different leading lengths {', '.join(map(str, lengths))}")
    if not xs and length is None:
        raise ValueError("gc.scan needs xs or length")
    if isinstance(length, str):
        length = as_dim(length)
    if length is not None and not isinstance(length, Dim) and (not isinstance(length, int) or length < 0):
        raise ValueError(f"length must be an int >= 0 or a named dimension, got {length!r}")
    if xs and length is not None and length not in lengths:
        raise ShapeError(f"length={length} but xs have leading length {lengths.pop()}")
    return length if length is not None else lengths.pop()


def _split_step_result(result: object) -> tuple[object, object]:
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(f"the step must return a pair (carry, y), got {type(result).__name__}")
    return result[0], result[1]


def scan(
    step: Callable[[Tree, Tree], tuple[Tree, Tree]],
    init: Tree,
    xs: Tree = None,
    length: int | None = None,
    *,
    reverse: bool = False,
    checkpoint: int = 1,
) -> tuple[Tree, Tree]:
    """Loop `step(carry, x_t) -> (carry, y_t)` over the leading axis of `xs`; returns (final carry, stacked ys).

    `xs=None` runs `length` steps with x_t = None. `reverse=True` visits t = T-1 .. 0 (the
    ys stay indexed by t). The gradient is a reverse loop over the carries the forward pass
    saves (one per step); `checkpoint=k` saves every k-th and recomputes the others
    (memory T/k + k carries; the gradients are identical).
    """
    if not isinstance(checkpoint, int) or checkpoint < 1:
        raise ValueError(f"checkpoint must be an int >= 1, got {checkpoint!r}")
    if checkpoint > 1 and reverse:
        raise ValueError("checkpoint > 1 is supported for forward scans only (reverse=False)")
    init_nodes, init_shape = flatten(init, "init")
    x_nodes, x_shape = flatten(xs, "xs")
    with building("scan", *map(Tensor, init_nodes), *map(Tensor, x_nodes)):
        n = _length(x_nodes, length)
        carries = _trace_vars("carry", [c.type for c in init_nodes])
        slices = _trace_vars("x", [TensorType(x.shape[1:], x.dtype) for x in x_nodes])
        x_t = unflatten(x_shape, iter(slices)) if xs is not None else None
        new_carry, y = _split_step_result(step(unflatten(init_shape, iter(carries)), x_t))
        carry_nodes, carry_shape = flatten(new_carry, "the carry", [c.dtype for c in init_nodes])
        _check_same("carry", carry_nodes, carry_shape, init_nodes, init_shape)
        y_nodes, y_shape = flatten(y, "the per-step output")
        names = [f"carry{i}" for i in range(len(carries))] + [f"x{i}" for i in range(len(slices))]
        body_outputs = canonicalize([*carry_nodes, *y_nodes])  # stable forms before the body is differentiated
        if isinstance(n, int) and n == 0:  # no step runs: nothing of the body (hoisted work included) is computed
            empty = [const_node(np.zeros((0, *y.shape), dtype=y.dtype)) for y in y_nodes]
            return unflatten(init_shape, iter(init_nodes)), unflatten(y_shape, iter(empty))
        body, _, closures = close_over(body_outputs, [*carries, *slices], names)
        node = make_scan(init_nodes, x_nodes, closures, body, length=n, reverse=bool(reverse), checkpoint=checkpoint)
    results = iter([sibling(node, i) for i in range(len(carry_nodes) + len(y_nodes))])
    return unflatten(init_shape, results), unflatten(y_shape, results)


DEFAULT_TOL = {"float64": 1e-10, "float32": 1e-5}  # tol=None: by the iterates' dtype (the coarsest wins)


def _tol(tol: object, iterates: list[Node]) -> float:
    """The absolute tolerance: `tol`, or DEFAULT_TOL for the iterates' dtype when it is None."""
    if tol is None:
        return max(DEFAULT_TOL.get(z.dtype.name, DEFAULT_TOL["float64"]) for z in iterates)
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)):
        raise TypeError(f"tol must be a number or None, got {type(tol).__name__}")
    value = float(tol)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"tol must be finite and >= 0, got {value}")
    return value


def fixed_point(
    g: Callable[..., Tree], z0: Tree, *params: Tree, tol: float | None = None, max_iter: int = 1000
) -> Tree:
    """The fixed point z* = g(z*, *params), iterating z <- g(z, *params) from z0.

    Converged when max |z_new - z| <= tol over every element of every iterate (the
    max-norm, absolute). tol=None follows the iterates' dtype: 1e-10 for float64,
    1e-5 for float32 (whose rounding alone moves an O(1) iterate by ~1e-7, so 1e-10
    could never be reached); pass tol for iterates far from magnitude 1. Raises
    gc.ConvergenceError when the call runs max_iter evaluations of g without
    converging, or the residual becomes NaN. The gradient solves the adjoint
    fixed-point equation (Almeida-Pineda) with the same tol and max_iter: memory
    independent of the number of iterations; z0 gets a zero gradient (z* does not
    depend on it).
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    z_nodes, z_shape = flatten(z0, "z0")
    if not z_nodes:
        raise ValueError("fixed_point needs at least one iterate in z0")
    tol = _tol(tol, z_nodes)
    param_nodes, _ = flatten(list(params), "params")
    with building("fixed_point", *map(Tensor, z_nodes)):
        for i, z in enumerate(z_nodes):
            if not is_float(z.dtype):
                raise DTypeError(f"iterate {i} must be a float Tensor, got {z.type}")
        zs = _trace_vars("z", [z.type for z in z_nodes])
        ps = _trace_vars("p", [p.type for p in param_nodes])
        result = g(unflatten(z_shape, iter(zs)), *(Tensor(p) for p in ps))
        new_nodes, new_shape = flatten(result, "the iterate", [z.dtype for z in z_nodes])
        _check_same("iterate", new_nodes, new_shape, z_nodes, z_shape)
        fixed = dict(zip(ps, param_nodes, strict=True))
        names = [f"z{i}" for i in range(len(zs))]
        body, _, closures = close_over(canonicalize(new_nodes), zs, names, fixed=fixed)
        node = fixed_point_op(*z_nodes, *closures, body=body, n_z=len(z_nodes), tol=tol, max_iter=max_iter, output=0)
    return unflatten(z_shape, iter([sibling(node, i) for i in range(len(z_nodes))]))


__all__ = ["fixed_point", "flatten", "scan", "unflatten"]
