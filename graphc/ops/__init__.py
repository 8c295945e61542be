"""Every primitive of graphc, one module per family, and the OPS registry.

Imports errors, shapes, ir. Importing this package defines (and registers) all ops.
"""

from graphc.ops import control, elementwise, linalg, loops, reduce, shape, source
from graphc.ops.base import OPS, Kind, Op, zero

__all__ = ["OPS", "Kind", "Op", "control", "elementwise", "linalg", "loops", "reduce", "shape", "source", "zero"]
