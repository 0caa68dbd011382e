"""Exercise: top-k filtering of logits.

Track: Decoding

logits: (..., V). Return a copy in which every entry that is not among the k
largest of its row is -inf (keep exactly k per row; on ties keep the lower
index). 1 <= k <= V.
"""

import numpy as np


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    return ...  # your code here
