"""LLVM IR -> optimized native code in this process (MCJIT), with an on-disk cache.

Responsibility: the host target machine, the new-pass-manager pipeline, and turning a
module into callable addresses; a cache hit skips parsing, optimization and codegen.
Imports llvmlite (which only the llvm backend imports); the cache is anything with an
ObjectStore's methods (cache.ObjectCache, which imports this module for `host_cpu`).
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable
from typing import Protocol

import llvmlite.binding as llvm
import llvmlite.ir
from llvmlite.binding import ffi, newpassmanagers

GLUE = "\n; graphc: the glue module (compiled without optimization)\n"
"""Separates a huge plan's glue module from its kernel module in one IR text (lower.lower)."""
BUNDLE = b"graphc-bundle\0"
"""Starts the object code of a kernel module and its glue module stored as one (an ELF object starts otherwise)."""
_LENGTH = struct.Struct("<Q")


class ObjectStore(Protocol):
    """Where object code is kept between processes, by key (cache.ObjectCache)."""

    def key(self, structural_hash: str) -> str: ...

    def load(self, key: str) -> bytes | None: ...

    def store(self, key: str, obj: bytes) -> None: ...


@functools.cache
def _initialize() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@functools.cache
def host_cpu() -> tuple[str, str]:
    """The host CPU's LLVM name and feature string (what the object code targets)."""
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def _host_target_machine() -> llvm.TargetMachine:
    _initialize()
    cpu, features = host_cpu()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=cpu, features=features, opt=3, codemodel="jitdefault")


@functools.cache
def target_machine() -> llvm.TargetMachine:
    """The host CPU (name and features) at optimization level 3; created once.

    Shared: never give it to `create_mcjit_compiler`, whose engine frees its machine.
    """
    return _host_target_machine()


def glue_target_machine() -> llvm.TargetMachine:
    """The host CPU for glue code: no optimization, the JIT's (large) code model.

    A fresh one per use: code generation sets options on its machine, and compiles may run
    on several threads (llvmlite releases the GIL).

    Not the small code model, though LLVM selects instructions for it with FastISel (about
    1 s less at a 10,000-step chain; the large model makes every call fall back to
    SelectionDAG): the glue's object is linked into an engine whose sections the memory
    manager may map more than 2 GiB apart, and the small model's 32-bit PC-relative
    references (to the GOT, to constants) then overflow. With LLVM's assertions on that
    aborted the process (a 100,000-step chain, RuntimeDyldELF `isInt<32>(RealOffset)`);
    without them it would jump to wrong addresses.
    """
    _initialize()
    cpu, features = host_cpu()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=cpu, features=features, opt=0, codemodel="jitdefault")


def split_glue(ir_text: str) -> tuple[str, str]:
    """(the kernel module's text, the glue module's text or "") of an IR text lower.lower made."""
    kernels, _, glue = ir_text.partition(GLUE)
    return kernels, glue


def bundle(kernels: bytes, glue: bytes) -> bytes:
    """The object code of a kernel module and its glue module as one blob (unbundle reverses it)."""
    return BUNDLE + _LENGTH.pack(len(kernels)) + kernels + glue


def unbundle(obj: bytes) -> list[bytes]:
    """The object files in a blob: a bundle's two, or the blob itself."""
    if not obj.startswith(BUNDLE):
        return [obj]
    start = len(BUNDLE) + _LENGTH.size
    if len(obj) < start:
        raise RuntimeError("a truncated object bundle")
    (length,) = _LENGTH.unpack_from(obj, len(BUNDLE))
    if start + length > len(obj):
        raise RuntimeError("a truncated object bundle")
    return [obj[start : start + length], obj[start + length :]]


def optimize(module: llvm.ModuleRef, speed_level: int = 3) -> None:
    """Run LLVM's O`speed_level` pipeline, vectorizers on, over `module` in place."""
    tm = target_machine()
    options = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    options.loop_vectorization = True
    options.slp_vectorization = True
    builder = llvm.create_pass_builder(tm, options)
    manager = builder.getModulePassManager()
    try:
        manager.run(module, builder)
    finally:
        _dispose(manager)
        builder.close()
        options.close()


def _dispose(manager: llvm.ModulePassManager) -> None:
    """Free a module pass manager now.

    In llvmlite 0.45-0.50 `ModulePassManager._dispose` resolves to ObjectRef's no-op (the
    base classes are listed in the wrong order), so closing it freed nothing: about 90 KB
    of native memory per optimized module. Call the real disposal, then detach.
    """
    if type(manager)._dispose is not ffi.ObjectRef._dispose:
        manager.close()
        return
    newpassmanagers.NewPassManager._dispose(manager)
    manager.detach()


def _parse(ir_text: str) -> llvm.ModuleRef:
    """Parse and verify IR, retargeted to the host so the optimizer knows the CPU."""
    _initialize()
    module = llvm.parse_assembly(ir_text)
    module.verify()
    tm = target_machine()
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    return module


def optimized_module(ir_text: str) -> llvm.ModuleRef:
    """Parse, verify, optimize (O3, vectorizers on) and verify again: the module as it will be compiled."""
    module = _parse(ir_text)
    optimize(module)
    module.verify()
    return module


def optimized_text(ir_text: str) -> str:
    """The IR as it is compiled: the kernel module optimized, a glue module (never optimized) as LLVM prints it."""
    kernels, glue = split_glue(ir_text)
    optimized = str(optimized_module(kernels))
    return optimized + GLUE + str(_parse(glue)) if glue else optimized


def glue_object(glue_text: str) -> bytes:
    """The object code of a glue module: parsed, verified, code-generated at O0 (glue_target_machine)."""
    return glue_target_machine().emit_object(_parse(glue_text))


class NativeModule:
    """Compiled code in this process; keep it alive while its addresses are in use."""

    def __init__(
        self,
        engine: llvm.ExecutionEngine,
        ir_unoptimized: str,
        ir_optimized: str | None,
    ) -> None:
        self._engine = engine
        self.ir_unoptimized = ir_unoptimized
        self._ir_optimized = ir_optimized

    @property
    def ir_optimized(self) -> str:
        """The IR after optimization (recomputed on first use after a cache hit)."""
        if self._ir_optimized is None:
            self._ir_optimized = optimized_text(self.ir_unoptimized)
        return self._ir_optimized

    def address(self, name: str) -> int:
        """The entry address of function `name`; KeyError if it is not defined."""
        address = self._engine.get_function_address(name)
        if address == 0:
            raise KeyError(f"no native function named {name!r}")
        return address


def _engine_from_module(
    module: llvm.ModuleRef, on_object: Callable[[bytes], None] | None, glue: bytes | None = None
) -> llvm.ExecutionEngine:
    """Code-generate `module` (and link the `glue` object to it); `on_object` receives the object code.

    With glue, `on_object` receives the bundle of both (bundle()).
    """
    # An engine owns (and frees) its target machine, so each gets a fresh one.
    engine = llvm.create_mcjit_compiler(module, _host_target_machine())
    made: list[bytes] = []
    if on_object is not None:

        def notify(_module: llvm.ModuleRef, obj: bytes) -> None:
            made.append(obj)

        engine.set_object_cache(notify_func=notify)
    if glue is not None:
        engine.add_object_file(llvm.ObjectFileRef.from_data(glue))
    engine.finalize_object()
    if on_object is not None and made:
        on_object(made[0] if glue is None else bundle(made[0], glue))
    return engine


def load_object(obj: bytes, ir_text: str = "") -> NativeModule:
    """Object code (from a cache; a bundle too) in a fresh engine: no parsing, optimization or codegen.

    `ir_text`: the unoptimized IR it was compiled from, when known. RuntimeError when LLVM
    cannot load the object.
    """
    engine = llvm.create_mcjit_compiler(_parse(""), _host_target_machine())
    for part in unbundle(obj):
        engine.add_object_file(llvm.ObjectFileRef.from_data(part))
    engine.finalize_object()
    return NativeModule(engine, ir_text, None)


def compile_text(ir_text: str, on_object: Callable[[bytes], None] | None = None) -> NativeModule:
    """Optimize and JIT the IR (a glue module after GLUE at O0, unoptimized); `on_object` receives the object code.

    The optimized IR text is made on first use (NativeModule.ir_optimized).
    """
    kernels, glue = split_glue(ir_text)
    optimized = optimized_module(kernels)
    engine = _engine_from_module(optimized, on_object, glue_object(glue) if glue else None)
    return NativeModule(engine, ir_text, None)


def compile_ir(
    module: llvmlite.ir.Module | str,
    *,
    cache: ObjectStore | None = None,
    key: str | None = None,
) -> NativeModule:
    """Parse, verify, optimize and JIT `module`, or load its object code from `cache`.

    `key` is the structural hash of what the IR computes. The cache entry is keyed by
    it, by the IR text (a changed lowering never reuses stale code) and, through
    `ObjectCache.key`, by the host CPU and the llvmlite version.
    """
    ir_text = str(module)
    if cache is None:
        return compile_text(ir_text)
    ir_hash = hashlib.sha256(ir_text.encode()).hexdigest()
    entry = cache.key(f"{key or ''}:{ir_hash}")
    obj = cache.load(entry)
    if obj is not None:
        return load_object(obj, ir_text)
    return compile_text(ir_text, functools.partial(cache.store, entry))
