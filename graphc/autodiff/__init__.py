"""Differentiation as graph transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian.

Imports errors, shapes, ir, ops, tensor. Each function takes Tensors and returns
ordinary Tensors (graphs), which can be composed, compiled and differentiated again.
Every Tensor argument is one Tensor or a tree of them: nested dicts, lists and tuples
(autodiff.trees), and results come back in the structure the arguments came in: a
single Tensor is never iterated into its elements.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import overload

import numpy as np

from graphc.autodiff.batched import jacobian_graphs
from graphc.autodiff.canonical import canonicalize
from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.sparse import SparseTensor, sparse_hessian_graph, sparse_jacobian_graph
from graphc.autodiff.sparsity import hessian_pattern, jacobian_pattern
from graphc.autodiff.trees import Form, Tree, check_vars, flatten, flatten_like, got, is_tensor
from graphc.autodiff.vjp import vjp_graph
from graphc.errors import DifferentiationError, ShapeError, located, user_location
from graphc.ir import Node, toposort
from graphc.ops import shape as sh
from graphc.ops.sparsity import PatternTooLarge
from graphc.shapes import Dim, format_shape, is_float, is_static
from graphc.tensor import Tensor, TensorLike, as_tensor, building, const

__all__ = [
    "SparseTensor", "grad", "hessian", "hessian_sparsity", "jacobian", "jacobian_sparsity", "jvp", "sparse_hessian",
    "sparse_jacobian", "value_and_grad", "vjp",
]  # fmt: skip

Tensors = Tree


def _wrt(wrt: object, who: str, what: str = "wrt") -> tuple[list[Tensor], Form]:
    """The wrt Tensors and their form: vars of a float dtype."""
    ws, form = flatten(wrt, who, what)
    check_vars(ws, form, who, what)
    for w in ws:
        if not is_float(w.dtype):
            error = DifferentiationError(f"cannot differentiate with respect to {w!r}: its dtype is {w.dtype}")
            raise located(error, who, user_location())
    return ws, form


def _scalar(f: object, who: str) -> Tensor:
    """`f` as a float scalar Tensor, or an error saying what to use instead."""
    if not is_tensor(f):
        raise TypeError(f"{who}: f must be one scalar Tensor, {got(f)}; for several outputs use gc.vjp or gc.jacobian")
    assert isinstance(f, Tensor)
    if f.shape != () or not is_float(f.dtype):
        error = DifferentiationError(f"{who} needs a float scalar, got {f!r}; use gc.vjp or gc.jacobian")
        raise located(error, who, user_location())
    return f


def zeros(shape: tuple[int, ...], dtype: np.dtype) -> Tensor:
    """A zero Tensor of this shape and dtype (one constant, broadcast)."""
    zero = const(np.zeros((), dtype=dtype))
    if shape == ():
        return zero
    return Tensor(sh.broadcast_to(zero.node, shape=shape))


def zeros_like(x: Tensor) -> Tensor:
    """A zero Tensor of x's shape and dtype (one constant, broadcast)."""
    return zeros(x.shape, x.dtype)


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


@overload
def grad(f: Tensor, wrt: Tensor, *, disconnected: str = "zero") -> Tensor: ...
@overload
def grad(f: Tensor, wrt: list[Tensor], *, disconnected: str = "zero") -> list[Tensor]: ...
@overload
def grad(f: Tensor, wrt: tuple[Tensor, ...], *, disconnected: str = "zero") -> tuple[Tensor, ...]: ...
@overload
def grad(f: Tensor, wrt: Tree, *, disconnected: str = "zero") -> Tree: ...


def grad(f: Tensor, wrt: Tensors, *, disconnected: str = "zero") -> Tree:
    """The gradient of the scalar `f` with respect to each of `wrt` (one Tensor per wrt, same shape).

    `wrt` is a Tensor or a tree of them (dicts, lists, tuples); the gradients come in its structure.
    """
    _check_disconnected(disconnected)
    f = _scalar(f, "gc.grad")
    ws, form = _wrt(wrt, "gc.grad")
    seed = const(np.ones((), dtype=f.dtype))
    return form.unflatten(_pull_back([f], ws, [seed], disconnected))


@overload
def value_and_grad(f: Tensor, wrt: Tensor, *, disconnected: str = "zero") -> tuple[Tensor, Tensor]: ...
@overload
def value_and_grad(f: Tensor, wrt: list[Tensor], *, disconnected: str = "zero") -> tuple[Tensor, list[Tensor]]: ...
@overload
def value_and_grad(
    f: Tensor, wrt: tuple[Tensor, ...], *, disconnected: str = "zero"
) -> tuple[Tensor, tuple[Tensor, ...]]: ...
@overload
def value_and_grad(f: Tensor, wrt: Tree, *, disconnected: str = "zero") -> tuple[Tensor, Tree]: ...


def value_and_grad(f: Tensor, wrt: Tensors, *, disconnected: str = "zero") -> tuple[Tensor, Tree]:
    """(f, gc.grad(f, wrt)): the scalar with its gradient, in the structure of `wrt`."""
    _check_disconnected(disconnected)
    f = _scalar(f, "gc.value_and_grad")
    ws, form = _wrt(wrt, "gc.value_and_grad")
    seed = const(np.ones((), dtype=f.dtype))
    return f, form.unflatten(_pull_back([f], ws, [seed], disconnected))


@overload
def vjp(outputs: Tensors, wrt: Tensor, cotangents: TensorLike, *, disconnected: str = "zero") -> Tensor: ...
@overload
def vjp(outputs: Tensors, wrt: list[Tensor], cotangents: Tree, *, disconnected: str = "zero") -> list[Tensor]: ...
@overload
def vjp(
    outputs: Tensors, wrt: tuple[Tensor, ...], cotangents: Tree, *, disconnected: str = "zero"
) -> tuple[Tensor, ...]: ...
@overload
def vjp(outputs: Tensors, wrt: Tree, cotangents: Tree, *, disconnected: str = "zero") -> Tree: ...


def vjp(outputs: Tensors, wrt: Tensors, cotangents: Tree, *, disconnected: str = "zero") -> Tree:
    """Reverse mode: for each wrt, sum_k ct_k · d(outputs_k)/d(wrt), in the form of `wrt`.

    `cotangents` has the form of `outputs`: one value for one output, else one per output.
    """
    _check_disconnected(disconnected)
    outs, out_form = flatten(outputs, "gc.vjp", "outputs")
    ws, form = _wrt(wrt, "gc.vjp")
    given = flatten_like(cotangents, out_form, "gc.vjp", "cotangents", "output")
    cts = [_seed(c, o, "gc.vjp", "cotangent") for c, o in zip(given, outs, strict=True)]
    return form.unflatten(_pull_back(outs, ws, cts, disconnected))


@overload
def jvp(outputs: Tensor, wrt: Tensors, tangents: Tree) -> Tensor: ...
@overload
def jvp(outputs: list[Tensor], wrt: Tensors, tangents: Tree) -> list[Tensor]: ...
@overload
def jvp(outputs: tuple[Tensor, ...], wrt: Tensors, tangents: Tree) -> tuple[Tensor, ...]: ...
@overload
def jvp(outputs: Tree, wrt: Tensors, tangents: Tree) -> Tree: ...


def jvp(outputs: Tensors, wrt: Tensors, tangents: Tree) -> Tree:
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
        t = value if is_tensor(value) else as_tensor(value, like.dtype)  # type: ignore[arg-type]  # checked above
        assert isinstance(t, Tensor)
        if t.shape != like.shape:
            raise ShapeError(f"a {what} must have the shape of {like!r}, got {t.shape}")
        if t.dtype != like.dtype:
            t = t.astype(like.dtype)
        return t


@overload
def jacobian(f: Tensor, x: Tensor, mode: str = "auto") -> Tensor: ...
@overload
def jacobian(f: Tensor, x: list[Tensor], mode: str = "auto") -> list[Tensor]: ...
@overload
def jacobian(f: list[Tensor], x: Tensor, mode: str = "auto") -> list[Tensor]: ...
@overload
def jacobian(f: Tree, x: Tree, mode: str = "auto") -> Tree: ...


def jacobian(f: Tensors, x: Tensors, mode: str = "auto") -> Tree:
    """d f / d x with shape f.shape + x.shape, as one batched graph (trees of f and x give nested results).

    mode="rev" pulls back the whole basis of f's space at once (one batched VJP, which
    gives the Jacobians for every x together), mode="fwd" pushes forward the basis of
    each x's space (one batched JVP per x, for every f together); "auto" picks reverse
    for an f with no more elements than all the x together (m <= n), forward otherwise.
    The graph's size does not grow with m or n: the seed is structure (autodiff/seeds.py).
    A list of wrt gives a list (one Jacobian per wrt); a list of f gives a list of those.
    """
    if mode not in ("auto", "rev", "fwd"):
        raise ValueError(f"mode must be 'auto', 'rev' or 'fwd', not {mode!r}")
    fs, f_form = flatten(f, "gc.jacobian", "f")
    for fi in fs:
        if not is_float(fi.dtype):
            raise DifferentiationError(f"jacobian needs a float output, got {fi!r}")
    xs, x_form = _wrt(x, "gc.jacobian", "x")
    table = _jacobians(_forward(fs), xs, mode)
    rows = [x_form.unflatten(row) for row in table]
    return f_form.unflatten(rows)


def _jacobians(fs: list[Node], xs: list[Tensor], mode: str) -> list[list[Tensor]]:
    """J[i][j] = d fs[i] / d xs[j] as Tensors (zeros where there is no dependence); fs in their stable forms."""
    table: list[list[Tensor | None]] = [[None] * len(xs) for _ in fs]
    for chosen in ("rev", "fwd"):
        rows = [i for i, f in enumerate(fs) if _mode_for(f, xs, mode) == chosen]
        if not rows:
            continue
        found = jacobian_graphs([fs[i] for i in rows], [x.node for x in xs], chosen)
        for i, row in zip(rows, found, strict=True):
            table[i] = [_zero_if_none(node, fs[i], x) for node, x in zip(row, xs, strict=True)]
    return table  # type: ignore[return-value]


def _mode_for(f: Node, xs: list[Tensor], mode: str) -> str:
    """The direction whose seed basis is known: reverse spans f's space, forward each x's.

    "auto" picks reverse when f has no more elements than all the x together; with named
    dimensions it picks the one side whose size is known. A basis whose size depends on a
    name is an error: the seed would be a constant of unknown size.
    """
    m = f.type.size
    named_x = next((x for x in xs if isinstance(x.size, Dim)), None)
    if mode == "auto":
        if isinstance(m, Dim) or named_x is not None:
            mode = "fwd" if isinstance(m, Dim) else "rev"
        else:
            mode = "rev" if m <= sum(int(x.size) for x in xs) else "fwd"
    if mode == "rev" and isinstance(m, Dim):
        _named_basis(mode, "output", f.shape, m)
    if mode == "fwd" and named_x is not None:
        _named_basis(mode, "input", named_x.shape, named_x.size)
    return mode


def _named_basis(mode: str, what: str, shape: tuple, size: object) -> None:
    message = (
        f"mode={mode!r} seeds one direction per element of the {what}, of shape {format_shape(shape)}: "
        f"their number, {size}, is named (known only at call time), so the Jacobian's size would be too"
    )
    raise located(ShapeError(message), "gc.jacobian", user_location())


def _zero_if_none(node: Node | None, f: Node, x: Tensor) -> Tensor:
    return Tensor(node) if node is not None else zeros(f.shape + x.shape, f.dtype)


@overload
def hessian(f: Tensor, x: Tensor) -> Tensor: ...
@overload
def hessian(f: Tensor, x: list[Tensor]) -> list[list[Tensor]]: ...
@overload
def hessian(f: Tensor, x: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], ...]: ...
@overload
def hessian(f: Tensor, x: Tree) -> Tree: ...


def hessian(f: Tensor, x: Tensors) -> Tree:
    """d²f/dx² with shape x.shape + x.shape: forward mode over the reverse-mode gradient.

    A list of wrt gives a nested list: H[i][j] has shape x_i.shape + x_j.shape (one
    batched JVP per x_j, through every gradient at once).
    """
    f = _scalar(f, "gc.hessian")
    xs, form = _wrt(x, "gc.hessian", "x")
    grads = _pull_back([f], xs, [const(np.ones((), dtype=f.dtype))], "zero")
    table = _jacobians(_forward(grads), xs, "fwd")
    return form.unflatten([form.unflatten(row) for row in table])


# --- sparsity -------------------------------------------------------------------------------------------


def _one_float(f: object, who: str) -> Tensor:
    """`f` as one float Tensor (the function whose sparse Jacobian is asked for)."""
    if not is_tensor(f):
        raise TypeError(f"{who}: f must be one Tensor, {got(f)}")
    assert isinstance(f, Tensor)
    if not is_float(f.dtype):
        error = DifferentiationError(f"{who} needs a float function, got {f!r}")
        raise located(error, who, user_location())
    return _fixed_shape(f, who, "f")


def _fixed_shape(t: Tensor, who: str, what: str) -> Tensor:
    """t, if its shape has no named dimension: a sparsity pattern is found when building, entry by entry."""
    if not is_static(t.shape):
        message = (
            f"needs fixed shapes: {what} has shape {format_shape(t.shape)}, whose size is named (known "
            "only at call time), and the pattern is found when building; use gc.jacobian, or fix the size"
        )
        raise located(ShapeError(message), who, user_location())
    return t


def _one_wrt(x: object, who: str) -> Tensor:
    """`x` as one float var."""
    if not is_tensor(x):
        raise TypeError(f"{who}: x must be one var Tensor (made with gc.var), {got(x)}")
    (w,), _ = _wrt(x, who, "x")
    return _fixed_shape(w, who, "x")


@contextlib.contextmanager
def _pattern_limit(who: str) -> Iterator[None]:
    """A pattern over ops.sparsity.MAX_ENTRIES (2**28) entries raises at the user's line, naming `who` and the node."""
    try:
        yield
    except PatternTooLarge as exc:
        raise located(exc, who, user_location()) from None


def jacobian_sparsity(f: Tensor, x: Tensor) -> object:
    """The structural pattern of d f / d x: a scipy.sparse.csr_array of bools, shape (f.size, x.size).

    Conservative (an entry that some input can make nonzero is always there), and exact for
    elementwise ops, broadcasting, slices, concatenation, gathers and scatters with constant
    indices, reductions and matmul (a constant operand's zeros count); a cond's is the union
    of its branches'; loops (scan, while_loop, fixed_point) are dense. Found from the graph.
    A pattern that would store more than 2**28 entries raises GraphError before it is built.
    """
    f = _one_float(f, "gc.jacobian_sparsity")
    w = _one_wrt(x, "gc.jacobian_sparsity")
    with _pattern_limit("gc.jacobian_sparsity"):
        return jacobian_pattern(_forward([f])[0], w.node)


def hessian_sparsity(f: Tensor, x: Tensor) -> object:
    """The structural pattern of d²f / dx² for a scalar f: a symmetric csr_array of bools, shape (x.size, x.size)."""
    f = _scalar(f, "gc.hessian_sparsity")
    w = _one_wrt(x, "gc.hessian_sparsity")
    with _pattern_limit("gc.hessian_sparsity"):
        return hessian_pattern(_gradient(f, w), w.node)


def _gradient(f: Tensor, w: Tensor) -> Node:
    """The gradient graph of f with respect to w, in its stable form (as gc.hessian differentiates it)."""
    (g,) = _pull_back([f], [w], [const(np.ones((), dtype=f.dtype))], "zero")
    return _forward([g])[0]


def sparse_jacobian(f: Tensor, x: Tensor, mode: str = "auto") -> SparseTensor:
    """d f / d x as a SparseTensor of shape (f.size, x.size): pattern, coloring, one compressed VJP or JVP.

    mode="fwd" compresses columns (one JVP per color), "rev" rows (one VJP per color);
    "auto" takes the one needing fewer colors (forward on a tie). Compiled, the result is a
    scipy.sparse.csr_array; `values` (one per stored entry, in CSR order) is a Tensor.
    """
    if mode not in ("auto", "rev", "fwd"):
        raise ValueError(f"mode must be 'auto', 'rev' or 'fwd', not {mode!r}")
    f = _one_float(f, "gc.sparse_jacobian")
    w = _one_wrt(x, "gc.sparse_jacobian")
    with _pattern_limit("gc.sparse_jacobian"):
        return sparse_jacobian_graph(_forward([f])[0], w.node, mode)


def sparse_hessian(f: Tensor, x: Tensor) -> SparseTensor:
    """d²f / dx² for a scalar f as a SparseTensor of shape (x.size, x.size), by a symmetric (star) coloring."""
    f = _scalar(f, "gc.sparse_hessian")
    w = _one_wrt(x, "gc.sparse_hessian")
    with _pattern_limit("gc.sparse_hessian"):
        return sparse_hessian_graph(_gradient(f, w), w.node)
