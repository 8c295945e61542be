"""A layered (Sugiyama-style) drawing of a directed acyclic graph: layers, order, coordinates.

Imports nothing from graphc: it lays out boxes numbered 0..n-1 joined by edges that go
from a lower number to a higher one (a toposort order). The steps are the classic ones:
1. layers: longest path from the sources; a node with no inputs (a var, a constant)
   moves down to just above its first user, so it does not stretch edges across the page;
2. dummies: an edge spanning several layers gets a chain of small dummy items, one per
   layer it crosses (within a budget, shortest edges first; the rest are drawn straight);
3. order: barycenter sweeps, down then up, reorder each layer by the mean position of
   its neighbours in the layer before;
4. coordinates: each sweep moves every item towards the mean x of its neighbours, then
   the layer's order and spacing are restored by isotonic regression (PAVA), which finds
   the nearest positions that keep them.
Deterministic (no sets are iterated, sorts are stable) and about linear in the items.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

H_GAP = 18.0  # horizontal space between neighbouring boxes of one layer
V_GAP = 36.0  # vertical space between layers
DUMMY_WIDTH = 6.0
ORDER_SWEEPS = 6
PLACE_SWEEPS = 6
BIG = 2000  # items beyond which each kind of sweep runs BIG_SWEEPS times (the drawing stays legible)
BIG_SWEEPS = 3
DUMMY_BUDGET = 3  # at most this many dummies per real node (and at least MIN_DUMMIES)
MIN_DUMMIES = 600


@dataclass(frozen=True)
class Drawing:
    """Where everything goes. Items 0..n-1 are the boxes, items n.. the dummies of long edges.

    `x` is each item's centre, `layer` its layer; `layers` lists each layer's items left to
    right; `top` and `height` give each layer's band; `routes` has, for each edge in the
    order given, the dummy items it passes through (empty: a direct line).
    """

    x: tuple[float, ...]
    layer: tuple[int, ...]
    widths: tuple[float, ...]
    heights: tuple[float, ...]
    layers: tuple[tuple[int, ...], ...]
    top: tuple[float, ...]
    height: tuple[float, ...]
    routes: tuple[tuple[int, ...], ...]
    width: float
    total_height: float

    def y(self, item: int) -> float:
        """The centre y of an item (the middle of its layer's band)."""
        band = self.layer[item]
        return self.top[band] + self.height[band] / 2


def layer_of(count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Longest-path layers; nodes without inputs sit one layer above their first user."""
    layer = [0] * count
    preds: list[list[int]] = [[] for _ in range(count)]
    succs: list[list[int]] = [[] for _ in range(count)]
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    for node in range(count):
        if preds[node]:
            layer[node] = 1 + max(layer[p] for p in preds[node])
    for node in range(count):
        if not preds[node] and succs[node]:
            layer[node] = max(0, min(layer[s] for s in succs[node]) - 1)
    return layer


def _add_dummies(
    count: int, edges: Sequence[tuple[int, int]], layer: list[int]
) -> tuple[list[int], list[tuple[int, ...]]]:
    """Dummy items for long edges (shortest first, within the budget): their layers and each edge's chain."""
    budget = max(MIN_DUMMIES, DUMMY_BUDGET * count)
    spans = sorted(range(len(edges)), key=lambda e: layer[edges[e][1]] - layer[edges[e][0]])
    dummy_layers: list[int] = []
    routes: list[tuple[int, ...]] = [() for _ in edges]
    for e in spans:
        a, b = edges[e]
        span = layer[b] - layer[a]
        if span <= 1 or len(dummy_layers) + span - 1 > budget:
            continue
        first = count + len(dummy_layers)
        dummy_layers.extend(range(layer[a] + 1, layer[b]))
        routes[e] = tuple(range(first, first + span - 1))
    return dummy_layers, routes


def _links(
    items: int, edges: Sequence[tuple[int, int]], routes: Sequence[tuple[int, ...]]
) -> tuple[list[list[int]], list[list[int]]]:
    """Each item's neighbours above and below, along every edge and its dummy chain."""
    up: list[list[int]] = [[] for _ in range(items)]
    down: list[list[int]] = [[] for _ in range(items)]
    for (a, b), chain in zip(edges, routes, strict=True):
        path = [a, *chain, b]
        for s, t in itertools.pairwise(path):
            down[s].append(t)
            up[t].append(s)
    return up, down


def _sweep_order(layers: list[list[int]], neighbours: list[list[int]], position: list[float], rows: range) -> None:
    """Reorder each layer of `rows` by the mean position of each item's neighbours (stable)."""
    for row in rows:
        items = layers[row]
        keys = []
        for item in items:
            near = neighbours[item]
            keys.append(sum(position[n] for n in near) / len(near) if near else position[item])
        order = sorted(range(len(items)), key=lambda k: keys[k])
        layers[row] = [items[k] for k in order]
        span = max(len(items) - 1, 1)
        for k, item in enumerate(layers[row]):
            position[item] = k / span


def order_layers(
    layer: list[int], up: list[list[int]], down: list[list[int]], sweeps: int = ORDER_SWEEPS
) -> list[list[int]]:
    """Items of each layer left to right, after barycenter sweeps from the initial (numbering) order."""
    rows = max(layer, default=-1) + 1
    layers: list[list[int]] = [[] for _ in range(rows)]
    for item, row in enumerate(layer):
        layers[row].append(item)
    position = [0.0] * len(layer)
    for items in layers:
        span = max(len(items) - 1, 1)
        for k, item in enumerate(items):
            position[item] = k / span
    for sweep in range(sweeps):
        if sweep % 2 == 0:
            _sweep_order(layers, up, position, range(1, rows))
        else:
            _sweep_order(layers, down, position, range(rows - 2, -1, -1))
    return layers


def nearest_ordered(desired: Sequence[float], gaps: Sequence[float]) -> list[float]:
    """Positions closest (least squares) to `desired` with x[k+1] - x[k] >= gaps[k]: PAVA.

    With offsets c[k] = sum(gaps[:k]) the constraint is that x[k] - c[k] never decreases:
    an isotonic regression of desired[k] - c[k], solved by pooling adjacent violators.
    """
    offsets = [0.0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    blocks: list[list[float]] = []  # [mean, weight]
    for d, c in zip(desired, offsets, strict=True):
        blocks.append([d - c, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, weight = blocks.pop()
            last = blocks[-1]
            total = last[1] + weight
            last[0] = (last[0] * last[1] + mean * weight) / total
            last[1] = total
    values: list[float] = []
    for mean, weight in blocks:
        values.extend([mean] * int(weight))
    return [v + c for v, c in zip(values, offsets, strict=True)]


def _place_rows(
    layers: list[list[int]], neighbours: list[list[int]], x: list[float], widths: list[float], rows: range
) -> None:
    for row in rows:
        items = layers[row]
        if not items:
            continue
        desired = []
        for item in items:
            near = neighbours[item]
            desired.append(sum(x[n] for n in near) / len(near) if near else x[item])
        gaps = [(widths[a] + widths[b]) / 2 + H_GAP for a, b in itertools.pairwise(items)]
        for item, value in zip(items, nearest_ordered(desired, gaps), strict=True):
            x[item] = value


def place(
    layers: list[list[int]], up: list[list[int]], down: list[list[int]], widths: list[float], sweeps: int = PLACE_SWEEPS
) -> list[float]:
    """Centre x of every item: packed left to right, then pulled towards its neighbours, sweep by sweep."""
    x = [0.0] * len(widths)
    for items in layers:
        left = 0.0
        for item in items:
            x[item] = left + widths[item] / 2
            left += widths[item] + H_GAP
    rows = len(layers)
    both = [u + d for u, d in zip(up, down, strict=True)]
    for sweep in range(sweeps):
        if sweep == sweeps - 1:
            _place_rows(layers, both, x, widths, range(rows))
        elif sweep % 2 == 0:
            _place_rows(layers, up, x, widths, range(1, rows))
        else:
            _place_rows(layers, down, x, widths, range(rows - 2, -1, -1))
    return x


def layout(sizes: Sequence[tuple[float, float]], edges: Sequence[tuple[int, int]], margin: float = 8.0) -> Drawing:
    """The drawing of boxes `sizes` (width, height) joined by `edges` (a, b) with a < b."""
    count = len(sizes)
    for a, b in edges:
        if not 0 <= a < b < count:
            raise ValueError(f"edge ({a}, {b}) does not go from a lower to a higher box number below {count}")
    layer = layer_of(count, edges)
    dummy_layers, routes = _add_dummies(count, edges, layer)
    layer += dummy_layers
    widths = [w for w, _ in sizes] + [DUMMY_WIDTH] * len(dummy_layers)
    heights = [h for _, h in sizes] + [0.0] * len(dummy_layers)
    up, down = _links(len(layer), edges, routes)
    big = len(layer) > BIG
    layers = order_layers(layer, up, down, BIG_SWEEPS if big else ORDER_SWEEPS)
    x = place(layers, up, down, widths, BIG_SWEEPS if big else PLACE_SWEEPS)
    left = min((x[i] - widths[i] / 2 for i in range(len(x))), default=0.0)
    x = [v - left + margin for v in x]
    right = max((x[i] + widths[i] / 2 for i in range(len(x))), default=0.0)
    band = [max((heights[i] for i in items), default=0.0) for items in layers]
    top = []
    y = margin
    for h in band:
        top.append(y)
        y += h + V_GAP
    return Drawing(
        x=tuple(x),
        layer=tuple(layer),
        widths=tuple(widths),
        heights=tuple(heights),
        layers=tuple(tuple(items) for items in layers),
        top=tuple(top),
        height=tuple(band),
        routes=tuple(routes),
        width=right + margin,
        total_height=(y - V_GAP + margin) if band else 2 * margin,
    )
