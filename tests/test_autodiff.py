"""Differentiation (API.md §2): every differentiable op against finite differences.

For each op case: the VJP (gc.vjp, through graphc.testing.check_grad) and the JVP
(gc.jvp) against central differences in float64, the dot-product identity
<ct, J t> = <J^T ct, t>, and the batched Jacobian (rev, fwd) against a
finite-difference Jacobian, which exercises every rule with a leading batch axis.
Then the documented subgradients, DifferentiationError, Jacobians and Hessians,
a softmax cross-entropy MLP against a hand-written NumPy backward pass, random
graphs (hypothesis) and provenance.
"""

from __future__ import annotations

import inspect
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.optimize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ir import Node, toposort
from graphc.ops import Domain, Op, accepts, elementwise_ops
from graphc.shapes import TensorType, is_float
from graphc.testing import check_grad

THIS_FILE = os.path.basename(__file__)
EPS = 1e-6


def here() -> int:
    """The caller's line number (to check that errors name the user's line)."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def ev(outputs: object, feed: dict) -> object:
    return gc.evaluate(outputs, feed)


# --- value generators (deterministic per case id) ---------------------------------------


def rng_for(key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(key.encode()))


def sym(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values in (-1.5, 1.5)."""
    return r.uniform(-1.5, 1.5, shape)


def pos(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values in (0.5, 2): away from the poles of log, sqrt, division."""
    return r.uniform(0.5, 2.0, shape)


def away(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """|values| in (0.3, 1.5), random signs: away from the kink at 0."""
    return r.uniform(0.3, 1.5, shape) * r.choice([-1.0, 1.0], shape)


def frac(lo: float, hi: float) -> Callable:
    """Integers plus a fraction in (lo, hi): away from the jumps of floor and round."""

    def gen(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return r.integers(-3, 3, shape) + r.uniform(lo, hi, shape)

    return gen


def uniform(lo: float, hi: float) -> Callable:
    def gen(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return r.uniform(lo, hi, shape)

    return gen


def quarter(offset: float) -> Callable:
    """Integers plus `offset`: two such families with offsets 0.25 and 0.75 never tie."""

    def gen(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return r.integers(-3, 3, shape) + offset

    return gen


def distinct(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Well-separated distinct values (no ties for max/min), in (-1.5, 1.5)."""
    n = int(np.prod(shape, dtype=np.int64))
    return r.permutation(np.linspace(-1.5, 1.5, n)).reshape(shape)


@dataclass(frozen=True)
class Case:
    id: str
    fn: Callable[..., gc.Tensor]
    inputs: tuple[tuple[tuple[int, ...], Callable], ...]  # (shape, generator) per var

    def build(self) -> tuple[gc.Tensor, list[gc.Tensor], dict]:
        r = rng_for(self.id)
        xs = [gc.var(f"x{i}", shape) for i, (shape, _) in enumerate(self.inputs)]
        values = {x: gen(r, shape) for x, (shape, gen) in zip(xs, self.inputs, strict=True)}
        return self.fn(*xs), xs, values


CASES: list[Case] = []


def case(id: str, fn: Callable[..., gc.Tensor], *inputs: tuple[tuple[int, ...], Callable]) -> None:
    CASES.append(Case(id, fn, inputs))


def within(domain: Domain) -> Callable:
    """Values inside the domain clipped to (-1.5, 1.5), 0.15 in from its ends and 0.2 from its singular points."""
    lo, hi = max(domain.lo, -1.5) + 0.15, min(domain.hi, 1.5) - 0.15

    def gen(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        v = r.uniform(lo, hi, shape)
        for s in domain.singular:
            v = np.where(np.abs(v - s) < 0.2, v + np.copysign(0.2, v - s), v)
        return v

    return gen


def float_valued(op: Op) -> bool:
    """Whether the record's public function gives floats for float operands (comparisons give bools)."""
    types = [TensorType((), np.dtype("float64"))] * len(op.domain)
    return op.public is not None and accepts(op, *(t.dtype for t in types)) and is_float(op.infer(*types).dtype)


# every elementwise record with a public function: unary on a scalar, a vector and a matrix ...
for _op in elementwise_ops(1):
    if float_valued(_op):
        for _shape in [(), (4,), (2, 3)]:
            case(f"{_op.public.name}-{_shape}", getattr(gc, _op.public.name), (_shape, within(_op.domain[0])))
# ... binary with broadcasting
BROADCAST_PAIRS = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((4,), ())]
for _op in elementwise_ops(2):
    if float_valued(_op):
        _gx, _gy = (within(d) for d in _op.domain)
        for _sx, _sy in BROADCAST_PAIRS:
            case(f"{_op.public.name}-{_sx}-{_sy}", getattr(gc, _op.public.name), (_sx, _gx), (_sy, _gy))

# the same through operators, methods and composites
OPERATORS = {
    "square": (gc.square, sym), "neg": (lambda x: -x, sym), "method_abs": (abs, away),
    "floor-frac": (gc.floor, frac(0.2, 0.8)), "round-frac": (gc.round, frac(0.1, 0.4)),
}  # fmt: skip
for _name, (_fn, _gen) in OPERATORS.items():
    for _shape in [(), (4,), (2, 3)]:
        case(f"{_name}-{_shape}", _fn, (_shape, _gen))
BINARY_OPERATORS = {
    "add": (lambda x, y: x + y, sym, sym),
    "sub": (lambda x, y: x - y, sym, sym),
    "rsub": (lambda x, y: 2.0 - x - y, sym, sym),
    "mul": (lambda x, y: x * y, sym, sym),
    "div": (lambda x, y: x / y, sym, pos),
    "power": (lambda x, y: x**y, pos, sym),
    "maximum-no-ties": (gc.maximum, quarter(0.25), quarter(0.75)),
    "minimum-no-ties": (gc.minimum, quarter(0.25), quarter(0.75)),
}  # fmt: skip
for _name, (_fn, _gx, _gy) in BINARY_OPERATORS.items():
    for _sx, _sy in BROADCAST_PAIRS:
        case(f"{_name}-{_sx}-{_sy}", _fn, (_sx, _gx), (_sy, _gy))

case("rdiv", lambda x: 1.0 / x, ((3,), away))
case("div-const", lambda x: x / 3.0, ((3,), sym))
case("pow-int", lambda x: x**2, ((2, 3), sym))
case("pow-odd-negative-base", lambda x: x**3, ((2, 3), away))
case("pow-frac", lambda x: x**2.5, ((3,), pos))
case("pow-negative-exponent", lambda x: x**-1.5, ((3,), pos))
case("rpow", lambda x: 2.0**x, ((3,), sym))
case("pow-const-base-array", lambda y: gc.power(np.array([0.5, 1.5, 3.0]), y), ((2, 3), sym))
case("where-const-cond", lambda x, y: gc.where(np.array([[True, False, True], [False, False, True]]), x, y),
     ((3,), sym), ((), sym))  # fmt: skip
case("where-compare", lambda x, y: gc.where(x > y, x * 2.0, y * y), ((2, 3), quarter(0.25)), ((3,), quarter(0.75)))
case("where-scalar-branch", lambda x: gc.where(x < 0.0, 0.5, gc.sin(x)), ((2, 3), away))
case("clip-scalars", lambda x: gc.clip(x, -0.5, 0.5), ((3, 4), quarter(0.25)))
case("clip-tensor-bounds", lambda x, lo, hi: gc.clip(x, lo, hi), ((2, 4), quarter(0.25)), ((4,), quarter(0.5)),
     ((), lambda r, s: np.asarray(0.75)))  # fmt: skip
case("clip-lower-only", lambda x: gc.clip(x, 0.0, None), ((5,), away))
case("compose", lambda x, y: gc.tanh(x * y) * gc.exp(-x * x) + gc.log1p(y * y), ((2, 3), sym), ((3,), sym))

# reductions with axis/keepdims variants
REDUCTIONS = {
    "sum": (gc.sum, sym), "mean": (gc.mean, sym), "max": (gc.max, distinct), "min": (gc.min, distinct),
    "prod": (gc.prod, away), "logsumexp": (gc.logsumexp, sym),
}  # fmt: skip
for _name, (_fn, _gen) in REDUCTIONS.items():
    for _axis in [None, 0, 1, -1, (0, 1)]:
        for _keep in [False, True]:
            case(f"{_name}-axis{_axis}-keep{_keep}", lambda x, f=_fn, a=_axis, k=_keep: f(x, axis=a, keepdims=k),
                 ((3, 4), _gen))  # fmt: skip
    case(f"{_name}-3d-axis(0,2)", lambda x, f=_fn: f(x, axis=(0, 2)), ((2, 3, 4), _gen))
    case(f"{_name}-vector", lambda x, f=_fn: f(x), ((5,), _gen))
    case(f"{_name}-scalar", lambda x, f=_fn: f(x), ((), _gen))
case("method-sum", lambda x: x.sum(axis=1), ((3, 4), sym))
case("method-mean", lambda x: x.mean(axis=0, keepdims=True), ((3, 4), sym))
case("method-max", lambda x: x.max(axis=-1), ((3, 4), distinct))
case("method-min", lambda x: x.min(), ((3, 4), distinct))
case("method-prod", lambda x: x.prod(axis=0), ((3, 4), away))
ZEROS = {
    "prod-one-zero": np.array([1.5, 0.0, 2.0, -0.7]),
    "prod-two-zeros": np.array([0.0, 1.5, 0.0, 2.0]),
    "prod-rows-zeros": np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 0.5], [0.5, -2.0, 1.5]]),
}
case("prod-one-zero", gc.prod, ((4,), lambda r, s: ZEROS["prod-one-zero"]))
case("prod-two-zeros", gc.prod, ((4,), lambda r, s: ZEROS["prod-two-zeros"]))
case("prod-rows-zeros", lambda x: gc.prod(x, axis=1), ((3, 3), lambda r, s: ZEROS["prod-rows-zeros"]))
case("prod-cols-zeros", lambda x: gc.prod(x, axis=0, keepdims=True), ((3, 3), lambda r, s: ZEROS["prod-rows-zeros"]))

# linear algebra
MATMUL = [((2, 3), (3, 4)), ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (3,)), ((2, 2, 3), (3, 4)),
          ((2, 2, 3), (2, 3, 4)), ((1, 2, 3), (2, 3, 4)), ((4,), (2, 4, 3))]  # fmt: skip
for _sx, _sy in MATMUL:
    case(f"matmul-{_sx}-{_sy}", lambda x, y: x @ y, (_sx, sym), (_sy, sym))
case("gc-matmul", gc.matmul, ((2, 3), sym), ((3, 2), sym))
for _sx, _sy in [((2, 3), (3,)), ((3,), (3,)), ((), (3,)), ((2, 3), (2, 3, 4)), ((3, 2), (2, 4))]:
    case(f"dot-{_sx}-{_sy}", gc.dot, (_sx, sym), (_sy, sym))


def wellcond(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Square matrices with entries in (-1.5, 1.5) plus 3 on the diagonal: well conditioned."""
    return sym(r, shape) + 3.0 * np.eye(shape[-1])


def spd(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Symmetric positive-definite matrices X Xᵀ + n I (Cholesky's domain)."""
    x = sym(r, shape)
    return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])


def spd_lower(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """SPD in the lower triangle and noise above it, which cholesky never reads."""
    return np.tril(spd(r, shape)) + np.triu(sym(r, shape), 1)


# gc.linalg: solve with every right-hand-side form and broadcast batch, the LU-based ops, cholesky, norm
for _sa, _sb in [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 2)), ((3, 3), (2, 3, 1))]:
    case(f"solve-{_sa}-{_sb}", gc.linalg.solve, (_sa, wellcond), (_sb, sym))
for _s in [(3, 3), (2, 3, 3)]:
    case(f"inv-{_s}", gc.linalg.inv, (_s, wellcond))
    case(f"det-{_s}", gc.linalg.det, (_s, wellcond))
    case(f"slogdet-{_s}", lambda a: gc.linalg.slogdet(a).logabsdet, (_s, wellcond))
    case(f"cholesky-{_s}", gc.linalg.cholesky, (_s, spd_lower))
case("det-negative", lambda a: gc.linalg.det(a[::-1]), ((3, 3), wellcond))
case("slogdet-sign", lambda a: gc.linalg.slogdet(a[::-1]).sign * gc.linalg.slogdet(a).logabsdet, ((3, 3), wellcond))
case("cholesky-upper", lambda a: gc.linalg.cholesky(a, upper=True), ((3, 3), lambda r, s: spd_lower(r, s).T))
case("cholesky-of-gram", lambda x: gc.linalg.cholesky(x @ x.T + 3.0 * np.eye(3)), ((3, 2), sym))
NORMS = {
    "2": ((4,), sym, {}), "1": ((4,), away, {"ord": 1}), "inf": ((4,), away, {"ord": np.inf}),
    "-inf": ((4,), away, {"ord": -np.inf}), "p3": ((4,), away, {"ord": 3}), "p0.5": ((4,), away, {"ord": 0.5}),
    "p-1": ((4,), away, {"ord": -1}), "0": ((4,), away, {"ord": 0}), "all": ((2, 3), sym, {}),
    "axis1": ((2, 3), sym, {"axis": 1}), "axis0-keep": ((2, 3), sym, {"axis": 0, "keepdims": True}),
    "fro": ((2, 3), sym, {"ord": "fro"}), "m1": ((2, 3), away, {"ord": 1}), "m-1": ((2, 3), away, {"ord": -1}),
    "minf": ((2, 3), away, {"ord": np.inf}), "m-inf-keep": ((2, 3), away, {"ord": -np.inf, "keepdims": True}),
    "batched-m1": ((2, 3, 3), away, {"ord": 1, "axis": (2, 1)}),
}  # fmt: skip
for _name, (_s, _gen, _kw) in NORMS.items():
    case(f"norm-{_name}", lambda x, kw=_kw: gc.linalg.norm(x, **kw), (_s, _gen))

# shapes
case("transpose-default", gc.transpose, ((2, 3, 4), sym))
case("transpose-axes", lambda x: gc.transpose(x, (1, 0, 2)), ((2, 3, 4), sym))
case("transpose-negative-axes", lambda x: gc.transpose(x, (-1, 0, 1)), ((2, 3, 4), sym))
case("T", lambda x: x.T, ((2, 3), sym))
case("reshape-matrix", lambda x: gc.reshape(x, (6, 4)), ((2, 3, 4), sym))
case("reshape-flat", lambda x: x.reshape(-1), ((4, 6), sym))
case("reshape-column", lambda x: x.reshape((3, 1)), ((3,), sym))
case("reshape-scalar", lambda x: gc.reshape(x, ()), ((1, 1), sym))
case("broadcast_to-rank", lambda x: gc.broadcast_to(x, (2, 3)), ((3,), sym))
case("broadcast_to-ones", lambda x: gc.broadcast_to(x, (2, 3)), ((2, 1), sym))
case("broadcast_to-scalar", lambda x: gc.broadcast_to(x, (2, 2)), ((), sym))
case("broadcast_to-3d", lambda x: gc.broadcast_to(x, (4, 2, 3)), ((1, 3), sym))
case("expand_dims-0", lambda x: gc.expand_dims(x, 0), ((2, 3), sym))
case("expand_dims--1", lambda x: gc.expand_dims(x, -1), ((2, 3), sym))
case("expand_dims-tuple", lambda x: gc.expand_dims(x, (0, 2)), ((2, 3), sym))
case("squeeze-all", gc.squeeze, ((1, 3, 1), sym))
case("squeeze-0", lambda x: gc.squeeze(x, 0), ((1, 3, 1), sym))
case("squeeze--1", lambda x: x.squeeze(-1), ((1, 3, 1), sym))
case("concatenate-0", lambda x, y: gc.concatenate([x, y]), ((2, 3), sym), ((1, 3), sym))
case("concatenate-1", lambda x, y, z: gc.concatenate([x, y, z], axis=1), ((2, 3), sym), ((2, 2), sym), ((2, 1), sym))
case("concatenate--1", lambda x, y: gc.concatenate([x, y], axis=-1), ((2, 2, 1), sym), ((2, 2, 3), sym))
case("concatenate-None", lambda x, y: gc.concatenate([x, y], axis=None), ((2, 2), sym), ((3,), sym))
case("concatenate-const", lambda x: gc.concatenate([np.ones((1, 3)), x, x * 2.0]), ((2, 3), sym))
case("concatenate-same", lambda x: gc.concatenate([x, x], axis=1), ((2, 3), sym))
case("stack-0", lambda x, y: gc.stack([x, y]), ((3,), sym), ((3,), sym))
case("stack-1", lambda x, y: gc.stack([x, y], axis=1), ((3,), sym), ((3,), sym))
case("stack--1", lambda x, y, z: gc.stack([x, y, z], axis=-1), ((2, 2), sym), ((2, 2), sym), ((2, 2), sym))
GETITEM = {
    "reverse": lambda x: x[::-1],
    "step2": lambda x: x[1:-1:2],
    "last": lambda x: x[-1],
    "negative-bounds": lambda x: x[-4:-1],
    "negative-step2": lambda x: x[::-2],
    "stop-negative-step": lambda x: x[5:1:-2],
    "empty": lambda x: x[4:2],
}
for _name, _fn in GETITEM.items():
    case(f"getitem-{_name}", _fn, ((6,), sym))
GETITEM2 = {
    "rows-cols-step": lambda x: x[1:, ::2],
    "reverse-rows-col": lambda x: x[::-1, -2],
    "ellipsis": lambda x: x[..., ::2],
    "none": lambda x: x[None, 1:3],
    "negative-both": lambda x: x[-3:, ::-3],
    "int": lambda x: x[2],
    "none-middle": lambda x: x[:, None, 1],
    "element": lambda x: x[-1, -1],
}
for _name, _fn in GETITEM2.items():
    case(f"getitem2-{_name}", _fn, ((4, 5), sym))
case("take-negative-repeated", lambda x: gc.take(x, [0, -1, 2, 2, -5]), ((5,), sym))
case("take-axis0", lambda x: gc.take(x, [3, -1, 0, 0], axis=0), ((4, 3), sym))
case("take-axis1-2d-indices", lambda x: gc.take(x, [[0, 2], [-1, -1]], axis=1), ((4, 3), sym))
case("take-flat", lambda x: gc.take(x, [11, -12, 3, 3]), ((4, 3), sym))
case("take-scalar-index", lambda x: gc.take(x, -2, axis=0), ((4, 3), sym))
case("take-int-var-index", lambda x: gc.take(x, gc.const(np.array([[1, -1]])), axis=-1), ((2, 3), sym))

# the ML functions
for _axis in [-1, 0]:
    case(f"softmax-axis{_axis}", lambda x, a=_axis: gc.softmax(x, axis=a), ((3, 4), sym))
    case(f"log_softmax-axis{_axis}", lambda x, a=_axis: gc.log_softmax(x, axis=a), ((3, 4), sym))
case("softmax-vector", gc.softmax, ((5,), sym))
case("one_hot-const", lambda x: gc.sum(gc.one_hot(gc.const(np.array([2, 0, 3])), 4) * gc.log_softmax(x)),
     ((3, 4), sym))  # fmt: skip
case("astype-f64-f32-f64", lambda x: gc.astype(gc.astype(x, "float32"), "float64") * 1.0, ((3,), sym))

CASE_IDS = [c.id for c in CASES]
# astype through float32 loses digits: compared with looser tolerances below
LOOSE = {"astype-f64-f32-f64"}


def numeric_jvp(out: gc.Tensor, xs: list[gc.Tensor], values: dict, ts: list[np.ndarray]) -> np.ndarray:
    """(F(x + eps t) - F(x - eps t)) / 2 eps."""
    up = {**values, **{x: values[x] + EPS * t for x, t in zip(xs, ts, strict=True)}}
    down = {**values, **{x: values[x] - EPS * t for x, t in zip(xs, ts, strict=True)}}
    return (np.asarray(ev(out, up)) - np.asarray(ev(out, down))) / (2 * EPS)


def numeric_jacobian(out: gc.Tensor, x: gc.Tensor, values: dict) -> np.ndarray:
    base = np.asarray(values[x], dtype=np.float64)
    jac = np.zeros(out.shape + base.shape)
    for i in np.ndindex(base.shape):
        e = np.zeros(base.shape)
        e[i] = 1.0
        jac[(Ellipsis, *i)] = numeric_jvp(out, [x], values, [e])
    return jac


def close(a: object, b: object, rtol: float = 1e-5, atol: float = 1e-7) -> None:
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol)


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_vjp_against_finite_differences(c: Case) -> None:
    out, xs, values = c.build()
    rtol = 1e-3 if c.id in LOOSE else 1e-5
    eps = 1e-3 if c.id in LOOSE else EPS
    check_grad(out, xs, values, eps=eps, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_jvp_against_finite_differences(c: Case) -> None:
    out, xs, values = c.build()
    if c.id in LOOSE:
        pytest.skip("finite differences through float32 are too coarse at eps=1e-6 (see test_astype_*)")
    r = rng_for("t" + c.id)
    ts = [r.standard_normal(x.shape) for x in xs]
    (symbolic,) = gc.jvp([out], xs, ts)
    assert symbolic.shape == out.shape and symbolic.dtype == out.dtype
    close(ev(symbolic, values), numeric_jvp(out, xs, values, ts))


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_dot_product_identity(c: Case) -> None:
    """<ct, J t> = <J^T ct, t> for random ct and t (gc.jvp against gc.vjp)."""
    out, xs, values = c.build()
    r = rng_for("dot" + c.id)
    ts = [r.standard_normal(x.shape) for x in xs]
    ct = r.standard_normal(out.shape)
    (jt,) = gc.jvp([out], xs, ts)
    jct = gc.vjp([out], xs, [ct])
    assert [g.shape for g in jct] == [x.shape for x in xs]
    got = ev([jt, *jct], values)
    lhs = float(np.sum(ct * got[0]))
    rhs = sum(float(np.sum(g * t)) for g, t in zip(got[1:], ts, strict=True))
    rel = 1e-6 if c.id in LOOSE else 1e-10  # float32 tangents and cotangents round to 7 digits
    assert lhs == pytest.approx(rhs, rel=rel, abs=1e-12)


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_batched_jacobian(c: Case) -> None:
    """Both modes batch every rule over a seed basis; they agree with each other and with differences."""
    out, xs, values = c.build()
    for x in xs:
        rev = gc.jacobian(out, x, mode="rev")
        fwd = gc.jacobian(out, x, mode="fwd")
        assert rev.shape == fwd.shape == out.shape + x.shape
        jr, jf = ev([rev, fwd], values)
        if c.id in LOOSE:
            close(jr, jf, rtol=1e-6)
        else:
            close(jr, jf, rtol=1e-10, atol=1e-12)
            close(jr, numeric_jacobian(out, x, values))


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_hessian_of_each_case(c: Case) -> None:
    """Second order: the rules' own derivatives (forward over reverse, batched) against differences."""
    out, xs, values = c.build()
    if c.id in LOOSE:
        pytest.skip("float32 in the middle")
    w = gc.const(rng_for("w" + c.id).standard_normal(out.shape))
    f = gc.sum(w * out + 0.5 * out * out)
    for x in xs:
        h = gc.hessian(f, x)
        assert h.shape == x.shape + x.shape
        close(ev(h, values), numeric_hessian(f, x, values[x], others=values), rtol=1e-5, atol=1e-6)


def numeric_hessian(
    f: gc.Tensor, x: gc.Tensor, value: np.ndarray, eps: float = 1e-5, others: dict | None = None
) -> np.ndarray:
    """Central differences of the (reverse-mode) gradient."""
    g = gc.grad(f, x)
    h = np.zeros(x.shape + x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[i] = eps
        up = ev(g, {**(others or {}), x: value + e})
        down = ev(g, {**(others or {}), x: value - e})
        h[(Ellipsis, *i)] = (up - down) / (2 * eps)
    return h


# --- analytic spot checks ------------------------------------------------------------------


def test_prod_gradient_with_zeros_is_exact() -> None:
    x = gc.var("x", (4,))
    g = gc.grad(gc.prod(x), x)
    assert ev(g, {x: ZEROS["prod-one-zero"]}).tolist() == [0.0, 1.5 * 2.0 * -0.7, 0.0, 0.0]
    assert ev(g, {x: ZEROS["prod-two-zeros"]}).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert ev(g, {x: np.array([2.0, 3.0, 4.0, 0.5])}).tolist() == [6.0, 4.0, 3.0, 24.0]
    m = gc.var("m", (3, 3))
    gm = ev(gc.grad(gc.sum(gc.prod(m, axis=1)), m), {m: ZEROS["prod-rows-zeros"]})
    np.testing.assert_array_equal(gm, [[0.0, 3.0, 0.0], [0.0, 0.0, 0.0], [-3.0, 0.75, -1.0]])


def prod_hessian(v: np.ndarray) -> np.ndarray:
    """d2 prod(x) / dxi dxj = prod of the entries other than i and j (0 on the diagonal)."""
    n = v.size
    h = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                h[i, j] = np.prod(np.delete(v, [i, j]))
    return h


@pytest.mark.parametrize(
    "v",
    [[2.0, 0.0, 3.0], [2.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 1.5], [1.5, -2.0, 0.5, 3.0], [0.0, 4.0]],
    ids=["one-zero", "two-zeros", "three-zeros", "no-zero", "pair"],
)
def test_prod_hessian_with_zeros(v: list[float]) -> None:
    """The gradient's own derivative is right at zeros: the zero-safe formula is differentiable."""
    v = np.array(v)
    x = gc.var("x", v.shape)
    f = gc.prod(x)
    np.testing.assert_allclose(ev(gc.hessian(f, x), {x: v}), prod_hessian(v), rtol=1e-14)
    np.testing.assert_allclose(ev(gc.jacobian(gc.grad(f, x), x, mode="rev"), {x: v}), prod_hessian(v), rtol=1e-14)


@pytest.mark.parametrize(
    "v",
    [
        [0.0, 0.0, 5.0],
        [0.0, 2.0, 0.0],
        [1.0, 2.0, 3.0],
        pytest.param(
            [0.0, 0.0, 0.0],
            marks=pytest.mark.xfail(strict=True, reason="documented: third and higher derivatives of prod are "
                                    "taken as 0 where a reduced slice holds three or more zeros"),
        ),
    ],
)  # fmt: skip
def test_prod_third_derivative_with_zeros(v: list[float]) -> None:
    x = gc.var("x", (3,))
    d3 = gc.grad(gc.grad(gc.grad(gc.prod(x), x)[0], x)[1], x)[2]  # d3 (x0 x1 x2) / dx0 dx1 dx2 = 1
    assert ev(d3, {x: np.array(v)}) == 1.0


def test_astype_float64_float32_float64() -> None:
    x = gc.var("x", (3,))
    f = gc.sum(gc.astype(x, "float32") * gc.const(np.array([1.0, 2.0, 3.0], "float32")))
    assert f.dtype == np.float32
    g = gc.grad(f.astype("float64"), x)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(ev(g, {x: np.zeros(3)}), [1.0, 2.0, 3.0])


def test_astype_float32_var() -> None:
    """A float32 var gets a float32 gradient through a float64 computation."""
    w = gc.var("w", (3,), dtype="float32")
    f = gc.sum(gc.astype(w, "float64") ** 2)
    g = gc.grad(f, w)
    assert g.dtype == np.float32
    v = np.array([0.5, -1.0, 2.0], np.float32)
    np.testing.assert_array_equal(ev(g, {w: v}), 2 * v)
    check_grad(f, w, {w: v}, eps=1e-2, rtol=1e-4, atol=1e-5)
    (t,) = gc.jvp([f], [w], [np.ones(3, np.float32)])
    assert ev(t, {w: v}) == pytest.approx(2 * v.sum())


def test_vjp_several_outputs_and_inputs() -> None:
    x = gc.var("x", (3,))
    y = gc.var("y", ())
    outs = [gc.sin(x) * y, gc.sum(x * x) + y]
    values = {x: np.array([0.1, -0.5, 1.0]), y: np.array(0.7)}
    check_grad(outs, [x, y], values)
    ct = [np.array([1.0, 2.0, 3.0]), np.array(0.5)]
    gx, gy = ev(gc.vjp(outs, [x, y], ct), values)
    v = values[x]
    np.testing.assert_allclose(gx, ct[0] * np.cos(v) * 0.7 + 0.5 * 2 * v)
    assert gy == pytest.approx(float(np.sum(ct[0] * np.sin(v))) + 0.5)
    tx, ty = ev(gc.jvp(outs, [x, y], [np.ones(3), np.array(2.0)]), values)
    np.testing.assert_allclose(tx, np.cos(v) * 0.7 + 2.0 * np.sin(v))
    assert ty == pytest.approx(float(np.sum(2 * v)) + 2.0)


def test_grad_forms() -> None:
    x = gc.var("x", (2,))
    s = gc.var("s")
    f = gc.sum(gc.tanh(x * s) ** 2) + gc.log1p(s * s)
    single = gc.grad(f, x)
    assert isinstance(single, gc.Tensor) and single.shape == (2,)
    pair = gc.grad(f, [x, s])
    assert isinstance(pair, list) and [p.shape for p in pair] == [(2,), ()]
    assert pair[0].node is single.node  # interned: the same graph
    check_grad(f, [x, s], {x: np.array([0.3, -1.1]), s: np.array(0.8)})


def test_gradient_of_the_wrt_itself_and_repeated_use() -> None:
    x = gc.var("x", (3,))
    assert ev(gc.vjp([x], [x], [np.array([1.0, 2.0, 3.0])])[0], {x: np.zeros(3)}).tolist() == [1.0, 2.0, 3.0]
    f = gc.sum(x * x * x)  # x used three times by two nodes
    np.testing.assert_allclose(ev(gc.grad(f, x), {x: np.array([1.0, 2.0, -1.0])}), [3.0, 12.0, 3.0])


# --- subgradients at kinks -------------------------------------------------------------------


def grad_and_tangent(f: gc.Tensor, x: gc.Tensor, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gradient at `value` and the JVP with an all-ones tangent, elementwise for an elementwise f."""
    g = gc.grad(gc.sum(f), x)
    (t,) = gc.jvp([f], [x], [np.ones(x.shape)])
    return ev(g, {x: value}), ev(t, {x: value})


def test_abs_at_zero() -> None:
    x = gc.var("x", (3,))
    g, t = grad_and_tangent(gc.abs(x), x, np.array([0.0, 1.0, -2.0]))
    assert g.tolist() == t.tolist() == [0.0, 1.0, -1.0]


def test_relu_at_zero() -> None:
    x = gc.var("x", (3,))
    g, t = grad_and_tangent(gc.relu(x), x, np.array([0.0, 1.0, -2.0]))
    assert g.tolist() == t.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("fn", [gc.maximum, gc.minimum], ids=["maximum", "minimum"])
def test_maximum_minimum_ties_split_evenly(fn: Callable) -> None:
    x = gc.var("x", (3,))
    y = gc.var("y", (3,))
    values = {x: np.array([1.0, 2.0, 3.0]), y: np.array([1.0, 0.0, 5.0])}
    gx, gy = ev(gc.grad(gc.sum(fn(x, y)), [x, y]), values)
    x_wins = [0.5, 1.0, 0.0] if fn is gc.maximum else [0.5, 0.0, 1.0]
    assert gx.tolist() == x_wins
    assert gy.tolist() == [1.0 - w for w in x_wins]
    (t,) = gc.jvp([fn(x, y)], [x, y], [np.full(3, 2.0), np.full(3, 4.0)])
    assert ev(t, values).tolist() == [2.0 * w + 4.0 * (1.0 - w) for w in x_wins]
    # a tie with itself: the two halves add up to the identity's derivative
    assert ev(gc.grad(gc.sum(fn(x, x)), x), values).tolist() == [1.0, 1.0, 1.0]


def test_maximum_tie_with_broadcast_scalar() -> None:
    """relu written as maximum(x, 0): the tie at 0 gives 1/2, unlike gc.relu."""
    x = gc.var("x", (3,))
    g = ev(gc.grad(gc.sum(gc.maximum(x, 0.0)), x), {x: np.array([0.0, 1.0, -1.0])})
    assert g.tolist() == [0.5, 1.0, 0.0]


@pytest.mark.parametrize("fn", [gc.max, gc.min], ids=["max", "min"])
def test_max_min_reduction_ties_split_evenly(fn: Callable) -> None:
    x = gc.var("x", (3, 4))
    sign = 1.0 if fn is gc.max else -1.0
    v = sign * np.array([[3.0, 3.0, 1.0, 0.0], [2.0, 2.0, 2.0, 0.0], [5.0, 1.0, 1.0, 1.0]])
    rows = ev(gc.grad(gc.sum(fn(x, axis=1)), x), {x: v})
    np.testing.assert_allclose(rows, [[0.5, 0.5, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0], [1, 0, 0, 0]])
    whole = ev(gc.grad(fn(x), x), {x: v})
    expected = np.zeros((3, 4))
    expected[2, 0] = 1.0
    np.testing.assert_array_equal(whole, expected)
    tie = ev(gc.grad(fn(x), x), {x: np.ones((3, 4))})
    np.testing.assert_allclose(tie, np.full((3, 4), 1 / 12))
    (t,) = gc.jvp([fn(x, axis=1)], [x], [np.arange(12.0).reshape(3, 4)])
    np.testing.assert_allclose(ev(t, {x: v}), [0.5, 5.0, 8.0])


def test_clip_at_the_edges() -> None:
    """clip = minimum(maximum(a, a_min), a_max): at either edge the tie gives 1/2."""
    x = gc.var("x", (5,))
    g, t = grad_and_tangent(gc.clip(x, 0.0, 1.0), x, np.array([0.0, 0.5, 1.0, -1.0, 2.0]))
    assert g.tolist() == t.tolist() == [0.5, 1.0, 0.5, 0.0, 0.0]
    lo = gc.var("lo")
    glo = ev(gc.grad(gc.sum(gc.clip(x, lo, 1.0)), lo), {x: np.array([0.0, 0.5, 1.0, -1.0, 2.0]), lo: 0.0})
    assert glo == 0.5 + 1.0  # the tie at 0.0 and the clipped -1.0


@pytest.mark.parametrize("fn", [gc.sign, gc.floor, gc.round], ids=["sign", "floor", "round"])
def test_piecewise_constant_functions_give_zero(fn: Callable) -> None:
    x = gc.var("x", (5,))
    at_jumps = np.array([0.0, 1.0, -2.0, 0.5, 2.5])
    g, t = grad_and_tangent(fn(x) * 3.0 + x * 0.0, x, at_jumps)
    assert g.tolist() == t.tolist() == [0.0] * 5
    g, t = grad_and_tangent(fn(x) * x, x, at_jumps)
    np.testing.assert_array_equal(g, np.asarray(ev(fn(x), {x: at_jumps})))
    assert gc.grad(gc.sum(fn(x)), x, disconnected="raise").shape == (5,)  # connected, zero


def test_comparisons_feeding_where_give_zero() -> None:
    x = gc.var("x", (4,))
    y = gc.var("y", (4,))
    v = {x: np.array([0.0, 1.0, 2.0, -1.0]), y: np.array([0.0, 2.0, 1.0, -1.0])}
    f = gc.sum(gc.where(x >= y, x * x, 3.0 * x))
    np.testing.assert_array_equal(ev(gc.grad(f, x), v), [0.0, 3.0, 4.0, -2.0])
    _, gy = ev(gc.grad(f, [x, y]), v)
    np.testing.assert_array_equal(gy, np.zeros(4))
    steps = gc.sum(gc.where(gc.equal(x, y), 1.0, 2.0) * y)
    np.testing.assert_array_equal(ev(gc.grad(steps, x), v), np.zeros(4))
    np.testing.assert_array_equal(ev(gc.grad(steps, y), v), [1.0, 2.0, 2.0, 1.0])


# --- DifferentiationError ----------------------------------------------------------------------


def assert_names(exc: pytest.ExceptionInfo, op: str, line: int) -> None:
    message = str(exc.value)
    assert isinstance(exc.value, gc.GraphError) and isinstance(exc.value, ValueError)
    assert op in message, message
    assert f"{THIS_FILE}:{line}" in message, message


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_cast_to_int_or_bool_raises(dtype: str) -> None:
    x = gc.var("x", (3,))
    line = here() + 1
    k = gc.astype(x, dtype)
    f = gc.sum(gc.astype(k, "float64") * x)
    with pytest.raises(gc.DifferentiationError) as exc:
        gc.grad(f, x)
    assert_names(exc, "astype", line)
    assert dtype in str(exc.value) and "x" in str(exc.value)
    with pytest.raises(gc.DifferentiationError) as exc:
        gc.jvp([f], [x], [np.ones(3)])
    assert_names(exc, "astype", line)
    with pytest.raises(gc.DifferentiationError):
        gc.jacobian(gc.astype(k, "float64"), x)


def test_argmax_as_take_indices_raises() -> None:
    x = gc.var("x", (4,))
    w = gc.var("w", (4, 3))
    line = here() + 1
    i = gc.argmax(x)
    f = gc.sum(gc.take(w, i, axis=0) * gc.sum(x))
    with pytest.raises(gc.DifferentiationError) as exc:
        gc.grad(f, x)
    assert_names(exc, "argmax", line)
    with pytest.raises(gc.DifferentiationError) as exc:
        gc.grad(f, [w, x])
    assert_names(exc, "argmax", line)
    with pytest.raises(gc.DifferentiationError) as exc:
        gc.jvp([f], [x], [np.ones(4)])
    assert_names(exc, "argmax", line)
    # with respect to w alone the indices are constants: fine
    xv = np.array([0.1, 3.0, -1.0, 2.0])
    gw = ev(gc.grad(f, w), {x: xv, w: np.zeros((4, 3))})
    expected = np.zeros((4, 3))
    expected[1] = xv.sum()
    np.testing.assert_allclose(gw, expected)


def test_disconnected() -> None:
    x = gc.var("x", (2, 3))
    y = gc.var("y", (3,))
    f = gc.sum(y * y)
    with pytest.raises(gc.DifferentiationError, match="x"):
        gc.grad(f, x, disconnected="raise")
    with pytest.raises(gc.DifferentiationError):
        gc.vjp([y * 2.0], [x], [np.ones(3)], disconnected="raise")
    g = gc.grad(f, x)
    assert g.shape == (2, 3) and g.dtype == np.float64
    np.testing.assert_array_equal(ev(g, {}), np.zeros((2, 3)))
    gx, gy = gc.grad(f, [x, y])
    values = ev([gx, gy], {y: np.array([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(values[0], np.zeros((2, 3)))
    np.testing.assert_array_equal(values[1], [2.0, 4.0, 6.0])
    (t,) = gc.jvp([f], [x], [np.ones((2, 3))])
    assert t.shape == () and ev(t, {y: np.ones(3)}) == 0.0
    jac = gc.jacobian(y * 2.0, x)
    assert jac.shape == (3, 2, 3)
    np.testing.assert_array_equal(ev(jac, {}), np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="disconnected"):
        gc.grad(f, x, disconnected="maybe")


def test_grad_of_non_scalar_raises() -> None:
    x = gc.var("x", (3,))
    with pytest.raises(gc.DifferentiationError, match="scalar"):
        gc.grad(x * 2.0, x)
    with pytest.raises(gc.DifferentiationError):
        gc.grad(gc.sum(x) > 0.0, x)
    n = gc.var("n", (3,), dtype="int64")
    with pytest.raises(gc.DifferentiationError):
        gc.grad(gc.sum(x * gc.astype(n, "float64")), n)


def test_bad_seed_shapes() -> None:
    x = gc.var("x", (3,))
    with pytest.raises(gc.ShapeError):
        gc.vjp([x * 2.0], [x], [np.ones(4)])
    with pytest.raises(gc.ShapeError):
        gc.jvp([x * 2.0], [x], [np.ones((3, 1))])
    with pytest.raises(ValueError, match="mode"):
        gc.jacobian(x, x, mode="sideways")


# --- Jacobians ---------------------------------------------------------------------------------


def jacobian_modes(f: gc.Tensor, x: gc.Tensor, values: dict) -> list[np.ndarray]:
    js = [gc.jacobian(f, x, mode=m) for m in ("auto", "rev", "fwd")]
    for j in js:
        assert j.shape == f.shape + x.shape
    return ev(js, values)


@pytest.mark.parametrize(
    ("fshape", "xshape"),
    [((3,), (4,)), ((4,), (3,)), ((2, 3), (2, 2)), ((), (2, 3)), ((3,), ()), ((2, 2), (3,))],
)
def test_jacobian_shape_and_modes(fshape: tuple[int, ...], xshape: tuple[int, ...]) -> None:
    r = rng_for(f"jac{fshape}{xshape}")
    x = gc.var("x", xshape)
    a = gc.const(r.standard_normal(fshape + xshape))
    flat = gc.reshape(x, (-1,))
    lin = gc.reshape(gc.reshape(a, (-1, x.size)) @ flat, fshape)
    f = gc.tanh(lin) * gc.sum(gc.sin(x)) + lin * lin
    values = {x: sym(r, xshape)}
    auto, rev, fwd = jacobian_modes(f, x, values)
    close(rev, fwd, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(auto, rev if f.size <= x.size else fwd)
    close(rev, numeric_jacobian(f, x, values))


def test_jacobian_of_identity_and_linear_map() -> None:
    x = gc.var("x", (2, 3))
    np.testing.assert_array_equal(ev(gc.jacobian(x, x), {x: np.zeros((2, 3))}), np.eye(6).reshape(2, 3, 2, 3))
    a = np.arange(12.0).reshape(4, 3)
    v = gc.var("v", (3,))
    for mode in ("rev", "fwd"):
        np.testing.assert_array_equal(ev(gc.jacobian(gc.const(a) @ v, v, mode=mode), {v: np.zeros(3)}), a)


def tanh_layer(m: int, n: int) -> tuple[gc.Tensor, gc.Tensor]:
    """F(x) = tanh(A @ x + b) * (C @ x): m outputs of n inputs."""
    r = rng_for(f"layer{m}x{n}")
    x = gc.var("x", (n,))
    a = gc.const(r.standard_normal((m, n)))
    b = gc.const(r.standard_normal(m))
    c = gc.const(r.standard_normal((m, n)))
    return gc.tanh(a @ x + b) * (c @ x), x


@pytest.mark.parametrize("mode", ["rev", "fwd"])
def test_jacobian_graph_does_not_grow_with_outputs(mode: str) -> None:
    """One batched graph: m = 10 and m = 1000 outputs give the same number of nodes (up to a constant)."""
    sizes = []
    for m in (10, 1000):
        f, x = tanh_layer(m, 20)
        j = gc.jacobian(f, x, mode=mode)
        assert j.shape == (m, 20)
        sizes.append(len(gc.Graph([j]).nodes))
    assert abs(sizes[0] - sizes[1]) <= 2, sizes
    assert sizes[0] < 60, sizes  # and small: not one copy of the graph per output
    sq = []
    for n in (10, 1000):  # the W4 shape: tanh(A @ x + b) * x with m = n
        r = rng_for(f"square{n}")
        x = gc.var("x", (n,))
        f = gc.tanh(gc.const(r.standard_normal((n, n))) @ x + gc.const(r.standard_normal(n))) * x
        sq.append(len(gc.Graph([gc.jacobian(f, x, mode=mode)]).nodes))
    assert abs(sq[0] - sq[1]) <= 2, sq


def test_jacobian_values_of_the_tanh_layer() -> None:
    f, x = tanh_layer(5, 3)
    values = {x: np.array([0.2, -0.4, 0.9])}
    auto, rev, fwd = jacobian_modes(f, x, values)
    close(rev, fwd, rtol=1e-12, atol=1e-14)
    close(auto, numeric_jacobian(f, x, values))


def count_ops(t: gc.Tensor, name: str) -> int:
    return sum(1 for n in toposort([t.node]) if n.op.name == name)


@pytest.mark.parametrize(("m", "n", "expected"), [(3, 5, "rev"), (5, 5, "rev"), (6, 5, "fwd"), (1, 1, "rev")])
def test_auto_mode_picks_rev_when_m_le_n(m: int, n: int, expected: str) -> None:
    f, x = tanh_layer(m, n)
    auto = gc.jacobian(f, x)
    chosen = gc.jacobian(f, x, mode=expected)
    other = gc.jacobian(f, x, mode="fwd" if expected == "rev" else "rev")
    assert auto.node is chosen.node
    assert auto.node is not other.node


def test_jacobian_modes_have_the_expected_structure() -> None:
    """Reverse mode seeds diag(ones(m)), forward mode diag(ones(n)) and transposes at the end; both seeds are
    structure that the rules consume: no (m, m) or (n, n) value is built (autodiff/seeds.py)."""
    f, x = tanh_layer(3, 5)
    rev = gc.jacobian(f, x, mode="rev")
    fwd = gc.jacobian(f, x, mode="fwd")
    for j in (rev, fwd):
        square = [n for n in toposort([j.node]) if n.shape[-2:] in ((3, 3), (5, 5)) or n.shape[-3:] == (5, 5, 1)]
        assert square == [], square
    assert fwd.node.op.name in ("transpose", "reshape")
    assert count_ops(fwd, "transpose") > count_ops(gc.tanh(f), "transpose")


# --- Hessians and higher order ----------------------------------------------------------------


def test_hessian_is_symmetric_and_matches_differences_of_the_gradient() -> None:
    r = rng_for("hessian")
    x = gc.var("x", (4,))
    a = gc.const(r.standard_normal((3, 4)))
    f = gc.sum(gc.tanh(a @ x) ** 2) + gc.prod(x) + gc.logsumexp(x * x) + gc.sum(gc.sin(x[::-1] * x))
    v = sym(r, (4,))
    h = gc.hessian(f, x)
    assert h.shape == (4, 4)
    hv = ev(h, {x: v})
    np.testing.assert_allclose(hv, hv.T, rtol=1e-12, atol=1e-13)
    close(hv, numeric_hessian(f, x, v))
    # reverse over reverse gives the same matrix
    close(ev(gc.jacobian(gc.grad(f, x), x, mode="rev"), {x: v}), hv, rtol=1e-12, atol=1e-13)


def test_hessian_of_a_matrix_argument() -> None:
    x = gc.var("x", (2, 3))
    f = gc.sum(gc.exp(x) * gc.sum(x * x, axis=0)) + gc.sum(gc.softmax(x) * x)
    v = sym(rng_for("hessian-matrix"), (2, 3))
    h = gc.hessian(f, x)
    assert h.shape == (2, 3, 2, 3)
    hv = ev(h, {x: v})
    flat = hv.reshape(6, 6)
    np.testing.assert_allclose(flat, flat.T, rtol=1e-12, atol=1e-13)
    close(hv, numeric_hessian(f, x, v))


def rosenbrock(x: gc.Tensor) -> gc.Tensor:
    return gc.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("n", [10, 100])
def test_rosenbrock_gradient_and_hessian_match_scipy(n: int) -> None:
    x = gc.var("x", (n,))
    f = rosenbrock(x)
    g = gc.grad(f, x)
    h = gc.hessian(f, x)
    v = rng_for(f"rosen{n}").uniform(-2.0, 2.0, n)
    fv, gv, hv = ev([f, g, h], {x: v})
    assert fv == pytest.approx(scipy.optimize.rosen(v), rel=1e-13)
    np.testing.assert_allclose(gv, scipy.optimize.rosen_der(v), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(hv, scipy.optimize.rosen_hess(v), rtol=1e-12, atol=1e-10)
    ones = np.ones(n)
    np.testing.assert_array_equal(ev(g, {x: ones}), np.zeros(n))


def test_third_derivative() -> None:
    """d^3/dx^3 of x sin(x) = -x cos(x) - 3 sin(x), by grad of grad of grad."""
    x = gc.var("x")
    f = gc.sin(x) * x
    d1 = gc.grad(f, x)
    d2 = gc.grad(d1, x)
    d3 = gc.grad(d2, x)
    for v in (-1.3, 0.0, 0.4, 2.5):
        a, b, c = ev([d1, d2, d3], {x: v})
        assert a == pytest.approx(np.cos(v) * v + np.sin(v), rel=1e-13, abs=1e-15)
        assert b == pytest.approx(-np.sin(v) * v + 2 * np.cos(v), rel=1e-13, abs=1e-15)
        assert c == pytest.approx(-np.cos(v) * v - 3 * np.sin(v), rel=1e-13, abs=1e-15)
    (t3,) = gc.jvp([d2], [x], [1.0])  # forward over reverse over reverse
    assert ev(t3, {x: 0.4}) == pytest.approx(-np.cos(0.4) * 0.4 - 3 * np.sin(0.4), rel=1e-13)


def test_grad_of_grad_with_vectors() -> None:
    """The gradient graph is differentiable again: d/dy of <grad_x f, w>."""
    x = gc.var("x", (3,))
    y = gc.var("y", (3,))
    f = gc.sum(gc.tanh(x * y) * gc.exp(-x * x))
    inner = gc.sum(gc.grad(f, x) * gc.const(np.array([1.0, -2.0, 0.5])))
    check_grad(inner, [x, y], {x: np.array([0.3, -0.7, 1.1]), y: np.array([1.2, 0.4, -0.9])})


# --- softmax cross-entropy MLP against a hand-written backward pass ------------------------------


def mlp_numpy(x, labels, w1, b1, w2, b2):
    """Forward and backward of mean softmax cross-entropy of tanh(X W1 + b1) W2 + b2, by hand."""
    n = x.shape[0]
    h = np.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(n), labels].mean()
    dlogits = np.exp(logp)
    dlogits[np.arange(n), labels] -= 1.0
    dlogits /= n
    dw2 = h.T @ dlogits
    db2 = dlogits.sum(axis=0)
    dz = (dlogits @ w2.T) * (1.0 - h * h)
    return loss, [x.T @ dz, dz.sum(axis=0), dw2, db2]


@pytest.mark.parametrize("labelling", ["one_hot", "take"])
def test_mlp_cross_entropy_gradients(labelling: str) -> None:
    r = rng_for("mlp")
    xv = r.standard_normal((16, 8))
    labels = r.integers(0, 4, 16)
    params = [r.standard_normal((8, 12)) * 0.5, r.standard_normal(12) * 0.1,
              r.standard_normal((12, 4)) * 0.5, r.standard_normal(4) * 0.1]  # fmt: skip
    x = gc.var("X", (16, 8))
    w1, b1, w2, b2 = (gc.var(name, p.shape) for name, p in zip(["W1", "b1", "W2", "b2"], params, strict=True))
    logp = gc.log_softmax(gc.tanh(x @ w1 + b1) @ w2 + b2)
    if labelling == "one_hot":
        loss = -gc.mean(gc.sum(gc.one_hot(gc.const(labels), 4) * logp, axis=1))
    else:
        loss = -gc.mean(gc.take(logp, np.arange(16) * 4 + labels))
    grads = gc.grad(loss, [w1, b1, w2, b2])
    feed = {x: xv, w1: params[0], b1: params[1], w2: params[2], b2: params[3]}
    got = ev([loss, *grads], feed)
    want_loss, want_grads = mlp_numpy(xv, labels, *params)
    assert got[0] == pytest.approx(want_loss, rel=1e-12)
    for g, w in zip(got[1:], want_grads, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-14)


# --- random graphs ----------------------------------------------------------------------------

SMOOTH_UNARY: dict[str, Callable[[gc.Tensor], gc.Tensor]] = {
    "sin": gc.sin, "cos": gc.cos, "tanh": gc.tanh, "sigmoid": gc.sigmoid, "arctan": gc.arctan,
    "softplus": gc.softplus, "square": gc.square, "exp_tanh": lambda a: gc.exp(gc.tanh(a)),
    "log1p_sq": lambda a: gc.log1p(a * a), "sqrt_1p_sq": lambda a: gc.sqrt(1.0 + a * a),
    "neg": lambda a: -a, "half": lambda a: a * 0.5, "cube": lambda a: a**3,
}  # fmt: skip
SMOOTH_BINARY: dict[str, Callable[[gc.Tensor, gc.Tensor], gc.Tensor]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (1.0 + b * b), "pow": lambda a, b: (1.0 + a * a) ** gc.tanh(b),
}  # fmt: skip
REDUCE = ["sum", "mean", "logsumexp", "softmax", "transpose", "reverse"]
VAR_SHAPES = [(), (3,), (2, 3), (2, 1), (1, 3)]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 4) -> tuple:
    """A random expression tree as nested tuples (never a bare leaf); leaves are var indices."""
    if depth == 0 or (depth < 4 and draw(st.integers(0, 3)) == 0):
        return ("var", draw(st.integers(0, 2)))
    kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "reduce"]))
    if kind == "unary":
        return ("unary", draw(st.sampled_from(sorted(SMOOTH_UNARY))), draw(expressions(depth - 1)))
    if kind == "binary":
        name = draw(st.sampled_from(sorted(SMOOTH_BINARY)))
        return ("binary", name, draw(expressions(depth - 1)), draw(expressions(depth - 1)))
    return ("reduce", draw(st.sampled_from(REDUCE)), draw(st.booleans()), draw(expressions(depth - 1)))


def build_expression(tree: tuple, xs: list[gc.Tensor]) -> gc.Tensor:
    if tree[0] == "var":
        return xs[tree[1] % len(xs)]
    if tree[0] == "unary":
        return SMOOTH_UNARY[tree[1]](build_expression(tree[2], xs))
    if tree[0] == "binary":
        a = build_expression(tree[2], xs)
        b = build_expression(tree[3], xs)
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            b = gc.sum(b)
        return SMOOTH_BINARY[tree[1]](a, b)
    _, name, keep, sub = tree
    a = build_expression(sub, xs)
    if a.ndim == 0:
        return a
    if name == "transpose":
        return a.T
    if name == "reverse":
        return a[..., ::-1]
    if name == "softmax":
        return gc.softmax(a, axis=0)
    reduce = {"sum": gc.sum, "mean": gc.mean, "logsumexp": gc.logsumexp}[name]
    return reduce(a, axis=a.ndim - 1, keepdims=keep)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=expressions(),
    shapes=st.lists(st.sampled_from(VAR_SHAPES), min_size=2, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_random_graphs_against_finite_differences(tree: tuple, shapes: list, seed: int) -> None:
    xs = [gc.var(f"v{i}", s) for i, s in enumerate(shapes)]
    out = build_expression(tree, xs)
    r = np.random.default_rng(seed)
    values = {x: r.uniform(-1.0, 1.0, x.shape) for x in xs}
    check_grad(out, xs, values, rtol=1e-4, atol=1e-6)
    ts = [r.standard_normal(x.shape) for x in xs]
    (t,) = gc.jvp([out], xs, ts)
    close(ev(t, values), numeric_jvp(out, xs, values, ts), rtol=1e-4, atol=1e-6)


# --- provenance ----------------------------------------------------------------------------


def depending_on(x: gc.Tensor, out: gc.Tensor) -> list[Node]:
    """The nodes of out's graph that depend on x: built now (nodes of constants alone are interned
    and keep the provenance of whoever built them first)."""
    found = {x.node}
    for node in toposort([out.node]):
        if any(i in found for i in node.inputs):
            found.add(node)
    return [n for n in toposort([out.node]) if n in found and n is not x.node]


def test_gradient_nodes_point_back_to_forward_nodes() -> None:
    x = gc.var("x", (3,))
    log_line = here() + 1
    y = gc.log(x)
    z_line = here() + 1
    z = gc.sum(gc.sin(y) * x)
    g = gc.grad(z, x)
    forward = set(toposort([z.node]))
    backward = [n for n in depending_on(x, g) if n not in forward]
    assert backward
    for node in backward:
        assert node.origin is not None, node
        assert node.origin in forward, (node, node.origin)
        assert node.loc == node.origin.loc
    assert g.node.origin in forward
    # the pullback of log, ct / x, was built by log's rule: it names log and the user's line
    divs = [n for n in backward if n.op.name == "div"]
    assert divs and all(n.origin is y.node for n in divs)
    assert all(str(n.loc).endswith(f"{THIS_FILE}:{log_line}") for n in divs)
    assert y.node.loc is not None and y.node.loc.line == log_line
    coss = [n for n in backward if n.op.name == "cos"]
    assert coss and coss[0].origin.op.name == "sin" and coss[0].loc.line == z_line


def test_tangent_nodes_point_back_to_forward_nodes() -> None:
    x = gc.var("x", (3,))
    line = here() + 1
    y = gc.tanh(x * 3.0)
    (t,) = gc.jvp([y], [x], [np.ones(3)])
    forward = set(toposort([y.node]))
    built = [n for n in depending_on(x, t) if n not in forward]
    assert built and all(n.origin in forward for n in built)
    assert all(n.loc is not None and n.loc.line == line for n in built)
