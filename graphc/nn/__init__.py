"""gc.nn: neural-network building blocks, as torch.nn.functional's: convolution, pooling, dropout.

Imports errors, shapes, ir, ops, tensor, functions and random, at their level. One module
per family of functions (conv.py, pool.py, dropout.py); this package re-exports them.
"""

from graphc.nn.conv import conv2d
from graphc.nn.dropout import dropout
from graphc.nn.pool import avg_pool2d, max_pool2d

__all__ = ["avg_pool2d", "conv2d", "dropout", "max_pool2d"]
