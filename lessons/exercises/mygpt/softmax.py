"""Exercise: Softmax and its gradient.

Track: Build a GPT · lesson: gpt-layers-and-loss

softmax(x, axis=-1): x, a Tensor of any shape, e.g. attention scores
(B, H, T, T); return a Tensor s of the same shape and dtype,

    s = exp(x - max(x)) / sum(exp(x - max(x)))

along axis (subtract the maximum, keepdims, so large scores and -inf
entries from a mask both work). A row's -inf entries get weight 0.

Write it as one operation with its own _backward. The softmax's Jacobian
is ds_i/dx_j = s_i (δ_ij - s_j); applied to g = out.grad it never needs
the full matrix:

    dx = s * (g - sum(g * s, axis, keepdims=True))

Add dx to x.grad. Imports Tensor from mygpt.tensor.
"""

import numpy as np

from mygpt.tensor import Tensor


def softmax(x, axis=-1):
    out = Tensor(..., (x,))  # your code here

    def _backward():
        ...  # your code here
    out._backward = _backward
    return out
