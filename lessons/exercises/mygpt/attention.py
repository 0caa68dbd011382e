"""Exercise: Causal attention.

Track: Build a GPT · lesson: gpt-attention-and-rope

causal_attention(q, k, v): q, k, v are Tensors of shape (..., T, D), in
the model (B, H, T, D): batch, heads, positions, head size. Return a
Tensor (..., T, D):

    softmax(q kᵀ / √D + mask) v

where kᵀ swaps k's last two axes, the scores q kᵀ are (..., T, T), and
mask is a (T, T) array holding 0 on and below the diagonal and -inf
above it, so position i attends to keys 0..i only. The mask broadcasts
over the leading axes.

Build it from Tensor operations (@, transpose, *, +) and your softmax
(from mygpt.softmax import softmax), so the gradient comes for free: no
_backward to write here. Build the mask in q's dtype: a float64 mask
added to float32 scores would make them float64.
"""

import numpy as np

from mygpt.softmax import softmax


def causal_attention(q, k, v):
    """softmax(q kᵀ / √D + mask) v for q, k, v of shape (..., T, D); position i sees keys 0..i."""
    raise NotImplementedError("your code here")
