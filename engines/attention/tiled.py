"""Tiled attention with the online softmax in NumPy: the flash kernels' loop, readable.

Unlike :func:`reference.attention`, which builds the whole (T × T) score
matrix and softmaxes it row by row, this never holds more than one tile of
scores. It is the forward pass of FlashAttention-2 (Dao, "FlashAttention-2:
Faster Attention with Better Parallelism and Work Partitioning", 2023,
Algorithm 1): each block of block_q queries meets the keys and values
block_k at a time, and every query row keeps

    m   the running maximum of its scores,
    l   the running sum of exp(s - m),
    O   the running output, unnormalised: sum of exp(s - m) v.

A new tile of scores S with row maxima m_tile updates them as

    m' = max(m, m_tile)
    P  = exp(S - m')
    l' = l · exp(m - m') + rowsum(P)
    O' = O · exp(m - m') + P V

and O / l is the output once every tile has been seen. Rescaling by
exp(m - m') corrects what came before for the new maximum, so the result is
the full softmax exactly, up to rounding (the online softmax of Milakov and
Gimelshein, "Online normalizer calculation for softmax", 2018).
native/src/wb_attention.c runs this loop in C on the CPU and
native/cuda/wb_attention.cu on the tensor cores; block_q and block_k default
to the C kernel's tiles, wb_attention.h's WB_ATTN_FLASH_BLOCK_Q and _K (a
test holds them equal, since this file must run without the C build).

Same contract as :func:`reference.attention`: queries are the last lq of lk
positions, causal and sliding-window masks, a key_mask for padding, grouped
query heads, and a zero row for a query that sees no key. A tile that the
masks hide entirely is skipped, as the kernels skip it.

Worked example, five queries in tiles of two::

    >>> from workbench_engines.attention import reference
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (rng.standard_normal((1, 2, 5, 4)) for _ in range(3))
    >>> tiled = attention(q, k, v, causal=True, block_q=2, block_k=2)
    >>> bool(np.allclose(tiled, reference.attention(q, k, v, causal=True)))
    True
"""

from __future__ import annotations

import numpy as np

from workbench_engines.attention.reference import allowed_mask


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    *,
    causal: bool = False,
    window: int | None = None,
    key_mask: np.ndarray | None = None,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
) -> np.ndarray:
    """Output [batch, heads, lq, dv] in q's dtype, computed tile by tile.

    Args:
        q: (B, NH, T, HS) queries, the last T of the keys' positions.
        k: (B, KVH, T_k, HS) keys, KVH dividing NH (GQA/MQA).
        v: (B, KVH, T_k, HS_v) values.
        key_mask: (B, T_k) bool, True for real tokens, or None.
        block_q: queries per tile (rows of the score tile).
        block_k: keys per tile (columns of the score tile).
    """
    if block_q < 1 or block_k < 1:
        raise ValueError(f"block sizes must be positive, got block_q={block_q}, block_k={block_k}")
    b, nh, lq, hs = q.shape
    kvh, lk, hs_v = k.shape[1], k.shape[2], v.shape[3]
    group = nh // kvh
    dtype = q.dtype
    scale = np.asarray(1.0 / np.sqrt(hs) if scale is None else scale, dtype=dtype)
    out = np.empty((b, nh, lq, hs_v), dtype=dtype)  # (B, NH, T, HS_v)
    for i0 in range(0, lq, block_q):
        i1 = min(i0 + block_q, lq)
        qi = q[:, :, i0:i1]  # (B, NH, BQ, HS)
        m = np.full((b, nh, i1 - i0, 1), -np.inf, dtype=dtype)  # (B, NH, BQ, 1) running max
        l = np.zeros((b, nh, i1 - i0, 1), dtype=dtype)  # (B, NH, BQ, 1) running sum of exp(s - m)
        o = np.zeros((b, nh, i1 - i0, hs_v), dtype=dtype)  # (B, NH, BQ, HS_v) running output, unnormalised
        for j0 in range(0, lk, block_k):
            j1 = min(j0 + block_k, lk)
            keep = allowed_mask(lq, lk, causal=causal, window=window,
                                rows=slice(i0, i1), cols=slice(j0, j1))[None, None]  # (1, 1, BQ, BK)
            if key_mask is not None:
                keep = keep & key_mask[:, None, None, j0:j1].astype(bool)  # (B, 1, BQ, BK)
            if not keep.any():
                continue  # above the causal diagonal, outside the window, or all padding
            # Every query head in a group reads the same key/value head.
            kj = np.repeat(k[:, :, j0:j1], group, axis=1)  # (B, NH, BK, HS)
            vj = np.repeat(v[:, :, j0:j1], group, axis=1)  # (B, NH, BK, HS_v)
            s = np.where(keep, (qi @ kj.swapaxes(-1, -2)) * scale, -np.inf)  # (B, NH, BQ, BK)
            m_new = np.maximum(m, s.max(axis=-1, keepdims=True))  # (B, NH, BQ, 1)
            # A row that has seen only masked keys has m_new = -inf; measuring
            # from 0 instead keeps its weights 0 rather than exp(-inf + inf) = nan.
            base = np.where(np.isfinite(m_new), m_new, 0)  # (B, NH, BQ, 1)
            p = np.exp(s - base)  # (B, NH, BQ, BK)
            alpha = np.exp(m - base)  # (B, NH, BQ, 1): rescales the tiles before this one
            l = l * alpha + p.sum(axis=-1, keepdims=True)
            o = o * alpha + p @ vj  # (B, NH, BQ, HS_v)
            m = m_new
        out[:, :, i0:i1] = np.divide(o, l, out=np.zeros_like(o), where=l > 0)
    return out
