"""Static types: the four dtypes, named dimensions, TensorType, broadcasting and shape arithmetic.

Imports only errors. Every check raises ShapeError/DTypeError with a message
that names what was wrong; the caller (the node constructor) adds the op and
the user's line.

A dimension is an int or a `Dim`: a polynomial over named sizes with integer
coefficients (`batch`, `batch+1`, `2*batch`, `batch*seq`), kept in one canonical form
so equal dimensions compare and hash equal. A Dim is never constant (arithmetic that
cancels the names gives an int), so `n == 1` is False for every Dim, and a named
dimension broadcasts only against 1 or itself. Anything that needs the number a Dim
stands for (`int(d)`, `range(d)`, `d < 3`) raises ShapeError naming it: its value
exists only when a compiled function is called. A dimension has at most MAX_TERMS terms
of degree at most MAX_DEGREE, so shape arithmetic costs a bounded time per node even on
a graph read from a hostile file (a product of 64 two-name sums would have 2**64 terms).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from graphc.errors import DTypeError, ShapeError

Monomial = tuple[tuple[str, int], ...]  # (name, power) pairs sorted by name; () is the constant term
Poly = dict[Monomial, int]

FLOAT64 = np.dtype("float64")
FLOAT32 = np.dtype("float32")
INT64 = np.dtype("int64")
BOOL = np.dtype("bool")
DTYPES: tuple[np.dtype, ...] = (FLOAT64, FLOAT32, INT64, BOOL)

MAX_TERMS = 32  # terms of one dimension: (a+1)*(b+1)*(c+1)*(d+1) has 16
MAX_DEGREE = 16  # names multiplied in one term, counted with their powers: batch**2*seq has 3

_SHORT = {FLOAT64: "f64", FLOAT32: "f32", INT64: "i64", BOOL: "bool"}


def as_dtype(dtype: object) -> np.dtype:
    """The graphc dtype for a NumPy dtype-like; DTypeError for anything else."""
    try:
        d = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise DTypeError(f"not a dtype: {dtype!r}") from exc
    if d not in DTYPES:
        names = ", ".join(str(t) for t in DTYPES)
        raise DTypeError(f"unsupported dtype {d}; graphc supports {names}")
    return d


def is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def short_name(dtype: np.dtype) -> str:
    return _SHORT[dtype]


# --- named dimensions -------------------------------------------------------------------


def _mono_mul(a: Monomial, b: Monomial) -> Monomial:
    powers = dict(a)
    for name, k in b:
        powers[name] = powers.get(name, 0) + k
    return tuple(sorted(powers.items()))


def _mono_div(a: Monomial, b: Monomial) -> Monomial | None:
    """a / b when b divides a, else None."""
    powers = dict(a)
    for name, k in b:
        left = powers.get(name, 0) - k
        if left < 0:
            return None
        powers[name] = left
    return tuple(sorted((n, k) for n, k in powers.items() if k))


def _degree(m: Monomial) -> int:
    return sum(k for _, k in m)


def _poly(value: int | Dim) -> Poly:
    if isinstance(value, Dim):
        return dict(value.terms)
    return {(): int(value)} if value else {}


def _add(p: Poly, q: Poly, sign: int = 1) -> Poly:
    out = dict(p)
    for m, c in q.items():
        out[m] = out.get(m, 0) + sign * c
    return {m: c for m, c in out.items() if c}


def _mul(p: Poly, q: Poly) -> Poly:
    out: Poly = {}
    for m1, c1 in p.items():
        for m2, c2 in q.items():
            m = _mono_mul(m1, m2)
            out[m] = out.get(m, 0) + c1 * c2
    return {m: c for m, c in out.items() if c}


def _divide(p: Poly, q: Poly) -> Poly | None:
    """p / q when q divides p exactly (integer coefficients), else None: division by leading terms."""
    names = sorted({n for m in (*p, *q) for n, _ in m})
    keys: dict[Monomial, tuple[int, tuple[int, ...]]] = {}

    def order(m: Monomial) -> tuple[int, tuple[int, ...]]:  # graded lexicographic, each key made once
        key = keys.get(m)
        if key is None:
            powers = dict(m)
            key = keys[m] = (_degree(m), tuple(powers.get(n, 0) for n in names))
        return key

    lead = max(q, key=order)
    quotient: Poly = {}
    rest = dict(p)
    while rest:
        top = max(rest, key=order)
        m = _mono_div(top, lead)
        if m is None or rest[top] % q[lead]:
            return None
        c = rest[top] // q[lead]
        quotient[m] = c
        _check_bounded(quotient)  # each step adds a term: the loop ends within MAX_TERMS + 1 steps
        rest = _add(rest, _mul({m: c}, q), -1)
    return quotient


def _check_bounded(p: Poly) -> None:
    """ShapeError for a polynomial beyond MAX_TERMS terms or MAX_DEGREE."""
    degree = max((_degree(m) for m in p), default=0)
    if len(p) > MAX_TERMS or degree > MAX_DEGREE:
        raise ShapeError(
            f"a dimension of {len(p)} terms and degree {degree} is beyond what graphc represents "
            f"(at most {MAX_TERMS} terms, each a product of at most {MAX_DEGREE} names)"
        )


def _dim(p: Poly) -> int | Dim:
    """The canonical value of a polynomial: an int when it has no names."""
    if not p:
        return 0
    if set(p) == {()}:
        return p[()]
    _check_bounded(p)
    return Dim(p)


def _term_text(m: Monomial, c: int) -> str:
    factors = [name if k == 1 else f"{name}**{k}" for name, k in m]
    if not factors:
        return str(abs(c))
    if abs(c) != 1:
        factors.insert(0, str(abs(c)))
    return "*".join(factors)


class Dim:
    """A symbolic dimension: a polynomial over named sizes with integer coefficients, never constant.

    Made from a name with `Dim.named("batch")` (or a string in a shape) and combined with
    `+ - *` and `exact_div`; results that lose their names are ints. Hashes and compares
    by its canonical form; prints canonically (`batch`, `batch+1`, `2*batch`, `batch*seq`).
    """

    __slots__ = ("_hash", "terms")

    terms: tuple[tuple[Monomial, int], ...]
    _hash: int

    def __init__(self, poly: Poly) -> None:
        order = sorted(poly, key=lambda m: (-_degree(m), m))
        object.__setattr__(self, "terms", tuple((m, poly[m]) for m in order))
        object.__setattr__(self, "_hash", hash(("Dim", self.terms)))

    @staticmethod
    def named(name: str) -> Dim:
        """The dimension called `name` (an identifier, e.g. "batch")."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ShapeError(f"a dimension name must be an identifier such as 'batch', not {name!r}")
        return Dim({((name, 1),): 1})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Dim is immutable")

    @property
    def names(self) -> tuple[str, ...]:
        """The names it depends on, sorted."""
        return tuple(sorted({n for m, _ in self.terms for n, _ in m}))

    @property
    def name(self) -> str | None:
        """The name when the dimension is exactly one name, else None."""
        if len(self.terms) == 1 and self.terms[0][1] == 1 and len(self.terms[0][0]) == 1:
            name, power = self.terms[0][0][0]
            return name if power == 1 else None
        return None

    def evaluate(self, sizes: Mapping[str, int]) -> int:
        """The size for these bindings of its names (KeyError for an unbound one)."""
        total = 0
        for m, c in self.terms:
            value = c
            for name, k in m:
                value *= sizes[name] ** k
            total += value
        return total

    def __str__(self) -> str:
        text = ""
        for m, c in self.terms:
            sign = "-" if c < 0 else ("+" if text else "")
            text += sign + _term_text(m, c)
        return text

    def __repr__(self) -> str:
        return str(self)  # shapes print as (batch, 64), in messages and in the text form alike

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dim):
            return self.terms == other.terms
        if isinstance(other, (int, np.integer)):
            return False  # a Dim is never constant
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __add__(self, other: object) -> int | Dim:
        if not isinstance(other, (int, np.integer, Dim)):
            return NotImplemented
        return _dim(_add(_poly(self), _poly(other)))  # type: ignore[arg-type]

    __radd__ = __add__

    def __sub__(self, other: object) -> int | Dim:
        if not isinstance(other, (int, np.integer, Dim)):
            return NotImplemented
        return _dim(_add(_poly(self), _poly(other), -1))  # type: ignore[arg-type]

    def __rsub__(self, other: object) -> int | Dim:
        if not isinstance(other, (int, np.integer)):
            return NotImplemented
        return _dim(_add(_poly(int(other)), _poly(self), -1))

    def __neg__(self) -> int | Dim:
        return _dim(_add({}, _poly(self), -1))

    def __mul__(self, other: object) -> int | Dim:
        if not isinstance(other, (int, np.integer, Dim)):
            return NotImplemented
        return _dim(_mul(_poly(self), _poly(other)))  # type: ignore[arg-type]

    __rmul__ = __mul__

    def _unknown(self, what: str) -> ShapeError:
        names = ", ".join(self.names)
        return ShapeError(
            f"{what} of the dimension {self} is not known when building: it depends on the named "
            f"dimension{'s' if len(self.names) > 1 else ''} {names}, whose size comes with each call"
        )

    def __index__(self) -> int:
        raise self._unknown("the value")

    __int__ = __index__

    def __float__(self) -> float:
        raise self._unknown("the value")

    def __bool__(self) -> bool:
        raise self._unknown("whether it is zero")

    def _compare(self, other: object) -> bool:
        raise self._unknown(f"a comparison with {other}")

    __lt__ = __le__ = __gt__ = __ge__ = _compare

    def _divide(self, other: object) -> int:
        raise self._unknown(f"a quotient, remainder or power with {other}")

    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _divide
    __divmod__ = __rdivmod__ = __pow__ = __rpow__ = _divide

    def __reduce__(self) -> tuple[object, ...]:
        return (Dim, (dict(self.terms),))


DimLike = int | Dim
Shape = tuple[DimLike, ...]


def exact_div(a: int | Dim, b: int | Dim) -> int | Dim | None:
    """a / b when b divides a exactly for every size of the names (b != 0), else None."""
    q = _poly(b)
    if not q:
        return None
    quotient = _divide(_poly(a), q)
    return None if quotient is None else _dim(quotient)


def as_dim(value: object) -> int | Dim:
    """A dimension from an int >= 0, a name (str) or a Dim; ShapeError otherwise."""
    if isinstance(value, Dim):
        return value
    if isinstance(value, str):
        return Dim.named(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0:
        return int(value)
    raise ShapeError(f"a dimension must be an int >= 0 or a name such as 'batch', not {value!r}")


def is_static(shape: Iterable[object]) -> bool:
    """Whether every dimension is an int (no named dimensions)."""
    return not any(isinstance(n, Dim) for n in shape)


def dim_names(shape: Iterable[object]) -> tuple[str, ...]:
    """The names a shape depends on, sorted."""
    return tuple(sorted({name for n in shape if isinstance(n, Dim) for name in n.names}))


def product(dims: Iterable[int | Dim]) -> int | Dim:
    """The product of dimensions (1 for none): the number of elements of a shape."""
    total: int | Dim = 1
    for n in dims:
        total = total * n
    return total


def evaluate_shape(shape: Shape, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The concrete shape for these sizes of the names."""
    return tuple(n.evaluate(sizes) if isinstance(n, Dim) else n for n in shape)


def fixed(shape: Iterable[int | Dim]) -> tuple[int, ...]:
    """The shape as ints, where no dimension may be named: ShapeError naming the shape otherwise.

    Scheduled Programs hold fixed shapes only (gc.compile specializes named dimensions
    first), so backends read their shapes through this; so do the sparsity patterns, which
    refuse named shapes at the public call.
    """
    dims = tuple(shape)
    if any(isinstance(n, Dim) for n in dims):
        raise ShapeError(f"the shape {format_shape(dims)} has named dimensions; fixed sizes are needed here")
    return tuple(int(n) for n in dims)


def fixed_size(n: int | Dim) -> int:
    """A dimension or a size that must be an int (see `fixed`)."""
    if isinstance(n, Dim):
        raise ShapeError(f"the size {n} is named; a fixed size is needed here")
    return int(n)


def format_shape(shape: Iterable[object]) -> str:
    """`(batch, 64)`: a shape as Python would print it, with names unquoted."""
    dims = [str(n) for n in shape]
    if len(dims) == 1:
        return f"({dims[0]},)"
    return "(" + ", ".join(dims) + ")"


@dataclass(frozen=True)
class TensorType:
    """The static type of a node: a shape (ints and named dimensions) and one of the four dtypes."""

    shape: Shape
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int | Dim:
        """The number of elements: an int, or a Dim when the shape has named dimensions."""
        if is_static(self.shape):
            return math.prod(self.shape)
        return product(self.shape)

    @property
    def static(self) -> bool:
        return is_static(self.shape)

    def __str__(self) -> str:
        dims = ",".join(str(n) for n in self.shape)
        return f"{short_name(self.dtype)}[{dims}]"


def as_shape(shape: object) -> Shape:
    """A shape tuple from an int, a name, or a sequence of ints >= 0, names (str) and Dims."""
    if isinstance(shape, (int, np.integer, str, Dim)):
        shape = (shape,)
    if not isinstance(shape, Iterable):
        raise ShapeError(f"a shape must be an int or a tuple of ints and names, not {shape!r}")
    dims = tuple(shape)
    try:
        return tuple(as_dim(n) for n in dims)
    except ShapeError:
        raise ShapeError(f"invalid shape {dims}: dimensions must be ints >= 0 or names such as 'batch'") from None


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy's broadcasting of shapes; ShapeError naming them when they clash.

    A named dimension broadcasts against 1 and against itself only: against any other
    size the result would depend on the size bound at call time.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        dims = set()
        for s in shapes:
            if len(s) >= -i and not (type(s[i]) is int and s[i] == 1):
                dims.add(s[i])
        if len(dims) > 1:
            listed = " and ".join(format_shape(s) for s in shapes)
            named = [str(n) for n in dims if isinstance(n, Dim)]
            hint = f" (a named dimension such as {named[0]} broadcasts only against 1 or itself)" if named else ""
            raise ShapeError(f"shapes {listed} cannot be broadcast together{hint}")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def normalize_axis(axis: int, ndim: int) -> int:
    """An axis in [0, ndim) from a possibly negative one."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise ShapeError(f"axis must be an int, not {axis!r}")
    if not -ndim <= axis < ndim:
        raise ShapeError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return int(axis) % ndim


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Sorted non-negative axes; None means all axes. Repeated axes are an error."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)):
        axis = (int(axis),)
    if not isinstance(axis, (tuple, list)):
        raise ShapeError(f"axis must be an int, a tuple of ints or None, not {axis!r}")
    axes = tuple(normalize_axis(a, ndim) for a in axis)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"repeated axis in {tuple(axis)}")
    return tuple(sorted(axes))


def reduced_shape(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def result_dtype(*dtypes: np.dtype) -> np.dtype:
    """NumPy's promotion of array dtypes, restricted to graphc's four dtypes."""
    return as_dtype(np.result_type(*dtypes))


def _reshape_dims(new: object) -> tuple[int | Dim, ...]:
    if isinstance(new, (int, np.integer, str, Dim)):
        new = (new,)
    if not isinstance(new, Iterable):
        raise ShapeError(f"a shape must be an int or a tuple of ints and names, not {new!r}")
    dims: list[int | Dim] = []
    for n in new:
        if isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n == -1:
            dims.append(-1)
            continue
        try:
            dims.append(as_dim(n))
        except ShapeError:
            raise ShapeError(f"invalid shape {tuple(new)}") from None
    return tuple(dims)


def resolve_reshape(old: Shape, new: object) -> Shape:
    """The target of a reshape, with one -1 dimension inferred as in NumPy.

    With named dimensions the -1 is the exact quotient of the sizes (`(batch, 64)` into
    `(-1,)` is `(64*batch,)`); a quotient that is not exact for every size is an error.
    """
    dims = _reshape_dims(new)
    size = product(old)
    if dims.count(-1) > 1:
        raise ShapeError(f"can only specify one unknown dimension in {format_shape(dims)}")
    if -1 in dims:
        known = product(n for n in dims if n != -1)
        quotient = None if known == 0 else exact_div(size, known)
        if quotient is None:
            why = "" if is_static(dims) and is_static(old) else f": {size} is not a multiple of {known} for every size"
            raise ShapeError(f"cannot reshape array of shape {format_shape(old)} into shape {format_shape(dims)}{why}")
        dims = tuple(quotient if n == -1 else n for n in dims)
    if product(dims) != size:
        raise ShapeError(f"cannot reshape array of shape {format_shape(old)} into shape {format_shape(dims)}")
    return dims


# --- slices ---------------------------------------------------------------------------------


def slice_bounds(item: slice, n: int | Dim) -> tuple[int | Dim, int | Dim, int]:
    """(start, stop, step) of `item` on an axis of length n, as slice.indices gives them.

    On a named axis the bounds are taken as given, without NumPy's clipping: an int k >= 0
    is k, a negative one counts from the end (n + k), the step is 1 or -1. The call checks
    that they fit the size it binds (a slice that would make a dimension negative fails).
    """
    if not isinstance(n, Dim):
        return item.indices(n)
    step = 1 if item.step is None else item.step
    if step not in (1, -1):
        raise ShapeError(f"a slice of the named axis {n} takes a step of 1 or -1, not {step}")
    start = _bound(item.start, n)
    stop = _bound(item.stop, n)
    if step == 1:
        return (0 if start is None else start), (n if stop is None else stop), 1
    return (n - 1 if start is None else start), (-1 if stop is None else stop), -1


def _bound(value: object, n: Dim) -> int | Dim | None:
    if value is None:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise ShapeError(f"slice bounds on the named axis {n} must be ints, not {value!r}")
    k = int(value)
    return k if k >= 0 else n + k


def sliced_length(start: int | Dim, stop: int | Dim, step: int) -> int | Dim:
    """The length of range(start, stop, step); with named bounds the step is 1 or -1."""
    if isinstance(start, Dim) or isinstance(stop, Dim):
        return stop - start if step == 1 else start - stop
    return len(range(start, stop, step))
