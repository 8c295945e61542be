"""gc.nn: neural-network building blocks (dropout; convolutions and pools join here).

Imports errors, shapes, ir, ops, tensor, functions and random, at their level. One module
per family of functions; this package re-exports them.
"""

from graphc.nn.dropout import dropout

__all__ = ["dropout"]
