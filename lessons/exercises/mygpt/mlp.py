"""Exercise: SiLU and the SwiGLU MLP.

Track: Build a GPT · lesson: gpt-parts-of-a-block

silu(x): x, a Tensor of any shape; return a Tensor of the same shape,

    silu(x) = x * sigmoid(x),   sigmoid(x) = 1 / (1 + exp(-x))

as one operation with its own _backward, using

    d silu / dx = sigmoid(x) * (1 + x * (1 - sigmoid(x)))

SwiGLU(dim, hidden, rng=None, out_std=0.02, dtype=np.float32): three
Linear layers without bias, created in this order: self.gate and self.up,
(dim, hidden) with the default std, and self.down, (hidden, dim) with
std=out_std; pass rng and dtype on. Calling it on x: (..., dim), e.g.
(B, T, C), returns (..., dim):

    down(silu(gate(x)) * up(x))        the middle is (..., hidden)

The gate decides, per hidden unit, how much of up(x) gets through.
Imports Linear and Module from mygpt.layers, Tensor from mygpt.tensor.
"""

import numpy as np

from mygpt.layers import Linear, Module
from mygpt.tensor import Tensor


def silu(x):
    """x * sigmoid(x); its derivative is sigmoid(x) * (1 + x * (1 - sigmoid(x)))."""
    out = Tensor(..., (x,))  # your code here

    def _backward():
        ...  # your code here
    out._backward = _backward
    return out


class SwiGLU(Module):
    def __init__(self, dim, hidden, rng=None, out_std=0.02, dtype=np.float32):
        raise NotImplementedError("your code here")

    def __call__(self, x):
        raise NotImplementedError("your code here")
