"""Reference: lower-triangular (j <= i) boolean mask."""

import numpy as np


def causal_mask(n: int) -> np.ndarray:
    return np.tril(np.ones((n, n), dtype=bool))
