"""Recurrent backpropagation: gc.scan (BPTT) and gc.fixed_point (implicit differentiation).

Imports errors, shapes, ir, ops, tensor and autodiff (this package sits at their level).
The primitives' types and NumPy semantics live in graphc/ops/loops.py; their Op records
and derivative rules here, because the rules transform a loop's body with the autodiff
engine: scan_rules.py (BPTT as a reverse scan, checkpointing, forward mode),
fixed_point_rules.py (Almeida-Pineda adjoint iteration), frontend.py (tracing the user's
step function into a body). See docs/recurrence.md.
"""

from graphc.recurrence.fixed_point_rules import fixed_point as fixed_point_op
from graphc.recurrence.frontend import fixed_point, scan
from graphc.recurrence.scan_rules import scan as scan_op

__all__ = ["fixed_point", "fixed_point_op", "scan", "scan_op"]
