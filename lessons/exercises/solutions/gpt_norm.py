"""Reference: RMSNorm from Tensor operations, y = x / sqrt(mean(x²) + eps) * weight."""

import numpy as np

from mygpt.layers import Module
from mygpt.tensor import Tensor


class RMSNorm(Module):
    def __init__(self, dim, eps=1e-5, dtype=np.float32):
        self.eps = eps
        self.weight = Tensor(np.ones(dim, dtype=dtype))

    def __call__(self, x):
        return x * ((x * x).mean(axis=-1, keepdims=True) + self.eps) ** -0.5 * self.weight
