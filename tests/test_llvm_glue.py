"""lower.py: a huge entry (glue calling thousands of kernels) is cut into bounded optnone parts; same results."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends.llvm import lower


def entry_line(fn: gc.compile) -> str:  # type: ignore[valid-type]
    (line,) = [ln for ln in fn.llvm_ir.unoptimized.splitlines() if ln.startswith("define") and "graphc_entry" in ln]  # type: ignore[attr-defined]
    return line


# --- a huge plan's glue cut into bounded parts (lower._build_parts) ------------------------------------

N_HUGE = 300  # inputs: a plan whose single entry would be ~3,500 instructions, so it is cut into parts


def scalar_sum(n: int) -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    """f = sum_i sin(x_i) * x_i and its gradient: one kernel call (or more) per input."""
    xs = [gc.var(f"x{i}") for i in range(n)]
    f = gc.sin(xs[0]) * xs[0]
    for x in xs[1:]:
        f = f + gc.sin(x) * x
    return xs, [f, *gc.grad(f, xs)]


@pytest.fixture(scope="module")
def huge() -> tuple[list[gc.Tensor], list[gc.Tensor], gc.CompiledFunction]:
    xs, outs = scalar_sum(N_HUGE)
    return xs, outs, gc.compile(xs, outs, cache=False)


def test_a_huge_entry_is_unoptimized_and_computes_the_same(huge):
    xs, (f, *grads), fn = huge  # 300 inputs: about 3,500 entry instructions, over HUGE_GLUE
    n = len(xs)
    assert "optnone" in entry_line(fn) and "noinline" in entry_line(fn)
    values = list(np.linspace(-2.0, 2.0, n))
    got = fn(*values)
    want = gc.evaluate([f, *grads], dict(zip(xs, values, strict=True)))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13)
    np.testing.assert_allclose(got[1:], [np.sin(v) + v * np.cos(v) for v in values], rtol=1e-13)


def test_a_small_entry_stays_optimized(tmp_path):
    x = gc.var("x", (8,))
    fn = gc.compile([x], [gc.sum(gc.sin(x) * x)], cache_dir=tmp_path)
    assert "optnone" not in entry_line(fn)
    assert lower.HUGE_GLUE >= 1024  # the call overhead of ordinary functions keeps an optimized entry


def functions(ir_text: str) -> dict[str, list[str]]:
    """Each defined function's name and body lines."""
    bodies: dict[str, list[str]] = {}
    name = None
    for line in ir_text.splitlines():
        if line.startswith("define"):
            name = line.split("@")[1].split("(")[0].strip('"')
            bodies[name] = []
        elif line.startswith("}"):
            name = None
        elif name is not None and line.startswith("  "):
            bodies[name].append(line)
    return bodies


def kernel_calls(body: list[str]) -> list[int]:
    """The pointer count of each kernel call in a function body."""
    return [line.count("ptr ") for line in body if 'call i32 @"kernel' in line]


def test_a_huge_plan_is_cut_into_bounded_glue_parts(huge):
    xs, outs, fn = huge
    bodies = functions(fn.llvm_ir.unoptimized)
    parts = [name for name in bodies if name.startswith(lower.PART)]
    assert len(parts) >= 3
    for name in parts:
        calls = kernel_calls(bodies[name])
        # every part but one holding a single oversized kernel stays within the bound (calls + pointers)
        assert len(calls) == 1 or len(calls) + sum(calls) <= lower.PART_GLUE, name
        assert len(bodies[name]) <= 8 * lower.PART_GLUE, name  # its own data loads and status checks included
    # the glue is the parts' and nothing else: the entry and graphc_objects make no kernel call
    assert not kernel_calls(bodies[lower.ENTRY]) and not kernel_calls(bodies[lower.OBJECTS])
    assert sum(len(kernel_calls(bodies[name])) for name in parts) >= N_HUGE // 10
    assert "optnone" in entry_line(fn)
    values = list(np.linspace(-3.0, 3.0, N_HUGE))
    got = fn(*values)
    want = gc.evaluate(outs, dict(zip(xs, values, strict=True)))
    assert len(got) == N_HUGE + 1
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=0)
    np.testing.assert_allclose(got[1:], [np.sin(v) + v * np.cos(v) for v in values], rtol=1e-13)


def test_huge_glue_parts_take_extremes_and_misaligned_inputs(huge):
    xs, outs, fn = huge
    values = [0.0, -0.0, 1e300, -1e300, 5e-324, np.inf, np.nan] + [0.5] * (N_HUGE - 7)
    with np.errstate(all="ignore"):
        got = fn(*values)
        want = gc.evaluate(outs, dict(zip(xs, values, strict=True)))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=0)
    aligned = [float(k % 7) - 3.0 for k in range(N_HUGE)]
    buffer = bytearray(8 * N_HUGE + 1)  # every input a misaligned 0-d view: an alignment part returns MISALIGNED
    views = []
    for k, v in enumerate(aligned):
        view = np.frombuffer(buffer, dtype=np.float64, count=1, offset=1 + 8 * k).reshape(())
        view[...] = v
        views.append(view)
    assert not any(v.flags.aligned for v in views)
    for g, w in zip(fn(*views), fn(*aligned), strict=True):
        np.testing.assert_array_equal(g, w)


def test_huge_glue_parts_report_a_failing_kernel():
    n = 120  # with a check after every step, already several parts
    xs, outs = scalar_sum(n)
    fn = gc.compile(xs, outs, cache=False, check_finite=True)
    assert sum(name.startswith(lower.PART) for name in functions(fn.llvm_ir.unoptimized)) >= 3
    values = [0.25] * n
    fn(*values)  # finite: no error
    values[-1] = np.inf  # the last input: its checks sit in a late part
    with pytest.raises(FloatingPointError, match=r"sin|mul|add"):
        fn(*values)


@pytest.mark.slow
def test_huge_glue_parts_through_ctypes(monkeypatch):
    from graphc.backends.llvm import pyentry

    monkeypatch.setattr(pyentry, "available", lambda: False)  # the ctypes fallback calls ENTRY itself
    xs, outs = scalar_sum(N_HUGE)
    fn = gc.compile(xs, outs, cache=False)
    assert lower.OBJECTS in fn.llvm_ir.unoptimized and pyentry.CALL not in fn.llvm_ir.unoptimized
    values = list(np.linspace(-1.0, 2.0, N_HUGE))
    want = gc.evaluate(outs, dict(zip(xs, values, strict=True)))
    for g, w in zip(fn(*values), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=0)


def test_the_glue_floor_never_exceeds_a_single_entry():
    """glue_floor is a lower bound of the single entry's instructions: every plan below HUGE_GLUE keeps its IR."""
    cases = []
    x, y = gc.var("x", (5,)), gc.var("y", (5,), dtype="float32")
    i = gc.var("i", (3,), dtype="int64")
    cases.append(([x, i], [gc.sum(gc.take(x, i) * x[:3])]))
    cases.append(([x, y], [gc.sum(gc.exp(x) * gc.astype(y, "float64")), *gc.grad(gc.sum(gc.exp(x) * y), [x])]))
    xs, outs = scalar_sum(40)
    cases.append((xs, outs))
    for inputs, outputs in cases:
        fn = gc.compile(inputs, outputs, cache=False)
        plan = fn._built.plan
        lowering = lower.Lowering(plan, fastcall=True)
        module = lowering.build()
        names = lower.arguments(plan)
        sizes = [lower.glue(k, lowering.signatures) for k in plan.kernels]
        floor = lower.glue_floor(plan, len(names), sizes)
        assert 0 < floor <= lower.instructions(module.globals[lower.ENTRY])
