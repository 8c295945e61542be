"""The user-facing Tensor: a symbolic value with NumPy's operators, methods and promotion.

Imports errors, shapes, ir, ops, numpy_protocol and viz (Jupyter reprs), never
graphc.functions, which imports this module.
A Tensor wraps one interned Node, and there is one Tensor per node (Tensor(node)
returns the existing one), so a Tensor hashes and is found in dicts and sets by
identity. `==` and `!=` are elementwise, as in NumPy and JAX, and give boolean Tensors;
`bool()` of a symbolic Tensor raises (its value exists only when the graph runs), so
`x in [a, b]` and `list.index` work only when they meet `x` itself first. The
NumPy-named functions live in graphc.functions; this module holds what operators and
methods need: lifting Python and NumPy values, dtype promotion (NEP 50: Python scalars
are weak), reductions, mean, transpose, squeeze, matmul (which graphc.functions
re-exports), and indexing (static, or a gather through take).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from graphc import viz
from graphc.errors import DTypeError, GraphError, ShapeError, located, user_location
from graphc.ir import Node
from graphc.numpy_protocol import array_function, array_ufunc
from graphc.ops import OPS
from graphc.ops import elementwise as ew
from graphc.ops import linalg as la
from graphc.ops import reduce as rd
from graphc.ops import shape as sh
from graphc.ops.source import const as const_node
from graphc.ops.source import const_value, dim_value
from graphc.ops.source import var as var_node
from graphc.shapes import (
    BOOL,
    FLOAT64,
    INT64,
    Dim,
    DimLike,
    as_dtype,
    as_shape,
    is_float,
    normalize_axes,
    normalize_axis,
    product,
    resolve_reshape,
    result_dtype,
    slice_bounds,
    sliced_length,
)

TensorLike: TypeAlias = "Tensor | npt.ArrayLike"
"""An operand of graphc's functions and operators: a Tensor, or what np.asarray takes (an array, a number, a list)."""
DTypeLike: TypeAlias = npt.DTypeLike
"""A dtype as NumPy takes it ("float32", np.float32, np.dtype(...), float); graphc has float64, float32, int64, bool."""

NUMPY_FUNCTIONS: dict[str, Callable[..., object]] = {}
"""graphc's NumPy-named functions by name, for np.exp(t) and np.sum(t) (graphc.functions fills it)."""


class _TensorRef(weakref.ref):
    """A weak reference to the Tensor of a node, which knows its entry: id(node)."""

    __slots__ = ("key",)
    key: int


_TENSORS: dict[int, _TensorRef] = {}
"""id(node) -> its Tensor, while that Tensor lives (it holds its node, so the id is not reused meanwhile).

A plain dict of weak references rather than a WeakValueDictionary, whose Python-level
lookup cost a graph's build a tenth of its time.
"""


def _forget(ref: _TensorRef, table: dict[int, _TensorRef] = _TENSORS) -> None:
    """A Tensor died: drop its entry (unless a new Tensor of that node has taken it already).

    `table` is bound at definition, as weakref's own callbacks do: at interpreter exit the
    module's globals may be gone before the last Tensors are.
    """
    if table.get(ref.key) is ref:
        del table[ref.key]


class Tensor:
    """A symbolic array: static `.shape` and `.dtype`, NumPy operators and methods.

    `a == b` is elementwise (a boolean Tensor, like NumPy); `a is b` is identity, and
    dicts and sets of Tensors work by identity (one Tensor per node). A symbolic
    Tensor has no truth value: `if a == b:` raises TypeError.
    """

    __slots__ = ("__weakref__", "node")

    def __new__(cls, node: Node) -> Tensor:
        """The Tensor of `node`: the same object for the same node (subclasses are not shared).

        The table holds Tensors weakly, so a Tensor nobody uses is freed (and its entry with it)
        and the next one for that node is new.
        """
        if cls is not Tensor:
            return object.__new__(cls)
        ref = _TENSORS.get(id(node))
        existing = None if ref is None else ref()
        if existing is not None:
            return existing
        tensor = object.__new__(cls)
        ref = _TensorRef(tensor, _forget)
        ref.key = id(node)
        _TENSORS[ref.key] = ref
        return tensor

    def __init__(self, node: Node) -> None:
        self.node = node

    def __copy__(self) -> Tensor:
        return self  # immutable

    def __deepcopy__(self, memo: dict) -> Tensor:
        return self

    shape = property(lambda self: self.node.shape, doc="The static shape: a tuple of ints and named dimensions (Dim).")
    dtype = property(lambda self: self.node.dtype, doc="The NumPy dtype.")
    ndim = property(lambda self: self.node.ndim, doc="The number of axes.")
    size = property(lambda self: self.node.type.size, doc="The number of elements (a Dim with named dimensions).")

    @property
    def name(self) -> str | None:
        """The name of a var; None for computed values."""
        return str(self.node.attr("name")) if self.node.op.name == "var" else None

    def _repr_html_(self) -> str:
        """Jupyter: the graph of this Tensor, drawn (small graphs) or summarized (big ones)."""
        return viz.repr_html(self)

    def _repr_svg_(self) -> str | None:
        """Jupyter: the graph drawn by Graphviz when `dot` is installed, else None."""
        return viz.repr_svg(self)

    def __repr__(self) -> str:
        label = self.name if self.name is not None else self.node.op.name
        return f"Tensor({label}, {self.node.type})"

    def __hash__(self) -> int:
        return id(self.node)

    def __eq__(self, other: TensorLike) -> Tensor:  # type: ignore[override]
        """Elementwise ==, as numpy.equal (identity is `is`)."""
        return arith("equal", self, other) if _liftable(other) else NotImplemented

    def __ne__(self, other: TensorLike) -> Tensor:  # type: ignore[override]
        """Elementwise !=, as numpy.not_equal."""
        return arith("not_equal", self, other) if _liftable(other) else NotImplemented

    def __bool__(self) -> bool:
        """The value of a one-element constant; a TypeError for anything the graph computes."""
        return bool(self._constant("bool"))

    def __int__(self) -> int:
        return int(self._constant("int"))

    def __float__(self) -> float:
        return float(self._constant("float"))

    def _constant(self, what: str) -> np.ndarray:
        """The value of a one-element constant Tensor, for bool()/int()/float()."""
        value = const_value(self.node)
        if value is None:
            problem = "has no truth value" if what == "bool" else f"has no {what}() value"
            raise TypeError(
                f"a symbolic Tensor {problem} ({self!r}): its value exists only when the graph runs; "
                "use gc.where for data-dependent choices, `is` to compare Tensors themselves (== is elementwise), "
                "and gc.evaluate or gc.compile for values"
            )
        if value.size != 1:
            raise TypeError(f"{what}() of a constant Tensor with {value.size} elements; only one-element ones convert")
        return value.reshape(())

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        """A constant's value; symbolic Tensors have none (np.asarray(t) is a TypeError)."""
        value = const_value(self.node)
        if value is None:
            raise TypeError(
                f"a symbolic Tensor ({self!r}) has no array value until the graph runs; "
                "use gc.evaluate or gc.compile, or the graphc function (np.exp(t) works and builds gc.exp)"
            )
        return np.array(value, dtype=dtype)  # type: ignore[call-overload]

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: object, **kwargs: object) -> object:
        """np.exp(t), ndarray + t, np.add.reduce(t): the graphc equivalent, or a TypeError naming it."""
        return array_ufunc(ufunc, method, inputs, kwargs, NUMPY_FUNCTIONS)

    def __array_function__(self, func: object, types: object, args: tuple, kwargs: dict) -> object:
        """np.sum(t), np.concatenate([t, u]), ...: the graphc function of that name, or a TypeError."""
        return array_function(func, args, kwargs, NUMPY_FUNCTIONS)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        n = self.shape[0]
        if isinstance(n, Dim):
            with building("len", self):
                raise ShapeError(f"the first axis is named ({n}): its length is known only when a call binds it")
        return n

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    # arithmetic
    def __add__(self, other: TensorLike) -> Tensor:
        return arith("add", self, other)

    def __radd__(self, other: TensorLike) -> Tensor:
        return arith("add", other, self)

    def __sub__(self, other: TensorLike) -> Tensor:
        return arith("sub", self, other)

    def __rsub__(self, other: TensorLike) -> Tensor:
        return arith("sub", other, self)

    def __mul__(self, other: TensorLike) -> Tensor:
        return arith("mul", self, other)

    def __rmul__(self, other: TensorLike) -> Tensor:
        return arith("mul", other, self)

    def __truediv__(self, other: TensorLike) -> Tensor:
        return arith("div", self, other)

    def __rtruediv__(self, other: TensorLike) -> Tensor:
        return arith("div", other, self)

    def __pow__(self, other: TensorLike) -> Tensor:
        return arith("pow", self, other)

    def __rpow__(self, other: TensorLike) -> Tensor:
        return arith("pow", other, self)

    def __mod__(self, other: TensorLike) -> Tensor:
        return arith("mod", self, other)

    def __rmod__(self, other: TensorLike) -> Tensor:
        return arith("mod", other, self)

    def __floordiv__(self, other: TensorLike) -> Tensor:
        return arith("floor_divide", self, other)

    def __rfloordiv__(self, other: TensorLike) -> Tensor:
        return arith("floor_divide", other, self)

    def __divmod__(self, other: TensorLike) -> tuple[Tensor, Tensor]:
        return arith("floor_divide", self, other), arith("mod", self, other)

    def __rdivmod__(self, other: TensorLike) -> tuple[Tensor, Tensor]:
        return arith("floor_divide", other, self), arith("mod", other, self)

    def __invert__(self) -> Tensor:
        """~t: logical NOT of a bool Tensor, bitwise NOT of an int64 one (numpy.invert)."""
        return invert(self)

    def __matmul__(self, other: TensorLike) -> Tensor:
        return matmul(self, other)

    def __rmatmul__(self, other: TensorLike) -> Tensor:
        return matmul(other, self)

    def __neg__(self) -> Tensor:
        with building("negative", self):
            return Tensor(ew.neg(self.node))

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return Tensor(ew.abs_(self.node))

    def __lt__(self, other: TensorLike) -> Tensor:
        return arith("less", self, other)

    def __le__(self, other: TensorLike) -> Tensor:
        return arith("less_equal", self, other)

    def __gt__(self, other: TensorLike) -> Tensor:
        return arith("greater", self, other)

    def __ge__(self, other: TensorLike) -> Tensor:
        return arith("greater_equal", self, other)

    def __getitem__(self, key: object) -> Tensor:
        return getitem(self, key)

    # methods
    @property
    def T(self) -> Tensor:
        return self.transpose()

    def transpose(self, *axes: int) -> Tensor:
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        target = shape[0] if len(shape) == 1 else shape
        return reshape(self, target)  # type: ignore[arg-type]

    def astype(self, dtype: DTypeLike) -> Tensor:
        return astype(self, dtype)

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return reduction("sum", self, axis, keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return mean(self, axis, keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return reduction("max", self, axis, keepdims)

    def var(
        self,
        axis: int | Sequence[int] | None = None,
        dtype: DTypeLike | None = None,
        ddof: int = 0,
        keepdims: bool = False,
    ) -> Tensor:
        """The variance, as numpy.ndarray.var (gc.variance)."""
        return variance(self, axis, dtype, ddof, keepdims)

    def std(
        self,
        axis: int | Sequence[int] | None = None,
        dtype: DTypeLike | None = None,
        ddof: int = 0,
        keepdims: bool = False,
    ) -> Tensor:
        """The standard deviation, as numpy.ndarray.std (gc.std)."""
        return std(self, axis, dtype, ddof, keepdims)

    def any(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return any_(self, axis, keepdims)

    def all(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return all_(self, axis, keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return reduction("min", self, axis, keepdims)

    def prod(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return reduction("prod", self, axis, keepdims)

    def flatten(self) -> Tensor:
        return reshape(self, (-1,))

    def ravel(self) -> Tensor:
        """The elements as a 1-D Tensor in C order, as numpy.ravel."""
        return reshape(self, (-1,))

    def squeeze(self, axis: int | Sequence[int] | None = None) -> Tensor:
        return squeeze(self, axis)


# --- building helpers ------------------------------------------------------------------


_REFUSED = (GraphError, IndexError, ValueError, TypeError, NotImplementedError)


class building:  # lower case: it reads as a function, `with building("sum", x):`
    """Name `name`, the operand types and the user's line in the errors of bad arguments raised inside.

    Those are GraphError, IndexError, and the ValueError, TypeError and NotImplementedError
    of arguments that a function refuses (as NumPy would); other errors pass unchanged.
    A class rather than a generator: every operator enters one, and a generator-based
    context manager cost a graph's build a sixth of its time.
    """

    __slots__ = ("name", "operands")

    def __init__(self, name: str, *operands: object) -> None:
        self.name = name
        self.operands = operands

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, _REFUSED):
            types = ", ".join(str(o.node.type) if isinstance(o, Tensor) else repr(o) for o in self.operands)
            raise located(exc, f"{self.name}({types})", user_location()) from None


def var(name: str, shape: int | str | Sequence[int | str | Dim] = (), dtype: DTypeLike = "float64") -> Tensor:
    """A symbolic input named `name`; float64 scalar by default.

    A dimension is an int or a name (`shape=("batch", 64)`): a named dimension takes its
    size from each call of the compiled function, and inputs sharing a name must agree.
    """
    with building("var", name):
        return Tensor(var_node(str(name), as_shape(shape), as_dtype(dtype)))


def const(value: TensorLike, dtype: DTypeLike | None = None) -> Tensor:
    """A constant array (copied); Python floats become float64 and ints int64 unless `dtype` says."""
    with building("const", value):
        array = _as_array(value)
        if dtype is not None:
            array = array.astype(as_dtype(dtype))
        return Tensor(const_node(array))


def _as_array(value: object) -> np.ndarray:
    """An ndarray of one of graphc's dtypes (other integer widths become int64)."""
    array = np.asarray(value)
    if array.dtype.kind in "iu":
        return array.astype(INT64)
    if array.dtype.kind == "f" and array.dtype.itemsize < 4:
        return array.astype(np.float32)
    as_dtype(array.dtype)
    return array


def _liftable(value: object) -> bool:
    """True for what operators lift to a Tensor: Tensors, Python and NumPy numbers, numeric arrays and lists."""
    if isinstance(value, (Tensor, bool, int, float)):
        return True
    if isinstance(value, (np.generic, np.ndarray)):
        return value.dtype.kind in "biuf"
    if not isinstance(value, (list, tuple)):
        return False
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False


def _is_weak(value: object) -> bool:
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def as_tensor(value: TensorLike, dtype: DTypeLike | None = None) -> Tensor:
    """A Tensor from a Tensor, a Python scalar or an array-like (a constant)."""
    if isinstance(value, Tensor):
        return value if dtype is None else astype(value, dtype)
    return const(value, dtype)


def promote(*operands: TensorLike) -> list[Tensor]:
    """The operands as Tensors of one dtype, by NumPy's rules (Python scalars are weak)."""
    strong = [o for o in operands if not _is_weak(o)]
    if not strong:
        dtype = result_dtype(*(np.asarray(o).dtype for o in operands))
    else:
        tensors = [as_tensor(o) for o in strong]
        dtype = result_dtype(*(t.dtype for t in tensors))
        dtype = _weak_promotion(dtype, [o for o in operands if _is_weak(o)])
    return [as_tensor(o, dtype) if not _is_weak(o) else const(o, dtype) for o in operands]


_EXACT_INT = 2**53  # ints up to this size are exact in float64


def _unpromoted(a: TensorLike, b: TensorLike) -> tuple[Node, Node] | None:
    """The operands' nodes when promotion leaves them as they are, else None (promote decides).

    That is two float Tensors of one dtype, or a float64 Tensor and a Python float or an int
    exact in float64: NEP 50 gives the scalar the Tensor's dtype, and its constant here is
    the one promote makes (the same bytes, so the same interned node). The common case of
    a graph built in a loop, taken without promote's general machinery.
    """
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            same = a.node.type.dtype == b.node.type.dtype and is_float(a.node.type.dtype)
            return (a.node, b.node) if same else None
        scalar = _weak_float64(b, a)
        return None if scalar is None else (a.node, scalar)
    if isinstance(b, Tensor):
        scalar = _weak_float64(a, b)
        return None if scalar is None else (scalar, b.node)
    return None


_SCALARS: dict[str, weakref.ref[Node]] = {}  # float.hex() of a Python scalar -> its live float64 const node
_MAX_SCALARS = 1 << 12


def _weak_float64(value: object, other: Tensor) -> Node | None:
    """The constant of a Python float or exact int meeting a float64 Tensor, or None (float32 casts may warn)."""
    if other.node.type.dtype != FLOAT64:
        return None
    kind = type(value)
    if kind is not float and not (kind is int and -_EXACT_INT <= value <= _EXACT_INT):  # type: ignore[operator]
        return None
    number = float(value)  # type: ignore[arg-type]
    if number != number:  # NaN: its payload is in the bytes, not in hex()
        return const_node(np.array(value, dtype=FLOAT64))
    return _scalar_const(number)


def _scalar_const(number: float) -> Node:
    """The interned float64 const of a non-NaN Python float, remembered weakly by its exact spelling (hex).

    A live node here is the one the intern table holds for these bytes (-0.0 and 0.0 spell
    differently), so this only skips making the ConstValue to look it up; loops reuse a few.
    """
    key = number.hex()
    ref = _SCALARS.get(key)
    node = None if ref is None else ref()
    if node is None:
        node = const_node(np.array(number, dtype=FLOAT64))
        if len(_SCALARS) >= _MAX_SCALARS:
            _SCALARS.clear()
        _SCALARS[key] = weakref.ref(node)
    return node


def _weak_promotion(dtype: np.dtype, weak: list[object]) -> np.dtype:
    """NEP 50: a Python scalar only raises the dtype's kind (bool < int < float)."""
    kinds = {type(w) for w in weak}
    if float in kinds and not is_float(dtype):
        return FLOAT64
    if int in kinds and dtype == BOOL:
        return INT64
    return dtype


def arith(name: str, a: TensorLike, b: TensorLike) -> Tensor:
    """The binary elementwise op `name` (add, sub, ..., equal) with NumPy promotion and broadcasting."""
    with building(name, a, b):
        same = _unpromoted(a, b)
        if same is not None:
            return Tensor(OPS[name](*same))
        x, y = promote(a, b)
        if name == "div" and not is_float(x.dtype):
            x, y = astype(x, FLOAT64), astype(y, FLOAT64)
        if x.dtype == BOOL and name in ("add", "mul", "sub", "pow"):
            return _bool_arith(name, x, y)
        return Tensor(OPS[name](x.node, y.node))


def _bool_arith(name: str, x: Tensor, y: Tensor) -> Tensor:
    if name == "add":
        return Tensor(ew.logical_or(x.node, y.node))
    if name == "mul":
        return Tensor(ew.logical_and(x.node, y.node))
    raise DTypeError(f"{name} is not defined for bool operands (NumPy neither)")


def astype(x: TensorLike, dtype: DTypeLike) -> Tensor:
    """`x` cast to `dtype` (a no-op when it already has it)."""
    with building("astype", x):
        t = as_tensor(x)
        target = as_dtype(dtype)
        if t.dtype == target:
            return t
        return Tensor(ew.astype(t.node, dtype=target))


def to_float(x: TensorLike) -> Tensor:
    """`x` as a float tensor: ints and bools become float64 (NumPy's float functions)."""
    t = as_tensor(x)
    return t if is_float(t.dtype) else astype(t, FLOAT64)


def reshape(x: TensorLike, shape: int | Sequence[int | str | Dim]) -> Tensor:
    with building("reshape", x, shape):
        t = as_tensor(x)
        target = resolve_reshape(t.shape, shape)
        if target == t.shape:
            return t
        return Tensor(sh.reshape(t.node, shape=target))


def reduce_axes(x: Tensor, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    return normalize_axes(axis, x.ndim)


def reduction(name: str, x: TensorLike, axis: int | Sequence[int] | None, keepdims: bool) -> Tensor:
    """sum/prod/max/min/logsumexp over `axis` (None: all axes) with NumPy's dtype rules."""
    with building(name, x):
        t = as_tensor(x)
        if name in ("sum", "prod") and not is_float(t.dtype):
            t = astype(t, INT64)
        if name == "logsumexp":
            t = to_float(t)
        op = {"sum": rd.sum_, "prod": rd.prod, "max": rd.max_, "min": rd.min_, "logsumexp": rd.logsumexp}[name]
        return Tensor(op(t.node, axis=reduce_axes(t, axis), keepdims=bool(keepdims)))


# --- the functions behind methods (graphc.functions re-exports them) ---------------------


def mean(a: TensorLike, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """sum / count in the float dtype (ints and bools average in float64)."""
    with building("mean", a):
        t = to_float(a)
        axes = normalize_axes(axis, t.ndim)
        count = product(t.shape[i] for i in axes)
        return reduction("sum", t, axes, keepdims) / Tensor(dim_value(count, t.dtype))


def variance(
    a: TensorLike,
    axis: int | Sequence[int] | None = None,
    dtype: DTypeLike | None = None,
    ddof: int = 0,
    keepdims: bool = False,
) -> Tensor:
    """Variance as numpy.var: sum((a - mean(a))^2) / max(n - ddof, 0) over `axis` (ints and bools in float64).

    `dtype` is the float type to compute in. Named `variance` because gc.var makes symbols;
    `Tensor.var` is this function.
    """
    with building("variance", a):
        t = to_float(a if dtype is None else as_tensor(a, dtype))
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer, float)):
            raise TypeError(f"ddof must be a number, not {ddof!r}")
        axes = normalize_axes(axis, t.ndim)
        count = product(t.shape[i] for i in axes)
        centered = t - mean(t, axes, keepdims=True)
        total = reduction("sum", centered * centered, axes, keepdims)
        if isinstance(count, Dim):  # max(n - ddof, 0) computed once the call binds n
            return total / arith("maximum", Tensor(dim_value(count, t.dtype)) - ddof, 0)
        return total / const(np.asarray(max(count - ddof, 0), dtype=t.dtype))


def std(
    a: TensorLike,
    axis: int | Sequence[int] | None = None,
    dtype: DTypeLike | None = None,
    ddof: int = 0,
    keepdims: bool = False,
) -> Tensor:
    """Standard deviation as numpy.std: the square root of `variance` (same arguments)."""
    with building("std", a):
        return Tensor(ew.sqrt(variance(a, axis, dtype, ddof, keepdims).node))


def truth(a: TensorLike) -> Tensor:
    """`a` as a bool Tensor: itself when bool, else a != 0 (NaN is True), as NumPy's logical functions."""
    t = as_tensor(a)
    return t if t.dtype == BOOL else arith("not_equal", t, 0)


def logical_not(x: TensorLike) -> Tensor:
    """Elementwise NOT of the truth values, as numpy.logical_not (a bool result)."""
    with building("logical_not", x):
        return Tensor(ew.logical_not(truth(x).node))


def invert(x: TensorLike) -> Tensor:
    """~x as numpy.invert: logical NOT of a bool Tensor, bitwise NOT (x ^ -1) of an int64 one; floats have none."""
    with building("invert", x):
        t = as_tensor(x)
        if t.dtype == BOOL:
            return Tensor(ew.logical_not(t.node))
        if is_float(t.dtype):
            raise DTypeError(f"~ (invert) takes bool or int64 Tensors, not {t.dtype} (NumPy neither)")
        return Tensor(OPS["bitwise_xor"](t.node, const(np.int64(-1)).node))


def any_(a: TensorLike, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """Whether any element along `axis` is true (nonzero; NaN counts), as numpy.any: a bool Tensor."""
    with building("any", a, axis):
        return arith("greater", reduction("sum", truth(a), axis, keepdims), 0)


def all_(a: TensorLike, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """Whether every element along `axis` is true (nonzero; NaN counts), as numpy.all: a bool Tensor."""
    with building("all", a, axis):
        return arith("equal", reduction("sum", logical_not(a), axis, keepdims), 0)


def transpose(a: TensorLike, axes: Sequence[int] | None = None) -> Tensor:
    """Permute the axes (reverse them when `axes` is None), as numpy.transpose."""
    with building("transpose", a, axes):
        t = as_tensor(a)
        if axes is None:
            perm = tuple(reversed(range(t.ndim)))
        else:
            if not isinstance(axes, (tuple, list)):
                raise ShapeError(f"axes must be a tuple of ints or None, not {axes!r}")
            perm = tuple(normalize_axis(i, t.ndim) for i in axes)
            if len(perm) != t.ndim or sorted(perm) != list(range(t.ndim)):
                raise ShapeError(f"axes {tuple(axes)} do not match an array of dimension {t.ndim}")
        if perm == tuple(range(t.ndim)):
            return t
        return Tensor(sh.transpose(t.node, axes=perm))


def squeeze(a: TensorLike, axis: int | Sequence[int] | None = None) -> Tensor:
    """Remove length-1 axes (all of them, or those in `axis`, which must have length 1)."""
    with building("squeeze", a, axis):
        t = as_tensor(a)
        axes = tuple(i for i, n in enumerate(t.shape) if n == 1) if axis is None else normalize_axes(axis, t.ndim)
        for i in axes:
            if t.shape[i] != 1:
                raise ShapeError(f"cannot select an axis to squeeze out which has size not equal to one (axis {i})")
        return reshape(t, tuple(n for i, n in enumerate(t.shape) if i not in axes))


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """Matrix product with numpy.matmul's conventions (1-D operands, broadcast batch axes)."""
    with building("matmul", a, b):
        x, y = (to_float(t) for t in promote(a, b))
        if x.ndim == 0 or y.ndim == 0:
            raise ShapeError("matmul: input operand does not have enough dimensions (0-d)")
        k = y.shape[0] if y.ndim == 1 else y.shape[-2]
        if x.shape[-1] != k:  # checked here so the message shows the caller's shapes, not the 2-D views
            raise ShapeError(f"contracted dimensions differ: {x.shape} @ {y.shape} ({x.shape[-1]} != {k})")
        xm = reshape(x, (1, x.shape[0])) if x.ndim == 1 else x
        ym = reshape(y, (y.shape[0], 1)) if y.ndim == 1 else y
        out = Tensor(la.matmul(xm.node, ym.node))
        shape = out.shape
        if y.ndim == 1:
            shape = shape[:-1]
        if x.ndim == 1:
            shape = shape[:-2] + shape[-1:] if y.ndim > 1 else shape[:-1]
        return reshape(out, shape)


def take(a: TensorLike, indices: TensorLike, axis: int | None = None) -> Tensor:
    """numpy.take: gather along `axis` (None: the flattened array); negative indices count
    from the end; an out-of-range index raises IndexError when the function is called."""
    with building("take", a, indices):
        t = as_tensor(a)
        idx = as_tensor(indices) if isinstance(indices, Tensor) else const(np.asarray(indices), INT64)
        if is_float(idx.dtype) or idx.dtype == BOOL:
            raise DTypeError(f"indices must be integers, got {idx.dtype}")
        if axis is None:
            t = reshape(t, (-1,))
            axis = 0
        ax = normalize_axis(axis, t.ndim)
        return Tensor(sh.take(t.node, idx.node, axis=ax))


# --- indexing ----------------------------------------------------------------------------

_GATHER = slice(None)  # stands for the one integer-array index while the basic part is indexed
_MASK_HELP = (
    "boolean mask indexing gives a shape that depends on the data (how many entries are True), "
    "and graphc shapes are static: use gc.where(mask, x, 0) to keep the shape, or, for a mask "
    "known when building, gc.take(x, np.flatnonzero(mask), axis)"
)


def _is_array_index(item: object) -> bool:
    return isinstance(item, (Tensor, np.ndarray, list))


def _expand_key(items: list[object], ndim: int) -> list[object]:
    """The index items with `...` and the missing trailing axes as full slices."""
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise IndexError(_MASK_HELP)
    if sum(item is Ellipsis for item in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(1 for item in items if item is not None and item is not Ellipsis)
    if used > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but {used} were indexed")
    at = next((i for i, item in enumerate(items) if item is Ellipsis), None)
    if at is not None:
        items[at : at + 1] = [slice(None)] * (ndim - used)
    else:
        items += [slice(None)] * (ndim - used)
    return items


def getitem(x: Tensor, key: object) -> Tensor:
    """x[key] as NumPy: ints, slices (any step), None and ... index statically; one integer
    array, list or int Tensor among them gathers along its axis (gc.take)."""
    with building("getitem", x, key):
        items = list(key) if isinstance(key, tuple) else [key]
        arrays = [i for i, item in enumerate(items) if _is_array_index(item)]
        if not arrays:
            return _basic_index(x, _expand_key(items, x.ndim))
        if len(arrays) > 1:
            raise IndexError("graphc gathers with one integer array per index: index in two steps")
        index = items[arrays[0]]
        items[arrays[0]] = _GATHER
        expanded = _expand_key(items, x.ndim)
        at = next(i for i, item in enumerate(expanded) if item is _GATHER)
        basic = _basic_index(x, expanded)
        axis = sum(1 for item in expanded[:at] if item is None or isinstance(item, slice))
        return _gather(basic, index, axis, _advanced_first(expanded, at))


def _advanced_first(items: list[object], at: int) -> bool:
    """True when int indices and the array index are apart: NumPy then puts the array's axes first."""
    positions = sorted([at, *(i for i, item in enumerate(items) if isinstance(item, (int, np.integer)))])
    return positions != list(range(positions[0], positions[-1] + 1))


def _gather(x: Tensor, index: object, axis: int, first: bool) -> Tensor:
    """x gathered along `axis` by an integer index (checked against the axis now when it is a constant).

    On a named axis a constant index is checked when the function is called, as a Tensor index is.
    """
    if isinstance(index, Tensor):
        if index.dtype == BOOL:
            raise IndexError(_MASK_HELP)
        if is_float(index.dtype):
            raise IndexError(f"an index Tensor must have an integer dtype, got {index.dtype}")
        idx: Tensor | np.ndarray = index
    else:
        idx = _constant_index(index, x.shape[axis], axis)
    static = not isinstance(x.shape[axis], Dim)
    if static and isinstance(idx, np.ndarray) and idx.size == 1:  # one element: a static slice (a view), not a gather
        result = _one_element(x, int(idx.flat[0]), idx.shape, axis)
    else:
        result = take(x, idx, axis)
    k = result.ndim - x.ndim + 1  # the index's axes, at `axis`
    if not first or axis == 0 or k == 0:
        return result
    moved = list(range(axis, axis + k))
    return transpose(result, moved + [i for i in range(result.ndim) if i not in moved])


def _one_element(x: Tensor, i: int, shape: tuple[int, ...], axis: int) -> Tensor:
    """take(x, i reshaped to `shape`, axis) as a slice: x's axis replaced by `shape` (all ones, or none)."""
    items: list[object] = [slice(None)] * x.ndim
    items[axis] = slice(i % x.shape[axis], i % x.shape[axis] + 1)
    sliced = _basic_index(x, items)
    return reshape(sliced, x.shape[:axis] + shape + x.shape[axis + 1 :])


def _constant_index(index: object, n: DimLike, axis: int) -> np.ndarray:
    """A list or array index as int64, checked against the axis length `n` (when it is known)."""
    array = np.asarray(index)
    if array.dtype == np.bool_:
        raise IndexError(_MASK_HELP)
    if array.size == 0:
        array = array.astype(INT64)
    if array.dtype.kind not in "iu":
        raise IndexError(f"arrays used as indices must be of integer type, got {array.dtype}")
    if isinstance(n, Dim):
        return array.astype(INT64)
    bad = array[(array < -n) | (array >= n)]
    if bad.size:
        raise IndexError(f"index {int(bad.flat[0])} is out of bounds for axis {axis} with size {n}")
    return array.astype(INT64)


def _basic_index(x: Tensor, items: list[object]) -> Tensor:
    """x[items] for ints, slices and None (items cover every axis of x), as NumPy's basic indexing.

    On a named axis, bounds are not clipped (shapes.slice_bounds): x[1:] has length batch-1,
    and a call whose batch is 0 fails naming that dimension.
    """
    index: list[tuple[DimLike, DimLike, int]] = []
    shape: list[DimLike] = []
    axis = 0
    for item in items:
        if item is None:
            shape.append(1)
            continue
        n = x.shape[axis]
        if isinstance(item, slice):
            bounds = slice_bounds(item, n)
            index.append(bounds)
            shape.append(sliced_length(*bounds))
        else:
            i = _int_index(item, n, axis)
            index.append((i, i + 1, 1))
        axis += 1
    node = x.node
    if any(bounds != (0, n, 1) for bounds, n in zip(index, x.shape, strict=True)):
        node = sh.slice_(node, index=tuple(index))
    if tuple(shape) != node.shape:
        node = sh.reshape(node, shape=tuple(shape))
    return Tensor(node)


def _int_index(item: object, n: DimLike, axis: int) -> DimLike:
    if not isinstance(item, (int, np.integer)):
        raise IndexError(
            f"only integers, slices, None, ..., integer arrays and int Tensors are valid indices, not {item!r}"
        )
    i = int(item)
    if isinstance(n, Dim):  # checked when the call binds n
        return i if i >= 0 else n + i
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
    return i % n


__all__ = [
    "ShapeError", "Tensor", "all_", "any_", "arith", "as_tensor", "astype", "building", "const", "getitem", "invert",
    "logical_not", "matmul", "mean", "promote", "reduction", "reshape", "squeeze", "std", "to_float", "transpose",
    "truth", "var", "variance",
]  # fmt: skip
