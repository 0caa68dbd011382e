"""Reference: nucleus filtering of one row of logits."""

import numpy as np


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    order = np.argsort(-logits, kind="stable")
    probs = np.exp(logits[order] - logits[order[0]])
    probs /= probs.sum()
    # Keep tokens until the kept mass reaches p (the top token always).
    keep = int(np.searchsorted(np.cumsum(probs), p)) + 1
    out = np.full_like(logits, -np.inf)
    out[order[:keep]] = logits[order[:keep]]
    return out
