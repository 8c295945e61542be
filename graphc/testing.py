"""Numerical checks of graphc's derivatives: central finite differences against the gradient graph.

Imports the public API only (it sits beside cli). Used by graphc's own tests and
offered to users who write their own ops out of graphc functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from graphc.autodiff import vjp
from graphc.compile import evaluate
from graphc.tensor import Tensor


def numeric_vjp(
    outputs: Sequence[Tensor],
    inputs: Sequence[Tensor],
    values: Mapping[Tensor, npt.ArrayLike],
    cotangents: Sequence[np.ndarray],
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """sum_k <ct_k, d outputs_k / d x> for each input x, by central differences in float64."""
    base = {k: np.array(v, dtype=np.float64 if np.asarray(v).dtype.kind == "f" else None) for k, v in values.items()}

    def scalar(feed: Mapping[Tensor, np.ndarray]) -> float:
        outs = evaluate(list(outputs), feed)
        return float(sum(np.sum(np.asarray(o, np.float64) * c) for o, c in zip(outs, cotangents, strict=True)))

    grads = []
    for x in inputs:
        point = base[x]
        g = np.zeros(point.shape)
        for i in np.ndindex(point.shape):
            up = point.copy()
            down = point.copy()
            up[i] += eps
            down[i] -= eps
            g[i] = (scalar({**base, x: up}) - scalar({**base, x: down})) / (2 * eps)
        grads.append(g)
    return grads


def check_grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    values: Mapping[Tensor, npt.ArrayLike],
    *,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
) -> float:
    """Compare graphc's reverse-mode derivatives of `outputs` with central finite differences.

    Non-scalar outputs are contracted with random cotangents. `values` maps every
    var the outputs need to a value (float64 recommended). Raises AssertionError
    naming the input and the worst element when they disagree; returns the largest
    absolute difference found.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    xs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    rng = np.random.default_rng(seed)
    feed: dict[Tensor, object] = dict(values.items())
    cts = [rng.standard_normal(np.shape(v)) for v in evaluate(outs, feed)]  # shapes bound by the values
    symbolic = vjp(outs, xs, cts)
    analytic = evaluate(symbolic, dict(values))
    numeric = numeric_vjp(outs, xs, values, cts, eps)
    worst = 0.0
    for x, a, n in zip(xs, analytic, numeric, strict=True):
        a = np.asarray(a, np.float64)
        err = np.abs(a - n)
        worst = max(worst, float(err.max(initial=0.0)))
        bad = err > atol + rtol * np.abs(n)
        if bad.any():
            at = np.unravel_index(int(np.argmax(err - rtol * np.abs(n))), a.shape) if a.shape else ()
            index = tuple(int(i) for i in at)
            raise AssertionError(
                f"d/d{x.name or repr(x)}: graphc {float(a[at])!r} vs finite differences {float(n[at])!r} "
                f"at index {index} (|diff| {float(err[at]):.3g}, rtol {rtol}, atol {atol})"
            )
    return worst
