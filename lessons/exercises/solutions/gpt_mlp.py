"""Reference: SiLU as an operation, and the SwiGLU feed-forward built on it."""

import numpy as np

from mygpt.layers import Linear, Module
from mygpt.tensor import Tensor


def silu(x):
    """x * sigmoid(x); its derivative is sigmoid(x) * (1 + x * (1 - sigmoid(x)))."""
    sig = 1.0 / (1.0 + np.exp(-x.data))
    out = Tensor(x.data * sig, (x,))

    def _backward():
        x.grad += out.grad * sig * (1.0 + x.data * (1.0 - sig))
    out._backward = _backward
    return out


class SwiGLU(Module):
    def __init__(self, dim, hidden, rng=None, out_std=0.02, dtype=np.float32):
        self.gate = Linear(dim, hidden, bias=False, rng=rng, dtype=dtype)
        self.up = Linear(dim, hidden, bias=False, rng=rng, dtype=dtype)
        self.down = Linear(hidden, dim, bias=False, std=out_std, rng=rng, dtype=dtype)

    def __call__(self, x):
        return self.down(silu(self.gate(x)) * self.up(x))
