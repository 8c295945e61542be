"""gc.nn.conv2d, max_pool2d and avg_pool2d: values, derivatives, both backends, bad calls.

Values are checked against direct NumPy loops (one output pixel at a time, written from
the definitions, independent of im2col) and against PyTorch when it is installed; the
compiled functions (numpy and llvm, float64 and float32) against gc.evaluate, every case
batched into one compiled function; vjp, jvp, Jacobians (leading batch axes in the
im2col/col2im rules) and Hessians against central finite differences.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

import graphc as gc
from graphc.ops.nn import window_count
from graphc.testing import check_grad, numeric_vjp

F64, F32 = np.dtype("float64"), np.dtype("float32")
HERE = re.escape(__file__.rsplit("/", 1)[-1])


# --- references: direct loops over output pixels ------------------------------------------------


def _pairs(value: object) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def _conv_padding(padding: object, kernel: tuple[int, int], dilation: tuple[int, int]) -> list[tuple[int, int]]:
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if padding == "same":
        total = [dilation[a] * (kernel[a] - 1) for a in (0, 1)]
        return [(t // 2, t - t // 2) for t in total]
    p = _pairs(padding)
    return [(p[0], p[0]), (p[1], p[1])]


def conv_loop(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, stride: object = 1,
              padding: object = 0, dilation: object = 1, groups: int = 1) -> np.ndarray:  # fmt: skip
    """out[n, o, a, b] = sum over the window of group(o) of w[o] * x, pixel by pixel."""
    unbatched = x.ndim == 3
    x = x[None] if unbatched else x
    (sh, sw), (dh, dw) = _pairs(stride), _pairs(dilation)
    out_channels, group_channels, kh, kw = w.shape
    pads = _conv_padding(padding, (kh, kw), (dh, dw))
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    ho = window_count(x.shape[2], kh, sh, pads[0], dh)
    wo = window_count(x.shape[3], kw, sw, pads[1], dw)
    out = np.zeros((x.shape[0], out_channels, ho, wo), dtype=np.float64)
    per_group = out_channels // groups
    for n, o, a, b in np.ndindex(out.shape):
        g = o // per_group
        window = xp[n, g * group_channels : (g + 1) * group_channels,
                    a * sh : a * sh + dh * (kh - 1) + 1 : dh, b * sw : b * sw + dw * (kw - 1) + 1 : dw]  # fmt: skip
        out[n, o, a, b] = np.sum(window.astype(np.float64) * w[o])
    if bias is not None:
        out += bias[None, :, None, None]
    return out[0] if unbatched else out


def pool_loop(x: np.ndarray, kind: str, kernel_size: object, stride: object = None, padding: object = 0,
              dilation: object = 1, count_include_pad: bool = True) -> np.ndarray:  # fmt: skip
    """Max (padding -inf) or mean (padding 0; divisor k*k or the taps inside) of every window, pixel by pixel."""
    unbatched = x.ndim == 3
    x = (x[None] if unbatched else x).astype(np.float64)
    (kh, kw), (dh, dw) = _pairs(kernel_size), _pairs(dilation)
    sh, sw = (kh, kw) if stride is None else _pairs(stride)
    ph, pw = _pairs(padding)
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, [(0, 0), (0, 0), (ph, ph), (pw, pw)], constant_values=fill)
    inside = np.pad(np.ones(x.shape[2:]), [(ph, ph), (pw, pw)])
    ho = window_count(x.shape[2], kh, sh, (ph, ph), dh)
    wo = window_count(x.shape[3], kw, sw, (pw, pw), dw)
    out = np.zeros((*x.shape[:2], ho, wo))
    for n, c, a, b in np.ndindex(out.shape):
        rows = slice(a * sh, a * sh + dh * (kh - 1) + 1, dh)
        cols = slice(b * sw, b * sw + dw * (kw - 1) + 1, dw)
        window = xp[n, c, rows, cols]
        if kind == "max":
            out[n, c, a, b] = np.max(window)
        else:
            out[n, c, a, b] = np.sum(window) / (kh * kw if count_include_pad else np.sum(inside[rows, cols]))
    return out[0] if unbatched else out


# --- the cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One call: the graphc function, the reference loop, operand shapes, keyword arguments."""

    name: str
    fn: Callable[..., gc.Tensor]
    ref: Callable[..., np.ndarray]
    shapes: tuple[tuple[int, ...], ...]
    kwargs: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


def _max(x: object, **kw: object) -> gc.Tensor:
    return gc.nn.max_pool2d(x, **kw)


def _avg(x: object, **kw: object) -> gc.Tensor:
    return gc.nn.avg_pool2d(x, **kw)


def _biased(x: object, w: object, b: object, **kw: object) -> gc.Tensor:
    return gc.nn.conv2d(x, w, bias=b, **kw)


def _conv_ref(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    return conv_loop(x, w, **kw)  # type: ignore[arg-type]


def _biased_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, **kw: object) -> np.ndarray:
    return conv_loop(x, w, b, **kw)  # type: ignore[arg-type]


def conv(name: str, x: tuple[int, ...], w: tuple[int, ...], **kw: object) -> Case:
    return Case(f"conv-{name}", gc.nn.conv2d, _conv_ref, (x, w), kw)


def pool(kind: str, name: str, x: tuple[int, ...], **kw: object) -> Case:
    fn = _max if kind == "max" else _avg
    return Case(f"{kind}-{name}", fn, lambda v, **k: pool_loop(v, kind, **k), (x,), kw)


CASES = [
    conv("plain", (2, 3, 7, 6), (4, 3, 3, 2)),
    conv("stride-padding-dilation", (2, 3, 7, 6), (4, 3, 3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    conv("kernel-is-input", (2, 2, 5, 4), (3, 2, 5, 4)),
    conv("padding-over-kernel", (1, 2, 3, 3), (2, 2, 2, 2), padding=2),
    conv("one-channel", (3, 1, 6, 6), (1, 1, 3, 3), stride=2),
    conv("size-one", (1, 1, 1, 1), (1, 1, 1, 1)),
    conv("1x1", (2, 4, 3, 3), (5, 4, 1, 1)),
    conv("groups", (2, 4, 5, 5), (6, 2, 3, 3), padding=1, groups=2),
    conv("depthwise", (2, 3, 5, 4), (3, 1, 2, 2), stride=2, groups=3),
    conv("same-even", (1, 2, 5, 6), (2, 2, 2, 4), padding="same", dilation=(2, 1)),
    conv("valid", (1, 2, 4, 5), (3, 2, 3, 3), padding="valid"),
    conv("stride-over-kernel", (1, 2, 7, 7), (2, 2, 2, 2), stride=3),
    conv("unbatched", (3, 5, 5), (2, 3, 3, 3), padding=1),
    conv("empty-batch", (0, 2, 4, 4), (3, 2, 3, 3)),
    Case("conv-bias", _biased, _biased_ref, ((2, 2, 4, 4), (3, 2, 3, 3), (3,)), {"padding": 1}),
    pool("max", "2", (2, 3, 6, 6), kernel_size=2),
    pool("max", "3-stride1-pad1", (2, 2, 5, 4), kernel_size=3, stride=1, padding=1),
    pool("max", "rect", (1, 2, 5, 7), kernel_size=(2, 3), stride=(1, 2), padding=1),
    pool("max", "kernel-is-input", (2, 2, 3, 4), kernel_size=(3, 4)),
    pool("max", "dilation", (1, 2, 7, 7), kernel_size=3, stride=2, padding=1, dilation=2),
    pool("max", "unbatched", (2, 4, 4), kernel_size=2),
    pool("max", "size-one", (1, 1, 1, 1), kernel_size=1),
    pool("avg", "2", (2, 3, 6, 6), kernel_size=2),
    pool("avg", "3-stride1-pad1", (2, 2, 5, 4), kernel_size=3, stride=1, padding=1),
    pool("avg", "exclude-pad", (1, 2, 5, 4), kernel_size=3, stride=2, padding=1, count_include_pad=False),
    pool("avg", "rect", (1, 2, 5, 7), kernel_size=(2, 3), stride=(1, 2), padding=(1, 0)),
    pool("avg", "kernel-is-input", (2, 1, 3, 3), kernel_size=3),
]


def _values(case: Case, dtype: np.dtype, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(dtype) for s in case.shapes]


def _build(cases: list[Case], dtype: np.dtype) -> tuple[list[gc.Tensor], list[gc.Tensor], list[np.ndarray]]:
    """Vars, outputs and values of every case, as one graph."""
    inputs, outputs, values = [], [], []
    for k, case in enumerate(cases):
        xs = [gc.var(f"{case.name}-{i}", s, dtype) for i, s in enumerate(case.shapes)]
        inputs += xs
        outputs.append(case.fn(*xs, **case.kwargs))
        values += _values(case, dtype, k)
    return inputs, outputs, values


def _tolerance(dtype: np.dtype) -> dict[str, float]:
    return {"rtol": 1e-12, "atol": 1e-12} if dtype == F64 else {"rtol": 2e-5, "atol": 2e-5}


# --- values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
def test_values_against_direct_loops(dtype: np.dtype) -> None:
    inputs, outputs, values = _build(CASES, dtype)
    got = gc.evaluate(outputs, dict(zip(inputs, values, strict=True)))
    at = 0
    for case, value in zip(CASES, got, strict=True):
        args = values[at : at + len(case.shapes)]
        at += len(case.shapes)
        expected = case.ref(*args, **case.kwargs)
        assert value.dtype == dtype and value.shape == expected.shape, case.name
        np.testing.assert_allclose(value, expected, **_tolerance(dtype), err_msg=case.name)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
def test_compiled_values_and_gradients_match_the_reference(backend: str, dtype: np.dtype) -> None:
    """Every case's value and the gradient of a weighted sum of it wrt every operand, in one compiled function.

    float32 on llvm takes every third case: one compile of every case costs ~10 s here.
    """
    inputs, outputs, values = _build(CASES[::3] if (backend, dtype) == ("llvm", F32) else CASES, dtype)
    rng = np.random.default_rng(7)
    loss = gc.sum(gc.stack([gc.sum(out * rng.normal(size=out.shape).astype(dtype)) for out in outputs]))
    grads = gc.grad(loss, inputs)
    feed = dict(zip(inputs, values, strict=True))
    expected = gc.evaluate([*outputs, *grads], feed)
    got = gc.compile(inputs, [*outputs, *grads], backend=backend)(*values)
    for e, g in zip(expected, got, strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape
        if backend == "numpy":
            np.testing.assert_array_equal(g, e)  # the same NumPy calls as the reference
        else:
            np.testing.assert_allclose(g, e, **_tolerance(dtype))


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_special_values_propagate_as_in_the_reference(backend: str) -> None:
    """NaN, +-inf, -0.0 and huge values through pooling (exactly) and convolution (NaN/inf where NumPy has them)."""
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e300, -1e300, 5e-324, 1.0, -2.0, 3.0, -0.5])
    image = np.resize(specials, (2, 1, 4, 6))
    x = gc.var("x", image.shape)
    w = gc.var("w", (2, 1, 2, 2))
    outs = [
        gc.nn.max_pool2d(x, 2),
        gc.nn.max_pool2d(x, 3, stride=1, padding=1),
        gc.nn.avg_pool2d(x, 2),
        gc.nn.avg_pool2d(x, (2, 3), padding=1, count_include_pad=False),
        gc.nn.conv2d(x, w, padding=1),
    ]
    weights = np.array([1.0, -0.0, 2.0, 0.5]).reshape(1, 1, 2, 2).repeat(2, axis=0)
    with np.errstate(all="ignore"):
        expected = gc.evaluate(outs, {x: image, w: weights})
        got = gc.compile([x, w], outs, backend=backend)(image, weights)
    for e, g in zip(expected[:4], got[:4], strict=True):
        np.testing.assert_array_equal(g, e)
        assert np.array_equal(np.signbit(g), np.signbit(e))
    np.testing.assert_array_equal(np.isnan(got[4]), np.isnan(expected[4]))
    np.testing.assert_array_equal(np.isposinf(got[4]), np.isposinf(expected[4]))


# --- derivatives -------------------------------------------------------------------------------------

GRAD_CASES = [c for c in CASES if c.name != "conv-empty-batch"]


@pytest.mark.parametrize("case", GRAD_CASES, ids=str)
def test_vjp_against_finite_differences(case: Case) -> None:
    xs = [gc.var(f"a{i}", s) for i, s in enumerate(case.shapes)]
    out = case.fn(*xs, **case.kwargs)
    check_grad(out, xs, dict(zip(xs, _values(case, F64, 3), strict=True)), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", GRAD_CASES[::2], ids=str)
def test_jvp_against_finite_differences_and_the_vjp(case: Case) -> None:
    """J t by forward mode = the central difference along t, and <ct, J t> = <J^T ct, t>."""
    xs = [gc.var(f"a{i}", s) for i, s in enumerate(case.shapes)]
    out = case.fn(*xs, **case.kwargs)
    values = _values(case, F64, 4)
    rng = np.random.default_rng(5)
    tangents = [rng.normal(size=s) for s in case.shapes]
    ct = rng.normal(size=out.shape)
    feed = dict(zip(xs, values, strict=True))
    jt = gc.evaluate(gc.jvp([out], xs, tangents)[0], feed)
    eps = 1e-6
    up = gc.evaluate(out, {x: v + eps * t for x, v, t in zip(xs, values, tangents, strict=True)})
    down = gc.evaluate(out, {x: v - eps * t for x, v, t in zip(xs, values, tangents, strict=True)})
    np.testing.assert_allclose(jt, (up - down) / (2 * eps), rtol=1e-6, atol=1e-7)
    vjps = gc.evaluate(gc.vjp([out], xs, [ct]), feed)
    np.testing.assert_allclose(np.sum(ct * jt), sum(np.sum(g * t) for g, t in zip(vjps, tangents, strict=True)))


@pytest.mark.parametrize("mode", ["rev", "fwd"])
def test_jacobians_batch_through_the_window_rules(mode: str) -> None:
    """A Jacobian gives im2col/col2im cotangents and tangents leading batch axes: rows against finite differences."""
    x = gc.var("x", (2, 2, 4, 3))
    w = gc.var("w", (3, 2, 2, 2))
    out = gc.nn.max_pool2d(gc.tanh(gc.nn.conv2d(x, w, stride=(1, 2), padding=1)), 2, padding=1)
    out = out + gc.nn.avg_pool2d(gc.nn.conv2d(x, w, padding=(0, 1)), (3, 2), stride=1)[:, :, :1, :1]
    values = _values(Case("j", gc.nn.conv2d, conv_loop, (x.shape, w.shape)), F64, 9)
    jx, jw = gc.evaluate(gc.jacobian(out, [x, w], mode=mode), dict(zip([x, w], values, strict=True)))
    assert jx.shape == out.shape + x.shape and jw.shape == out.shape + w.shape
    for index in [(0, 0, 0, 0), (1, 2, 1, 1)]:
        basis = np.zeros(out.shape)
        basis[index] = 1.0
        numeric = numeric_vjp([out], [x, w], dict(zip([x, w], values, strict=True)), [basis])
        np.testing.assert_allclose(jx[index], numeric[0], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(jw[index], numeric[1], rtol=1e-6, atol=1e-8)


def test_hessian_through_convolution_and_pooling() -> None:
    """Forward over reverse through a grouped conv and average pooling, against differences of the gradient."""
    x = gc.var("x", (1, 2, 4, 4))
    w = gc.var("w", (2, 1, 2, 2))
    loss = gc.sum(gc.tanh(gc.nn.avg_pool2d(gc.nn.conv2d(x, w, padding=1, groups=2), 2)) ** 2)
    rng = np.random.default_rng(11)
    xv, wv = rng.normal(size=x.shape), rng.normal(size=w.shape)
    hessian = gc.evaluate(gc.hessian(loss, w), {x: xv, w: wv})
    grad = gc.grad(loss, w)
    eps = 1e-5
    for index in [(0, 0, 0, 0), (1, 0, 1, 0)]:
        step = np.zeros(w.shape)
        step[index] = eps
        numeric = (gc.evaluate(grad, {x: xv, w: wv + step}) - gc.evaluate(grad, {x: xv, w: wv - step})) / (2 * eps)
        np.testing.assert_allclose(hessian[(*index, ...)], numeric, rtol=1e-5, atol=1e-7)


def test_max_pool_splits_the_gradient_evenly_at_ties() -> None:
    """The documented subgradient: k tied maxima of a window get 1/k each (PyTorch gives all to the first)."""
    x = gc.var("x", (1, 1, 2, 4))
    value = np.array([[[[1.0, 1.0, 2.0, 0.0], [1.0, 1.0, 2.0, 2.0]]]])
    (g,) = gc.evaluate([gc.grad(gc.sum(gc.nn.max_pool2d(x, 2)), x)], {x: value})
    np.testing.assert_array_equal(g, [[[[0.25, 0.25, 1 / 3, 0.0], [0.25, 0.25, 1 / 3, 1 / 3]]]])


def test_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(1)
    x_value, w_value, b_value = rng.normal(size=(2, 4, 7, 6)), rng.normal(size=(6, 2, 3, 2)), rng.normal(size=6)
    x, w, b = gc.var("x", x_value.shape), gc.var("w", w_value.shape), gc.var("b", b_value.shape)
    conv_args = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}
    y = gc.nn.conv2d(x, w, bias=b, **conv_args)
    z = gc.nn.max_pool2d(y, 3, stride=2, padding=1) + gc.nn.avg_pool2d(y, 3, stride=2, padding=1)
    loss = gc.sum(z * z)
    got = gc.compile([x, w, b], [z, *gc.grad(loss, [x, w, b])])(x_value, w_value, b_value)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x_value, w_value, b_value))
    ty = functional.conv2d(tx, tw, tb, **conv_args)
    tz = functional.max_pool2d(ty, 3, stride=2, padding=1) + functional.avg_pool2d(ty, 3, stride=2, padding=1)
    (tz * tz).sum().backward()
    for mine, theirs in zip(got, [tz, tx.grad, tw.grad, tb.grad], strict=True):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-10, atol=1e-10)


# --- the graph, and bad calls -----------------------------------------------------------------------


def test_a_convolution_is_one_im2col_and_one_matmul() -> None:
    x = gc.var("x", (2, 3, 8, 8))
    w = gc.var("w", (4, 3, 3, 3))
    y = gc.nn.conv2d(x, w, padding=1)
    ops = [node.op.name for node in gc.Graph([y.node]).nodes]
    assert ops.count("im2col") == 1 and ops.count("matmul") == 1 and "col2im" not in ops
    grads = gc.grad(gc.sum(y * y), [x, w])
    grad_ops = [node.op.name for node in gc.Graph([g.node for g in grads]).nodes]
    assert grad_ops.count("col2im") == 1 and grad_ops.count("im2col") == 1 and grad_ops.count("matmul") == 3


X4 = ((2, 3, 6, 6), "float64")
BAD_SHAPES = [
    ("conv2d", lambda x: gc.nn.conv2d(x, gc.var("w", (4, 2, 3, 3))), "3 channels"),
    ("conv2d", lambda x: gc.nn.conv2d(x, gc.var("w", (4, 3, 3))), "weight as"),
    ("conv2d", lambda x: gc.nn.conv2d(gc.var("v", (6, 6)), gc.var("w", (4, 3, 3, 3))), r"\(N, C, H, W\)"),
    ("conv2d", lambda x: gc.nn.conv2d(x, gc.var("w", (4, 3, 7, 3))), "does not fit"),
    ("conv2d", lambda x: gc.nn.conv2d(x, gc.var("w", (4, 1, 3, 3)), groups=3), "not divisible by groups"),
    ("conv2d", lambda x: gc.nn.conv2d(x, gc.var("w", (4, 3, 3, 3)), bias=gc.var("b", (3,))), "bias"),
    ("conv2d", lambda x: gc.nn.conv2d(x, gc.var("w", (4, 3, 3, 3)), stride=0), "must be positive"),
    ("conv2d", lambda x: gc.nn.conv2d(x, gc.var("w", (4, 3, 3, 3)), padding=-1), "non-negative"),
    ("max_pool2d", lambda x: gc.nn.max_pool2d(x, 7), "does not fit"),
    ("max_pool2d", lambda x: gc.nn.max_pool2d(x, 2, padding=2), "at most half"),
    ("avg_pool2d", lambda x: gc.nn.avg_pool2d(x, 3, padding=2), "at most half"),
    ("avg_pool2d", lambda x: gc.nn.avg_pool2d(gc.var("v", (6,)), 3), r"\(N, C, H, W\)"),
]


@pytest.mark.parametrize(("op", "build", "message"), BAD_SHAPES, ids=[f"{o}-{m}" for o, _, m in BAD_SHAPES])
def test_bad_shapes_raise_located_shape_errors(op: str, build: Callable, message: str) -> None:
    with pytest.raises(gc.ShapeError, match=message) as info:
        build(gc.var("x", *X4))
    text = str(info.value)
    assert text.startswith(f"{op}(") and re.search(rf"at .*{HERE}:\d+", text), text


BAD_ARGUMENTS = [
    (lambda x, w: gc.nn.conv2d(x, w, 1.5), TypeError, "stride must be an int or a pair"),
    (lambda x, w: gc.nn.conv2d(x, w, (1, 2, 3)), TypeError, "stride must be an int or a pair"),
    (lambda x, w: gc.nn.conv2d(x, w, gc.var("b", (4,))), TypeError, "stride must be an int or a pair"),
    (lambda x, w: gc.nn.conv2d(x, w, dilation=True), TypeError, "dilation"),
    (lambda x, w: gc.nn.conv2d(x, w, groups=0), TypeError, "groups must be a positive int"),
    (lambda x, w: gc.nn.conv2d(x, w, padding="full"), ValueError, "padding must be"),
    (lambda x, w: gc.nn.conv2d(x, w, stride=2, padding="same"), ValueError, "needs stride 1"),
    (lambda x, w: gc.nn.max_pool2d(x, None), TypeError, "kernel_size"),
    (lambda x, w: gc.nn.avg_pool2d(x, 2, stride="2"), TypeError, "stride"),
    (lambda x, w: gc.nn.max_pool2d(x, 2, padding=(1,)), TypeError, "padding"),
]


@pytest.mark.parametrize(("build", "error", "message"), BAD_ARGUMENTS, ids=[m for _, _, m in BAD_ARGUMENTS])
def test_bad_arguments_raise_user_errors_naming_the_function(build: Callable, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as info:
        build(gc.var("x", *X4), gc.var("w", (4, 3, 3, 3)))
    assert re.search(rf"at .*{HERE}:\d+", str(info.value)), str(info.value)


def test_integer_operands_compute_in_float64_and_dtypes_promote() -> None:
    x = gc.var("x", (1, 1, 3, 3), "int64")
    w = gc.var("w", (1, 1, 2, 2), "float32")
    assert gc.nn.conv2d(x, w).dtype == F64
    assert gc.nn.max_pool2d(x, 2).dtype == F64
    assert gc.nn.conv2d(gc.var("y", (1, 1, 3, 3), "float32"), w).dtype == F32
