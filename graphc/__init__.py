"""graphc: a static computation-graph compiler with symbolic differentiation.

This module re-exports the public API of ../shared/API.md and nothing else.
"""

from graphc.autodiff import grad, hessian, jacobian, jvp, vjp
from graphc.backends.interpreter import evaluate
from graphc.compile import compile
from graphc.errors import ConvergenceError, DifferentiationError, DTypeError, GraphError, ShapeError
from graphc.functions import (
    abs,
    add,
    arctan,
    argmax,
    argmin,
    broadcast_to,
    clip,
    concatenate,
    cos,
    cosh,
    divide,
    dot,
    equal,
    exp,
    expand_dims,
    expm1,
    floor,
    greater,
    greater_equal,
    isfinite,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    not_equal,
    one_hot,
    power,
    prod,
    relu,
    round,
    sigmoid,
    sign,
    sin,
    sinh,
    softmax,
    softplus,
    sqrt,
    square,
    squeeze,
    stack,
    subtract,
    sum,
    take,
    tan,
    tanh,
    transpose,
    where,
)  # fmt: skip
from graphc.ir import Graph
from graphc.passes import optimize
from graphc.tensor import Tensor, as_tensor, astype, const, reshape, var
from graphc.viz import show, to_dot, to_networkx

__version__ = "0.1.0"

__all__ = [
    "ConvergenceError", "DTypeError", "DifferentiationError", "Graph", "GraphError", "ShapeError",
    "Tensor", "abs", "add", "compile", "evaluate", "grad", "hessian", "jacobian", "jvp", "optimize", "vjp", "arctan", "argmax", "argmin", "as_tensor", "astype", "broadcast_to",
    "clip", "concatenate", "const", "cos", "cosh", "divide", "dot", "equal", "exp", "expand_dims",
    "expm1", "floor", "greater", "greater_equal", "isfinite", "isnan", "less", "less_equal", "log",
    "log1p", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum",
    "multiply", "negative", "not_equal", "one_hot", "power", "prod", "relu", "reshape", "round",
    "sigmoid", "sign", "sin", "sinh", "softmax", "softplus", "sqrt", "square", "squeeze", "stack",
    "subtract", "sum", "take", "tan", "tanh", "transpose", "var", "where",
    "show", "to_dot", "to_networkx",
]  # fmt: skip
