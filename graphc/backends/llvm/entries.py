"""The graph-level cache's entries for the llvm backend: what a hit needs to make the function without a Program.

Imports numpy, graphc.schedule (Input), graphc.shapes and the backend's cache, jit,
planner and runtime. gc.compile keys an entry by a structural hash of the unoptimized
graph (graphc.plan_cache); the entry holds what the Python wrapper needs (each input's
name, label and type, the output types, the constant blob, the workspace size, the
error sites, the step count) and the name of the object code in the object cache. A
hit loads that object code and renders the wrapper: no optimizer, schedule, plan,
lowering or LLVM. The plan itself (kernels) is not kept: `plan` and `llvm_ir` of a hit
are made by compiling cold on first use (`CachedFunction`).

Entries are files of an ObjectCache (suffix ".plan"): the same ownership and permission
rules, checksums over key and content, atomic writes. An entry that does not decode, or
whose object code is missing or will not load, is a miss (the caller compiles cold and
writes it again); it never gives a function other than the one the key names.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphc.backends.llvm import jit, runtime
from graphc.backends.llvm.cache import ObjectCache
from graphc.backends.llvm.planner import ErrorSite, Plan
from graphc.schedule import Input
from graphc.shapes import TensorType

FORMAT_VERSION = 1
SUFFIX = ".plan"
_LENGTH = struct.Struct("<Q")


def store(cache_dir: str | Path | None) -> ObjectCache:
    """The graph-level cache: beside the object code, in the same directory, under the same rules."""
    return ObjectCache(cache_dir, suffix=SUFFIX)


def environment() -> str:
    """What the compiled function depends on beyond the graph (with ObjectCache.key's CPU and LLVM).

    The backend's source is not here: the key's digest of all graphc source covers it
    (plan_cache.source_digest).
    """
    runtime.check_abi()
    return f"llvm entries v{FORMAT_VERSION} {runtime.link_environment()}"


def _type(t: TensorType) -> list[object]:
    return [t.dtype.name, [int(d) for d in t.shape]]


def _untype(spelled: list[object]) -> TensorType:
    dtype, shape = spelled
    return TensorType(tuple(int(d) for d in shape), np.dtype(str(dtype)))  # type: ignore[attr-defined]


def encode(built: runtime.LLVMFunction, inputs: Sequence[Input], steps: int) -> bytes | None:
    """The entry for a function built cold with the object cache (None when its code was not cached)."""
    p = built.plan
    if built.object_key is None or built.exact:
        return None
    header = {
        "version": FORMAT_VERSION,
        "object": built.object_key,
        "threads": built.threads,
        "steps": steps,
        "inputs": [[i.name, i.label, _type(i.type)] for i in inputs],
        "outputs": [_type(t) for t in p.outputs],
        "plan_inputs": [_type(t) for t in p.inputs],
        "constants": [[offset, array.dtype.name, list(array.shape)] for offset, array in p.constants],
        "constant_bytes": p.constant_bytes,
        "workspace_bytes": p.workspace_bytes,
        "errors": [[e.exception, e.message, repr(float(e.tol)), int(e.max_iter)] for e in p.errors],
    }
    text = json.dumps(header, sort_keys=True, allow_nan=False).encode()
    blob = b"".join(np.ascontiguousarray(array).tobytes() for _, array in p.constants)
    return _LENGTH.pack(len(text)) + text + blob


@dataclass(frozen=True)
class Entry:
    """A decoded entry: the plan the wrapper needs (no kernels), the Program's inputs, the object's key."""

    plan: Plan
    inputs: tuple[Input, ...]
    object_key: str
    threads: int
    steps: int


def decode(data: bytes) -> Entry | None:
    """The entry in `data`, or None if it is not one this version wrote (never a partial one)."""
    try:
        (length,) = _LENGTH.unpack_from(data)
        header = json.loads(data[_LENGTH.size : _LENGTH.size + length])
        if header["version"] != FORMAT_VERSION:
            return None
        blob = memoryview(data)[_LENGTH.size + length :]
        constants = []
        at = 0
        for offset, dtype, shape in header["constants"]:
            count = int(np.prod(shape, dtype=np.int64))
            array = np.frombuffer(blob, dtype=np.dtype(dtype), count=count, offset=at).reshape(shape)
            at += array.nbytes
            constants.append((int(offset), array))
        if at != len(blob):
            return None
        errors = tuple(ErrorSite(str(e), str(m), float(tol), int(n)) for e, m, tol, n in header["errors"])
        p = Plan(
            inputs=tuple(_untype(t) for t in header["plan_inputs"]),
            outputs=tuple(_untype(t) for t in header["outputs"]),
            kernels=(),
            constants=tuple(constants),
            constant_bytes=int(header["constant_bytes"]),
            workspace_bytes=int(header["workspace_bytes"]),
            errors=errors,
        )
        inputs = tuple(Input(str(n), str(label), _untype(t)) for n, label, t in header["inputs"])
        return Entry(p, inputs, str(header["object"]), int(header["threads"]), int(header["steps"]))
    except (ValueError, TypeError, KeyError, IndexError, struct.error):
        return None


class CachedFunction:
    """A function from the graph-level cache: it runs the cached code; `plan` and `llvm_ir` come from a cold build.

    `cold()` compiles the same graph the usual way (optimizer, schedule, plan; the object
    code from the object cache), once, on the first access to what only it has.
    """

    cache_hit = True
    exact = False

    def __init__(self, hit: runtime.LLVMFunction, steps: int, cold: Callable[[], runtime.LLVMFunction]) -> None:
        self.function = hit.function
        self.source = hit.source
        self.filename = hit.filename
        self.native = hit.native
        self.threads = hit.threads
        self.object_key = hit.object_key
        self.steps = steps
        self._cold = cold
        self._hit = hit

    def release(self) -> None:
        """Free the small workspaces the cached code's wrapper keeps between calls (LLVMFunction.release)."""
        self._hit.release()

    @property
    def plan(self) -> Plan:
        """The plan a cold compile makes (kernels included)."""
        return self._cold().plan

    @property
    def llvm_ir(self) -> runtime.LLVMIR:
        """The optimized and unoptimized IR a cold compile makes."""
        return self._cold().llvm_ir


def load(
    data: bytes,
    objects: ObjectCache,
    *,
    single: bool,
    threads: int,
    rebuild: Callable[[], runtime.LLVMFunction],
    cold: Callable[[], runtime.LLVMFunction],
) -> CachedFunction | None:
    """The function an entry describes, its object code loaded; None when the entry or its code is unusable."""
    entry = decode(data)
    if entry is None or entry.threads != threads:
        return None
    obj = objects.load(entry.object_key)
    if obj is None:
        return None
    try:
        native = jit.load_object(obj)
    except RuntimeError:
        return None
    hit = runtime.wrap(entry.inputs, entry.plan, native, single=single, rebuild=rebuild)
    hit.threads, hit.object_key = threads, entry.object_key
    return CachedFunction(hit, entry.steps, cold)
