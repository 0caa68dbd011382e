"""Exercise: top-p (nucleus) filtering.

Track: Decoding

logits: (V,) one row. Sort tokens by probability (softmax of logits),
descending; keep the smallest prefix whose probabilities sum to at least p
(always at least the top token) and set every other logit to -inf
(Holtzman et al., 2020). 0 < p <= 1, and p = 1 keeps every token: add up in
float64 (a float32 running sum can end below its own total). Ties in
probability: lower index first.
"""

import numpy as np


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    return ...  # your code here
