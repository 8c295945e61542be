"""The frontend's fast paths give what the general ones give: locations, interned constants, promotion, Tensors.

Building a graph takes shortcuts (tensor.arith without promote for same-dtype floats and
Python scalars, a weak cache of scalar constants, one Location per user line, a memo of
inferred types, a dict of weak Tensor references); each test here pins a case where such
a shortcut could differ from the general path.
"""

from __future__ import annotations

import gc as pygc
import inspect
import struct
import warnings

import numpy as np
import pytest

import graphc as gc
from graphc import tensor as tensor_module
from graphc.errors import Location
from graphc.tensor import Tensor, arith, building


def lineno() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def nan_with(payload: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000 | payload))[0]


def const_bytes(t: gc.Tensor) -> bytes:
    value = gc.evaluate([t], {})[0]
    return np.asarray(value).tobytes()


# --- locations -----------------------------------------------------------------------------------------


def test_locations_from_helpers_lambdas_and_comprehensions() -> None:
    x = gc.var("x", (3,))

    def helper(t: gc.Tensor) -> gc.Tensor:
        return gc.sin(t) * 1.25  # the helper's line, not its caller's

    def outer(t: gc.Tensor) -> gc.Tensor:
        return helper(t) + 0.75

    helper_line = helper.__code__.co_firstlineno + 1
    outer_line = outer.__code__.co_firstlineno + 1
    y = outer(x)
    assert y.node.loc == Location(__file__, outer_line)
    assert y.node.inputs[0].loc == Location(__file__, helper_line)
    assert y.node.inputs[0].inputs[1].loc == Location(__file__, helper_line)  # the constant 1.25

    scaled = lambda t: gc.exp(t) * 3.5  # noqa: E731
    lambda_line = lineno() - 1
    assert scaled(x).node.loc == Location(__file__, lambda_line)

    line = lineno() + 1
    ys = [gc.cos(x) * k for k in (4.5, 5.5)]
    assert [y.node.loc for y in ys] == [Location(__file__, line)] * 2
    assert ys[0].node.loc is ys[1].node.loc  # one Location per line, shared


def test_locations_of_exec_code_and_of_errors_there() -> None:
    source = "x = gc.var('x', (2,))\ny = gc.tanh(x) * 6.5\nz = gc.tanh(x) + gc.var('w', (3,))\n"
    namespace: dict[str, object] = {"gc": gc}
    with pytest.raises(gc.ShapeError) as info:
        exec(compile(source, "<user-cell>", "exec"), namespace)
    y = namespace["y"]
    assert isinstance(y, Tensor)
    assert y.node.loc == Location("<user-cell>", 2)
    assert "add(f64[2], f64[3])" in str(info.value)
    assert "<user-cell>:3" in str(info.value)


def test_locations_of_user_code_that_graphc_calls_back() -> None:
    x = gc.var("x", ())

    def step(carry: gc.Tensor, _: object) -> tuple[gc.Tensor, gc.Tensor]:
        return gc.sin(carry) * 2.25, carry  # the body's own line names its errors

    def bad(carry: gc.Tensor, _: object) -> tuple[gc.Tensor, gc.Tensor]:
        return carry + gc.var("v", (2,)) + gc.var("w", (3,)), carry

    final, _ = gc.scan(step, x, length=3)
    assert gc.evaluate([final], {x: 0.5})[0] == pytest.approx(2.25 * np.sin(2.25 * np.sin(2.25 * np.sin(0.5))))
    with pytest.raises(gc.GraphError) as info:
        gc.scan(bad, x, length=3)
    assert "add(f64[2], f64[3])" in str(info.value)
    assert f"{__file__}:{bad.__code__.co_firstlineno + 1}" in str(info.value)


# --- interning of constants built different ways --------------------------------------------------------


def test_a_scalar_constant_is_one_node_however_it_is_spelled() -> None:
    x = gc.var("x", (3,))
    spellings = [2.0, 2, np.float64(2.0), np.array(2.0), gc.const(2.0), gc.const(np.int64(2), "float64")]
    products = [x * s for s in spellings]
    assert all(p.node is products[0].node for p in products)
    reversed_ = [s * x for s in spellings[:4]]
    assert all(r.node is reversed_[0].node for r in reversed_)
    assert reversed_[0].node is not products[0].node  # mul(c, x) is not mul(x, c)
    assert reversed_[0].node.inputs == products[0].node.inputs[::-1]


def test_scalar_constants_keep_signed_zeros_nan_payloads_and_big_ints_apart() -> None:
    x = gc.var("x", ())
    zero, negative_zero = x + 0.0, x + -0.0
    first, second = x + nan_with(1), x + nan_with(2)
    assert zero.node is not negative_zero.node
    assert first.node is not second.node
    assert x + nan_with(1) is first  # the same payload is the same node (and the same Tensor)
    assert const_bytes(Tensor(first.node.inputs[1])) == struct.pack("<d", nan_with(1))
    assert const_bytes(Tensor(negative_zero.node.inputs[1])) == struct.pack("<d", -0.0)
    big = 2**53 + 1  # not exact in float64: promote's int64 -> float64 cast rounds it
    assert (x * big).node is (x * gc.const(np.asarray(big).astype(np.float64))).node
    assert (x * 2**53).node is (x * float(2**53)).node
    assert (x * True).node is (x * gc.const(1.0)).node
    with pytest.raises(gc.DTypeError):
        x * 2**70  # beyond int64, as before (NumPy would overflow too)


def test_a_freed_scalar_constant_is_rebuilt_and_interned_again() -> None:
    x = gc.var("x", ())
    y = x * 1234.5
    del y
    pygc.collect()
    assert tensor_module._SCALARS[(1234.5).hex()]() is None  # remembered weakly: freed with its users
    again = x * 1234.5
    rebuilt = again.node.inputs[1]
    assert rebuilt is gc.const(1234.5).node
    assert tensor_module._SCALARS[(1234.5).hex()]() is rebuilt
    assert gc.evaluate([again], {x: 2.0})[0] == 2469.0


def test_float32_operands_keep_their_dtype_and_numpys_warnings() -> None:
    v = gc.var("v", (2,), "float32")
    y = v * 0.1
    assert y.dtype == np.float32
    assert y.node.inputs[1] is gc.const(np.float32(0.1)).node
    with pytest.warns(RuntimeWarning, match="overflow"):
        v * 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (gc.var("w", (2,)) * 1e300).dtype == np.float64  # no cast, no warning


# --- promotion --------------------------------------------------------------------------------------------

SCALARS = [2, -3, 2.5, -0.0, True, 2**53 + 1, np.float32(1.5), np.float64(0.25), np.int64(3), np.int32(4), np.bool_(1)]
DTYPES = ["float64", "float32", "int64", "bool"]


def test_promotion_of_every_dtype_with_scalars_and_tensors_matches_numpy() -> None:
    """Every pairing in both positions: the dtype and the values NumPy gives (or an error where NumPy refuses)."""
    rng = np.random.default_rng(0)
    values = {d: rng.uniform(-3, 3, 3).astype(d) if d != "bool" else np.array([True, False, True]) for d in DTYPES}
    tensors = {d: gc.var(f"v{d}", (3,), d) for d in DTYPES}
    pairs = [(tensors[d], s, values[d], s) for d in DTYPES for s in SCALARS]
    pairs += [(s, tensors[d], s, values[d]) for d in DTYPES for s in SCALARS]
    pairs += [(tensors[d], tensors[e], values[d], values[e]) for d in DTYPES for e in DTYPES]
    outs, wants = [], []
    for a, b, na, nb in pairs:
        for name, ufunc in (("add", np.add), ("mul", np.multiply), ("less", np.less)):
            try:
                with np.errstate(all="ignore"):
                    want = np.asarray(ufunc(na, nb))
            except (TypeError, OverflowError):
                continue
            got = arith(name, a, b)
            kind = want.dtype.kind
            expected = np.dtype("int64") if kind in "iu" else want.dtype  # graphc's one integer dtype
            assert got.dtype == expected, (name, a, b)
            outs.append(got)
            wants.append(want)
    results = gc.evaluate(outs, {tensors[d]: values[d] for d in DTYPES})
    for got, want in zip(results, wants, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(outs) > 200


# --- Tensors, building, inference ----------------------------------------------------------------------------


def test_one_tensor_per_node_while_it_lives_and_none_held_after() -> None:
    x = gc.var("x", (2,))
    y = gc.exp(x) * 0.5
    assert Tensor(y.node) is y
    assert gc.exp(x) * 0.5 is y

    class Sub(Tensor):
        __slots__ = ()

    assert Sub(y.node) is not Sub(y.node)  # subclasses are not shared
    node_id = id(y.node)
    node = y.node
    del y
    pygc.collect()
    assert node_id not in tensor_module._TENSORS  # the entry went with its Tensor
    fresh = Tensor(node)
    assert fresh.node is node and Tensor(node) is fresh


def test_building_locates_refused_arguments_and_passes_other_errors() -> None:
    x = gc.var("x", (3,))
    line = lineno() + 1  # the frame's line when the block ends: the with statement's
    with pytest.raises(ValueError) as info, building("myop", x, 7):
        raise ValueError("bad argument")
    assert f"myop(f64[3], 7): bad argument\n  at {__file__}:{line}" == str(info.value)
    with pytest.raises(RuntimeError, match=r"^internal$"), building("myop", x):
        raise RuntimeError("internal")
    with building("myop", x):
        assert (x + 1.0).shape == (3,)


def test_an_inference_error_is_raised_every_time_after_a_success() -> None:
    a, b, c = gc.var("a", (2, 3)), gc.var("b", (3,)), gc.var("c", (4,))
    assert (a + b).shape == (2, 3)
    for _ in range(2):
        line = lineno() + 2
        with pytest.raises(gc.ShapeError) as info:
            a + c
        assert "add(f64[2,3], f64[4])" in str(info.value)
        assert f"{__file__}:{line}" in str(info.value)
    assert (a + b).node.type == gc.var("d", (2, 3)).node.type
