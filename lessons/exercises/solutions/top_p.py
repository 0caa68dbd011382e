"""Reference: nucleus filtering of one row of logits."""

import numpy as np


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    order = np.argsort(-logits, kind="stable")
    # float64: a float32 running sum can stop short of its own total.
    probs = np.exp(logits[order].astype(np.float64) - logits[order[0]])
    cumulative = np.cumsum(probs)
    # Keep tokens until the kept mass reaches p (the top token always).
    keep = min(int(np.searchsorted(cumulative, p * cumulative[-1])) + 1, len(logits))
    out = np.full_like(logits, -np.inf)
    out[order[:keep]] = logits[order[:keep]]
    return out
