"""Reproducers of defects found by probing the wave-2 features (/work/notes/probe-findings.md).

Each test states the documented behaviour and is marked xfail(strict=True) while the defect
stands, so a fix turns it into an unexpected pass and the marker must then be removed.
"""

from collections.abc import Callable

import numpy as np
import pytest

import graphc as gc


@pytest.mark.xfail(strict=True, reason="P2: compressed sparse Jacobian spreads 0 * inf = NaN to other rows")
@pytest.mark.parametrize(
    ("mode", "build", "value"),
    [
        ("fwd", lambda a, x: gc.const(a) @ gc.exp(x), [1.0, 2.0, 3.0, 800.0, 5.0, 6.0]),
        ("rev", lambda a, x: gc.tanh(gc.const(a) @ x), [1.0, 2.0, 3.0, np.inf, 5.0, 6.0]),
    ],
)
def test_sparse_jacobian_keeps_finite_entries_finite_beside_an_overflow(
    mode: str, build: Callable[[np.ndarray, gc.Tensor], gc.Tensor], value: list[float]
) -> None:
    """Every stored entry of a sparse Jacobian equals the dense Jacobian's entry."""
    n = 6
    a = np.diag(np.full(n, 2.0)) + np.diag(np.ones(n - 1), 1) + np.diag(np.ones(n - 1), -1)
    x = gc.var("x", (n,))
    f = build(a, x)
    dense = gc.evaluate(gc.jacobian(f, x), {x: np.array(value)})
    sparse = gc.compile([x], gc.sparse_jacobian(f, x, mode=mode), backend="numpy")(np.array(value)).toarray()
    pattern = a != 0
    np.testing.assert_allclose(sparse[pattern], dense[pattern], rtol=1e-15)


@pytest.mark.xfail(strict=True, reason="P6: the reverse-mode Jacobian puts 0 * inf = NaN on an exact entry")
def test_reverse_jacobian_entry_through_concatenate_is_exact_beside_an_infinity() -> None:
    """d(2 x_1)/dx_1 is 2 whatever exp(x_1) is; forward mode gives it."""
    x = gc.var("x", (5,))
    f = gc.concatenate([x * 2.0, gc.exp(x[:2])])
    value = {x: np.array([1.0, np.inf, -np.inf, np.nan, 1e300])}
    assert gc.evaluate(gc.jacobian(f, x, mode="fwd"), value)[1, 1] == 2.0
    assert gc.evaluate(gc.jacobian(f, x, mode="rev"), value)[1, 1] == 2.0
