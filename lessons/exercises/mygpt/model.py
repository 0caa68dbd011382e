"""Exercise: The GPT.

Track: Build a GPT · lesson: gpt-block-and-model

GPT(vocab_size, context, d_model, n_layers, n_heads, hidden=None, seed=0,
dtype=np.float32) puts the pieces together. In __init__, with
rng = np.random.default_rng(seed) passed to every layer:

    self.context = context
    hidden = hidden or 32 * ceil(8 * d_model / 3 / 32)
    out_std = 0.02 / √(2 * n_layers)
    self.embed = Embedding(vocab_size, d_model)        weight (V, C)
    self.blocks = [Block(d_model, n_heads, hidden) for each layer]
    self.norm = RMSNorm(d_model)
    self.cos, self.sin = rope_tables(d_model // n_heads, context)

in that order (so one seed always gives the same model). Every matrix
starts as N(0, 0.02²) except each block's attn.out and ffn.down, which
take std out_std (pass out_std to Block) so that the residual stream does
not grow with depth; RMSNorm gains start at ones. self.blocks must be a
plain list, which named_parameters() walks ("blocks.0.attn.q.weight");
cos and sin stay plain arrays, not parameters.

Calling it on ids, an integer array (B, T) with T <= context, returns
the logits, a Tensor (B, T, V):

    x = embed(ids)                          (B, T, C)
    x = block(x, cos, sin) for each block   (B, T, C)
    logits = norm(x) @ embed.weightᵀ        (B, T, V)

The output projection reuses the embedding table (weight tying): no
separate output layer. loss(ids, targets) returns cross_entropy of the
logits against targets (B, T). Imports Block from mygpt.block, Embedding
and Module from mygpt.layers, cross_entropy from mygpt.loss, RMSNorm from
mygpt.norm and rope_tables from mygpt.rope.
"""

import math

import numpy as np

from mygpt.block import Block
from mygpt.layers import Embedding, Module
from mygpt.loss import cross_entropy
from mygpt.norm import RMSNorm
from mygpt.rope import rope_tables


class GPT(Module):
    def __init__(self, vocab_size, context, d_model, n_layers, n_heads, hidden=None, seed=0, dtype=np.float32):
        raise NotImplementedError("your code here")

    def __call__(self, ids):
        raise NotImplementedError("your code here")

    def loss(self, ids, targets):
        raise NotImplementedError("your code here")
