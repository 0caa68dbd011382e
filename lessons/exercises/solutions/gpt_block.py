"""Reference: the pre-norm transformer block."""

import numpy as np

from mygpt.layers import Module
from mygpt.mlp import SwiGLU
from mygpt.norm import RMSNorm
from mygpt.self_attention import SelfAttention


class Block(Module):
    def __init__(self, d_model, n_heads, hidden, rng=None, out_std=0.02, dtype=np.float32):
        self.attn_norm = RMSNorm(d_model, dtype=dtype)
        self.attn = SelfAttention(d_model, n_heads, rng=rng, out_std=out_std, dtype=dtype)
        self.ffn_norm = RMSNorm(d_model, dtype=dtype)
        self.ffn = SwiGLU(d_model, hidden, rng=rng, out_std=out_std, dtype=dtype)

    def __call__(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))
