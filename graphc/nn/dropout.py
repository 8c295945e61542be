"""gc.nn.dropout: inverted dropout with a counter-based key (graphc.random).

Imports errors, shapes, tensor, functions and random.
"""

from __future__ import annotations

import numbers

import numpy as np

from graphc import functions as fn
from graphc import random as gr
from graphc.errors import DTypeError
from graphc.shapes import is_float
from graphc.tensor import Tensor, as_tensor, building


def dropout(key: object, x: object, rate: float) -> Tensor:
    """Zero each element of x with probability `rate`, scale the kept ones by 1 / (1 - rate) (inverted dropout).

    The expected value of each element is x's, so nothing changes at evaluation time
    (leave dropout out there). Element i is dropped when gc.random.uniform(key, x.shape,
    x.dtype)[i] < rate, so the same key drops the same elements. `rate` is a number in
    [0, 1]: 0 returns x itself, 1 returns zeros (of x's shape and dtype, even where x is
    NaN or infinite). Differentiable in x: the gradient is the same mask times the same
    scale.
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"dropout's rate must be a number in [0, 1], got {type(rate).__name__}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"dropout's rate must be in [0, 1], got {rate}")
    with building("dropout", key, x, rate):
        t = as_tensor(x)
        if not is_float(t.dtype):
            raise DTypeError(f"dropout takes a float Tensor, got {t.node.type}")
        if float(rate) == 0.0:
            return t
        if float(rate) == 1.0:
            return fn.broadcast_to(as_tensor(np.zeros((), t.dtype)), t.shape)
        keep = gr.uniform(key, t.shape, t.dtype) >= float(rate)
        return fn.where(keep, t / (1.0 - float(rate)), 0.0)


__all__ = ["dropout"]
