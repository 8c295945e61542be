"""gc.random: counter-based random numbers inside graphs (Threefry-2x32, as JAX).

Imports errors, shapes, ir, ops, tensor and functions. A *key* is an int64 Tensor of
shape (2,) holding two 32-bit words (each in [0, 2**32)); graphc has no unsigned dtype,
and int64 holds a 32-bit word exactly. Random values are a pure function of the key and
of each element's position: element i of a result of n elements is Threefry-2x32-20
(Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) of the counter
(i >> 32, i & 0xFFFFFFFF) under the key — the scheme of JAX's partitionable Threefry, so
`key`, `split` and `bits` give JAX's values. The generator is built from graphc's integer
ops (add, bitwise_and/or/xor, shifts) elementwise over an `iota` counter: it fuses, and
the interpreter, the NumPy backend and the LLVM backend compute the same bits.

Distributions:
- uniform: float64 from 53 random bits, (bits >> 11) * 2**-53; float32 from 24 bits,
  ((w0 ^ w1) >> 8) * 2**-24: every value a multiple of 2**-53 (2**-24) in [0, 1), exact,
  so bit-identical on every backend; then scaled to [minval, maxval).
- normal: Box-Muller, sqrt(-2 log(1 - u1)) * cos(2 pi u2) with u1, u2 uniform under the
  two halves of split(key): |z| < 8.6 (float64), < 5.8 (float32). It computes log and cos,
  so backends agree to the ulps of their log/cos (the LLVM backend's vectorized kernels
  are within 2 ulp of NumPy's), not bit for bit.
- bernoulli: uniform < p. permutation: a sort of random 63-bit keys whose low bits are
  replaced by the index (ties broken by index), so it is a permutation by construction.
Reusing a key gives the same numbers: split it for independent streams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from graphc import functions as fn
from graphc.errors import DTypeError, ShapeError
from graphc.ops import random as rops
from graphc.ops.source import const_value
from graphc.shapes import FLOAT32, FLOAT64, INT64, Dim, Shape, as_dtype, as_shape, is_float, is_static
from graphc.tensor import DTypeLike, Tensor, TensorLike, as_tensor, building, const

MASK = 0xFFFFFFFF
PARITY = 0x1BD11BDA  # the key schedule's constant (Threefry)
ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # Threefry-2x32's rotation constants, alternating blocks


def _u32(value: int) -> Tensor:
    return const(np.int64(value))


def _add(a: Tensor, b: Tensor | int) -> Tensor:
    """a + b mod 2**32 (both in [0, 2**32): the sum fits int64)."""
    return fn.bitwise_and(a + b, MASK)


def _rotl(x: Tensor, r: int) -> Tensor:
    """The 32-bit word x rotated left by r."""
    return fn.bitwise_or(fn.bitwise_and(fn.left_shift(x, r), MASK), fn.right_shift(x, 32 - r))


def threefry_2x32(key: TensorLike, x0: TensorLike, x1: TensorLike) -> tuple[Tensor, Tensor]:
    """Threefry-2x32 with 20 rounds of the counter words (x0, x1) under `key`: two int64 Tensors of 32-bit words.

    x0 and x1 broadcast against each other; each holds 32-bit words in [0, 2**32).
    """
    k = _key(key, "threefry_2x32")
    with building("threefry_2x32", key, x0, x1):
        k0, k1 = k[0], k[1]
        ks = [k0, k1, fn.bitwise_xor(fn.bitwise_xor(k0, k1), PARITY)]
        y0 = _add(as_tensor(x0, INT64), ks[0])
        y1 = _add(as_tensor(x1, INT64), ks[1])
        for block in range(5):
            for r in ROTATIONS[block % 2]:
                y0 = _add(y0, y1)
                y1 = fn.bitwise_xor(_rotl(y1, r), y0)
            y0 = _add(y0, ks[(block + 1) % 3])
            y1 = _add(y1, _add(ks[(block + 2) % 3], block + 1))
        return y0, y1


def _key(key: TensorLike, what: str) -> Tensor:
    """`key` as an int64 Tensor of shape (2,), or DTypeError/ShapeError naming `what`."""
    with building(what, key):
        t = key if isinstance(key, Tensor) else as_tensor(np.asarray(key))
        if t.dtype != INT64:
            raise DTypeError(f"a key is an int64 Tensor of shape (2,) (gc.random.key(seed)), got {t.dtype}")
        if t.shape != (2,):
            raise ShapeError(f"a key is an int64 Tensor of shape (2,) (gc.random.key(seed)), got shape {t.shape}")
        return t


def key(seed: TensorLike) -> Tensor:
    """The key of an integer seed: [seed >> 32, seed & 0xFFFFFFFF] of its 64 bits (JAX's PRNGKey).

    `seed` is a Python int in [-2**63, 2**64) or an int64 scalar Tensor (a seed fed at call
    time).
    """
    if isinstance(seed, Tensor):
        with building("key", seed):
            if seed.dtype != INT64 or seed.shape != ():
                raise DTypeError(f"a seed is an int64 scalar, got {seed.node.type}")
            hi = fn.bitwise_and(fn.right_shift(seed, 32), MASK)
            return fn.stack([hi, fn.bitwise_and(seed, MASK)])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"a seed is an int or an int64 scalar Tensor, got {type(seed).__name__}")
    if not -(2**63) <= int(seed) < 2**64:
        raise ValueError(f"a seed must fit in 64 bits, got {seed}")
    bits = int(seed) % 2**64
    return const(np.array([bits >> 32, bits & MASK], dtype=INT64))


def _counters(shape: Shape) -> tuple[Tensor, Tensor]:
    """The counter words (i >> 32, i & 0xFFFFFFFF) of each element's flat index i."""
    index = Tensor(rops.iota(shape=shape))
    if is_static(shape) and math.prod(shape) <= 2**32:
        return _u32(0), index  # the same values as below, with a constant high word
    return fn.right_shift(index, 32), fn.bitwise_and(index, MASK)


def _words(key: TensorLike, shape: Sequence[int | Dim] | int, what: str) -> tuple[Tensor, Tensor]:
    """The two 32-bit words of each element of `shape` under `key`."""
    k = _key(key, what)
    with building(what, key, shape):
        if isinstance(shape, Tensor):
            raise TypeError(f"shape must be a tuple of ints (a Tensor shape is not supported), got {shape!r}")
        x0, x1 = _counters(as_shape(shape))
        return threefry_2x32(k, x0, x1)


def bits(key: TensorLike, shape: Sequence[int] | int = ()) -> Tensor:
    """32 random bits per element, int64 in [0, 2**32): the xor of the two words (jax.random.bits)."""
    w0, w1 = _words(key, shape, "bits")
    return fn.bitwise_xor(w0, w1)


def split(key: TensorLike, num: int = 2) -> Tensor:
    """`num` new keys, int64 of shape (num, 2): key i is Threefry of the counter (0, i) (jax.random.split)."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        with building("split", key, num):
            raise ValueError(f"num must be an int >= 0 (a Python int: it is the result's shape), got {num!r}")
    w0, w1 = _words(key, (int(num),), "split")
    return fn.stack([w0, w1], axis=-1)


def _unit(key: TensorLike, shape: Sequence[int | Dim] | int, dtype: np.dtype, what: str) -> Tensor:
    """Uniform in [0, 1): 53 bits for float64, 24 for float32, exactly."""
    w0, w1 = _words(key, shape, what)
    if dtype == FLOAT32:
        mantissa = fn.right_shift(fn.bitwise_xor(w0, w1), 8)
        return mantissa.astype(FLOAT32) * np.float32(2.0**-24)
    mantissa = fn.bitwise_or(fn.left_shift(w0, 21), fn.right_shift(w1, 11))
    return mantissa.astype(FLOAT64) * 2.0**-53


def _float_dtype(dtype: object, what: str) -> np.dtype:
    d = as_dtype(dtype)
    if not is_float(d):
        raise DTypeError(f"{what} makes float64 or float32 values, got dtype {d}")
    return d


def uniform(
    key: TensorLike, shape: Sequence[int] | int = (), dtype: DTypeLike = "float64", minval: TensorLike = 0.0,
    maxval: TensorLike = 1.0,
) -> Tensor:  # fmt: skip
    """Uniform values in [minval, maxval) (jax.random.uniform's bits); minval and maxval broadcast to `shape`.

    A range wider than the largest float (minval=-1e308, maxval=1e308) is scaled by halves
    rather than overflowing to inf (where JAX gives inf or NaN).
    """
    d = _float_dtype(dtype, "uniform")
    u = _unit(key, shape, d, "uniform")
    if isinstance(minval, (int, float)) and isinstance(maxval, (int, float)) and (minval, maxval) == (0, 1):
        return u
    with building("uniform", key, shape, minval, maxval):
        low, high = as_tensor(minval, d), as_tensor(maxval, d)
        return fn.maximum(low, _below(_scaled(u, low, high), low, high))


def _scaled(u: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """u * (high - low) + low, also where high - low overflows (finite bounds wider than the largest float).

    There the halves are scaled instead: 2 * (u * (high/2 - low/2) + low/2), which stays
    below high. Where high - low is finite the first form is taken, so its bits (JAX's)
    are kept; constant bounds choose at build time and add nothing when the range fits.
    """
    plain = u * (high - low) + low
    top, bottom = const_value(high.node), const_value(low.node)
    with np.errstate(over="ignore", invalid="ignore"):
        fits = (
            None
            if top is None or bottom is None
            else np.isfinite(top - bottom) | ~np.isfinite(top) | ~np.isfinite(bottom)
        )
    if fits is not None and bool(np.all(fits)):
        return plain
    halved = (u * (high * 0.5 - low * 0.5) + low * 0.5) * 2.0
    inf = np.inf
    bounded = fn.logical_and(fn.abs(high) < inf, fn.abs(low) < inf)
    wide = fn.logical_and(bounded, fn.abs(high - low) == inf)
    return fn.where(wide, halved, plain)


def _below(scaled: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """`scaled` kept below `high`: u * (high - low) + low rounds to high itself at a tie.

    With u <= 1 - 2**-24 (float32) the product is below high - low, but the sum can round
    up to high ([1, 2): 2 - 2**-24 ties to 2.0). Constant bounds clamp the top to
    nextafter(high, low), which changes no value below it; symbolic bounds replace a value
    that reached high by high - max(|high| * 1.25 ulp-fraction, smallest subnormal), which is
    the float just below high for every finite high but -2**-125 and -2**-124 (float32;
    float64 alike at its smallest normals), where the value is left as it is.
    """
    top, bottom = const_value(high.node), const_value(low.node)
    if top is not None and bottom is not None:
        with np.errstate(invalid="ignore"):
            below = np.where(np.isfinite(top), np.nextafter(top, bottom), top)
        return fn.minimum(scaled, const(below.astype(high.dtype)))
    info = np.finfo(high.dtype)
    step = fn.maximum(fn.abs(high) * high.dtype.type(1.25 * 2.0 ** -(info.nmant + 1)), info.smallest_subnormal)
    candidate = high - step
    return fn.where(scaled < high, scaled, fn.where(candidate < high, candidate, scaled))


def normal(key: TensorLike, shape: Sequence[int] | int = (), dtype: DTypeLike = "float64") -> Tensor:
    """Standard normal values by Box-Muller (jax.random.normal's distribution, not its values)."""
    d = _float_dtype(dtype, "normal")
    keys = split(key, 2)
    u1 = _unit(keys[0], shape, d, "normal")
    u2 = _unit(keys[1], shape, d, "normal")
    with building("normal", key, shape):
        radius = fn.sqrt(-2.0 * fn.log1p(-u1))
        return radius * fn.cos(u2 * (2 * np.pi))


def bernoulli(key: TensorLike, p: TensorLike = 0.5, shape: Sequence[int] | int | None = None) -> Tensor:
    """True with probability p (p broadcasts to `shape`, by default its own shape): uniform < p."""
    with building("bernoulli", key, p, shape):
        prob = as_tensor(p)
        if not is_float(prob.dtype):
            prob = prob.astype(FLOAT64)
        target = prob.shape if shape is None else as_shape(shape)
        return _unit(key, target, prob.dtype, "bernoulli") < prob


def permutation(key: TensorLike, x: TensorLike) -> Tensor:
    """A random permutation of range(x) for an int x, else of x's first axis (jax.random.permutation).

    Each index gets a random 63-bit sort key whose low bits are the index itself, so keys
    never tie and the result is a permutation (the low bits cost a negligible bias).
    """
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        if x < 0:
            with building("permutation", key, x):
                raise ValueError(f"permutation of a negative count {x}")
        return _permutation(key, int(x))
    with building("permutation", key, x):
        t = as_tensor(x)
        if t.ndim == 0:
            raise ShapeError(f"permutation needs an int or an array of at least one axis, got {t.node.type}")
        n = t.shape[0]
        if isinstance(n, Dim):
            raise ShapeError(
                f"permutation of an axis of named size {n}: the sort keys' index bits depend on the size; "
                "permute arrays of a fixed length"
            )
        return fn.take(t, _permutation(key, n), axis=0)


def _permutation(key: TensorLike, n: int) -> Tensor:
    w0, w1 = _words(key, (n,), "permutation")
    low = max(1, (n - 1).bit_length())
    random = fn.bitwise_or(fn.left_shift(w0, 31), fn.right_shift(w1, 1))  # 63 random bits, >= 0
    index = Tensor(rops.iota(shape=(n,)))
    sort_keys = fn.bitwise_or(fn.left_shift(fn.right_shift(random, low), low), index)
    return fn.bitwise_and(Tensor(rops.sort(sort_keys.node)), 2**low - 1)


__all__ = ["bernoulli", "bits", "key", "normal", "permutation", "split", "threefry_2x32", "uniform"]
