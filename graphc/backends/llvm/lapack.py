"""Linear algebra in native code: LAPACK from NumPy's bundled OpenBLAS, as numpy.linalg calls it.

Imports llvmlite and the backend's blas, emitters, kernels, layout and loops (plan.py takes
its planning rule, codegen.py its code; both only type-check against them). The routines are the ILP64 Fortran
ones of the library blas.py found (`scipy_dgesv_64_`, ...), resolved at run time like its
gemm, and called exactly as numpy.linalg's gufuncs call them, so results are NumPy's bit
for bit. Like NumPy, float32 matrices are computed in float64 and the results rounded
once. Each matrix is copied into a column-major scratch matrix (solve, inv: gesv with
the right-hand sides, or the identity, copied alike; slogdet: getrf, then the sign from
the pivots and the sum of log|u_ii| in order; cholesky: potrf of the lower triangle,
zeros above, or of the upper one, zeros below) and the result copied back. A singular or non-positive-definite matrix
(LAPACK's info != 0) stops the program at the kernel's error site, which the wrapper
raises as numpy.linalg.LinAlgError naming the op and the user's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llvmlite import ir

from graphc.backends.llvm import blas
from graphc.backends.llvm import layout as L
from graphc.backends.llvm.emitters import F64, I32, I64, PTR, intrinsic, load, value_type
from graphc.backends.llvm.kernels import Lapack
from graphc.backends.llvm.layout import Layout
from graphc.backends.llvm.loops import counted_loop, element, full_bounds, i64, nest
from graphc.errors import where
from graphc.schedule import Step
from graphc.shapes import FLOAT64, INT64

if TYPE_CHECKING:
    from graphc.backends.llvm.codegen import Body
    from graphc.backends.llvm.plan import Planner

ROUTINES = {"solve": "gesv", "inv": "gesv", "slogdet": "getrf", "cholesky": "potrf"}
MESSAGES = {"solve": "Singular matrix", "inv": "Singular matrix", "cholesky": "Matrix is not positive definite"}
# the Fortran arguments after the matrix sizes: all pointers (ILP64 integers are i64)
_ARITY = {"gesv": 8, "getrf": 6, "potrf": 5}


def symbol(routine: str) -> str | None:
    """The registered symbol of the float64 `routine` (gesv, getrf, potrf), or None."""
    return blas.fortran_symbol("d" + routine)


def register() -> list[str | None]:
    """Register every routine the backend calls (before cached object code is loaded); their symbols."""
    return [symbol(r) for r in sorted(set(ROUTINES.values()))]


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
    rhs = None
    columns = n if step.op == "inv" else 0
    if step.op == "solve":
        rhs = p.layouts[step.args[1]]
        rhs = L.broadcast(rhs, batch + rhs.shape[-2:])
        columns = rhs.shape[-1]
    scratch = p.fresh((n * n + n * columns,), FLOAT64)
    pivots = p.fresh((n,), INT64)
    site = 0
    if step.op in MESSAGES:
        message = f"{MESSAGES[step.op]} in {step.op}{where(step.node.loc)}"
        site = p.site("LinAlgError", message.replace("{", "{{").replace("}", "}}"))
    transposed = bool(step.attrs.get("transposed", False))
    upper = bool(step.attrs.get("upper", False))
    stack = L.broadcast(a, (*batch, n, n))
    p.kernels.append(Lapack(step.op, stack, rhs, dest, scratch, pivots, transposed, upper, site))


# --- code ---------------------------------------------------------------------------------------


class _Call:
    """One kernel function's LAPACK call: the integer arguments in stack slots, the scratch addresses."""

    def __init__(self, body: Body, k: Lapack) -> None:
        self.body = body
        self.k = k
        self.n = k.a.shape[-1]
        self.dtype = k.out.dtype  # the scratch matrices are float64, whatever the dtype
        b = body.b
        self.slots = {name: b.alloca(I64, name=name) for name in ("n", "lda", "nrhs", "info")}
        columns = (k.scratch.shape[0] - self.n * self.n) // max(self.n, 1)
        for name, value in (("n", self.n), ("lda", max(self.n, 1)), ("nrhs", columns)):
            b.store(i64(value), self.slots[name])
        self.columns = columns
        self.uplo = b.alloca(ir.IntType(8), name="uplo")
        b.store(ir.Constant(ir.IntType(8), ord("U" if k.upper else "L")), self.uplo)
        self.matrix = body.params[k.scratch.buffer.index]
        self.rhs = element(b, self.matrix, F64, i64(self.n * self.n))
        self.pivots = body.params[k.pivots.buffer.index]
        self.sign = b.alloca(F64, name="sign")
        self.logdet = b.alloca(F64, name="logdet")
        self.swaps = b.alloca(I64, name="swaps")

    def scratch(self, offset: ir.Value) -> ir.Value:
        return element(self.body.b, self.matrix, F64, offset)

    def widened(self, value: ir.Value) -> ir.Value:
        return value if self.dtype == FLOAT64 else self.body.b.fpext(value, F64)

    def rounded(self, value: ir.Value) -> ir.Value:
        return value if self.dtype == FLOAT64 else self.body.b.fptrunc(value, value_type(self.dtype))

    def column_major(self, source: Layout, at: Sequence[ir.Value], rows: int, cols: int, base: int, swap: bool) -> None:
        """scratch[base + i + j*rows] = source[at..., i, j] (source[at..., j, i] when `swap`)."""
        b = self.body.b

        def point(ij: list[ir.Value]) -> None:
            i, j = ij
            value = self.widened(self.body.read(source, [*at, j, i] if swap else [*at, i, j]))
            offset = b.add(i64(base), b.add(i, b.mul(j, i64(rows))))
            b.store(value, self.scratch(offset))

        nest(b, [(i64(0), i64(cols)), (i64(0), i64(rows))], lambda ji: point([ji[1], ji[0]]), name="copy")

    def identity(self) -> None:
        """The identity in the right-hand-side block (inv)."""
        b = self.body.b
        zero, one = ir.Constant(F64, 0.0), ir.Constant(F64, 1.0)

        def point(ji: list[ir.Value]) -> None:
            j, i = ji
            offset = b.add(i64(self.n * self.n), b.add(i, b.mul(j, i64(self.n))))
            b.store(b.select(b.icmp_signed("==", i, j), one, zero), self.scratch(offset))

        nest(b, full_bounds((self.n, self.n)), point, name="eye")

    def back(self, out: Layout, at: Sequence[ir.Value], base: int, triangle: str = "") -> None:
        """out[at..., i, j] = scratch[base + i + j*n], 0 outside the `triangle` ("lower", "upper"; "": none)."""
        b = self.body.b
        rows, cols = out.shape[-2:]
        zero = ir.Constant(F64, 0.0)

        def point(ij: list[ir.Value]) -> None:
            i, j = ij
            value = b.load(self.scratch(b.add(i64(base), b.add(i, b.mul(j, i64(rows))))), typ=F64)
            if triangle:
                value = b.select(b.icmp_signed(">=" if triangle == "lower" else "<=", i, j), value, zero)
            self.body.write(self.rounded(value), out, [*at, i, j])

        nest(b, full_bounds((rows, cols)), point, name="back")

    def lapack(self) -> ir.Value:
        """Call the routine on the scratch copies; LAPACK's info."""
        b = self.body.b
        routine = ROUTINES[self.k.routine]
        fn = declare(b.module, routine)
        s = self.slots
        if routine == "gesv":
            args = [s["n"], s["nrhs"], self.matrix, s["lda"], self.pivots, self.rhs, s["lda"], s["info"]]
        elif routine == "getrf":
            args = [s["n"], s["n"], self.matrix, s["lda"], self.pivots, s["info"]]
        else:
            args = [self.uplo, s["n"], self.matrix, s["lda"], s["info"]]
        b.call(fn, args)
        return b.load(s["info"], typ=I64)

    def fail_unless_zero(self, info: ir.Value) -> None:
        """Leave the kernel with status 1 (its error site) when info != 0."""
        b = self.body.b
        with b.if_then(b.icmp_signed("!=", info, i64(0)), likely=False):
            b.ret(ir.Constant(I32, 1))

    def slogdet(self, info: ir.Value, at: Sequence[ir.Value]) -> None:
        """(sign, log|det|) from the factors, as NumPy: the pivots' parity, then each u_ii in order."""
        b = self.body.b
        real = F64
        sign, logdet, swaps = self.sign, self.logdet, self.swaps
        b.store(i64(0), swaps)
        b.store(ir.Constant(real, 0.0), logdet)

        def swap(i: ir.Value) -> None:
            pivot = load(b, element(b, self.pivots, I64, i), INT64)
            moved = b.zext(b.icmp_signed("!=", pivot, b.add(i, i64(1))), I64)
            b.store(b.add(b.load(swaps, typ=I64), moved), swaps)

        def diagonal(i: ir.Value) -> None:
            u = b.load(self.scratch(b.mul(i, i64(self.n + 1))), typ=F64)
            negative = b.fcmp_ordered("<", u, ir.Constant(real, 0.0))
            current = b.load(sign, typ=real)
            b.store(b.select(negative, b.fneg(current), current), sign)
            magnitude = b.select(negative, b.fneg(u), u)
            b.store(b.fadd(b.load(logdet, typ=real), intrinsic(b, "log", magnitude)), logdet)

        with b.if_else(b.icmp_signed("==", info, i64(0))) as (factored, singular):
            with factored:
                counted_loop(b, i64(0), i64(self.n), swap, "pivot")
                odd = b.trunc(b.load(swaps, typ=I64), ir.IntType(1))
                b.store(b.select(odd, ir.Constant(real, -1.0), ir.Constant(real, 1.0)), sign)
                counted_loop(b, i64(0), i64(self.n), diagonal, "diagonal")
            with singular:
                b.store(ir.Constant(real, 0.0), sign)
                b.store(ir.Constant(real, float("-inf")), logdet)
        self.body.write(self.rounded(b.load(sign, typ=real)), self.k.out, [*at, i64(0)])
        self.body.write(self.rounded(b.load(logdet, typ=real)), self.k.out, [*at, i64(1)])


def emit_lapack(body: Body, k: Lapack) -> None:
    """For every matrix of the stack: copy in (column-major), call LAPACK, check info, copy the result out."""
    call = _Call(body, k)
    n = call.n
    batch = k.out.shape[:-1] if k.routine == "slogdet" else k.out.shape[:-2]

    def matrix(at: list[ir.Value]) -> None:
        call.column_major(k.a, at, n, n, 0, k.transposed)
        if k.rhs is not None:
            call.column_major(k.rhs, at, n, call.columns, n * n, False)
        elif k.routine == "inv":
            call.identity()
        info = call.lapack()
        if k.routine == "slogdet":
            call.slogdet(info, at)
            return
        call.fail_unless_zero(info)
        if k.routine == "cholesky":
            call.back(k.out, at, 0, "upper" if k.upper else "lower")
        else:
            call.back(k.out, at, n * n)

    nest(body.b, full_bounds(batch), matrix, name="matrix")
    body.finish()


__all__ = ["ROUTINES", "declare", "emit_lapack", "plan_linalg", "register", "symbol"]
