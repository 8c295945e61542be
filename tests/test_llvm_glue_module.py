"""lower.py + jit.py: a huge plan's glue is a module of its own, code-generated at O0 and linked to the kernels.

Where bugs live: kernels called across the module boundary (same names in two functions of one
process), threads started from the glue (a trampoline's address), loops and branches inside
huge glue, outputs aliasing inputs, 0-d and zero-size arrays, and the object cache's bundles.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends.llvm import jit, lower

N = 300  # scalar inputs: enough glue for several parts (test_llvm_glue.py)


def scalar_terms(xs: list[gc.Tensor]) -> gc.Tensor:
    f = gc.sin(xs[0]) * xs[0]
    for x in xs[1:]:
        f = f + gc.sin(x) * x
    return f


def mixed() -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    """Huge glue around a threaded vector kernel, a scan, a cond-free where, an aliasing output and an empty array."""
    xs = [gc.var(f"x{i}") for i in range(N)]
    v = gc.var("v", (1 << 17,))
    e = gc.var("e", (0,))
    f = scalar_terms(xs)

    def step(h: gc.Tensor, x_t: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = gc.tanh(h * 0.5 + x_t)
        return h, h

    h, _ = gc.scan(step, xs[0] * 1.0, gc.stack(xs[:16]))
    g = gc.sum(gc.exp(gc.sin(v) * gc.cos(v)) * gc.tanh(v)) * f + h
    outs = [g, *gc.grad(g, [*xs, v]), v, e * 2.0, gc.where(xs[1] > 0, xs[2], xs[3])]
    return [*xs, v, e], outs


@pytest.fixture(scope="module")
def built():
    inputs, outs = mixed()
    return inputs, outs, gc.compile(inputs, outs, cache=False, threads=2)


def arguments(seed: int) -> list[object]:
    rng = np.random.default_rng(seed)
    return [*rng.uniform(-1.0, 1.0, N), rng.uniform(-2.0, 2.0, 1 << 17), np.zeros(0)]


def agree(fn: gc.CompiledFunction, inputs: list[gc.Tensor], outs: list[gc.Tensor], args: list[object]) -> None:
    got = fn(*args)
    want = gc.evaluate(outs, dict(zip(inputs, args, strict=True)))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert np.shape(g) == np.shape(w)
        scale = float(np.max(np.abs(w), initial=1.0))  # sums of 2**17 terms: absolute error grows with them
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-13 * scale)


def test_the_glue_is_a_module_of_its_own_and_computes_the_same(built):
    inputs, outs, fn = built
    kernels, glue = jit.split_glue(fn.llvm_ir.unoptimized)
    assert glue, "a huge plan gets a glue module"
    assert f'define i32 @"{lower.ENTRY}"' in glue and f'define i32 @"{lower.OBJECTS}"' in glue
    assert lower.PART + "0" in glue and lower.PART + "0" not in kernels
    assert 'define internal i32 @"kernel' not in kernels  # exported: the glue calls them
    assert '\ndefine i32 @"kernel' in kernels and 'declare i32 @"kernel' in glue
    parts = [line for line in glue.splitlines() if line.startswith(f'define internal i32 @"{lower.PART}')]
    assert len(parts) >= 2  # the plain calls' parts and the scan's and the threaded kernel's
    if lower.threads_available():
        assert "pthread_create" in glue
    for seed in (0, 1):
        agree(fn, inputs, outs, arguments(seed))


def test_the_optimized_ir_keeps_the_glue_module_as_it_is(built):
    _, _, fn = built
    kernels, glue = jit.split_glue(fn.llvm_ir.optimized)
    written = jit.split_glue(fn.llvm_ir.unoptimized)[1]
    assert glue.count("\ndefine ") == written.count("\ndefine ") and glue.count(" call ") == written.count(" call ")
    assert f"@{lower.PART}0(" in glue  # as LLVM prints it (names unquoted), like the kernel module
    assert "vector.body" in kernels or "<4 x double>" in kernels or "x double>" in kernels


def test_an_output_aliasing_an_input_is_a_copy(built):
    _, _, fn = built
    args = arguments(2)
    got = fn(*args)
    v_out = got[-3]
    assert not np.shares_memory(v_out, args[-2])
    np.testing.assert_array_equal(v_out, args[-2])
    assert got[-2].shape == (0,)


def test_two_huge_functions_with_same_named_kernels_live_side_by_side(built):
    inputs, outs, fn = built
    xs = [gc.var(f"y{i}") for i in range(N)]
    f = scalar_terms([gc.cos(x) for x in xs])
    other = gc.compile(xs, [f, *gc.grad(f, xs)], cache=False)
    assert jit.split_glue(other.llvm_ir.unoptimized)[1]
    values = list(np.linspace(-2.0, 2.0, N))
    want = gc.evaluate([f, *gc.grad(f, xs)], dict(zip(xs, values, strict=True)))
    for g, w in zip(other(*values), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    agree(fn, inputs, outs, arguments(3))  # the first one still calls its own kernels


def test_a_huge_plan_round_trips_through_the_object_cache(tmp_path):
    xs = [gc.var(f"z{i}") for i in range(N)]
    f = scalar_terms(xs)
    outs = [f, *gc.grad(f, xs)]
    cold = gc.compile(xs, outs, cache_dir=tmp_path)
    warm = gc.compile(xs, outs, cache_dir=tmp_path)
    assert not cold._built.cache_hit and warm._built.cache_hit
    values = list(np.linspace(-1.5, 1.5, N))
    for a, b in zip(cold(*values), warm(*values), strict=True):
        np.testing.assert_array_equal(a, b)
    assert warm.llvm_ir == cold.llvm_ir


def test_bundles_round_trip_and_a_truncated_one_is_refused():
    assert jit.unbundle(b"\x7fELF...") == [b"\x7fELF..."]
    assert jit.unbundle(jit.bundle(b"abc", b"defg")) == [b"abc", b"defg"]
    assert jit.unbundle(jit.bundle(b"", b"")) == [b"", b""]
    with pytest.raises(RuntimeError, match="truncated"):
        jit.unbundle(jit.bundle(b"abcdef", b"")[:-2])
    with pytest.raises(RuntimeError, match="truncated"):
        jit.unbundle(jit.BUNDLE + b"\x01")


def test_small_plans_keep_one_module():
    x = gc.var("x", (8,))
    fn = gc.compile([x], [gc.sum(gc.sin(x) * x)], cache=False)
    assert jit.GLUE not in fn.llvm_ir.unoptimized
    assert 'define internal i32 @"kernel' in fn.llvm_ir.unoptimized
