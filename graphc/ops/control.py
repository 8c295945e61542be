"""Control primitives: `fused`, a region of the graph held as a body Graph and run as one node.

Imports errors, shapes, ir and ops.base/ops.source. The fusion pass (passes/fuse.py) builds
`fused` nodes; backends render the body their own way (NumPy with `out=` buffers, LLVM as
one loop nest). The body's inputs are `param` vars standing for the node's inputs, in
order; its one output is the node's value.

`fused` has no derivative rules: fusion runs after differentiation (DESIGN.md), so the
autodiff engine never meets a fused node in a graph it builds; differentiating an
optimized graph that holds one raises DifferentiationError, as for any op without rules.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from graphc.errors import DTypeError, GraphError, ShapeError
from graphc.ir import Graph, Node
from graphc.ops.base import Kind, Op
from graphc.ops.source import var_op
from graphc.shapes import Shape, TensorType

PARAM_UID = -1
"""The `uid` of body parameters: user vars count up from 0, so a parameter is never a user var.

Parameters are deterministic (name `p<i>`, the input's type, this uid), so equal regions
build equal bodies and intern to one fused node, and printouts do not depend on how many
vars were made before.
"""


def param(index: int, type_: TensorType) -> Node:
    """The body var standing for input `index` of a fused node."""
    return _param(index, type_.shape, type_.dtype)


@functools.lru_cache(maxsize=4096)
def _param(index: int, shape: Shape, dtype: np.dtype) -> Node:
    """param's node (interned, so the cache only saves inferring its type again: fusion asks per region input)."""
    return var_op(name=f"p{index}", shape=shape, dtype=dtype, uid=PARAM_UID)


def is_param(node: Node) -> bool:
    return node.op is var_op and node.attr("uid") == PARAM_UID


def _fused_infer(*types: TensorType, body: Graph) -> TensorType:
    if len(body.outputs) != 1:
        raise GraphError(f"a fused body has one output, got {len(body.outputs)}")
    if len(types) != len(body.inputs):
        raise GraphError(f"the body takes {len(body.inputs)} inputs, got {len(types)}")
    for k, (given, p) in enumerate(zip(types, body.inputs, strict=True)):
        if not is_param(p):
            raise GraphError(f"body input {k} must be a parameter var, got {p.op.name}")
        if given.dtype != p.dtype:
            raise DTypeError(f"input {k} is {given}, the body expects {p.type}")
        if given.shape != p.shape:
            raise ShapeError(f"input {k} is {given}, the body expects {p.type}")
    return body.outputs[0].type


def run_body(body: Graph, args: Sequence[np.ndarray]) -> np.ndarray:
    """The body's output with each op's reference eval, exactly as the interpreter runs the nodes."""
    values: dict[Node, np.ndarray] = dict(zip(body.inputs, args, strict=True))
    for node in body.nodes:
        if node in values:
            continue
        inputs = [values[i] for i in node.inputs]
        values[node] = np.asarray(node.op.eval(*inputs, **node.params))  # type: ignore[attr-defined]
    return values[body.outputs[0]]


def _fused_eval(*args: np.ndarray, body: Graph) -> np.ndarray:
    return run_body(body, [np.asarray(a) for a in args])


fused = Op("fused", _fused_infer, _fused_eval, kind=Kind.OPAQUE)
"""fused(*inputs; body): the body graph evaluated on the inputs. No derivative rules (see above)."""

__all__ = ["PARAM_UID", "fused", "is_param", "param", "run_body"]
