"""Next-token filters and samplers in NumPy: the definitions the lessons use and the tests check against.

Every filter takes logits [..., vocab] and returns logits of the same shape in
which removed tokens are -inf, so filters compose and a softmax afterwards
renormalises over what is left.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest logits of each row (ties: lower index first)."""
    order = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    out = np.full_like(logits, -np.inf)
    np.put_along_axis(out, order, np.take_along_axis(logits, order, axis=-1), axis=-1)
    return out


def top_p(logits: np.ndarray, p: float, temperature: float = 1.0) -> np.ndarray:
    """Keep the smallest set of most probable tokens whose probability reaches p (Holtzman et al., 2020).

    p = 1 keeps every token (rather than leaving it to rounding whether the
    last, vanishingly unlikely tokens make the sum reach exactly 1).
    """
    if p >= 1.0:
        return logits.copy()
    flat = logits.reshape(-1, logits.shape[-1])
    out = np.full_like(flat, -np.inf)
    for row, x in enumerate(flat):
        order = np.argsort(-x, kind="stable")
        cumulative = np.cumsum(softmax(x[order], temperature))
        keep = min(int(np.searchsorted(cumulative, p * cumulative[-1])) + 1, len(x))
        out[row, order[:keep]] = x[order[:keep]]
    return out.reshape(logits.shape)


def min_p(logits: np.ndarray, p_base: float, temperature: float = 1.0) -> np.ndarray:
    """Keep tokens whose probability is at least p_base times the top token's (Nguyen et al., 2024)."""
    probs = softmax(logits, temperature)
    keep = probs >= p_base * probs.max(axis=-1, keepdims=True)
    return np.where(keep, logits, -np.inf)


def repetition_penalty(logits: np.ndarray, previous: np.ndarray, penalty: float) -> np.ndarray:
    """CTRL's penalty (Keskar et al., 2019): logits of tokens already generated are divided by
    penalty when positive and multiplied by it when negative, so they always become less likely."""
    out = logits.copy()
    seen = np.unique(previous)
    values = out[..., seen]
    out[..., seen] = np.where(values > 0, values / penalty, values * penalty)
    return out


def frequency_presence_penalty(logits: np.ndarray, previous: np.ndarray, frequency: float,
                               presence: float) -> np.ndarray:
    """OpenAI's penalties: subtract frequency × count(token) and presence × [count(token) > 0]."""
    counts = np.bincount(previous, minlength=logits.shape[-1])[: logits.shape[-1]]
    return logits - frequency * counts - presence * (counts > 0)


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
    """One token per row from softmax(logits / T), by inverse transform sampling."""
    probs = softmax(logits, temperature).reshape(-1, logits.shape[-1])
    u = rng.random(len(probs))
    picks = [min(int(np.searchsorted(np.cumsum(row), u_i * row.sum(), side="right")), len(row) - 1)
             for row, u_i in zip(probs, u)]
    return np.asarray(picks).reshape(logits.shape[:-1])
