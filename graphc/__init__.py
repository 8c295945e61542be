"""graphc: a static computation-graph compiler with symbolic differentiation.

This module re-exports the public API and nothing else. The NumPy-named functions come
from graphc.functions, which makes those that apply one op from the op's record.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from graphc import functions as _functions
from graphc import linalg, nn, random
from graphc.autodiff import (
    SparseTensor,
    grad,
    hessian,
    hessian_sparsity,
    jacobian,
    jacobian_sparsity,
    jvp,
    sparse_hessian,
    sparse_jacobian,
    value_and_grad,
    vjp,
)
from graphc.autodiff.custom import custom_jvp, custom_vjp, stop_gradient
from graphc.backends.arena import (
    WorkspaceStats,
    get_workspace_limit,
    release_workspaces,
    set_workspace_limit,
    workspace_stats,
)
from graphc.compile import compile, evaluate
from graphc.compile_options import get_num_threads, set_num_threads
from graphc.errors import ConvergenceError, DifferentiationError, DTypeError, GraphError, GraphFormatError, ShapeError
from graphc.explore import explore
from graphc.functions import *  # noqa: F403  (the NumPy-named functions: functions.__all__)
from graphc.ir import Graph
from graphc.passes import optimize
from graphc.recurrence import cond, fixed_point, scan, while_loop
from graphc.serialize import dumps, load, loads, save
from graphc.shapes import Dim
from graphc.tensor import Tensor, as_tensor, astype, const, var
from graphc.viz import show, to_dot, to_networkx

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see of the functions made from op records

    def __getattr__(name: str) -> Callable[..., Tensor]: ...


__all__ = [
    "ConvergenceError",
    "DTypeError",
    "DifferentiationError",
    "Dim",
    "Graph",
    "GraphError",
    "GraphFormatError",
    "ShapeError",
    "SparseTensor",
    "Tensor",
    "WorkspaceStats",
    "as_tensor",
    "astype",
    "compile",
    "cond",
    "const",
    "custom_jvp",
    "custom_vjp",
    "dumps",
    "evaluate",
    "explore",
    "fixed_point",
    "get_num_threads",
    "get_workspace_limit",
    "grad",
    "hessian",
    "hessian_sparsity",
    "jacobian",
    "jacobian_sparsity",
    "jvp",
    "linalg",
    "load",
    "loads",
    "nn",
    "optimize",
    "random",
    "release_workspaces",
    "save",
    "scan",
    "set_num_threads",
    "set_workspace_limit",
    "show",
    "sparse_hessian",
    "sparse_jacobian",
    "stop_gradient",
    "to_dot",
    "to_networkx",
    "value_and_grad",
    "var",
    "vjp",
    "while_loop",
    "workspace_stats",
]
__all__ += _functions.__all__
__all__.sort()
