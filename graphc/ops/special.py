"""Special float functions: inverse trigonometric and hyperbolic, log10, exp2, erf, erfc, arctan2, hypot, logaddexp.

Imports errors, shapes, ir, ops.base, ops.source and ops.elementwise. Each op is one record,
as in elementwise.py: NumPy's function (`numpy=`, or scipy.special's for erf and erfc), ONE
linear derivative rule per input (`d(g, out, x[, y]) = g * d out / d input`), its public
function, cost class (every op here has a vectorized LLVM kernel) and domain.

Rules stay finite in the branch a `where` does not take (docs/adding-an-op.md), and give
the limits at infinity: erf' is computed at |x| <= 28, where exp(-x^2) has underflowed
to 0 already; hypot's derivative is 0 at the origin (the subgradient, as abs'(0) = 0)
and sign(x) where x is infinite. arctan2's derivative is NaN at the origin, as JAX's and
PyTorch's: the function is not continuous there; where an operand is infinite (and none is
NaN) it is the limit 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from graphc.ir import Node
from graphc.ops.base import REALS, Domain, Op, Rule
from graphc.ops.elementwise import (
    _float_binary_infer,
    abs_,
    add,
    binary,
    div,
    equal,
    exp,
    floats,
    greater,
    isnan,
    logical_and,
    logical_not,
    logical_or,
    mul,
    neg,
    sigmoid,
    sign,
    sqrt,
    sub,
    unary,
    where,
)  # fmt: skip
from graphc.ops.source import scalar

UNIT = Domain(-1.0, 1.0)
POSITIVE = Domain(lo=0.0)


def _float_function(name: str, d: Rule, domain: Domain = REALS, eval: Callable | None = None) -> Op:
    """A transcendental float function of one operand: NumPy's `name`, or `eval` where NumPy has none."""
    if eval is not None:
        return unary(name, d, eval=eval, public=floats(name, _LIBM_DOC.format(name=name)), transcendental=True,
                     domain=domain)  # fmt: skip
    return unary(name, d, numpy=name, public=floats(name), transcendental=True, domain=domain)


def _float_binary(name: str, d: tuple[Rule, Rule]) -> Op:
    """A transcendental float function of two operands that is NumPy's `name`."""
    return binary(name, d, numpy=name, infer=_float_binary_infer, public=floats(name, arity=2), transcendental=True)


def at_infinity(x: Node) -> Node:
    """|x| == inf (False for NaN)."""
    return equal(abs_(x), scalar(math.inf, x))


def _unless_infinite(x: Node, rule: Callable[[Node], Node]) -> Node:
    """rule(x) where x is finite or NaN, and 0 at +-inf (the rule is computed at 0 there, so it stays finite)."""
    infinite = at_infinity(x)
    safe = where(infinite, scalar(0, x), x)
    return where(infinite, scalar(0, x), rule(safe))


def _one_minus_square(x: Node) -> Node:
    """1 - x^2 as (1 - x)(1 + x): exact near |x| = 1."""
    one = scalar(1, x)
    return mul(sub(one, x), add(one, x))


# --- inverse trigonometric and hyperbolic functions ------------------------------------------------

arcsin = _float_function("arcsin", lambda g, out, x: div(g, sqrt(_one_minus_square(x))), UNIT)
arccos = _float_function("arccos", lambda g, out, x: neg(div(g, sqrt(_one_minus_square(x)))), UNIT)
arctanh = _float_function("arctanh", lambda g, out, x: div(g, _one_minus_square(x)), UNIT)


def _arcsinh_d(g: Node, out: Node, x: Node) -> Node:
    """d arcsinh(x) = g / hypot(x, 1): no overflow, and 0 at +-inf."""
    return div(g, hypot(x, scalar(1, x)))


def _arccosh_d(g: Node, out: Node, x: Node) -> Node:
    """d arccosh(x) = g / sqrt((x - 1)(x + 1)), 0 at +inf."""
    one = scalar(1, x)
    return mul(g, _unless_infinite(x, lambda u: div(one, sqrt(mul(sub(u, one), add(u, one))))))


arcsinh = _float_function("arcsinh", _arcsinh_d)
arccosh = _float_function("arccosh", _arccosh_d, Domain(lo=1.0))

# --- logarithms and powers -----------------------------------------------------------------------------

log10 = _float_function("log10", lambda g, out, x: div(g, mul(x, scalar(np.log(10.0), x))), POSITIVE)
exp2 = _float_function("exp2", lambda g, out, x: mul(g, mul(out, scalar(np.log(2.0), out))))

# --- the error function -------------------------------------------------------------------------------------

_LIBM_DOC = (
    "Elementwise {name}, as scipy.special.{name}, computed with the C library's {name} (Python's math.{name}), "
    "within an ulp or two of the exact value; ints and bools are computed in float64."
)
ERF_CUTOFF = 28.0
"""exp(-x^2) is 0 in float64 and float32 for |x| >= ERF_CUTOFF: erf' is computed at min(|x|, ERF_CUTOFF)."""


def _libm(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The C library's `name` (through Python's math module) over an array, in the array's float dtype.

    scipy.special.erfc is off by up to ~500 ulp for large x (and flushes its subnormal tail
    to 0), the C library's erf and erfc are within 1-3 ulp: they are the reference.
    """
    scalar_fn = np.frompyfunc(getattr(math, name), 1, 1)

    def evaluate(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        values = np.asarray(scalar_fn(x.astype(np.float64)), dtype=np.float64)
        return values.astype(x.dtype)

    evaluate.__name__ = name
    evaluate.__doc__ = f"{name}(x) by the C library (Python's math.{name}), elementwise."
    return evaluate


def _gaussian(g: Node, x: Node) -> Node:
    """g * 2/sqrt(pi) * exp(-x^2), with x clipped to +-ERF_CUTOFF (exactly 0 beyond, and at +-inf)."""
    cutoff = scalar(ERF_CUTOFF, x)
    clipped = where(greater(abs_(x), cutoff), cutoff, x)
    return mul(g, mul(scalar(2.0 / math.sqrt(math.pi), x), exp(neg(mul(clipped, clipped)))))


erf = _float_function("erf", lambda g, out, x: _gaussian(g, x), eval=_libm("erf"))
erfc = _float_function("erfc", lambda g, out, x: neg(_gaussian(g, x)), eval=_libm("erfc"))

# --- functions of two operands --------------------------------------------------------------------------------


def _arctan2_parts(numerator: Node, y: Node, x: Node) -> tuple[Node, Node]:
    """(numerator, h) with h = hypot(y, x), both replaced by (0, 1) where h is infinite and no operand is NaN.

    There numerator / h**2 tends to 0 (|numerator| <= h) but computes inf / inf; elsewhere
    the operands are kept as they are, so finite points give the same bits.
    """
    h = hypot(y, x)
    limit = logical_and(at_infinity(h), logical_not(logical_or(isnan(x), isnan(y))))
    return where(limit, scalar(0, numerator), numerator), where(limit, scalar(1, h), h)


def _arctan2_y(g: Node, out: Node, y: Node, x: Node) -> Node:
    """d arctan2(y, x)/dy = x / (x^2 + y^2), as (x / h) / h with h = hypot(x, y) (no overflow); 0 where h is inf."""
    numerator, h = _arctan2_parts(x, y, x)
    return div(mul(g, div(numerator, h)), h)


def _arctan2_x(g: Node, out: Node, y: Node, x: Node) -> Node:
    """d arctan2(y, x)/dx = -y / (x^2 + y^2); 0 where h is inf."""
    numerator, h = _arctan2_parts(y, y, x)
    return neg(div(mul(g, div(numerator, h)), h))


arctan2 = _float_binary("arctan2", (_arctan2_y, _arctan2_x))


def _hypot_share(x: Node, out: Node) -> Node:
    """d hypot(x, y)/dx = x / hypot(x, y); 0 at the origin, and sign(x) or 0 where the hypot is infinite.

    The quotient is computed at x = 0, h = 1 in those two cases, so it stays finite.
    """
    zero = scalar(0, x)
    infinite = at_infinity(out)
    special = logical_or(equal(out, zero), infinite)
    ratio = div(where(special, zero, x), where(special, scalar(1, out), out))
    limit = where(at_infinity(x), sign(x), zero)
    return where(infinite, limit, ratio)


hypot = _float_binary(
    "hypot", (lambda g, out, x, y: mul(g, _hypot_share(x, out)), lambda g, out, x, y: mul(g, _hypot_share(y, out)))
)


def _log_add_exp_share(x: Node, y: Node) -> Node:
    """d logaddexp(x, y)/dx = sigmoid(x - y), taken as 1/2 when x and y are one same infinity."""
    same_infinity = logical_and(equal(x, y), at_infinity(x))
    return sigmoid(where(same_infinity, scalar(0, x), sub(x, y)))


logaddexp = _float_binary(
    "logaddexp",
    (lambda g, out, x, y: mul(g, _log_add_exp_share(x, y)), lambda g, out, x, y: mul(g, _log_add_exp_share(y, x))),
)

__all__ = [
    "ERF_CUTOFF", "arccos", "arccosh", "arcsin", "arcsinh", "arctan2", "arctanh", "at_infinity", "erf", "erfc",
    "exp2", "hypot", "log10", "logaddexp",
]  # fmt: skip
