"""Exercise: RMSNorm.

Track: Build a GPT · lesson: gpt-parts-of-a-block

RMSNorm(dim, eps=1e-5, dtype=np.float32) rescales each vector to a root
mean square of about 1, then multiplies by a learned gain. Keep eps as
self.eps and the gain as self.weight, a (dim,) Tensor of ones in dtype.

Calling it on x: (..., dim), e.g. (B, T, C), returns the same shape:

    y = x / √(mean(x², last axis) + eps) * weight

Build it from Tensor operations (*, mean with keepdims, ** -0.5), so the
gradient comes for free. Imports Module from mygpt.layers and Tensor from
mygpt.tensor.
"""

import numpy as np

from mygpt.layers import Module
from mygpt.tensor import Tensor


class RMSNorm(Module):
    def __init__(self, dim, eps=1e-5, dtype=np.float32):
        raise NotImplementedError("your code here")

    def __call__(self, x):
        raise NotImplementedError("your code here")
