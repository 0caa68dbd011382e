"""Exercise: rotary position embeddings (RoPE).

Track: Attention

x: (..., L, d) with d even; positions: (L,) integers. Split the last axis
into halves x1 = x[..., :d/2], x2 = x[..., d/2:] ("rotate half", as GPT-NeoX
and Llama do). With theta_i = base ** (-2i / d) for i < d/2 and angle
a = position * theta_i, return concat(x1 cos a - x2 sin a, x2 cos a + x1 sin a)
(Su et al., 2021). Same shape and dtype as x.
"""

import numpy as np


def rope(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    return ...  # your code here
