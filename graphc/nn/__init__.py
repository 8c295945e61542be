"""gc.nn: the neural-network functions of the API (convolution and pooling), as torch.nn.functional's.

Imports tensor, functions and ops; each family lives in its own module (conv.py, pool.py).
"""

from graphc.nn.conv import conv2d
from graphc.nn.pool import avg_pool2d, max_pool2d

__all__ = ["avg_pool2d", "conv2d", "max_pool2d"]
