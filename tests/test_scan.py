"""gc.scan: values, BPTT gradients (against finite differences and a hand-written NumPy BPTT),
checkpointing, forward mode, grad-of-grad, closures, structures, both backends, the optimizer."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.backends.interpreter import run_program
from graphc.backends.numpy_source import build
from graphc.ir import Graph
from graphc.passes.loops import loops
from graphc.schedule import schedule
from graphc.testing import check_grad

B, H, NI, T = 2, 3, 2, 20
RNG = np.random.default_rng(0)


def rnn_values(seed: int = 0, steps: int = T) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W": rng.normal(size=(H, H)) * 0.6,
        "U": rng.normal(size=(NI, H)),
        "b": rng.normal(size=H) * 0.3,
        "h0": rng.normal(size=(B, H)) * 0.5,
        "xs": rng.normal(size=(steps, B, NI)),
    }


def rnn(steps: int = T, checkpoint: int = 1) -> tuple[dict[str, gc.Tensor], gc.Tensor, gc.Tensor]:
    """A vanilla tanh RNN: the vars, the final state and the stacked states."""
    v = {
        "W": gc.var("W", (H, H)), "U": gc.var("U", (NI, H)), "b": gc.var("b", (H,)),
        "h0": gc.var("h0", (B, H)), "xs": gc.var("xs", (steps, B, NI)),
    }  # fmt: skip

    def step(h: gc.Tensor, x: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
        h = gc.tanh(h @ v["W"] + x @ v["U"] + v["b"])
        return h, h

    h_t, hs = gc.scan(step, v["h0"], v["xs"], checkpoint=checkpoint)
    return v, h_t, hs


def feed(v: dict[str, gc.Tensor], values: dict[str, np.ndarray]) -> dict[gc.Tensor, np.ndarray]:
    return {v[k]: values[k] for k in v}


def hand_bptt(W, U, b, h0, xs, c_final, c_states):  # type: ignore[no-untyped-def]
    """Loss sum(c_final * h_T) + sum(c_states * hs) and its gradients, by hand."""
    hs = [h0]
    for x in xs:
        hs.append(np.tanh(hs[-1] @ W + x @ U + b))
    loss = np.sum(c_final * hs[-1]) + np.sum(c_states * np.stack(hs[1:]))
    gW, gU, gb = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dh = c_final.copy()
    for t in range(len(xs) - 1, -1, -1):
        dh = dh + c_states[t]
        da = dh * (1 - hs[t + 1] ** 2)
        gW += hs[t].T @ da
        gU += xs[t].T @ da
        gb += da.sum(axis=0)
        dh = da @ W.T
    return loss, gW, gU, gb, dh


# --- values -------------------------------------------------------------------------------------


def test_forward_matches_a_python_loop_in_both_backends() -> None:
    v, h_t, hs = rnn()
    values = rnn_values()
    h = values["h0"]
    states = []
    for x in values["xs"]:
        h = np.tanh(h @ values["W"] + x @ values["U"] + values["b"])
        states.append(h)
    got_t, got_s = gc.evaluate([h_t, hs], feed(v, values))
    np.testing.assert_allclose(got_t, h, rtol=1e-13)
    np.testing.assert_allclose(got_s, np.stack(states), rtol=1e-13)
    fn = gc.compile(list(v.values()), [h_t, hs], backend="numpy")
    out = fn(*(values[k] for k in v))
    np.testing.assert_array_equal(out[0], got_t)
    np.testing.assert_array_equal(out[1], got_s)


def test_text_form_shows_the_body() -> None:
    _, h_t, _ = rnn(steps=3)
    text = gc.show(h_t)
    assert "scan(%h0, %xs, %W, %U, %b, body=<graph" in text
    assert "graph(%carry0: f64[2,3], %x0: f64[2,2], %k0: f64[3,3], %k1: f64[2,3], %k2: f64[3])" in text
    assert "tanh(%3) : f64[2,3]" in text


# --- gradients ----------------------------------------------------------------------------------


def test_rnn_gradients_match_finite_differences() -> None:
    v, h_t, hs = rnn()
    loss = gc.mean(h_t**2) + gc.sum(hs[::3] * 0.1)
    check_grad(loss, [v["W"], v["U"], v["b"], v["h0"]], feed(v, rnn_values()), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", ["evaluate", "numpy"])
def test_rnn_gradients_match_a_hand_written_bptt(backend: str) -> None:
    v, h_t, hs = rnn()
    values = rnn_values(1)
    c_final = RNG.normal(size=(B, H))
    c_states = RNG.normal(size=(T, B, H))
    loss = gc.sum(h_t * c_final) + gc.sum(hs * c_states)
    wrt = [v["W"], v["U"], v["b"], v["h0"]]
    outputs = [loss, *gc.grad(loss, wrt)]
    if backend == "evaluate":
        got = gc.evaluate(outputs, feed(v, values))
    else:
        got = gc.compile(list(v.values()), outputs, backend="numpy")(*(values[k] for k in v))
    expected = hand_bptt(values["W"], values["U"], values["b"], values["h0"], values["xs"], c_final, c_states)
    for a, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("k", [2, 3, 7, 20, 25])
def test_checkpointing_gives_identical_gradients(k: int) -> None:
    values = rnn_values(2)
    results = []
    for checkpoint in (1, k):
        v, h_t, hs = rnn(checkpoint=checkpoint)
        loss = gc.mean(h_t**2) + gc.sum(gc.sin(hs))
        grads = gc.grad(loss, [v["W"], v["U"], v["b"], v["h0"], v["xs"]])
        fn = gc.compile(list(v.values()), grads, backend="numpy")
        results.append((gc.evaluate(grads, feed(v, values)), fn(*(values[k] for k in v))))
    (plain, plain_c), (ckpt, ckpt_c) = results
    for a, b, c, d in zip(plain, ckpt, plain_c, ckpt_c, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)
        np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-15)


def test_checkpointing_saves_every_kth_carry() -> None:
    v, h_t, _ = rnn(steps=10, checkpoint=4)
    loss = gc.sum(h_t**2)
    fn = gc.compile(list(v.values()), gc.grad(loss, v["W"]), backend="numpy")
    assert "np.empty((3, 2, 3), np.float64)" in fn.source  # carries 0, 4, 8
    assert "if t % 4 == 0:" in fn.source


def test_grad_of_grad_through_scan() -> None:
    v, h_t, hs = rnn(steps=6)
    values = feed(v, rnn_values(3, steps=6))
    loss = gc.sum(h_t**3) + gc.sum(hs**2)
    g_b = gc.grad(loss, v["b"])
    check_grad(gc.sum(g_b**2), [v["W"], v["b"], v["h0"]], values, rtol=1e-6, atol=1e-8)
    hessian = gc.evaluate(gc.hessian(loss, v["b"]), values)
    reverse = gc.evaluate(gc.jacobian(g_b, v["b"], mode="rev"), values)
    np.testing.assert_allclose(hessian, reverse, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-10, atol=1e-12)


def test_grad_of_grad_through_a_checkpointed_scan() -> None:
    v, h_t, _ = rnn(steps=7, checkpoint=3)
    values = feed(v, rnn_values(4, steps=7))
    g_w = gc.grad(gc.sum(h_t**2), v["W"])
    check_grad(gc.sum(g_w * g_w), [v["U"], v["h0"]], values, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("of", "wrt"), [("h_t", "b"), ("hs", "W"), ("hs", "xs"), ("h_t", "h0")])
def test_forward_and_reverse_jacobians_agree(of: str, wrt: str) -> None:
    v, h_t, hs = rnn(steps=5)
    out = {"h_t": h_t, "hs": hs}[of]
    values = feed(v, rnn_values(5, steps=5))
    forward, reverse = gc.evaluate([gc.jacobian(out, v[wrt], mode="fwd"), gc.jacobian(out, v[wrt], mode="rev")], values)
    np.testing.assert_allclose(forward, reverse, rtol=1e-12, atol=1e-14)


def test_jvp_matches_finite_differences() -> None:
    v, h_t, _ = rnn(steps=5)
    values = rnn_values(6, steps=5)
    direction = RNG.normal(size=(H, H))
    (tangent,) = gc.jvp([h_t], [v["W"]], [direction])
    got = gc.evaluate(tangent, feed(v, values))
    eps = 1e-6
    up = gc.evaluate(h_t, feed(v, {**values, "W": values["W"] + eps * direction}))
    down = gc.evaluate(h_t, feed(v, {**values, "W": values["W"] - eps * direction}))
    np.testing.assert_allclose(got, (up - down) / (2 * eps), rtol=1e-6, atol=1e-9)


# --- closures, structures, lengths --------------------------------------------------------------


def test_closure_over_computed_outer_tensors() -> None:
    w = gc.var("w", (3, 3))
    s = gc.var("s")
    x0 = gc.var("x0", (3,))
    scaled = w * s  # computed outside the step: an explicit input of the loop

    def step(x: gc.Tensor, _: None) -> tuple[gc.Tensor, gc.Tensor]:
        y = gc.sin(x @ scaled.T + gc.sum(w))  # w.T and sum(w) do not change: hoisted
        return y, gc.sum(y)

    x_t, ys = gc.scan(step, x0, None, length=5)
    body = x_t.node.attr("body")
    assert [n.op.name for n in body.nodes if n.op.name not in ("var", "const")] == [
        "reshape",
        "matmul",
        "reshape",
        "add",
        "sin",
        "sum",
    ]
    values = {w: RNG.normal(size=(3, 3)) * 0.5, s: 0.7, x0: RNG.normal(size=3)}
    check_grad(gc.sum(x_t) + gc.sum(ys), [w, s, x0], values)


def test_tuple_carries_list_outputs_and_no_xs() -> None:
    a0 = gc.var("a0", (2,))
    k = gc.var("k")

    def step(carry, _):  # type: ignore[no-untyped-def]
        a, (b, n) = carry
        a2 = gc.sin(a) * k + b
        return (a2, (b * 0.9 + a2 * 0.1, n + 1)), [a2 * 2, None]

    (a_t, (b_t, n_t)), (ys, nothing) = gc.scan(step, (a0, (a0 * 2, 0)), None, length=4)
    assert nothing is None and ys.shape == (4, 2) and n_t.dtype == np.dtype("int64")
    values = {a0: np.array([0.3, -0.4]), k: 1.3}
    assert gc.evaluate(n_t, values) == 4
    a, b = values[a0], values[a0] * 2
    for _ in range(4):
        a = np.sin(a) * values[k] + b
        b = b * 0.9 + a * 0.1
    got_a, got_b = gc.evaluate([a_t, b_t], values)
    np.testing.assert_allclose(got_a, a, rtol=1e-14)
    np.testing.assert_allclose(got_b, b, rtol=1e-14)
    check_grad(gc.sum(a_t * b_t) + gc.sum(ys), [a0, k], values)
    fn = gc.compile([a0, k], [a_t, b_t, n_t, ys], backend="numpy")
    for got, want in zip(fn(values[a0], values[k]), gc.evaluate([a_t, b_t, n_t, ys], values), strict=True):
        np.testing.assert_array_equal(got, want)


def test_several_xs_reverse_and_int_xs() -> None:
    table = gc.var("table", (5, 3))
    ids = gc.var("ids", (6,), dtype="int64")
    scale = gc.var("scale", (6,))

    def step(acc, x):  # type: ignore[no-untyped-def]
        i, s = x
        return acc * 0.5 + gc.take(table, i, axis=0) * s, acc

    forward, _ = gc.scan(step, gc.const(np.zeros(3)), (ids, scale))
    backward, stacked = gc.scan(step, gc.const(np.zeros(3)), [ids, scale], reverse=True)
    values = {table: RNG.normal(size=(5, 3)), ids: np.array([0, 4, 2, 2, 1, 3]), scale: RNG.normal(size=6)}
    acc_f, acc_b = np.zeros(3), np.zeros(3)
    accs = np.zeros((6, 3))
    for t in range(6):
        acc_f = acc_f * 0.5 + values[table][values[ids][t]] * values[scale][t]
        accs[5 - t] = acc_b
        acc_b = acc_b * 0.5 + values[table][values[ids][5 - t]] * values[scale][5 - t]
    got = gc.evaluate([forward, backward, stacked], values)
    np.testing.assert_allclose(got[0], acc_f, rtol=1e-14)
    np.testing.assert_allclose(got[1], acc_b, rtol=1e-14)
    np.testing.assert_allclose(got[2], accs, rtol=1e-14)
    check_grad(gc.sum(backward**2) + gc.sum(stacked), [table, scale], values)


def test_nested_scans_differentiate() -> None:
    w = gc.var("w", (2, 2))
    x0 = gc.var("x0", (2,))

    def outer(x, _):  # type: ignore[no-untyped-def]
        inner, _ = gc.scan(lambda y, __: (gc.tanh(y @ w + x), None), x, None, length=3)
        return inner * 0.5, gc.sum(inner)

    x_t, ys = gc.scan(outer, x0, None, length=3)
    values = {w: RNG.normal(size=(2, 2)), x0: RNG.normal(size=2)}
    check_grad(gc.sum(x_t**2) + gc.sum(ys), [w, x0], values)
    fn = gc.compile([w, x0], [x_t, *gc.grad(gc.sum(x_t**2), [w, x0])], backend="numpy")
    for got, want in zip(
        fn(values[w], values[x0]), gc.evaluate([x_t, *gc.grad(gc.sum(x_t**2), [w, x0])], values), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_zero_length_and_identity_steps_never_alias_inputs() -> None:
    x0 = gc.var("x0", (3,))
    empty, ys = gc.scan(lambda c, _: (c * 2, c), x0, None, length=0)
    same, _ = gc.scan(lambda c, _: (c, None), x0, None, length=3)
    fn = gc.compile([x0], [empty, ys, same], backend="numpy")
    arg = np.arange(3.0)
    got_empty, got_ys, got_same = fn(arg)
    assert got_ys.shape == (0, 3)
    np.testing.assert_array_equal(got_empty, arg)
    np.testing.assert_array_equal(got_same, arg)
    assert not np.shares_memory(got_empty, arg) and not np.shares_memory(got_same, arg)


def test_siblings_share_one_loop() -> None:
    v, h_t, hs = rnn(steps=4)
    assert h_t.node.inputs == hs.node.inputs and h_t.node.attr("body") is hs.node.attr("body")
    fn = gc.compile(list(v.values()), [h_t, hs], backend="numpy", optimize=False)
    assert fn.source.count("for t in range(4)") == 1


def test_numpy_backend_equals_the_interpreter_bit_for_bit() -> None:
    v, h_t, hs = rnn(steps=5)
    loss = gc.sum(h_t**2) + gc.sum(gc.exp(hs))
    outputs = [h_t, hs, *gc.grad(loss, list(v.values()))]
    program = schedule(Graph([o.node for o in outputs], [t.node for t in v.values()]))
    args = [rnn_values(7, steps=5)[k] for k in v]
    for got, want in zip(build(program).function(*args), run_program(program, args), strict=True):
        np.testing.assert_array_equal(got, want)


# --- errors -------------------------------------------------------------------------------------


def test_bad_steps_and_arguments_raise_clear_errors() -> None:
    x0 = gc.var("x0", (3,))
    xs = gc.var("xs", (4, 2))
    with pytest.raises(gc.ShapeError, match=r"carry 0 is returned as f64\[\] but starts as f64\[3\]"):
        gc.scan(lambda c, x: (gc.sum(c), None), x0, xs)
    with pytest.raises(gc.DTypeError, match=r"cast it with \.astype"):
        gc.scan(lambda c, x: (c.astype("float32"), None), x0, xs)
    with pytest.raises(gc.GraphError, match="structure"):
        gc.scan(lambda c, x: ((c, c), None), x0, xs)
    with pytest.raises(TypeError, match="pair"):
        gc.scan(lambda c, x: c, x0, xs)
    with pytest.raises(ValueError, match="xs or length"):
        gc.scan(lambda c, x: (c, None), x0, None)
    with pytest.raises(gc.ShapeError, match="length=3"):
        gc.scan(lambda c, x: (c, None), x0, xs, length=3)
    with pytest.raises(gc.ShapeError, match="leading lengths"):
        gc.scan(lambda c, x: (c, None), x0, (xs, gc.var("ys", (5,))))
    with pytest.raises(ValueError, match="checkpoint"):
        gc.scan(lambda c, x: (c, None), x0, xs, checkpoint=0)
    with pytest.raises(ValueError, match="reverse=False"):
        gc.scan(lambda c, x: (c, None), x0, xs, checkpoint=2, reverse=True)


def test_llvm_backend_runs_the_loop() -> None:
    v, h_t, _ = rnn(steps=3)
    fn = gc.compile(list(v.values()), h_t, backend="llvm")
    values = rnn_values(8, steps=3)
    np.testing.assert_allclose(fn(*(values[k] for k in v)), gc.evaluate(h_t, feed(v, values)), rtol=1e-12)


# --- the optimizer ------------------------------------------------------------------------------


def test_loops_pass_prunes_unused_work_and_is_idempotent() -> None:
    v, h_t, _ = rnn(steps=6)
    grads = gc.grad(gc.mean(h_t**2), [v["W"], v["U"], v["b"]])  # not xs: its cotangent is dead code
    graph = Graph([g.node for g in grads], [t.node for t in v.values()])
    once = loops(graph)
    assert loops(once) is once
    reverse = next(n for n in once.nodes if n.op.name == "scan" and n.attr("reverse"))
    body = reverse.attr("body")
    assert len(body.outputs) == reverse.attr("n_carry")  # no per-step cotangent of xs is stacked
    assert sum(n.op.name == "matmul" for n in body.nodes) == 3  # dh, dW, dU: no recomputed forward, no dx
    values = rnn_values(9, steps=6)
    before = gc.evaluate(grads, feed(v, values))
    after = gc.evaluate([gc.Tensor(o) for o in once.outputs], feed(v, values))
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_optimizer_folds_inside_bodies() -> None:
    x0 = gc.var("x0", (3,))
    x_t, _ = gc.scan(lambda c, _: (c * (gc.const(2.0) * 0.5) + gc.log(1 + c * c), None), x0, None, length=2)
    body = gc.optimize(x_t, fuse=False).node.attr("body")
    ops = [n.op.name for n in body.nodes if n.op.name not in ("var", "const")]
    assert "log1p" in ops and "log" not in ops and ops.count("mul") == 1  # c * 1.0 is gone, log(1+u) is log1p(u)
    fused_body = gc.optimize(x_t).node.attr("body")  # then the final fuse pass makes the body's chain one region
    assert [n.op.name for n in fused_body.nodes if n.op.name not in ("var", "const")] == ["fused"]


def test_stacks_only_loops_read_are_lists_that_never_alias_arguments() -> None:
    xs = gc.var("xs", (4, 2))
    c0 = gc.var("c0", (2,))
    _, ys = gc.scan(lambda c, x: (c + x, x), c0, xs)  # y_t is a view of the argument xs
    total, _ = gc.scan(lambda c, y: (c * 0.5 + y, None), c0, ys)
    fn = gc.compile([xs, c0], total, backend="numpy")
    assert "ys0 = [None] * 4" in fn.source and "ys0[t] = np.array(y0)" in fn.source
    values = {xs: RNG.normal(size=(4, 2)), c0: RNG.normal(size=2)}
    np.testing.assert_array_equal(fn(values[xs], values[c0]), gc.evaluate(total, values))


def test_a_scan_of_no_steps_computes_nothing_of_its_body() -> None:
    """length 0: the carry is init and the ys are empty; hoisted work (a singular inverse) never runs."""
    A, s = gc.var("A", (2, 2)), gc.var("s")
    carry, ys = gc.scan(lambda c, _: (c + gc.sum(gc.linalg.inv(A)), gc.stack([c, c * 2])), s, length=0)
    outputs = [carry, ys, *gc.grad(carry + gc.sum(ys), [s, A])]
    singular = np.zeros((2, 2))
    for got in [gc.evaluate(outputs, {A: singular, s: 1.5})] + [
        gc.compile([A, s], outputs, backend=backend)(singular, 1.5) for backend in ("numpy", "llvm")
    ]:
        assert got[0] == 1.5 and got[1].shape == (0, 2) and got[1].dtype == np.float64
        assert got[2] == 1.0 and np.array_equal(got[3], np.zeros((2, 2)))
