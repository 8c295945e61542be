"""Parameter trees: one Tensor, or nested dicts, lists and tuples of Tensors, flattened and rebuilt.

Imports errors, ir, tensor. `flatten` turns what the user passed into a list of leaves
(Tensors) and a `Form`, the tree's structure; `Form.unflatten` gives results back in
the same structure, so a single Tensor in means a single Tensor out and is never
iterated into its elements. Dict keys are flattened in sorted order (the order is
deterministic, whatever order the dict was built in). Anything else is a TypeError
naming the path of the offending entry (`wrt['layer1'][0]`). grad/vjp/jvp/jacobian/
hessian/value_and_grad and gc.compile (inputs, outputs and the call) share this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from graphc.errors import DifferentiationError, located, user_location, where
from graphc.ir import Node
from graphc.tensor import Tensor

T = TypeVar("T")

CONTAINERS = (list, tuple, dict)
Tree = Any  # a Tensor, or nested dicts, lists and tuples of them: checked at run time, as recurrence.frontend's


@dataclass(frozen=True)
class Form:
    """The structure of a tree: a leaf (`kind` None), or a list, tuple or dict of sub-forms.

    `keys` are a dict's keys in sorted order (the order of `children`); `n` counts the leaves.
    """

    kind: type | None
    children: tuple[Form, ...] = ()
    keys: tuple[object, ...] = ()

    @property
    def single(self) -> bool:
        """True for one leaf given as itself (not inside a container)."""
        return self.kind is None

    @property
    def flat(self) -> bool:
        """True for a leaf, or a list or tuple of leaves: the forms that had no nesting."""
        return self.kind is None or (self.kind is not dict and all(c.kind is None for c in self.children))

    @property
    def n(self) -> int:
        if self.kind is None:
            return 1
        return sum(c.n for c in self.children)

    def unflatten(self, leaves: Sequence[T]) -> Tree:
        """`leaves` (one per leaf of this form, in flattening order) in this structure."""
        return self._build(iter(leaves))

    def _build(self, items: Iterator[T]) -> Tree:
        if self.kind is None:
            return next(items)
        values = [c._build(items) for c in self.children]
        if self.kind is dict:
            return dict(zip(self.keys, values, strict=True))
        return tuple(values) if self.kind is tuple else values

    def paths(self, root: str) -> list[str]:
        """The path of every leaf, in flattening order: `root`, `root[0]`, `root['W']`, ..."""
        if self.kind is None:
            return [root]
        labels = self.keys if self.kind is dict else range(len(self.children))
        return [p for label, c in zip(labels, self.children, strict=True) for p in c.paths(f"{root}[{label!r}]")]

    def describe(self) -> str:
        """The structure in a few characters: `T`, `[T, T]`, `{'W': T, 'b': T}`."""
        if self.kind is None:
            return "T"
        inner = [c.describe() for c in self.children]
        if self.kind is dict:
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(self.keys, inner, strict=True)) + "}"
        if self.kind is tuple:
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        return "[" + ", ".join(inner) + "]"


LEAF = Form(None)


def is_tensor(value: object) -> bool:
    """True for a Tensor (or a subclass) holding a Node; an object whose __class__ lies is not one."""
    return issubclass(type(value), Tensor) and isinstance(getattr(value, "node", None), Node)


def sorted_keys(value: dict, who: str, path: str) -> list[object]:
    """A dict's keys in the deterministic order trees use; TypeError when they cannot be ordered."""
    try:
        return sorted(value)
    except TypeError:
        kinds = ", ".join(sorted({type(k).__name__ for k in value}))
        message = f"{who}: the keys of {path} cannot be sorted ({kinds}); use keys of one kind, e.g. str"
        raise TypeError(message) from None


def tree_flatten(
    value: object, is_leaf: Callable[[object], bool], who: str, path: str, what: str = "a Tensor"
) -> tuple[list[object], Form]:  # fmt: skip
    """The leaves of a tree (depth first, dict keys sorted) and its form; TypeError naming a bad entry."""
    leaves: list[object] = []

    def walk(item: object, at: str) -> Form:
        if is_leaf(item):
            leaves.append(item)
            return LEAF
        if isinstance(item, (list, tuple)) and type(item) in (list, tuple):
            return Form(type(item), tuple(walk(v, f"{at}[{i}]") for i, v in enumerate(item)))
        if isinstance(item, dict) and type(item) is dict:
            keys = sorted_keys(item, who, at)
            return Form(dict, tuple(walk(item[k], f"{at}[{k!r}]") for k in keys), tuple(keys))
        raise TypeError(f"{who}: {at} must be {what}, or a list, tuple or dict of them, {got(item)}")

    return leaves, walk(value, path)


def flatten(value: object, who: str, what: str) -> tuple[list[Tensor], Form]:
    """The Tensors of `value` (a Tensor, or a nested list, tuple or dict of them) and its form.

    `who` is the public function (`gc.grad`) and `what` the argument's name, for the messages.
    """
    leaves, form = tree_flatten(value, is_tensor, who, what)
    return leaves, form  # type: ignore[return-value]


def flatten_like(value: object, form: Form, who: str, what: str, per: str, *, arrays: bool = False) -> list[object]:
    """Values given one per leaf of `form` (cotangents, tangents, arguments), in the same structure.

    A leaf of `form` takes a value (a Tensor, an array, a number; with `arrays`, a nested
    list too, as an argument of a compiled function may be); the containers around it
    must match: TypeError naming the path where they do not.
    """
    leaves: list[object] = []
    _match(value, form, who, what, per, leaves, arrays)
    return leaves


def _match(value: object, form: Form, who: str, path: str, per: str, leaves: list[object], arrays: bool) -> None:
    if form.kind is None:
        if type(value) is dict or (not arrays and type(value) in CONTAINERS):
            raise TypeError(f"{who}: {path} must be one value (a Tensor, array or number), since {per} is one Tensor")
        leaves.append(value)
        return
    if form.kind is dict and type(value) is not dict:
        raise TypeError(f"{who}: {path} must be a dict with keys {list(form.keys)!r} (one per {per}), {got(value)}")
    if form.kind is not dict and type(value) not in (list, tuple):
        n = len(form.children)
        raise TypeError(f"{who}: {path} must be a list or tuple of {n} (one per {per}), {got(value)}")
    if form.kind is dict:
        assert isinstance(value, dict)
        if sorted_keys(value, who, path) != list(form.keys):
            raise TypeError(f"{who}: {path} has keys {sorted(value)!r}; {per} has {list(form.keys)!r}")
        for k, child in zip(form.keys, form.children, strict=True):
            _match(value[k], child, who, f"{path}[{k!r}]", per, leaves, arrays)
        return
    items = list(value)  # type: ignore[call-overload]
    if len(items) != len(form.children):
        raise TypeError(f"{who}: {path} must hold {len(form.children)} values (one per {per}), got {len(items)}")
    for i, (item, child) in enumerate(zip(items, form.children, strict=True)):
        _match(item, child, who, f"{path}[{i}]", per, leaves, arrays)


def check_vars(wrt: Sequence[Tensor], form: Form, who: str, what: str = "wrt") -> None:
    """Each wrt is a var (gc.var), listed once: a derivative with respect to a computed value is refused."""
    paths = form.paths(what)
    seen: dict[Node, str] = {}
    for w, label in zip(wrt, paths, strict=True):
        node = w.node
        if node.op.name != "var":
            message = (
                f"{label} must be a var made with gc.var, got a {node.op.name} node{where(node.loc)}; "
                "to differentiate with respect to a computed value, make it a var and build the function of it"
            )
            raise located(DifferentiationError(message), who, user_location())
        seen.setdefault(node, label)


def got(value: object) -> str:
    """'got <type>', with a hint for iterators (pass a list)."""
    kind = type(value).__name__
    if kind in ("generator", "map", "filter", "zip") or hasattr(value, "__next__"):
        return f"got a {kind} (pass a list)"
    return f"got {type(value).__module__}.{kind}" if type(value).__module__ != "builtins" else f"got {kind}"
