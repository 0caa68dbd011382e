"""Q6_K, a K-quant, in NumPy: super-blocks of 256 weights with 16 int8 sub-scales and one fp16 scale.

Unlike Q8_0, Q4_0 and Q4_1, whose blocks of 32 each carry an fp16 scale, a
Q6_K super-block of 256 weights shares one fp16 ``d`` and gives each of its
16 sub-blocks of 16 weights an int8 scale ``sc``. A weight is a 6-bit
integer L (0..63) and is rebuilt as

    w = d * sc[i // 16] * (L - 32)

(ggml's ggml-common.h, block_q6_K; dequantize_row_q6_K in ggml-quants.c).
The block holds ql[128] (the low 4 bits of every L), qh[64] (the high 2 bits),
scales[16] and d: 128 + 64 + 16 + 2 = 210 bytes for 256 weights, 6.5625 bits
per weight (6 for L, 0.5 for the sub-scales, 0.0625 for d).

Bits sit where ggml's SIMD kernels want them, not in weight order. Within each
half h (weights 128h .. 128h + 127) weight 128h + 32k + l (k = 0..3, l = 0..31)
keeps its low 4 bits in ql[64h + l] (k = 0: low nibble, k = 2: high nibble) or
ql[64h + 32 + l] (k = 1: low, k = 3: high), and its high 2 bits in bits 2k, 2k + 1
of qh[32h + l].

Quantising is ggml's quantize_row_q6_K_ref, step for step in float32:

1. each sub-block of 16 gets a scale from make_qx_quants(16, 32, x, rmse_type=1):
   the scale -max/32 from the value of largest |x| and then 18 nearby ones,
   -max/(32 + 0.1 s) for s = ±1..±9, keeping the one that minimises the
   x²-weighted squared error (largest (sum w x l)² / sum w l l);
2. d = the largest sub-scale / -128 (stored as fp16) and sc = round(sub-scale / d),
   at most 127;
3. L = clamp(round(x / (d sc)), -32, 31) + 32 with the stored d and sc.

``round`` is ggml's nearest_int (a float add of 1.5 * 2^23: halves to even,
as np.rint). The gguf package (0.19) dequantises Q6_K but does not quantise
it, so the test holds :func:`quantize` to bytes that ggml's own C wrote
(tests/test_quant_formats.py says how they were made) and to its round trip.
"""

from __future__ import annotations

import numpy as np

QK_K = 256
"""Weights per Q6_K super-block (ggml's QK_K)."""

SUB = 16
"""Weights per sub-block, each with its own int8 scale."""

BLOCK_DTYPE = np.dtype([("ql", "u1", (QK_K // 2,)), ("qh", "u1", (QK_K // 4,)), ("scales", "i1", (QK_K // SUB,)),
                        ("d", "<f2")])
"""block_q6_K field for field: 210 bytes, d last."""

GROUP_MAX_EPS = np.float32(1e-15)
"""ggml's threshold below which a sub-block (or a whole super-block's scales) counts as all zeros."""

F32 = np.float32


def unpack(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored integers of Q6_K records (n,): (L - 32 (n, 256) int8, sc (n, 16) int8, d (n,) float32)."""
    ql = blocks["ql"].reshape(-1, 2, 2, 32)  # (n, half, ql[0:32] | ql[32:64], l)
    qh = blocks["qh"].reshape(-1, 2, 1, 32)  # (n, half, 1, l)
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=2)  # (n, half, k, l): k = 0, 1 low nibbles, 2, 3 high
    high = (qh >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)) & 0x03  # (n, half, k, l)
    q = (low | (high << 4)).astype(np.int8) - np.int8(32)
    return q.reshape(-1, QK_K), blocks["scales"], blocks["d"].astype(F32)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Weights (n, 256) float32 from Q6_K records (n,): w = (d * sc) * (L - 32), each product exact in float32.

    d has 11 significant bits, sc at most 8 and L - 32 at most 6, so nothing
    rounds (unless d is inf or nan: then inf or nan, as in C).
    """
    q, sc, d = unpack(blocks)
    with np.errstate(invalid="ignore"):
        scale = d[:, None] * sc.astype(F32)  # (n, 16)
        w = scale[:, :, None] * q.reshape(-1, QK_K // SUB, SUB).astype(F32)  # (n, 16, 16)
    return w.reshape(-1, QK_K)


NEAREST_MAX = F32(4194303)
"""ggml's nearest_int is defined (asserted) for |v| up to 2^22 - 1."""


def nearest_int(v: np.ndarray) -> np.ndarray:
    """ggml's nearest_int: round half to even (a float add of 1.5 * 2^23), as np.rint.

    Outside its range (only where an fp16 scale overflowed) ours is defined,
    where ggml's is not: nan gives 0 (what ggml's bit trick gives for x86's
    default nan) and larger sizes are clamped to 2^22 - 1.
    """
    return np.clip(np.nan_to_num(np.rint(v), nan=0.0), -NEAREST_MAX, NEAREST_MAX)


def _errors(x: np.ndarray, w: np.ndarray, l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sum_i w_i x_i l_i and sum_i w_i l_i l_i over axis 1, added left to right in float32 as the C loop does."""
    sumlx = np.zeros(x.shape[0], F32)
    suml2 = np.zeros(x.shape[0], F32)
    for i in range(x.shape[1]):
        sumlx = sumlx + w[:, i] * x[:, i] * l[:, i]
        suml2 = suml2 + w[:, i] * l[:, i] * l[:, i]
    return sumlx, suml2


def make_qx_quants(x: np.ndarray, nmax: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """ggml's make_qx_quants(n, nmax, x, L, rmse_type=1, NULL) for every row of x (S, n) float32 at once.

    Returns (scale (S,) float32, L (S, n) uint8 in 0..2 nmax - 1). A row whose
    largest |x| is below GROUP_MAX_EPS gets scale 0 and L = 0.
    """
    S = x.shape[0]
    first = np.abs(x).argmax(axis=1)  # the C keeps the first of equal |x|
    big = x[np.arange(S), first]  # (S,) the signed value of largest |x|
    zero = np.abs(big) < GROUP_MAX_EPS
    big = np.where(zero, F32(1), big)
    w = x * x  # rmse_type 1: weights x²
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        iscale = F32(-nmax) / big
        l = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1).astype(F32)  # (S, n)
        L = l + F32(nmax)
        sumlx, suml2 = _errors(x, w, l)
        scale = np.where(suml2 != 0, sumlx / np.where(suml2 != 0, suml2, F32(1)), F32(0))
        best = scale * sumlx
        for step in range(-9, 10):
            if step == 0:
                continue
            iscale = -(F32(nmax) + F32(0.1) * F32(step)) / big
            l = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1).astype(F32)
            sumlx, suml2 = _errors(x, w, l)
            better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
            L = np.where(better[:, None], l + F32(nmax), L)
            scale = np.where(better, sumlx / np.where(better, suml2, F32(1)), scale)
            best = np.where(better, scale * sumlx, best)
    L = np.where(zero[:, None], F32(0), L)
    return np.where(zero, F32(0), scale).astype(F32), L.astype(np.uint8)


def pack(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L (n, 256) in 0..63 as (ql (n, 128), qh (n, 64)) uint8, the layout :func:`unpack` reads."""
    q = L.reshape(-1, 2, 4, 32)  # (n, half, k, l): weight 128 half + 32 k + l
    ql = (q[:, :, :2] & 0x0F) | ((q[:, :, 2:] & 0x0F) << 4)  # (n, half, 2, 32)
    qh = np.zeros(q.shape[:2] + (32,), np.uint8)
    for k in range(4):
        qh |= (q[:, :, k] >> 4) << (2 * k)
    return ql.reshape(-1, QK_K // 2), qh.reshape(-1, QK_K // 4)


def quantize(x: np.ndarray) -> np.ndarray:
    """Q6_K records (n,) from finite weights x (n, 256) float32: ggml's quantize_row_q6_K_ref."""
    x = np.ascontiguousarray(x, dtype=F32)
    n = x.shape[0]
    scales, L = make_qx_quants(x.reshape(-1, SUB))  # (n*16,), (n*16, 16)
    scales, L = scales.reshape(n, QK_K // SUB), L.reshape(n, QK_K)
    sizes = np.abs(scales)
    first = np.where(np.isnan(sizes), F32(0), sizes).argmax(axis=1)  # the C's strict > never picks a nan
    max_scale = scales[np.arange(n), first]  # (n,) the signed sub-scale of largest size
    zero = ~(np.abs(max_scale) >= GROUP_MAX_EPS)
    out = np.zeros(n, BLOCK_DTYPE)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        iscale = F32(-128) / np.where(zero, F32(1), max_scale)
        d = (F32(1) / iscale).astype(np.float16)  # (n,)
        sc = np.clip(nearest_int(iscale[:, None] * scales), -128, 127).astype(np.int8)  # (n, 16): at least -128 anyway
        sub_d = d.astype(F32)[:, None] * sc.astype(F32)  # (n, 16): the scale each sub-block stores
        l = np.clip(nearest_int(x.reshape(n, QK_K // SUB, SUB) / sub_d[..., None]), -32, 31)
    # a sub-block whose stored scale is 0 keeps make_qx_quants' L (the C skips it)
    L = np.where((sub_d != 0)[..., None], (l + 32).astype(np.uint8), L.reshape(n, QK_K // SUB, SUB))
    out["ql"], out["qh"] = pack(L.reshape(n, QK_K))
    out["scales"], out["d"] = sc, d
    out[zero] = np.zeros(1, BLOCK_DTYPE)
    return out
