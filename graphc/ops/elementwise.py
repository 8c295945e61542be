"""Elementwise primitives: unary math, binary arithmetic, comparisons, where, casts.

Binary primitives take operands of one dtype and broadcast as NumPy does; the
frontend (tensor.py) inserts the casts that NumPy's promotion implies. Each op's
forward (`eval`) and its derivatives sit together. Subgradients at kinks:
abs'(0) = 0, relu'(0) = 0, maximum/minimum split the cotangent evenly at ties.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graphc.errors import DTypeError
from graphc.ir import Node
from graphc.ops.base import Kind, Op, Rule, zero
from graphc.ops.source import scalar
from graphc.shapes import BOOL, TensorType, as_dtype, broadcast_shapes, is_float


def _float_infer(x: TensorType) -> TensorType:
    if not is_float(x.dtype):
        raise DTypeError(f"expects a floating-point operand, got {x.dtype}")
    return x


def _numeric_infer(x: TensorType) -> TensorType:
    if x.dtype == BOOL:
        raise DTypeError("does not accept a bool operand")
    return x


def _predicate_infer(x: TensorType) -> TensorType:
    _float_infer(x)
    return TensorType(x.shape, BOOL)


def _same_dtype(*types: TensorType) -> np.dtype:
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        raise DTypeError(f"operands must share one dtype, got {', '.join(str(t.dtype) for t in types)}")
    return types[0].dtype


def _binary_infer(x: TensorType, y: TensorType) -> TensorType:
    return TensorType(broadcast_shapes(x.shape, y.shape), _same_dtype(x, y))


def _float_binary_infer(x: TensorType, y: TensorType) -> TensorType:
    _float_infer(x)
    return _binary_infer(x, y)


def _compare_infer(x: TensorType, y: TensorType) -> TensorType:
    return TensorType(_binary_infer(x, y).shape, BOOL)


def unary(name: str, fn: Callable, vjp: Rule | None, jvp: Rule | None, infer: Callable = _float_infer) -> Op:
    return Op(name, infer, fn, vjp=(vjp,), jvp=(jvp,), kind=Kind.ELEMENTWISE, aligns=True)


def binary(name: str, fn: Callable, vjp: tuple, jvp: tuple, infer: Callable = _binary_infer) -> Op:
    return Op(name, infer, fn, vjp=vjp, jvp=jvp, kind=Kind.BROADCAST, aligns=True)


# --- arithmetic -----------------------------------------------------------------

add = binary("add", np.add, (lambda ct, out, x, y: ct, lambda ct, out, x, y: ct),
             (lambda t, out, x, y: t, lambda t, out, x, y: t))  # fmt: skip
sub = binary("sub", np.subtract, (lambda ct, out, x, y: ct, lambda ct, out, x, y: neg(ct)),
             (lambda t, out, x, y: t, lambda t, out, x, y: neg(t)))  # fmt: skip
mul = binary("mul", np.multiply, (lambda ct, out, x, y: mul(ct, y), lambda ct, out, x, y: mul(ct, x)),
             (lambda t, out, x, y: mul(t, y), lambda t, out, x, y: mul(x, t)))  # fmt: skip


def _div_y(ct: Node, out: Node, x: Node, y: Node) -> Node:
    """d(x / y)/dy = -(x / y) / y"""
    return neg(div(mul(ct, out), y))


div = binary("div", np.divide, (lambda ct, out, x, y: div(ct, y), _div_y),
             (lambda t, out, x, y: div(t, y), lambda t, out, x, y: _div_y(t, out, x, y)),
             infer=_float_binary_infer)  # fmt: skip


def _pow_x(ct: Node, out: Node, x: Node, y: Node) -> Node:
    """d(x ** y)/dx = y * x ** (y - 1), taken as 0 where y == 0 (also at x == 0)."""
    one = scalar(1, y)
    slope = where(equal(y, scalar(0, y)), scalar(0, y), mul(y, power(x, sub(y, one))))
    return mul(ct, slope)


def _pow_y(ct: Node, out: Node, x: Node, y: Node) -> Node:
    """d(x ** y)/dy = x ** y * log(x), taken as 0 at x == 0."""
    safe_x = where(equal(x, scalar(0, x)), scalar(1, x), x)
    return mul(ct, mul(out, log(safe_x)))


power = binary("pow", np.power, (_pow_x, _pow_y),
               (_pow_x, _pow_y), infer=_binary_infer)  # fmt: skip
neg = unary("neg", np.negative, lambda ct, out, x: neg(ct), lambda t, out, x: neg(t), infer=_numeric_infer)


def _tie_mask(x: Node, y: Node, wins: Op) -> Node:
    """1 where x wins, 1/2 at ties, 0 where y wins: the even split of maximum/minimum."""
    half = where(equal(x, y), scalar(0.5, x), scalar(0, x))
    return where(wins(x, y), scalar(1, x), half)


maximum = binary(
    "maximum", np.maximum,
    (lambda ct, out, x, y: mul(ct, _tie_mask(x, y, greater)), lambda ct, out, x, y: mul(ct, _tie_mask(y, x, greater))),
    (lambda t, out, x, y: mul(t, _tie_mask(x, y, greater)), lambda t, out, x, y: mul(t, _tie_mask(y, x, greater))),
)  # fmt: skip
minimum = binary(
    "minimum", np.minimum,
    (lambda ct, out, x, y: mul(ct, _tie_mask(x, y, less)), lambda ct, out, x, y: mul(ct, _tie_mask(y, x, less))),
    (lambda t, out, x, y: mul(t, _tie_mask(x, y, less)), lambda t, out, x, y: mul(t, _tie_mask(y, x, less))),
)  # fmt: skip

# --- comparisons: boolean results, derivative zero --------------------------------

less = binary("less", np.less, (zero, zero), (zero, zero), infer=_compare_infer)
less_equal = binary("less_equal", np.less_equal, (zero, zero), (zero, zero), infer=_compare_infer)
greater = binary("greater", np.greater, (zero, zero), (zero, zero), infer=_compare_infer)
greater_equal = binary("greater_equal", np.greater_equal, (zero, zero), (zero, zero), infer=_compare_infer)
equal = binary("equal", np.equal, (zero, zero), (zero, zero), infer=_compare_infer)
not_equal = binary("not_equal", np.not_equal, (zero, zero), (zero, zero), infer=_compare_infer)


def _logical_infer(x: TensorType, y: TensorType) -> TensorType:
    if x.dtype != BOOL or y.dtype != BOOL:
        raise DTypeError(f"expects bool operands, got {x.dtype} and {y.dtype}")
    return _binary_infer(x, y)


logical_and = binary("logical_and", np.logical_and, (zero, zero), (zero, zero), infer=_logical_infer)
logical_or = binary("logical_or", np.logical_or, (zero, zero), (zero, zero), infer=_logical_infer)
logical_not = unary("logical_not", np.logical_not, zero, zero, infer=lambda x: _logical_infer(x, x))
isnan = unary("isnan", np.isnan, zero, zero, infer=_predicate_infer)
isfinite = unary("isfinite", np.isfinite, zero, zero, infer=_predicate_infer)


def _where_infer(c: TensorType, x: TensorType, y: TensorType) -> TensorType:
    if c.dtype != BOOL:
        raise DTypeError(f"the condition must be bool, got {c.dtype}")
    return TensorType(broadcast_shapes(c.shape, x.shape, y.shape), _same_dtype(x, y))


def _where_x(ct: Node, out: Node, c: Node, x: Node, y: Node) -> Node:
    return where(c, ct, scalar(0, ct))


def _where_y(ct: Node, out: Node, c: Node, x: Node, y: Node) -> Node:
    return where(c, scalar(0, ct), ct)


where = Op("where", _where_infer, np.where, vjp=(zero, _where_x, _where_y), jvp=(zero, _where_x, _where_y),
           kind=Kind.BROADCAST, aligns=True)  # fmt: skip

# --- unary math -------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), without overflow warnings for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) = logaddexp(0, x)."""
    return np.logaddexp(np.zeros((), dtype=np.asarray(x).dtype), x)


def _square(x: Node) -> Node:
    return mul(x, x)


exp = unary("exp", np.exp, lambda ct, out, x: mul(ct, out), lambda t, out, x: mul(t, out))
log = unary("log", np.log, lambda ct, out, x: div(ct, x), lambda t, out, x: div(t, x))
log1p = unary("log1p", np.log1p, lambda ct, out, x: div(ct, add(x, scalar(1, x))),
              lambda t, out, x: div(t, add(x, scalar(1, x))))  # fmt: skip
expm1 = unary("expm1", np.expm1, lambda ct, out, x: mul(ct, add(out, scalar(1, out))),
              lambda t, out, x: mul(t, add(out, scalar(1, out))))  # fmt: skip
sqrt = unary("sqrt", np.sqrt, lambda ct, out, x: div(ct, mul(scalar(2, out), out)),
             lambda t, out, x: div(t, mul(scalar(2, out), out)))  # fmt: skip
sin = unary("sin", np.sin, lambda ct, out, x: mul(ct, cos(x)), lambda t, out, x: mul(t, cos(x)))
cos = unary("cos", np.cos, lambda ct, out, x: neg(mul(ct, sin(x))), lambda t, out, x: neg(mul(t, sin(x))))
tan = unary("tan", np.tan, lambda ct, out, x: mul(ct, add(scalar(1, out), _square(out))),
            lambda t, out, x: mul(t, add(scalar(1, out), _square(out))))  # fmt: skip
tanh = unary("tanh", np.tanh, lambda ct, out, x: mul(ct, sub(scalar(1, out), _square(out))),
             lambda t, out, x: mul(t, sub(scalar(1, out), _square(out))))  # fmt: skip
sinh = unary("sinh", np.sinh, lambda ct, out, x: mul(ct, cosh(x)), lambda t, out, x: mul(t, cosh(x)))
cosh = unary("cosh", np.cosh, lambda ct, out, x: mul(ct, sinh(x)), lambda t, out, x: mul(t, sinh(x)))
arctan = unary("arctan", np.arctan, lambda ct, out, x: div(ct, add(scalar(1, x), _square(x))),
               lambda t, out, x: div(t, add(scalar(1, x), _square(x))))  # fmt: skip
sigmoid = unary("sigmoid", _sigmoid, lambda ct, out, x: mul(ct, mul(out, sub(scalar(1, out), out))),
                lambda t, out, x: mul(t, mul(out, sub(scalar(1, out), out))))  # fmt: skip
softplus = unary("softplus", _softplus, lambda ct, out, x: mul(ct, sigmoid(x)),
                 lambda t, out, x: mul(t, sigmoid(x)))  # fmt: skip
relu = unary("relu", lambda x: np.maximum(x, np.zeros((), dtype=np.asarray(x).dtype)),
             lambda ct, out, x: where(greater(x, scalar(0, x)), ct, scalar(0, ct)),
             lambda t, out, x: where(greater(x, scalar(0, x)), t, scalar(0, t)))  # fmt: skip
abs_ = unary("abs", np.abs, lambda ct, out, x: mul(ct, sign(x)), lambda t, out, x: mul(t, sign(x)),
             infer=lambda x: x)  # fmt: skip
sign = unary("sign", np.sign, zero, zero, infer=_numeric_infer)
floor = unary("floor", np.floor, zero, zero, infer=lambda x: x)
round_ = unary("round", np.round, zero, zero, infer=_numeric_infer)

# --- casts --------------------------------------------------------------------------


def _astype_infer(x: TensorType, *, dtype: np.dtype) -> TensorType:
    return TensorType(x.shape, as_dtype(dtype))


def _astype_vjp(ct: Node, out: Node, x: Node, *, dtype: np.dtype) -> Node:
    """Between float dtypes the cotangent is cast back; the engine rejects paths through int/bool."""
    return astype(ct, dtype=x.dtype)


def _astype_jvp(t: Node, out: Node, x: Node, *, dtype: np.dtype) -> Node:
    return astype(t, dtype=out.dtype)


astype = Op("astype", _astype_infer, lambda x, *, dtype: np.asarray(x).astype(dtype),
            vjp=(_astype_vjp,), jvp=(_astype_jvp,), kind=Kind.ELEMENTWISE)  # fmt: skip
