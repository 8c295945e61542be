"""Running generated cases on both backends and judging them against gc.evaluate.

What "agree" means (the tolerance of an output, see `tolerance`):
- the numpy backend: bit for bit (NaN where NaN, signed zeros); optimized, its values
  bit for bit and its gradients to rounding (the stability pass rewrites derivative
  formulas into more accurate ones, which API.md allows);
- the llvm backend: bit for bit for non-transcendental elementwise ops, shape ops,
  gathers, max/min and arg-reductions; within vecmath's documented ulps (4 in float64,
  2 in float32) for transcendental functions and 2 ulp for float pow; to rounding for
  float sums, products, logsumexp and matmul (their documented accumulation order), for
  loops, fused chains and for gradients (which sum cotangents back over broadcast axes);
- fixed points to 1e-9: converged to tol=1e-10, two backends may stop an iteration apart;
- where the reference raises at call time, the compiled function raises the same class.

Compiling costs; running does not. A Suite compiles each op's cases in batches of about
BATCH outputs (one function per batch and configuration) and bisects a batch that fails
as a whole down to the cases that fail alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from opcases import Case

import graphc as gc
from graphc.ops import OPS

F64, F32 = np.dtype("float64"), np.dtype("float32")
CONFIGS = (("numpy", False), ("numpy", True), ("llvm", False), ("llvm", True))
BATCH = 160  # outputs per compiled function
ULPS = {F64: 4, F32: 2}
RTOL = {F64: 1e-12, F32: 1e-5}
TRANSCENDENTAL = {name for name, op in OPS.items() if op.transcendental}  # vecmath's kernels
ROUNDED = {"sum", "prod", "logsumexp", "matmul", "scan", "cond", "while_loop", "fused"}  # bodies: any op
LOOSE = {"fixed_point"}
Result = list[np.ndarray] | BaseException


def config_id(backend: str, optimize: bool) -> str:
    return f"{backend}-{'opt' if optimize else 'noopt'}"


# --- comparing -------------------------------------------------------------------------------------


def same_values(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal, NaN where NaN, and the same sign on every non-NaN element (zeros included)."""
    if not np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"):
        return False
    if want.dtype.kind != "f":
        return True
    numbers = ~np.isnan(want)
    return bool(np.array_equal(np.signbit(got[numbers]), np.signbit(want[numbers])))


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Units in the last place between floats of one dtype (0 between NaNs)."""
    kind, bits = (np.int64, 63) if a.dtype == F64 else (np.int32, 31)
    ia = a.view(kind).astype(np.int64)
    ib = b.view(kind).astype(np.int64)
    ia = np.where(ia < 0, -(ia + (np.int64(1) << bits)), ia)
    ib = np.where(ib < 0, -(ib + (np.int64(1) << bits)), ib)
    return np.where(np.isnan(a) & np.isnan(b), 0, np.abs(ia - ib))


def close(got: np.ndarray, want: np.ndarray, rtol: float) -> bool:
    """NaN where NaN, infinities equal, finite values within rtol of themselves plus rtol of the largest one."""
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    finite = np.isfinite(want)
    if not np.array_equal(got[~finite], want[~finite], equal_nan=True):
        return False
    scale = np.max(np.abs(want[finite]), initial=1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.all(np.abs(got[finite] - want[finite]) <= rtol * np.abs(want[finite]) + rtol * scale))


def agree(got: object, want: np.ndarray, kind: str, precision: np.dtype) -> bool:
    """Whether `got` follows `want` as `kind` says; `precision` is the least precise float computed through."""
    if not isinstance(got, np.ndarray) or (got.dtype, got.shape) != (want.dtype, want.shape):
        return False
    if kind == "exact" or want.dtype.kind != "f":
        return same_values(got, want)
    if kind in ("ulp", "pow"):
        limit = ULPS[want.dtype] if kind == "ulp" else 2
        return np.array_equal(np.isnan(got), np.isnan(want)) and bool(np.all(ulp_distance(got, want) <= limit))
    rtol = RTOL[precision] if kind == "round" else max(1e-9, RTOL[precision])
    return close(got, want, rtol)


def precision(outputs: Sequence[gc.Tensor]) -> np.dtype:
    """float32 if any float32 value is computed on the way to the outputs, else float64."""
    dtypes = {n.dtype for n in gc.Graph(list(outputs)).nodes}
    return F32 if F32 in dtypes else F64


def tolerance(op: str, backend: str, optimize: bool, gradient: bool) -> str:
    """How closely a backend must follow the reference for this op (see the module docstring)."""
    if op in LOOSE:
        return "loose"
    if backend == "numpy":
        return "round" if optimize and gradient else "exact"
    if gradient or op in ROUNDED:
        return "round"
    if op in TRANSCENDENTAL:
        return "ulp"
    return "pow" if op == "pow" else "exact"


def describe(case: Case, index: int, got: object, want: np.ndarray) -> str:
    which = f"value {index}" if index < len(case.values) else f"gradient {index - len(case.values)}"
    feed = "\n".join(f"  {v.name}{v.shape} = {a!r}" for v, a in zip(case.inputs, case.feed, strict=True))
    return f"{case.id}: {which} differs\n got  {got!r}\n want {want!r}\ninputs:\n{feed}"


# --- running ---------------------------------------------------------------------------------------


def evaluate(outputs: Sequence[gc.Tensor], feed: dict) -> Result:
    """The reference values, or the error the reference raises at call time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return list(gc.evaluate(list(outputs), feed))
        except (ValueError, ArithmeticError, IndexError, RuntimeError) as exc:
            return exc


def run(cases: Sequence[Case], backend: str, optimize: bool) -> list[Result]:
    """One compiled function for all `cases`: its results split back per case (or one error for all)."""
    inputs = [v for c in cases for v in c.inputs]
    outputs = [o for c in cases for o in c.outputs]
    args = [a for c in cases for a in c.feed]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fn = gc.compile(inputs, outputs, backend=backend, optimize=optimize, cache=False)
            got = list(fn(*args))
        except Exception as exc:
            return [exc] * len(cases)
    results: list[Result] = []
    for c in cases:
        results.append(got[: len(c.outputs)])
        got = got[len(c.outputs) :]
    return results


def run_split(cases: Sequence[Case], backend: str, optimize: bool) -> tuple[list[Result], list[str]]:
    """`run`, bisecting a batch that fails as a whole; also the failures no single case explains."""
    results = run(cases, backend, optimize)
    if len(cases) == 1 or not isinstance(results[0], BaseException):
        return results, []
    half = len(cases) // 2
    left, unexplained = run_split(cases[:half], backend, optimize)
    right, more = run_split(cases[half:], backend, optimize)
    unexplained += more
    if not any(isinstance(r, BaseException) for r in left + right):
        unexplained.append(f"{len(cases)} cases from {cases[0].id} to {cases[-1].id}: {results[0]!r}")
    return left + right, unexplained


class Suite:
    """Cases with their reference results, compiled lazily batch by batch and remembered."""

    def __init__(self, cases: Sequence[Case]) -> None:
        self.cases = list(cases)
        self.by_id = {c.id: c for c in self.cases}
        self._references: dict[str, Result] = {}
        self._results: dict[tuple[int, str, bool], tuple[dict[str, Result], list[str]]] = {}
        self._batches: list[list[str]] | None = None
        self._batch_of: dict[str, int] = {}

    def reference(self, case_id: str) -> Result:
        if case_id not in self._references:
            case = self.by_id[case_id]
            self._references[case_id] = evaluate(case.outputs, dict(zip(case.inputs, case.feed, strict=True)))
        return self._references[case_id]

    @property
    def batches(self) -> list[list[str]]:
        """Each op's case ids in batches of at most BATCH outputs; a case whose reference raises runs alone."""
        if self._batches is None:
            self._batches = self._make_batches()
        return self._batches

    def _make_batches(self) -> list[list[str]]:
        table: list[list[str]] = [[]]
        size = 0
        for case in self.cases:
            if isinstance(self.reference(case.id), BaseException):
                table.append([case.id])
                continue
            if size + len(case.outputs) > BATCH or (table[-1] and self.by_id[table[-1][0]].op != case.op):
                table.append([])
                size = 0
            table[-1].append(case.id)
            size += len(case.outputs)
        table = [ids for ids in table if ids]
        self._batch_of = {cid: k for k, ids in enumerate(table) for cid in ids}
        return table

    def batch(self, k: int, backend: str, optimize: bool) -> tuple[dict[str, Result], list[str]]:
        """Batch k's results per case, and what failed only in the batch."""
        key = (k, backend, optimize)
        if key not in self._results:
            ids = self.batches[k]
            results, unexplained = run_split([self.by_id[i] for i in ids], backend, optimize)
            self._results[key] = (dict(zip(ids, results, strict=True)), unexplained)
        return self._results[key]

    def compiled(self, case_id: str, backend: str, optimize: bool) -> Result:
        k = self.batch_index(case_id)
        return self.batch(k, backend, optimize)[0][case_id]

    def batch_index(self, case_id: str) -> int:
        if self._batches is None:
            self._batches = self._make_batches()
        return self._batch_of[case_id]

    def mismatch(self, case_id: str, backend: str, optimize: bool) -> str | None:
        """What differs between the compiled case and the reference, or None."""
        case = self.by_id[case_id]
        want = self.reference(case_id)
        got = self.compiled(case_id, backend, optimize)
        if isinstance(want, BaseException):
            return None if isinstance(got, type(want)) else f"the reference raises {want!r}, compiled gives {got!r}"
        if isinstance(got, BaseException):
            return f"raises {got!r}"
        lowest = precision(case.outputs)
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            if not agree(g, w, tolerance(case.op, backend, optimize, index >= len(case.values)), lowest):
                return describe(case, index, g, w)
        return None
