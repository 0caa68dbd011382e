"""Attention: scaled dot-product attention with causal, sliding-window and padding masks, MQA/GQA.

One signature for every backend::

    attention(q, k, v, causal=False, window=None, key_mask=None, scale=None,
              backend="reference" | "torch" | "native" | "cuda", kernel=None | "flash" | "naive", threads=None)

q is [batch, heads, lq, d]; k [batch, kv_heads, lk, d] and v [batch, kv_heads,
lk, dv] with heads a multiple of kv_heads. Everything is validated here, so a
wrong shape or dtype raises before any kernel runs. kernel=None is the
backend's default: naive for reference (the plain NumPy version; "flash" is
the tiled one in tiled.py), flash for native and cuda.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.arrays import require_array, require_floating
from workbench_engines.errors import EngineError

BACKENDS = ("reference", "torch", "native", "cuda")


def check_shapes(q_shape, k_shape, v_shape) -> None:
    """Raise ValueError unless q, k and v are [batch, heads, seq, dim] and agree (k/v may have fewer heads)."""
    for shape, name in ((q_shape, "q"), (k_shape, "k"), (v_shape, "v")):
        if len(shape) != 4:
            raise ValueError(f"{name} must be [batch, heads, seq, dim], got shape {tuple(shape)}")
    (b, h, _, d), (bk, hk, lk, dk), (bv, hv, lv, _) = q_shape, k_shape, v_shape
    if not b == bk == bv:
        raise ValueError(f"batch sizes differ: q {b}, k {bk}, v {bv}")
    if d != dk:
        raise ValueError(f"q and k head dims differ: {d} vs {dk}")
    if (hk, lk) != (hv, lv):
        raise ValueError(f"k and v must have the same heads and length, got {tuple(k_shape[:3])} and {tuple(v_shape[:3])}")
    if hk < 1 or h % hk:
        raise ValueError(f"query heads ({h}) must be a multiple of key/value heads ({hk})")


def validated(q, k, v, key_mask, window, backend, kernel):
    """(q, k, v, key_mask) once they are fit for ``backend``, else TypeError/ValueError saying what is wrong.

    The one check of every CPU backend's arguments: native.attention calls it
    itself, so a direct call of the module checks as much as this package does.
    """
    q, k, v = (require_array(a, name) for a, name in ((q, "q"), (k, "k"), (v, "v")))
    for a, name in ((q, "q"), (k, "k"), (v, "v")):
        require_floating(a, name)
    check_shapes(q.shape, k.shape, v.shape)
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    b, lk = q.shape[0], k.shape[2]
    if q.shape[3] < 1:  # no features: every score 0 · 1/sqrt(0), which no backend defines the same way
        raise ValueError(f"q and k need a head dim of at least 1, got shape {q.shape}")
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
        raise ValueError(f"window must be a positive integer or None, got {window!r}")
    if key_mask is not None:
        key_mask = np.asarray(key_mask)
        if key_mask.shape != (b, lk) or key_mask.dtype != bool:
            raise ValueError(f"key_mask must be a bool array of shape {(b, lk)}, got {key_mask.dtype} {key_mask.shape}")
    if kernel not in ("flash", "naive"):
        raise ValueError(f"unknown kernel {kernel!r}; choose flash or naive")
    if backend == "native":
        if q.dtype != np.float32:
            raise ValueError(f"the native kernels take float32, got {q.dtype}")
        for a, name in ((q, "q"), (k, "k"), (v, "v")):
            if not a.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous for the native kernels (np.ascontiguousarray)")
    return q, k, v, key_mask


def attention(q, k, v, *, causal: bool = False, window: int | None = None, key_mask=None,
              scale: float | None = None, backend: str = "reference", kernel: str | None = None,
              threads: int | None = None) -> np.ndarray:
    """softmax(scale q k^T, masked) v on the chosen backend; [batch, heads, lq, dv].

    The cuda backend takes and returns torch tensors on the GPU (fp16/bf16);
    every other backend takes arrays and returns a NumPy array.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if kernel is None:
        kernel = "naive" if backend == "reference" else "flash"
    if backend == "cuda":
        from workbench_engines.attention import cuda

        return cuda.attention(q, k, v, causal=causal, window=window, key_mask=key_mask, scale=scale, kernel=kernel)
    if backend == "native":
        from workbench_engines.attention import native

        return native.attention(q, k, v, causal=causal, window=window, key_mask=key_mask, scale=scale,
                                kernel=kernel, threads=threads)
    q, k, v, key_mask = validated(q, k, v, key_mask, window, backend, kernel)
    if backend == "reference":
        from workbench_engines.attention import reference, tiled

        run = tiled.attention if kernel == "flash" else reference.attention
        return run(q, k, v, causal=causal, window=window, key_mask=key_mask, scale=scale)
    from workbench_engines.attention import torch_backend

    return torch_backend.attention(q, k, v, causal=causal, window=window, key_mask=key_mask, scale=scale)


def multi_head_attention(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray, w_o: np.ndarray,
                         heads: int, kv_heads: int | None = None, *, causal: bool = False,
                         window: int | None = None, key_mask=None, backend: str = "reference",
                         kernel: str | None = None, threads: int | None = None) -> np.ndarray:
    """Multi-head self-attention of x [batch, seq, model] (Vaswani et al., 2017, section 3.2.2).

    w_q is [model, heads·d]; w_k and w_v are [model, kv_heads·d] (fewer key/value
    heads for MQA/GQA); w_o is [heads·d, model]. Projects, splits into heads,
    attends on the chosen backend, concatenates the heads and projects back.
    """
    x = require_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must be [batch, seq, model], got shape {x.shape}")
    kv_heads = heads if kv_heads is None else kv_heads
    batch, seq, model = x.shape
    if w_q.shape[0] != model or w_k.shape[0] != model or w_v.shape[0] != model:
        raise ValueError(f"projections must take {model} inputs, got {w_q.shape}, {w_k.shape}, {w_v.shape}")
    if w_q.shape[1] % heads or w_k.shape[1] % kv_heads or w_k.shape[1] // kv_heads != w_q.shape[1] // heads:
        raise ValueError(f"w_q {w_q.shape} and w_k {w_k.shape} do not split into {heads} and {kv_heads} heads of one size")
    if w_v.shape[1] % kv_heads:
        raise ValueError(f"w_v {w_v.shape} does not split into {kv_heads} heads")
    dv = w_v.shape[1] // kv_heads
    if w_o.shape != (heads * dv, model):
        raise ValueError(f"w_o must be [heads·dv, model] = {(heads * dv, model)}, got {w_o.shape}")

    def split(y: np.ndarray, n: int) -> np.ndarray:
        return np.ascontiguousarray(y.reshape(batch, seq, n, -1).transpose(0, 2, 1, 3))

    q, k, v = split(x @ w_q, heads), split(x @ w_k, kv_heads), split(x @ w_v, kv_heads)
    out = attention(q, k, v, causal=causal, window=window, key_mask=key_mask, backend=backend,
                    kernel=kernel, threads=threads)
    return out.transpose(0, 2, 1, 3).reshape(batch, seq, -1) @ w_o


def naive_score_bytes(heads: int, lq: int, lk: int, bytes_per_score: float = 4) -> float:
    """Bytes of the score matrices the textbook algorithm holds at once for one sequence: heads · lq · lk
    scores (the C naive kernel keeps one head's lq · lk floats per thread in its workspace)."""
    for name, value in (("heads", heads), ("lq", lq), ("lk", lk)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    return float(heads) * lq * lk * bytes_per_score


def attention_flops(batch: int, heads: int, lq: int, lk: int, d: int, dv: int, causal: bool = False) -> float:
    """Counted FLOPs of the forward: 2·d for each score plus 2·dv for each weighted value, over
    the (query, key) pairs computed: all lq·lk, or the lq·(lk − lq) + lq·(lq + 1)/2 a causal mask allows."""
    pairs = lq * (lk - lq) + lq * (lq + 1) / 2 if causal else lq * lk
    return 2.0 * batch * heads * pairs * (d + dv)


__all__ = ["BACKENDS", "EngineError", "attention", "attention_flops", "multi_head_attention", "naive_score_bytes"]
