"""Recurrent backpropagation: gc.scan (BPTT) and gc.fixed_point (implicit differentiation); control flow.

Imports errors, shapes, ir, ops, tensor and autodiff (this package sits at their level).
The primitives' types and NumPy semantics live in graphc/ops/loops.py; their Op records
and derivative rules here, because the rules transform a loop's body with the autodiff
engine: scan_rules.py (BPTT as a reverse scan, checkpointing, forward mode),
fixed_point_rules.py (Almeida-Pineda adjoint iteration), frontend.py (tracing the user's
step function into a body). Control flow: cond_rules.py and while_rules.py (the records of
`cond` and `while_loop`, whose derivatives are conds and loops again), control_frontend.py
(gc.cond, gc.while_loop). See docs/recurrence.md and docs/control-flow.md.
"""

from graphc.recurrence.cond_rules import cond as cond_op
from graphc.recurrence.control_frontend import cond, while_loop
from graphc.recurrence.fixed_point_rules import fixed_point as fixed_point_op
from graphc.recurrence.frontend import fixed_point, scan
from graphc.recurrence.scan_rules import scan as scan_op
from graphc.recurrence.while_rules import while_loop as while_op

__all__ = ["cond", "cond_op", "fixed_point", "fixed_point_op", "scan", "scan_op", "while_loop", "while_op"]
