"""Linear algebra in native code: LAPACK from NumPy's bundled OpenBLAS, as numpy.linalg calls it.

Imports llvmlite and the backend's blas, emitters, kernels, layout and loops (plan.py takes
its planning rule and codegen.py its code from here; this module only type-checks against
them). The routines are the ILP64 Fortran ones of the library blas.py found
(`scipy_dgesv_64_`, ...), resolved at run time like its gemm, and called as numpy.linalg's
gufuncs call them: each matrix is copied into a float64 column-major scratch matrix
(float32 is computed in float64 and rounded once, as NumPy does); solve and inv call gesv
on the right-hand sides (the identity) copied alike; slogdet calls getrf, then takes the
sign from the pivots and sums log|u_ii| in order; cholesky calls potrf on the lower (upper)
triangle and zeroes the other one. So a result is NumPy's bit for bit.

Steps that factor the same matrix (a solve and the transposed solve of its gradient, det
and the inverse of its gradient) share one factorization: the first plans an "lu" kernel
(getrf), and each step solves with the factors (getrs, 'T' for a transposed solve). Their
results agree with NumPy's to rounding; single-threaded OpenBLAS gives the same bits for
the untransposed ones. Only steps outside loops share.

A singular or non-positive-definite matrix (LAPACK's info != 0) stops the program at the
kernel's error site, which the wrapper raises as numpy.linalg.LinAlgError naming the op
and the user's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from graphc.backends.llvm import blas
from graphc.backends.llvm import layout as L
from graphc.backends.llvm.emitters import F64, I32, I64, PTR, intrinsic, value_type
from graphc.backends.llvm.kernels import Lapack
from graphc.backends.llvm.layout import Layout
from graphc.backends.llvm.loops import counted_loop, element, full_bounds, i64, nest
from graphc.errors import where
from graphc.schedule import Step
from graphc.shapes import FLOAT64, INT64

if TYPE_CHECKING:
    from graphc.backends.llvm.codegen import Body
    from graphc.backends.llvm.plan import Planner

ROUTINES = ("gesv", "getrf", "getrs", "potrf")
_ARITY = {"gesv": 8, "getrf": 6, "getrs": 9, "potrf": 5}  # Fortran passes every argument by pointer
MESSAGES = {"solve": "Singular matrix", "inv": "Singular matrix", "cholesky": "Matrix is not positive definite"}
LU_USERS = ("solve", "inv", "slogdet")


def symbol(routine: str) -> str | None:
    """The registered symbol of the float64 `routine` (gesv, getrf, getrs, potrf), or None."""
    return blas.fortran_symbol("d" + routine)


def register() -> list[str | None]:
    """Register every routine the backend calls (before cached object code is loaded); their symbols."""
    return [symbol(r) for r in ROUTINES]


def declare(module: ir.Module, routine: str) -> ir.Function:
    """Declare (once per module) a float64 LAPACK routine: every argument a pointer, as Fortran passes them."""
    name = symbol(routine)
    if name is None:
        raise RuntimeError(f"no ILP64 LAPACK {routine} found in the OpenBLAS next to NumPy")
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * _ARITY[routine]), name)


# --- planning -----------------------------------------------------------------------------------


def plan_linalg(p: Planner, step: Step) -> None:
    """A Lapack kernel over the stack (batch axes broadcast); nothing for an empty result."""
    a = p.layouts[step.args[0]]
    n = a.shape[-1]
    dest = p.dest(step)
    batch = dest.shape[:-1] if step.op == "slogdet" else dest.shape[:-2]
    if step.op == "slogdet" and n == 0:  # the empty product: sign 1, log|det| 0
        p.fill(1.0, L.sliced(dest, ((0, 1, 1),)))
        p.fill(0.0, L.sliced(dest, ((1, 2, 1),)))
        return
    if dest.size == 0:
        return
    rhs = p.layouts[step.args[1]] if step.op == "solve" else None
    rhs = None if rhs is None else L.broadcast(rhs, batch + rhs.shape[-2:])
    columns = n if step.op == "inv" else (0 if rhs is None else rhs.shape[-1])
    work = p.fresh((n * columns,), FLOAT64) if columns else None
    shared = _shared_factors(p, step)
    if shared is None:
        stack: Layout | None = L.broadcast(a, (*batch, n, n))
        factors = L.broadcast(p.fresh((n * n,), FLOAT64), (*batch, n * n))
        pivots = L.broadcast(p.fresh((n + 1,), INT64), (*batch, n + 1))
    else:
        stack = None
        factors, pivots = (L.broadcast(f, (*batch, f.shape[-1])) for f in shared)
    flags = {key: bool(step.attrs.get(key, False)) for key in ("transposed", "upper")}
    site = _site(p, step)
    p.kernels.append(Lapack(step.op, stack, rhs, dest, factors, pivots, work, **flags, site=site))


def _site(p: Planner, step: Step) -> int:
    """The error site of a singular (not positive-definite) matrix; 0 for slogdet, which cannot fail."""
    if step.op not in MESSAGES:
        return 0
    message = f"{MESSAGES[step.op]} in {step.op}{where(step.node.loc)}"
    return p.site("LinAlgError", message.replace("{", "{{").replace("}", "}}"))


def _shared_factors(p: Planner, step: Step) -> tuple[Layout, Layout] | None:
    """(factors, pivots) of the step's matrix when several top-level steps factor it; the first plans them."""
    name = step.args[0]
    if step.op not in LU_USERS or p.depth > 0:
        return None
    if sum(1 for s in p.program.steps if s.op in LU_USERS and s.args[0] == name) < 2:
        return None
    if name not in p.factors:
        a = p.layouts[name]
        n = a.shape[-1]
        factors = p.fresh((*a.shape[:-2], n * n), FLOAT64)
        pivots = p.fresh((*a.shape[:-2], n + 1), INT64)
        p.kernels.append(Lapack("lu", a, None, factors, factors, pivots, None))
        p.factors[name] = (factors, pivots)
    return p.factors[name]


# --- code ---------------------------------------------------------------------------------------


class _Call:
    """One kernel function: the integer arguments in stack slots, the current matrix's scratch addresses."""

    def __init__(self, body: Body, k: Lapack) -> None:
        self.body = body
        self.k = k
        self.n = k.pivots.shape[-1] - 1
        self.columns = 0 if k.work is None else k.work.shape[0] // max(self.n, 1)
        self.dtype = k.out.dtype
        self.matrix, self.pivots, self.info = self.at([i64(0)] * (len(k.pivots.shape) - 1))
        b = body.b
        self.slots = {name: b.alloca(I64, name=name) for name in ("n", "lda", "nrhs", "status")}
        for name, value in (("n", self.n), ("lda", max(self.n, 1)), ("nrhs", self.columns)):
            b.store(i64(value), self.slots[name])
        self.chars = {name: b.alloca(ir.IntType(8), name=name) for name in ("uplo", "trans")}
        b.store(ir.Constant(ir.IntType(8), ord("U" if k.upper else "L")), self.chars["uplo"])
        b.store(ir.Constant(ir.IntType(8), ord("T" if k.transposed else "N")), self.chars["trans"])
        self.work = None if k.work is None else body.params[k.work.buffer.index]
        self.sign = b.alloca(F64, name="sign")
        self.logdet = b.alloca(F64, name="logdet")
        self.swaps = b.alloca(I64, name="swaps")

    def at(self, indices: Sequence[ir.Value]) -> tuple[ir.Value, ir.Value, ir.Value]:
        """The factors, pivots and info of the matrix at these batch indices."""
        matrix = self.body.pointer(self.k.factors, [*indices, i64(0)])
        pivots = self.body.pointer(self.k.pivots, [*indices, i64(0)])
        return matrix, pivots, self.body.pointer(self.k.pivots, [*indices, i64(self.n)])

    def element(self, base: ir.Value, offset: ir.Value) -> ir.Value:
        return element(self.body.b, base, F64, offset)

    def widened(self, value: ir.Value, dtype: np.dtype) -> ir.Value:
        return value if dtype == FLOAT64 else self.body.b.fpext(value, F64)

    def rounded(self, value: ir.Value) -> ir.Value:
        return value if self.dtype == FLOAT64 else self.body.b.fptrunc(value, value_type(self.dtype))

    def column_major(self, source: Layout, at: Sequence[ir.Value], base: ir.Value, rows: int, swap: bool) -> None:
        """base[i + j*rows] = source[at..., i, j] (source[at..., j, i] when `swap`), j outermost."""
        b = self.body.b
        cols = source.shape[-1] if not swap else source.shape[-2]

        def point(ji: list[ir.Value]) -> None:
            j, i = ji
            value = self.widened(self.body.read(source, [*at, j, i] if swap else [*at, i, j]), source.dtype)
            b.store(value, self.element(base, b.add(i, b.mul(j, i64(rows)))))

        nest(b, [(i64(0), i64(cols)), (i64(0), i64(rows))], point, name="copy")

    def identity(self) -> None:
        """The identity in the work area (inv's right-hand sides)."""
        b = self.body.b
        zero, one = ir.Constant(F64, 0.0), ir.Constant(F64, 1.0)

        def point(ji: list[ir.Value]) -> None:
            j, i = ji
            value = b.select(b.icmp_signed("==", i, j), one, zero)
            b.store(value, self.element(self.work, b.add(i, b.mul(j, i64(self.n)))))

        nest(b, full_bounds((self.n, self.n)), point, name="eye")

    def back(self, base: ir.Value, at: Sequence[ir.Value], triangle: str = "") -> None:
        """out[at..., i, j] = base[i + j*n], 0 outside the `triangle` ("lower", "upper"; "": none)."""
        b = self.body.b
        out = self.k.out
        rows, cols = out.shape[-2:]
        zero = ir.Constant(F64, 0.0)

        def point(ij: list[ir.Value]) -> None:
            i, j = ij
            value = b.load(self.element(base, b.add(i, b.mul(j, i64(rows)))), typ=F64)
            if triangle:
                value = b.select(b.icmp_signed(">=" if triangle == "lower" else "<=", i, j), value, zero)
            self.body.write(self.rounded(value), out, [*at, i, j])

        nest(b, full_bounds((rows, cols)), point, name="back")

    def call(self, routine: str) -> None:
        """One LAPACK call on the current matrix (its info goes after the pivots; getrs's to a slot)."""
        b = self.body.b
        s, c = self.slots, self.chars
        arguments = {
            "gesv": [s["n"], s["nrhs"], self.matrix, s["lda"], self.pivots, self.work, s["lda"], self.info],
            "getrf": [s["n"], s["n"], self.matrix, s["lda"], self.pivots, self.info],
            "getrs": [c["trans"], s["n"], s["nrhs"], self.matrix, s["lda"], self.pivots, self.work, s["lda"],
                      s["status"]],
            "potrf": [c["uplo"], s["n"], self.matrix, s["lda"], self.info],
        }  # fmt: skip
        b.call(declare(b.module, routine), arguments[routine])

    def fail_unless_factored(self) -> None:
        """Leave the kernel with status 1 (its error site) when the factorization's info is not 0."""
        b = self.body.b
        info = b.load(self.info, typ=I64)
        with b.if_then(b.icmp_signed("!=", info, i64(0)), likely=False):
            b.ret(ir.Constant(I32, 1))

    def slogdet(self, at: Sequence[ir.Value]) -> None:
        """(sign, log|det|) from the factors, as NumPy: the pivots' parity, then each u_ii in order."""
        b = self.body.b
        b.store(i64(0), self.swaps)
        b.store(ir.Constant(F64, 0.0), self.logdet)

        def swap(i: ir.Value) -> None:
            pivot = b.load(element(b, self.pivots, I64, i), typ=I64)
            moved = b.zext(b.icmp_signed("!=", pivot, b.add(i, i64(1))), I64)
            b.store(b.add(b.load(self.swaps, typ=I64), moved), self.swaps)

        def diagonal(i: ir.Value) -> None:
            u = b.load(self.element(self.matrix, b.mul(i, i64(self.n + 1))), typ=F64)
            negative = b.fcmp_ordered("<", u, ir.Constant(F64, 0.0))
            current = b.load(self.sign, typ=F64)
            b.store(b.select(negative, b.fneg(current), current), self.sign)
            magnitude = b.select(negative, b.fneg(u), u)
            b.store(b.fadd(b.load(self.logdet, typ=F64), intrinsic(b, "log", magnitude)), self.logdet)

        factored = b.icmp_signed("==", b.load(self.info, typ=I64), i64(0))
        with b.if_else(factored) as (then, otherwise):
            with then:
                counted_loop(b, i64(0), i64(self.n), swap, "pivot")
                odd = b.trunc(b.load(self.swaps, typ=I64), ir.IntType(1))
                b.store(b.select(odd, ir.Constant(F64, -1.0), ir.Constant(F64, 1.0)), self.sign)
                counted_loop(b, i64(0), i64(self.n), diagonal, "diagonal")
            with otherwise:
                b.store(ir.Constant(F64, 0.0), self.sign)
                b.store(ir.Constant(F64, float("-inf")), self.logdet)
        self.body.write(self.rounded(b.load(self.sign, typ=F64)), self.k.out, [*at, i64(0)])
        self.body.write(self.rounded(b.load(self.logdet, typ=F64)), self.k.out, [*at, i64(1)])


def _matrix(call: _Call, k: Lapack, at: list[ir.Value]) -> None:
    """One matrix: copy it in (unless factored already), call LAPACK, check info, copy the result out."""
    call.matrix, call.pivots, call.info = call.at(at)
    if k.a is not None:
        call.column_major(k.a, at, call.matrix, call.n, k.transposed and k.routine == "solve")
    if k.routine in ("lu", "slogdet"):
        if k.a is not None:
            call.call("getrf")
        if k.routine == "slogdet":
            call.slogdet(at)
        return
    if k.routine == "cholesky":
        call.call("potrf")
        call.fail_unless_factored()
        call.back(call.matrix, at, "upper" if k.upper else "lower")
        return
    if k.rhs is not None:
        call.column_major(k.rhs, at, call.work, call.n, False)
    else:
        call.identity()
    if k.a is not None:
        call.call("gesv")
        call.fail_unless_factored()
    else:
        call.fail_unless_factored()
        call.call("getrs")
    call.back(call.work, at)


def emit_lapack(body: Body, k: Lapack) -> None:
    """The kernel's function: `_matrix` for every matrix of the stack."""
    call = _Call(body, k)
    batch = k.pivots.shape[:-1]
    nest(body.b, full_bounds(batch), lambda at: _matrix(call, k, at), name="matrix")
    body.finish()


__all__ = ["LU_USERS", "ROUTINES", "declare", "emit_lapack", "plan_linalg", "register", "symbol"]
