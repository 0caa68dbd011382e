"""Exercise: The transformer block.

Track: Build a GPT · lesson: gpt-block-and-model

Block(d_model, n_heads, hidden, rng=None, out_std=0.02, dtype=np.float32)
holds, created in this order: self.attn_norm, an RMSNorm(d_model);
self.attn, a SelfAttention(d_model, n_heads); self.ffn_norm, an
RMSNorm(d_model); self.ffn, a SwiGLU(d_model, hidden). Pass rng, out_std
and dtype on to the two layers that take them (dtype to the norms too).

Calling it on x: (B, T, C) with the RoPE tables cos, sin returns
(B, T, C). It is pre-norm: each sub-layer reads a normalized copy of x
and adds its result to x itself, the residual stream:

    x = x + attn(attn_norm(x), cos, sin)
    x = x + ffn(ffn_norm(x))

Imports Module from mygpt.layers, SwiGLU from mygpt.mlp, RMSNorm from
mygpt.norm and SelfAttention from mygpt.self_attention.
"""

import numpy as np

from mygpt.layers import Module
from mygpt.mlp import SwiGLU
from mygpt.norm import RMSNorm
from mygpt.self_attention import SelfAttention


class Block(Module):
    def __init__(self, d_model, n_heads, hidden, rng=None, out_std=0.02, dtype=np.float32):
        raise NotImplementedError("your code here")

    def __call__(self, x, cos, sin):
        raise NotImplementedError("your code here")
