"""The argument forms of grad/vjp/jvp/jacobian/hessian: one Tensor, or a list or tuple of Tensors.

Imports errors, ir, tensor. `flatten` turns what the user passed into a list of
Tensors and a `Form`; `Form.unflatten` gives results back in the same form, so a
single Tensor in means a single Tensor out and is never iterated into its elements.
Anything else is a TypeError naming the argument. Parameter trees (dicts, nesting)
will slot in here: a tree is one more kind of Form, flattened the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from graphc.errors import DifferentiationError, located, user_location, where
from graphc.ir import Node
from graphc.tensor import Tensor, TensorLike

T = TypeVar("T")


@dataclass(frozen=True)
class Form:
    """How an argument was given: a single Tensor (`kind` is None), or a list or tuple of `n`."""

    kind: type | None
    n: int

    @property
    def single(self) -> bool:
        return self.kind is None

    def unflatten(self, leaves: Sequence[T]) -> T | list[T] | tuple[T, ...]:
        """`leaves` (one per flattened Tensor) in this form."""
        if self.kind is None:
            return leaves[0]
        if self.kind is tuple:
            return tuple(leaves)
        return list(leaves)


def is_tensor(value: object) -> bool:
    """True for a Tensor (or a subclass) holding a Node; an object whose __class__ lies is not one."""
    return issubclass(type(value), Tensor) and isinstance(getattr(value, "node", None), Node)


def flatten(value: object, who: str, what: str) -> tuple[list[Tensor], Form]:
    """The Tensors of `value` (a Tensor, or a list or tuple of them) and its form.

    `who` is the public function (`gc.grad`) and `what` the argument's name, for the messages.
    """
    if is_tensor(value):
        return [value], Form(None, 1)  # type: ignore[list-item]
    if type(value) not in (list, tuple):
        raise TypeError(f"{who}: {what} must be a Tensor or a list or tuple of Tensors, {got(value)}")
    items = list(value)  # type: ignore[call-overload]
    for i, item in enumerate(items):
        if not is_tensor(item):
            raise TypeError(f"{who}: {what}[{i}] must be a Tensor, {got(item)}")
    return items, Form(type(value), len(items))


def flatten_like(value: TensorLike, form: Form, who: str, what: str, per: str) -> list[TensorLike]:
    """Values given one per Tensor of `form` (cotangents, tangents): one value, or a list or tuple of `n`."""
    if form.single:
        if type(value) in (list, tuple):
            raise TypeError(f"{who}: {what} must be one value (a Tensor, array or number), since {per} is one Tensor")
        return [value]
    if not isinstance(value, (list, tuple)) or type(value) not in (list, tuple):
        raise TypeError(f"{who}: {what} must be a list or tuple of {form.n} (one per {per}), {got(value)}")
    items: list[TensorLike] = list(value)
    if len(items) != form.n:
        raise TypeError(f"{who}: {what} must hold {form.n} values (one per {per}), got {len(items)}")
    return items


def check_vars(wrt: Sequence[Tensor], form: Form, who: str, what: str = "wrt") -> None:
    """Each wrt is a var (gc.var): a derivative with respect to a computed value is refused."""
    for i, w in enumerate(wrt):
        node = w.node
        if node.op.name == "var":
            continue
        label = what if form.single else f"{what}[{i}]"
        message = (
            f"{label} must be a var made with gc.var, got a {node.op.name} node{where(node.loc)}; "
            "to differentiate with respect to a computed value, make it a var and build the function of it"
        )
        raise located(DifferentiationError(message), who, user_location())


def got(value: object) -> str:
    """'got <type>', with a hint for the forms that will come with parameter trees."""
    kind = type(value).__name__
    if isinstance(value, dict):
        return "got a dict (parameter trees are not supported yet: pass a list of Tensors)"
    if kind in ("generator", "map", "filter", "zip") or hasattr(value, "__next__"):
        return f"got a {kind} (pass a list)"
    return f"got {type(value).__module__}.{kind}" if type(value).__module__ != "builtins" else f"got {kind}"
