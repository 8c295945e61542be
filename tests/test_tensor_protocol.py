"""What NumPy users expect of a Tensor (issue 19.2 and "also seen", issue 11.10).

`==`/`!=` are elementwise (boolean Tensors) while dicts, sets and `in` keep working by
identity; bool()/int()/float() of a one-element constant give its value and of anything
else a TypeError; ravel; list, array and Tensor indexing gather through take (boolean
masks refused: data-dependent shape); np.* functions and ufuncs on Tensors dispatch to
graphc's, or raise a TypeError naming what to use; a bad axis is a located ShapeError.
Values are checked against NumPy on the same data, through gc.evaluate and both backends.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
from paramids import stable_repr

import graphc as gc

XV = np.array([[1.0, -2.0, 3.0], [0.5, np.nan, -0.0]])
YV = np.array([[1.0, 2.0, 3.0], [0.5, np.nan, 0.0]])


def both_backends(inputs: list[gc.Tensor], outputs: list[gc.Tensor], values: list[np.ndarray]) -> list[list]:
    """The outputs' values from gc.evaluate and from each backend."""
    feed = dict(zip(inputs, values, strict=True))
    results = [gc.evaluate(outputs, feed)]
    for backend in ("numpy", "llvm"):
        results.append(list(gc.compile(inputs, outputs, backend=backend)(*values)))
    return results


# --- == and != --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "want"),
    [
        (lambda x, y: x == y, XV == YV),
        (lambda x, y: x != y, XV != YV),
        (lambda x, y: x == 3.0, XV == 3.0),
        (lambda x, y: 3.0 == x, XV == 3.0),  # noqa: SIM300 (the reflected operator is the point)
        (lambda x, y: x != np.float64(-2.0), XV != -2.0),
        (lambda x, y: np.float64(-2.0) == x, XV == -2.0),
        (lambda x, y: YV == x, YV == XV),  # noqa: SIM300 (ndarray on the left: NumPy dispatches to the Tensor)
        (lambda x, y: x == [1.0, 2.0, 3.0], XV == [1.0, 2.0, 3.0]),
        (lambda x, y: x == 0, XV == 0),  # -0.0 == 0
        (lambda x, y: x == x, XV == XV),  # NaN != NaN: elementwise, not identity
        (lambda x, y: x != x, XV != XV),
    ],
    ids=["tt", "ne", "float", "rfloat", "np_scalar", "rnp_scalar", "rarray", "list", "zero", "self", "self_ne"],
)
def test_comparison_is_elementwise(build: Callable, want: np.ndarray):
    x, y = gc.var("x", (2, 3)), gc.var("y", (2, 3))
    out = build(x, y)
    assert isinstance(out, gc.Tensor) and out.dtype == np.bool_ and out.shape == want.shape
    for got in both_backends([x, y], [out], [XV, YV]):
        np.testing.assert_array_equal(got[0], want)


def test_counting_matches_is_no_longer_silently_wrong():
    """gc.sum(x == y) used to sum the Python bool False; now it counts equal elements."""
    x, y = gc.var("x", (2, 3)), gc.var("y", (2, 3))
    for got in both_backends([x, y], [gc.sum(x == y), gc.mean(gc.astype(x != y, "float64"))], [XV, YV]):
        assert got[0] == np.sum(XV == YV) == 4  # 1, 3, 0.5 and -0.0 == 0.0
        np.testing.assert_allclose(got[1], np.mean(XV != YV))


@pytest.mark.parametrize("other", [None, "x", object(), 1j, [object()]], ids=stable_repr)
def test_comparison_with_what_cannot_be_lifted_is_plain_python(other: object):
    x = gc.var("x", (3,))
    assert (x == other) is False
    assert (x != other) is True


def test_comparison_shape_mismatch_is_a_located_shape_error():
    x = gc.var("x", (3,))
    with pytest.raises(gc.ShapeError, match=r"equal\(f64\[3\], f64\[4\]\)") as info:
        _ = x == np.ones(4)
    assert "test_tensor_protocol.py" in str(info.value)


def test_dicts_sets_and_in_work_by_identity():
    x, y = gc.var("x", (3,)), gc.var("x", (3,))  # same name, different vars
    z = x * 2.0
    table = {x: 1, y: 2, z: 3}
    assert table[x] == 1 and table[y] == 2
    assert table[x * 2.0] == 3  # equal structure is the same Tensor
    assert table[gc.Tensor(z.node)] == 3
    assert x in table and (x + 1.0) not in table
    assert x in {x, y} and len({x, y, z, x * 2.0}) == 3
    assert gc.evaluate(y, {x: np.zeros(3), y: np.ones(3)}).tolist() == [1.0, 1.0, 1.0]
    assert x in [x, y]  # identity is checked first
    assert [x, y].index(x) == 0
    with pytest.raises(TypeError, match="truth value"):
        _ = y in [x, y]  # compares x == y first: a Tensor, whose truth value is unknown
    with pytest.raises(TypeError, match="truth value"):
        [x, y].index(y)
    assert copy.copy(x) is x and copy.deepcopy({x: 1}) == {x: 1}


def test_tensor_subclass_is_not_shared():
    class Sub(gc.Tensor):
        __slots__ = ()

    x = gc.var("x", (3,))
    s = Sub(x.node)
    assert type(s) is Sub and s is not x and gc.Tensor(x.node) is x


# --- truth values and conversions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "convert", "want"),
    [(3.5, float, 3.5), (3.5, int, 3), (np.array([7]), int, 7), (True, bool, True), (0.0, bool, False),
     (np.array([[2.0]]), float, 2.0), (-0.0, float, -0.0), (np.nan, float, np.nan), (np.inf, float, np.inf)],
)  # fmt: skip
def test_one_element_constants_convert(value: object, convert: Callable, want: object):
    got = convert(gc.const(value))
    assert type(got) is type(want)
    np.testing.assert_array_equal(got, want)
    if isinstance(want, float):
        assert np.signbit(got) == np.signbit(want)


@pytest.mark.parametrize("convert", [bool, int, float])
def test_symbolic_and_multi_element_tensors_do_not_convert(convert: Callable):
    x = gc.var("x")
    with pytest.raises(TypeError, match=r"gc\.evaluate or gc\.compile"):
        convert(x)
    with pytest.raises(TypeError, match=r"gc\.evaluate or gc\.compile"):
        convert(gc.const(1.0) * 2.0)  # computed, even from constants
    with pytest.raises(TypeError, match="3 elements"):
        convert(gc.const([1.0, 2.0, 3.0]))


def test_asarray():
    np.testing.assert_array_equal(np.asarray(gc.const([1.0, 2.0])), [1.0, 2.0])
    with pytest.raises(TypeError, match=r"gc\.evaluate"):
        np.asarray(gc.var("x", (2,)))


# --- ravel -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (1,), (0,), (2, 3), (2, 1, 3)])
def test_ravel(shape: tuple[int, ...]):
    x = gc.var("x", shape)
    value = np.arange(float(np.prod(shape, dtype=int))).reshape(shape)
    for form in (x.ravel(), np.ravel(x)):
        assert form.shape == (value.size,)
        for got in both_backends([x], [form], [value]):
            np.testing.assert_array_equal(got[0], value.ravel())
    assert gc.evaluate(x.T.ravel(), {x: value}).tolist() == value.T.ravel().tolist()


# --- indexing with lists, arrays and Tensors ------------------------------------------------------


A = np.arange(60.0).reshape(3, 4, 5)
KEYS = [
    [0, 2], [2, -1, 0, 0], [[0, 1], [2, 2]], np.array([1]), np.array(2), np.array([], dtype=np.int64), [],
    (slice(None), [3, 0]), (Ellipsis, [4, 4, 1]), (1, [0, 3]), (slice(None), 2, [1, 4]), (0, slice(None), [1, 4]),
    ([2, 0], slice(None), 3), (None, [1, 2]), (slice(1, None), None, [0]), (-1, Ellipsis, [0, -5]),
    (0, slice(None), [1]), (0, slice(None), np.array([[3]])), (Ellipsis, np.array(-1)), (1, slice(None), [[0, 2]]),
]  # fmt: skip


@pytest.mark.parametrize("key", KEYS, ids=stable_repr)
def test_integer_array_indexing_matches_numpy(key: object):
    x = gc.var("x", A.shape)
    out = x[key]
    want = A[key]
    assert out.shape == want.shape
    for got in both_backends([x], [out], [A]):
        np.testing.assert_array_equal(got[0], want)


def test_tensor_index_gathers_at_call_time():
    x = gc.var("x", A.shape)
    i = gc.var("i", (2,), dtype="int64")
    outs = [x[i], x[:, i], x[1, :, i], x[i, 0]]
    iv = np.array([2, -3])
    for got in both_backends([x, i], outs, [A, iv]):
        for g, want in zip(got, [A[iv], A[:, iv], A[1, :, iv], A[iv, 0]], strict=True):
            np.testing.assert_array_equal(g, want)
    fn = gc.compile([x, i], outs[0], backend="numpy")
    with pytest.raises(IndexError):
        fn(A, np.array([0, 3]))


def test_gradient_through_list_indexing():
    x = gc.var("x", (4,))
    g = gc.grad(gc.sum(x[[0, 0, 3]] * gc.const([1.0, 2.0, 3.0])), x)
    np.testing.assert_array_equal(gc.evaluate(g, {x: np.ones(4)}), [3.0, 0.0, 0.0, 3.0])


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ([True, False, True], "data"),
        (np.array([True, False, True]), "data"),
        ("mask", "data"),
        ([0, 3], "out of bounds"),
        ([-4], "out of bounds"),
        (np.array([0.0]), "integer"),
        ("float", "integer"),
        (([0], [1]), "one integer array"),
    ],
    ids=["bool_list", "bool_array", "bool_tensor", "high", "low", "float_array", "float_tensor", "two_arrays"],
)
def test_bad_array_indices(key: object, match: str):
    x = gc.var("x", (3, 2))
    if isinstance(key, str):
        key = gc.var("m", (3,), dtype="bool") if key == "mask" else gc.var("f", (2,))
    with pytest.raises(IndexError, match=match) as info:
        x[key]
    assert "getitem(f64[3,2]" in str(info.value) and "test_tensor_protocol.py" in str(info.value)


# --- NumPy functions and ufuncs -------------------------------------------------------------------------

PV = np.array([[0.5, 1.5, -2.0], [3.0, -0.25, 1.0]])
NUMPY_CALLS = {
    "sum": lambda m, t: m.sum(t), "sum_axis": lambda m, t: m.sum(t, axis=1, keepdims=True),
    "mean": lambda m, t: m.mean(t, axis=0), "max": lambda m, t: m.max(t), "amin": lambda m, t: m.amin(t, axis=1),
    "prod": lambda m, t: m.prod(t), "exp": lambda m, t: m.exp(t), "log1p": lambda m, t: m.log1p(m.abs(t)),
    "absolute": lambda m, t: m.absolute(t), "tanh": lambda m, t: m.tanh(t), "square": lambda m, t: m.square(t),
    "negative": lambda m, t: m.negative(t), "maximum": lambda m, t: m.maximum(t, 0.0),
    "add_scalar": lambda m, t: t + m.float64(1.0), "radd_scalar": lambda m, t: m.float64(1.0) + t,
    "rmul_array": lambda m, t: m.ones(3) * t, "true_divide": lambda m, t: m.true_divide(t, 2.0),
    "power": lambda m, t: m.power(t, 2), "matmul": lambda m, t: m.matmul(t, m.ones((3, 2))),
    "dot": lambda m, t: m.dot(t, m.ones(3)), "transpose": lambda m, t: m.transpose(t),
    "reshape": lambda m, t: m.reshape(t, (3, 2)), "where": lambda m, t: m.where(t > 0, t, 0.0),
    "clip": lambda m, t: m.clip(t, -1.0, 1.0), "concatenate": lambda m, t: m.concatenate([t, t], axis=1),
    "stack": lambda m, t: m.stack([t, t]), "expand_dims": lambda m, t: m.expand_dims(t, 0),
    "squeeze": lambda m, t: m.squeeze(m.expand_dims(t, 0)), "take": lambda m, t: m.take(t, [2, 0], axis=1),
    "ravel": lambda m, t: m.ravel(t), "add_reduce": lambda m, t: m.add.reduce(t),
    "greater": lambda m, t: m.greater(t, 1.0), "equal": lambda m, t: m.equal(t, 1.0),
    "argmax": lambda m, t: m.argmax(t, axis=1), "sign": lambda m, t: m.sign(t),
    "isfinite": lambda m, t: m.isfinite(t), "broadcast_to": lambda m, t: m.broadcast_to(t, (4, 2, 3)),
    "maximum_reduce": lambda m, t: m.maximum.reduce(t, axis=1), "floor": lambda m, t: m.floor(t),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NUMPY_CALLS))
def test_numpy_functions_build_the_graphc_equivalent(name: str):
    call = NUMPY_CALLS[name]
    x = gc.var("x", PV.shape)
    out = call(np, x)
    assert isinstance(out, gc.Tensor)
    want = call(np, PV)
    for got in both_backends([x], [out], [PV]):
        np.testing.assert_allclose(got[0], want, rtol=1e-15)
        assert got[0].shape == np.shape(want)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: np.sum(x, out=np.zeros(())), "out="),
        (lambda x: np.exp(x, out=np.zeros(3)), "out="),
        (lambda x: np.sum(x, dtype=np.float32), "dtype="),
        (lambda x: np.median(x), "graphc has no median"),
        (lambda x: np.nanstd(x), "graphc has no nanstd"),
        (lambda x: np.linalg.eigvalsh(x), r"np\.linalg\.eigvalsh"),
        (lambda x: np.logaddexp2(x, x), "graphc has no logaddexp2"),
        (lambda x: np.cbrt(x), "graphc has no cbrt"),
        (lambda x: np.nancumsum(x), "graphc has no nancumsum"),
        (lambda x: np.add.accumulate(x), "add.accumulate"),
        (lambda x: np.multiply.outer(x, x), "multiply.outer"),
    ],
    ids=[
        "sum_out",
        "exp_out",
        "sum_dtype",
        "median",
        "nanstd",
        "eigvalsh",
        "logaddexp2",
        "cbrt",
        "nancumsum",
        "accumulate",
        "outer",
    ],
)
def test_numpy_functions_graphc_lacks_say_what_to_use(call: Callable, match: str):
    with pytest.raises(TypeError, match=match) as info:
        call(gc.var("x", (3,)))
    assert "graphc" in str(info.value)


def test_numpy_functions_graphc_gained_dispatch_to_it():
    """np.var, np.std, np.logaddexp, np.arcsinh, np.cumsum (once missing, above) build graphc's functions."""
    x = gc.var("x", (3,))
    value = np.array([0.5, -1.0, 2.0])
    calls = [(np.var, gc.variance), (np.std, gc.std), (lambda t: np.logaddexp(t, t), lambda t: gc.logaddexp(t, t)),
             (np.arcsinh, gc.arcsinh), (np.cumsum, gc.cumsum)]  # fmt: skip
    for numpy_call, graphc_call in calls:
        out = numpy_call(x)
        assert isinstance(out, gc.Tensor)
        np.testing.assert_array_equal(gc.evaluate(out, {x: value}), gc.evaluate(graphc_call(x), {x: value}))
        np.testing.assert_allclose(gc.evaluate(out, {x: value}), numpy_call(value), rtol=1e-15)


def test_none_keywords_are_accepted():
    x = gc.var("x", (3,))
    assert np.sum(x, axis=None, out=None).shape == ()


# --- axis validation (issue 11.10) -----------------------------------------------------------------


AXIS_CALLS = {
    "sum": lambda x, a: gc.sum(x, axis=a), "mean": lambda x, a: gc.mean(x, axis=a),
    "max": lambda x, a: gc.max(x, axis=a), "min": lambda x, a: gc.min(x, axis=a),
    "prod": lambda x, a: gc.prod(x, axis=a), "logsumexp": lambda x, a: gc.logsumexp(x, axis=a),
    "argmax": lambda x, a: gc.argmax(x, axis=a), "softmax": lambda x, a: gc.softmax(x, axis=a),
    "log_softmax": lambda x, a: gc.log_softmax(x, axis=a), "squeeze": lambda x, a: gc.squeeze(x, axis=a),
    "expand_dims": lambda x, a: gc.expand_dims(x, axis=a), "concatenate": lambda x, a: gc.concatenate([x, x], axis=a),
    "stack": lambda x, a: gc.stack([x, x], axis=a), "take": lambda x, a: gc.take(x, [0], axis=a),
    "transpose": lambda x, a: gc.transpose(x, a),
}  # fmt: skip


@pytest.mark.parametrize("bad", [1.0, True, np.True_, "0", (0.5,), [0, 0], 7, object()], ids=stable_repr)
@pytest.mark.parametrize("name", sorted(AXIS_CALLS))
def test_bad_axis_is_a_located_shape_error(name: str, bad: object):
    x = gc.var("x", (2, 3))
    if name == "squeeze" and isinstance(bad, list):
        bad = (0, 0)
    with pytest.raises(gc.ShapeError) as info:
        AXIS_CALLS[name](x, bad)
    message = str(info.value)
    assert message.startswith(name) and "test_tensor_protocol.py" in message
