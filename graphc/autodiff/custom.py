"""Derivative control: gc.stop_gradient, @gc.custom_vjp and @gc.custom_jvp, and their lowering for compilation.

Imports errors, shapes, ir, ops, tensor and the two autodiff engines.

`stop_gradient(x)` is a primitive whose value is x and whose rules say "contributes zero".
The optimizer keeps it (a graph it returns can still be differentiated); gc.compile
replaces it by its operand before optimizing (`lower_transient`), so it costs nothing.

`@custom_vjp` / `@custom_jvp` trace the user's function once per call into a `custom` node
holding two graphs: the primal `body` (params a0, a1, ... -> out) and the user's `rule`
traced on placeholders: for a vjp rule, one cotangent per argument from (ct, out, a..);
for a jvp rule, the tangent of out from (t0, t1, .., out, a..). The rule is checked
against the primal's types when the function is applied (a wrong count, shape or dtype
raises there, at the user's line). A rule is linear in its cotangent (or tangents), so
both directions come from one rule: applied to a batch of seeds (Jacobians) it is pushed
forward with the engine's JVP with respect to its placeholder, and the other direction is
its transpose, the engine's VJP with respect to that placeholder. A rule that is not
linear in the placeholder is refused when that happens. The rule's own graph is made of
ordinary ops, so derivatives of any order work: a second derivative differentiates the
rule's graph, and reaches the custom node again through `out`.

gc.compile inlines each custom node's body (`lower_transient`); gc.evaluate runs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from graphc.autodiff.jvp import jvp_graph
from graphc.autodiff.vjp import vjp_graph
from graphc.errors import DifferentiationError, DTypeError, GraphError, ShapeError, where
from graphc.ir import Graph, GraphRebuilder, Node, same_provenance, toposort
from graphc.ops import shape as sh
from graphc.ops.base import Kind, Op, zero
from graphc.ops.loops import run_graph, substitute
from graphc.ops.source import var_op
from graphc.shapes import TensorType, broadcast_shapes, is_float
from graphc.tensor import Tensor, TensorLike, as_tensor, building

CUSTOM_UID = -4
"""The `uid` of the placeholders of custom bodies and rules (deterministic, never a user var's)."""

# --- stop_gradient -------------------------------------------------------------------------------

stop_gradient_op = Op(
    "stop_gradient", lambda x: x, lambda x: np.asarray(x), vjp=(zero,), jvp=(zero,), kind=Kind.OPAQUE,
    transient=True,
)  # fmt: skip
"""stop_gradient(x): the value of x; its derivative is zero. gc.compile removes it."""


def stop_gradient(x: TensorLike) -> Tensor:
    """The value of `x` with a zero derivative: gradients do not flow through it (as jax.lax.stop_gradient)."""
    with building("stop_gradient", x):
        return Tensor(stop_gradient_op(as_tensor(x).node))


# --- the custom node ----------------------------------------------------------------------------


def placeholder(name: str, type_: TensorType) -> Node:
    return var_op(name=name, shape=type_.shape, dtype=type_.dtype, uid=CUSTOM_UID)


def _custom_infer(*types: TensorType, body: Graph, rule: Graph, direction: str, name: str) -> TensorType:
    if len(types) != len(body.inputs):
        raise GraphError(f"{name} takes {len(body.inputs)} arguments, got {len(types)}")
    for k, (given, p) in enumerate(zip(types, body.inputs, strict=True)):
        if given != p.type:
            raise ShapeError(f"argument {k} of {name} is {given}, the traced function takes {p.type}")
    return body.outputs[0].type


def _custom_eval(*args: np.ndarray, body: Graph, rule: Graph, direction: str, name: str) -> np.ndarray:
    return run_graph(body, [np.asarray(a) for a in args])[0]


def _rule_parts(
    node_out: Node, xs: Sequence[Node], rule: Graph, index: int, direction: str
) -> tuple[Node | None, Node]:  # fmt: skip
    """The rule's result for input `index` with the arguments and `out` put in, and the placeholder it is linear in."""
    n = len(xs)
    args, out_param = rule.inputs[-n:], rule.inputs[-n - 1]
    mapping = {**dict(zip(args, xs, strict=True)), out_param: node_out}
    if direction == "vjp":
        ct = rule.inputs[0]
        g = _output_for(rule, index, n)
        return (None if g is None else substitute([g], mapping)[0]), ct
    t = rule.inputs[index]
    return substitute([rule.outputs[0]], mapping)[0], t


def _output_for(rule: Graph, index: int, n: int) -> Node | None:
    """A vjp rule's cotangent for argument `index` (None: it said "zero")."""
    output = rule.outputs[index]
    return None if output.op is var_op and output.attr("name") == "zero" else output


def _linear(result: Node | None, placeholders: Sequence[Node], name: str) -> Node | None:
    """`result`, refused when it still depends on a placeholder (the rule was not linear in it)."""
    if result is None:
        return None
    reached = {id(n) for n in toposort([result])}
    if any(id(p) in reached for p in placeholders):
        message = f"the derivative rule of {name} is not linear in its cotangent or tangent, so it cannot be transposed"
        raise DifferentiationError(message)
    return result


def _custom_vjp(ct: Node, out: Node, *xs: Node, body: Graph, rule: Graph, direction: str, name: str,
                index: int) -> Node | None:  # fmt: skip
    """The cotangent of argument `index`: the vjp rule applied to ct, or the transposed jvp rule."""
    g, seed = _rule_parts(out, xs, rule, index, direction)
    if g is None:
        return None
    nb = ct.ndim - out.ndim
    placeholders = rule.inputs[: len(rule.inputs) - len(xs) - 1]
    if direction == "vjp":
        if nb == 0:
            return _linear(substitute([g], {seed: ct})[0], placeholders, name)
        return _linear(jvp_graph([g], [seed], [ct], nb=nb)[0], placeholders, name)
    return _linear(vjp_graph([g], [seed], [ct], nb=nb)[0], placeholders, name)


def _custom_jvp(t: Node, out: Node, *xs: Node, body: Graph, rule: Graph, direction: str, name: str,
                index: int) -> Node | None:  # fmt: skip
    """The tangent contribution of argument `index`: the jvp rule's part in t, or the transposed vjp rule."""
    g, seed = _rule_parts(out, xs, rule, index, direction)
    if g is None:
        return None
    nb = t.ndim - xs[index].ndim
    placeholders = rule.inputs[: len(rule.inputs) - len(xs) - 1]
    if direction == "vjp":
        return _linear(vjp_graph([g], [seed], [t], nb=nb)[0], placeholders, name)
    return _linear(jvp_graph([g], [seed], [t], nb=nb)[0], placeholders, name)


custom = Op("custom", _custom_infer, _custom_eval, vjp=(_custom_vjp,), jvp=(_custom_jvp,), variadic=True,
            transient=True)  # fmt: skip
"""custom(args..; body, rule, direction, name): a user function with its own derivative rule."""


# --- tracing ---------------------------------------------------------------------------------------


def _closed(graph_outputs: Sequence[Node], allowed: Sequence[Node], what: str) -> None:
    """The traced graph uses no var but its placeholders: a closed-over Tensor would escape its derivative."""
    allowed_ids = {id(p) for p in allowed}
    for node in toposort(list(graph_outputs)):
        if node.op is var_op and id(node) not in allowed_ids:
            raise GraphError(
                f"{what} uses the Tensor {node.attr('name')!r} ({node.type}{where(node.loc)}) without taking it as "
                "an argument: pass every Tensor it depends on as an argument, so its derivative can reach it"
            )


def _as_output(value: object, what: str) -> Node:
    if not isinstance(value, Tensor):
        raise TypeError(f"{what} must return one Tensor, got {type(value).__name__}")
    return value.node


def _trace_body(fn: Callable[..., object], name: str, args: Sequence[Node], kwargs: dict) -> Graph:
    params = [placeholder(f"a{i}", a.type) for i, a in enumerate(args)]
    out = _as_output(fn(*map(Tensor, params), **kwargs), name)
    _closed([out], params, name)
    return Graph([out], params)


def _fitted(value: object, like: TensorType, what: str) -> Node:
    """A rule's result as a node of `like`'s type; ShapeError/DTypeError otherwise.

    A Tensor must have exactly that type; a number or an array (a constant such as 0.0)
    is broadcast to it.
    """
    t = value if isinstance(value, Tensor) else as_tensor(value, like.dtype)  # type: ignore[arg-type]  # a rule returns anything
    if t.dtype != like.dtype:
        raise DTypeError(f"{what} is {t.node.type}, expected {like}: return it in the dtype of what it stands for")
    if t.shape != like.shape:
        if isinstance(value, Tensor) or not _broadcasts(t.shape, like.shape):
            raise ShapeError(f"{what} is {t.node.type}, expected {like}")
        return sh.broadcast_to(t.node, shape=like.shape)
    return t.node


def _broadcasts(shape: tuple, target: tuple) -> bool:
    try:
        return broadcast_shapes(shape, target) == target
    except ShapeError:
        return False


def _trace_vjp_rule(rule: Callable[..., object], name: str, body: Graph, kwargs: dict) -> Graph:
    out = body.outputs[0]
    ct = placeholder("ct", out.type)
    out_param = placeholder("out", out.type)
    args = [placeholder(f"a{i}", p.type) for i, p in enumerate(body.inputs)]
    result = rule(Tensor(ct), Tensor(out_param), *map(Tensor, args), **kwargs)
    if type(result) not in (list, tuple) or len(result) != len(args):  # type: ignore[arg-type]
        raise TypeError(
            f"the vjp rule of {name} must return a list of {len(args)} cotangents (one per argument, None for zero), "
            f"got {type(result).__name__}" + (f" of {len(result)}" if type(result) in (list, tuple) else "")  # type: ignore[arg-type]
        )
    outputs = []
    for i, (g, a) in enumerate(zip(result, args, strict=True)):  # type: ignore[call-overload]
        if g is None:
            outputs.append(placeholder("zero", a.type))
            continue
        if not is_float(a.dtype):
            raise DTypeError(f"the vjp rule of {name} returns a cotangent for argument {i} ({a.type}); use None")
        outputs.append(_fitted(g, a.type, f"the cotangent of argument {i} from the vjp rule of {name}"))
    _closed([o for o in outputs if not (o.op is var_op and o.attr("name") == "zero")], [ct, out_param, *args],
            f"the vjp rule of {name}")  # fmt: skip
    return Graph(outputs, [ct, out_param, *args])


def _trace_jvp_rule(rule: Callable[..., object], name: str, body: Graph, kwargs: dict) -> Graph:
    out = body.outputs[0]
    ts = [placeholder(f"t{i}", p.type) for i, p in enumerate(body.inputs)]
    out_param = placeholder("out", out.type)
    args = [placeholder(f"a{i}", p.type) for i, p in enumerate(body.inputs)]
    tangents = tuple(Tensor(t) if is_float(t.dtype) else None for t in ts)
    result = rule(tangents, Tensor(out_param), *map(Tensor, args), **kwargs)
    if result is None:
        raise TypeError(f"the jvp rule of {name} must return the tangent of the result (a Tensor), got None")
    tangent = _fitted(result, out.type, f"the tangent from the jvp rule of {name}")
    _closed([tangent], [*ts, out_param, *args], f"the jvp rule of {name}")
    return Graph([tangent], [*ts, out_param, *args])


class _Custom:
    """A function with a user-defined derivative rule (the object @gc.custom_vjp / @gc.custom_jvp return)."""

    direction = ""

    def __init__(self, fn: Callable[..., object]) -> None:
        if not callable(fn):
            raise TypeError(f"@gc.custom_{self.direction} decorates a function, got {type(fn).__name__}")
        self.fn = fn
        self.rule: Callable[..., object] | None = None
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", "the custom function")

    def _define(self, rule: Callable[..., object]) -> Callable[..., object]:
        if not callable(rule):
            raise TypeError(f"def{self.direction} takes the rule, a function; got {type(rule).__name__}")
        self.rule = rule
        return rule

    def __call__(self, *args: TensorLike, **kwargs: object) -> Tensor:
        """The function applied to Tensors (numbers and arrays become constants), as one `custom` node."""
        if self.rule is None:
            raise TypeError(f"{self.name} has no derivative rule: define it with @{self.name}.def{self.direction}")
        with building(self.name, *args):
            nodes = [as_tensor(a).node for a in args]
            body = _trace_body(self.fn, self.name, nodes, kwargs)
            trace = _trace_vjp_rule if self.direction == "vjp" else _trace_jvp_rule
            rule = trace(self.rule, self.name, body, kwargs)
            return Tensor(custom(*nodes, body=body, rule=rule, direction=self.direction, name=self.name))


class custom_vjp(_Custom):
    """A Tensor function with its own reverse-mode rule: `@f.defvjp def _(ct, out, *args): return [ct_arg, ...]`.

    The rule returns one cotangent per argument (None for zero), written in graphc ops,
    with each argument's shape and dtype. Forward mode uses the rule's transpose.
    """

    direction = "vjp"

    def defvjp(self, rule: Callable[..., object]) -> Callable[..., object]:
        return self._define(rule)


class custom_jvp(_Custom):
    """A Tensor function with its own forward-mode rule: `@f.defjvp def _(tangents, out, *args): return t_out`.

    `tangents` holds one Tensor per float argument (None for int and bool ones); the
    rule returns the tangent of the result, linear in them. Reverse mode uses its transpose.
    """

    direction = "jvp"

    def defjvp(self, rule: Callable[..., object]) -> Callable[..., object]:
        return self._define(rule)


# --- lowering for compilation --------------------------------------------------------------------


class _Lowering(GraphRebuilder):
    """Rebuilds a graph without its transient derivative-control nodes (bodies included); memoized."""

    def node(self, node: Node) -> Node:
        inputs = [self.nodes[i] for i in node.inputs]
        if node.op is stop_gradient_op:
            return inputs[0]
        if node.op is custom:
            body = self.graph(node.attr("body"))  # type: ignore[arg-type]
            return substitute(body.outputs, dict(zip(body.inputs, inputs, strict=True)))[0]
        attrs = {k: self.graph(v) if isinstance(v, Graph) else v for k, v in node.attrs}
        if all(a is b for a, b in zip(inputs, node.inputs, strict=True)) and all(
            attrs[k] is v for k, v in node.attrs
        ):  # fmt: skip
            return node
        with same_provenance(node):
            return Node.make(node.op, inputs, attrs)


def lower_transient(graph: Graph) -> Graph:
    """The graph with stop_gradient(x) replaced by x and each custom node by its body: what compiles."""
    if not any(n.op is stop_gradient_op or n.op is custom for n in _all_nodes(graph)):
        return graph
    return _Lowering().graph(graph)


def _all_nodes(graph: Graph) -> list[Node]:
    """The nodes of the graph and of every body inside it."""
    found: list[Node] = []
    stack, seen = [graph], {graph}
    while stack:
        for node in toposort([*stack.pop().outputs]):
            found.append(node)
            for _, value in node.attrs:
                if isinstance(value, Graph) and value not in seen:
                    seen.add(value)
                    stack.append(value)
    return found


__all__ = ["custom", "custom_jvp", "custom_vjp", "lower_transient", "stop_gradient", "stop_gradient_op"]
