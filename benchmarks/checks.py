"""Verification: a system's outputs against the expected ones, and hand-written derivatives against differences.

Every result is compared before anything is timed (harness.measure). The comparison is
normwise: max|got - want| / max|want| per output, so entries near zero in a large
gradient do not fail on rounding; a case can pass a `view` to take out a dominant known
part first (W5's 1/h^2 Laplacian). Imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Outputs = tuple[object, ...]


class VerificationError(AssertionError):
    """A system's result differs from the expected outputs."""


def to_numpy(value: object) -> np.ndarray:
    """An output of any system as a NumPy array: sparse matrices densified, tensors detached."""
    if hasattr(value, "toarray"):
        return np.asarray(value.toarray())  # type: ignore[attr-defined]
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()  # type: ignore[attr-defined]
    return np.asarray(value)


def as_outputs(value: object) -> Outputs:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,)


def verify(
    got: object, expected: Outputs, rtol: float, view: Callable[[np.ndarray], np.ndarray] | None = None
) -> float:
    """The largest normwise relative error max|got - want| / max|want| over the outputs; raises over rtol.

    Shapes must match exactly and every value must be finite. A `view` (applied to both
    sides) removes a dominant known part that would hide errors in the rest.
    """
    outputs = as_outputs(got)
    if len(outputs) != len(expected):
        raise VerificationError(f"{len(outputs)} outputs, expected {len(expected)}")
    worst = 0.0
    for i, (value, want) in enumerate(zip(outputs, expected, strict=True)):
        if is_sparse(want):  # compared as sparse matrices: W9's Jacobian would be 65 GB dense
            worst = max(worst, _sparse_error(i, value, want, rtol, view))
            continue
        have = to_numpy(value)
        want = np.asarray(want)
        if have.shape != want.shape:
            raise VerificationError(f"output {i} has shape {have.shape}, expected {want.shape}")
        if not np.all(np.isfinite(have)):
            raise VerificationError(f"output {i} has non-finite values")
        if view is not None:
            have, want = view(have), view(want)
        scale = max(float(np.max(np.abs(want), initial=0.0)), np.finfo(float).tiny)
        error = float(np.max(np.abs(have - want), initial=0.0)) / scale
        if error > rtol:
            raise VerificationError(f"output {i} is off by {error:.2e} (relative, max-norm) > rtol {rtol:.0e}")
        worst = max(worst, error)
    return worst


def check_directional(
    value: Callable[..., float], inputs: Sequence[np.ndarray], grads: Sequence[np.ndarray], rtol: float = 1e-6
) -> None:
    """Check hand-written gradients against a central difference along one random direction per input.

    The difference cannot resolve less than the rounding of f itself (~eps |f| / step),
    so a gradient far below that is only checked to be that small.
    """
    rng = np.random.default_rng(0)
    rounding = 100 * np.finfo(float).eps * max(abs(value(*inputs)), 1.0)
    for i, (x, g) in enumerate(zip(inputs, grads, strict=True)):
        d = rng.standard_normal(np.shape(x))
        step = 1e-6 * max(1.0, float(np.max(np.abs(x))))
        plus = [*inputs[:i], x + step * d, *inputs[i + 1 :]]
        minus = [*inputs[:i], x - step * d, *inputs[i + 1 :]]
        numeric = (value(*plus) - value(*minus)) / (2 * step)
        analytic = float(np.sum(g * d))
        if abs(numeric - analytic) > rtol * abs(analytic) + rounding / step:
            raise VerificationError(f"hand gradient {i}: {analytic!r} vs central difference {numeric!r}")


def check_jacobian(
    fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, jacobian: np.ndarray, rtol: float = 1e-6
) -> None:
    """Check a hand-written Jacobian against central differences, one column per input element."""
    step = 1e-6 * max(1.0, float(np.max(np.abs(x))))
    columns = []
    for j in range(x.size):
        d = np.zeros_like(x)
        d[j] = step
        columns.append((fn(x + d) - fn(x - d)) / (2 * step))
    numeric = np.stack(columns, axis=-1)
    error = np.max(np.abs(numeric - jacobian)) / np.max(np.abs(jacobian))
    if error > rtol:
        raise VerificationError(f"hand Jacobian off by {error:.1e} (relative) from central differences")


def is_sparse(value: object) -> bool:
    """A scipy.sparse matrix or array."""
    return hasattr(value, "tocsr") and hasattr(value, "nnz")


def as_sparse(value: object) -> Any:
    """A sparse result as a scipy CSR matrix: scipy's own, CasADi's DM (through .sparse()), or a dense array."""
    import scipy.sparse  # type: ignore[import-untyped]

    if is_sparse(value):
        return value.tocsr()  # type: ignore[attr-defined]
    if type(value).__module__.startswith("casadi"):
        return value.sparse().tocsr()  # type: ignore[attr-defined]
    return scipy.sparse.csr_array(to_numpy(value))


def _sparse_error(i: int, value: object, expected: object, rtol: float, view: Callable[..., Any] | None) -> float:
    """verify() for one sparse output, with sparse arithmetic only."""
    have = as_sparse(value)
    want = as_sparse(expected)
    if have.shape != want.shape:
        raise VerificationError(f"output {i} has shape {have.shape}, expected {want.shape}")
    if not np.all(np.isfinite(have.data)):
        raise VerificationError(f"output {i} has non-finite values")
    if view is not None:
        have, want = view(have), view(want)
    scale = max(float(abs(want).max()), np.finfo(float).tiny)
    error = float(abs(have - want).max()) / scale
    if error > rtol:
        raise VerificationError(f"output {i} is off by {error:.2e} (relative, max-norm) > rtol {rtol:.0e}")
    return error
