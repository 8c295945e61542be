"""Vectorizable transcendental functions emitted as LLVM IR.

Responsibility: define, once per module, an internal ``alwaysinline`` function
``graphc.<name>.f64`` / ``graphc.<name>.f32`` for each name in ``MATH_FUNCTIONS``.
Bodies are straight-line arithmetic (fma, bit operations on the exponent, selects for
special values): no branches and no libm calls, so once inlined into a loop LLVM's
loop vectorizer turns them into SIMD code. float32 extends to double, runs the
float64 body and rounds once. ``llvm.fma`` needs hardware FMA to be fast (x86-64-v3,
AArch64); without it LLVM lowers it to a call of libm's fma. Imports: llvmlite only.

Techniques: exp-like functions reduce ``x = k ln2 + r`` (Cody-Waite, ln2 split in two
parts on fma; ``2^k`` is built in the exponent bits and applied in two halves, so
overflow and gradual underflow round once); logs split ``x = 2^k m``, ``m`` in
[sqrt(1/2), sqrt(2)), and use ``s = (m - 1) / (m + 1)`` as fdlibm does (log2 adds
``log(m) / ln2`` to ``k`` with 1/ln2 in two parts, so powers of two are exact); sin,
cos and tan reduce by pi/2 split in three parts on fma; arctan reduces to
``|z| <= tan(pi/8)`` with one division. Polynomials are minimax fits (Remez exchange in
mpmath, 60 digits), evaluated by Estrin's scheme; their error is below 2^-51 relative to
a term that is at most a tenth of the result, so the rounding of the last few operations
dominates.

Max error in float64 ulps, measured over 3-5 million points per function (10^6 each
uniform over the function's range, uniform on [-3, 3], log-uniform magnitudes of both
signs, and per function [-1, 1] and positive magnitudes, or multiples of pi/2 and
[-1e6, 1e6]; plus the edge values of the tests), against NumPy (integer ulps) and
against an 80-bit long double reference (fractional ulps), with the bound each
function was designed for. sigmoid's NumPy column is the long double reference
rounded; float32 results equal NumPy's float64 rounded to float32 on every point.
The functions added with API.md §9 were measured by benchmarks/vecmath_accuracy.py
(1.0-1.75 million points each; erf and erfc against the C library, which NumPy lacks,
and against mpmath on 50,000 of the points; logaddexp outside the band where its sum
cancels, inside it within an ulp of NumPy's in units of the operands).

    ========  ========  ===========  ======
    function  vs NumPy  vs long dbl  design
    ========  ========  ===========  ======
    exp       1         0.99         1
    expm1     2         1.91         2
    log       1         0.81         1
    log2      2         1.61         2
    log1p     1         0.82         1
    tanh      2         1.48         2
    sin       1         1.47         1.5
    cos       1         1.48         1.5
    tan       2         2.24         2.5
    sinh      2         1.63         2
    cosh      1         1.39         1.5
    arctan    2         2.18         2.5
    sigmoid   2         2.25         2.5
    softplus  2         1.62         2
    arcsin    2         1.52         2
    arccos    1         1.02         1.5
    arcsinh   2         1.65         2
    arccosh   2         1.88         2
    arctanh   1         1.56         2
    log10     2         1.54         2
    exp2      1         1.00         1
    erf       2         2.00         2.5
    erfc      4         2.00         2.5
    arctan2   2         2.48         3
    hypot     1         0.50         1
    logaddexp 2         1.92         2.5
    ========  ========  ===========  ======

Special values follow NumPy: NaN in, NaN out; overflow and gradual underflow happen
where NumPy's do (exp: inf above 709.782712893384, subnormal below -708.39, 0 below
-745.1332191019412; sinh and cosh: inf beyond 710.4758600739439); the sign of zero is
kept where NumPy keeps it (expm1, log1p, tanh, sin, tan, sinh, arctan, arcsin, arcsinh,
arctanh, erf); arctan2 follows C99's table for zeros and infinities, hypot(inf, NaN) is
inf, exp2 is exact at integers, erfc is subnormal from x = 26.55 and 0 above 27.23 (as
the C library's; scipy.special.erfc flushes to 0 above 26.64 and is off by up to ~500
ulp for large x).

New kernels: asin and acos reduce |x| > 1/2 to asin(sqrt((1-|x|)/2)), the square root's
rounding carried by fma (fdlibm's scheme); asinh, acosh and atanh are one log of a sum
(fdlibm's splits at 2 and 2^28); log10 is log's reduction with log10(2) and 1/ln10 in two
parts; exp2 rounds x to k + r exactly; erf is a series below 1/2 and 1 - erfc above; erfc
is exp(-x^2) times a polynomial in Shepherd and Laframboise's variable (Math. Comp. 36
(1981) 249-253); hypot is Borges's fma-corrected square root (ACM TOMS 47 (2021));
arctan2 divides once and reuses arctan's reduction; logaddexp is NumPy's max +
log1p(exp(-|x - y|)).

sin, cos and tan reduce by pi/2 in three parts (no Payne-Hanek reduction): the reduced
argument is off by under |x| 2^-164 plus about an ulp of rounding; as no double lies
within 2^-61 of a multiple of pi/2, that stays under an ulp of the result for all
|x| <= ``TRIG_MAX_ARG`` = 2^50 (measured: within 2 ulps up to there, multiples of pi/2
and their neighbours included). Beyond it the fast functions return NaN, and the caller
(emitters.py) flags the argument so that the program is run again with the ``exact``
variants ``graphc.<name>.exact.<f64|f32>``: the same fast body, and for |x| > 2^50 a
branch to the C library's sin/cos/tan (full-range reduction; the values NumPy gives).
The branch keeps those loops scalar, which is why only the rerun pays for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from llvmlite import ir

_F64 = ir.DoubleType()
_F32 = ir.FloatType()
_I64 = ir.IntType(64)

_Operand: TypeAlias = ir.Value | float
_Pair: TypeAlias = tuple[ir.Value, ir.Value]

_INF = float("inf")
_NAN = float("nan")
TRIG_MAX_ARG = 2.0**50

# Adding 1.5 * 2^52 rounds a double of magnitude < 2^51 to an integer, which then
# sits in the low mantissa bits.
_SHIFT = 6755399441055744.0
_SHIFT_BITS = 0x4338000000000000
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD

_INV_LN2 = 1.4426950408889634
_INV_LN2_LO = 2.0355273740931033e-17  # 1/ln2 = _INV_LN2 + _INV_LN2_LO
_LN2_C1 = 0.6931471805599453  # ln2 = C1 + C2, for fma reduction
_LN2_C2 = 2.3190468138462996e-17
_LN2_HI = 0.6931471805598903  # 42 bits: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 5.497923018708371e-14
_TWO_OVER_PI = 0.6366197723675814
_PIO2_C1 = 1.5707963267948966  # pi/2 = C1 + C2 + C3
_PIO2_C2 = 6.123233995736766e-17
_PIO2_C3 = -1.4973849048591698e-33
_PIO4_HI = 0.7853981633974483
_PIO4_LO = 3.061616997868383e-17
_TAN_PI_8 = 0.41421356237309503
_TAN_3PI_8 = 2.414213562373095
_PI_HI = 3.141592653589793  # pi = _PI_HI + _PI_LO
_PI_LO = 1.2246467991473532e-16
_INV_LN10 = 0.4342944819032518  # 1/ln10 = _INV_LN10 + _INV_LN10_LO
_INV_LN10_LO = 1.098319650216765e-17
_LOG10_2_HI = 0.3010299955494702  # 32 bits: k * _LOG10_2_HI is exact for |k| < 2^21
_LOG10_2_LO = 1.1451100898021838e-10
_ERFC_K = 4.0  # erfc's argument map y = (a - K) / (a + K), then t = y * SCALE + SHIFT in [-1, 1]
_ERFC_T_SCALE = 1.312329864261773
_ERFC_T_SHIFT = 0.020960259995185273

# (e^r - 1 - r) / r^2 on |r| <= 0.3468
_EXP_P = (
    0.5, 0.1666666666666667, 0.041666666666666616, 0.00833333333332614, 0.0013888888888918072, 0.0001984126987482129,
    2.4801587245580904e-05, 2.755725538668426e-06, 2.7557349674898227e-07, 2.5105226735711816e-08,
    2.088938825354019e-09,
)  # fmt: skip
# (2 atanh(s) / s - 2) / s^2 as a polynomial in z = s^2 <= 0.02947
_LOG_R = (
    0.666666666666667, 0.3999999999989856, 0.2857142862638531, 0.22222211070315778, 0.18182893681613155,
    0.15331574009347526, 0.14618234076337422,
)  # fmt: skip
# (tanh(x) - x) / x^3 in w = x^2 <= 0.3025
_TANH_T = (
    -0.3333333333333333, 0.13333333333332714, -0.05396825396743444, 0.021869488493684794, -0.008863234398196612,
    0.0035921103833924523, -0.0014556618653461058, 0.0005889362155215289, -0.00023463519962814625,
    8.511384891868643e-05, -2.0603235412678374e-05,
)  # fmt: skip
# (sinh(x) - x) / x^3 in w = x^2 <= 1
_SINH_S = (
    0.16666666666666666, 0.0083333333333333, 0.00019841269841323517, 2.7557319191673284e-06, 2.5052117639609854e-08,
    1.6057684634227548e-10, 7.746011410614372e-13,
)  # fmt: skip
# (sin(r) - r) / r^3 in z = r^2 <= (pi/4)^2 * 1.001
_SIN_S = (
    -0.16666666666666666, 0.008333333333333331, -0.00019841269841265003, 2.7557319219294702e-06,
    -2.5052106217919477e-08, 1.605852943508893e-10, -7.586574216518038e-13,
)  # fmt: skip
# (cos(r) - 1 + r^2/2) / r^4 in z = r^2 <= (pi/4)^2 * 1.001
_COS_C = (
    0.041666666666666664, -0.001388888888888738, 2.4801587298741877e-05, -2.7557317260204443e-07,
    2.087614400001599e-09, -1.1382476700908169e-11,
)  # fmt: skip
# (atan(z) - z) / z^3 in w = z^2 <= tan(pi/8)^2 * 1.001
_ATAN_A = (
    -0.3333333333333333, 0.19999999999999807, -0.14285714285660275, 0.11111111105192387, -0.09090908755047898,
    0.07692296412418058, -0.06666425441166511, 0.05878934200951198, -0.05230484812765183, 0.0455170066981223,
    -0.034572585257704624, 0.016287254870300118,
)  # fmt: skip

# (asin(s) - s) / s^3 in u = s^2 <= 0.25
_ASIN_P = (
    0.16666666666666674, 0.07499999999993234, 0.04464285715427468, 0.030381943635526334, 0.022372190079469802,
    0.017352039497321215, 0.013975911061772407, 0.011437497139690512, 0.010571994030520832, 0.004465721315173002,
    0.019920241557392863, -0.01854747208122802, 0.03113977409072779,
)  # fmt: skip
# (erf(x) - x) / x in v = x^2 <= 0.25
_ERF_Q = (
    0.12837916709551256, -0.37612638903183465, 0.11283791670924792, -0.02686617063270846, 0.005223977370201248,
    -0.0008548297512869815, 0.00012053323728656276, -1.4845568349277244e-05, 1.472305156343082e-06,
)  # fmt: skip
# (1 + 2a) exp(a^2) erfc(a) in t over a in [0.4995, 27.5] (see _erfc_tail)
_ERFC_F = (
    1.235228757295879, -0.10672515346513743, 0.00694353446719335, 0.03309433997023479, -0.03667681491563341,
    0.02576629454832704, -0.013821857794649414, 0.005860191769777468, -0.0019244344344049676,
    0.00044609347834191545, -4.753620072320327e-05, -1.1497175233665786e-05, 5.956393178217073e-06,
    -6.347907737038931e-07, -2.7996533561630065e-07, 9.499978585657778e-08, 6.781437879628716e-09,
    -8.229122091095824e-09, 2.5995546822863023e-10, 6.172769175569675e-10, -3.82978882698457e-11,
    -3.364788429738677e-11,
)  # fmt: skip


class _Emitter:
    """Double-precision arithmetic on one IRBuilder; Python floats become constants."""

    def __init__(self, builder: ir.IRBuilder) -> None:
        self.b = builder

    def v(self, x: _Operand) -> ir.Value:
        return ir.Constant(_F64, x) if isinstance(x, float) else x

    def add(self, x: _Operand, y: _Operand) -> ir.Value:
        return self.b.fadd(self.v(x), self.v(y))

    def sub(self, x: _Operand, y: _Operand) -> ir.Value:
        return self.b.fsub(self.v(x), self.v(y))

    def mul(self, x: _Operand, y: _Operand) -> ir.Value:
        return self.b.fmul(self.v(x), self.v(y))

    def div(self, x: _Operand, y: _Operand) -> ir.Value:
        return self.b.fdiv(self.v(x), self.v(y))

    def neg(self, x: ir.Value) -> ir.Value:
        return self.b.fneg(x)

    def fma(self, x: _Operand, y: _Operand, z: _Operand) -> ir.Value:
        """x * y + z with one rounding."""
        return self._intrinsic("llvm.fma.f64", x, y, z)

    def abs(self, x: ir.Value) -> ir.Value:
        return self._intrinsic("llvm.fabs.f64", x)

    def sqrt(self, x: _Operand) -> ir.Value:
        """The correctly rounded square root (one instruction)."""
        return self._intrinsic("llvm.sqrt.f64", x)

    def copysign(self, magnitude: ir.Value, sign: ir.Value) -> ir.Value:
        return self._intrinsic("llvm.copysign.f64", magnitude, sign)

    def lt(self, x: _Operand, y: _Operand) -> ir.Value:
        """x < y, false for NaN."""
        return self.b.fcmp_ordered("<", self.v(x), self.v(y))

    def gt(self, x: _Operand, y: _Operand) -> ir.Value:
        return self.b.fcmp_ordered(">", self.v(x), self.v(y))

    def eq(self, x: _Operand, y: _Operand) -> ir.Value:
        return self.b.fcmp_ordered("==", self.v(x), self.v(y))

    def lt_or_nan(self, x: _Operand, y: _Operand) -> ir.Value:
        return self.b.fcmp_unordered("<", self.v(x), self.v(y))

    def isnan(self, x: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", x, x)

    def sign_bit(self, x: ir.Value) -> ir.Value:
        """Whether x's sign bit is set (-0.0 and negative NaNs included)."""
        return self.b.icmp_signed("<", self.bits(x), self._int(0))

    def larger(self, x: ir.Value, y: ir.Value) -> ir.Value:
        """x if x > y, else y (y when either is NaN)."""
        return self.select(self.gt(x, y), x, y)

    def select(self, cond: ir.Value, x: _Operand, y: _Operand) -> ir.Value:
        return self.b.select(cond, self.v(x), self.v(y))

    def clamp(self, x: ir.Value, lo: float, hi: float) -> ir.Value:
        """x limited to [lo, hi]; NaN stays NaN."""
        return self.select(self.gt(x, hi), hi, self.select(self.lt(x, lo), lo, x))

    def keep_tiny(self, x: ir.Value, y: ir.Value, bound: float) -> ir.Value:
        """x where |x| < bound (f(x) rounds to x there, signed zeros kept), else y."""
        return self.select(self.lt(self.abs(x), bound), x, y)

    def poly(self, x: ir.Value, coefs: tuple[float, ...]) -> ir.Value:
        """sum(coefs[i] * x**i) by Estrin's scheme on fma.

        Pairs a + b x, then pairs of those times x^2, x^4, ...: the dependency chain
        is log2(len(coefs)) fmas long instead of len(coefs) for Horner's rule, which
        is what limits a vectorized loop full of polynomials.
        """
        terms: list[_Operand] = list(coefs)
        power = x
        while len(terms) > 1:
            pairs = [self.fma(hi, power, lo) for lo, hi in zip(terms[::2], terms[1::2], strict=False)]
            terms = pairs + terms[len(pairs) * 2 :]
            if len(terms) > 1:
                power = self.mul(power, power)
        return self.v(terms[0])

    def two_sum(self, x: _Operand, y: _Operand) -> tuple[ir.Value, ir.Value]:
        """(s, err) with s = fl(x + y) and s + err = x + y exactly (Knuth)."""
        s = self.add(x, y)
        y_part = self.sub(s, x)
        x_part = self.sub(s, y_part)
        return s, self.add(self.sub(x, x_part), self.sub(y, y_part))

    def bits(self, x: ir.Value) -> ir.Value:
        return self.b.bitcast(x, _I64)

    def from_bits(self, i: ir.Value) -> ir.Value:
        return self.b.bitcast(i, _F64)

    def iadd(self, i: ir.Value, j: int | ir.Value) -> ir.Value:
        return self.b.add(i, self._int(j))

    def isub(self, i: ir.Value, j: int | ir.Value) -> ir.Value:
        return self.b.sub(i, self._int(j))

    def shl(self, i: ir.Value, n: int) -> ir.Value:
        return self.b.shl(i, self._int(n))

    def ashr(self, i: ir.Value, n: int) -> ir.Value:
        return self.b.ashr(i, self._int(n))

    def bit_set(self, i: ir.Value, bit: int) -> ir.Value:
        mask = self._int(1 << bit)
        return self.b.icmp_unsigned("!=", self.b.and_(i, mask), self._int(0))

    def flip_sign_if(self, x: ir.Value, i: ir.Value, bit: int) -> ir.Value:
        """-x where the given bit of the integer i is set, else x."""
        sign = self.shl(self.b.and_(i, self._int(1 << bit)), 63 - bit)
        return self.from_bits(self.b.xor(self.bits(x), sign))

    def to_double(self, i: ir.Value) -> ir.Value:
        return self.b.sitofp(i, _F64)

    def pow2(self, k: ir.Value) -> ir.Value:
        """2^k for an integer k in the normal exponent range."""
        return self.from_bits(self.shl(self.iadd(k, 1023), 52))

    def _int(self, j: int | ir.Value) -> ir.Value:
        return ir.Constant(_I64, j) if isinstance(j, int) else j

    def _intrinsic(self, name: str, *args: _Operand) -> ir.Value:
        module = self.b.module
        fn = module.globals.get(name)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(_F64, [_F64] * len(args)), name)
        return self.b.call(fn, [self.v(a) for a in args])


def _reduce_ln2(e: _Emitter, x: ir.Value, scale: float = 1.0) -> tuple[ir.Value, ir.Value]:
    """(k, r) with scale x = k ln2 + r, |r| <= ln2/2, k an i64; |scale x| < 2^50.

    scale is a power of two, folded into the first fma to keep the chain short.
    """
    t = e.fma(x, scale * _INV_LN2, _SHIFT)
    minus_k = e.sub(_SHIFT, t)
    scaled_x = x if scale == 1.0 else e.mul(x, scale)
    r = e.fma(minus_k, _LN2_C1, scaled_x)  # exact: a multiple of ulp(x), below 1
    r = e.fma(minus_k, _LN2_C2, r)
    return e.isub(e.bits(t), _SHIFT_BITS), r


def _expm1_reduced(e: _Emitter, r: ir.Value) -> ir.Value:
    """expm1(r) for |r| <= ln2/2 as r + r^2 P(r)."""
    return e.fma(e.mul(r, r), e.poly(r, _EXP_P), r)


def _exp_core(e: _Emitter, x: ir.Value, shift: int = 0, times: ir.Value | None = None) -> ir.Value:
    """exp(x) * 2^shift (* times) for |x| <= 1000 or NaN, as (2^k1 + 2^k1 expm1(r)) 2^k2.

    k = k1 + k2 is split in halves so that both powers are normal and an overflowing
    or subnormal result is rounded once, by the last product (`times`, a normal number,
    multiplies before it).
    """
    k, r = _reduce_ln2(e, x)
    return _scaled(e, e.iadd(k, shift), _expm1_reduced(e, r), times)


def _scaled(e: _Emitter, k: ir.Value, expm1_r: ir.Value, times: ir.Value | None = None) -> ir.Value:
    """2^k (1 + expm1_r) (* times), k split in two halves as in _exp_core (2^k1 times is exact)."""
    k1 = e.ashr(k, 1)
    s1 = e.pow2(k1)
    if times is not None:
        s1 = e.mul(s1, times)
    return e.mul(e.fma(s1, expm1_r, s1), e.pow2(e.isub(k, k1)))


def _exp_normal(e: _Emitter, x: ir.Value, scale: float = 1.0) -> ir.Value:
    """exp(scale x) for |scale x| <= 700 (a normal result) or NaN."""
    k, r = _reduce_ln2(e, x, scale)
    s = e.pow2(k)
    return e.fma(s, _expm1_reduced(e, r), s)


def _exp(e: _Emitter, x: ir.Value) -> ir.Value:
    """exp(x); over [-1000, 1000] overflow to inf and underflow to 0 come out exact."""
    y = e.select(e.lt(x, -1000.0), 0.0, _exp_core(e, x))
    return e.select(e.gt(x, 1000.0), _INF, y)


def _expm1(e: _Emitter, x: ir.Value) -> ir.Value:
    """expm1(x) = 2 (2^(k-1) expm1(r) + 2^(k-1) - 1/2), one rounding in the fma."""
    k, r = _reduce_ln2(e, e.clamp(x, -45.0, 710.0))
    half_scale = e.pow2(e.isub(k, 1))
    y = e.fma(half_scale, _expm1_reduced(e, r), e.sub(half_scale, 0.5))
    return e.keep_tiny(x, e.mul(y, 2.0), 2.0**-54)


def _split_exponent(e: _Emitter, u: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(k, m) with u = 2^k m, m in [sqrt(1/2), sqrt(2)), k a double; u > 0 normal."""
    bits = e.bits(u)
    k = e.ashr(e.isub(bits, _SQRT_HALF_BITS), 52)
    m = e.from_bits(e.isub(bits, e.shl(k, 52)))
    return e.to_double(k), m


def _log_core(e: _Emitter, k: _Operand, m: ir.Value, c: _Operand) -> ir.Value:
    """k ln2 + log(m) + c for m in [sqrt(1/2), sqrt(2)] and a tiny correction c.

    With f = m - 1 (exact) and s = f / (m + 1), log(m) = f - f^2/2 + s f^2/2 +
    s s^2 P(s^2): the rounding of s only reaches the last terms, below f^3/4.
    """
    f = e.sub(m, 1.0)
    s = e.div(f, e.add(m, 1.0))
    z = e.mul(s, s)
    hfsq = e.mul(f, e.mul(0.5, f))
    small = e.fma(s, hfsq, e.fma(k, _LN2_LO, c))
    tail = e.fma(e.mul(s, z), e.poly(z, _LOG_R), small)
    return e.fma(k, _LN2_HI, e.sub(f, e.sub(hfsq, tail)))


def _log(e: _Emitter, x: ir.Value) -> ir.Value:
    """log(x); subnormals are scaled by 2^54 first."""
    subnormal = e.lt(x, 2.0**-1022)
    k, m = _split_exponent(e, e.select(subnormal, e.mul(x, 2.0**54), x))
    k = e.sub(k, e.select(subnormal, 54.0, 0.0))
    y = _log_core(e, k, m, 0.0)
    y = e.select(e.eq(x, _INF), _INF, y)
    y = e.select(e.eq(x, 0.0), -_INF, y)
    return e.select(e.lt_or_nan(x, 0.0), _NAN, y)


def _log2(e: _Emitter, x: ir.Value) -> ir.Value:
    """log2(x) = k + log(m) / ln2 for x = 2^k m: exact at powers of two; subnormals scaled by 2^54 first."""
    subnormal = e.lt(x, 2.0**-1022)
    k, m = _split_exponent(e, e.select(subnormal, e.mul(x, 2.0**54), x))
    k = e.sub(k, e.select(subnormal, 54.0, 0.0))
    log_m = _log_core(e, 0.0, m, 0.0)
    y = e.fma(log_m, _INV_LN2, e.fma(log_m, _INV_LN2_LO, k))
    y = e.select(e.eq(x, _INF), _INF, y)
    y = e.select(e.eq(x, 0.0), -_INF, y)
    return e.select(e.lt_or_nan(x, 0.0), _NAN, y)


def _log1p(e: _Emitter, x: ir.Value) -> ir.Value:
    """log1p(x) = log(u) + err/u where u + err = 1 + x exactly."""
    u, err = e.two_sum(1.0, x)
    k, m = _split_exponent(e, u)
    y = _log_core(e, k, m, e.div(err, u))
    y = e.select(e.eq(x, _INF), _INF, y)
    y = e.select(e.eq(x, -1.0), -_INF, y)
    y = e.select(e.lt_or_nan(x, -1.0), _NAN, y)
    return e.keep_tiny(x, y, 2.0**-54)


def _odd_series(e: _Emitter, a: ir.Value, coefs: tuple[float, ...]) -> ir.Value:
    """a + a^3 P(a^2)."""
    w = e.mul(a, a)
    return e.fma(e.mul(a, w), e.poly(w, coefs), a)


def _tanh(e: _Emitter, x: ir.Value) -> ir.Value:
    """tanh|x| = series below 0.55, else 1 - 2 t / (1 + t), t = e^(-2|x|); sign copied."""
    a = e.abs(x)
    t = _exp_normal(e, a, scale=-2.0)
    big = e.fma(e.mul(-2.0, t), e.div(1.0, e.add(1.0, t)), 1.0)
    y = e.select(e.lt(a, 0.55), _odd_series(e, a, _TANH_T), big)
    return e.copysign(e.select(e.gt(a, 20.0), 1.0, y), x)


def _sinh(e: _Emitter, x: ir.Value) -> ir.Value:
    """sinh|x| = series below 1, else h - 1/(4h) with h = e^|x| / 2; sign copied."""
    a = e.abs(x)
    half_e = _exp_core(e, e.clamp(a, 0.0, 711.0), shift=-1)
    big = e.sub(half_e, e.div(0.25, half_e))
    y = e.select(e.lt(a, 1.0), _odd_series(e, a, _SINH_S), big)
    return e.copysign(y, x)


def _cosh(e: _Emitter, x: ir.Value) -> ir.Value:
    """cosh x = h + 1/(4h) with h = e^|x| / 2 (finite up to 710.47)."""
    half_e = _exp_core(e, e.clamp(e.abs(x), 0.0, 711.0), shift=-1)
    return e.add(half_e, e.div(0.25, half_e))


def _sigmoid(e: _Emitter, x: ir.Value) -> ir.Value:
    """1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: exp never overflows."""
    small_e = _exp_core(e, e.neg(e.clamp(e.abs(x), 0.0, 746.0)))
    numerator = e.select(e.lt(x, 0.0), small_e, 1.0)
    return e.div(numerator, e.add(1.0, small_e))


def _softplus(e: _Emitter, x: ir.Value) -> ir.Value:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|)."""
    small_e = _exp_core(e, e.neg(e.clamp(e.abs(x), 0.0, 746.0)))
    return e.add(e.select(e.gt(x, 0.0), x, 0.0), _log1p(e, small_e))


def _atan_parts(e: _Emitter, a: ir.Value) -> _Pair:
    """(hi, tail) with atan(a) = hi + tail for a >= 0: hi is 0, pi/4 or pi/2, by one division.

    a <= tan(pi/8): z = a; up to tan(3pi/8): z = (a-1)/(a+1), offset pi/4; above: z = -1/a,
    offset pi/2 (pi/4 and pi/2 carried as hi + lo); tail = atan(z) + lo, |z| <= tan(pi/8).
    """
    big = e.gt(a, _TAN_3PI_8)
    mid = e.gt(a, _TAN_PI_8)
    num = e.select(big, -1.0, e.select(mid, e.sub(a, 1.0), a))
    den = e.select(big, a, e.select(mid, e.add(a, 1.0), 1.0))
    hi = e.select(big, _PIO2_C1, e.select(mid, _PIO4_HI, 0.0))
    lo = e.select(big, _PIO2_C2, e.select(mid, _PIO4_LO, 0.0))
    atan_z = _odd_series(e, e.div(num, den), _ATAN_A)
    return hi, e.add(atan_z, lo)


def _arctan(e: _Emitter, x: ir.Value) -> ir.Value:
    """atan|x| = hi + tail (_atan_parts); sign copied."""
    hi, tail = _atan_parts(e, e.abs(x))
    return e.copysign(e.add(hi, tail), x)


def _reduce_pio2(e: _Emitter, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(n, r) with x = n pi/2 + r, |r| <= pi/4; only n's low bits are kept (i64)."""
    t = e.fma(x, _TWO_OVER_PI, _SHIFT)
    minus_n = e.sub(_SHIFT, t)
    r = e.fma(minus_n, _PIO2_C1, x)  # exact
    r = e.fma(minus_n, _PIO2_C2, r)
    r = e.fma(minus_n, _PIO2_C3, r)
    return e.bits(t), r


def _sin_cos_reduced(e: _Emitter, r: ir.Value) -> tuple[_Pair, _Pair]:
    """sin r and cos r for |r| <= pi/4, each as an unevaluated sum hi + lo.

    sin r = r + r^3 S(r^2); cos r = w + ((1 - w) - r^2/2 + r^4 C(r^2)), w = 1 - r^2/2.
    """
    z = e.mul(r, r)
    half_z = e.mul(0.5, z)
    w = e.sub(1.0, half_z)
    w_err = e.sub(e.sub(1.0, w), half_z)
    cos_lo = e.fma(e.mul(z, z), e.poly(z, _COS_C), w_err)
    sin_lo = e.mul(e.mul(r, z), e.poly(z, _SIN_S))
    return (r, sin_lo), (w, cos_lo)


def _in_trig_range(e: _Emitter, x: ir.Value, y: ir.Value) -> ir.Value:
    """y, or NaN where |x| > TRIG_MAX_ARG (no Payne-Hanek reduction)."""
    return e.select(e.gt(e.abs(x), TRIG_MAX_ARG), _NAN, y)


def _sin_or_cos(e: _Emitter, x: ir.Value, quarter_turns: int) -> ir.Value:
    """sin(x + quarter_turns * pi/2)."""
    n, r = _reduce_pio2(e, x)
    sin_r, cos_r = _sin_cos_reduced(e, r)
    n = e.iadd(n, quarter_turns)
    odd = e.bit_set(n, 0)
    y = e.add(e.select(odd, cos_r[0], sin_r[0]), e.select(odd, cos_r[1], sin_r[1]))
    y = e.flip_sign_if(y, n, 1)
    return _in_trig_range(e, x, y)


def _sin(e: _Emitter, x: ir.Value) -> ir.Value:
    return e.keep_tiny(x, _sin_or_cos(e, x, 0), 2.0**-26)


def _cos(e: _Emitter, x: ir.Value) -> ir.Value:
    return _sin_or_cos(e, x, 1)


def _tan(e: _Emitter, x: ir.Value) -> ir.Value:
    """tan x = sin r / cos r, or -cos r / sin r in odd quadrants.

    The quotient q of the rounded sums num_hi + num_lo and den_hi + den_lo is corrected
    by (num_hi - q den_hi + num_lo - q den_lo) / den, the residual taken by fma.
    """
    n, r = _reduce_pio2(e, x)
    sin_r, cos_r = _sin_cos_reduced(e, r)
    odd = e.bit_set(n, 0)
    num_hi = e.select(odd, e.neg(cos_r[0]), sin_r[0])
    num_lo = e.select(odd, e.neg(cos_r[1]), sin_r[1])
    den_hi = e.select(odd, sin_r[0], cos_r[0])
    den_lo = e.select(odd, sin_r[1], cos_r[1])
    den = e.add(den_hi, den_lo)
    q = e.div(e.add(num_hi, num_lo), den)
    residual = e.add(e.fma(e.neg(q), den_hi, num_hi), e.fma(e.neg(q), den_lo, num_lo))
    y = e.add(q, e.div(residual, den))
    return e.keep_tiny(x, _in_trig_range(e, x, y), 2.0**-27)


# --- inverse trigonometric functions --------------------------------------------------------------


def _asin_parts(e: _Emitter, a: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value, ir.Value]:
    """(small, s, w, product) for a = |x| <= 1: asin(s) = s + w, with s = a below 1/2, else sqrt((1-a)/2).

    With u = s^2 (u = (1-a)/2 exactly in the second case), asin(s) = s + s u P(u). The
    rounding of the square root is carried in w: s_lo = (u - s^2) / 2s by fma, so s + s_lo
    is sqrt(u) to twice the precision. `product` = s u, for callers that fold s in.
    """
    small = e.lt(a, 0.5)
    u = e.select(small, e.mul(a, a), e.mul(e.sub(1.0, a), 0.5))
    s = e.select(small, a, e.sqrt(u))
    root_lo = e.div(e.fma(e.neg(s), s, u), e.select(e.gt(s, 0.0), e.add(s, s), 1.0))
    s_lo = e.select(small, 0.0, root_lo)
    product = e.mul(s, u)
    return small, s, e.fma(product, e.poly(u, _ASIN_P), s_lo), product


def _arcsin(e: _Emitter, x: ir.Value) -> ir.Value:
    """asin|x| = s + w below 1/2, else pi/2 - 2 asin(s) = (pi/2_hi - 2s) + (pi/2_lo - 2w); sign copied."""
    a = e.abs(x)
    small, s, w, _ = _asin_parts(e, a)
    near_one = e.add(e.sub(_PIO2_C1, e.add(s, s)), e.sub(_PIO2_C2, e.add(w, w)))
    return e.copysign(e.select(small, e.add(s, w), near_one), x)


def _arccos(e: _Emitter, x: ir.Value) -> ir.Value:
    """acos x = pi/2 - asin x for |x| < 1/2; 2 asin(s) above; pi - 2 asin(s) below -1/2 (pi as hi + lo)."""
    a = e.abs(x)
    small, s, w, _ = _asin_parts(e, a)
    signed_w = e.copysign(w, x)
    middle = e.sub(_PIO2_C1, e.add(x, e.sub(signed_w, _PIO2_C2)))
    right = e.mul(2.0, e.add(s, w))
    left = e.add(e.sub(_PI_HI, e.add(s, s)), e.sub(_PI_LO, e.add(w, w)))
    return e.select(small, middle, e.select(e.sign_bit(x), left, right))


def _arctan2(e: _Emitter, y: ir.Value, x: ir.Value) -> ir.Value:
    """atan2(y, x): theta = atan(|y| / |x|) as hi + tail, pi - theta where x's sign bit is set, y's sign.

    The quotient is correctly rounded (so tiny and huge ratios are right); 0/0 and inf/inf,
    whose quotient is NaN, are the angles 0 and pi/4 as C99 specifies.
    """
    a, b = e.abs(y), e.abs(x)
    hi, tail = _atan_parts(e, e.div(a, b))
    both_zero = e.b.and_(e.eq(a, 0.0), e.eq(b, 0.0))
    both_inf = e.b.and_(e.eq(a, _INF), e.eq(b, _INF))
    hi = e.select(both_zero, 0.0, e.select(both_inf, _PIO4_HI, hi))
    tail = e.select(both_zero, 0.0, e.select(both_inf, _PIO4_LO, tail))
    left = e.add(e.sub(_PI_HI, hi), e.sub(_PI_LO, tail))
    theta = e.select(e.sign_bit(x), left, e.add(hi, tail))
    return e.copysign(theta, y)


# --- inverse hyperbolic functions ---------------------------------------------------------------------


def _log_of_sum(e: _Emitter, p: ir.Value, q: ir.Value, extra_k: ir.Value) -> ir.Value:
    """log(p + q) + extra_k ln2 for p + q >= 1 finite: the rounding error of p + q is carried (as log1p does)."""
    u, err = e.two_sum(p, q)
    k, m = _split_exponent(e, u)
    y = _log_core(e, e.add(k, extra_k), m, e.div(err, u))
    return e.select(e.eq(u, _INF), _INF, y)


def _arcsinh(e: _Emitter, x: ir.Value) -> ir.Value:
    """asinh|x| = log1p(a + a^2 / (1 + sqrt(1 + a^2))) below 2; log(2a + 1 / (a + sqrt(a^2 + 1))) up to 2^28;
    log(a) + ln2 above (as fdlibm splits it); each as one log of a sum. Sign copied; tiny x returned."""
    a = e.abs(x)
    small = e.lt(a, 2.0)
    big = e.gt(a, 2.0**28)
    root = e.sqrt(e.fma(a, a, 1.0))
    below_two = e.add(a, e.div(e.mul(a, a), e.add(1.0, root)))
    p = e.select(small, 1.0, e.select(big, a, e.add(a, a)))
    q = e.select(small, below_two, e.select(big, 0.0, e.div(1.0, e.add(a, root))))
    y = _log_of_sum(e, p, q, e.select(big, 1.0, 0.0))
    y = e.select(e.isnan(x), x, y)
    return e.keep_tiny(x, e.copysign(y, x), 2.0**-26)


def _arccosh(e: _Emitter, x: ir.Value) -> ir.Value:
    """acosh x = log1p(t + sqrt(2t + t^2)), t = x - 1, below 2; log(2x - 1 / (x + sqrt(x^2 - 1))) up to 2^28;
    log(x) + ln2 above; NaN below 1."""
    t = e.sub(x, 1.0)
    small = e.lt(x, 2.0)
    big = e.gt(x, 2.0**28)
    below_two = e.add(t, e.sqrt(e.fma(t, t, e.add(t, t))))
    above_two = e.neg(e.div(1.0, e.add(x, e.sqrt(e.fma(x, x, -1.0)))))
    p = e.select(small, 1.0, e.select(big, x, e.add(x, x)))
    q = e.select(small, below_two, e.select(big, 0.0, above_two))
    y = _log_of_sum(e, p, q, e.select(big, 1.0, 0.0))
    return e.select(e.lt_or_nan(x, 1.0), _NAN, e.select(e.eq(x, 1.0), 0.0, y))


def _arctanh(e: _Emitter, x: ir.Value) -> ir.Value:
    """atanh|x| = log1p(2a + 2a^2 / (1 - a)) / 2 below 1/2, log1p(2a / (1 - a)) / 2 above (fdlibm's split)."""
    a = e.abs(x)
    t = e.add(a, a)
    rest = e.sub(1.0, a)
    w = e.select(e.lt(a, 0.5), e.add(t, e.div(e.mul(t, a), rest)), e.div(t, rest))
    y = e.mul(0.5, _log1p(e, w))
    return e.keep_tiny(x, e.copysign(y, x), 2.0**-27)


# --- log10, exp2 ------------------------------------------------------------------------------------


def _log10(e: _Emitter, x: ir.Value) -> ir.Value:
    """log10(x) = k log10(2) + log(m) / ln10 for x = 2^k m (log10(2) and 1/ln10 in two parts); subnormals scaled."""
    subnormal = e.lt(x, 2.0**-1022)
    k, m = _split_exponent(e, e.select(subnormal, e.mul(x, 2.0**54), x))
    k = e.sub(k, e.select(subnormal, 54.0, 0.0))
    log_m = _log_core(e, 0.0, m, 0.0)
    low = e.fma(log_m, _INV_LN10_LO, e.mul(k, _LOG10_2_LO))
    y = e.fma(k, _LOG10_2_HI, e.fma(log_m, _INV_LN10, low))
    y = e.select(e.eq(x, _INF), _INF, y)
    y = e.select(e.eq(x, 0.0), -_INF, y)
    return e.select(e.lt_or_nan(x, 0.0), _NAN, y)


def _exp2(e: _Emitter, x: ir.Value) -> ir.Value:
    """2^x = 2^k 2^r for x = k + r, k = round(x), |r| <= 1/2 exact; 2^r = 1 + expm1(r ln2), r ln2 by fma.

    Exact at integers; overflow above 1023.99..., gradual underflow, and 0 below -1075, as NumPy.
    """
    clamped = e.clamp(x, -1100.0, 1100.0)
    t = e.add(clamped, _SHIFT)
    r = e.sub(clamped, e.sub(t, _SHIFT))
    r_ln2 = e.fma(r, _LN2_C1, e.mul(r, _LN2_C2))
    return _scaled(e, e.isub(e.bits(t), _SHIFT_BITS), _expm1_reduced(e, r_ln2))


# --- the error function ---------------------------------------------------------------------------------


def _erf_small(e: _Emitter, x: ir.Value) -> ir.Value:
    """erf(x) = x + x Q(x^2) for |x| <= 1/2."""
    return e.fma(x, e.poly(e.mul(x, x), _ERF_Q), x)


def _erfc_tail(e: _Emitter, a: ir.Value) -> ir.Value:
    """erfc(a) for a >= 1/2 (0 beyond 27.3), as exp(-a^2) F(t) / (1 + 2a) with t a Moebius map of a.

    F is Shepherd and Laframboise's form of erfc: (1 + 2a) exp(a^2) erfc(a), a function of
    y = (a - 4) / (a + 4) that varies only from 1.23 to 1.15 over [1/2, inf) (Math. Comp. 36
    (1981) 249-253), here one minimax polynomial of degree 21 in t = (y - c) / h over [1/2, 27.5].
    F / (1 + 2a) is carried as q + q_lo (the quotient's residual by fma); exp(-a^2) is
    exp(-hi) (1 - lo) for a^2 = hi + lo (by fma), and the product is rounded once.
    """
    c = e.clamp(a, 0.5, 27.5)
    y = e.div(e.sub(c, _ERFC_K), e.add(c, _ERFC_K))
    t = e.fma(y, _ERFC_T_SCALE, _ERFC_T_SHIFT)
    f = e.fma(t, e.poly(t, _ERFC_F[1:]), _ERFC_F[0])
    d, d_lo = e.two_sum(1.0, e.add(c, c))
    q = e.div(f, d)
    q_lo = e.div(e.sub(e.fma(e.neg(q), d, f), e.mul(q, d_lo)), d)
    hi = e.mul(c, c)
    lo = e.fma(c, c, e.neg(hi))
    return _exp_core(e, e.neg(hi), times=e.add(q, e.fma(e.neg(lo), q, q_lo)))


def _erf(e: _Emitter, x: ir.Value) -> ir.Value:
    """erf(x): the series below 1/2, 1 - erfc|x| above (1 from 5.93 on); sign copied."""
    a = e.abs(x)
    y = e.select(e.lt(a, 0.5), _erf_small(e, a), e.sub(1.0, _erfc_tail(e, a)))
    return e.copysign(y, x)


def _erfc(e: _Emitter, x: ir.Value) -> ir.Value:
    """erfc(x) = 1 - erf(x) for |x| < 1/2; the tail above 1/2 (subnormal from 26.55, 0 above 27.23);
    2 - the tail below -1/2."""
    a = e.abs(x)
    tail = _erfc_tail(e, a)
    y = e.select(e.sign_bit(x), e.sub(2.0, tail), tail)
    return e.select(e.lt(a, 0.5), e.sub(1.0, _erf_small(e, x)), y)


# --- functions of two operands ------------------------------------------------------------------------


def _hypot(e: _Emitter, x: ir.Value, y: ir.Value) -> ir.Value:
    """sqrt(x^2 + y^2) with one correction step on fma (Borges, ACM TOMS 47 (2021), "An improved
    algorithm for hypot(a, b)"): h - (h^2 - a^2 - b^2) / 2h, the residual computed exactly.

    Operands are scaled by a power of two away from overflow and underflow; an infinite
    operand gives inf even when the other is NaN (C99, NumPy).
    """
    a, b = e.abs(x), e.abs(y)
    big = e.larger(a, b)
    small = e.select(e.gt(a, b), b, a)
    scale = e.select(e.gt(big, 2.0**450), 2.0**-600, e.select(e.lt(big, 2.0**-450), 2.0**600, 1.0))
    big, small = e.mul(big, scale), e.mul(small, scale)
    h = e.sqrt(e.fma(big, big, e.mul(small, small)))
    h_sq = e.mul(h, h)
    big_sq = e.mul(big, big)
    residual = e.fma(e.neg(small), small, e.sub(h_sq, big_sq))
    residual = e.sub(e.add(residual, e.fma(h, h, e.neg(h_sq))), e.fma(big, big, e.neg(big_sq)))
    corrected = e.sub(h, e.div(residual, e.select(e.gt(h, 0.0), e.add(h, h), 1.0)))
    result = e.div(corrected, scale)
    return e.select(e.b.or_(e.eq(a, _INF), e.eq(b, _INF)), _INF, result)


def _logaddexp(e: _Emitter, x: ir.Value, y: ir.Value) -> ir.Value:
    """log(e^x + e^y) = max + log1p(e^-|x - y|), and x + ln2 where x == y, as NumPy computes it."""
    top = e.larger(x, y)
    gap = e.neg(e.abs(e.sub(x, y)))
    y_ = e.add(top, _log1p(e, _exp_core(e, e.clamp(gap, -746.0, 0.0))))
    y_ = e.select(e.isnan(gap), e.sub(x, y), y_)
    return e.select(e.eq(x, y), e.add(x, _LN2_C1), y_)


_Kernel: TypeAlias = Callable[..., ir.Value]  # (emitter, x) or (emitter, x, y)

_KERNELS: dict[str, _Kernel] = {
    "exp": _exp,
    "expm1": _expm1,
    "log": _log,
    "log2": _log2,
    "log1p": _log1p,
    "tanh": _tanh,
    "sin": _sin,
    "cos": _cos,
    "tan": _tan,
    "sinh": _sinh,
    "cosh": _cosh,
    "arctan": _arctan,
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "arcsin": _arcsin,
    "arccos": _arccos,
    "arcsinh": _arcsinh,
    "arccosh": _arccosh,
    "arctanh": _arctanh,
    "log10": _log10,
    "exp2": _exp2,
    "erf": _erf,
    "erfc": _erfc,
}
_BINARY_KERNELS: dict[str, _Kernel] = {
    "arctan2": _arctan2,
    "hypot": _hypot,
    "logaddexp": _logaddexp,
}

MATH_FUNCTIONS: tuple[str, ...] = (*_KERNELS, *_BINARY_KERNELS)
TRIGONOMETRIC = frozenset({"sin", "cos", "tan"})
"""The functions whose fast form is limited to |x| <= TRIG_MAX_ARG (they have `exact` variants)."""


def arity(name: str) -> int:
    """The number of operands of math function `name` (1, or 2 for arctan2, hypot, logaddexp)."""
    return 2 if name in _BINARY_KERNELS else 1


def math_function(module: ir.Module, name: str, fptype: ir.Type, exact: bool = False) -> ir.Function:
    """The internal alwaysinline graphc.<name>[.exact].f64|f32 of `module` (one or two operands), defined once."""
    kernel = _KERNELS.get(name) or _BINARY_KERNELS.get(name)
    if kernel is None:
        raise ValueError(f"unknown math function {name!r}; known: {MATH_FUNCTIONS}")
    if exact and name not in TRIGONOMETRIC:
        raise ValueError(f"{name} has no exact variant; only {sorted(TRIGONOMETRIC)} do")
    suffix = _suffix(fptype)
    full_name = f"graphc.{name}.exact.{suffix}" if exact else f"graphc.{name}.{suffix}"
    existing = module.globals.get(full_name)
    if existing is not None:
        return existing
    fn = ir.Function(module, ir.FunctionType(fptype, [fptype] * arity(name)), full_name)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    if suffix == "f32":
        wide = builder.call(math_function(module, name, _F64, exact), [builder.fpext(x, _F64) for x in fn.args])
        builder.ret(builder.fptrunc(wide, _F32))
    elif exact:
        builder.ret(_exact_trig(builder, name, fn.args[0]))
    else:
        builder.ret(kernel(_Emitter(builder), *fn.args))
    return fn


def _exact_trig(b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
    """The fast function for |x| <= TRIG_MAX_ARG, else a call of the C library's (a branch)."""
    module = b.module
    fast = b.call(math_function(module, name, _F64), [x])
    huge = _Emitter(b).gt(_Emitter(b).abs(x), TRIG_MAX_ARG)
    start = b.block
    slow = b.append_basic_block("huge")
    done = b.append_basic_block("done")
    b.cbranch(huge, slow, done)
    b.position_at_end(slow)
    libm = module.globals.get(name)
    if libm is None:
        libm = ir.Function(module, ir.FunctionType(_F64, [_F64]), name)
    full = b.call(libm, [x])
    b.branch(done)
    b.position_at_end(done)
    value = b.phi(_F64)
    value.add_incoming(fast, start)
    value.add_incoming(full, slow)
    return value


def _suffix(fptype: ir.Type) -> str:
    if isinstance(fptype, ir.DoubleType):
        return "f64"
    if isinstance(fptype, ir.FloatType):
        return "f32"
    raise TypeError(f"math functions take double or float, not {fptype}")
