"""Exercise: AdamW and gradient clipping.

Track: Build a GPT · lesson: gpt-optimizer-and-loop

AdamW(params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
keeps self.params (a list of the Tensors), the hyperparameters, and its
state: self.m and self.v, one array of zeros per parameter (the
parameter's shape and dtype), and self.t = 0, the number of steps taken.

zero_grad() sets every parameter's grad to 0 in place (p.grad[...] = 0).

step(lr=None) uses lr, or self.lr when lr is None. It adds 1 to self.t
first, then for each parameter p with gradient g, b1, b2 = betas:

    m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g²
    m̂ = m / (1 - b1ᵗ)              v̂ = v / (1 - b2ᵗ)
    p = p - lr * weight_decay * p  (only if p.ndim >= 2)
    p = p - lr * m̂ / (√v̂ + eps)

This is torch's AdamW: the decay is decoupled (it shrinks p directly, not
through g) and touches matrices only, never biases or RMSNorm gains.
Update p.data, self.m and self.v in place.

clip_grad_norm(params, max_norm): the global norm is √(sum of g² over
every gradient), summed in float64. Scale every gradient in place by

    min(1, max_norm / (norm + 1e-6))

and return the norm from before clipping, as a float. Imports nothing
from mygpt: it only reads .data and .grad.
"""

import numpy as np


class AdamW:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        raise NotImplementedError("your code here")

    def zero_grad(self):
        raise NotImplementedError("your code here")

    def step(self, lr=None):
        raise NotImplementedError("your code here")


def clip_grad_norm(params, max_norm):
    """Scale every gradient by min(1, max_norm / (norm + 1e-6)); return the global norm before clipping."""
    raise NotImplementedError("your code here")
