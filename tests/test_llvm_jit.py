"""The LLVM backend's native-code infrastructure: JIT, BLAS binding and object cache."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import llvmlite.ir as ir
import numpy as np
import pytest

from graphc.backends.llvm import blas
from graphc.backends.llvm.cache import ObjectCache
from graphc.backends.llvm.jit import NativeModule, compile_ir

F64 = ir.DoubleType()
I64 = ir.IntType(64)
PTR = ir.PointerType()
REPO = Path(__file__).resolve().parents[1]

ADD = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double)
SUM = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_int64)
VECTOR_ADD = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


# ---------------------------------------------------------------- IR builders


def build_add(module: ir.Module) -> None:
    """add(x, y) = x + y on doubles."""
    function = ir.Function(module, ir.FunctionType(F64, [F64, F64]), "add")
    builder = ir.IRBuilder(function.append_basic_block("entry"))
    builder.ret(builder.fadd(*function.args))


def build_sum(module: ir.Module) -> None:
    """sum(x, n) = x[0] + x[1] + ... + x[n-1], accumulated left to right."""
    function = ir.Function(module, ir.FunctionType(F64, [PTR, I64]), "sum")
    x, n = function.args
    entry = function.append_basic_block("entry")
    loop = function.append_basic_block("loop")
    done = function.append_basic_block("done")
    builder = ir.IRBuilder(entry)
    builder.cbranch(builder.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(I64, name="i")
    acc = builder.phi(F64, name="acc")
    element = builder.load(builder.gep(x, [i], source_etype=F64), typ=F64)
    new_acc = builder.fadd(acc, element)
    new_i = builder.add(i, ir.Constant(I64, 1))
    i.add_incoming(ir.Constant(I64, 0), entry)
    i.add_incoming(new_i, loop)
    acc.add_incoming(ir.Constant(F64, 0.0), entry)
    acc.add_incoming(new_acc, loop)
    builder.cbranch(builder.icmp_signed("<", new_i, n), loop, done)
    builder.position_at_end(done)
    result = builder.phi(F64, name="result")
    result.add_incoming(ir.Constant(F64, 0.0), entry)
    result.add_incoming(new_acc, loop)
    builder.ret(result)


def build_vector_add(module: ir.Module) -> None:
    """vector_add(out, x, y, n): out[i] = x[i] + y[i], pointers noalias."""
    signature = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, I64])
    function = ir.Function(module, signature, "vector_add")
    out, x, y, n = function.args
    for pointer in (out, x, y):
        pointer.add_attribute("noalias")
    entry = function.append_basic_block("entry")
    loop = function.append_basic_block("loop")
    done = function.append_basic_block("done")
    builder = ir.IRBuilder(entry)
    builder.cbranch(builder.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(I64, name="i")
    a = builder.load(builder.gep(x, [i], source_etype=F64), typ=F64)
    b = builder.load(builder.gep(y, [i], source_etype=F64), typ=F64)
    builder.store(builder.fadd(a, b), builder.gep(out, [i], source_etype=F64))
    new_i = builder.add(i, ir.Constant(I64, 1))
    i.add_incoming(ir.Constant(I64, 0), entry)
    i.add_incoming(new_i, loop)
    builder.cbranch(builder.icmp_signed("<", new_i, n), loop, done)
    builder.position_at_end(done)
    builder.ret_void()


def test_llvmlite_is_a_required_dependency() -> None:
    """pyproject.toml requires llvmlite>=0.45: without it these modules fail to import (they never skip)."""
    import llvmlite

    assert tuple(int(p) for p in llvmlite.__version__.split(".")[:2]) >= (0, 45)


def small_module() -> ir.Module:
    module = ir.Module(name="small")
    build_add(module)
    build_sum(module)
    build_vector_add(module)
    return module


def pointer(array: np.ndarray) -> int:
    return array.ctypes.data


def check_small(native: NativeModule) -> None:
    """The three functions of small_module compute what they should."""
    add = ADD(native.address("add"))
    assert add(1.5, 2.25) == 3.75
    total = SUM(native.address("sum"))
    x = np.arange(1000, dtype=np.float64) * 0.5
    assert total(pointer(x), x.size) == float(np.cumsum(x)[-1])
    assert total(pointer(x), 0) == 0.0
    vector_add = VECTOR_ADD(native.address("vector_add"))
    y = np.linspace(-1.0, 1.0, 1003)
    z = np.sqrt(np.arange(1003.0))
    out = np.empty_like(y)
    vector_add(pointer(out), pointer(y), pointer(z), y.size)
    np.testing.assert_array_equal(out, y + z)


# ---------------------------------------------------------------- JIT


def test_compiled_functions_are_callable_through_ctypes() -> None:
    check_small(compile_ir(small_module()))


def test_compile_ir_accepts_ir_text() -> None:
    check_small(compile_ir(str(small_module())))


def test_unknown_function_is_a_key_error() -> None:
    native = compile_ir(small_module())
    with pytest.raises(KeyError, match="nope"):
        native.address("nope")


def test_optimized_ir_is_vectorized() -> None:
    native = compile_ir(small_module())
    assert native.ir_unoptimized == str(small_module())
    assert native.ir_optimized != native.ir_unoptimized
    assert "vector.body" in native.ir_optimized
    assert re.search(r"<\d+ x double>", native.ir_optimized)
    assert not re.search(r"<\d+ x double>", native.ir_unoptimized)


# ---------------------------------------------------------------- BLAS


def build_gemm_caller(dtype: np.dtype) -> ir.Module:
    """gemm(transA, transB, M, N, K, A, lda, B, ldb, C, ldc): C = op(A) @ op(B)."""
    module = ir.Module(name=f"gemm_{dtype}")
    gemm = blas.declare_gemm(module, dtype)
    real = gemm.function_type.args[6]
    i32 = ir.IntType(32)
    arguments = [i32, i32, I64, I64, I64, PTR, I64, PTR, I64, PTR, I64]
    caller = ir.Function(module, ir.FunctionType(ir.VoidType(), arguments), "gemm")
    trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc = caller.args
    builder = ir.IRBuilder(caller.append_basic_block("entry"))
    order = ir.Constant(i32, blas.ROW_MAJOR)
    one = ir.Constant(real, 1.0)
    zero = ir.Constant(real, 0.0)
    operands = [order, trans_a, trans_b, m, n, k, one, a, lda, b, ldb, zero, c, ldc]
    builder.call(gemm, operands)
    builder.ret_void()
    return module


GEMM = ctypes.CFUNCTYPE(
    None,
    *[ctypes.c_int32] * 2,
    *[ctypes.c_int64] * 3,
    *[ctypes.c_void_p, ctypes.c_int64] * 3,
)


@pytest.fixture(scope="module")
def gemm_functions() -> dict[np.dtype, tuple[NativeModule, ctypes._CFuncPtr]]:
    if not blas.register_blas():
        pytest.skip("NumPy ships no ILP64 OpenBLAS here")
    compiled = {}
    for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
        native = compile_ir(build_gemm_caller(dtype))
        compiled[dtype] = (native, GEMM(native.address("gemm")))
    return compiled


def test_blas_is_found_and_registered() -> None:
    assert blas.register_blas()
    assert blas.register_blas()  # idempotent
    assert blas.gemm_symbol(np.float64) is not None
    assert blas.gemm_symbol(np.float32) is not None
    assert blas.gemm_symbol(np.int64) is None


def test_declare_gemm_signature_is_ilp64_cblas() -> None:
    module = ir.Module()
    gemm = blas.declare_gemm(module, np.float32)
    assert blas.declare_gemm(module, np.float32) is gemm
    kinds = [str(t) for t in gemm.function_type.args]
    assert kinds[:6] == ["i32", "i32", "i32", "i64", "i64", "i64"]
    assert kinds[6:] == ["float", "ptr", "i64", "ptr", "i64", "float", "ptr", "i64"]
    with pytest.raises(ValueError, match="int32"):
        blas.declare_gemm(module, np.int32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3, 5, 4), (1, 7, 2), (64, 33, 17), (2, 1, 3), (130, 257, 65)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_matches_numpy_matmul(gemm_functions, dtype, shape, trans_a: bool, trans_b: bool) -> None:
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    stored_a = np.ascontiguousarray(a.T) if trans_a else a
    stored_b = np.ascontiguousarray(b.T) if trans_b else b
    c = np.full((m, n), np.nan, dtype=dtype)
    _, gemm = gemm_functions[np.dtype(dtype)]
    flag_a = blas.TRANS if trans_a else blas.NO_TRANS
    flag_b = blas.TRANS if trans_b else blas.NO_TRANS
    gemm(
        flag_a,
        flag_b,
        m,
        n,
        k,
        pointer(stored_a),
        stored_a.shape[1],
        pointer(stored_b),
        stored_b.shape[1],
        pointer(c),
        n,
    )
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(c, a @ b, rtol=tolerance, atol=tolerance)


# ---------------------------------------------------------------- cache


def cache_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.o"))


def test_second_compile_of_the_same_key_hits(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    check_small(compile_ir(small_module(), cache=cache, key="graph-1"))
    assert (cache.hits, cache.misses) == (0, 1)
    assert len(cache_files(tmp_path)) == 1
    native = compile_ir(small_module(), cache=cache, key="graph-1")
    assert (cache.hits, cache.misses) == (1, 1)
    check_small(native)
    assert "vector.body" in native.ir_optimized  # recomputed on demand


def test_a_different_key_or_ir_misses(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    compile_ir(small_module(), cache=cache, key="graph-1")
    compile_ir(small_module(), cache=cache, key="graph-2")
    other = ir.Module(name="other")
    build_add(other)
    compile_ir(other, cache=cache, key="graph-1")
    assert (cache.hits, cache.misses) == (0, 3)


def test_a_cached_blas_call_links_in_a_new_engine(tmp_path, gemm_functions) -> None:
    cache = ObjectCache(tmp_path)
    compile_ir(build_gemm_caller(np.dtype(np.float64)), cache=cache, key="gemm")
    native = compile_ir(build_gemm_caller(np.dtype(np.float64)), cache=cache, key="gemm")
    assert cache.hits == 1
    gemm = GEMM(native.address("gemm"))
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(12.0).reshape(3, 4)
    c = np.zeros((2, 4))
    args = (pointer(a), 3, pointer(b), 4, pointer(c), 4)
    gemm(blas.NO_TRANS, blas.NO_TRANS, 2, 4, 3, *args)
    np.testing.assert_array_equal(c, a @ b)


CHILD = """
import ctypes, sys
from graphc.backends.llvm.cache import ObjectCache
from graphc.backends.llvm.jit import compile_ir
cache = ObjectCache(sys.argv[1])
native = compile_ir(open(sys.argv[2]).read(), cache=cache, key="graph-1")
add = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double)
print(cache.hits, cache.misses, add(native.address("add"))(2.0, 3.5))
"""


def test_another_process_loads_the_cached_object(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    source = tmp_path / "module.ll"
    source.write_text(str(small_module()))
    compile_ir(small_module(), cache=ObjectCache(directory), key="graph-1")
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(directory), str(source)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.split() == ["1", "0", "5.5"]


def damage_truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def damage_flip_payload_bit(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[-7] ^= 0x10
    return bytes(flipped)


def damage_stale_version(data: bytes) -> bytes:
    stale = bytearray(data)
    stale[len(b"graphc-obj\0")] ^= 0x01  # the format version field
    return bytes(stale)


def damage_empty(data: bytes) -> bytes:
    return b""


@pytest.mark.parametrize(
    "damage",
    [damage_truncate, damage_flip_payload_bit, damage_stale_version, damage_empty],
)
def test_a_damaged_entry_is_detected_deleted_and_rebuilt(tmp_path, damage) -> None:
    cache = ObjectCache(tmp_path)
    compile_ir(small_module(), cache=cache, key="graph-1")
    [entry] = cache_files(tmp_path)
    good = entry.read_bytes()
    entry.write_bytes(damage(good))
    key = entry.stem
    assert cache.load(key) is None
    assert not entry.exists()
    native = compile_ir(small_module(), cache=cache, key="graph-1")
    check_small(native)
    assert (cache.hits, cache.misses) == (0, 3)
    assert entry.exists()
    assert cache.load(key) is not None
    assert cache.hits == 1


def test_a_disabled_cache_does_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    cache = ObjectCache(directory, enabled=False)
    check_small(compile_ir(small_module(), cache=cache, key="graph-1"))
    check_small(compile_ir(small_module(), cache=cache, key="graph-1"))
    assert (cache.hits, cache.misses) == (0, 0)
    assert not directory.exists()


def test_an_unusable_directory_does_not_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = ObjectCache(blocker / "cache")
    check_small(compile_ir(small_module(), cache=cache, key="graph-1"))
    check_small(compile_ir(small_module(), cache=cache, key="graph-1"))
    assert (cache.hits, cache.misses) == (0, 2)


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize(("module", "name"), [(tempfile, "mkstemp"), (os, "replace")], ids=["create", "rename"])
def test_a_directory_that_refuses_writes_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: object, name: str
) -> None:
    """A read-only directory (creating the temp file fails) or a write failing half-way (the rename fails):
    no error, no entry, no temp file left behind. The failure is injected, since root ignores permission bits."""
    directory = tmp_path / "cache"
    monkeypatch.setattr(module, name, _refuse)
    cache = ObjectCache(directory)
    check_small(compile_ir(small_module(), cache=cache, key="graph-1"))
    check_small(compile_ir(small_module(), cache=cache, key="graph-1"))
    assert (cache.hits, cache.misses) == (0, 2)
    assert sorted(directory.iterdir()) == []


def test_keys_are_hex_and_depend_on_the_hash(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    assert cache.key("a") == cache.key("a")
    assert cache.key("a") != cache.key("b")
    assert re.fullmatch(r"[0-9a-f]{64}", cache.key("a"))
    with pytest.raises(ValueError, match="not a cache key"):
        cache.load("../escape")


def test_default_directory(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    assert ObjectCache().directory == tmp_path
    monkeypatch.delenv("GRAPHC_CACHE_DIR")
    assert ObjectCache().directory == Path.home() / ".cache" / "graphc"
