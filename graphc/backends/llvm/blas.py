"""The BLAS that NumPy already ships, made callable from JIT-compiled code.

Responsibility: find NumPy's ILP64 OpenBLAS, register its cblas gemm symbols with LLVM,
and declare them in a module with the right signature; resolve the library's Fortran
(LAPACK) routines under the same naming (`fortran_symbol`, used by lapack.py). Imports ctypes, numpy and
llvmlite; nothing from graphc. Only 64-bit-integer (ILP64) builds are accepted, since
the declaration passes sizes as i64.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np
from numpy.typing import DTypeLike

# CBLAS enum values (cblas.h); the enums are C ints, the sizes are 64-bit.
ROW_MAJOR = 101
COL_MAJOR = 102
NO_TRANS = 111
TRANS = 112

_LIBRARY_PATTERNS = ("libscipy_openblas64_*", "libopenblas64*", "libopenblas*")
_SHARED_SUFFIXES = (".so", ".dylib", ".dll")
_NAME_FORMS = (("scipy_", "64_"), ("", "64_"), ("scipy_", ""), ("", ""))


@dataclass(frozen=True)
class _Blas:
    """A loaded library (kept open), the gemm symbol registered for each dtype, and its naming (prefix, suffix)."""

    library: ctypes.CDLL
    symbols: dict[np.dtype, str]
    prefix: str
    suffix: str


def _library_dirs() -> list[Path]:
    """Where NumPy wheels put OpenBLAS, then the scipy_openblas64 package."""
    numpy_dir = Path(np.__file__).parent
    dirs = [numpy_dir.parent / "numpy.libs", numpy_dir / ".libs", numpy_dir / ".dylibs"]
    spec = importlib.util.find_spec("scipy_openblas64")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            dirs.append(Path(location) / "lib")
    return [d for d in dirs if d.is_dir()]


def _is_shared_library(path: Path) -> bool:
    return path.is_file() and any(s in path.name for s in _SHARED_SUFFIXES)


def _candidate_libraries() -> list[Path]:
    found: list[Path] = []
    for directory in _library_dirs():
        for pattern in _LIBRARY_PATTERNS:
            for path in sorted(directory.glob(pattern)):
                if _is_shared_library(path) and path not in found:
                    found.append(path)
    return found


def _address(library: ctypes.CDLL, name: str) -> int | None:
    try:
        function = getattr(library, name)
    except AttributeError:
        return None
    return ctypes.cast(function, ctypes.c_void_p).value


def _uses_64bit_ints(library: ctypes.CDLL, prefix: str, suffix: str) -> bool:
    """A `64_` suffix says ILP64; otherwise ask OpenBLAS for its build configuration."""
    if suffix == "64_":
        return True
    config = _address(library, f"{prefix}openblas_get_config{suffix}")
    if config is None:
        return False
    get_config = ctypes.CFUNCTYPE(ctypes.c_char_p)(config)
    return b"USE64BITINT" in (get_config() or b"")


def _find_naming(library: ctypes.CDLL) -> tuple[str, str] | None:
    """The first ILP64 (prefix, suffix) under which the library exports cblas dgemm and sgemm."""
    for prefix, suffix in _NAME_FORMS:
        double = f"{prefix}cblas_dgemm{suffix}"
        single = f"{prefix}cblas_sgemm{suffix}"
        if not _address(library, double) or not _address(library, single):
            continue
        if _uses_64bit_ints(library, prefix, suffix):
            return prefix, suffix
    return None


@functools.cache
def _blas() -> _Blas | None:
    """Load the first usable library: the file NumPy loaded, so one copy, one pool."""
    for path in _candidate_libraries():
        try:
            library = ctypes.CDLL(str(path))
        except OSError:
            continue
        naming = _find_naming(library)
        if naming is None:
            continue
        prefix, suffix = naming
        double, single = f"{prefix}cblas_dgemm{suffix}", f"{prefix}cblas_sgemm{suffix}"
        llvm.add_symbol(double, _address(library, double))
        llvm.add_symbol(single, _address(library, single))
        symbols = {np.dtype(np.float64): double, np.dtype(np.float32): single}
        return _Blas(library, symbols, prefix, suffix)
    return None


def register_blas() -> bool:
    """Make the cblas gemm symbols resolvable by JIT code; False if none was found."""
    return _blas() is not None


def gemm_symbol(dtype: DTypeLike) -> str | None:
    """The registered cblas gemm symbol for float64/float32, or None if unavailable."""
    blas = _blas()
    if blas is None:
        return None
    return blas.symbols.get(np.dtype(dtype))


def fortran_symbol(routine: str) -> str | None:
    """The registered symbol of a Fortran routine of the library (`dgesv` -> `scipy_dgesv_64_`), or None.

    Fortran names end in `_`, then the library's ILP64 suffix: the naming of its cblas symbols.
    """
    blas = _blas()
    if blas is None:
        return None
    name = f"{blas.prefix}{routine}_{blas.suffix}"
    address = _address(blas.library, name)
    if not address:
        return None
    llvm.add_symbol(name, address)
    return name


def declare_gemm(module: ir.Module, dtype: DTypeLike) -> ir.Function:
    """Declare (once per module) the ILP64 cblas gemm for `dtype`.

    Arguments: order, transA, transB (i32 enums), M, N, K (i64), alpha, A, lda (i64),
    B, ldb (i64), beta, C, ldc (i64); alpha and beta have the element type.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"cblas gemm takes float64 or float32, not {dtype}")
    name = gemm_symbol(dtype)
    if name is None:
        raise RuntimeError("no ILP64 OpenBLAS with cblas gemm found next to NumPy")
    if name in module.globals:
        return module.globals[name]
    real = ir.DoubleType() if dtype == np.float64 else ir.FloatType()
    enum, size, ptr = ir.IntType(32), ir.IntType(64), ir.PointerType()
    arguments = [enum, enum, enum, size, size, size, real, ptr, size, ptr, size]
    signature = ir.FunctionType(ir.VoidType(), [*arguments, real, ptr, size])
    return ir.Function(module, signature, name)
