"""GGUF's block formats in NumPy: the version the lesson explains, bit for bit what ggml stores.

Q8_0, Q4_0 and Q4_1 are here; Q6_K, a K-quant of 256-weight super-blocks, is in
:mod:`~workbench_engines.quant.q6_k` and reached through the same functions.

A quantised row is cut into blocks of 32 weights. Each block keeps one or two
fp16 numbers and 32 small integers, and a weight is rebuilt as

    Q8_0   w = d * q          q int8           34 bytes per block = 8.5 bits/weight
    Q4_0   w = d * (n - 8)    n 4-bit, 0..15   18 bytes per block = 4.5 bits/weight
    Q4_1   w = d * n + m      n 4-bit, 0..15   20 bytes per block = 5.0 bits/weight

(ggml's ggml-common.h, block_q8_0 / block_q4_0 / block_q4_1). The bits per
weight are the block's bytes times 8 over 32: the fp16 scale (and minimum)
cost 0.5 bit per weight each. The 16 bytes of a 4-bit block hold weights
0..15 in their low nibbles and weights 16..31 in their high nibbles.

Quantising is ggml's round-to-nearest (quantize_row_*_ref in ggml-quants.c),
so a row quantised here has the same bytes as ``gguf.quants.quantize`` gives,
and dequantising gives the same floats as ``gguf.quants.dequantize``:

>>> w = np.linspace(-1, 1, 32, dtype=np.float32)[None]      # (1, 32): one block
>>> blocks = quantize(w, "Q4_1")                              # (1, 20) uint8
>>> float(np.abs(dequantize(blocks, "Q4_1") - w).max()) < 0.5 * 2 / 15
True

The C kernels compute the product x @ W.T two ways. The float32 one
(:func:`matmul` is its statement: dequantise, then x @ W.T) keeps x as it is
and differs from it only by float32 round-off, at most :func:`exact_bound`.
The int8 one (:func:`integer_matmul`) rounds the activations too: each block
of x becomes int8 with one scale, and a block product is an integer dot
product times two scales (llama.cpp's ggml_vec_dot_q4_1_q8_1 and friends),
which moves each output by up to :func:`rounding_bound`.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.quant import q6_k

BLOCK = 32
"""Weights per block of Q8_0, Q4_0 and Q4_1, and per int8 block of activations."""

BLOCK_DTYPES = {
    "Q8_0": np.dtype([("d", "<f2"), ("q", "i1", (32,))]),
    "Q4_0": np.dtype([("d", "<f2"), ("qs", "u1", (16,))]),
    "Q4_1": np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", (16,))]),
    "Q6_K": q6_k.BLOCK_DTYPE,
}
"""Each format's block as a packed NumPy record, field for field ggml's C struct."""

BLOCK_SIZES = {"Q8_0": BLOCK, "Q4_0": BLOCK, "Q4_1": BLOCK, "Q6_K": q6_k.QK_K}
"""Weights per block: 32, or 256 for the K-quant's super-block."""

FORMATS = tuple(BLOCK_DTYPES)

INT8_FORMATS = ("Q8_0", "Q4_0", "Q4_1")
"""The formats the int8-activation product (and its block dots) takes; Q6_K has the float32 product only."""


def block_dtype(format: str) -> np.dtype:
    """The record of one block of ``format``; ValueError naming the known formats otherwise."""
    if format not in BLOCK_DTYPES:
        raise ValueError(f"unsupported quantisation format {format!r}; supported: {', '.join(FORMATS)}")
    return BLOCK_DTYPES[format]


def block_size(format: str) -> int:
    """Weights per block of ``format``: 32, or 256 for Q6_K; ValueError for an unknown format."""
    block_dtype(format)
    return BLOCK_SIZES[format]


def bits_per_weight(format: str) -> float:
    """Storage per weight, read off the block layout: 8.5 (Q8_0), 4.5 (Q4_0), 5.0 (Q4_1), 6.5625 (Q6_K)."""
    return block_dtype(format).itemsize * 8 / block_size(format)


def row_bytes(format: str, cols: int) -> int:
    """Bytes of one row of ``cols`` weights (cols a multiple of the format's block)."""
    return cols // block_size(format) * block_dtype(format).itemsize


def require_int8_format(format: str) -> None:
    """ValueError unless the int8-activation product takes ``format`` (Q8_0, Q4_0, Q4_1)."""
    block_dtype(format)
    if format not in INT8_FORMATS:
        raise ValueError(f"int8 activations take {', '.join(INT8_FORMATS)} only, not {format}; "
                         f"use activations='float32'")


# ---- dequantise ------------------------------------------------------------------------------


def nibbles(qs: np.ndarray) -> np.ndarray:
    """The 32 4-bit values of blocks (..., 16) uint8 as (..., 32): low nibbles first, then high."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def dequantize(blocks: np.ndarray, format: str) -> np.ndarray:
    """Weights (rows, cols) float32 from GGUF blocks (rows, row_bytes) uint8.

    The products d * n are exact in float32 (an fp16 scale times an integer of
    at most 8 bits), so the only rounding is the + m of Q4_1.
    """
    b = np.ascontiguousarray(blocks).view(block_dtype(format))  # (rows, nb) records
    if format == "Q6_K":
        return q6_k.dequantize(b.reshape(-1)).reshape(b.shape[0], b.shape[1] * q6_k.QK_K)
    d = b["d"].astype(np.float32)[..., None]  # (rows, nb, 1)
    with np.errstate(invalid="ignore"):  # an inf scale times a zero quant is nan, as in C
        if format == "Q8_0":
            w = d * b["q"].astype(np.float32)
        elif format == "Q4_0":
            w = d * (nibbles(b["qs"]).astype(np.float32) - 8)
        else:
            w = d * nibbles(b["qs"]).astype(np.float32) + b["m"].astype(np.float32)[..., None]
    return w.reshape(b.shape[0], b.shape[1] * BLOCK)  # (rows, cols)


# ---- quantise (ggml's round-to-nearest) --------------------------------------------------------


def round_half_away(v: np.ndarray) -> np.ndarray:
    """C's roundf: halves go away from zero (np.round sends them to the even neighbour)."""
    a = np.abs(v)
    whole = np.floor(a)
    return np.copysign(whole + (a - whole >= 0.5), v)


def _reciprocal(d: np.ndarray) -> np.ndarray:
    """1 / d, and 0 where d is 0 (an all-zero block quantises to zeros)."""
    return np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)


def quantize(w: np.ndarray, format: str) -> np.ndarray:
    """GGUF blocks (rows, row_bytes) uint8 from finite weights (rows, cols), cols a multiple of the block.

    Per block (all arithmetic in float32, as ggml's C):
      Q8_0  d = max|w| / 127,             q = round(w / d)
      Q4_0  d = (the w of largest |w|) / -8, n = min(15, trunc(w / d + 8.5))
      Q4_1  d = (max - min) / 15, m = min, n = min(15, trunc((w - m) / d + 0.5))
    with w / d computed as w * (1 / d); d (and m) are then stored as fp16.
    Q6_K is :func:`workbench_engines.quant.q6_k.quantize`.
    """
    dtype, size = block_dtype(format), block_size(format)
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2 or w.shape[1] % size:
        raise ValueError(f"w must be (rows, cols) with cols a multiple of {size} for {format}, got shape {w.shape}")
    if format == "Q6_K":
        return q6_k.quantize(w.reshape(-1, size)).view(np.uint8).reshape(w.shape[0], -1)
    x = w.reshape(-1, BLOCK)  # (blocks, 32)
    out = np.zeros(x.shape[0], dtype=dtype)
    if format == "Q8_0":
        d = np.abs(x).max(axis=1, keepdims=True) / np.float32(127)
        out["q"] = round_half_away(x * _reciprocal(d)).astype(np.int8)
    elif format == "Q4_0":
        signed_max = np.take_along_axis(x, np.abs(x).argmax(axis=1)[:, None], axis=1)  # first of the largest |w|
        d = signed_max / np.float32(-8)
        n = np.minimum(15, np.trunc(x * _reciprocal(d) + np.float32(8.5)).astype(np.uint8))
        out["qs"] = n[:, :16] | (n[:, 16:] << 4)
    else:
        low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        d = (high - low) / np.float32(15)
        n = np.minimum(15, np.trunc((x - low) * _reciprocal(d) + np.float32(0.5)).astype(np.uint8))
        out["qs"] = n[:, :16] | (n[:, 16:] << 4)
        out["m"] = low[:, 0].astype(np.float16)
    out["d"] = d[:, 0].astype(np.float16)
    return out.view(np.uint8).reshape(w.shape[0], -1)  # (rows, row_bytes)


# ---- the quantised product -----------------------------------------------------------------------


def matmul(x: np.ndarray, blocks: np.ndarray, format: str) -> np.ndarray:
    """x (T, cols) @ W.T in float32 with W dequantised first: (T, rows). x is used as it is."""
    return x @ dequantize(blocks, format).T


def block_integers(blocks: np.ndarray, format: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every block as d, m and its integers q, with w = d * q + m: (d (rows, nb), m (rows, nb), q (rows, nb, 32)).

    q is the int8 q of Q8_0, n - 8 for Q4_0 and n for Q4_1; m is zero but for
    Q4_1. This is the split the float32 kernel computes with, block by block:
    sum_i w_i x_i = d sum_i q_i x_i + m sum_i x_i.
    """
    if format not in INT8_FORMATS:
        raise ValueError(f"block_integers covers the 32-weight formats {', '.join(INT8_FORMATS)}, not {format}")
    b = np.ascontiguousarray(blocks).view(block_dtype(format))  # (rows, nb) records
    d = b["d"].astype(np.float32)
    m = b["m"].astype(np.float32) if format == "Q4_1" else np.zeros_like(d)
    if format == "Q8_0":
        q = b["q"].astype(np.int16)
    else:
        q = nibbles(b["qs"]).astype(np.int16) - (8 if format == "Q4_0" else 0)
    return d, m, q


def exact_bound(x: np.ndarray, blocks: np.ndarray, format: str) -> np.ndarray:
    """The most the float32 kernel's result may differ from x @ W.T (W dequantised, exact arithmetic): (T, rows).

    The kernel sums d_b sum_i q_i x_i + m_b sum_i x_i over the blocks b of a
    row in float32. Each of those terms passes through at most nb + 35
    roundings on any of its paths (block_dot's lanes and a block's sum of x:
    32 at most; the row's accumulator: one per block; the lanes' final sum;
    and, for Q4_1, the one rounding of d n + m in the dequantised W the result
    is held to). With u = 2^-24 and h roundings, float32 summation is off by at
    most h u (1 + h u) times the sum of the terms' sizes, so

        |error| <= (nb + 40) u sum_b sum_i (|d_b q_i| + |m_b|) |x_i|

    (nb = cols / 32). The sizes are |w_i| |x_i| for Q8_0 and Q4_0 (m = 0);
    for Q4_1, where w = d n + m, they are (|d| n + |m|) |x_i|, up to
    |w_i| + 2 |m| of each weight: a block's minimum m is added and taken away
    again inside d n + m. Typical errors are a hundredth of this.

    Q6_K (nb = cols / 256) takes the same bound with sizes |w_i| |x_i|: its
    kernel multiplies each weight's exact integer sc q by x_i into one of 16
    lanes (one rounding, then at most 16 additions over a super-block's
    sub-blocks), scales the lanes by d (one), adds them to the row's lanes
    (one per super-block) and sums the 16 lanes at the end (at most 16):
    nb + 34 roundings.
    """
    magnitude = np.empty((x.shape[0], blocks.shape[0]))  # (T, rows)
    for r in range(0, blocks.shape[0], 4096):  # in slices: an embedding's sizes would be 8 bytes a weight
        if format == "Q6_K":
            sizes = np.abs(dequantize(blocks[r:r + 4096], format).astype(np.float64))  # (rows, cols)
        else:
            d, m, q = block_integers(blocks[r:r + 4096], format)
            sizes = np.abs(d[..., None].astype(np.float64) * q) + np.abs(m[..., None].astype(np.float64))
        magnitude[:, r:r + 4096] = np.abs(x.astype(np.float64)) @ sizes.reshape(sizes.shape[0], -1).T
    nb = x.shape[1] // block_size(format)
    return (nb + 40) * 2.0**-24 * magnitude


def quantize_activation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (T, cols) float32 as int8 blocks: (xq (T, cols) int8, xd (T, cols/32) float32, xsum (T, cols/32) int32).

    Each block of 32 gets the scale xd = max|x| / 127 and xq = round(x / xd),
    so x ≈ xd * xq to within xd / 2 (ggml's quantize_row_q8_1_ref, the scale
    kept in float32); xsum is each block's sum of xq, which a Q4_0 or Q4_1
    block product needs. A block whose scale would be subnormal (max|x| below
    127 * 2^-126, about 1.5e-36) becomes zeros, where 1 / xd would be inexact
    or infinite.
    """
    x = np.asarray(x, dtype=np.float32)
    blocks = x.reshape(x.shape[0], x.shape[1] // BLOCK, BLOCK)  # (T, nb, 32)
    xd = np.abs(blocks).max(axis=-1) / np.float32(127)  # (T, nb)
    xd[xd < np.finfo(np.float32).tiny] = 0
    xq = round_half_away(blocks * _reciprocal(xd)[..., None]).astype(np.int8)  # (T, nb, 32)
    return xq.reshape(x.shape), xd, xq.sum(axis=-1, dtype=np.int32)


def block_dots(blocks: np.ndarray, format: str, xq: np.ndarray, xsum: np.ndarray) -> np.ndarray:
    """The integer part of every block product with one quantised activation row: (rows, nb) int32.

    sum_i q_i xq_i for Q8_0, sum_i (n_i - 8) xq_i = sum_i n_i xq_i - 8 xsum for
    Q4_0, and sum_i n_i xq_i for Q4_1 (its + m term is scaled separately).
    Exact: at most 32 * 128 * 127 in size.
    """
    require_int8_format(format)
    b = np.ascontiguousarray(blocks).view(block_dtype(format))  # (rows, nb)
    q = b["q"] if format == "Q8_0" else nibbles(b["qs"])  # (rows, nb, 32)
    dots = np.einsum("rbi,bi->rb", q.astype(np.int32), xq.reshape(-1, BLOCK).astype(np.int32))
    return dots - 8 * xsum[None, :] if format == "Q4_0" else dots


def integer_matmul(x: np.ndarray, blocks: np.ndarray, format: str) -> np.ndarray:
    """What the C kernel computes, x (T, cols) -> (T, rows): integer block products times the scales.

        Q8_0, Q4_0   sum over blocks of dw * xd * dot
        Q4_1         sum over blocks of dw * xd * dot + mw * xd * xsum
    summed here in float64 (the kernel sums in float32, in its own order).
    """
    require_int8_format(format)
    xq, xd, xsum = quantize_activation(x)
    b = np.ascontiguousarray(blocks).view(block_dtype(format))  # (rows, nb)
    dw = b["d"].astype(np.float64)  # (rows, nb)
    out = np.empty((x.shape[0], b.shape[0]))
    for t in range(x.shape[0]):
        scaled = dw * xd[t] * block_dots(blocks, format, xq[t], xsum[t])  # (rows, nb)
        if format == "Q4_1":
            scaled += b["m"].astype(np.float64) * (xd[t] * xsum[t].astype(np.float64))
        out[t] = scaled.sum(axis=1)
    return out.astype(np.float32)


def rounding_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The most the int8 rounding of x can move each output of x @ w.T: (T, rows).

    Each x_i moves by at most xd / 2 of its block, so output r moves by at
    most sum over blocks of xd / 2 * sum_{i in block} |w_ri|.
    """
    _, xd, _ = quantize_activation(x)  # (T, nb)
    per_block = np.abs(w.astype(np.float64)).reshape(w.shape[0], -1, BLOCK).sum(axis=-1)  # (rows, nb)
    return 0.5 * xd.astype(np.float64) @ per_block.T
