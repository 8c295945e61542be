"""gc.cond and gc.while_loop: trace the user's functions once into the bodies of one node.

Imports errors, shapes, ir, ops, tensor and the two primitives. Each function is called
once on fresh symbolic vars; what it returns becomes a body graph.

cond: the branches are *not* hoisted from. Whatever a branch computes stays in the branch
(only the taken one runs); the vars it reaches besides its operands — the Tensors it
closes over — become explicit inputs of the node, so gradients reach them.

while_loop: like scan, computations in the condition or the body that do not depend on
the carry are hoisted out and run once, before the loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from graphc.autodiff.canonical import canonicalize
from graphc.errors import GraphError
from graphc.ir import Graph, Node, toposort
from graphc.ops.base import Kind
from graphc.ops.control_flow import same_results
from graphc.ops.loops import body_param, close_over, sibling, substitute
from graphc.ops.source import var_op
from graphc.recurrence.cond_rules import make_cond
from graphc.recurrence.frontend import _check_same, _trace_vars, flatten, unflatten
from graphc.recurrence.while_rules import default_checkpoint, split_body
from graphc.recurrence.while_rules import while_loop as while_op
from graphc.shapes import BOOL, TensorType
from graphc.tensor import Tensor, TensorLike, as_tensor, building

Tree = Any  # a Tensor, None, or a tuple/list of trees


def close_branches(branches: Sequence[Sequence[Node]], params: Sequence[Node]) -> tuple[list[Graph], list[Node]]:
    """One body per branch on the same inputs: `params`, then every other var the branches reach.

    Nothing is hoisted: a branch keeps all of its computation. Returns the bodies (inputs
    a0, a1, ..) and the outer values of the extra inputs (the closed-over vars), in order.
    """
    given = set(params)
    reached = toposort([o for outputs in branches for o in outputs])
    closures = [n for n in reached if n.op is var_op and n not in given]
    outer = [*params, *closures]
    inputs = [body_param(f"a{i}", n.type) for i, n in enumerate(outer)]
    mapping = dict(zip(outer, inputs, strict=True))
    return [Graph(substitute(outputs, mapping), inputs) for outputs in branches], closures


def _predicate(value: object, what: str) -> Node:
    """A bool scalar node from a Tensor, a Python bool or a NumPy bool."""
    try:
        node = as_tensor(value).node  # type: ignore[arg-type]  # anything: a TypeError is reworded below
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a bool scalar Tensor, got {type(value).__name__}") from exc
    if node.type != TensorType((), BOOL):
        raise GraphError(f"{what} must be a bool scalar Tensor (shape (), dtype bool), got {node.type}")
    return node


def _lift_like(result: Tree, other: Tree) -> Tree:
    """`result` with its numbers and arrays lifted to the dtype of the matching Tensor of `other` (weak typing)."""
    if isinstance(result, (tuple, list)) and isinstance(other, (tuple, list)) and len(result) == len(other):
        return type(result)(_lift_like(r, o) for r, o in zip(result, other, strict=True))
    if result is None or isinstance(result, (Tensor, tuple, list)) or not isinstance(other, Tensor):
        return result
    return as_tensor(result, other.dtype)


def _check_arity(name: str, fn: Callable[..., Tree], args: Sequence[object]) -> None:
    """A TypeError naming the branch when it cannot take cond's operands (before it is called)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: calling it will tell
        return
    try:
        signature.bind(*args)
    except TypeError as exc:
        raise TypeError(f"{name}{signature} cannot take the {len(args)} operands of cond: {exc}") from None


def _trace_branches(
    true_fn: Callable[..., Tree], false_fn: Callable[..., Tree], operands: tuple[object, ...]
) -> tuple[list[Node], list[Node], list[Node], list[Node], Tree]:  # fmt: skip
    """(operand nodes, trace params, true results, false results, the results' structure)."""
    nodes, structure = flatten(list(operands), "the operands")
    params = _trace_vars("a", [n.type for n in nodes])
    args = unflatten(structure, iter(params))
    _check_arity("true_fn", true_fn, args)
    _check_arity("false_fn", false_fn, args)
    true_result = true_fn(*args)
    false_result = false_fn(*args)
    true_result = _lift_like(true_result, false_result)
    false_result = _lift_like(false_result, true_result)
    true_nodes, true_shape = flatten(true_result, "the true branch's result")
    false_nodes, false_shape = flatten(false_result, "the false branch's result")
    if true_shape != false_shape:
        raise GraphError(f"the branches return different structures: {true_shape!r} and {false_shape!r}")
    same_results([n.type for n in true_nodes], [n.type for n in false_nodes])
    return nodes, params, true_nodes, false_nodes, true_shape


def cond(pred: TensorLike, true_fn: Callable[..., Tree], false_fn: Callable[..., Tree], *operands: object) -> Tree:
    """true_fn(*operands) if pred else false_fn(*operands); only the taken branch runs.

    `pred` is a bool scalar Tensor (or a Python bool). Both functions are traced once, on
    symbolic operands, and must return the same structure of Tensors with the same shapes
    and dtypes (Python numbers are taken in the other branch's dtype). Operands may be
    Tensors, numbers, arrays or (nested) tuples/lists of them. The gradient flows through
    the taken branch; `pred` has none. Tensors a branch closes over become inputs of the
    node, and everything a branch computes runs only when it is taken.
    """
    with building("cond", pred, *operands):
        for name, fn in (("true_fn", true_fn), ("false_fn", false_fn)):
            if not callable(fn):
                raise TypeError(f"{name} must be a function of the {len(operands)} operands, got {fn!r}")
        pred_node = _predicate(pred, "the predicate of cond")
        nodes, params, true_nodes, false_nodes, structure = _trace_branches(true_fn, false_fn, operands)
        if not true_nodes:
            return unflatten(structure, iter([]))
        branches = [canonicalize(true_nodes), canonicalize(false_nodes)]
        (true_body, false_body), closures = close_branches(branches, params)
        node = make_cond(pred_node, [*nodes, *closures], true_body, false_body)
    return unflatten(structure, iter([sibling(node, i) for i in range(len(true_nodes))]))


def _max_iter(max_iter: object) -> int | None:
    if max_iter is None:
        return None
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter must be None or an int >= 0, got {max_iter!r}")
    return max_iter


def _checkpoint(checkpoint: object, max_iter: int | None) -> int:
    if checkpoint is None:
        return default_checkpoint(max_iter)
    if isinstance(checkpoint, bool) or not isinstance(checkpoint, int) or checkpoint < 1:
        raise ValueError(f"checkpoint must be None or an int >= 1, got {checkpoint!r}")
    return checkpoint


def while_loop(
    cond_fn: Callable[[Tree], object], body_fn: Callable[[Tree], Tree], init: Tree, max_iter: int | None = None, *,
    checkpoint: int | None = None,
) -> Tree:  # fmt: skip
    """Apply `body_fn` to the carry while `cond_fn(carry)` is True; returns the final carry.

    Both functions are traced once on a symbolic carry (a Tensor or a nested tuple/list of
    them): `cond_fn` returns a bool scalar, `body_fn` the next carry with the structure,
    shapes and dtypes of `init`. `max_iter=N` stops after at most N evaluations of the
    body and returns the carry reached then (no error: as a bounded loop, like
    jax.lax.fori_loop with an early exit); `max_iter=0` returns `init`. Forward mode
    (gc.jvp) works for any loop; reverse mode (gc.grad, gc.vjp) needs `max_iter`, and
    recomputes the loop from a stored carry every `checkpoint` steps (default
    ceil(sqrt(max_iter))), raising gc.DifferentiationError without it.
    """
    bound = _max_iter(max_iter)
    k = _checkpoint(checkpoint, bound)
    init_nodes, init_shape = flatten(init, "init")
    if not init_nodes:
        raise ValueError("while_loop needs at least one Tensor in init")
    with building("while_loop", *map(Tensor, init_nodes)):
        node, hoisted = _loop(cond_fn, body_fn, init_nodes, init_shape, bound, k)  # traced (and checked) always
        if bound == 0:  # no body runs: the result is init, and nothing hoisted from the body is computed
            return unflatten(init_shape, iter(init_nodes))
        if not hoisted:
            return unflatten(init_shape, iter([sibling(node, i) for i in range(len(init_nodes))]))
        # Work hoisted out of the body runs before the loop: put it all in a branch taken only
        # when the loop runs at least once, so a loop of zero iterations computes (and raises) nothing.
        first = _predicate(cond_fn(unflatten(init_shape, iter(init_nodes))), "the result of cond_fn")

        def run(*carry: Tensor) -> tuple[Tensor, ...]:
            inner, _ = _loop(cond_fn, body_fn, [t.node for t in carry], init_shape, bound, k)
            return tuple(Tensor(sibling(inner, i)) for i in range(len(carry)))

        results = cond(Tensor(first), run, lambda *carry: carry, *map(Tensor, init_nodes))
    return unflatten(init_shape, iter([t.node for t in results]))


def _loop(
    cond_fn: Callable[[Tree], object], body_fn: Callable[[Tree], Tree], init_nodes: list[Node], init_shape: Tree,
    bound: int | None, k: int,
) -> tuple[Node, bool]:  # fmt: skip
    """The while node (its first result) looping from init_nodes, and whether work was hoisted out of its body."""
    carries = _trace_vars("carry", [c.type for c in init_nodes])
    state = unflatten(init_shape, iter(carries))
    pred = _predicate(cond_fn(state), "the result of cond_fn")
    new_nodes, new_shape = flatten(body_fn(state), "the carry", [c.dtype for c in init_nodes])
    _check_same("carry", new_nodes, new_shape, init_nodes, init_shape)
    names = [f"carry{i}" for i in range(len(carries))]
    graph, _, closures = close_over(canonicalize([pred, *new_nodes]), carries, names)
    cond_body, body = split_body(graph)
    node = while_op(*init_nodes, *closures, cond_body=cond_body, body=body, n_carry=len(init_nodes),
                    max_iter=bound, checkpoint=k, output=0)  # fmt: skip
    return node, any(c.op.kind is not Kind.SOURCE for c in closures)  # type: ignore[attr-defined]  # Op records


__all__ = ["close_branches", "cond", "while_loop"]
