"""The kernels a Program is planned into: loop nests over layouts, BLAS calls, gathers, scatters, scans.

Imports numpy, layout and the op records (for the cost class). A kernel is plain frozen
data: the planner (planner.py, with the rules of plan.py) makes them, the code generator
(lower.py) turns each distinct
kernel structure into one native function. Every layout of a kernel has the kernel's
iteration shape (operands are broadcast to it), so a loop index addresses all of them alike.

Elementwise work is a list of `Instr`s in SSA order, evaluated once per point of the
iteration space: `load` reads operand `args[0]`, `const` is `attrs["value"]`, any other
op is an elementwise op of graphc (emitters.py spells it) applied to earlier results.
`copy` repeats an earlier result. The last instruction is the kernel's value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graphc.backends.llvm.layout import Layout, Shape
from graphc.ops import OPS

Attrs = tuple[tuple[str, object], ...]

REDUCTIONS = ("sum", "prod", "max", "min")
MAX_COST = 200
"""The largest `cost` of one loop body (about ten transcendental functions): longer bodies are
cut (plan.py) and merges stop there (merge.py), so native functions stay small and compile
time grows linearly with the graph."""
LANES = 32
"""Independent partial results of a reduction along a contiguous axis of at least this length."""

TRANSCENDENTAL = frozenset(op.name for op in OPS.values() if op.transcendental)
"""The ops whose records say they are transcendental (cost 20; vecmath.py has a kernel for each)."""


@dataclass(frozen=True)
class Instr:
    op: str
    args: tuple[int, ...]
    dtype: np.dtype
    attrs: Attrs = ()

    def attr(self, name: str) -> object:
        return dict(self.attrs)[name]


@dataclass(frozen=True)
class Map:
    """out[i] = value(i) for every i of `shape`; also extra_outs[k][i] = instrs[extra_values[k]](i)."""

    shape: Shape
    operands: tuple[Layout, ...]
    instrs: tuple[Instr, ...]
    out: Layout
    site: int = 0  # the error site of an integer power with a negative exponent (0: cannot fail)
    extra_values: tuple[int, ...] = ()
    extra_outs: tuple[Layout, ...] = ()


@dataclass(frozen=True)
class Reduce:
    """out[kept(i)] = kind-reduction of value(i) over the `axes` of `shape`.

    When the last axis is reduced (`inner`), every output point accumulates `lanes`
    partial results and combines them at the end; otherwise the output already holds
    the identity (a Map fills it first) and is updated in place, in loop order.
    """

    shape: Shape
    operands: tuple[Layout, ...]
    instrs: tuple[Instr, ...]
    out: Layout  # stride 0 on the reduced axes
    axes: frozenset[int]
    kind: str
    lanes: int = 1
    site: int = 0
    extra_values: tuple[int, ...] = ()  # also stored at every point, as a Map's (a merged elementwise kernel)
    extra_outs: tuple[Layout, ...] = ()

    @property
    def inner(self) -> bool:
        return len(self.shape) - 1 in self.axes


@dataclass(frozen=True)
class ArgReduce:
    """out[kept(i)] = the first C-order position of the extremum over `axes` (NaN counts as extreme)."""

    kind: str  # "argmax" | "argmin"
    operand: Layout
    out: Layout  # stride 0 on the reduced axes
    axes: frozenset[int]


@dataclass(frozen=True)
class Gemm:
    """out[b] = a[b] @ b[b] for every batch index b, through cblas gemm (row-major)."""

    a: Layout  # batch + (m, k), each matrix with a unit stride on one axis
    b: Layout  # batch + (k, n)
    out: Layout  # batch + (m, n), contiguous


@dataclass(frozen=True)
class Lapack:
    """LAPACK per matrix of a stack, on float64 column-major copies, as numpy.linalg makes them.

    routine "solve": out = a^-1 rhs (a^T when `transposed`); "inv": out = a^-1; "slogdet":
    out[b] = (sign, log|det|); "cholesky": the lower factor (`upper`: the upper one); "lu":
    the factors and pivots of each matrix (out is `factors`), for later kernels. With `a`,
    a kernel copies each matrix into `factors` and factors it itself (gesv, getrf, potrf);
    without, it uses what an "lu" kernel left there (getrs). A singular or non-positive-
    definite matrix stops the program at `site` (slogdet gives (0, -inf) instead).
    """

    routine: str
    a: Layout | None  # batch + (n, n)
    rhs: Layout | None  # batch + (n, k): solve's right-hand sides
    out: Layout  # batch + the result's shape
    factors: Layout  # batch + (n*n,) float64: the column-major matrix, factored in place
    pivots: Layout  # batch + (n + 1,) int64: the pivots, then LAPACK's info
    work: Layout | None  # (n*k,) float64: the right-hand sides, column-major (solve; inv: the identity)
    transposed: bool = False
    upper: bool = False
    site: int = 0


@dataclass(frozen=True)
class Gather:
    """out[p, j, q] = operand[p, indices[j], q] (`take`); a bad index stops the program at `site`."""

    operand: Layout
    indices: Layout
    axis: int
    out: Layout
    site: int


@dataclass(frozen=True)
class Scatter:
    """out[p, indices[j], q] += values[p, j, q] in C order of (p, j, q) (`scatter_add`; out holds 0)."""

    values: Layout
    indices: Layout
    axis: int
    out: Layout
    site: int


@dataclass(frozen=True)
class Check:
    """check_finite: stop the program at `site` if an element of `operand` is NaN or infinite.

    The error slot receives the first such element's C-order position and its value (a double).
    """

    operand: Layout
    site: int


@dataclass(frozen=True)
class Accumulate:
    """out[..., i, ...] = operand[..., 0, ...] op ... op operand[..., i, ...] along `axis` (`reverse`: from the end).

    kind is "sum" or "prod"; the accumulation is sequential along the axis (NumPy's accumulate),
    vectorized across the axes after it.
    """

    kind: str
    operand: Layout
    out: Layout
    axis: int
    reverse: bool


@dataclass(frozen=True)
class Loop:
    """`body` for t = 0 .. count-1 (scan; `reverse`: count-1 .. 0), or until it converges (fixed_point),
    or while a condition holds (while_loop).

    The layouts inside may move with t (Layout.dynamic at this `depth`). guards[k] > 1 runs
    body[k] only when t % guards[k] == 0. A fixed_point loop stops after an iteration whose
    residual (the largest of its 0-d `residuals`, NaN propagating) is <= tol; a NaN
    residual, or `count` iterations without convergence, fail at `site`. A while_loop runs
    its `condition` kernels before each iteration and stops when the bool they leave at
    `predicate` is false, or after `count` iterations (count < 0: no bound).
    """

    kind: str  # "scan" | "fixed_point" | "while_loop"
    count: int
    reverse: bool
    depth: int
    body: tuple[Kernel, ...]
    guards: tuple[int, ...]
    residuals: tuple[Layout, ...] = ()
    tol: float = 0.0
    site: int = 0
    condition: tuple[Kernel, ...] = ()
    predicate: Layout | None = None


@dataclass(frozen=True)
class Branch:
    """cond: the `then` kernels when the bool at `pred` is true, else the `otherwise` kernels; never both."""

    pred: Layout
    then: tuple[Kernel, ...]
    otherwise: tuple[Kernel, ...]


@dataclass(frozen=True)
class Sort:
    """out sorted in place along its last axis (int64, ascending; out is C-contiguous)."""

    out: Layout


Kernel = Map | Reduce | ArgReduce | Gemm | Lapack | Gather | Scatter | Check | Accumulate | Loop | Branch | Sort


def nested(kernel: Kernel) -> tuple[Kernel, ...]:
    """The kernels a Loop or a Branch runs (a loop's condition first); () for the others."""
    if isinstance(kernel, Loop):
        return (*kernel.condition, *kernel.body)
    if isinstance(kernel, Branch):
        return (*kernel.then, *kernel.otherwise)
    return ()


TRIGONOMETRIC = frozenset({"sin", "cos", "tan"})


def checks_range(kernel: Kernel) -> bool:
    """Whether the kernel evaluates sin, cos or tan (whose fast forms flag huge arguments)."""
    return isinstance(kernel, (Map, Reduce)) and any(i.op in TRIGONOMETRIC for i in kernel.instrs)


_WEIGHTS = {"pow": 40, "load": 1, "const": 0, "copy": 0}
_FREE = frozenset({"load", "const", "copy"})


def cost(instrs: tuple[Instr, ...]) -> int:
    """A rough count of machine work per point: transcendental functions weigh 20."""
    return sum(_WEIGHTS.get(i.op, 20 if i.op in TRANSCENDENTAL else 1) for i in instrs)


def computed_cost(instrs: Sequence[Instr]) -> int:
    """The cost of the computed instructions (loads and constants are repeated freely)."""
    return sum(_WEIGHTS.get(i.op, 20 if i.op in TRANSCENDENTAL else 1) for i in instrs if i.op not in _FREE)


def work(kernel: Kernel) -> int:
    """Points times cost, for the decision to split a loop nest across threads."""
    if isinstance(kernel, (Map, Reduce)):
        return math.prod(kernel.shape) * cost(kernel.instrs)
    return 0


def layouts(kernel: Kernel) -> list[Layout]:
    """Every layout the kernel reads or writes, operands first, the output last."""
    if isinstance(kernel, (Map, Reduce)):
        return [*kernel.operands, *kernel.extra_outs, kernel.out]
    if isinstance(kernel, (ArgReduce, Accumulate)):
        return [kernel.operand, kernel.out]
    if isinstance(kernel, Gemm):
        return [kernel.a, kernel.b, kernel.out]
    if isinstance(kernel, Lapack):
        operands = [x for x in (kernel.a, kernel.rhs) if x is not None]
        scratch = [x for x in (kernel.factors, kernel.pivots, kernel.work) if x is not None]
        return [*operands, *scratch, kernel.out]
    if isinstance(kernel, Gather):
        return [kernel.operand, kernel.indices, kernel.out]
    if isinstance(kernel, Loop):
        return [*kernel.residuals, *([kernel.predicate] if kernel.predicate is not None else [])]
    if isinstance(kernel, Branch):
        return [kernel.pred]
    if isinstance(kernel, Check):
        return [kernel.operand]
    if isinstance(kernel, Sort):
        return [kernel.out]
    return [kernel.values, kernel.indices, kernel.out]
