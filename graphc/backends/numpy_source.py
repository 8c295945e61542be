"""The NumPy source backend: Program -> readable Python source -> a callable.

Imports shapes, ops and schedule (never ir, tensor or functions): it renders Programs.
One line of Python per step, its type as a comment: np.<name>(operands) for an op whose
record names its NumPy function (`Op.numpy`), else spelled from the SPELLINGS table keyed
by op name. Ops that are not one NumPy call run a runtime helper, `rt.<op>`, which is the
op's reference `eval` itself, so results equal the interpreter's bit for bit. The
generated function checks its arguments inline (a fast path for arrays of the exact
dtype and shape, `rt.coerce` otherwise) and copies an output only where it could alias
an input, a constant or another output. Its source is registered with `linecache` under
a unique `<graphc-numpy-N>` filename, so tracebacks show the generated lines. A fused
step calls a generated function for its body (the step's nested Program), whose lines
write into preallocated buffers (`out=`) as the body's buffer plan says; numpy_fused.py
renders them. A loop (the sibling `scan` or `fixed_point` steps of one loop) is one call
of a generated driver looping over its body's function; numpy_loops.py renders them.
"""

from __future__ import annotations

import itertools
import linecache
import types
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from graphc.backends import finite, numpy_fused, numpy_loops
from graphc.backends.numpy_fused import FusedPlan
from graphc.ops import OPS
from graphc.schedule import Program, Rendered, Step
from graphc.shapes import BOOL, FLOAT32, FLOAT64, INT64

Spelling = str | Callable[[Step], str]
"""A format string over the argument names ({0}, {1}, ...) and the rendered attributes
({axis}, {shape}, ... plus {out_dtype}), or a function of the step for irregular ops."""

_DTYPE_SPELLINGS = {FLOAT64: "np.float64", FLOAT32: "np.float32", INT64: "np.int64", BOOL: "np.bool_"}
_RT_DTYPES = {FLOAT64: "rt.float64", FLOAT32: "rt.float32", INT64: "rt.int64", BOOL: "rt.bool_"}
_REDUCE = "(axis={axis}, keepdims={keepdims})"


def _slice_text(start: int, stop: int, step: int) -> str:
    """One subscript as shapes.as_slices spells it: a negative stop with a negative step is 'to the start'."""
    stop_text = "" if (stop < 0 and step < 0) else str(stop)
    step_text = "" if step == 1 else f":{step}"
    return f"{start}:{stop_text}{step_text}"


def _spell_slice(step: Step) -> str:
    index = step.attr("index")
    assert isinstance(index, tuple)
    subscripts = ", ".join(_slice_text(*bounds) for bounds in index)
    if not subscripts:
        return f"{step.args[0]}[...]"
    return f"{step.args[0]}[..., {subscripts}]"


def _spell_concatenate(step: Step) -> str:
    arrays = ", ".join(step.args)
    return f"np.concatenate(({arrays},), axis={step.attr('axis')})"


def _spell_take(step: Step) -> str:
    """rt.take: np.take whose IndexError names the take and the user's line, as the llvm backend's does."""
    a, indices = step.args
    return f"rt.take({a}, {indices}, {step.attr('axis')}, {step.where!r})"


def _take(a: np.ndarray, indices: np.ndarray, axis: int, built: str) -> np.ndarray:
    try:
        return np.take(a, indices, axis=axis)
    except IndexError as exc:
        raise IndexError(f"{exc} in take{built}") from None


def _spell_cumulative(step: Step) -> str:
    """np.cumsum / np.cumprod along the axis (sequential, as the op's eval); reversed between two flips."""
    name = step.op
    axis = step.attr("axis")
    dtype = _DTYPE_SPELLINGS[step.type.dtype]
    if not step.attr("reverse"):
        return f"np.{name}({step.args[0]}, axis={axis}, dtype={dtype})"
    return f"np.flip(np.{name}(np.flip({step.args[0]}, {axis}), axis={axis}, dtype={dtype}), {axis})"


def _spell_im2col(step: Step) -> str:
    """rt.im2col with its window attributes; an infinite fill as float('-inf') (repr would say -inf)."""
    attrs = dict(step.attrs)
    fill = float(attrs.pop("fill"))  # type: ignore[arg-type]
    window = ", ".join(f"{key}={value!r}" for key, value in attrs.items())
    fill_text = repr(fill) if np.isfinite(fill) else f"float('{fill}')"
    return f"rt.im2col({step.args[0]}, {window}, fill={fill_text})"


def _spell_iota(step: Step) -> str:
    shape = step.attr("shape")
    assert isinstance(shape, tuple)
    return f"np.arange({step.type.size}, dtype=np.int64).reshape({shape!r})"


def _spell_linalg(step: Step) -> str:
    """rt.linalg: the op's eval (numpy.linalg), whose LinAlgError names the op and the user's line."""
    attrs = "".join(f", {key}={_literal(value)}" for key, value in step.attrs)
    return f"rt.linalg({step.op!r}, {', '.join(step.args)}{attrs}, built={step.where!r})"


def _linalg(name: str, *args: np.ndarray, built: str, **attrs: Hashable) -> np.ndarray:
    try:
        return OPS[name].eval(*args, **attrs)  # type: ignore[return-value]
    except np.linalg.LinAlgError as exc:
        raise np.linalg.LinAlgError(f"{exc} in {name}{built}") from None


def _spell_fused(step: Step) -> str:
    raise NotImplementedError("a fused step is rendered as a call of its body function (see numpy_fused.plan)")


def _spell_loop(step: Step) -> str:
    raise NotImplementedError("a loop step is rendered as a call of its driver function (see numpy_loops.plan)")


SPELLINGS: dict[str, Spelling] = {
    # The irregular ops. An op whose record names its NumPy function (`Op.numpy`: add,
    # exp, where, matmul, ...) is spelled np.<numpy>(operands) without an entry here.
    "pow": "rt.pow({0}, {1})",  # sqrt where the exponent is 0.5 (ops/elementwise.py)
    "sigmoid": "rt.sigmoid({0})",
    "softplus": "rt.softplus({0})",
    "relu": "rt.relu({0})",
    "erf": "rt.erf({0})",
    "erfc": "rt.erfc({0})",
    "astype": "{0}.astype({dtype})",
    # shapes
    "reshape": "np.reshape({0}, {shape})",
    "transpose": "np.transpose({0}, {axes})",
    "broadcast_to": "np.broadcast_to({0}, {shape})",
    "slice": _spell_slice,
    "unslice": "rt.unslice({0}, index={index}, shape={shape})",
    "concatenate": _spell_concatenate,
    "take": _spell_take,
    "scatter_add": "rt.scatter_add({0}, {1}, axis={axis}, size={size})",
    "diag": "rt.diag({0})",
    "index_add": "rt.index_add({0}, {1}, {2}, axis={axis})",
    # sliding windows (ops/nn.py)
    "im2col": _spell_im2col,
    "col2im": "rt.col2im({0}, kernel={kernel}, stride={stride}, padding={padding}, dilation={dilation}, size={size})",
    # random numbers' counter and permutation sort (ops/random.py)
    "iota": _spell_iota,
    "sort": "np.sort({0}, axis=-1)",
    # reductions
    "sum": "np.sum({0}, axis={axis}, keepdims={keepdims}, dtype={out_dtype})",
    "prod": "np.prod({0}, axis={axis}, keepdims={keepdims}, dtype={out_dtype})",
    "max": "np.max({0}, axis={axis}, keepdims={keepdims})",
    "min": "np.min({0}, axis={axis}, keepdims={keepdims})",
    "logsumexp": "rt.logsumexp({0}, axis={axis}, keepdims={keepdims})",
    "argmax": "np.argmax({0}, axis={axis}, keepdims={keepdims})",
    "argmin": "np.argmin({0}, axis={axis}, keepdims={keepdims})",
    "cumsum": _spell_cumulative,
    "cumprod": _spell_cumulative,
    # linear algebra: numpy.linalg through the op's eval (graphc/ops/linalg.py)
    "solve": _spell_linalg,
    "inv": _spell_linalg,
    "slogdet": _spell_linalg,
    "cholesky": _spell_linalg,
    # fused regions: a call of the body's generated function (numpy_fused.py)
    "fused": _spell_fused,
    # loops: one call of a generated driver per family of sibling steps (numpy_loops.py)
    "scan": _spell_loop,
    "fixed_point": _spell_loop,
    "cond": _spell_loop,
    "while_loop": _spell_loop,
}

# Ops spelled as a runtime helper: the helper is the op's reference eval.
HELPERS = (
    "pow",
    "sigmoid",
    "softplus",
    "relu",
    "erf",
    "erfc",
    "unslice",
    "scatter_add",
    "logsumexp",
    "diag",
    "index_add",
    "im2col",
    "col2im",
)


def _literal(value: Hashable) -> str:
    """An attribute as Python source (dtypes as np.<name>)."""
    if isinstance(value, np.dtype):
        return _DTYPE_SPELLINGS[value]
    return repr(value)


def numpy_reference(op_name: str) -> str | None:
    """The NumPy function an op's record names (`Op.numpy`), or None."""
    op = OPS.get(op_name)
    return None if op is None else op.numpy


def spell(step: Step) -> str:
    """The right-hand side of one step, e.g. `np.tanh(v2)`."""
    spelling = SPELLINGS.get(step.op)
    if spelling is None:
        reference = numpy_reference(step.op)
        if reference is None:
            raise NotImplementedError(f"the numpy backend has no spelling for op {step.op!r}")
        return f"np.{reference}({', '.join(step.args)})"
    if callable(spelling):
        return spelling(step)
    attrs = {key: _literal(value) for key, value in step.attrs}
    return spelling.format(*step.args, out_dtype=_DTYPE_SPELLINGS[step.type.dtype], **attrs)


# --- the runtime namespace ------------------------------------------------------------------


_WEAK_KINDS = {"b": "biuf", "i": "iuf", "f": "f"}  # what a Python bool, int, float may become (NEP 50)


def _as_array(value: object, name: str, dtype: np.dtype) -> np.ndarray:
    """`value` as an ndarray of `dtype`, or TypeError naming the input.

    Python scalars, and lists or tuples of them, are weak (NEP 50): a bool fits any dtype,
    an int any numeric one, a float a float one. Arrays and NumPy scalars cast only safely.
    """
    try:
        array = np.asarray(value)
    except Exception as exc:  # whatever a foreign object's __array__ raises, the argument is what is wrong
        raise TypeError(f"input {name!r}: expected an array of {dtype}, got {type(value).__name__} ({exc})") from exc
    weak = isinstance(value, (bool, int, float, list, tuple)) and array.dtype.kind in _WEAK_KINDS
    if weak and dtype.kind in _WEAK_KINDS[array.dtype.kind]:
        return _weak_cast(value, name, dtype)
    if array.dtype != dtype and not np.can_cast(array.dtype, dtype, "safe"):
        python = isinstance(value, (bool, int, float))
        what = f"a Python {type(value).__name__}" if python else str(array.dtype)
        raise TypeError(f"input {name!r}: expected {dtype}, got {what}, which cannot be cast safely")
    return array.astype(dtype, copy=False)


def input_array(value: object, name: str, dtype: np.dtype) -> np.ndarray:
    """`value` as an ndarray of `dtype` by the argument rules (any shape), or TypeError naming the input."""
    return _as_array(value, name, dtype)


def _weak_cast(value: object, name: str, dtype: np.dtype) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except OverflowError:
        raise TypeError(f"input {name!r}: {value!r} does not fit in {dtype}") from None


def coerce(value: object, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The slow path of argument checking: convert `value` or raise naming the input."""
    array = _as_array(value, name, dtype)
    if array.shape != shape:
        raise ValueError(f"input {name!r}: expected shape {shape}, got {array.shape}")
    return array


def _runtime() -> types.SimpleNamespace:
    helpers = {name: OPS[name].eval for name in HELPERS}
    dtypes = {"float64": FLOAT64, "float32": FLOAT32, "int64": INT64, "bool_": BOOL}
    checks = {"all_finite": finite.all_finite, "not_finite": finite.not_finite}
    return types.SimpleNamespace(
        coerce=coerce, ndarray=np.ndarray, take=_take, linalg=_linalg, **helpers, **dtypes, **checks
    )


RUNTIME = _runtime()
"""The `rt` of every generated module: argument coercion, dtypes, helpers for multi-call ops."""


# --- rendering -------------------------------------------------------------------------------


def _check_lines(program: Program) -> list[str]:
    """Inline argument checks: arrays of the exact type (`type()`: no proxy fakes it), dtype and shape pass."""
    lines = []
    for given in program.inputs:
        name = given.name
        dtype = _RT_DTYPES[given.type.dtype]
        shape = repr(given.type.shape)
        var_name = repr(given.label)
        lines.append(
            f"    if type({name}) is not rt.ndarray or {name}.dtype is not {dtype} or {name}.shape != {shape}:"
        )
        lines.append(f"        {name} = rt.coerce({name}, {var_name}, {shape}, {dtype})")
    return lines


def _step_lines(
    program: Program, fused: FusedPlan | None, loops: numpy_loops.LoopPlan | None = None, check_finite: bool = False
) -> list[str]:
    """One line per step with its type as a comment (and its check_finite test), then `del` of dead step results."""
    lines = []
    for step in program.steps:
        if loops is not None and step.op in numpy_loops.LOOP_OPS:
            lines += loops.step_lines(step)
        else:
            value = fused.call(step) if fused is not None and step.op == "fused" else spell(step)
            lines.append(f"    {step.name} = {value}  # {step.type}")
        if check_finite:
            lines += finite.check_lines(step)
        dead = [name for name in step.frees if program.step(name) is not None]
        if dead:
            lines.append(f"    del {', '.join(dead)}")
    return lines


def _needs_copy(program: Program, name: str, returned: set[str]) -> bool:
    """Whether returning `name` could alias an input, a constant, another output, or be read-only."""
    base = program.base(name)
    if program.step(base) is None or base in returned:
        return True
    return any(step.op == "broadcast_to" for step in program.view_chain(name))


def _result(program: Program, name: str, returned: set[str]) -> str:
    """The expression that returns `name`: a fresh 0-d array for scalars, a copy where it could alias."""
    needs_copy = _needs_copy(program, name, returned)
    returned.add(program.base(name))
    if program.types[name].ndim == 0:
        return f"np.array({name})"
    if needs_copy:
        return f"{name}.copy()"
    return name


def _return_value(program: Program, single: bool) -> str:
    returned: set[str] = set()
    results = [_result(program, name, returned) for name in program.outputs]
    if single:
        return results[0]
    if len(results) == 1:
        return f"({results[0]},)"
    return f"({', '.join(results)})"


def _header_lines(
    program: Program, function_name: str, fused: FusedPlan | None, loops: numpy_loops.LoopPlan | None = None
) -> list[str]:
    lines = ["# generated by graphc's numpy backend"]
    for name in program.constants:
        lines.append(f"# {name}: {program.types[name]} = {program.constant_text(name)}")
    if fused is not None:
        lines += fused.header_lines()
    if loops is not None:
        lines += loops.lines
    lines.append(f"def {function_name}({', '.join(i.name for i in program.inputs)}):")
    return lines


def _plan_fused(program: Program, function_name: str) -> FusedPlan | None:
    taken = {i.name for i in program.inputs} | set(program.constants) | {s.name for s in program.steps}
    return numpy_fused.plan(program, spell, taken | {function_name, "np", "rt"})


def _plan_loops(program: Program, function_name: str, check_finite: bool = False) -> numpy_loops.LoopPlan | None:
    taken = {i.name for i in program.inputs} | set(program.constants) | {s.name for s in program.steps}
    return numpy_loops.plan(program, spell, taken | {function_name, "np", "rt"}, check_finite)


def _render(
    program: Program,
    single: bool,
    function_name: str,
    fused: FusedPlan | None,
    loops: numpy_loops.LoopPlan | None = None,
    check_finite: bool = False,
) -> str:
    if single and len(program.outputs) != 1:
        raise ValueError(f"single=True needs exactly one output, the program has {len(program.outputs)}")
    lines = _header_lines(program, function_name, fused, loops)
    lines += _check_lines(program)
    lines += fused.acquire_lines() if fused is not None else []
    lines += _step_lines(program, fused, loops, check_finite)
    value = _return_value(program, single)
    lines += fused.return_lines(value) if fused is not None else [f"    return {value}"]
    return "\n".join(lines) + "\n"


def render(
    program: Program, *, single: bool = False, function_name: str = "graphc_fn", check_finite: bool = False
) -> str:
    """The Python source of a function computing the program (one result, or a tuple)."""
    fused = _plan_fused(program, function_name)
    loops = _plan_loops(program, function_name, check_finite)
    return _render(program, single, function_name, fused, loops, check_finite)


# --- loading ---------------------------------------------------------------------------------

_FILE_NUMBERS = itertools.count()


@dataclass(frozen=True)
class NumpyFunction:
    """A loaded program: the generated function, its source and the filename tracebacks show."""

    function: Rendered
    source: str
    filename: str
    pool: list[object] | None = None  # the fused regions' buffer sets, one per concurrent call (numpy_fused)

    def release(self) -> None:
        """Free the buffer sets this function keeps between calls (the next call allocates one again)."""
        if self.pool is not None:
            self.pool.clear()


def build(
    program: Program, *, single: bool = False, function_name: str = "graphc_fn", check_finite: bool = False
) -> NumpyFunction:
    """Render, register with linecache, and execute the source; the function is in its own module.

    `check_finite`: test every float step's result (finite.py); nothing is added otherwise.
    """
    fused = _plan_fused(program, function_name)
    loops = _plan_loops(program, function_name, check_finite)
    source = _render(program, single, function_name, fused, loops, check_finite)
    filename = f"<graphc-numpy-{next(_FILE_NUMBERS)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {"__name__": "graphc.generated", "np": np, "rt": RUNTIME}
    namespace.update(program.constants)
    namespace.update(fused.namespace() if fused is not None else {})
    namespace.update(loops.constants if loops is not None else {})
    exec(compile(source, filename, "exec"), namespace)
    function = namespace[function_name]
    assert callable(function)
    weakref.finalize(function, linecache.cache.pop, filename, None)
    pool = namespace[fused.pool] if fused is not None and fused.buffers else None
    return NumpyFunction(function, source, filename, pool)  # type: ignore[arg-type]
