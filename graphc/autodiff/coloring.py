"""Graph coloring for compressed Jacobians and Hessians.

Imports numpy; networkx and scipy inside the functions (lazily). Patterns are
scipy.sparse csr_arrays of bools.

Jacobians (column compression, Curtis-Powell-Reid): columns that share no row may share
a color, so J @ S, with S the n x colors seed of the coloring, holds every entry of J
once. This is a distance-1 coloring of the column intersection graph (columns adjacent
when they share a row). The greedy coloring (each column in turn takes the smallest
color none of its neighbors has) runs on the pattern itself, in one pass over the
entries, in the natural order and (up to LARGEST_FIRST_COLUMNS) the largest-degree-first
order; graphs small enough for networkx are also colored by its greedy_color with the
largest_first and smallest_last orderings, and saturation_largest_first (DSATUR,
quadratic there) on the smallest. The fewest colors win; the search stops as soon as a
coloring reaches the lower bound (the longest row), as it does on banded patterns.

Hessians (symmetric, star coloring; Gebremedhin, Manne and Pothen, "What color is your
Jacobian? Graph coloring for computing derivatives", SIAM Review 47(4), 2005): a
distance-1 coloring of the adjacency graph in which every path on four vertices uses at
least three colors. Then every off-diagonal entry H[i, j] is read directly from H @ S:
either j is the only neighbor of i with its color (H[i, j] = B[i, color(j)]) or i is the
only neighbor of j with its color. The greedy algorithm is their Algorithm 4.1: coloring
v, forbid (a) the colors of v's neighbors w; (b) for an uncolored neighbor w, the colors
of w's colored neighbors x (two vertices with a common neighbor colored after both must
differ); (c) for a colored neighbor w and a colored neighbor x of w, x's color when x has
another neighbor of w's color (else v - w - x - y would be a two-colored path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np

Pattern: TypeAlias = Any
"""A scipy.sparse.csr_array of bools (scipy ships no type stubs, so it is Any to the type checker)."""

NETWORKX_EDGES = 20_000
"""networkx also colors intersection graphs up to this many edges (larger ones: `greedy_columns` alone)."""
LARGEST_FIRST_COLUMNS = 50_000
"""The largest-first order is tried on patterns up to this many columns (the natural order on all)."""
DSATUR_NODES = 200
"""networkx's saturation strategy is quadratic in the nodes: it is tried on graphs up to this size."""
STAR_WORK = 3_000_000
"""The star coloring is tried when sum(degree²) is at most this (it walks two steps from every vertex)."""


def intersection_graph(p: Pattern) -> Pattern:
    """The column intersection graph of a pattern: columns adjacent when they share a row (no self loops)."""
    from scipy.sparse import csr_array  # type: ignore[import-untyped]

    a = csr_array(p.T.astype(bool) @ p.astype(bool))
    a.setdiag(False)
    a.eliminate_zeros()
    return a


def color_columns(p: Pattern) -> np.ndarray:
    """A coloring of p's columns (colors 0, 1, ...) in which no two columns of one color share a row.

    Colorings are tried cheapest first, and the search stops at one that reaches the lower
    bound (the longest row: its columns all differ).
    """
    n = p.shape[1]
    bound = lower_bound(p)
    best = greedy_columns(p, np.arange(n))
    for attempt in _other_colorings(p):
        if count(best) <= bound:
            break
        candidate = attempt()
        if count(candidate) < count(best):
            best = candidate
    return best


def lower_bound(p: Pattern) -> int:
    """The most entries in one row: no column coloring needs fewer colors."""
    return int(np.diff(p.tocsr().indptr).max(initial=0))


def _other_colorings(p: Pattern) -> list[Callable[[], np.ndarray]]:
    """The further colorings to try, cheapest first: largest-first, then networkx's on small graphs."""
    n = p.shape[1]
    attempts: list[Callable[[], np.ndarray]] = []
    if n <= LARGEST_FIRST_COLUMNS:
        attempts.append(lambda: greedy_columns(p, np.argsort(-_intersection_degrees(p), kind="stable")))
    if int(_intersection_degrees(p).sum()) // 2 <= NETWORKX_EDGES:
        attempts.extend(_networkx_attempts(p))
    return attempts


def count(colors: np.ndarray) -> int:
    """How many colors a coloring uses."""
    return int(colors.max()) + 1 if colors.size else 0


def _intersection_degrees(p: Pattern) -> np.ndarray:
    """Per column, a bound of its degree in the intersection graph: the sum over its rows of their length - 1."""
    csc = p.tocsc()
    row_length = np.diff(p.tocsr().indptr)
    column_of = np.repeat(np.arange(p.shape[1]), np.diff(csc.indptr))
    return np.bincount(column_of, weights=row_length[csc.indices] - 1, minlength=p.shape[1]).astype(np.int64)


def greedy_columns(p: Pattern, order: np.ndarray) -> np.ndarray:
    """The greedy coloring in `order`: each column takes the smallest color no column of its rows has yet.

    Works on the pattern itself (each row keeps the set of its colors as a bit mask), so the
    cost is one pass over the entries, not over the intersection graph.
    """
    csc = p.tocsc()
    starts, rows_of = csc.indptr.tolist(), csc.indices.tolist()
    row_colors = [0] * p.shape[0]
    colors = [0] * p.shape[1]
    for j in order.tolist():
        rows = rows_of[starts[j] : starts[j + 1]]
        used = 0
        for i in rows:
            used |= row_colors[i]
        c = (~used & (used + 1)).bit_length() - 1  # the lowest color not used
        colors[j] = c
        for i in rows:
            row_colors[i] |= 1 << c
    return np.array(colors, dtype=np.int64)


def _networkx_attempts(p: Pattern) -> list[Callable[[], np.ndarray]]:
    """networkx's greedy colorings of the intersection graph, one attempt per strategy."""
    n = p.shape[1]
    strategies = ["largest_first", "smallest_last"]
    if n <= DSATUR_NODES:
        strategies.append("saturation_largest_first")
    graph: list[object] = []  # built once, by the first attempt that runs

    def attempt(strategy: str) -> np.ndarray:
        import networkx as nx  # type: ignore[import-untyped]

        if not graph:
            adjacency = intersection_graph(p)
            g = nx.Graph()
            g.add_nodes_from(range(n))
            rows, cols = adjacency.nonzero()
            g.add_edges_from((int(i), int(j)) for i, j in zip(rows, cols, strict=True) if i < j)
            graph.append(g)
        found = nx.greedy_color(graph[0], strategy=strategy)
        return np.array([found[v] for v in range(n)], dtype=np.int64)

    return [lambda s=s: attempt(s) for s in strategies]  # type: ignore[misc]


def is_column_coloring(p: Pattern, colors: np.ndarray) -> bool:
    """True when no two columns of one color share a row of p."""
    csr = p.tocsr()
    for r in range(csr.shape[0]):
        used = colors[csr.indices[csr.indptr[r] : csr.indptr[r + 1]]]
        if len(np.unique(used)) != len(used):
            return False
    return True


# --- symmetric (star) coloring ------------------------------------------------------------------


def adjacency_lists(p: Pattern) -> list[list[int]]:
    """The neighbors of every vertex of a symmetric pattern (no self loops)."""
    csr = p.tocsr()
    return [[int(j) for j in csr.indices[csr.indptr[i] : csr.indptr[i + 1]] if j != i] for i in range(csr.shape[0])]


def star_coloring(p: Pattern) -> np.ndarray | None:
    """A star coloring of a symmetric pattern (Algorithm 4.1 of Gebremedhin, Manne, Pothen 2005), or None when the
    graph is too large to walk in Python (see STAR_WORK); tries largest-first and smallest-last orders."""
    neighbors = adjacency_lists(p)
    degrees = np.array([len(ns) for ns in neighbors], dtype=np.int64)
    if int(np.sum(degrees * degrees)) > STAR_WORK:
        return None
    orders = [np.argsort(-degrees, kind="stable"), _smallest_last(neighbors)]
    return min((_star_greedy(neighbors, order) for order in orders), key=count)


def _smallest_last(neighbors: list[list[int]]) -> np.ndarray:
    """networkx's smallest-last order (vertices of least degree removed last-first)."""
    import networkx as nx  # type: ignore[import-untyped]

    graph = nx.Graph()
    graph.add_nodes_from(range(len(neighbors)))
    graph.add_edges_from((i, j) for i, ns in enumerate(neighbors) for j in ns if i < j)
    order = list(nx.algorithms.coloring.strategy_smallest_last(graph, {}))
    return np.array(order, dtype=np.int64)


def _star_greedy(neighbors: list[list[int]], order: np.ndarray) -> np.ndarray:
    """Greedy star coloring in `order` (the rules (a)-(c) of the module docstring)."""
    n = len(neighbors)
    color = [-1] * n
    forbidden = [-1] * (n + 1)  # forbidden[c] == v: color c is forbidden for v
    around: list[dict[int, int]] = [{} for _ in range(n)]  # around[x][c]: colored neighbors of x with color c
    for v in (int(i) for i in order):
        for w in neighbors[v]:
            cw = color[w]
            if cw >= 0:
                forbidden[cw] = v
            _forbid_two_steps(v, w, cw, neighbors, color, around, forbidden)
        c = 0
        while forbidden[c] == v:
            c += 1
        color[v] = c
        for w in neighbors[v]:
            around[w][c] = around[w].get(c, 0) + 1
    return np.array(color, dtype=np.int64)


def _forbid_two_steps(
    v: int, w: int, cw: int, neighbors: list[list[int]], color: list[int], around: list[dict[int, int]],
    forbidden: list[int],
) -> None:  # fmt: skip
    """Rules (b) and (c) for the neighbor w of v."""
    for x in neighbors[w]:
        cx = color[x]
        if cx < 0 or x == v:
            continue
        if cw < 0 or around[x].get(cw, 0) >= 2:  # (b) w uncolored; (c) x has a neighbor besides w of w's color
            forbidden[cx] = v


def is_star_coloring(p: Pattern, colors: np.ndarray) -> bool:
    """True when the coloring is distance-1 and no path on four vertices is two-colored (checked exhaustively)."""
    neighbors = adjacency_lists(p)
    for a, ns in enumerate(neighbors):
        for b in ns:
            if colors[a] == colors[b]:
                return False
            for c in neighbors[b]:
                if c == a:
                    continue
                for d in neighbors[c]:
                    two = colors[a] == colors[c] and colors[b] == colors[d]
                    if d not in (a, b) and two:
                        return False
    return True


__all__ = [
    "color_columns", "count", "greedy_columns", "intersection_graph", "is_column_coloring", "is_star_coloring",
    "star_coloring",
]  # fmt: skip
