"""lower.py: a huge entry (glue calling thousands of kernels) is compiled without optimization, same results."""

from __future__ import annotations

import numpy as np

import graphc as gc
from graphc.backends.llvm import lower


def entry_line(fn: gc.compile) -> str:  # type: ignore[valid-type]
    (line,) = [ln for ln in fn.llvm_ir.unoptimized.splitlines() if ln.startswith("define") and "graphc_entry" in ln]  # type: ignore[attr-defined]
    return line


def test_a_huge_entry_is_unoptimized_and_computes_the_same(tmp_path):
    n = 300  # about 3,500 entry instructions: over HUGE_GLUE
    xs = [gc.var(f"x{i}") for i in range(n)]
    f = gc.sin(xs[0]) * xs[0]
    for x in xs[1:]:
        f = f + gc.sin(x) * x
    grads = gc.grad(f, xs)
    fn = gc.compile(xs, [f, *grads], cache_dir=tmp_path)
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
