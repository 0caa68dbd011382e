"""Attention taken apart for the lessons: one query by hand, what a mask lets through, a real model's maps.

Each function returns a small dataclass of every intermediate a lab shows,
computed with the same engines the rest of the workbench runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench_engines.attention import attention
from workbench_engines.attention.reference import allowed_mask
from workbench_engines.attention.reference import attention as reference_attention


@dataclass(frozen=True)
class OneQuery:
    """Attention of one query over a few keys, step by step (Vaswani et al., 2017, eq. 1)."""

    query: np.ndarray
    """(d,) the query."""
    keys: np.ndarray
    """(n, d) one key per row."""
    values: np.ndarray
    """(n, dv) one value per row."""
    scores: np.ndarray
    """(n,) q·k for each key."""
    scaled: np.ndarray
    """(n,) q·k / sqrt(d)."""
    weights: np.ndarray
    """(n,) softmax of the scaled scores."""
    output: np.ndarray
    """(dv,) the weighted sum of the values."""


def one_query(query: np.ndarray, keys: np.ndarray, values: np.ndarray) -> OneQuery:
    """Every intermediate of softmax(q·K / sqrt(d))·V for one query, from the reference kernel.

    Args:
        query: (d,) floats.
        keys: (n, d) floats, or n·d numbers flattened row by row.
        values: (n, dv) floats, or n·dv numbers flattened row by row.
    """
    query = np.asarray(query, dtype=np.float64)
    d = len(query)
    keys = np.asarray(keys, dtype=np.float64)
    if keys.size % d:
        raise ValueError(f"keys must hold whole rows of {d} numbers, got {keys.size}")
    keys = keys.reshape(-1, d)
    values = np.asarray(values, dtype=np.float64)
    if values.size % len(keys):
        raise ValueError(f"values must hold one row per key ({len(keys)} rows), got {values.size} numbers")
    values = values.reshape(len(keys), -1)
    out, weights = reference_attention(query[None, None, None], keys[None, None], values[None, None],
                                       return_weights=True)
    scores = keys @ query
    return OneQuery(query, keys, values, scores, scores / np.sqrt(d), weights[0, 0, 0], out[0, 0, 0])


@dataclass(frozen=True)
class MaskEffect:
    """A mask, and which outputs move when one token's key and value change."""

    keep: np.ndarray
    """(T, T) bool: may query i attend to key j."""
    changed_token: int
    moved: list[int]
    """The query positions whose output changed."""


def mask_effect(seq: int, *, causal: bool, window: int | None, changed_token: int, seed: int = 0) -> MaskEffect:
    """Attend over random q, k, v twice, the second time with token ``changed_token``'s k and v shifted.

    The outputs that move are exactly the queries whose mask row lets that key
    through: the causal property, checked by experiment rather than asserted.
    """
    if not 0 <= changed_token < seq:
        raise ValueError(f"changed_token must be in [0, {seq}), got {changed_token}")
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((1, 1, seq, 16)).astype(np.float32) for _ in range(3))  # (B, NH, T, HS)
    before = attention(q, k, v, causal=causal, window=window)
    k2, v2 = k.copy(), v.copy()
    k2[0, 0, changed_token] += 3.0
    v2[0, 0, changed_token] += 3.0
    after = attention(q, k2, v2, causal=causal, window=window)
    change = np.abs(after - before).max(axis=-1)[0, 0]  # (T,)
    return MaskEffect(allowed_mask(seq, seq, causal=causal, window=window), changed_token,
                      [i for i in range(seq) if change[i] > 1e-6])


@dataclass(frozen=True)
class AttentionMaps:
    """A model's attention weights on one text."""

    weights: np.ndarray
    """(layers, NH, T, T): row = query, column = key."""
    tokens: list[str]
    """The T tokens, special ones included."""

    def strongest_keys(self, layer: int, head: int) -> list[str]:
        """For each query token, the key token it gives the most weight."""
        w = self.weights[layer, head]
        return [self.tokens[int(np.argmax(w[i]))] for i in range(len(self.tokens))]


def minilm_attention(text: str, max_tokens: int = 28) -> AttentionMaps:
    """all-MiniLM-L6-v2's attention on text (its first max_tokens tokens), every layer and head."""
    from workbench_engines.models.minilm import load

    model = load()
    ids, mask, tokens = model.encode_texts([text])
    out = model.forward(ids[:, :max_tokens], mask[:, :max_tokens], output_attentions=True)
    return AttentionMaps(np.stack([a[0] for a in out.attentions]), tokens[0][:max_tokens])
