"""Reference: causal self-attention with heads and RoPE, from the earlier pieces."""

import numpy as np

from mygpt.attention import causal_attention
from mygpt.layers import Linear, Module
from mygpt.rope import rope


class SelfAttention(Module):
    def __init__(self, d_model, n_heads, rng=None, out_std=0.02, dtype=np.float32):
        self.n_heads = n_heads
        self.q = Linear(d_model, d_model, bias=False, rng=rng, dtype=dtype)
        self.k = Linear(d_model, d_model, bias=False, rng=rng, dtype=dtype)
        self.v = Linear(d_model, d_model, bias=False, rng=rng, dtype=dtype)
        self.out = Linear(d_model, d_model, bias=False, std=out_std, rng=rng, dtype=dtype)

    def __call__(self, x, cos, sin):
        b, t, c = x.shape
        h = self.n_heads

        def heads(y):  # (B, T, C) -> (B, H, T, C/H)
            return y.reshape(b, t, h, c // h).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        y = causal_attention(rope(q, cos, sin), rope(k, cos, sin), v)  # (B, H, T, C/H)
        return self.out(y.transpose(1, 2).reshape(b, t, c))
