"""The cases of the generated differential suite: every op in OPS x operand forms x dtypes.

An operand *form* is how a value reaches an op: a Python int or float (weak, NEP 50), a
constant of shape (), (1,), (1, 1), (n,) or (0,), or a var of one of those shapes. Each
op's spec (tests/opspecs.py, one per op in OPS: a missing one fails a test) uses the
families below to put every form in every input position, the other positions holding
vars, for each dtype the op takes; elementwise ops also get every pair of special values.
A case is then the op's public function applied to those operands, plus the vjp of its
(float) result with respect to every float var operand, against a cotangent var.

Two sweeps: "default" (the op's first dtype with every form, the others with a few; the
CI run) and "full" (every dtype with every form; marked slow). Building a case the op
refuses (max over an empty axis, matmul of a scalar) gives a Refusal, whose error the
suite checks is a user error. Values are deterministic: a var's value is drawn from a
generator seeded by the case id.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

import graphc as gc

N = 5  # the "n" of sizes 0, 1 and n
F64, F32, I64, BOOL = (np.dtype(d) for d in ("float64", "float32", "int64", "bool"))
FLOATS = (F64, F32)
NUMERIC = (F64, F32, I64)
EVERY = (F64, F32, I64, BOOL)
SPECIALS = (0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -1e-310, 1e300, -1e300, 1.0, -1.0, 0.5, -2.5, 700.0)
TAME = (0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5)  # no huge finite values: sums stay order-independent
TRIG = (0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -1e-310, 1.0, -1.0, 0.5, -2.5, 700.0, 3e5, -9e5)
INT_EXTREMES = (0, 1, -1, 2, -3, 7, 2**62, -(2**63), 2**63 - 1)
INT_EXPONENTS = (0, 1, 2, 7, 62, 63)
HUGE = (2.0**50, -(2.0**51) - 2, 2.0**60 + 2**8, 1e22, -1e300, 1e300, 1.7e308)
Operand = object  # a Tensor, a NumPy array or a Python scalar
NAMES = itertools.count()


# --- forms and values ------------------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    """How one operand is given: a Python scalar ("py"), a constant array or a var, of a shape."""

    kind: str  # "py", "const" or "var"
    shape: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        if self.kind == "py":
            return "py"
        return ("c" if self.kind == "const" else "v") + str(self.shape).replace(" ", "")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


SHAPES = ((), (1,), (1, 1), (N,), (0,))
CONSTS = (Form("py"), *(Form("const", s) for s in SHAPES))
VARS = tuple(Form("var", s) for s in SHAPES)
FORMS = CONSTS + VARS
FEW = (Form("py"), Form("const", ()), Form("const", (1,)), Form("const", (N,)), Form("var", (1,)))


def forms_for(dtype: np.dtype, dtypes: Sequence[np.dtype], sweep: str) -> tuple[Form, ...]:
    """Every form for an op's first dtype (and for every dtype in the full sweep), a few for the others."""
    return FORMS if dtype == dtypes[0] or sweep == "full" else FEW


@dataclass(frozen=True)
class Role:
    """What an input position accepts: its values (and its own dtype, for conditions and indices)."""

    name: str  # "x": any value of the case's dtype; "tame": no huge floats; "finite": normal values only;
    # "nan": NaN; "exp": int exponents >= 0; "bool": a condition; "index": int64 positions valid
    # for an axis of length `bound` (negative ones included); "outside": positions past it;
    # "trig": |x| < 1e6 with the specials that are not huge (vecmath's accurate range); "huge": |x| >= 2**50;
    # "matrix": square matrices, well conditioned (finite values plus n on the diagonal); "spd": symmetric
    # positive definite (Cholesky's domain)
    bound: int = N

    def dtype(self, case_dtype: np.dtype) -> np.dtype:
        return {"bool": BOOL, "index": I64, "outside": I64}.get(self.name, case_dtype)

    def python(self, dtype: np.dtype) -> object:
        """The Python scalar form: 0.5 for floats (x ** 0.5 is the square root), 2 for ints, True for bools."""
        if self.name == "outside":
            return self.bound + 2
        if self.name == "bool" or dtype == BOOL:
            return True
        if self.name == "index" or dtype == I64:
            return 2
        return 0.5

    def _positions(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Valid positions, negative ones included; never the first (0 or -bound) when there are others,
        so a gather that wrongly reads position 0 cannot pass by chance."""
        if self.bound <= 1:
            return rng.integers(-self.bound, self.bound, shape) if self.bound else np.zeros(shape, np.int64)
        chosen = rng.integers(1, self.bound, shape)
        return np.where(rng.random(shape) < 0.5, chosen, chosen - self.bound)

    def extremes(self, dtype: np.dtype) -> np.ndarray:
        """Every special value of the role (for the all-pairs cases): NaN, infinities, signed zeros, limits."""
        dtype = self.dtype(dtype)
        if dtype == BOOL:
            return np.array([True, False])
        if dtype == I64:
            return np.array(INT_EXPONENTS if self.name == "exp" else INT_EXTREMES, dtype=I64)
        palette = {"tame": TAME, "trig": TRIG}.get(self.name, (*SPECIALS, 3.0, -7.25))
        with np.errstate(over="ignore"):
            return np.array(palette).astype(dtype)

    def sample(self, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
        """Normal values with specials (each at most once per array), or ints/bools of the role."""
        if self.name == "outside":
            return np.full(shape, self.bound + 2, dtype=np.int64)
        if self.name == "index":
            return self._positions(shape, rng)
        if self.name == "nan":
            return np.full(shape, np.nan, dtype=dtype)
        if self.name == "huge":
            with np.errstate(over="ignore"):
                return np.resize(np.array(HUGE), shape).astype(dtype)
        if self.name in ("matrix", "spd"):
            return _matrices(self.name, shape, rng).astype(dtype)
        if dtype == BOOL:
            return rng.random(shape) < 0.5
        if dtype == I64:
            low = 0 if self.name == "exp" else -5
            return rng.integers(low, 6, shape)
        values = rng.normal(scale=3.0, size=shape).ravel()
        if self.name == "finite":
            return values.reshape(shape).astype(dtype)
        palette = {"tame": TAME, "trig": TRIG}.get(self.name, SPECIALS)
        count = min(values.size // 2, len(palette))
        spots = rng.choice(values.size, size=count, replace=False)
        values[spots] = rng.choice(np.array(palette), size=count, replace=False)
        with np.errstate(over="ignore"):
            return values.reshape(shape).astype(dtype)


def _matrices(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Finite values; a stack of square matrices gets n on the diagonal ("matrix") or becomes X Xᵀ + n I ("spd")."""
    values = rng.normal(size=shape)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        return values
    n = shape[-1]
    if name == "spd":
        return values @ np.swapaxes(values, -1, -2) + n * np.eye(n)
    return values + n * np.eye(n)


X, TAME_X, EXPONENT, CONDITION = Role("x"), Role("tame"), Role("exp"), Role("bool")
MATRIX, SPD = Role("matrix"), Role("spd")


# --- cases ---------------------------------------------------------------------------------------


@dataclass
class Case:
    """Outputs to compare with gc.evaluate: the op's results, then their vjp for each float var operand."""

    id: str
    op: str
    inputs: list[gc.Tensor]  # the var operands, then the cotangents
    feed: list[np.ndarray]  # a value per input
    values: list[gc.Tensor]
    grads: list[gc.Tensor] = field(default_factory=list)
    labels: tuple[str, ...] = ()  # the form of each operand, in order

    @property
    def outputs(self) -> list[gc.Tensor]:
        return self.values + self.grads


@dataclass
class Refusal:
    """A combination the op refuses at build time; the suite checks the error is a user error."""

    id: str
    op: str
    error: BaseException
    labels: tuple[str, ...] = ()


class Operands:
    """The operands of one case as they are made: vars collect their values, labels make the id."""

    def __init__(self, case_id: str) -> None:
        self.rng = np.random.default_rng(zlib.crc32(case_id.encode()))
        self.vars: list[gc.Tensor] = []
        self.feed: list[np.ndarray] = []
        self.labels: list[str] = []

    def make(self, form: Form, role: Role, dtype: np.dtype) -> Operand:
        dtype = role.dtype(dtype)
        self.labels.append(form.label)
        if form.kind == "py":
            return role.python(dtype)
        value = role.sample(form.shape, dtype, self.rng)
        if form.kind == "const":
            return value
        return self.var(value)

    def var(self, value: np.ndarray) -> gc.Tensor:
        v = gc.var(f"v{next(NAMES)}", value.shape, value.dtype)  # one name per var: batches compile many cases
        self.vars.append(v)
        self.feed.append(value)
        return v


def _float_vars(operands: Operands) -> list[gc.Tensor]:
    return [v for v in operands.vars if v.dtype.kind == "f"]


def make_case(op: str, case_id: str, operands: Operands, build: Callable[[], object]) -> Case | Refusal:
    """Build the case (a Refusal if the op refuses), with the vjp of a float result w.r.t. each float var."""
    try:
        result = build()
    except Exception as exc:  # the refusal test judges which errors are acceptable
        return Refusal(case_id, op, exc, tuple(operands.labels))
    values = list(result) if isinstance(result, (list, tuple)) else [result]
    case = Case(case_id, op, list(operands.vars), list(operands.feed), values, labels=tuple(operands.labels))  # type: ignore[arg-type]
    wrt = _float_vars(operands)
    first = case.values[0]
    if wrt and first.dtype.kind == "f":
        ct = gc.var(f"ct{next(NAMES)}", first.shape, first.dtype)
        case.grads = gc.vjp([first], wrt, [ct])
        case.inputs.append(ct)
        case.feed.append(operands.rng.normal(size=first.shape).astype(first.dtype))
    return case


def case_id(op: str, dtype: np.dtype, labels: Sequence[str], extra: str = "") -> str:
    parts = [op, short_name(dtype), *labels]
    if extra:
        parts.append(extra)
    return "-".join(parts)


def short_name(dtype: np.dtype) -> str:
    return {F64: "f64", F32: "f32", I64: "i64", BOOL: "bool"}[np.dtype(dtype)]


# --- families ---------------------------------------------------------------------------------------

Cases = Iterator[Case | Refusal]


def partner_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the var operands beside a form: n elements, or 1 beside an empty operand."""
    return (1,) if 0 in shape else (N,)


@dataclass(frozen=True)
class Elementwise:
    """A (broadcasting) elementwise public function: each form in each position, vars elsewhere."""

    fn: Callable[..., gc.Tensor]
    roles: tuple[Role, ...]
    dtypes: tuple[np.dtype, ...] = FLOATS
    extra: str = ""  # an id suffix (astype's target)

    def cases(self, op: str, sweep: str) -> Cases:
        for dtype in self.dtypes:
            for position in range(len(self.roles)):
                for form in forms_for(dtype, self.dtypes, sweep):
                    yield self._case(op, dtype, position, form)
            if all(role.name in ("x", "tame", "trig", "exp", "bool") for role in self.roles):
                yield from self._special_cases(op, dtype)

    def _special_cases(self, op: str, dtype: np.dtype) -> Cases:
        """Every combination of the roles' special values: all vars, all constants, a Python scalar in each position."""
        grid = np.meshgrid(*(role.extremes(dtype) for role in self.roles), indexing="ij")
        columns = [g.ravel() for g in grid]
        layouts = [("specials", "v" * len(columns)), ("specials-c", "c" * len(columns))]
        if len(columns) > 1:
            layouts += [(f"specials-py@{p}", "v" * p + "p" + "v" * (len(columns) - p - 1)) for p in range(len(columns))]
        for suffix, layout in layouts:
            cid = case_id(op, dtype, [], self.extra + suffix)
            operands = Operands(cid)
            args = [self._special(operands, kind, role, dtype, column)
                    for kind, role, column in zip(layout, self.roles, columns, strict=True)]  # fmt: skip
            yield make_case(op, cid, operands, lambda args=args: self.fn(*args))

    @staticmethod
    def _special(operands: Operands, kind: str, role: Role, dtype: np.dtype, column: np.ndarray) -> Operand:
        if kind == "p":
            return role.python(role.dtype(dtype))
        return column if kind == "c" else operands.var(column)

    def _case(self, op: str, dtype: np.dtype, position: int, form: Form) -> Case | Refusal:
        others = Form("var", partner_shape(form.shape))
        forms = [form if i == position else others for i in range(len(self.roles))]
        labels = [f.label for f in forms]
        cid = case_id(op, dtype, labels, self.extra) + f"@{position}" * (len(self.roles) > 1)
        operands = Operands(cid)
        args = [operands.make(f, role, dtype) for f, role in zip(forms, self.roles, strict=True)]
        return make_case(op, cid, operands, lambda: self.fn(*args))


def reduction_axes(ndim: int) -> list[int | tuple[int, ...] | None]:
    axes: list[int | tuple[int, ...] | None] = [None]
    if ndim >= 1:
        axes.append(0)
    if ndim >= 2:
        axes += [-1, (0, 1)]
    return axes


def keepdims_for(form: Form, sweep: str) -> tuple[bool, ...]:
    """Both ways for vars (keepdims changes the vjp); constants only without it in the default sweep."""
    return (False, True) if form.kind == "var" or sweep == "full" else (False,)


REDUCE_EXTRA = (Form("var", (3, 4)), Form("var", (3, 0)), Form("var", (0, 3)))


@dataclass(frozen=True)
class Reduction:
    """fn(x, axis, keepdims) over every form and a few 2-D vars, every axis choice, keepdims both ways."""

    fn: Callable[..., gc.Tensor]
    dtypes: tuple[np.dtype, ...] = FLOATS
    role: Role = TAME_X

    def cases(self, op: str, sweep: str) -> Cases:
        for dtype in self.dtypes:
            forms = forms_for(dtype, self.dtypes, sweep)
            for form in forms + REDUCE_EXTRA * (dtype == self.dtypes[0] or sweep == "full"):
                ndim = 0 if form.kind == "py" else len(form.shape)
                for axis in reduction_axes(ndim):
                    for keepdims in keepdims_for(form, sweep):
                        yield self._case(op, dtype, form, axis, keepdims)

    def _case(self, op: str, dtype: np.dtype, form: Form, axis: object, keepdims: bool) -> Case | Refusal:
        cid = case_id(op, dtype, [form.label], f"axis={axis}{'-keep' * keepdims}".replace(" ", ""))
        operands = Operands(cid)
        x = operands.make(form, self.role, dtype)
        return make_case(op, cid, operands, lambda: self.fn(x, axis=axis, keepdims=keepdims))


@dataclass(frozen=True)
class Unary:
    """A one-operand function of a form and one attribute choice (reshape targets, slices, axes)."""

    fn: Callable[[Operand, object], gc.Tensor]
    choices: Callable[[tuple[int, ...]], Sequence[object]]  # the attribute choices for an operand shape
    dtypes: tuple[np.dtype, ...] = EVERY
    forms: tuple[Form, ...] = FORMS

    def cases(self, op: str, sweep: str) -> Cases:
        for dtype in self.dtypes:
            allowed = forms_for(dtype, self.dtypes, sweep)
            for form in (f for f in self.forms if f in allowed):
                shape = () if form.kind == "py" else form.shape
                for choice in self.choices(shape):
                    cid = case_id(op, dtype, [form.label], str(choice).replace(" ", ""))
                    operands = Operands(cid)
                    x = operands.make(form, X, dtype)
                    yield make_case(op, cid, operands, lambda x=x, choice=choice: self.fn(x, choice))


@dataclass(frozen=True)
class Positional:
    """An op whose operand shapes depend on each other: `shapes(position, form)` gives every operand's form."""

    fn: Callable[..., gc.Tensor]
    roles: tuple[Role, ...]
    shapes: Callable[[int, Form], tuple[Form, ...] | None]  # None: no valid partner for this form
    dtypes: tuple[np.dtype, ...] = FLOATS

    def cases(self, op: str, sweep: str) -> Cases:
        for dtype in self.dtypes:
            for position in range(len(self.roles)):
                for form in forms_for(dtype, self.dtypes, sweep):
                    forms = self.shapes(position, form)
                    if forms is not None:
                        yield self._case(op, dtype, position, forms)

    def _case(self, op: str, dtype: np.dtype, position: int, forms: tuple[Form, ...]) -> Case | Refusal:
        cid = case_id(op, dtype, [f.label for f in forms]) + f"@{position}"
        operands = Operands(cid)
        args = [operands.make(f, role, dtype) for f, role in zip(forms, self.roles, strict=True)]
        return make_case(op, cid, operands, lambda: self.fn(*args))


@dataclass(frozen=True)
class Explicit:
    """Hand-written cases: (id suffix, forms, roles, dtype, build)."""

    rows: Callable[[str], Sequence[tuple[str, tuple[Form, ...], tuple[Role, ...], np.dtype, Callable[..., object]]]]

    def cases(self, op: str, sweep: str) -> Cases:
        for suffix, forms, roles, dtype, fn in self.rows(sweep):
            cid = case_id(op, dtype, [f.label for f in forms], suffix)
            operands = Operands(cid)
            args = [operands.make(f, role, dtype) for f, role in zip(forms, roles, strict=True)]
            yield make_case(op, cid, operands, lambda fn=fn, args=args: fn(*args))
