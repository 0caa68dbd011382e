"""Reference: the GPT: embedding, blocks, a final norm and the tied output projection."""

import math

import numpy as np

from mygpt.block import Block
from mygpt.layers import Embedding, Module
from mygpt.loss import cross_entropy
from mygpt.norm import RMSNorm
from mygpt.rope import rope_tables


class GPT(Module):
    def __init__(self, vocab_size, context, d_model, n_layers, n_heads, hidden=None, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.context = context
        hidden = hidden or 32 * math.ceil(8 * d_model / 3 / 32)
        out_std = 0.02 / math.sqrt(2 * n_layers)
        self.embed = Embedding(vocab_size, d_model, rng=rng, dtype=dtype)
        self.blocks = [Block(d_model, n_heads, hidden, rng=rng, out_std=out_std, dtype=dtype) for _ in range(n_layers)]
        self.norm = RMSNorm(d_model, dtype=dtype)
        self.cos, self.sin = rope_tables(d_model // n_heads, context)

    def __call__(self, ids):
        x = self.embed(ids)  # (B, T, C)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.norm(x) @ self.embed.weight.transpose(0, 1)  # (B, T, V): the embedding, reused

    def loss(self, ids, targets):
        return cross_entropy(self(ids), targets)
