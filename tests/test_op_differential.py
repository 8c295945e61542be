"""The generated differential suite: every op x operand forms x positions x dtypes, against gc.evaluate.

Cases come from tests/opcases.py (one spec per op in OPS). Each case's outputs — the
op's results and their vjp for every float var operand — are compiled on both backends
with optimize on and off and compared with the reference evaluator on the unoptimized
graph:

- the numpy backend bit for bit (NaN where NaN, signed zeros), also optimized;
- the llvm backend bit for bit for non-transcendental elementwise ops, shape ops,
  gathers, max/min and arg-reductions; within vecmath's documented ulps (4 in float64,
  2 in float32) for transcendental functions and 2 ulp for float pow; to rounding for
  float sums, products, logsumexp and matmul (their documented accumulation order), for
  loops, fused chains and for gradients (which sum cotangents back over broadcast axes);
- where the reference raises at call time (an index out of range, a negative integer
  power, an empty logsumexp, a NaN fixed point), the compiled function raises the same
  class of error.

Cases compile in batches (all cases of an op in one function, a few dozen outputs), so
the default run stays within its budget; a batch that fails to compile or run is bisected
down to the cases that fail alone (test_batching_changes_nothing fails if none does).
There is one test per case, covering the four configurations. Known defects owned by
other streams are listed in KNOWN per configuration; a case with one is a strict xfail
that fails if the defect no longer shows or if anything else differs.
"""

from __future__ import annotations

import fnmatch
import functools
import warnings
from collections.abc import Sequence

import numpy as np
import pytest
from opcases import SPECS, Case, generate

import graphc as gc
from graphc.ops import OPS

CASES, REFUSALS = generate("default")
BY_ID = {c.id: c for c in CASES}
CONFIGS = (("numpy", False), ("numpy", True), ("llvm", False), ("llvm", True))
BATCH = 160  # outputs per compiled function
ULPS = {np.dtype("float64"): 4, np.dtype("float32"): 2}
RTOL = {np.dtype("float64"): 1e-12, np.dtype("float32"): 1e-5}
TRANSCENDENTAL = {"exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sinh", "cosh", "arctan", "sigmoid",
                  "softplus"}  # fmt: skip
ROUNDED = {"sum", "prod", "logsumexp", "matmul", "scan", "fused"}
LOOSE = {"fixed_point"}  # converged to tol=1e-10: backends may stop an iteration apart (1e-9, or float32's RTOL)

# Known defects, owned by other streams: (fnmatch pattern over "<backend>-<opt|noopt>:<case id>", the defect).
# They are strict xfails, so the fix of a defect fails here until its lines go.
GATHER = ("llvm backend (trust-llvm, issue 11 item 1): a one-element constant (Python int, 0-d, (1,), (1,1)) used "
          "as the array or the indices of take/scatter_add is wired to workspace offset 0, the error slot: "
          "wrong rows or zeros, and no IndexError out of range")  # fmt: skip
ARG = ("llvm backend (trust-llvm): argmax/argmin of a one-element constant (0-d, (1,), (1,1)) fails to compile "
       "with KeyError('workspace') when optimize=False (the same inline-constant layout as take)")  # fmt: skip
TRIG_HUGE = ("llvm backend (trust-llvm, issue 11 item 5): sin/cos/tan return NaN for |x| >= 2**50 "
             "(NumPy reduces the argument exactly); int64 arguments like 2**62 are such floats")  # fmt: skip
SQRT_POW = ("llvm backend (trust-llvm, issue 11 item 6): x ** 0.5 with a Python 0.5 differs from NumPy "
            "(np.power takes its sqrt fast path) at -inf (NaN) and -0.0 (-0.0)")  # fmt: skip
EMPTY_LSE = ("llvm backend (trust-llvm, issue 11 item 7): logsumexp over an empty axis returns -inf; "
             "the reference (and the numpy backend) raise ValueError")  # fmt: skip
ONE = ("py", "c()", "c(1,)", "c(1,1)")
KNOWN: list[tuple[str, str]] = [
    *((f"llvm-*:take-*-{form}-*@1", GATHER) for form in ONE),
    *((f"llvm-*:take-[fi]*-{form}-v(5,)-*@0", GATHER) for form in ONE),
    ("llvm-*:take-bool-py-v(5,)-*@0", GATHER),
    *((f"llvm-*:scatter_add-*-{form}-v*@0", GATHER) for form in ONE),
    *((f"llvm-*:scatter_add-*-v*-{form}@1", GATHER) for form in ONE),
    *((f"llvm-noopt:{op}-*-{form}-(*", ARG) for op in ("argmax", "argmin") for form in ONE),
    *((f"llvm-noopt:{op}-*-c(7,)-huge", TRIG_HUGE) for op in ("sin", "cos", "tan")),
    *((f"llvm-*:{op}-*-v(7,)-huge", TRIG_HUGE) for op in ("sin", "cos", "tan")),
    *((f"llvm-*:{op}-i64-specials", TRIG_HUGE) for op in ("sin", "cos", "tan")),
    *((f"llvm-noopt:{op}-i64-specials-c", TRIG_HUGE) for op in ("sin", "cos", "tan")),
    ("llvm-*:pow-f*-specials-py@1", SQRT_POW),
    *((f"llvm-*:logsumexp-*-{form}-axis=*", EMPTY_LSE) for form in ("c(0,)", "v(0,)")),
    ("llvm-*:logsumexp-*-v(0,3)-axis=[N0(]*", EMPTY_LSE),  # axis None, 0 or (0, 1): the empty axis 0 is reduced
    ("llvm-*:logsumexp-*-v(3,0)-axis=[N(-]*", EMPTY_LSE),  # axis None, (0, 1) or -1: the empty axis 1 is reduced
]


def config_id(backend: str, optimize: bool) -> str:
    return f"{backend}-{'opt' if optimize else 'noopt'}"


def known_defect(key: str) -> str | None:
    for pattern, reason in KNOWN:
        if fnmatch.fnmatchcase(key, pattern):
            return reason
    return None


class KnownDefect(Exception):
    """A defect listed in KNOWN showed itself (what a strict xfail of this suite expects)."""


def parameters() -> list:
    """One test per case; a case with a known defect in some configuration is a strict xfail."""
    params = []
    for case in CASES:
        reasons = sorted({r for b, o in CONFIGS if (r := known_defect(f"{config_id(b, o)}:{case.id}"))})
        marks = [pytest.mark.xfail(strict=True, raises=KnownDefect, reason=" / ".join(reasons))] if reasons else []
        params.append(pytest.param(case.id, id=case.id, marks=marks))
    return params


# --- running ----------------------------------------------------------------------------------------

Result = list[np.ndarray] | BaseException


@functools.cache
def reference(case_id: str) -> Result:
    case = BY_ID[case_id]
    feed = dict(zip(case.inputs, case.feed, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return list(gc.evaluate(case.outputs, feed))
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


@functools.cache
def batches() -> tuple[tuple[str, ...], ...]:
    """Each op's case ids in batches of at most BATCH outputs; a case whose reference raises runs alone."""
    table: list[list[str]] = [[]]
    size = 0
    for case in CASES:
        if isinstance(reference(case.id), BaseException):
            table.append([case.id])
            continue
        if size + len(case.outputs) > BATCH or (table[-1] and BY_ID[table[-1][0]].op != case.op):
            table.append([])
            size = 0
        table[-1].append(case.id)
        size += len(case.outputs)
    return tuple(tuple(ids) for ids in table if ids)


@functools.cache
def batch_of() -> dict[str, int]:
    return {cid: k for k, ids in enumerate(batches()) for cid in ids}


@functools.cache
def batch_results(k: int, backend: str, optimize: bool) -> tuple[dict[str, Result], tuple[str, ...]]:
    """Batch k's results per case, and what failed only in a batch."""
    ids = batches()[k]
    results, unexplained = run_split([BY_ID[i] for i in ids], backend, optimize)
    return dict(zip(ids, results, strict=True)), tuple(unexplained)


def compiled(case_id: str, backend: str, optimize: bool) -> Result:
    results, _ = batch_results(batch_of()[case_id], backend, optimize)
    return results[case_id]


# --- comparing ----------------------------------------------------------------------------------------


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
    kind, bits = (np.int64, 63) if a.dtype == np.float64 else (np.int32, 31)
    ia = a.view(kind).astype(np.int64)
    ib = b.view(kind).astype(np.int64)
    ia = np.where(ia < 0, -(ia + (np.int64(1) << bits)), ia)
    ib = np.where(ib < 0, -(ib + (np.int64(1) << bits)), ib)
    return np.where(np.isnan(a) & np.isnan(b), 0, np.abs(ia - ib))


def close(got: np.ndarray, want: np.ndarray, rtol: float) -> bool:
    """NaN where NaN, infinities equal, finite values within rtol of the largest finite magnitude."""
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


def precision(case: Case) -> np.dtype:
    """float32 if any float32 value is computed on the way to the outputs, else float64."""
    dtypes = {n.dtype for n in gc.Graph(case.outputs).nodes}
    return np.dtype("float32") if np.dtype("float32") in dtypes else np.dtype("float64")


def tolerance(op: str, backend: str, gradient: bool) -> str:
    """How closely a backend must follow the reference for this op (see the module docstring)."""
    if op in LOOSE:
        return "loose"
    if backend == "numpy":
        return "exact"
    if gradient or op in ROUNDED:
        return "round"
    if op in TRANSCENDENTAL:
        return "ulp"
    return "pow" if op == "pow" else "exact"


def describe(case: Case, index: int, got: object, want: np.ndarray) -> str:
    which = f"value {index}" if index < len(case.values) else f"gradient {index - len(case.values)}"
    feed = "\n".join(f"  {v.name}{v.shape} = {a!r}" for v, a in zip(case.inputs, case.feed, strict=True))
    return f"{case.id}: {which} differs\n got  {got!r}\n want {want!r}\ninputs:\n{feed}"


# --- tests -----------------------------------------------------------------------------------------------


def test_every_op_has_a_spec_and_cases_that_reach_it() -> None:
    """A new op fails here until tests/opcases.py has a spec for it whose cases build graphs with it."""
    assert sorted(set(OPS) - set(SPECS)) == [], "ops without a spec in tests/opcases.py"
    assert sorted(set(SPECS) - set(OPS)) == [], "specs of ops that no longer exist"
    reached = {n.op.name for c in CASES for n in gc.Graph(c.outputs).nodes}
    assert sorted(set(OPS) - reached - {"fused"}) == [], "ops that no case builds"


def test_fused_cases_fuse() -> None:
    """`fused` exists only after optimization: its cases must produce fused nodes there."""
    case = next(c for c in CASES if c.op == "fused" and c.grads)
    optimized = gc.Graph([t.node for t in gc.optimize(case.outputs)])
    assert any(n.op.name == "fused" for n in optimized.nodes)


def test_every_position_gets_every_form() -> None:
    """For each op and input position, the cases (or refusals) cover the constant forms of sizes 0, 1, n."""
    labels = {"py", "c()", "c(1,)", "c(1,1)", "c(5,)", "c(0,)"}
    ids = [c.id for c in CASES] + [r.id for r in REFUSALS]
    for op in ("add", "where", "pow", "take", "matmul", "concatenate", "scatter_add", "exp", "sum"):
        seen = {part for i in ids if i.startswith(f"{op}-f64-") for part in i.split("-")}
        assert labels <= seen, (op, sorted(labels - seen))


def test_reference_types_match_inference() -> None:
    """gc.evaluate's arrays have the dtype and shape that type inference gave each output."""
    wrong = []
    for case in CASES:
        result = reference(case.id)
        if isinstance(result, BaseException):
            continue
        for tensor, value in zip(case.outputs, result, strict=True):
            if (value.dtype, value.shape) != (tensor.dtype, tensor.shape):
                wrong.append(f"{case.id}: inferred {tensor.node.type}, evaluated {value.dtype}{value.shape}")
    assert wrong == []


@pytest.mark.parametrize("case_id", [r.id for r in REFUSALS])
def test_refusals_are_user_errors(case_id: str) -> None:
    """A refused build raises a GraphError that names the op's public function and this suite's line."""
    refusal = next(r for r in REFUSALS if r.id == case_id)
    assert isinstance(refusal.error, gc.GraphError), repr(refusal.error)
    assert "opcases.py" in str(refusal.error), str(refusal.error)


def mismatch(case: Case, backend: str, optimize: bool) -> str | None:
    """What differs between the compiled case and the reference, or None."""
    want = reference(case.id)
    got = compiled(case.id, backend, optimize)
    if isinstance(want, BaseException):
        return None if isinstance(got, type(want)) else f"the reference raises {want!r}, compiled gives {got!r}"
    if isinstance(got, BaseException):
        return f"raises {got!r}"
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        kind = tolerance(case.op, backend, index >= len(case.values))
        if not agree(g, w, kind, precision(case)):
            return describe(case, index, g, w)
    return None


@pytest.mark.parametrize("case_id", parameters())
def test_matches_the_reference(case_id: str) -> None:
    """Both backends, optimize on and off; a configuration listed in KNOWN must still show its defect."""
    case = BY_ID[case_id]
    failures, known, fixed = [], [], []
    for backend, optimize in CONFIGS:
        key = f"{config_id(backend, optimize)}:{case_id}"
        problem = mismatch(case, backend, optimize)
        reason = known_defect(key)
        if problem and not reason:
            failures.append(f"{key}: {problem}")
        elif problem:
            known.append(f"{key}: {problem}")
        elif reason:
            fixed.append(key)
    assert not failures, "\n".join(failures)
    assert not fixed, f"no longer failing, remove their KNOWN patterns: {fixed}"
    if known:
        raise KnownDefect("\n".join(known))


@pytest.mark.parametrize(("backend", "optimize"), CONFIGS, ids=[config_id(*c) for c in CONFIGS])
def test_batching_changes_nothing(backend: str, optimize: bool) -> None:
    """A batch fails as a whole only where one of its cases fails alone (bisection finds it)."""
    unexplained = [u for k in range(len(batches())) for u in batch_results(k, backend, optimize)[1]]
    assert unexplained == []


def test_the_comparisons_can_fail() -> None:
    """Each tolerance rejects what it must: a sign of zero, a NaN, ulps beyond the bound, a changed dtype."""
    f64, f32 = np.dtype("float64"), np.dtype("float32")
    x = np.array([1.0, -0.0, np.nan, np.inf])
    assert agree(x.copy(), x, "exact", f64)
    assert not agree(np.array([1.0, 0.0, np.nan, np.inf]), x, "exact", f64)
    assert not agree(np.array([1.0, -0.0, 1.0, np.inf]), x, "exact", f64)
    assert not agree(x.astype(f32), x, "exact", f64)
    assert not agree(np.array([1, 0, 0, 1]), np.array([1, 0, 0, 2]), "round", f64)
    y = np.array([1.0, 3.0, np.nan])
    assert agree(np.nextafter(y, np.inf, out=np.empty(3)) * 1.0, y, "ulp", f64)
    assert not agree(y + 5 * np.spacing(y), y, "ulp", f64)
    assert not agree(np.array([1.0, 3.0, 0.0]), y, "ulp", f64)
    assert not agree(y * (1 + 1e-11), y, "round", f64)
    assert agree(y * (1 + 1e-13), y, "round", f64)
    assert agree(np.float32(y) * np.float32(1 + 1e-6), np.float32(y), "round", f32)
    assert not agree(np.array([1.0, np.inf]), np.array([1.0, -np.inf]), "loose", f64)
