"""The generated differential suite: every op x operand forms x positions x dtypes, against gc.evaluate.

Cases come from tests/opspecs.py (one spec per op in OPS; a new op fails here until it
has one) and tests/opcases.py (forms, roles, families). Each case's outputs — the op's
results and their vjp for every float var operand — are compiled on both backends with
optimize on and off and compared with the reference evaluator on the unoptimized graph,
as tests/opcheck.py says: bit for bit where the API promises it, to documented ulps or
rounding elsewhere; a reference error at call time must be raised by the compiled
function too.

One test per case covers the four configurations. Cases compile in batches, so the
default run stays within its budget; test_batching_changes_nothing checks that a batch
fails only where one of its cases fails alone. Known defects owned by other streams are
listed in KNOWN per configuration: a case with one is a strict xfail, which fails if the
defect no longer shows (remove the line) or if anything else differs. The full sweep
(every dtype with every form, one test per op) is marked slow.
"""

from __future__ import annotations

import fnmatch
import functools
import re

import numpy as np
import pytest
from opcheck import CONFIGS, Suite, agree, config_id
from opspecs import SPECS, generate

import graphc as gc
from graphc.ops import OPS

CASES, REFUSALS = generate("default")
BUILT_HERE = re.compile(r"tests/op(cases|specs)\.py:\d+")  # the user's file:line in a refusal
SUITE = Suite(CASES)

# Known defects, owned by other streams: (fnmatch pattern over "<backend>-<opt|noopt>:<case id>", the defect).
# They are strict xfails, so the fix of a defect fails here until its lines go. The llvm defects this suite
# found first (one-element constants in gathers/scatters/arg-reductions, sin/cos/tan beyond 2**50, x ** 0.5,
# logsumexp over an empty axis) are fixed; none is open.
KNOWN: list[tuple[str, str]] = []


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


# --- tests -----------------------------------------------------------------------------------------------


def test_every_op_has_a_spec_and_cases_that_reach_it() -> None:
    """A new op fails here until tests/opspecs.py has a spec for it whose cases build graphs with it."""
    assert sorted(set(OPS) - set(SPECS)) == [], "ops without a spec in tests/opspecs.py"
    assert sorted(set(SPECS) - set(OPS)) == [], "specs of ops that no longer exist"
    reached = {n.op.name for c in CASES for n in gc.Graph(c.outputs).nodes}
    assert sorted(set(OPS) - reached - {"fused", "dim"}) == [], "ops that no case builds"  # dim: named dimensions


def test_fused_cases_fuse() -> None:
    """`fused` exists only after optimization: its cases must produce fused nodes there."""
    case = next(c for c in CASES if c.op == "fused" and c.grads)
    optimized = gc.Graph([t.node for t in gc.optimize(case.outputs)])
    assert any(n.op.name == "fused" for n in optimized.nodes)


# Positions that cannot take some forms: (op, position) -> the labels it never gets, and why.
UNREACHABLE = {
    ("slice", 0): {"py", "c()"},  # a 0-d array has no axis to slice
    ("unslice", 0): {"py", "c()"},
    ("scan", 1): {"py", "c()"},  # xs needs a leading (loop) axis
}


def test_every_position_gets_every_form() -> None:
    """In an op's first dtype, every input position takes each constant form of sizes 0, 1 and n (or refuses it)."""
    wanted = {"py", "c()", "c(1,)", "c(1,1)", "c(5,)", "c(0,)"}
    first = {}
    for made in [*CASES, *REFUSALS]:
        first.setdefault(made.op, made.id.split("-")[1])
    seen: dict[tuple[str, int], set[str]] = {}
    for made in [*CASES, *REFUSALS]:
        if made.id.split("-")[1] == first[made.op]:
            for position, label in enumerate(made.labels):
                seen.setdefault((made.op, position), set()).add(label)
    for op in sorted(set(OPS) - {"var", "const", "fused", "dim"}):
        positions = [key for key in seen if key[0] == op]
        assert positions, f"{op} has no cases with operand forms"
        for key in positions:
            missing = wanted - seen[key] - UNREACHABLE.get(key, set())
            assert not missing, f"{op} position {key[1]} never gets {sorted(missing)}"


def test_reference_types_match_inference() -> None:
    """gc.evaluate's arrays have the dtype and shape that type inference gave each output."""
    wrong = []
    for case in CASES:
        result = SUITE.reference(case.id)
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
    assert BUILT_HERE.search(str(refusal.error)), str(refusal.error)


@pytest.mark.parametrize("case_id", parameters())
def test_matches_the_reference(case_id: str) -> None:
    """Both backends, optimize on and off; a configuration listed in KNOWN must still show its defect."""
    failures, known, fixed = [], [], []
    for backend, optimize in CONFIGS:
        key = f"{config_id(backend, optimize)}:{case_id}"
        problem = SUITE.mismatch(case_id, backend, optimize)
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
    unexplained = [u for k in range(len(SUITE.batches)) for u in SUITE.batch(k, backend, optimize)[1]]
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


# --- the full sweep (slow) ------------------------------------------------------------------------------


@functools.cache
def full_sweep() -> tuple[Suite, list]:
    cases, refusals = generate("full")
    return Suite(cases), refusals


@pytest.mark.slow
@pytest.mark.parametrize("op", sorted(SPECS))
def test_full_sweep(op: str) -> None:
    """Every dtype with every form: nothing differs but known defects, every refusal is a located GraphError."""
    suite, refusals = full_sweep()
    located = [r for r in refusals if isinstance(r.error, gc.GraphError) and BUILT_HERE.search(str(r.error))]
    failures = [f"{r.id}: refused with {r.error!r}" for r in refusals if r.op == op and r not in located]
    for case in (c for c in suite.cases if c.op == op):
        for backend, optimize in CONFIGS:
            key = f"{config_id(backend, optimize)}:{case.id}"
            problem = suite.mismatch(case.id, backend, optimize)
            if problem and not known_defect(key):
                failures.append(f"{key}: {problem}")
    assert not failures, "\n".join(failures)
