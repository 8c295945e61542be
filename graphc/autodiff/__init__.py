"""Differentiation as graph transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian.

Imports errors, shapes, ir, ops, tensor. Each function takes Tensors and returns
ordinary Tensors (graphs), which can be composed, compiled and differentiated again.
Every Tensor argument is one Tensor or a tree of them: nested dicts, lists and tuples
(autodiff.trees), and results come back in the structure the arguments came in: a
single Tensor is never iterated into its elements.
"""

from __future__ import annotations

import numpy as np

from graphc.autodiff.canonical import canonicalize
from graphc.autodiff.jacobian import jacobian_graph  # before `def jacobian`, which must win the name
from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.trees import Form, Tree, check_vars, flatten, flatten_like, got, is_tensor
from graphc.autodiff.vjp import vjp_graph
from graphc.errors import DifferentiationError, ShapeError, located, user_location
from graphc.ir import Node, toposort
from graphc.ops import shape as sh
from graphc.shapes import Dim, format_shape, is_float
from graphc.tensor import Tensor, as_tensor, building, const

__all__ = ["grad", "hessian", "jacobian", "jvp", "value_and_grad", "vjp"]

Tensors = Tree


def _wrt(wrt: object, who: str, what: str = "wrt") -> tuple[list[Tensor], Form]:
    """The wrt Tensors and their form: vars of a float dtype."""
    ws, form = flatten(wrt, who, what)
    check_vars(ws, form, who, what)
    for w in ws:
        if not is_float(w.dtype):
            raise DifferentiationError(f"cannot differentiate with respect to {w!r}: its dtype is {w.dtype}")
    return ws, form


def _scalar(f: object, who: str) -> Tensor:
    """`f` as a float scalar Tensor, or an error saying what to use instead."""
    if not is_tensor(f):
        raise TypeError(f"{who}: f must be one scalar Tensor, {got(f)}; for several outputs use gc.vjp or gc.jacobian")
    assert isinstance(f, Tensor)
    if f.shape != () or not is_float(f.dtype):
        raise DifferentiationError(f"{who} needs a float scalar, got {f!r}; use gc.vjp or gc.jacobian")
    return f


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


def _forward(outs: list[Tensor]) -> list[Node]:
    """The nodes to differentiate: the outputs in their stable forms (autodiff/canonical.py)."""
    return canonicalize([o.node for o in outs])


def _pull_back(outs: list[Tensor], ws: list[Tensor], cts: list[Tensor], disconnected: str) -> list[Tensor]:
    """For each wrt, sum_k ct_k · d(outs_k)/d(wrt) (zeros where it does not depend on it)."""
    results = vjp_graph(_forward(outs), [w.node for w in ws], [c.node for c in cts])
    return [_finish(r, w, outs, disconnected) for r, w in zip(results, ws, strict=True)]


def grad(f: Tensor, wrt: Tensors, *, disconnected: str = "zero") -> Tree:
    """The gradient of the scalar `f` with respect to each of `wrt` (one Tensor per wrt, same shape).

    `wrt` is a Tensor or a tree of them (dicts, lists, tuples); the gradients come in its structure.
    """
    _check_disconnected(disconnected)
    f = _scalar(f, "gc.grad")
    ws, form = _wrt(wrt, "gc.grad")
    seed = const(np.ones((), dtype=f.dtype))
    return form.unflatten(_pull_back([f], ws, [seed], disconnected))


def value_and_grad(
    f: Tensor, wrt: Tensors, *, disconnected: str = "zero"
) -> tuple[Tensor, Tree]:  # fmt: skip
    """(f, gc.grad(f, wrt)): the scalar with its gradient, in the structure of `wrt`."""
    _check_disconnected(disconnected)
    f = _scalar(f, "gc.value_and_grad")
    ws, form = _wrt(wrt, "gc.value_and_grad")
    seed = const(np.ones((), dtype=f.dtype))
    return f, form.unflatten(_pull_back([f], ws, [seed], disconnected))


def vjp(outputs: Tensors, wrt: Tensors, cotangents: object, *, disconnected: str = "zero") -> Tree:
    """Reverse mode: for each wrt, sum_k ct_k · d(outputs_k)/d(wrt), in the form of `wrt`.

    `cotangents` has the form of `outputs`: one value for one output, else one per output.
    """
    _check_disconnected(disconnected)
    outs, out_form = flatten(outputs, "gc.vjp", "outputs")
    ws, form = _wrt(wrt, "gc.vjp")
    given = flatten_like(cotangents, out_form, "gc.vjp", "cotangents", "output")
    cts = [_seed(c, o, "gc.vjp", "cotangent") for c, o in zip(given, outs, strict=True)]
    return form.unflatten(_pull_back(outs, ws, cts, disconnected))


def jvp(outputs: Tensors, wrt: Tensors, tangents: object) -> Tree:
    """Forward mode: for each output, sum_j d(output)/d(wrt_j) · t_j, in the form of `outputs`.

    `tangents` has the form of `wrt`: one value for one wrt, else one per wrt.
    """
    outs, out_form = flatten(outputs, "gc.jvp", "outputs")
    ws, form = _wrt(wrt, "gc.jvp")
    given = flatten_like(tangents, form, "gc.jvp", "tangents", "wrt")
    ts = [_seed(t, w, "gc.jvp", "tangent") for t, w in zip(given, ws, strict=True)]
    results = jvp_graph(_forward(outs), [w.node for w in ws], [t.node for t in ts])
    tensors = [Tensor(r) if r is not None else zeros_like(o) for r, o in zip(results, outs, strict=True)]
    return out_form.unflatten(tensors)


def _seed(value: object, like: Tensor, who: str, what: str) -> Tensor:
    """A cotangent or tangent for `like`: a Tensor, an array or a number of like's shape."""
    if not is_tensor(value) and np.asarray(value).dtype == object:
        raise TypeError(f"{who}: a {what} must be a Tensor, an array or a number, {got(value)}")
    with building(what, value):
        t = value if is_tensor(value) else as_tensor(value, like.dtype)
        assert isinstance(t, Tensor)
        if t.shape != like.shape:
            raise ShapeError(f"a {what} must have the shape of {like!r}, got {t.shape}")
        if t.dtype != like.dtype:
            t = t.astype(like.dtype)
        return t


def jacobian(f: Tensors, x: Tensors, mode: str = "auto") -> Tree:
    """d f / d x with shape f.shape + x.shape, as one batched graph (trees of f and x give nested results).

    mode="rev" pulls back the whole basis of f's space at once (one batched VJP),
    mode="fwd" pushes forward the basis of x's space (one batched JVP); "auto"
    picks reverse when f has no more elements than x (m <= n), forward otherwise.
    The graph's size does not grow with m or n: the seed is one constant.
    A list of wrt gives a list (one Jacobian per wrt); a list of f gives a list of those.
    """
    if mode not in ("auto", "rev", "fwd"):
        raise ValueError(f"mode must be 'auto', 'rev' or 'fwd', not {mode!r}")
    fs, f_form = flatten(f, "gc.jacobian", "f")
    for fi in fs:
        if not is_float(fi.dtype):
            raise DifferentiationError(f"jacobian needs a float output, got {fi!r}")
    xs, x_form = _wrt(x, "gc.jacobian", "x")
    rows = [x_form.unflatten([_jacobian(fi, xj, mode) for xj in xs]) for fi in _forward(fs)]
    return f_form.unflatten(rows)  # type: ignore[return-value]


def _mode(f: Node, x: Tensor, mode: str) -> str:
    """The direction whose seed basis is known: reverse spans f's space, forward x's.

    "auto" picks reverse when f has no more elements than x; with named dimensions it
    picks the one side whose size is known. A basis whose size depends on a name is an
    error: the seed would be a constant of unknown size.
    """
    m, n = f.type.size, x.size
    if mode == "auto":
        if isinstance(m, Dim) or isinstance(n, Dim):
            mode = "fwd" if isinstance(m, Dim) else "rev"
        else:
            mode = "rev" if m <= n else "fwd"
    size, shape, what = (m, f.shape, "output") if mode == "rev" else (n, x.shape, "input")
    if isinstance(size, Dim):
        message = (
            f"mode={mode!r} seeds one direction per element of the {what}, of shape {format_shape(shape)}: "
            f"their number, {size}, is named (known only at call time), so the Jacobian's size would be too"
        )
        raise located(ShapeError(message), "gc.jacobian", user_location())
    return mode


def _jacobian(f: Node, x: Tensor, mode: str) -> Tensor:
    """The Tensor of d f/d x (f already in its stable form)."""
    mode = _mode(f, x, mode)
    result = jacobian_graph(f, x.node, mode)
    if result is None:
        return zeros_like(Tensor(sh.broadcast_to(const(np.zeros((), f.dtype)).node, shape=f.shape + x.shape)))
    return Tensor(result)


def hessian(f: Tensor, x: Tensors) -> Tree:
    """d²f/dx² with shape x.shape + x.shape: forward mode over the reverse-mode gradient.

    A list of wrt gives a nested list: H[i][j] has shape x_i.shape + x_j.shape.
    """
    f = _scalar(f, "gc.hessian")
    xs, form = _wrt(x, "gc.hessian", "x")
    grads = _pull_back([f], xs, [const(np.ones((), dtype=f.dtype))], "zero")
    rows = [form.unflatten([_jacobian(g, xj, "fwd") for xj in xs]) for g in _forward(grads)]
    return form.unflatten(rows)  # type: ignore[return-value]
