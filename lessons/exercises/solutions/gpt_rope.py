"""Reference: rotary position embeddings as one operation; its backward is the rotation by minus the angle."""

import numpy as np

from mygpt.tensor import Tensor


def rope_tables(head_dim, context, base=10000.0):
    """cos and sin of position * theta_i, theta_i = base ** (-2i / head_dim), each (context, head_dim / 2) float64."""
    theta = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angle = np.arange(context, dtype=np.float64)[:, None] * theta
    return np.cos(angle), np.sin(angle)


def rope(x, cos, sin):
    """Rotate x (..., T, D) in the rotate-half layout: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)."""
    t, half = x.shape[-2], x.shape[-1] // 2
    c, s = cos[:t].astype(x.data.dtype), sin[:t].astype(x.data.dtype)
    x1, x2 = x.data[..., :half], x.data[..., half:]
    out = Tensor(np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1), (x,))

    def _backward():
        g1, g2 = out.grad[..., :half], out.grad[..., half:]
        x.grad += np.concatenate([g1 * c + g2 * s, g2 * c - g1 * s], axis=-1)
    out._backward = _backward
    return out
