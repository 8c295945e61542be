"""Control flow: the types and the reference semantics of `cond` and `while_loop`.

Imports errors, shapes and ir. Like scan and fixed_point (ops/loops.py, which runs a
loop family and dispatches here), both are single-output nodes grouped in *families* of
siblings that differ only in `output`, and their Op records live in graphc.recurrence,
whose derivative rules transform the bodies with the autodiff engine.

    cond(pred, args..; true_body, false_body, output)
        Both bodies take (args..) and return results of the same types; `pred` is a bool
        scalar. Only the chosen body runs: true_body when pred is True.

    while_loop(init.., closures..; cond_body, body, n_carry, max_iter, checkpoint, output)
        cond_body: (carry.., closure..) -> (pred,), a bool scalar;
        body:      (carry.., closure..) -> (carry..).
        carry = init; while (max_iter is None or count < max_iter) and cond_body(carry):
        carry = body(carry). Reaching max_iter stops the loop and returns the carry it has
        (no error): at most max_iter evaluations of the body. `checkpoint` is the segment
        length of the gradient's recomputation (recurrence/while_rules.py).

Both bodies of a node take the same inputs (the same param nodes), so a body's params
stand for the node's inputs after `pred` (cond) or for all of them (while_loop).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from graphc.errors import DTypeError, GraphError, ShapeError
from graphc.ir import Graph
from graphc.shapes import BOOL, TensorType

RunBody = Callable[[Graph, Sequence[np.ndarray]], list[np.ndarray]]

CONTROL_OPS = ("cond", "while_loop")


def _check_inputs(what: str, body: Graph, types: Sequence[TensorType]) -> None:
    if len(body.inputs) != len(types):
        raise GraphError(f"the {what} takes {len(body.inputs)} inputs, the node gives {len(types)}")
    for k, (given, p) in enumerate(zip(types, body.inputs, strict=True)):
        if given.dtype != p.dtype:
            raise DTypeError(f"input {k} is {given}, the {what} expects {p.type}")
        if given.shape != p.shape:
            raise ShapeError(f"input {k} is {given}, the {what} expects {p.type}")


def _check_predicate(what: str, t: TensorType) -> None:
    if t.dtype != BOOL:
        raise DTypeError(f"{what} must be a bool scalar, got {t}")
    if t.shape != ():
        raise ShapeError(f"{what} must be a bool scalar (shape ()), got {t}")


def same_results(first: Sequence[TensorType], second: Sequence[TensorType], what: str = "branch") -> None:
    """Raise unless the two bodies return the same number of results of the same types."""
    if len(first) != len(second):
        raise GraphError(f"the true {what} returns {len(first)} results, the false {what} {len(second)}")
    for k, (a, b) in enumerate(zip(first, second, strict=True)):
        if a.dtype != b.dtype:
            raise DTypeError(f"result {k} is {a} in the true {what} but {b} in the false one; cast with .astype")
        if a.shape != b.shape:
            raise ShapeError(f"result {k} is {a} in the true {what} but {b} in the false one")


def cond_infer(pred: TensorType, *types: TensorType, true_body: Graph, false_body: Graph, output: int) -> TensorType:
    _check_predicate("the predicate of cond", pred)
    _check_inputs("true branch", true_body, types)
    _check_inputs("false branch", false_body, types)
    results = [o.type for o in true_body.outputs]
    same_results(results, [o.type for o in false_body.outputs])
    if not 0 <= output < len(results):
        raise GraphError(f"a cond with {len(results)} results has no result {output}")
    return results[output]


def while_infer(
    *types: TensorType, cond_body: Graph, body: Graph, n_carry: int, max_iter: int | None, checkpoint: int,
    output: int,
) -> TensorType:  # fmt: skip
    _check_inputs("loop body", body, types)
    _check_inputs("loop condition", cond_body, types)
    if not 0 <= n_carry <= len(types) or len(body.outputs) != n_carry or len(cond_body.outputs) != 1:
        raise GraphError(f"a while_loop of {n_carry} carries needs a body of {n_carry} results and one condition")
    _check_predicate("the loop condition", cond_body.outputs[0].type)
    for m in range(n_carry):
        if body.outputs[m].type != body.inputs[m].type:
            raise GraphError(f"the body returns carry {m} as {body.outputs[m].type}, it takes {body.inputs[m].type}")
    if max_iter is not None and max_iter < 0:
        raise GraphError(f"max_iter must be None or >= 0, got {max_iter}")
    if checkpoint < 1:
        raise GraphError(f"checkpoint must be >= 1, got {checkpoint}")
    if not 0 <= output < n_carry:
        raise GraphError(f"a while_loop with {n_carry} carries has no result {output}")
    return body.inputs[output].type


# --- reference semantics --------------------------------------------------------------------


def run_cond(args: Sequence[np.ndarray], run_body: RunBody, *, true_body: Graph, false_body: Graph) -> list[np.ndarray]:
    """Every result of the branch `args[0]` chooses, computed by `run_body` (the other branch never runs)."""
    chosen = true_body if bool(args[0]) else false_body
    return [np.array(v, copy=True) for v in run_body(chosen, list(args[1:]))]


def run_while(
    args: Sequence[np.ndarray], run_body: RunBody, *, cond_body: Graph, body: Graph, n_carry: int,
    max_iter: int | None, checkpoint: int,
) -> list[np.ndarray]:  # fmt: skip
    """The final carries: the body applied while the condition holds, at most max_iter times."""
    carries = [np.asarray(a) for a in args[:n_carry]]
    closures = list(args[n_carry:])
    count = 0
    while max_iter is None or count < max_iter:
        (go,) = run_body(cond_body, [*carries, *closures])
        if not bool(go):
            break
        carries = run_body(body, [*carries, *closures])
        count += 1
    return [np.array(c, copy=True) for c in carries]


__all__ = ["CONTROL_OPS", "cond_infer", "run_cond", "run_while", "same_results", "while_infer"]
