"""One record per op: what is derived from an op's record agrees with it.

An elementwise record gives one linear rule per input, used for both the vjp and the jvp;
its `numpy` reference is its eval; its `public` function is made by graphc.functions,
exported by graphc and documented; its `domain` is a real interval. The backends'
derivations (NumPy spelling, LLVM cost class and kernels) are checked in
test_numpy_source.py, test_llvm_backend.py and test_llvm_vecmath.py; values, derivatives
and both backends iterate the records in test_functions.py, test_autodiff.py and
test_higher_order.py.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import graphc as gc
from graphc import functions
from graphc.ops import OPS, Domain, Kind, Op, accepts, elementwise_ops

ELEMENTWISE = elementwise_ops()
PUBLIC = [op for op in OPS.values() if op.public is not None]


def test_the_records_cover_the_elementwise_ops() -> None:
    """Every ELEMENTWISE/BROADCAST op is a record with a domain, except where (a condition) and astype (a dtype)."""
    kinds = {name for name, op in OPS.items() if op.kind in (Kind.ELEMENTWISE, Kind.BROADCAST)}
    assert kinds - {op.name for op in ELEMENTWISE} == {"where", "astype", "broadcast_to"}
    assert len(ELEMENTWISE) >= 35


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda op: op.name)
def test_one_rule_per_input_serves_both_directions(op: Op) -> None:
    assert len(op.vjp) == len(op.jvp) == len(op.domain)
    assert all(v is j for v, j in zip(op.vjp, op.jvp, strict=True))


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda op: op.name)
def test_domains_are_intervals(op: Op) -> None:
    for d in op.domain:
        assert d.lo < d.hi
        assert all(d.lo < s < d.hi for s in d.singular)


@pytest.mark.parametrize("op", [op for op in OPS.values() if op.numpy is not None], ids=lambda op: op.name)
def test_the_numpy_reference_is_the_eval(op: Op) -> None:
    assert getattr(np, str(op.numpy)) is op.eval
    assert op.kind is not Kind.REDUCE  # reductions take attributes: the backends spell them


def test_a_record_whose_eval_is_not_its_numpy_function_is_refused() -> None:
    with pytest.raises(ValueError, match=r"eval is not numpy\.exp"):
        Op("not_really_exp", lambda x: x, np.sin, numpy="exp")
    assert "not_really_exp" not in OPS


@pytest.mark.parametrize("op", PUBLIC, ids=lambda op: op.name)
def test_the_public_function_is_made_exported_and_documented(op: Op) -> None:
    spec = op.public
    assert spec is not None
    function = getattr(gc, spec.name)
    assert function is functions.PUBLIC[spec.name]
    assert spec.name in gc.__all__ and spec.name in functions.__all__
    assert function.__name__ == spec.name and function.__doc__ == spec.doc
    assert len(inspect.signature(function).parameters) == spec.arity == len(op.domain)


@pytest.mark.parametrize("op", PUBLIC, ids=lambda op: op.name)
def test_the_public_function_builds_the_op(op: Op) -> None:
    spec = op.public
    assert spec is not None
    dtype = "float64" if accepts(op, *[np.dtype("float64")] * spec.arity) else "int64"  # bitwise ops: ints
    args = [gc.var(f"x{i}", (2, 3), dtype) for i in range(spec.arity)]
    out = getattr(gc, spec.name)(*args)
    assert out.node.op is op
    assert list(out.node.inputs) == [a.node for a in args]


@pytest.mark.parametrize("op", [op for op in PUBLIC if op.public and op.public.floats], ids=lambda op: op.name)
def test_float_functions_compute_ints_in_float64(op: Op) -> None:
    spec = op.public
    assert spec is not None
    out = getattr(gc, spec.name)(*(gc.var(f"i{k}", (3,), "int64") for k in range(spec.arity)))
    assert out.node.op is op and all(i.dtype == np.float64 for i in out.node.inputs)


def test_errors_name_the_op_the_operands_and_the_line() -> None:
    line = inspect.currentframe().f_lineno + 2  # type: ignore[union-attr]
    with pytest.raises(gc.DTypeError, match=rf"neg\(bool\[3\]\): .*\n  at .*test_op_records.py:{line}"):
        gc.negative(gc.var("b", (3,), "bool"))


def test_domain_defaults_to_the_reals() -> None:
    assert Domain() == Domain(-math.inf, math.inf, ())
