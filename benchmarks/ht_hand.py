"""HT: a small skinned hand-tracking residual and its Jacobian (GradBench `ht`-like shapes, simplified).

26 pose parameters: a global translation (3) and rotation (3, Rodrigues), and 4 angles
per finger (spread, then three flexions). 16 bones: the palm and 3 per finger; each
finger's first bone turns about the palm's z axis by its spread and about x by its first
flexion, the next ones about x by theirs, each starting at the end of the previous one
(fixed lengths). 544 vertices, each skinned to two bones with weights (linear blend
skinning: v = sum_b w_b (R_b l_b + t_b), l_b its offset in bone b's frame). The residual
is 3 per data point: its matched vertex minus the point (500 points; tiny: 40 vertices,
30 points). The Jacobian is dense-ish (each vertex depends on the global pose and its
finger), 1,500 x 26.

Baseline: the residual in NumPy (objective), and the Jacobian in NumPy by forward mode
written by hand (the same code over values carrying 26 directions). graphc: the
residual compiled, gc.jacobian (forward mode, m > n) and gc.sparse_jacobian (CSR).
Run alone: `python -m benchmarks.ht_hand [--quick]`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import graphc as gc
from benchmarks import checks, harness
from benchmarks.harness import Case, GraphcBuild, Impl

SIZES = {"tiny": (40, 30), "quick": (544, 500), "full": (544, 500)}
FINGERS = 5
BONES = 1 + 3 * FINGERS
PARAMS = 6 + 4 * FINGERS


@dataclass(frozen=True)
class Model:
    bases: np.ndarray  # (5, 3): where each finger starts, in the palm's frame
    lengths: np.ndarray  # (5, 3): each finger bone's length
    bones: np.ndarray  # (n_vertices, 2) int: the two bones a vertex follows
    weights: np.ndarray  # (n_vertices, 2)
    offsets: np.ndarray  # (n_vertices, 2, 3): the vertex in each bone's frame
    matched: np.ndarray  # (n_points,) int: the vertex each data point is matched with
    points: np.ndarray  # (n_points, 3)
    theta: np.ndarray  # (26,): where the residual and Jacobian are evaluated


def model(n_vertices: int, n_points: int) -> Model:
    rng = np.random.default_rng(7)
    bases = np.array([[-0.4, 0.2, 0.0], [-0.2, 0.5, 0.0], [0.0, 0.55, 0.0], [0.2, 0.5, 0.0], [0.4, 0.4, 0.0]])
    lengths = rng.uniform(0.15, 0.3, (FINGERS, 3))
    first = rng.integers(0, BONES, n_vertices)
    finger_bone = np.where(first == 0, 0, first)
    second = np.where((first % 3 == 0) | (first == 0), np.maximum(first - 1, 0), first + 1)
    bones = np.stack([finger_bone, np.minimum(second, BONES - 1)], axis=1)
    w = rng.uniform(0.5, 1.0, n_vertices)
    weights = np.stack([w, 1.0 - w], axis=1)
    offsets = rng.normal(scale=0.05, size=(n_vertices, 2, 3)) + np.array([0.0, 0.1, 0.0])
    theta = np.concatenate([[0.1, -0.2, 0.3], [0.2, -0.1, 0.3], rng.uniform(-0.3, 0.6, 4 * FINGERS)])
    matched = rng.integers(0, n_vertices, n_points)
    points = rng.normal(scale=0.5, size=(n_points, 3))
    return Model(bases, lengths, bones, weights, offsets, matched, points, theta)


# --- NumPy, over plain numbers or over values carrying derivatives -----------------------------------------
# `ops` holds the few functions the model needs, so one code serves the residual and the forward mode.


class Plain:
    sin, cos, sqrt = staticmethod(np.sin), staticmethod(np.cos), staticmethod(np.sqrt)

    @staticmethod
    def constant(value: Any) -> Any:
        return np.asarray(value, dtype=float)


class Forward:
    """Values v with derivatives d along the parameters (a trailing axis of 26), written by hand."""

    def __init__(self, v: Any, d: Any) -> None:
        self.v, self.d = np.asarray(v, dtype=float), np.asarray(d, dtype=float)

    @staticmethod
    def constant(value: Any) -> Forward:
        value = np.asarray(value, dtype=float)
        return Forward(value, np.zeros((*value.shape, PARAMS)))

    def __add__(self, o: Any) -> Forward:
        o = _lift(o)
        return Forward(self.v + o.v, self.d + o.d)

    __radd__ = __add__

    def __sub__(self, o: Any) -> Forward:
        o = _lift(o)
        return Forward(self.v - o.v, self.d - o.d)

    def __rsub__(self, o: Any) -> Forward:
        return _lift(o) - self

    def __mul__(self, o: Any) -> Forward:
        o = _lift(o)
        return Forward(self.v * o.v, self.d * o.v[..., None] + o.d * self.v[..., None])

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Forward:
        o = _lift(o)
        q = self.v / o.v
        return Forward(q, (self.d - o.d * q[..., None]) / o.v[..., None])

    def __getitem__(self, index: Any) -> Forward:
        index = index if isinstance(index, tuple) else (index,)
        return Forward(self.v[index], self.d[(*index, slice(None))])

    @staticmethod
    def sin(x: Forward) -> Forward:
        return Forward(np.sin(x.v), x.d * np.cos(x.v)[..., None])

    @staticmethod
    def cos(x: Forward) -> Forward:
        return Forward(np.cos(x.v), -x.d * np.sin(x.v)[..., None])

    @staticmethod
    def sqrt(x: Forward) -> Forward:
        s = np.sqrt(x.v)
        return Forward(s, x.d * (0.5 / s)[..., None])


def _lift(o: Any) -> Forward:
    return o if isinstance(o, Forward) else Forward.constant(o)


def stack(items: list[Any], axis: int) -> Any:
    """np.stack / gc.stack / the same on Forward values (axis counted from the front)."""
    if any(isinstance(i, gc.Tensor) for i in items):
        return gc.stack(items, axis=axis)
    if any(isinstance(i, Forward) for i in items):
        lifted = [_lift(i) for i in items]
        values = np.stack(np.broadcast_arrays(*(i.v for i in lifted)), axis=axis)
        shape = values.shape[:axis] + values.shape[axis + 1 :] + (PARAMS,)
        derivatives = np.stack([np.broadcast_to(i.d, shape) for i in lifted], axis=axis)
        return Forward(values, derivatives)
    return np.stack(np.broadcast_arrays(*items), axis=axis)


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    if isinstance(x, gc.Tensor):
        return gc.reshape(x, shape)
    if isinstance(x, Forward):
        return Forward(x.v.reshape(shape), x.d.reshape((*shape, PARAMS)))
    return np.reshape(x, shape)


def concatenate(items: list[Any]) -> Any:
    if any(isinstance(i, gc.Tensor) for i in items):
        return gc.concatenate(items)
    if any(isinstance(i, Forward) for i in items):
        lifted = [_lift(i) for i in items]
        return Forward(np.concatenate([i.v for i in lifted]), np.concatenate([i.d for i in lifted]))
    return np.concatenate(items)


def _matvec(r: list[list[Any]], x: list[Any]) -> list[Any]:
    return [r[i][0] * x[0] + r[i][1] * x[1] + r[i][2] * x[2] for i in range(3)]


def _matmul(a: list[list[Any]], b: list[list[Any]]) -> list[list[Any]]:
    return [[a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j] for j in range(3)] for i in range(3)]


def rodrigues(ops: Any, r: list[Any]) -> list[list[Any]]:
    """The rotation matrix of a rotation vector (as nested lists of scalars)."""
    theta = ops.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    k = [r[0] / theta, r[1] / theta, r[2] / theta]
    c, s = ops.cos(theta), ops.sin(theta)
    v = 1.0 - c
    return [
        [c + k[0] * k[0] * v, k[0] * k[1] * v - k[2] * s, k[0] * k[2] * v + k[1] * s],
        [k[1] * k[0] * v + k[2] * s, c + k[1] * k[1] * v, k[1] * k[2] * v - k[0] * s],
        [k[2] * k[0] * v - k[1] * s, k[2] * k[1] * v + k[0] * s, c + k[2] * k[2] * v],
    ]


def about_x(ops: Any, a: Any) -> list[list[Any]]:
    c, s = ops.cos(a), ops.sin(a)
    zero, one = 0.0 * c, 1.0 + 0.0 * c
    return [[one, zero, zero], [zero, c, 0.0 - s], [zero, s, c]]


def about_z(ops: Any, a: Any) -> list[list[Any]]:
    c, s = ops.cos(a), ops.sin(a)
    zero, one = 0.0 * c, 1.0 + 0.0 * c
    return [[c, 0.0 - s, zero], [s, c, zero], [zero, zero, one]]


def _matrices(r: list[list[Any]]) -> Any:
    """A nested 3 x 3 list of (5,) values as one (5, 3, 3) value."""
    return stack([stack(row, axis=1) for row in r], axis=1)


def pose(ops: Any, m: Model, theta: Any) -> tuple[Any, Any]:
    """Every bone's rotation (16, 3, 3) and origin (16, 3): the palm, then 3 per finger (the fingers as vectors)."""
    palm = rodrigues(ops, [theta[3], theta[4], theta[5]])
    origin = [theta[0], theta[1], theta[2]]
    spread, flexions = theta[6::4], [theta[7::4], theta[8::4], theta[9::4]]
    r = _matmul(palm, _matmul(about_z(ops, spread), about_x(ops, flexions[0])))
    t = [origin[i] + base for i, base in enumerate(_matvec(palm, [m.bases[:, 0], m.bases[:, 1], m.bases[:, 2]]))]
    rotations, origins = [], []
    zeros = np.zeros(FINGERS)
    for b in range(3):
        if b:
            r = _matmul(r, about_x(ops, flexions[b]))
        rotations.append(_matrices(r))
        origins.append(stack(t, axis=1))
        t = [t[i] + step for i, step in enumerate(_matvec(r, [zeros, m.lengths[:, b], zeros]))]
    fingers_r = reshape(stack(rotations, axis=1), (3 * FINGERS, 3, 3))  # bone 1 + 3 f + b
    fingers_t = reshape(stack(origins, axis=1), (3 * FINGERS, 3))
    palm_r = reshape(stack([stack(row, axis=0) for row in palm], axis=0), (1, 3, 3))
    palm_t = reshape(stack(origin, axis=0), (1, 3))
    return concatenate([palm_r, fingers_r]), concatenate([palm_t, fingers_t])


def hand_residual(ops: Any, m: Model, theta: Any) -> Any:
    """(n_points, 3): each matched vertex, skinned, minus its data point (NumPy, plain or forward mode)."""
    r_all, t_all = pose(ops, m, theta)
    bones = m.bones[m.matched]
    weights = m.weights[m.matched]
    offsets = m.offsets[m.matched]
    total: Any = 0.0
    for k in range(2):
        r = r_all[bones[:, k]]
        local = [offsets[:, k, j] for j in range(3)]
        moved = [r[:, i, 0] * local[0] + r[:, i, 1] * local[1] + r[:, i, 2] * local[2] for i in range(3)]
        placed = stack([moved[i] + t_all[bones[:, k], i] for i in range(3)], axis=1)
        total = placed * weights[:, k : k + 1] + total
    return total - m.points


def numpy_residual(m: Model, theta: np.ndarray) -> np.ndarray:
    """The residual, flattened: (3 n_points,)."""
    return np.asarray(hand_residual(Plain, m, theta)).reshape(-1)


def numpy_jacobian(m: Model, theta: np.ndarray) -> np.ndarray:
    out = hand_residual(Forward, m, Forward(theta, np.eye(PARAMS)))
    return out.d.reshape(-1, PARAMS)


# --- graphc: the same model on Tensors ---------------------------------------------------------------------


class GraphOps:
    sin, cos, sqrt = staticmethod(gc.sin), staticmethod(gc.cos), staticmethod(gc.sqrt)


def graphc_residual(m: Model) -> tuple[gc.Tensor, gc.Tensor]:
    theta = gc.var("theta", (PARAMS,))
    r_all, t_all = pose(GraphOps, m, theta)
    bones = m.bones[m.matched]
    total = None
    for k in range(2):
        r = gc.take(r_all, bones[:, k], axis=0)  # (n, 3, 3)
        moved = gc.reshape(r @ m.offsets[m.matched][:, k, :, None], (-1, 3))
        placed = (moved + gc.take(t_all, bones[:, k], axis=0)) * m.weights[m.matched][:, k : k + 1]
        total = placed if total is None else total + placed
    assert total is not None
    return theta, gc.reshape(total - m.points, (-1,))


def graphc_objective(m: Model) -> GraphcBuild:
    theta, f = graphc_residual(m)
    return GraphcBuild([theta], f, [])


def graphc_jacobian(m: Model, sparse: bool) -> Callable[[], GraphcBuild]:
    def build() -> GraphcBuild:
        theta, f = graphc_residual(m)
        jac = gc.sparse_jacobian(f, theta) if sparse else gc.jacobian(f, theta)
        return GraphcBuild([theta], f, [jac], with_value=False)  # type: ignore[list-item]

    return build


def cases(options: harness.Options) -> list[Case]:
    m = model(*SIZES[options.scale])
    theta = m.theta
    objective = numpy_residual(m, theta)
    expected = numpy_jacobian(m, theta)
    checks.check_jacobian(lambda t: numpy_residual(m, t), theta, expected)
    label = f"{len(m.offsets)} vertices, {len(m.points)} points"
    objective_impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_residual(m, theta)),
        *harness.graphc_impls(graphc_objective_build(m), [theta], note="residual"),
    ]
    jacobian_impls = [
        Impl(harness.NUMPY, lambda: lambda: numpy_jacobian(m, theta), note="hand forward mode, 26 directions"),
        *harness.graphc_impls(graphc_jacobian(m, sparse=False), [theta], note="gc.jacobian (forward), dense"),
    ]
    if options.scale != "tiny":  # the test run (tiny) keeps one llvm compile of the Jacobian
        jacobian_impls.append(
            harness.graphc_impl(
                "llvm", graphc_jacobian(m, sparse=True), [theta], "gc.sparse_jacobian, CSR out", "graphc llvm sparse"
            )
        )
    return [
        Case("HT", f"objective, {label}", (objective,), objective_impls, rtol=1e-12),
        Case("HT", f"Jacobian, {label}", (expected,), jacobian_impls, rtol=1e-11),
    ]


def graphc_objective_build(m: Model) -> Callable[[], GraphcBuild]:
    return lambda: graphc_objective(m)


if __name__ == "__main__":
    from graphc.cli import main

    sys.exit(main(["bench", "--only", "HT", *sys.argv[1:]]))
