"""Exercise: RoPE as an operation.

Track: Build a GPT · lesson: gpt-attention-and-rope

Rotary position embeddings rotate each query and key by an angle that
grows with its position, so q·k depends on how far apart they are.

rope_tables(head_dim, context, base=10000.0): for i < head_dim/2 and
positions p = 0..context-1,

    theta_i = base ** (-2i / head_dim),   angle[p, i] = p * theta_i

return (cos(angle), sin(angle)), each a float64 array
(context, head_dim/2): plain arrays, not Tensors, so they never count as
parameters.

rope(x, cos, sin): x, a Tensor (..., T, D), in the model (B, H, T, D).
Use the first T rows of the tables, cast to x's dtype. Split the last
axis in halves ("rotate half"), x1 = x[..., :D/2], x2 = x[..., D/2:]:

    out = concat(x1 cos - x2 sin,  x2 cos + x1 sin)

Write it as one operation with its own _backward: a rotation's inverse is
the rotation by minus the angle, so with g1, g2 the halves of out.grad,

    dx = concat(g1 cos + g2 sin,  g2 cos - g1 sin)

Imports Tensor from mygpt.tensor.
"""

import numpy as np

from mygpt.tensor import Tensor


def rope_tables(head_dim, context, base=10000.0):
    """cos and sin of position * theta_i, theta_i = base ** (-2i / head_dim), each (context, head_dim / 2) float64."""
    raise NotImplementedError("your code here")


def rope(x, cos, sin):
    """Rotate x (..., T, D) in the rotate-half layout: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)."""
    out = Tensor(..., (x,))  # your code here

    def _backward():
        ...  # your code here
    out._backward = _backward
    return out
