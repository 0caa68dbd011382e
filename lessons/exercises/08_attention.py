"""Exercise: scaled dot-product attention.

Track: Attention

q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv), mask: None or a boolean
array broadcastable to (..., Lq, Lk), True where attending is allowed.
Return softmax(q k^T / sqrt(d) with masked scores at -inf) v, shape
(..., Lq, dv), in q's dtype (Vaswani et al., 2017, eq. 1). Every query row
keeps at least one allowed key in the checks.
"""

import numpy as np


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    return ...  # your code here
