"""NumPy's dispatch protocols for Tensors: np.exp(t), np.sum(t, axis=0), ndarray + t build graphc nodes.

Imports numpy and graphc.errors only. Tensor.__array_ufunc__ and Tensor.__array_function__ call here with
`namespace`, graphc's NumPy-named functions by name (tensor.NUMPY_FUNCTIONS, which
graphc.functions fills), so that imports go one way: tensor imports this module, and
functions imports tensor. A NumPy function or ufunc that graphc has (by NumPy's name,
or the few spelled differently: np.absolute is gc.abs, np.amax is gc.max) is called with
the same arguments; a keyword graphc does not take (out=, dtype=, where=) and a function
graphc lacks raise TypeError saying what to use instead. Nothing here computes values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import numpy as np

from graphc.errors import located, user_location

Namespace = Mapping[str, Callable[..., object]]

# NumPy name -> graphc.functions name, where they differ
_RENAMED = {
    "absolute": "abs", "true_divide": "divide", "amax": "max", "amin": "min", "around": "round",
    "concat": "concatenate", "permute_dims": "transpose", "remainder": "mod", "var": "variance",
}  # fmt: skip
# ufunc.reduce(t, axis) -> the reduction
_REDUCTIONS = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min"}
# what to use for NumPy functions graphc lacks (the rest get the generic advice)
_INSTEAD = {
    "positive": "the Tensor itself (+x)",
    "reciprocal": "1 / x",
    "shape": "x.shape",
    "ndim": "x.ndim",
    "size": "x.size",
    "copy": "the Tensor itself (Tensors are immutable)",
}
# why a NumPy keyword is refused, and what to write instead
_KEYWORDS = {
    "out": "Tensors are immutable, so there is no out=",
    "where": "select first, e.g. gc.where(mask, x, 0) (0 or the reduction's identity)",
    "initial": "combine it with the result instead, e.g. gc.sum(x) + initial",
    "dtype": "cast first with x.astype(dtype)",
}


def _graphc_function(name: str, namespace: Namespace) -> Callable[..., object] | None:
    return namespace.get(_RENAMED.get(name, name))


def _unsupported(name: str) -> TypeError:
    instead = _INSTEAD.get(name)
    advice = f"use {instead}" if instead is not None else "build it from graphc functions (gc.*)"
    return TypeError(
        f"np.{name} is not supported on graphc Tensors (graphc has no {name}); {advice}, "
        "or apply it to a value from gc.evaluate or a compiled function"
    )


def _call(name: str, function: Callable[..., object], args: tuple, kwargs: dict) -> object:
    """function(*args, **kwargs), refusing keywords it does not take (None-valued ones are dropped)."""
    accepted = inspect.signature(function).parameters
    extra = sorted(k for k, v in kwargs.items() if k not in accepted and v is not None)
    if extra:
        advice = "; ".join(f"{k}=: {_KEYWORDS[k]}" for k in extra if k in _KEYWORDS)
        error = TypeError(
            f"not supported on graphc Tensors: gc.{function.__name__} takes ({', '.join(accepted)})"
            + (f"; {advice}" if advice else "")
        )
        raise located(error, f"np.{name}(..., {', '.join(f'{k}=' for k in extra)})", user_location())
    if len(args) > len(accepted):
        raise TypeError(f"np.{name}: gc.{function.__name__} takes at most {len(accepted)} arguments")
    kept = {k: v for k, v in kwargs.items() if k in accepted}
    return function(*args, **kept)


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict, namespace: Namespace) -> object:
    """The graphc equivalent of ufunc(*inputs) (method "__call__") or of ufunc.reduce(x, axis)."""
    name = ufunc.__name__
    out = kwargs.pop("out", None)
    if out is not None and any(o is not None for o in out):
        raise TypeError(f"np.{name}(..., out=) is not supported on graphc Tensors: they are immutable")
    if method == "reduce" and name in _REDUCTIONS:
        function = _graphc_function(_REDUCTIONS[name], namespace)
        assert function is not None
        args = (inputs[0], kwargs.pop("axis", 0), kwargs.pop("keepdims", False))
        return _call(f"{name}.reduce", function, args, kwargs)
    if method != "__call__":
        raise TypeError(f"np.{name}.{method} is not supported on graphc Tensors")
    function = _graphc_function(name, namespace)
    if function is None:
        raise _unsupported(name)
    return _call(name, function, inputs, kwargs)


def array_function(func: object, args: tuple, kwargs: dict, namespace: Namespace) -> object:
    """The graphc function of NumPy function `func`'s name, called with the same arguments."""
    name = getattr(func, "__name__", repr(func))
    if not _is_plain_numpy(func) and _is_numpy_linalg(func):  # np.linalg.solve(t, b): gc.linalg.solve
        name = f"linalg.{name}"
    elif not _is_plain_numpy(func):  # numpy.fft, ...: nothing of graphc's yet
        module = str(getattr(func, "__module__", "numpy"))
        raise _unsupported(f"{module}.{name}".removeprefix("numpy."))
    function = _graphc_function(name, namespace)
    if function is None:
        raise _unsupported(name)
    return _call(name, function, args, kwargs)


def _is_numpy_linalg(func: object) -> bool:
    """True for a function of numpy.linalg (np.linalg.solve, np.linalg.norm, ...)."""
    name = getattr(func, "__name__", None)
    return name is not None and getattr(np.linalg, name, None) is func


def _is_plain_numpy(func: object) -> bool:
    """True for a function of the numpy namespace itself (not numpy.linalg, numpy.fft, ...)."""
    name = getattr(func, "__name__", None)
    return name is not None and getattr(np, name, None) is func


__all__ = ["array_function", "array_ufunc"]
