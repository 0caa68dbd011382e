"""Exercise: Cross-entropy and its gradient.

Track: Build a GPT · lesson: gpt-layers-and-loss

cross_entropy(logits, targets): logits, a Tensor (..., V), e.g. (B, T, V);
targets, an integer array of the leading shape (...), e.g. (B, T). Flatten
both to N = B*T rows, x: (N, V) and t: (N,). The loss is the mean over the
rows of

    loss_n = logsumexp(x_n) - x_n[t_n]

with logsumexp computed stably, m + log(sum(exp(x_n - m))), m = max(x_n).
Return a Tensor of shape () in the logits' dtype.

Write it as one operation with its own _backward, not as a chain of
Tensor operations: one node instead of many, and its gradient has a
short closed form. With p_n = softmax(x_n), the gradient of the mean loss
is

    d loss / d x_n = (p_n - onehot(t_n)) / N

times out.grad, reshaped back to the logits' shape and added to
logits.grad. Imports Tensor from mygpt.tensor.
"""

import numpy as np

from mygpt.tensor import Tensor


def cross_entropy(logits, targets):
    """Mean over positions of logsumexp(logits) - logits[target]; logits (..., V), targets (...) integers."""
    x = logits.data.reshape(-1, logits.shape[-1])  # (N, V)
    t = np.asarray(targets).reshape(-1)  # (N,)
    out = Tensor(..., (logits,))  # your code here

    def _backward():
        ...  # your code here
    out._backward = _backward
    return out
