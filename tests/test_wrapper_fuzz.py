"""Argument fuzzing of compiled functions: proxies, subclasses and lying objects never crash the interpreter.

Every case runs in one child process per backend (a crash there fails the test, and
the cases are batched so the child starts once). For each argument the child first
asks NumPy what the value means (`np.asarray`): if NumPy can read it and the safe cast
and shape fit, the call must return exactly what it returns for that plain array;
otherwise it must raise TypeError or ValueError naming the input — never an internal
error (AttributeError, AssertionError, SystemError) and never a crash.

Out of scope: an object whose `__array_interface__` is well formed but points at
memory it does not own; NumPy itself trusts such an interface and would crash reading it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llvmlite")

REPO = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, mmap, sys, tempfile, warnings
from unittest import mock
import numpy as np
import graphc as gc

backend = sys.argv[1]
x = gc.var("x", (3,))
s = gc.var("s")
i = gc.var("i", (2,), dtype="int64")
outputs = [x * s + gc.sum(x), gc.take(x, i)]
fn = gc.compile([x, s, i], outputs, backend=backend, cache=False)
GOOD = {"x": np.array([1.0, -2.0, 0.5]), "s": np.array(1.5), "i": np.array([2, -1])}
EXPECTED = {"x": ((3,), np.float64), "s": ((), np.float64), "i": ((2,), np.int64)}


def expected_of(position, value):
    """The plain array NumPy reads from `value`, or None when a call must refuse it."""
    shape, dtype = EXPECTED[position]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.asarray(value)
    except Exception:
        return None
    if array.dtype.kind == "O" or array.dtype.fields is not None or array.shape != shape:
        return None
    if array.dtype != dtype and not np.can_cast(array.dtype, dtype, "safe"):
        return None
    return np.array(array, dtype=dtype)


class Proxy:
    """A transparent proxy: __class__ and every attribute forwarded to an array."""

    def __init__(self, target):
        object.__setattr__(self, "_target", target)

    @property
    def __class__(self):
        return np.ndarray

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_target"), name)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(object.__getattribute__(self, "_target"), dtype=dtype)


class LyingClass:
    """Claims to be an ndarray of the right dtype, shape and strides; is nothing of the sort."""

    def __init__(self, like):
        self.shape, self.dtype, self.strides = like.shape, like.dtype, like.strides

    @property
    def __class__(self):
        return np.ndarray


class ArrayReturns:
    def __init__(self, result):
        self.result = result

    def __array__(self, dtype=None, copy=None):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class Interface:
    def __init__(self, interface):
        self.__array_interface__ = interface


class ShapeLiar(np.ndarray):
    @property
    def shape(self):
        return (3,)


class Sub(np.ndarray):
    pass


def misaligned(values):
    raw = np.zeros(values.nbytes + 1, np.uint8)
    out = np.ndarray(values.shape, values.dtype, buffer=raw, offset=1)
    out[...] = values
    return out


def spec_mock(like):
    m = mock.Mock(spec=np.ndarray)
    m.shape, m.dtype, m.strides = like.shape, like.dtype, like.strides
    return m


def cases(position):
    good = GOOD[position]
    dtype = good.dtype
    with tempfile.NamedTemporaryFile(delete=False) as handle:
        handle.write(good.tobytes())
    mapped = np.memmap(handle.name, dtype=dtype, mode="r", shape=good.shape)
    yield "proxy", Proxy(good)
    yield "proxy of a wrong array", Proxy(np.zeros(7))
    yield "lying __class__/dtype/shape/strides", LyingClass(good)
    yield "Mock(spec=ndarray)", spec_mock(good)
    yield "MagicMock(spec=ndarray)", mock.MagicMock(spec=np.ndarray)
    yield "subclass", good.view(Sub)
    yield "subclass lying about its shape", np.zeros(1, dtype).view(ShapeLiar)
    yield "masked array", np.ma.masked_array(good, mask=np.zeros(good.shape, bool))
    yield "matrix", np.asmatrix(np.atleast_2d(good))
    yield "memmap", mapped
    yield "recarray", np.zeros(good.shape, dtype=[("a", dtype)]).view(np.recarray)
    yield "__array__ returns a list", ArrayReturns(good.tolist())
    yield "__array__ returns a wrong shape", ArrayReturns(np.zeros(5, dtype))
    yield "__array__ raises AttributeError", ArrayReturns(AttributeError("inside __array__"))
    yield "__array__ raises RuntimeError", ArrayReturns(RuntimeError("inside __array__"))
    yield "__array__ returns None", ArrayReturns(None)
    yield "interface missing keys", Interface({"shape": good.shape})
    yield "interface bad typestr", Interface({"shape": good.shape, "typestr": "zz", "version": 3, "data": (0, True)})
    yield "interface negative shape", Interface({"shape": (-3,), "typestr": "<f8", "version": 3, "data": (0, True)})
    yield "interface data None", Interface({"shape": (0,), "typestr": "<f8", "version": 3, "data": None})
    yield "duck with shape and dtype", type("Duck", (), {"shape": good.shape, "dtype": dtype})()
    flat = good.reshape(-1)
    yield "reversed (negative strides)", np.concatenate([flat[::-1], flat[::-1]])[::-1][good.size :].reshape(good.shape)
    yield "broadcast (zero strides)", np.broadcast_to(good.reshape(-1)[:1], good.shape) if good.shape else good
    yield "huge strides", np.lib.stride_tricks.as_strided(np.zeros(1 << 16, dtype), good.shape,
                                                          (1 << 15,) * good.ndim)
    yield "stepped", np.repeat(good, 3)[::3].reshape(good.shape)
    yield "fortran", np.asfortranarray(good)
    yield "misaligned", misaligned(good)
    yield "read-only", np.frombuffer(good.tobytes(), dtype).reshape(good.shape)
    yield "byte-swapped", good.astype(dtype.newbyteorder(">"))
    yield "with metadata", good.astype(np.dtype(dtype.str, metadata={"unit": "m"}))
    yield "0-size", np.zeros(0, dtype)
    yield "0-d", np.asarray(good.reshape(-1)[0])
    yield "object array", np.array(good.tolist() or [0.0], dtype=object)
    yield "object array of None", np.array([None] * max(good.size, 1), dtype=object)
    yield "structured", np.zeros(good.shape, dtype=[("a", "f8")])
    yield "complex", good.astype(complex)
    yield "float32", good.astype(np.float32)
    yield "float16", good.astype(np.float16)
    yield "int8", np.zeros(good.shape, np.int8)
    yield "uint64", np.zeros(good.shape, np.uint64)
    yield "bool", np.zeros(good.shape, bool)
    yield "memoryview", memoryview(good)
    yield "memoryview of bytes", memoryview(b"\x00" * good.nbytes)
    yield "bytes", b"\x00" * good.nbytes
    yield "bytearray", bytearray(good.nbytes)
    yield "str", "1.0"
    yield "None", None
    yield "dict", {}
    yield "set", {1.0}
    yield "generator", (v for v in [1.0])
    yield "nested lists", [[1.0], [2.0, 3.0]]
    yield "huge int", 2**100
    yield "nan", float("nan")
    yield "numpy scalar", np.float64(2.0)
    yield "mmap", mmap.mmap(-1, 64)
    yield "type object", np.ndarray


results = []
for position in ("x", "s", "i"):
    for label, value in cases(position):
        args = dict(GOOD)
        args[position] = value
        wanted = expected_of(position, value)
        outcome = {"position": position, "case": label}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = fn(args["x"], args["s"], args["i"])
        except Exception as exc:
            outcome["error"] = type(exc).__name__
            outcome["names input"] = repr(position) in str(exc)  # the inputs are named like their positions
            outcome["refusal expected"] = wanted is None
        else:
            reference = dict(GOOD)
            reference[position] = wanted
            if wanted is None:
                outcome["error"] = "accepted something NumPy cannot read as the input"
            else:
                want = gc.evaluate(outputs, {x: reference["x"], s: reference["s"], i: reference["i"]})
                outcome["same result"] = all(g.tobytes() == w.tobytes() for g, w in zip(got, want))
        results.append(outcome)
print(json.dumps(results))
'''


def run_child(backend: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, backend],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, f"the child crashed or failed (status {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["llvm", "numpy"])
def test_no_argument_crashes_or_leaks_an_internal_error(backend: str) -> None:
    results = run_child(backend)
    assert len(results) >= 150
    problems = []
    for r in results:
        where = f"{r['position']}: {r['case']}"
        if "same result" in r:
            if not r["same result"]:
                problems.append(f"{where}: a different result than for the plain array")
        elif r["error"] not in ("TypeError", "ValueError"):
            problems.append(f"{where}: {r['error']}")
        elif not r["names input"]:
            problems.append(f"{where}: the message does not name the input")
    assert problems == []
    accepted = {r["case"] for r in results if r["position"] == "x" and "same result" in r}
    assert {
        "proxy",
        "subclass",
        "misaligned",
        "fortran",
        "reversed (negative strides)",
        "byte-swapped",
        "memmap",
        "float32",
        "bool",
        "memoryview",
    } <= accepted
    refused = {r["case"] for r in results if r["position"] == "x" and "error" in r}
    assert {
        "lying __class__/dtype/shape/strides",
        "Mock(spec=ndarray)",
        "object array",
        "structured",
        "bytes",
        "0-size",
        "subclass lying about its shape",
    } <= refused
