"""Scaled dot-product attention in NumPy: the version the lessons explain.

    attention(q, k, v) = softmax(q k^T / sqrt(d) + mask) v

(Vaswani et al., 2017, eq. 1). q is [batch, heads, lq, d]; k and v may have
fewer heads (multi-query and grouped-query attention, Shazeer 2019; Ainslie
et al. 2023): each group of heads / kv_heads query heads shares one key and
value head. Query i is at position i + lk - lq, the last lq of lk positions.
This holds the whole [lq, lk] score matrix; tiled.py computes the same
thing a tile at a time, as the flash kernels do.
"""

from __future__ import annotations

import numpy as np


def allowed_mask(lq: int, lk: int, *, causal: bool, window: int | None,
                 rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
    """[lq, lk] booleans: True where query i may attend to key j.

    rows and cols pick one tile of it (queries rows, keys cols) without
    building the rest, as the tiled version in tiled.py needs.
    """
    pos = np.arange(lq)[rows, None] + (lk - lq)
    j = np.arange(lk)[None, cols]
    keep = np.ones((pos.shape[0], j.shape[1]), dtype=bool)
    if causal:
        keep &= j <= pos
    if window:
        window = min(window, lq + lk)  # as wide as admits every key; 10**30 would overflow NumPy's int64
        keep &= (j > pos - window) if causal else (np.abs(pos - j) < window)
    return keep


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    *,
    causal: bool = False,
    window: int | None = None,
    key_mask: np.ndarray | None = None,
    scale: float | None = None,
    return_weights: bool = False,
):
    """Output [batch, heads, lq, dv] (and the weights [batch, heads, lq, lk] if asked).

    key_mask is [batch, lk], True for real tokens (False marks padding). A
    query that may see no key at all gets zeros (torch would give NaN).
    """
    heads, kv_heads = q.shape[1], k.shape[1]
    group = heads // kv_heads
    # Every query head in a group reads the same key/value head.
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ np.swapaxes(k, -1, -2)) * np.asarray(scale, dtype=q.dtype)
    keep = allowed_mask(q.shape[2], k.shape[2], causal=causal, window=window)[None, None]
    if key_mask is not None:
        keep = keep & key_mask[:, None, None, :].astype(bool)
    scores = np.where(keep, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True, initial=-np.inf)  # initial: lk = 0 has no maximum
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(scores - top)
    total = weights.sum(axis=-1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    out = (weights @ v).astype(q.dtype)
    return (out, weights) if return_weights else out
