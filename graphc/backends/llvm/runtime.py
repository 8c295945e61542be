"""The llvm backend's front door: Program -> native code (cached) -> a checked Python callable.

Imports numpy, ctypes, graphc.backends.numpy_source (argument coercion), graphc.schedule
and the backend's jit, cache, plan and lower. `build` plans the program, looks the plan up
in the on-disk ObjectCache (keyed by the plan's text, which is a structural hash of the
optimized graph with every shape and dtype, and by this backend's source), lowers and
compiles on a miss, and renders a small Python wrapper. The wrapper checks every argument
with the numpy backend's rules and messages (a fast path for arrays of the exact class,
dtype, shape and C strides; `prepare` coerces and copies otherwise), allocates fresh
outputs (large ones over memory a dropped result left: outputs.py), takes a workspace (see
below), and makes the one native call: a CPython builtin (pyentry.py; ctypes where the C
API is out of reach), which releases the GIL for calls with a lot of work. Arrays are
passed as PyObject pointers and the native code reads their data pointers itself: cheaper
than asking NumPy for addresses in Python. So the fast path admits only objects whose type
is exactly ndarray (`type(a)`, which no proxy can fake, never `a.__class__`), of the exact
dtype, shape and C strides; the native code checks their alignment itself
(lower.MISALIGNED).

Workspaces of SHARED_FROM bytes or more come from the process's arena
(graphc.backends.arena): the wrapper takes a block for the call and gives it back in a
`finally`, so an idle function holds none and a first call reuses pages an earlier call
touched. Smaller ones stay with their function in a pool of at most POOL_LIMIT (what that
many concurrent calls use; a call that finds it empty allocates one, workspaces beyond
the limit are freed): taking from the arena costs a lock, which a call that small feels.
`LLVMFunction.release` empties the pool. Either way a call holds its workspace alone.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import hashlib
import itertools
import linecache
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphc.backends import finite
from graphc.backends.arena import ARENA
from graphc.backends.llvm import blas, jit, lapack, outputs, pyentry
from graphc.backends.llvm.cache import ObjectCache
from graphc.backends.llvm.layout import contiguous_strides
from graphc.backends.llvm.lower import (
    DATA_OFFSET,
    ENTRY,
    MISALIGNED,
    RERUN_EXACT,
    arguments,
    lower,
    threads_available,
)
from graphc.backends.llvm.plan import plan
from graphc.backends.llvm.planner import ERROR_SLOT, Plan
from graphc.backends.numpy_source import coerce
from graphc.ops.loops import not_converged
from graphc.schedule import Input, Program, Rendered
from graphc.shapes import fixed

_EXCEPTIONS: dict[str, type[Exception]] = {
    "IndexError": IndexError,
    "ValueError": ValueError,
    "FloatingPointError": FloatingPointError,
    "LinAlgError": np.linalg.LinAlgError,
}
_DTYPE_NAMES = {"float64": "float64", "float32": "float32", "int64": "int64", "bool": "bool_"}
_FILE_NUMBERS = itertools.count()
POOL_LIMIT = max(1, min(os.cpu_count() or 1, 4))
"""The most small workspaces a compiled function keeps between calls."""
SHARED_FROM = 1 << 18
"""Workspaces of this many bytes or more come from the shared arena, smaller ones from the function's pool."""


class LLVMIR(str):
    """`fn.llvm_ir`: both listings as one text; `.optimized` and `.unoptimized` separately."""

    optimized: str
    unoptimized: str

    def __new__(cls, unoptimized: str, optimized: str) -> LLVMIR:
        text = f"; ---- optimized ----\n{optimized}\n; ---- unoptimized ----\n{unoptimized}"
        self = super().__new__(cls, text)
        self.optimized = optimized
        self.unoptimized = unoptimized
        return self


@functools.cache
def backend_version() -> str:
    """A digest of this backend's source: a changed lowering never reuses stale object code."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def check_abi() -> None:
    """The native code reads `PyArrayObject.data` at DATA_OFFSET; make sure this build agrees."""
    probe = np.arange(3.0)
    found = ctypes.c_void_p.from_address(id(probe) + DATA_OFFSET).value
    if found != probe.__array_interface__["data"][0]:
        raise RuntimeError("the llvm backend does not support this Python/NumPy build (PyArrayObject layout)")


# --- arguments --------------------------------------------------------------------------------------------


def prepare(value: object, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The slow path of argument checking: coerce as the numpy backend does, then copy to C order."""
    array = coerce(value, name, shape, dtype)
    if not (array.flags.c_contiguous and array.flags.aligned):
        array = np.array(array, order="C", copy=True)
    return array


def aligned_bytes(nbytes: int, alignment: int = 64) -> np.ndarray:
    """A uint8 array of `nbytes` whose data pointer is a multiple of `alignment`."""
    raw = np.zeros(nbytes + alignment, dtype=np.uint8)
    start = -raw.__array_interface__["data"][0] % alignment
    return raw[start : start + nbytes]


def constant_blob(p: Plan) -> np.ndarray:
    blob = aligned_bytes(p.constant_bytes)
    for offset, array in p.constants:
        blob[offset : offset + array.nbytes] = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    return blob


def raise_error(p: Plan, status: int, workspace: np.ndarray) -> None:
    """Turn the entry's nonzero status into the exception its error site describes."""
    if not 1 <= status <= len(p.errors):
        raise RuntimeError(f"native code returned an unknown status {status}")
    site = p.errors[status - 1]
    index = int(workspace[ERROR_SLOT : ERROR_SLOT + 8].view(np.int64)[0])
    value = float(workspace[ERROR_SLOT + 8 : ERROR_SLOT + 16].view(np.float64)[0])
    if site.exception == "ConvergenceError":
        raise not_converged(index, value, site.tol, site.max_iter, site.message)  # message: the loop's role
    if site.exception == "FloatingPointError":
        raise FloatingPointError(site.message.format(index=index, value=finite.describe(value)))
    raise _EXCEPTIONS[site.exception](site.message.format(index=index))


# --- the wrapper ------------------------------------------------------------------------------------------


def render(inputs: Sequence[Input], p: Plan, *, single: bool, function_name: str = "graphc_llvm") -> str:
    """The Python source of the wrapper around the native entry (`inputs`: the Program's)."""
    # Parameters are a0, a1, ...: no input name can shadow the wrapper's own names.
    params = [f"a{k}" for k in range(len(inputs))]
    # repr: a var's name is the user's text, and may hold newlines; a comment must stay one line
    labels = ", ".join(repr(given.label) for given in inputs)
    lines = ["# generated by graphc's llvm backend", f"def {function_name}({', '.join(params)}):  # {labels}"]
    for name, given in zip(params, inputs, strict=True):
        t = given.type
        dtype = _DTYPE_NAMES[t.dtype.name]
        strides = tuple(s * t.dtype.itemsize for s in contiguous_strides(fixed(t.shape)))
        label = repr(given.label)
        lines.append(
            f"    if type({name}) is not ndarray or {name}.dtype is not {dtype} "
            f"or {name}.shape != {t.shape!r} or {name}.strides != {strides!r}:"
        )
        lines.append(f"        {name} = prepare({name}, {label}, {t.shape!r}, {dtype})")
    results = []
    for k, t in enumerate(p.outputs):
        allocate = "lease" if outputs.leased(fixed(t.shape), t.dtype) else "empty"
        lines.append(f"    r{k} = {allocate}({t.shape!r}, {_DTYPE_NAMES[t.dtype.name]})")
        results.append(f"r{k}")
    call = [*params]
    if p.constant_bytes:
        call.append("constants")
    call += results
    if p.workspace_bytes:
        call.append("w")
    arguments_tuple = f"({', '.join(params)},)" if params else "()"
    native = [
        f"status = entry({', '.join(call)})",
        "if status:",
        f"    return recover(status, {'w' if p.workspace_bytes else 'None'}, {arguments_tuple})",
    ]
    if shared(p):
        lines.append(f"    w = take({p.workspace_bytes})")
        lines += ["    try:", *(f"        {line}" for line in native), "    finally:", "        give(w)"]
    elif p.workspace_bytes:
        lines.append("    w = pool.pop() if pool else workspace()")
        lines += [f"    {line}" for line in native]
        lines.append("    pool.append(w)")
    else:
        lines += [f"    {line}" for line in native]
    lines.append(f"    return {_returned(results, single)}")
    return "\n".join(lines) + "\n"


def shared(p: Plan) -> bool:
    """Whether the plan's workspace comes from the shared arena (else from the function's own pool)."""
    return p.workspace_bytes >= SHARED_FROM


def _returned(results: list[str], single: bool) -> str:
    if single:
        return results[0]
    if len(results) == 1:
        return f"({results[0]},)"
    return f"({', '.join(results)})" if results else "()"


# --- building -----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class LLVMFunction:
    """A compiled program: the wrapper, its source, the plan, and the native module it calls."""

    function: Rendered
    source: str
    filename: str
    plan: Plan
    native: jit.NativeModule
    cache_hit: bool
    exact: bool = False
    threads: int = 1
    object_key: str | None = None  # its entry in the object cache (None: built without the cache)
    _ir: LLVMIR | None = field(default=None, repr=False)
    _recovery: Recovery | None = field(default=None, repr=False)

    def release(self) -> None:
        """Free the small workspaces this function keeps between calls (and its exact variant's, if made)."""
        if self._recovery is None:
            return
        if self._recovery.pool is not None:
            self._recovery.pool.clear()
        if self._recovery.exact is not None:
            self._recovery.exact.release()

    @property
    def llvm_ir(self) -> LLVMIR:
        """The optimized and unoptimized IR (lowered again after a cache hit, on first use)."""
        if self._ir is None and self.native.ir_unoptimized:
            self._ir = LLVMIR(self.native.ir_unoptimized, self.native.ir_optimized)
        if self._ir is None:  # loaded from the cache: lower again (deterministic) and optimize that
            unoptimized = lower(self.plan, pyentry.available(), self.exact, self.threads)
            self._ir = LLVMIR(unoptimized, jit.optimized_text(unoptimized))
        return self._ir


def object_key(p: Plan, cache: ObjectCache, exact: bool = False, threads: int = 1) -> str:
    """The object cache's entry name for a plan's native code (what it links against included)."""
    text = "\n".join([backend_version(), link_environment(), f"exact={exact}", f"threads={threads}", p.key()])
    return cache.key(hashlib.sha256(text.encode()).hexdigest())


def compile_plan(
    p: Plan, cache: ObjectCache | None, exact: bool = False, threads: int = 1
) -> tuple[jit.NativeModule, bool, str | None]:
    """The native module of a plan, from the cache when it holds one: (module, a hit, its object cache key)."""
    entry = None
    link_environment()
    if cache is not None:
        entry = object_key(p, cache, exact, threads)
        obj = cache.load(entry)
        if obj is not None:
            try:
                return jit.load_object(obj), True, entry
            except RuntimeError:  # an entry LLVM cannot load (another LLVM wrote it): rebuild it
                pass
    store = functools.partial(cache.store, entry) if cache is not None and entry is not None else None
    return jit.compile_text(lower(p, pyentry.available(), exact, threads), store), False, entry


@functools.cache
def link_environment() -> str:
    """Register the symbols native code may call (BLAS gemm, LAPACK, pthreads); describe what was found.

    Object code loaded from the cache links against these, so they are registered before
    any load, and what was found is part of the cache key.
    """
    blas.register_blas()
    symbols = [blas.gemm_symbol(np.float64), blas.gemm_symbol(np.float32)]
    return f"blas={symbols} lapack={lapack.register()} threads={threads_available()} fastcall={pyentry.available()}"


def build(
    program: Program,
    *,
    single: bool = False,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    check_finite: bool = False,
    exact: bool = False,
    p: Plan | None = None,
    threads: int = 1,
) -> LLVMFunction:
    """Plan, compile (or load from the cache) and wrap a Program; NotImplementedError names an op it cannot lower.

    `check_finite` checks every float step's result (graphc.backends.finite); `exact`
    builds the variant that takes the C library's sin/cos/tan for huge arguments (made
    on demand, the first time a call meets one); `p` reuses a plan already made;
    `threads`: how many threads a kernel with enough work is shared among (lower.py).
    """
    check_abi()
    p = plan(program, check_finite) if p is None else p
    objects = ObjectCache(cache_dir) if cache else None
    native, hit, key = compile_plan(p, objects, exact, threads)
    rebuild = functools.partial(
        build, program, single=single, cache=cache, cache_dir=cache_dir, exact=True, p=p, threads=threads
    )
    built = wrap(program.inputs, p, native, single=single, rebuild=rebuild)
    built.cache_hit, built.exact, built.threads, built.object_key = hit, exact, threads, key
    return built


def wrap(
    inputs: Sequence[Input], p: Plan, native: jit.NativeModule, *, single: bool, rebuild: Callable[[], LLVMFunction]
) -> LLVMFunction:
    """The checked Python wrapper around a native module (`rebuild`: the exact variant, made on demand)."""
    entry, keep = _native_entry(native, len(arguments(p)))
    source = render(inputs, p, single=single)
    filename = f"<graphc-llvm-{next(_FILE_NUMBERS)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    recovery = Recovery(p, rebuild)
    namespace = _namespace(p, entry, (native, keep), recovery)
    exec(compile(source, filename, "exec"), namespace)
    function = namespace["graphc_llvm"]
    recovery.function = function  # type: ignore[assignment]
    weakref.finalize(function, linecache.cache.pop, filename, None)
    built = LLVMFunction(function, source, filename, p, native, False)  # type: ignore[arg-type]
    built._recovery = recovery
    return built


class Recovery:
    """What the wrapper does with a nonzero status: call again, or raise the site's exception.

    MISALIGNED: call again with aligned copies of the inputs. RERUN_EXACT: call the exact
    build (compiled on first need, then kept). A site: raise its exception.
    """

    def __init__(self, p: Plan, rebuild: Callable[[], LLVMFunction]) -> None:
        self.plan = p
        self.rebuild = rebuild
        self.function: Rendered | None = None
        self.exact: LLVMFunction | None = None
        self.pool: collections.deque[np.ndarray] | None = None

    def __call__(self, status: int, workspace: np.ndarray | None, args: tuple[np.ndarray, ...]) -> object:
        if status == MISALIGNED:
            self._give_back(workspace)
            assert self.function is not None
            return self.function(*(a if a.flags.aligned else a.copy() for a in args))
        if status == RERUN_EXACT:
            self._give_back(workspace)
            if self.exact is None:
                self.exact = self.rebuild()
            return self.exact.function(*args)
        raise_error(self.plan, status, workspace)  # type: ignore[arg-type]
        raise AssertionError("unreachable: raise_error raises")

    def _give_back(self, workspace: np.ndarray | None) -> None:
        if workspace is not None and self.pool is not None:
            self.pool.append(workspace)


def _native_entry(native: jit.NativeModule, count: int) -> tuple[Callable[..., int], object]:
    """The entry as a builtin function (METH_FASTCALL) where possible, else through ctypes."""
    if pyentry.available():
        return pyentry.builtin(native.address(pyentry.CALL))
    signature = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.py_object] * count))
    return signature(native.address(ENTRY)), None


def _namespace(p: Plan, entry: Callable[..., int], native: object, recover: Recovery) -> dict[str, object]:
    pool: collections.deque[np.ndarray] = collections.deque(maxlen=POOL_LIMIT)
    recover.pool = None if shared(p) else pool  # an arena block goes back in the wrapper's `finally`
    namespace: dict[str, object] = {
        "__name__": "graphc.generated",
        "ndarray": np.ndarray,
        "empty": np.empty,
        "lease": outputs.POOL.lease,
        "prepare": prepare,
        "entry": entry,
        "native": native,  # keeps the machine code (and the method definition) alive with the wrapper
        "pool": pool,
        "take": ARENA.take,
        "give": ARENA.give,
        "workspace": functools.partial(aligned_bytes, p.workspace_bytes),
        "recover": recover,
        "float64": np.dtype(np.float64),
        "float32": np.dtype(np.float32),
        "int64": np.dtype(np.int64),
        "bool_": np.dtype(np.bool_),
    }
    if p.constant_bytes:
        namespace["constants"] = constant_blob(p)
    return namespace
