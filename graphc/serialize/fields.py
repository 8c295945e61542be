"""The document's plain fields: strict JSON, typed accessors that name a path, attr types.

Imports errors, shapes and ops. Every reader here raises GraphFormatError with the path
(`$.nodes[3].inputs[0]`) of what it rejects. An op's attrs are typed by the annotations
of its `infer` (its keyword-only parameters), so a new op needs no entry here.

A named dimension (a `Dim`) is written as its name (`"batch"`) when it is one name, else
as `{"dim": [[coefficient, [name, ...]], ...]}`: one entry per term, in the canonical
order, each name repeated as often as its power (`2*batch**2-1` is
`[[2, ["batch", "batch"]], [-1, []]]`). There is no expression syntax to parse: a
reader checks every entry and accepts only the canonical form, so each Dim has exactly
one encoding. In attributes a plain string is a name only where the op's annotation
admits a Dim.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Sequence

import numpy as np

from graphc.errors import GraphFormatError
from graphc.ops import Op
from graphc.shapes import DTYPES, MAX_DEGREE, MAX_TERMS, Dim

FORMAT = "graphc.graph"
VERSION = 1
INT64 = 2**63
DTYPE_NAMES = {str(d): d for d in DTYPES}
MAX_NAME = 256

# --- reading: JSON and plain values ----------------------------------------------------------


def fail(path: str, message: str) -> typing.NoReturn:
    raise GraphFormatError(message, path)


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise GraphFormatError(f"duplicate key {short(key)} in one object")
        found[key] = value
    return found


def _reject_constant(name: str) -> object:
    raise GraphFormatError(f"{name} is not JSON; non-finite floats are written as {{'float': 'nan'}}")


def parse(text: str | bytes) -> object:
    """The JSON value of `text`, strictly: no NaN/Infinity literals, no duplicate keys."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            fail("$", f"not UTF-8 text: {exc}")
    if not isinstance(text, str):
        raise TypeError(f"gc.loads expects a str, got {type(text).__name__}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except GraphFormatError:
        raise
    except RecursionError:
        fail("$", "JSON nested too deeply")
    except json.JSONDecodeError as exc:
        fail("$", f"not valid JSON: {exc}")
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        fail("$", f"not valid JSON: {exc}")


def json_object(raw: object, path: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, object]:
    if not isinstance(raw, dict):
        fail(path, f"expected an object, got {type(raw).__name__}")
    for key in required:
        if key not in raw:
            fail(path, f"missing key {key!r}")
    for key in raw:
        if key not in required and key not in optional:
            fail(path, f"unknown key {short(key)}")
    return raw


def integer(raw: object, path: str, lo: int = -INT64, hi: int = INT64 - 1) -> int:
    if type(raw) is not int:
        fail(path, f"expected an integer, got {short(raw)}")
    if not lo <= raw <= hi:
        fail(path, f"{short(raw)} is out of range [{lo}, {hi}]")
    return raw


def json_list(raw: object, path: str, limit: int) -> list[object]:
    if not isinstance(raw, list):
        fail(path, f"expected a list, got {type(raw).__name__}")
    if len(raw) > limit:
        fail(path, f"{len(raw)} entries, more than the limit {limit}")
    return raw


def tagged_float(raw: object, path: str) -> float:
    if raw in ("nan", "inf", "-inf"):
        return float(raw)
    fail(path, f"a tagged float must be 'nan', 'inf' or '-inf', got {short(raw)}")


def dtype_named(raw: object, path: str) -> np.dtype:
    if not isinstance(raw, str) or raw not in DTYPE_NAMES:
        fail(path, f"unknown dtype {short(raw)}; expected one of {', '.join(DTYPE_NAMES)}")
    return DTYPE_NAMES[raw]


# --- named dimensions ------------------------------------------------------------------------


def dim_json(dim: int | Dim) -> object:
    """A dimension as the document writes it: an int, a name, or {"dim": terms} (canonical order)."""
    if not isinstance(dim, Dim):
        return dim
    if dim.name is not None:
        return dim.name
    terms = [[c, [name for name, k in m for _ in range(k)]] for m, c in dim.terms]
    return {"dim": terms}


def is_dim_name(raw: object) -> bool:
    """Whether `raw` is a dimension name: an identifier (str.isidentifier) of at most MAX_NAME characters."""
    return isinstance(raw, str) and raw.isidentifier() and len(raw) <= MAX_NAME


def dim_named(raw: object, path: str) -> Dim:
    if not is_dim_name(raw):
        fail(
            path,
            f"a dimension name is an identifier such as 'batch' of at most {MAX_NAME} characters, got {short(raw)}",
        )
    return Dim.named(typing.cast(str, raw))


def dim_terms(raw: object, path: str) -> Dim:
    """The Dim of a {"dim": terms} body: bounded, names checked, in canonical form, not a constant."""
    total: int | Dim = 0
    for k, term in enumerate(json_list(raw, path, MAX_TERMS)):
        where = f"{path}[{k}]"
        items = json_list(term, where, 2)
        if len(items) != 2:
            fail(where, "a term is [coefficient, [name, ...]]")
        value: int | Dim = integer(items[0], f"{where}[0]", -INT64 + 1)
        names = json_list(items[1], f"{where}[1]", MAX_DEGREE)
        for j, name in enumerate(names):
            value = value * dim_named(name, f"{where}[1][{j}]")  # within the bounds: no ShapeError
        total = total + value
    if not isinstance(total, Dim):
        fail(path, f"the terms add up to {total}: a dimension without names is written as an int")
    if dim_json(total) != {"dim": raw}:
        fail(path, f"not the canonical form of {total}, which is written {json.dumps(dim_json(total))}")
    return total


def dimension(raw: object, path: str) -> int | Dim:
    """A shape entry: an int >= 0, a name, or {"dim": terms}."""
    if isinstance(raw, dict) and set(raw) == {"dim"}:
        return dim_terms(raw["dim"], f"{path}.dim")
    if isinstance(raw, str):
        return dim_named(raw, path)
    return integer(raw, path, 0)


# --- reading: attribute types from each op's infer -------------------------------------------

ANY: object = object()
NO: object = object()


class AttrSpec(typing.NamedTuple):
    """What an op's `infer` accepts: attr name -> annotation, required names, operand counts."""

    hints: dict[str, object]
    required: frozenset[str]
    open: bool  # **attrs: any name goes
    min_inputs: int
    max_inputs: int | None


@functools.cache
def attr_spec(op: Op) -> AttrSpec:
    """The attrs and operand counts an op takes, read from its infer's signature and annotations."""
    try:
        signature = inspect.signature(op.infer)
    except (TypeError, ValueError):
        return AttrSpec({}, frozenset(), True, 0, None)
    try:
        hints = typing.get_type_hints(op.infer)
    except Exception:  # an annotation only a type checker can resolve: check that attr in infer alone
        hints = {}
    names: dict[str, object] = {}
    required = set()
    open_, low, high = False, 0, 0
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            open_ = True
        elif p.kind is p.KEYWORD_ONLY:
            names[p.name] = hints.get(p.name, ANY)
            if p.default is p.empty:
                required.add(p.name)
        elif p.kind is p.VAR_POSITIONAL:
            high = -1
        else:
            low += p.default is p.empty
            high += high >= 0
    return AttrSpec(names, frozenset(required), open_, low, None if high < 0 else high)


def _fit_tuple(value: object, args: tuple[object, ...]) -> object:
    if not isinstance(value, tuple):
        return NO
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    if len(args) != len(value):
        return NO
    items = tuple(fit(v, h) for v, h in zip(value, args, strict=True))
    return NO if any(item is NO for item in items) else items


def fit(value: object, hint: object) -> object:
    """`value` as annotation `hint` asks (an int where a float is asked becomes a float), or NO."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            fitted = fit(value, option)
            if fitted is not NO:
                return fitted
        return NO
    if origin is tuple:
        return _fit_tuple(value, typing.get_args(hint))
    if hint in (None, type(None)):
        return value if value is None else NO
    if hint is Dim:
        if is_dim_name(value):
            return Dim.named(value)  # type: ignore[arg-type]
        return value if isinstance(value, Dim) else NO
    if hint is float:
        return float(value) if type(value) in (int, float) else NO  # type: ignore[arg-type]
    if hint in (int, bool):
        return value if type(value) is hint else NO
    if isinstance(hint, type) and hint is not object:
        return value if isinstance(value, hint) else NO
    return value  # Any, object, or an annotation this reader does not know: infer checks it


def hint_text(hint: object) -> str:
    """An annotation as a message shows it: `tuple[int | Dim, ...]`; with a word on names where Dims go."""
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    text = text.replace("typing.", "").replace("graphc.shapes.", "")
    if "Dim" in text:
        text += ' (a named dimension is an identifier such as "batch", or {"dim": [[coefficient, [name, ...]], ...]})'
    return text
