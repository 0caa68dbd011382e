"""Reference: causal scaled dot-product attention, built from Tensor operations and softmax."""

import numpy as np

from mygpt.softmax import softmax


def causal_attention(q, k, v):
    """softmax(q kᵀ / √D + mask) v for q, k, v of shape (..., T, D); position i sees keys 0..i."""
    t, d = q.shape[-2], q.shape[-1]
    mask = np.triu(np.full((t, t), -np.inf, dtype=q.data.dtype), k=1)
    scores = (q @ k.transpose(-1, -2)) * (1.0 / np.sqrt(d)) + mask
    return softmax(scores, axis=-1) @ v
