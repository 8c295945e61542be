"""The Op record shared by every primitive, and the registry of all ops.

Imports errors, shapes and ir. An op is one record, and everything else about it is
derived from that record: how to type it (`infer`), how NumPy computes it (`eval`, the
reference semantics, or `numpy`, the NumPy function it is), how it differentiates (one
`vjp` and one `jvp` rule per input; elementwise ops give ONE linear rule per input that
serves as both), which input elements each output element depends on (`sparsity`, see
ops/sparsity.py; None: all of them), how it fuses (`kind`), its cost class
(`transcendental`), the public NumPy-named function that applies it (`public`, made by
graphc.functions) and where it is differentiable (`domain`, which the generic tests sample).

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
- Elementwise ops have a diagonal Jacobian, so J^T = J: one linear rule per input,
  `d[i](g, out, *inputs) = g * d out / d input_i` (written the most accurate way, e.g.
  `div(g, y)` rather than `mul(g, div(1, y))`), is the vjp with g = ct and the jvp with g = t.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from graphc.errors import GraphError
from graphc.ir import Node
from graphc.shapes import TensorType

Rule = Callable[..., Node | None]


class Kind(enum.Enum):
    """How an op fuses: the optimizer groups ELEMENTWISE/BROADCAST regions and a trailing REDUCE."""

    SOURCE = "source"
    ELEMENTWISE = "elementwise"
    BROADCAST = "broadcast"
    REDUCE = "reduce"
    OPAQUE = "opaque"


@dataclass(frozen=True)
class Public:
    """The NumPy-named function of graphc that applies an op to Tensors (graphc.functions makes it).

    Unary functions take `(x)`, binary ones `(x, y)` with NumPy's promotion and
    broadcasting. `floats`: int and bool operands are computed in float64, as
    NumPy's float functions (exp, sin, ...) do.
    """

    name: str
    doc: str
    arity: int
    floats: bool = False


@dataclass(frozen=True)
class Domain:
    """Where one input of an elementwise op is differentiable: the open interval (lo, hi) without `singular`.

    `singular` lists the kinks and poles inside (lo, hi) (abs at 0, a divisor at 0),
    where the op's documented subgradient or an infinity applies.
    """

    lo: float = -math.inf
    hi: float = math.inf
    singular: tuple[float, ...] = ()


REALS = Domain()

OPS: dict[str, Op] = {}


@dataclass(frozen=True, eq=False)
class Op:
    """One primitive: typing, NumPy semantics, derivative rules, fusion kind, and what is derived from them."""

    name: str
    infer: Callable[..., TensorType]
    eval: Callable[..., object]
    vjp: tuple[Rule | None, ...] = ()
    jvp: tuple[Rule | None, ...] = ()
    kind: Kind = Kind.OPAQUE
    variadic: bool = False
    aligns: bool = False  # operands broadcast right-aligned against each other (elementwise, matmul)
    numpy: str | None = None  # `eval` is np.<numpy> called on the operands alone (no attributes)
    transcendental: bool = False  # cost class: exp, log, sin, ... (the LLVM backend's vecmath kernel <name>)
    public: Public | None = None  # the function of graphc.functions made from this record
    domain: tuple[Domain, ...] = ()  # per input, for elementwise ops (tests sample it)
    transient: bool = False  # replaced before scheduling (dim, stop_gradient, custom): no backend lowers it
    sparsity: Callable[..., object] | None = None  # the Jacobian pattern rule (ops/sparsity.py); None: dense dependence

    def __post_init__(self) -> None:
        if self.name in OPS:
            raise ValueError(f"op {self.name!r} is defined twice")
        if self.numpy is not None and getattr(np, self.numpy, None) is not self.eval:
            raise ValueError(f"op {self.name!r}: eval is not numpy.{self.numpy}")
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


def elementwise_ops(arity: int | None = None) -> list[Op]:
    """The records of the elementwise ops (those with a `domain` per input), of one arity or all."""
    return [op for op in OPS.values() if op.domain and (arity is None or len(op.domain) == arity)]


def accepts(op: Op, *dtypes: np.dtype) -> bool:
    """Whether the attribute-free op types operands of these dtypes (0-d), by its own `infer`."""
    try:
        op.infer(*(TensorType((), d) for d in dtypes))
    except GraphError:
        return False
    return True


def zero(*_args: object, **_attrs: object) -> None:
    """The rule of an input whose derivative is zero almost everywhere."""
    return None
