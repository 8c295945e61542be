"""Parameter trees: nested dicts, lists and tuples of Tensors through grad/value_and_grad/vjp/jvp/jacobian/hessian
and gc.compile (inputs, outputs and the call), with the same structure back and errors naming the path."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.autodiff.trees import flatten, flatten_like
from graphc.testing import check_grad

RNG = np.random.default_rng(5)


def mlp() -> tuple[dict, gc.Tensor, gc.Tensor, gc.Tensor]:
    """A two-layer MLP loss of a nested parameter tree."""
    params = {
        "out": {"W": gc.var("W2", shape=(4, 2)), "b": gc.var("b2", shape=(2,))},
        "hidden": [gc.var("W1", shape=(3, 4)), gc.var("b1", shape=(4,))],
    }
    X = gc.var("X", shape=("batch", 3))
    y = gc.var("y", shape=("batch", 2))
    W1, b1 = params["hidden"]
    h = gc.tanh(X @ W1 + b1)
    pred = h @ params["out"]["W"] + params["out"]["b"]
    loss = gc.mean((pred - y) ** 2)
    return params, X, y, loss


def values() -> dict[str, np.ndarray]:
    return {
        "W2": RNG.normal(size=(4, 2)), "b2": RNG.normal(size=2), "W1": RNG.normal(size=(3, 4)),
        "b1": RNG.normal(size=4), "X": RNG.normal(size=(5, 3)), "y": RNG.normal(size=(5, 2)),
    }  # fmt: skip


def feed_of(tensors: list[gc.Tensor], v: dict[str, np.ndarray]) -> dict[gc.Tensor, np.ndarray]:
    return {t: v[t.name] for t in tensors}


def leaves(tree: object) -> list[gc.Tensor]:
    return flatten(tree, "test", "tree")[0]


def test_grad_of_a_nested_dict_has_its_structure():
    params, X, y, loss = mlp()
    grads = gc.grad(loss, params)
    assert set(grads) == {"out", "hidden"} and set(grads["out"]) == {"W", "b"}
    assert isinstance(grads["hidden"], list) and len(grads["hidden"]) == 2
    assert grads["out"]["W"].shape == (4, 2) and grads["hidden"][1].shape == (4,)
    flat = gc.grad(loss, leaves(params))  # the same gradients as a flat list, in sorted-key order
    v = values()
    feed = feed_of([*leaves(params), X, y], v)
    for a, b in zip(gc.evaluate(leaves(grads), feed), gc.evaluate(flat, feed), strict=True):
        np.testing.assert_array_equal(a, b)
    check_grad(loss, leaves(params), feed)


def test_flattening_order_is_sorted_keys_depth_first():
    a, b, c, d = (gc.var(n) for n in "abcd")
    tree = {"z": a, "a": [b, (c,)], "m": {"y": d}}
    flat, form = flatten(tree, "test", "tree")
    assert flat == [b, c, d, a]
    assert form.paths("wrt") == ["wrt['a'][0]", "wrt['a'][1][0]", "wrt['m']['y']", "wrt['z']"]
    rebuilt = form.unflatten(flat)
    assert rebuilt == {"a": [b, (c,)], "m": {"y": d}, "z": a} and isinstance(rebuilt["a"][1], tuple)
    assert flatten({"b": a, "a": b}, "t", "x")[0] == flatten({"a": b, "b": a}, "t", "x")[0]


def test_value_and_grad():
    params, X, _y, loss = mlp()
    value, grads = gc.value_and_grad(loss, params)
    assert value is loss
    assert set(grads) == {"out", "hidden"}
    value, (gx,) = gc.value_and_grad(loss, (X,))
    assert gx.shape == X.shape
    single = gc.value_and_grad(loss, X)[1]
    assert isinstance(single, gc.Tensor)
    with pytest.raises(TypeError, match=r"gc.value_and_grad"):
        gc.value_and_grad([loss], X)


def test_vjp_jvp_jacobian_hessian_take_trees():
    x = gc.var("x", shape=(2,))
    s = gc.var("s")
    outs = {"sq": x * x * s, "pair": (gc.sum(x), gc.sin(s))}
    wrt = {"x": x, "s": s}
    cts = {"sq": np.array([1.0, 2.0]), "pair": (3.0, 4.0)}
    g = gc.vjp(outs, wrt, cts)
    xv, sv = np.array([0.5, -1.5]), 0.25
    feed = {x: xv, s: sv}
    gx, gs = gc.evaluate([g["x"], g["s"]], feed)
    np.testing.assert_allclose(gx, 2 * xv * sv * [1.0, 2.0] + 3.0, rtol=1e-15)
    np.testing.assert_allclose(gs, np.sum(xv * xv * [1.0, 2.0]) + 4.0 * np.cos(sv), rtol=1e-15)
    t = gc.jvp(outs, wrt, {"x": np.array([1.0, 0.0]), "s": 0.0})
    assert set(t) == {"sq", "pair"} and isinstance(t["pair"], tuple)
    np.testing.assert_allclose(gc.evaluate(t["sq"], feed), [2 * xv[0] * sv, 0.0], rtol=1e-15)
    J = gc.jacobian(outs, wrt)
    assert J["sq"]["x"].shape == (2, 2) and J["pair"][0]["s"].shape == ()
    np.testing.assert_allclose(gc.evaluate(J["sq"]["x"], feed), np.diag(2 * xv * sv), rtol=1e-15)
    H = gc.hessian(gc.sum(x * x) * s, {"s": s, "x": x})
    assert H["x"]["s"].shape == (2,) and H["x"]["x"].shape == (2, 2)
    np.testing.assert_allclose(gc.evaluate(H["x"]["s"], feed), 2 * xv, rtol=1e-15)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x, y: gc.vjp({"a": x, "b": y}, x, {"a": 1.0}), r"cotangents has keys \['a'\]; output has \['a', 'b'\]"),
        (lambda x, y: gc.vjp({"a": x, "b": y}, x, [1.0, 2.0]), r"cotangents must be a dict with keys \['a', 'b'\]"),
        (lambda x, y: gc.vjp([x, [y, y]], x, [1.0, [2.0]]), r"cotangents\[1\] must hold 2 values"),
        (lambda x, y: gc.vjp([x, [y]], x, [1.0, 2.0]), r"cotangents\[1\] must be a list or tuple of 1"),
        (lambda x, y: gc.jvp(x, {"p": [x, y]}, {"p": [1.0, [2.0]]}), r"tangents\['p'\]\[1\] must be one value"),
        (lambda x, y: gc.grad(gc.sum(x), {"w": [x, 3.0]}), r"wrt\['w'\]\[1\] must be a Tensor"),
        (lambda x, y: gc.grad(gc.sum(x), {"w": x, 1: y}), r"keys of wrt cannot be sorted \(int, str\)"),
        (lambda x, y: gc.grad(gc.sum(x), {"w": {x}}), r"wrt\['w'\] must be a Tensor.*got set"),
    ],
    ids=["missing_key", "list_for_dict", "short_list", "value_for_list", "list_for_value", "number_leaf",
         "unsortable", "set"],
)  # fmt: skip
def test_wrong_structures_name_the_path(call, match):
    x = gc.var("x", shape=(2,))
    y = gc.var("y")
    with pytest.raises(TypeError, match=match):
        call(x, y)


def test_a_single_tensor_is_never_iterated_and_empty_trees_work():
    x = gc.var("x", shape=(3,))
    f = gc.sum(x * x)
    assert isinstance(gc.grad(f, x), gc.Tensor)
    assert gc.grad(f, {}) == {} and gc.grad(f, []) == [] and gc.grad(f, {"a": []}) == {"a": []}
    assert flatten_like(np.ones(3), flatten(x, "t", "x")[1], "t", "v", "x")[0].shape == (3,)
    (g,) = gc.grad(f, (x,))
    assert isinstance(g, gc.Tensor)


def test_wrt_paths_in_errors():
    x = gc.var("x", shape=(2,))
    with pytest.raises(gc.DifferentiationError, match=r"wrt\['a'\]\[0\] must be a var"):
        gc.grad(gc.sum(x), {"a": [x * 2.0]})


# --- compile -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compile_takes_and_returns_trees(backend: str):
    params, X, y, loss = mlp()
    grads = gc.grad(loss, params)
    fn = gc.compile([params, X, y], {"loss": loss, "grads": grads}, backend=backend)
    assert fn.signature == (
        "({'hidden': [W1: f64[3,4], b1: f64[4]], 'out': {'W': W2: f64[4,2], 'b': b2: f64[2]}}, X: f64[batch,3], "
        "y: f64[batch,2]) -> {'grads': {'hidden': [f64[3,4], f64[4]], 'out': {'W': f64[4,2], 'b': f64[2]}}, "
        "'loss': f64[]}"
    )
    v = values()
    pv = {"out": {"b": v["b2"], "W": v["W2"]}, "hidden": [v["W1"], v["b1"]]}  # key order does not matter
    result = fn(pv, v["X"], v["y"])
    assert set(result) == {"loss", "grads"} and isinstance(result["grads"]["hidden"], list)
    feed = feed_of([*leaves(params), X, y], v)
    expected = gc.evaluate([loss, *leaves(grads)], feed)
    got = [result["loss"], *leaves_of_arrays(result["grads"])]
    for a, b in zip(got, expected, strict=True):  # llvm reassociates: where terms cancel, relative to the largest entry
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * float(np.max(np.abs(b), initial=0)))
    result = fn(pv, v["X"][:2], v["y"][:2])  # a named batch inside a tree call
    assert result["loss"].shape == ()
    with pytest.raises(TypeError, match=r"args\[0\]\['out'\] has keys \['W'\]; the inputs has \['W', 'b'\]"):
        fn({"out": {"W": v["W2"]}, "hidden": [v["W1"], v["b1"]]}, v["X"], v["y"])
    with pytest.raises(TypeError, match=r"args\[0\]\['hidden'\] must hold 2 values"):
        fn({"out": pv["out"], "hidden": [v["W1"]]}, v["X"], v["y"])
    with pytest.raises(TypeError, match="expects 3 arguments"):
        fn(pv, v["X"])
    with pytest.raises(TypeError, match="positionally"):
        fn(pv, v["X"], y=v["y"])


def leaves_of_arrays(tree: object) -> list[np.ndarray]:
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in leaves_of_arrays(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in leaves_of_arrays(item)]
    return [tree]  # type: ignore[list-item]


def test_compile_with_a_dict_of_inputs_and_nested_outputs():
    a = gc.var("a", shape=(2,))
    b = gc.var("b")
    fn = gc.compile({"b": b, "a": a}, [a * b, (gc.sum(a), [b])], backend="numpy")
    out = fn({"a": [1.0, 2.0], "b": 3.0})
    assert isinstance(out, tuple) and isinstance(out[1], tuple) and isinstance(out[1][1], list)
    np.testing.assert_array_equal(out[0], [3.0, 6.0])
    assert out[1][0] == 3.0 and out[1][1][0] == 3.0
    with pytest.raises(TypeError, match=r"args must be a dict with keys \['a', 'b'\]"):
        fn([[1.0, 2.0], 3.0])
    with pytest.raises(TypeError, match="expects 1 argument"):
        fn([1.0, 2.0], 3.0)
    single = gc.compile(a, {"double": a * 2}, backend="numpy")
    assert single([1.0, 2.0])["double"].tolist() == [2.0, 4.0]
    assert single(a=[1.0, 2.0])["double"].tolist() == [2.0, 4.0]  # flat inputs still bind by name


def test_flat_calls_are_unchanged():
    x = gc.var("x", shape=(2,))
    s = gc.var("s")
    fn = gc.compile([x, s], [x * s, gc.sum(x)], backend="numpy")
    assert isinstance(fn([1.0, 2.0], 2.0), tuple)
    assert fn(s=2.0, x=[1.0, 2.0])[0].tolist() == [2.0, 4.0]
    one = gc.compile(x, x * 2, backend="numpy")
    assert one(x=[1.0, 2.0]).tolist() == [2.0, 4.0]


def test_compile_tree_errors():
    x = gc.var("x", shape=(2,))
    with pytest.raises(TypeError, match=r"gc.compile: inputs\['p'\]\[1\] must be a var made with gc.var"):
        gc.compile({"p": [x, x * 2]}, x, backend="numpy")
    with pytest.raises(ValueError, match="listed twice"):
        gc.compile({"p": x, "q": [x]}, x, backend="numpy")
    with pytest.raises(TypeError, match=r"outputs\['a'\] must be a Tensor"):
        gc.compile(x, {"a": 3}, backend="numpy")
