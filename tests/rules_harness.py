"""The shared harness of the rule-table tests (test_simplify, test_prune, test_fastmath, test_stability).

A pass's rules live in a table `RULES` (op name -> rule functions). Its test module makes
`CASES = RuleCases(RULES, the_pass)` and registers one case per rule with `@CASES.case(...)`
on a function named like the rule: it takes a length n and returns the outputs, and its
docstring is the golden text of the pass's result for n = 3. Extra keyword fields (inputs
where the rewrite matters, exact references) go to a `Case` subclass given as `case_type`.
The module then writes its tests in a line or two each with `check_coverage`,
`check_golden`, `check_idempotent`, and the special-value helpers below.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

import graphc as gc
from graphc.ir import Graph

Build = Callable[[int], list[gc.Tensor]]


@dataclass(frozen=True)
class Case:
    build: Build  # vectors of length n -> the outputs
    golden: str  # str(the pass applied to Graph(build(3)))


class RuleCases:
    """One case per rule of a pass's rule table, registered by a decorator."""

    def __init__(
        self, rules: Mapping[str, Sequence[Callable]], apply: Callable[[Graph], Graph], case_type: type[Case] = Case
    ) -> None:
        self.rules = rules
        self.apply = apply
        self.case_type = case_type
        self.cases: dict[str, Case] = {}
        self.names = sorted({rule.__name__ for table in rules.values() for rule in table})

    def case(self, **fields: object) -> Callable[[Build], Build]:
        """Register the case of the rule named like the decorated function; its docstring is the golden text."""

        def register(build: Build) -> Build:
            golden = inspect.cleandoc(build.__doc__ or "")
            self.cases[build.__name__] = self.case_type(build, golden, **fields)  # type: ignore[call-arg]
            return build

        return register

    def __getitem__(self, name: str) -> Case:
        return self.cases[name]

    def graph(self, name: str, n: int = 3) -> Graph:
        return Graph(self.cases[name].build(n))

    def check_coverage(self) -> None:
        """Every rule has a case (and every case a rule), and every rule's docstring states its rule."""
        assert sorted(self.cases) == self.names
        for table in self.rules.values():
            for rule in table:
                assert "->" in (rule.__doc__ or ""), f"{rule.__name__}'s docstring must state its rule"

    def check_golden(self, name: str) -> None:
        """The pass rewrites the case's graph into its golden text."""
        graph = self.graph(name)
        result = self.apply(graph)
        assert result is not graph
        assert str(result) == self.cases[name].golden

    def check_idempotent(self, name: str) -> None:
        once = self.apply(self.graph(name))
        assert self.apply(once) is once


# --- special values ------------------------------------------------------------------------------

SPECIALS = np.array(
    [
        np.nan,
        np.inf,
        -np.inf,
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        1e-300,
        1e300,
        -1e300,
        1.0,
        -1.0,
        0.5,
        2.0,
        -3.25,
        1e-20,
        1000.0,
        -1000.0,
    ]
)
PAIRS = len(SPECIALS) ** 2  # a vector length that holds every ordered pair of specials


def special_feed(graph: Graph) -> dict:
    """Float vars take the columns of all ordered pairs of SPECIALS (tiled to their size; a third var a
    permutation); bool vars True, False, False, ...; int vars 0, 1, -1, 2, 7, -3, ..."""
    pairs = np.array(list(itertools.product(SPECIALS, repeat=2))).T
    columns = [pairs[0], pairs[1], np.random.default_rng(0).permutation(pairs[0])]
    feed = {}
    floats = 0
    for v in graph.inputs:
        if v.dtype.kind == "f":
            with np.errstate(over="ignore"):
                values = np.resize(columns[floats % 3], v.shape).astype(v.dtype)
            floats += 1
        elif v.dtype.kind == "b":
            values = np.resize([True, False, False], v.shape)
        else:
            values = np.resize(np.array([0, 1, -1, 2, 7, -3], v.dtype), v.shape)
        feed[v] = values
    return feed


def evaluate(outputs: object, feed: dict) -> list[np.ndarray]:
    """gc.evaluate of a graph's outputs (or a list of Tensors), NumPy's warnings silenced."""
    if isinstance(outputs, Graph):
        outputs = list(outputs.outputs)
    with np.errstate(all="ignore"):
        return gc.evaluate(list(outputs), feed)  # type: ignore[call-overload, arg-type]


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal values, NaN where NaN, and the same sign bit on every non-NaN element (zeros included)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True), f"{got} != {want}"
    if got.dtype.kind == "f":
        numbers = ~np.isnan(want)
        assert np.array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))


def assert_within_ulp(got: np.ndarray, want: np.ndarray, ulp: int = 4) -> None:
    """Bit-equal where the reference is not finite, within `ulp` units in the last place elsewhere."""
    assert got.dtype == want.dtype and got.shape == want.shape
    finite = np.isfinite(want)
    assert_same_bits(got[~finite], want[~finite])
    tolerance = ulp * np.spacing(np.maximum(np.abs(got[finite]), np.abs(want[finite])))
    assert np.all(np.abs(got[finite] - want[finite]) <= tolerance)


def check_special_values(cases: RuleCases, name: str, inexact: frozenset[str] = frozenset()) -> None:
    """The pass's result equals the original graph on every pair of specials: bit for bit, or within
    a few ulp for the rules in `inexact` (documented reassociations)."""
    graph = cases.graph(name, PAIRS)
    result = cases.apply(graph)
    assert result is not graph
    feed = special_feed(graph)
    compare = assert_within_ulp if name in inexact else assert_same_bits
    for got, want in zip(evaluate(result, feed), evaluate(graph, feed), strict=True):
        compare(got, want)
