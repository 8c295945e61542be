"""The graph-level compile cache: a structural hash of the unoptimized graph and the options keys the compiled plan.

A false hit would run another graph's code, so most of this file is adversarial: pairs of
graphs built by the same lines that differ in one thing (a constant's sign or NaN payload,
a dtype, a shape, an attribute, input or output order, a name, an option, a loop body, a
custom rule) must have different keys, and the same builder run twice must have one key.
End to end, both members of each pair are compiled into one cache directory and each must
give its own results (checked bit for bit against gc.evaluate); a second process must hit
and agree with a cold compile in results and in every introspection (program, source,
llvm_ir, report, graph). Damaged, stale or foreign entries are rebuilt, never run.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import graphc as gc
from graphc.backends.llvm import entries
from graphc.compile import _plan_key
from graphc.ir import Graph

REPO = Path(__file__).resolve().parents[1]
Built = tuple[list, list]


def nan_with_payload(payload: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000 | payload))[0]


def key(built: Built, **options: object) -> str | None:
    """The entry name gc.compile would use for this graph and these options."""
    inputs, outputs = built
    graph = Graph([o.node for o in outputs], [i.node for i in inputs])
    settings = {"backend": "llvm", "cache": True, "cache_dir": None, "optimize": True, "fast_math": False,
                "check_finite": False, "threads": 1, "single": False}  # fmt: skip
    settings.update(options)
    return _plan_key(graph, **settings)  # type: ignore[arg-type]


# --- builders: each makes one graph from one parameter, always on the same lines ----------------


def scaled(c: object) -> Built:
    x = gc.var("x", (3,))
    return [x], [x * gc.const(c) + 1.0]


def typed(dtype: str) -> Built:
    x = gc.var("x", (3,), dtype=dtype)
    return [x], [gc.sum(x * x)]


def shaped(n: int) -> Built:
    x = gc.var("x", (n,))
    return [x], [gc.sum(gc.sin(x))]


def reduced(axis: int, keepdims: bool = False) -> Built:
    x = gc.var("x", (2, 3))
    return [x], [gc.sum(x, axis=axis, keepdims=keepdims) * 2.0]


def ordered(swap_inputs: bool, swap_outputs: bool = False) -> Built:
    x = gc.var("x", (3,))
    y = gc.var("y", (3,))
    outs = [x - y, x * 2.0]
    return ([y, x] if swap_inputs else [x, y]), (outs[::-1] if swap_outputs else outs)


def named(name: str) -> Built:
    x = gc.var(name, (3,))
    return [x], [gc.exp(x)]


def unused(extra: bool) -> Built:
    x = gc.var("x", (3,))
    z = gc.var("z", (3,))
    return ([x, z] if extra else [x]), [x + 1.0]


def scanned(c: float) -> Built:
    h0 = gc.var("h0", (2,))
    xs = gc.var("xs", (4, 2))
    h, hs = gc.scan(lambda h, x: (gc.tanh(h * c + x), h * 2.0), h0, xs)
    return [h0, xs], [h, hs]


def branched(c: float) -> Built:
    x = gc.var("x", (3,))
    return [x], [gc.cond(gc.sum(x) > 0.0, lambda a: gc.sin(a) * c, lambda a: a * 2.0, x)]


def looped(c: float) -> Built:
    x = gc.var("x", (3,))
    return [x], [gc.while_loop(lambda v: gc.sum(v) < 10.0, lambda v: v * c + 1.0, x, max_iter=50)]


def custom(scale: float) -> Built:
    @gc.custom_vjp
    def f(x: gc.Tensor) -> gc.Tensor:
        return gc.sin(x)

    @f.defvjp
    def _(ct: gc.Tensor, out: gc.Tensor, x: gc.Tensor) -> list[gc.Tensor]:
        return [ct * gc.cos(x) * scale]

    x = gc.var("x", (3,))
    return [x], [gc.grad(gc.sum(f(x)), x)]


NAN1, NAN2 = nan_with_payload(1), nan_with_payload(2)
PAIRS: dict[str, tuple[Callable[..., Built], tuple, tuple]] = {
    "-0.0 vs 0.0": (scaled, (0.0,), (-0.0,)),
    "NaN payloads": (scaled, (np.array([NAN1]),), (np.array([NAN2]),)),
    "one-element constants": (scaled, (np.array([1.0]),), (np.array([1.5]),)),
    "one entry of a constant": (scaled, (np.array([1.0, 2.0, 3.0]),), (np.array([1.0, 2.0, 3.0000000000000004]),)),
    "constant dtype": (scaled, (np.array([2.0, 2.0, 2.0]),), (np.array([2.0, 2.0, 2.0], np.float32),)),
    "dtype": (typed, ("float64",), ("float32",)),
    "shape": (shaped, (3,), (4,)),
    "axis": (reduced, (0,), (1,)),
    "keepdims": (reduced, (1, False), (1, True)),
    "input order": (ordered, (False,), (True,)),
    "output order": (ordered, (False, False), (False, True)),
    "input name": (named, ("x",), ("w",)),
    "an unused input": (unused, (False,), (True,)),
    "scan body": (scanned, (0.5,), (0.25,)),
    "cond branch": (branched, (3.0,), (-3.0,)),
    "while body": (looped, (1.5,), (2.0,)),
    "custom_vjp rule": (custom, (1.0,), (2.0,)),
}


@pytest.mark.parametrize("case", list(PAIRS))
def test_graphs_that_differ_in_one_thing_have_different_keys(case: str) -> None:
    builder, a, b = PAIRS[case]
    key_a, key_b = key(builder(*a)), key(builder(*b))
    assert key_a is not None and key_b is not None
    assert key_a == key(builder(*a)) and key_b == key(builder(*b))  # the same builder again: the same key
    assert key_a != key_b


@pytest.mark.parametrize(
    "option",
    [{"optimize": False}, {"fast_math": True}, {"check_finite": True}, {"threads": 2}, {"single": True}],
    ids=lambda o: next(iter(o)),
)
def test_every_option_that_changes_the_function_changes_the_key(option: dict) -> None:
    built = shaped(3)
    assert key(built, **option) != key(built)


def test_where_a_node_was_built_is_part_of_the_key() -> None:
    """Error messages and check_finite's reports name the user's line: another line is another entry."""
    x = gc.var("x", (3,))
    a = gc.log(x)
    b = gc.log(x)  # interned: the same node as `a`, so the same key, whatever line asked for it
    c = (lambda: gc.log(x))()
    assert key(([x], [a])) == key(([x], [b])) == key(([x], [c]))
    y = gc.var("x", (3,))
    d = gc.log(y)  # a new var: a new node, built on another line
    assert key(([y], [d])) != key(([x], [a]))


def test_no_key_without_the_llvm_backend_or_the_cache_or_for_named_sizes() -> None:
    built = shaped(3)
    assert key(built, backend="numpy") is None
    assert key(built, cache=False) is None
    x = gc.var("x", ("n", 3))
    assert key(([x], [gc.sum(x, axis=0)])) is None
    assert key(([x], [gc.reshape(x, (-1,))])) is None


def test_a_graph_with_stop_gradient_is_keyed_as_it_compiles() -> None:
    x = gc.var("x", (3,))
    plain, stopped = key(([x], [gc.exp(x)])), key(([x], [gc.exp(gc.stop_gradient(x))]))
    assert plain is not None and stopped is not None
    assert stopped != key(([x], [gc.exp(x * 1.0)]))


def test_a_var_missing_from_the_inputs_is_still_compiles_error(tmp_path: Path) -> None:
    x, y = gc.var("x", (3,)), gc.var("y", (3,))
    assert key(([x], [x + y])) is None
    for _ in range(2):
        with pytest.raises(gc.GraphError, match="missing from inputs"):
            gc.compile([x], x + y, cache_dir=tmp_path)


# --- end to end -----------------------------------------------------------------------------------


def arguments(inputs: list, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.0, 1.0, fixed_shape(t)).astype(t.dtype) for t in inputs]


def fixed_shape(t: gc.Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def same_bits(got: object, want: object) -> bool:
    got_list = got if isinstance(got, tuple) else (got,)
    want_list = want if isinstance(want, list) else [want]
    return len(got_list) == len(want_list) and all(
        np.asarray(g).dtype == np.asarray(w).dtype and np.asarray(g).tobytes() == np.asarray(w).tobytes()
        for g, w in zip(got_list, want_list, strict=True)
    )


def test_each_member_of_every_pair_runs_its_own_code(tmp_path: Path) -> None:
    """Both graphs of a pair compiled into one cache, each twice: the second is a hit, bit for bit the cold code.

    A hit must give exactly what compiling without the cache gives (NaN payloads included);
    that in turn agrees with gc.evaluate (NaN payloads are not promised across backends).
    """
    for case, (builder, *params) in PAIRS.items():
        if case in ("one entry of a constant", "constant dtype", "keepdims"):
            continue  # their keys are tested above; end to end, the others cover constants and attributes
        for param in params:
            inputs, outputs = builder(*param)
            args = arguments(inputs)
            want = gc.evaluate(outputs, dict(zip(inputs, args, strict=True)))
            uncached = gc.compile(inputs, outputs, cache=False)(*args)
            cold = gc.compile(inputs, outputs, cache_dir=tmp_path)
            warm = gc.compile(inputs, outputs, cache_dir=tmp_path)
            assert isinstance(warm._built, entries.CachedFunction), case
            assert same_bits(cold(*args), list(uncached)), case
            assert same_bits(warm(*args), list(uncached)), case
            for got, expected in zip(uncached, want, strict=True):
                np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0, equal_nan=True, err_msg=case)


def test_a_hit_gives_what_a_cold_compile_gives_on_introspection(tmp_path: Path) -> None:
    inputs, outputs = scanned(0.5)
    cold = gc.compile(inputs, outputs, cache_dir=tmp_path)
    warm = gc.compile(inputs, outputs, cache_dir=tmp_path)
    assert isinstance(warm._built, entries.CachedFunction)
    assert repr(warm) == repr(cold)  # the step count is kept in the entry: no cold compile for this
    assert warm._cold is not None and warm._cold._done is None
    assert warm.source == cold.source
    assert str(warm.program) == str(cold.program)
    assert str(warm.graph) == str(cold.graph)
    untimed = [[(r.name, r.round, r.nodes_before, r.nodes_after) for r in fn.report] for fn in (warm, cold)]
    assert untimed[0] == untimed[1] and untimed[0]  # the same passes on the same graph; only times differ
    assert warm.report.notes == cold.report.notes
    assert warm.llvm_ir == cold.llvm_ir
    assert warm._built.plan.key() == cold._built.plan.key()
    assert warm.signature == cold.signature
    path = warm.explore(tmp_path / "warm.html")
    assert path.read_text().count("<") > 10


def test_errors_raised_by_a_hit_are_the_cold_compiles(tmp_path: Path) -> None:
    x = gc.var("x", (3,))
    out = gc.log(x) * 2.0
    messages = []
    for _ in range(2):
        fn = gc.compile([x], out, cache_dir=tmp_path, check_finite=True)
        with pytest.raises(FloatingPointError) as info:
            fn(np.array([1.0, -1.0, 2.0]))
        messages.append(str(info.value))
    assert isinstance(fn._built, entries.CachedFunction)
    assert messages[0] == messages[1] and "log" in messages[0]


def test_a_hit_makes_the_exact_variant_for_huge_arguments(tmp_path: Path) -> None:
    x = gc.var("x", (4,))
    args = np.array([1e300, -3e22, 0.5, 1e16])
    for _ in range(2):
        fn = gc.compile([x], gc.sin(x), cache_dir=tmp_path)
    assert isinstance(fn._built, entries.CachedFunction)
    np.testing.assert_allclose(fn(args), np.sin(args), rtol=1e-15, atol=0)


def test_a_hit_releases_its_workspaces_and_still_works(tmp_path: Path) -> None:
    """fn.release() (the workspace arena's) on a function the cache gave: small pool and large workspaces."""
    x = gc.var("x", (1 << 16,))
    outputs = [gc.sum(gc.exp(x) * x), gc.sin(x) * gc.cos(x)]  # a workspace above the arena's threshold
    small = gc.var("s", (3,))
    values = np.linspace(-1.0, 1.0, 1 << 16)
    for _ in range(2):
        fn = gc.compile([x], outputs, cache_dir=tmp_path)
        tiny = gc.compile([small], gc.exp(small) * small, cache_dir=tmp_path)
    assert isinstance(fn._built, entries.CachedFunction) and isinstance(tiny._built, entries.CachedFunction)
    want = [np.sum(np.exp(values) * values), np.sin(values) * np.cos(values)]
    for f, args, expected in ((fn, values, want), (tiny, np.arange(3.0), np.exp(np.arange(3.0)) * np.arange(3.0))):
        first = f(args)
        f.release()
        again = f(args)
        for got in (first, again):
            for g, w in zip(
                got if isinstance(got, tuple) else [got],
                expected if isinstance(expected, list) else [expected],
                strict=True,
            ):
                np.testing.assert_allclose(g, w, rtol=1e-13)


def test_cache_false_neither_reads_nor_writes(tmp_path: Path) -> None:
    inputs, outputs = shaped(3)
    gc.compile(inputs, outputs, cache=False, cache_dir=tmp_path / "none")
    assert not (tmp_path / "none").exists()
    gc.compile(inputs, outputs, cache_dir=tmp_path)
    assert list(tmp_path.glob("*.plan"))
    fn = gc.compile(inputs, outputs, cache=False, cache_dir=tmp_path)
    assert not fn._built.cache_hit


def test_the_numpy_backend_and_named_sizes_write_no_entries(tmp_path: Path) -> None:
    x = gc.var("x", ("n",))
    fn = gc.compile([x], gc.sum(x * 3.0), cache_dir=tmp_path)
    assert fn(np.arange(4.0)) == 18.0
    inputs, outputs = shaped(3)
    numpy_fn = gc.compile(inputs, outputs, backend="numpy", cache_dir=tmp_path)
    args = arguments(inputs)
    assert same_bits(numpy_fn(*args), gc.evaluate(outputs, dict(zip(inputs, args, strict=True))))
    assert not list(tmp_path.glob("*.plan"))


def entry_file(folder: Path) -> Path:
    (found,) = folder.glob("*.plan")
    return found


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "object missing", "foreign mode"])
def test_a_damaged_entry_is_rebuilt_never_run(tmp_path: Path, damage: str) -> None:
    inputs, outputs = shaped(5)
    args = arguments(inputs)
    want = list(gc.compile(inputs, outputs, cache=False)(*args))  # a sum: bit for bit the compiled order
    np.testing.assert_allclose(want, gc.evaluate(outputs, dict(zip(inputs, args, strict=True))), rtol=1e-14)
    gc.compile(inputs, outputs, cache_dir=tmp_path)
    entry = entry_file(tmp_path)
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        entry.write_bytes(data[:-3] + bytes([data[-3] ^ 1]) + data[-2:])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "object missing":
        for obj in tmp_path.glob("*.o"):
            obj.unlink()
    else:
        os.chmod(entry, 0o666)
    fn = gc.compile(inputs, outputs, cache_dir=tmp_path)
    assert not isinstance(fn._built, entries.CachedFunction)
    assert same_bits(fn(*args), want)
    if damage == "foreign mode":
        assert entry.read_bytes() == data  # someone else's file: never run, never deleted or replaced
    else:
        again = gc.compile(inputs, outputs, cache_dir=tmp_path)  # the cold compile wrote the entry again
        assert isinstance(again._built, entries.CachedFunction)
        assert same_bits(again(*args), want)


def test_an_entry_of_another_format_version_is_a_miss() -> None:
    inputs, outputs = shaped(3)
    fn = gc.compile(inputs, outputs, cache=False)
    data = bytearray(b"\0" * 8)
    assert entries.decode(bytes(data)) is None
    assert entries.decode(b"") is None
    assert entries.decode(b"\x02\0\0\0\0\0\0\0{}") is None
    assert not isinstance(fn._built, entries.CachedFunction)


SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import graphc as gc

    x0 = gc.var("x", (50,))
    x = x0
    for _ in range(20):
        x = gc.sin(x) * 1.0001 + 0.1 * x
    f = gc.sum(x)
    fn = gc.compile([x0], [f, gc.grad(f, x0)], cache_dir=sys.argv[1])
    value, grad = fn(np.linspace(-1.0, 1.0, 50))
    print(type(fn._built).__name__, value.tobytes().hex(), grad.tobytes().hex())
    print(str(fn.program) == str(gc.compile([x0], [f, gc.grad(f, x0)], cache=False).program))
    """
)


def test_a_second_process_hits_and_agrees_bit_for_bit(tmp_path: Path) -> None:
    script = tmp_path / "w8_small.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [
        subprocess.run(
            [sys.executable, str(script), str(tmp_path / "cache")], capture_output=True, text=True, env=env, check=True
        ).stdout.split("\n")
        for _ in range(2)
    ]
    first, second = (run[0].split() for run in runs)
    assert first[0] == "LLVMFunction" and second[0] == "CachedFunction"
    assert first[1:] == second[1:]
    assert runs[0][1] == runs[1][1] == "True"
