"""Elementwise primitives: unary math, binary arithmetic, comparisons, where, casts.

Binary primitives take operands of one dtype and broadcast as NumPy does; the
frontend (tensor.py) inserts the casts that NumPy's promotion implies. Each op is one
record: its NumPy reference (`numpy=`, or `eval=` where NumPy has no such function),
ONE linear derivative rule per input (`d(g, out, x[, y]) = g * d out / d input`, the vjp
with g = ct and the jvp with g = t), its public function, cost class and domain.
Subgradients at kinks: abs'(0) = 0, relu'(0) = 0, maximum/minimum split the cotangent
evenly at ties.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graphc.errors import DTypeError
from graphc.ir import Node
from graphc.ops.base import REALS, Domain, Kind, Op, Public, Rule, zero
from graphc.ops.source import scalar, static_value
from graphc.ops.sparsity import elementwise, product, selection
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


def _numeric_binary_infer(x: TensorType, y: TensorType) -> TensorType:
    if x.dtype == BOOL:
        raise DTypeError("does not accept bool operands")
    return _binary_infer(x, y)


def _compare_infer(x: TensorType, y: TensorType) -> TensorType:
    return TensorType(_binary_infer(x, y).shape, BOOL)


def floats(name: str, doc: str | None = None, arity: int = 1) -> Public:
    """The public function of a float op: int and bool operands are computed in float64."""
    text = doc or f"Elementwise {name}, as numpy.{name} (ints and bools are computed in float64)."
    return Public(name, text, arity=arity, floats=True)


def function(name: str, arity: int, doc: str | None = None) -> Public:
    """The public function of an op that takes its operands' dtype as it is."""
    return Public(name, doc or f"As `numpy.{name}`.", arity=arity)


def unary(
    name: str,
    d: Rule | None,
    *,
    numpy: str | None = None,
    eval: Callable | None = None,
    infer: Callable = _float_infer,
    public: Public | None = None,
    transcendental: bool = False,
    domain: Domain = REALS,
) -> Op:
    """An elementwise op of one input; `d` is its linear rule, both its vjp and its jvp; its pattern is diagonal."""
    reference = eval if eval is not None else getattr(np, str(numpy))
    return Op(
        name,
        infer,
        reference,
        vjp=(d,),
        jvp=(d,),
        kind=Kind.ELEMENTWISE,
        aligns=True,
        numpy=numpy,
        transcendental=transcendental,
        public=public,
        domain=(domain,),
        sparsity=elementwise,
    )


def binary(
    name: str,
    d: tuple[Rule | None, Rule | None],
    *,
    numpy: str | None = None,
    eval: Callable | None = None,
    infer: Callable = _binary_infer,
    public: Public | None = None,
    transcendental: bool = False,
    domain: tuple[Domain, Domain] = (REALS, REALS),
    sparsity: Callable = elementwise,
) -> Op:
    """A broadcasting elementwise op of two inputs; `d` holds one linear rule per input (vjp and jvp)."""
    return Op(
        name,
        infer,
        eval if eval is not None else getattr(np, str(numpy)),
        vjp=d,
        jvp=d,
        kind=Kind.BROADCAST,
        aligns=True,
        numpy=numpy,
        transcendental=transcendental,
        public=public,
        domain=domain,
        sparsity=sparsity,
    )


# --- arithmetic -----------------------------------------------------------------
# A rule's `g` is the cotangent (vjp) or the tangent (jvp): g * d out / d input.

add = binary("add", (lambda g, out, x, y: g, lambda g, out, x, y: g), numpy="add", public=function("add", 2))
sub = binary("sub", (lambda g, out, x, y: g, lambda g, out, x, y: neg(g)), numpy="subtract",
             public=function("subtract", 2))  # fmt: skip
mul = binary("mul", (lambda g, out, x, y: mul(g, y), lambda g, out, x, y: mul(g, x)), numpy="multiply",
             public=function("multiply", 2), sparsity=product)  # fmt: skip


def _div_y(g: Node, out: Node, x: Node, y: Node) -> Node:
    """d(x / y)/dy = -(x / y) / y"""
    return neg(div(mul(g, out), y))


div = binary("div", (lambda g, out, x, y: div(g, y), _div_y), numpy="divide", infer=_float_binary_infer,
             public=function("divide", 2), domain=(REALS, Domain(singular=(0.0,))))  # fmt: skip


def _pow_x(g: Node, out: Node, x: Node, y: Node) -> Node | None:
    """d(x ** y)/dx = y * x ** (y - 1), which is 0 at x == y == 0 (x ** 0 is 1 everywhere).

    There x ** (y - 1) = 0 ** -1 is infinite: it is computed at x = 1 instead, so the
    rule's own derivatives stay finite (a zero times that infinity would be NaN). A
    constant exponent without zeros needs no such care; an exponent of constant 0
    contributes nothing.
    """
    value = static_value(y)
    if value is not None and not np.any(value):
        return None
    if value is None or not np.all(value):
        origin = logical_and(equal(x, scalar(0, x)), equal(y, scalar(0, y)))
        x = where(origin, scalar(1, x), x)
    return mul(g, mul(y, power(x, sub(y, scalar(1, y)))))


def _pow_y(g: Node, out: Node, x: Node, y: Node) -> Node:
    """d(x ** y)/dy = x ** y * log(x), taken as 0 at x == 0."""
    safe_x = where(equal(x, scalar(0, x)), scalar(1, x), x)
    return mul(g, mul(out, log(safe_x)))


def _pow_eval(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """np.power, but sqrt wherever the exponent is 0.5, whatever the exponent's shape.

    NumPy's `x ** 0.5` and `np.power(x, 0.5)` take sqrt (NaN at -inf, -0.0 at -0.0), but an
    array of 0.5s goes through C's pow (+inf, +0.0): one rule for every layout.
    """
    if np.asarray(x).dtype.kind != "f":
        return np.power(x, y)
    half = np.equal(y, 0.5)
    if not half.any():
        return np.power(x, y)
    shape = np.broadcast_shapes(np.shape(x), np.shape(y))
    if half.all():
        return np.array(np.broadcast_to(np.sqrt(x), shape))
    return np.where(half, np.sqrt(x), np.power(x, y))


def _mod_y(g: Node, out: Node, x: Node, y: Node) -> Node:
    """d mod(x, y)/dy = -floor(x / y), as mod(x, y) = x - floor(x / y) * y between its jumps."""
    return neg(mul(g, floor_divide(x, y)))


mod = binary("mod", (lambda g, out, x, y: g, _mod_y), numpy="remainder", infer=_numeric_binary_infer,
             domain=(REALS, Domain(singular=(0.0,))), public=function("mod", 2, (
                 "Elementwise remainder with the sign of the divisor, as numpy.mod (numpy.remainder); "
                 "its derivative is 1 in x and -floor(x / y) in y between the jumps.")))  # fmt: skip
floor_divide = binary("floor_divide", (zero, zero), numpy="floor_divide", infer=_numeric_binary_infer,
                      domain=(REALS, Domain(singular=(0.0,))), public=function("floor_divide", 2, (
                          "Elementwise floor(x / y) as numpy.floor_divide (with NumPy's remainder-based "
                          "rounding; integer division by zero gives 0); its derivative is zero.")))  # fmt: skip
power = binary("pow", (_pow_x, _pow_y), eval=_pow_eval, public=function("power", 2),
               domain=(Domain(lo=0.0), REALS))  # fmt: skip
neg = unary("neg", lambda g, out, x: neg(g), numpy="negative", infer=_numeric_infer, public=function("negative", 1))


def _tie_mask(x: Node, y: Node, wins: Callable[[Node, Node], Node]) -> Node:
    """1 where x wins, 1/2 at ties, 0 where y wins: the even split of maximum/minimum."""
    half = where(equal(x, y), scalar(0.5, x), scalar(0, x))
    return where(wins(x, y), scalar(1, x), half)


def _extremum(name: str, wins: Callable[[Node, Node], Node]) -> Op:
    """maximum or minimum: the winner takes the cotangent, ties split it evenly."""
    doc = f"Elementwise {name} (NaN propagates); at ties each operand gets half the cotangent."
    return binary(
        name,
        (lambda g, out, x, y: mul(g, _tie_mask(x, y, wins)), lambda g, out, x, y: mul(g, _tie_mask(y, x, wins))),
        numpy=name,
        public=function(name, 2, doc),
    )


maximum = _extremum("maximum", lambda x, y: greater(x, y))
minimum = _extremum("minimum", lambda x, y: less(x, y))

# --- comparisons: boolean results, derivative zero --------------------------------


def _comparison(name: str) -> Op:
    return binary(name, (zero, zero), numpy=name, infer=_compare_infer, public=function(name, 2))


less = _comparison("less")
less_equal = _comparison("less_equal")
greater = _comparison("greater")
greater_equal = _comparison("greater_equal")
equal = _comparison("equal")
not_equal = _comparison("not_equal")


def _logical_infer(x: TensorType, y: TensorType) -> TensorType:
    if x.dtype != BOOL or y.dtype != BOOL:
        raise DTypeError(f"expects bool operands, got {x.dtype} and {y.dtype}")
    return _binary_infer(x, y)


logical_and = binary("logical_and", (zero, zero), numpy="logical_and", infer=_logical_infer)
logical_or = binary("logical_or", (zero, zero), numpy="logical_or", infer=_logical_infer)
logical_not = unary("logical_not", zero, numpy="logical_not", infer=lambda x: _logical_infer(x, x))
isnan = unary("isnan", zero, numpy="isnan", infer=_predicate_infer, public=floats("isnan"))
isfinite = unary("isfinite", zero, numpy="isfinite", infer=_predicate_infer, public=floats("isfinite"))


def _where_infer(c: TensorType, x: TensorType, y: TensorType) -> TensorType:
    if c.dtype != BOOL:
        raise DTypeError(f"the condition must be bool, got {c.dtype}")
    return TensorType(broadcast_shapes(c.shape, x.shape, y.shape), _same_dtype(x, y))


def _where_x(g: Node, out: Node, c: Node, x: Node, y: Node) -> Node:
    return where(c, g, scalar(0, g))


def _where_y(g: Node, out: Node, c: Node, x: Node, y: Node) -> Node:
    return where(c, scalar(0, g), g)


where = Op("where", _where_infer, np.where, vjp=(zero, _where_x, _where_y), jvp=(zero, _where_x, _where_y),
           kind=Kind.BROADCAST, aligns=True, numpy="where", sparsity=selection)  # fmt: skip

# --- unary math -------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), without overflow warnings for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) = logaddexp(0, x)."""
    return np.logaddexp(np.zeros((), dtype=np.asarray(x).dtype), x)


def _relu(x: np.ndarray) -> np.ndarray:
    """maximum(x, 0)."""
    return np.maximum(x, np.zeros((), dtype=np.asarray(x).dtype))


def _square(x: Node) -> Node:
    return mul(x, x)


def _math(name: str, d: Rule, domain: Domain = REALS) -> Op:
    """A transcendental float function that is NumPy's `name`."""
    return unary(name, d, numpy=name, public=floats(name), transcendental=True, domain=domain)


POSITIVE = Domain(lo=0.0)
exp = _math("exp", lambda g, out, x: mul(g, out))
log = _math("log", lambda g, out, x: div(g, x), POSITIVE)
log2 = _math("log2", lambda g, out, x: div(g, mul(x, scalar(np.log(2.0), x))), POSITIVE)
log1p = _math("log1p", lambda g, out, x: div(g, add(x, scalar(1, x))), Domain(lo=-1.0))
expm1 = _math("expm1", lambda g, out, x: mul(g, add(out, scalar(1, out))))
sqrt = unary("sqrt", lambda g, out, x: div(g, mul(scalar(2, out), out)), numpy="sqrt", public=floats("sqrt"),
             domain=POSITIVE)  # fmt: skip
sin = _math("sin", lambda g, out, x: mul(g, cos(x)))
cos = _math("cos", lambda g, out, x: neg(mul(g, sin(x))))
tan = _math("tan", lambda g, out, x: mul(g, add(scalar(1, out), _square(out))), Domain(-np.pi / 2, np.pi / 2))
tanh = _math("tanh", lambda g, out, x: mul(g, sub(scalar(1, out), _square(out))))
sinh = _math("sinh", lambda g, out, x: mul(g, cosh(x)))
cosh = _math("cosh", lambda g, out, x: mul(g, sinh(x)))


def _arctan_d(g: Node, out: Node, x: Node) -> Node:
    """d arctan(x) = g / (1 + x^2), with +-inf taken as +-the dtype's largest value (1 + x^2 overflows alike).

    The value is the same 0 at +-inf, and the rule's own derivatives are 0 there
    instead of 0 * inf = NaN.
    """
    finite_x = where(isfinite(x), x, mul(sign(x), scalar(np.finfo(x.dtype).max, x)))
    return div(g, add(scalar(1, x), _square(finite_x)))


arctan = _math("arctan", _arctan_d)
_FLOATS = "(ints and bools are computed in float64)"
sigmoid = unary(
    "sigmoid", lambda g, out, x: mul(g, mul(out, sub(scalar(1, out), out))), eval=_sigmoid, transcendental=True,
    public=floats("sigmoid", f"Elementwise sigmoid, 1 / (1 + exp(-x)), as scipy.special.expit {_FLOATS}."),
)  # fmt: skip
softplus = unary(
    "softplus", lambda g, out, x: mul(g, sigmoid(x)), eval=_softplus, transcendental=True,
    public=floats("softplus", f"Elementwise softplus, log(1 + exp(x)) without overflow, as jax.nn.softplus {_FLOATS}."),
)  # fmt: skip
KINK = Domain(singular=(0.0,))
relu = unary(
    "relu", lambda g, out, x: where(greater(x, scalar(0, x)), g, scalar(0, g)), eval=_relu, domain=KINK,
    public=floats("relu", f"Elementwise relu, maximum(x, 0), as jax.nn.relu {_FLOATS}."),
)  # fmt: skip
abs_ = unary("abs", lambda g, out, x: mul(g, sign(x)), numpy="abs", infer=lambda x: x, domain=KINK,
             public=function("abs", 1, "Elementwise absolute value; the subgradient at 0 is 0."))  # fmt: skip
sign = unary("sign", zero, numpy="sign", infer=_numeric_infer, public=function("sign", 1), domain=KINK)
floor = unary("floor", zero, numpy="floor", infer=lambda x: x, public=function("floor", 1))
round_ = unary("round", zero, numpy="round", infer=_numeric_infer)  # gc.round is a plain function (decimals=)

# --- casts --------------------------------------------------------------------------


def _astype_infer(x: TensorType, *, dtype: np.dtype) -> TensorType:
    return TensorType(x.shape, as_dtype(dtype))


def _astype_vjp(ct: Node, out: Node, x: Node, *, dtype: np.dtype) -> Node:
    """Between float dtypes the cotangent is cast back; the engine rejects paths through int/bool."""
    return astype(ct, dtype=x.dtype)


def _astype_jvp(t: Node, out: Node, x: Node, *, dtype: np.dtype) -> Node:
    return astype(t, dtype=out.dtype)


astype = Op("astype", _astype_infer, lambda x, *, dtype: np.asarray(x).astype(dtype),
            vjp=(_astype_vjp,), jvp=(_astype_jvp,), kind=Kind.ELEMENTWISE, sparsity=elementwise)  # fmt: skip
