"""Exercise: Causal self-attention.

Track: Build a GPT · lesson: gpt-parts-of-a-block

SelfAttention(d_model, n_heads, rng=None, out_std=0.02,
dtype=np.float32): keep self.n_heads and four Linear layers without bias,
each (C, C) with C = d_model, created in this order (so one seed always
gives the same weights): self.q, self.k, self.v with the default std, and
self.out with std=out_std. Pass rng and dtype on to each.

Calling it on x: (B, T, C) with the RoPE tables cos, sin returns
(B, T, C). With H = n_heads and D = C / H:

    q, k, v = x Wq, x Wk, x Wv                   (B, T, C) each
    split heads: reshape (B, T, H, D), then transpose(1, 2) -> (B, H, T, D)
    y = causal_attention(rope(q), rope(k), v)    (B, H, T, D)
    merge heads: transpose(1, 2), reshape (B, T, C), then self.out

Head h owns columns h*D .. (h+1)*D - 1 of q, k and v. RoPE turns queries
and keys only; values are not rotated. Imports causal_attention from
mygpt.attention, Linear and Module from mygpt.layers, rope from
mygpt.rope.
"""

import numpy as np

from mygpt.attention import causal_attention
from mygpt.layers import Linear, Module
from mygpt.rope import rope


class SelfAttention(Module):
    def __init__(self, d_model, n_heads, rng=None, out_std=0.02, dtype=np.float32):
        raise NotImplementedError("your code here")

    def __call__(self, x, cos, sin):
        raise NotImplementedError("your code here")
