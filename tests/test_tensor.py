"""API.md §1, the frontend: Tensor properties, vars and consts, lifting, and build errors.

A wrong build raises gc.ShapeError / gc.DTypeError (GraphError, ValueError) at the
line that builds it; the message names the op, the operand types and this file's
path and line. Bad static indices raise IndexError; a Tensor has no truth value.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from paramids import stable_repr

import graphc as gc
from graphc.errors import Location

F64, F32, I64, BOOL = (np.dtype(d) for d in ("float64", "float32", "int64", "bool"))


def lineno() -> int:
    """The caller's current line."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


# --- properties --------------------------------------------------------------------------------


def test_var_defaults_to_a_float64_scalar() -> None:
    s = gc.var("s")
    assert s.shape == ()
    assert s.dtype == F64
    assert s.ndim == 0
    assert s.name == "s"


@pytest.mark.parametrize(
    ("shape", "dtype", "want_shape", "want_dtype"),
    [((3,), "float64", (3,), F64), ((64, 128), "float32", (64, 128), F32), (3, np.float32, (3,), F32),
     ([2, 3], np.dtype("int64"), (2, 3), I64), ((), "bool", (), BOOL), ((2, 0, 4), bool, (2, 0, 4), BOOL),
     (np.int64(5), "f8", (5,), F64), ((np.int64(2), 3), "f4", (2, 3), F32)],
)  # fmt: skip
def test_var_properties(shape, dtype, want_shape, want_dtype) -> None:
    x = gc.var("x", shape=shape, dtype=dtype)
    assert x.shape == want_shape
    assert type(x.shape) is tuple
    assert all(type(n) is int for n in x.shape)
    assert isinstance(x.dtype, np.dtype)
    assert x.dtype == want_dtype
    assert x.ndim == len(want_shape)
    assert x.name == "x"
    assert x.size == int(np.prod(want_shape))


def test_computed_tensors_have_no_name() -> None:
    x = gc.var("x", (2, 3))
    for t in (x + 1, x.T, x[0], gc.sum(x), gc.const(1.0)):
        assert t.name is None
    assert isinstance(x + 1, gc.Tensor)


def test_vars_with_one_name_are_distinct() -> None:
    x1, x2 = gc.var("x", (3,)), gc.var("x", (3,))
    assert x1.node is not x2.node
    assert x1 is not x2
    assert len({x1, x2}) == 2
    assert gc.evaluate(x1 - x2, {x1: [3.0, 2.0, 1.0], x2: [1.0, 1.0, 1.0]}).tolist() == [2.0, 1.0, 0.0]


def test_equal_structure_is_one_tensor() -> None:
    """Equal structure is one node and one Tensor: `is` compares Tensors (`==` is elementwise)."""
    x = gc.var("x", (3,))
    a, b = x * 2.0 + 1.0, x * 2.0 + 1.0
    assert a is b
    assert hash(a) == hash(b)
    assert a.node is b.node
    assert gc.Tensor(a.node) is a
    assert (x * 2.0) is not (x * 3.0)
    assert len({a, b, x}) == 2


def test_repr_names_var_and_type() -> None:
    assert repr(gc.var("W", (2, 3), "float32")) == "Tensor(W, f32[2,3])"
    assert repr(gc.var("i", (4,), "int64") + 1) == "Tensor(add, i64[4])"


# --- consts and lifting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(1.5, F64), (2, I64), (True, BOOL), (np.float32(1.5), F32), (np.float64(2.0), F64), (np.int32(3), I64),
     (np.uint8(3), I64), (np.float16(0.5), F32), ([1.0, 2.0], F64), ([1, 2], I64), ([[True], [False]], BOOL),
     (np.eye(3), F64), (np.ones((2, 2), np.float32), F32), (np.arange(3, dtype=np.int32), I64)],
    ids=stable_repr,
)  # fmt: skip
def test_const_dtypes(value: object, dtype: np.dtype) -> None:
    c = gc.const(value)
    assert c.dtype == dtype
    assert c.shape == np.shape(value)
    got = gc.evaluate(c, {})
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, np.asarray(value).astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_const_with_dtype(dtype: str) -> None:
    c = gc.const([0, 1, 2], dtype=dtype)
    assert c.dtype == np.dtype(dtype)
    assert gc.evaluate(c, {}).dtype == np.dtype(dtype)


def test_const_copies_its_value() -> None:
    a = np.array([1.0, 2.0])
    c = gc.const(a)
    a[0] = 99.0
    assert gc.evaluate(c, {}).tolist() == [1.0, 2.0]


def test_evaluate_results_are_fresh_arrays() -> None:
    a = np.array([1.0, 2.0])
    c = gc.const(a)
    out = gc.evaluate(c, {})
    out[0] = 5.0
    assert gc.evaluate(c, {}).tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("build", "want"),
    [(lambda x: x + 1, [2.0, 3.0, 4.0]), (lambda x: 1 + x, [2.0, 3.0, 4.0]),
     (lambda x: x * np.float64(2), [2.0, 4.0, 6.0]),
     (lambda x: np.ones(3) + x, [2.0, 3.0, 4.0]), (lambda x: [1.0, 0.0, -1.0] * x, [1.0, 0.0, -3.0]),
     (lambda x: np.array(2.0) - x, [1.0, 0.0, -1.0]), (lambda x: np.eye(3) @ x, [1.0, 2.0, 3.0]),
     (lambda x: 2 ** x, [2.0, 4.0, 8.0]), (lambda x: np.float64(6.0) / x, [6.0, 3.0, 2.0]),
     (lambda x: np.int64(2) > x, [True, False, False])],
)  # fmt: skip
def test_numbers_and_arrays_are_lifted_on_either_side(build, want) -> None:
    x = gc.var("x", (3,))
    y = build(x)
    assert isinstance(y, gc.Tensor)
    assert gc.evaluate(y, {x: [1.0, 2.0, 3.0]}).tolist() == want


def test_numpy_ufuncs_on_tensors_build_graphc_nodes() -> None:
    """np.add(array, tensor) dispatches to gc.add (tests/test_tensor_protocol.py has the rest)."""
    x = gc.var("x", (3,))
    y = np.add(np.ones(3), x)
    assert isinstance(y, gc.Tensor) and y.node.op.name == "add"
    with pytest.raises(TypeError, match="not supported"):
        np.cbrt(x)  # a ufunc graphc lacks (np.arcsinh, once here, is gc.arcsinh now)


def test_as_tensor() -> None:
    x = gc.var("x", (2,))
    assert gc.as_tensor(x) is x
    assert gc.as_tensor(x, "float32").dtype == F32
    assert gc.as_tensor(2.0).dtype == F64
    assert gc.as_tensor([1, 2], "float32").dtype == F32


def test_feeding_values() -> None:
    """evaluate casts safely (lists, ints into float vars) and refuses what it cannot cast or shape."""
    x = gc.var("x", (2,), "float32")
    i = gc.var("i", (2,), "int64")
    out = gc.evaluate(x * 2, {x: [1, 2]})
    assert out.dtype == F32
    assert out.tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match="'x'"):
        gc.evaluate(x, {x: [1.0, 2.0, 3.0]})
    with pytest.raises(TypeError, match="'i'"):
        gc.evaluate(i, {i: [0.5, 1.5]})
    with pytest.raises(ValueError, match="'x'"):
        gc.evaluate(x + 1, {})


# --- methods --------------------------------------------------------------------------------------


def test_methods_match_functions() -> None:
    x = gc.var("x", (2, 3, 4))
    assert x.sum().node is gc.sum(x).node
    assert x.sum(axis=-1, keepdims=True).node is gc.sum(x, -1, True).node
    assert x.mean((0, 2)).node is gc.mean(x, (0, 2)).node
    assert x.max(1).node is gc.max(x, 1).node
    assert x.reshape(4, 6).node is gc.reshape(x, (4, 6)).node
    assert x.reshape((-1,)).node is gc.reshape(x, 24).node
    assert x.astype("float32").node is gc.astype(x, np.float32).node
    assert x.T.node is gc.transpose(x).node
    assert x.T.shape == (4, 3, 2)


def test_no_op_shape_methods_return_the_same_node() -> None:
    x = gc.var("x", (2, 3))
    assert x.reshape(2, 3).node is x.node
    assert x.astype("float64").node is x.node
    assert gc.transpose(x, (0, 1)).node is x.node
    assert gc.broadcast_to(x, (2, 3)).node is x.node
    assert x[...].node is x.node
    assert x[:, :].node is x.node


# --- errors ------------------------------------------------------------------------------------------


def test_error_hierarchy() -> None:
    assert issubclass(gc.GraphError, ValueError)
    for cls in (gc.ShapeError, gc.DTypeError, gc.DifferentiationError):
        assert issubclass(cls, gc.GraphError)
    assert not issubclass(gc.ShapeError, gc.DTypeError)


A = gc.var("a", (2, 3))
B = gc.var("b", (4,))
I = gc.var("i", (3,), "int64")  # noqa: E741
M = gc.var("m", (3,), "bool")
H = gc.var("h", (2, 3), "float32")

# (error, op named in the message, operand types named in the message, the build): one build per line,
# so the build's first line is the line the error must point at.
BUILD_ERRORS = [
    (gc.ShapeError, "add", ["f64[2,3]", "f64[4]"], lambda: A + B),
    (gc.ShapeError, "add", ["f64[4]", "f64[2,3]"], lambda: B + A),
    (gc.ShapeError, "add", ["f64[5]", "f64[2,3]"], lambda: np.ones(5) + A),
    (gc.ShapeError, "sub", ["f64[2,3]", "f64[4]"], lambda: A - B),
    (gc.ShapeError, "mul", ["f64[4]", "f64[2,3]"], lambda: B * A),
    (gc.ShapeError, "div", ["f64[2,3]", "f64[4]"], lambda: A / B),
    (gc.ShapeError, "pow", ["f64[2,3]", "f64[4]"], lambda: A**B),
    (gc.ShapeError, "less", ["f64[2,3]", "f64[4]"], lambda: A < B),
    (gc.ShapeError, "greater_equal", ["f64[2,3]", "f64[4]"], lambda: A >= B),
    (gc.ShapeError, "maximum", ["f64[2,3]", "f64[4]"], lambda: gc.maximum(A, B)),
    (gc.ShapeError, "minimum", ["f64[2,3]", "f64[4]"], lambda: gc.minimum(A, B)),
    (gc.ShapeError, "equal", ["f64[2,3]", "f64[4]"], lambda: gc.equal(A, B)),
    (gc.ShapeError, "where", ["bool[3]", "f64[2,3]", "f64[4]"], lambda: gc.where(M, A, B)),
    (gc.ShapeError, "clip", ["f64[2,3]", "f64[4]"], lambda: gc.clip(A, B, None)),
    (gc.ShapeError, "clip", ["f64[2,3]", "f64[4]"], lambda: gc.clip(A, 0.0, B)),
    (gc.ShapeError, "sum", ["f64[2,3]"], lambda: gc.sum(A, axis=2)),
    (gc.ShapeError, "sum", ["f64[2,3]"], lambda: A.sum(axis=(0, -2))),
    (gc.ShapeError, "mean", ["f64[2,3]"], lambda: A.mean(axis=-3)),
    (gc.ShapeError, "max", ["f64[2,3]"], lambda: A.max(axis=2)),
    (gc.ShapeError, "min", ["f64[2,3]"], lambda: gc.min(A, axis=(0, 5))),
    (gc.ShapeError, "prod", ["f64[2,3]"], lambda: gc.prod(A, axis=7)),
    (gc.ShapeError, "logsumexp", ["f64[2,3]"], lambda: gc.logsumexp(A, axis=2)),
    (gc.ShapeError, "softmax", ["f64[2,3]"], lambda: gc.softmax(A, axis=2)),
    (gc.ShapeError, "log_softmax", ["f64[2,3]"], lambda: gc.log_softmax(A, axis=-3)),
    (gc.ShapeError, "argmax", ["f64[2,3]"], lambda: gc.argmax(A, axis=2)),
    (gc.ShapeError, "argmin", ["f64[2,3]"], lambda: gc.argmin(A, axis=-3)),
    (gc.ShapeError, "matmul", ["f64[2,3]", "f64[4]"], lambda: A @ B),
    (gc.ShapeError, "matmul", ["f64[4]", "f64[2,3]"], lambda: gc.matmul(B, A)),
    (gc.ShapeError, "dot", ["f64[2,3]", "f64[4,4,2]"], lambda: gc.dot(A, gc.const(np.ones((4, 4, 2))))),
    (gc.ShapeError, "reshape", ["f64[2,3]"], lambda: A.reshape(4, 2)),
    (gc.ShapeError, "reshape", ["f64[2,3]"], lambda: gc.reshape(A, (-1, 4))),
    (gc.ShapeError, "reshape", ["f64[2,3]"], lambda: A.reshape(-1, -1)),
    (gc.ShapeError, "transpose", ["f64[2,3]"], lambda: gc.transpose(A, (0, 0))),
    (gc.ShapeError, "transpose", ["f64[2,3]"], lambda: A.transpose(1, 0, 2)),
    (gc.ShapeError, "broadcast_to", ["f64[2,3]"], lambda: gc.broadcast_to(A, (3, 3))),
    (gc.ShapeError, "expand_dims", ["f64[2,3]"], lambda: gc.expand_dims(A, 3)),
    (gc.ShapeError, "squeeze", ["f64[2,3]"], lambda: gc.squeeze(A, 1)),
    (gc.ShapeError, "concatenate", ["f64[2,3]", "f64[4]"], lambda: gc.concatenate([A, B])),
    (gc.ShapeError, "concatenate", ["f64[2,3]"], lambda: gc.concatenate([A, A], axis=2)),
    (gc.ShapeError, "stack", ["f64[2,3]", "f64[4]"], lambda: gc.stack([A, B])),
    (gc.ShapeError, "stack", ["f64[2,3]"], lambda: gc.stack([A, A], axis=3)),
    (gc.ShapeError, "concatenate", [], lambda: gc.concatenate([])),
    (gc.ShapeError, "stack", [], lambda: gc.stack([])),
    (gc.ShapeError, "concatenate", ["f64[]"], lambda: gc.concatenate([gc.var("s"), gc.var("t")])),
    (gc.ShapeError, "take", ["f64[2,3]"], lambda: gc.take(A, [0], axis=2)),
    (gc.ShapeError, "var", [], lambda: gc.var("q", (-1, 2))),
    (gc.DTypeError, "sub", ["bool[3]", "bool[3]"], lambda: M - M),
    (gc.DTypeError, "neg", ["bool[3]"], lambda: -M),
    (gc.DTypeError, "sign", ["bool[3]"], lambda: gc.sign(M)),
    (gc.DTypeError, "one_hot", ["f32[2,3]"], lambda: gc.one_hot(H, 3)),
    (gc.DTypeError, "take", ["f64[2,3]", "f32[2,3]"], lambda: gc.take(A, H, axis=0)),
    (gc.DTypeError, "astype", ["f64[2,3]"], lambda: A.astype("complex128")),
    (gc.DTypeError, "var", [], lambda: gc.var("q", (2,), "int32")),
    (gc.DTypeError, "var", [], lambda: gc.var("q", (2,), "float16")),
    (gc.DTypeError, "const", [], lambda: gc.const(np.array([1j]))),
    (gc.DTypeError, "const", [], lambda: gc.const(["a", "b"])),
]


@pytest.mark.parametrize(("error", "op", "types", "build"), BUILD_ERRORS, ids=[f"{e[1]}-{i}" for i, e in
                                                                            enumerate(BUILD_ERRORS)])  # fmt: skip
def test_build_errors_name_op_types_file_and_line(error, op, types, build) -> None:
    with pytest.raises(error) as info:
        build()
    message = str(info.value)
    assert isinstance(info.value, gc.GraphError)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"{op}(")
    for t in types:
        assert t in message
    assert f"{__file__}:{build.__code__.co_firstlineno}" in message


def test_error_points_at_the_line_that_built_the_node() -> None:
    a = gc.var("a", (2, 3))
    b = gc.var("b", (3, 2))
    with pytest.raises(gc.ShapeError) as info:
        line = lineno() + 1
        a * b
    assert str(info.value).endswith(f"at {__file__}:{line}")
    assert "mul(f64[2,3], f64[3,2])" in str(info.value)


def test_error_inside_a_user_helper_points_at_the_helper() -> None:
    """The innermost frame outside graphc is the user's line, not the caller of the helper."""

    def layer(x: gc.Tensor, w: gc.Tensor) -> gc.Tensor:
        return gc.tanh(x @ w)  # the line the error must name

    helper_line = layer.__code__.co_firstlineno + 1
    with pytest.raises(gc.ShapeError) as info:
        layer(gc.var("x", (5, 3)), gc.var("w", (4, 2)))
    assert f"{__file__}:{helper_line}" in str(info.value)
    assert "matmul(f64[5,3], f64[4,2])" in str(info.value)


def test_nodes_record_the_user_line() -> None:
    x = gc.var("x", (3,))
    line = lineno() + 1
    y = gc.exp(x) * 2.0
    assert y.node.loc == Location(__file__, line)
    assert y.node.inputs[0].loc == Location(__file__, line)


# --- indexing errors, truth values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [2, -3, (0, 3), (0, -4), (0, 0, 0), (None, 0, 0, 0), (Ellipsis, Ellipsis), 1.5, "0", [0, 2], np.array([-3]),
     True, (slice(None), [3]), ([0], [1]), [0.5], [True, False], np.array([True, False])],
    ids=stable_repr,
)  # fmt: skip
def test_bad_static_indices_raise_index_error(key: object) -> None:
    a = gc.var("a", (2, 3))
    with pytest.raises(IndexError) as info:
        line = lineno() + 1
        a[key]
    assert "getitem(f64[2,3]" in str(info.value)
    assert f"{__file__}:{line}" in str(info.value)


def test_tensor_indices_gather_and_masks_are_refused() -> None:
    a = gc.var("a", (2, 3))
    i = gc.var("i", (), "int64")
    assert a[i].node.op.name == "take" and a[i].shape == (3,)
    with pytest.raises(IndexError, match=r"gc\.where"):
        a[gc.var("m", (2,), "bool")]
    with pytest.raises(IndexError, match="integer dtype"):
        a[gc.var("f", (2,))]


def test_zero_step_slice_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="step"):
        gc.var("a", (3,))[::0]


@pytest.mark.parametrize(
    "use",
    [bool, lambda t: not t, lambda t: 1 if t else 0, lambda t: t and t, lambda t: t < t < t, lambda t: [t][0] or 1],
)
def test_tensors_have_no_truth_value(use) -> None:
    x = gc.var("x", (3,))
    with pytest.raises(TypeError, match="truth value"):
        use(x)


def test_truth_value_of_a_comparison_is_refused() -> None:
    x = gc.var("x")
    with pytest.raises(TypeError):
        if x > 0:
            pass


def test_len_and_iteration() -> None:
    assert len(gc.var("x", (4, 2))) == 4
    assert [t.shape for t in gc.var("x", (3, 2))] == [(2,), (2,), (2,)]
    with pytest.raises(TypeError):
        len(gc.var("s"))


# --- %, //, divmod, ~ and truth reductions (P5) ------------------------------------------------------------


def test_mod_floordiv_divmod_invert_and_truth_reductions_match_numpy() -> None:
    """Tensor % // divmod ~, gc.any/all/logical_* and np.any/np.all/np.logical_not/np.invert on Tensors, against NumPy
    with negative operands, zero divisors, NaN and inf, on evaluate and both backends (one compiled function)."""
    x, y = gc.var("x", (8,)), gc.var("y", (8,))
    i, j = gc.var("i", (8,), "int64"), gc.var("j", (8,), "int64")
    xv = np.array([-3.5, 3.5, -0.0, 7.0, np.inf, np.nan, -7.0, 1e300])
    yv = np.array([2.0, -2.0, 3.0, 0.0, 2.0, 1.0, -0.0, -3.0])
    iv = np.array([-7, 7, 0, 9, -9, 5, np.iinfo(np.int64).min, 3])
    jv = np.array([2, -2, 3, 0, 4, -5, -1, 0])
    with np.errstate(all="ignore"):
        pairs = [
            (x % 2.0, xv % 2.0), (2.0 % x, 2.0 % xv), (x // 2.0, xv // 2.0), (-2.0 // x, -2.0 // xv), (x % y, xv % yv),
            (x // y, xv // yv), (divmod(x, y)[0], divmod(xv, yv)[0]), (divmod(x, y)[1], divmod(xv, yv)[1]),
            (divmod(3.0, x)[1], divmod(3.0, xv)[1]), (i % j, iv % jv), (i // j, iv // jv),
            (-7 % i, -7 % iv), (7 // i, 7 // iv), (i % 3, iv % 3), (x % i, xv % iv),
            (~(x > 0), ~(xv > 0)), (~i, ~iv), (np.invert(i), np.invert(iv)),
            (np.logical_not(x > 0), np.logical_not(xv > 0)),
            (np.logical_not(x), np.logical_not(xv)), (gc.logical_and(x, i), np.logical_and(xv, iv)),
            (gc.logical_or(x > 0, False), np.logical_or(xv > 0, False)), (np.logical_xor(x, i), np.logical_xor(xv, iv)),
            (np.any(x > 0), np.any(xv > 0)), (np.all(x > 0), np.all(xv > 0)), ((i > 0).any(), (iv > 0).any()),
            (gc.all(x), np.all(xv)), (gc.any(x[:0]), np.any(xv[:0])), (gc.all(x[:0]), np.all(xv[:0])),
            (gc.any(gc.reshape(i, (2, 4)), axis=1, keepdims=True), np.any(iv.reshape(2, 4), axis=1, keepdims=True)),
            (gc.reshape(x, (2, 4)).all(axis=0), xv.reshape(2, 4).all(axis=0)),
        ]  # fmt: skip
    outputs, wants = [p[0] for p in pairs], [p[1] for p in pairs]
    args = [xv, yv, iv, jv]
    with np.errstate(all="ignore"):
        results = [gc.evaluate(outputs, dict(zip([x, y, i, j], args, strict=True)))]
    for backend in ("numpy", "llvm"):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            results.append(list(gc.compile([x, y, i, j], outputs, backend=backend)(*args)))
    for got in results:
        for k, (g, want) in enumerate(zip(got, wants, strict=True)):
            want = np.asarray(want)
            assert g.dtype == want.dtype and g.shape == want.shape, (k, g.dtype, want.dtype)
            np.testing.assert_array_equal(g, want, err_msg=str(k))
            if g.dtype.kind == "f":  # the signs of zeros (a NaN's sign bit means nothing)
                numbers = ~np.isnan(want)
                assert np.array_equal(np.signbit(g[numbers]), np.signbit(want[numbers])), k


def test_invert_of_a_float_tensor_is_a_located_dtype_error() -> None:
    x = gc.var("x", (3,))
    with pytest.raises(gc.DTypeError) as info:
        line = lineno() + 1
        ~x  # noqa: B018
    message = str(info.value)
    assert "invert(f64[3])" in message and "bool or int64" in message and f"{__file__}:{line}" in message
