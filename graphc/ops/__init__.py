"""Every primitive of graphc, one module per family, and the OPS registry.

Imports errors, shapes, ir. Importing this package defines (and registers) all ops.
"""

from graphc.ops import (
    control,
    control_flow,
    cumulative,
    dims,
    elementwise,
    linalg,
    loops,
    nn,
    random,
    reduce,
    shape,
    source,
    sparsity,
    special,
    structure,
)  # fmt: skip
from graphc.ops.base import OPS, Domain, Kind, Op, Public, accepts, elementwise_ops, zero

__all__ = [
    "OPS", "Domain", "Kind", "Op", "Public", "accepts", "control", "control_flow", "cumulative", "dims",
    "elementwise", "elementwise_ops", "linalg", "loops", "nn", "random", "reduce", "shape", "source", "sparsity",
    "special", "structure", "zero",
]  # fmt: skip
