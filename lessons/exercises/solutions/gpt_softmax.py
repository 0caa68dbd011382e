"""Reference: softmax as an operation whose backward is the softmax's Jacobian applied to the gradient."""

import numpy as np

from mygpt.tensor import Tensor


def softmax(x, axis=-1):
    e = np.exp(x.data - x.data.max(axis=axis, keepdims=True))
    s = e / e.sum(axis=axis, keepdims=True)
    out = Tensor(s, (x,))

    def _backward():
        g = out.grad
        x.grad += s * (g - (g * s).sum(axis=axis, keepdims=True))
    out._backward = _backward
    return out
