"""Differentiation as graph transforms: grad, vjp, jvp, jacobian, hessian.

Imports errors, shapes, ir, ops, tensor. Each function takes Tensors and returns
ordinary Tensors (graphs), which can be composed, compiled and differentiated again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.autodiff.jacobian import jacobian_graph  # before `def jacobian`, which must win the name
from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.vjp import vjp_graph
from graphc.errors import DifferentiationError, ShapeError
from graphc.ir import Node, toposort
from graphc.ops import shape as sh
from graphc.shapes import is_float
from graphc.tensor import Tensor, as_tensor, building, const

__all__ = ["grad", "hessian", "jacobian", "jvp", "vjp"]


def _tensors(value: Tensor | Sequence[Tensor], what: str) -> tuple[list[Tensor], bool]:
    """The values as a list of Tensors, and whether a single Tensor was given."""
    if isinstance(value, Tensor):
        return [value], True
    if isinstance(value, (list, tuple)) and all(isinstance(v, Tensor) for v in value):
        return list(value), False
    raise TypeError(f"{what} must be a Tensor or a list of Tensors, got {type(value).__name__}")


def _check_wrt(wrt: list[Tensor]) -> None:
    for w in wrt:
        if not is_float(w.dtype):
            raise DifferentiationError(f"cannot differentiate with respect to {w!r}: its dtype is {w.dtype}")


def zeros_like(x: Tensor) -> Tensor:
    """A zero Tensor of x's shape and dtype (one constant, broadcast)."""
    zero = const(np.zeros((), dtype=x.dtype))
    if x.shape == ():
        return zero
    return Tensor(sh.broadcast_to(zero.node, shape=x.shape))


def _finish(result: Node | None, like: Tensor, outputs: list[Tensor], disconnected: str) -> Tensor:
    if result is not None:
        return Tensor(result)
    if disconnected == "raise":
        reached = {id(n) for n in toposort([o.node for o in outputs])}
        if id(like.node) not in reached:
            raise DifferentiationError(f"the outputs do not depend on {like!r} (disconnected='raise')")
    return zeros_like(like)


def _check_disconnected(disconnected: str) -> None:
    if disconnected not in ("zero", "raise"):
        raise ValueError(f"disconnected must be 'zero' or 'raise', not {disconnected!r}")


def grad(f: Tensor, wrt: Tensor | Sequence[Tensor], *, disconnected: str = "zero") -> Tensor | list[Tensor]:
    """The gradient of the scalar `f` with respect to each of `wrt` (one Tensor per wrt, same shape)."""
    _check_disconnected(disconnected)
    f = as_tensor(f)
    if f.shape != () or not is_float(f.dtype):
        raise DifferentiationError(f"grad needs a float scalar, got {f!r}; use gc.vjp or gc.jacobian")
    ws, single = _tensors(wrt, "wrt")
    _check_wrt(ws)
    seed = const(np.ones((), dtype=f.dtype))
    results = vjp_graph([f.node], [w.node for w in ws], [seed.node])
    grads = [_finish(r, w, [f], disconnected) for r, w in zip(results, ws, strict=True)]
    return grads[0] if single else grads


def vjp(
    outputs: Sequence[Tensor], wrt: Sequence[Tensor], cotangents: Sequence[object], *, disconnected: str = "zero"
) -> list[Tensor]:
    """Reverse mode: for each wrt, sum_k ct_k · d(outputs_k)/d(wrt), one Tensor per wrt."""
    _check_disconnected(disconnected)
    outs, _ = _tensors(list(outputs), "outputs")
    ws, _ = _tensors(list(wrt), "wrt")
    _check_wrt(ws)
    cts = [_seed(c, o, "cotangent") for c, o in zip(cotangents, outs, strict=True)]
    results = vjp_graph([o.node for o in outs], [w.node for w in ws], [c.node for c in cts])
    return [_finish(r, w, outs, disconnected) for r, w in zip(results, ws, strict=True)]


def jvp(outputs: Sequence[Tensor], wrt: Sequence[Tensor], tangents: Sequence[object]) -> list[Tensor]:
    """Forward mode: for each output, sum_j d(output)/d(wrt_j) · t_j, one Tensor per output."""
    outs, _ = _tensors(list(outputs), "outputs")
    ws, _ = _tensors(list(wrt), "wrt")
    _check_wrt(ws)
    ts = [_seed(t, w, "tangent") for t, w in zip(tangents, ws, strict=True)]
    results = jvp_graph([o.node for o in outs], [w.node for w in ws], [t.node for t in ts])
    return [Tensor(r) if r is not None else zeros_like(o) for r, o in zip(results, outs, strict=True)]


def _seed(value: object, like: Tensor, what: str) -> Tensor:
    with building(what, value):
        t = as_tensor(value, like.dtype) if not isinstance(value, Tensor) else value
        if t.shape != like.shape:
            raise ShapeError(f"a {what} must have the shape of {like!r}, got {t.shape}")
        if t.dtype != like.dtype:
            t = t.astype(like.dtype)
        return t


def jacobian(f: Tensor, x: Tensor, mode: str = "auto") -> Tensor:
    """d f / d x with shape f.shape + x.shape, as one batched graph.

    mode="rev" pulls back the whole basis of f's space at once (one batched VJP),
    mode="fwd" pushes forward the basis of x's space (one batched JVP); "auto"
    picks reverse when f has no more elements than x (m <= n), forward otherwise.
    The graph's size does not grow with m or n: the seed is one constant.
    """
    f = as_tensor(f)
    if not is_float(f.dtype):
        raise DifferentiationError(f"jacobian needs a float output, got {f!r}")
    _check_wrt([x])
    if mode not in ("auto", "rev", "fwd"):
        raise ValueError(f"mode must be 'auto', 'rev' or 'fwd', not {mode!r}")
    if mode == "auto":
        mode = "rev" if f.size <= x.size else "fwd"
    result = jacobian_graph(f.node, x.node, mode)
    if result is None:
        return zeros_like(Tensor(sh.broadcast_to(const(np.zeros((), f.dtype)).node, shape=f.shape + x.shape)))
    return Tensor(result)


def hessian(f: Tensor, x: Tensor) -> Tensor:
    """d²f/dx² with shape x.shape + x.shape: forward mode over the reverse-mode gradient."""
    g = grad(f, x)
    assert isinstance(g, Tensor)
    return jacobian(g, x, mode="fwd")
