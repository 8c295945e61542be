"""gc.compile with the numpy backend: outputs, argument validation, scalars, layouts, aliasing, dtypes."""

from __future__ import annotations

import inspect
import itertools
import timeit

import numpy as np
import pytest

import graphc as gc
from graphc.compile import CompiledFunction

X = np.array([1.0, 2.0, 3.0])


def test_single_output_returns_an_array_and_a_list_a_tuple(model) -> None:
    x, s, f = model
    one = gc.compile([x, s], f, backend="numpy")  # bit for bit below: NumPy's own tanh
    value = one(X, 0.5)
    assert isinstance(value, np.ndarray)
    assert value.shape == ()
    assert value.dtype == np.float64
    assert value.tobytes() == gc.evaluate(f, {x: X, s: 0.5}).tobytes()
    listed = gc.compile([x, s], [f])(X, 0.5)
    assert isinstance(listed, tuple)
    assert len(listed) == 1
    pair = gc.compile([x, s], (f, x * s))(X, 0.5)
    assert isinstance(pair, tuple)
    assert [p.shape for p in pair] == [(), (3,)]
    assert gc.compile([x], [])(X) == ()


def test_attributes_and_repr(model) -> None:
    x, s, f = model
    fn = gc.compile([x, s], [f, x], backend="numpy", optimize=False)
    assert isinstance(fn, CompiledFunction)
    assert fn.inputs == (x, s)
    assert fn.outputs == (f, x)
    assert isinstance(fn.graph, gc.Graph)
    assert fn.graph.outputs == (f.node, x.node)
    assert "def graphc_fn(x, s):" in fn.source
    assert "np.tanh(v0)  # f64[3]" in fn.source
    assert len(fn.report) == 0
    assert "optimize=False" in str(fn.report)
    optimized = gc.compile([x, s], [f, x])
    assert optimized.report.passes() == ["fold", "stability", "simplify", "prune", "loops", "fuse"]
    assert [r.name for r in optimized.report if r.round == 1] == ["fold", "stability", "simplify", "prune", "loops"]
    assert "total" in str(optimized.report)
    assert repr(fn) == "<CompiledFunction (x: f64[3], s: f64[]) -> (f64[], f64[3]), numpy backend, 7 steps>"
    with pytest.raises(AttributeError, match="llvm"):
        _ = fn.llvm_ir


def test_backends(model) -> None:
    x, s, f = model
    fn = gc.compile([x, s], f, backend="llvm", cache=False)
    assert fn.backend == "llvm"
    np.testing.assert_allclose(fn(X, 0.5), gc.evaluate(f, {x: X, s: 0.5}), rtol=1e-15)
    with pytest.raises(ValueError, match="'cuda'"):
        gc.compile([x, s], f, backend="cuda")


def test_inputs_must_be_distinct_vars_and_cover_the_outputs(model) -> None:
    x, s, f = model
    with pytest.raises(gc.GraphError, match="'s'") as info:
        gc.compile([x], f)
    assert "conftest.py" in str(info.value)  # where s was built (the model fixture)
    with pytest.raises(TypeError, match="var"):
        gc.compile([x, s * 2], f)
    with pytest.raises(ValueError, match="twice"):
        gc.compile([x, s, x], f)
    with pytest.raises(TypeError, match="Tensor"):
        gc.compile([x, s], [f, "nope"])


def test_unused_inputs_are_allowed_and_still_checked(model) -> None:
    x, s, _ = model
    unused = gc.var("unused", (2,))
    fn = gc.compile([x, unused, s], x * s)
    assert fn(X, np.zeros(2), 2.0).tolist() == [2.0, 4.0, 6.0]
    with pytest.raises(ValueError, match="'unused'"):
        fn(X, np.zeros(3), 2.0)


# --- argument validation ---------------------------------------------------------------------


def test_wrong_number_of_arguments_names_the_inputs(model) -> None:
    x, s, f = model
    fn = gc.compile([x, s], f)
    for args in [(), (X,), (X, 0.5, 1.0)]:
        with pytest.raises(TypeError, match=r"2 arguments \(x: f64\[3\], s: f64\[\]\)"):
            fn(*args)
    with pytest.raises(TypeError, match="missing 's'"):
        fn(X)


def test_keyword_arguments_by_var_name(model) -> None:
    x, s, f = model
    fn = gc.compile([x, s], f)
    expected = fn(X, 0.5)
    assert fn(x=X, s=0.5) == expected
    assert fn(X, s=0.5) == expected
    with pytest.raises(TypeError, match="no input named 'y'"):
        fn(X, y=0.5)
    with pytest.raises(TypeError, match="two values for input 'x'"):
        fn(X, 0.5, x=X)


def test_keyword_names_of_sanitized_vars() -> None:
    a = gc.var("my var", (2,))
    b = gc.var("x", (2,))
    fn = gc.compile([a, b], a + 10 * b)
    ones = np.ones(2)
    assert fn(ones, ones).tolist() == [11.0, 11.0]
    assert fn(**{"my var": ones}, x=2 * ones).tolist() == [21.0, 21.0]
    assert fn(my_var=ones, x=2 * ones).tolist() == [21.0, 21.0]


def test_two_inputs_of_one_name_are_refused() -> None:
    """They compiled to a signature (x, x) whose keyword x meant only the first (issue 11.10)."""
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    b, c = gc.var("x", (2,)), gc.var("x", (3,))
    with pytest.raises(ValueError, match="inputs 0 and 1 are two different vars both named 'x'") as info:
        gc.compile([b, c], gc.sum(b) + gc.sum(c))
    message = str(info.value)
    assert message.count(f"test_compile.py:{line}") == 2 and "f64[2]" in message and "f64[3]" in message
    with pytest.raises(ValueError, match="listed twice"):
        gc.compile([b, b], b)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "evaluate"])
def test_take_out_of_range_names_the_users_line(backend: str) -> None:
    a = gc.var("a", (3,))
    i = gc.var("i", (), "int64")
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    out = gc.take(a, i) * 2.0
    with pytest.raises(IndexError, match="index 7 is out of bounds") as info:
        if backend == "evaluate":
            gc.evaluate(out, {a: np.ones(3), i: 7})
        else:
            gc.compile([a, i], out, backend=backend)(np.ones(3), 7)
    assert f"in take (built at {__file__}:{line})" in str(info.value)


def test_wrong_shape_names_the_input_and_both_shapes(model) -> None:
    x, s, f = model
    fn = gc.compile([x, s], f)
    with pytest.raises(ValueError, match=r"'x'.*\(3,\).*\(4,\)"):
        fn(np.zeros(4), 0.5)
    with pytest.raises(ValueError, match=r"'s'.*\(\).*\(1,\)"):
        fn(X, np.zeros(1))
    with pytest.raises(ValueError, match="'x'"):
        fn(1.0, 0.5)  # no broadcasting of arguments


def test_safe_casts_are_accepted_and_others_name_the_input() -> None:
    x = gc.var("x", (2,))
    w = gc.var("w", (2,), dtype="float32")
    n = gc.var("n", (), dtype="int64")
    b = gc.var("b", (), dtype="bool")
    fn = gc.compile([x, w, n, b], [x, w, n, b])
    ok = [
        (np.ones(2, np.float32), [1.0, 2.0], 1, True),  # float32 -> float64 is safe
        (np.ones(2, np.int64), np.ones(2, np.float16), np.int32(3), np.bool_(False)),
        ([1, 2], [1.5, 2], True, False),  # Python scalars and lists of them are weak (NEP 50)
        ((True, 2.5), (1, 2**40), 2**40, np.array(True)),
        (np.ones(2, ">f8"), np.ones(2, np.float32), 7, 1 > 0),  # byte-swapped
    ]
    for args in ok:
        results = fn(*args)
        assert [r.dtype for r in results] == [np.float64, np.float32, np.int64, np.bool_]
    bad = [
        ("w", (X[:2], np.ones(2), 1, True)),  # float64 -> float32 is not safe
        ("w", (X[:2], np.ones(2, np.int64), 1, True)),
        ("n", (X[:2], np.ones(2, np.float32), 1.5, True)),  # a Python float for an int64
        ("n", (X[:2], np.ones(2, np.float32), np.float64(1.0), True)),
        ("n", (X[:2], np.ones(2, np.float32), 2**70, True)),
        ("b", (X[:2], np.ones(2, np.float32), 1, 1)),  # a Python int for a bool
        ("x", ([1j, 2], np.ones(2, np.float32), 1, True)),
        ("x", (np.ones(2, complex), np.ones(2, np.float32), 1, True)),
        ("x", (["a", "b"], np.ones(2, np.float32), 1, True)),
        ("x", (None, np.ones(2, np.float32), 1, True)),
        ("x", ([[1.0], [2.0, 3.0]], np.ones(2, np.float32), 1, True)),  # ragged
    ]
    for name, args in bad:
        with pytest.raises(TypeError, match=f"'{name}'"):
            fn(*args)


@pytest.mark.parametrize("junk", [{}, object(), (i for i in range(2)), "ab", b"ab", np.float64, [None, None]])
def test_malformed_arguments_raise_cleanly(model, junk: object) -> None:
    x, s, f = model
    fn = gc.compile([x, s], f)
    with pytest.raises((TypeError, ValueError)):
        fn(junk, 0.5)
    with pytest.raises((TypeError, ValueError)):
        fn(X, junk)


# --- values ---------------------------------------------------------------------------------------


def test_scalars_in_and_out() -> None:
    s = gc.var("s")
    t = gc.var("t", dtype="float32")
    fn = gc.compile([s, t], [s * s, gc.exp(t), gc.sum(gc.stack([s, s])), s])
    results = fn(3, np.float32(0.5))
    for r in results:
        assert isinstance(r, np.ndarray)
        assert r.shape == ()
    assert [r.dtype for r in results] == [np.float64, np.float32, np.float64, np.float64]
    assert [r.item() for r in results] == [9.0, np.exp(np.float32(0.5)).item(), 6.0, 3.0]


def test_non_contiguous_and_read_only_inputs(model) -> None:
    x, s, _ = model
    m = gc.var("m", (3, 3))
    fn = gc.compile([x, s, m], [gc.tanh(x * s) @ m, m.T * x, gc.sum(m, axis=0)])
    strided = (np.arange(6.0) / 7)[::2]
    matrix = np.arange(9.0).reshape(3, 3) / 5
    frozen_x = strided.copy()
    frozen_x.setflags(write=False)
    frozen_m = matrix.copy()
    frozen_m.setflags(write=False)
    expected = fn(strided.copy(), 0.5, matrix.copy())
    for args in [
        (strided, 0.5, np.asfortranarray(matrix)),
        (strided, 0.5, matrix.T.copy().T),
        (frozen_x, 0.5, frozen_m),
    ]:
        got = fn(*args)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-14)  # BLAS may sum in another order for another layout


def test_results_never_alias_inputs_constants_or_each_other() -> None:
    x = gc.var("x", (2, 3))
    s = gc.var("s")
    c = gc.const(np.arange(3.0))
    y = gc.exp(x)
    outputs = [x, x, c, c, y, y, y.reshape(6), y.T, y[0], gc.broadcast_to(s, (2, 2)), s, x[1], c + 0.0]
    fn = gc.compile([x, s], outputs)
    arg = np.ones((2, 3))
    scalar = np.asarray(2.0)
    results = fn(arg, scalar)
    for a, b in itertools.combinations([*results, arg, scalar, gc.evaluate(c, {})], 2):
        assert not np.shares_memory(a, b)
    for r in results:
        assert r.flags.writeable
        r[...] = -1.0
    again = fn(arg, scalar)
    assert again[2].tolist() == [0.0, 1.0, 2.0]  # the constant was not overwritten
    assert again[0].tolist() == np.ones((2, 3)).tolist()


def test_views_of_intermediates_are_not_copied_needlessly() -> None:
    x = gc.var("x", (2, 3))
    fn = gc.compile([x], [gc.exp(x).T])
    assert "return (np.transpose(" not in fn.source
    assert ".copy()" not in fn.source


def test_float32_stays_float32() -> None:
    x = gc.var("x", (4,), dtype="float32")
    f = gc.sum(gc.sigmoid(x) * 0.5 + gc.softplus(x)) / 3
    fn = gc.compile([x], [f, gc.logsumexp(x), gc.relu(x)])
    arg = np.linspace(-2, 2, 4, dtype=np.float32)
    results = fn(arg)
    expected = gc.evaluate([f, gc.logsumexp(x), gc.relu(x)], {x: arg})
    for r, e in zip(results, expected, strict=True):
        assert r.dtype == np.float32
        assert r.tobytes() == e.tobytes()


def test_int64_and_bool_inputs() -> None:
    table = gc.var("table", (4, 2))
    labels = gc.var("labels", (3,), dtype="int64")
    mask = gc.var("mask", (3,), dtype="bool")
    rows = gc.take(table, labels, axis=0)
    picked = gc.where(mask, rows[:, 0], 0.0)
    count = gc.sum(mask)
    fn = gc.compile([table, labels, mask], [picked, count, labels * 2, gc.one_hot(labels, 4)])
    t = np.arange(8.0).reshape(4, 2)
    picked_value, count_value, doubled, hot = fn(t, [3, -1, 0], np.array([True, False, True]))
    assert picked_value.tolist() == [6.0, 0.0, 0.0]
    assert count_value.dtype == np.int64
    assert count_value.item() == 2
    assert doubled.tolist() == [6, -2, 0]
    assert hot.shape == (3, 4)
    with pytest.raises(IndexError):
        fn(t, [0, 4, 0], np.ones(3, bool))


def test_call_overhead_is_small() -> None:
    """f(x) = 2 * x on 10 elements: the wrapper and checks cost far less than 20 µs."""
    x = gc.var("x", (10,))
    fn = gc.compile([x], 2 * x)
    arg = np.arange(10.0)
    seconds = min(timeit.repeat(lambda: fn(arg), number=2000, repeat=5)) / 2000
    assert seconds < 20e-6


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_a_var_name_never_becomes_generated_code(backend: str) -> None:
    """Names are the user's text: a newline in one must not end a comment of the generated source."""
    name = "x\n    import graphc; graphc.INJECTED = True\n#\r\x0c\u2028"
    x = gc.var(name, (3,))
    fn = gc.compile([x], x * 2, backend=backend)
    np.testing.assert_array_equal(fn(np.ones(3)), [2.0, 2.0, 2.0])
    assert not hasattr(gc, "INJECTED")
    with pytest.raises(ValueError, match="expected shape"):
        fn(np.ones(4))


def test_evaluate_takes_what_compile_takes():
    """Trees of Tensors (gc.hessian's blocks, dicts of gradients) and SparseTensors, as gc.compile returns them."""
    x, y = gc.var("x", (3,)), gc.var("y", (2,))
    f = gc.sum(x * x) * gc.sum(y)
    feed = {x: np.array([1.0, 2.0, 3.0]), y: np.array([0.5, -1.5])}
    blocks = gc.hessian(f, [x, y])
    got = gc.evaluate(blocks, feed)
    want = gc.compile([x, y], [blocks[0][0], blocks[0][1], blocks[1][0], blocks[1][1]], backend="numpy")(
        feed[x], feed[y]
    )
    assert isinstance(got, list) and isinstance(got[0], list) and len(got) == 2
    for g, w in zip([got[0][0], got[0][1], got[1][0], got[1][1]], want, strict=True):
        np.testing.assert_array_equal(g, w)
    grads = gc.evaluate({"value": f, "grad": gc.grad(f, {"x": x, "y": y})}, feed)
    assert set(grads) == {"grad", "value"} and set(grads["grad"]) == {"x", "y"}
    np.testing.assert_array_equal(grads["grad"]["x"], 2 * feed[x] * feed[y].sum())
    pair = gc.evaluate((f, x * 2.0), feed)
    assert isinstance(pair, list) and len(pair) == 2  # a top-level tuple gives a list, as before
    sparse = gc.sparse_jacobian(gc.sin(x) * 2.0, x)
    csr = gc.evaluate(sparse, feed)
    np.testing.assert_array_equal(csr.toarray(), np.diag(2 * np.cos(feed[x])))
    mixed = gc.evaluate([sparse, f], feed)
    np.testing.assert_array_equal(mixed[0].toarray(), csr.toarray())
    with pytest.raises(TypeError, match=r"gc.evaluate: outputs\[1\] must be a Tensor"):
        gc.evaluate([f, "x"], feed)
