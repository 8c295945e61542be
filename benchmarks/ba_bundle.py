"""BA: bundle adjustment, the reprojection residual and its block-sparse Jacobian (GradBench `ba` shapes).

The BAL camera model (the one of scipy's bundle-adjustment cookbook): a camera is 9
numbers, a Rodrigues rotation vector, a translation, the focal length and two radial
distortion coefficients; a point is 3. Observation k of point j by camera i gives two
residuals: P = R(r_i) X_j + t_i, p = -P[:2] / P[2], p *= f (1 + k1 |p|^2 + k2 |p|^4),
minus the observed image point. Sizes of GradBench's ba1 instance: 49 cameras, 7,776
points, 31,843 observations (tiny: 3, 20, 60); the data are generated (seeded) around a
plausible configuration. The Jacobian has 63,686 rows and 23,769 columns, each row 12
entries (2 x (9 + 3) blocks per observation, reached by gathers).

Baselines: the residual in NumPy (objective), and the Jacobian by hand in NumPy: the
projection written once over dual numbers carrying the 12 local directions of an
observation (forward mode by hand, vectorized over observations), its blocks written
into the data of a CSR array whose pattern is made once. graphc: the residual compiled,
and gc.sparse_jacobian of the same graph (pattern from the gathers, 12 colors, one
compressed JVP). Both Jacobians are checked against central differences first.
Run alone: `python -m benchmarks.ba_bundle [--quick]`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse

import graphc as gc
from benchmarks import checks, harness
from benchmarks.harness import Case, GraphcBuild, Impl
from benchmarks.w5_bratu import csr_maker

SIZES = {"tiny": (3, 20, 60), "quick": (49, 7776, 31843), "full": (49, 7776, 31843)}


@dataclass(frozen=True)
class Problem:
    cameras: np.ndarray  # (n_cameras, 9)
    points: np.ndarray  # (n_points, 3)
    camera_of: np.ndarray  # (n_observations,) int
    point_of: np.ndarray  # (n_observations,) int
    observed: np.ndarray  # (n_observations, 2)

    @property
    def params(self) -> np.ndarray:
        return np.concatenate([self.cameras.reshape(-1), self.points.reshape(-1)])


def problem(n_cameras: int, n_points: int, n_observations: int) -> Problem:
    """Cameras around the origin looking at points near it; every point observed at least once."""
    rng = np.random.default_rng(11)
    cameras = np.zeros((n_cameras, 9))
    cameras[:, :3] = rng.normal(scale=0.3, size=(n_cameras, 3))
    cameras[:, 3:5] = rng.normal(scale=0.5, size=(n_cameras, 2))
    cameras[:, 5] = rng.uniform(-12.0, -8.0, n_cameras)  # in front: P[2] stays negative
    cameras[:, 6] = rng.uniform(400.0, 600.0, n_cameras)
    cameras[:, 7] = rng.normal(scale=1e-2, size=n_cameras)
    cameras[:, 8] = rng.normal(scale=1e-3, size=n_cameras)
    points = rng.normal(scale=1.0, size=(n_points, 3))
    point_of = np.concatenate([np.arange(n_points), rng.integers(0, n_points, n_observations - n_points)])
    camera_of = rng.integers(0, n_cameras, n_observations)
    order = np.lexsort((point_of, camera_of))
    camera_of, point_of = camera_of[order], point_of[order]
    observed = project(cameras[camera_of], points[point_of]) + rng.normal(scale=1.0, size=(n_observations, 2))
    return Problem(cameras, points, camera_of, point_of, observed)


# --- NumPy: the residual, and the Jacobian by forward mode written by hand --------------------------------


def rotate(points: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Rodrigues: p cos(t) + (k x p) sin(t) + k (k . p)(1 - cos(t)), k = r / t, t = |r|."""
    theta = np.sqrt(np.sum(rotations**2, axis=1))[:, None]
    k = rotations / theta
    dot = np.sum(points * k, axis=1)[:, None]
    c, s = np.cos(theta), np.sin(theta)
    return c * points + s * np.cross(k, points) + dot * (1.0 - c) * k


def project(cameras: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = rotate(points, cameras[:, :3]) + cameras[:, 3:6]
    p = -p[:, :2] / p[:, 2:3]
    n = np.sum(p**2, axis=1)
    r = 1.0 + cameras[:, 7] * n + cameras[:, 8] * n**2
    return p * (r * cameras[:, 6])[:, None]


def residual(params: np.ndarray, prob: Problem) -> np.ndarray:
    n_cam = len(prob.cameras)
    cameras = params[: 9 * n_cam].reshape(n_cam, 9)
    points = params[9 * n_cam :].reshape(-1, 3)
    return (project(cameras[prob.camera_of], points[prob.point_of]) - prob.observed).reshape(-1)


class Dual:
    """A value (n,) and its derivatives along d directions (n, d): forward mode, by hand."""

    def __init__(self, value: np.ndarray, tangent: np.ndarray) -> None:
        self.v, self.t = value, tangent

    def __add__(self, o: Dual | float) -> Dual:
        return Dual(self.v + o.v, self.t + o.t) if isinstance(o, Dual) else Dual(self.v + o, self.t)

    def __sub__(self, o: Dual) -> Dual:
        return Dual(self.v - o.v, self.t - o.t)

    def __mul__(self, o: Dual | float) -> Dual:
        if isinstance(o, Dual):
            return Dual(self.v * o.v, self.t * o.v[:, None] + o.t * self.v[:, None])
        return Dual(self.v * o, self.t * o)

    def __truediv__(self, o: Dual) -> Dual:
        q = self.v / o.v
        return Dual(q, (self.t - o.t * q[:, None]) / o.v[:, None])

    def __neg__(self) -> Dual:
        return Dual(-self.v, -self.t)

    def apply(self, value: np.ndarray, slope: np.ndarray) -> Dual:
        return Dual(value, self.t * slope[:, None])


def _sqrt(x: Dual) -> Dual:
    s = np.sqrt(x.v)
    return x.apply(s, 0.5 / s)


def dual_project(cam: list[Dual], pt: list[Dual]) -> tuple[Dual, Dual]:
    """project() on duals, one coordinate at a time."""
    r0, r1, r2 = cam[0:3]
    theta = _sqrt(r0 * r0 + r1 * r1 + r2 * r2)
    k = [r0 / theta, r1 / theta, r2 / theta]
    c = theta.apply(np.cos(theta.v), -np.sin(theta.v))
    s = theta.apply(np.sin(theta.v), np.cos(theta.v))
    dot = pt[0] * k[0] + pt[1] * k[1] + pt[2] * k[2]
    cross = [k[1] * pt[2] - k[2] * pt[1], k[2] * pt[0] - k[0] * pt[2], k[0] * pt[1] - k[1] * pt[0]]
    one_minus_c = -c + 1.0
    rotated = [c * pt[a] + s * cross[a] + dot * one_minus_c * k[a] + cam[3 + a] for a in range(3)]
    px, py = -(rotated[0] / rotated[2]), -(rotated[1] / rotated[2])
    n = px * px + py * py
    radial = (cam[7] * n + cam[8] * (n * n) + 1.0) * cam[6]
    return px * radial, py * radial


class NumpyJacobian:
    """The Jacobian as CSR: the 2 x 12 block of every observation by hand forward mode, the pattern made once."""

    def __init__(self, prob: Problem, template: bool = False) -> None:
        self.prob = prob
        n_obs, n_cam = len(prob.camera_of), len(prob.cameras)
        cam_cols = prob.camera_of[:, None] * 9 + np.arange(9)
        pt_cols = 9 * n_cam + prob.point_of[:, None] * 3 + np.arange(3)
        columns = np.concatenate([cam_cols, pt_cols], axis=1)  # (n_obs, 12), increasing in each row
        self.indices = np.repeat(columns, 2, axis=0).reshape(-1)
        self.indptr = np.arange(0, 24 * n_obs + 1, 12)
        self.shape = (2 * n_obs, 9 * n_cam + 3 * len(prob.points))
        self.seeds = np.eye(12)
        self.make = csr_maker(self.shape, self.indices, self.indptr) if template else None

    def values(self, params: np.ndarray) -> np.ndarray:
        prob = self.prob
        n_cam = len(prob.cameras)
        cams = params[: 9 * n_cam].reshape(n_cam, 9)[prob.camera_of]
        pts = params[9 * n_cam :].reshape(-1, 3)[prob.point_of]
        n = len(cams)
        cam = [Dual(cams[:, a], np.broadcast_to(self.seeds[a], (n, 12))) for a in range(9)]
        pt = [Dual(pts[:, a], np.broadcast_to(self.seeds[9 + a], (n, 12))) for a in range(3)]
        x, y = dual_project(cam, pt)
        return np.stack([x.t, y.t], axis=1).reshape(-1)

    def __call__(self, params: np.ndarray) -> scipy.sparse.csr_array:
        data = self.values(params)
        if self.make is not None:
            return self.make(data)
        return scipy.sparse.csr_array((data, self.indices, self.indptr), shape=self.shape)


# --- graphc ----------------------------------------------------------------------------------------------


def graphc_residual(prob: Problem) -> tuple[gc.Tensor, gc.Tensor]:
    n_cam = len(prob.cameras)
    params = gc.var("params", prob.params.shape)
    cameras = gc.take(gc.reshape(params[: 9 * n_cam], (n_cam, 9)), prob.camera_of, axis=0)
    points = gc.take(gc.reshape(params[9 * n_cam :], (-1, 3)), prob.point_of, axis=0)
    r = cameras[:, :3]
    theta = gc.sqrt(gc.sum(r * r, axis=1, keepdims=True))
    k = r / theta
    dot = gc.sum(points * k, axis=1, keepdims=True)
    kx, ky, kz = k[:, 0], k[:, 1], k[:, 2]
    px_, py_, pz_ = points[:, 0], points[:, 1], points[:, 2]
    cross = gc.stack([ky * pz_ - kz * py_, kz * px_ - kx * pz_, kx * py_ - ky * px_], axis=1)
    c, s = gc.cos(theta), gc.sin(theta)
    rotated = c * points + s * cross + dot * (1.0 - c) * k + cameras[:, 3:6]
    p = -rotated[:, :2] / rotated[:, 2:3]
    n = gc.sum(p * p, axis=1)
    radial = 1.0 + cameras[:, 7] * n + cameras[:, 8] * n * n
    projected = p * (radial * cameras[:, 6])[:, None]
    return params, gc.reshape(projected - prob.observed, (-1,))


def graphc_objective(prob: Problem) -> GraphcBuild:
    params, f = graphc_residual(prob)
    return GraphcBuild([params], f, [])


def graphc_jacobian(prob: Problem) -> GraphcBuild:
    params, f = graphc_residual(prob)
    return GraphcBuild([params], f, [gc.sparse_jacobian(f, params)], with_value=False)  # type: ignore[list-item]


def check_by_differences(prob: Problem, jac: scipy.sparse.csr_array, columns: int = 40) -> None:
    """Central differences along a few random columns of the parameter vector."""
    rng = np.random.default_rng(3)
    x = prob.params
    for j in rng.choice(len(x), size=min(columns, len(x)), replace=False):
        step = 1e-6 * max(1.0, abs(x[j]))
        e = np.zeros_like(x)
        e[j] = step
        numeric = (residual(x + e, prob) - residual(x - e, prob)) / (2 * step)
        analytic = jac[:, [j]].toarray().ravel()
        scale = max(np.max(np.abs(numeric)), 1.0)
        if np.max(np.abs(numeric - analytic)) > 1e-5 * scale:
            raise checks.VerificationError(f"hand BA Jacobian column {j} disagrees with central differences")


def cases(options: harness.Options) -> list[Case]:
    prob = problem(*SIZES[options.scale])
    x = prob.params
    objective = residual(x, prob)
    expected = NumpyJacobian(prob)(x)
    check_by_differences(prob, expected)
    label = f"{len(prob.cameras)} cameras, {len(prob.points)} points, {len(prob.camera_of)} observations"
    objective_impls = [
        Impl(harness.NUMPY, lambda: lambda: residual(x, prob)),
        *harness.graphc_impls(lambda: graphc_objective(prob), [x], note="residual"),
    ]
    make: Callable[[bool], Callable[[], object]] = lambda template: partial(NumpyJacobian(prob, template), x)  # noqa: E731
    jacobian_impls = [
        Impl(harness.NUMPY, lambda: make(False), note="hand forward mode (duals), CSR, csr_array constructor"),
        Impl("NumPy CSR, template", lambda: make(True), note="the same, csr_array from a template"),
        *harness.graphc_impls(lambda: graphc_jacobian(prob), [x], note="gc.sparse_jacobian, CSR out"),
    ]
    return [
        Case("BA", f"objective, {label}", (objective,), objective_impls, rtol=1e-12),
        Case("BA", f"Jacobian, {label}", (expected,), jacobian_impls, rtol=1e-10),
    ]


if __name__ == "__main__":
    from graphc.cli import main

    sys.exit(main(["bench", "--only", "BA", *sys.argv[1:]]))
