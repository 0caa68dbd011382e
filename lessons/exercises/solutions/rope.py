"""Reference: rotary embeddings, rotate-half convention."""

import numpy as np


def rope(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    half = x.shape[-1] // 2
    theta = base ** (-np.arange(half, dtype=np.float64) * 2 / x.shape[-1])
    angle = np.asarray(positions, dtype=np.float64)[:, None] * theta
    cos, sin = np.cos(angle).astype(x.dtype), np.sin(angle).astype(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
