"""The Op record shared by every primitive, and the registry of all ops.

Imports errors, shapes and ir. An op is math only: how to type it (`infer`),
how NumPy computes it (`eval`, the reference semantics), how it differentiates
(one `vjp` and one `jvp` rule per input) and how it fuses (`kind`).

Rule conventions (the autodiff engine relies on them):
- `vjp[i](ct, out, *inputs, **attrs)` returns the cotangent contribution for input i
  or None for "contributes zero". `ct` may carry leading batch axes (Jacobians
  batch the seed): its shape is `batch + out.shape`. The result must broadcast to
  `batch + x.shape` after the engine sums broadcast axes back; rules never
  un-broadcast themselves.
- `jvp[i](t, out, *inputs, **attrs)` returns the tangent contribution of input i's
  tangent `t` (shape `batch + x.shape`) to the output, or None for zero.
- A rule entry that is None (instead of a function) means "not differentiable":
  differentiating through it raises DifferentiationError.
- Ops whose `variadic` is True use one rule for every input and receive `index=i`.
- Ops whose `aligns` is True broadcast their operands right-aligned; the jvp engine
  gives their rules tangents padded to `batch + (1,) * k + x.shape` of the output's rank.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from graphc.ir import Node

Rule = Callable[..., Node | None]


class Kind(enum.Enum):
    """How an op fuses: the optimizer groups ELEMENTWISE/BROADCAST regions and a trailing REDUCE."""

    SOURCE = "source"
    ELEMENTWISE = "elementwise"
    BROADCAST = "broadcast"
    REDUCE = "reduce"
    OPAQUE = "opaque"


OPS: dict[str, Op] = {}


@dataclass(frozen=True, eq=False)
class Op:
    """One primitive: typing, NumPy semantics, derivative rules, fusion kind."""

    name: str
    infer: Callable[..., object]
    eval: Callable[..., object]
    vjp: tuple[Rule | None, ...] = ()
    jvp: tuple[Rule | None, ...] = ()
    kind: Kind = Kind.OPAQUE
    variadic: bool = False
    aligns: bool = False  # operands broadcast right-aligned against each other (elementwise, matmul)

    def __post_init__(self) -> None:
        if self.name in OPS:
            raise ValueError(f"op {self.name!r} is defined twice")
        OPS[self.name] = self

    def __call__(self, *inputs: Node, **attrs: Hashable) -> Node:
        return Node.make(self, inputs, attrs)

    def __repr__(self) -> str:
        return f"<Op {self.name}>"

    def vjp_rule(self, i: int) -> Rule | None:
        return _rule(self.vjp, i, self.variadic)

    def jvp_rule(self, i: int) -> Rule | None:
        return _rule(self.jvp, i, self.variadic)


def _rule(rules: tuple[Rule | None, ...], i: int, variadic: bool) -> Rule | None:
    if variadic:
        rule = rules[0] if rules else None
        return None if rule is None else functools.partial(rule, index=i)
    if i >= len(rules):
        return None
    return rules[i]


def zero(*_args: object, **_attrs: object) -> None:
    """The rule of an input whose derivative is zero almost everywhere."""
    return None
