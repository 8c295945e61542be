"""A CPython builtin function (METH_FASTCALL) around the native entry: the cheapest call Python has.

Imports ctypes and llvmlite. `add_fastcall` defines `graphc_call(self, args, nargs)`, which
hands the argument objects to the entry and returns its status as a Python int
(PyLong_FromLong). Programs with a lot of work release the GIL around the entry
(PyEval_SaveThread / PyEval_RestoreThread), as ctypes would. `builtin` wraps the
compiled address in a PyMethodDef and PyCFunction_NewEx, so a call costs what calling
`len` costs instead of a libffi round trip through ctypes. Where the Python C API
cannot be reached from JIT code (not CPython), `available()` is False and the backend
falls back to a ctypes function.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

import llvmlite.binding as llvm
from llvmlite import ir

CALL = "graphc_call"
METH_FASTCALL = 0x0080
_API = ("PyLong_FromLong", "PyEval_SaveThread", "PyEval_RestoreThread")
_PTR = ir.PointerType()
_I64 = ir.IntType(64)


class PyMethodDef(ctypes.Structure):
    _fields_ = [
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    ]


@functools.cache
def available() -> bool:
    """Whether this is CPython with its C API in the process; if so its symbols are registered for JIT code."""
    if sys.implementation.name != "cpython":
        return False
    try:
        addresses = {name: ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value for name in _API}
        ctypes.pythonapi.PyCFunction_NewEx  # noqa: B018 (present, or AttributeError)
    except AttributeError:
        return False
    for name, address in addresses.items():
        llvm.add_symbol(name, address)
    return True


def _declare(module: ir.Module, name: str, result: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(result, args), name)


def add_fastcall(module: ir.Module, entry: ir.Function, release_gil: bool, by_array: bool = False) -> None:
    """Define `ptr graphc_call(ptr self, ptr args, i64 nargs)`: the entry's status as a new Python int.

    `by_array`: the entry takes the argument objects as one array (fastcall's own `args`).
    """
    fn = ir.Function(module, ir.FunctionType(_PTR, [_PTR, _PTR, _I64]), CALL)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    _, args, _ = fn.args
    if by_array:
        objects = [args]
    else:
        objects = [
            b.load(b.gep(args, [ir.Constant(_I64, k)], source_etype=_PTR), typ=_PTR) for k in range(len(entry.args))
        ]
    state = None
    if release_gil:
        state = b.call(_declare(module, "PyEval_SaveThread", _PTR, []), [])
    status = b.call(entry, objects)
    if state is not None:
        b.call(_declare(module, "PyEval_RestoreThread", ir.VoidType(), [_PTR]), [state])
    result = b.call(_declare(module, "PyLong_FromLong", _PTR, [_I64]), [b.sext(status, _I64)])
    b.ret(result)


_NAME = b"graphc_native"  # the builtins' name: a module constant, alive as long as any builtin


def builtin(address: int) -> tuple[Callable[..., int], bytes]:
    """A builtin function calling the METH_FASTCALL code at `address`.

    CPython reads the PyMethodDef while freeing the function (meth_dealloc), so the
    definition must outlive it, also when a garbage collection frees the wrapper's
    namespace: a ctypes Structure there can have its buffer freed first (tp_clear). The
    definition is therefore an immutable bytes object, which the GC never clears, held
    as the function's `self`.
    """
    layout = PyMethodDef(_NAME, address, METH_FASTCALL, None)
    definition = bytes(layout)  # a copy; its name pointer is _NAME's buffer
    where = ctypes.cast(ctypes.c_char_p(definition), ctypes.c_void_p)
    new = ctypes.pythonapi.PyCFunction_NewEx
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
    return new(where, definition, None), definition
