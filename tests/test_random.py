"""gc.random and gc.nn.dropout: Threefry-2x32 known-answer vectors, JAX's keys and bits, the same bits on
every executor (fused or not) and in another process, distribution moments and Kolmogorov-Smirnov tests at
10^6 samples, permutations, sizes 0/1/n, argument errors; dropout's statistics and gradient."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.testing import check_grad

BACKENDS = ["numpy", "llvm"]
REPO = Path(__file__).resolve().parents[1]

# Random123's kat_vectors for threefry2x32_20 (Salmon et al. 2011): (key, counter, result)
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


def every_executor(inputs: list[gc.Tensor], outputs: list[gc.Tensor], args: list[object]) -> list[list[np.ndarray]]:
    """gc.evaluate's values, then each backend's with the optimizer (fusion) on and off."""
    results = [gc.evaluate(outputs, dict(zip(inputs, args, strict=True)))]
    for backend in BACKENDS:
        for optimize in (True, False):
            results.append(list(gc.compile(inputs, outputs, backend=backend, optimize=optimize)(*args)))
    return results


def test_known_answer_vectors_on_every_executor() -> None:
    keys = gc.var("keys", (3, 2), "int64")
    counters = gc.var("counters", (2, 3), "int64")
    outputs = []
    for i in range(3):
        outputs += gc.random.threefry_2x32(keys[i], counters[0, i], counters[1, i])
    key_values = np.array([k for k, _, _ in KNOWN_ANSWERS], dtype=np.int64)
    counter_values = np.array([c for _, c, _ in KNOWN_ANSWERS], dtype=np.int64).T
    want = [word for _, _, result in KNOWN_ANSWERS for word in result]
    for got in every_executor([keys, counters], outputs, [key_values, counter_values]):
        assert [int(g) for g in got] == want


def test_keys_splits_and_bits_are_jaxs() -> None:
    jax = pytest.importorskip("jax")
    if not jax.config.jax_threefry_partitionable:
        pytest.skip("JAX with its original (non-partitionable) Threefry")
    for seed in (0, 42, 2**31 - 1):
        k = jax.random.PRNGKey(seed)
        assert gc.evaluate(gc.random.key(seed), {}).tolist() == np.asarray(k).tolist()
        assert (
            gc.evaluate(gc.random.split(gc.random.key(seed), 5), {}).tolist()
            == np.asarray(jax.random.split(k, 5)).tolist()
        )
        bits = np.asarray(jax.random.bits(k, (3, 4), np.uint32)).astype(np.int64)
        assert gc.evaluate(gc.random.bits(gc.random.key(seed), (3, 4)), {}).tolist() == bits.tolist()


def test_seeds_as_ints_or_tensors() -> None:
    s = gc.var("s", (), "int64")
    for seed in (0, 1, 2**32 + 5, 2**63 - 1, -1, -(2**63)):
        want = gc.evaluate(gc.random.key(seed), {})
        assert want.tolist() == [(seed % 2**64) >> 32, seed % 2**32]
        assert gc.evaluate(gc.random.key(s), {s: seed}).tolist() == want.tolist()
    assert gc.evaluate(gc.random.key(2**64 - 1), {}).tolist() == [2**32 - 1, 2**32 - 1]


def test_bad_arguments() -> None:
    with pytest.raises(gc.DTypeError, match="int64 Tensor of shape"):
        gc.random.uniform(gc.var("k", (2,)), (3,))
    with pytest.raises(gc.ShapeError, match=r"got shape \(3,\)"):
        gc.random.normal(gc.const(np.array([1, 2, 3])), (3,))
    with pytest.raises(ValueError, match="64 bits"):
        gc.random.key(2**64)
    with pytest.raises(TypeError, match="seed"):
        gc.random.key(1.5)  # type: ignore[arg-type]
    with pytest.raises(gc.DTypeError, match="float64 or float32"):
        gc.random.uniform(gc.random.key(0), (2,), "int64")
    with pytest.raises(ValueError, match="num"):
        gc.random.split(gc.random.key(0), -1)
    with pytest.raises(ValueError, match="negative"):
        gc.random.permutation(gc.random.key(0), -2)
    with pytest.raises(gc.ShapeError, match="at least one axis"):
        gc.random.permutation(gc.random.key(0), gc.var("x"))


# --- the same bits everywhere ---------------------------------------------------------------------------


def sampler() -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    """Every function of gc.random at sizes 0, 1 and n, and dropout, from a key fed at call time."""
    k = gc.var("k", (2,), "int64")
    x = gc.var("x", (5, 4))
    outputs = [
        gc.random.uniform(k, (0,)), gc.random.uniform(k, (1,)), gc.random.uniform(k, (4, 5)),
        gc.random.uniform(k, (6,), "float32", -2.0, 3.0), gc.random.bits(k, (7,)), gc.random.split(k, 3),
        gc.random.bernoulli(k, 0.3, (9,)), gc.random.bernoulli(k, gc.const(np.array([0.0, 0.5, 1.0]))),
        gc.random.permutation(k, 0), gc.random.permutation(k, 1), gc.random.permutation(k, 11),
        gc.random.permutation(k, x), gc.nn.dropout(k, x, 0.4), gc.nn.dropout(k, x.astype("float32"), 0.25),
    ]  # fmt: skip
    return [k, x], outputs


def test_bit_identical_on_every_executor_fused_or_not() -> None:
    inputs, outputs = sampler()
    args = [np.array([12345, 987654321]), np.arange(20.0).reshape(5, 4)]
    results = every_executor(inputs, outputs, args)
    for got in results[1:]:
        for g, e in zip(got, results[0], strict=True):
            assert g.dtype == e.dtype and g.tobytes() == e.tobytes()
    perm = results[0][10]
    assert sorted(perm.tolist()) == list(range(11))


def test_normal_agrees_across_executors() -> None:
    """Box-Muller computes log and cos: numpy is bit-identical, llvm within the ulps of its vectorized kernels."""
    k = gc.var("k", (2,), "int64")
    outputs = [gc.random.normal(k, (1000,)), gc.random.normal(k, (300,), "float32")]
    results = every_executor([k], outputs, [np.array([3, 4])])
    for i, got in enumerate(results[1:]):
        for g, e in zip(got, results[0], strict=True):
            if i < 2:
                assert g.tobytes() == e.tobytes()
            else:
                np.testing.assert_allclose(g, e, rtol=8 * np.finfo(e.dtype).eps, atol=8 * np.finfo(e.dtype).eps)


def digest(backend: str) -> str:
    """A hash of uniform, normal, permutation and dropout values compiled on `backend` in this process."""
    k = gc.var("k", (2,), "int64")
    x = gc.var("x", (64,))
    outputs = [gc.random.uniform(k, (64,)), gc.random.normal(k, (64,)), gc.random.permutation(k, 50),
               gc.nn.dropout(k, x, 0.5)]  # fmt: skip
    fn = gc.compile([k, x], outputs, backend=backend)
    values = fn(np.array([7, 11]), np.linspace(-1.0, 1.0, 64))
    return hashlib.sha256(b"".join(v.tobytes() for v in values)).hexdigest()


def test_reproducible_in_another_process() -> None:
    code = (
        "import sys; sys.path.insert(0, 'tests'); import test_random as t; print(t.digest('numpy'), t.digest('llvm'))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "123"}
    child = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                           check=True, timeout=300)  # fmt: skip
    assert child.stdout.split() == [digest("numpy"), digest("llvm")]


def test_keys_and_splits_give_different_streams() -> None:
    base = gc.random.key(0)
    a, b = gc.random.split(base, 2)
    draws = gc.evaluate([gc.random.bits(k, (8,)) for k in (base, a, b, gc.random.key(1))], {})
    assert len({d.tobytes() for d in draws}) == 4
    again = gc.evaluate(gc.random.bits(gc.random.key(0), (8,)), {})
    assert again.tobytes() == draws[0].tobytes()


# --- distributions -----------------------------------------------------------------------------------

N = 10**6


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    """10^6 draws of each distribution under fixed seeds, compiled once."""
    k = gc.var("k", (2,), "int64")
    names = ["u64", "u32", "n64", "n32", "bern", "ab"]
    outputs = [gc.random.uniform(k, (N,)), gc.random.uniform(k, (N,), "float32"), gc.random.normal(k, (N,)),
               gc.random.normal(k, (N,), "float32"), gc.random.bernoulli(k, 0.3, (N,)),
               gc.random.uniform(k, (N,), minval=-3.0, maxval=5.0)]  # fmt: skip
    values = gc.compile([k], outputs, backend="llvm")(gc.evaluate(gc.random.key(2024), {}))
    return dict(zip(names, values, strict=True))


def test_uniform_values_are_exact_multiples_in_the_unit_interval(samples: dict[str, np.ndarray]) -> None:
    for name, bits in (("u64", 53), ("u32", 24)):
        u = samples[name]
        assert u.min() >= 0.0 and u.max() < 1.0
        scaled = u.astype(np.float64) * 2.0**bits
        assert np.array_equal(scaled, np.floor(scaled))
    ab = samples["ab"]
    assert ab.min() >= -3.0 and ab.max() < 5.0


def test_uniform_never_returns_maxval_at_a_rounding_tie() -> None:
    """P8: u * (maxval - minval) + minval can round up to maxval; the top is clamped to the float below it.

    Element 1446823 of key(0) in float32 is 1 - 2**-24, and 2 - 2**-24 ties to 2.0; in float64
    [2**53 - 2, 2**53) ties for every u > 0.75. Constant and symbolic bounds, every executor; every
    other value stays bit for bit what the unclamped formula gives.
    """
    k = gc.random.key(0)
    lo32, hi32 = gc.var("lo32", (), "float32"), gc.var("hi32", (), "float32")
    lo64, hi64 = gc.var("lo64"), gc.var("hi64")
    n = 1446824
    outputs = [gc.random.uniform(k, (n,), "float32", 1.0, 2.0), gc.random.uniform(k, (n,), "float32", lo32, hi32),
               gc.random.uniform(k, (64,), minval=2.0**53 - 2, maxval=2.0**53),
               gc.random.uniform(k, (64,), minval=lo64, maxval=hi64),
               gc.random.uniform(k, (n,), "float32"), gc.random.uniform(k, (64,))]  # fmt: skip
    args = [np.float32(1.0), np.float32(2.0), 2.0**53 - 2, 2.0**53]
    for got in every_executor([lo32, hi32, lo64, hi64], outputs, args):
        u32, u64 = got[4], got[5]
        unclamped32 = u32 * np.float32(1.0) + np.float32(1.0)
        unclamped64 = u64 * 2.0 + (2.0**53 - 2)
        assert unclamped32[-1] == 2.0 and (unclamped64 == 2.0**53).sum() > 8  # the ties are there
        for value, unclamped, high in ((got[0], unclamped32, 2.0), (got[1], unclamped32, 2.0),
                                       (got[2], unclamped64, 2.0**53), (got[3], unclamped64, 2.0**53)):  # fmt: skip
            assert value.max() < high
            want = np.where(unclamped < high, unclamped, np.nextafter(unclamped.dtype.type(high), 0))
            assert value.dtype == unclamped.dtype and value.tobytes() == want.tobytes()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # maxval - minval, by design
def test_uniform_over_a_range_wider_than_the_largest_float_stays_finite() -> None:
    """maxval - minval overflows for [-1.7e308, 1.7e308): the halves are scaled instead, never inf.

    Constant and symbolic bounds, float64 and float32, every executor; a range that fits keeps
    the plain formula's bits (the symbolic bounds given [-1, 3) agree with the constant ones).
    """
    k = gc.random.key(0)
    lo, hi = gc.var("lo"), gc.var("hi")
    outputs = [gc.random.uniform(k, (4096,), minval=-1.7e308, maxval=1.7e308),
               gc.random.uniform(k, (4096,), minval=lo, maxval=hi),
               gc.random.uniform(k, (4096,), "float32", -3e38, 3e38),
               gc.random.uniform(k, (4096,), minval=-1.0, maxval=3.0)]  # fmt: skip
    for got in every_executor([lo, hi], outputs, [-1.7e308, 1.7e308]):
        for value, high in ((got[0], 1.7e308), (got[1], 1.7e308), (got[2], np.float32(3e38))):
            assert np.isfinite(value).all() and value.max() < high and value.min() >= -high
            assert (value < -high / 2).any() and (value > high / 2).any()  # spread over the whole range
        assert got[0].tobytes() == got[1].tobytes()
    unit = gc.compile([], gc.random.uniform(k, (4096,)), backend="numpy")()
    for got in every_executor([lo, hi], outputs, [-1.0, 3.0]):
        assert got[1].tobytes() == got[3].tobytes() == (unit * 4.0 - 1.0).tobytes()


@pytest.mark.parametrize("name", ["u64", "u32", "ab"])
def test_uniform_moments_and_kolmogorov_smirnov(samples: dict[str, np.ndarray], name: str) -> None:
    stats = pytest.importorskip("scipy.stats")
    low, width = (-3.0, 8.0) if name == "ab" else (0.0, 1.0)
    u = (samples[name].astype(np.float64) - low) / width
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / N)
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / N)
    assert stats.kstest(u, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("name", ["n64", "n32"])
def test_normal_moments_and_kolmogorov_smirnov(samples: dict[str, np.ndarray], name: str) -> None:
    stats = pytest.importorskip("scipy.stats")
    z = samples[name].astype(np.float64)
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / N) and abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / N)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert np.all(np.isfinite(z))


def test_bernoulli_frequency_and_edge_probabilities(samples: dict[str, np.ndarray]) -> None:
    assert abs(samples["bern"].mean() - 0.3) < 5 * np.sqrt(0.21 / N)
    k = gc.random.key(5)
    assert not gc.evaluate(gc.random.bernoulli(k, 0.0, (1000,)), {}).any()
    assert gc.evaluate(gc.random.bernoulli(k, 1.0, (1000,)), {}).all()


def test_permutations_are_permutations_and_every_position_is_uniform() -> None:
    k = gc.var("k", (2,), "int64")
    fn = gc.compile([k], gc.random.permutation(k, 5), backend="numpy")
    counts = np.zeros((5, 5))
    for seed in range(2000):
        perm = fn(np.array([0, seed]))
        assert sorted(perm.tolist()) == list(range(5))
        counts[np.arange(5), perm] += 1
    stats = pytest.importorskip("scipy.stats")
    assert stats.chisquare(counts.ravel(), np.full(25, 400.0)).pvalue > 1e-3


# --- dropout --------------------------------------------------------------------------------------


def test_dropout_rates_zero_and_one() -> None:
    x = gc.var("x", (4,))
    k = gc.random.key(0)
    assert gc.nn.dropout(k, x, 0.0) is x or gc.nn.dropout(k, x, 0.0).node is x.node
    zeros = gc.evaluate(gc.nn.dropout(k, x, 1), {x: np.array([np.nan, np.inf, 1.0, -2.0])})
    assert zeros.tolist() == [0.0] * 4
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="rate"):
            gc.nn.dropout(k, x, bad)
    with pytest.raises(TypeError, match="rate"):
        gc.nn.dropout(k, x, gc.var("r"))  # type: ignore[arg-type]
    with pytest.raises(gc.DTypeError, match="float"):
        gc.nn.dropout(k, gc.var("i", (3,), "int64"), 0.5)


def test_dropout_statistics() -> None:
    x = gc.var("x", (200_000,), "float32")
    k = gc.var("k", (2,), "int64")
    y = gc.compile([k, x], gc.nn.dropout(k, x, 0.3), backend="llvm")(np.array([1, 2]), np.ones(200_000, np.float32))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.21 / y.size)
    assert np.all(y[kept] == np.float32(1.0) / np.float32(0.7))
    assert abs(y.mean() - 1.0) < 0.01  # inverted dropout keeps the expectation


def test_dropout_gradient_is_the_mask_times_the_scale() -> None:
    x = gc.var("x", (30,))
    k = gc.random.key(9)
    y = gc.nn.dropout(k, x, 0.5)
    loss = gc.sum(gc.sin(y) * y)
    xv = np.linspace(-1.0, 1.0, 30)
    check_grad(loss, x, {x: xv})
    mask = gc.evaluate(y, {x: np.ones(30)}) != 0
    g = gc.evaluate(gc.grad(gc.sum(y), x), {x: xv})
    assert g.tolist() == np.where(mask, 2.0, 0.0).tolist()
