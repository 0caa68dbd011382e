"""Reference: cross-entropy of logits against integer targets, one fused operation with its own backward."""

import numpy as np

from mygpt.tensor import Tensor


def cross_entropy(logits, targets):
    """Mean over positions of logsumexp(logits) - logits[target]; logits (..., V), targets (...) integers."""
    x = logits.data.reshape(-1, logits.shape[-1])
    t = np.asarray(targets).reshape(-1)
    m = x.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    rows = np.arange(len(t))
    out = Tensor(np.asarray((lse - x[rows, t]).mean(), dtype=x.dtype), (logits,))

    def _backward():
        grad = np.exp(x - lse[:, None])  # softmax
        grad[rows, t] -= 1.0
        logits.grad += (grad * (out.grad / len(t))).reshape(logits.shape)
    out._backward = _backward
    return out
