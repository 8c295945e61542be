"""The scalar spelling of every elementwise op in LLVM IR: the EMITTERS table keyed by op name.

Imports numpy, llvmlite and the backend's vecmath. An emitter gets the IR values of
its operands (bools as i1) and returns the result's value, reproducing NumPy's
elementwise semantics bit for bit: IEEE arithmetic, NaN-propagating maximum/minimum
with NumPy's choice at ties of signed zeros, x86's INT64_MIN for float -> int casts of
NaN/inf/out-of-range values, round half to even. Transcendental functions are the
inline, vectorizable approximations of vecmath.py (within its documented ulps);
`pow` on floats calls the C library's pow (the scalar reference path), and sqrt where
the exponent is 0.5 (as NumPy's `x ** 0.5`); float `mod`/`floor_divide` call the C
library's fmod (exact) inside NumPy's own divmod steps.

sin, cos and tan are fast only for |x| <= vecmath.TRIG_MAX_ARG. In the default build a
kernel sets the STATUS_RANGE bit of its status when it meets a larger argument (the
entry then answers RERUN_EXACT, see lower.py); the `exact` build, made only when that
happens, takes the C library's function for those arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from graphc.backends.llvm.vecmath import MATH_FUNCTIONS, TRIG_MAX_ARG, TRIGONOMETRIC, math_function

F64 = ir.DoubleType()
F32 = ir.FloatType()
I64 = ir.IntType(64)
I32 = ir.IntType(32)
I8 = ir.IntType(8)
I1 = ir.IntType(1)
PTR = ir.PointerType()

STATUS_FAILED = 1  # a kernel's status bit: its error site failed (a bad index, a negative integer exponent)
STATUS_RANGE = 2  # a kernel's status bit: a sin/cos/tan argument beyond the fast range (rerun exactly)

_VALUE_TYPES = {"float64": F64, "float32": F32, "int64": I64, "bool": I1}
_MEMORY_TYPES = {"float64": F64, "float32": F32, "int64": I64, "bool": I8}


def value_type(dtype: np.dtype) -> ir.Type:
    """The register type of a dtype (bool is i1)."""
    return _VALUE_TYPES[dtype.name]


def memory_type(dtype: np.dtype) -> ir.Type:
    """The in-memory type of a dtype (bool is one byte, as in NumPy)."""
    return _MEMORY_TYPES[dtype.name]


def constant(value: bool | int | float, dtype: np.dtype) -> ir.Constant:
    if dtype.kind == "f":
        return ir.Constant(value_type(dtype), float(value))
    return ir.Constant(value_type(dtype), int(value))


def load(b: ir.IRBuilder, pointer: ir.Value, dtype: np.dtype) -> ir.Value:
    """Load one element; a bool byte is true when nonzero (as NumPy reads it)."""
    value = b.load(pointer, typ=memory_type(dtype), align=dtype.itemsize)
    if dtype.kind == "b":
        return b.icmp_unsigned("!=", value, ir.Constant(I8, 0))
    return value


def store(b: ir.IRBuilder, value: ir.Value, pointer: ir.Value, dtype: np.dtype) -> None:
    if dtype.kind == "b":
        value = b.zext(value, I8)
    b.store(value, pointer, align=dtype.itemsize)


def intrinsic(b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    """Call llvm.<name>.<f64|f32> on float operands of one type."""
    fptype = args[0].type
    suffix = "f64" if fptype == F64 else "f32"
    module = b.module
    full = f"llvm.{name}.{suffix}"
    fn = module.globals.get(full)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(fptype, [fptype] * len(args)), full)
    return b.call(fn, list(args))


@dataclass
class Scalar:
    """What an emitter may use: the builder, the kernel's i32 status slot (if any), the build.

    An emitter raises by setting a bit of the status (`flag`); `exact` is the build that
    takes the slow path for huge trigonometric arguments.
    """

    b: ir.IRBuilder
    error: ir.Value | None = None
    exact: bool = False
    out_of_range: list[ir.Value] = field(default_factory=list)

    def flag(self, condition: ir.Value, bit: int) -> None:
        """status |= bit where condition holds (branch-free: the loop still vectorizes)."""
        assert self.error is not None
        raised = self.b.shl(self.b.zext(condition, I32), ir.Constant(I32, bit.bit_length() - 1))
        self.b.store(self.b.or_(self.b.load(self.error, typ=I32), raised), self.error)

    def flush(self) -> None:
        """One STATUS_RANGE update per point for all the trigonometric arguments met there."""
        if not self.out_of_range:
            return
        any_huge = self.out_of_range[0]
        for condition in self.out_of_range[1:]:
            any_huge = self.b.or_(any_huge, condition)
        self.out_of_range.clear()
        self.flag(any_huge, STATUS_RANGE)


Emitter = Callable[[Scalar, list[ir.Value], list[np.dtype], np.dtype, dict], ir.Value]


# --- arithmetic -------------------------------------------------------------------------------------


def _by_kind(on_float: str, on_int: str, on_bool: str | None = None) -> Emitter:
    """A binary op spelled by one IRBuilder method per dtype kind."""

    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        kind = types[0].kind
        method = {"f": on_float, "i": on_int, "b": on_bool}[kind]
        if method is None:
            raise NotImplementedError(f"no bool spelling for {on_int}")
        return getattr(s.b, method)(*args)

    return emit


def _extremum(wins: str, on_bool: str) -> Emitter:
    """maximum/minimum: x when x wins or x is NaN, else y (so ties of signed zeros give y, as NumPy)."""

    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        b = s.b
        x, y = args
        kind = types[0].kind
        if kind == "b":
            return getattr(b, on_bool)(x, y)
        if kind == "i":
            return b.select(b.icmp_signed(wins, x, y), x, y)
        take_x = b.or_(b.fcmp_ordered(wins, x, y), b.fcmp_unordered("uno", x, x))
        return b.select(take_x, x, y)

    return emit


def _compare(op: str) -> Emitter:
    """Ordered float comparison (NaN compares false), except != which is unordered (NaN != NaN)."""

    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        kind = types[0].kind
        if kind == "f":
            if op == "!=":
                return s.b.fcmp_unordered(op, *args)
            return s.b.fcmp_ordered(op, *args)
        if kind == "i":
            return s.b.icmp_signed(op, *args)
        return s.b.icmp_unsigned(op, *args)

    return emit


def _neg(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    (x,) = args
    if types[0].kind == "f":
        return s.b.fneg(x)
    return s.b.sub(ir.Constant(x.type, 0), x)


def _pow(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    """C pow, but sqrt where the exponent is 0.5: NaN at -inf and -0.0 at -0.0, as NumPy's x ** 0.5."""
    if types[0].kind != "f":
        return _int_pow(s, *args)
    x, y = args
    half = s.b.fcmp_ordered("==", y, ir.Constant(y.type, 0.5))
    return s.b.select(half, intrinsic(s.b, "sqrt", x), intrinsic(s.b, "pow", x, y))


def _int_pow(s: Scalar, base: ir.Value, exponent: ir.Value) -> ir.Value:
    """base ** exponent by repeated squaring (wrapping, as NumPy); a negative exponent raises."""
    b = s.b
    zero, one = ir.Constant(I64, 0), ir.Constant(I64, 1)
    negative = b.icmp_signed("<", exponent, zero)
    if s.error is not None:
        s.flag(negative, STATUS_FAILED)
    start = b.block
    loop = b.append_basic_block("pow.loop")
    done = b.append_basic_block("pow.done")
    b.cbranch(b.icmp_signed(">", exponent, zero), loop, done)
    b.position_at_end(loop)
    result = b.phi(I64)
    square = b.phi(I64)
    left = b.phi(I64)
    odd = b.icmp_unsigned("!=", b.and_(left, one), zero)
    new_result = b.select(odd, b.mul(result, square), result)
    new_square = b.mul(square, square)
    new_left = b.ashr(left, one)
    result.add_incoming(one, start)
    square.add_incoming(base, start)
    left.add_incoming(exponent, start)
    result.add_incoming(new_result, loop)
    square.add_incoming(new_square, loop)
    left.add_incoming(new_left, loop)
    b.cbranch(b.icmp_signed(">", new_left, zero), loop, done)
    b.position_at_end(done)
    value = b.phi(I64)
    value.add_incoming(one, start)
    value.add_incoming(new_result, loop)
    return b.select(negative, zero, value)


def _float_divmod(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(floor_divide, remainder) of floats exactly as NumPy's npy_divmod computes them.

    mod = fmod(x, y) (exact); div = (x - mod) / y; where mod is nonzero (NaN counts) and its
    sign differs from y's, mod += y and div -= 1; a zero mod takes y's sign; the quotient is
    floor(div), plus 1 where div - floor(div) > 1/2, and a zero quotient takes the sign of
    x / y. Division by zero: x / y and fmod(x, 0) = NaN.
    """
    zero = ir.Constant(x.type, 0.0)
    one = ir.Constant(x.type, 1.0)
    mod = b.frem(x, y)
    div = b.fdiv(b.fsub(x, mod), y)
    mod_set = b.fcmp_unordered("!=", mod, zero)
    fix = b.and_(mod_set, b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
    div = b.select(fix, b.fsub(div, one), div)
    remainder = b.select(mod_set, b.select(fix, b.fadd(mod, y), mod), intrinsic(b, "copysign", zero, y))
    floor = intrinsic(b, "floor", div)
    up = b.fcmp_ordered(">", b.fsub(div, floor), ir.Constant(x.type, 0.5))
    floor = b.select(up, b.fadd(floor, one), floor)
    quotient = b.select(b.fcmp_unordered("!=", div, zero), floor, intrinsic(b, "copysign", zero, b.fdiv(x, y)))
    by_zero = b.fcmp_ordered("==", y, zero)
    return b.select(by_zero, b.fdiv(x, y), quotient), b.select(by_zero, mod, remainder)


def _int_divmod(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(floor_divide, remainder) of int64 as NumPy: 0 for a zero divisor, INT64_MIN // -1 = INT64_MIN (wraps)."""
    zero, one = ir.Constant(I64, 0), ir.Constant(I64, 1)
    by_zero = b.icmp_signed("==", y, zero)
    overflow = b.and_(b.icmp_signed("==", x, ir.Constant(I64, -(2**63))), b.icmp_signed("==", y, ir.Constant(I64, -1)))
    safe = b.select(b.or_(by_zero, overflow), one, y)
    quotient, remainder = b.sdiv(x, safe), b.srem(x, safe)
    fix = b.and_(b.icmp_signed("!=", remainder, zero), b.icmp_signed("<", b.xor(remainder, safe), zero))
    quotient = b.select(fix, b.sub(quotient, one), quotient)
    remainder = b.select(fix, b.add(remainder, safe), remainder)
    return b.select(by_zero, zero, quotient), b.select(by_zero, zero, remainder)


def _divmod(part: int) -> Emitter:
    """floor_divide (part 0) or mod (part 1), as NumPy computes them for floats and int64."""

    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        if types[0].kind == "f":
            return _float_divmod(s.b, *args)[part]
        return _int_divmod(s.b, *args)[part]

    return emit


# --- predicates and selection --------------------------------------------------------------------------


def _logical(method: str) -> Emitter:
    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        if method == "not_":
            return s.b.xor(args[0], ir.Constant(I1, 1))
        return getattr(s.b, method)(*args)

    return emit


def _isnan(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    return s.b.fcmp_unordered("uno", args[0], args[0])


def _isfinite(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    magnitude = intrinsic(s.b, "fabs", args[0])
    return s.b.fcmp_ordered("<", magnitude, ir.Constant(args[0].type, float("inf")))


def _where(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    return s.b.select(*args)


# --- unary math -----------------------------------------------------------------------------------------


def _vecmath(name: str) -> Emitter:
    """A vecmath function; for sin/cos/tan outside the exact build, flag arguments beyond the fast range."""
    checked = name in TRIGONOMETRIC

    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        value = s.b.call(math_function(s.b.module, name, args[0].type, exact=checked and s.exact), args)
        if checked and not s.exact:
            (x,) = args
            s.out_of_range.append(s.b.fcmp_ordered(">", intrinsic(s.b, "fabs", x), ir.Constant(x.type, TRIG_MAX_ARG)))
        return value

    return emit


def _float_intrinsic(name: str) -> Emitter:
    """A float intrinsic; the identity on integers and bools (floor/round of an integer is itself)."""

    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        if types[0].kind != "f":
            return args[0]
        return intrinsic(s.b, name, args[0])

    return emit


def _abs(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    (x,) = args
    kind = types[0].kind
    if kind == "f":
        return intrinsic(s.b, "fabs", x)
    if kind == "b":
        return x
    return s.b.select(s.b.icmp_signed("<", x, ir.Constant(I64, 0)), s.b.neg(x), x)


def _sign(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    """1, -1, 0 (+0.0 for both zeros), and NaN for NaN, as NumPy."""
    b = s.b
    (x,) = args
    if types[0].kind == "i":
        zero = ir.Constant(I64, 0)
        positive = b.zext(b.icmp_signed(">", x, zero), I64)
        negative = b.zext(b.icmp_signed("<", x, zero), I64)
        return b.sub(positive, negative)
    zero = ir.Constant(x.type, 0.0)
    nonzero = b.select(b.fcmp_ordered("==", x, zero), zero, x)
    negative = b.select(b.fcmp_ordered("<", x, zero), ir.Constant(x.type, -1.0), nonzero)
    return b.select(b.fcmp_ordered(">", x, zero), ir.Constant(x.type, 1.0), negative)


def _relu(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    """maximum(x, 0): x when x > 0 or x is NaN, else +0.0."""
    (x,) = args
    zero = ir.Constant(x.type, 0.0)
    return s.b.select(s.b.fcmp_unordered(">", x, zero), x, zero)


# --- casts ------------------------------------------------------------------------------------------------


def cast(b: ir.IRBuilder, x: ir.Value, source: np.dtype, target: np.dtype) -> ir.Value:
    """NumPy's astype between float64, float32, int64 and bool."""
    if source == target:
        return x
    to = value_type(target)
    if target.kind == "b":
        if source.kind == "f":
            return b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))
        return b.icmp_unsigned("!=", x, ir.Constant(x.type, 0))
    if source.kind == "b":
        return b.uitofp(x, to) if target.kind == "f" else b.zext(x, to)
    if source.kind == "i":
        return b.sitofp(x, to)
    if target.kind == "i":
        return _float_to_int(b, x)
    return b.fpext(x, to) if target.itemsize > source.itemsize else b.fptrunc(x, to)


def _float_to_int(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Truncation toward zero; NaN, infinities and values out of range give INT64_MIN, as x86 does."""
    limit = ir.Constant(x.type, 2.0**63)
    in_range = b.and_(b.fcmp_ordered(">=", x, b.fneg(limit)), b.fcmp_ordered("<", x, limit))
    safe = b.select(in_range, x, ir.Constant(x.type, 0.0))
    return b.select(in_range, b.fptosi(safe, I64), ir.Constant(I64, -(2**63)))


def _astype(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
    return cast(s.b, args[0], types[0], out)


def _bitwise(method: str) -> Emitter:
    """and/or/xor of int64 or bool (i1) operands: one IRBuilder method for both."""

    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        return getattr(s.b, method)(*args)

    return emit


def _shift(method: str) -> Emitter:
    """x << y or x >> y (arithmetic) on int64; a shift outside [0, 63] gives what NumPy gives.

    That is 0 for a left shift, and the sign (x >> 63) for a right shift. LLVM's own result
    for such an amount is poison, so the amount is masked first and the select decides.
    """

    def emit(s: Scalar, args: list[ir.Value], types: list[np.dtype], out: np.dtype, attrs: dict) -> ir.Value:
        b = s.b
        x, y = args
        width = ir.Constant(I64, 63)
        shifted = getattr(b, method)(x, b.and_(y, width))
        fallback = b.ashr(x, width) if method == "ashr" else ir.Constant(I64, 0)
        return b.select(b.icmp_unsigned("<=", y, width), shifted, fallback)

    return emit


EMITTERS: dict[str, Emitter] = {
    "add": _by_kind("fadd", "add", "or_"),
    "sub": _by_kind("fsub", "sub"),
    "mul": _by_kind("fmul", "mul", "and_"),
    "div": _by_kind("fdiv", "sdiv"),
    "pow": _pow,
    "floor_divide": _divmod(0),
    "mod": _divmod(1),
    "neg": _neg,
    "maximum": _extremum(">", "or_"),
    "minimum": _extremum("<", "and_"),
    "less": _compare("<"),
    "less_equal": _compare("<="),
    "greater": _compare(">"),
    "greater_equal": _compare(">="),
    "equal": _compare("=="),
    "not_equal": _compare("!="),
    "logical_and": _logical("and_"),
    "logical_or": _logical("or_"),
    "logical_not": _logical("not_"),
    "isnan": _isnan,
    "isfinite": _isfinite,
    "where": _where,
    **{name: _vecmath(name) for name in MATH_FUNCTIONS},
    "sqrt": _float_intrinsic("sqrt"),
    "floor": _float_intrinsic("floor"),
    "round": _float_intrinsic("roundeven"),
    "abs": _abs,
    "sign": _sign,
    "relu": _relu,
    "astype": _astype,
    "bitwise_and": _bitwise("and_"),
    "bitwise_or": _bitwise("or_"),
    "bitwise_xor": _bitwise("xor"),
    "left_shift": _shift("shl"),
    "right_shift": _shift("ashr"),
}


def combine(b: ir.IRBuilder, kind: str, acc: ir.Value, x: ir.Value, dtype: np.dtype) -> ir.Value:
    """One step of a reduction: sum, prod, max or min of an accumulator and a value."""
    s = Scalar(b)
    if kind == "sum":
        return EMITTERS["add"](s, [acc, x], [dtype, dtype], dtype, {})
    if kind == "prod":
        return EMITTERS["mul"](s, [acc, x], [dtype, dtype], dtype, {})
    return EMITTERS["maximum" if kind == "max" else "minimum"](s, [acc, x], [dtype, dtype], dtype, {})
